"""Observers: running statistics, training-only updates, protected rows, and state under jit."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from lpgnas.quant import (
    AlphaQuantizer,
    QuantContext,
    QuantSpec,
    QuantStat,
    UniformQuantizer,
)
from lpgnas.quant._observers import fold_step, percentile_range, rowavg_range, sample_positions


def _q(observer, *, bits=8, shape=(6, 4), granularity="tensor", method="affine", signed=False):
    spec = QuantSpec(method, bits, signed=signed, granularity=granularity, observer=observer)
    return UniformQuantizer(spec, kind="node", shape=shape, rngs=nnx.Rngs(0))


def _x(lo, hi, shape=(6, 4)):
    x = np.zeros(shape, np.float32)
    x[0, 0], x[1, 1] = lo, hi
    return jnp.asarray(x)


@pytest.mark.parametrize(
    "observer, expected_lo, expected_hi",
    [
        ("minmax", -3.0, 4.0),  # min(-1, -3), max(2, 4)
        ("ema", -1.0 + 0.01 * (-3.0 + 1.0), 2.0 + 0.01 * (4.0 - 2.0)),  # first copies, then EMA
    ],
)
def test_running_observers(observer, expected_lo, expected_hi):
    q = _q(observer)
    q(_x(-1.0, 2.0), QuantContext(training=True))
    q(_x(-3.0, 4.0), QuantContext(training=True))
    assert float(q.lo[...]) == pytest.approx(expected_lo)
    assert float(q.hi[...]) == pytest.approx(expected_hi)
    assert int(q.count[...]) == 2


def test_observer_updates_only_in_training():
    q = _q("minmax")
    q(_x(-1.0, 2.0), QuantContext(training=True))
    before = {k: np.asarray(v) for k, v in q.state().items()}
    y = q(_x(-50.0, 70.0), QuantContext(training=False))
    after = {k: np.asarray(v) for k, v in q.state().items()}
    for k in before:
        np.testing.assert_array_equal(before[k], after[k])
    # evaluation clips to the range seen in training
    assert float(jnp.max(y)) <= 2.0 + 1e-6 and float(jnp.min(y)) >= -1.0 - 1e-6


def test_protected_rows_bypass_and_do_not_feed_the_observer():
    q = _q("minmax", bits=2)
    x = _x(-1.0, 2.0).at[2, 2].set(0.4)  # 0.4 is not on the 2-bit grid of [-1, 2]
    x = x.at[5].set(jnp.asarray([100.0, -100.0, 0.123, 7.7]))
    protect = jnp.asarray([False] * 5 + [True])
    y = q(x, QuantContext(training=True, protect=protect))
    assert float(q.lo[...]) == -1.0 and float(q.hi[...]) == 2.0
    np.testing.assert_array_equal(np.asarray(y[5]), np.asarray(x[5]))  # kept in full precision
    assert not np.array_equal(np.asarray(y[:5]), np.asarray(x[:5]))
    # at evaluation every row is quantised (protect is ignored)
    y_eval = q(x, QuantContext(training=False, protect=protect))
    assert float(jnp.max(y_eval[5])) <= 2.0 + 1e-6


def test_all_rows_protected_leaves_statistics_untouched():
    q = _q("ema")
    q(_x(-1.0, 2.0), QuantContext(training=True))
    q(_x(-9.0, 9.0), QuantContext(training=True, protect=jnp.ones((6,), bool)))
    assert float(q.lo[...]) == -1.0 and float(q.hi[...]) == 2.0 and int(q.count[...]) == 1


def test_column_granularity_statistics():
    q = _q("minmax", granularity="column")
    x = jnp.asarray(np.arange(24, dtype=np.float32).reshape(6, 4) - 10.0)
    q(x, QuantContext(training=True))
    np.testing.assert_array_equal(np.asarray(q.lo[...]), [[-10.0, -9.0, -8.0, -7.0]])
    np.testing.assert_array_equal(np.asarray(q.hi[...]), [[10.0, 11.0, 12.0, 13.0]])


def test_percentile_small_tensor_is_nearest_rank():
    x = jnp.arange(1000, dtype=jnp.float32).reshape(100, 10)
    lo, hi, ok = percentile_range(x, None, 0.01, jax.random.key(0))
    assert bool(ok) and float(lo) == 9.0 and float(hi) == 990.0  # floor(0.01*999), ceil(0.99*999)
    valid = jnp.arange(100) >= 50  # rows 0..49 protected
    lo, hi, _ = percentile_range(x, valid, 0.0, jax.random.key(0))
    assert float(lo) == 500.0 and float(hi) == 999.0


def test_percentile_large_tensor_uses_a_sample_close_to_the_true_quantile():
    x = jax.random.normal(jax.random.key(1), (2708, 1433))
    lo, hi, _ = percentile_range(x, None, 0.01, jax.random.key(2), max_samples=4096)
    # N(0, 1) 1% / 99% quantiles are -/+2.326; a 4096-sample estimate is within ~0.1
    assert float(lo) == pytest.approx(-2.326, abs=0.15)
    assert float(hi) == pytest.approx(2.326, abs=0.15)


def test_dq_observer_ignores_outliers():
    # INT4 -> percentile 0.01: the 1% tail (here 3 outliers of 1000) is cut off
    q = UniformQuantizer(QuantSpec("dq", 4, signed=False), kind="node", shape=(100, 10), rngs=nnx.Rngs(0))
    x = jnp.asarray(np.linspace(-1, 1, 1000, dtype=np.float32).reshape(100, 10))
    x = x.at[0, :3].set(1e6)
    q(x, QuantContext(training=True))
    assert float(q.hi[...]) <= 1.0
    assert float(q.lo[...]) == pytest.approx(-0.98, abs=0.01)


def test_rowavg_observer_hand_value():
    x = jnp.asarray([[0.0, 4.0], [-2.0, 2.0], [-100.0, 100.0]])
    lo, hi, ok = rowavg_range(x, jnp.asarray([True, True, False]))
    assert bool(ok) and float(lo) == -1.0 and float(hi) == 3.0


def test_stats_update_under_jax_jit_with_split_merge():
    q = _q("minmax")
    graphdef, state = nnx.split(q)

    @jax.jit
    def step(state, x):
        m = nnx.merge(graphdef, state)
        y = m(x, QuantContext(training=True))
        return y, nnx.state(m)

    _, state = step(state, _x(-1.0, 2.0))
    _, state = step(state, _x(-3.0, 1.0))
    nnx.update(q, state)
    assert float(q.lo[...]) == -3.0 and float(q.hi[...]) == 2.0 and int(q.count[...]) == 2


def test_stats_and_lazy_params_under_nnx_jit_training_step():
    class Model(nnx.Module):
        def __init__(self):
            self.w = nnx.Param(jnp.ones((4, 3)))
            self.qx = AlphaQuantizer(QuantSpec("alpha", 4, signed=False), kind="node", shape=(6, 4))

        def __call__(self, x, training):
            return self.qx(x, QuantContext(training)) @ self.w[...]

    model = Model()
    opt = nnx.Optimizer(model, optax.adam(1e-2), wrt=nnx.Param)

    @nnx.jit
    def train_step(model, opt, x):
        loss, grads = nnx.value_and_grad(lambda m: jnp.sum(m(x, True) ** 2))(model)
        with jax.numpy_dtype_promotion("standard"):  # optax's Adam mixes float and int32
            opt.update(model, grads)
        return loss

    x = jax.random.normal(jax.random.key(0), (6, 4))
    train_step(model, opt, x)
    assert int(model.qx.count[...]) == 1
    alpha0 = float(model.qx.alpha[...])
    assert 0.1 <= alpha0 <= 1.0  # grid-search initialisation was written back
    for _ in range(3):
        train_step(model, opt, x)
    assert int(model.qx.count[...]) == 4
    assert float(model.qx.alpha[...]) != alpha0  # and then trained by the optimiser
    # statistics are not parameters, alpha is
    stat_names = {path[-1] for path, _ in nnx.to_flat_state(nnx.state(model, QuantStat))}
    param_names = {path[-1] for path, _ in nnx.to_flat_state(nnx.state(model, nnx.Param))}
    assert stat_names == {"lo", "hi", "count"} and "alpha" in param_names


@pytest.mark.parametrize("size, num", [(10, 4096), (212224, 4096), (7, 3), (1, 5)])
def test_sample_positions_in_range_deterministic_and_spread(size, num):
    k = jax.random.key(3)
    a = np.asarray(sample_positions(k, size, num))
    assert a.dtype == np.int32 and a.shape == (num,) and a.min() >= 0 and a.max() < size
    np.testing.assert_array_equal(a, np.asarray(sample_positions(jax.random.key_data(k), size, num)))
    b = np.asarray(sample_positions(jax.random.key(4), size, num))
    if size > 1:
        assert not np.array_equal(a, b)  # another key, other positions
    if num >= 16 * size:  # roughly uniform: every position drawn about num / size times
        counts = np.bincount(a, minlength=size)
        assert counts.min() > 0.5 * num / size and counts.max() < 1.5 * num / size


def test_fold_step_changes_the_sample_every_step_and_is_pure():
    words = jax.random.key_data(jax.random.key(0))
    draws = [np.asarray(sample_positions(fold_step(words, jnp.asarray(t)), 100000, 64)) for t in range(4)]
    assert all(not np.array_equal(draws[i], draws[j]) for i in range(4) for j in range(i + 1, 4))
    np.testing.assert_array_equal(draws[2], np.asarray(sample_positions(fold_step(words, jnp.asarray(2)), 100000, 64)))


@pytest.mark.parametrize("max_samples, tol", [(4096, 0.15), (1024, 0.3)])
def test_percentile_spec_max_samples_bounds_the_sample(max_samples, tol):
    """The spec's sub-sample size is what the observer draws (smaller: coarser estimate)."""
    q = UniformQuantizer(QuantSpec("dq", 4, signed=False, max_samples=max_samples), kind="node",
                         shape=(4000, 50), rngs=nnx.Rngs(0))
    assert q.plan.max_samples == max_samples
    x = jax.random.normal(jax.random.key(5), (4000, 50))
    q(x, QuantContext(training=True))
    assert float(q.lo[...]) == pytest.approx(-2.326, abs=tol)
    assert float(q.hi[...]) == pytest.approx(2.326, abs=tol)
    lo, hi, _ = percentile_range(x, None, 0.01, jax.random.key(0), max_samples)
    assert float(lo) == pytest.approx(-2.326, abs=tol) and float(hi) == pytest.approx(2.326, abs=tol)


@pytest.mark.parametrize("protect", [False, True])
def test_percentile_compiles_to_top_k_not_a_sort(protect):
    """Both tails from XLA's TopK (a full sort of the sample is ~30x slower on CPU), with or without
    protected rows (a constant rank used to defeat the TopK rewrite)."""
    x = jax.random.normal(jax.random.key(0), (3000, 16))
    valid = (jnp.arange(3000) % 5 != 0) if protect else None
    text = jax.jit(lambda v: percentile_range(v, valid, 0.01, jax.random.key(1))).lower(x).compile().as_text()
    assert " sort(" not in text
