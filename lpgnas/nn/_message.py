"""Message passing on ``jax.ops.segment_*``: the device-side graph arrays and the primitives every
layer is made of (aggregation, segment softmax, GCN normalisation).

Every edge array is sorted by receiver (the data loaders guarantee it; :func:`graph_arrays` keeps it
when it inserts self loops), so the segment ops run with ``indices_are_sorted=True``.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "GraphArrays",
    "graph_arrays",
    "insert_self_loops",
    "aggregate",
    "segment_softmax",
    "coefficient_scale",
    "scale_heads",
    "gcn_norm",
    "attention_logits",
    "pool_graphs",
]


@dataclasses.dataclass(frozen=True)
class GraphArrays:
    """A graph (or a padded batch of graphs) as device arrays, ready for the layers.

    senders/receivers: edges without self loops; loop_senders/loop_receivers: the same with one self
    loop per node inserted in receiver order; loop_weight: edge weights on the looped edge list (1 on
    the loops); in_degree: in-degree without loops; node_graph: graph id of each node (graph tasks);
    node_mask: real (not padding) nodes. ``num_graphs`` is static (the pooled output's length).
    """

    senders: jax.Array
    receivers: jax.Array
    loop_senders: jax.Array
    loop_receivers: jax.Array
    loop_weight: jax.Array
    in_degree: jax.Array
    node_graph: jax.Array
    node_mask: jax.Array
    num_graphs: int = 1

    @property
    def num_nodes(self) -> int:
        return int(self.in_degree.shape[0])


jax.tree_util.register_dataclass(
    GraphArrays,
    data_fields=["senders", "receivers", "loop_senders", "loop_receivers", "loop_weight", "in_degree",
                 "node_graph", "node_mask"],
    meta_fields=["num_graphs"],
)


def insert_self_loops(senders: np.ndarray, receivers: np.ndarray, num_nodes: int,
                      edge_weight: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Insert one self loop per node after that node's incoming edges, keeping receiver order.

    ``receivers`` must be sorted. Returns ``(senders, receivers, weights)`` of length ``E + N``.
    Runs in O(E + N) with numpy (no sort).
    """
    senders = np.asarray(senders, np.int32)
    receivers = np.asarray(receivers, np.int32)
    e = senders.shape[0]
    if e and np.any(np.diff(receivers) < 0):
        raise ValueError("insert_self_loops: receivers must be sorted (ascending)")
    nodes = np.arange(num_nodes, dtype=np.int32)
    # Position of node i's loop: after all edges with receiver <= i, shifted by the i loops before it.
    loop_pos = np.searchsorted(receivers, nodes, side="right") + nodes
    is_loop = np.zeros(e + num_nodes, dtype=bool)
    is_loop[loop_pos] = True
    out_s = np.empty(e + num_nodes, np.int32)
    out_r = np.empty(e + num_nodes, np.int32)
    out_w = np.ones(e + num_nodes, np.float32)
    out_s[loop_pos] = nodes
    out_r[loop_pos] = nodes
    out_s[~is_loop] = senders
    out_r[~is_loop] = receivers
    if edge_weight is not None:
        out_w[~is_loop] = np.asarray(edge_weight, np.float32)
    return out_s, out_r, out_w


def graph_arrays(senders: np.ndarray, receivers: np.ndarray, num_nodes: int, *,
                 edge_weight: np.ndarray | None = None, node_graph: np.ndarray | None = None,
                 node_mask: np.ndarray | None = None, num_graphs: int = 1) -> GraphArrays:
    """Build :class:`GraphArrays` on the device from host arrays (sorted by receiver)."""
    ls, lr, lw = insert_self_loops(senders, receivers, num_nodes, edge_weight)
    in_deg = np.bincount(np.asarray(receivers, np.int64), minlength=num_nodes).astype(np.int32)
    if node_graph is None:
        node_graph = np.zeros(num_nodes, np.int32)
    if node_mask is None:
        node_mask = np.ones(num_nodes, bool)
    return GraphArrays(
        senders=jnp.asarray(senders, jnp.int32),
        receivers=jnp.asarray(receivers, jnp.int32),
        loop_senders=jnp.asarray(ls),
        loop_receivers=jnp.asarray(lr),
        loop_weight=jnp.asarray(lw),
        in_degree=jnp.asarray(in_deg),
        node_graph=jnp.asarray(node_graph, jnp.int32),
        node_mask=jnp.asarray(node_mask, bool),
        num_graphs=int(num_graphs),
    )


def aggregate(messages: jax.Array, receivers: jax.Array, num_nodes: int, kind: str = "add") -> jax.Array:
    """Reduce edge messages ``[E, ...]`` onto their receivers: ``add``, ``mean`` or ``max``.

    Nodes without incoming edges get zeros for every kind.
    """
    if kind == "add":
        return jax.ops.segment_sum(messages, receivers, num_nodes, indices_are_sorted=True)
    if kind == "mean":
        total = jax.ops.segment_sum(messages, receivers, num_nodes, indices_are_sorted=True)
        count = jax.ops.segment_sum(jnp.ones(receivers.shape, messages.dtype), receivers, num_nodes,
                                    indices_are_sorted=True)
        count = jnp.maximum(count, 1.0).reshape((num_nodes,) + (1,) * (messages.ndim - 1))
        return total / count
    if kind == "max":
        out = jax.ops.segment_max(messages, receivers, num_nodes, indices_are_sorted=True)
        return jnp.where(jnp.isfinite(out), out, jnp.zeros((), out.dtype))
    raise ValueError(f"unknown aggregator {kind!r}")


def segment_softmax(logits: jax.Array, receivers: jax.Array, num_nodes: int) -> jax.Array:
    """Softmax of edge logits ``[E, H]`` over the incoming edges of each receiver."""
    peak = jax.ops.segment_max(logits, receivers, num_nodes, indices_are_sorted=True)
    peak = jnp.where(jnp.isfinite(peak), peak, jnp.zeros((), logits.dtype))
    ex = jnp.exp(logits - jax.lax.stop_gradient(peak)[receivers])
    denom = jax.ops.segment_sum(ex, receivers, num_nodes, indices_are_sorted=True)
    return ex / (denom[receivers] + jnp.asarray(1e-16, logits.dtype))


def coefficient_scale(coef: jax.Array, receivers: jax.Array, num_nodes: int) -> jax.Array:
    """``[N, H]``: ``count_i / sum_j coef_ij`` over the incoming edges of each receiver.

    A ``mean`` or ``max`` aggregate of the messages ``coef_ij * m_j`` times this factor is the
    aggregate over coefficients rescaled to average 1 on each receiver: for ``mean`` it is the
    coefficient-weighted mean ``sum_j coef_ij m_j / sum_j coef_ij``. With constant coefficients the
    factor is 1; with normalised ones (GCN, softmax attention) it undoes the second normalisation
    that the in-degree division of ``mean`` (or the ``1/degree`` scale of ``max``) would apply on top
    of theirs. Receivers without edges (or a zero coefficient sum) get 0.
    """
    total = jax.ops.segment_sum(coef, receivers, num_nodes, indices_are_sorted=True)
    count = jax.ops.segment_sum(jnp.ones(receivers.shape, coef.dtype), receivers, num_nodes,
                                indices_are_sorted=True).reshape((num_nodes,) + (1,) * (coef.ndim - 1))
    ok = total > 0
    return jnp.where(ok, count / jnp.where(ok, total, jnp.ones((), coef.dtype)), jnp.zeros((), coef.dtype))


def scale_heads(agg: jax.Array, scale: jax.Array) -> jax.Array:
    """``agg [N, H * F]`` (heads side by side) times a per-node, per-head ``scale [N, H]``."""
    n, h = scale.shape
    return (agg.reshape(n, h, -1) * scale[:, :, None]).reshape(n, -1)


def gcn_norm(ga: GraphArrays) -> jax.Array:
    """Symmetric GCN normalisation ``w_ij / sqrt(d_i d_j)`` on the looped edge list ``[E + N]``."""
    n = ga.num_nodes
    deg = jax.ops.segment_sum(ga.loop_weight, ga.loop_receivers, n, indices_are_sorted=True)
    inv_sqrt = jnp.where(deg > 0, jax.lax.rsqrt(jnp.maximum(deg, 1e-12)), 0.0)
    return ga.loop_weight * inv_sqrt[ga.loop_senders] * inv_sqrt[ga.loop_receivers]


def attention_logits(kind: str, hh: jax.Array, att_src: jax.Array, att_dst: jax.Array, att_gen: jax.Array | None,
                     senders: jax.Array, receivers: jax.Array) -> jax.Array:
    """Edge logits ``[E, H]`` of the softmax attention types over per-head features ``hh [N, H, F]``.

    ``gat``: LeakyReLU(a_s.h_j + a_d.h_i); ``sym-gat``: the GAT logit plus its reverse; ``cos``:
    (a_s.h_j)(a_d.h_i); ``linear``: tanh(a_s.h_j); ``gene-linear``: a_g.tanh(a_s*h_j + a_d*h_i).
    ``att_src``/``att_dst``/``att_gen`` are ``[H, F]`` (``att_gen`` only for gene-linear).
    """
    src, dst = att_src[None], att_dst[None]
    if kind == "gene-linear":
        gen = jnp.tanh(hh[senders] * src + hh[receivers] * dst)
        return jnp.sum(gen * att_gen[None], axis=-1)
    a_s = jnp.sum(hh * src, axis=-1)  # [N, H]
    a_d = jnp.sum(hh * dst, axis=-1)
    if kind == "gat":
        return jax.nn.leaky_relu(a_s[senders] + a_d[receivers], 0.2)
    if kind == "sym-gat":
        return (jax.nn.leaky_relu(a_s[senders] + a_d[receivers], 0.2)
                + jax.nn.leaky_relu(a_s[receivers] + a_d[senders], 0.2))
    if kind == "cos":
        return a_s[senders] * a_d[receivers]
    if kind == "linear":
        return jnp.tanh(a_s[senders])
    raise ValueError(f"unknown attention {kind!r}")


def pool_graphs(h: jax.Array, ga: GraphArrays, readout: str) -> jax.Array:
    """``[num_graphs, F]``: the node rows ``h [N, F]`` of each graph of a padded batch pooled by
    ``readout`` (``sum`` | ``mean`` | ``max``); padding nodes (``ga.node_mask`` false) take no part,
    and a graph without nodes pools to zeros."""
    g = ga.num_graphs
    mask = ga.node_mask[:, None]
    if readout == "max":
        out = jax.ops.segment_max(jnp.where(mask, h, -jnp.inf), ga.node_graph, g, indices_are_sorted=True)
        return jnp.where(jnp.isfinite(out), out, jnp.zeros((), h.dtype))
    total = jax.ops.segment_sum(jnp.where(mask, h, jnp.zeros((), h.dtype)), ga.node_graph, g, indices_are_sorted=True)
    if readout == "sum":
        return total
    count = jax.ops.segment_sum(ga.node_mask.astype(h.dtype), ga.node_graph, g, indices_are_sorted=True)
    return total / jnp.maximum(count, 1.0)[:, None]
