"""GNN layers whose every component passes through a quantiser.

One class, :class:`GNNLayer`, covers the four baselines (``gcn``, ``gat``, ``gin``, ``sage``) and the
generic LPGNAS layer (``attn``: free attention type x aggregator x heads). Components and the tensor
each quantiser sees:

==================  =========================================  =========
component           tensor                                     kind
==================  =========================================  =========
``weight``          every weight matrix of the layer           weight
``input``           the layer's input features ``[N, F_in]``   node
``linear``          the transformed features ``XW``            node
``edge_weight``     GCN normalisation / edge weights ``[E']``  edge
``attention_logit`` attention logits ``[E', H]``               edge
``attention``       attention coefficients ``[E', H]``         edge
``message``         messages ``[E', H * F]``                   edge
``aggregate``       the aggregation output ``[N, H * F]``      node
``output``          the layer output (after bias/skip)         node
==================  =========================================  =========
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx
from jax.experimental import sparse as jsparse

from lpgnas import quant as _quant
from lpgnas.arch import LayerSpec
from lpgnas.nn._message import (GraphArrays, aggregate, attention_logits, coefficient_scale, gcn_norm, scale_heads,
                                segment_softmax)
from lpgnas.nn._parts import glorot, materialize, matmul, quantize_input, quantized_weight
from lpgnas.nn._sparse import SparseRows

__all__ = ["COMPONENTS", "GNNLayer", "activation", "dropout"]

COMPONENTS = ("weight", "input", "linear", "edge_weight", "attention_logit", "attention", "message",
              "aggregate", "output")


def activation(name: str, x: jax.Array) -> jax.Array:
    """Apply the activation called ``name`` (one of ``lpgnas.arch.ACTIVATIONS``)."""
    if name == "none":
        return x
    if name == "relu":
        return jax.nn.relu(x)
    if name == "elu":
        return jax.nn.elu(x)
    if name == "leaky_relu":
        return jax.nn.leaky_relu(x, 0.2)
    if name == "relu6":
        return jax.nn.relu6(x)
    if name == "tanh":
        return jnp.tanh(x)
    if name == "sigmoid":
        return jax.nn.sigmoid(x)
    if name == "softplus":
        return jax.nn.softplus(x)
    raise ValueError(f"unknown activation {name!r}")


def dropout(x, rate: float, key: jax.Array | None, training: bool, *, octets: bool = False):
    """Inverted dropout; identity in evaluation or when ``rate == 0``.

    A sparse ``BCOO`` input drops its stored values only (a zero stays zero under dropout), which
    makes input dropout on bag-of-words features cost ``nnz`` random draws instead of ``N * F``; a
    :class:`~lpgnas.nn.SparseRows` input drops its ``[N, K]`` values (padding zeros stay zero).

    ``octets=True`` draws 8 random bits per element instead of a float per element (a quarter of
    the random words, which matters on the supernet's wide activations); the rate is then rounded
    to a multiple of 1/256 (at most 255/256) and the kept values scaled by ``256 / (256 - t)``.
    """
    if not training or rate <= 0.0 or key is None:
        return x
    if isinstance(x, SparseRows):
        return x.with_values(dropout(x.values, rate, key, training, octets=octets))
    if isinstance(x, jsparse.BCOO):
        return jsparse.BCOO((dropout(x.data, rate, key, training, octets=octets), x.indices), shape=x.shape,
                            indices_sorted=x.indices_sorted, unique_indices=x.unique_indices)
    if octets:
        size = math.prod(x.shape)
        words = jax.random.bits(key, (-(-size // 4),), jnp.uint32)
        drawn = jax.lax.bitcast_convert_type(words, jnp.uint8).reshape(-1)[:size].reshape(x.shape)
        threshold = min(int(round(rate * 256)), 255)
        keep = drawn >= jnp.uint8(threshold)
        return jnp.where(keep, x * jnp.asarray(256.0 / (256 - threshold), x.dtype), jnp.zeros((), x.dtype))
    keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
    return jnp.where(keep, x / jnp.asarray(1.0 - rate, x.dtype), jnp.zeros((), x.dtype))


class GNNLayer(nnx.Module):
    """One message-passing layer described by a :class:`~lpgnas.arch.LayerSpec`.

    Args:
      spec: the layer's choices.
      in_dim: input width.
      layer_index: position in the model (selects this layer's quantisation specs).
      quant: a ``lpgnas.quant.QuantConfig`` or ``None`` (full precision).
      num_nodes: number of nodes of the (transductive) graph, for per-node quantiser state; ``None``
        for inductive models.
      quantize_output: False leaves the ``output`` component in full precision (the model's logits:
        quantising them clips the softmax input and stalls training).
    """

    def __init__(self, spec: LayerSpec, in_dim: int, *, layer_index: int = 0, quant=None,
                 num_nodes: int | None = None, quantize_output: bool = True, rngs: nnx.Rngs):
        self.spec = spec
        self.in_dim = in_dim
        h, f = spec.heads, spec.hidden
        width = h * f
        self.width = width
        self.out_dim = spec.out_dim()
        op = spec.op
        if op in ("gcn", "sage", "gin") and h != 1:
            raise ValueError(f"layer {layer_index}: op {op!r} has a single head, got heads={h}")
        self.kernel = glorot(rngs, (in_dim, width), in_dim, width)
        self.bias = nnx.Param(jnp.zeros((self.out_dim,), jnp.float32))
        if op in ("gat", "attn"):
            self.att_src = glorot(rngs, (h, f), f, 1)
            self.att_dst = glorot(rngs, (h, f), f, 1)
            if spec.attention == "gene-linear":
                self.att_gen = glorot(rngs, (h, f), f, 1)
        if op == "sage":
            self.root = glorot(rngs, (in_dim, width), in_dim, width)
        if op == "gin":
            self.eps = nnx.Param(jnp.zeros((), jnp.float32))
            self.bias1 = nnx.Param(jnp.zeros((width,), jnp.float32))
            self.bn = nnx.BatchNorm(width, momentum=0.9, epsilon=1e-5, rngs=rngs)
            self.kernel2 = glorot(rngs, (width, width), width, width)
        if spec.skip:
            self.skip_kernel = (None if in_dim == self.out_dim
                                else glorot(rngs, (in_dim, self.out_dim), in_dim, self.out_dim))

        n = num_nodes if num_nodes is not None else 1

        def q(component, kind, shape):
            return _quant.make_quantizer(quant, layer_index, component, kind=kind, shape=shape, rngs=rngs)

        self.q_weight = q("weight", "weight", (in_dim, width))
        self.q_input = q("input", "node", (n, in_dim))
        self.q_linear = q("linear", "node", (n, width))
        self.q_edge_weight = q("edge_weight", "edge", (1,))
        self.q_attention_logit = q("attention_logit", "edge", (1, h))
        self.q_attention = q("attention", "edge", (1, h))
        self.q_message = q("message", "edge", (1, width))
        self.q_aggregate = q("aggregate", "node", (n, width))
        self.q_output = q("output", "node", (n, self.out_dim)) if quantize_output else _quant.identity
        if op == "gin":
            self.q_weight2 = q("weight", "weight", (width, width))

    def __call__(self, x: jax.Array | jsparse.BCOO | SparseRows, ga: GraphArrays, *, training: bool = False, key: jax.Array | None = None,
                 protect: jax.Array | None = None, attn_dropout: float = 0.0) -> jax.Array:
        spec = self.spec
        n = x.shape[0]
        node_ctx = _quant.QuantContext(training=training, protect=protect, degree=ga.in_degree)
        w_ctx = _quant.QuantContext(training=training)
        if spec.op in ("sage", "gin"):
            senders, receivers = ga.senders, ga.receivers
        else:
            senders, receivers = ga.loop_senders, ga.loop_receivers
        edge_ctx = _quant.QuantContext(
            training=training,
            protect=None if protect is None else protect[senders],
            degree=ga.in_degree[receivers],
        )

        xq = self._quantize_input(x, node_ctx)
        w = self._weight(self.kernel[...], w_ctx, xq)
        pre = matmul(xq, w)
        if isinstance(xq, SparseRows):  # the compact product's backward reads q_linear's cotangent per non-zero
            pre = materialize(pre, self.q_linear)
        hx = materialize(self.q_linear(pre, node_ctx), self.q_linear)  # gathered per edge

        if spec.op == "gcn":
            norm = self.q_edge_weight(gcn_norm(ga), edge_ctx)
            msg = self.q_message(norm[:, None] * hx[senders], edge_ctx)
            out = self.q_aggregate(aggregate(msg, receivers, n, "add"), node_ctx)
        elif spec.op == "sage":
            msg = self.q_message(hx[senders], edge_ctx)
            agg = self.q_aggregate(aggregate(msg, receivers, n, spec.aggregator), node_ctx)
            root = self._weight(self.root[...], w_ctx, xq)
            out = agg + matmul(xq, root)
        elif spec.op == "gin":
            msg = self.q_message(hx[senders], edge_ctx)
            agg = self.q_aggregate(aggregate(msg, receivers, n, "add"), node_ctx)
            z = agg + (1.0 + self.eps[...]) * hx + self.bias1[...][None, :]
            z = self.bn(z, use_running_average=not training, mask=ga.node_mask[:, None])
            z = jax.nn.relu(z)
            out = z @ self.q_weight2(self.kernel2[...], w_ctx)
        else:  # gat / attn: multi-head attention over the looped edge list
            out = self._attend(hx, ga, senders, receivers, edge_ctx, node_ctx, training, key, attn_dropout)

        out = out + self.bias[...][None, :]
        if spec.skip:
            if self.skip_kernel is None:
                out = out + (xq.todense() if isinstance(xq, SparseRows) else xq)
            else:
                out = out + matmul(xq, self._weight(self.skip_kernel[...], w_ctx, xq))
        return self.q_output(out, node_ctx)

    def _weight(self, kernel, w_ctx, xq):
        return quantized_weight(self.q_weight, kernel, w_ctx, xq)

    def _quantize_input(self, x, node_ctx):
        # identity skips act on dense features, so a skip layer densifies an unquantised BCOO too
        return quantize_input(self.q_input, x, node_ctx, keep_bcoo=not self.spec.skip)

    def _attend(self, hx, ga, senders, receivers, edge_ctx, node_ctx, training, key, attn_dropout):
        spec = self.spec
        n = hx.shape[0]
        h, f = spec.heads, spec.hidden
        hh = hx.reshape(n, h, f)
        att = "gat" if spec.op == "gat" else spec.attention
        if att == "gcn":
            coef = self.q_edge_weight(gcn_norm(ga), edge_ctx)[:, None] * jnp.ones((1, h), hx.dtype)
        elif att == "const":
            coef = jnp.ones((senders.shape[0], h), hx.dtype)
        else:
            gen = self.att_gen[...] if att == "gene-linear" else None
            logits = attention_logits(att, hh, self.att_src[...], self.att_dst[...], gen, senders, receivers)
            logits = self.q_attention_logit(logits, edge_ctx)
            coef = segment_softmax(logits, receivers, n)
        coef = self.q_attention(coef, edge_ctx)
        agg_kind = "add" if spec.op == "gat" else spec.aggregator
        # mean / max over normalised coefficients (gcn, softmax): rescale them to average 1 per receiver
        # (mean becomes the coefficient-weighted mean) instead of normalising a second time by degree
        scale = (coefficient_scale(coef, receivers, n)
                 if agg_kind in ("mean", "max") and att != "const" else None)
        coef = dropout(coef, attn_dropout, key, training)
        msg = (coef[:, :, None] * hh[senders]).reshape(senders.shape[0], h * f)
        msg = self.q_message(msg, edge_ctx)
        agg = aggregate(msg, receivers, n, agg_kind)
        if scale is not None:
            agg = scale_heads(agg, scale)
        agg = self.q_aggregate(agg, node_ctx)
        if spec.concat:
            return agg
        return agg.reshape(n, h, f).mean(axis=1)
