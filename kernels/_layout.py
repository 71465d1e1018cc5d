"""Degree-bucketed ELL neighbour layout, built once per graph on the host with numpy.

For ``out[i] = sum_{(j -> i)} w_ij x[j]`` the receivers are sorted by in-degree (descending) and split
into buckets whose widths are powers of two: a node of degree ``d`` (``0 < d <= max_width``) goes to
the bucket of width ``next_pow2(d)`` (at least ``min_width``). Each bucket is a dense
``[rows, width]`` table of source ids and weights; rows are padded to a multiple of ``row_multiple``
and each row is padded to the bucket width. A padding entry holds source id ``num_sources`` (a
virtual all-zero row one past the last real row) and weight ``0``; kernels mask or clamp it and never
read out of bounds.

Nodes of degree above ``max_width`` form the heavy tail and take the segmented-CSR fallback: their
edge lists are cut into chunks of ``max_width`` (one "virtual row" per chunk, laid out exactly like an
ELL bucket of width ``max_width``); the per-chunk partial sums are added up per node with a
``segment_sum`` over ``tail_segments``.

The per-node result is assembled with one gather: ``gather_index[i]`` is the row of node ``i`` in
``concat(bucket rows..., tail node sums [num_tail], one zero row)``; degree-0 nodes point at the zero
row. The layout also keeps the receiver-sorted CSR edge list for the reference path.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lpgnas.errors import ConfigError

__all__ = ["EllBucket", "EllLayout", "build_ell_layout", "build_mixed_layouts"]


class EllBucket(NamedTuple):
    """One ELL block: ``neighbors int32 [rows, width]`` and ``weights float32 [rows, width]``."""

    neighbors: jax.Array
    weights: jax.Array

    @property
    def rows(self) -> int:
        return int(self.neighbors.shape[0])

    @property
    def width(self) -> int:
        return int(self.neighbors.shape[1])


class EllLayout(NamedTuple):
    """Neighbour layout of one graph (device arrays + static metadata).

    buckets: ELL buckets, widths ascending, each row = one receiver node (padded rows are dummies).
    tail: chunks of the heavy-tail nodes, width ``max_width`` (``rows == 0`` when there is no tail).
    tail_segments: ``int32 [tail.rows]`` heavy-node slot of each chunk (``num_tail`` for padding).
    gather_index: ``int32 [num_nodes]`` (see the module docstring).
    senders, receivers, weights: the CSR edge list sorted by receiver (``int32, int32, float32 [E]``).
    num_nodes: receivers (output rows). num_sources: rows of the source feature matrix.
    num_tail: heavy-tail nodes. max_degree: largest in-degree. max_width / row_multiple: build options.
    max_abs_weight: ``max |w|``. integer_weights: every weight is an integer (int32 accumulation can
    use them as they are).
    """

    buckets: tuple[EllBucket, ...]
    tail: EllBucket
    tail_segments: jax.Array
    gather_index: jax.Array
    senders: jax.Array
    receivers: jax.Array
    weights: jax.Array
    num_nodes: int
    num_sources: int
    num_tail: int
    max_degree: int
    max_width: int
    row_multiple: int
    max_abs_weight: float
    integer_weights: bool

    @property
    def num_edges(self) -> int:
        return int(self.senders.shape[0])

    @property
    def bucket_widths(self) -> tuple[int, ...]:
        return tuple(b.width for b in self.buckets)

    @property
    def padded_slots(self) -> int:
        """Neighbour slots the ELL tables hold (edges + padding), a measure of the padding overhead."""
        return int(sum(b.rows * b.width for b in self.buckets) + self.tail.rows * self.tail.width)


_ARRAY_FIELDS = ("buckets", "tail", "tail_segments", "gather_index", "senders", "receivers", "weights")
_STATIC_FIELDS = (
    "num_nodes", "num_sources", "num_tail", "max_degree", "max_width", "row_multiple",
    "max_abs_weight", "integer_weights",
)

jax.tree_util.register_pytree_node(
    EllLayout,
    lambda l: (tuple(getattr(l, f) for f in _ARRAY_FIELDS), tuple(getattr(l, f) for f in _STATIC_FIELDS)),
    lambda aux, ch: EllLayout(*ch, *aux),
)


def _is_pow2(v: int) -> bool:
    return v >= 1 and (v & (v - 1)) == 0


def _next_pow2(v: np.ndarray) -> np.ndarray:
    v = np.maximum(np.asarray(v, np.int64), 1)
    return (1 << np.ceil(np.log2(v)).astype(np.int64)).astype(np.int64)


def _as_index_array(name: str, a, upper: int) -> np.ndarray:
    arr = np.asarray(a)
    if arr.ndim != 1:
        raise ConfigError(name, f"expected a 1-d array of node ids, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ConfigError(name, f"expected integer node ids, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    if arr.size and (arr.min() < 0 or arr.max() >= upper):
        raise ConfigError(name, f"node ids must lie in [0, {upper}), got range [{arr.min()}, {arr.max()}]")
    return arr


def _ell_tables(rows_start, rows_len, width, senders, weights, pad_id, row_multiple):
    """Dense ``[rows, width]`` tables for rows whose edges are ``[start, start + len)`` (vectorised)."""
    n = rows_start.shape[0]
    padded = -(-n // row_multiple) * row_multiple if n else 0
    nbr = np.full((padded, width), pad_id, np.int32)
    wts = np.zeros((padded, width), np.float32)
    if n:
        slot = np.arange(width, dtype=np.int64)[None, :]
        valid = slot < rows_len[:, None]
        pos = np.where(valid, rows_start[:, None] + slot, 0)
        nbr[:n] = np.where(valid, senders[pos] if senders.size else 0, pad_id)
        wts[:n] = np.where(valid, weights[pos] if weights.size else 0.0, 0.0)
    return nbr, wts


def build_ell_layout(
    senders,
    receivers,
    num_nodes: int,
    *,
    edge_weights=None,
    num_sources: int | None = None,
    max_width: int = 128,
    min_width: int = 1,
    row_multiple: int = 8,
) -> EllLayout:
    """Build the :class:`EllLayout` of the edges ``senders[e] -> receivers[e]`` (host numpy, vectorised).

    edge_weights: ``float [E]`` (default all ones). num_sources: rows of the source matrix (default
    ``num_nodes``). max_width / min_width: largest / smallest bucket width (powers of two); nodes of
    higher degree go to the segmented tail. row_multiple: rows of every bucket are padded to a
    multiple of it (a multiple of the kernels' row block avoids re-padding at call time).
    """
    num_nodes = int(num_nodes)
    if num_nodes < 1:
        raise ConfigError("num_nodes", f"must be >= 1, got {num_nodes}")
    num_sources = num_nodes if num_sources is None else int(num_sources)
    if num_sources < 1:
        raise ConfigError("num_sources", f"must be >= 1, got {num_sources}")
    for name, v in (("max_width", max_width), ("min_width", min_width), ("row_multiple", row_multiple)):
        if not _is_pow2(int(v)):
            raise ConfigError(name, f"must be a power of two >= 1, got {v}")
    if min_width > max_width:
        raise ConfigError("min_width", f"must be <= max_width ({max_width}), got {min_width}")
    s = _as_index_array("senders", senders, num_sources)
    r = _as_index_array("receivers", receivers, num_nodes)
    if s.shape != r.shape:
        raise ConfigError("receivers", f"expected shape {s.shape} (like senders), got {r.shape}")
    if edge_weights is None:
        w = np.ones(s.shape, np.float32)
    else:
        w = np.asarray(edge_weights, np.float32)
        if w.shape != s.shape:
            raise ConfigError("edge_weights", f"expected shape {s.shape} (one per edge), got {w.shape}")
        if not np.all(np.isfinite(w)):
            raise ConfigError("edge_weights", "contains NaN or infinite values")

    order = np.lexsort((s, r))  # by receiver, then sender
    s, r, w = s[order], r[order], w[order]
    deg = np.bincount(r, minlength=num_nodes).astype(np.int64)
    indptr = np.concatenate([[0], np.cumsum(deg)])
    max_degree = int(deg.max()) if deg.size else 0

    # nodes by degree, descending (stable: ties keep id order)
    by_deg = np.argsort(-deg, kind="stable")
    d_sorted = deg[by_deg]
    width_of = np.maximum(_next_pow2(d_sorted), min_width)
    in_ell = (d_sorted > 0) & (d_sorted <= max_width)
    heavy = d_sorted > max_width

    gather_index = np.zeros(num_nodes, np.int64)
    buckets = []
    offset = 0
    for width in np.unique(width_of[in_ell]).tolist():  # ascending; one iteration per bucket
        nodes = by_deg[in_ell & (width_of == width)]
        nbr, wts = _ell_tables(indptr[nodes], deg[nodes], int(width), s, w, num_sources, row_multiple)
        gather_index[nodes] = offset + np.arange(nodes.shape[0])
        offset += nbr.shape[0]
        buckets.append(EllBucket(jnp.asarray(nbr), jnp.asarray(wts)))

    tail_nodes = by_deg[heavy]
    num_tail = int(tail_nodes.shape[0])
    chunks = -(-deg[tail_nodes] // max_width)
    chunk_node = np.repeat(np.arange(num_tail), chunks)
    chunk_first = np.repeat(np.cumsum(chunks) - chunks, chunks)
    chunk_idx = np.arange(chunk_node.shape[0]) - chunk_first
    c_start = indptr[tail_nodes][chunk_node] + chunk_idx * max_width
    c_len = np.minimum(deg[tail_nodes][chunk_node] - chunk_idx * max_width, max_width)
    t_nbr, t_wts = _ell_tables(c_start, c_len, max_width, s, w, num_sources, row_multiple)
    t_seg = np.full(t_nbr.shape[0], num_tail, np.int32)
    t_seg[: chunk_node.shape[0]] = chunk_node
    gather_index[tail_nodes] = offset + np.arange(num_tail)
    zero_row = offset + num_tail
    gather_index[deg == 0] = zero_row

    return EllLayout(
        buckets=tuple(buckets),
        tail=EllBucket(jnp.asarray(t_nbr), jnp.asarray(t_wts)),
        tail_segments=jnp.asarray(t_seg),
        gather_index=jnp.asarray(gather_index.astype(np.int32)),
        senders=jnp.asarray(s.astype(np.int32)),
        receivers=jnp.asarray(r.astype(np.int32)),
        weights=jnp.asarray(w),
        num_nodes=num_nodes,
        num_sources=num_sources,
        num_tail=num_tail,
        max_degree=max_degree,
        max_width=int(max_width),
        row_multiple=int(row_multiple),
        max_abs_weight=float(np.abs(w).max()) if w.size else 0.0,
        integer_weights=bool(np.all(w == np.round(w))),
    )


def build_mixed_layouts(senders, receivers, num_nodes: int, mixed, *, edge_weights=None, **options):
    """One :class:`EllLayout` per width group of ``mixed`` (a :class:`MixedPacked`).

    Layout ``g`` holds the edges whose sender belongs to group ``g``, with senders renumbered to the
    group's rows, so that aggregating each group with its own layout and summing gives the full result.
    ``options`` go to :func:`build_ell_layout`.
    """
    inv = np.asarray(mixed.inv_perm).astype(np.int64)
    offsets = np.asarray(mixed.offsets, np.int64)
    s = _as_index_array("senders", senders, inv.shape[0])
    r = np.asarray(receivers)
    w = np.ones(s.shape, np.float32) if edge_weights is None else np.asarray(edge_weights, np.float32)
    row = inv[s]
    group = np.searchsorted(offsets, row, side="right") - 1
    layouts = []
    for g in range(len(mixed.groups)):
        m = group == g
        layouts.append(
            build_ell_layout(
                row[m] - offsets[g], r[m], num_nodes, edge_weights=w[m],
                num_sources=int(offsets[g + 1] - offsets[g]), **options,
            )
        )
    return tuple(layouts)
