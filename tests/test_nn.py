"""Message passing primitives and layers against dense numpy references."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.experimental import sparse as jsparse

from lpgnas.arch import ATTENTIONS, Architecture, LayerSpec, baseline
from lpgnas.nn import GNN, GNNLayer, aggregate, dropout, graph_arrays, insert_self_loops, segment_softmax


def _random_graph(n=12, p=0.3, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.random((n, n)) < p
    a = np.triu(a, 1)
    a = a | a.T
    r, s = np.nonzero(a)  # row-major: sorted by receiver r
    return s.astype(np.int32), r.astype(np.int32), a


def test_insert_self_loops_keeps_receiver_order_and_adds_one_loop_per_node():
    s, r, a = _random_graph()
    n = a.shape[0]
    ls, lr, lw = insert_self_loops(s, r, n)
    assert ls.shape == (s.shape[0] + n,)
    assert np.all(np.diff(lr) >= 0)
    loops = ls == lr
    assert loops.sum() == n and set(ls[loops]) == set(range(n))
    np.testing.assert_array_equal(np.sort(ls[~loops] * n + lr[~loops]), np.sort(s * n + r))
    np.testing.assert_array_equal(lw, np.ones_like(lw))


def test_insert_self_loops_rejects_unsorted():
    with pytest.raises(ValueError, match="sorted"):
        insert_self_loops(np.array([0, 1]), np.array([1, 0]), 2)


@pytest.mark.parametrize("kind", ["add", "mean", "max"])
def test_aggregate_matches_dense(kind):
    s, r, a = _random_graph(n=10, p=0.25, seed=3)
    n = a.shape[0]
    x = np.random.default_rng(0).normal(size=(n, 4)).astype(np.float32)
    out = np.asarray(aggregate(jnp.asarray(x[s]), jnp.asarray(r), n, kind))
    for i in range(n):
        nb = np.nonzero(a[i])[0]
        if len(nb) == 0:
            np.testing.assert_array_equal(out[i], 0.0)
            continue
        ref = {"add": x[nb].sum(0), "mean": x[nb].mean(0), "max": x[nb].max(0)}[kind]
        np.testing.assert_allclose(out[i], ref, rtol=1e-5, atol=1e-6)


def test_segment_softmax_normalises_each_receiver():
    s, r, a = _random_graph(n=9, seed=4)
    ls, lr, _ = insert_self_loops(s, r, 9)
    logits = jnp.asarray(np.random.default_rng(1).normal(size=(ls.shape[0], 3)).astype(np.float32))
    p = segment_softmax(logits, jnp.asarray(lr), 9)
    sums = jax.ops.segment_sum(p, jnp.asarray(lr), 9)
    np.testing.assert_allclose(np.asarray(sums), 1.0, rtol=1e-5)


def _ga(seed=0, n=12):
    s, r, a = _random_graph(n=n, seed=seed)
    return graph_arrays(s, r, n), a


def test_gcn_layer_equals_normalised_adjacency_product():
    ga, a = _ga()
    n = a.shape[0]
    x = np.random.default_rng(2).normal(size=(n, 5)).astype(np.float32)
    layer = GNNLayer(LayerSpec(op="gcn", hidden=3, activation="none"), 5, rngs=nnx.Rngs(0))
    out = np.asarray(layer(jnp.asarray(x), ga))
    a_hat = a.astype(np.float64) + np.eye(n)
    d = a_hat.sum(1)
    norm = a_hat / np.sqrt(np.outer(d, d))
    ref = norm @ x @ np.asarray(layer.kernel[...]) + np.asarray(layer.bias[...])
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-5)


def test_sage_layer_equals_mean_of_neighbours_plus_root():
    ga, a = _ga(seed=5)
    n = a.shape[0]
    x = np.random.default_rng(3).normal(size=(n, 4)).astype(np.float32)
    layer = GNNLayer(LayerSpec(op="sage", hidden=2, aggregator="mean", attention="const"), 4, rngs=nnx.Rngs(1))
    out = np.asarray(layer(jnp.asarray(x), ga))
    deg = np.maximum(a.sum(1, keepdims=True), 1)
    ref = (a @ x) / deg @ np.asarray(layer.kernel[...]) + x @ np.asarray(layer.root[...]) \
        + np.asarray(layer.bias[...])
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("attention,aggregator",
                         [(att, ("add", "mean", "max")[i % 3]) for i, att in enumerate(ATTENTIONS)])
def test_generic_attention_layer_shapes_and_gradients(attention, aggregator):
    ga, a = _ga(seed=7)
    spec = LayerSpec(op="attn", hidden=4, heads=2, attention=attention, aggregator=aggregator, skip=True)
    layer = GNNLayer(spec, 6, rngs=nnx.Rngs(0))
    x = jnp.asarray(np.random.default_rng(0).normal(size=(12, 6)).astype(np.float32))
    out = layer(x, ga)
    assert out.shape == (12, 8)
    graphdef, params = nnx.split(layer, nnx.Param)
    grads = jax.grad(lambda p: jnp.sum(nnx.merge(graphdef, p)(x, ga) ** 2))(params)
    leaves = jax.tree_util.tree_leaves(grads)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in leaves)
    assert float(jnp.abs(grads["kernel"][...]).sum()) > 0


def _attn_layer(attention, aggregator, seed=0):
    spec = LayerSpec(op="attn", hidden=3, heads=2, attention=attention, aggregator=aggregator)
    return GNNLayer(spec, 5, rngs=nnx.Rngs(seed))


@pytest.mark.parametrize("attention", [a for a in ATTENTIONS if a not in ("const", "gcn")])
def test_softmax_attention_mean_is_its_add(attention):
    # softmax coefficients sum to 1 per receiver: the coefficient-weighted mean is their sum
    ga, _ = _ga(seed=2)
    x = jnp.asarray(np.random.default_rng(4).normal(size=(12, 5)).astype(np.float32))
    out = {agg: np.asarray(_attn_layer(attention, agg)(x, ga)) for agg in ("add", "mean")}
    np.testing.assert_allclose(out["mean"], out["add"], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("aggregator", ["mean", "max"])
def test_gcn_coefficients_mean_and_max_are_rescaled_to_average_one(aggregator):
    # attention "gcn" weighs message j -> i by c_ij = 1 / sqrt(d_i d_j) (looped degrees); mean is the
    # coefficient-weighted mean sum_j c_ij m_j / sum_j c_ij, max the max of (c_ij / mean_j c_ij) m_j
    ga, a = _ga(seed=3)
    n = a.shape[0]
    x = np.random.default_rng(5).normal(size=(n, 5)).astype(np.float32)
    layer = _attn_layer("gcn", aggregator)
    out = np.asarray(layer(jnp.asarray(x), ga))
    looped = a.astype(np.float64) + np.eye(n)
    d = looped.sum(1)
    c = looped / np.sqrt(np.outer(d, d))
    xw = x @ np.asarray(layer.kernel[...], np.float64)
    if aggregator == "mean":
        ref = (c @ xw) / c.sum(1, keepdims=True)
    else:
        w = c / (c.sum(1, keepdims=True) / d[:, None])
        ref = np.stack([np.max(w[i][looped[i] > 0, None] * xw[looped[i] > 0], axis=0) for i in range(n)])
    ref = ref + np.asarray(layer.bias[...])
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-5)


def test_const_attention_mean_is_the_plain_mean():
    ga, a = _ga(seed=4)
    n = a.shape[0]
    x = np.random.default_rng(6).normal(size=(n, 5)).astype(np.float32)
    layer = _attn_layer("const", "mean")
    looped = a + np.eye(n)
    ref = (looped @ x) / looped.sum(1, keepdims=True) @ np.asarray(layer.kernel[...]) + np.asarray(layer.bias[...])
    np.testing.assert_allclose(np.asarray(layer(jnp.asarray(x), ga)), ref, rtol=1e-4, atol=1e-5)


def test_gat_heads_concat_and_mean():
    ga, _ = _ga()
    x = jnp.ones((12, 3), jnp.float32)
    cat = GNNLayer(LayerSpec(op="gat", hidden=4, heads=3, attention="gat"), 3, rngs=nnx.Rngs(0))
    avg = GNNLayer(LayerSpec(op="gat", hidden=4, heads=3, concat=False, attention="gat"), 3, rngs=nnx.Rngs(0))
    assert cat(x, ga).shape == (12, 12)
    assert avg(x, ga).shape == (12, 4)


def test_single_head_ops_reject_heads():
    with pytest.raises(ValueError, match="single head"):
        GNNLayer(LayerSpec(op="gcn", hidden=4, heads=2), 3, rngs=nnx.Rngs(0))


@pytest.mark.parametrize("model", ["gcn", "gat", "sage", "gin"])
def test_sparse_features_match_dense(model):
    ga, _ = _ga(seed=2, n=20)
    rng = np.random.default_rng(0)
    x = (rng.random((20, 30)) < 0.1).astype(np.float32)
    net = GNN(baseline(model, num_classes=3), 30, 3, rngs=nnx.Rngs(0))
    xs = jsparse.BCOO.fromdense(jnp.asarray(x))
    np.testing.assert_allclose(np.asarray(net(xs, ga)), np.asarray(net(jnp.asarray(x), ga)), rtol=1e-4, atol=1e-5)


def test_graph_model_ignores_padding_and_pools_per_graph():
    # two graphs (a triangle and an edge) + one padding node in a padding graph
    s = np.array([1, 2, 0, 2, 0, 1, 4, 3], np.int32)
    r = np.array([0, 0, 1, 1, 2, 2, 3, 4], np.int32)
    node_graph = np.array([0, 0, 0, 1, 1, 2], np.int32)
    mask = np.array([True] * 5 + [False])
    ga = graph_arrays(s, r, 6, node_graph=node_graph, node_mask=mask, num_graphs=3)
    arch = baseline("gin", task="graph", hidden=8, num_layers=2)
    net = GNN(arch, 4, 2, rngs=nnx.Rngs(0))
    x = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)
    out1 = net(jnp.asarray(x), ga)
    x2 = x.copy()
    x2[5] = 1e3  # changing a padding node must not change the real graphs' scores
    out2 = net(jnp.asarray(x2), ga)
    assert out1.shape == (3, 2)
    np.testing.assert_allclose(np.asarray(out1[:2]), np.asarray(out2[:2]), rtol=1e-5)


@pytest.mark.parametrize("ops, norm, expected", [
    (("attn", "gat"), "batch", (True, True)),
    (("gin", "attn"), "batch", (False, True)),  # a gin layer's MLP holds its own batch norm
    (("attn", "gat"), "none", None),
])
def test_graph_model_batch_norm_follows_non_gin_layers_and_ignores_padding(ops, norm, expected):
    s = np.array([1, 2, 0, 2, 0, 1, 4, 3], np.int32)
    r = np.array([0, 0, 1, 1, 2, 2, 3, 4], np.int32)
    node_graph = np.array([0, 0, 0, 1, 1, 2], np.int32)
    mask = np.array([True] * 5 + [False])
    ga = graph_arrays(s, r, 6, node_graph=node_graph, node_mask=mask, num_graphs=3)
    layers = tuple(LayerSpec(op=op, hidden=4, heads=1, attention="gat") for op in ops)
    arch = Architecture(layers=layers, task="graph", norm=norm, readout="sum", jk=True, dropout=0.0)
    net = GNN(arch, 4, 2, rngs=nnx.Rngs(0))
    got = None if net.norms is None else tuple(bn is not None for bn in net.norms)
    assert got == expected
    x = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)
    x2 = x.copy()
    x2[5] = 1e3  # a padding node: kept out of the batch statistics and of the pooling
    out1 = net(jnp.asarray(x), ga, training=True, key=jax.random.key(0))
    out2 = net(jnp.asarray(x2), ga, training=True, key=jax.random.key(0))
    np.testing.assert_allclose(np.asarray(out1[:2]), np.asarray(out2[:2]), rtol=1e-5, atol=1e-5)


def _padded_graph_batch():
    s = np.array([1, 2, 0, 2, 0, 1, 4, 3], np.int32)
    r = np.array([0, 0, 1, 1, 2, 2, 3, 4], np.int32)
    node_graph = np.array([0, 0, 0, 1, 1, 2], np.int32)
    mask = np.array([True] * 5 + [False])
    return graph_arrays(s, r, 6, node_graph=node_graph, node_mask=mask, num_graphs=3)


@pytest.mark.parametrize("jk, head, readout_params", [
    # in 4, layers 6 and 5 wide, 2 classes; batch norm after the gat layer (2 x 6)
    (True, 0, (4 * 2 + 2) + (6 * 2 + 2) + (5 * 2 + 2) + 12),
    (False, 0, (5 * 2 + 2) + 12),
    (True, 7, (15 * 7 + 7) + (7 * 2 + 2) + 12),   # one MLP on the three pooled vectors side by side
    (False, 7, (5 * 7 + 7) + (7 * 2 + 2) + 12),   # Degree-Quant's head on the last layer
])
def test_graph_read_out_scorers_or_mlp_head(jk, head, readout_params):
    from lpgnas.cost import gnn_cost, readout_params as count
    from lpgnas.supernet import architecture_cost

    ga = _padded_graph_batch()
    layers = (LayerSpec(op="gat", hidden=3, heads=2, attention="gat"), LayerSpec(op="gin", hidden=5))
    arch = Architecture(layers=layers, task="graph", norm="batch", readout="mean", jk=jk, head=head, dropout=0.5)
    net = GNN(arch, 4, 2, rngs=nnx.Rngs(0))
    assert (net.scorers is None) == bool(head) and (net.readout_mlp is None) == (not head)
    parts = [p for p in (net.scorers, net.readout_mlp, net.norms) if p is not None]
    held = sum(int(np.size(v)) for part in parts for v in jax.tree.leaves(nnx.state(part, nnx.Param)))
    assert held == count(arch, 4, 2) == readout_params
    exact = architecture_cost(arch, 4, 2, 5.0, 8.0)
    assert gnn_cost(net, 5.0, 8.0).model_size_bits == pytest.approx(exact.model_size_bits)
    x = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)
    out = net(jnp.asarray(x), ga, training=True, key=jax.random.key(1))
    assert out.shape == (3, 2) and bool(jnp.all(jnp.isfinite(out)))
    x[5] = 1e3  # a padding node moves neither the pooled vectors nor the head
    again = net(jnp.asarray(x), ga, training=True, key=jax.random.key(1))
    np.testing.assert_allclose(np.asarray(again[:2]), np.asarray(out[:2]), rtol=1e-5, atol=1e-5)
    drop = net(jnp.asarray(x), ga, training=True, key=jax.random.key(2))
    assert not np.allclose(np.asarray(drop), np.asarray(again))  # the head's dropout is drawn from the key


@pytest.mark.parametrize("method, bits", [("binary", 1), ("ternary", 2), ("affine", 4)])
def test_graph_model_evaluates_each_graph_apart_from_its_batch(method, bits):
    """A graph's evaluation logits do not depend on the other graphs or the padding of its batch,
    whatever quantises the node features (binary / ternary scales are running averages)."""
    from lpgnas.quant import QuantConfig

    quant = QuantConfig.from_json({"default": {"method": "fp32", "bits": 32}, "overrides": [
        {"layer": layer, "component": comp, "spec": {"method": method, "bits": bits}}
        for layer in (0, 1) for comp in ("input", "aggregate")]})
    layers = (LayerSpec(op="gcn", hidden=6), LayerSpec(op="gin", hidden=6))
    arch = Architecture(layers=layers, task="graph", norm="batch", readout="sum", jk=True, quant=quant)
    net = GNN(arch, 4, 2, rngs=nnx.Rngs(0))
    rng = np.random.default_rng(3)
    ga = _padded_graph_batch()  # graphs of 3 and 2 nodes, one padding node
    x = jnp.asarray(rng.normal(size=(6, 4)).astype(np.float32))
    for k in range(3):
        net(x, ga, training=True, key=jax.random.key(k))
    both = net(x, ga)
    s = np.array([1, 2, 0, 2, 0, 1], np.int32)
    r = np.array([0, 0, 1, 1, 2, 2], np.int32)
    alone = graph_arrays(s, r, 3, node_graph=np.zeros(3, np.int32), num_graphs=1)
    np.testing.assert_allclose(np.asarray(net(x[:3], alone)[0]), np.asarray(both[0]), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("rate, octets, kept_scale", [
    (0.5, False, 2.0),
    (0.5, True, 2.0),              # 128 / 256 dropped exactly
    (0.3, True, 256.0 / 179.0),    # 0.3 rounds to 77 / 256
    (0.999, True, 256.0),          # at most 255 / 256 dropped
])
def test_dropout_keeps_about_one_minus_rate_and_scales_the_kept_values(rate, octets, kept_scale):
    x = jnp.ones((257, 129), jnp.float32)  # a size that is not a multiple of 4 octets
    out = np.asarray(dropout(x, rate, jax.random.key(3), True, octets=octets))
    kept = out != 0
    keep_p = 1.0 / kept_scale
    assert abs(kept.mean() - keep_p) < 4 * np.sqrt(keep_p * (1 - keep_p) / x.size) + 1e-3
    np.testing.assert_allclose(out[kept], kept_scale, rtol=1e-6)
    assert dropout(x, rate, jax.random.key(3), False, octets=octets) is x
    assert dropout(x, rate, None, True, octets=octets) is x


def test_octet_dropout_on_sparse_features_drops_stored_values_only():
    dense = jnp.asarray(np.random.default_rng(0).random((40, 30)) < 0.2, jnp.float32)
    bcoo = jsparse.BCOO.fromdense(dense)
    out = dropout(bcoo, 0.5, jax.random.key(0), True, octets=True)
    data = np.asarray(out.data)
    assert out.indices is bcoo.indices and set(np.unique(data)) <= {0.0, 2.0}
    assert 0.3 < (data != 0).mean() < 0.7


def test_node_model_adds_classifier_when_last_width_differs():
    arch = Architecture(layers=(LayerSpec(op="gcn", hidden=8),), dropout=0.0, input_dropout=0.0)
    net = GNN(arch, 5, 3, rngs=nnx.Rngs(0))
    ga, _ = _ga()
    assert net(jnp.ones((12, 5), jnp.float32), ga).shape == (12, 3)


def test_architecture_with_search_provenance_is_hashable():
    arch = dataclasses.replace(baseline("gcn", num_classes=3), search={"space": "tiny", "metrics": {"val_acc": 80.0}})
    assert hash(arch) == hash(dataclasses.replace(arch, search=None))
    graphdef, _ = nnx.split(GNN(arch, 4, 3, rngs=nnx.Rngs(0)))
    hash(graphdef)
