"""``nnx.Module`` wrappers around the pure quantiser functions, the factory the layers use
(:func:`make_quantizer`), bit accounting (:func:`avg_bits`) and A2Q's memory penalty.

Each wrapper keeps its state as ``nnx`` variables: trainable quantiser parameters (LSQ step,
alpha, A2Q step and bit width) are ``nnx.Param`` (trained by the normal optimiser), observer
statistics are :class:`QuantStat`. In training (``ctx.training``) the call writes the updated state
in place; this works inside ``nnx.jit``/``nnx.value_and_grad`` and with ``nnx.split``/``nnx.merge``
under ``jax.jit`` when the new state is read back with ``nnx.state``/``nnx.split``.
"""

from __future__ import annotations

from typing import ClassVar, Iterable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from lpgnas.errors import ConfigError
from lpgnas.quant._a2q import _clip_c
from lpgnas.quant._context import Identity, QuantContext, identity
from lpgnas.quant._core import IntegerTensor, QuantStat, round_ste
from lpgnas.quant._methods import QuantPlan, make_plan, quant_apply, quant_init, quant_to_integer
from lpgnas.quant._spec import KINDS, DegreeBits, QuantConfig, QuantSpec

__all__ = [
    "StatefulQuantizer",
    "FixedPointQuantizer",
    "BinaryQuantizer",
    "TernaryQuantizer",
    "UniformQuantizer",
    "LSQQuantizer",
    "AlphaQuantizer",
    "A2QQuantizer",
    "make_quantizer",
    "avg_bits",
    "a2q_memory_kb",
    "a2q_memory_penalty",
]


class StatefulQuantizer(nnx.Module):
    """Base wrapper: ``q(x, ctx) -> x_hat``; ``q.to_integer(x)``; ``q.state()``; ``q.plan``."""

    methods: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        spec: QuantSpec,
        *,
        kind: str,
        shape: tuple[int, ...],
        rngs: nnx.Rngs | None = None,
        degree_bits: DegreeBits | None = None,
    ):
        if spec.method not in self.methods:
            raise ConfigError(
                "method", f"{type(self).__name__} implements {', '.join(self.methods)}, not {spec.method!r}"
            )
        self.plan: QuantPlan = make_plan(spec, kind, shape, degree_bits)
        key = rngs.params() if rngs is not None else jax.random.key(0)
        state, params = quant_init(self.plan, key)
        self.state_names: tuple[str, ...] = tuple(sorted(state))
        for name in self.state_names:
            var = nnx.Param if name in params else QuantStat
            setattr(self, name, var(state[name]))

    @property
    def spec(self) -> QuantSpec:
        return self.plan.spec

    @property
    def bits(self) -> int:
        """The configured bit width (A2Q: the initial one; see :func:`avg_bits`)."""
        return self.plan.spec.bits

    def state(self) -> dict:
        return {name: getattr(self, name)[...] for name in self.state_names}

    def __call__(self, x: jax.Array, ctx: QuantContext = QuantContext()) -> jax.Array:
        state = self.state()
        y, new_state = quant_apply(self.plan, state, x, ctx)
        if ctx.training:
            for name in self.state_names:
                if new_state[name] is not state[name]:
                    getattr(self, name)[...] = jax.lax.stop_gradient(new_state[name])
        return y

    def to_integer(self, x: jax.Array, ctx: QuantContext | None = None) -> IntegerTensor:
        """Integer codes of ``x`` under the current state (evaluation semantics)."""
        return quant_to_integer(self.plan, self.state(), x, ctx)

    def __repr__(self) -> str:
        s = self.plan.spec
        name = type(self).__name__
        return f"{name}({s.method}, bits={s.bits}, kind={self.plan.kind}, shape={self.plan.shape})"


class FixedPointQuantizer(StatefulQuantizer):
    """LPGNAS fixed point: ``bits`` total, ``frac_bits`` fraction bits (step ``2^-frac_bits``)."""

    methods = ("fixed",)


class BinaryQuantizer(StatefulQuantizer):
    """``mean|x| * sign(x)`` per tensor/row/column."""

    methods = ("binary",)


class TernaryQuantizer(StatefulQuantizer):
    """Ternary ``{-s, 0, s}`` with threshold ``0.7 * mean|x|``."""

    methods = ("ternary",)


class UniformQuantizer(StatefulQuantizer):
    """Uniform affine quantisation on an observed range (``affine``, ``dq``, ``sgquant``)."""

    methods = ("affine", "dq", "sgquant")


class LSQQuantizer(StatefulQuantizer):
    """Learned step size quantisation (LSQ)."""

    methods = ("lsq",)


class AlphaQuantizer(StatefulQuantizer):
    """Learned range scaling ``alpha * [lo, hi]`` with grid-search initialisation."""

    methods = ("alpha",)


class A2QQuantizer(StatefulQuantizer):
    """A2Q per-node step and bit width, Local Gradient and Nearest-Neighbour Strategy."""

    methods = ("a2q",)

    def bit_widths(self) -> jax.Array:
        """The bit widths used in the forward pass (rounded, straight-through)."""
        s = self.plan.spec
        return round_ste(_clip_c(self.bitwidth[...], s.min_bits, s.max_bits))

    def feature_width(self) -> float:
        """``F``: the elements per row of the node/edge tensor (0 for weights)."""
        if self.plan.kind == "weight":
            return 0.0
        return float(np.prod(self.plan.shape[1:], dtype=np.int64))

    def memory_kb(self, bits: float | None = None) -> jax.Array:
        """``F * sum_i b_i / 8 / 1024`` (KB) of this node/edge tensor; 0 for weights. With ``bits``:
        the memory if every row had ``bits`` bits (e.g. a memory target at an average width)."""
        if self.plan.kind == "weight":
            return jnp.zeros((), jnp.float32)
        f = self.feature_width()
        widths = self.bit_widths() if bits is None else jnp.full(self.bitwidth[...].shape, bits, jnp.float32)
        return f * jnp.sum(widths) / 8.0 / 1024.0


_CLASSES: dict[str, type[StatefulQuantizer]] = {
    m: cls
    for cls in (
        FixedPointQuantizer,
        BinaryQuantizer,
        TernaryQuantizer,
        UniformQuantizer,
        LSQQuantizer,
        AlphaQuantizer,
        A2QQuantizer,
    )
    for m in cls.methods
}


def make_quantizer(
    config: QuantConfig | None,
    layer: int,
    component: str,
    *,
    kind: str,
    shape: tuple[int, ...],
    rngs: nnx.Rngs,
):
    """The quantiser of ``component`` in ``layer`` (``identity`` for no config or an fp32 spec).

    kind: ``"weight"``, ``"node"`` or ``"edge"`` (rows of node/edge tensors are nodes/edges).
    shape: the tensor's shape (rows of the training graph for per-row parameters).
    """
    if config is None:
        return identity
    if kind not in KINDS:
        raise ConfigError("kind", f"{kind!r} is not one of {', '.join(KINDS)}")
    spec = config.spec(layer, component)
    db = config.degree_table(layer, component) if (kind != "weight" and spec.method in UniformQuantizer.methods) \
        else None
    if spec.method == "fp32" or (spec.bits >= 32 and spec.method != "a2q" and db is None):
        return identity
    return _CLASSES[spec.method](spec, kind=kind, shape=tuple(shape), rngs=rngs, degree_bits=db)


def avg_bits(quantizer_or_spec, degree: jax.Array | None = None):
    """Average bit width of a quantiser (or a spec): 32 for the identity/fp32; A2Q's mean rounded
    bit width (a differentiable array); topology-aware bits averaged over ``degree`` when given."""
    if quantizer_or_spec is None or isinstance(quantizer_or_spec, Identity):
        return 32.0
    if isinstance(quantizer_or_spec, QuantSpec):
        return 32.0 if quantizer_or_spec.is_fp32 else float(quantizer_or_spec.bits)
    if isinstance(quantizer_or_spec, A2QQuantizer):
        return jnp.mean(quantizer_or_spec.bit_widths())
    if isinstance(quantizer_or_spec, StatefulQuantizer):
        plan = quantizer_or_spec.plan
        if plan.degree_bits is not None and degree is not None:
            b = jnp.minimum(plan.degree_bits.lookup(degree), plan.bits)
            return jnp.mean(b.astype(jnp.float32))
        return float(plan.bits)
    raise TypeError(f"avg_bits: not a quantiser or QuantSpec: {type(quantizer_or_spec).__name__}")


def _a2q_quantizers(model_or_quantizers) -> list[A2QQuantizer]:
    if isinstance(model_or_quantizers, nnx.Module):
        return [m for _, m in nnx.iter_graph(model_or_quantizers) if isinstance(m, A2QQuantizer)]
    items: Iterable = model_or_quantizers
    return [q for q in items if isinstance(q, A2QQuantizer)]


def _width_sums(quantizers: list[A2QQuantizer]) -> list[jax.Array]:
    """``sum_i b_i`` (rounded widths) of each quantiser. The sums of quantisers of one shape come
    from one reduction of their stacked widths: one rounding and one reduction kernel, not one of
    each per quantiser (the widths are integers: the sums are exact, whatever the grouping)."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, q in enumerate(quantizers):
        groups.setdefault(tuple(q.bitwidth[...].shape), []).append(i)
    sums: list = [None] * len(quantizers)
    for idx in groups.values():
        if len(idx) == 1:
            sums[idx[0]] = jnp.sum(quantizers[idx[0]].bit_widths())
            continue
        stacked = jnp.stack([quantizers[i].bit_widths() for i in idx])
        per_q = jnp.sum(stacked, axis=tuple(range(1, stacked.ndim)))
        for i, s in zip(idx, jnp.split(per_q, len(idx))):  # backwards one concatenation, not a pad each
            sums[i] = s.reshape(())
    return sums


def a2q_memory_kb(model_or_quantizers, bits: float | None = None) -> jax.Array:
    """``M``: feature memory (KB) of every node/edge A2Q quantiser in a model (or a list); with
    ``bits``, the memory they would take with every row at ``bits`` bits (a target ``M_target``)."""
    qs = _a2q_quantizers(model_or_quantizers)
    total = jnp.zeros((), jnp.float32)
    if bits is not None:
        for q in qs:
            total = total + q.memory_kb(bits)
        return total
    qs = [q for q in qs if q.plan.kind != "weight"]  # weights hold no feature memory
    for q, width_sum in zip(qs, _width_sums(qs)):
        total = total + q.feature_width() * width_sum / 8.0 / 1024.0
    return total


def a2q_memory_penalty(model_or_quantizers, target_kb: float, a: float) -> jax.Array:
    """A2Q memory penalty ``a * relu(M - target_kb)^2`` with ``M = sum F * sum_i b_i / 8 / 1024``;
    differentiable in the bit widths (add it to the training loss)."""
    m = a2q_memory_kb(model_or_quantizers)
    return a * jnp.square(jax.nn.relu(m - target_kb))
