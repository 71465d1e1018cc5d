"""Bit packing: layout of the words, exact round trips, the quantiser, byte counts and mixed widths."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lpgnas.errors import ConfigError
from lpgnas.kernels import (
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


@pytest.mark.parametrize(
    "codes, bits, signed, words",
    [
        ([[1, 2, 3]], 4, False, [[0x321]]),
        ([[1, 0, 1]], 1, False, [[0b101]]),
        ([[-1, -2, 1]], 2, True, [[0b01_10_11]]),
        ([[-1, 0, 1, -128]], 8, True, [[0x800100FF]]),
        ([[15] * 9], 4, False, [[0xFFFFFFFF, 0xF]]),  # unused high codes of the last word stay zero
        ([[1] * 33], 1, False, [[0xFFFFFFFF, 0x1]]),
        ([[-1] * 3], 1, True, [[0b111]]),
    ],
)
def test_pack_is_little_endian_within_the_word(codes, bits, signed, words):
    got = pack(jnp.asarray(codes, jnp.int32), bits, signed)
    assert got.dtype == jnp.uint32
    np.testing.assert_array_equal(np.asarray(got), np.asarray(words, np.uint32))
    np.testing.assert_array_equal(np.asarray(unpack(got, bits, signed, len(codes[0]))), codes)


@settings(max_examples=25, deadline=None)
@given(
    bits=st.sampled_from(SUPPORTED_BITS),
    signed=st.booleans(),
    n=st.sampled_from([1, 3]),
    f=st.sampled_from([1, 5, 16, 31, 32, 33, 70]),  # few shapes: each new one compiles
    seed=st.integers(0, 2**16),
)
def test_pack_unpack_round_trip_is_exact(bits, signed, n, f, seed):
    lo, hi = code_range(bits, signed)
    codes = np.random.default_rng(seed).integers(lo, hi + 1, size=(n, f))
    words = pack(jnp.asarray(codes, jnp.int32), bits, signed)
    assert words.shape == (n, -(-f * bits // 32)) == (n, words_per_row(f, bits))
    np.testing.assert_array_equal(np.asarray(unpack(words, bits, signed, f)), codes)


@settings(max_examples=20, deadline=None)
@given(
    bits=st.sampled_from(SUPPORTED_BITS),
    signed=st.booleans(),
    n=st.sampled_from([1, 4, 6]),
    f=st.sampled_from([1, 7, 40]),
    granularity=st.sampled_from(["row", "tensor", 2]),
    seed=st.integers(0, 2**16),
)
def test_quantize_and_pack_error_within_half_a_step(bits, signed, n, f, granularity, seed):
    x = np.random.default_rng(seed).normal(size=(n, f)).astype(np.float32) * 3.0
    p = quantize_and_pack(x, bits, signed=signed, granularity=granularity)
    assert (p.bits, p.signed, p.num_features) == (bits, signed, f)
    assert p.scale.shape == p.zero_point.shape == (n, 1)
    xh = np.asarray(dequantize(p))
    scale = np.asarray(p.scale)
    if signed and bits == 1:  # binarisation: +-mean|x| of the scale group, by sign
        assert np.all(np.sign(xh) == np.where(x >= 0, 1.0, -1.0))
        np.testing.assert_allclose(np.abs(xh), np.broadcast_to(scale / 2, xh.shape), rtol=1e-6)
    else:
        assert np.all(np.abs(xh - x) <= scale / 2 + 1e-5 * np.abs(x).max())


def test_signed_one_bit_is_mean_abs_binarisation():
    x = np.array([[1.0, -3.0, 2.0, 0.0]], np.float32)
    np.testing.assert_allclose(np.asarray(dequantize(quantize_and_pack(x, 1, signed=True))), [[1.5, -1.5, 1.5, 1.5]])


@pytest.mark.parametrize("bits", SUPPORTED_BITS)
@pytest.mark.parametrize("signed", [False, True])
def test_zero_rows_dequantize_to_zero(bits, signed):
    x = np.zeros((3, 10), np.float32)
    x[1] = np.linspace(-1, 1, 10)
    p = quantize_and_pack(x, bits, signed=signed)
    xh = np.asarray(dequantize(p))
    if not (signed and bits == 1):
        np.testing.assert_array_equal(xh[[0, 2]], 0.0)
    np.testing.assert_array_equal(np.asarray(p.scale)[[0, 2]], 1.0)


def test_granularity_controls_scale_sharing():
    x = np.random.default_rng(0).normal(size=(7, 5)).astype(np.float32) * np.arange(1, 8, dtype=np.float32)[:, None]
    row = np.asarray(quantize_and_pack(x, 4, signed=True, granularity="row").scale)[:, 0]
    tensor = np.asarray(quantize_and_pack(x, 4, signed=True, granularity="tensor").scale)[:, 0]
    block = np.asarray(quantize_and_pack(x, 4, signed=True, granularity=3).scale)[:, 0]
    assert len(set(row.tolist())) == 7
    assert len(set(tensor.tolist())) == 1 and tensor[0] == pytest.approx(np.abs(x).max() / 7)
    np.testing.assert_array_equal(block, np.repeat([block[0], block[3], block[6]], [3, 3, 1]))
    np.testing.assert_allclose(block[0], np.abs(x[:3]).max() / 7, rtol=1e-6)


@pytest.mark.parametrize("bits", SUPPORTED_BITS)
def test_packed_nbytes_counts_device_arrays(bits):
    n, f = 64, 128
    p = quantize_and_pack(jnp.ones((n, f), jnp.float32), bits, signed=False)
    assert isinstance(p.words, jax.Array) and p.words.dtype == jnp.uint32
    assert p.words.nbytes == n * f * bits // 8
    assert packed_nbytes(p) == n * f * bits // 8 + 2 * n * 4  # + float32 scale and zero point per row


def test_int4_matrix_occupies_half_a_byte_per_entry():
    n, f = 1000, 96
    p = quantize_and_pack(jnp.ones((n, f), jnp.float32), 4, signed=True)
    assert packed_nbytes(p) - p.scale.nbytes - p.zero_point.nbytes == n * f // 2


def test_packed_matrix_is_a_pytree_with_static_metadata():
    p = quantize_and_pack(jnp.ones((4, 9), jnp.float32), 2, signed=True, granularity="tensor")
    assert len(jax.tree_util.tree_leaves(p)) == 3
    out = jax.jit(lambda q: q.words.shape[1] * q.bits + q.num_features)(p)
    assert int(out) == words_per_row(9, 2) * 2 + 9
    q = jax.tree_util.tree_map(lambda a: a, p)
    assert isinstance(q, PackedMatrix) and (q.bits, q.signed, q.granularity) == (2, True, "tensor")


def test_pack_mixed_round_trip_matches_per_width_packing():
    rng = np.random.default_rng(1)
    n, f = 23, 19
    x = rng.normal(size=(n, f)).astype(np.float32)
    node_bits = rng.choice([1, 2, 4, 8], size=n)
    node_bits[:4] = [1, 2, 4, 8]
    m = pack_mixed(x, node_bits, signed=True)
    assert isinstance(m, MixedPacked) and m.group_bits == (1, 2, 4, 8) and m.num_rows == n
    perm, inv = np.asarray(m.perm), np.asarray(m.inv_perm)
    np.testing.assert_array_equal(perm[inv], np.arange(n))
    codes = np.asarray(unpack_mixed(m))
    xh = np.asarray(dequantize_mixed(m))
    for b, g in zip(m.group_bits, m.groups):
        rows = np.flatnonzero(node_bits == b)
        alone = quantize_and_pack(x[rows], b, signed=True)
        assert g.bits == b and g.words.shape == (rows.size, words_per_row(f, b))
        np.testing.assert_array_equal(codes[rows], np.asarray(unpack(alone.words, b, True, f)))
        np.testing.assert_allclose(xh[rows], np.asarray(dequantize(alone)), rtol=1e-6)
    assert packed_nbytes(m) == sum(packed_nbytes(g) for g in m.groups) + 2 * n * 4


def test_pack_mixed_with_a_single_width():
    x = np.ones((5, 3), np.float32)
    m = pack_mixed(x, np.full(5, 4), signed=False)
    assert m.group_bits == (4,) and m.offsets == (0, 5)
    np.testing.assert_allclose(np.asarray(dequantize_mixed(m)), x)


@pytest.mark.parametrize(
    "call, field",
    [
        (lambda: pack(jnp.zeros((2, 3), jnp.int32), 3, False), "bits"),
        (lambda: pack(jnp.zeros((2, 3), jnp.float32), 4, False), "codes"),
        (lambda: pack(jnp.zeros((6,), jnp.int32), 4, False), "codes"),
        (lambda: unpack(jnp.zeros((2, 3), jnp.uint32), 4, False, 8), "words"),
        (lambda: unpack(jnp.zeros((2, 1), jnp.int32), 4, False, 8), "words"),
        (lambda: quantize_and_pack(jnp.zeros((2, 3)), 4, signed=True, granularity="col"), "granularity"),
        (lambda: quantize_and_pack(jnp.zeros((2, 3)), 16, signed=True), "bits"),
        (lambda: pack_mixed(jnp.zeros((3, 2)), [4, 3, 4], signed=True), "node_bits"),
        (lambda: pack_mixed(jnp.zeros((3, 2)), [4, 4], signed=True), "node_bits"),
    ],
)
def test_errors_name_the_argument(call, field):
    with pytest.raises(ConfigError) as e:
        call()
    assert e.value.field == field
    assert isinstance(e.value, ValueError)


def test_unpack_error_gives_expected_word_count():
    with pytest.raises(ConfigError, match="expected 1 words per row for num_features=8 at 4 bits, got 3"):
        unpack(jnp.zeros((2, 3), jnp.uint32), 4, False, 8)
