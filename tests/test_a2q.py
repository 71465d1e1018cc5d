"""A2Q: range-relative learned steps, unsigned codes with a zero point, the exactness dead zone, the
Local Gradient through the step's bit-width dependence, and the preset."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from lpgnas.quant import (
    A2QQuantizer,
    QuantConfig,
    QuantContext,
    QuantSpec,
    a2q_local_fake_quant,
    a2q_local_grads,
    a2q_memory_kb,
    a2q_memory_penalty,
    a2q_row_error,
    avg_bits,
)
from lpgnas.quant._methods import make_plan, quant_init, quant_params


def _params(spec, x, *, log_step=0.0, bits=None, training=False):
    plan = make_plan(spec, "node", x.shape)
    state, _ = quant_init(plan, jax.random.key(0))
    state["log_step"] = jnp.full_like(state["log_step"], log_step)
    if bits is not None:
        state["bitwidth"] = jnp.full_like(state["bitwidth"], bits)
    return quant_params(plan, state, x, QuantContext(training))


@pytest.mark.parametrize("signed, bits, log_step, want_step, want_zp", [
    # row [0.5, -2, 1]: signed max|x| / qmax; unsigned (max - min) / qmax and zp = round(2 / s)
    (True, 3, 0.0, 2.0 / 3, 0.0),
    (True, 5, 0.0, 2.0 / 15, 0.0),  # the step follows the bit width
    (True, 3, float(np.log(0.5)), 1.0 / 3, 0.0),  # log_step is a log-ratio to the range step
    (False, 2, 0.0, 3.0 / 3, 2.0),
    (False, 4, 0.0, 3.0 / 15, 10.0),
])
def test_step_is_range_relative_and_zero_point_unsigned_only(signed, bits, log_step, want_step, want_zp):
    x = jnp.asarray([[0.5, -2.0, 1.0]], jnp.float32)
    spec = QuantSpec("a2q", bits, signed=signed, min_bits=1.0, max_bits=8.0)
    qp, _ = _params(spec, jnp.tile(x, (2, 1)), log_step=log_step)
    np.testing.assert_allclose(np.asarray(qp.scale), [[want_step]] * 2, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(qp.zero_point), [[want_zp]] * 2)


@pytest.mark.parametrize("scale", [1.0, 2.0, 1.0 / 0.7])  # evaluation, and dropout's 1 / (1 - p)
def test_unsigned_one_bit_row_of_one_value_is_exact_at_any_scale(scale):
    # a row-normalised bag-of-words row: zeros and one distinct value 1/k
    x = np.zeros((3, 10), np.float32)
    x[0, [1, 4, 7]] = 1.0 / 3
    x[1, [2]] = 1.0
    x[2, :5] = 0.2
    x = jnp.asarray(x * scale)
    q = A2QQuantizer(QuantSpec("a2q", 1, signed=False, min_bits=1.0), kind="node", shape=x.shape)
    y_train = q(x, QuantContext(True))
    y_eval = q(x, QuantContext(False))
    np.testing.assert_array_equal(np.asarray(y_train), np.asarray(x))
    np.testing.assert_array_equal(np.asarray(y_eval), np.asarray(x))
    gs, gb = a2q_local_grads(x, q.step[...], jnp.ones((3, 1)), False)
    assert float(jnp.abs(gs).sum()) == 0.0 and float(jnp.abs(gb).sum()) == 0.0  # exact: no pull


def test_unsigned_codes_keep_negative_values_through_the_zero_point():
    x = jnp.asarray([[-1.0, 0.0, 0.5, 3.0]], jnp.float32)
    spec = QuantSpec("a2q", 3, signed=False, min_bits=1.0)
    q = A2QQuantizer(spec, kind="node", shape=x.shape)
    y = q(x, QuantContext(False))
    step = 4.0 / 7
    assert float(jnp.max(jnp.abs(y - x))) <= step / 2 + 1e-6
    it = q.to_integer(x)
    assert int(it.zero_point.reshape(())) == 2 and int(jnp.min(it.codes)) == 0


def test_grid_values_with_float_noise_get_no_local_gradient():
    # x one float32 ulp off the grid of s (what a step computed from the data can leave): noise
    s = jnp.full((1, 1), 0.6405921, jnp.float32)
    grid = np.arange(-7, 8, dtype=np.float32) * np.float32(0.6405921)
    x = jnp.asarray(np.nextafter(grid, np.float32(np.inf)).reshape(1, -1))
    assert float(jnp.max(jnp.abs(jnp.round(x / s) * s - x))) > 0  # the noise is there
    b = jnp.full((1, 1), 4.0)
    gs, gb = a2q_local_grads(x, s, b, True)
    assert float(gs[0, 0]) == 0.0 and float(gb[0, 0]) == 0.0
    assert float(a2q_row_error(x, s, b, True)) == 0.0


def _signed_a2q_node(seed: int, shape: tuple[int, int]):
    """Normal features of ``shape`` and a fresh signed 3-bit A2Q node quantiser planned for them."""
    x = jnp.asarray(np.random.default_rng(seed).normal(size=shape).astype(np.float32))
    plan = make_plan(QuantSpec("a2q", 3, signed=True), "node", x.shape)
    state, _ = quant_init(plan, jax.random.key(0))
    return x, plan, state


def test_log_step_gradient_is_the_relative_local_gradient():
    x, plan, state = _signed_a2q_node(seed=1, shape=(6, 5))
    state["log_step"] = jnp.full((6, 1), -0.4)

    def scale_of(u):
        return quant_params(plan, {**state, "log_step": u}, x, QuantContext(True))[0].scale

    def loss(u):  # the upstream gradient must not matter
        return 7.0 * jnp.sum(a2q_local_fake_quant(x, scale_of(u), state["bitwidth"], signed=True))

    got = jax.grad(loss)(state["log_step"])
    s = scale_of(state["log_step"])
    want = a2q_local_grads(x, s, state["bitwidth"], True)[0] * s
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-7)
    assert float(jnp.abs(got).sum()) > 0


def test_bit_gradient_sees_the_finer_grid():
    # no clipping at all (range scaling), so only the step's 1 / qmax(b) term can ask for more bits
    x, plan, state = _signed_a2q_node(seed=2, shape=(8, 16))

    def err(b):
        qp, _ = quant_params(plan, {**state, "bitwidth": b}, x, QuantContext(True))
        return jnp.sum(a2q_local_fake_quant(x, qp.scale, qp.bits, signed=True))

    g = jax.grad(err)(state["bitwidth"])
    assert np.all(np.asarray(g) < 0)  # more bits, less error: gradient descent raises b


def test_penalty_takes_bits_from_exact_rows_first():
    # 16 bag-of-words rows (exact at 1 bit) and 16 Gaussian rows; the penalty's budget is 2 bits per row
    rng = np.random.default_rng(3)
    bow = (rng.random((16, 12)) < 0.3).astype(np.float32)
    bow = bow / np.maximum(bow.sum(1, keepdims=True), 1.0)
    gauss = np.abs(rng.normal(size=(16, 12))).astype(np.float32)
    x = jnp.asarray(np.concatenate([bow, gauss]))
    q = A2QQuantizer(QuantSpec("a2q", 3, signed=False, min_bits=1.0), kind="node", shape=x.shape)
    target = 12 * 32 * 2.0 / 8 / 1024
    q(x, QuantContext(True))
    opt = nnx.Optimizer(q, optax.adam(0.05), wrt=nnx.Param)

    @nnx.jit
    def step(q, opt):
        def loss(q):
            return jnp.sum(q(x, QuantContext(True))) * 0.0 + a2q_memory_penalty(q, target, 1e3)

        grads = nnx.grad(loss)(q)
        with jax.numpy_dtype_promotion("standard"):
            opt.update(q, grads)

    for _ in range(60):
        step(q, opt)
    bits = np.asarray(q.bit_widths()).reshape(-1)
    assert np.all(bits[:16] == 1.0)  # exact rows go to 1 bit
    assert bits[16:].mean() > bits[:16].mean() + 1.0  # the error keeps bits on the others
    assert float(avg_bits(q)) < 3.0


def test_preset_unsigned_inputs_and_signed_floor():
    cfg = QuantConfig.preset("a2q")
    inp, agg, w = cfg.spec(0, "input"), cfg.spec(1, "aggregate"), cfg.spec(0, "weight")
    assert (inp.method, inp.signed, inp.bits, inp.min_bits) == ("a2q", False, 2, 1.0)
    assert (agg.method, agg.signed, agg.bits, agg.min_bits) == ("a2q", True, 4, 2.0)
    assert (w.granularity, w.min_bits) == ("column", 2.0)
    assert QuantConfig.from_json(cfg.to_json()) == cfg


def test_clip_and_maximum_with_select_derivatives_match_jax_bit_for_bit():
    # the per-row chain's clip / maximum build jax's max/min derivative coefficients (1, 1/2 on a
    # tie, 0) with selects instead of a division; values and gradients must not change, ties included
    from lpgnas.quant._a2q import _clip_c, _maximum_c

    rng = np.random.default_rng(4)
    b = jnp.asarray(np.concatenate([rng.uniform(0.0, 10.0, 20), [2.0, 8.0, 1.0, 9.0, 5.0]]).astype(np.float32))
    ct = jnp.asarray(rng.normal(size=b.shape).astype(np.float32))
    for got, want in [(lambda v: _clip_c(v, 2.0, 8.0), lambda v: jnp.clip(v, 2.0, 8.0)),
                      (lambda v: _maximum_c(v, 2.0), lambda v: jnp.maximum(v, 2.0))]:
        np.testing.assert_array_equal(np.asarray(got(b)), np.asarray(want(b)))
        g_got = jax.vjp(got, b)[1](ct)[0]
        g_want = jax.vjp(want, b)[1](ct)[0]
        np.testing.assert_array_equal(np.asarray(g_got), np.asarray(g_want))
        assert np.any(np.asarray(g_got) == 0.5 * np.asarray(ct))  # a tie at a bound is in the test
        np.testing.assert_array_equal(np.asarray(jax.jit(jax.grad(lambda v: jnp.sum(got(v) * ct)))(b)),
                                      np.asarray(g_want))


def test_memory_kb_of_a_model_equals_the_sum_over_its_quantisers():
    # a2q_memory_kb sums the widths of quantisers of one shape in one reduction; the memory and its
    # gradient are those of adding each quantiser's memory_kb (weights: none)
    rng = np.random.default_rng(5)
    spec = QuantSpec("a2q", 4, signed=True, min_bits=2.0, max_bits=8.0)
    qs = [A2QQuantizer(spec, kind="node", shape=(30, 5)), A2QQuantizer(spec, kind="node", shape=(30, 7)),
          A2QQuantizer(spec, kind="edge", shape=(1, 3)), A2QQuantizer(spec, kind="weight", shape=(5, 7)),
          A2QQuantizer(spec, kind="node", shape=(30, 2)), A2QQuantizer(spec, kind="node", shape=(12, 4))]
    for q in qs:
        q.bitwidth[...] = jnp.asarray(rng.uniform(1.0, 9.0, q.bitwidth[...].shape).astype(np.float32))

    def one_by_one(qs):
        total = jnp.zeros((), jnp.float32)
        for q in qs:
            total = total + q.memory_kb()
        return total

    got, want = a2q_memory_kb(qs), one_by_one(qs)
    assert float(got) == float(want) > 0
    g_got, g_want = nnx.grad(a2q_memory_kb)(qs), nnx.grad(one_by_one)(qs)
    leaves, want_leaves = jax.tree_util.tree_leaves(g_got), jax.tree_util.tree_leaves(g_want)
    assert len(leaves) == len(want_leaves) and any(float(jnp.abs(g).sum()) > 0 for g in leaves)
    for g, w in zip(leaves, want_leaves):
        np.testing.assert_array_equal(np.asarray(g), np.asarray(w))
    np.testing.assert_allclose(float(a2q_memory_kb(qs, bits=2.0)), sum(float(q.memory_kb(2.0)) for q in qs),
                               rtol=1e-6)


@pytest.mark.parametrize("pshape, signed", [((20, 1), True), ((20, 1), False), ((1, 1), True), ((), True)])
def test_local_fake_quant_is_the_uniform_formula_bit_for_bit(pshape, signed):
    # the row parameters go through an exact copy (a fusion barrier): values and input gradients are
    # those of (clip(round(x / s) + zp, qmin, qmax) - zp) * s
    from lpgnas.quant._core import _dequant, qrange_array, uniform_codes

    rng = np.random.default_rng(6)
    x = jnp.asarray(3.0 * rng.normal(size=(20, 6)).astype(np.float32))
    s = jnp.asarray(rng.uniform(0.05, 0.6, size=pshape).astype(np.float32))
    b = jnp.asarray(rng.uniform(1.0, 6.0, size=pshape).astype(np.float32))
    zp = None if signed else jnp.asarray(rng.integers(0, 3, size=pshape).astype(np.float32))
    qmin, qmax = qrange_array(jnp.round(b), signed)
    z = jnp.zeros_like(s) if zp is None else zp
    want = _dequant(uniform_codes(x, s, z, qmin, qmax), s, z)
    f = jax.jit(lambda x: a2q_local_fake_quant(x, s, b, signed=signed, zero_point=zp))
    np.testing.assert_array_equal(np.asarray(f(x)), np.asarray(want))
    ct = jnp.asarray(rng.normal(size=x.shape).astype(np.float32))
    gx = jax.vjp(f, x)[1](ct)[0]
    pos = x / s + z
    np.testing.assert_array_equal(np.asarray(gx), np.asarray(jnp.where((pos >= qmin) & (pos <= qmax), ct, 0.0)))
