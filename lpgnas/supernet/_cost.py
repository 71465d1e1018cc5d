"""Costs of supernets (expected, differentiable) and of derived architectures (exact), both on
:mod:`lpgnas.cost`'s counting rules.

Expected cost. The decisions are independent categorical variables and every cost quantity of
:mod:`lpgnas.cost` is multilinear in each layer's input width, per-head width, head count and
component bits. The expectation of a multilinear function of independent variables is the function
at their expectations, so the expected cost is ``lpgnas.cost`` evaluated at the expected bits
``sum_o p_o bits_o`` and expected widths. ``lpgnas.cost`` takes integer widths, so the function is
evaluated at the corners of the box of candidate widths (weights in [0, 1]: the multilinear
interpolation, exact for a multilinear function and numerically benign). Attention types use the
``gat`` counting rule (softmax attention: logits, attention vectors) or the ``gcn`` one (const/gcn
coefficients, with width ``heads * hidden``), mixed by their probabilities. Depth: each layer
counts with the probability that the depth includes it; the classifier's input width is mixed
over depths. A skip connection adds a projection ``in x out`` (weights at the weight bits).

Normalisation: by the same quantity for the largest architecture of the space in full precision.
"""

from __future__ import annotations

import itertools
from typing import Any, NamedTuple, Sequence

from lpgnas.arch import SOFTMAX_ATTENTIONS, Architecture
from lpgnas.cost import (BIT_FIELDS, CostReport, LayerCost, layer_cost_from_config, layer_cost_shape, model_cost,
                         readout_params, with_fp32_params)
from lpgnas.errors import ConfigError
from lpgnas.supernet._relax import Relax

__all__ = ["COST_TARGETS", "ExpectedCost", "expected_cost", "reference_cost", "architecture_cost"]

COST_TARGETS = ("size", "buffer", "bitops")
_COMPONENTS = tuple(f[: -len("_bits")] for f in BIT_FIELDS)


class ExpectedCost(NamedTuple):
    """Expected model size (bits), feature memory (bits) and BitOPs of a relaxed supernet."""

    model_size_bits: Any
    buffer_bits: Any
    bitops: Any

    def target(self, name: str):
        if name == "size":
            return self.model_size_bits
        if name == "buffer":
            return self.buffer_bits
        if name == "bitops":
            return self.bitops
        raise ConfigError("cost", f"unknown cost target {name!r}; allowed: {', '.join(COST_TARGETS)}")


class _LayerX(NamedTuple):
    """Expected description of one layer position (values may be traced)."""

    active: Any  # probability that the layer is part of the model
    in_dim: Any  # expected input width
    in_range: tuple[int, int]
    hidden: Any
    hidden_range: tuple[int, int]
    heads: Any
    heads_range: tuple[int, int]
    p_softmax: Any  # probability of a softmax attention type
    p_skip: Any
    out_width: Any  # width of the skip projection's output
    bits: dict


def _interp(fn, points: Sequence[tuple[Any, tuple[int, int]]]):
    """Multilinear interpolation of ``fn`` (returning a tuple) at ``points`` (value, (lo, hi))."""
    total = None
    for corner in itertools.product((0, 1), repeat=len(points)):
        w = 1.0
        args = []
        for c, (x, (lo, hi)) in zip(corner, points):
            if lo == hi:
                if c == 1:
                    w = 0.0
                args.append(lo)
                continue
            args.append(hi if c else lo)
            w = w * ((x - lo) / (hi - lo) if c else (hi - x) / (hi - lo))
        if isinstance(w, float) and w == 0.0:
            continue
        vals = fn(*args)
        total = tuple(w * v for v in vals) if total is None else tuple(t + w * v for t, v in zip(total, vals))
    return total


def _report(kind: str, in_dim: int, out_dim: int, heads: int, bits: dict, n, e):
    r = model_cost([LayerCost(kind, int(in_dim), int(out_dim), int(heads), **bits)], n, e)
    return r.model_size_bits, r.feature_bits, r.bitops


def _layer_expected(lx: _LayerX, n, e):
    bits = {f"{c}_bits": lx.bits.get(c, 32.0) for c in _COMPONENTS}
    gat = _interp(lambda i, f, h: _report("gat", i, f, h, bits, n, e),
                  [(lx.in_dim, lx.in_range), (lx.hidden, lx.hidden_range), (lx.heads, lx.heads_range)])
    width = lx.hidden * lx.heads
    w_range = (lx.hidden_range[0] * lx.heads_range[0], lx.hidden_range[1] * lx.heads_range[1])
    gcn = _interp(lambda i, d: _report("gcn", i, d, 1, bits, n, e), [(lx.in_dim, lx.in_range), (width, w_range)])
    ps = lx.p_softmax
    size, feat, ops = (ps * a + (1.0 - ps) * b for a, b in zip(gat, gcn))
    out_w = lx.out_width
    bw, bi = bits["weight_bits"], bits["input_bits"]
    size = size + lx.p_skip * lx.in_dim * out_w * bw
    ops = ops + lx.p_skip * n * lx.in_dim * out_w * bw * bi
    return lx.active * size, lx.active * feat, lx.active * ops


def _expectation(probs, values) -> Any:
    total = 0.0
    for p, v in zip(probs, values):
        total = total + p * float(v)
    return total


def _describe(net, relax: Relax | None) -> list[_LayerX]:
    """Per layer position, the expected description (``relax=None``: the largest full-precision
    architecture, as Python numbers)."""
    plan = net.plan
    out = []
    if relax is None:
        depth_p = [1.0 if d == plan.max_depth else 0.0 for d in plan.depths]
        active = [1.0] * len(plan.slots)
    else:
        depth_p = net.depth_probs(relax)
        active = [1.0 if a is None else a for a in net.active_probs(relax)]
    widths = []  # expected output width of each position (concat layers)
    in_dim: Any = net.in_dim
    in_range = (net.in_dim, net.in_dim)
    for i, layer in enumerate(net.layers):
        slot = layer.slot
        if relax is None:
            p = {name: [1.0 if j == len(slot.options(name)) - 1 else 0.0 for j in range(len(slot.options(name)))]
                 for name in ("hidden", "heads")}
            p_soft = 1.0 if any(a in SOFTMAX_ATTENTIONS for a in slot.attention) else 0.0
            p_skip = 1.0 if True in slot.skip else 0.0
            bits = {}
        else:
            p = {name: layer.probs(name, relax) for name in ("hidden", "heads")}
            p_att = layer.probs("attention", relax)
            p_soft = 0.0
            for j, a in enumerate(slot.attention):
                if a in SOFTMAX_ATTENTIONS:
                    p_soft = p_soft + p_att[j]
            p_skip = layer.probs("skip", relax)[slot.skip.index(True)] if True in slot.skip else 0.0
            bits = {c: layer.quantizer(c).expected_bits(relax) for c in layer.components}
        hidden = _expectation(p["hidden"], slot.hidden)
        heads = _expectation(p["heads"], slot.heads)
        if plan.task == "node" and not slot.concat and i > 0:
            # classifier: its input is the output of the last layer the depth includes
            in_dim = 0.0
            for j, d in enumerate(plan.depths):
                in_dim = in_dim + depth_p[j] * widths[d - 2]
            lo = min(net.layers[d - 2].slot.heads[0] * net.layers[d - 2].slot.hidden[0] for d in plan.depths)
            hi = max(net.layers[d - 2].slot.max_width for d in plan.depths)
            in_range = (lo, hi)
        lx = _LayerX(active=active[i], in_dim=in_dim, in_range=in_range, hidden=hidden,
                     hidden_range=(min(slot.hidden), max(slot.hidden)), heads=heads,
                     heads_range=(min(slot.heads), max(slot.heads)), p_softmax=p_soft, p_skip=p_skip,
                     out_width=hidden * heads if slot.concat else hidden, bits=bits)
        out.append(lx)
        widths.append(hidden * heads)
        in_dim = hidden * heads
        in_range = (min(slot.hidden) * min(slot.heads), slot.max_width)
    return out


def _scorer(net, layers: list[_LayerX], relax: Relax | None):
    """Graph tasks: the full-precision linear scorer on the pooled last representation (``jk``: one
    on the input and one on each layer position, weighted by the probability that the depth
    includes it), and the batch norms' scale and shift (``norm: batch``, 32-bit)."""
    if net.plan.task != "graph":
        return 0.0, 0.0, 0.0
    c = net.num_classes
    size = 0.0
    if net.jk:
        size = 32.0 * (net.in_dim * c + c)
        for lx in layers:
            size = size + lx.active * 32.0 * (lx.hidden * lx.heads * c + c)
    else:
        size = 32.0 * (layers[-1].hidden * layers[-1].heads * c + c)
    if net.norm == "batch":
        for lx in layers:
            size = size + lx.active * 32.0 * 2.0 * lx.out_width
    return size, 0.0, 0.0


def _total(net, relax: Relax | None, num_nodes, num_edges) -> ExpectedCost:
    num_nodes, num_edges = float(num_nodes), float(num_edges)  # counts overflow int32 otherwise
    layers = _describe(net, relax)
    size = feat = ops = 0.0
    for lx in layers:
        s, f, o = _layer_expected(lx, num_nodes, num_edges)
        size, feat, ops = size + s, feat + f, ops + o
    s, f, o = _scorer(net, layers, relax)
    return ExpectedCost(size + s, feat + f, ops + o)


def expected_cost(net, relax: Relax, num_nodes, num_edges) -> ExpectedCost:
    """Expected costs of ``net`` under the choice probabilities of ``relax`` (differentiable in the
    logits). ``num_nodes`` / ``num_edges`` (directed, no self loops): of the graph, or the mean graph
    of a graph-classification set."""
    return _total(net, relax.expectation(), num_nodes, num_edges)


def reference_cost(net, num_nodes, num_edges) -> ExpectedCost:
    """Costs (Python floats) of the largest architecture of ``net``'s space in full precision: the
    normaliser of the search's cost term."""
    return _total(net, None, num_nodes, num_edges)


def architecture_cost(arch: Architecture, in_dim: int, num_classes: int, num_nodes, num_edges) -> CostReport:
    """Exact :class:`~lpgnas.cost.CostReport` of ``arch`` (with its ``quant``), counted as the
    supernet counts: each layer as :func:`lpgnas.cost.layer_cost_shape` says (attention layers by the
    ``gat`` rule when their attention is a softmax type, else the ``gcn`` rule at width
    ``heads * hidden``); a skip projection (``in != out``) at the
    layer's weight bits; a node classifier head at 32 bits; a graph model's read-out as
    :func:`lpgnas.cost.readout_params` counts it."""
    config = arch.quant
    layers = []
    dim = int(in_dim)
    for i, spec in enumerate(arch.layers):
        kind, out_dim, heads = layer_cost_shape(spec)
        lc = layer_cost_from_config(config, i, kind, dim, out_dim, heads)
        layers.append(lc)
        out = spec.out_dim()
        if spec.skip and dim != out:
            layers.append(LayerCost("skip", dim, out, weight_bits=lc.weight_bits, input_bits=lc.input_bits))
        dim = out
    if arch.task == "node" and dim != num_classes:
        layers.append(LayerCost("linear", dim, int(num_classes)))
    return with_fp32_params(model_cost(layers, num_nodes, num_edges), readout_params(arch, in_dim, num_classes))
