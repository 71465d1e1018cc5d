"""Saved models rebuild exactly; broken model folders give errors naming the file."""

import dataclasses
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from lpgnas.arch import baseline
from lpgnas.errors import DataError
from lpgnas.nn import GNN, graph_arrays, load_model, save_model
from lpgnas.quant import QuantConfig


def _setup(preset):
    rng = np.random.default_rng(0)
    n = 30
    s = rng.integers(0, n, 80).astype(np.int32)
    r = rng.integers(0, n, 80).astype(np.int32)
    keep = s != r
    order = np.lexsort((s[keep], r[keep]))
    ga = graph_arrays(s[keep][order], r[keep][order], n)
    arch = baseline("gcn", num_classes=3)
    if preset is not None:
        arch = dataclasses.replace(arch, quant=QuantConfig.preset(preset))
    model = GNN(arch, 8, 3, num_nodes=n, rngs=nnx.Rngs(1))
    x = jnp.asarray(rng.normal(size=(n, 8)).astype(np.float32))
    model(x, ga, training=True, key=None)  # observers see data once
    return model, x, ga, n


@pytest.mark.parametrize("preset", [None, "int8", "dq-int4", "a2q"])
def test_save_load_round_trip_is_exact(tmp_path, preset):
    model, x, ga, n = _setup(preset)
    save_model(tmp_path / "m", model, {"in_dim": 8, "num_classes": 3, "num_nodes": n})
    loaded, arch, meta = load_model(tmp_path / "m")
    assert arch == model.arch and meta["num_nodes"] == n
    np.testing.assert_array_equal(np.asarray(loaded(x, ga)), np.asarray(model(x, ga)))


def test_graph_model_with_mlp_head_round_trip_is_exact(tmp_path):
    rng = np.random.default_rng(1)
    s = np.array([1, 0, 2, 1, 4, 3], np.int32)
    r = np.array([0, 1, 1, 2, 3, 4], np.int32)
    ga = graph_arrays(s, r, 5, node_graph=np.array([0, 0, 0, 1, 1], np.int32), num_graphs=2)
    arch = baseline("gin", task="graph", num_layers=2, hidden=8, jk=False, head=6)
    model = GNN(arch, 4, 3, rngs=nnx.Rngs(2))
    x = jnp.asarray(rng.normal(size=(5, 4)).astype(np.float32))
    model(x, ga, training=True, key=jax.random.key(0))  # batch statistics move once
    save_model(tmp_path / "g", model, {"in_dim": 4, "num_classes": 3})
    loaded, back, _ = load_model(tmp_path / "g")
    assert back == arch and back.head == 6
    np.testing.assert_array_equal(np.asarray(loaded(x, ga)), np.asarray(model(x, ga)))


def test_model_saved_before_running_sign_statistics_loads_and_evaluates_as_it_did(tmp_path):
    """Binary activation quantisers gained running statistics; a model saved without them loads
    with count 0, which evaluates with the call's own statistic (the old behaviour)."""
    from flax import serialization

    rng = np.random.default_rng(0)
    s = np.array([1, 0, 2, 1], np.int32)
    r = np.array([0, 1, 1, 2], np.int32)
    ga = graph_arrays(s, r, 3)
    quant = QuantConfig.from_json({"default": {"method": "fp32", "bits": 32}, "overrides": [
        {"layer": 0, "component": "input", "spec": {"method": "binary", "bits": 1}}]})
    arch = dataclasses.replace(baseline("gcn", num_classes=3), quant=quant)
    model = GNN(arch, 4, 3, num_nodes=3, rngs=nnx.Rngs(1))
    x = jnp.asarray(rng.normal(size=(3, 4)).astype(np.float32))
    save_model(tmp_path / "m", model, {"in_dim": 4, "num_classes": 3, "num_nodes": 3})
    weights = tmp_path / "m" / "weights.msgpack"
    tree = serialization.msgpack_restore(weights.read_bytes())
    q = tree["layers"][0]["q_input"]
    assert set(q) == {"mean_abs", "count"}
    del q["mean_abs"], q["count"]  # as written before the running statistics existed
    weights.write_bytes(serialization.msgpack_serialize(tree))
    loaded, _, _ = load_model(tmp_path / "m")
    np.testing.assert_array_equal(np.asarray(loaded(x, ga)), np.asarray(model(x, ga)))
    del tree["layers"][0]["kernel"]  # anything else missing is still refused
    weights.write_bytes(serialization.msgpack_serialize(tree))
    with pytest.raises(DataError, match="weights do not match"):
        load_model(tmp_path / "m")


def test_broken_model_folders_name_the_file(tmp_path):
    model, *_ = _setup(None)
    folder = tmp_path / "m"
    save_model(folder, model, {"in_dim": 8, "num_classes": 3, "num_nodes": 30})
    with pytest.raises(DataError, match="no such model folder"):
        load_model(tmp_path / "nope")
    (folder / "weights.msgpack").write_bytes(b"\x00garbage")
    with pytest.raises(DataError, match="weights.msgpack"):
        load_model(folder)
    save_model(folder, model, {"in_dim": 8, "num_classes": 3, "num_nodes": 30})
    meta = json.loads((folder / "meta.json").read_text())
    (folder / "meta.json").write_text(json.dumps(dict(meta, in_dim=9)))
    with pytest.raises(DataError, match="shape"):
        load_model(folder)
    os.remove(folder / "arch.json")
    with pytest.raises(DataError, match="arch.json"):
        load_model(folder)


def test_save_requires_meta(tmp_path):
    model, *_ = _setup(None)
    with pytest.raises(ValueError, match="in_dim"):
        save_model(tmp_path / "m", model, {"num_classes": 3})
