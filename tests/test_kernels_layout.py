"""Degree-bucketed ELL layout: it must describe exactly the input adjacency, with the documented shape."""

import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lpgnas.errors import ConfigError
from lpgnas.kernels import EllLayout, build_ell_layout, build_mixed_layouts, pack_mixed


def _random_graph(rng, n, max_deg, heavy=()):
    deg = rng.integers(0, max_deg + 1, size=n)
    for node, d in heavy:
        deg[node] = d
    r = np.repeat(np.arange(n), deg)
    s = rng.integers(0, n, size=r.size)
    w = rng.normal(size=r.size).astype(np.float32)
    perm = rng.permutation(r.size)  # the builder must not rely on sorted input
    return s[perm], r[perm], w[perm]


def _dense(s, r, w, n, m):
    a = np.zeros((n, m), np.float64)
    np.add.at(a, (r, s), w)
    return a


def _dense_from_layout(lay: EllLayout):
    """Rebuild the adjacency from the ELL tables only (not from the kept edge list)."""
    n, m = lay.num_nodes, lay.num_sources
    bucket_rows = sum(b.rows for b in lay.buckets)
    total = bucket_rows + lay.num_tail + 1
    gi = np.asarray(lay.gather_index)
    pos_node = np.full(total, -1)
    pos_node[gi] = np.arange(n)
    pos_node[total - 1] = -1  # the shared zero row
    a = np.zeros((n, m + 1), np.float64)
    nbr_all, w_all, node_all = [], [], []
    off = 0
    for b in lay.buckets:
        nbr_all.append(np.asarray(b.neighbors))
        w_all.append(np.asarray(b.weights))
        node_all.append(pos_node[off:off + b.rows])
        off += b.rows
    if lay.tail.rows:
        seg = np.asarray(lay.tail_segments)
        nodes = np.where(seg < lay.num_tail, pos_node[np.minimum(bucket_rows + seg, total - 1)], -1)
        nbr_all.append(np.asarray(lay.tail.neighbors))
        w_all.append(np.asarray(lay.tail.weights))
        node_all.append(nodes)
    for nbr, w, nodes in zip(nbr_all, w_all, node_all):
        pad_rows = nodes < 0
        assert np.all(nbr[pad_rows] == m) and np.all(w[pad_rows] == 0)
        rows = np.broadcast_to(np.where(pad_rows, 0, nodes)[:, None], nbr.shape)
        np.add.at(a, (rows[~pad_rows], nbr[~pad_rows]), w[~pad_rows])
    assert np.all(a[:, m] == 0)  # padding slots carry weight 0
    return a[:, :m]


@pytest.mark.parametrize("max_width, min_width, row_multiple", [(8, 1, 8), (4, 2, 16), (64, 1, 8)])
def test_layout_reproduces_the_adjacency(max_width, min_width, row_multiple):
    rng = np.random.default_rng(0)
    n = 50
    s, r, w = _random_graph(rng, n, 11, heavy=[(3, 40), (7, 9), (8, 17)])
    lay = build_ell_layout(s, r, n, edge_weights=w, max_width=max_width, min_width=min_width,
                           row_multiple=row_multiple)
    np.testing.assert_allclose(_dense_from_layout(lay), _dense(s, r, w, n, n), atol=1e-6)
    deg = np.bincount(r, minlength=n)
    assert lay.max_degree == deg.max() == 40
    assert lay.num_tail == int((deg > max_width).sum())
    assert lay.num_edges == r.size
    assert lay.max_abs_weight == pytest.approx(np.abs(w).max())
    assert not lay.integer_weights


def test_bucket_shapes_follow_the_degrees():
    rng = np.random.default_rng(1)
    n = 80
    s, r, _ = _random_graph(rng, n, 20, heavy=[(0, 70), (1, 33)])
    lay = build_ell_layout(s, r, n, max_width=16, row_multiple=8)
    deg = np.bincount(r, minlength=n)
    widths = lay.bucket_widths
    assert list(widths) == sorted(widths) and all(w & (w - 1) == 0 for w in widths)
    off = 0
    for b in lay.buckets:
        assert b.rows % 8 == 0 and b.neighbors.dtype == np.int32 and b.weights.dtype == np.float32
        filled = (np.asarray(b.neighbors) < n).sum(axis=1)
        real = filled[filled > 0]
        assert np.all((real <= b.width) & (real > b.width // 2))  # next power of two of the degree
        assert np.all(np.diff(real) <= 0)  # sorted by degree within the bucket
        off += b.rows
    # heavy nodes: chunks of max_width, their count is sum ceil(d / max_width)
    heavy = deg[deg > 16]
    assert lay.tail.width == 16
    assert int((np.asarray(lay.tail_segments) < lay.num_tail).sum()) == int(np.sum(-(-heavy // 16)))
    assert lay.tail.rows % 8 == 0
    # degree-0 nodes point at the zero row after the buckets and the tail sums
    zero_row = off + lay.num_tail
    np.testing.assert_array_equal(np.asarray(lay.gather_index)[deg == 0], zero_row)
    assert np.all(np.asarray(lay.gather_index)[deg > 0] < zero_row)


def test_edge_list_is_sorted_by_receiver_then_sender():
    s = np.array([2, 0, 1, 0, 2])
    r = np.array([1, 1, 0, 2, 0])
    lay = build_ell_layout(s, r, 3)
    np.testing.assert_array_equal(np.asarray(lay.receivers), [0, 0, 1, 1, 2])
    np.testing.assert_array_equal(np.asarray(lay.senders), [1, 2, 0, 2, 0])
    assert lay.integer_weights and lay.max_abs_weight == 1.0


def test_graph_without_edges():
    lay = build_ell_layout(np.zeros(0, np.int32), np.zeros(0, np.int32), 5)
    assert lay.buckets == () and lay.tail.rows == 0 and lay.max_degree == 0
    np.testing.assert_array_equal(np.asarray(lay.gather_index), 0)


def test_rectangular_sources_and_padding_id():
    s = np.array([0, 1, 2, 2])
    r = np.array([0, 0, 1, 3])
    lay = build_ell_layout(s, r, 4, num_sources=3)
    for b in lay.buckets:
        nbr = np.asarray(b.neighbors)
        assert nbr.max() == 3  # padding points one past the last source row
    np.testing.assert_allclose(_dense_from_layout(lay), _dense(s, r, np.ones(4), 4, 3))


@settings(max_examples=15, deadline=None)
@given(
    n=st.integers(1, 40),
    e=st.integers(0, 150),
    max_width=st.sampled_from([1, 2, 4, 8, 32]),
    seed=st.integers(0, 2**16),
)
def test_layout_property_random_graphs(n, e, max_width, seed):
    rng = np.random.default_rng(seed)
    s = rng.integers(0, n, size=e)
    r = (rng.pareto(1.2, size=e) * 3).astype(np.int64) % n  # skewed receivers: hubs
    w = rng.integers(-3, 4, size=e).astype(np.float32)
    lay = build_ell_layout(s, r, n, edge_weights=w, max_width=max_width)
    np.testing.assert_allclose(_dense_from_layout(lay), _dense(s, r, w, n, n), atol=1e-6)
    assert lay.integer_weights


def test_mixed_layouts_split_the_edges_by_source_width():
    rng = np.random.default_rng(2)
    n = 30
    s, r, w = _random_graph(rng, n, 6)
    m = pack_mixed(np.zeros((n, 4), np.float32), rng.choice([2, 8], size=n), signed=True)
    lays = build_mixed_layouts(s, r, n, m, edge_weights=w, max_width=4)
    assert len(lays) == len(m.groups)
    total = np.zeros((n, n))
    perm = np.asarray(m.perm)
    for g, lay in enumerate(lays):
        assert lay.num_sources == m.offsets[g + 1] - m.offsets[g]
        total[:, perm[m.offsets[g]:m.offsets[g + 1]]] += _dense_from_layout(lay)
    np.testing.assert_allclose(total, _dense(s, r, w, n, n), atol=1e-6)


def test_layout_is_a_pytree_with_static_metadata():
    lay = build_ell_layout(np.array([0, 1, 1]), np.array([1, 0, 2]), 3, max_width=2)
    leaves = jax.tree_util.tree_leaves(lay)
    assert all(isinstance(x, jax.Array) for x in leaves)
    out = jax.jit(lambda l: l.gather_index.sum() + l.num_nodes + l.max_degree)(lay)
    assert int(out) == int(np.asarray(lay.gather_index).sum()) + 3 + 1


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(senders=[0, 5], receivers=[0, 1], num_nodes=3), "senders"),
        (dict(senders=[0, 1], receivers=[0, -1], num_nodes=3), "receivers"),
        (dict(senders=[0, 1], receivers=[0, 1, 2], num_nodes=3), "receivers"),
        (dict(senders=[0.5, 1], receivers=[0, 1], num_nodes=3), "senders"),
        (dict(senders=[0, 1], receivers=[0, 1], num_nodes=3, edge_weights=[1.0]), "edge_weights"),
        (dict(senders=[0, 1], receivers=[0, 1], num_nodes=3, edge_weights=[1.0, np.nan]), "edge_weights"),
        (dict(senders=[0, 1], receivers=[0, 1], num_nodes=3, max_width=12), "max_width"),
        (dict(senders=[0, 1], receivers=[0, 1], num_nodes=3, row_multiple=0), "row_multiple"),
        (dict(senders=[0, 1], receivers=[0, 1], num_nodes=0), "num_nodes"),
        (dict(senders=[0, 1], receivers=[0, 1], num_nodes=3, num_sources=1), "senders"),
    ],
)
def test_layout_errors_name_the_argument(kwargs, field):
    with pytest.raises(ConfigError) as e:
        build_ell_layout(**kwargs)
    assert e.value.field == field
