"""Pure-JAX reference of the packed aggregation: unpack -> dequantise -> ``segment_sum`` over edges.

It reads the CSR edge list kept in the layout (not the ELL tables), so it checks the layout too, and it
is the path ``backend="auto"`` takes on CPU.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from lpgnas.kernels._packing import PackedMatrix, dequantize, quantize_and_pack, unpack

__all__ = ["packed_aggregate_reference", "int_weights", "weight_scale"]


def weight_scale(weight_bits: int | None, max_abs_weight: float) -> float:
    """Per-tensor weight scale ``s_w`` of :func:`int_weights` (a static Python float)."""
    if weight_bits is None:
        return 1.0
    qmax = float((1 << (weight_bits - 1)) - 1)
    return max_abs_weight / qmax if max_abs_weight > 0 else 1.0


def int_weights(weights: jax.Array, weight_bits: int | None, max_abs_weight: float):
    """``(w_int int32, s_w)``: the weights as integers and their scale (``w ~= w_int * s_w``).

    ``weight_bits=None`` uses integer-valued weights as they are (``s_w = 1``); otherwise the weights are
    quantised symmetrically per tensor to ``weight_bits`` (``max |w_int| = 2**(weight_bits-1) - 1``).
    """
    s_w = weight_scale(weight_bits, max_abs_weight)
    if weight_bits is None:
        return weights.astype(jnp.int32), s_w
    qmax = float((1 << (weight_bits - 1)) - 1)
    w_int = jnp.clip(jnp.floor(weights / s_w + 0.5), -qmax, qmax).astype(jnp.int32)
    return w_int, s_w


def packed_aggregate_reference(packed: PackedMatrix, layout, *, out_bits=None, out_signed=True,
                               accumulate="float32", weight_bits=None):
    """``out[i] = sum_{j -> i} w_ij * dequant(x[j])`` with ``jax.ops.segment_sum`` (see the wrapper).

    accumulate="int32": ``sum_j w_int_ij * (q_j - z)`` accumulated in int32 (per-tensor scale ``s_x``
    and zero point ``z``), then ``* s_x * s_w``. Callers check the overflow bound first.
    """
    n = layout.num_nodes
    if accumulate == "int32":
        codes = unpack(packed.words, packed.bits, packed.signed, packed.num_features)
        w_int, s_w = int_weights(layout.weights, weight_bits, layout.max_abs_weight)
        msg = w_int[:, None] * codes[layout.senders]
        acc = jax.ops.segment_sum(msg, layout.receivers, num_segments=n, indices_are_sorted=True)
        wsum = jax.ops.segment_sum(w_int, layout.receivers, num_segments=n, indices_are_sorted=True)
        alpha = packed.scale[0, 0] * jnp.float32(s_w)
        z = packed.zero_point[0, 0]
        out = alpha * (acc.astype(jnp.float32) - z * wsum.astype(jnp.float32)[:, None])
    else:
        x = dequantize(packed)
        msg = layout.weights[:, None] * x[layout.senders]
        out = jax.ops.segment_sum(msg, layout.receivers, num_segments=n, indices_are_sorted=True)
    if out_bits is None:
        return out
    return quantize_and_pack(out, out_bits, signed=out_signed, granularity="row")
