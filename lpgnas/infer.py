"""Packed low-bit inference of a trained quantised GNN (node-level, transductive models).

:func:`pack_model` turns a trained :class:`~lpgnas.nn.GNN` and its graph into a :class:`PackedModel`:

* every weight matrix is held as the integer codes of its weight quantiser (``to_integer``), bit-packed
  into ``uint32`` words with :func:`lpgnas.kernels.pack` at the smallest kernel width (1, 2, 4, 8 bits)
  that holds the quantiser's codes, with one scale / zero point per row (per output channel weights are
  stored transposed); weights of a full-precision quantiser stay ``float32``;
* the node features are held packed the same way at the first layer's ``input`` quantiser's bits
  (per-node widths -- A2Q, SGQuant degree buckets -- as one packed group per width);
* the neighbour layouts (:func:`lpgnas.kernels.build_ell_layout`, per width group with
  :func:`~lpgnas.kernels.build_mixed_layouts`) are built once per graph.

:func:`run_packed` runs the model layer by layer. Dense parts are plain JAX: ``X W`` with the dequantised
weights, the edge coefficients (GCN normalisation, attention), bias / skip / batch norm, activations and
the re-quantisation of the ``input``, ``aggregate`` and ``output`` components by their quantisers
(evaluation mode). The neighbour aggregation reads packed rows through
:func:`lpgnas.kernels.packed_aggregate` (the Pallas kernel on GPU/TPU, the pure-JAX reference on CPU):

* ``messages="fused"``: the ``linear`` component's integer codes (``X W`` quantised, one row per node)
  are packed and the kernel sums them over the neighbours with the edge coefficients as weights (the
  layout slots hold edge ids; the coefficients fill them by one gather per call). A quantised ``message``
  (the per-edge product ``coef * XW[sender]``, rounded before the sum) has no counterpart in a fused
  weighted sum: the packed path sums the un-rounded products (``PackedModel.approximated`` lists these
  components). Measured on Cora GCN this changes 0.4-1.7% of the predictions at 8 bits.
* ``messages="exact"`` (default): where a layer quantises its messages, the messages are formed in
  plain JAX, quantised by the message quantiser (``to_integer``), packed one row per edge, and the kernel
  sums the packed rows onto their receivers -- the QAT model's arithmetic. Layers without a message
  quantiser take the fused path, which is then exact.

Semantics: the QAT model's evaluation, ``model(x, ga, training=False)``. Integer codes dequantise bit for
bit to the fake-quantised values; quantisers run inside jitted programs like the model's (XLA rewrites
some divisions by constants, and the rounding must see the same arithmetic). Remaining differences
come from the order of float additions in the aggregation. When ``linear`` and ``message`` are both full
precision the aggregation runs in float (``segment_sum``).

Not supported (a :class:`~lpgnas.errors.ConfigError` names the component): graph-level models;
propagation blocks (``Architecture.propagation``: APPNP, smoothness-aware propagation) and ``linear``
layers; the ``max`` aggregator (not a weighted sum); per-column scales on the aggregated tensor (``linear`` or
``message``) or on a tensor with per-node widths; codes wider than 8 bits; SGQuant rows kept at 32 bits.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Mapping, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from lpgnas import kernels as K
from lpgnas import quant as Q
from lpgnas.arch import LayerSpec
from lpgnas.data import Graph, GraphDataset, Split
from lpgnas.errors import ConfigError
from lpgnas.nn import (GNN, GraphArrays, activation, attention_logits, coefficient_scale, gcn_norm, graph_arrays,
                       scale_heads, segment_softmax)

__all__ = [
    "QState",
    "StoredMatrix",
    "RowGroups",
    "PackedLayer",
    "PackedModel",
    "PackedBytes",
    "MESSAGE_MODES",
    "pack_model",
    "run_packed",
    "time_packed",
    "qat_logits",
    "time_model",
    "fp32_twin",
    "agreement",
    "infer_report",
]

MESSAGE_MODES = ("exact", "fused")
_F32 = jnp.float32
_MAX_EDGE_ID = (1 << 24) - 1  # edge ids travel as float32 layout weights: exact below 2^24
_RUN_COMPONENTS = ("input", "linear", "edge_weight", "attention_logit", "attention", "message", "aggregate",
                   "output")
_WEIGHT_NAMES = ("kernel", "root", "kernel2", "skip_kernel")
_PARAM_NAMES = ("bias", "att_src", "att_dst", "att_gen", "eps", "bias1")


def _pytree(data: tuple[str, ...], meta: tuple[str, ...]):
    def register(cls):
        jax.tree_util.register_dataclass(cls, data_fields=list(data), meta_fields=list(meta))
        return cls

    return register


# ------------------------------------------------------------------------------------------------
# containers


@_pytree(data=("state",), meta=("plan",))
@dataclasses.dataclass(frozen=True)
class QState:
    """A quantiser as data: its static plan and its state arrays (used in evaluation mode only)."""

    state: dict
    plan: Q.QuantPlan


@_pytree(data=("packed", "mixed", "dense"), meta=("transposed",))
@dataclasses.dataclass(frozen=True)
class StoredMatrix:
    """A matrix as the packed model holds it: bit-packed at one width (``packed``; stored transposed
    when its scales are per column), packed at per-row widths (``mixed``), or ``float32`` (``dense``)."""

    packed: K.PackedMatrix | None = None
    mixed: K.MixedPacked | None = None
    dense: jax.Array | None = None
    transposed: bool = False

    def value(self) -> jax.Array:
        """The ``float32`` matrix (bit for bit the fake-quantised one)."""
        if self.dense is not None:
            return self.dense
        if self.mixed is not None:
            return K.dequantize_mixed(self.mixed)
        w = K.dequantize(self.packed)
        return w.T if self.transposed else w

    @property
    def nbytes(self) -> int:
        """Bytes of the device arrays held (codes, scales, zero points, permutations)."""
        if self.dense is not None:
            return int(self.dense.nbytes)
        return K.packed_nbytes(self.packed if self.mixed is None else self.mixed)


@_pytree(data=("perm", "inv_perm"), meta=("group_bits", "offsets"))
@dataclasses.dataclass(frozen=True)
class RowGroups:
    """Rows grouped by packed width (as :func:`lpgnas.kernels.pack_mixed` groups them): group ``g``
    holds rows ``perm[offsets[g]:offsets[g+1]]`` at ``group_bits[g]`` bits."""

    perm: jax.Array
    inv_perm: jax.Array
    group_bits: tuple[int, ...]
    offsets: tuple[int, ...]


@_pytree(data=("weights", "params", "quant", "layouts", "groups"),
         meta=("spec", "edges", "path", "bits", "signed", "bn_epsilon", "where"))
@dataclasses.dataclass(frozen=True)
class PackedLayer:
    """One layer: stored weights, small float parameters, the quantisers of the components run at
    inference, the layouts of the packed aggregation and the static layer choices.

    ``path``: ``"messages"`` -- the quantised messages are packed (one row per edge, ``bits`` wide, rows
    grouped by width in ``groups``) and summed onto their receivers with unit weights; ``"xw"`` -- the
    ``linear`` codes are packed (one row per node) and summed with the edge coefficients as weights (the
    layout slots hold edge ids); ``"float"`` -- float ``segment_sum`` (full-precision ``linear`` and
    ``message``)."""

    weights: dict
    params: dict
    quant: dict
    layouts: tuple
    groups: RowGroups | None
    spec: LayerSpec
    edges: str
    path: str
    bits: int
    signed: bool
    bn_epsilon: float
    where: str


class PackedBytes(NamedTuple):
    """Bytes held by device arrays. ``packed_*``: what the packed model holds; ``fp32_*``: the same
    tensors in ``float32``. Weights are every parameter of the layers and the head (matrices packed,
    biases / attention vectors / batch norm in float32); ``layout_bytes``: neighbour tables and edge
    lists; ``quant_state_bytes``: the run-time quantisers' ranges."""

    packed_feature_bytes: int
    fp32_feature_bytes: int
    packed_weight_bytes: int
    fp32_weight_bytes: int
    layout_bytes: int
    quant_state_bytes: int


@_pytree(data=("layers", "features", "head", "graph"),
         meta=("num_classes", "fp32_feature_bytes", "fp32_weight_bytes", "approximated"))
@dataclasses.dataclass(frozen=True)
class PackedModel:
    """A packed model and its graph (see the module docstring). ``approximated`` names the components
    the packed path does not reproduce exactly (quantised messages)."""

    layers: tuple[PackedLayer, ...]
    features: StoredMatrix
    head: dict | None
    graph: GraphArrays
    num_classes: int
    fp32_feature_bytes: int
    fp32_weight_bytes: int
    approximated: tuple[str, ...] = ()

    @property
    def num_nodes(self) -> int:
        return self.graph.num_nodes

    def memory(self) -> PackedBytes:
        weights = sum(sum(w.nbytes for w in lp.weights.values()) + _tree_nbytes(lp.params) for lp in self.layers)
        return PackedBytes(
            packed_feature_bytes=self.features.nbytes,
            fp32_feature_bytes=self.fp32_feature_bytes,
            packed_weight_bytes=int(weights + _tree_nbytes(self.head)),
            fp32_weight_bytes=self.fp32_weight_bytes,
            layout_bytes=_tree_nbytes(([lp.layouts for lp in self.layers], [lp.groups for lp in self.layers])),
            quant_state_bytes=_tree_nbytes([lp.quant for lp in self.layers]),
        )


def _tree_nbytes(tree) -> int:
    """Bytes of the distinct device arrays in ``tree`` (an array shared by several layers counts once)."""
    seen = {}
    for leaf in jax.tree_util.tree_leaves(tree):
        seen[id(leaf)] = int(leaf.nbytes)
    return int(sum(seen.values()))


# ------------------------------------------------------------------------------------------------
# quantisers as data


def _qstate(q) -> QState | None:
    if q is None or isinstance(q, Q.Identity):
        return None
    return QState({k: jnp.asarray(v) for k, v in q.state().items()}, q.plan)


def _fake(qs: QState | None, x: jax.Array, ctx: Q.QuantContext) -> jax.Array:
    """The quantiser's evaluation-mode output (identity for ``None``)."""
    if qs is None:
        return x
    return Q.quant_apply(qs.plan, qs.state, x, ctx)[0]


def _code_signed(plan: Q.QuantPlan) -> bool:
    return True if plan.method in ("binary", "ternary") else bool(plan.signed)


def _max_bits(qs: QState) -> int:
    plan = qs.plan
    if plan.method == "a2q":
        s = plan.spec
        b = np.asarray(qs.state["bitwidth"], np.float64)
        return int(np.max(np.round(np.clip(b, s.min_bits, s.max_bits))))
    return int(plan.bits)


def _container(bits: int, where: str) -> int:
    """Smallest kernel width holding ``bits``-bit codes."""
    for b in K.SUPPORTED_BITS:
        if bits <= b:
            return b
    raise ConfigError(where, f"{bits}-bit codes have no packed container (the kernels pack "
                             f"{', '.join(map(str, K.SUPPORTED_BITS))} bits); quantise it to at most 8 bits")


def _container_codes(plan: Q.QuantPlan, it: Q.IntegerTensor):
    """``(codes int32, scale f32, zero_point f32)`` in the packed container's convention. Binary codes
    ``+-1`` become signed 1-bit ``0 / -1`` with zero point ``-0.5`` and twice the scale (the kernels'
    binarisation), which dequantises to the same values exactly."""
    codes = it.codes.astype(jnp.int32)
    scale = jnp.asarray(it.scale).astype(_F32)
    zp = jnp.asarray(it.zero_point).astype(_F32)
    if plan.method == "binary":
        return (codes - 1) // 2, scale * 2.0, zp - 0.5
    return codes, scale, zp


def _orient(codes, scale, zp, where: str, transpose_ok: bool = False):
    """``(codes, scale [R, 1], zero_point [R, 1], transposed)``: one scale / zero point per stored row.
    Per-column parameters need ``transpose_ok``; with it, a per-tensor scale is stored along the shorter
    side (fewer scale / zero-point entries)."""
    r, c = codes.shape
    s = scale.reshape(1, 1) if scale.ndim == 0 else scale
    z = zp.reshape(1, 1) if zp.ndim == 0 else zp
    per_row = max(s.shape[0], z.shape[0]) > 1
    per_col = max(s.shape[1], z.shape[1]) > 1
    if per_row and per_col:
        raise ConfigError(where, "one scale per element (rows and columns) cannot be stored as packed rows")
    if per_col and not transpose_ok:
        raise ConfigError(where, "per-column scales cannot be packed as rows")
    if per_col or (transpose_ok and not per_row and c < r):
        return (codes.T, jnp.broadcast_to(s, (1, c)).reshape(c, 1), jnp.broadcast_to(z, (1, c)).reshape(c, 1),
                True)
    return codes, jnp.broadcast_to(s, (r, 1)), jnp.broadcast_to(z, (r, 1)), False


def _row_bits(qs: QState, degree: np.ndarray, rows: int, where: str) -> np.ndarray | None:
    """Bits of each row of a node/edge tensor with per-row widths (A2Q per node, degree buckets; ``degree``
    is each row's in-degree), else None."""
    plan = qs.plan
    if plan.kind == "weight":
        return None
    if plan.method == "a2q":
        b = np.asarray(qs.state["bitwidth"], np.float64).reshape(-1)
        if b.shape[0] == 1:
            return None
        if b.shape[0] != rows:
            raise ConfigError(where, f"A2Q widths were learned for {b.shape[0]} rows, the tensor has {rows}")
        s = plan.spec
        return np.round(np.clip(b, s.min_bits, s.max_bits)).astype(np.int64)
    if plan.degree_bits is not None:
        bits = np.minimum(np.asarray(plan.degree_bits.lookup(degree)), plan.bits).astype(np.int64)
        if np.any(bits >= 32):
            raise ConfigError(where, f"the {plan.spec.method} degree buckets keep some rows at 32 bits (full "
                                     "precision), which the packed path cannot hold")
        return bits
    return None


def _row_layout(qs: QState, degree: np.ndarray, rows: int, where: str) -> tuple[int, RowGroups | None]:
    """``(bits, None)`` when every row is packed at one width, else ``(0, RowGroups)``."""
    rb = _row_bits(qs, degree, rows, where)
    if rb is None:
        return _container(_max_bits(qs), where), None
    widths = np.unique(rb)
    cont = np.asarray([_container(int(b), where) for b in widths.tolist()], np.int64)
    per_row = cont[np.searchsorted(widths, rb)]
    used = np.unique(per_row)
    if used.shape[0] == 1:
        return int(used[0]), None
    perm = np.argsort(per_row, kind="stable").astype(np.int32)
    inv = np.empty_like(perm)
    inv[perm] = np.arange(perm.shape[0], dtype=np.int32)
    _, counts = np.unique(per_row, return_counts=True)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return 0, RowGroups(jnp.asarray(perm), jnp.asarray(inv), tuple(int(b) for b in used.tolist()),
                        tuple(int(o) for o in offsets.tolist()))


def _pack_rows(codes, scale, zp, bits: int, signed: bool, groups: RowGroups | None):
    """Pack ``codes [N, F]`` (one scale / zero point per row) at ``bits``, or per width group."""
    f = int(codes.shape[1])
    if groups is None:
        return K.PackedMatrix(K.pack(codes, bits, signed), scale, zp, bits, signed, f, "row")
    parts = []
    for g, b in enumerate(groups.group_bits):
        rows = groups.perm[groups.offsets[g]:groups.offsets[g + 1]]
        parts.append(K.PackedMatrix(K.pack(codes[rows], b, signed), scale[rows], zp[rows], b, signed, f, "row"))
    return K.MixedPacked(tuple(parts), groups.perm, groups.inv_perm, groups.group_bits, groups.offsets)


@jax.jit
def _to_integer_jit(qs: QState, x: jax.Array, degree: jax.Array | None) -> Q.IntegerTensor:
    # jitted like the QAT model's quantisers: XLA rewrites some divisions by constants into
    # multiplications, and the codes must see the same arithmetic as the model's evaluation
    ctx = Q.QuantContext(training=False, protect=None, degree=degree)
    return Q.quant_to_integer(qs.plan, qs.state, x, ctx)


def _store(qs: QState | None, x: jax.Array, ctx: Q.QuantContext, in_degree: np.ndarray, where: str) -> StoredMatrix:
    """Hold ``x`` as its quantiser's packed integer codes (``float32`` for a full-precision quantiser)."""
    x = jnp.asarray(x, _F32)
    if qs is None:
        return StoredMatrix(dense=x)
    it = _to_integer_jit(qs, x, ctx.degree)
    codes, scale, zp = _container_codes(qs.plan, it)
    signed = _code_signed(qs.plan)
    bits, groups = _row_layout(qs, in_degree, int(x.shape[0]), where)
    codes, scale, zp, transposed = _orient(codes, scale, zp, where, transpose_ok=groups is None)
    if groups is None:
        return StoredMatrix(packed=_pack_rows(codes, scale, zp, bits, signed, None), transposed=transposed)
    return StoredMatrix(mixed=_pack_rows(codes, scale, zp, 0, signed, groups))


# ------------------------------------------------------------------------------------------------
# layouts: edge ids in the slots, coefficients gathered per call


def _group_stub(groups: RowGroups) -> K.MixedPacked:
    # build_mixed_layouts reads only the grouping of a MixedPacked
    return K.MixedPacked(tuple(None for _ in groups.group_bits), groups.perm, groups.inv_perm, groups.group_bits,
                         groups.offsets)


def _as_ids(layout: K.EllLayout) -> K.EllLayout:
    def ids(w):
        return jnp.asarray(np.rint(np.asarray(w)).astype(np.int32))

    return layout._replace(buckets=tuple(K.EllBucket(b.neighbors, ids(b.weights)) for b in layout.buckets),
                           tail=K.EllBucket(layout.tail.neighbors, ids(layout.tail.weights)),
                           weights=ids(layout.weights), max_abs_weight=0.0, integer_weights=False)


def _xw_layouts(edges: tuple[np.ndarray, np.ndarray], n: int, groups: RowGroups | None, max_width: int):
    """Layouts over node rows whose slots hold edge ids (1-based; 0 = padding), filled per call."""
    s, r = edges
    if s.shape[0] >= _MAX_EDGE_ID:
        raise ConfigError("graph", f"{s.shape[0]} edges exceed the packed layout's edge-id range ({_MAX_EDGE_ID})")
    ids = np.arange(1, s.shape[0] + 1, dtype=np.float32)
    if groups is None:
        layouts = (K.build_ell_layout(s, r, n, edge_weights=ids, max_width=max_width),)
    else:
        layouts = K.build_mixed_layouts(s, r, n, _group_stub(groups), edge_weights=ids, max_width=max_width)
    return tuple(_as_ids(lay) for lay in layouts)


def _message_layouts(edges: tuple[np.ndarray, np.ndarray], n: int, groups: RowGroups | None, max_width: int):
    """Layouts whose source rows are the edges (message ``e`` -> its receiver, weight 1). Edge ids are
    ascending within each receiver, so sums run in the model's edge order."""
    _, r = edges
    e = np.arange(r.shape[0], dtype=np.int64)
    if groups is None:
        return (K.build_ell_layout(e, r, n, num_sources=max(int(r.shape[0]), 1), max_width=max_width),)
    return tuple(K.build_mixed_layouts(e, r, n, _group_stub(groups), max_width=max_width))


def _fill(layout: K.EllLayout, coef: jax.Array) -> K.EllLayout:
    """The id layout with each slot's weight set to its edge's coefficient (padding slots: 0)."""
    ext = jnp.concatenate([jnp.zeros((1,), _F32), coef.astype(_F32)])
    return layout._replace(
        buckets=tuple(K.EllBucket(b.neighbors, ext[b.weights]) for b in layout.buckets),
        tail=K.EllBucket(layout.tail.neighbors, ext[layout.tail.weights]),
        weights=ext[layout.weights],
        max_abs_weight=1.0,
    )


# ------------------------------------------------------------------------------------------------
# the layer, mirroring lpgnas.nn.GNNLayer in evaluation mode


def _edge_list(ga: GraphArrays, edges: str):
    return (ga.loop_senders, ga.loop_receivers) if edges == "loop" else (ga.senders, ga.receivers)


def _contexts(ga: GraphArrays, receivers):
    node_ctx = Q.QuantContext(training=False, protect=None, degree=ga.in_degree)
    edge_ctx = Q.QuantContext(training=False, protect=None, degree=ga.in_degree[receivers])
    return node_ctx, edge_ctx


def _coefficients(spec: LayerSpec, quant: Mapping, params: Mapping, hx, ga: GraphArrays, senders, receivers,
                  edge_ctx) -> jax.Array:
    """Edge coefficients ``[E, heads]`` (``[E, 1]`` for single-coefficient ops), as the layer computes
    them: quantised GCN normalisation, or attention (logits, segment softmax, their quantisers)."""
    n = ga.num_nodes
    e = senders.shape[0]
    h, f = spec.heads, spec.hidden
    if spec.op == "gcn":
        return _fake(quant["edge_weight"], gcn_norm(ga), edge_ctx)[:, None]
    if spec.op in ("sage", "gin"):
        return jnp.ones((e, 1), _F32)
    att = "gat" if spec.op == "gat" else spec.attention
    if att == "gcn":
        coef = _fake(quant["edge_weight"], gcn_norm(ga), edge_ctx)[:, None] * jnp.ones((1, h), _F32)
    elif att == "const":
        coef = jnp.ones((e, h), _F32)
    else:
        hh = hx.reshape(n, h, f)
        logits = attention_logits(att, hh, params["att_src"], params["att_dst"], params.get("att_gen"),
                                  senders, receivers)
        logits = _fake(quant["attention_logit"], logits, edge_ctx)
        coef = segment_softmax(logits, receivers, n)
    return _fake(quant["attention"], coef, edge_ctx)


def _propagate(lp: PackedLayer, it, hx, coef, senders, receivers, n, edge_ctx, backend, interpret):
    """``sum_j msg_ij`` onto the receivers along ``lp.path`` (see :class:`PackedLayer`)."""
    heads = int(coef.shape[1])
    width = int(hx.shape[1])
    f = width // heads
    e = senders.shape[0]
    if lp.path in ("float", "messages"):
        msg = (coef[:, :, None] * hx.reshape(n, heads, f)[senders]).reshape(e, width)
        if lp.path == "float":
            msg = _fake(lp.quant["message"], msg, edge_ctx)
            return jax.ops.segment_sum(msg, receivers, n, indices_are_sorted=True)
        q_msg = lp.quant["message"]
        codes, scale, zp = _container_codes(q_msg.plan, Q.quant_to_integer(q_msg.plan, q_msg.state, msg, edge_ctx))
        codes, scale, zp, _ = _orient(codes, scale, zp, f"{lp.where}.message")
        store = _pack_rows(codes, scale, zp, lp.bits, lp.signed, lp.groups)
        return _aggregate(store, lp.layouts, lp.groups, backend, interpret)
    codes, scale, zp = _container_codes(lp.quant["linear"].plan, it)
    codes, scale, zp, _ = _orient(codes, scale, zp, f"{lp.where}.linear")
    outs = []
    for h in range(heads):
        store = _pack_rows(codes[:, h * f:(h + 1) * f], scale, zp, lp.bits, lp.signed, lp.groups)
        layouts = tuple(_fill(lay, coef[:, h]) for lay in lp.layouts)
        outs.append(_aggregate(store, layouts, lp.groups, backend, interpret))
    return outs[0] if heads == 1 else jnp.concatenate(outs, axis=1)


def _aggregate(store, layouts, groups, backend, interpret):
    if groups is None:
        return K.packed_aggregate(store, layouts[0], backend=backend, interpret=interpret)
    return K.mixed_packed_aggregate(store, layouts, backend=backend, interpret=interpret)


def _batch_norm(z, p, epsilon: float):
    # flax's evaluation-mode batch norm, operation for operation
    y = z - p["bn_mean"].reshape(1, -1)
    mul = jax.lax.rsqrt(p["bn_var"].reshape(1, -1) + epsilon)
    mul = mul * p["bn_scale"].reshape(1, -1)
    y = y * mul
    return y + p["bn_bias"].reshape(1, -1)


def _layer_forward(lp: PackedLayer, h, xq, ga: GraphArrays, backend: str, interpret: bool):
    spec, q, p = lp.spec, lp.quant, lp.params
    n = ga.num_nodes
    senders, receivers = _edge_list(ga, lp.edges)
    node_ctx, edge_ctx = _contexts(ga, receivers)
    if xq is None:
        xq = _fake(q["input"], h, node_ctx)
    xw = xq @ lp.weights["kernel"].value()
    it = None
    if q["linear"] is None:
        hx = xw
    else:  # the linear codes (dequantised: bit for bit the fake-quantised XW)
        it = Q.quant_to_integer(q["linear"].plan, q["linear"].state, xw, node_ctx)
        hx = Q.dequantize(*it)
    # computed per call, inside the same jitted program as the rest (as the QAT model does): XLA's
    # algebraic rewrites then treat both alike, which keeps the quantisers' rounding decisions equal
    coef = _coefficients(spec, q, p, hx, ga, senders, receivers, edge_ctx)
    total = _propagate(lp, it, hx, coef, senders, receivers, n, edge_ctx, backend, interpret)
    if spec.op in ("sage", "attn") and spec.aggregator == "mean":
        count = jax.ops.segment_sum(jnp.ones(receivers.shape, _F32), receivers, n, indices_are_sorted=True)
        total = total / jnp.maximum(count, 1.0).reshape(n, 1)
        if spec.op == "attn" and spec.attention != "const":  # the coefficient-weighted mean (see GNNLayer)
            total = scale_heads(total, coefficient_scale(coef, receivers, n))
    agg = _fake(q["aggregate"], total, node_ctx)
    if spec.op == "gcn":
        out = agg
    elif spec.op == "sage":
        out = agg + xq @ lp.weights["root"].value()
    elif spec.op == "gin":
        z = agg + (1.0 + p["eps"]) * hx + p["bias1"][None, :]
        z = jax.nn.relu(_batch_norm(z, p, lp.bn_epsilon))
        out = z @ lp.weights["kernel2"].value()
    else:
        out = agg if spec.concat else agg.reshape(n, spec.heads, spec.hidden).mean(axis=1)
    out = out + p["bias"][None, :]
    if spec.skip:
        out = out + (xq @ lp.weights["skip_kernel"].value() if "skip_kernel" in lp.weights else xq)
    return _fake(q["output"], out, node_ctx)


def _forward(pm: PackedModel, backend: str, interpret: bool) -> jax.Array:
    h = None
    for i, lp in enumerate(pm.layers):
        xq = pm.features.value() if i == 0 else None
        h = activation(lp.spec.activation, _layer_forward(lp, h, xq, pm.graph, backend, interpret))
    if pm.head is not None:
        h = h @ pm.head["kernel"] + pm.head["bias"].reshape(1, -1)
    return h


_forward_jit = jax.jit(_forward, static_argnames=("backend", "interpret"))


# ------------------------------------------------------------------------------------------------
# packing


def _check_graph(model: GNN, graph) -> None:
    if isinstance(graph, GraphDataset) or getattr(model.arch, "task", "node") != "node":
        raise ConfigError("task", "packed inference runs node-level (transductive) models only; graph-level "
                                  "models are not supported yet")
    if not isinstance(graph, Graph):
        raise ConfigError("graph", f"expected a lpgnas.data.Graph, got {type(graph).__name__}")
    in_dim = int(model.layers[0].in_dim)
    if graph.num_features != in_dim:
        raise ConfigError("graph", f"the model takes {in_dim} input features, the graph has {graph.num_features}")
    n = graph.num_nodes
    for _, m in nnx.iter_graph(model):
        if isinstance(m, Q.StatefulQuantizer) and m.plan.kind == "node" and m.plan.shape[0] not in (1, n):
            raise ConfigError("graph", f"the model's per-node quantisers were built for {m.plan.shape[0]} nodes, "
                                       f"the graph has {n}")


def _check_ops(model: GNN) -> None:
    """Refuse what the packed path does not run yet: propagation blocks (APPNP / smoothness-aware
    propagation) and ``linear`` layers."""
    if model.arch.propagation is not None:
        raise ConfigError("propagation", "packed inference does not run propagation blocks (APPNP / smoothness-"
                                         "aware propagation) yet; evaluate such a model with lpgnas train")
    for i, layer in enumerate(model.layers):
        if layer.spec.op == "linear":
            raise ConfigError(f"layers[{i}].op", "packed inference does not run linear (MLP) layers yet")


def _pack_layer(i: int, layer, ga: GraphArrays, in_degree: np.ndarray, host_edges: dict, cache: dict,
                max_width: int, messages: str) -> tuple[PackedLayer, tuple[str, ...]]:
    spec = layer.spec
    where = f"layers[{i}]"
    n = ga.num_nodes
    if spec.op in ("sage", "attn") and spec.aggregator == "max":
        raise ConfigError(f"{where}.aggregator", "max aggregation has no packed kernel (the kernels compute "
                                                 "weighted sums); use add or mean")
    quant = {c: _qstate(getattr(layer, f"q_{c}")) for c in _RUN_COMPONENTS}
    w_ctx = Q.QuantContext()
    weights = {}
    for name, w in _layer_matrices(layer).items():
        qs = _qstate(layer.q_weight2 if name == "kernel2" else layer.q_weight)
        weights[name] = _store(qs, w, w_ctx, in_degree, f"{where}.weight")
    params = _layer_params(layer)
    bn_eps = float(layer.bn.epsilon) if spec.op == "gin" else 0.0
    edges = "loop" if spec.op in ("gcn", "gat", "attn") else "plain"
    lin, q_msg = quant["linear"], quant["message"]
    approx: tuple[str, ...] = ()
    if q_msg is not None and messages == "exact" and host_edges[edges][1].shape[0] > 0:
        path, target, qs = "messages", "message", q_msg
        rows = int(host_edges[edges][1].shape[0])
        degree = in_degree[host_edges[edges][1]]
    elif lin is not None:
        path, target, qs, rows, degree = "xw", "linear", lin, n, in_degree
        approx = (f"{where}.message",) if q_msg is not None else ()
    else:
        path, target, qs = "float", "", None
    bits, signed, groups = 0, False, None
    if qs is not None:
        if qs.plan.method != "a2q" and qs.plan.granularity == "column":
            raise ConfigError(f"{where}.{target}", f"per-column scales ({qs.plan.spec.method}, granularity "
                                                   "'column') cannot be packed as rows; use 'tensor' or 'row'")
        bits, groups = _row_layout(qs, degree, rows, f"{where}.{target}")
        signed = _code_signed(qs.plan)
    layouts: tuple = ()
    if path != "float":
        grouping = None if groups is None else (np.asarray(groups.perm).tobytes(), groups.offsets)
        key = (path, edges, grouping)
        if key not in cache:
            build = _message_layouts if path == "messages" else _xw_layouts
            cache[key] = build(host_edges[edges], n, groups, max_width)
        layouts = cache[key]
    lp = PackedLayer(weights, params, quant, layouts, groups, spec, edges, path, bits, signed, bn_eps, where)
    return lp, approx


def _layer_matrices(layer) -> dict:
    """The weight matrices a layer uses (by name), as arrays."""
    spec = layer.spec
    out = {}
    for name in _WEIGHT_NAMES:
        var = getattr(layer, name, None)
        if var is None or (name == "root" and spec.op != "sage") or (name == "skip_kernel" and not spec.skip):
            continue
        out[name] = jnp.asarray(var[...])
    return out


def _layer_params(layer) -> dict:
    """The small float parameters of a layer (biases, attention vectors, GIN's eps and batch norm)."""
    params = {name: jnp.asarray(getattr(layer, name)[...]) for name in _PARAM_NAMES if hasattr(layer, name)}
    if layer.spec.op == "gin":
        bn = layer.bn
        params.update(bn_mean=bn.mean[...], bn_var=bn.var[...], bn_scale=bn.scale[...], bn_bias=bn.bias[...])
    return params


def _fp32_weight_bytes(model: GNN) -> int:
    total = 0
    for layer in model.layers:
        arrays = list(_layer_matrices(layer).values()) + list(_layer_params(layer).values())
        total += sum(int(jnp.asarray(a, _F32).nbytes) for a in arrays)
    if model.head is not None:
        total += int(model.head.kernel[...].nbytes) + int(model.head.bias[...].nbytes)
    return total


def pack_model(model: GNN, graph: Graph, *, messages: str = "exact", max_width: int = 128) -> PackedModel:
    """Pack a trained node-level ``model`` for inference on ``graph`` (the graph it was trained on,
    features preprocessed the same way).

    messages: where a layer quantises its messages, ``"exact"`` packs the quantised messages (one row per
      edge, the message quantiser's codes) and sums them with the kernel, as the QAT model does;
      ``"fused"`` packs the quantised ``X W`` instead (one row per node) and lets the kernel apply the edge
      coefficients, skipping the per-edge rounding (less memory traffic, approximate; such components
      are listed in ``PackedModel.approximated``). Layers without a message quantiser always take the
      fused ``X W`` path, which is then exact.
    max_width: widest ELL bucket of the neighbour layouts.
    """
    if messages not in MESSAGE_MODES:
        raise ConfigError("messages", f"expected one of {', '.join(MESSAGE_MODES)}, got {messages!r}")
    _check_graph(model, graph)
    _check_ops(model)
    n = graph.num_nodes
    g = graph.graph
    ga = graph_arrays(g.senders, g.receivers, n, edge_weight=g.edges)
    in_degree = np.asarray(ga.in_degree)
    host_edges = {"loop": (np.asarray(ga.loop_senders), np.asarray(ga.loop_receivers)),
                  "plain": (np.asarray(ga.senders), np.asarray(ga.receivers))}
    cache: dict = {}
    layers, approx = [], []
    for i, layer in enumerate(model.layers):
        lp, a = _pack_layer(i, layer, ga, in_degree, host_edges, cache, max_width, messages)
        layers.append(lp)
        approx.extend(a)
    x = jnp.asarray(np.asarray(graph.features, np.float32))
    node_ctx = Q.QuantContext(training=False, protect=None, degree=ga.in_degree)
    features = _store(_qstate(model.layers[0].q_input), x, node_ctx, in_degree, "layers[0].input")
    head = None
    if model.head is not None:
        head = {"kernel": jnp.asarray(model.head.kernel[...]), "bias": jnp.asarray(model.head.bias[...])}
    return PackedModel(tuple(layers), features, head, ga, int(model.num_classes), int(x.nbytes),
                       _fp32_weight_bytes(model), tuple(approx))


# ------------------------------------------------------------------------------------------------
# running and timing


def run_packed(packed: PackedModel, *, backend: str = "auto", interpret: bool | None = None) -> jax.Array:
    """Logits ``[N, num_classes]`` of the packed model. ``backend``: ``"auto"`` (Pallas on GPU/TPU, the
    pure-JAX reference on CPU), ``"reference"``, ``"pallas"`` (interpret mode on CPU), ``"pallas_gpu"``,
    ``"pallas_tpu"``; ``interpret=True`` forces interpret-mode Pallas (testing)."""
    backend, interpret = K.resolve_backend(backend, interpret)
    return _forward_jit(packed, backend=backend, interpret=interpret)


def _timed(call, arg, repeats: int) -> tuple[Any, float]:
    out = jax.block_until_ready(call(arg))
    times = []
    for _ in range(max(int(repeats), 1)):
        t0 = time.perf_counter()
        jax.block_until_ready(call(arg))
        times.append(time.perf_counter() - t0)
    return out, float(np.median(times)) * 1e3


def time_packed(packed: PackedModel, *, backend: str = "auto", interpret: bool | None = None,
                repeats: int = 20) -> tuple[jax.Array, float, float]:
    """``(logits, compile_seconds, median latency in ms)`` of :func:`run_packed` (compile excluded)."""
    backend, interpret = K.resolve_backend(backend, interpret)
    t0 = time.perf_counter()
    compiled = _forward_jit.lower(packed, backend=backend, interpret=interpret).compile()
    compile_s = time.perf_counter() - t0
    logits, ms = _timed(compiled, packed, repeats)
    return logits, compile_s, ms


def _model_inputs(graph: Graph):
    g = graph.graph
    ga = graph_arrays(g.senders, g.receivers, graph.num_nodes, edge_weight=g.edges)
    return jnp.asarray(np.asarray(graph.features, np.float32)), ga


def time_model(model: GNN, graph: Graph, *, repeats: int = 20) -> tuple[jax.Array, float, float]:
    """``(logits, compile_seconds, median latency in ms)`` of the jitted ``model(x, ga, training=False)``
    on dense ``float32`` features (the XLA evaluation the packed path is compared with)."""
    graphdef, state = nnx.split(model)
    x, ga = _model_inputs(graph)

    def evaluate(st, x, ga):
        return nnx.merge(graphdef, st)(x, ga, training=False)

    t0 = time.perf_counter()
    compiled = jax.jit(evaluate).lower(state, x, ga).compile()
    compile_s = time.perf_counter() - t0
    logits, ms = _timed(lambda st: compiled(st, x, ga), state, repeats)
    return logits, compile_s, ms


def qat_logits(model: GNN, graph: Graph) -> jax.Array:
    """The QAT model's evaluation ``model(x, ga, training=False)`` on ``graph`` (jitted)."""
    return time_model(model, graph, repeats=0)[0]


def _copy_common(dst, src):
    if isinstance(dst, Mapping):
        lookup = {str(k): v for k, v in src.items()}
        return {k: _copy_common(v, lookup[str(k)]) for k, v in dst.items()}
    return src


def fp32_twin(model: GNN) -> GNN:
    """The same architecture without quantisation, holding ``model``'s weights (latency baseline)."""
    arch = dataclasses.replace(model.arch, quant=None)
    twin = GNN(arch, int(model.layers[0].in_dim), int(model.num_classes), rngs=nnx.Rngs(0))
    state = nnx.state(twin)
    src = nnx.to_pure_dict(nnx.state(model))
    nnx.replace_by_pure_dict(state, _copy_common(nnx.to_pure_dict(state), src))
    nnx.update(twin, state)
    return twin


def agreement(logits_a, logits_b) -> float:
    """Fraction of nodes whose argmax (predicted class) is the same under both logits."""
    a = np.argmax(np.asarray(logits_a), axis=-1)
    b = np.argmax(np.asarray(logits_b), axis=-1)
    return float(np.mean(a == b))


def _accuracy(logits, labels: np.ndarray, idx: np.ndarray) -> float:
    idx = np.asarray(idx, np.int64)
    if idx.size == 0:
        return float("nan")
    pred = np.argmax(np.asarray(logits), axis=-1)
    return float(np.mean(pred[idx] == np.asarray(labels)[idx]))


def infer_report(model: GNN, graph: Graph, split: Split | None = None, *, backend: str = "auto",
                 interpret: bool | None = None, messages: str = "exact", repeats: int = 20,
                 fp32_baseline: bool = True) -> dict:
    """Pack, run and measure: accuracies (percent) on ``split``, agreement with the QAT evaluation,
    bytes, latencies (median ms, compile excluded) of the packed path, the QAT model and (when
    ``fp32_baseline``) the same architecture in ``float32``."""
    packed = pack_model(model, graph, messages=messages)
    concrete, interp = K.resolve_backend(backend, interpret)
    logits, compile_s, ms = time_packed(packed, backend=concrete, interpret=interp, repeats=repeats)
    qat, _, qat_ms = time_model(model, graph, repeats=repeats)
    out: dict[str, Any] = {}
    if split is not None:
        for name, idx in (("test_acc", split.test), ("val_acc", split.val)):
            out[name] = round(100 * _accuracy(logits, graph.labels, idx), 3)
            out[f"qat_{name}"] = round(100 * _accuracy(qat, graph.labels, idx), 3)
    out["agreement"] = round(agreement(logits, qat), 6)
    out.update({k: int(v) for k, v in packed.memory()._asdict().items()})
    out.update(latency_ms=round(ms, 4), compile_seconds=round(compile_s, 3), qat_latency_ms=round(qat_ms, 4),
               backend=concrete, interpret=bool(interp) and concrete != "reference", messages=messages,
               repeats=int(repeats),
               approximated=list(packed.approximated))
    if fp32_baseline:
        out["fp32_latency_ms"] = round(time_model(fp32_twin(model), graph, repeats=repeats)[2], 4)
    return out
