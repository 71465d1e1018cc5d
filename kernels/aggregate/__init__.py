"""Fused packed aggregation ``out[i] = sum_j w_ij * dequant(x_packed[j])``: reference, Pallas GPU
(Triton) and Pallas TPU (Mosaic) kernels behind one jitted wrapper."""

from lpgnas.kernels.aggregate.reference import packed_aggregate_reference
from lpgnas.kernels.aggregate.wrapper import (
    BACKENDS,
    int32_overflow_bound,
    mixed_packed_aggregate,
    packed_aggregate,
    resolve_backend,
)

__all__ = [
    "BACKENDS",
    "int32_overflow_bound",
    "mixed_packed_aggregate",
    "packed_aggregate",
    "packed_aggregate_reference",
    "resolve_backend",
]
