"""The run directory of a search: what was asked (``search.json``), an append-only per-epoch log
(``log.jsonl``), the latest checkpoint (``checkpoint.npz``) and the results (``arch.json``,
``summary.json``). Every file but the log is written atomically (temp file + ``os.replace``); a
resumed run first cuts the log back to the checkpoint's epoch (atomically, too), then appends.
"""

from __future__ import annotations

import io
import json
import os
from typing import Any, Iterable

import jax
import numpy as np

from lpgnas._atomic import atomic_write_bytes, atomic_write_json
from lpgnas._jsonio import read_json
from lpgnas.errors import ConfigError, DataError

__all__ = ["RunDir", "read_log", "atomic_write_bytes", "atomic_write_json"]

_SEARCH = "search.json"
_LOG = "log.jsonl"
_CKPT = "checkpoint.npz"
# why a checkpoint's arrays can disagree with the search that reads them
_OTHER_SUPERNET = (": it was written by a different supernet (a library version that builds this space's "
                   "candidates differently); search in a new directory")


def read_log(path: str) -> list[dict]:
    """The records of a ``log.jsonl`` (a torn last line, from a killed run, is skipped)."""
    out = []
    try:
        with open(path) as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
    except FileNotFoundError:
        return []
    return out


def _diff(a: Any, b: Any, prefix: str = "") -> str | None:
    """The first path where two JSON values differ, or None."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                return f"{prefix}{k}"
            d = _diff(a[k], b[k], f"{prefix}{k}.")
            if d is not None:
                return d
        return None
    return None if a == b else prefix.rstrip(".") or "<root>"


def _show(doc: Any, dotted: str) -> str:
    """The JSON value at a dotted path of ``doc`` (``(absent)`` where there is none)."""
    for part in dotted.split("."):
        if not isinstance(doc, dict) or part not in doc:
            return "(absent)"
        doc = doc[part]
    text = json.dumps(doc)
    return text if len(text) <= 80 else text[:77] + "..."


class RunDir:
    """One search's folder. ``start`` checks it against the search asked for."""

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)

    def file(self, name: str) -> str:
        return os.path.join(self.path, name)

    @property
    def log_path(self) -> str:
        return self.file(_LOG)

    @property
    def checkpoint_path(self) -> str:
        return self.file(_CKPT)

    def start(self, fingerprint: dict, *, resume: bool) -> bool:
        """Prepare the folder for the search described by ``fingerprint`` (JSON values).

        Returns True when a checkpoint is to be resumed. Raises :class:`ConfigError` (``--out``)
        when the folder holds a different search, or a search and ``resume`` is False;
        (``--resume``) when ``resume`` is asked but there is no checkpoint.
        """
        spath = self.file(_SEARCH)
        existing = None
        if os.path.exists(spath):
            existing = read_json(spath, "search description", expect=dict)
        if resume:
            if not os.path.exists(self.checkpoint_path):
                raise ConfigError("--resume", f"no checkpoint to resume in {self.path}")
            if existing is None:
                raise ConfigError("--resume", f"{self.path} has a checkpoint but no {_SEARCH}")
        if existing is not None:
            asked = json.loads(json.dumps(fingerprint))
            where = _diff(existing, asked)
            if where is not None:
                raise ConfigError("--out", f"{self.path} holds a different search ({where} differs: "
                                           f"{_show(existing, where)} there, {_show(asked, where)} asked); use "
                                           "another directory")
            if not resume:
                raise ConfigError("--out", f"{self.path} already holds this search; pass --resume to continue it "
                                           "or use another directory")
        elif os.path.isdir(self.path) and os.listdir(self.path):
            raise ConfigError("--out", f"{self.path} is not empty and holds no search")
        os.makedirs(self.path, exist_ok=True)
        if existing is None:
            atomic_write_json(spath, fingerprint)
            for stale in (_LOG, _CKPT):
                if os.path.exists(self.file(stale)):
                    os.unlink(self.file(stale))
        return resume

    # -- log -----------------------------------------------------------------------------------
    def append_log(self, records: Iterable[dict]) -> None:
        lines = "".join(json.dumps(r, sort_keys=False) + "\n" for r in records)
        if not lines:
            return
        with open(self.log_path, "a") as f:
            f.write(lines)
            f.flush()

    def cut_log(self, epoch: int) -> None:
        """Keep the records of epochs before ``epoch`` (the resumed run re-logs the rest)."""
        kept = [r for r in read_log(self.log_path) if int(r.get("epoch", -1)) < epoch]
        atomic_write_bytes(self.log_path, "".join(json.dumps(r) + "\n" for r in kept).encode())

    # -- checkpoints ---------------------------------------------------------------------------
    def save_checkpoint(self, tree: Any, meta: dict) -> None:
        """Save a pytree of arrays (flattened leaves) and JSON ``meta`` atomically."""
        leaves = jax.tree_util.tree_leaves(tree)
        arrays = {f"leaf{i:05d}": np.asarray(leaf) for i, leaf in enumerate(leaves)}
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        atomic_write_bytes(self.checkpoint_path, buf.getvalue())

    def load_checkpoint(self, template: Any) -> tuple[Any, dict]:
        """Restore the pytree saved by :meth:`save_checkpoint` into ``template``'s structure."""
        path = self.checkpoint_path
        try:
            with np.load(path) as z:
                meta = json.loads(bytes(z["meta"]).decode())
                leaves_t, treedef = jax.tree_util.tree_flatten(template)
                names = sorted(k for k in z.files if k.startswith("leaf"))
                if len(names) != len(leaves_t):
                    raise DataError(path, f"checkpoint holds {len(names)} arrays, this search has {len(leaves_t)}"
                                          + _OTHER_SUPERNET)
                leaves = []
                for name, ref in zip(names, leaves_t):
                    arr = z[name]
                    if arr.shape != np.shape(ref) or arr.dtype != np.asarray(ref).dtype:
                        raise DataError(path, f"{name}: shape/dtype {arr.shape} {arr.dtype} does not match this "
                                              f"search ({np.shape(ref)} {np.asarray(ref).dtype})" + _OTHER_SUPERNET)
                    leaves.append(arr)
        except (OSError, ValueError, KeyError) as e:
            if isinstance(e, DataError):
                raise
            raise DataError(path, f"unreadable checkpoint ({e})") from None
        return jax.tree_util.tree_unflatten(treedef, [jax.numpy.asarray(a) for a in leaves]), meta
