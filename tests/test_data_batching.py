"""Padded batching: same layout as jraph.batch + jraph.pad_with_graphs, few static shapes, speed."""

import time

import jraph
import numpy as np
import pytest

from lpgnas.data import Bucket, GraphDataset, iterate_batches, load_dataset, make_buckets
from lpgnas.data._batching import _round_up, pad_batch
from lpgnas.data._edges import canonical_dataset_edges
from lpgnas.errors import ConfigError


def random_dataset(num_graphs=37, max_nodes=30, features=3, seed=0) -> GraphDataset:
    rng = np.random.default_rng(seed)
    n_node = rng.integers(1, max_nodes, size=num_graphs)
    off = np.concatenate([[0], np.cumsum(n_node)[:-1]])
    m = rng.integers(0, 3 * n_node + 1)
    g = np.repeat(np.arange(num_graphs), m)
    s = off[g] + (rng.random(g.shape[0]) * n_node[g]).astype(np.int64)
    r = off[g] + (rng.random(g.shape[0]) * n_node[g]).astype(np.int64)
    senders, receivers, n_edge = canonical_dataset_edges(s, r, n_node)
    return GraphDataset(nodes=rng.standard_normal((int(n_node.sum()), features)).astype(np.float32),
                        senders=senders, receivers=receivers, n_node=n_node.astype(np.int32),
                        n_edge=n_edge, labels=rng.integers(0, 3, num_graphs).astype(np.int32),
                        num_classes=3, name="rand")


@pytest.mark.parametrize("seed,batch_size,num_buckets", [(0, 8, 3), (1, 5, 2), (2, 16, 1), (3, 1, 3)])
def test_matches_jraph_batch_and_pad(seed, batch_size, num_buckets):
    ds = random_dataset(seed=seed)
    buckets = make_buckets(ds, batch_size, num_buckets)
    ids = np.random.default_rng(seed).permutation(len(ds))[:30]
    seen = 0
    for pb in iterate_batches(ds, ids, batch_size, buckets=buckets, shuffle=False, seed=0):
        gids = ids[seen:seen + int(pb.graph_mask.sum())]
        seen += gids.shape[0]
        b = Bucket(pb.graph.nodes.shape[0], pb.graph.senders.shape[0], pb.graph.n_node.shape[0])
        assert b in buckets
        ref = jraph.pad_with_graphs(jraph.batch_np([ds.graph(int(i)) for i in gids]), *b)
        for field in ("nodes", "senders", "receivers", "n_node", "n_edge"):
            got, want = getattr(pb.graph, field), np.asarray(getattr(ref, field))
            np.testing.assert_array_equal(got, want, err_msg=field)
        assert pb.graph.edges is None and pb.graph.globals is None
        assert pb.graph.senders.dtype == np.int32 and pb.graph.n_node.dtype == np.int32
        np.testing.assert_array_equal(pb.graph_mask, jraph.get_graph_padding_mask(ref))
        np.testing.assert_array_equal(pb.node_mask, jraph.get_node_padding_mask(ref))
        np.testing.assert_array_equal(pb.labels[pb.graph_mask], ds.labels[gids])
        assert pb.labels.dtype == np.int32 and not pb.labels[~pb.graph_mask].any()
    assert seen == ids.shape[0]


@pytest.mark.parametrize("num_buckets", [1, 2, 3, 5])
def test_shapes_bounded_and_every_batch_fits(num_buckets):
    ds = random_dataset(num_graphs=200, max_nodes=60, seed=5)
    buckets = make_buckets(ds, 16, num_buckets)
    assert 1 <= len(buckets) <= num_buckets
    # the largest bucket holds the 16 largest graphs at once
    worst = Bucket(*buckets[-1])
    assert worst.fits(int(np.sort(ds.n_node)[-16:].sum()), int(np.sort(ds.n_edge)[-16:].sum()), 16)
    for b in buckets:
        assert b.n_node % 64 == 0 and b.n_edge % 64 == 0 and b.n_graph == 17
    shapes = set()
    total = 0
    for seed in range(3):
        for pb in iterate_batches(ds, np.arange(len(ds)), 16, buckets=buckets, shuffle=True, seed=seed):
            shapes.add((pb.graph.nodes.shape[0], pb.graph.senders.shape[0], pb.graph.n_node.shape[0]))
            total += int(pb.graph_mask.sum())
    assert len(shapes) <= num_buckets and total == 3 * len(ds)


def test_shuffle_is_seeded():
    ds = random_dataset()
    b = make_buckets(ds, 4)

    def order(seed):
        return np.concatenate([p.labels[p.graph_mask] for p in
                               iterate_batches(ds, np.arange(len(ds)), 4, buckets=b, shuffle=True, seed=seed)])

    np.testing.assert_array_equal(order(1), order(1))
    assert not np.array_equal(order(1), order(2))


def test_oversized_batch_is_split_and_oversized_graph_errors():
    ds = random_dataset(num_graphs=20, max_nodes=10, seed=1)
    small = Bucket(_round_up(int(ds.n_node.max()) * 2 + 1), _round_up(int(ds.n_edge.max()) * 2 + 1), 9)
    batches = list(iterate_batches(ds, np.arange(20), 8, buckets=(small,), shuffle=False, seed=0))
    got = np.concatenate([p.labels[p.graph_mask] for p in batches])
    np.testing.assert_array_equal(got, ds.labels)  # every graph once, in order
    tiny = Bucket(2, 0, 2)
    with pytest.raises(ConfigError, match="fits no bucket"):
        list(iterate_batches(ds, np.arange(20), 8, buckets=(tiny,), shuffle=False, seed=0))
    with pytest.raises(ConfigError, match="does not fit"):
        pad_batch(ds, np.arange(20), tiny)


@pytest.mark.parametrize("x,want", [(1, 64), (64, 64), (65, 128), (200, 256), (600, 640), (1000, 1024),
                                    (1100, 1280), (5000, 5120)])
def test_round_up(x, want):
    assert _round_up(x) == want


def test_reddit_binary_epoch_is_fast(data_root):
    ds = load_dataset("reddit-binary", data_root, download=False)
    buckets = make_buckets(ds, 32, 3)
    t0 = time.perf_counter()
    n = sum(int(p.graph_mask.sum()) for p in
            iterate_batches(ds, np.arange(len(ds)), 32, buckets=buckets, shuffle=True, seed=0))
    elapsed = time.perf_counter() - t0
    assert n == 2000
    assert elapsed < 0.5, f"one REDDIT-BINARY epoch of batching took {elapsed:.3f}s"
