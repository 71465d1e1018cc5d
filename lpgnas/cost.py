"""Cost model of a (quantised) GNN: model size, feature memory, BitOPs and compression.

A model is a list of :class:`LayerCost` (one per layer: kind, sizes and per-component bits). Bits
may be Python numbers or JAX arrays (e.g. expected bits ``sum_k softmax(theta)_k * bits_k`` in a
differentiable search): every quantity is a polynomial in the bits, so the report is
differentiable in them. With Python numbers the arithmetic is exact Python arithmetic.

Counting rules (``N`` nodes, ``E`` edges without self loops, ``E' = E + N`` for GCN/GAT which add
self loops, ``D = heads * out_dim`` the GAT output width, ``b_c`` the bits of component ``c``):

Parameters (weights at ``b_weight``; biases always 32-bit):

=======  ====================================  ===========
kind     weights                               biases
=======  ====================================  ===========
linear   in*out                                out
gcn      in*out                                out
sage     2*in*out (self + neighbour)           out
gin      in*out + out*out (2-layer MLP)        2*out
gat      in*D + 2*D (attention vectors)        D
skip     in*out (a residual projection)        none
=======  ====================================  ===========

A ``skip`` entry is the projection of a residual connection between widths that differ: it reads
the layer's input and adds to its output, so it holds no tensor of its own and costs
``N*in*out * b_weight * b_input`` BitOPs.

Feature memory (every tensor the layer holds, elements x bits of its component):

* linear: ``N*in`` input, ``N*out`` linear, ``N*out`` output;
* gcn: input, ``N*out`` linear, ``E'`` edge_weight, ``E'*out`` message, ``N*out`` aggregate, output;
* gat: input, ``N*D`` linear, ``E'*H`` attention_logit, ``E'*H`` attention, ``E'*D`` message,
  ``N*D`` aggregate, ``N*D`` output;
* sage / gin (aggregate first): input, ``E*in`` message, ``N*in`` aggregate, ``N*out`` linear
  (GIN: the MLP hidden activation), ``N*out`` output.

BitOPs (a multiply-accumulate of ``b1`` x ``b2`` bits costs ``b1 * b2``; an unweighted addition of
``b``-bit values costs ``b``):

* linear: ``N*in*out * b_weight * b_input``;
* gcn: the above + aggregation ``E'*out * b_edge_weight * b_linear``;
* gat: ``N*in*D * b_weight * b_input`` + logits ``2*N*D * b_weight * b_linear``
  + aggregation ``E'*D * b_attention * b_linear``;
* sage: ``E*in * b_message`` (sum) + ``N*in*out * b_weight * (b_input + b_aggregate)``;
* gin: ``E*in * b_message`` + ``N*in*out * b_weight * b_aggregate`` + ``N*out*out * b_weight * b_linear``.

Propagation (:class:`PropagationCost`, an ``Architecture.propagation`` block: ``K`` steps on
``C`` channels, ``b_k`` the bits of the tensor step ``k`` holds, ``k = 0..K``: ``X0 = Q_0(logits)``,
``F^1 .. F^K``; no weights):

* feature memory: ``N*C`` elements at ``b_k`` for each of the ``K + 1`` tensors, plus the ``E'``
  normalised edge weights at ``b_edge_weight`` (32: they are not quantised);
* BitOPs: the ``K`` sparse products ``A_hat F^k`` (``k = 0..K-1``), each ``E'*C`` multiply-
  accumulates of an edge weight by a ``b_k``-bit feature: ``sum_k E'*C * b_edge_weight * b_k``
  (the per-step teleport combination, ``2*N*C`` scalings, is not counted).

``compression = (fp32 model bits + fp32 feature bits) / (model bits + feature bits)``.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Sequence

from lpgnas._validate import positive_int
from lpgnas.arch import SOFTMAX_ATTENTIONS
from lpgnas.errors import ConfigError

__all__ = [
    "LAYER_KINDS",
    "BIT_FIELDS",
    "LayerCost",
    "PropagationCost",
    "CostReport",
    "layer_cost",
    "model_cost",
    "with_fp32_params",
    "layer_cost_from_config",
    "layer_cost_shape",
    "gnn_cost",
    "norm_params",
    "readout_params",
]

LAYER_KINDS = ("linear", "gcn", "gat", "gin", "sage", "skip")
BIT_FIELDS = (
    "weight_bits",
    "input_bits",
    "linear_bits",
    "edge_weight_bits",
    "attention_logit_bits",
    "attention_bits",
    "message_bits",
    "aggregate_bits",
    "output_bits",
)
Bits = Any  # float | jax.Array


class LayerCost(NamedTuple):
    """One layer: ``kind`` in :data:`LAYER_KINDS`, sizes, and the bits of each component."""

    kind: str
    in_dim: int
    out_dim: int
    heads: int = 1
    weight_bits: Bits = 32.0
    input_bits: Bits = 32.0
    linear_bits: Bits = 32.0
    edge_weight_bits: Bits = 32.0
    attention_logit_bits: Bits = 32.0
    attention_bits: Bits = 32.0
    message_bits: Bits = 32.0
    aggregate_bits: Bits = 32.0
    output_bits: Bits = 32.0


class PropagationCost(NamedTuple):
    """K propagation steps on ``width`` channels; ``step_bits``: ``K + 1`` bits (``X0, F^1 .. F^K``)
    or one number for all of them."""

    steps: int
    width: int
    step_bits: Any = 32.0
    edge_weight_bits: Bits = 32.0

    def bits(self) -> list:
        """The ``K + 1`` per-tensor bits."""
        if isinstance(self.step_bits, (list, tuple)):
            if len(self.step_bits) != self.steps + 1:
                raise ConfigError("step_bits", f"needs {self.steps + 1} entries (K + 1), got {len(self.step_bits)}")
            return list(self.step_bits)
        return [self.step_bits] * (self.steps + 1)


class CostReport(NamedTuple):
    """Costs in bits / bit operations (see the module docstring for the counting rules)."""

    model_size_bits: Any
    fp32_model_size_bits: Any
    feature_bits: Any
    fp32_feature_bits: Any
    bitops: Any
    compression: Any
    avg_feature_bits: Any
    fp32_bitops: Any = 0.0


class _Counts(NamedTuple):
    weights: Bits  # bits of weights
    weight_elems: int
    bias_elems: int
    features: Bits
    feature_elems: int
    bitops: Bits


def _check(layer: LayerCost) -> None:
    if layer.kind not in LAYER_KINDS:
        raise ConfigError("kind", f"{layer.kind!r} is not one of {', '.join(LAYER_KINDS)}")
    for name in ("in_dim", "out_dim", "heads"):
        positive_int(name, getattr(layer, name))


def _counts(layer: LayerCost, n: int, e: int) -> _Counts:
    _check(layer)
    k, fi, fo, h = layer.kind, layer.in_dim, layer.out_dim, layer.heads
    b = layer
    ep = e + n  # with self loops
    if k == "skip":
        return _Counts(fi * fo * b.weight_bits, fi * fo, 0, 0.0, 0, n * fi * fo * b.weight_bits * b.input_bits)
    if k in ("linear", "gcn"):
        w, bias = fi * fo, fo
    elif k == "sage":
        w, bias = 2 * fi * fo, fo
    elif k == "gin":
        w, bias = fi * fo + fo * fo, 2 * fo
    else:  # gat
        d = h * fo
        w, bias = fi * d + 2 * d, d
    # (elements, bits) of every held tensor, and BitOPs
    if k == "linear":
        feats = [(n * fi, b.input_bits), (n * fo, b.linear_bits), (n * fo, b.output_bits)]
        ops = n * fi * fo * b.weight_bits * b.input_bits
    elif k == "gcn":
        feats = [
            (n * fi, b.input_bits),
            (n * fo, b.linear_bits),
            (ep, b.edge_weight_bits),
            (ep * fo, b.message_bits),
            (n * fo, b.aggregate_bits),
            (n * fo, b.output_bits),
        ]
        ops = n * fi * fo * b.weight_bits * b.input_bits + ep * fo * b.edge_weight_bits * b.linear_bits
    elif k == "gat":
        d = h * fo
        feats = [
            (n * fi, b.input_bits),
            (n * d, b.linear_bits),
            (ep * h, b.attention_logit_bits),
            (ep * h, b.attention_bits),
            (ep * d, b.message_bits),
            (n * d, b.aggregate_bits),
            (n * d, b.output_bits),
        ]
        ops = (
            n * fi * d * b.weight_bits * b.input_bits
            + 2 * n * d * b.weight_bits * b.linear_bits
            + ep * d * b.attention_bits * b.linear_bits
        )
    else:  # sage, gin: aggregate first
        feats = [
            (n * fi, b.input_bits),
            (e * fi, b.message_bits),
            (n * fi, b.aggregate_bits),
            (n * fo, b.linear_bits),
            (n * fo, b.output_bits),
        ]
        if k == "sage":
            ops = e * fi * b.message_bits + n * fi * fo * b.weight_bits * (b.input_bits + b.aggregate_bits)
        else:
            ops = (
                e * fi * b.message_bits
                + n * fi * fo * b.weight_bits * b.aggregate_bits
                + n * fo * fo * b.weight_bits * b.linear_bits
            )
    fbits = 0.0
    for elems, bits in feats:
        fbits = fbits + elems * bits
    return _Counts(w * b.weight_bits, w, bias, fbits, sum(el for el, _ in feats), ops)


def _fp32(layer: LayerCost) -> LayerCost:
    return layer._replace(**{f: 32.0 for f in BIT_FIELDS})


def _propagation_counts(p: PropagationCost, n: int, e: int) -> _Counts:
    positive_int("steps", p.steps)
    positive_int("width", p.width)
    ep = e + n
    bits = p.bits()
    feats = ep * p.edge_weight_bits
    ops = 0.0
    for k, b in enumerate(bits):
        feats = feats + n * p.width * b
        if k < p.steps:
            ops = ops + ep * p.width * p.edge_weight_bits * b
    return _Counts(0.0, 0, 0, feats, ep + (p.steps + 1) * n * p.width, ops)


def model_cost(layers: Sequence[LayerCost], num_nodes: int, num_edges: int,
               propagation: PropagationCost | None = None) -> CostReport:
    """Total cost of ``layers`` (and of the ``propagation`` of their output, if any) on a graph with
    ``num_nodes`` nodes and ``num_edges`` edges (each undirected edge counted in both directions, no
    self loops)."""
    if not layers:
        raise ConfigError("layers", "a model needs at least one layer")
    q = [_counts(layer, num_nodes, num_edges) for layer in layers]
    f = [_counts(_fp32(layer), num_nodes, num_edges) for layer in layers]
    if propagation is not None:
        q.append(_propagation_counts(propagation, num_nodes, num_edges))
        f.append(_propagation_counts(propagation._replace(step_bits=32.0, edge_weight_bits=32.0),
                                     num_nodes, num_edges))
    model = sum(c.weights + 32 * c.bias_elems for c in q)
    fp32_model = sum(c.weights + 32 * c.bias_elems for c in f)
    feat = sum(c.features for c in q)
    fp32_feat = sum(c.features for c in f)
    elems = sum(c.feature_elems for c in q)
    bitops = sum(c.bitops for c in q)
    fp32_bitops = sum(c.bitops for c in f)
    compression = (fp32_model + fp32_feat) / (model + feat)
    avg = feat / elems if elems else 0.0  # a lone skip projection holds no tensor
    return CostReport(model, fp32_model, feat, fp32_feat, bitops, compression, avg, fp32_bitops)


def with_fp32_params(report: CostReport, params) -> CostReport:
    """``report`` plus ``params`` full-precision parameters that hold no node tensor (a graph
    model's scorers, which read pooled vectors): they add to both model sizes only."""
    if not params:
        return report
    model = report.model_size_bits + 32 * params
    fp32_model = report.fp32_model_size_bits + 32 * params
    return report._replace(model_size_bits=model, fp32_model_size_bits=fp32_model,
                           compression=(fp32_model + report.fp32_feature_bits) / (model + report.feature_bits))


def layer_cost(layer: LayerCost, num_nodes: int, num_edges: int) -> CostReport:
    """:func:`model_cost` of a single layer."""
    return model_cost([layer], num_nodes, num_edges)


def layer_cost_from_config(
    config, layer: int, kind: str, in_dim: int, out_dim: int, heads: int = 1, degree=None
) -> LayerCost:
    """A :class:`LayerCost` with the (average) bits of ``config`` (a ``QuantConfig`` or None)."""
    from lpgnas.quant import avg_bits

    bits = {}
    for field in BIT_FIELDS:
        component = field[: -len("_bits")]
        if config is None:
            bits[field] = 32.0
            continue
        spec = config.spec(layer, component)
        table = config.degree_table(layer, component) if component != "weight" else None
        if (
            degree is not None
            and table is not None
            and spec.method in ("affine", "dq", "sgquant")
        ):  # a 32-bit spec with a lower-bit table quantises the rows the table says (as make_quantizer does)
            import jax.numpy as jnp

            b = jnp.minimum(table.lookup(degree), spec.bits).astype(jnp.float32)
            bits[field] = jnp.mean(b)
        else:
            bits[field] = avg_bits(spec)
    return LayerCost(kind, in_dim, out_dim, heads, **bits)


def norm_params(arch) -> int:
    """Parameters of the batch norms an :class:`~lpgnas.arch.Architecture` adds (graph tasks with
    ``norm="batch"``: after every non-``gin`` layer, a scale and a shift per channel once the running
    statistics are folded in, counted at 32 bits; a ``gin`` layer's own batch norm is part of its MLP)."""
    if arch.task != "graph" or arch.norm != "batch":
        return 0
    return sum(2 * spec.out_dim() for spec in arch.layers if spec.op != "gin")


def readout_params(arch, in_dim: int, num_classes: int) -> int:
    """Full-precision parameters of a graph model's read-out, which reads pooled vectors (so it adds to
    the model size only): the linear scorer of every pooled representation (the input and every layer
    with ``arch.jk``, else the last layer), or with ``arch.head`` one MLP on them side by side, plus
    :func:`norm_params`. Node tasks: 0 (their classifier head is a node-level layer)."""
    if arch.task != "graph":
        return 0
    dims = [int(in_dim)] + [spec.out_dim() for spec in arch.layers]
    used = dims if arch.jk else dims[-1:]
    if arch.head:
        scorers = sum(used) * arch.head + arch.head + arch.head * num_classes + num_classes
    else:
        scorers = sum(d * num_classes + num_classes for d in used)
    return int(scorers) + norm_params(arch)


_OP_KIND = {"gcn": "gcn", "gat": "gat", "attn": "gat", "sage": "sage", "gin": "gin", "linear": "linear"}


def layer_cost_shape(spec) -> tuple[str, int, int]:
    """``(kind, out_dim, heads)`` a :class:`~lpgnas.arch.LayerSpec` is counted as: ``gat`` / ``attn``
    with a softmax attention type by the ``gat`` rule (``hidden`` per head); an ``attn`` layer with
    ``const`` / ``gcn`` attention (fixed edge weights) and every other op as one head of width
    ``heads x hidden`` (an ``attn`` layer's unused attention vectors are not part of the model)."""
    kind = _OP_KIND[spec.op]
    if spec.op == "attn" and spec.attention not in SOFTMAX_ATTENTIONS:
        kind = "gcn"
    if kind == "gat":
        return kind, spec.hidden, spec.heads
    return kind, spec.hidden * spec.heads, 1


def gnn_cost(model, num_nodes: int, num_edges: int, *, node_degree=None, edge_degree=None) -> CostReport:
    """The cost of a built (possibly trained) :class:`lpgnas.nn.GNN`, reading each component's bits
    from its quantiser (learned A2Q bits included; topology-aware bits averaged over
    ``node_degree`` for node tensors and ``edge_degree`` for edge tensors when given).

    Each layer is counted as :func:`layer_cost_shape` says, a residual projection as a ``skip``
    entry (as the search counts them in :func:`lpgnas.supernet.architecture_cost`); a node model's
    classifier head at full precision, a graph model's read-out as :func:`readout_params` counts it
    (on pooled vectors: parameters only); a propagation block
    (``model.propagation``) as a :class:`PropagationCost` with its per-step bits.
    """
    from lpgnas.quant import avg_bits

    edge_components = ("edge_weight", "attention_logit", "attention", "message")
    layers = []
    for layer in model.layers:
        spec = layer.spec
        bits = {}
        for field in BIT_FIELDS:
            component = field[: -len("_bits")]
            q = getattr(layer, f"q_{component}")
            degree = edge_degree if component in edge_components else node_degree
            bits[field] = avg_bits(q, None if component == "weight" else degree)
        kind, out_dim, heads = layer_cost_shape(spec)
        layers.append(LayerCost(kind, layer.in_dim, out_dim, heads, **bits))
        if getattr(layer, "skip_kernel", None) is not None:
            layers.append(LayerCost("skip", layer.in_dim, layer.out_dim, weight_bits=bits["weight_bits"],
                                    input_bits=bits["input_bits"]))
    if getattr(model, "head", None) is not None:
        layers.append(LayerCost("linear", model.head.in_features, model.head.out_features))
    arch = getattr(model, "arch", None)
    scorer_params = readout_params(arch, model.layers[0].in_dim, model.num_classes) if arch is not None else 0
    prop = getattr(model, "propagation", None)
    pcost = None
    if prop is not None:
        pcost = PropagationCost(prop.num_steps, int(model.num_classes), prop.step_bits(node_degree))
    return with_fp32_params(model_cost(layers, num_nodes, num_edges, pcost), scorer_params)
