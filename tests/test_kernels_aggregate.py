"""Packed aggregation: the Pallas kernels in interpret mode (CPU) against the pure-JAX reference.

``pallas_gpu`` is the Triton-style kernel (masked gather loads), ``pallas_tpu`` the Mosaic kernel
(scalar-prefetched ids + row DMAs, run by the TPU interpreter). Graphs are small: interpret mode is slow.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lpgnas.errors import ConfigError
from lpgnas.kernels import (
    PackedMatrix,
    build_ell_layout,
    build_mixed_layouts,
    dequantize,
    dequantize_mixed,
    int32_overflow_bound,
    mixed_packed_aggregate,
    pack_mixed,
    packed_aggregate,
    packed_aggregate_reference,
    quantize_and_pack,
    unpack,
)

N, F = 45, 37  # neither a multiple of the row blocks nor of 32 / bits


def _graph(seed=0, n=N, max_deg=9, heavy=((3, 40),), weights="float"):
    rng = np.random.default_rng(seed)
    deg = rng.integers(0, max_deg + 1, size=n)
    deg[5] = 0  # an empty row
    for node, d in heavy:
        deg[node] = d  # above max_width: heavy-tail path
    r = np.repeat(np.arange(n), deg)
    s = rng.integers(0, n, size=r.size)
    if weights == "int":
        w = rng.integers(-2, 3, size=r.size).astype(np.float32)
    else:
        w = rng.uniform(-1, 1, size=r.size).astype(np.float32)
    return s, r, w


S, R, W = _graph()
LAYOUT = build_ell_layout(S, R, N, edge_weights=W, max_width=4)
X = np.random.default_rng(1).normal(size=(N, F)).astype(np.float32)


def _segment_sum_dequantized(packed, s=S, r=R, w=W, n=N):
    x = dequantize(packed)
    return jax.ops.segment_sum(jnp.asarray(w)[:, None] * x[jnp.asarray(s)], jnp.asarray(r), num_segments=n)


def _close(a, b):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-5)


def test_fixture_exercises_every_path():
    assert LAYOUT.num_tail >= 1 and LAYOUT.max_degree == 40
    assert len(LAYOUT.buckets) >= 3
    assert (np.bincount(R, minlength=N) == 0).any()


@pytest.mark.parametrize("bits", [1, 2, 4, 8])
@pytest.mark.parametrize("signed", [False, True])
def test_reference_equals_float_segment_sum_of_dequantized(bits, signed):
    p = quantize_and_pack(X, bits, signed=signed)
    _close(packed_aggregate_reference(p, LAYOUT), _segment_sum_dequantized(p))


@pytest.mark.parametrize("bits", [1, 2, 4, 8])
@pytest.mark.parametrize("signed", [False, True])
def test_gpu_kernel_matches_reference(bits, signed):
    p = quantize_and_pack(X, bits, signed=signed)
    out = packed_aggregate(p, LAYOUT, backend="pallas_gpu", interpret=True, block_features=32)
    assert out.shape == (N, F) and out.dtype == jnp.float32
    want = packed_aggregate(p, LAYOUT, backend="reference")
    _close(out, want)
    deg = np.bincount(R, minlength=N)
    np.testing.assert_array_equal(np.asarray(out)[deg == 0], 0.0)  # empty rows
    heavy = int(np.argmax(deg))
    _close(np.asarray(out)[heavy], np.asarray(want)[heavy])  # the maximum-degree row (tail path)


@pytest.mark.parametrize("bits, signed", [(1, True), (4, True), (8, False)])  # 2 bits: test_aligned_shapes
def test_tpu_kernel_matches_reference(bits, signed):
    p = quantize_and_pack(X, bits, signed=signed)
    out = packed_aggregate(p, LAYOUT, backend="pallas_tpu", interpret=True)
    _close(out, packed_aggregate(p, LAYOUT, backend="reference"))


@pytest.mark.parametrize("backend, bits", [("pallas_gpu", 4), ("pallas_tpu", 2)])
def test_aligned_shapes(backend, bits):
    n, f = 64, 64
    s, r, w = _graph(seed=3, n=n, max_deg=4, heavy=((0, 20),))
    lay = build_ell_layout(s, r, n, edge_weights=w, max_width=4, row_multiple=16)
    p = quantize_and_pack(np.random.default_rng(2).normal(size=(n, f)).astype(np.float32), bits, signed=False)
    out = packed_aggregate(p, lay, backend=backend, interpret=True, block_rows=16)
    _close(out, _segment_sum_dequantized(p, s, r, w, n))


@settings(max_examples=3, deadline=None)
@given(
    n=st.integers(1, 30),
    e=st.integers(0, 90),
    f=st.integers(1, 70),
    bits=st.sampled_from([1, 2, 4, 8]),
    signed=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_gpu_kernel_random_graphs(n, e, f, bits, signed, seed):
    rng = np.random.default_rng(seed)
    s = rng.integers(0, n, size=e)
    r = (rng.pareto(1.0, size=e) * 2).astype(np.int64) % n  # hubs
    w = rng.normal(size=e).astype(np.float32)
    lay = build_ell_layout(s, r, n, edge_weights=w, max_width=4)
    p = quantize_and_pack(rng.normal(size=(n, f)).astype(np.float32), bits, signed=signed)
    out = packed_aggregate(p, lay, backend="pallas_gpu", interpret=True)
    _close(out, _segment_sum_dequantized(p, s, r, w, n))


def _assert_requant_close(q, want_float, out_bits, out_signed):
    assert isinstance(q, PackedMatrix)
    assert (q.bits, q.signed, q.num_features) == (out_bits, out_signed, F)
    ref = quantize_and_pack(want_float, out_bits, signed=out_signed)
    _close(q.scale, ref.scale)
    _close(q.zero_point, ref.zero_point)
    got_codes = np.asarray(unpack(q.words, out_bits, out_signed, F))
    ref_codes = np.asarray(unpack(ref.words, out_bits, out_signed, F))
    # float32 sums in another order may flip a rounding at a half step: at most one code, rarely
    assert np.abs(got_codes - ref_codes).max() <= 1
    assert (got_codes != ref_codes).mean() < 0.01


@pytest.mark.parametrize("out_bits, out_signed", [(1, True), (2, False), (8, True)])
def test_gpu_kernel_requantizes_output(out_bits, out_signed):
    p = quantize_and_pack(X, 4, signed=True)
    q = packed_aggregate(p, LAYOUT, backend="pallas_gpu", interpret=True, out_bits=out_bits, out_signed=out_signed)
    _assert_requant_close(q, packed_aggregate(p, LAYOUT, backend="reference"), out_bits, out_signed)
    qr = packed_aggregate(p, LAYOUT, backend="reference", out_bits=out_bits, out_signed=out_signed)
    assert qr.words.shape == q.words.shape


_SI, _RI, _WI = _graph(seed=4, weights="int")
INT_LAYOUT = build_ell_layout(_SI, _RI, N, edge_weights=_WI, max_width=4)


@pytest.mark.parametrize("bits, signed", [(1, True), (4, False), (8, True)])
def test_int32_accumulation_with_integer_weights(bits, signed):
    p = quantize_and_pack(X, bits, signed=signed, granularity="tensor")
    want = packed_aggregate(p, INT_LAYOUT, backend="reference")  # float32 path
    ref = packed_aggregate(p, INT_LAYOUT, backend="reference", accumulate="int32")
    _close(ref, want)
    _close(packed_aggregate(p, INT_LAYOUT, backend="pallas_gpu", interpret=True, accumulate="int32"), ref)


def test_tpu_int32_accumulation_and_requantization():
    p = quantize_and_pack(X, 4, signed=False, granularity="tensor")
    ref = packed_aggregate(p, INT_LAYOUT, backend="reference", accumulate="int32")
    q = packed_aggregate(p, INT_LAYOUT, backend="pallas_tpu", interpret=True, accumulate="int32", out_bits=4)
    _assert_requant_close(q, ref, 4, True)


def test_int32_accumulation_with_quantized_weights():
    p = quantize_and_pack(X, 4, signed=True, granularity="tensor")
    out = packed_aggregate(p, LAYOUT, backend="pallas_gpu", interpret=True, accumulate="int32", weight_bits=8)
    # equals the float path with the weights rounded to 8-bit per-tensor levels
    s_w = float(np.abs(W).max()) / 127
    wq = (np.clip(np.floor(W / s_w + 0.5), -127, 127) * s_w).astype(np.float32)
    _close(out, _segment_sum_dequantized(p, w=wq))
    assert np.abs(np.asarray(out) - np.asarray(_segment_sum_dequantized(p))).max() > 0  # weights were rounded


def test_int32_path_with_requantized_output():
    p = quantize_and_pack(X, 8, signed=False, granularity="tensor")
    q = packed_aggregate(p, INT_LAYOUT, backend="pallas_gpu", interpret=True, accumulate="int32", out_bits=8)
    _assert_requant_close(q, packed_aggregate(p, INT_LAYOUT, backend="reference"), 8, True)


def test_int32_overflow_is_refused():
    s = np.arange(300) % 20
    r = np.zeros(300, np.int64)  # one node of degree 300
    lay = build_ell_layout(s, r, 20, edge_weights=np.linspace(-1, 1, 300), max_width=64)
    p = quantize_and_pack(np.ones((20, 8), np.float32), 8, signed=False, granularity="tensor")
    assert int32_overflow_bound(8, False, 300, 32767) == 300 * 255 * 32767 > 2**31 - 1
    with pytest.raises(ValueError, match=r"overflow: max_degree 300 \* max\|code\| 255 \* max\|w_int\| 32767") as e:
        packed_aggregate(p, lay, backend="reference", accumulate="int32", weight_bits=16)
    assert e.value.field == "accumulate"
    out = packed_aggregate(p, lay, backend="reference", accumulate="int32", weight_bits=8)  # 300*255*127 fits
    assert out.shape == (20, 8)


@pytest.mark.parametrize(
    "kwargs, granularity, field",
    [
        (dict(accumulate="int32"), "row", "accumulate"),  # needs a per-tensor scale
        (dict(accumulate="int32"), "tensor", "weight_bits"),  # float weights need weight_bits
        (dict(accumulate="int32", weight_bits=40), "tensor", "weight_bits"),
        (dict(weight_bits=8), "tensor", "weight_bits"),
        (dict(accumulate="int64"), "tensor", "accumulate"),
    ],
)
def test_int32_argument_errors(kwargs, granularity, field):
    p = quantize_and_pack(X, 4, signed=True, granularity=granularity)
    with pytest.raises(ConfigError) as e:
        packed_aggregate(p, LAYOUT, backend="reference", **kwargs)
    assert e.value.field == field


def _with(p, **changes):
    return p._replace(**changes)


P4 = quantize_and_pack(X, 4, signed=True)


@pytest.mark.parametrize(
    "packed, layout, kwargs, field, message",
    [
        (_with(P4, words=P4.words[:, :3]), LAYOUT, {}, "packed.words",
         "expected uint32 (45, 5) (num_features=37 at 4 bits), got uint32 (45, 3)"),
        (_with(P4, words=P4.words.astype(jnp.int32)), LAYOUT, {}, "packed.words", "got int32 (45, 5)"),
        (_with(P4, scale=P4.scale[:, 0]), LAYOUT, {}, "packed.scale", "expected float32 (45, 1)"),
        (_with(P4, zero_point=P4.zero_point[:40]), LAYOUT, {}, "packed.zero_point", "got float32 (40, 1)"),
        (_with(P4, bits=3), LAYOUT, {}, "packed.bits", "got 3"),
        (P4.words, LAYOUT, {}, "packed", "expected a PackedMatrix"),
        (P4, "layout", {}, "layout", "expected an EllLayout"),
        (P4, build_ell_layout(S, R, N, num_sources=50), {}, "layout.num_sources", "expected 45"),
        (P4, LAYOUT._replace(gather_index=LAYOUT.gather_index[:10]), {}, "layout.gather_index", "got int32 (10,)"),
        (P4, LAYOUT, dict(out_bits=3), "out_bits", "got 3"),
        (P4, LAYOUT, dict(backend="cuda"), "backend", "'cuda'"),
        (P4, LAYOUT, dict(backend="pallas_gpu", block_rows=12), "block_rows", "power of two"),
        (P4, LAYOUT, dict(backend="pallas_tpu", block_rows=12), "block_rows", "multiple of 8"),
        (P4, LAYOUT, dict(backend="pallas_gpu", block_features=48), "block_features", "power of two"),
        (P4, LAYOUT, dict(backend="pallas_gpu", interpret=False), "interpret", "interpret=True"),
    ],
)
def test_argument_errors_name_the_argument(packed, layout, kwargs, field, message):
    if field == "interpret" and jax.default_backend() != "cpu":
        pytest.skip("only refused where no GPU is present")
    with pytest.raises(ValueError, match=None) as e:
        packed_aggregate(packed, layout, **kwargs)
    assert isinstance(e.value, ConfigError) and e.value.field == field
    assert message in str(e.value)


def test_mixed_widths_one_launch_per_width():
    nb = np.random.default_rng(5).choice([2, 8], size=N)
    m = pack_mixed(X, nb, signed=True)
    lays = build_mixed_layouts(S, R, N, m, edge_weights=W, max_width=4)
    want = jax.ops.segment_sum(jnp.asarray(W)[:, None] * dequantize_mixed(m)[jnp.asarray(S)], jnp.asarray(R),
                               num_segments=N)
    _close(mixed_packed_aggregate(m, lays, backend="reference"), want)
    _close(mixed_packed_aggregate(m, lays, backend="pallas_gpu", interpret=True), want)
    q = mixed_packed_aggregate(m, lays, backend="reference", out_bits=4)
    assert isinstance(q, PackedMatrix) and q.bits == 4
    with pytest.raises(ConfigError, match="one per width group"):
        mixed_packed_aggregate(m, lays[:1])


def test_wrapper_is_usable_inside_jit_and_auto_backend():
    p = quantize_and_pack(X, 2, signed=True)
    f = jax.jit(lambda q, l: packed_aggregate(q, l) * 2.0)
    _close(f(p, LAYOUT), 2.0 * np.asarray(_segment_sum_dequantized(p)))
