"""Padded mini-batches of small graphs with a few static shapes (graph-level tasks).

A batch is laid out exactly as ``jraph.pad_with_graphs(jraph.batch(graphs), n_node, n_edge,
n_graph)`` would lay it out -- the real graphs first, then one padding graph owning every padded
node and edge (padded edges point to the first padded node), then empty graphs -- but it is built
with vectorised slicing of the CSR-stored :class:`GraphDataset` instead of per-graph batching.
Every batch is padded to the smallest :class:`Bucket` that fits it, so a jitted step compiles once
per bucket.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import jraph
import numpy as np

from lpgnas.data._graph import GraphDataset
from lpgnas.errors import ConfigError

__all__ = ["Bucket", "PaddedBatch", "make_buckets", "iterate_batches", "pad_batch"]

_ALIGN = 64


class Bucket(NamedTuple):
    """One static batch shape: total nodes, edges and graphs (padding included)."""

    n_node: int
    n_edge: int
    n_graph: int

    def fits(self, num_nodes: int, num_edges: int, num_graphs: int) -> bool:
        """Whether real totals fit (one node and one graph are reserved for padding)."""
        return num_nodes + 1 <= self.n_node and num_edges <= self.n_edge and num_graphs + 1 <= self.n_graph


class PaddedBatch(NamedTuple):
    """A padded batch: the graphs (numpy arrays), labels and masks of the real graphs / nodes."""

    graph: jraph.GraphsTuple
    labels: np.ndarray  # [n_graph] int32, 0 for padding graphs
    graph_mask: np.ndarray  # [n_graph] bool
    node_mask: np.ndarray  # [n_node] bool


def _round_up(x: int) -> int:
    """Round up to a multiple of 64 with at most three significant bits (64, 128, 192, 256, 320,
    384, 448, 512, 640, 768, 896, 1024, 1280, ...): at most ~25% padding, few distinct sizes."""
    x = max(int(x), 1)
    x = -(-x // _ALIGN) * _ALIGN
    step = max(_ALIGN, 1 << max(0, x.bit_length() - 3))
    return -(-x // step) * step


def make_buckets(dataset: GraphDataset, batch_size: int, num_buckets: int = 3, *,
                 seed: int = 0) -> tuple[Bucket, ...]:
    """At most ``num_buckets`` static shapes for batches of ``batch_size`` graphs of ``dataset``.

    The largest bucket holds the worst possible batch (the ``batch_size`` largest graphs by nodes,
    and by edges), so every batch fits it; the smaller ones sit at quantiles (from the median up to
    the 99th percentile) of the node / edge totals of random batches. Sizes are rounded up to
    multiples of 64 with few significant bits. Every bucket has ``batch_size + 1`` graphs (one
    padding graph).
    """
    if batch_size < 1:
        raise ConfigError("batch_size", f"must be >= 1, got {batch_size}")
    if num_buckets < 1:
        raise ConfigError("num_buckets", f"must be >= 1, got {num_buckets}")
    n_node = np.asarray(dataset.n_node, np.int64)
    n_edge = np.asarray(dataset.n_edge, np.int64)
    g = n_node.shape[0]
    if g == 0:
        raise ConfigError("dataset", "no graphs to batch")
    b = min(batch_size, g)
    worst_n = int(np.sort(n_node)[-b:].sum())
    worst_e = int(np.sort(n_edge)[-b:].sum())
    n_graph = batch_size + 1
    sizes = [(worst_n, worst_e)]
    if num_buckets > 1 and g > b:
        rng = np.random.default_rng(seed)
        reps = max(1, -(-2048 * b // g))
        perm = np.concatenate([rng.permutation(g)[: (g // b) * b] for _ in range(reps)])
        tot_n = n_node[perm].reshape(-1, b).sum(axis=1)
        tot_e = n_edge[perm].reshape(-1, b).sum(axis=1)
        levels = np.linspace(0.5, 0.99, num_buckets - 1) if num_buckets > 2 else np.array([0.99])
        for q in levels:
            sizes.append((int(np.quantile(tot_n, q)), int(np.quantile(tot_e, q))))
    # quantiles grow with q, so the buckets are ordered in both sizes; the last is the worst case
    return tuple(sorted({Bucket(_round_up(nn + 1), _round_up(ne), n_graph) for nn, ne in sizes}))


def _gather_ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenation of ``range(s, s + l)`` for each pair, vectorised."""
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, np.int64)
    offs = np.cumsum(lengths) - lengths
    return np.repeat(starts - offs, lengths) + np.arange(total, dtype=np.int64)


def pad_batch(dataset: GraphDataset, ids: np.ndarray, bucket: Bucket, *,
              node_offsets: np.ndarray | None = None, edge_offsets: np.ndarray | None = None
              ) -> PaddedBatch:
    """Batch graphs ``ids`` of ``dataset`` and pad them to ``bucket`` (they must fit)."""
    ids = np.asarray(ids, np.int64)
    no = dataset.node_offsets if node_offsets is None else node_offsets
    eo = dataset.edge_offsets if edge_offsets is None else edge_offsets
    nn = dataset.n_node[ids].astype(np.int64)
    ne = dataset.n_edge[ids].astype(np.int64)
    tn, te, tg = int(nn.sum()), int(ne.sum()), ids.shape[0]
    if not bucket.fits(tn, te, tg):
        raise ConfigError("buckets", f"a batch of {tg} graphs with {tn} nodes and {te} edges does "
                                     f"not fit bucket {tuple(bucket)}")
    node_idx = _gather_ranges(no[ids], nn)
    edge_idx = _gather_ranges(eo[ids], ne)

    nodes = np.zeros((bucket.n_node,) + dataset.nodes.shape[1:], dtype=dataset.nodes.dtype)
    np.take(dataset.nodes, node_idx, axis=0, out=nodes[:tn])
    shift = np.repeat(np.cumsum(nn) - nn, ne)  # new offset of each edge's graph
    senders = np.full(bucket.n_edge, tn, dtype=np.int32)
    receivers = np.full(bucket.n_edge, tn, dtype=np.int32)
    senders[:te] = dataset.senders[edge_idx] + shift
    receivers[:te] = dataset.receivers[edge_idx] + shift

    n_node = np.zeros(bucket.n_graph, np.int32)
    n_edge = np.zeros(bucket.n_graph, np.int32)
    n_node[:tg], n_edge[:tg] = nn, ne
    n_node[tg], n_edge[tg] = bucket.n_node - tn, bucket.n_edge - te
    labels = np.zeros(bucket.n_graph, np.int32)
    labels[:tg] = dataset.labels[ids]
    graph_mask = np.zeros(bucket.n_graph, bool)
    graph_mask[:tg] = True
    node_mask = np.zeros(bucket.n_node, bool)
    node_mask[:tn] = True
    graph = jraph.GraphsTuple(nodes=nodes, edges=None, senders=senders, receivers=receivers,
                              n_node=n_node, n_edge=n_edge, globals=None)
    return PaddedBatch(graph=graph, labels=labels, graph_mask=graph_mask, node_mask=node_mask)


def iterate_batches(dataset: GraphDataset, indices, batch_size: int, *,
                    buckets: tuple[Bucket, ...], shuffle: bool, seed: int,
                    drop_last: bool = False) -> Iterator[PaddedBatch]:
    """Yield padded batches of the graphs ``indices`` (``batch_size`` per batch, the last one
    possibly smaller unless ``drop_last``), each padded to the smallest bucket that fits it.

    ``shuffle`` permutes ``indices`` with ``np.random.default_rng(seed)``. A batch that fits no
    bucket is split in halves (recursively); a single graph that fits none raises
    :class:`ConfigError`.
    """
    if batch_size < 1:
        raise ConfigError("batch_size", f"must be >= 1, got {batch_size}")
    if not buckets:
        raise ConfigError("buckets", "need at least one bucket (see make_buckets)")
    order = sorted(buckets, key=lambda b: (b.n_node, b.n_edge, b.n_graph))
    ids = np.asarray(indices, np.int64).ravel()
    if ids.size and (ids.min() < 0 or ids.max() >= len(dataset)):
        raise ConfigError("indices", f"graph index out of range 0..{len(dataset) - 1}")
    if shuffle:
        ids = np.random.default_rng(seed).permutation(ids)
    no, eo = dataset.node_offsets, dataset.edge_offsets
    n_node = dataset.n_node.astype(np.int64)
    n_edge = dataset.n_edge.astype(np.int64)
    stop = (ids.shape[0] // batch_size) * batch_size if drop_last else ids.shape[0]

    def emit(chunk: np.ndarray) -> Iterator[PaddedBatch]:
        tn, te, tg = int(n_node[chunk].sum()), int(n_edge[chunk].sum()), chunk.shape[0]
        for b in order:
            if b.fits(tn, te, tg):
                yield pad_batch(dataset, chunk, b, node_offsets=no, edge_offsets=eo)
                return
        if tg == 1:
            raise ConfigError("buckets", f"graph {int(chunk[0])} ({tn} nodes, {te} edges) fits no "
                                         f"bucket; largest is {tuple(order[-1])}")
        half = tg // 2
        yield from emit(chunk[:half])
        yield from emit(chunk[half:])

    for lo in range(0, stop, batch_size):
        yield from emit(ids[lo:lo + batch_size])
