"""The pieces of deep-propagation models (APPNP, smoothness-aware low-bit propagation).

* :class:`LinearLayer`: the ``linear`` op of :class:`~lpgnas.arch.LayerSpec`, a dense layer
  ``x W + b`` without message passing (APPNP's MLP). Its quantised components are ``weight``,
  ``input``, ``linear`` (``x W``) and ``output`` (after the bias); the message-passing components
  are the identity (the cost model counts it as a ``linear`` layer).
* :func:`make_propagation`: the :class:`lpgnas.quant.SmoothPropagation` an
  :class:`~lpgnas.arch.Propagation` block describes, with the per-step quantisers of the
  ``propagate`` component of the quantisation config (looked up at layer index
  ``len(arch.layers)``, so that a per-layer override of a message-passing layer never reaches it).
* :func:`propagate_output`: run it on a model's logits over the GCN-normalised graph with self loops.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from lpgnas import quant as _quant
from lpgnas.arch import Architecture, LayerSpec
from lpgnas.nn._message import GraphArrays, gcn_norm
from lpgnas.nn._parts import glorot, materialize, matmul, quantize_input, quantized_weight
from lpgnas.nn._sparse import SparseRows

__all__ = ["LinearLayer", "make_propagation", "propagate_output", "propagation_spec"]

_IDENTITY_COMPONENTS = ("edge_weight", "attention_logit", "attention", "message", "aggregate")


class LinearLayer(nnx.Module):
    """A dense layer ``q_output(q_linear(q_input(x) @ q_weight(W)) + b)`` (op ``linear``).

    Same constructor and call signature as :class:`~lpgnas.nn.GNNLayer` (the graph is not read);
    dense, ``BCOO`` and :class:`~lpgnas.nn.SparseRows` inputs.
    """

    def __init__(self, spec: LayerSpec, in_dim: int, *, layer_index: int = 0, quant=None,
                 num_nodes: int | None = None, quantize_output: bool = True, rngs: nnx.Rngs):
        if spec.op != "linear":
            raise ValueError(f"LinearLayer builds op 'linear', got {spec.op!r}")
        spec.validate(f"layers[{layer_index}]")  # a linear layer has a single head
        self.spec = spec
        self.in_dim = in_dim
        self.width = self.out_dim = spec.hidden
        self.kernel = glorot(rngs, (in_dim, spec.hidden), in_dim, spec.hidden)
        self.bias = nnx.Param(jnp.zeros((spec.hidden,), jnp.float32))
        n = num_nodes if num_nodes is not None else 1

        def q(component, kind, shape):
            return _quant.make_quantizer(quant, layer_index, component, kind=kind, shape=shape, rngs=rngs)

        self.q_weight = q("weight", "weight", (in_dim, spec.hidden))
        self.q_input = q("input", "node", (n, in_dim))
        self.q_linear = q("linear", "node", (n, spec.hidden))
        self.q_output = q("output", "node", (n, spec.hidden)) if quantize_output else _quant.identity
        for component in _IDENTITY_COMPONENTS:
            setattr(self, f"q_{component}", _quant.identity)

    def __call__(self, x, ga: GraphArrays, *, training: bool = False, key: jax.Array | None = None,
                 protect: jax.Array | None = None, attn_dropout: float = 0.0) -> jax.Array:
        node_ctx = _quant.QuantContext(training=training, protect=protect, degree=ga.in_degree)
        w_ctx = _quant.QuantContext(training=training)
        xq = quantize_input(self.q_input, x, node_ctx)
        pre = matmul(xq, quantized_weight(self.q_weight, self.kernel[...], w_ctx, xq))
        if isinstance(xq, SparseRows):  # the compact product's backward reads q_linear's cotangent per non-zero
            pre = materialize(pre, self.q_linear)
        out = self.q_linear(pre, node_ctx) + self.bias[...][None, :]
        return self.q_output(out, node_ctx)


def propagation_spec(arch: Architecture, quant=None) -> _quant.QuantSpec:
    """The spec of the propagation steps: the ``propagate`` component of ``quant`` (default:
    ``arch.quant``) at layer index ``len(arch.layers)``; fp32 without a config."""
    quant = arch.quant if quant is None else quant
    if quant is None:
        return _quant.QuantSpec("fp32")
    return quant.spec(len(arch.layers), "propagate")


def make_propagation(arch: Architecture, width: int, *, quant=None, num_nodes: int | None = None,
                     rngs: nnx.Rngs) -> _quant.SmoothPropagation:
    """The :class:`~lpgnas.quant.SmoothPropagation` of ``arch.propagation`` for outputs of
    ``width`` channels: K steps, ``lam``, the resolved dual step (see
    :meth:`lpgnas.arch.Propagation.resolved_eta`), per-step quantisers of the ``propagate`` spec
    (planned for ``[num_nodes, width]``; topology-aware bits included), the last step (the logits)
    in full precision."""
    p = arch.propagation
    if p is None:
        raise ValueError("the architecture has no propagation block")
    quant = arch.quant if quant is None else quant
    spec = propagation_spec(arch, quant)
    layer = len(arch.layers)
    table = None
    if quant is not None and spec.method in ("affine", "dq", "sgquant"):
        table = quant.degree_table(layer, "propagate")
    method = "fp32" if (spec.is_fp32 and table is None) else spec.method
    n = num_nodes if num_nodes is not None else 1
    return _quant.SmoothPropagation(
        p.steps, float(p.lam), eta=p.resolved_eta(method), rho=float(p.rho), mu_max=float(p.mu_max),
        spec=spec, shape=(n, width), degree_bits=table, quantize_output=False, rngs=rngs,
    )


def propagate_output(prop: _quant.SmoothPropagation, h: jax.Array, ga: GraphArrays, *, training: bool = False,
                     protect: jax.Array | None = None) -> jax.Array:
    """``prop`` applied to ``h [N, C]`` over ``A_hat`` = the GCN normalisation of ``ga`` with self
    loops (edge weights included), the operator the ``gcn`` layers use."""
    ctx = _quant.QuantContext(training=training, protect=protect, degree=ga.in_degree)
    return prop(h, ga.loop_senders, ga.loop_receivers, ctx, norm=(gcn_norm(ga), None))
