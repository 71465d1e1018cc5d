"""Vectorised tokenising of whitespace / comma separated numeric text files.

The TU and GIN text formats are many short lines of integers. Splitting them with Python string
methods costs seconds on REDDIT-BINARY (3.7 M tokens); :func:`tokenize` works on the raw bytes with
numpy instead: it finds token starts, counts tokens per line and parses integer tokens digit by
digit. Files holding non-integer tokens (node attributes) fall back to ``float`` parsing.
"""

from __future__ import annotations

import os
import pathlib
from typing import NamedTuple

import numpy as np

from lpgnas.errors import DataError

__all__ = ["Tokens", "read_bytes", "tokenize"]

_MAX_DIGITS = 18


class Tokens(NamedTuple):
    """Numeric tokens of a text file.

    ``values``: every token in file order (``int64`` when all are integers, else ``float64``);
    ``counts``: tokens on each line (blank lines count 0); ``line_start``: index into ``values`` of
    the first token of each line.
    """

    values: np.ndarray
    counts: np.ndarray
    line_start: np.ndarray

    @property
    def is_integer(self) -> bool:
        return self.values.dtype.kind == "i"


def read_bytes(path: str | os.PathLike) -> bytes:
    """The bytes of ``path``; :class:`DataError` when missing or unreadable."""
    try:
        return pathlib.Path(path).read_bytes()
    except FileNotFoundError:
        raise DataError(path, "missing file") from None
    except OSError as e:
        raise DataError(path, f"cannot read file: {e.strerror or e}") from None


def _is_digit(c: np.ndarray) -> np.ndarray:
    return (c >= 48) & (c <= 57)


def _parse_ints(a: np.ndarray, sep: np.ndarray, start_pos: np.ndarray) -> np.ndarray | None:
    """Integers of the tokens, or ``None`` when a token is not a plain (signed) integer.

    Horner's rule over the digit positions, right-aligned at each token's last character: one
    vectorised pass per digit of the longest token.
    """
    nonsep = ~sep
    end = nonsep.copy()
    end[:-1] &= sep[1:]
    end_pos = np.flatnonzero(end)
    if end_pos.shape[0] != start_pos.shape[0]:  # pragma: no cover - defensive
        return None
    first = a[start_pos]
    signed = (first == 45) | (first == 43)
    inner = nonsep.copy()
    inner[start_pos] = False
    if not (_is_digit(a[inner]).all() and (_is_digit(first) | signed).all()):
        return None
    length = end_pos - start_pos + 1
    if length.size == 0:
        return np.zeros(0, np.int64)
    width = int(length.max())
    if width > _MAX_DIGITS or (signed & (length < 2)).any():
        return None
    lo = start_pos + signed
    values = np.zeros(start_pos.shape[0], np.int64)
    for j in range(width):
        pos = end_pos - (width - 1 - j)
        digit = a[np.maximum(pos, 0)].astype(np.int64) - 48
        values *= 10
        values += np.where(pos >= lo, digit, 0)
    neg = first == 45
    values[neg] = -values[neg]
    return values


def tokenize(path: str | os.PathLike, raw: bytes, *, commas: bool = False) -> Tokens:
    """Tokenise ``raw`` (the bytes of ``path``; the path only names errors).

    Separators are space, tab, carriage return and (with ``commas``) ``,``. Raises
    :class:`DataError` when a token is not a number.
    """
    a = np.frombuffer(raw, dtype=np.uint8)
    newline = a == 10
    sep = newline | (a == 32) | (a == 9) | (a == 13)
    if commas:
        sep |= a == 44
    start = ~sep
    start[1:] &= sep[:-1]
    start_pos = np.flatnonzero(start)
    line_of_token = np.cumsum(newline, dtype=np.int64)[start_pos] if start_pos.size else np.zeros(0, np.int64)
    num_lines = int(newline.sum()) + 1
    counts = np.bincount(line_of_token, minlength=num_lines).astype(np.int64)
    line_start = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)

    values = _parse_ints(a, sep, start_pos)
    if values is None:
        text = raw.replace(b",", b" ") if commas else raw
        toks = text.split()
        try:
            values = np.array(toks).astype(np.float64)
        except ValueError:
            i = next(i for i, t in enumerate(toks) if not _is_float(t))
            line = int(line_of_token[i]) + 1 if i < line_of_token.shape[0] else 0
            raise DataError(path, f"line {line}: {toks[i].decode('latin1')!r} is not a number") from None
    if values.shape[0] != start_pos.shape[0]:  # pragma: no cover - defensive
        raise DataError(path, "could not tokenise the file")
    return Tokens(values=values, counts=counts, line_start=line_start)


def _is_float(tok: bytes) -> bool:
    try:
        float(tok)
    except ValueError:
        return False
    return True
