"""Saving and loading a trained model: a folder with ``arch.json`` (the architecture, quantisation
included), ``weights.msgpack`` (every variable of the model: weights, quantiser parameters and
observer statistics, as flax msgpack) and ``meta.json`` (what is needed to rebuild it: input width,
classes, node count, feature preprocessing, and the run's figures). Every file is written atomically.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any, Mapping

from flax import nnx, serialization

from lpgnas.arch import Architecture, read_architecture, write_architecture
from lpgnas.errors import DataError
from lpgnas.nn._model import GNN
from lpgnas.quant import SIGN_RUNNING_STATS

__all__ = ["save_model", "load_model", "MODEL_FILES"]

MODEL_FILES = ("arch.json", "weights.msgpack", "meta.json")
_REQUIRED_META = ("in_dim", "num_classes")


def _write_bytes_atomic(path: str, data: bytes) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_model(folder: str | os.PathLike, model: GNN, meta: Mapping[str, Any]) -> None:
    """Write ``model`` (a :class:`GNN`) and ``meta`` (must hold ``in_dim`` and ``num_classes``;
    ``num_nodes`` for transductive models) into ``folder``."""
    missing = [k for k in _REQUIRED_META if k not in meta]
    if missing:
        raise ValueError(f"save_model: meta lacks {', '.join(missing)}")
    folder = os.fspath(folder)
    os.makedirs(folder, exist_ok=True)
    state = nnx.to_pure_dict(nnx.state(model))
    _write_bytes_atomic(os.path.join(folder, "weights.msgpack"), serialization.msgpack_serialize(state))
    _write_bytes_atomic(os.path.join(folder, "meta.json"),
                        (json.dumps(dict(meta), indent=2, sort_keys=True) + "\n").encode())
    write_architecture(model.arch, os.path.join(folder, "arch.json"))


def load_model(folder: str | os.PathLike) -> tuple[GNN, Architecture, dict]:
    """Rebuild a saved model; errors name the file and what is wrong."""
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise DataError(folder, "no such model folder (expected arch.json, weights.msgpack, meta.json)")
    for name in MODEL_FILES:
        if not os.path.exists(os.path.join(folder, name)):
            raise DataError(os.path.join(folder, name), "missing from the model folder")
    arch = read_architecture(os.path.join(folder, "arch.json"))
    meta_path = os.path.join(folder, "meta.json")
    try:
        with open(meta_path) as f:
            meta = json.load(f)
    except json.JSONDecodeError as e:
        raise DataError(meta_path, f"not valid JSON ({e.msg} at line {e.lineno})") from None
    for key in _REQUIRED_META:
        if not isinstance(meta.get(key), int) or meta[key] < 1:
            raise DataError(meta_path, f"field {key!r} must be a positive integer, got {meta.get(key)!r}")
    model = GNN(arch, meta["in_dim"], meta["num_classes"], num_nodes=meta.get("num_nodes"), rngs=nnx.Rngs(0))
    weights_path = os.path.join(folder, "weights.msgpack")
    with open(weights_path, "rb") as f:
        raw = f.read()
    try:
        saved = serialization.msgpack_restore(raw)
    except Exception as e:  # msgpack raises several unrelated types on corrupt input
        raise DataError(weights_path, f"not a readable weights file ({type(e).__name__})") from None
    state = nnx.state(model)
    expected = nnx.to_pure_dict(state)
    saved = _fill_running_sign_stats(expected, saved)
    _check_tree(weights_path, expected, saved)
    nnx.replace_by_pure_dict(state, saved)
    nnx.update(model, state)
    return model, arch, meta


def _fill_running_sign_stats(expected, saved):
    """``saved`` with the running sign statistics it lacks taken from ``expected`` (the fresh model):
    binary / ternary activation quantisers gained them after lpgnas 7f50e0b, a model saved before has
    none, and their initial values (count 0: the call's own statistic) are what it evaluated with."""
    if not isinstance(expected, Mapping) or not isinstance(saved, Mapping):
        return saved
    lookup = {str(k): k for k in saved}
    missing = {str(k) for k in expected} - set(lookup)
    out = dict(saved)
    if "mean_abs" in missing and missing <= SIGN_RUNNING_STATS:
        out.update({k: v for k, v in expected.items() if str(k) in missing})
    for k, v in expected.items():
        if str(k) in lookup:
            out[lookup[str(k)]] = _fill_running_sign_stats(v, saved[lookup[str(k)]])
    return out


def _check_tree(path: str, expected, saved, where: str = "") -> None:
    if isinstance(expected, Mapping):
        if not isinstance(saved, Mapping):
            raise DataError(path, f"{where or 'root'}: expected a mapping of weights")
        exp_keys = {str(k) for k in expected}
        got_keys = {str(k) for k in saved}
        if exp_keys != got_keys:
            diff = sorted(exp_keys ^ got_keys)
            raise DataError(path, f"{where or 'root'}: weights do not match the architecture (differs in {diff[:3]})")
        lookup = {str(k): v for k, v in saved.items()}
        for k, v in expected.items():
            _check_tree(path, v, lookup[str(k)], f"{where}.{k}" if where else str(k))
        return
    shape = getattr(expected, "shape", None)
    got = getattr(saved, "shape", None)
    if shape is not None and tuple(shape) != tuple(got or ()):
        raise DataError(path, f"{where}: shape {tuple(got or ())} does not match the architecture's {tuple(shape)}")
