"""A restricted unpickler for the Python-2 Planetoid pickles.

The Planetoid files (``ind.<name>.x`` ...) are pickles written by Python 2 that hold
``scipy.sparse.csr_matrix`` features, ``numpy`` arrays and a ``collections.defaultdict(list)``.
Unpickling runs code named by the file, so :class:`RestrictedUnpickler` resolves only the handful of
classes these files legitimately need; any other reference raises :class:`DataError`.
"""

from __future__ import annotations

import codecs
import collections
import copyreg
import io
import os
import pickle

import numpy as np
import scipy.sparse as sp

from lpgnas.errors import DataError

__all__ = ["RestrictedUnpickler", "load_pickle"]

try:  # numpy >= 2 keeps the implementation in numpy._core (numpy.core warns on access)
    from numpy._core import multiarray as _multiarray
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core import multiarray as _multiarray  # type: ignore[no-redef]

_SPARSE_CLASSES = ("csr_matrix", "csc_matrix", "coo_matrix", "lil_matrix", "dok_matrix")

# (module, name) -> object. Module names are the ones written by Python 2 and by Python 3.
_ALLOWED: dict[tuple[str, str], object] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("collections", "defaultdict"): collections.defaultdict,
    ("copy_reg", "_reconstructor"): copyreg._reconstructor,  # type: ignore[attr-defined]
    ("copyreg", "_reconstructor"): copyreg._reconstructor,  # type: ignore[attr-defined]
    # Python 3 writes bytes into protocol-2 pickles as _codecs.encode(str, "latin1")
    ("_codecs", "encode"): codecs.encode,
}
for _mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _ALLOWED[(_mod, "_reconstruct")] = _multiarray._reconstruct
    _ALLOWED[(_mod, "scalar")] = _multiarray.scalar
for _mod in ("__builtin__", "builtins"):
    for _name, _obj in (("list", list), ("dict", dict), ("set", set), ("tuple", tuple),
                        ("int", int), ("float", float), ("object", object), ("long", int)):
        _ALLOWED[(_mod, _name)] = _obj


def _allowed(module: str, name: str) -> object | None:
    if (module, name) in _ALLOWED:
        return _ALLOWED[(module, name)]
    # scipy.sparse.csr, scipy.sparse._csr, scipy.sparse.base ... all map to scipy.sparse
    if (module == "scipy.sparse" or module.startswith("scipy.sparse.")) and name in _SPARSE_CLASSES:
        return getattr(sp, name)
    return None


class RestrictedUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` that resolves only numpy / scipy.sparse / defaultdict / builtin containers."""

    def __init__(self, file, *, path: str | os.PathLike = "<pickle>"):
        super().__init__(file, encoding="latin1")
        self._path = path

    def find_class(self, module: str, name: str):  # noqa: D102 - pickle API
        obj = _allowed(module, name)
        if obj is None:
            raise DataError(self._path, f"pickle refers to the disallowed class {module}.{name}; "
                                        "refusing to unpickle it")
        return obj


def load_pickle(path: str | os.PathLike) -> object:
    """Read one (Python 2 or 3) pickle with :class:`RestrictedUnpickler`.

    Raises :class:`DataError` for a missing file, a truncated / corrupt pickle or a disallowed class.
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise DataError(path, "missing file") from None
    except OSError as e:
        raise DataError(path, f"cannot read file: {e.strerror or e}") from None
    try:
        obj = RestrictedUnpickler(io.BytesIO(data), path=path).load()
    except DataError:
        raise
    except EOFError:
        raise DataError(path, "truncated pickle (unexpected end of file)") from None
    except (pickle.UnpicklingError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            MemoryError, OverflowError, UnicodeDecodeError) as e:
        raise DataError(path, f"corrupt pickle ({type(e).__name__}: {e})") from None
    return obj
