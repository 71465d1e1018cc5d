"""Building blocks shared by the layer modules (:mod:`lpgnas.nn._layers`,
:mod:`lpgnas.nn._propagation`): weight initialisation,
quantised inputs and weights, the product for dense / ``BCOO`` / row-compact features, and the
fusion barrier that keeps a quantiser from being recomputed per gathered row."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx
from jax.experimental import sparse as jsparse

from lpgnas import quant as _quant
from lpgnas.nn._sparse import SparseRows, rows_matmul

__all__ = ["glorot", "quantized_weight", "quantize_input", "materialize", "matmul"]


def glorot(rngs: nnx.Rngs, shape: tuple[int, ...], fan_in: int, fan_out: int) -> nnx.Param:
    """Glorot-uniform initialised ``nnx.Param`` of ``shape``."""
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    return nnx.Param(jax.random.uniform(rngs.params(), shape, jnp.float32, -limit, limit))


def quantized_weight(q_weight, kernel: jax.Array, w_ctx, xq) -> jax.Array:
    """``q_weight(kernel)``; materialised when a row-compact input ``xq`` gathers its rows."""
    w = q_weight(kernel, w_ctx)
    return materialize(w, q_weight) if isinstance(xq, SparseRows) else w


def quantize_input(q_input, x, node_ctx, *, keep_bcoo: bool = True):
    """The quantised layer input: dense, an unquantised ``BCOO`` (when ``keep_bcoo``), or a
    :class:`SparseRows` whose values went through ``q_input`` when that is exact
    (:func:`lpgnas.quant.row_compact_exact`; else the rows are densified first)."""
    if isinstance(x, SparseRows):
        if _quant.row_compact_exact(q_input):
            # materialised: the compact product reads each value once per output channel
            return x.with_values(materialize(q_input(x.values, node_ctx), q_input))
        x = x.todense()
    elif isinstance(x, jsparse.BCOO):
        if q_input is _quant.identity and keep_bcoo:
            return x
        x = x.todense()  # quantisers act on dense features
    return q_input(x, node_ctx)


def _copy_rows(x: jax.Array) -> jax.Array:
    rows = jnp.arange(x.shape[0], dtype=jnp.int32)
    return jnp.zeros_like(x).at[rows].add(x, indices_are_sorted=True, unique_indices=True)


@jax.custom_vjp
def _fusion_barrier(x: jax.Array) -> jax.Array:
    """``x`` (and, backwards, the cotangent) unchanged but materialised: a scatter-add into zeros is
    an exact copy (``0 + v == v``) that no XLA fusion crosses."""
    return _copy_rows(x)


_fusion_barrier.defvjp(lambda x: (_copy_rows(x), None), lambda _, ct: (_copy_rows(ct),))


def materialize(x: jax.Array, quantizer) -> jax.Array:
    """``x`` unchanged, but computed once before a gather reads it (when ``quantizer`` is not the identity).

    XLA on CPU fuses an elementwise producer, such as a fake-quantiser or its backward, into every
    gather (or gather transpose) that reads it, so the quantisation is recomputed per gathered row
    (per edge for ``hx[senders]``, per stored non-zero and output channel for a row-compact matmul);
    that made quantised epochs up to 2x slower than needed. :func:`_fusion_barrier` materialises
    the tensor (forwards) and its cotangent (backwards) once.
    """
    if quantizer is _quant.identity:
        return x
    return _fusion_barrier(x)


def matmul(x, w: jax.Array) -> jax.Array:
    """``x @ w`` for dense, ``BCOO`` or :class:`SparseRows` ``x``."""
    if isinstance(x, SparseRows):
        return rows_matmul(x, w)
    return x @ w
