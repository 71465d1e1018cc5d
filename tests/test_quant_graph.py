"""Graph-aware methods: Degree-Quant mask, SGQuant topology bits, A2Q (penalty, NNS)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from lpgnas.quant import (
    A2QQuantizer,
    DegreeBits,
    QuantConfig,
    QuantContext,
    QuantSpec,
    a2q_memory_kb,
    a2q_memory_penalty,
    avg_bits,
    dq_protect_mask,
    dq_sample_mask,
    dq_protect_probability,
    in_degree,
    make_quantizer,
    nns_select,
    sgquant_bits_for_degree,
)

# ---------------------------------------------------------------------------------------------
# Degree-Quant


def test_dq_probability_hand_values():
    deg = jnp.asarray([0, 1, 1, 3], jnp.int32)  # CDF: 1/4, 3/4, 3/4, 1
    p = dq_protect_probability(deg, p_min=0.1, p_max=0.5)
    np.testing.assert_allclose(np.asarray(p), [0.2, 0.4, 0.4, 0.5], atol=1e-6)


def test_in_degree():
    np.testing.assert_array_equal(np.asarray(in_degree(jnp.asarray([0, 0, 2]), 4)), [2, 0, 1, 0])


@pytest.mark.parametrize("p_min, p_max", [(0.0, 0.1), (0.1, 0.2), (0.2, 0.9)])
def test_dq_mask_rate_matches_p_of_degree(p_min, p_max):
    deg = jnp.asarray(np.random.default_rng(0).poisson(4.0, 300), jnp.int32)
    p = dq_protect_probability(deg, p_min=p_min, p_max=p_max)
    draws = 2000
    keys = jax.random.split(jax.random.key(1), draws)
    masks = jax.jit(jax.vmap(lambda k: dq_protect_mask(k, deg, p_min=p_min, p_max=p_max)))(keys)
    rate = jnp.mean(masks.astype(jnp.float32), axis=0)
    tol = 5.0 * np.sqrt(0.25 / draws)  # 5 sigma of a Bernoulli mean
    np.testing.assert_allclose(np.asarray(rate), np.asarray(p), atol=tol)
    # high-degree nodes are protected more often than low-degree ones
    order = np.argsort(np.asarray(deg))
    assert float(jnp.mean(rate[order[-50:]])) >= float(jnp.mean(rate[order[:50]]))
    assert float(jnp.min(p)) >= p_min - 1e-6 and float(jnp.max(p)) == pytest.approx(p_max)


def test_dq_presets_carry_mask_settings():
    assert QuantConfig.preset("dq-int8").dq.p_min == 0.0 and QuantConfig.preset("dq-int8").dq.p_max == 0.1
    assert QuantConfig.preset("dq-int4").dq.p_min == 0.1 and QuantConfig.preset("dq-int4").dq.p_max == 0.2
    assert QuantConfig.preset("dq-int4").spec(0, "aggregate").resolved_percentile() == 0.01
    assert QuantConfig.preset("dq-int8").spec(0, "aggregate").resolved_percentile() == 0.001


# ---------------------------------------------------------------------------------------------
# SGQuant


@pytest.mark.parametrize(
    "degree, bits",
    [(0, 32), (1, 32), (2, 16), (4, 16), (5, 8), (16, 8), (17, 4), (64, 4), (65, 2), (1000, 2), (10**6, 2)],
)
def test_sgquant_degree_to_bits_table(degree, bits):
    assert int(sgquant_bits_for_degree(degree)) == bits
    assert int(DegreeBits.sgquant().lookup(jnp.asarray([degree]))[0]) == bits


def test_sgquant_snaps_to_allowed_set():
    d = np.arange(0, 5000)
    b = sgquant_bits_for_degree(d, allowed=(2, 3, 8, 32))
    assert set(np.unique(b).tolist()) <= {2, 3, 8, 32}
    assert np.all(np.diff(b[2:]) <= 0)  # never more bits for a higher degree


def test_sgquant_rows_get_topology_bits():
    cfg = QuantConfig(
        default=QuantSpec("sgquant", 32, signed=False), degree_bits=DegreeBits((1, 16), (32, 8, 2))
    )
    q = make_quantizer(cfg, 0, "aggregate", kind="node", shape=(3, 64), rngs=nnx.Rngs(0))
    x = jax.random.uniform(jax.random.key(0), (3, 64))
    deg = jnp.asarray([1, 10, 100], jnp.int32)
    q(x, QuantContext(True, degree=deg))
    y = q(x, QuantContext(False, degree=deg))
    np.testing.assert_array_equal(np.asarray(y[0]), np.asarray(x[0]))  # d <= 1: 32 bits, untouched
    assert len(np.unique(np.asarray(y[1]))) > 4  # 8 bits
    assert len(np.unique(np.asarray(y[2]))) <= 4  # 2 bits
    assert float(avg_bits(q, deg)) == pytest.approx((32 + 8 + 2) / 3)


def test_sgquant_combines_component_layer_and_topology_bits():
    cfg = QuantConfig.preset("sgquant")
    assert cfg.spec(1, "attention").bits == 4 and cfg.spec(1, "message").bits == 8
    q = make_quantizer(cfg, 0, "message", kind="edge", shape=(5, 8), rngs=nnx.Rngs(0))
    deg = jnp.asarray([0, 3, 8, 50, 300], jnp.int32)
    # min(component bits 8, topology bits [32, 16, 8, 4, 2])
    assert float(avg_bits(q, deg)) == pytest.approx((8 + 8 + 8 + 4 + 2) / 5)


# ---------------------------------------------------------------------------------------------
# A2Q


def test_nns_picks_the_nearest_pool_entry():
    pool = jnp.asarray([0.5, 4.0, 1.0, 10.0])
    query = jnp.asarray([0.0, 0.7, 0.8, 2.4, 2.6, 7.1, 100.0])
    np.testing.assert_array_equal(np.asarray(nns_select(query, pool)), [0, 0, 2, 2, 1, 3, 3])
    # brute force agreement on random data
    rng = np.random.default_rng(0)
    pool = rng.exponential(size=50).astype(np.float32)
    query = rng.exponential(size=200).astype(np.float32)
    brute = np.argmin(np.abs(query[:, None] - pool[None, :]), axis=1)
    np.testing.assert_array_equal(np.asarray(nns_select(query, pool)), brute)


def test_nns_per_degree_bucket():
    pool = jnp.asarray([1.0, 2.0, 3.0, 4.0])
    pool_deg = jnp.asarray([0, 0, 5, 5])  # buckets 0, 0, 2, 2
    query = jnp.asarray([3.9, 1.1, 1.1])
    query_deg = jnp.asarray([0, 6, 1])  # buckets 0, 2, 1 (empty -> whole pool)
    idx = nns_select(query, pool, query_degree=query_deg, pool_degree=pool_deg, num_buckets=4)
    np.testing.assert_array_equal(np.asarray(idx), [1, 2, 0])


def test_a2q_unseen_graph_uses_pool_parameters():
    spec = QuantSpec("a2q", 4, signed=True)
    q = A2QQuantizer(spec, kind="node", shape=(4, 3), rngs=nnx.Rngs(0))
    q.step[...] = jnp.asarray([[0.01], [0.1], [1.0], [10.0]])  # key = s * 7
    q.bitwidth[...] = jnp.full((4, 1), 4.0)
    x_new = jnp.asarray([[0.05, 0.0, 0.0], [60.0, -3.0, 2.0]])  # max|x| 0.05 -> pool 0; 60 -> pool 3
    y = q(x_new, QuantContext(False))
    np.testing.assert_allclose(np.asarray(y), [[0.05, 0.0, 0.0], [60.0, 0.0, 0.0]], atol=1e-6)
    it = q.to_integer(x_new)
    # the pool entry's relative step exp(log_step) (1 here) scales the unseen row's own range / qmax
    np.testing.assert_allclose(np.asarray(it.scale), [[0.05 / 7], [60.0 / 7]], rtol=1e-6)


def test_a2q_bits_decrease_under_memory_penalty():
    class Net(nnx.Module):
        def __init__(self):
            self.w = nnx.Param(jnp.eye(8))
            self.q = A2QQuantizer(QuantSpec("a2q", 6, signed=True), kind="node", shape=(32, 8))

        def __call__(self, x):
            return self.q(x, QuantContext(True)) @ self.w[...]

    net = Net()
    x = jax.random.normal(jax.random.key(0), (32, 8))
    target = 8 * 32 * 3.0 / 8 / 1024  # KB at 3 bits per node
    assert float(a2q_memory_kb(net)) == pytest.approx(8 * 32 * 6 / 8 / 1024)
    assert float(a2q_memory_kb(net, bits=2.0)) == pytest.approx(8 * 32 * 2 / 8 / 1024)  # a target at 2 bits
    opt = nnx.Optimizer(net, optax.adam(0.05), wrt=nnx.Param)

    @nnx.jit
    def step(net, opt):
        def loss(net):
            task = jnp.mean((net(x) - x) ** 2)
            return task + a2q_memory_penalty(net, target, 1e4)

        grads = nnx.grad(loss)(net)
        with jax.numpy_dtype_promotion("standard"):
            opt.update(net, grads)

    b0 = np.asarray(net.q.bitwidth[...]).copy()
    for _ in range(10):
        step(net, opt)
    b1 = np.asarray(net.q.bitwidth[...])
    assert np.all(b1 < b0)
    assert float(avg_bits(net.q)) < 6.0
    assert float(a2q_memory_penalty([net.q], target, 1.0)) < float(
        1.0 * (8 * 32 * (6.0 - 3.0) / 8 / 1024) ** 2
    )


def test_a2q_weights_are_per_channel():
    cfg = QuantConfig.preset("a2q")
    q = make_quantizer(cfg, 0, "weight", kind="weight", shape=(16, 5), rngs=nnx.Rngs(0))
    assert q.step[...].shape == (1, 5) and q.bitwidth[...].shape == (1, 5)
    qn = make_quantizer(cfg, 0, "aggregate", kind="node", shape=(30, 5), rngs=nnx.Rngs(0))
    assert qn.step[...].shape == (30, 1)
    assert float(a2q_memory_kb([q])) == 0.0  # weights do not count as feature memory


def test_a2q_single_row_shape_shares_one_pair_across_rows():
    # layers build edge quantisers with shape (1, F): the row count is unknown at construction
    q = A2QQuantizer(QuantSpec("a2q", 4, signed=True), kind="edge", shape=(1, 3), rngs=nnx.Rngs(0))
    x = jnp.asarray([[0.5, -1.0, 7.0], [0.1, 0.2, 0.3]])
    y = q(x, QuantContext(True, degree=jnp.asarray([1, 2])))
    assert float(q.step[...][0, 0]) == pytest.approx(7.0 / 7)  # global max|x| / qmax, written back
    np.testing.assert_allclose(np.asarray(y), [[0.0, -1.0, 7.0], [0.0, 0.0, 0.0]], atol=1e-6)
    g = nnx.grad(lambda q: jnp.sum(q(x * 3.0, QuantContext(True))))(q)
    assert float(g["log_step"][...][0, 0]) != 0.0


@pytest.mark.parametrize("p_min, p_max", [(0.0, 0.1), (0.1, 0.2)])
def test_sampling_from_precomputed_probabilities_is_the_same_mask(p_min, p_max):
    deg = jnp.asarray(np.random.default_rng(0).integers(0, 40, 500), jnp.int32)
    prob = dq_protect_probability(deg, p_min=p_min, p_max=p_max)
    for i in range(5):
        key = jax.random.key(i)
        np.testing.assert_array_equal(dq_sample_mask(key, prob), dq_protect_mask(key, deg, p_min=p_min, p_max=p_max))
