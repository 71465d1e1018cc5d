"""Public entry point of the packed aggregation: checks, block sizes, dispatch, assembly of the buckets."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from lpgnas.errors import ConfigError
from lpgnas.kernels._layout import EllBucket, EllLayout
from lpgnas.kernels._packing import (
    MixedPacked,
    PackedMatrix,
    check_bits,
    code_range,
    quantize_and_pack,
    words_per_row,
)
from lpgnas.kernels.aggregate import tuning
from lpgnas.kernels.aggregate.pallas_gpu import aggregate_bucket_gpu
from lpgnas.kernels.aggregate.pallas_tpu import aggregate_bucket_tpu
from lpgnas.kernels.aggregate.reference import int_weights, packed_aggregate_reference, weight_scale

__all__ = [
    "BACKENDS",
    "packed_aggregate",
    "mixed_packed_aggregate",
    "int32_overflow_bound",
    "resolve_backend",
]

BACKENDS = ("auto", "pallas", "pallas_gpu", "pallas_tpu", "reference")
_ACCUMULATE = ("float32", "int32")
_INT32_MAX = (1 << 31) - 1


def _platform() -> str:
    return jax.default_backend()


def resolve_backend(backend: str, interpret: bool | None = None) -> tuple[str, bool]:
    """``(concrete backend, interpret)`` for the current platform.

    ``auto``: the Pallas kernel of the platform on GPU/TPU, the reference on CPU. ``pallas``: the
    platform's kernel; on CPU the GPU (Triton-style) kernel in interpret mode. ``interpret=None`` means
    interpret mode exactly when the platform is CPU.
    """
    if backend not in BACKENDS:
        raise ConfigError("backend", f"expected one of {BACKENDS}, got {backend!r}")
    platform = _platform()
    if backend == "auto":
        backend = "reference" if platform == "cpu" else "pallas"
    if backend == "pallas":
        backend = "pallas_tpu" if platform == "tpu" else "pallas_gpu"
    if interpret is None:
        interpret = platform == "cpu"
    interpret = bool(interpret)
    if backend != "reference" and not interpret:
        native = {"pallas_gpu": ("gpu", "cuda", "rocm"), "pallas_tpu": ("tpu",)}[backend]
        if platform not in native:
            raise ConfigError(
                "interpret", f"backend {backend!r} cannot compile on platform {platform!r}; pass interpret=True"
            )
    return backend, interpret


def int32_overflow_bound(bits: int, signed: bool, max_degree: int, max_abs_weight: int) -> int:
    """Largest ``|sum_j w_j q_j|`` an int32 accumulator can meet: ``max_degree * max|q| * max|w|``."""
    lo, hi = code_range(bits, signed)
    return int(max_degree) * max(abs(lo), abs(hi)) * int(max_abs_weight)


def _expect(field: str, arr, dtype, shape: tuple, note: str = ""):
    got_shape = tuple(getattr(arr, "shape", ()))
    got_dtype = getattr(arr, "dtype", type(arr).__name__)
    if got_shape != shape or got_dtype != dtype:
        exp = f"{np.dtype(dtype).name} {shape}" + (f" ({note})" if note else "")
        raise ConfigError(field, f"expected {exp}, got {got_dtype} {got_shape}")


def _validate(packed, layout) -> None:
    if not isinstance(packed, PackedMatrix):
        raise ConfigError("packed", f"expected a PackedMatrix, got {type(packed).__name__}")
    if not isinstance(layout, EllLayout):
        raise ConfigError("layout", f"expected an EllLayout (build_ell_layout), got {type(layout).__name__}")
    bits = check_bits(packed.bits, "packed.bits")
    f = int(packed.num_features)
    words = packed.words
    if getattr(words, "ndim", 0) != 2:
        raise ConfigError("packed.words", f"expected a 2-d [rows, words] array, got shape {tuple(words.shape)}")
    s = int(words.shape[0])
    _expect("packed.words", words, jnp.uint32, (s, words_per_row(f, bits)), f"num_features={f} at {bits} bits")
    _expect("packed.scale", packed.scale, jnp.float32, (s, 1), "one per row of packed.words")
    _expect("packed.zero_point", packed.zero_point, jnp.float32, (s, 1), "one per row of packed.words")
    if layout.num_sources != s:
        raise ConfigError(
            "layout.num_sources", f"expected {s} (the rows of packed.words), got {layout.num_sources}"
        )
    for name, b in [(f"layout.buckets[{i}]", b) for i, b in enumerate(layout.buckets)] + [("layout.tail", layout.tail)]:
        nbr = b.neighbors
        if getattr(nbr, "ndim", 0) != 2:
            raise ConfigError(f"{name}.neighbors", f"expected a 2-d [rows, width] array, got {tuple(nbr.shape)}")
        _expect(f"{name}.neighbors", nbr, jnp.int32, tuple(nbr.shape))
        _expect(f"{name}.weights", b.weights, jnp.float32, tuple(nbr.shape), "like its neighbors")
    _expect("layout.gather_index", layout.gather_index, jnp.int32, (layout.num_nodes,), "one per node")
    _expect("layout.tail_segments", layout.tail_segments, jnp.int32, (layout.tail.rows,), "one per tail chunk")


def _pad_rows(bucket: EllBucket, multiple: int, pad_id: int) -> EllBucket:
    pad = (-bucket.rows) % multiple
    if not pad:
        return bucket
    return EllBucket(
        jnp.pad(bucket.neighbors, ((0, pad), (0, 0)), constant_values=pad_id),
        jnp.pad(bucket.weights, ((0, pad), (0, 0))),
    )


@functools.partial(
    jax.jit,
    static_argnames=(
        "backend", "out_bits", "out_signed", "accumulate", "weight_bits", "block_rows", "block_features",
        "num_warps", "num_stages", "interpret",
    ),
)
def _aggregate(packed, layout, *, backend, out_bits, out_signed, accumulate, weight_bits, block_rows,
               block_features, num_warps, num_stages, interpret):
    if backend == "reference":
        return packed_aggregate_reference(
            packed, layout, out_bits=out_bits, out_signed=out_signed, accumulate=accumulate,
            weight_bits=weight_bits,
        )
    f = packed.num_features
    s = layout.num_sources
    use_int = accumulate == "int32"
    fused_requant = out_bits is not None and backend == "pallas_gpu"
    alpha = z = None
    if use_int:
        alpha = packed.scale[0:1, 0] * jnp.float32(weight_scale(weight_bits, layout.max_abs_weight))
        z = packed.zero_point[0:1, 0]

    def run(bucket: EllBucket, requant: bool):
        rows = bucket.rows
        b = _pad_rows(bucket, block_rows, s)
        w = int_weights(b.weights, weight_bits, layout.max_abs_weight)[0] if use_int else b.weights
        if backend == "pallas_gpu":
            common = dict(
                bits=packed.bits, signed=packed.signed, num_features=f, block_rows=block_rows,
                block_features=block_features, num_warps=num_warps, num_stages=num_stages,
                out_bits=out_bits if requant else None, out_signed=out_signed, accumulate=accumulate,
                interpret=interpret,
            )
            if use_int:
                res = aggregate_bucket_gpu(packed.words, alpha, z, b.neighbors, w, **common)
            else:
                res = aggregate_bucket_gpu(
                    packed.words, packed.scale[:, 0], packed.zero_point[:, 0], b.neighbors, w, **common
                )
            if requant:
                words, scale, zp = res
                return words[:rows, : words_per_row(f, out_bits)], scale[:rows], zp[:rows]
            return res[:rows, :f]
        # pallas_tpu: dequantisation folded into per-slot coefficients, corrections applied here
        common = dict(bits=packed.bits, signed=packed.signed, num_features=f, block_rows=block_rows,
                      interpret=interpret)
        if use_int:
            acc = aggregate_bucket_tpu(packed.words, w, b.neighbors, **common)
            wsum = jnp.sum(w, axis=1).astype(jnp.float32)
            out = alpha.reshape(1, 1) * (acc.astype(jnp.float32) - z.reshape(1, 1) * wsum[:, None])
        else:
            scale_ext = jnp.concatenate([packed.scale[:, 0], jnp.zeros((1,), jnp.float32)])
            zp_ext = jnp.concatenate([packed.zero_point[:, 0], jnp.zeros((1,), jnp.float32)])
            coef = w * scale_ext[b.neighbors]
            zterm = jnp.sum(coef * zp_ext[b.neighbors], axis=1)
            out = aggregate_bucket_tpu(packed.words, coef, b.neighbors, **common) - zterm[:, None]
        return out[:rows]

    parts = [run(b, fused_requant) for b in layout.buckets]
    tail = None
    if layout.tail.rows:  # chunk partial sums, never re-quantised in the kernel
        chunks = run(layout.tail, False)
        tail = jax.ops.segment_sum(chunks, layout.tail_segments, num_segments=layout.num_tail + 1)
        tail = tail[: layout.num_tail]
    zero = jnp.zeros((1, f), jnp.float32)
    if not fused_requant:
        rows = parts + ([tail] if tail is not None else []) + [zero]
        out = jnp.concatenate(rows, axis=0)[layout.gather_index]
        if out_bits is None:
            return out
        return quantize_and_pack(out, out_bits, signed=out_signed, granularity="row")
    # fused re-quantisation (GPU): buckets come back packed; the tail sums and the zero row are
    # quantised here with the same quantiser
    extra = jnp.concatenate(([tail] if tail is not None else []) + [zero], axis=0)
    q = quantize_and_pack(extra, out_bits, signed=out_signed, granularity="row")
    words = jnp.concatenate([p[0] for p in parts] + [q.words], axis=0)[layout.gather_index]
    scale = jnp.concatenate([p[1] for p in parts] + [q.scale], axis=0)[layout.gather_index]
    zp = jnp.concatenate([p[2] for p in parts] + [q.zero_point], axis=0)[layout.gather_index]
    return PackedMatrix(words, scale, zp, out_bits, bool(out_signed), f, "row")


def _next_pow2(v: int) -> int:
    return 1 << max(0, (int(v) - 1).bit_length())


def packed_aggregate(
    packed: PackedMatrix,
    layout: EllLayout,
    *,
    out_bits: int | None = None,
    out_signed: bool = True,
    accumulate: str = "float32",
    weight_bits: int | None = None,
    block_rows: int | None = None,
    block_features: int | None = None,
    backend: str = "auto",
    interpret: bool | None = None,
):
    """``out[i] = sum_{j -> i} w_ij * dequant(packed[j])`` over the neighbour lists of ``layout``.

    packed: source rows (``layout.num_sources`` of them), any width in 1, 2, 4, 8 bits.
    out_bits: re-quantise each output row to this width (per-row scale, signedness ``out_signed``) and
      return a :class:`PackedMatrix`; ``None`` returns ``float32 [num_nodes, num_features]``.
    accumulate: ``"float32"``, or ``"int32"`` (needs ``packed.granularity == "tensor"``; the weights are
      used as integers when ``weight_bits`` is None -- they must be integer-valued -- or quantised per
      tensor to ``weight_bits``). Raises :class:`~lpgnas.errors.ConfigError` (a ``ValueError``) when
      ``max_degree * max|code| * max|w_int|`` exceeds the int32 range.
    block_rows / block_features: override the tuning table (:mod:`.tuning`).
    backend: ``"auto"`` (Pallas on GPU/TPU, reference on CPU), ``"pallas"``, ``"pallas_gpu"``,
      ``"pallas_tpu"`` or ``"reference"``. interpret: run Pallas in interpret mode (default: on CPU).
    """
    _validate(packed, layout)
    f = int(packed.num_features)
    bits = int(packed.bits)
    if out_bits is not None:
        out_bits = check_bits(out_bits, "out_bits")
    if accumulate not in _ACCUMULATE:
        raise ConfigError("accumulate", f"expected one of {_ACCUMULATE}, got {accumulate!r}")
    if accumulate == "int32":
        if packed.granularity != "tensor":
            raise ConfigError(
                "accumulate",
                f"int32 accumulation needs one scale per tensor (packed.granularity='tensor'), "
                f"got granularity={packed.granularity!r}",
            )
        if weight_bits is None:
            if not layout.integer_weights:
                raise ConfigError(
                    "weight_bits",
                    "the layout's edge weights are not integers; pass weight_bits (e.g. 8) to quantise them",
                )
            max_w = int(np.ceil(layout.max_abs_weight))
        else:
            if isinstance(weight_bits, bool) or not isinstance(weight_bits, int) or not 2 <= weight_bits <= 31:
                raise ConfigError("weight_bits", f"expected an int in [2, 31], got {weight_bits!r}")
            max_w = (1 << (weight_bits - 1)) - 1
        bound = int32_overflow_bound(bits, packed.signed, layout.max_degree, max_w)
        if bound > _INT32_MAX:
            lo, hi = code_range(bits, packed.signed)
            raise ConfigError(
                "accumulate",
                f"int32 accumulation can overflow: max_degree {layout.max_degree} * max|code| "
                f"{max(abs(lo), abs(hi))} * max|w_int| {max_w} = {bound} > {_INT32_MAX}; use "
                f"accumulate='float32', fewer weight_bits or fewer bits",
            )
    elif weight_bits is not None:
        raise ConfigError("weight_bits", "only used with accumulate='int32'")

    backend, interpret = resolve_backend(backend, interpret)
    flavour = "tpu" if backend == "pallas_tpu" else "gpu"
    cfg = tuning.lookup(bits, f, flavour)
    br = cfg.block_rows if block_rows is None else block_rows
    fb = cfg.block_features if block_features is None else block_features
    if isinstance(br, bool) or not isinstance(br, (int, np.integer)) or br < 1:
        raise ConfigError("block_rows", f"expected a positive int, got {br!r}")
    if flavour == "gpu":
        if br & (br - 1):
            raise ConfigError("block_rows", f"the Triton kernel needs a power of two, got {br}")
        if out_bits is not None:
            fb = max(32, _next_pow2(f))  # re-quantisation needs whole rows in one program
        elif isinstance(fb, bool) or not isinstance(fb, (int, np.integer)) or fb < 32 or fb & (fb - 1):
            raise ConfigError("block_features", f"expected a power of two >= 32, got {fb!r}")
        fb = min(int(fb), max(32, _next_pow2(f)))
    else:
        if br % 8:
            raise ConfigError("block_rows", f"the TPU kernel needs a multiple of 8 (sublanes), got {br}")
        fb = 0
    if backend == "reference":
        br, fb = 0, 0
    return _aggregate(
        packed, layout, backend=backend, out_bits=out_bits, out_signed=bool(out_signed), accumulate=accumulate,
        weight_bits=weight_bits, block_rows=int(br), block_features=int(fb), num_warps=cfg.num_warps,
        num_stages=cfg.num_stages, interpret=interpret,
    )


def mixed_packed_aggregate(mixed: MixedPacked, layouts, *, out_bits=None, out_signed=True, **options):
    """Aggregate rows packed at mixed widths: one launch per width group (``layouts`` from
    :func:`~lpgnas.kernels.build_mixed_layouts`), summed in float32, optionally re-quantised."""
    if not isinstance(mixed, MixedPacked):
        raise ConfigError("mixed", f"expected a MixedPacked (pack_mixed), got {type(mixed).__name__}")
    if len(layouts) != len(mixed.groups):
        raise ConfigError("layouts", f"expected {len(mixed.groups)} layouts (one per width group), got {len(layouts)}")
    out = None
    for g, lay in zip(mixed.groups, layouts):
        part = packed_aggregate(g, lay, **options)
        out = part if out is None else out + part
    if out_bits is None:
        return out
    return quantize_and_pack(out, check_bits(out_bits, "out_bits"), signed=out_signed, granularity="row")
