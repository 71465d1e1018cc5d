"""Bit packing of low-bit integer codes into ``uint32`` words, and the affine quantiser around it.

Layout: a row of ``F`` codes of ``bits`` bits (``bits`` in 1, 2, 4, 8) is stored in
``ceil(F * bits / 32)`` ``uint32`` words, ``32 // bits`` codes per word, little-endian inside the word:
code ``j`` lives in word ``j // (32 // bits)`` at bit offset ``(j % (32 // bits)) * bits``. The unused
high codes of the last word are zero. Signed codes are stored in two's complement on ``bits`` bits.

Dequantisation is affine per row: ``x_hat = (code - zero_point) * scale``. The quantiser used by
:func:`quantize_and_pack` (and by the aggregation kernels' re-quantisation) is

* unsigned: asymmetric min/max with zero always representable,
  ``scale = (max(x, 0) - min(x, 0)) / (2**bits - 1)``, integer ``zero_point``;
* signed, ``bits >= 2``: symmetric, ``scale = max|x| / (2**(bits-1) - 1)``, ``zero_point = 0``;
* signed, ``bits == 1``: binarisation ``x_hat = +-mean|x|`` (codes ``0 -> +``, ``-1 -> -``),
  ``scale = 2 * mean|x|``, ``zero_point = -0.5``.

Rounding is ``floor(v + 0.5)`` (half up) everywhere, so the Pallas kernels (whose Triton lowering has
no ``round``) reproduce it exactly. A row whose range is zero gets ``scale = 1``.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lpgnas.errors import ConfigError

__all__ = [
    "SUPPORTED_BITS",
    "PackedMatrix",
    "MixedPacked",
    "pack",
    "unpack",
    "quantize_and_pack",
    "dequantize",
    "packed_nbytes",
    "pack_mixed",
    "unpack_mixed",
    "dequantize_mixed",
    "words_per_row",
    "code_range",
]

SUPPORTED_BITS = (1, 2, 4, 8)


class PackedMatrix(NamedTuple):
    """A bit-packed ``[N, num_features]`` matrix with per-row affine dequantisation parameters.

    words: ``uint32 [N, ceil(num_features * bits / 32)]``.
    scale: ``float32 [N, 1]`` (one entry per row; rows of a block or of the whole tensor share the value
      when ``granularity`` is an int or ``"tensor"``).
    zero_point: ``float32 [N, 1]`` (integer or, for signed 1-bit, half-integer valued).
    bits, signed, num_features, granularity: static metadata (pytree auxiliary data, never traced).
    """

    words: jax.Array
    scale: jax.Array
    zero_point: jax.Array
    bits: int
    signed: bool
    num_features: int
    granularity: str | int = "row"

    @property
    def num_rows(self) -> int:
        return int(self.words.shape[0])


jax.tree_util.register_pytree_node(
    PackedMatrix,
    lambda p: ((p.words, p.scale, p.zero_point), (p.bits, p.signed, p.num_features, p.granularity)),
    lambda aux, ch: PackedMatrix(*ch, *aux),
)


class MixedPacked(NamedTuple):
    """Rows packed at per-node bit widths (A2Q): one :class:`PackedMatrix` per width.

    groups: packed groups, widths ascending; group ``g`` holds nodes ``perm[offsets[g]:offsets[g+1]]``.
    perm: ``int32 [N]`` original node id of each grouped row. inv_perm: ``int32 [N]`` grouped row of
    each node. group_bits / offsets: static.
    """

    groups: tuple[PackedMatrix, ...]
    perm: jax.Array
    inv_perm: jax.Array
    group_bits: tuple[int, ...]
    offsets: tuple[int, ...]

    @property
    def num_rows(self) -> int:
        return int(self.offsets[-1])


jax.tree_util.register_pytree_node(
    MixedPacked,
    lambda m: ((m.groups, m.perm, m.inv_perm), (m.group_bits, m.offsets)),
    lambda aux, ch: MixedPacked(*ch, *aux),
)


# ----------------------------------------------------------------------------------------------
# small helpers shared with the kernels


def check_bits(bits, field: str = "bits") -> int:
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or int(bits) not in SUPPORTED_BITS:
        raise ConfigError(field, f"expected one of {SUPPORTED_BITS}, got {bits!r}")
    return int(bits)


def codes_per_word(bits: int) -> int:
    return 32 // bits


def words_per_row(num_features: int, bits: int) -> int:
    """Number of ``uint32`` words holding ``num_features`` codes of ``bits`` bits."""
    p = codes_per_word(bits)
    return -(-int(num_features) // p)


def code_range(bits: int, signed: bool) -> tuple[int, int]:
    """Inclusive ``(min, max)`` of the integer codes."""
    if signed:
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


def unpack_codes(words: jax.Array, shifts: jax.Array, bits: int, signed: bool) -> jax.Array:
    """``int32`` codes from ``uint32`` ``words`` shifted right by ``shifts`` (broadcasting, same rank)."""
    mask = jnp.uint32((1 << bits) - 1)
    codes = ((words >> shifts) & mask).astype(jnp.int32)
    if signed:
        half = 1 << (bits - 1)
        codes = jnp.where(codes >= half, codes - (1 << bits), codes)
    return codes


def quant_params(x: jax.Array, valid: jax.Array, bits: int, signed: bool, axis: int = -1):
    """Per-slice ``(scale, zero_point)`` (``float32``, reduced ``axis`` kept) of the quantiser above.

    ``valid`` (bool, broadcastable to ``x``) masks padding out of the statistics. Uses only ops that
    the Pallas Triton lowering supports (no ``round``), so kernels may call it.
    """
    zero = jnp.zeros_like(x)
    if signed and bits == 1:
        n = jnp.sum(jnp.where(valid, jnp.ones_like(x), zero), axis=axis, keepdims=True)
        mean_abs = jnp.sum(jnp.where(valid, jnp.abs(x), zero), axis=axis, keepdims=True) / jnp.maximum(n, 1.0)
        scale = jnp.where(mean_abs > 0, 2.0 * mean_abs, jnp.ones_like(mean_abs))
        return scale, jnp.full_like(scale, -0.5)
    if signed:
        qmax = float((1 << (bits - 1)) - 1)
        amax = jnp.max(jnp.where(valid, jnp.abs(x), zero), axis=axis, keepdims=True)
        scale = jnp.where(amax > 0, amax / qmax, jnp.ones_like(amax))
        return scale, jnp.zeros_like(scale)
    levels = float((1 << bits) - 1)
    lo = jnp.minimum(jnp.min(jnp.where(valid, x, zero), axis=axis, keepdims=True), 0.0)
    hi = jnp.maximum(jnp.max(jnp.where(valid, x, zero), axis=axis, keepdims=True), 0.0)
    span = hi - lo
    scale = jnp.where(span > 0, span / levels, jnp.ones_like(span))
    zp = jnp.clip(jnp.floor(-lo / scale + 0.5), 0.0, levels)
    return scale, zp


def quantize_codes(x: jax.Array, scale: jax.Array, zero_point: jax.Array, bits: int, signed: bool) -> jax.Array:
    """``int32`` codes of ``x`` (``scale``/``zero_point`` broadcast against ``x``)."""
    if signed and bits == 1:
        return jnp.where(x >= 0, jnp.zeros(x.shape, jnp.int32), jnp.full(x.shape, -1, jnp.int32))
    lo, hi = code_range(bits, signed)
    q = jnp.floor(x / scale + 0.5) + zero_point
    return jnp.clip(q, float(lo), float(hi)).astype(jnp.int32)


# ----------------------------------------------------------------------------------------------
# public API


def pack(codes: jax.Array, bits: int, signed: bool) -> jax.Array:
    """Pack integer ``codes [N, F]`` into ``uint32 [N, ceil(F * bits / 32)]`` words.

    Codes are taken modulo ``2**bits`` (two's complement for signed codes); pass codes inside
    :func:`code_range` for an exact round trip through :func:`unpack`.
    """
    bits = check_bits(bits)
    codes = jnp.asarray(codes)
    if codes.ndim != 2:
        raise ConfigError("codes", f"expected a 2-d [N, F] array, got shape {tuple(codes.shape)}")
    if not jnp.issubdtype(codes.dtype, jnp.integer):
        raise ConfigError("codes", f"expected an integer dtype, got {codes.dtype}")
    return _pack(codes, bits)


@functools.partial(jax.jit, static_argnums=(1,))
def _pack(codes: jax.Array, bits: int) -> jax.Array:
    n, f = codes.shape
    p = codes_per_word(bits)
    w = words_per_row(f, bits)
    c = codes.astype(jnp.int32)
    if w * p != f:
        c = jnp.pad(c, ((0, 0), (0, w * p - f)))
    u = c.astype(jnp.uint32).reshape(n, w, p) & jnp.uint32((1 << bits) - 1)
    shifts = (jnp.arange(p, dtype=jnp.uint32) * jnp.uint32(bits)).reshape(1, 1, p)
    # the shifted codes occupy disjoint bits, so their sum is their bitwise or
    return jnp.sum(u << shifts, axis=2, dtype=jnp.uint32)


def unpack(words: jax.Array, bits: int, signed: bool, num_features: int) -> jax.Array:
    """Inverse of :func:`pack`: ``int32 [N, num_features]`` codes."""
    bits = check_bits(bits)
    words = jnp.asarray(words)
    if words.ndim != 2 or words.dtype != jnp.uint32:
        raise ConfigError("words", f"expected uint32 [N, W], got {words.dtype} {tuple(words.shape)}")
    n, w = words.shape
    if w != words_per_row(num_features, bits):
        raise ConfigError(
            "words",
            f"expected {words_per_row(num_features, bits)} words per row for num_features={num_features} "
            f"at {bits} bits, got {w}",
        )
    return _unpack(words, bits, bool(signed), int(num_features))


@functools.partial(jax.jit, static_argnums=(1, 2, 3))
def _unpack(words: jax.Array, bits: int, signed: bool, num_features: int) -> jax.Array:
    n, w = words.shape
    p = codes_per_word(bits)
    shifts = (jnp.arange(p, dtype=jnp.uint32) * jnp.uint32(bits)).reshape(1, 1, p)
    codes = unpack_codes(words.reshape(n, w, 1), shifts, bits, signed)
    return codes.reshape(n, w * p)[:, :num_features]


def _check_granularity(granularity):
    if granularity in ("row", "tensor"):
        return granularity
    if isinstance(granularity, (int, np.integer)) and not isinstance(granularity, bool) and granularity >= 1:
        return int(granularity)
    raise ConfigError("granularity", f"expected 'row', 'tensor' or a positive int, got {granularity!r}")


def _group_view(x: jax.Array, granularity) -> tuple[jax.Array, jax.Array, int]:
    """``x [N, F]`` as ``[G, rows_per_group * F]`` plus a validity mask and the rows per group."""
    n, f = x.shape
    if granularity == "row":
        return x, jnp.ones((1, f), bool), 1
    g = max(n, 1) if granularity == "tensor" else granularity
    groups = -(-n // g)
    pad = groups * g - n
    xp = jnp.pad(x, ((0, pad), (0, 0)))
    valid = (jnp.arange(groups * g) < n).reshape(groups, g, 1)
    valid = jnp.broadcast_to(valid, (groups, g, f)).reshape(groups, g * f)
    return xp.reshape(groups, g * f), valid, g


def quantize_and_pack(x: jax.Array, bits: int, *, signed: bool, granularity="row") -> PackedMatrix:
    """Quantise ``float x [N, F]`` to ``bits`` (see the module docstring) and pack it.

    granularity: ``"row"`` (one scale per node), ``"tensor"`` (one scale for all) or an int ``g`` (one
    scale per block of ``g`` consecutive rows). ``scale``/``zero_point`` are stored per row either way.
    """
    bits = check_bits(bits)
    x = jnp.asarray(x)
    if x.ndim != 2:
        raise ConfigError("x", f"expected a 2-d [N, F] array, got shape {tuple(x.shape)}")
    gran = _check_granularity(granularity)
    words, scale, zp = _quantize_and_pack(x.astype(jnp.float32), bits, bool(signed), gran)
    return PackedMatrix(words, scale, zp, bits, bool(signed), int(x.shape[1]), gran)


@functools.partial(jax.jit, static_argnums=(1, 2, 3))
def _quantize_and_pack(x: jax.Array, bits: int, signed: bool, granularity):
    n = x.shape[0]
    xg, valid, g = _group_view(x, granularity)
    scale, zp = quant_params(xg, valid, bits, signed, axis=1)
    if g > 1:
        scale = jnp.repeat(scale, g, axis=0)[:n]
        zp = jnp.repeat(zp, g, axis=0)[:n]
    codes = quantize_codes(x, scale, zp, bits, signed)
    return _pack(codes, bits), scale, zp


def dequantize(packed: PackedMatrix) -> jax.Array:
    """``float32 [N, num_features]``: ``(code - zero_point) * scale``."""
    return _dequantize(packed)


@jax.jit
def _dequantize(packed: PackedMatrix) -> jax.Array:
    codes = _unpack(packed.words, packed.bits, packed.signed, packed.num_features)
    return (codes.astype(jnp.float32) - packed.zero_point) * packed.scale


def packed_nbytes(packed) -> int:
    """Bytes held by the device arrays of a :class:`PackedMatrix` (or :class:`MixedPacked`)."""
    return int(sum(int(leaf.nbytes) for leaf in jax.tree_util.tree_leaves(packed)))


def pack_mixed(x: jax.Array, node_bits, *, signed: bool, granularity="row") -> MixedPacked:
    """Pack each node at its own bit width: nodes are grouped by width, one :class:`PackedMatrix` each.

    node_bits: host ``int [N]`` array of widths in :data:`SUPPORTED_BITS` (it fixes the group shapes,
    so it must be concrete, not traced).
    """
    x = jnp.asarray(x)
    if x.ndim != 2:
        raise ConfigError("x", f"expected a 2-d [N, F] array, got shape {tuple(x.shape)}")
    try:
        nb = np.asarray(node_bits)
    except Exception as e:  # a tracer
        raise ConfigError("node_bits", f"must be a concrete host array, got {type(node_bits).__name__}") from e
    if nb.shape != (x.shape[0],):
        raise ConfigError("node_bits", f"expected shape ({x.shape[0]},), got {nb.shape}")
    bad = ~np.isin(nb, SUPPORTED_BITS)
    if bad.any():
        raise ConfigError("node_bits", f"values must be in {SUPPORTED_BITS}, got {sorted(set(nb[bad].tolist()))}")
    perm = np.argsort(nb, kind="stable").astype(np.int32)
    inv = np.empty_like(perm)
    inv[perm] = np.arange(perm.shape[0], dtype=np.int32)
    widths, counts = np.unique(nb, return_counts=True)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    groups = []
    for g, b in enumerate(widths.tolist()):
        rows = jnp.asarray(perm[offsets[g]:offsets[g + 1]])
        groups.append(quantize_and_pack(x[rows], int(b), signed=signed, granularity=granularity))
    return MixedPacked(
        tuple(groups), jnp.asarray(perm), jnp.asarray(inv), tuple(int(b) for b in widths.tolist()),
        tuple(int(o) for o in offsets.tolist()),
    )


def unpack_mixed(mixed: MixedPacked) -> jax.Array:
    """``int32 [N, F]`` codes in the original node order (each row at its own width)."""
    codes = jnp.concatenate([unpack(g.words, g.bits, g.signed, g.num_features) for g in mixed.groups], axis=0)
    return codes[mixed.inv_perm]


def dequantize_mixed(mixed: MixedPacked) -> jax.Array:
    """``float32 [N, F]`` in the original node order."""
    x = jnp.concatenate([dequantize(g) for g in mixed.groups], axis=0)
    return x[mixed.inv_perm]
