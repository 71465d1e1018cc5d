"""Graph-level pieces of the graph-aware methods: Degree-Quant's protective mask and in-degree."""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["in_degree", "dq_protect_probability", "dq_protect_mask", "dq_sample_mask"]


def in_degree(receivers: jax.Array, num_nodes: int) -> jax.Array:
    """``int32 [num_nodes]`` in-degree (number of edges received) of every node."""
    r = jnp.asarray(receivers).astype(jnp.int32)
    return jax.ops.segment_sum(jnp.ones(r.shape, jnp.int32), r, num_segments=num_nodes)


def dq_protect_probability(in_degree: jax.Array, *, p_min: float, p_max: float) -> jax.Array:
    """``p(d) = p_min + (p_max - p_min) * CDF(d)`` with ``CDF(d)`` the fraction of the graph's nodes
    whose in-degree is ``<= d`` (float32 ``[N]``; one sort of the degrees)."""
    d = jnp.asarray(in_degree)
    n = d.shape[0]
    cdf = jnp.searchsorted(jnp.sort(d), d, side="right").astype(jnp.float32) / float(max(n, 1))
    return p_min + (p_max - p_min) * cdf


def dq_protect_mask(key: jax.Array, in_degree: jax.Array, *, p_min: float, p_max: float) -> jax.Array:
    """Degree-Quant's stochastic protective mask ``bool [N]``: node ``i`` is protected (kept in full
    precision during this training step) with probability ``p(d_i)`` (see
    :func:`dq_protect_probability`). Layers pass ``protect`` for node tensors and
    ``protect[senders]`` for edge tensors."""
    return dq_sample_mask(key, dq_protect_probability(in_degree, p_min=p_min, p_max=p_max))


def dq_sample_mask(key: jax.Array, probability: jax.Array) -> jax.Array:
    """Draw the protective mask from precomputed :func:`dq_protect_probability` values (the
    probabilities depend on the graph only, so a trainer computes them once)."""
    return jax.random.uniform(key, probability.shape) < probability
