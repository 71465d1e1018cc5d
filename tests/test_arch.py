"""``lpgnas.arch``: JSON round trips, atomic file I/O, refusals that name the field, the JSON Schema
``lpgnas/arch_schema.json``, and fuzzing of ``Architecture.from_json``."""

from __future__ import annotations

import copy
import dataclasses
import importlib.resources
import json
import math
import os

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lpgnas import arch as A
from lpgnas.arch import Architecture, LayerSpec, Propagation, baseline, read_architecture, write_architecture
from lpgnas.errors import ConfigError, DataError
from lpgnas.quant import PRESETS, QuantConfig, QuantSpec
from lpgnas.quant import COMPONENTS as QUANT_COMPONENTS
from lpgnas.quant import METHODS, OBSERVERS, Override
from lpgnas.quant._core import BACKWARDS, GRANULARITIES

_FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def schema():
    text = (importlib.resources.files("lpgnas") / "arch_schema.json").read_text()
    doc = json.loads(text)
    jsonschema.Draft202012Validator.check_schema(doc)
    return doc


@pytest.fixture(scope="module")
def validator(schema):
    return jsonschema.Draft202012Validator(schema)


def _baselines():
    out = []
    for model in A.BASELINES:
        out.append((f"{model}-node", baseline(model, num_classes=7)))
        if model not in A.NODE_ONLY_BASELINES:
            out.append((f"{model}-graph", baseline(model, task="graph")))
    out.append(("gat-3-layers", baseline("gat", num_classes=3, num_layers=3, heads=4, hidden=16)))
    return out


BASELINE_ARCHS = _baselines()


def _valid_doc() -> dict:
    return baseline("gcn", num_classes=3).to_json()


# -- strategies ---------------------------------------------------------------------------------

layer_specs = st.builds(
    LayerSpec,
    op=st.sampled_from(A.OPS),
    hidden=st.integers(1, 512),
    heads=st.integers(1, 16),
    concat=st.booleans(),
    attention=st.sampled_from(A.ATTENTIONS),
    aggregator=st.sampled_from(A.AGGREGATORS),
    activation=st.sampled_from(A.ACTIVATIONS),
    skip=st.booleans(),
).map(lambda layer: dataclasses.replace(layer, heads=1) if layer.op == "linear" else layer)
rates = st.floats(0.0, 1.0, exclude_max=True, allow_nan=False)
_UNIFORM = ("affine", "lsq", "dq", "sgquant", "alpha")


@st.composite
def quant_specs(draw):
    method = draw(st.sampled_from(("fp32", "fixed", "binary", "ternary") + _UNIFORM))
    if method == "binary":
        bits = 1
    elif method == "ternary":
        bits = 2
    elif method == "fixed":
        bits = draw(st.integers(2, 24))
    else:
        bits = draw(st.integers(1, 32))
    return QuantSpec(method, bits, signed=draw(st.booleans()))


@st.composite
def quant_configs(draw):
    if draw(st.booleans()):
        return QuantConfig.preset(draw(st.sampled_from(PRESETS)))
    overrides = draw(st.lists(st.builds(Override, quant_specs(), st.none() | st.integers(0, 5),
                                        st.none() | st.sampled_from(QUANT_COMPONENTS)), max_size=3))
    return QuantConfig(default=draw(quant_specs()), weight=draw(st.none() | quant_specs()),
                       overrides=tuple(overrides), name=draw(st.text(max_size=6)))


@st.composite
def propagations(draw):
    mu_max = draw(st.floats(1e-3, 1e6))
    return Propagation(steps=draw(st.integers(1, 1000)), lam=draw(st.floats(0.0, mu_max)),
                       eta=draw(st.none() | st.floats(0.0, 1e6)), rho=draw(st.floats(0.0, 1e6)), mu_max=mu_max)


json_scalars = st.none() | st.booleans() | st.integers(-1000, 1000) | st.floats(allow_nan=False) | st.text(max_size=6)
search_meta = st.none() | st.dictionaries(st.text(max_size=6), json_scalars, max_size=4)

_architectures = st.builds(
    Architecture,
    layers=st.lists(layer_specs, min_size=1, max_size=4).map(tuple),
    task=st.sampled_from(A.TASKS),
    dropout=rates,
    input_dropout=rates,
    attn_dropout=rates,
    norm=st.sampled_from(A.NORMS),
    readout=st.sampled_from(A.READOUTS),
    jk=st.booleans(),
    quant=st.none() | quant_configs(),
    search=search_meta,
)


@st.composite
def architectures(draw):
    arch = draw(_architectures)
    if arch.task == "node" and draw(st.booleans()):
        arch = dataclasses.replace(arch, propagation=draw(propagations()))
    if arch.task == "graph" and draw(st.booleans()):
        arch = dataclasses.replace(arch, head=draw(st.integers(1, 256)))
    return arch


# -- round trips --------------------------------------------------------------------------------


@pytest.mark.parametrize("name,arch", BASELINE_ARCHS, ids=[n for n, _ in BASELINE_ARCHS])
@pytest.mark.parametrize("preset", [None, "int8", "sgquant", "a2q", "dq-int4"])
def test_baseline_round_trip_and_schema(name, arch, preset, validator):
    if preset is not None:
        arch = dataclasses.replace(arch, quant=QuantConfig.preset(preset))
    doc = arch.to_json()
    validator.validate(doc)
    text = json.dumps(doc)
    back = Architecture.from_json(json.loads(text))
    assert back == arch
    assert back.to_json() == doc


@given(arch=architectures())
@_FUZZ
def test_random_architecture_round_trip_and_schema(arch, validator):
    arch.validate()
    doc = arch.to_json()
    validator.validate(doc)
    back = Architecture.from_json(json.loads(json.dumps(doc)))
    assert back == arch


def test_defaults_fill_left_out_fields():
    doc = {"schema": A.SCHEMA, "task": "node", "layers": [{"op": "gat", "hidden": 8}]}
    arch = Architecture.from_json(doc)
    assert arch.layers == (LayerSpec(op="gat", hidden=8),)
    assert (arch.dropout, arch.quant, arch.search) == (0.5, None, None)


def test_quant_preset_name_is_read():
    doc = dict(_valid_doc(), quant="int8")
    assert Architecture.from_json(doc).quant == QuantConfig.preset("int8")


# -- files --------------------------------------------------------------------------------------


def test_write_read_round_trip(tmp_path):
    arch = dataclasses.replace(baseline("gat", num_classes=4), quant=QuantConfig.preset("w4a8"),
                               search={"space": "tiny", "seed": 3, "metrics": {"val_acc": 0.81}})
    path = tmp_path / "sub" / "dir" / "arch.json"
    write_architecture(arch, path)
    assert read_architecture(path) == arch
    assert sorted(os.listdir(path.parent)) == ["arch.json"]


def test_write_replaces_existing_file(tmp_path):
    path = tmp_path / "arch.json"
    write_architecture(baseline("gcn", num_classes=3), path)
    new = baseline("sage", num_classes=5)
    write_architecture(new, str(path))
    assert read_architecture(str(path)) == new
    assert os.listdir(tmp_path) == ["arch.json"]


def test_failed_write_leaves_old_file_and_no_temp(tmp_path):
    path = tmp_path / "arch.json"
    old = baseline("gcn", num_classes=3)
    write_architecture(old, path)
    bad = dataclasses.replace(old, search={"not json": object()})
    with pytest.raises(TypeError):
        write_architecture(bad, path)
    assert read_architecture(path) == old
    assert os.listdir(tmp_path) == ["arch.json"]


@pytest.mark.parametrize(
    "content,problem",
    [
        ("{not json", "not valid JSON"),
        ('{"schema": "lpgnas.arch/v1",\n "task": }', "line 2"),
        ("", "not valid JSON"),
    ],
)
def test_read_invalid_json_is_data_error(tmp_path, content, problem):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(DataError) as err:
        read_architecture(path)
    assert str(path) in str(err.value) and problem in str(err.value)


def test_read_missing_file_is_data_error(tmp_path):
    path = tmp_path / "nope.json"
    with pytest.raises(DataError) as err:
        read_architecture(path)
    assert str(path) in str(err.value)


def test_read_bad_field_names_file_and_field(tmp_path):
    doc = _valid_doc()
    doc["layers"][1]["op"] = "transformer"
    path = tmp_path / "arch.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(ConfigError) as err:
        read_architecture(path)
    assert err.value.field == "layers[1].op"
    assert str(path) in str(err.value) and "layers[1].op" in str(err.value)


# -- refusals -----------------------------------------------------------------------------------


def _set(path, value):
    def edit(doc):
        target = doc
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return edit


def _drop(key):
    def edit(doc):
        del doc[key]

    return edit


REFUSALS = [
    ("schema-version", _set(["schema"], "lpgnas.arch/v2"), "schema"),
    ("schema-missing", _drop("schema"), "schema"),
    ("task-missing", _drop("task"), "task"),
    ("task-unknown", _set(["task"], "edge"), "task"),
    ("layers-missing", _drop("layers"), "layers"),
    ("layers-not-list", _set(["layers"], {"op": "gcn"}), "layers"),
    ("layers-string", _set(["layers"], "gcn"), "layers"),
    ("layers-empty", _set(["layers"], []), "layers"),
    ("layer-not-object", _set(["layers", 0], "gcn"), "layers[0]"),
    ("op-unknown", _set(["layers", 0, "op"], "transformer"), "layers[0].op"),
    ("op-missing", lambda d: d["layers"][0].pop("op"), "layers[0].op"),
    ("attention-unknown", _set(["layers", 1, "attention"], "dot"), "layers[1].attention"),
    ("aggregator-unknown", _set(["layers", 0, "aggregator"], "sum"), "layers[0].aggregator"),
    ("activation-unknown", _set(["layers", 0, "activation"], "gelu"), "layers[0].activation"),
    ("hidden-zero", _set(["layers", 0, "hidden"], 0), "layers[0].hidden"),
    ("hidden-negative", _set(["layers", 0, "hidden"], -1), "layers[0].hidden"),
    ("hidden-string", _set(["layers", 0, "hidden"], "16"), "layers[0].hidden"),
    ("hidden-bool", _set(["layers", 0, "hidden"], True), "layers[0].hidden"),
    ("hidden-float", _set(["layers", 0, "hidden"], 16.0), "layers[0].hidden"),  # schema: 16.0 is an integer
    ("hidden-missing", lambda d: d["layers"][0].pop("hidden"), "layers[0].hidden"),
    ("heads-zero", _set(["layers", 0, "heads"], 0), "layers[0].heads"),
    ("concat-string", _set(["layers", 0, "concat"], "yes"), "layers[0].concat"),
    ("skip-int", _set(["layers", 0, "skip"], 1), "layers[0].skip"),
    ("unknown-field", _set(["width"], 3), "width"),
    ("unknown-layer-field", _set(["layers", 0, "width"], 3), "layers[0].width"),
    ("dropout-one", _set(["dropout"], 1.0), "dropout"),
    ("dropout-negative", _set(["dropout"], -0.1), "dropout"),
    ("dropout-nan", _set(["dropout"], math.nan), "dropout"),  # schema: NaN is not JSON
    ("dropout-bool", _set(["dropout"], False), "dropout"),
    ("attn-dropout-string", _set(["attn_dropout"], "0.1"), "attn_dropout"),
    ("norm-unknown", _set(["norm"], "layer"), "norm"),
    ("readout-unknown", _set(["readout"], "attention"), "readout"),
    ("jk-string", _set(["jk"], "true"), "jk"),
    ("search-list", _set(["search"], ["tiny"]), "search"),
    ("quant-list", _set(["quant"], [8]), "quant"),
    ("quant-bits", _set(["quant"], {"default": {"method": "affine", "bits": 64}}), "quant.default.bits"),
    ("quant-method", _set(["quant"], {"weight": "float8"}), "quant.weight.method"),
    ("quant-unknown-field", _set(["quant"], {"bits": 8}), "quant.bits"),
    ("quant-override-component", _set(["quant"], {"overrides": [{"component": "bias"}]}),
     "quant.overrides[0].component"),
    ("linear-heads", _set(["layers", 0], {"op": "linear", "hidden": 8, "heads": 2}), "layers[0].heads"),
    ("propagation-list", _set(["propagation"], [10]), "propagation"),
    ("propagation-unknown-field", _set(["propagation"], {"alpha": 0.1}), "propagation.alpha"),
    ("propagation-steps-zero", _set(["propagation"], {"steps": 0}), "propagation.steps"),
    ("propagation-steps-float", _set(["propagation"], {"steps": 2.5}), "propagation.steps"),
    ("propagation-steps-huge", _set(["propagation"], {"steps": 10**6}), "propagation.steps"),
    ("propagation-lam-negative", _set(["propagation"], {"lam": -1}), "propagation.lam"),
    ("propagation-lam-huge", _set(["propagation"], {"lam": 10**400}), "propagation.lam"),
    ("propagation-eta-string", _set(["propagation"], {"eta": "0.1"}), "propagation.eta"),
    ("propagation-rho-bool", _set(["propagation"], {"rho": True}), "propagation.rho"),
    ("propagation-mu-max-zero", _set(["propagation"], {"mu_max": 0}), "propagation.mu_max"),
    ("propagation-graph-task", lambda d: d.update(task="graph", propagation={"steps": 3}), "propagation"),
    ("head-negative", lambda d: d.update(task="graph", head=-1), "head"),
    ("head-float", lambda d: d.update(task="graph", head=8.5), "head"),
    ("head-bool", lambda d: d.update(task="graph", head=True), "head"),
    ("head-string", lambda d: d.update(task="graph", head="64"), "head"),
    ("head-node-task", _set(["head"], 8), "head"),
]


# What JSON Schema cannot say: 16.0 is an "integer" there and NaN is not JSON at all; cross-field
# rules (a linear layer's single head, propagation on node tasks only, an MLP head on graph tasks only) are the
# reader's.
_SCHEMA_CANNOT_REFUSE = {"hidden-float", "dropout-nan", "linear-heads", "propagation-graph-task", "head-node-task"}


@pytest.mark.parametrize("case,edit,field", REFUSALS, ids=[r[0] for r in REFUSALS])
def test_refusal_names_field(case, edit, field, validator):
    doc = _valid_doc()
    edit(doc)
    with pytest.raises(ConfigError) as err:
        Architecture.from_json(doc, source="model.json")
    assert err.value.field == field
    assert str(err.value).startswith(f"model.json: {field}: ")
    if case not in _SCHEMA_CANNOT_REFUSE:
        assert not validator.is_valid(doc), "the schema should refuse it too"


@pytest.mark.parametrize("obj", [None, [], "gcn", 3, [{"schema": A.SCHEMA}]])
def test_root_must_be_object(obj):
    with pytest.raises(ConfigError) as err:
        Architecture.from_json(obj)
    assert err.value.field == "<root>"


# -- the schema file ----------------------------------------------------------------------------


def test_schema_enums_match_library(schema):
    props = schema["properties"]
    layer = schema["$defs"]["layer"]["properties"]
    spec = schema["$defs"]["quant_spec"]["oneOf"][1]["properties"]
    assert props["schema"]["const"] == A.SCHEMA
    assert tuple(props["task"]["enum"]) == A.TASKS
    assert tuple(props["norm"]["enum"]) == A.NORMS
    assert tuple(props["readout"]["enum"]) == A.READOUTS
    assert tuple(layer["op"]["enum"]) == A.OPS
    assert tuple(layer["attention"]["enum"]) == A.ATTENTIONS
    assert tuple(layer["aggregator"]["enum"]) == A.AGGREGATORS
    assert tuple(layer["activation"]["enum"]) == A.ACTIVATIONS
    assert set(layer) == {f.name for f in dataclasses.fields(LayerSpec)}
    assert set(props) == A._ARCH_KEYS
    assert tuple(schema["$defs"]["method"]["enum"]) == METHODS
    assert tuple(schema["$defs"]["component"]["enum"]) == QUANT_COMPONENTS
    assert set(spec) == {f.name for f in dataclasses.fields(QuantSpec)}
    assert tuple(spec["granularity"]["enum"]) == GRANULARITIES
    assert tuple(spec["observer"]["enum"][:-1]) == OBSERVERS
    assert tuple(spec["backward"]["enum"][:-1]) == BACKWARDS
    assert set(schema["$defs"]["quant_config"]["properties"]) == set(QuantConfig.preset("a2q").to_json())


def test_schema_defaults_match_dataclasses(schema):
    layer = schema["$defs"]["layer"]["properties"]
    for f in dataclasses.fields(LayerSpec):
        if "default" in layer[f.name]:
            assert layer[f.name]["default"] == f.default, f.name
    for f in dataclasses.fields(Architecture):
        prop = schema["properties"][f.name]
        if "default" in prop:
            assert prop["default"] == f.default, f.name


# -- fuzzing ------------------------------------------------------------------------------------

# Values that confuse types.
WEIRD = st.sampled_from([None, True, False, 0, -1, 1, 2, 1.5, -0.0, math.inf, -math.inf, math.nan, "", "x", 10**400,
                         "gcn", "node", "affine", "lpgnas.arch/v1", [], [1], ["gcn"], {}, {"a": 1},
                         {"op": "gcn"}]).map(copy.deepcopy)  # fresh containers: the mutator edits them
json_values = st.recursive(
    json_scalars | WEIRD,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)


def _maybe(valid, required=()):
    """A dict of the keys of ``valid`` (the ``required`` ones always, the others at random) with
    valid values -- corrupted at a random rate: half the dicts are left intact, in the others
    each key may be dropped or added, each value replaced by a weird one, an unknown key added."""

    @st.composite
    def build(draw):
        noise = draw(st.sampled_from([0, 0, 3, 12]))

        def hit():
            return noise > 0 and draw(st.integers(0, noise)) == 0

        out = {}
        for key, strategy in valid.items():
            present = key in required or draw(st.booleans())
            if hit():
                present = not present
            if present:
                out[key] = draw(json_values) if hit() else draw(strategy)
        if hit():
            out[draw(st.text(max_size=6))] = draw(json_values)
        return out

    return build()


_spec_fields = {
    "method": st.sampled_from(METHODS),
    "bits": st.integers(1, 32),
    "signed": st.booleans(),
    "granularity": st.sampled_from(GRANULARITIES),
    "observer": st.none() | st.sampled_from(OBSERVERS),
    "backward": st.none() | st.sampled_from(BACKWARDS),
    "frac_bits": st.none() | st.integers(0, 32),
    "percentile": st.none() | st.floats(0, 0.49),
    "momentum": st.floats(0.001, 1.0),
    "min_bits": st.floats(1, 16),
    "max_bits": st.floats(1, 16),
    "local_gradient": st.booleans(),
    "nns_buckets": st.integers(0, 32),
    "max_samples": st.integers(1, 1 << 24),
}
fuzz_specs = st.sampled_from(METHODS) | _maybe(_spec_fields)
fuzz_quant = _maybe({
    "name": st.text(max_size=4),
    "default": fuzz_specs,
    "weight": st.none() | fuzz_specs,
    "overrides": st.lists(_maybe({"layer": st.none() | st.integers(0, 4),
                                  "component": st.none() | st.sampled_from(QUANT_COMPONENTS),
                                  "spec": fuzz_specs}), max_size=2),
    "degree_bits": st.none() | st.fixed_dictionaries({"thresholds": st.lists(json_scalars | WEIRD, max_size=3) | WEIRD,
                                                      "bits": st.lists(json_scalars | WEIRD, max_size=4) | WEIRD}),
    "dq": st.none() | _maybe({"p_min": st.floats(0, 1), "p_max": st.floats(0, 1)}),
})
fuzz_layers = st.lists(_maybe(required=("op", "hidden"), valid={
    "op": st.sampled_from(A.OPS),
    "hidden": st.integers(1, 64),
    "heads": st.integers(1, 8),
    "concat": st.booleans(),
    "attention": st.sampled_from(A.ATTENTIONS),
    "aggregator": st.sampled_from(A.AGGREGATORS),
    "activation": st.sampled_from(A.ACTIVATIONS),
    "skip": st.booleans(),
}), max_size=3)
fuzz_docs = _maybe(required=("schema", "task", "layers"), valid={
    "schema": st.just(A.SCHEMA),
    "task": st.sampled_from(A.TASKS),
    "layers": fuzz_layers.filter(bool) | fuzz_layers,
    "dropout": rates,
    "input_dropout": rates,
    "attn_dropout": rates,
    "norm": st.sampled_from(A.NORMS),
    "readout": st.sampled_from(A.READOUTS),
    "jk": st.booleans(),
    "head": st.integers(0, 64),
    "quant": st.none() | st.sampled_from(PRESETS) | fuzz_quant,
    "search": search_meta,
    "propagation": st.none() | _maybe({"steps": st.integers(1, 30), "lam": st.floats(0, 50),
                                       "eta": st.none() | st.floats(0, 2), "rho": st.floats(0, 2),
                                       "mu_max": st.floats(50, 200)}),
})


def _from_json_or_config_error(doc):
    try:
        arch = Architecture.from_json(doc)
    except ConfigError:
        return None
    assert isinstance(arch, Architecture)
    return arch


@given(json_values)
@_FUZZ
def test_fuzz_arbitrary_json(doc):
    _from_json_or_config_error(doc)


@given(doc=fuzz_docs)
@_FUZZ
def test_fuzz_structured_documents(doc, validator):
    """Near-valid documents: either refused with a ConfigError or accepted; an accepted document
    is valid under the JSON Schema, validates, and round-trips through ``to_json``."""
    arch = _from_json_or_config_error(copy.deepcopy(doc))
    if arch is None:
        return
    assert arch.validate() is arch
    validator.validate(arch.to_json())
    validator.validate(doc)


    assert Architecture.from_json(arch.to_json()) == arch


def _paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield from _paths(value, prefix + (key,))
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            yield from _paths(value, prefix + (i,))


MUTATION_BASES = [a.to_json() for _, a in BASELINE_ARCHS[:4]] + [baseline("appnp", num_classes=3).to_json()] + [
    dataclasses.replace(BASELINE_ARCHS[2][1], quant=QuantConfig.preset("a2q")).to_json()
]


@st.composite
def mutated_docs(draw):
    doc = copy.deepcopy(draw(st.sampled_from(MUTATION_BASES)))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from([p for p in _paths(doc) if p]))
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        action = draw(st.integers(0, 2))
        if action == 0 or isinstance(parent, list):
            parent[path[-1]] = draw(json_values)
        elif action == 1:
            del parent[path[-1]]
        else:
            parent[draw(st.text(max_size=6))] = draw(json_values)
    return doc


@given(mutated_docs())
@_FUZZ
def test_fuzz_mutated_documents(doc):
    arch = _from_json_or_config_error(doc)
    if arch is not None:
        assert Architecture.from_json(arch.to_json()) == arch


# -- crashes and gaps the fuzzer once found (now refused with a ConfigError) ------------------


def test_huge_int_dropout_is_a_config_error():
    with pytest.raises(ConfigError, match="dropout"):
        Architecture.from_json(dict(_valid_doc(), dropout=10**400))


@pytest.mark.parametrize("thresholds", [5, None, 1.5, True])
def test_degree_bits_not_a_list_is_a_config_error(thresholds):
    doc = dict(_valid_doc(), quant={"degree_bits": {"thresholds": thresholds, "bits": [8]}})
    with pytest.raises(ConfigError, match="degree_bits"):
        Architecture.from_json(doc)


@pytest.mark.parametrize("thresholds", ["", {}])
def test_degree_bits_string_is_a_config_error(thresholds):
    doc = dict(_valid_doc(), quant={"degree_bits": {"thresholds": thresholds, "bits": [8]}})
    with pytest.raises(ConfigError, match="degree_bits"):
        Architecture.from_json(doc)


@pytest.mark.parametrize("overrides", [0, False, "", {}])
def test_falsy_overrides_are_a_config_error(overrides):
    doc = dict(_valid_doc(), quant={"overrides": overrides})
    with pytest.raises(ConfigError, match="overrides"):
        Architecture.from_json(doc)


def test_mixed_key_types_are_a_config_error():
    with pytest.raises(ConfigError):
        Architecture.from_json({"schema": A.SCHEMA, "task": "node", "layers": [], 1: 2, "x": 3})


# -- propagation blocks and the appnp baseline ---------------------------------------------------


def test_appnp_baseline_is_an_mlp_with_ten_step_propagation(validator):
    arch = baseline("appnp", num_classes=7)
    assert [(layer.op, layer.hidden, layer.activation) for layer in arch.layers] == [
        ("linear", 64, "relu"), ("linear", 7, "none")]
    assert arch.propagation == Propagation(steps=10, lam=9.0, eta=None)
    assert (arch.dropout, arch.input_dropout) == (0.5, 0.5)
    doc = arch.to_json()
    validator.validate(doc)
    assert doc["propagation"] == {"steps": 10, "lam": 9.0, "eta": None, "rho": 0.5, "mu_max": 100.0}
    assert Architecture.from_json(json.loads(json.dumps(doc))) == arch


def test_appnp_has_no_graph_variant():
    with pytest.raises(ConfigError) as err:
        baseline("appnp", task="graph")
    assert err.value.field == "model" and "node" in err.value.problem


def test_head_is_written_only_when_set_and_only_for_graph_tasks(validator):
    assert "head" not in baseline("gin", task="graph").to_json()
    arch = baseline("gin", task="graph", num_layers=5, jk=False, head=64)
    doc = arch.to_json()
    validator.validate(doc)
    assert (doc["head"], doc["jk"], len(doc["layers"])) == (64, False, 5)
    assert Architecture.from_json(doc) == arch
    with pytest.raises(ConfigError) as err:
        baseline("gcn", num_classes=3, head=16)
    assert err.value.field == "head" and "graph" in err.value.problem


def test_propagation_is_written_only_when_set():
    assert "propagation" not in baseline("gcn", num_classes=3).to_json()
    doc = dict(_valid_doc(), propagation=None)
    assert Architecture.from_json(doc).propagation is None


@pytest.mark.parametrize("given_eta, method, eta", [
    (None, "alpha", A.SMP_ETA),   # the smoothness-aware method: alpha-quantised steps
    (None, "affine", 0.0),        # naive QAT: plain APPNP propagation, quantised per step
    (None, "fp32", 0.0),          # FP32: APPNP
    (0.0, "alpha", 0.0),          # explicit values win
    (0.3, "fp32", 0.3),
])
def test_propagation_eta_resolution(given_eta, method, eta):
    assert Propagation(eta=given_eta).resolved_eta(method) == eta


def test_propagation_lam_above_mu_max_is_refused():
    doc = dict(_valid_doc(), propagation={"lam": 20, "mu_max": 10})
    with pytest.raises(ConfigError) as err:
        Architecture.from_json(doc)
    assert err.value.field == "propagation.lam" and "mu_max" in err.value.problem
