"""Checks of numeric configuration fields, raising :class:`~lpgnas.errors.ConfigError`.

One home for the "positive integer", "finite number >= 0", "number in [0, 1)" checks that the
configuration dataclasses (architecture, search, tune backends, cost model) run on their fields.
``bool`` is never a number here (``True`` is an ``int`` to Python, not to a JSON or YAML user).
Each check returns the value unchanged so that it can be used inline.
"""

from __future__ import annotations

import math
from typing import Any

from lpgnas.errors import ConfigError

__all__ = ["is_int", "is_finite_number", "positive_int", "non_negative_int", "finite_number"]


def is_int(value: Any) -> bool:
    """``value`` is a Python ``int`` (not a ``bool``)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_finite_number(value: Any) -> bool:
    """``value`` is an ``int`` or ``float`` (not a ``bool``) and neither infinite nor NaN."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return isinstance(value, int) or math.isfinite(value)  # an int is finite (and may not fit a float)


def positive_int(field: str, value: Any, *, source: object | None = None) -> int:
    """``value`` when it is an integer >= 1; else ``ConfigError(field, "must be a positive integer, ...")``."""
    if not is_int(value) or value < 1:
        raise ConfigError(field, f"must be a positive integer, got {value!r}", source=source)
    return value


def non_negative_int(field: str, value: Any, *, source: object | None = None) -> int:
    """``value`` when it is an integer >= 0; else ``ConfigError(field, "must be a non-negative integer, ...")``."""
    if not is_int(value) or value < 0:
        raise ConfigError(field, f"must be a non-negative integer, got {value!r}", source=source)
    return value


def finite_number(field: str, value: Any, *, ge: float | None = None, gt: float | None = None,
                  le: float | None = None, lt: float | None = None, source: object | None = None) -> Any:
    """``value`` when it is a finite number within the bounds given (at most one lower bound,
    ``ge`` or ``gt``, and one upper, ``le`` or ``lt``); else a :class:`ConfigError` such as
    ``lambda: must be a finite number >= 0, got -1`` or ``dropout: must be a finite number in
    [0, 1), got 1.5``."""
    if ge is not None and gt is not None or le is not None and lt is not None:
        raise TypeError("finite_number: give at most one of ge/gt and one of le/lt")
    ok = (is_finite_number(value)
          and (ge is None or value >= ge) and (gt is None or value > gt)
          and (le is None or value <= le) and (lt is None or value < lt))
    if not ok:
        raise ConfigError(field, f"must be a finite number{_bounds(ge, gt, le, lt)}, got {value!r}", source=source)
    return value


def _bounds(ge, gt, le, lt) -> str:
    """`` >= 0``, `` < 1``, `` in [0, 1)`` or nothing: the bounds in words."""
    low, high = (ge if gt is None else gt), (le if lt is None else lt)
    if low is not None and high is not None:
        return f" in {'[' if gt is None else '('}{low:g}, {high:g}{']' if lt is None else ')'}"
    if low is not None:
        return f" {'>=' if gt is None else '>'} {low:g}"
    if high is not None:
        return f" {'<=' if lt is None else '<'} {high:g}"
    return ""
