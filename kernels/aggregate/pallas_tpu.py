"""Packed aggregation over one ELL bucket: Pallas kernel for the Mosaic TPU lowering.

The neighbour ids are scalar-prefetched into SMEM (:class:`~jax.experimental.pallas.tpu.
PrefetchScalarGridSpec`); the packed source matrix stays in HBM (``memory_space=pl.ANY``) and each
grid step (one block of ``R`` receiver rows, ``R`` a multiple of 8 sublanes) DMAs its ``R * K``
neighbour rows into a VMEM buffer ``[R, K, W]`` (one descriptor per row, all on one semaphore, then
``R * K`` waits), unpacks them with shifts and masks and contracts them with the per-slot
coefficients ``coef [R, K, 1]`` (a sublane reduction over ``K``).

To keep the lanes dense the kernel never interleaves codes: code ``p`` of every word is produced as
its own ``[R, W]`` plane, and the output is planar, ``[32 / bits, rows, W]`` (feature
``w * (32 / bits) + p`` lives at ``[p, row, w]``); the wrapper restores the feature order with one
transpose. Dequantisation is folded into the coefficients by the wrapper: in float32 mode
``coef = w * scale[src]`` and the zero-point term ``sum_k coef_k * zero_point[src_k]`` is subtracted
afterwards; in int32 mode ``coef = w_int`` and the per-tensor scale and zero point are applied
afterwards. Re-quantisation of the output is done by the wrapper (XLA), not in this kernel.

The whole neighbour table of a call sits in SMEM, so the wrapper splits a bucket into calls of at
most :data:`MAX_PREFETCH` entries.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import tpu as pltpu

from lpgnas.kernels._packing import codes_per_word, unpack_codes

__all__ = ["aggregate_bucket_tpu", "MAX_PREFETCH"]

# neighbour ids per pallas_call held in SMEM (int32 entries); a conservative guess, untuned
MAX_PREFETCH = 16384
# interpret mode runs the TPU interpreter (pltpu.InterpretParams: simulated HBM/VMEM, DMAs and
# semaphores; out-of-bounds DMA reads raise) rather than the generic HLO interpreter
TPU_INTERPRETER = True


def _kernel(nbr_smem, coef_ref, words_hbm, out_ref, buf, sem, *, bits, signed, num_sources):
    rows, width, _ = coef_ref.shape
    base = pl.program_id(0) * (rows * width)

    def copy(t):
        r = jax.lax.div(t, width)
        k = jax.lax.rem(t, width)
        # padding slots point one past the last row: read the last row instead, its coefficient is 0
        src = jnp.minimum(nbr_smem[base + t], num_sources - 1)
        return pltpu.make_async_copy(words_hbm.at[pl.ds(src, 1)], buf.at[r, pl.ds(k, 1)], sem.at[0])

    def start(t, carry):
        copy(t).start()
        return carry

    def wait(t, carry):
        copy(t).wait()
        return carry

    jax.lax.fori_loop(0, rows * width, start, 0)
    jax.lax.fori_loop(0, rows * width, wait, 0)

    words = buf[...]
    coef = coef_ref[...]
    for p in range(codes_per_word(bits)):
        codes = unpack_codes(words, jnp.uint32(p * bits), bits, signed)
        out_ref[p] = jnp.sum(coef * codes.astype(coef.dtype), axis=1)


def _call(nbr_flat, coef, words, *, bits, signed, block_rows, interpret):
    rows, width, _ = coef.shape
    num_sources, num_words = words.shape
    planes = codes_per_word(bits)
    kernel = functools.partial(_kernel, bits=bits, signed=signed, num_sources=num_sources)
    grid_spec = pltpu.PrefetchScalarGridSpec(
        num_scalar_prefetch=1,
        grid=(rows // block_rows,),
        in_specs=[
            pl.BlockSpec((block_rows, width, 1), lambda i, nbr: (i, 0, 0)),
            pl.BlockSpec(memory_space=pl.ANY),
        ],
        out_specs=pl.BlockSpec((planes, block_rows, num_words), lambda i, nbr: (0, i, 0)),
        scratch_shapes=[pltpu.VMEM((block_rows, width, num_words), jnp.uint32), pltpu.SemaphoreType.DMA((1,))],
    )
    if interpret and TPU_INTERPRETER:
        interpret = pltpu.InterpretParams()
    return pl.pallas_call(
        kernel,
        out_shape=jax.ShapeDtypeStruct((planes, rows, num_words), coef.dtype),
        grid_spec=grid_spec,
        interpret=interpret,
        compiler_params=pltpu.CompilerParams(dimension_semantics=("parallel",)),
        name=f"packed_aggregate_tpu_b{bits}_k{width}",
    )(nbr_flat, coef, words)


def aggregate_bucket_tpu(words, coef, neighbors, *, bits, signed, num_features, block_rows,
                         interpret=False, max_prefetch=MAX_PREFETCH):
    """``sum_k coef[r, k] * code(neighbors[r, k])`` for one bucket, ``[rows, num_features]``.

    words ``uint32 [S, W]``; coef ``float32`` or ``int32 [rows, K]`` (zero on padding slots);
    neighbors ``int32 [rows, K]``; ``rows`` a multiple of ``block_rows`` (itself a multiple of 8).
    Returns the accumulator dtype of ``coef`` (no zero-point or scale correction applied).
    """
    rows, width = neighbors.shape
    per_call = max(block_rows, (max_prefetch // width) // block_rows * block_rows)
    parts = []
    for lo in range(0, rows, per_call):  # static loop over SMEM-sized chunks of the bucket
        hi = min(rows, lo + per_call)
        parts.append(
            _call(neighbors[lo:hi].reshape(-1), coef[lo:hi].reshape(hi - lo, width, 1), words,
                  bits=bits, signed=signed, block_rows=block_rows, interpret=interpret)
        )
    planar = parts[0] if len(parts) == 1 else jnp.concatenate(parts, axis=1)
    planes, _, num_words = planar.shape
    return jnp.transpose(planar, (1, 2, 0)).reshape(rows, num_words * planes)[:, :num_features]
