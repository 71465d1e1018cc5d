"""Fake-quantisation primitives: forward values, hand-derived gradients, and the exact integer path."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from hypothesis import given
from hypothesis import strategies as st

from lpgnas.quant import (
    QuantContext,
    QuantSpec,
    a2q_local_fake_quant,
    a2q_row_error,
    dequantize,
    fake_quant,
    make_plan,
    quant_apply,
    quant_init,
    quant_to_integer,
    round_ste,
    scale_grad,
    sign_fake_quant,
)

X = jnp.asarray([0.3, 1.26, -5.0, 10.0, -0.74], jnp.float32)


@pytest.mark.parametrize(
    "scale, zp, qmin, qmax, expected",
    [
        # v = x / s = [0.6, 2.52, -10, 20, -1.48] -> round [1, 3, -10, 20, -1] -> clip [-4, 3]
        (0.5, 0.0, -4, 3, [0.5, 1.5, -2.0, 1.5, -0.5]),
        # unsigned with zero point 2: codes clip(round(v) + 2, 0, 7) = [3, 5, 0, 7, 1]
        (0.5, 2.0, 0, 7, [0.5, 1.5, -1.0, 2.5, -0.5]),
        # step 1: round half to even on 0.3 -> 0, 1.26 -> 1, -0.74 -> -1
        (1.0, 0.0, -128, 127, [0.0, 1.0, -5.0, 10.0, -1.0]),
    ],
)
def test_fake_quant_forward(scale, zp, qmin, qmax, expected):
    y = fake_quant(X, scale, zp, qmin, qmax)
    np.testing.assert_allclose(np.asarray(y), expected, rtol=0, atol=1e-7)


@pytest.mark.parametrize(
    "backward, expected",
    [("ste", [1.0, 1.0, 1.0, 1.0, 1.0]), ("clip", [1.0, 1.0, 0.0, 0.0, 1.0])],
)
def test_fake_quant_input_gradient(backward, expected):
    g = jax.grad(lambda x: jnp.sum(fake_quant(x, 0.5, 0.0, -4, 3, backward)))(X)
    np.testing.assert_array_equal(np.asarray(g), expected)


def test_fake_quant_parameter_gradients_hand_derived():
    # v = [0.6, 2.52, -10, 20, -1.48]; inside: round(v) - v = [0.4, 0.48, ., ., 0.48];
    # below (x=-5): qmin - zp = -4; above (x=10): qmax - zp = 3.
    gs = jax.grad(lambda s: jnp.sum(fake_quant(X, s, 0.0, -4, 3)))(jnp.float32(0.5))
    assert float(gs) == pytest.approx(0.4 + 0.48 - 4 + 3 + 0.48, abs=1e-5)
    # weighted upstream gradient: only the clipped entries feed qmin / qmax / zero point
    ct = jnp.asarray([1.0, 2.0, 3.0, 4.0, 5.0])
    f = lambda s, z, lo, hi: jnp.sum(ct * fake_quant(X, s, z, lo, hi))  # noqa: E731
    _, gz, glo, ghi = jax.grad(f, argnums=(0, 1, 2, 3))(*(jnp.float32(v) for v in (0.5, 0.0, -4.0, 3.0)))
    assert float(glo) == pytest.approx(3 * 0.5)
    assert float(ghi) == pytest.approx(4 * 0.5)
    assert float(gz) == pytest.approx(-(3 + 4) * 0.5)


def test_per_row_scale_gradient_is_reduced_to_its_shape():
    x = jnp.asarray([[0.3, 1.26], [-5.0, 0.2]], jnp.float32)
    s = jnp.asarray([[0.5], [1.0]], jnp.float32)
    g = jax.grad(lambda s: jnp.sum(fake_quant(x, s, 0.0, -4, 3)))(s)
    # row 0: v = [0.6, 2.52] -> 0.4 + 0.48; row 1: v = [-5, 0.2] -> (-4) + (0 - 0.2)
    np.testing.assert_allclose(np.asarray(g), [[0.88], [-4.2]], atol=1e-5)


def test_round_ste_and_scale_grad():
    assert float(jax.grad(lambda v: round_ste(v) * 3.0)(jnp.float32(1.3))) == 3.0
    x = jnp.float32(0.123456789)
    assert scale_grad(x, 0.25) == x  # forward untouched, bit for bit
    assert float(jax.grad(lambda v: 2.0 * scale_grad(v, 0.25))(x)) == 0.5


@pytest.mark.parametrize(
    "ternary, backward, expected_y, expected_g",
    [
        # binary scale 2: codes sign(x) with sign(0) = +1
        (False, "ste", [2.0, -2.0, 2.0, -2.0], [1.0, 1.0, 1.0, 1.0]),
        (False, "clip", [2.0, -2.0, 2.0, -2.0], [1.0, 1.0, 1.0, 0.0]),
        # ternary threshold 0.5
        (True, "ste", [2.0, 0.0, 0.0, -2.0], [1.0, 1.0, 1.0, 1.0]),
        (True, "clip", [2.0, 0.0, 0.0, -2.0], [1.0, 1.0, 1.0, 0.0]),
    ],
)
def test_sign_fake_quant(ternary, backward, expected_y, expected_g):
    x = jnp.asarray([1.0, -0.3, 0.0, -3.0], jnp.float32)
    f = lambda x: sign_fake_quant(x, 2.0, 0.5, ternary=ternary, backward=backward)  # noqa: E731
    np.testing.assert_array_equal(np.asarray(f(x)), expected_y)
    np.testing.assert_array_equal(np.asarray(jax.grad(lambda x: jnp.sum(f(x)))(x)), expected_g)


def test_lsq_step_gradient_is_scaled_lsq_gradient():
    spec = QuantSpec("lsq", 3, signed=True)  # codes [-4, 3]
    x = jnp.asarray([[0.3, 1.26, -5.0, 10.0]], jnp.float32)
    plan = make_plan(spec, "weight", x.shape)
    state, params = quant_init(plan, jax.random.key(0))
    assert params == {"step"}
    state["step"] = jnp.float32(0.5)

    def loss(step):
        y, _ = quant_apply(plan, {"step": step}, x, QuantContext(training=True))
        return jnp.sum(y)

    g = jax.grad(loss)(state["step"])
    lsq = 0.4 + 0.48 - 4 + 3  # hand-derived LSQ gradient (see above)
    scale = 1.0 / np.sqrt(4 * 3)  # g = 1 / sqrt(numel * Qp)
    assert float(g) == pytest.approx(lsq * scale, rel=1e-5)
    # clipped STE by default: no gradient to x outside the code range
    gx = jax.grad(lambda x: jnp.sum(quant_apply(plan, state, x, QuantContext(True))[0]))(x)
    np.testing.assert_array_equal(np.asarray(gx), [[1.0, 1.0, 0.0, 0.0]])


def test_lsq_initialises_step_from_data_on_first_training_call():
    spec = QuantSpec("lsq", 4, signed=True)
    x = jnp.asarray([[1.0, -2.0], [3.0, -4.0]], jnp.float32)
    plan = make_plan(spec, "node", x.shape)
    state, _ = quant_init(plan, jax.random.key(0))
    _, new = quant_apply(plan, state, x, QuantContext(training=True))
    assert float(new["step"]) == pytest.approx(2 * 2.5 / np.sqrt(7))
    _, same = quant_apply(plan, state, x, QuantContext(training=False))
    assert same["step"] is state["step"]  # evaluation never writes


def test_a2q_local_gradient_hand_derived():
    # row 0: x=[0.9,-0.2], s=0.5, b=3 (codes [-4,3]): v=[1.8,-0.4] inside, x_hat=[1,0]
    #   dE/ds = mean(-sign(x - x_hat) * (round(v) - v)) = mean(0.2, 0.4) = 0.3; dE/db = 0
    # row 1: x=[5,0]: 5 clips at qmax=3 -> x_hat=1.5: dE/ds = mean(-3, 0) = -1.5,
    #   dE/db = mean(-s * d(2^(b-1) - 1)/db, 0) = -0.5 * ln2 * 4 / 2
    x = jnp.asarray([[0.9, -0.2], [5.0, 0.0]], jnp.float32)
    s = jnp.full((2, 1), 0.5, jnp.float32)
    b = jnp.full((2, 1), 3.0, jnp.float32)

    def loss(x, s, b):  # the upstream gradient (123) must not reach s or b
        return 123.0 * jnp.sum(a2q_local_fake_quant(x, s, b, signed=True, backward="clip"))

    gx, gs, gb = jax.grad(loss, argnums=(0, 1, 2))(x, s, b)
    np.testing.assert_allclose(np.asarray(gs), [[0.3], [-1.5]], atol=1e-5)
    np.testing.assert_allclose(np.asarray(gb), [[0.0], [-0.5 * np.log(2) * 4 / 2]], atol=1e-5)
    np.testing.assert_array_equal(np.asarray(gx), [[123.0, 123.0], [0.0, 123.0]])


# ---------------------------------------------------------------------------------------------
# the integer path is exact


_SHAPES = [(7,), (5, 3), (16, 8)]
_METHODS = ["fixed", "affine", "lsq", "alpha", "binary", "ternary", "a2q", "dq", "sgquant"]


def _spec_for(method, bits, signed, granularity):
    if method == "binary":
        bits = 1
    if method == "ternary":
        bits = 2
    if method in ("dq", "sgquant"):
        granularity = "tensor"
    extra = {"min_bits": 1.0, "max_bits": 16.0} if method == "a2q" else {}
    return QuantSpec(method, bits, signed=signed, granularity=granularity, **extra)


@given(
    method=st.sampled_from(_METHODS),
    bits=st.sampled_from([1, 2, 3, 4, 5, 6, 7, 8, 16]),
    signed=st.booleans(),
    granularity=st.sampled_from(["tensor", "row", "column"]),
    shape=st.sampled_from(_SHAPES),
    kind=st.sampled_from(["weight", "node"]),
    seed=st.integers(0, 2**16),
    log_range=st.floats(-3.0, 3.0),
)
def test_integer_path_is_bitwise_exact(method, bits, signed, granularity, shape, kind, seed, log_range):
    spec = _spec_for(method, bits, signed, granularity)
    plan = make_plan(spec, kind, shape)
    state, _ = quant_init(plan, jax.random.key(seed))
    k1, k2 = jax.random.split(jax.random.key(seed))
    x = jax.random.normal(k1, shape, jnp.float32) * jnp.float32(10.0**log_range)
    # one training call first, so that running statistics and learned parameters are set
    _, state = quant_apply(plan, state, jax.random.normal(k2, shape, jnp.float32), QuantContext(True))
    y, _ = quant_apply(plan, state, x, QuantContext(False))
    codes, scale, zp = quant_to_integer(plan, state, x)
    assert codes.dtype == jnp.int32 and zp.dtype == jnp.int32
    ref = np.asarray(dequantize(codes, scale, zp))
    np.testing.assert_array_equal(ref.view(np.uint32), np.asarray(y).view(np.uint32))
    if method not in ("binary", "ternary", "a2q", "fixed"):
        span = int(jnp.max(codes) - jnp.min(codes))
        assert span <= 2**bits - 1


def test_integer_path_exact_under_jit_for_a_module():
    from lpgnas.quant import UniformQuantizer

    q = UniformQuantizer(QuantSpec("affine", 5, signed=False), kind="node", shape=(64, 9), rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(3), (64, 9))
    q(x, QuantContext(True))
    y = nnx.jit(lambda q, x: q(x, QuantContext(False)))(q, x)
    it = nnx.jit(lambda q, x: q.to_integer(x))(q, x)
    np.testing.assert_array_equal(np.asarray(dequantize(*it)), np.asarray(y))


@pytest.mark.parametrize("signed", [True, False])
def test_integer_path_exact_with_per_row_topology_bits(signed):
    from lpgnas.quant import DegreeBits

    spec = QuantSpec("sgquant", 16, signed=signed)
    plan = make_plan(spec, "node", (6, 5), DegreeBits((1, 4, 16), (16, 8, 3, 1)))
    state, _ = quant_init(plan, jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (6, 5))
    ctx = QuantContext(False, degree=jnp.asarray([0, 2, 9, 40, 1, 5], jnp.int32))
    _, state = quant_apply(plan, state, x * 2.0, ctx._replace(training=True))
    y, _ = quant_apply(plan, state, x, ctx)
    it = quant_to_integer(plan, state, x, ctx)
    np.testing.assert_array_equal(np.asarray(dequantize(*it)), np.asarray(y))
    levels = [len(np.unique(np.asarray(it.codes[i]))) for i in range(6)]
    assert levels[3] <= 2 and levels[2] <= 8  # 1 and 3 bits


@pytest.mark.parametrize("shape, pshape, signed, row_size", [
    ((30, 8), (30, 1), True, None),
    ((30, 8), (30, 1), False, 50),  # a row-compact tensor averaged over its dense width
    ((40, 5), (1, 1), True, None),  # one (s, b) shared by every row
    ((40,), (1,), False, None),
    ((12, 4), (), True, None),
])
def test_a2q_local_grads_match_autodiff_of_the_row_error(shape, pshape, signed, row_size):
    from lpgnas.quant._a2q import a2q_local_grads

    rng = np.random.default_rng(0)
    x = jnp.asarray(3.0 * rng.normal(size=shape).astype(np.float32))  # many clip below and above
    s = jnp.asarray(rng.uniform(0.05, 0.6, size=pshape).astype(np.float32))
    b = jnp.asarray(rng.uniform(1.0, 6.0, size=pshape).astype(np.float32))
    want = jax.grad(a2q_row_error, argnums=(1, 2))(x, s, b, signed, row_size)
    got = a2q_local_grads(x, s, b, signed, row_size)
    for w, g in zip(want, got):
        assert g.shape == w.shape
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-5, atol=1e-5)
    assert float(jnp.abs(got[1]).sum()) > 0  # clipping happened: the bit-width gradient is live
    if not signed and pshape:  # unsigned codes with a zero point: the code range shifts by -zp
        zp = jnp.asarray(rng.integers(0, 3, size=pshape).astype(np.float32))
        want_z = jax.grad(a2q_row_error, argnums=(1, 2))(x, s, b, signed, row_size, zp)
        got_z = a2q_local_grads(x, s, b, signed, row_size, zp)
        for w, g in zip(want_z, got_z):
            np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-5, atol=1e-5)
        assert not np.allclose(np.asarray(got_z[0]), np.asarray(got[0]))
    via_vjp = jax.grad(lambda s, b: jnp.sum(a2q_local_fake_quant(x, s, b, signed=signed, row_size=row_size)),
                       argnums=(0, 1))(s, b)
    for w, g in zip(want, via_vjp):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-5, atol=1e-5)
