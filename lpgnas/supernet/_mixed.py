"""Mixed quantisers: ``y = sum_o p_o * Q_o(x)`` over the candidate formats x bit widths of one
component of one layer (the full-precision candidate is the identity).

The specs built here (:func:`option_spec`) are the ones the derived :class:`~lpgnas.quant.QuantConfig`
uses, so a derived model quantises exactly as the chosen candidate did in the supernet.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from lpgnas import quant as Q
from lpgnas.search_spaces import QuantOption, is_signed
from lpgnas.supernet._relax import ArchLogit, Relax, choice_probs

__all__ = ["COMPONENT_KINDS", "option_spec", "option_bits", "MixedQuantizer"]

COMPONENT_KINDS = {
    "weight": "weight",
    "input": "node",
    "linear": "node",
    "edge_weight": "edge",
    "attention_logit": "edge",
    "attention": "edge",
    "message": "edge",
    "aggregate": "node",
    "output": "node",
}


def option_spec(option: QuantOption, component: str) -> Q.QuantSpec:
    """The :class:`~lpgnas.quant.QuantSpec` of a search candidate for ``component``.

    Weights are signed, per tensor or per output column; node tensors may have one scale per node
    (``option.granularity``). Activations in
    the affine format are asymmetric (unsigned codes with a zero point, which still represent
    negative values); the fixed-point, binary, ternary and LSQ formats are signed (they have no zero
    point).
    """
    return option.spec(signed=is_signed(component, option.method))


def option_bits(option: QuantOption) -> float:
    """Bits per element a candidate stores (32 for full precision)."""
    return 32.0 if option.method == "fp32" else float(option.bits)


class MixedQuantizer(nnx.Module):
    """Softly selected quantiser of one component: ``q(x, ctx, relax) = sum_o p_o Q_o(x, ctx)``.

    ``options``: the candidates (``QuantChoices.options()``). ``salt``: a static integer unique to
    this decision (Gumbel noise). The logits are an :class:`ArchLogit`; each candidate is a
    :func:`lpgnas.quant.make_quantizer` module (its observer statistics and learned step sizes are
    the candidate's own).

    The quantisation parameters of every candidate are computed first (observers update in
    training); the weighted sum of the fake-quantised tensors is rematerialised in the backward
    pass (``jax.checkpoint``), so the candidates' outputs are never stored.
    """

    def __init__(self, component: str, options: tuple[QuantOption, ...], *, shape: tuple[int, ...], salt: int,
                 rngs: nnx.Rngs, init_scale: float = 1e-3):
        self.component = component
        self.kind = COMPONENT_KINDS[component]
        self.options = tuple(options)
        self.salt = int(salt)
        quantizers = []
        for opt in self.options:
            config = Q.QuantConfig(default=option_spec(opt, component))
            quantizers.append(Q.make_quantizer(config, 0, component, kind=self.kind, shape=shape, rngs=rngs))
        self.quantizers = nnx.List(quantizers)
        self.bits = tuple(option_bits(o) for o in self.options)
        self.logits = ArchLogit(init_scale * jax.random.normal(rngs.params(), (len(self.options),), jnp.float32))

    @property
    def per_row(self) -> bool:
        """Whether a candidate has one scale per row (it needs the tensor's rows, not its non-zeros)."""
        return any(o.granularity == "row" for o in self.options)

    def probs(self, relax: Relax) -> jax.Array:
        return choice_probs(self.logits[...], relax, self.salt)

    def expected_bits(self, relax: Relax) -> jax.Array:
        """``sum_o p_o * bits_o`` (differentiable in the logits)."""
        return jnp.sum(self.probs(relax) * jnp.asarray(np.asarray(self.bits, np.float32)))

    def __call__(self, x: jax.Array, ctx: Q.QuantContext, relax: Relax) -> jax.Array:
        """In training, the rows ``ctx.protect`` marks (Degree-Quant's protective mask) pass through
        every candidate unquantised and feed none of their statistics, as in
        :func:`lpgnas.quant.quant_apply`."""
        if len(self.quantizers) == 1:
            return self.quantizers[0](x, ctx)
        p = self.probs(relax)
        methods, params = [], []
        for q in self.quantizers:
            if isinstance(q, Q.Identity):
                methods.append(("fp32", "ste"))
                params.append(())
                continue
            state = q.state()
            qp, new_state = Q.quant_params(q.plan, state, x, ctx)
            if ctx.training:
                for name in q.state_names:
                    if new_state[name] is not state[name]:
                        getattr(q, name)[...] = jax.lax.stop_gradient(new_state[name])
            methods.append((q.plan.method, q.plan.backward))
            params.append(_qp_arrays(q.plan.method, qp, x.dtype))
        return Q.pass_protected(self.kind, ctx, x, _mix(tuple(methods), x, p, tuple(params)))

    def choice(self) -> QuantOption:
        """The candidate with the largest logit."""
        return self.options[int(np.argmax(np.asarray(self.logits[...])))]


def _qp_arrays(method: str, qp, dtype) -> tuple:
    def arr(v):
        return jnp.asarray(v).astype(dtype)

    if method in ("binary", "ternary"):
        return (jax.lax.stop_gradient(arr(qp.scale)), jax.lax.stop_gradient(arr(qp.threshold)))
    return (arr(qp.scale), arr(qp.zero_point), arr(qp.qmin), arr(qp.qmax))


@functools.partial(jax.checkpoint, static_argnums=(0,))
def _mix(methods, x, p, params):
    y = None
    for i, ((method, backward), qp) in enumerate(zip(methods, params)):
        if method == "fp32":
            xi = x
        elif method in ("binary", "ternary"):
            xi = Q.sign_fake_quant(x, qp[0], qp[1], ternary=method == "ternary", backward=backward)
        else:
            xi = Q.fake_quant(x, *qp, backward=backward)
        term = p[i] * xi
        y = term if y is None else y + term
    return y
