"""A2Q: aggregation-aware mixed precision (pure functions; the module is ``A2QQuantizer``).

Every node (row) of a node/edge tensor has its own learned step ``s_i > 0`` and continuous bit
width ``b_i`` (``[N, 1]`` parameters); weights have one pair per output channel. The forward pass
uses ``b = round(clip(b_i, min_bits, max_bits))`` (straight-through) and the uniform codes
``clip(round(x / s_i) + z_i, qmin(b), qmax(b))``, ``x_hat = (code - z_i) * s_i``. Signed codes have
``z_i = 0``; unsigned codes (``signed=False``, for non-negative tensors such as bag-of-words inputs or
post-ReLU features, which then spend no code on negative values: a row holding one distinct non-zero
value is exact at 1 bit) take the zero point ``z_i = clip(round(-min(min_k x_ik, 0) / s_i), 0, qmax)``
from the row's minimum (0 for a non-negative row), so negative values stay representable.

Step parametrisation: the trained parameter is ``log_step`` ``u_i``, the log-ratio of the step to
the row's range step: ``s_i = exp(u_i) * r_i / qmax(b_i)`` with ``r_i = max_k |x_ik|`` (signed) or
``max_k x_ik - min(min_k x_ik, 0)`` (unsigned), a statistic of the current row (no gradient). So

* an optimiser update changes the step by a relative amount (Adam moves a parameter by about
  ``lr`` per update whatever the gradient's scale; a raw step of ``1e-2``, typical of row-normalised
  features, went negative within a few updates and training was unstable);
* the step follows the bit width (``s`` scales with ``1 / qmax(b)``, and the Local Gradient of
  ``b`` includes that finer-grid term), so a change of ``b`` does not first clip or waste the range;
* the step follows a row's scale: features that dropout rescales by ``1 / (1 - p)`` in training
  keep the same codes as in evaluation (a raw learned step fitted to the rescaled training values
  rounded a 1-bit row to zero in evaluation).

``u_i = 0`` (the initial value) is max scaling; the Local Gradient learns the clipping (``u_i < 0``).
The state's ``step`` holds the last training call's steps (no gradient; the NNS keys and inspection).

Local Gradient: with ``local_gradient`` the gradient reaching ``s_i`` and ``b_i`` is not the task
loss's but that of the node's mean L1 quantisation error ``E_i = mean_j |x_ij - x_hat_ij|``
(summed over nodes), computed in the backward pass of :func:`a2q_local_fake_quant`. The gradient to
``x`` is still the straight-through one.

A quantiser built for a single row (``shape[0] == 1``: the row count is unknown, e.g. edge tensors
or inductive models) keeps one ``(s, b)`` pair shared by every row.

Nearest-Neighbour Strategy: on a graph whose node count differs from the pool's (an unseen graph),
node ``i`` takes the pair ``(log_step_j, b_j)`` of the pool entry whose representable maximum at the
last training call ``step_j * qmax(b_j)`` is nearest to ``max_k |x_ik|`` (optionally only among pool entries of the same
in-degree bucket ``floor(log2(d + 1))``). Searching is ``O((N + P) log P)`` (sort + searchsorted).

Memory penalty: ``a * relu(M - M_target)^2`` with ``M = sum_q F_q * sum_i b_i / 8 / 1024`` KB over
the node/edge A2Q quantisers (see :func:`lpgnas.quant.a2q_memory_penalty`).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from lpgnas.quant._core import (
    QParams,
    TINY,
    _dequant,
    fake_quant,
    qrange_array,
    reduce_axes,
    round_ste,
    stat_shape,
    sum_to,
    uniform_codes,
)

__all__ = [
    "a2q_init",
    "a2q_params",
    "a2q_zero_point",
    "EXACT_TOL",
    "a2q_local_fake_quant",
    "a2q_row_error",
    "a2q_local_grads",
    "degree_bucket",
    "nns_select",
]


def degree_bucket(degree: jax.Array, num_buckets: int) -> jax.Array:
    """``clip(floor(log2(d + 1)), 0, num_buckets - 1)``; negative (unknown) degrees give -1."""
    d = jnp.asarray(degree).astype(jnp.float32)
    b = jnp.clip(jnp.floor(jnp.log2(jnp.maximum(d, 0.0) + 1.0)), 0, num_buckets - 1).astype(jnp.int32)
    return jnp.where(d < 0, -1, b)


def _nearest_sorted(sorted_keys: jax.Array, count: jax.Array, q: jax.Array) -> jax.Array:
    """Index (into ``sorted_keys[:count]``) of the entry nearest to each ``q``."""
    pos = jnp.searchsorted(sorted_keys, q)
    top = jnp.maximum(count - 1, 0)
    lft = jnp.clip(pos - 1, 0, top)
    rgt = jnp.clip(pos, 0, top)
    dl = jnp.abs(q - sorted_keys[lft])
    dr = jnp.abs(q - sorted_keys[rgt])
    return jnp.where(dl <= dr, lft, rgt)


def nns_select(
    query: jax.Array,
    pool_key: jax.Array,
    *,
    query_degree: jax.Array | None = None,
    pool_degree: jax.Array | None = None,
    num_buckets: int = 0,
) -> jax.Array:
    """For each ``query [R]`` value, the index into ``pool_key [P]`` of the nearest key.

    With ``num_buckets > 0`` and both degree arrays, a query only matches pool entries of its own
    degree bucket (falling back to the whole pool when its bucket is empty).
    """
    query = jnp.asarray(query, jnp.float32).reshape(-1)
    pool_key = jnp.asarray(pool_key, jnp.float32).reshape(-1)
    p = pool_key.shape[0]
    order = jnp.argsort(pool_key)
    glob = order[_nearest_sorted(pool_key[order], jnp.asarray(p), query)]
    if num_buckets <= 0 or query_degree is None or pool_degree is None:
        return glob.astype(jnp.int32)
    qb = degree_bucket(query_degree, num_buckets)
    pb = degree_bucket(pool_degree, num_buckets)
    picks = []
    for bk in range(num_buckets):
        keys = jnp.where(pb == bk, pool_key, jnp.inf)
        o = jnp.argsort(keys)
        n = jnp.sum((pb == bk).astype(jnp.int32))
        sel = o[_nearest_sorted(keys[o], n, query)]
        picks.append(jnp.where(n > 0, sel, glob))
    stacked = jnp.stack(picks)  # [B, R]
    own = jnp.take_along_axis(stacked, jnp.clip(qb, 0, num_buckets - 1)[None, :], axis=0)[0]
    return jnp.where(qb >= 0, own, glob).astype(jnp.int32)


def _balanced_eq(x, z, y):
    """``jax.lax``'s max/min derivative coefficient of ``x`` in ``z = max(x, y)`` (or min): 1 where
    ``x`` alone attains ``z``, 1/2 on a tie, else 0; built with selects (jax builds the same values
    with a division, which XLA keeps as a separate kernel per use of every per-row chain)."""
    one, zero = jnp.ones_like(z), jnp.zeros_like(z)
    return jnp.where(x == z, jnp.where(y == z, jnp.full_like(z, 0.5), one), zero)


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def _maximum_c(x, c: float):
    """``jnp.maximum(x, c)`` for a constant ``c``, with jax's derivative, bit for bit (see
    :func:`_balanced_eq`)."""
    return jnp.maximum(x, c)


@_maximum_c.defjvp
def _maximum_c_jvp(c, primals, tangents):
    (x,), (t,) = primals, tangents
    ans = jnp.maximum(x, c)
    return ans, t * _balanced_eq(x, ans, jnp.asarray(c, ans.dtype))


@functools.partial(jax.custom_jvp, nondiff_argnums=(1, 2))
def _clip_c(x, lo: float, hi: float):
    """``jnp.clip(x, lo, hi)`` (``minimum(hi, maximum(lo, x))``) for constant bounds, with jax's
    derivative, bit for bit."""
    return jnp.clip(x, lo, hi)


@_clip_c.defjvp
def _clip_c_jvp(lo, hi, primals, tangents):
    (x,), (t,) = primals, tangents
    m = jnp.maximum(lo, x)
    ans = jnp.minimum(hi, m)
    c1 = _balanced_eq(x, m, jnp.asarray(lo, m.dtype))
    c2 = _balanced_eq(m, ans, jnp.asarray(hi, ans.dtype))
    return ans, (t * c1) * c2


def a2q_init(spec, kind: str, shape: tuple[int, ...]) -> tuple[dict, frozenset]:
    """State of one A2Q tensor: the trainable ``log_step`` (0: range scaling) and ``bitwidth``
    (``spec.bits``), the last training steps ``step`` (0 until the first training call) and, for
    node/edge tensors, the pool's degrees."""
    if kind == "weight":
        pshape = stat_shape(shape, spec.granularity)
        state = {}
    else:
        pshape = (shape[0],) + (1,) * (len(shape) - 1)
        state = {"pool_degree": jnp.full((shape[0],), -1, jnp.int32)}
    state["step"] = jnp.zeros(pshape, jnp.float32)
    state["log_step"] = jnp.zeros(pshape, jnp.float32)
    state["bitwidth"] = jnp.full(pshape, float(spec.bits), jnp.float32)
    return state, frozenset({"log_step", "bitwidth"})


def _row_extrema(x: jax.Array, axes: tuple[int, ...], signed: bool) -> tuple[jax.Array | None, jax.Array]:
    """Extrema over ``axes`` (kept): ``(None, max|x|)`` for signed codes (all they need: one
    reduction instead of a minimum and a maximum), ``(min, max)`` for unsigned codes."""
    if signed:
        return None, jnp.max(jnp.abs(x), axis=axes, keepdims=True)
    if not axes:
        return x, x
    return jnp.min(x, axis=axes, keepdims=True), jnp.max(x, axis=axes, keepdims=True)


def _row_range(x: jax.Array, granularity: str, kind: str, shared_shape=None, signed: bool = False
               ) -> tuple[jax.Array | None, jax.Array]:
    """Range statistics per row (node/edge), per ``granularity`` group (weights) or over the whole
    tensor (``shared_shape``: the shape of a single shared parameter); no gradient. Signed codes:
    ``(None, max|x|)``; unsigned: ``(min(x), max(x))``."""
    x = jax.lax.stop_gradient(x)
    if shared_shape is not None:
        lo, hi = _row_extrema(x, tuple(range(x.ndim)), signed)
        return (None if lo is None else lo.reshape(shared_shape)), hi.reshape(shared_shape)
    if kind == "weight":
        shp = stat_shape(x.shape, granularity)
        lo, hi = _row_extrema(x, reduce_axes(x.ndim, granularity), signed)
        return (None if lo is None else lo.reshape(shp)), hi.reshape(shp)
    return _row_extrema(x, tuple(range(1, x.ndim)), signed)


def a2q_zero_point(lo: jax.Array, s: jax.Array, qmax: jax.Array, signed: bool) -> jax.Array:
    """Zero point of a group with minimum ``lo`` (unused, may be None, when signed): 0 when signed;
    unsigned codes ``[0, qmax]`` put the group's negative part below the zero point
    ``clip(round(-min(lo, 0) / s), 0, qmax)`` (0 for a non-negative group, whose codes are then
    ``round(x / s)``). A statistic: no gradient."""
    if signed:
        return jnp.zeros_like(s)
    zp = jnp.clip(jnp.round(-jnp.minimum(lo, 0.0) / s), 0.0, qmax)
    return jax.lax.stop_gradient(zp)


def _range_step(lo, hi, qmin, qmax, signed: bool) -> jax.Array:
    """The range step ``r / qmax``: ``max|x| / qmax`` (signed: ``hi`` is ``max|x|``, ``lo`` unused),
    ``(max - min) / qmax`` over the range widened to contain 0 (unsigned); at least ``TINY``."""
    if signed:
        span = hi / _maximum_c(qmax, 1.0)
    else:
        span = (jnp.maximum(hi, 0.0) - jnp.minimum(lo, 0.0)) / _maximum_c(qmax - qmin, 1.0)
    return _maximum_c(span, TINY)


def a2q_params(plan, state: dict, x: jax.Array, ctx) -> tuple[QParams, dict]:
    """Quantisation parameters of one call (NNS when ``x`` has a different number of rows):
    ``s = exp(log_step) * range / qmax(b)`` (module docstring), the unsigned zero point, and the
    clipped bit widths (straight-through rounding)."""
    spec = plan.spec
    ref, u, b = state["step"], state["log_step"], state["bitwidth"]
    pool = ref.shape[0] if (plan.kind != "weight" and ref.ndim) else 0
    shared = pool == 1  # built for one row (unknown row count): one (s, b) shared by all rows
    own_rows = plan.kind == "weight" or shared or x.shape[0] == pool
    lo, hi = _row_range(x, spec.granularity, plan.kind, ref.shape if shared else None, spec.signed)
    if not own_rows:
        b_now = jnp.clip(jax.lax.stop_gradient(b), spec.min_bits, spec.max_bits)
        key = ref * qrange_array(jnp.round(b_now), spec.signed)[1]  # pool rows' last representable max
        idx = nns_select(
            (hi if spec.signed else jnp.maximum(-lo, hi)).reshape(-1),
            key.reshape(-1),
            query_degree=ctx.degree,
            pool_degree=state["pool_degree"],
            num_buckets=spec.nns_buckets,
        )
        u, b = u[idx], b[idx]
    b_c = _clip_c(b, spec.min_bits, spec.max_bits)
    qmin, qmax = qrange_array(round_ste(b_c), spec.signed)
    s = _range_step(lo, hi, qmin, qmax, spec.signed) * jnp.exp(u)
    new_state = state
    if ctx.training and own_rows:
        new_state = {**state, "step": jax.lax.stop_gradient(s)}
        if plan.kind != "weight" and ctx.degree is not None and x.shape[0] == pool:
            new_state["pool_degree"] = jnp.asarray(ctx.degree).astype(jnp.int32)
    zp = a2q_zero_point(lo, jax.lax.stop_gradient(s), jax.lax.stop_gradient(qmax), spec.signed)
    return QParams(s, zp, qmin, qmax, bits=b_c), new_state


EXACT_TOL = 1e-4
"""Errors below ``EXACT_TOL * s`` count as exact (no gradient): a value on the grid can miss its code
by float32 rounding (``(x / s) * s != x``), and an optimiser that normalises the gradient's scale
(Adam) would turn the sign of such noise into full-size updates of ``s`` and ``b``."""


def _shifted_range(b, signed: bool, zero_point):
    """``(qmin - zp, qmax - zp)``: the code range around the zero point (``x_hat = code * s``)."""
    qmin, qmax = qrange_array(b, signed)
    if zero_point is None:
        return qmin, qmax
    return qmin - zero_point, qmax - zero_point


def a2q_row_error(x: jax.Array, s: jax.Array, b: jax.Array, signed: bool, row_size: int | None = None,
                  zero_point: jax.Array | None = None) -> jax.Array:
    """``sum_i mean_j |x_ij - x_hat_ij|``: the local quantisation error whose gradient trains
    ``s`` and ``b`` (straight-through rounding of both ``x / s`` and ``b``).

    ``row_size``: the number of elements the mean of a row is over (default: the row's size in
    ``x``). A row-compact input passes its dense width: its padding zeros stand for the row's zeros,
    which quantise to zero with zero error and zero gradient, so the mean is the dense one.
    Element errors below ``EXACT_TOL * s`` count as 0 (float32 rounding of values on the grid).
    ``zero_point``: unsigned codes' zero point (a constant; ``None`` = 0).
    """
    zp = None if zero_point is None else jax.lax.stop_gradient(zero_point)
    lo, hi = _shifted_range(round_ste(b), signed, zp)
    d = jnp.abs(x - fake_quant(x, s, 0.0, lo, hi, "clip"))
    err = jnp.where(d > EXACT_TOL * jax.lax.stop_gradient(s), d, jnp.zeros_like(d))
    axes = tuple(range(1, x.ndim))
    if not axes:
        return jnp.sum(err)
    if row_size is None:
        per_row = jnp.mean(err, axis=axes)
    else:
        per_row = jnp.sum(err, axis=axes) / jnp.asarray(row_size, err.dtype)
    return jnp.sum(per_row)


def _row_params(s, b, zp, signed: bool):
    """``(s, zp, qmin, qmax)`` of one call, materialised once: an exact copy through a scatter,
    which XLA does not fuse through (three small kernels). Otherwise XLA recomputes the per-row
    chain (the clipped, rounded bit width, its powers of two, the step) per element inside every
    elementwise kernel over ``x``: the forward pass, the input gradient and both Local Gradient
    terms (a Cora GCN epoch took about 4% longer)."""
    qmin, qmax = qrange_array(jnp.round(b), signed)
    params = (s, zp, qmin, qmax)
    if not s.ndim or any(p.shape != s.shape for p in params):
        return params
    rows = jnp.arange(s.shape[0], dtype=jnp.int32)  # an iota: constant indices compiled slower here
    packed = jnp.stack(params, axis=-1)
    packed = jnp.zeros_like(packed).at[rows].set(packed, indices_are_sorted=True, unique_indices=True)
    return tuple(packed[..., k] for k in range(len(params)))


def _local_forward(x, s, b, zp, signed: bool):
    """``(x_hat, (s, zp, qmin, qmax))``: the fake-quantised ``x`` and the row parameters it used."""
    s, zp, qmin, qmax = _row_params(s, b, zp, signed)
    return _dequant(uniform_codes(x, s, zp, qmin, qmax), s, zp), (s, zp, qmin, qmax)


@functools.partial(jax.custom_vjp, nondiff_argnums=(4, 5, 6))
def _local_fq(x, s, b, zp, signed, backward, row_size):
    return _local_forward(x, s, b, zp, signed)[0]


def _local_fwd(x, s, b, zp, signed, backward, row_size):
    y, (s, zp, qmin, qmax) = _local_forward(x, s, b, zp, signed)
    return y, (x, s, b, zp, qmin, qmax)


def _local_terms(x, s, qmin, qmax, zp):
    """The elementwise pieces of the Local Gradient, shared with the input gradient: ``v = x / s``,
    the clip masks ``below``/``above`` of the code range ``[qmin - zp, qmax - zp]``, the clipped
    codes ``code``, ``d = x - code * s`` and ``active = |d| > EXACT_TOL * s`` (where
    ``e = -sign(d)``, else 0)."""
    lo, hi = (qmin, qmax) if zp is None else (qmin - zp, qmax - zp)
    v = x / s
    below = v < lo
    above = v > hi
    code = jnp.clip(jnp.round(v), lo, hi)
    d = x - code * s
    return v, below, above, code, d, jnp.abs(d) > EXACT_TOL * s


def _grads_from_terms(x, s, b, bits, signed: bool, row_size, terms):
    v, below, above, code, d, active = terms
    zero = jnp.zeros_like(x)
    e = -jnp.sign(d)  # where active
    # Each summed term is a select of the whole per-element expression (not a product of selects):
    # XLA then computes it in one kernel that the reduction reads, instead of materialising every
    # select and mask separately (each recomputing x / s, the codes and d) for a reduction that
    # fuses only the arithmetic. Equal to e * (...) and where(above, e, 0) - where(below, e, 0)
    # with e = where(active, -sign(d), 0), up to the sign of zero terms (the sums are the same;
    # a non-finite x, never active, now adds 0 where e * (...) added NaN).
    c_s = jnp.where(active, e * (code - jnp.where(below | above, zero, v)), zero)
    if signed:
        c_b = jnp.where(active & above, e, jnp.where(active & below, -e, zero))
        scale_b = _pow2_const(bits - 1.0)  # d qmax / db = -d qmin / db = 2^(bits - 1) ln 2
    else:
        c_b = jnp.where(active & above, e, zero)
        scale_b = _pow2_const(bits)  # d qmax / db = 2^bits ln 2 (qmin = 0)
    if x.ndim <= 1:
        norm = 1.0
    else:
        norm = float(row_size if row_size is not None else np.prod(x.shape[1:], dtype=np.int64))
    g_s = sum_to(c_s, s.shape)
    g_b = sum_to(c_b, b.shape) * (scale_b * math.log(2.0)) * _sum_shape(s, b.shape)
    inv = jnp.asarray(1.0 / norm, x.dtype)
    return g_s * inv, g_b * inv


def a2q_local_grads(x, s, b, signed: bool, row_size: int | None = None,
                    zero_point: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
    """``(dE/ds, dE/db)`` of :func:`a2q_row_error`, derived by hand (``jax.grad`` of the error needs
    several passes and reductions, which made the Local Gradient the bulk of an A2Q training step).

    Per element, with ``v = x / s``, the code range ``[lo, hi] = [qmin - zp, qmax - zp]``,
    ``x_hat = clip(round(v), lo, hi) * s`` and ``e = -sign(x - x_hat)``: ``dE/ds`` sums
    ``e * (lo | hi | round(v) - v)`` (below / above / inside the range) and ``dE/db`` sums ``e * s``
    where clipped, times ``dqmin/db`` or ``dqmax/db`` (``-+2^(b-1) ln 2`` signed; ``0`` and
    ``2^b ln 2`` unsigned); both divided by the row size.

    Cost: two per-element terms (no transcendental per element), each one kernel, and their
    reductions: ``dE/ds`` and ``dE/db`` (signed codes sum the clipped-above and clipped-below terms
    with opposite signs in one term; unsigned ``qmin`` does not depend on ``b``).
    """
    bits = jnp.round(b)
    zp = None if zero_point is None else jax.lax.stop_gradient(zero_point)
    qmin, qmax = qrange_array(bits, signed)
    return _grads_from_terms(x, s, b, bits, signed, row_size, _local_terms(x, s, qmin, qmax, zp))


def _pow2_const(bits):
    return jax.lax.stop_gradient(qrange_array(bits, False)[1] + 1.0)


def _sum_shape(s, shape):
    """``s`` (the step, constant within a group) brought to the bit-width parameter's shape."""
    return s if s.shape == tuple(shape) else jnp.broadcast_to(s, shape)


def _local_bwd(signed, backward, row_size, res, ct):
    x, s, b, zp, qmin, qmax = res  # the forward's materialised row parameters
    bits = jnp.round(b)
    terms = _local_terms(x, s, qmin, qmax, zp)  # v = x / s and the clip masks, computed once
    if backward == "ste":
        gx = ct
    else:
        pos = terms[0] + zp
        gx = jnp.where(jnp.logical_and(pos >= qmin, pos <= qmax), ct, jnp.zeros_like(ct))
    gs, gb = _grads_from_terms(x, s, b, bits, signed, row_size, terms)
    return gx, gs, gb, jnp.zeros_like(zp)


_local_fq.defvjp(_local_fwd, _local_bwd)


def a2q_local_fake_quant(x, s, b, *, signed: bool, backward: str = "clip", row_size: int | None = None,
                         zero_point: jax.Array | None = None) -> jax.Array:
    """A2Q fake quantisation whose parameter gradients are those of :func:`a2q_row_error` (the
    Local Gradient method, rows averaged over ``row_size`` elements) whatever the upstream
    gradient; ``x`` gets the STE/clip gradient. ``zero_point``: unsigned codes' zero point
    (``None`` = 0; it gets no gradient)."""
    zp = jnp.zeros_like(s) if zero_point is None else jax.lax.stop_gradient(jnp.asarray(zero_point, s.dtype))
    return _local_fq(x, s, b, zp, bool(signed), backward, None if row_size is None else int(row_size))
