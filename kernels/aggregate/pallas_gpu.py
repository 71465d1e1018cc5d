"""Packed aggregation over one ELL bucket: Pallas kernel for the Triton GPU lowering.

Grid ``(rows / block_rows, padded_features / block_features)``; program ``(i, j)`` owns rows
``[i * R, (i + 1) * R)`` and features ``[j * FB, (j + 1) * FB)``. For each of the ``K`` neighbour slots
it gathers the ``R`` source rows' words with one masked 2-d gather load (``x[idx[:, None],
word_col[None, :]]``; the word column of feature ``f`` is ``f // (32 / bits)``, so every word is
loaded once per code it holds -- those repeats hit L1, DRAM traffic stays at the packed size),
unpacks with shifts and masks, dequantises with the *source* rows' scale and zero point and
accumulates ``w * x`` in float32 (or ``w_int * code`` in int32). Padding slots (id ``num_sources``)
are masked loads, so they cost no memory traffic. With ``out_bits`` the epilogue re-quantises each
output row (per-row scale, :func:`lpgnas.kernels.quant_params`) and packs it in registers; that
needs the whole row in one program, so it is used with a single feature block.

(Untuned alternative: load each word once, ``[R, FB / P]``, and expand it with a broadcasted shift and
a reshape to ``[R, FB]``; it trades the L1 re-reads for a register relayout.)

Block shapes follow the Triton rules (every block and every in-kernel array has a power-of-two
size): ``block_rows``, ``K`` (bucket widths are powers of two) and ``block_features >= 32`` are
powers of two; the source arrays are passed whole (no block spec) and only gathered from.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as plgpu

from lpgnas.kernels._packing import codes_per_word, quant_params, quantize_codes, unpack_codes

__all__ = ["aggregate_bucket_gpu"]


def _feature_coords(block_features: int, bits: int, num_words: int):
    """Feature ids of this program's block, their word column (clamped in range) and bit shift."""
    p = codes_per_word(bits)
    f = pl.program_id(1) * block_features + jnp.arange(block_features, dtype=jnp.int32)
    col = jnp.minimum(jax.lax.div(f, p), num_words - 1)
    shift = (jax.lax.rem(f, p) * bits).astype(jnp.uint32)
    return f, col, shift


def _gather_codes(words_ref, idx, valid, col, shift, bits, signed):
    """``int32 [R, FB]`` codes of source rows ``idx`` (zero where ``valid`` is False)."""
    rows, fb = idx.shape[0], col.shape[0]
    mask = jnp.broadcast_to(valid[:, None], (rows, fb))
    words = plgpu.load(words_ref.at[idx[:, None], col[None, :]], mask=mask, other=0)
    return unpack_codes(words, shift[None, :], bits, signed)


def _store_output(acc, f, out_refs, *, num_features, out_bits, out_signed):
    if out_bits is None:
        (out_ref,) = out_refs
        out_ref[...] = acc
        return
    words_ref, scale_ref, zp_ref = out_refs
    rows, fb = acc.shape
    valid = (f < num_features)[None, :]
    scale, zp = quant_params(acc, valid, out_bits, out_signed, axis=1)
    codes = quantize_codes(acc, scale, zp, out_bits, out_signed)
    codes = jnp.where(valid, codes, jnp.zeros_like(codes))
    po = codes_per_word(out_bits)
    u = (codes.astype(jnp.uint32) & jnp.uint32((1 << out_bits) - 1)).reshape(rows, fb // po, po)
    shifts = (jnp.arange(po, dtype=jnp.int32) * out_bits).astype(jnp.uint32).reshape(1, 1, po)
    words_ref[...] = jnp.sum(u << shifts, axis=2, dtype=jnp.uint32)
    scale_ref[...] = scale
    zp_ref[...] = zp


def _float_kernel(nbr_ref, w_ref, words_ref, scale_ref, zp_ref, *out_refs, bits, signed, num_sources,
                  num_features, block_features, out_bits, out_signed):
    rows, width = nbr_ref.shape
    f, col, shift = _feature_coords(block_features, bits, words_ref.shape[1])

    def body(k, acc):
        idx = nbr_ref[:, k]
        valid = idx < num_sources
        idx = jnp.where(valid, idx, jnp.zeros_like(idx))
        codes = _gather_codes(words_ref, idx, valid, col, shift, bits, signed)
        s = plgpu.load(scale_ref.at[idx], mask=valid, other=0.0)
        z = plgpu.load(zp_ref.at[idx], mask=valid, other=0.0)
        x = (codes.astype(jnp.float32) - z[:, None]) * s[:, None]
        return acc + w_ref[:, k][:, None] * x

    acc = jax.lax.fori_loop(0, width, body, jnp.zeros((rows, block_features), jnp.float32))
    _store_output(acc, f, out_refs, num_features=num_features, out_bits=out_bits, out_signed=out_signed)


def _int_kernel(nbr_ref, w_ref, words_ref, alpha_ref, zp_ref, *out_refs, bits, signed, num_sources,
                num_features, block_features, out_bits, out_signed):
    rows, width = nbr_ref.shape
    f, col, shift = _feature_coords(block_features, bits, words_ref.shape[1])

    def body(k, carry):
        acc, wsum = carry
        idx = nbr_ref[:, k]
        valid = idx < num_sources
        idx = jnp.where(valid, idx, jnp.zeros_like(idx))
        codes = _gather_codes(words_ref, idx, valid, col, shift, bits, signed)
        wk = w_ref[:, k]
        return acc + wk[:, None] * codes, wsum + wk

    init = (jnp.zeros((rows, block_features), jnp.int32), jnp.zeros((rows,), jnp.int32))
    acc, wsum = jax.lax.fori_loop(0, width, body, init)
    # sum_j w_j (q_j - z) * s_x * s_w, with the per-tensor zero point taken out of the int sum
    alpha = alpha_ref[0]
    z = zp_ref[0]
    out = alpha * (acc.astype(jnp.float32) - z * wsum.astype(jnp.float32)[:, None])
    _store_output(out, f, out_refs, num_features=num_features, out_bits=out_bits, out_signed=out_signed)


def aggregate_bucket_gpu(words, scale, zero_point, neighbors, weights, *, bits, signed, num_features,
                         block_rows, block_features, num_warps=4, num_stages=2, out_bits=None,
                         out_signed=True, accumulate="float32", interpret=False):
    """Run the kernel on one bucket.

    words ``uint32 [S, W]``; float32 mode: ``scale``/``zero_point`` ``float32 [S]`` per source row and
    ``weights float32 [rows, K]``; int32 mode: ``scale = [s_x * s_w]`` and ``zero_point = [z]``
    (``float32 [1]``) and ``weights int32 [rows, K]``. ``rows`` must be a multiple of ``block_rows``.

    Returns ``float32 [rows, F_pad]`` (``F_pad`` a multiple of ``block_features``) or, with
    ``out_bits``, ``(words uint32 [rows, block_features * out_bits / 32], scale, zero_point)`` with
    ``float32 [rows, 1]`` parameters (then ``block_features`` must cover all features).
    """
    rows, width = neighbors.shape
    num_sources = words.shape[0]
    f_pad = -(-num_features // block_features) * block_features
    if out_bits is None:
        out_shape = jax.ShapeDtypeStruct((rows, f_pad), jnp.float32)
        out_specs = pl.BlockSpec((block_rows, block_features), lambda i, j: (i, j))
    else:
        if f_pad != block_features:
            raise ValueError("re-quantisation needs one feature block covering every feature")
        wo = block_features * out_bits // 32
        out_shape = (
            jax.ShapeDtypeStruct((rows, wo), jnp.uint32),
            jax.ShapeDtypeStruct((rows, 1), jnp.float32),
            jax.ShapeDtypeStruct((rows, 1), jnp.float32),
        )
        out_specs = (
            pl.BlockSpec((block_rows, wo), lambda i, j: (i, 0)),
            pl.BlockSpec((block_rows, 1), lambda i, j: (i, 0)),
            pl.BlockSpec((block_rows, 1), lambda i, j: (i, 0)),
        )
    kernel = _int_kernel if accumulate == "int32" else _float_kernel
    kernel = functools.partial(
        kernel, bits=bits, signed=signed, num_sources=num_sources, num_features=num_features,
        block_features=block_features, out_bits=out_bits, out_signed=out_signed,
    )
    row_spec = pl.BlockSpec((block_rows, width), lambda i, j: (i, 0))
    return pl.pallas_call(
        kernel,
        out_shape=out_shape,
        grid=(rows // block_rows, f_pad // block_features),
        in_specs=[row_spec, row_spec, pl.no_block_spec, pl.no_block_spec, pl.no_block_spec],
        out_specs=out_specs,
        interpret=interpret,
        compiler_params=plgpu.CompilerParams(num_warps=num_warps, num_stages=num_stages),
        name=f"packed_aggregate_{accumulate}_b{bits}_k{width}",
    )(neighbors, weights, words, scale, zero_point)
