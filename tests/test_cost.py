"""Cost model: hand-computed values on Cora sizes and differentiability in the bits."""

import jax
import jax.numpy as jnp
import pytest

from lpgnas.cost import (BIT_FIELDS, CostReport, LayerCost, PropagationCost, layer_cost, layer_cost_from_config,
                         model_cost, with_fp32_params)
from lpgnas.errors import ConfigError
from lpgnas.quant import QuantConfig

N, E, F, H, C = 2708, 10556, 1433, 16, 7  # Cora: nodes, directed edges, features, hidden, classes


def _gcn2(bits: float):
    b = {f: bits for f in BIT_FIELDS}
    return [LayerCost("gcn", F, H, **b), LayerCost("gcn", H, C, **b)]


def test_two_layer_gcn_on_cora_fp32_and_int8():
    # weights 1433*16 + 16*7 = 23040, biases 16 + 7 = 23 (always 32-bit)
    # features per layer (E' = E + N = 13264 with self loops):
    #   layer 1: N*1433 + N*16 + E' + E'*16 + N*16 + N*16 = 4_236_036
    #   layer 2: N*16 + N*7 + E' + E'*7 + N*7 + N*7       =   206_308
    # BitOPs: N*F*H*wb*ab + E'*H*b*b + N*H*C*wb*ab + E'*C*b*b
    fp = model_cost(_gcn2(32.0), N, E)
    assert fp.model_size_bits == fp.fp32_model_size_bits == 23063 * 32
    assert fp.feature_bits == fp.fp32_feature_bits == 4_442_344 * 32
    assert fp.bitops == fp.fp32_bitops == (2708 * 1433 * 16 + 13264 * 16 + 2708 * 16 * 7 + 13264 * 7) * 1024
    assert fp.compression == 1.0 and fp.avg_feature_bits == 32.0

    q = model_cost(_gcn2(8.0), N, E)
    assert q.model_size_bits == 23040 * 8 + 23 * 32 == 185_056
    assert q.feature_bits == 4_442_344 * 8 == 35_538_752
    assert q.bitops == 4_012_633_088
    assert q.compression == pytest.approx((738_016 + 142_155_008) / (185_056 + 35_538_752))
    assert q.avg_feature_bits == 8.0


def test_mixed_bits_hand_computed():
    # one GCN layer, only the input features at 4 bits, weights at 2 bits
    layer = LayerCost("gcn", F, H, weight_bits=2.0, input_bits=4.0)
    r = layer_cost(layer, N, E)
    assert r.model_size_bits == 1433 * 16 * 2 + 16 * 32
    assert r.feature_bits == 2708 * 1433 * 4 + (4_236_036 - 2708 * 1433) * 32
    assert r.bitops == 2708 * 1433 * 16 * 2 * 4 + 13264 * 16 * 32 * 32


@pytest.mark.parametrize(
    "kind, heads, weights, biases",
    [
        ("linear", 1, 10 * 4, 4),
        ("gcn", 1, 10 * 4, 4),
        ("sage", 1, 2 * 10 * 4, 4),
        ("gin", 1, 10 * 4 + 4 * 4, 8),
        ("gat", 3, 10 * 12 + 2 * 12, 12),
        ("skip", 1, 10 * 4, 0),
    ],
)
def test_parameter_counts_per_kind(kind, heads, weights, biases):
    r = layer_cost(LayerCost(kind, 10, 4, heads, weight_bits=1.0), 5, 8)
    assert r.model_size_bits == weights * 1 + biases * 32
    assert r.fp32_model_size_bits == (weights + biases) * 32


def test_skip_projection_holds_no_tensor_and_costs_its_product():
    r = layer_cost(LayerCost("skip", 10, 4, weight_bits=2.0, input_bits=8.0), 5, 8)
    assert r.feature_bits == 0 and r.fp32_feature_bits == 0
    assert r.bitops == 5 * 10 * 4 * 2 * 8 and r.fp32_bitops == 5 * 10 * 4 * 32 * 32


def test_full_precision_parameters_add_to_both_sizes_only():
    r = model_cost(_gcn2(8.0), N, E)
    assert with_fp32_params(r, 0) is r
    s = with_fp32_params(r, 100)
    assert s.model_size_bits == r.model_size_bits + 3200
    assert s.fp32_model_size_bits == r.fp32_model_size_bits + 3200
    assert (s.feature_bits, s.bitops, s.avg_feature_bits) == (r.feature_bits, r.bitops, r.avg_feature_bits)
    assert s.compression == pytest.approx((s.fp32_model_size_bits + s.fp32_feature_bits)
                                          / (s.model_size_bits + s.feature_bits))


def test_cost_is_differentiable_in_expected_bits():
    def bitops(wb, ab):
        layers = [
            LayerCost("gat", F, 8, 8, weight_bits=wb, input_bits=ab, attention_bits=ab, linear_bits=ab),
            LayerCost("gcn", 64, C, weight_bits=wb, input_bits=ab, edge_weight_bits=ab, linear_bits=ab),
        ]
        r = model_cost(layers, N, E)
        return r.bitops, r.feature_bits, r.compression

    wb, ab = jnp.float32(3.5), jnp.float32(6.25)  # e.g. softmax-weighted expected bits
    for i in range(3):
        gw, ga = jax.grad(lambda w, a: bitops(w, a)[i], argnums=(0, 1))(wb, ab)
        if i != 1:
            assert float(gw) != 0.0
        assert float(ga) != 0.0
    # d bitops / d weight_bits of one GCN layer = sum of MACs x activation bits
    g = jax.grad(lambda w: layer_cost(LayerCost("gcn", F, H, weight_bits=w, input_bits=8.0), N, E).bitops)(
        jnp.float32(4.0)
    )
    assert float(g) == pytest.approx(2708 * 1433 * 16 * 8, rel=1e-6)


def test_layer_cost_from_config():
    lc = layer_cost_from_config(QuantConfig.preset("w4a8"), 0, "gcn", F, H)
    assert lc.weight_bits == 4.0 and lc.input_bits == 8.0 and lc.message_bits == 8.0
    assert layer_cost_from_config(None, 0, "gcn", F, H).weight_bits == 32.0
    sg = layer_cost_from_config(QuantConfig.preset("sgquant"), 0, "gcn", F, H, degree=jnp.asarray([1, 100]))
    assert float(sg.aggregate_bits) == pytest.approx((8 + 2) / 2)


def test_bad_layer_kind():
    with pytest.raises(ConfigError) as err:
        model_cost([LayerCost("transformer", 4, 4)], 10, 10)
    assert err.value.field == "kind"
    assert isinstance(model_cost([LayerCost("linear", 4, 4)], 10, 0), CostReport)


# -- propagation blocks -----------------------------------------------------------------------------


@pytest.mark.parametrize("steps, width, step_bits, features, bitops", [
    # N = 10, E = 30 -> E' = 40; features: E' edge weights at 32 + (K + 1) N C at b_k; BitOPs: K products E' C 32 b_k
    (2, 3, 32.0, 40 * 32 + 3 * 10 * 3 * 32, 2 * 40 * 3 * 32 * 32),
    (2, 3, [2.0, 4.0, 32.0], 40 * 32 + 10 * 3 * (2 + 4 + 32), 40 * 3 * 32 * (2 + 4)),
    (1, 7, 8.0, 40 * 32 + 2 * 10 * 7 * 8, 40 * 7 * 32 * 8),
])
def test_propagation_cost_by_hand(steps, width, step_bits, features, bitops):
    mlp = LayerCost("linear", 5, width)
    base = model_cost([mlp], 10, 30)
    rep = model_cost([mlp], 10, 30, PropagationCost(steps, width, step_bits))
    assert rep.feature_bits - base.feature_bits == features
    assert rep.bitops - base.bitops == bitops
    assert rep.model_size_bits == base.model_size_bits  # no weights
    assert rep.fp32_bitops - base.fp32_bitops == steps * 40 * width * 32 * 32
    assert rep.avg_feature_bits == pytest.approx(rep.feature_bits / (10 * 5 + 2 * 10 * width + 40 + (steps + 1) * 10 * width))


def test_propagation_cost_needs_k_plus_one_bits():
    with pytest.raises(ConfigError) as err:
        model_cost([LayerCost("linear", 5, 3)], 10, 30, PropagationCost(3, 3, [2.0, 2.0]))
    assert err.value.field == "step_bits"
