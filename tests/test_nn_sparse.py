"""Row-compact sparse features (``SparseRows``): construction, the compact product, and layers and
models that give the dense results (outputs, weight gradients, quantiser state) on them."""


import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.experimental import sparse as jsparse

from lpgnas import quant as Q
from lpgnas.arch import Architecture, LayerSpec
from lpgnas.nn import GNN, GNNLayer, SparseRows, dropout, graph_arrays, rows_matmul, sparse_rows
from lpgnas.nn import _sparse

N, F = 40, 64


def _bow(n=N, f=F, max_nnz=9, seed=0, signed=True):
    """A bag-of-words-like matrix: 0..max_nnz non-zeros per row (one empty row), mixed signs."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n, f), np.float32)
    for i in range(n):  # test data only
        k = 0 if i == 3 else rng.integers(1, max_nnz + 1)
        cols = rng.choice(f, size=k, replace=False)
        vals = rng.uniform(0.05, 1.0, size=k)
        if signed:
            vals *= rng.choice([-1.0, 1.0], size=k)
        x[i, cols] = vals
    x[0] = 0.0
    x[0, :max_nnz] = 0.25  # a widest row, all equal values
    return x


def _graph(n=N, seed=0):
    rng = np.random.default_rng(seed)
    a = np.triu(rng.random((n, n)) < 0.12, 1)
    a = a | a.T
    r, s = np.nonzero(a)
    return graph_arrays(s.astype(np.int32), r.astype(np.int32), n)


# --------------------------------------------------------------------------------------------------
# construction and the compact product


def test_sparse_rows_layout_and_round_trip():
    x = _bow()
    sr = sparse_rows(x)
    assert isinstance(sr, SparseRows) and sr.shape == (N, F)
    widest = int((x != 0).sum(1).max())
    assert sr.width % 8 == 0 and widest + 1 <= sr.width <= F
    assert sr.values.dtype == jnp.float32 and sr.cols.dtype == jnp.int32
    np.testing.assert_array_equal(np.asarray(sr.todense()), x)
    v, c = np.asarray(sr.values), np.asarray(sr.cols)
    counts = (x != 0).sum(1)
    for i in (0, 3, 7):  # non-zeros first (ascending columns), then (0, col 0) padding
        k = counts[i]
        np.testing.assert_array_equal(c[i, :k], np.nonzero(x[i])[0])
        np.testing.assert_array_equal(v[i, :k], x[i, np.nonzero(x[i])[0]])
        assert np.all(v[i, k:] == 0) and np.all(c[i, k:] == 0)


@pytest.mark.parametrize("x, why", [
    (np.ones((4, 6), np.float32), "every row dense"),
    (np.concatenate([np.ones((1, 64), np.float32), np.zeros((3, 64), np.float32)]), "one row dense"),
    (np.repeat([[1.0, 2.0, 3.0, 0, 0, 0, 0, 0]], 4, axis=0).astype(np.float32), "rows too wide: K = 8 > F / 4"),
    (np.zeros((3,), np.float32), "not 2-D"),
    (np.zeros((0, 5), np.float32), "empty"),
])
def test_sparse_rows_refuses(x, why):
    assert sparse_rows(x) is None, why


def test_sparse_rows_width_cap_and_threshold():
    x = np.zeros((5, 10), np.float32)
    x[:, 0] = 1.0
    x[1, :4] = 2.0  # widest row: 4 non-zeros -> K = min(8, F) = 8
    assert sparse_rows(x) is None  # 8 > 0.25 * 10
    sr = sparse_rows(x, max_width_fraction=1.0)
    assert sr.width == 8
    np.testing.assert_array_equal(np.asarray(sr.todense()), x)


@pytest.mark.parametrize("d, budget", [(6, None), (16, 64)])  # 64: forces the scan over blocks
def test_rows_matmul_matches_dense_with_gradients(d, budget, monkeypatch):
    if budget is not None:
        monkeypatch.setattr(_sparse, "_GATHER_BUDGET", budget)
    x = _bow(max_nnz=20, f=96)
    sr = sparse_rows(x)
    assert sr.width == 24 and (budget is None or _sparse._slots_per_step(N, sr.width, d) == 8)
    w = jax.random.normal(jax.random.key(0), (96, d))
    r = jax.random.normal(jax.random.key(1), (N, d))
    np.testing.assert_allclose(rows_matmul(sr, w), x @ np.asarray(w), rtol=1e-5, atol=1e-5)
    g_rows = jax.grad(lambda w: jnp.sum(jnp.tanh(rows_matmul(sr, w)) * r))(w)
    g_dense = jax.grad(lambda w: jnp.sum(jnp.tanh(jnp.asarray(x) @ w) * r))(w)
    np.testing.assert_allclose(g_rows, g_dense, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="does not match"):
        rows_matmul(sr, w[:-1])


def test_sparse_rows_is_a_pytree_through_jit():
    sr = sparse_rows(_bow())
    leaves, treedef = jax.tree_util.tree_flatten(sr)
    assert len(leaves) == 3
    doubled = jax.jit(lambda s: s.with_values(2.0 * s.values))(sr)
    assert isinstance(doubled, SparseRows) and doubled.shape == sr.shape
    np.testing.assert_array_equal(np.asarray(doubled.todense()), 2.0 * _bow())


def test_dropout_on_rows_keeps_padding_zero_and_scales_kept_values():
    sr = sparse_rows(_bow())
    out = dropout(sr, 0.5, jax.random.key(0), True)
    v, v0 = np.asarray(out.values), np.asarray(sr.values)
    assert np.all(v[v0 == 0] == 0)
    kept = (v != 0)
    assert 0.3 < kept.sum() / (v0 != 0).sum() < 0.7
    np.testing.assert_allclose(v[kept], 2.0 * v0[kept], rtol=1e-6)
    assert dropout(sr, 0.5, jax.random.key(0), False) is sr


# --------------------------------------------------------------------------------------------------
# the eligibility rule


@pytest.mark.parametrize("spec, exact", [
    (Q.QuantSpec("fp32"), True),
    (Q.QuantSpec("affine", 32), True),
    (Q.QuantSpec("fixed", 8), True),
    (Q.QuantSpec("fixed", 6, signed=False, granularity="column"), True),
    (Q.QuantSpec("affine", 8, signed=False, granularity="row"), True),
    (Q.QuantSpec("affine", 4), True),  # tensor, EMA
    (Q.QuantSpec("affine", 4, observer="minmax"), True),
    (Q.QuantSpec("affine", 4, observer="current"), True),
    (Q.QuantSpec("affine", 8, observer="percentile"), False),
    (Q.QuantSpec("affine", 8, granularity="column"), False),
    (Q.QuantSpec("dq", 8), False),  # percentile by default
    (Q.QuantSpec("dq", 8, observer="ema"), True),
    (Q.QuantSpec("sgquant", 8), True),  # row-average observer
    (Q.QuantSpec("lsq", 4), False),
    (Q.QuantSpec("binary"), False),
    (Q.QuantSpec("ternary"), False),
    (Q.QuantSpec("alpha", 4, granularity="row"), False),
    (Q.QuantSpec("a2q", 4), True),  # node/edge rows: per-row step and bits, zero point 0
    (Q.QuantSpec("a2q", 4, signed=False, local_gradient=False), True),
])
def test_row_compact_exact_table(spec, exact):
    assert Q.row_compact_exact(spec) is exact
    if not spec.is_fp32:
        plan = Q.make_plan(spec, "node", (N, F))
        assert Q.row_compact_exact(plan) is exact
        quantizer = Q.make_quantizer(Q.QuantConfig(default=spec), 0, "input", kind="node", shape=(N, F),
                                     rngs=nnx.Rngs(0))
        assert Q.row_compact_exact(quantizer) is exact


def test_row_compact_exact_identity_and_unknown():
    assert Q.row_compact_exact(Q.identity) and Q.row_compact_exact(None)
    assert not Q.row_compact_exact(lambda x, ctx: x)  # no plan: no claim


@pytest.mark.parametrize("kind, exact", [("node", True), ("edge", True), ("weight", False)])
def test_row_compact_exact_a2q_by_kind(kind, exact):
    assert Q.row_compact_exact(Q.QuantSpec("a2q", 4), kind) is exact  # weights: one statistic per column


@pytest.mark.parametrize("preset", Q.PRESETS)
def test_every_preset_input_is_compact(preset):
    cfg = Q.QuantConfig.preset(preset)
    assert Q.row_compact_exact(cfg.spec(0, "input"))


# --------------------------------------------------------------------------------------------------
# the input quantiser itself: bit for bit


def _distinct_preset_inputs():
    """``(preset, input spec, degree bits)`` of each distinct compact preset input (int8, w8a8 and
    w4a8 share one, ...); Degree-Quant protection is exercised in every case below."""
    seen, out = set(), []
    for p in Q.PRESETS:
        cfg = Q.QuantConfig.preset(p)
        key = (cfg.spec(0, "input"), cfg.degree_bits)
        if p != "fp32" and key not in seen:
            seen.add(key)
            out.append((p, *key))
    return out


_EXACT_INPUTS = _distinct_preset_inputs() + [
    ("tensor-ema", Q.QuantSpec("affine", 4, signed=False), None),
    ("tensor-minmax-signed", Q.QuantSpec("affine", 3, observer="minmax"), None),
    ("sgquant-rowavg", Q.QuantSpec("sgquant", 4, signed=False), Q.DegreeBits((2, 5), (8, 4, 2))),
    ("fixed", Q.QuantSpec("fixed", 8, frac_bits=5), None),
]


@pytest.mark.parametrize("name, spec, degree_bits", _EXACT_INPUTS, ids=[e[0] for e in _EXACT_INPUTS])
def test_input_quantiser_on_rows_is_bit_exact(name, spec, degree_bits):
    """Values at the non-zeros, zeros elsewhere, observer state and input gradients: identical."""
    assert Q.row_compact_exact(spec), name
    cfg = Q.QuantConfig(default=spec, degree_bits=degree_bits)
    x = _bow(seed=4)
    sr = sparse_rows(x)
    rng = np.random.default_rng(9)
    ctx = Q.QuantContext(training=True, protect=jnp.asarray(rng.random(N) < 0.3),
                         degree=jnp.asarray(rng.integers(0, 8, N), jnp.int32))
    ct = jnp.asarray(rng.normal(size=(N, F)).astype(np.float32))
    ct_rows = ct[jnp.arange(N)[:, None], sr.cols]
    results = []
    q = Q.make_quantizer(cfg, 0, "input", kind="node", shape=(N, F), rngs=nnx.Rngs(0))
    for feats, cot in ((jnp.asarray(x), ct), (sr.values, ct_rows)):
        state0 = q.state()
        y, vjp, state = jax.vjp(lambda v: Q.quant_apply(q.plan, state0, v, ctx), feats, has_aux=True)
        y2, state = Q.quant_apply(q.plan, state, feats, ctx)  # a second training step (running statistics)
        evaluated, _ = Q.quant_apply(q.plan, state, feats, ctx._replace(training=False))
        results.append((y, vjp(cot)[0], y2, evaluated, state))
    (yd, gd, y2d, ed, sd), (yr, gr, y2r, er, srs) = results
    mask = np.asarray(sr.values) != 0
    cols = np.asarray(sr.cols)
    rows = np.broadcast_to(np.arange(N)[:, None], cols.shape)
    for dense, rowwise in ((yd, yr), (y2d, y2r), (ed, er)):
        dense, rowwise = np.asarray(dense), np.asarray(rowwise)
        np.testing.assert_array_equal(rowwise[mask], dense[rows[mask], cols[mask]])
        assert np.all(rowwise[~mask] == 0)
        np.testing.assert_array_equal(np.asarray(sr.with_values(jnp.asarray(rowwise)).todense()), dense)
    np.testing.assert_array_equal(np.asarray(gr)[mask], np.asarray(gd)[rows[mask], cols[mask]])
    assert sd.keys() == srs.keys()
    for k in sd:
        np.testing.assert_array_equal(np.asarray(sd[k]), np.asarray(srs[k]), err_msg=k)


# --------------------------------------------------------------------------------------------------
# layers: dense x and SparseRows x agree


def _layer_run(spec, quant, x, ga, protect, in_dim=F, seed=0):
    layer = GNNLayer(spec, in_dim, quant=quant, num_nodes=N, rngs=nnx.Rngs(seed))
    graphdef, params, rest = nnx.split(layer, nnx.Param, ...)
    params, rest = nnx.as_pure(params), nnx.as_pure(rest)  # plain arrays: they cross the grad trace
    r = jax.random.normal(jax.random.key(7), (N, spec.out_dim()))

    def loss(params):
        m = nnx.merge(graphdef, params, rest)
        out = m(x, ga, training=True, protect=protect)
        return jnp.sum(jnp.tanh(out) * r), (out, nnx.as_pure(nnx.state(m, nnx.Not(nnx.Param))))

    (_, (out, state)), grads = jax.value_and_grad(loss, has_aux=True)(params)
    layer = nnx.merge(graphdef, params, state)
    evaluated = layer(x, ga, training=False)  # evaluation with the updated observer state
    return out, grads, state, evaluated


def _assert_same(a, b, what, rtol=2e-5):
    """Integer leaves equal; float leaves equal to float32 rounding (``atol`` scaled by the largest
    magnitude in the tree: a gradient that is zero in exact arithmetic, e.g. GIN's bias before batch
    norm, is the rounding noise of its terms)."""
    la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    assert len(la) == len(lb), what
    la, lb = [np.asarray(u) for u in la], [np.asarray(v) for v in lb]
    scale = max((float(np.max(np.abs(v), initial=0.0)) for v in lb if v.dtype.kind == "f"), default=0.0)
    for u, v in zip(la, lb):
        if u.dtype.kind in "iub":
            np.testing.assert_array_equal(u, v, err_msg=what)
        else:
            np.testing.assert_allclose(u, v, rtol=rtol, atol=2e-6 + 1e-5 * scale, err_msg=what)


_OPS = {
    "gcn": LayerSpec(op="gcn", hidden=8),
    "gat": LayerSpec(op="gat", hidden=4, heads=2, attention="gat"),
    "sage": LayerSpec(op="sage", hidden=8, attention="const", aggregator="mean"),
    "gin": LayerSpec(op="gin", hidden=8, attention="const"),
}


def _check_layer(spec, quant, monkeypatch, *, expect_compact):
    x = _bow()
    sr = sparse_rows(x)
    ga = _graph()
    protect = None
    if quant is not None and quant.dq is not None:  # Degree-Quant: some rows bypass the quantisers
        protect = jnp.asarray(np.random.default_rng(5).random(N) < 0.3)
    dense = _layer_run(spec, quant, jnp.asarray(x), ga, protect)
    if expect_compact:  # the compact path never densifies (the identity skip does, by design)
        monkeypatch.setattr(SparseRows, "todense", lambda self: pytest.fail("densified"))
    compact = _layer_run(spec, quant, sr, ga, protect)
    for name, a, b in zip(("output", "weight gradients", "state after training", "evaluation"), dense, compact):
        _assert_same(a, b, name)
    return dense


def _input_and_weight(cfg: Q.QuantConfig | None) -> Q.QuantConfig | None:
    """``cfg``'s input and weight quantisers, every other component in full precision.

    The compact product differs from the dense GEMM by float32 rounding (summation order); a
    quantiser further down can turn such a 1-ulp difference into one quantisation step when a value
    sits on a rounding tie (quantised inputs times quantised weights make ties common). With the
    later components in full precision the comparison stays tight.
    """
    if cfg is None:
        return None
    fp32 = Q.QuantSpec("fp32")
    return Q.QuantConfig(default=fp32, weight=cfg.weight or cfg.default,
                         overrides=(Q.Override(cfg.spec(0, "input"), component="input"),),
                         degree_bits=cfg.degree_bits, dq=cfg.dq, name=cfg.name)


# the compact presets on gcn's input path (x @ W) and sage's (x @ W and the root term x @ R); gat and
# gin share gcn's input path and run on a sample (the suite's time budget: most of the time is the
# first eager compile of each quantiser's ops). smp-int2/smp-int4 have int4's input quantiser (their
# learned-range weights are not on the input path); a2q (per-row learned step and bits, Local
# Gradient over the dense row width) on gcn only.
_COMPACT_PRESETS = [p for p in Q.PRESETS if p not in ("a2q", "smp-int2", "smp-int4")]
_LAYER_CASES = ([(p, op) for op in ("gcn", "sage") for p in _COMPACT_PRESETS]
                + [("dq-int8", "gat"), ("w8a8", "gin"), ("a2q", "gcn")])


@pytest.mark.parametrize("preset, op", _LAYER_CASES)
def test_layer_dense_and_rows_agree(preset, op, monkeypatch):
    quant = _input_and_weight(None if preset == "fp32" else Q.QuantConfig.preset(preset))
    out, grads, _, _ = _check_layer(_OPS[op], quant, monkeypatch, expect_compact=True)
    assert np.all(np.isfinite(np.asarray(out)))
    assert float(jnp.abs(grads["kernel"]).sum()) > 0


@pytest.mark.parametrize("input_spec", [
    Q.QuantSpec("lsq", 4),
    Q.QuantSpec("dq", 8),  # percentile
    Q.QuantSpec("affine", 8, signed=False, granularity="column"),
    Q.QuantSpec("binary"),
])
def test_ineligible_input_quantisers_fall_back_to_dense(input_spec, monkeypatch):
    quant = Q.QuantConfig(default=Q.QuantSpec("fp32"), overrides=(Q.Override(input_spec, component="input"),))
    assert not Q.row_compact_exact(input_spec)
    _check_layer(_OPS["gcn"], quant, monkeypatch, expect_compact=False)


@pytest.mark.parametrize("input_spec", [
    Q.QuantSpec("affine", 4, signed=False, observer="minmax"),
    Q.QuantSpec("affine", 8, signed=True),
    Q.QuantSpec("sgquant", 4, signed=False),
    Q.QuantSpec("fixed", 8, frac_bits=6),
])
def test_tensor_observers_give_the_dense_state(input_spec, monkeypatch):
    quant = Q.QuantConfig(default=Q.QuantSpec("fp32"), weight=Q.QuantSpec("affine", 4),
                          overrides=(Q.Override(input_spec, component="input"),))
    _, _, state, _ = _check_layer(_OPS["gcn"], quant, monkeypatch, expect_compact=True)
    if input_spec.method != "fixed":  # the input range was recorded (and matched the dense one)
        assert int(state["q_input"]["count"]) == 1
        assert float(state["q_input"]["hi"]) > 0 and float(state["q_input"]["lo"]) < 0


@pytest.mark.parametrize("skip_dim", [F, 8])  # identity skip (densifies), projected skip (compact)
def test_skip_connections(skip_dim, monkeypatch):
    spec = LayerSpec(op="gcn", hidden=skip_dim, skip=True)
    quant = _input_and_weight(Q.QuantConfig.preset("int8"))
    _check_layer(spec, quant, monkeypatch, expect_compact=skip_dim != F)


def test_model_train_step_dense_and_rows_agree():
    """A training step of a two-layer model in the trainer's pattern (pure states in, pure states
    out): loss, gradients, new state and the evaluation logits agree."""
    arch = Architecture(layers=(LayerSpec(op="gcn", hidden=8), LayerSpec(op="sage", hidden=4, attention="const",
                                                                      aggregator="mean", activation="none")),
                        input_dropout=0.5, quant=_input_and_weight(Q.QuantConfig.preset("w4a8"))).validate()
    x = _bow()
    ga = _graph()
    model = GNN(arch, F, 4, num_nodes=N, rngs=nnx.Rngs(0))
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    params, rest = nnx.as_pure(params), nnx.as_pure(rest)
    labels = jnp.asarray(np.arange(N) % 4)

    def step(params, rest, feats):
        def loss(params):
            m = nnx.merge(graphdef, params, rest)
            logits = m(feats, ga, training=True)  # no key: no dropout, so both inputs see the same model
            xent = -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), labels[:, None], axis=1))
            return xent, nnx.as_pure(nnx.state(m, nnx.Not(nnx.Param)))

        (value, new_rest), grads = jax.value_and_grad(loss, has_aux=True)(params)
        return value, grads, new_rest, nnx.merge(graphdef, params, new_rest)(feats, ga)

    sr = sparse_rows(x)
    dense, rows = step(params, rest, jnp.asarray(x)), step(params, rest, sr)
    _assert_same(dense, rows, "model step")
    # with a key, input dropout draws on the [N, K] values and still trains
    m = nnx.merge(graphdef, params, rest)
    out = m(sr, ga, training=True, key=jax.random.key(0))
    assert out.shape == (N, 4) and bool(jnp.all(jnp.isfinite(out)))


def _bcoo_of(x):
    rows, cols = np.nonzero(x)
    return jsparse.BCOO((jnp.asarray(x[rows, cols]), jnp.asarray(np.stack([rows, cols], 1).astype(np.int32))),
                        shape=x.shape, indices_sorted=True, unique_indices=True)


def test_bcoo_inputs_are_unchanged():
    x = _bow()
    ga = _graph()
    for quant in (None, _input_and_weight(Q.QuantConfig.preset("int8"))):
        outs = [GNNLayer(_OPS["sage"], F, quant=quant, num_nodes=N, rngs=nnx.Rngs(0))(f, ga)
                for f in (_bcoo_of(x), jnp.asarray(x), sparse_rows(x))]
        _assert_same(outs[0], outs[1], "bcoo vs dense")
        _assert_same(outs[2], outs[1], "rows vs dense")


def test_to_bcoo_rebuilds_the_non_zeros_exactly_under_jit():
    x = _bow()
    sr = sparse_rows(x)
    want = _bcoo_of(x)
    got = jax.jit(lambda s: s.with_values(3.0 * s.values).to_bcoo())(sr)
    assert got.shape == want.shape and got.indices_sorted and got.unique_indices
    np.testing.assert_array_equal(np.asarray(got.indices), np.asarray(want.indices))
    np.testing.assert_array_equal(np.asarray(got.data), 3.0 * np.asarray(want.data))


_SMALL_SPACE = """
schema: lpgnas.space/v1
name: small
task: node
num_layers: [2]
layer:
  attention: [const]
  aggregator: [add]
  activation: [none]
  hidden: [3]
  heads: [1]
  skip: [false]
quant:
  input: {bits: [2, 32], formats: [affine, lsq]}
"""


def test_supernet_takes_rows_as_its_bcoo():
    from lpgnas.search_spaces import parse_space_yaml
    from lpgnas.supernet import Relax, Supernet

    x = _bow()
    ga = _graph()
    outs = []
    for feats in (_bcoo_of(x), sparse_rows(x)):
        net = Supernet(parse_space_yaml(_SMALL_SPACE), F, 3, num_nodes=N, rngs=nnx.Rngs(params=0))
        outs.append(net(feats, ga, Relax(1.0), training=True, key=jax.random.key(1)))
    np.testing.assert_array_equal(np.asarray(outs[0]), np.asarray(outs[1]))


# --------------------------------------------------------------------------------------------------
# the fusion barrier of quantised tensors that gathers read


@pytest.mark.parametrize("shape", [(5,), (7, 3), (4, 2, 3)])
def test_materialize_is_an_exact_copy_both_ways(shape):
    from lpgnas.nn._parts import materialize as _materialize

    x = jax.random.normal(jax.random.key(0), shape)
    ct = jax.random.normal(jax.random.key(1), shape)
    q = Q.make_quantizer(Q.QuantConfig(default=Q.QuantSpec("affine", 4)), 0, "linear", kind="node",
                         shape=shape, rngs=nnx.Rngs(0))
    y, vjp = jax.vjp(lambda v: _materialize(v, q), x)
    np.testing.assert_array_equal(np.asarray(y), np.asarray(x))
    np.testing.assert_array_equal(np.asarray(vjp(ct)[0]), np.asarray(ct))
    jitted = jax.jit(jax.grad(lambda v: jnp.sum(_materialize(v, q)[jnp.asarray([0, 0, 1])] * 2.0)))(x)
    expect = np.zeros(shape, np.float32)
    expect[0] = 4.0
    expect[1] = 2.0
    np.testing.assert_array_equal(np.asarray(jitted), expect)
    assert _materialize(x, Q.identity) is x
