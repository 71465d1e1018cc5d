"""The contract between GNN layers and quantisers.

A quantiser is any callable ``q(x, ctx) -> x_hat`` (usually an ``nnx.Module``) that returns the
fake-quantised ``x`` with the same shape and dtype. Layers call one per component (weights, input
features, XW, messages, aggregation output, ...), handing a :class:`QuantContext` whose per-row arrays
are aligned with axis 0 of ``x``: rows are nodes for node-shaped tensors and edges for edge-shaped
ones; both are ``None`` for weights.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

import jax

__all__ = ["QuantContext", "Quantizer", "Identity", "identity"]


class QuantContext(NamedTuple):
    """What a quantiser may know about the tensor it is handed.

    training: Python bool (static under ``jit``); observers update ranges only when True.
    protect: ``bool [rows]`` rows that bypass quantisation in training (Degree-Quant), or None.
    degree: ``int32 [rows]`` in-degree of each row's node (topology-aware bits, A2Q NNS), or None.
    """

    training: bool = False
    protect: jax.Array | None = None
    degree: jax.Array | None = None


class Quantizer(Protocol):
    def __call__(self, x: jax.Array, ctx: QuantContext) -> jax.Array: ...


class Identity:
    """The full-precision quantiser: returns ``x`` untouched. Stateless, so it is a plain object."""

    bits = 32

    def __call__(self, x: jax.Array, ctx: QuantContext) -> jax.Array:
        del ctx
        return x

    def __repr__(self) -> str:
        return "Identity()"


identity = Identity()
