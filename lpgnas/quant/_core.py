"""The numerical core shared by every quantiser.

Every quantiser in :mod:`lpgnas.quant` reduces to one of two fake-quantisation primitives, each a
``jax.custom_vjp``:

* :func:`fake_quant` -- uniform: ``codes = clip(round(x / scale) + zero_point, qmin, qmax)`` and
  ``x_hat = (codes - zero_point) * scale``;
* :func:`sign_fake_quant` -- binary (``codes = +-1``) and ternary (``codes`` in ``{-1, 0, 1}``),
  ``x_hat = (codes - 0) * scale``.

Both compute the forward value with exactly the operations of :func:`dequantize` applied to the codes
of :func:`uniform_codes` / :func:`sign_codes`, so the reference integer path reproduces the fake-quant
output bit for bit (float32). Quantisation parameters (``scale``, ``zero_point``, ``qmin``,
``qmax``) are arrays broadcastable to ``x`` (either scalars or of ``x``'s rank).

Backward variants (``backward``): ``"ste"`` passes the upstream gradient to ``x`` unchanged;
``"clip"`` zeroes it where ``x / scale + zero_point`` falls outside ``[qmin, qmax]``. The gradients to
``scale``, ``zero_point``, ``qmin`` and ``qmax`` are the straight-through derivatives of the forward
formula (the LSQ derivation); callers ``stop_gradient`` the parameters that are statistics.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

__all__ = [
    "QuantStat",
    "IntegerTensor",
    "QParams",
    "TINY",
    "lsq_grad_scale",
    "BACKWARDS",
    "GRANULARITIES",
    "fake_quant",
    "sign_fake_quant",
    "uniform_codes",
    "sign_codes",
    "dequantize",
    "round_ste",
    "scale_grad",
    "qrange",
    "qrange_array",
    "reduce_axes",
    "stat_shape",
    "row_mask",
    "sum_to",
]

BACKWARDS = ("ste", "clip")
GRANULARITIES = ("tensor", "row", "column")
TINY = 1e-8  # smallest scale a range statistic can produce (an all-zero tensor)


class QuantStat(nnx.Variable):
    """Observer statistics of a quantiser (running min/max, EMA, counters, NNS pool degrees).

    Updated in place during training only, never touched by the optimiser (it is not an
    ``nnx.Param``); filter it with ``nnx.split(model, nnx.Param, QuantStat, ...)``.
    """


class QParams(NamedTuple):
    """Quantisation parameters of one call, all broadcastable to ``x``.

    threshold: ternary threshold (binary/ternary only). passthrough: ``bool [rows]`` rows kept in
    full precision (topology-aware bits of 32). bits: A2Q's continuous (clipped) bit widths.
    """

    scale: jax.Array
    zero_point: jax.Array
    qmin: jax.Array | float
    qmax: jax.Array | float
    threshold: jax.Array | None = None
    passthrough: jax.Array | None = None
    bits: jax.Array | None = None


class IntegerTensor(NamedTuple):
    """The integer form of a quantised tensor: ``x_hat == dequantize(codes, scale, zero_point)``."""

    codes: jax.Array  # int32, shape of x
    scale: jax.Array  # float32, broadcastable to x
    zero_point: jax.Array  # int32, broadcastable to x


# ---------------------------------------------------------------------------------------------
# shapes and reductions


def reduce_axes(ndim: int, granularity: str) -> tuple[int, ...]:
    """Axes a statistic is reduced over: all (tensor), all but 0 (row), all but the last (column)."""
    if ndim <= 1 or granularity == "tensor":
        return tuple(range(ndim))
    if granularity == "row":
        return tuple(range(1, ndim))
    if granularity == "column":
        return tuple(range(ndim - 1))
    raise ValueError(f"unknown granularity {granularity!r}")


def stat_shape(shape: tuple[int, ...], granularity: str) -> tuple[int, ...]:
    """Shape of one statistic/parameter per quantisation group: ``()`` for a whole tensor, else
    ``shape`` with the reduced axes set to 1 (rank kept, so it broadcasts without rank promotion)."""
    axes = reduce_axes(len(shape), granularity)
    if len(axes) == len(shape):
        return ()
    return tuple(1 if i in axes else int(d) for i, d in enumerate(shape))


def row_mask(mask: jax.Array, ndim: int) -> jax.Array:
    """Reshape a per-row ``[R]`` mask so that it broadcasts along axis 0 of a rank-``ndim`` tensor."""
    return jnp.reshape(mask, (mask.shape[0],) + (1,) * (ndim - 1))


def sum_to(g: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """Sum a broadcast gradient back to ``shape`` (``()`` or same rank with size-1 axes)."""
    shape = tuple(shape)
    if g.shape == shape:
        return g
    if len(shape) == 0:
        return jnp.sum(g)
    axes = tuple(i for i, (a, b) in enumerate(zip(g.shape, shape)) if b == 1 and a != 1)
    return jnp.sum(g, axis=axes, keepdims=True).reshape(shape)


def qrange(bits: int, signed: bool) -> tuple[int, int]:
    """Integer code range: ``[-2^(b-1), 2^(b-1)-1]`` if signed, else ``[0, 2^b - 1]``."""
    if signed:
        return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1


@jax.custom_vjp
def _pow2(bits):
    b_int = jnp.clip(jnp.round(bits), 0, 31).astype(jnp.int32)
    return jnp.left_shift(jnp.ones_like(b_int), b_int).astype(jnp.float32)


def _pow2_fwd(bits):
    y = _pow2(bits)
    return y, y


_pow2.defvjp(_pow2_fwd, lambda y, ct: (ct * y * math.log(2.0),))


def qrange_array(bits: jax.Array, signed: bool) -> tuple[jax.Array, jax.Array]:
    """:func:`qrange` for (integer-valued) float bit widths held in an array (``1..31``).

    Powers of two are built with integer shifts, not ``exp2`` (which is not exact on every
    backend), so the bounds are exact integers; the gradient w.r.t. ``bits`` is that of ``2^b``.
    """
    bits = jnp.asarray(bits, jnp.float32)
    if signed:
        half = _pow2(bits - 1.0)
        return -half, half - 1.0
    return jnp.zeros_like(bits), _pow2(bits) - 1.0


# ---------------------------------------------------------------------------------------------
# codes and the integer path


def uniform_codes(x, scale, zero_point, qmin, qmax) -> jax.Array:
    """Float-valued integer codes ``clip(round(x / scale) + zero_point, qmin, qmax)``."""
    return jnp.clip(jnp.round(x / scale) + zero_point, qmin, qmax)


def sign_codes(x: jax.Array, threshold: jax.Array, ternary: bool) -> jax.Array:
    """Binary codes ``+1 (x >= 0) / -1`` or ternary codes ``sign(x) * (|x| > threshold)``."""
    one = jnp.ones_like(x)
    if not ternary:
        return jnp.where(x >= 0, one, -one)
    zero = jnp.zeros_like(x)
    return jnp.where(x > threshold, one, jnp.where(x < -threshold, -one, zero))


def _dequant(codes, scale, zero_point):
    # The single formula behind both the fake-quant forward and the integer path.
    return (codes - zero_point) * scale


def dequantize(codes, scale, zero_point) -> jax.Array:
    """``(float(codes) - float(zero_point)) * scale`` in float32: equal, bit for bit, to the
    fake-quantised tensor the codes came from."""
    codes = jnp.asarray(codes).astype(jnp.float32)
    zero_point = jnp.asarray(zero_point).astype(jnp.float32)
    return _dequant(codes, zero_point=zero_point, scale=jnp.asarray(scale, jnp.float32))


# ---------------------------------------------------------------------------------------------
# custom-vjp primitives


@functools.partial(jax.custom_vjp, nondiff_argnums=(5,))
def _fake_quant(x, scale, zero_point, qmin, qmax, backward):
    return _dequant(uniform_codes(x, scale, zero_point, qmin, qmax), scale, zero_point)


def _fake_quant_fwd(x, scale, zero_point, qmin, qmax, backward):
    y = _fake_quant(x, scale, zero_point, qmin, qmax, backward)
    return y, (x, scale, zero_point, qmin, qmax)


def _fake_quant_bwd(backward, res, ct):
    x, scale, zero_point, qmin, qmax = res
    v = x / scale
    pos = v + zero_point
    below = pos < qmin
    above = pos > qmax
    inside = jnp.logical_not(jnp.logical_or(below, above))
    zeros = jnp.zeros_like(ct)
    gx = ct if backward == "ste" else jnp.where(inside, ct, zeros)
    # d x_hat / d scale: round(v) - v inside; (q_clip - zero_point) where clipped.
    d_scale = jnp.where(below, qmin - zero_point, jnp.where(above, qmax - zero_point, jnp.round(v) - v))
    d_zero = jnp.where(inside, zeros, -scale * jnp.ones_like(ct))
    d_qmin = jnp.where(below, scale * jnp.ones_like(ct), zeros)
    d_qmax = jnp.where(above, scale * jnp.ones_like(ct), zeros)
    return (
        gx,
        sum_to(ct * d_scale, scale.shape),
        sum_to(ct * d_zero, zero_point.shape),
        sum_to(ct * d_qmin, qmin.shape),
        sum_to(ct * d_qmax, qmax.shape),
    )


_fake_quant.defvjp(_fake_quant_fwd, _fake_quant_bwd)


def _as_param(v, dtype) -> jax.Array:
    return jnp.asarray(v).astype(dtype)


def fake_quant(x, scale, zero_point, qmin, qmax, backward: str = "ste") -> jax.Array:
    """Uniform fake quantisation ``(clip(round(x/scale) + zp, qmin, qmax) - zp) * scale``.

    Parameters may be Python numbers or arrays broadcastable to ``x`` (scalar or same rank).
    Gradients: see the module docstring; ``backward`` is ``"ste"`` or ``"clip"``.
    """
    if backward not in BACKWARDS:
        raise ValueError(f"backward must be one of {BACKWARDS}, got {backward!r}")
    dt = x.dtype
    return _fake_quant(
        x,
        _as_param(scale, dt),
        _as_param(zero_point, dt),
        _as_param(qmin, dt),
        _as_param(qmax, dt),
        backward,
    )


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def _sign_fake_quant(x, scale, threshold, ternary, backward):
    codes = sign_codes(x, threshold, ternary)
    return _dequant(codes, scale, jnp.zeros_like(scale))


def _sign_fwd(x, scale, threshold, ternary, backward):
    return _sign_fake_quant(x, scale, threshold, ternary, backward), (x, scale, threshold)


def _sign_bwd(ternary, backward, res, ct):
    x, scale, threshold = res
    gx = ct if backward == "ste" else jnp.where(jnp.abs(x) <= scale, ct, jnp.zeros_like(ct))
    codes = sign_codes(x, threshold, ternary)
    return gx, sum_to(ct * codes, scale.shape), jnp.zeros_like(threshold)


_sign_fake_quant.defvjp(_sign_fwd, _sign_bwd)


def sign_fake_quant(x, scale, threshold=0.0, *, ternary: bool = False, backward: str = "ste"):
    """Binary (``scale * (+-1)``) or ternary (``scale * {-1, 0, 1}``, zero where
    ``|x| <= threshold``) fake quantisation. ``"clip"`` zeroes the gradient where ``|x| > scale``."""
    if backward not in BACKWARDS:
        raise ValueError(f"backward must be one of {BACKWARDS}, got {backward!r}")
    dt = x.dtype
    return _sign_fake_quant(x, _as_param(scale, dt), _as_param(threshold, dt), bool(ternary), backward)


@jax.custom_vjp
def round_ste(x):
    """``round(x)`` with an identity (straight-through) gradient."""
    return jnp.round(x)


round_ste.defvjp(lambda x: (jnp.round(x), None), lambda _, ct: (ct,))


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def scale_grad(x, g: float):
    """Identity forward; the gradient is multiplied by ``g`` (LSQ gradient scaling). Unlike the
    ``x*g + stop_gradient(x - x*g)`` trick, the forward value is ``x`` exactly."""
    return x


scale_grad.defvjp(lambda x, g: (x, None), lambda g, _, ct: (ct * g,))


def cond(pred, true_fn, false_fn):
    """``lax.cond`` under tracing; a plain Python branch when ``pred`` is concrete (eager calls
    would otherwise re-trace and re-compile both branches on every call)."""
    try:
        flag = bool(pred)
    except jax.errors.ConcretizationTypeError:
        return jax.lax.cond(pred, true_fn, false_fn)
    return true_fn() if flag else false_fn()


def lsq_grad_scale(numel_per_group: int, qmax: int) -> float:
    """LSQ's ``g = 1 / sqrt(numel * Qp)`` (``Qp`` floored at 1 so 1-bit signed stays finite)."""
    return 1.0 / math.sqrt(max(int(numel_per_group), 1) * max(int(qmax), 1))
