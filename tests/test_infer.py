"""Packed low-bit inference: agreement with the QAT evaluation, exactness where the integer path is
exact, per-node widths, bytes held, Pallas (interpret) against the reference, the ``infer`` command."""

import dataclasses
import json

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from lpgnas.arch import LayerSpec, baseline
from lpgnas.cli import main
from lpgnas.data import load_dataset, row_normalize
from lpgnas.errors import ConfigError
from lpgnas.infer import agreement, pack_model, qat_logits, run_packed
from lpgnas.kernels import MixedPacked, PackedMatrix
from lpgnas.nn import GNN, save_model
from lpgnas.quant import DegreeBits, Override, QuantConfig, QuantContext, QuantSpec
from lpgnas.train import TrainConfig, train_node

SYN = "synthetic:nodes=300,edges=3000,classes=3,features=16,seed=0"
_MODELS: dict = {}


@pytest.fixture(scope="module")
def syn():
    return load_dataset(SYN)


def _train(graph, arch, epochs=5):
    """Train briefly (cached per architecture: several tests share a model)."""
    key = (graph.name, graph.num_nodes, arch)
    if key not in _MODELS:
        q = arch.quant
        dq = None if q is None or q.dq is None else (q.dq.p_min, q.dq.p_max)
        _MODELS[key] = train_node(arch, graph, seed=0, config=TrainConfig(epochs=epochs, chunk=epochs, dq=dq))[1]
    return _MODELS[key]


def _gcn(preset_or_config, num_classes=3):
    q = QuantConfig.preset(preset_or_config) if isinstance(preset_or_config, str) else preset_or_config
    return dataclasses.replace(baseline("gcn", num_classes=num_classes), quant=q)


def _without(model, component, num_nodes):
    """The same model (state copied) with ``component`` left in full precision."""
    q = model.arch.quant
    q = dataclasses.replace(q, overrides=q.overrides + (Override(QuantSpec("fp32"), component=component),))
    twin = GNN(dataclasses.replace(model.arch, quant=q), model.layers[0].in_dim, model.num_classes,
               num_nodes=num_nodes, rngs=nnx.Rngs(0))
    state = nnx.state(twin)
    src = nnx.to_pure_dict(nnx.state(model))

    def copy(dst, s):
        if not isinstance(dst, dict):
            return s
        lookup = {str(a): b for a, b in s.items()}
        return {k: copy(v, lookup[str(k)]) for k, v in dst.items()}

    nnx.replace_by_pure_dict(state, copy(nnx.to_pure_dict(state), src))
    nnx.update(twin, state)
    return twin


def _packed_rows_nbytes(n_rows, n_cols, bits):
    """uint32 words of ``n_cols`` codes per row plus one float32 scale and zero point per row."""
    return n_rows * (-(-n_cols * bits // 32) * 4 + 8)


# -------------------------------------------------------------------------------------------------
# agreement with the QAT evaluation


def test_w8a8_agrees_with_qat_evaluation(syn):
    model = _train(syn, _gcn("w8a8"))
    packed = pack_model(model, syn)
    assert packed.approximated == ()
    assert [lp.path for lp in packed.layers] == ["messages", "messages"]  # the preset quantises messages
    logits, ref = run_packed(packed), qat_logits(model, syn)
    assert logits.shape == (syn.num_nodes, 3)
    assert agreement(logits, ref) >= 0.999
    np.testing.assert_allclose(np.asarray(logits), np.asarray(ref), atol=1e-4)


def test_cora_w4a8_agreement_and_bytes(data_root):
    cora = load_dataset("cora", data_root)
    cora = cora.with_features(row_normalize(cora.features))
    model = _train(cora, _gcn("w4a8", num_classes=7), epochs=20)
    packed = pack_model(model, cora)
    assert agreement(run_packed(packed), qat_logits(model, cora)) >= 0.999
    n, f = cora.num_nodes, cora.num_features
    mem = packed.memory()
    # 8-bit per-row input features; 4-bit weights with per-output-channel scales, stored transposed
    assert mem.packed_feature_bytes == _packed_rows_nbytes(n, f, 8)
    assert mem.fp32_feature_bytes == n * f * 4
    weights = _packed_rows_nbytes(16, f, 4) + _packed_rows_nbytes(7, 16, 4) + (16 + 7) * 4  # + biases
    assert mem.packed_weight_bytes == weights
    assert mem.fp32_weight_bytes == (f * 16 + 16 * 7 + 16 + 7) * 4
    assert packed.layers[0].weights["kernel"].transposed


def _exact_config(bits=4):
    node = dict(signed=False, momentum=0.1)
    return QuantConfig(
        default=QuantSpec("fp32"),
        weight=QuantSpec("affine", 8, signed=True, granularity="column"),
        overrides=(Override(QuantSpec("affine", bits, granularity="row", signed=False), component="input"),
                   Override(QuantSpec("affine", bits, **node), component="linear"),
                   Override(QuantSpec("affine", 8, **node), component="aggregate"),
                   Override(QuantSpec("affine", 8, **node), component="output")),
    )


def test_exact_integer_path_reproduces_predictions_and_bytes(syn):
    model = _train(syn, _gcn(_exact_config(bits=4)))
    packed = pack_model(model, syn)
    assert [lp.path for lp in packed.layers] == ["xw", "xw"] and [lp.bits for lp in packed.layers] == [4, 4]
    logits, ref = np.asarray(run_packed(packed)), np.asarray(qat_logits(model, syn))
    np.testing.assert_array_equal(logits.argmax(-1), ref.argmax(-1))
    np.testing.assert_allclose(logits, ref, rtol=1e-6, atol=1e-6)
    # the stored weight dequantises to the fake-quantised weight bit for bit
    layer = model.layers[0]
    np.testing.assert_array_equal(np.asarray(packed.layers[0].weights["kernel"].value()),
                                  np.asarray(layer.q_weight(layer.kernel[...], QuantContext())))
    # INT4 features: N * F / 2 bytes of codes plus a float32 scale and zero point per node
    feats = packed.features.packed
    assert isinstance(feats, PackedMatrix) and feats.bits == 4
    real = sum(int(a.nbytes) for a in (feats.words, feats.scale, feats.zero_point))
    n, f = syn.num_nodes, syn.num_features
    assert packed.memory().packed_feature_bytes == real == n * f // 2 + n * 8
    assert packed.memory().fp32_feature_bytes == n * f * 4


def test_per_node_widths_and_attention(syn):
    """A2Q per-node widths on input and XW (mixed groups), SGQuant degree buckets on the messages."""
    a2q = QuantSpec("a2q", 4, signed=True, min_bits=1.0, max_bits=8.0)
    config = QuantConfig(default=QuantSpec("fp32"), weight=QuantSpec("affine", 8, granularity="column"),
                         overrides=(Override(a2q, component="input"), Override(a2q, component="linear"),
                                    Override(QuantSpec("sgquant", 8, signed=False, observer="ema", momentum=0.1),
                                             component="message")),
                         degree_bits=DegreeBits.sgquant())
    arch = dataclasses.replace(baseline("gat", num_classes=3, heads=2, hidden=4), quant=config)
    model = _untrained(arch)  # untrained: the widths are set below, the ranges come from the data
    rng = np.random.default_rng(0)
    for layer in model.layers:  # spread the learned widths over 1..8 bits
        for q in (layer.q_input, layer.q_linear):
            q.bitwidth[...] = jnp.asarray(rng.integers(1, 9, size=q.bitwidth[...].shape).astype(np.float32))
    exact = pack_model(model, syn)
    assert isinstance(exact.features.mixed, MixedPacked) and exact.features.mixed.group_bits == (1, 2, 4, 8)
    assert exact.layers[0].path == "messages" and exact.layers[0].groups is not None  # degree buckets per edge
    ref = np.asarray(qat_logits(model, syn))
    np.testing.assert_allclose(np.asarray(run_packed(exact)), ref, atol=1e-5)
    fused = pack_model(model, syn, messages="fused")
    assert fused.approximated == ("layers[0].message", "layers[1].message")
    assert fused.layers[0].path == "xw" and fused.layers[0].groups.group_bits == (1, 2, 4, 8)
    # without the message rounding the fused path is the model's arithmetic
    twin = np.asarray(qat_logits(_without(model, "message", syn.num_nodes), syn))
    np.testing.assert_array_equal(np.asarray(run_packed(fused)).argmax(-1), twin.argmax(-1))


@pytest.mark.parametrize("messages", ["exact", "fused"])
def test_interpret_pallas_equals_reference(syn, messages):
    packed = pack_model(_train(syn, _gcn("w8a8")), syn, messages=messages)
    ref = np.asarray(run_packed(packed, backend="reference"))
    pallas = np.asarray(run_packed(packed, backend="pallas", interpret=True))
    np.testing.assert_allclose(pallas, ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(pallas.argmax(-1), ref.argmax(-1))


# -------------------------------------------------------------------------------------------------
# refusals


def _untrained(arch, n=300, f=16):
    return GNN(arch, f, 3, num_nodes=n, rngs=nnx.Rngs(0))


@pytest.mark.parametrize("arch, field, words", [
    (dataclasses.replace(baseline("sage", num_classes=3), layers=(
        LayerSpec(op="sage", hidden=8, aggregator="max"), LayerSpec(op="sage", hidden=3, activation="none"))),
     "layers[0].aggregator", "max"),
    (_gcn(QuantConfig(default=QuantSpec("fp32"), overrides=(
        Override(QuantSpec("affine", 8, granularity="column"), component="linear"),))), "layers[0].linear", "column"),
    (_gcn(QuantConfig(default=QuantSpec("fp32"), overrides=(
        Override(QuantSpec("affine", 16, signed=False), component="linear"),))), "layers[0].linear", "16-bit"),
    (baseline("gcn", task="graph", num_layers=1, hidden=8), "task", "graph-level"),
    (dataclasses.replace(baseline("appnp", num_classes=3), quant=QuantConfig.preset("smp-int4")), "propagation",
     "propagation blocks"),
    (dataclasses.replace(baseline("appnp", num_classes=3), propagation=None), "layers[0].op", "linear"),
])
def test_unsupported_models_are_refused(syn, arch, field, words):
    with pytest.raises(ConfigError, match=words) as info:
        pack_model(_untrained(arch), syn)
    assert info.value.field == field


def test_graph_mismatch_is_refused(syn):
    with pytest.raises(ConfigError, match="input features"):
        pack_model(_untrained(_gcn("int8"), f=8), syn)
    with pytest.raises(ConfigError, match="built for 200 nodes"):
        pack_model(_untrained(_gcn("a2q"), n=200), syn)


# -------------------------------------------------------------------------------------------------
# the infer command


def _saved(tmp_path, syn):
    folder = tmp_path / "model"
    save_model(folder, _train(syn, _gcn("w8a8")), dict(in_dim=16, num_classes=3, num_nodes=syn.num_nodes,
                                                       row_normalize=False, dataset=SYN, split="random", seed=0))
    return folder


def test_cli_infer_json(tmp_path, capsys, syn):
    folder = _saved(tmp_path, syn)
    assert main(["infer", "--model", str(folder), "--dataset", SYN, "--repeats", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in ("test_acc", "val_acc", "packed_feature_bytes", "fp32_feature_bytes", "packed_weight_bytes",
                "fp32_weight_bytes", "latency_ms", "compile_seconds", "backend", "agreement", "fp32_latency_ms"):
        assert key in out, key
    assert out["backend"] == "reference" and out["agreement"] >= 0.999 and out["split"] == "random"
    assert out["packed_feature_bytes"] == _packed_rows_nbytes(300, 16, 8)
    assert out["fp32_feature_bytes"] == 300 * 16 * 4 and out["latency_ms"] > 0
    assert 0 <= out["test_acc"] <= 100 and abs(out["test_acc"] - out["qat_test_acc"]) <= 1.0


@pytest.mark.parametrize("case, named", [
    ("missing", "nope"),
    ("features", "--dataset"),
    ("nodes", "--dataset"),
    ("repeats", "--repeats"),
])
def test_cli_infer_bad_inputs(tmp_path, capsys, syn, case, named):
    folder = tmp_path / "nope" if case == "missing" else _saved(tmp_path, syn)
    dataset = {"features": SYN.replace("features=16", "features=8"),
               "nodes": SYN.replace("nodes=300", "nodes=200")}.get(case, SYN)
    argv = ["infer", "--model", str(folder), "--dataset", dataset, "--json"]
    if case == "repeats":
        argv += ["--repeats", "0"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert named in err and "Traceback" not in err
