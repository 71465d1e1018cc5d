"""Bit packing and Pallas aggregation kernels (installed as ``lpgnas.kernels``).

* packing: :func:`quantize_and_pack`, :func:`pack`, :func:`unpack`, :func:`dequantize`,
  :func:`packed_nbytes`, and per-node widths (A2Q) with :func:`pack_mixed`;
* layout: :func:`build_ell_layout` -- degree-bucketed ELL tables plus a segmented heavy tail, built
  once per graph;
* kernels: :func:`packed_aggregate` -- unpack, dequantise, weighted neighbour sum and optional
  re-quantisation in one Pallas kernel (Triton on GPU, Mosaic on TPU, interpret mode on CPU).
"""

from lpgnas.kernels._layout import EllBucket, EllLayout, build_ell_layout, build_mixed_layouts
from lpgnas.kernels._packing import (
    SUPPORTED_BITS,
    MixedPacked,
    PackedMatrix,
    code_range,
    dequantize,
    dequantize_mixed,
    pack,
    pack_mixed,
    packed_nbytes,
    quantize_and_pack,
    unpack,
    unpack_mixed,
    words_per_row,
)
from lpgnas.kernels.aggregate import (
    BACKENDS,
    int32_overflow_bound,
    mixed_packed_aggregate,
    packed_aggregate,
    packed_aggregate_reference,
    resolve_backend,
)

__all__ = [
    "BACKENDS",
    "SUPPORTED_BITS",
    "EllBucket",
    "EllLayout",
    "MixedPacked",
    "PackedMatrix",
    "build_ell_layout",
    "build_mixed_layouts",
    "code_range",
    "dequantize",
    "dequantize_mixed",
    "int32_overflow_bound",
    "mixed_packed_aggregate",
    "pack",
    "pack_mixed",
    "packed_aggregate",
    "packed_aggregate_reference",
    "packed_nbytes",
    "quantize_and_pack",
    "resolve_backend",
    "unpack",
    "unpack_mixed",
    "words_per_row",
]
