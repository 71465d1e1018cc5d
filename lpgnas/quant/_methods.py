"""Pure quantiser functions: ``quant_init(plan, key) -> (state, param_names)``,
``quant_apply(plan, state, x, ctx) -> (x_hat, new_state)`` and
``quant_to_integer(plan, state, x, ctx) -> IntegerTensor``.

A :class:`QuantPlan` is the static part (spec resolved for one tensor: kind, shape, observer,
backward, topology buckets); ``state`` is a ``dict`` of arrays (trainable parameters named in
``param_names``, everything else is observer statistics). Each method contributes an ``init`` and a
``params`` function; ``params`` returns the :class:`QParams` of the call and the updated state
(statistics and lazily initialised parameters change in training only).

Methods:

* ``fixed``: ``scale = 2^-frac_bits``, zero point 0, codes of ``bits`` (signed or not);
* ``binary``: ``scale * sign(x)``, ``scale = mean|x|`` per group;
* ``ternary``: threshold ``0.7 * mean|x|``, ``scale`` = mean ``|x|`` above it; on node and edge
  tensors with a group shared across rows (``tensor`` / ``column``) both keep running averages
  (``m <- m + 0.1 (cur - m)``, as batch norm does): training uses the call's statistic and updates
  them, evaluation reads them, so that a row's evaluation output does not depend on the other rows
  of the tensor (the other graphs of a batch, its padding);
* ``affine`` / ``dq`` / ``sgquant``: observer range ``[lo, hi]`` (widened to contain 0);
  signed -> symmetric ``scale = max(|lo|, |hi|) / ((qmax - qmin) / 2)``, zero point 0; unsigned ->
  ``scale = (hi - lo) / (qmax - qmin)``, ``zp = round(qmin - lo / scale)``. With topology buckets the
  bits (hence ``qmin/qmax`` and ``scale``) are per row;
* ``lsq``: learned step ``s`` (``nnx.Param``), initialised to ``2 mean|x| / sqrt(Qp)`` on the first
  call, gradient scaled by ``1 / sqrt(numel_per_step * Qp)``;
* ``alpha``: learned range scaling, the affine quantiser on ``[alpha * lo, alpha * hi]`` with
  ``alpha`` (``nnx.Param``) initialised by a grid search over ``0.10, 0.15, ..., 1.00`` minimising the
  squared quantisation error (on at most ``max_samples`` sampled elements for per-tensor alpha);
* ``a2q``: see :mod:`lpgnas.quant._a2q`.

Lazily initialised parameters use the value 0 as "not initialised": the effective value is the
data-driven one wherever the parameter is ``<= 0``, and training writes it back.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from lpgnas.errors import ConfigError
from lpgnas.quant._a2q import a2q_init, a2q_local_fake_quant, a2q_params
from lpgnas.quant._context import Identity, QuantContext
from lpgnas.quant._core import (
    cond,
    TINY,
    IntegerTensor,
    QParams,
    _dequant,
    fake_quant,
    lsq_grad_scale,
    qrange,
    qrange_array,
    reduce_axes,
    row_mask,
    scale_grad,
    sign_codes,
    sign_fake_quant,
    stat_shape,
    sum_to,
    uniform_codes,
)
from lpgnas.quant._observers import (
    RUNNING_OBSERVERS,
    RangeState,
    init_range,
    masked_mean_abs,
    masked_minmax,
    fold_step,
    observe,
    sample_elements,
    update_range,
)
from lpgnas.quant._spec import KINDS, MAX_SAMPLES, DegreeBits, QuantSpec

__all__ = [
    "QuantPlan",
    "make_plan",
    "quant_init",
    "quant_params",
    "quant_apply",
    "pass_protected",
    "quant_to_integer",
    "affine_qparams",
    "row_compact_exact",
    "ALPHA_GRID",
]

ALPHA_GRID = tuple(float(a) for a in np.round(np.linspace(0.1, 1.0, 19), 4))


@dataclasses.dataclass(frozen=True)
class QuantPlan:
    """Static description of one quantised tensor (hashable; an ``nnx`` static attribute)."""

    spec: QuantSpec
    kind: str
    shape: tuple[int, ...]
    observer: str
    backward: str
    degree_bits: DegreeBits | None = None
    max_samples: int = MAX_SAMPLES

    @property
    def method(self) -> str:
        return self.spec.method

    @property
    def bits(self) -> int:
        return self.spec.bits

    @property
    def signed(self) -> bool:
        return self.spec.signed

    @property
    def granularity(self) -> str:
        return self.spec.granularity


def make_plan(
    spec: QuantSpec, kind: str, shape: tuple[int, ...], degree_bits: DegreeBits | None = None
) -> QuantPlan:
    """Resolve ``spec`` for a tensor of ``kind`` (weight/node/edge) and ``shape``."""
    if kind not in KINDS:
        raise ConfigError("kind", f"{kind!r} is not one of {', '.join(KINDS)}")
    shape = tuple(int(d) for d in shape)
    if not shape or any(d <= 0 for d in shape):
        raise ConfigError("shape", f"must be a non-empty tuple of positive sizes, got {shape}")
    if kind == "weight":
        degree_bits = None
    return QuantPlan(spec, kind, shape, spec.resolved_observer(kind), spec.resolved_backward(), degree_bits,
                     spec.max_samples)


# ---------------------------------------------------------------------------------------------
# helpers


def _valid(plan: QuantPlan, ctx: QuantContext):
    if not ctx.training or ctx.protect is None or plan.kind == "weight":
        return None
    return jnp.logical_not(jnp.asarray(ctx.protect, bool))


def _lazy(param: jax.Array, init_fn) -> jax.Array:
    """``param`` where it is > 0, else ``init_fn()`` (evaluated only if some entry needs it)."""
    return cond(
        jnp.all(param > 0), lambda: param, lambda: jnp.where(param > 0, param, init_fn())
    )


def affine_qparams(lo, hi, qmin, qmax, signed: bool):
    """``(scale, zero_point)`` of the range ``[lo, hi]`` (widened to contain 0) on codes
    ``[qmin, qmax]``: symmetric when ``signed``, else asymmetric with a rounded zero point."""
    lo = jnp.minimum(lo, 0.0)
    hi = jnp.maximum(hi, 0.0)
    if signed:
        amax = jnp.maximum(-lo, hi)
        scale = jnp.maximum(amax / ((qmax - qmin) / 2.0), TINY)
        return scale, jnp.zeros_like(scale)
    scale = jnp.maximum((hi - lo) / (qmax - qmin), TINY)
    zp = jnp.clip(jnp.round(qmin - lo / scale), qmin, qmax)
    return scale, jax.lax.stop_gradient(zp)


def _row_bits(plan: QuantPlan, x, ctx):
    """Per-row bits of topology-aware quantisation, or None."""
    if plan.degree_bits is None or ctx.degree is None:
        return None
    bits = jnp.minimum(plan.degree_bits.lookup(ctx.degree), plan.bits)
    return row_mask(bits, x.ndim).astype(jnp.float32)


def _qrange_of(plan: QuantPlan, x, ctx):
    rb = _row_bits(plan, x, ctx)
    if rb is None:
        qmin, qmax = qrange(plan.bits, plan.signed)
        return float(qmin), float(qmax), None
    qmin, qmax = qrange_array(rb, plan.signed)
    return qmin, qmax, (rb >= 32).reshape(-1)


def _range(plan: QuantPlan, state: dict, x, ctx, valid):
    """``(lo, hi, new_state)`` of the plan's observer."""
    gran = plan.granularity
    if plan.observer == "current":
        lo, hi, ok = masked_minmax(x, valid, gran)
        if valid is not None:  # every row protected: fall back to the whole tensor
            lo_all, hi_all, _ = masked_minmax(x, None, gran)
            lo, hi = jnp.where(ok, lo, lo_all), jnp.where(ok, hi, hi_all)
        return lo, hi, state
    rs = RangeState(state["lo"], state["hi"], state["count"])
    new_state = state
    if ctx.training:
        key = None
        if plan.observer == "percentile":
            key = fold_step(state["key"], rs.count)  # this step's sampling key (integer hashing)
        cur = observe(
            plan.observer,
            x,
            valid,
            gran,
            p=plan.spec.resolved_percentile(),
            key=key,
            max_samples=plan.max_samples,
        )
        rs = update_range(rs, *cur, plan.observer, plan.spec.momentum)
        new_state = {**state, "lo": rs.lo, "hi": rs.hi, "count": rs.count}

    def current():
        lo, hi, _ = masked_minmax(x, None, gran)
        return lo, hi

    lo, hi = cond(rs.count > 0, lambda: (rs.lo, rs.hi), current)
    return lo, hi, new_state


def _init_range_state(plan: QuantPlan, key) -> dict:
    if plan.observer not in RUNNING_OBSERVERS:
        return {}
    rs = init_range(plan.shape, plan.granularity)
    state = {"lo": rs.lo, "hi": rs.hi, "count": rs.count}
    if plan.observer == "percentile":
        state["key"] = jax.random.key_data(key)
    return state


# ---------------------------------------------------------------------------------------------
# per-method init / params


def _init_none(plan, key):
    return {}, frozenset()


def _params_fixed(plan, state, x, ctx):
    qmin, qmax = qrange(plan.bits, plan.signed)
    scale = jnp.asarray(2.0 ** (-plan.spec.resolved_frac_bits()), jnp.float32)
    return QParams(scale, jnp.zeros((), jnp.float32), float(qmin), float(qmax)), state


SIGN_MOMENTUM = 0.1  # running mean|x| of binary / ternary activations, batch norm's usual rate
# State entries of a binary / ternary quantiser with running statistics (``scale``: ternary only).
SIGN_RUNNING_STATS = frozenset({"mean_abs", "scale", "count"})


def _sign_running(plan: QuantPlan) -> bool:
    """Binary / ternary quantisers whose statistic pools rows of a node or edge tensor keep it as a
    running average (a per-row group, or a weight, is its own statistic)."""
    return plan.kind != "weight" and plan.granularity in ("tensor", "column")


def _init_sign(plan, key):
    if not _sign_running(plan):
        return {}, frozenset()
    shape = _param_shape(plan)
    state = {"mean_abs": jnp.zeros(shape, jnp.float32), "count": jnp.zeros((), jnp.int32)}
    if plan.method == "ternary":
        state["scale"] = jnp.zeros(shape, jnp.float32)
    return state, frozenset()


def _sign_stats(plan, state, ctx, current):
    """``(stats, new_state)``: in training the call's statistics (``current()``, a dict), folded
    into the running averages; in evaluation the running averages once something was observed."""
    if not _sign_running(plan):
        return current(), state
    names = [k for k in state if k != "count"]
    if ctx.training:
        cur = current()
        first = state["count"] == 0
        new = {k: jnp.where(first, cur[k], state[k] + SIGN_MOMENTUM * (cur[k] - state[k])).astype(jnp.float32)
               for k in names}
        return cur, {**state, **new, "count": state["count"] + 1}
    stored = cond(state["count"] > 0, lambda: {k: state[k] for k in names}, current)
    return stored, state


def _params_binary(plan, state, x, ctx):
    def current():
        return {"mean_abs": masked_mean_abs(x, _valid(plan, ctx), plan.granularity)}

    stats, new_state = _sign_stats(plan, state, ctx, current)
    scale = jnp.maximum(stats["mean_abs"], TINY)
    zero = jnp.zeros_like(scale)
    return QParams(scale, zero, -1.0, 1.0, threshold=zero), new_state


def _params_ternary(plan, state, x, ctx):
    valid = _valid(plan, ctx)
    gran = plan.granularity

    def current():
        mean_abs = masked_mean_abs(x, valid, gran)
        xa = jnp.abs(jax.lax.stop_gradient(x))
        above = xa > 0.7 * mean_abs
        if valid is not None:
            above = jnp.logical_and(above, row_mask(valid, x.ndim))
        axes = reduce_axes(x.ndim, gran)
        shp = stat_shape(x.shape, gran)
        total = jnp.sum(jnp.where(above, xa, 0.0), axis=axes, keepdims=True).reshape(shp)
        count = jnp.sum(above, axis=axes, keepdims=True, dtype=jnp.float32).reshape(shp)
        return {"mean_abs": mean_abs, "scale": total / jnp.maximum(count, 1.0)}

    stats, new_state = _sign_stats(plan, state, ctx, current)
    scale = jnp.maximum(stats["scale"], TINY)
    return QParams(scale, jnp.zeros_like(scale), -1.0, 1.0, threshold=0.7 * stats["mean_abs"]), new_state


def _init_affine(plan, key):
    return _init_range_state(plan, key), frozenset()


def _params_affine(plan, state, x, ctx):
    lo, hi, new_state = _range(plan, state, x, ctx, _valid(plan, ctx))
    qmin, qmax, passthrough = _qrange_of(plan, x, ctx)
    scale, zp = affine_qparams(lo, hi, qmin, qmax, plan.signed)
    return QParams(scale, zp, qmin, qmax, passthrough=passthrough), new_state


def _param_shape(plan: QuantPlan) -> tuple[int, ...]:
    return stat_shape(plan.shape, plan.granularity)


def _check_rows(plan: QuantPlan, x, param) -> None:
    if param.ndim and param.shape[0] != 1 and x.shape[0] != param.shape[0]:
        raise ValueError(
            f"{plan.method} quantiser with per-row parameters was built for {param.shape[0]} rows "
            f"but got a tensor of shape {x.shape}"
        )


def _init_lsq(plan, key):
    return {"step": jnp.zeros(_param_shape(plan), jnp.float32)}, frozenset({"step"})


def _params_lsq(plan, state, x, ctx):
    qmin, qmax = qrange(plan.bits, plan.signed)
    qp = max(qmax, 1)
    s = state["step"]
    _check_rows(plan, x, s)
    valid = _valid(plan, ctx)
    s_eff = _lazy(
        s,
        lambda: jnp.maximum(
            2.0 * masked_mean_abs(x, valid, plan.granularity) / math.sqrt(qp), TINY
        ).reshape(s.shape),
    )
    new_state = {**state, "step": jax.lax.stop_gradient(s_eff)} if ctx.training else state
    g = lsq_grad_scale(x.size // max(int(np.prod(s.shape)), 1), qp)
    zero = jnp.zeros((), jnp.float32)
    return QParams(scale_grad(s_eff, g), zero, float(qmin), float(qmax)), new_state


def _init_alpha(plan, key):
    state = _init_range_state(plan, key)
    state["alpha"] = jnp.zeros(_param_shape(plan), jnp.float32)
    return state, frozenset({"alpha"})


def _grid_search_alpha(plan, x, valid, lo, hi, qmin, qmax, shape):
    cands = jnp.asarray(ALPHA_GRID, jnp.float32)
    x = jax.lax.stop_gradient(x)
    if shape == ():
        xs, ok = sample_elements(x, valid, jax.random.key(0), plan.max_samples)
        w = ok.astype(x.dtype)
    else:
        xs = x
        w = jnp.ones((x.shape[0],), x.dtype) if valid is None else valid.astype(x.dtype)
        w = row_mask(w, x.ndim)

    def err(c):
        scale, zp = affine_qparams(c * lo, c * hi, qmin, qmax, plan.signed)
        xq = _dequant(uniform_codes(xs, scale, zp, qmin, qmax), scale, zp)
        return sum_to(w * jnp.square(xs - xq), shape)

    errs = jax.lax.map(err, cands)
    return cands[jnp.argmin(errs, axis=0)]


def _params_alpha(plan, state, x, ctx):
    valid = _valid(plan, ctx)
    lo, hi, new_state = _range(plan, state, x, ctx, valid)
    qmin, qmax = qrange(plan.bits, plan.signed)
    a = state["alpha"]
    _check_rows(plan, x, a)
    a_eff = _lazy(a, lambda: _grid_search_alpha(plan, x, valid, lo, hi, float(qmin), float(qmax), a.shape))
    if ctx.training:
        new_state = {**new_state, "alpha": jax.lax.stop_gradient(a_eff)}
    scale, zp = affine_qparams(a_eff * lo, a_eff * hi, float(qmin), float(qmax), plan.signed)
    return QParams(scale, zp, float(qmin), float(qmax)), new_state


def _init_a2q(plan, key):
    return a2q_init(plan.spec, plan.kind, plan.shape)


_INIT = {
    "fixed": _init_none,
    "binary": _init_sign,
    "ternary": _init_sign,
    "affine": _init_affine,
    "dq": _init_affine,
    "sgquant": _init_affine,
    "lsq": _init_lsq,
    "alpha": _init_alpha,
    "a2q": _init_a2q,
}
_PARAMS = {
    "fixed": _params_fixed,
    "binary": _params_binary,
    "ternary": _params_ternary,
    "affine": _params_affine,
    "dq": _params_affine,
    "sgquant": _params_affine,
    "lsq": _params_lsq,
    "alpha": _params_alpha,
    "a2q": a2q_params,
}


# ---------------------------------------------------------------------------------------------
# public pure API


def quant_init(plan: QuantPlan, key: jax.Array) -> tuple[dict, frozenset]:
    """Initial state (dict of arrays) and the names of its trainable entries."""
    if plan.method not in _INIT:
        raise ConfigError("method", f"{plan.method!r} has no quantiser (fp32 is the identity)")
    return _INIT[plan.method](plan, key)


def quant_params(plan: QuantPlan, state: dict, x: jax.Array, ctx: QuantContext):
    """``(QParams, new_state)`` of one call."""
    return _PARAMS[plan.method](plan, state, x, ctx)


def _row_size(plan: QuantPlan, x: jax.Array) -> int:
    """Elements per row of the tensor the plan describes: the plan's (dense) row size, so that a
    row-compact input (fewer stored columns) is averaged like the dense rows it stands for."""
    shape = plan.shape if len(plan.shape) == x.ndim and plan.kind != "weight" else x.shape
    return int(np.prod(shape[1:], dtype=np.int64)) if len(shape) > 1 else 1


def _fake(plan: QuantPlan, qp: QParams, x: jax.Array) -> jax.Array:
    if plan.method in ("binary", "ternary"):
        return sign_fake_quant(
            x,
            jax.lax.stop_gradient(qp.scale),
            jax.lax.stop_gradient(qp.threshold),
            ternary=plan.method == "ternary",
            backward=plan.backward,
        )
    if plan.method == "a2q":
        row_size = _row_size(plan, x)
        if plan.kind != "weight" and plan.spec.local_gradient:
            return a2q_local_fake_quant(x, qp.scale, qp.bits, signed=plan.signed, backward=plan.backward,
                                        row_size=row_size, zero_point=qp.zero_point)
        qp_static = qrange(plan.bits, plan.signed)[1]
        numel = (x.shape[0] if x.ndim else 1) * row_size
        g = lsq_grad_scale(numel // max(int(np.prod(qp.scale.shape)), 1), max(qp_static, 1))
        return fake_quant(x, scale_grad(qp.scale, g), qp.zero_point, qp.qmin, qp.qmax, plan.backward)
    return fake_quant(x, qp.scale, qp.zero_point, qp.qmin, qp.qmax, plan.backward)


def quant_apply(plan: QuantPlan, state: dict, x: jax.Array, ctx: QuantContext = QuantContext()):
    """``(x_hat, new_state)``. In training, rows in ``ctx.protect`` pass through unquantised and
    do not feed the observers; ``new_state is state`` for the entries that did not change."""
    qp, new_state = quant_params(plan, state, x, ctx)
    y = _fake(plan, qp, x)
    if qp.passthrough is not None:
        y = jnp.where(row_mask(qp.passthrough, x.ndim), x, y)
    return pass_protected(plan.kind, ctx, x, y), new_state


def pass_protected(kind: str, ctx: QuantContext, x: jax.Array, y: jax.Array) -> jax.Array:
    """``y`` (the quantised ``x``) with the rows ``ctx.protect`` marks put back to ``x``: Degree-Quant's
    protection of node / edge tensors (``kind`` ``node`` or ``edge``) in training. Weights, evaluation
    and a context without a mask return ``y`` unchanged."""
    if ctx.training and ctx.protect is not None and kind != "weight":
        return jnp.where(row_mask(jnp.asarray(ctx.protect, bool), x.ndim), x, y)
    return y


def quant_to_integer(
    plan: QuantPlan, state: dict, x: jax.Array, ctx: QuantContext | None = None
) -> IntegerTensor:
    """The reference integer path (evaluation semantics): ``dequantize(*quant_to_integer(...))``
    equals the evaluation-mode ``quant_apply`` output bit for bit. Rows that topology-aware bits
    keep at 32 bits have no integer form (their codes are meaningless)."""
    ctx = QuantContext() if ctx is None else ctx._replace(training=False)
    qp, _ = quant_params(plan, state, x, ctx)
    if plan.method in ("binary", "ternary"):
        codes = sign_codes(x, qp.threshold, plan.method == "ternary")
    else:
        zp = jnp.asarray(qp.zero_point, x.dtype)
        codes = uniform_codes(x, jnp.asarray(qp.scale, x.dtype), zp, qp.qmin, qp.qmax)
    scale = jnp.asarray(qp.scale, jnp.float32)
    return IntegerTensor(codes.astype(jnp.int32), scale, jnp.asarray(qp.zero_point).astype(jnp.int32))


# ---------------------------------------------------------------------------------------------
# row-compact sparse inputs

_EXTREMA_OBSERVERS = ("current", "minmax", "ema", "rowavg")


def row_compact_exact(q, kind: str = "node") -> bool:
    """True when quantising a row-compact sparse matrix is exact for ``q`` (a :class:`QuantPlan`,
    a :class:`QuantSpec` for a tensor of ``kind``, a quantiser module with a ``plan``, or the
    identity / ``None``).

    Row-compact form (``lpgnas.nn.SparseRows``): each row's non-zeros, then padding zeros, ``[N, K]``
    instead of ``[N, F]``, with at least one padding zero per row. The argument: every dense row
    then also holds a zero, so a statistic that is a minimum or maximum per row or over the tensor
    sees the same set of values in both forms (``{non-zeros} + {0}``), and so do the means over rows
    of per-row extrema (SGQuant ``rowavg``) and every running statistic built from them (``minmax``,
    ``ema``). The affine ranges are widened to contain 0, so 0 is a code (``zero_point``) and maps
    back to exactly 0 with zero gradient to ``scale`` and ``zero_point``; fixed point has zero point 0
    and no statistic; per-row Degree-Quant protection and topology-aware (per-row) bits act row by row.
    Hence the values at the non-zeros, the padding (exact zeros), the observer state and the
    gradients are those of the dense quantiser.

    A2Q on node/edge tensors is exact too: per-row step and bits (a zero is code ``z_i``, decoded
    to exactly 0 with zero error and zero gradient to ``s_i``/``b_i``), the step (a learned ratio to
    the row's range) and the unsigned zero point computed from the row's ``min``/``max`` (extrema;
    every compact row holds a zero),
    nearest-neighbour matching on ``max |x|``, and the Local
    Gradient error averaged over the plan's dense row width (not the stored ``K``). Values, state and
    input gradients are bit for bit; the step/bit-width gradients are the same sums over a row's
    non-zeros, equal up to float32 summation order (like the compact product's weight gradient).

    Not exact (False): statistics over all elements that are not extrema -- ``percentile`` (samples
    elements), ``lsq`` (step initialised from ``mean|x|``), ``binary``/``ternary`` (``mean|x|``;
    binary maps 0 to ``+scale``), ``alpha`` (grid search on summed or sampled errors), ``a2q`` weights
    (one statistic per column) -- and ``column`` granularity (compact columns are not feature columns).
    """
    if q is None or isinstance(q, Identity):
        return True
    plan = getattr(q, "plan", q)
    if isinstance(plan, QuantSpec):
        if plan.is_fp32:
            return True
        plan = make_plan(plan, kind, (1, 1))
    if not isinstance(plan, QuantPlan):
        return False  # an unknown quantiser: no claim
    if plan.method == "fixed":
        return True
    if plan.method in ("affine", "dq", "sgquant"):
        return plan.granularity in ("tensor", "row") and plan.observer in _EXTREMA_OBSERVERS
    if plan.method == "a2q":
        return plan.kind != "weight"
    return False
