"""Range observers: pure functions from a tensor (and the rows allowed to feed them) to a range.

Observer kinds:

* ``"current"`` -- the range of the tensor at hand, no state (weights; per-row activations);
* ``"minmax"`` -- running min/max: ``lo <- min(lo, cur_lo)``, ``hi <- max(hi, cur_hi)``;
* ``"ema"`` -- exponential moving average ``m <- m + momentum * (cur - m)`` (momentum 0.01);
* ``"percentile"`` -- Degree-Quant: the ``p`` and ``1 - p`` percentiles of at most ``max_samples``
  (a spec field, default 4096) pseudo-randomly sampled elements, deterministic given the step key
  (never a sort of the full tensor; one ``top_k`` of the sample's tails), EMA-tracked;
* ``"rowavg"`` -- SGQuant: the mean over rows of each row's min and max, EMA-tracked.

The first update sets the statistic to the current value. Rows marked invalid (Degree-Quant
protected rows) never feed a statistic; a step in which every row is invalid leaves it unchanged.
All statistics are computed on ``stop_gradient(x)``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lpgnas.quant._core import reduce_axes, row_mask, stat_shape

__all__ = [
    "OBSERVERS",
    "RUNNING_OBSERVERS",
    "RangeState",
    "init_range",
    "masked_minmax",
    "masked_mean_abs",
    "sample_elements",
    "sample_positions",
    "fold_step",
    "key_words",
    "percentile_range",
    "rowavg_range",
    "observe",
    "update_range",
]

OBSERVERS = ("current", "minmax", "ema", "percentile", "rowavg")
RUNNING_OBSERVERS = ("minmax", "ema", "percentile", "rowavg")


class RangeState(NamedTuple):
    lo: jax.Array
    hi: jax.Array
    count: jax.Array  # int32 scalar: number of updates so far


def init_range(shape: tuple[int, ...], granularity: str) -> RangeState:
    s = stat_shape(shape, granularity)
    return RangeState(jnp.zeros(s, jnp.float32), jnp.zeros(s, jnp.float32), jnp.zeros((), jnp.int32))


def _valid_full(x: jax.Array, valid: jax.Array | None) -> jax.Array | None:
    if valid is None:
        return None
    return jnp.broadcast_to(row_mask(valid, x.ndim), x.shape)


def _reduce_keep(fn, x, axes, shape):
    out = fn(x, axis=axes, keepdims=True)
    return out.reshape(shape)


def masked_minmax(x: jax.Array, valid: jax.Array | None, granularity: str):
    """``(lo, hi, ok)``: min and max over the valid rows, reduced per ``granularity``; ``ok`` is a
    scalar bool, False when no row is valid (then ``lo = +inf``, ``hi = -inf``)."""
    x = jax.lax.stop_gradient(x)
    axes = reduce_axes(x.ndim, granularity)
    shape = stat_shape(x.shape, granularity)
    vf = _valid_full(x, valid)
    if vf is None:
        lo = _reduce_keep(jnp.min, x, axes, shape)
        hi = _reduce_keep(jnp.max, x, axes, shape)
        return lo, hi, jnp.asarray(True)
    inf = jnp.asarray(jnp.inf, x.dtype)
    lo = _reduce_keep(jnp.min, jnp.where(vf, x, inf), axes, shape)
    hi = _reduce_keep(jnp.max, jnp.where(vf, x, -inf), axes, shape)
    return lo, hi, jnp.any(valid)


def masked_mean_abs(x: jax.Array, valid: jax.Array | None, granularity: str) -> jax.Array:
    """Mean of ``|x|`` over the valid rows per quantisation group (0 where nothing is valid)."""
    x = jnp.abs(jax.lax.stop_gradient(x))
    axes = reduce_axes(x.ndim, granularity)
    shape = stat_shape(x.shape, granularity)
    vf = _valid_full(x, valid)
    if vf is None:
        return _reduce_keep(jnp.mean, x, axes, shape)
    w = vf.astype(x.dtype)
    total = _reduce_keep(jnp.sum, x * w, axes, shape)
    count = _reduce_keep(jnp.sum, w, axes, shape)
    return total / jnp.maximum(count, 1.0)


_GOLDEN = 0x9E3779B9  # 2^32 / golden ratio: a Weyl-sequence increment


def _u32(v) -> jax.Array:
    return jnp.asarray(np.uint32(v))


def _mix32(h: jax.Array) -> jax.Array:
    """MurmurHash3's 32-bit finaliser (an avalanching bijection on ``uint32``)."""
    h = h ^ (h >> _u32(16))
    h = h * _u32(0x85EBCA6B)
    h = h ^ (h >> _u32(13))
    h = h * _u32(0xC2B2AE35)
    return h ^ (h >> _u32(16))


def key_words(key: jax.Array) -> jax.Array:
    """The ``uint32`` words of a PRNG key (a typed key or raw key data)."""
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    return jnp.asarray(key).astype(jnp.uint32).reshape(-1)


def fold_step(words: jax.Array, step: jax.Array) -> jax.Array:
    """Key words for training step ``step``: every word mixed with the step (cheap integer hashing;
    a ``jax.random.fold_in`` is a threefry loop per call)."""
    words = jnp.asarray(words).astype(jnp.uint32)
    s = _mix32(jnp.asarray(step).astype(jnp.uint32) * _u32(_GOLDEN) + _u32(0x632BE5AB))
    return _mix32(words ^ s)


def sample_positions(key: jax.Array, size: int, num: int) -> jax.Array:
    """``num`` pseudo-random positions in ``[0, size)`` (``int32``, with replacement), a pure
    function of ``key`` (a PRNG key or its ``uint32`` words): ``hash(i, key) mod size``.

    A counter-based integer hash, one fused elementwise pass, instead of ``jax.random.randint``
    (two threefry loops and a key split per call, which dominated a Degree-Quant step on CPU).
    The modulo bias is below ``size / 2^32``.
    """
    words = key_words(key)
    h = jnp.arange(num, dtype=jnp.uint32) * _u32(_GOLDEN)
    for j in range(words.shape[0]):
        h = _mix32(h ^ words[j])
    return (h % _u32(size)).astype(jnp.int32)


def sample_elements(x: jax.Array, valid: jax.Array | None, key: jax.Array, max_samples: int):
    """``(values [S], ok [S])``: all elements when ``x.size <= max_samples``, else ``max_samples``
    elements drawn (with replacement) at :func:`sample_positions` of ``key``; ``ok`` marks elements
    of valid rows."""
    x = jax.lax.stop_gradient(x)
    flat = x.reshape(-1)
    row_size = int(np.prod(x.shape[1:], dtype=np.int64)) if x.ndim > 1 else 1
    if flat.shape[0] <= max_samples:
        vals = flat
        idx = jnp.arange(flat.shape[0], dtype=jnp.int32)
    else:
        idx = sample_positions(key, flat.shape[0], max_samples)
        vals = flat[idx]
    if valid is None:
        return vals, jnp.ones(vals.shape, bool)
    return vals, valid[idx // row_size]


def percentile_range(x, valid, p: float, key, max_samples: int = 4096):
    """``(lo, hi, ok)``: the ``p`` and ``1 - p`` quantiles (nearest rank) of sampled valid elements,
    from the ``p`` tails of at most ``max_samples`` values (one ``top_k`` of both tails; no sort)."""
    vals, ok = sample_elements(x, valid, key, max_samples)
    n = jnp.sum(ok.astype(jnp.int32))
    last = jnp.maximum(n - 1, 0).astype(jnp.float32)
    # Nearest rank: lo is the floor(p * last)-th smallest valid value, hi the ceil((1 - p) * last)-th,
    # i.e. the floor(p * last)-th largest. Both tails come from one top_k with a static k (O(S), no
    # sort) over the stacked [values; -values] (invalid entries -inf, so they rank last).
    k = min(int(np.floor(p * (vals.shape[0] - 1))) + 1, vals.shape[0])
    r = jnp.floor(p * last).astype(jnp.int32)
    inf = jnp.asarray(jnp.inf, vals.dtype)
    both = jnp.where(ok[None, :], jnp.stack([vals, -vals]), -inf)
    tails = jax.lax.top_k(both, k)[0]  # [2, k], descending
    # tails[:, r] as the minimum of the first r + 1 entries (equal: they are sorted): a reduction keeps
    # XLA's sort+slice -> TopK rewrite, which an element read at a constant r (no protected rows)
    # would defeat (a full sort instead; 30x slower on CPU).
    first = (jnp.arange(k, dtype=jnp.int32) <= r)[None, :]
    at_r = jnp.min(jnp.where(first, tails, inf), axis=1)
    return -at_r[1], at_r[0], n > 0


def rowavg_range(x, valid):
    """``(lo, hi, ok)``: SGQuant's range, the mean over valid rows of the per-row min and max
    (a 1-D tensor has one element per row, so it falls back to the plain min/max)."""
    if x.ndim <= 1:
        return masked_minmax(x, valid, "tensor")
    x = jax.lax.stop_gradient(x)
    axes = tuple(range(1, x.ndim))
    rmin, rmax = jnp.min(x, axis=axes), jnp.max(x, axis=axes)
    w = jnp.ones(rmin.shape, x.dtype) if valid is None else valid.astype(x.dtype)
    cnt = jnp.sum(w)
    lo = jnp.sum(jnp.where(w > 0, rmin, 0.0)) / jnp.maximum(cnt, 1.0)
    hi = jnp.sum(jnp.where(w > 0, rmax, 0.0)) / jnp.maximum(cnt, 1.0)
    return lo, hi, cnt > 0


def observe(kind: str, x, valid, granularity: str, *, p: float = 0.001, key=None, max_samples=4096):
    """The current-batch range of observer ``kind`` (see the module docstring)."""
    if kind in ("current", "minmax", "ema"):
        return masked_minmax(x, valid, granularity)
    if kind == "percentile":
        return percentile_range(x, valid, p, key, max_samples)
    if kind == "rowavg":
        return rowavg_range(x, valid)
    raise ValueError(f"unknown observer {kind!r}")


def update_range(state: RangeState, cur_lo, cur_hi, ok, kind: str, momentum: float) -> RangeState:
    """One running update (first update copies ``cur``); nothing changes when ``ok`` is False."""
    first = state.count == 0
    if kind == "minmax":
        lo = jnp.where(first, cur_lo, jnp.minimum(state.lo, cur_lo))
        hi = jnp.where(first, cur_hi, jnp.maximum(state.hi, cur_hi))
    else:
        lo = jnp.where(first, cur_lo, state.lo + momentum * (cur_lo - state.lo))
        hi = jnp.where(first, cur_hi, state.hi + momentum * (cur_hi - state.hi))
    lo = jnp.where(ok, lo, state.lo).astype(jnp.float32)
    hi = jnp.where(ok, hi, state.hi).astype(jnp.float32)
    count = state.count + ok.astype(jnp.int32)
    return RangeState(lo, hi, count)
