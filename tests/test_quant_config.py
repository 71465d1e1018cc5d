"""QuantSpec / QuantConfig: lookup precedence, presets, JSON round trip, validation, factory."""

import json

import jax.numpy as jnp
import pytest
from flax import nnx

from lpgnas.errors import ConfigError
from lpgnas.quant import (
    COMPONENTS,
    PRESETS,
    A2QQuantizer,
    AlphaQuantizer,
    DegreeBits,
    Identity,
    Override,
    QuantConfig,
    QuantContext,
    QuantSpec,
    UniformQuantizer,
    identity,
    avg_bits,
    make_quantizer,
)

EXPECTED_PRESETS = (
    "fp32",
    "int8",
    "int4",
    "int2",
    "w8a8",
    "w4a8",
    "w4a4",
    "dq-int8",
    "dq-int4",
    "a2q",
    "sgquant",
    "smp-int2",
    "smp-int4",
)


def test_presets_tuple():
    assert set(PRESETS) == set(EXPECTED_PRESETS)


@pytest.mark.parametrize("name", EXPECTED_PRESETS)
def test_preset_json_round_trip(name):
    cfg = QuantConfig.preset(name)
    assert cfg.name == name
    text = json.dumps(cfg.to_json())
    back = QuantConfig.from_json(json.loads(text))
    assert back == cfg
    assert QuantConfig.from_json(text) == cfg  # a JSON string works too
    assert QuantConfig.from_json(name) == cfg  # and a bare preset name


@pytest.mark.parametrize(
    "name, component, method, bits",
    [
        ("int8", "weight", "affine", 8),
        ("int4", "aggregate", "affine", 4),
        ("w4a8", "weight", "affine", 4),
        ("w4a8", "message", "affine", 8),
        ("dq-int4", "output", "dq", 4),
        ("a2q", "linear", "a2q", 4),
        ("a2q", "attention", "affine", 8),
        ("smp-int2", "aggregate", "alpha", 2),
        ("smp-int4", "weight", "alpha", 4),
        ("fp32", "weight", "fp32", 32),
    ],
)
def test_preset_specs(name, component, method, bits):
    spec = QuantConfig.preset(name).spec(1, component)
    assert (spec.method, spec.bits) == (method, bits)


def test_override_precedence():
    s4, s6, s2, s3 = (QuantSpec("affine", b) for b in (4, 6, 2, 3))
    cfg = QuantConfig(
        default=QuantSpec("affine", 8),
        overrides=(
            Override(s4, layer=1, component="message"),  # most specific
            Override(s6, layer=1),
            Override(s2, component="message"),
            Override(s3, component="message"),  # later wins among equals
        ),
    )
    assert cfg.spec(1, "message").bits == 4
    assert cfg.spec(1, "output").bits == 6
    assert cfg.spec(0, "message").bits == 3
    assert cfg.spec(0, "output").bits == 8
    assert cfg.spec(0, "weight").bits == 8  # no weight spec -> default


def test_custom_config_round_trip_with_everything():
    cfg = QuantConfig(
        default=QuantSpec("lsq", 5, signed=False, granularity="column", backward="ste"),
        weight=QuantSpec("fixed", 8, frac_bits=6),
        overrides=(Override(QuantSpec("ternary"), layer=0, component="weight"),),
        degree_bits=DegreeBits((2, 8), (16, 4, 2)),
        name="custom",
    )
    assert QuantConfig.from_json(json.loads(cfg.dumps())) == cfg


@pytest.mark.parametrize(
    "data, field",
    [
        ({"default": {"method": "affine", "bits": 0}}, "default.bits"),
        ({"default": {"method": "affine", "bits": 33}}, "default.bits"),
        ({"default": {"method": "affine", "bits": 4.5}}, "default.bits"),
        ({"default": {"method": "magic"}}, "default.method"),
        ({"weight": {"method": "affine", "granularity": "diagonal"}}, "weight.granularity"),
        ({"default": {"method": "affine", "observer": "median"}}, "default.observer"),
        ({"default": {"method": "affine", "backward": "sign"}}, "default.backward"),
        ({"default": {"method": "binary", "bits": 4}}, "default.bits"),
        ({"default": {"method": "affine", "colour": 1}}, "default.colour"),
        ({"overrides": [{"component": "mesage", "spec": {"method": "affine"}}]}, "overrides[0].component"),
        ({"overrides": [{"layer": -1, "spec": {}}]}, "overrides[0].layer"),
        ({"overrides": [{"spec": {"method": "affine", "bits": 0}}]}, "overrides[0].spec.bits"),
        ({"degree_bits": {"thresholds": [1, 4], "bits": [32, 8]}}, "degree_bits.bits"),
        ({"degree_bits": {"thresholds": [4, 1], "bits": [32, 8, 2]}}, "degree_bits.thresholds"),
        ({"dq": {"p_min": 0.5, "p_max": 0.1}}, "dq.p_min"),
        ({"dq": {"p_min": 0.0, "p_max": 1.5}}, "dq.p_max"),
        ({"frobnicate": 1}, "frobnicate"),
    ],
)
def test_bad_config_names_the_field(data, field):
    with pytest.raises(ConfigError) as err:
        QuantConfig.from_json(data, source="quant.json")
    assert err.value.field == field
    assert str(err.value).startswith("quant.json: " + field)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"method": "affine", "bits": 0}, "bits"),
        ({"method": "affine", "bits": 33}, "bits"),
        ({"method": "nope"}, "method"),
        ({"method": "affine", "granularity": "channel"}, "granularity"),
        ({"method": "affine", "observer": "percentile", "granularity": "column"}, "observer"),
        ({"method": "a2q", "min_bits": 6.0, "max_bits": 4.0}, "min_bits"),
        ({"method": "dq", "max_samples": 0}, "max_samples"),
        ({"method": "dq", "max_samples": 1.5}, "max_samples"),
        ({"method": "dq", "max_samples": True}, "max_samples"),
        ({"method": "dq", "max_samples": (1 << 24) + 1}, "max_samples"),
    ],
)
def test_bad_spec_names_the_field(kwargs, field):
    with pytest.raises(ConfigError) as err:
        QuantSpec(**kwargs)
    assert err.value.field == field


def test_unknown_component_and_kind_and_preset():
    cfg = QuantConfig.preset("int8")
    with pytest.raises(ConfigError) as err:
        cfg.spec(0, "activations")
    assert err.value.field == "component"
    with pytest.raises(ConfigError) as err:
        make_quantizer(cfg, 0, "input", kind="graph", shape=(4, 4), rngs=nnx.Rngs(0))
    assert err.value.field == "kind"
    with pytest.raises(ConfigError) as err:
        QuantConfig.preset("int3")
    assert err.value.field == "preset"


def test_make_quantizer_identity_cases():
    rngs = nnx.Rngs(0)
    assert make_quantizer(None, 0, "weight", kind="weight", shape=(4, 4), rngs=rngs) is identity
    fp = QuantConfig.preset("fp32")
    for c in COMPONENTS:
        assert isinstance(make_quantizer(fp, 0, c, kind="node", shape=(4, 4), rngs=rngs), Identity)
    cfg = QuantConfig(default=QuantSpec("affine", 32))
    assert make_quantizer(cfg, 0, "input", kind="node", shape=(4, 4), rngs=rngs) is identity


@pytest.mark.parametrize(
    "name, component, kind, shape, cls",
    [
        ("int8", "weight", "weight", (8, 4), UniformQuantizer),
        ("int8", "edge_weight", "edge", (20,), UniformQuantizer),
        ("a2q", "message", "edge", (20, 4), A2QQuantizer),
        ("smp-int2", "attention", "edge", (20, 2), AlphaQuantizer),
    ],
)
def test_make_quantizer_classes_and_shapes(name, component, kind, shape, cls):
    q = make_quantizer(QuantConfig.preset(name), 0, component, kind=kind, shape=shape, rngs=nnx.Rngs(0))
    assert isinstance(q, cls)
    x = jnp.linspace(-1.0, 1.0, int(jnp.prod(jnp.asarray(shape)))).reshape(shape)
    y = q(x, QuantContext(training=True))
    assert y.shape == x.shape and y.dtype == x.dtype


# -- per-override degree tables (component x layer x in-degree bucket) ------------------------------

_TABLE_A = DegreeBits((1, 3), (8, 4, 2))
_TABLE_B = DegreeBits((2,), (16, 1))


@pytest.mark.parametrize("layer, component, want", [
    (0, "input", _TABLE_A),        # its own override's table
    (1, "input", _TABLE_B),        # the global table: the winning override has none
    (0, "aggregate", _TABLE_B),    # no override: the global table
    (1, "message", _TABLE_B),
])
def test_degree_table_of_the_winning_override_else_the_global_one(layer, component, want):
    cfg = QuantConfig(
        default=QuantSpec("affine", 8),
        overrides=(Override(QuantSpec("affine", 8), layer=0, component="input", degree_bits=_TABLE_A),
                   Override(QuantSpec("affine", 4), layer=1, component="input")),
        degree_bits=_TABLE_B,
    )
    assert cfg.degree_table(layer, component) == want


def test_override_degree_bits_round_trip_and_field_errors():
    cfg = QuantConfig(default=QuantSpec("fp32", 32),
                      overrides=(Override(QuantSpec("affine", 8), layer=0, component="message",
                                          degree_bits=_TABLE_A),))
    obj = json.loads(json.dumps(cfg.to_json()))
    assert obj["overrides"][0]["degree_bits"] == {"thresholds": [1, 3], "bits": [8, 4, 2]}
    assert QuantConfig.from_json(obj) == cfg
    obj["overrides"][0]["degree_bits"] = {"thresholds": [1, 3], "bits": [8, 4]}
    with pytest.raises(ConfigError) as e:
        QuantConfig.from_json(obj)
    assert e.value.field == "overrides[0].degree_bits.bits"


def test_make_quantizer_and_cost_use_the_override_table():
    from lpgnas.cost import layer_cost_from_config

    cfg = QuantConfig(default=QuantSpec("fp32", 32),
                      overrides=(Override(QuantSpec("affine", 8), layer=0, component="input", degree_bits=_TABLE_A),
                                 Override(QuantSpec("affine", 8), layer=1, component="input")))
    degree = jnp.asarray([0, 1, 2, 3, 5, 9], jnp.int32)  # buckets 0, 0, 1, 1, 2, 2 -> 8, 8, 4, 4, 2, 2 bits
    q0 = make_quantizer(cfg, 0, "input", kind="node", shape=(6, 4), rngs=nnx.Rngs(0))
    q1 = make_quantizer(cfg, 1, "input", kind="node", shape=(6, 4), rngs=nnx.Rngs(0))
    assert float(avg_bits(q0, degree)) == pytest.approx((8 + 8 + 4 + 4 + 2 + 2) / 6)
    assert float(avg_bits(q1, degree)) == pytest.approx(8.0)
    c0 = layer_cost_from_config(cfg, 0, "gcn", 4, 4, 1, degree=degree)
    assert float(c0.input_bits) == pytest.approx((8 + 8 + 4 + 4 + 2 + 2) / 6)


@pytest.mark.parametrize("max_samples, in_json", [(4096, False), (512, True), (1, True)])
def test_max_samples_field_json(max_samples, in_json):
    """The sub-sample size reaches the plan; JSON omits it at its default and round-trips it otherwise."""
    from lpgnas.quant import make_plan

    spec = QuantSpec("dq", 4, max_samples=max_samples)
    assert make_plan(spec, "edge", (1, 8)).max_samples == max_samples
    obj = spec.to_json()
    assert ("max_samples" in obj) is in_json
    assert QuantSpec.from_json(json.loads(json.dumps(obj))) == spec
    with pytest.raises(ConfigError) as err:
        QuantConfig.from_json({"default": {"method": "dq", "max_samples": -3}})
    assert err.value.field == "default.max_samples"
