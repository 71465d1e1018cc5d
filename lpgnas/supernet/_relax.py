"""Continuous relaxation of the categorical decisions: the :class:`ArchLogit` variable type, the
:class:`Relax` settings of one forward pass and the temperature schedule.

Every decision (an attention type, a bit width, ...) holds one logit per candidate in an
:class:`ArchLogit` variable. Its choice probabilities are ``softmax((logits + g) / T)`` with
``g = 0`` (plain softmax) or Gumbel noise (``gumbel=True``); ``hard=True`` replaces them by the
one-hot argmax in the forward pass and keeps the soft gradient (straight-through). ``discrete``
(a traced 0/1 flag) switches to the one-hot argmax of the logits themselves: the derived
architecture, evaluated with the supernet's shared weights.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

__all__ = ["ArchLogit", "Relax", "choice_probs", "temperature_at"]


class ArchLogit(nnx.Variable):
    """Architecture and quantisation logits: one per candidate of a decision.

    A separate variable type from ``nnx.Param`` so that weights and logits are selected (and
    optimised) apart: ``nnx.split(net, nnx.Param, ArchLogit, ...)``.
    """


class Relax(NamedTuple):
    """How choice probabilities are formed in one forward pass (built inside the traced step).

    temperature: scalar (traced; changing it never recompiles). key: Gumbel noise key, or None
    (no noise even with ``gumbel``). discrete: scalar 0/1 (traced) or None; 1 = one-hot argmax of
    the logits. gumbel / hard: static switches (see the module docstring).
    """

    temperature: jax.Array | float = 1.0
    key: jax.Array | None = None
    discrete: jax.Array | float | None = None
    gumbel: bool = False
    hard: bool = False

    def expectation(self) -> "Relax":
        """The same relaxation without noise or straight-through (for expected costs)."""
        return self._replace(key=None, hard=False)


def _one_hot_argmax(z: jax.Array) -> jax.Array:
    return jax.nn.one_hot(jnp.argmax(z), z.shape[0], dtype=z.dtype)


def choice_probs(logits: jax.Array, relax: Relax, salt: int) -> jax.Array:
    """Choice probabilities of one decision (a vector summing to 1).

    ``salt`` (a static integer unique per decision) decorrelates the Gumbel noise of decisions.
    """
    z = logits
    if z.shape[0] == 1:
        return jnp.ones_like(z)
    if relax.gumbel and relax.key is not None:
        z = z + jax.random.gumbel(jax.random.fold_in(relax.key, salt), z.shape, z.dtype)
    t = jnp.asarray(relax.temperature, z.dtype)
    y = jax.nn.softmax(z / t)
    if relax.hard:
        y = _one_hot_argmax(y) + y - jax.lax.stop_gradient(y)
    if relax.discrete is not None:
        d = jnp.asarray(relax.discrete, z.dtype) > 0
        y = jnp.where(d, jax.lax.stop_gradient(_one_hot_argmax(logits)), y)
    return y


def temperature_at(epoch, t_start, t_end, epochs):
    """Exponential schedule ``t_start * (t_end / t_start) ** (e / (epochs - 1))``, held at
    ``t_end`` after ``epochs - 1``. All arguments may be traced scalars."""
    e = jnp.asarray(epoch, jnp.float32)
    span = jnp.maximum(jnp.asarray(epochs, jnp.float32) - 1.0, 1.0)
    frac = jnp.clip(e / span, 0.0, 1.0)
    t0 = jnp.asarray(t_start, jnp.float32)
    t1 = jnp.asarray(t_end, jnp.float32)
    return t0 * jnp.power(t1 / t0, frac)
