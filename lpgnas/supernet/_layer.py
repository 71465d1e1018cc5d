"""One supernet layer: every candidate of every decision of one layer position, with shared weights.

Weight sharing:

* one kernel ``[in, max_heads * max_hidden]`` (head-major columns); a candidate width ``f`` and head
  count ``k`` use the first ``f`` columns of the first ``k`` heads. The relaxed layer multiplies the
  columns by the probability that they are in use, ``P(heads > h) * P(hidden > j)`` (a soft channel
  mask), so ``XW`` is computed once for every width and head count;
* the attention vectors are shared by the attention types that use them, and every attention type
  weighs the same ``XW`` rows: the messages are ``(sum_a p_a coef_a) * XW[senders]``, computed once;
* the aggregators reduce the same messages; ``mean`` and ``max`` are rescaled per receiver by
  ``count / sum_j coef_ij`` of the mixed coefficients (``mean`` is the coefficient-weighted mean:
  ``add`` divided by the in-degree for ``const``, by the coefficient sum for ``gcn`` and the softmax
  attentions), exactly :class:`lpgnas.nn.GNNLayer`'s at one-hot choices;
* the classifier (``concat=False``) averages ``k`` heads: head ``h`` gets ``sum_{k > h} p_k / k``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.experimental import sparse as jsparse

from lpgnas import quant as Q
from lpgnas.nn import (GraphArrays, activation, aggregate, attention_logits, coefficient_scale, dropout, gcn_norm,
                       scale_heads, segment_softmax)
from lpgnas.supernet._mixed import MixedQuantizer
from lpgnas.supernet._relax import ArchLogit, Relax, choice_probs
from lpgnas.supernet._slots import DECISIONS, SOFTMAX_ATTENTIONS, Slot

__all__ = ["SuperLayer"]


def _glorot(rngs: nnx.Rngs, shape, fan_in: int, fan_out: int) -> nnx.Param:
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    return nnx.Param(jax.random.uniform(rngs.params(), shape, jnp.float32, -limit, limit))


def _at_least(options, size: int) -> np.ndarray:
    """``[len(options), size]`` indicator: entry ``(o, j)`` is 1 when ``j < options[o]``."""
    opts = np.asarray(options, np.int64)
    return (np.arange(size)[None, :] < opts[:, None]).astype(np.float32)


def _gene_linear_logits(hh, att_src, att_dst, att_gen, senders, receivers):
    """GeniePath logits ``a_g . tanh(a_s * h_j + a_d * h_i)`` (``[E, H]``), the function
    :func:`lpgnas.nn.attention_logits` computes, with the products taken on the nodes before the
    gather and the contraction with ``a_g`` as one ``einsum`` (its gradient to ``a_g`` is then a
    contraction too, instead of a broadcast ``[E, H, F]`` copy of ``a_g``)."""
    src = hh * att_src[None]
    dst = hh * att_dst[None]
    gen = jnp.tanh(src[senders] + dst[receivers])
    return jnp.einsum("ekf,kf->ek", gen, att_gen)


class SuperLayer(nnx.Module):
    """The relaxed layer of one :class:`Slot`. Decisions with more than one candidate own an
    :class:`ArchLogit` ``alpha_<decision>``; quantised components own a :class:`MixedQuantizer`
    ``q_<component>``."""

    def __init__(self, slot: Slot, in_dim: int, quant, *, num_nodes: int | None, rngs: nnx.Rngs,
                 init_scale: float = 1e-3, batch_norm: bool = False):
        self.slot = slot
        self.in_dim = int(in_dim)
        k, f = max(slot.heads), max(slot.hidden)
        self.k_max, self.f_max = k, f
        width = k * f
        self.kernel = _glorot(rngs, (in_dim, width), in_dim, width)
        self.bias = nnx.Param(jnp.zeros((slot.out_width,), jnp.float32))
        # graph tasks: a batch norm after the layer (before the activation), as lpgnas.nn.GNN places it
        self.bn = nnx.BatchNorm(slot.out_width, momentum=0.9, epsilon=1e-5, rngs=rngs) if batch_norm else None
        self.soft_attentions = tuple(a for a in slot.attention if a in SOFTMAX_ATTENTIONS)
        if self.soft_attentions:
            self.att_src = _glorot(rngs, (k, f), f, 1)
            self.att_dst = _glorot(rngs, (k, f), f, 1)
        if "gene-linear" in slot.attention:
            self.att_gen = _glorot(rngs, (k, f), f, 1)
        if True in slot.skip:
            self.skip_kernel = _glorot(rngs, (in_dim, slot.out_width), in_dim, slot.out_width)
        salt = 1000 * (slot.index + 1)
        for name in DECISIONS:
            opts = slot.options(name)
            value = None
            if len(opts) > 1:
                value = ArchLogit(init_scale * jax.random.normal(rngs.params(), (len(opts),), jnp.float32))
            setattr(self, f"alpha_{name}", value)
        self._salt = salt
        n = num_nodes if num_nodes is not None else 1
        shapes = {"weight": (in_dim, width), "input": (n, in_dim), "linear": (n, width), "edge_weight": (1,),
                  "attention_logit": (1, k), "attention": (1, k), "message": (1, width),
                  "aggregate": (n, width), "output": (n, slot.out_width)}
        self.components = tuple(q.component for q in quant)
        for i, qc in enumerate(quant):
            setattr(self, f"q_{qc.component}", MixedQuantizer(qc.component, qc.options(), shape=shapes[qc.component],
                                                              salt=salt + 100 + i, rngs=rngs, init_scale=init_scale))

    # -- probabilities -------------------------------------------------------------------------
    def probs(self, name: str, relax: Relax) -> jax.Array:
        """Choice probabilities of ``name`` (one of :data:`DECISIONS`)."""
        logit = getattr(self, f"alpha_{name}")
        if logit is None:
            return jnp.ones((1,), jnp.float32)
        return choice_probs(logit[...], relax, self._salt + DECISIONS.index(name))

    def quantizer(self, component: str) -> MixedQuantizer | None:
        return getattr(self, f"q_{component}", None)

    def channel_mask(self, relax: Relax) -> jax.Array:
        """``[k_max * f_max]`` probability that each column is in use (concat layers)."""
        m_heads = self.probs("heads", relax) @ jnp.asarray(_at_least(self.slot.heads, self.k_max))
        m_hidden = self.probs("hidden", relax) @ jnp.asarray(_at_least(self.slot.hidden, self.f_max))
        return (m_heads[:, None] * m_hidden[None, :]).reshape(-1)

    # -- forward -------------------------------------------------------------------------------
    def __call__(self, x, ga: GraphArrays, relax: Relax, *, training: bool = False, key: jax.Array | None = None,
                 attn_dropout: float = 0.0, protect: jax.Array | None = None) -> jax.Array:
        """``protect``: Degree-Quant's protective mask (``bool [N]``) of this training step, or
        ``None``; node tensors of protected nodes and edge tensors of their out-edges stay in full
        precision (as in :class:`lpgnas.nn.GNNLayer`)."""
        slot = self.slot
        n = ga.num_nodes
        k, f = self.k_max, self.f_max
        senders, receivers = ga.loop_senders, ga.loop_receivers
        node_ctx = Q.QuantContext(training=training, protect=protect, degree=ga.in_degree)
        edge_ctx = Q.QuantContext(training=training, protect=None if protect is None else protect[senders],
                                  degree=ga.in_degree[receivers])
        w_ctx = Q.QuantContext(training=training)

        def mq(component, value, ctx):
            q = self.quantizer(component)
            return value if q is None else q(value, ctx, relax)

        q_in = self.quantizer("input")
        if isinstance(x, jsparse.BCOO) and q_in is not None and q_in.per_row:
            xq = mq("input", x.todense(), node_ctx)  # per-node scales need the rows
        elif isinstance(x, jsparse.BCOO):
            # quantise the stored values (zeros stay zero), then one dense GEMM: on CPU it beats the
            # gather/scatter sparse product by far at supernet widths
            # (a protected node's stored values pass through, as its dense row would)
            nz_ctx = w_ctx if protect is None else Q.QuantContext(training=training, protect=protect[x.indices[:, 0]])
            xq = jsparse.BCOO((mq("input", x.data, nz_ctx), x.indices), shape=x.shape,
                              indices_sorted=x.indices_sorted, unique_indices=x.unique_indices).todense()
        else:
            xq = mq("input", x, node_ctx)
        has_skip = True in slot.skip
        w = mq("weight", self.kernel[...], w_ctx)
        if has_skip:  # the main and the skip kernel in one product
            w = jnp.concatenate([w, mq("weight", self.skip_kernel[...], w_ctx)], axis=1)
        prod = xq @ w
        hx = prod[:, : k * f] if has_skip else prod
        mask = self.channel_mask(relax) if slot.concat else None
        if mask is not None:
            hx = hx * mask[None, :]
        hx = mq("linear", hx, node_ctx)
        hh = hx.reshape(n, k, f)

        coef = self._coefficients(hh, ga, senders, receivers, relax, mq, edge_ctx)
        coef = mq("attention", coef, edge_ctx)
        scale = None
        if ("mean" in slot.aggregator or "max" in slot.aggregator) and tuple(slot.attention) != ("const",):
            scale = coefficient_scale(coef, receivers, n)  # [N, k]; exactly 1 at a one-hot const choice
        coef = dropout(coef, attn_dropout, key, training)
        msg = (coef[:, :, None] * hh[senders]).reshape(senders.shape[0], k * f)
        msg = mq("message", msg, edge_ctx)
        agg = self._aggregate(msg, ga, receivers, relax, scale)
        agg = mq("aggregate", agg, node_ctx)

        if slot.concat:
            out = agg + (self.bias[...] * mask)[None, :]
        else:
            inv = np.asarray([1.0 / h for h in slot.heads], np.float32)
            c = self.probs("heads", relax) * jnp.asarray(inv)
            head_w = c @ jnp.asarray(_at_least(slot.heads, k))  # sum_{k > h} p_k / k
            out = jnp.einsum("nkf,k->nf", agg.reshape(n, k, f), head_w) + self.bias[...][None, :]
        if has_skip:
            p_skip = self.probs("skip", relax)[slot.skip.index(True)]
            proj = prod[:, k * f:]
            if mask is not None:
                proj = proj * mask[None, :]
            out = out + p_skip * proj
        out = mq("output", out, node_ctx)
        if self.bn is not None:
            out = self.bn(out, use_running_average=not training, mask=ga.node_mask[:, None])
            if mask is not None:  # normalising would restore the columns the width mask scales down
                out = out * mask[None, :]
        acts = slot.activation
        if len(acts) == 1:
            return activation(acts[0], out)
        p_act = self.probs("activation", relax)
        y = None
        for i, name in enumerate(acts):
            term = p_act[i] * activation(name, out)
            y = term if y is None else y + term
        return y

    def _coefficients(self, hh, ga, senders, receivers, relax, mq, edge_ctx):
        """``sum_a p_a coef_a`` over the attention candidates: ``[E', heads]``."""
        slot = self.slot
        n, k = hh.shape[0], self.k_max
        e = senders.shape[0]
        p_att = self.probs("attention", relax)
        coef = jnp.zeros((e, k), hh.dtype)
        if "const" in slot.attention:
            coef = coef + p_att[slot.attention.index("const")]
        if "gcn" in slot.attention:
            norm = mq("edge_weight", gcn_norm(ga), edge_ctx)
            coef = coef + p_att[slot.attention.index("gcn")] * norm[:, None]
        if not self.soft_attentions:
            return coef
        gen = self.att_gen[...] if "gene-linear" in self.soft_attentions else None
        logits = []
        for att in self.soft_attentions:
            if att == "gene-linear":
                lg = _gene_linear_logits(hh, self.att_src[...], self.att_dst[...], gen, senders, receivers)
            else:
                lg = attention_logits(att, hh, self.att_src[...], self.att_dst[...], gen, senders, receivers)
            logits.append(lg)
        s = len(logits)
        stacked = jnp.stack(logits, axis=-1).reshape(e, k * s)  # [E', K * S]
        stacked = mq("attention_logit", stacked, edge_ctx)
        soft = segment_softmax(stacked, receivers, n).reshape(e, k, s)
        p_soft = jnp.stack([p_att[slot.attention.index(a)] for a in self.soft_attentions])
        return coef + jnp.einsum("eks,s->ek", soft, p_soft)

    def _aggregate(self, msg, ga, receivers, relax, scale=None):
        aggs = self.slot.aggregator
        n = ga.num_nodes
        p = self.probs("aggregator", relax)
        total = None
        if "add" in aggs or "mean" in aggs:
            total = aggregate(msg, receivers, n, "add")
        out = None

        def acc(term):
            return term if out is None else out + term

        for i, kind in enumerate(aggs):
            if kind == "add":
                value = total
            elif kind == "mean":
                count = jnp.maximum(ga.in_degree.astype(msg.dtype) + 1.0, 1.0)  # + the self loop
                value = total / count[:, None]
            else:
                value = aggregate(msg, receivers, n, "max")
            if kind != "add" and scale is not None:
                value = scale_heads(value, scale)
            out = acc(value if len(aggs) == 1 else p[i] * value)
        return out
