"""Deep propagation in a real model: ``Architecture.propagation`` applied by ``lpgnas.nn.GNN`` (APPNP,
smoothness-aware low-bit propagation), the ``linear`` op, the ``propagate`` quantisation component,
training, cost and the ``appnp`` command-line model."""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from lpgnas import cli
from lpgnas.arch import SMP_ETA, Architecture, LayerSpec, Propagation, baseline, write_architecture
from lpgnas.cost import gnn_cost
from lpgnas.data import load_dataset
from lpgnas.nn import GNN, graph_arrays, save_model
from lpgnas.nn._propagation import LinearLayer
from lpgnas.quant import AlphaQuantizer, Override, QuantConfig, QuantSpec, UniformQuantizer
from lpgnas.train import TRAIN_DEFAULTS, TrainConfig, train_node

SYN = "synthetic:nodes=120,edges=600,classes=3,features=8,seed=1"


@pytest.fixture(scope="module")
def syn():
    return load_dataset(SYN)


def _graph(n=24, e=80, seed=0):
    rng = np.random.default_rng(seed)
    s, r = rng.integers(0, n, e), rng.integers(0, n, e)
    keep = s != r
    pairs = np.unique(np.stack([np.concatenate([s[keep], r[keep]]), np.concatenate([r[keep], s[keep]])], 1), axis=0)
    order = np.lexsort((pairs[:, 0], pairs[:, 1]))
    s, r = pairs[order, 0].astype(np.int32), pairs[order, 1].astype(np.int32)
    return s, r, graph_arrays(s, r, n)


def _dense_ahat(s, r, n):
    a = np.eye(n)
    np.add.at(a, (r, s), 1.0)
    d = a.sum(1)
    return a / np.sqrt(d[:, None] * d[None, :])


def _appnp(num_classes=3, quant=None, **prop):
    arch = baseline("appnp", num_classes=num_classes, hidden=16)
    if prop:
        arch = dataclasses.replace(arch, propagation=dataclasses.replace(arch.propagation, **prop))
    return dataclasses.replace(arch, quant=quant)


def _preset(name):
    return None if name == "fp32" else QuantConfig.preset(name)


# -- the forward pass ---------------------------------------------------------------------------


@pytest.mark.parametrize("steps, lam", [(10, 9.0), (3, 1.0), (1, 0.0)])
def test_fp32_propagation_is_the_appnp_iteration(steps, lam):
    n, f = 24, 5
    s, r, ga = _graph(n)
    x = jax.random.normal(jax.random.key(0), (n, f))
    model = GNN(_appnp(steps=steps, lam=lam), f, 3, num_nodes=n, rngs=nnx.Rngs(0))
    assert model.propagation.eta == 0.0
    out = np.asarray(model(x, ga, training=True, key=jax.random.key(1)), np.float64)
    # the MLP alone (dropout off) gives the logits H; APPNP: Z <- H / (1 + lam) + lam / (1 + lam) A_hat Z
    w0, b0 = np.asarray(model.layers[0].kernel[...]), np.asarray(model.layers[0].bias[...])
    w1, b1 = np.asarray(model.layers[1].kernel[...]), np.asarray(model.layers[1].bias[...])
    h = np.maximum(np.asarray(x) @ w0 + b0, 0.0) @ w1 + b1
    ev = np.asarray(model(x, ga, training=False), np.float64)
    a = _dense_ahat(s, r, n)
    z = h.copy()
    for _ in range(steps):
        z = h / (1 + lam) + lam / (1 + lam) * (a @ z)
    np.testing.assert_allclose(ev, z, rtol=1e-4, atol=1e-4)
    assert out.shape == (n, 3) and not np.allclose(out, ev)  # training: dropout was on
    assert float(model.propagation.mu[...]) == lam  # eta = 0: the multiplier never moves


@pytest.mark.parametrize("preset, cls, bits, eta", [
    ("fp32", None, 32, 0.0),
    ("int4", UniformQuantizer, 4, 0.0),     # naive QAT: affine steps, plain APPNP propagation
    ("int2", UniformQuantizer, 2, 0.0),
    ("smp-int4", AlphaQuantizer, 4, SMP_ETA),  # the method: alpha steps + dual ascent
    ("smp-int2", AlphaQuantizer, 2, SMP_ETA),
])
def test_presets_set_the_propagation_steps(preset, cls, bits, eta):
    model = GNN(_appnp(quant=_preset(preset)), 6, 3, num_nodes=24, rngs=nnx.Rngs(0))
    prop = model.propagation
    assert prop.eta == pytest.approx(eta)
    assert prop.step_bits() == [float(bits)] * 10 + [32.0]  # the propagated logits stay in full precision
    if cls is None:
        assert not prop.quantized
    else:
        assert prop.plan.method == ("alpha" if cls is AlphaQuantizer else "affine") and prop.plan.bits == bits
        assert isinstance(model.layers[0].q_weight, cls)


def test_quant_config_json_sets_the_propagate_bits():
    cfg = QuantConfig.from_json({"default": "fp32", "overrides": [
        {"component": "propagate", "spec": {"method": "affine", "bits": 3, "signed": False}}]})
    model = GNN(_appnp(quant=cfg), 6, 3, num_nodes=24, rngs=nnx.Rngs(0))
    assert model.propagation.step_bits()[:10] == [3.0] * 10
    assert model.layers[0].q_weight is not None and model.propagation.eta == 0.0
    # a per-layer override of the MLP does not reach the propagation (layer index len(layers) = 2)
    cfg = QuantConfig(default=QuantSpec("fp32"), overrides=(Override(QuantSpec("affine", 4), layer=0),))
    assert not GNN(_appnp(quant=cfg), 6, 3, rngs=nnx.Rngs(0)).propagation.quantized


@pytest.mark.parametrize("method", ["affine", "alpha"])
def test_low_bit_steps_stay_close_to_fp32(method):
    n, f = 24, 5
    _, _, ga = _graph(n, seed=2)
    x = jax.random.normal(jax.random.key(3), (n, f))
    ref = np.asarray(GNN(_appnp(), f, 3, num_nodes=n, rngs=nnx.Rngs(0))(x, ga))
    errors = []
    for bits in (2, 4, 8):
        cfg = QuantConfig(default=QuantSpec("fp32"), overrides=(
            Override(QuantSpec(method, bits, signed=False, momentum=0.1), component="propagate"),))
        model = GNN(_appnp(quant=cfg, eta=0.0), f, 3, num_nodes=n, rngs=nnx.Rngs(0))
        model(x, ga, training=True)  # initialise the ranges
        got = np.asarray(model(x, ga))
        assert np.all(np.isfinite(got))
        errors.append(float(np.mean(np.abs(got - ref))) / float(np.mean(np.abs(ref))))
    assert errors[0] > errors[1] > errors[2] and errors[0] < 0.5 and errors[2] < 0.02


def test_multiplier_moves_in_training_only():
    n, f = 24, 5
    _, _, ga = _graph(n, seed=4)
    x = jax.random.normal(jax.random.key(5), (n, f))
    model = GNN(_appnp(quant=_preset("smp-int2"), eta=0.5, lam=2.0), f, 3, num_nodes=n, rngs=nnx.Rngs(0))
    prop = model.propagation
    model(x, ga, training=False)
    assert float(prop.mu[...]) == 2.0
    model(x, ga, training=True)
    mu = float(prop.mu[...])
    violation = float(prop.last_smoothness[...] - prop.last_epsilon[...])
    assert mu != 2.0 and (mu > 2.0) == (violation > 0)
    model(x, ga, training=False)
    assert float(prop.mu[...]) == mu
    # the multiplier is state, not a trained parameter
    grads = nnx.grad(lambda m: jnp.sum(m(x, ga, training=True) ** 2))(model)
    assert "mu" not in grads["propagation"] and "alpha" in grads["propagation"]


def test_linear_layer_reads_no_graph():
    n, f = 10, 4
    _, _, ga = _graph(n, 30, seed=6)
    _, _, other = _graph(n, 30, seed=7)
    layer = LinearLayer(LayerSpec(op="linear", hidden=3), f, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(0), (n, f))
    y = layer(x, ga)
    np.testing.assert_allclose(np.asarray(y), np.asarray(x @ layer.kernel[...] + layer.bias[...][None, :]), rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(layer(x, other)), np.asarray(y))
    with pytest.raises(ValueError, match="single head"):
        LinearLayer(LayerSpec(op="linear", hidden=3, heads=2), f, rngs=nnx.Rngs(0))


# -- training and cost --------------------------------------------------------------------------


@pytest.mark.parametrize("preset", ["int2", "smp-int2"])
def test_trains_on_a_synthetic_graph(syn, preset):
    arch = _appnp(quant=_preset(preset), steps=4)
    config = TrainConfig(**dict(TRAIN_DEFAULTS[("appnp", "node")], epochs=10, chunk=10))
    result, model = train_node(arch, syn, seed=0, config=config)
    assert result.epochs == 10 and 0.0 <= result.test_acc <= 1.0
    assert np.all(np.isfinite(np.asarray(model.layers[0].kernel[...])))
    if preset == "smp-int2":
        assert float(model.propagation.mu[...]) != 9.0  # the running dual ascent moved during training
    cost = gnn_cost(model, syn.num_nodes, syn.num_edges)
    n, c, ep = syn.num_nodes, syn.num_classes, syn.num_edges + syn.num_nodes
    b = 2  # weights, inputs and the 4 quantised steps X0, F^1..F^3 (F^4, the logits, is full precision)
    assert cost.bitops == n * syn.num_features * 16 * b * b + n * 16 * c * b * b + 4 * ep * c * 32 * b
    assert cost.fp32_bitops == n * syn.num_features * 16 * 1024 + n * 16 * c * 1024 + 4 * ep * c * 1024


def test_cli_appnp_json_reports_cost(capsys, syn):
    code = cli.main(["train", "--dataset", SYN, "--model", "appnp", "--quant", "smp-int2", "--seeds", "1",
                     "--epochs", "3", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["model"] == "appnp" and summary["quant"] == "smp-int2"
    assert summary["config"]["weight_decay"] == 5e-3 and summary["config"]["weight_decay_scope"] == "first"
    assert summary["bitops"] > 0 and summary["feature_bits"] < summary["fp32_feature_bits"] / 4
    assert summary["avg_feature_bits"] < 8 and summary["compression"] > 4


def test_cli_retrains_an_appnp_architecture_with_the_appnp_set_up(capsys, syn, tmp_path):
    path = tmp_path / "arch.json"
    write_architecture(_appnp(steps=2), path)
    code = cli.main(["train", "--arch", str(path), "--dataset", SYN, "--seeds", "1", "--epochs", "2", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    config = json.loads(out.strip().splitlines()[-1])["config"]
    assert config["weight_decay"] == 5e-3 and config["weight_decay_scope"] == "first"
    assert config["patience"] == TRAIN_DEFAULTS[("appnp", "node")]["patience"]


def test_saved_appnp_round_trips_and_infer_refuses(tmp_path, capsys, syn):
    from lpgnas.nn import load_model

    arch = _appnp(quant=_preset("smp-int4"), steps=3)
    _, model = train_node(arch, syn, seed=0, config=TrainConfig(epochs=2, chunk=2))
    folder = tmp_path / "m"
    save_model(folder, model, dict(in_dim=syn.num_features, num_classes=syn.num_classes, num_nodes=syn.num_nodes,
                                   row_normalize=False, dataset=SYN, split="random", seed=0))
    back, back_arch, _ = load_model(folder)
    assert back_arch == arch and float(back.propagation.mu[...]) == float(model.propagation.mu[...])
    x = jnp.asarray(syn.features, jnp.float32)
    ga = graph_arrays(syn.graph.senders, syn.graph.receivers, syn.num_nodes)
    np.testing.assert_allclose(np.asarray(back(x, ga)), np.asarray(model(x, ga)), rtol=1e-5, atol=1e-5)
    assert cli.main(["infer", "--model", str(folder), "--dataset", SYN, "--json"]) == 2
    err = capsys.readouterr().err
    assert "propagation" in err and "Traceback" not in err


def test_architecture_json_with_propagation_builds_the_same_model():
    arch = Architecture(layers=(LayerSpec(op="gcn", hidden=8), LayerSpec(op="gcn", hidden=3, activation="none")),
                        propagation=Propagation(steps=2, lam=1.0, eta=0.0))
    back = Architecture.from_json(json.loads(json.dumps(arch.to_json())))
    assert back == arch
    n, f = 24, 5
    _, _, ga = _graph(n)
    x = jax.random.normal(jax.random.key(0), (n, f))
    a = GNN(arch, f, 3, rngs=nnx.Rngs(0))
    b = GNN(back, f, 3, rngs=nnx.Rngs(0))
    np.testing.assert_array_equal(np.asarray(a(x, ga)), np.asarray(b(x, ga)))
