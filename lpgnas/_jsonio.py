"""Reading a JSON file with errors that name the file (:class:`~lpgnas.errors.DataError`).

One home for every module that reads a JSON document a user handed over or a run left behind
(architecture files, quantisation configs, ``tune.json``). The write side is
:func:`lpgnas._atomic.atomic_write_json`.
"""

from __future__ import annotations

import json
import os
from typing import Any

from lpgnas.errors import DataError

__all__ = ["read_json"]


def read_json(path: str | os.PathLike, what: str, *, expect: type | tuple[type, ...] | None = None,
              missing: str | None = None) -> Any:
    """The JSON document in ``path`` (UTF-8).

    ``what`` names the kind of file in the messages (``"architecture file"``). Every failure is a
    :class:`DataError` naming ``path``: a missing file (``no such <what>``, or ``missing`` when
    given), one that cannot be read (a folder, no permission, not UTF-8), invalid JSON (with line
    and column) and, when ``expect`` is given, a top-level value of another type (``dict``: a JSON
    object, ``list``: an array).
    """
    try:
        with open(path, encoding="utf-8") as f:
            obj = json.load(f)
    except FileNotFoundError:
        raise DataError(path, missing or f"no such {what}") from None
    except IsADirectoryError:
        raise DataError(path, f"is a folder, not a {what}") from None
    except OSError as e:
        raise DataError(path, f"cannot read the {what} ({e.strerror or e})") from None
    except UnicodeDecodeError as e:
        raise DataError(path, f"not valid JSON (not UTF-8 text: byte {e.start})") from None
    except json.JSONDecodeError as e:
        raise DataError(path, f"not valid JSON ({e.msg} at line {e.lineno}, column {e.colno})") from None
    if expect is not None and not isinstance(obj, expect):
        raise DataError(path, f"the {what} must hold a JSON {_json_type(expect)}, got a JSON {_json_type(type(obj))}")
    return obj


_JSON_TYPES = ((bool, "boolean"), (dict, "object"), (list, "array"), (str, "string"), (int, "number"),
               (float, "number"), (type(None), "null"))


def _json_type(t: type | tuple[type, ...]) -> str:
    """The JSON name of a Python type (or ``a or b`` for a tuple of types)."""
    if isinstance(t, tuple):
        return " or ".join(dict.fromkeys(_json_type(x) for x in t))
    return next((name for py, name in _JSON_TYPES if issubclass(t, py)), t.__name__)
