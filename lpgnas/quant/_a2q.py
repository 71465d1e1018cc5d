"""A2Q: aggregation-aware mixed precision (pure functions; the module is ``A2QQuantizer``).

Every node (row) of a node/edge tensor has its own learned step ``s_i > 0`` and continuous bit
width ``b_i`` (``[N, 1]`` parameters); weights have one pair per output channel. The forward pass
uses ``b = round(clip(b_i, min_bits, max_bits))`` (straight-through) and the uniform codes
``clip(round(x / s_i), qmin(b), qmax(b))``.

Local Gradient: with ``local_gradient`` the gradient reaching ``s_i`` and ``b_i`` is not the task
loss's but that of the node's mean L1 quantisation error ``E_i = mean_j |x_ij - x_hat_ij|``
(summed over nodes), computed in the backward pass of :func:`a2q_local_fake_quant`. The gradient to
``x`` is still the straight-through one.

A quantiser built for a single row (``shape[0] == 1``: the row count is unknown, e.g. edge tensors
or inductive models) keeps one ``(s, b)`` pair shared by every row.

Nearest-Neighbour Strategy: on a graph whose node count differs from the pool's (an unseen graph),
node ``i`` takes the pair ``(s_j, b_j)`` of the pool entry whose representable maximum
``s_j * qmax(b_j)`` is nearest to ``max_k |x_ik|`` (optionally only among pool entries of the same
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
    cond,
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


def a2q_init(spec, kind: str, shape: tuple[int, ...]) -> tuple[dict, frozenset]:
    """``step`` (0 = not yet initialised) and ``bitwidth`` parameters, plus the pool's degrees."""
    if kind == "weight":
        pshape = stat_shape(shape, spec.granularity)
        state = {}
    else:
        pshape = (shape[0],) + (1,) * (len(shape) - 1)
        state = {"pool_degree": jnp.full((shape[0],), -1, jnp.int32)}
    state["step"] = jnp.zeros(pshape, jnp.float32)
    state["bitwidth"] = jnp.full(pshape, float(spec.bits), jnp.float32)
    return state, frozenset({"step", "bitwidth"})


def _row_absmax(x: jax.Array, granularity: str, kind: str) -> jax.Array:
    x = jnp.abs(jax.lax.stop_gradient(x))
    if kind == "weight":
        axes = reduce_axes(x.ndim, granularity)
        return jnp.max(x, axis=axes, keepdims=True).reshape(stat_shape(x.shape, granularity))
    axes = tuple(range(1, x.ndim))
    return jnp.max(x, axis=axes, keepdims=True) if axes else x


def a2q_params(plan, state: dict, x: jax.Array, ctx) -> tuple[QParams, dict]:
    """Quantisation parameters of one call (NNS when ``x`` has a different number of rows)."""
    spec = plan.spec
    s, b = state["step"], state["bitwidth"]
    pool = s.shape[0] if (plan.kind != "weight" and s.ndim) else 0
    shared = pool == 1  # built for one row (unknown row count): one (s, b) shared by all rows
    own_rows = plan.kind == "weight" or shared or x.shape[0] == pool
    if shared:
        absmax = jnp.max(jnp.abs(jax.lax.stop_gradient(x)), keepdims=True).reshape(s.shape)
    else:
        absmax = _row_absmax(x, spec.granularity, plan.kind)
    if not own_rows:
        b_now = jnp.clip(jax.lax.stop_gradient(b), spec.min_bits, spec.max_bits)
        key = jax.lax.stop_gradient(s) * qrange_array(jnp.round(b_now), spec.signed)[1]
        idx = nns_select(
            absmax.reshape(-1),
            key.reshape(-1),
            query_degree=ctx.degree,
            pool_degree=state["pool_degree"],
            num_buckets=spec.nns_buckets,
        )
        s = s[idx]
        b = b[idx]
    b_c = jnp.clip(b, spec.min_bits, spec.max_bits)
    qmin, qmax = qrange_array(round_ste(b_c), spec.signed)
    s0 = jnp.maximum(absmax / jnp.maximum(jax.lax.stop_gradient(qmax), 1.0), TINY)
    s_eff = cond(jnp.all(s > 0), lambda: s, lambda: jnp.where(s > 0, s, s0))
    new_state = state
    if ctx.training and own_rows:
        new_state = {**state, "step": jax.lax.stop_gradient(s_eff)}
        if plan.kind != "weight" and ctx.degree is not None and x.shape[0] == pool:
            new_state["pool_degree"] = jnp.asarray(ctx.degree).astype(jnp.int32)
    zp = jnp.zeros((), jnp.float32)
    return QParams(s_eff, zp, qmin, qmax, bits=b_c), new_state


def a2q_row_error(x: jax.Array, s: jax.Array, b: jax.Array, signed: bool, row_size: int | None = None) -> jax.Array:
    """``sum_i mean_j |x_ij - x_hat_ij|``: the local quantisation error whose gradient trains
    ``s`` and ``b`` (straight-through rounding of both ``x / s`` and ``b``).

    ``row_size``: the number of elements the mean of a row is over (default: the row's size in
    ``x``). A row-compact input passes its dense width: its padding zeros stand for the row's zeros,
    which quantise to zero with zero error and zero gradient, so the mean is the dense one.
    """
    qmin, qmax = qrange_array(round_ste(b), signed)
    err = jnp.abs(x - fake_quant(x, s, 0.0, qmin, qmax, "clip"))
    axes = tuple(range(1, x.ndim))
    if not axes:
        return jnp.sum(err)
    if row_size is None:
        per_row = jnp.mean(err, axis=axes)
    else:
        per_row = jnp.sum(err, axis=axes) / jnp.asarray(row_size, err.dtype)
    return jnp.sum(per_row)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4, 5))
def _local_fq(x, s, b, signed, backward, row_size):
    qmin, qmax = qrange_array(jnp.round(b), signed)
    zp = jnp.zeros_like(s)
    return _dequant(uniform_codes(x, s, zp, qmin, qmax), s, zp)


def _local_fwd(x, s, b, signed, backward, row_size):
    return _local_fq(x, s, b, signed, backward, row_size), (x, s, b)


def a2q_local_grads(x, s, b, signed: bool, row_size: int | None = None) -> tuple[jax.Array, jax.Array]:
    """``(dE/ds, dE/db)`` of :func:`a2q_row_error`, derived by hand and computed in one pass over ``x``
    (``jax.grad`` of the error needs several passes and reductions, which
    made the Local Gradient the bulk of an A2Q training step).

    Per element, with ``v = x / s``, ``x_hat = clip(round(v), qmin, qmax) * s`` and
    ``e = -sign(x - x_hat)``: ``dE/ds`` sums ``e * (qmin | qmax | round(v) - v)`` (below / above /
    inside the code range) and ``dE/db`` sums ``e * s`` where clipped, times ``dqmin/db`` or
    ``dqmax/db`` (``2^(b-1) ln 2`` signed, ``2^b ln 2`` unsigned); both divided by the row size.
    (Sibling reductions of one elementwise pass; stacking them into one reduction materialises the
    stack and is slower on CPU.)
    """
    bits = jnp.round(b)
    qmin, qmax = qrange_array(bits, signed)
    v = x / s
    below = v < qmin
    above = v > qmax
    x_hat = _dequant(jnp.clip(jnp.round(v), qmin, qmax), s, jnp.zeros_like(s))
    e = -jnp.sign(x - x_hat)
    zero = jnp.zeros_like(x)
    c_s = e * jnp.where(below, qmin, jnp.where(above, qmax, jnp.round(v) - v))
    c_lo = jnp.where(below, e * s, zero)
    c_hi = jnp.where(above, e * s, zero)
    if x.ndim <= 1:
        norm = 1.0
    else:
        norm = float(row_size if row_size is not None else np.prod(x.shape[1:], dtype=np.int64))
    g_s, g_lo, g_hi = sum_to(c_s, s.shape), sum_to(c_lo, b.shape), sum_to(c_hi, b.shape)
    ln2 = math.log(2.0)
    if signed:
        half = qmax + 1.0  # 2^(bits - 1)
        g_b = (g_hi - g_lo) * (half * ln2)
    else:
        g_b = g_hi * ((qmax + 1.0) * ln2)
    inv = jnp.asarray(1.0 / norm, x.dtype)
    return g_s * inv, g_b * inv


def _local_bwd(signed, backward, row_size, res, ct):
    x, s, b = res
    qmin, qmax = qrange_array(jnp.round(b), signed)
    v = x / s
    inside = jnp.logical_and(v >= qmin, v <= qmax)
    gx = ct if backward == "ste" else jnp.where(inside, ct, jnp.zeros_like(ct))
    gs, gb = a2q_local_grads(x, s, b, signed, row_size)
    return gx, gs, gb


_local_fq.defvjp(_local_fwd, _local_bwd)


def a2q_local_fake_quant(x, s, b, *, signed: bool, backward: str = "clip", row_size: int | None = None) -> jax.Array:
    """A2Q fake quantisation whose parameter gradients are those of :func:`a2q_row_error` (the
    Local Gradient method, rows averaged over ``row_size`` elements) whatever the upstream
    gradient; ``x`` gets the STE/clip gradient."""
    return _local_fq(x, s, b, bool(signed), backward, None if row_size is None else int(row_size))
