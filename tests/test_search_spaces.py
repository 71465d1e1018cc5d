"""``lpgnas.search_spaces``: the shipped YAML files, the loader and its refusals."""

from __future__ import annotations

import copy
import json
import math
import pathlib

import jax
import numpy as np
import pytest
import yaml
from flax import nnx

from lpgnas import arch as A
from lpgnas.errors import ConfigError, DataError
from lpgnas.nn import COMPONENTS
from lpgnas.quant import QuantSpec
from lpgnas.search_spaces import (
    LPGNAS_BITS,
    LPGNAS_FORMATS,
    FORMATS,
    SPACE_SCHEMA,
    DegreeQuant,
    FixedTopology,
    GraphReadout,
    LayerChoices,
    QuantChoices,
    QuantOption,
    SearchSpace,
    list_spaces,
    load_space,
    parse_space_yaml,
    space_path,
)

SHIPPED = ("compact", "graph", "lpgnas", "methods", "sgquant", "small", "tiny")


def test_list_spaces_has_the_shipped_files():
    assert set(SHIPPED) <= set(list_spaces())
    assert list(list_spaces()) == sorted(list_spaces())


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_space_loads_and_round_trips(name):
    space = load_space(name)
    assert space.name == name
    doc = space.to_json()
    assert doc["schema"] == SPACE_SCHEMA
    back = SearchSpace.from_json(json.loads(json.dumps(doc)))
    assert back == space
    assert back.to_json() == doc
    # the JSON form is also a valid YAML file
    assert parse_space_yaml(yaml.safe_dump(doc)) == space


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_space_loads_from_a_copied_path(name, tmp_path):
    path = tmp_path / "copy.yaml"
    path.write_text(pathlib.Path(space_path(name)).read_text())
    assert load_space(path) == load_space(name)
    assert load_space(str(path)) == load_space(name)


def test_lpgnas_space_content():
    s = load_space("lpgnas")
    assert s.task == "node" and s.fixed is None
    assert s.layer.op == ("attn",)
    assert s.layer.attention == A.ATTENTIONS
    assert s.layer.aggregator == A.AGGREGATORS
    assert s.layer.activation == A.ACTIVATIONS
    assert s.layer.heads == (1, 2, 4, 8)
    assert s.layer.skip == (False, True)
    assert s.components == ("weight", "input", "attention", "aggregate")
    for q in s.quant:
        assert q.bits == LPGNAS_BITS and q.formats == LPGNAS_FORMATS
    assert s.degree_buckets == () and s.degree_quant is None


def test_methods_space_offers_every_graph_aware_format_and_masks():
    s = load_space("methods")
    assert set(FORMATS) - set(LPGNAS_FORMATS) == {"dq", "alpha"}
    methods = {o.method for q in s.quant for o in q.options()}
    assert {"dq", "alpha", "affine", "fixed"} <= methods
    assert s.degree_quant == DegreeQuant(0.1, 0.2)  # Degree-Quant's INT4 masking
    assert s.to_json()["degree_quant"] == {"p_min": 0.1, "p_max": 0.2}


def test_sgquant_space_content():
    s = load_space("sgquant")
    assert s.layer is None and s.fixed == FixedTopology("gcn", 16, None)
    assert s.degree_buckets == (1, 3, 7) and s.num_buckets == 4
    assert not s.quant_for("weight").bucketed and s.quant_for("input").bucketed
    arch = s.base_architecture(num_classes=7)
    assert [layer.op for layer in arch.layers] == ["gcn", "gcn"]
    assert arch.layers[-1].hidden == 7 and arch.layers[0].hidden == 16


def test_base_architecture_needs_a_fixed_space():
    with pytest.raises(ConfigError, match="fixed"):
        load_space("tiny").base_architecture(3)


def test_tiny_space_content():
    s = load_space("tiny")
    assert s.num_layers == (2,)
    assert s.layer == LayerChoices(op=("attn",), attention=("gcn", "gat"), aggregator=("add",),
                                   activation=("relu", "elu"), hidden=(16, 32), heads=(1, 2), skip=(False,))
    assert {q.bits for q in s.quant} == {(4, 8, 32)}
    assert s.quant_for("output") is None


# -- counting -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "formats,bits,expected",
    [
        (("fixed",), (1, 2, 4, 32), [("binary", 1), ("ternary", 2), ("fixed", 4), ("fp32", 32)]),
        (("affine", "lsq"), (8, 32), [("affine", 8), ("lsq", 8), ("fp32", 32)]),
        (("fixed", "affine", "lsq"), (32,), [("fp32", 32)]),
        (("lsq",), (1, 16), [("binary", 1), ("lsq", 16)]),
        (("fixed", "affine", "lsq"), (1, 2), [("binary", 1), ("ternary", 2), ("affine", 2), ("lsq", 2)]),
        (("fixed", "affine"), (3, 5), [("fixed", 3), ("affine", 3), ("fixed", 5), ("affine", 5)]),
    ],
)
def test_quant_options(formats, bits, expected):
    options = QuantChoices("weight", bits, formats).options()
    assert [(o.method, o.bits) for o in options] == expected
    assert {o.granularity for o in options} == {"tensor"}


@pytest.mark.parametrize(
    "component,formats,expected",
    [
        ("weight", ("fixed", "affine", "lsq"), [("binary", 1)]),
        ("input", ("fixed", "affine", "lsq"), [("binary", 1), ("affine", 1)]),
        ("aggregate", ("affine",), [("affine", 1)]),
        ("attention", ("lsq",), [("binary", 1)]),
        ("attention", ("dq", "alpha"), [("dq", 1), ("alpha", 1)]),
        ("weight", ("dq", "alpha"), [("binary", 1)]),
    ],
)
def test_signed_formats_are_binary_at_one_bit(component, formats, expected):
    # a signed 1-bit uniform grid is {-s, 0}; only unsigned (affine node / edge) codes stay uniform
    options = QuantChoices(component, (1,), formats).options()
    assert [(o.method, o.bits) for o in options] == expected


@pytest.mark.parametrize(
    "component,formats,expected",
    [
        # Degree-Quant takes weight ranges from min/max: a dq weight is the affine candidate
        ("weight", ("affine", "dq"), [("affine", 4, True)]),
        ("weight", ("dq", "alpha"), [("affine", 4, True), ("alpha", 4, True)]),
        # node / edge tensors: the affine family has a zero point (unsigned codes)
        ("aggregate", ("dq", "alpha", "lsq"), [("dq", 4, False), ("alpha", 4, False), ("lsq", 4, True)]),
        ("message", ("affine", "dq"), [("affine", 4, False), ("dq", 4, False)]),
    ],
)
def test_graph_aware_formats_resolve_with_their_signedness(component, formats, expected):
    from lpgnas.supernet import option_spec

    options = QuantChoices(component, (4,), formats).options()
    specs = [option_spec(o, component) for o in options]
    assert [(s.method, s.bits, s.signed) for s in specs] == expected


@pytest.mark.parametrize("component", ["weight", "input", "aggregate"])
@pytest.mark.parametrize("fmt", ["fixed", "affine", "lsq", "dq", "alpha"])
def test_no_one_bit_candidate_collapses_to_a_constant(component, fmt):
    from lpgnas import quant as Q
    from lpgnas.supernet import MixedQuantizer, Relax

    (option,) = QuantChoices(component, (1,), (fmt,)).options()
    x = jax.random.normal(jax.random.key(0), (64, 16))
    mq = MixedQuantizer(component, (option,), shape=x.shape, salt=0, rngs=nnx.Rngs(0))
    y = mq(x, Q.QuantContext(training=True), Relax())
    x, y = np.asarray(x).ravel(), np.asarray(y).ravel()
    assert len(np.unique(y)) == 2  # two levels, both used
    assert np.all(np.diff(y[np.argsort(x)]) >= 0)  # and non-decreasing in x


def test_column_weights_reach_the_spec_and_round_trip():
    q = QuantChoices("weight", (2, 4, 32), ("affine", "fixed"), "column")
    options = q.options()
    assert [(o.method, o.bits, o.granularity) for o in options] == [
        ("affine", 2, "column"), ("ternary", 2, "column"), ("affine", 4, "column"), ("fixed", 4, "column"),
        ("fp32", 32, "tensor")]
    assert options[0].spec().granularity == "column"
    assert q.to_json()["granularity"] == "column"
    assert "granularity" not in QuantChoices("weight", (4,), ("affine",)).to_json()
    space = load_space("compact")
    assert space.quant_for("weight").granularity == "column"
    assert space.quant_for("weight").bits == (1, 2, 3, 4, 8)  # 3 bits: the 8x-smaller GCN shape
    assert SearchSpace.from_json(space.to_json()) == space


@pytest.mark.parametrize("name", SHIPPED)
def test_every_option_makes_a_valid_quant_spec(name):
    for q in load_space(name).quant:
        for option in q.options():
            for signed in (True, False):
                spec = option.spec(signed=signed)
                assert isinstance(spec, QuantSpec)
                assert spec.bits == option.bits
                assert spec.is_fp32 == (option.bits == 32)


def test_option_spec_methods():
    assert QuantOption("binary", 1).spec().method == "binary"
    assert QuantOption("fixed", 8).spec().resolved_frac_bits() == 4
    assert QuantOption("fp32", 32).spec() == QuantSpec("fp32", 32)


def test_size_of_tiny_is_counted_by_hand():
    s = load_space("tiny")
    per_layer = (1 * 2 * 1 * 2 * 2 * 2 * 1) * 3**3  # topology choices x 3 components of 3 bit widths
    assert math.isclose(s.size(), math.log10(per_layer**2))
    assert s.num_choices()["attention"] == 2 and s.num_choices()["quant.weight"] == 3


def test_size_of_sgquant_counts_buckets():
    s = load_space("sgquant")
    # weight: 6 per layer; input, message and aggregate: 6 per layer and each of the 4 buckets; 2 layers
    assert math.isclose(s.size(), 2 * (1 + 4 + 4 + 4) * math.log10(6))


def test_size_sums_over_depths():
    doc = load_space("tiny").to_json()
    doc.update(num_layers=[1, 2, 3], quant={})
    doc["layer"] = {"attention": ["gcn", "gat"]}
    assert math.isclose(SearchSpace.from_json(doc).size(), math.log10(2 + 4 + 8))


def test_size_of_lpgnas_space():
    s = load_space("lpgnas")
    # weights: binary + 3 formats x {2, 4, 8, 16} + fp32 = 14; input / attention / aggregate add affine 1-bit: 15
    per_layer = 7 * 3 * 8 * 4 * 4 * 2 * 14 * 15**3
    assert math.isclose(s.size(), math.log10(per_layer**2 + per_layer**3))


def test_layer_defaults_apply():
    doc = load_space("tiny").to_json()
    doc["layer"] = {"hidden": [8]}
    s = SearchSpace.from_json(doc)
    assert s.layer == LayerChoices(hidden=(8,))


# -- refusals -----------------------------------------------------------------------------------


def _tiny():
    return yaml.safe_load(pathlib.Path(space_path("tiny")).read_text())


def _sgquant():
    return yaml.safe_load(pathlib.Path(space_path("sgquant")).read_text())


def _graph():
    return yaml.safe_load(pathlib.Path(space_path("graph")).read_text())


def _set(*path, value):
    def edit(doc):
        target = doc
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return edit


def _drop(*path):
    def edit(doc):
        target = doc
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]

    return edit


# (id, base document, edit, field named in the error)
BAD = [
    ("unknown-top-key", _tiny, _set("layers", value={}), "layers"),
    ("schema-version", _tiny, _set("schema", value="lpgnas.space/v9"), "schema"),
    ("name-not-string", _tiny, _set("name", value=12), "name"),
    ("description-list", _tiny, _set("description", value=["a"]), "description"),
    ("task-missing", _tiny, _drop("task"), "task"),
    ("task-unknown", _tiny, _set("task", value="edge"), "task"),
    ("num-layers-missing", _tiny, _drop("num_layers"), "num_layers"),
    ("num-layers-scalar", _tiny, _set("num_layers", value=2), "num_layers"),
    ("num-layers-zero", _tiny, _set("num_layers", value=[0, 2]), "num_layers[0]"),
    ("num-layers-empty", _tiny, _set("num_layers", value=[]), "num_layers"),
    ("layer-and-fixed-missing", _tiny, _drop("layer"), "layer"),
    ("layer-not-mapping", _tiny, _set("layer", value=["gcn"]), "layer"),
    ("layer-unknown-key", _tiny, _set("layer", "width", value=[16]), "layer.width"),
    ("op-unknown", _tiny, _set("layer", "op", value=["transformer"]), "layer.op[0]"),
    ("attention-unknown", _tiny, _set("layer", "attention", value=["gcn", "dot"]), "layer.attention[1]"),
    ("attention-empty", _tiny, _set("layer", "attention", value=[]), "layer.attention"),
    ("attention-scalar", _tiny, _set("layer", "attention", value="gcn"), "layer.attention"),
    ("attention-duplicate", _tiny, _set("layer", "attention", value=["gat", "gat"]), "layer.attention"),
    ("aggregator-unknown", _tiny, _set("layer", "aggregator", value=["sum"]), "layer.aggregator[0]"),
    ("activation-unknown", _tiny, _set("layer", "activation", value=["gelu"]), "layer.activation[0]"),
    ("activation-null", _tiny, _set("layer", "activation", value=[None]), "layer.activation[0]"),
    ("hidden-zero", _tiny, _set("layer", "hidden", value=[0]), "layer.hidden[0]"),
    ("hidden-string", _tiny, _set("layer", "hidden", value=["16"]), "layer.hidden[0]"),
    ("hidden-float", _tiny, _set("layer", "hidden", value=[16.5]), "layer.hidden[0]"),
    ("hidden-bool", _tiny, _set("layer", "hidden", value=[True]), "layer.hidden[0]"),
    ("heads-negative", _tiny, _set("layer", "heads", value=[1, -2]), "layer.heads[1]"),
    ("skip-not-bool", _tiny, _set("layer", "skip", value=["maybe"]), "layer.skip[0]"),
    ("skip-int", _tiny, _set("layer", "skip", value=[0]), "layer.skip[0]"),
    ("quant-not-mapping", _tiny, _set("quant", value=[8]), "quant"),
    ("component-unknown", _tiny, _set("quant", "weights", value={"bits": [8], "formats": ["affine"]}),
     "quant.weights"),
    ("component-not-mapping", _tiny, _set("quant", "weight", value=[8]), "quant.weight"),
    ("component-unknown-key", _tiny, _set("quant", "weight", "bit", value=[8]), "quant.weight.bit"),
    ("bits-missing", _tiny, _drop("quant", "weight", "bits"), "quant.weight.bits"),
    ("formats-missing", _tiny, _drop("quant", "input", "formats"), "quant.input.formats"),
    ("bits-not-allowed", _tiny, _set("quant", "weight", "bits", value=[12]), "quant.weight.bits[0]"),
    ("bits-too-many", _tiny, _set("quant", "weight", "bits", value=[8, 64]), "quant.weight.bits[1]"),
    ("bits-zero", _tiny, _set("quant", "weight", "bits", value=[0]), "quant.weight.bits[0]"),
    ("bits-string", _tiny, _set("quant", "weight", "bits", value=["8"]), "quant.weight.bits[0]"),
    ("bits-empty", _tiny, _set("quant", "aggregate", "bits", value=[]), "quant.aggregate.bits"),
    ("format-unknown", _tiny, _set("quant", "weight", "formats", value=["float"]), "quant.weight.formats[0]"),
    ("formats-empty", _tiny, _set("quant", "weight", "formats", value=[]), "quant.weight.formats"),
    ("granularity-unknown", _tiny, _set("quant", "weight", "granularity", value="channel"),
     "quant.weight.granularity"),
    ("granularity-row-weight", _tiny, _set("quant", "weight", "granularity", value="row"), "quant.weight.granularity"),
    ("granularity-column-input", _tiny, _set("quant", "input", "granularity", value="column"),
     "quant.input.granularity"),
    ("buckets-not-list", _tiny, _set("degree_buckets", value=3), "degree_buckets"),
    ("buckets-decreasing", _sgquant, _set("degree_buckets", value=[3, 1]), "degree_buckets[1]"),
    ("buckets-negative", _sgquant, _set("degree_buckets", value=[-1]), "degree_buckets[0]"),
    ("buckets-without-quant", _sgquant, _set("quant", value={}), "degree_buckets"),
    ("layer-and-fixed", _sgquant, _set("layer", value={"hidden": [16]}), "fixed"),
    ("fixed-not-mapping", _sgquant, _set("fixed", value="gcn"), "fixed"),
    ("fixed-model-missing", _sgquant, _drop("fixed", "model"), "fixed.model"),
    ("fixed-model-unknown", _sgquant, _set("fixed", "model", value="attn"), "fixed.model"),
    ("fixed-hidden-zero", _sgquant, _set("fixed", "hidden", value=0), "fixed.hidden"),
    ("fixed-unknown-key", _sgquant, _set("fixed", "layers", value=2), "fixed.layers"),
    ("fixed-two-depths", _sgquant, _set("num_layers", value=[2, 3]), "num_layers"),
    ("graph-not-mapping", _graph, _set("graph", value="sum"), "graph"),
    ("graph-unknown-key", _graph, _set("graph", "pool", value="sum"), "graph.pool"),
    ("graph-readout-unknown", _graph, _set("graph", "readout", value="attention"), "graph.readout"),
    ("graph-norm-unknown", _graph, _set("graph", "norm", value="layer"), "graph.norm"),
    ("graph-jk-not-bool", _graph, _set("graph", "jk", value="yes"), "graph.jk"),
    ("graph-on-node-space", _tiny, _set("graph", value={"readout": "sum"}), "graph"),
    ("graph-on-fixed-space", _sgquant, _set("graph", value={"readout": "sum"}), "graph"),
    ("fixed-gcn-attention", _sgquant, _set("quant", "attention", value={"bits": [8], "formats": ["affine"]}),
     "quant.attention"),
    ("dq-per-row", _tiny, _set("quant", "input", value={"bits": [4], "formats": ["dq"], "granularity": "row"}),
     "quant.input.formats"),
    ("degree-quant-not-mapping", _tiny, _set("degree_quant", value=0.1), "degree_quant"),
    ("degree-quant-unknown-key", _tiny, _set("degree_quant", value={"p": 0.1}), "degree_quant.p"),
    ("degree-quant-above-one", _tiny, _set("degree_quant", value={"p_max": 1.5}), "degree_quant.p_max"),
    ("degree-quant-negative", _tiny, _set("degree_quant", value={"p_min": -0.1}), "degree_quant.p_min"),
    ("degree-quant-bool", _tiny, _set("degree_quant", value={"p_max": True}), "degree_quant.p_max"),
    ("degree-quant-min-above-max", _tiny, _set("degree_quant", value={"p_min": 0.3, "p_max": 0.2}),
     "degree_quant.p_min"),
    ("degree-quant-weights-only", _tiny, lambda d: (d.update(degree_quant={}),
                                                    d.__setitem__("quant", {"weight": d["quant"]["weight"]})),
     "degree_quant"),
]


@pytest.mark.parametrize("base,edit,field", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_file_names_file_and_field(base, edit, field, tmp_path):
    doc = copy.deepcopy(base())
    edit(doc)
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    with pytest.raises(ConfigError) as err:
        load_space(path)
    assert err.value.field == field
    assert str(err.value).startswith(f"{path}: {field}: ")


@pytest.mark.parametrize("block, expected", [
    ({}, DegreeQuant(0.0, 0.1)),  # Degree-Quant's INT8 setting
    ({"p_min": 0.1, "p_max": 0.2}, DegreeQuant(0.1, 0.2)),
    ({"p_max": 0}, DegreeQuant(0.0, 0.0)),
])
def test_degree_quant_block_defaults_and_round_trip(block, expected):
    doc = _tiny()
    doc["degree_quant"] = block
    space = SearchSpace.from_json(doc)
    assert space.degree_quant == expected
    assert SearchSpace.from_json(space.to_json()) == space
    assert "degree_quant" not in load_space("tiny").to_json()  # written only when given


def test_every_edit_in_the_table_changes_a_valid_file():
    """Guard for the table above: the unedited bases load."""
    assert SearchSpace.from_json(_tiny()) == load_space("tiny")
    assert SearchSpace.from_json(_sgquant()) == load_space("sgquant")
    assert SearchSpace.from_json(_graph()) == load_space("graph")


@pytest.mark.parametrize("block, expected", [
    (None, GraphReadout("mean", "none", False)),
    ({}, GraphReadout("mean", "none", False)),
    ({"norm": "batch"}, GraphReadout("mean", "batch", False)),
    ({"readout": "max", "jk": True}, GraphReadout("max", "none", True)),
])
def test_graph_readout_defaults_and_round_trip(block, expected):
    doc = _graph()
    del doc["graph"]
    if block is not None:
        doc["graph"] = block
    space = SearchSpace.from_json(doc)
    assert space.readout == expected
    assert ("graph" in space.to_json()) == (block is not None)  # absent stays absent: same fingerprint
    assert SearchSpace.from_json(space.to_json()) == space


def test_fixed_gat_may_quantise_attention():
    doc = _sgquant()
    doc["fixed"] = {"model": "gat"}
    doc["quant"]["attention"] = {"bits": [4, 8], "formats": ["affine"]}
    s = SearchSpace.from_json(doc)
    assert s.quant_for("attention").bits == (4, 8)
    assert s.base_architecture(num_classes=3).layers[0].heads == 8


@pytest.mark.parametrize(
    "text,problem",
    [
        ("task: node\nlayer: [gcn, gat\n", "line 3"),
        ("task: node\nnum_layers: [2]\n  bad: indent\n", "line 3"),
        ("task: node\nlayer:\n  hidden: [16]\n  hidden: [32]\n", "duplicate key 'hidden'"),
        ("task: node\nnum_layers: [2]\ntask: graph\n", "line 3"),
        ("a: !!python/object:os.system echo\n", "not valid YAML"),
    ],
    ids=["unclosed-list", "bad-indent", "duplicate-key", "duplicate-top-key", "python-tag"],
)
def test_yaml_syntax_error_is_data_error_with_line(text, problem, tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text(text)
    with pytest.raises(DataError) as err:
        load_space(path)
    assert str(path) in str(err.value) and problem in str(err.value)


@pytest.mark.parametrize("text", ["", "# only a comment\n", "- a list\n", "just a string\n"])
def test_file_that_is_not_a_mapping(text, tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_space(path)
    assert err.value.field == "<root>" and str(path) in str(err.value)


def test_missing_file_is_data_error(tmp_path):
    with pytest.raises(DataError, match="no such search-space file"):
        load_space(tmp_path / "nope.yaml")
    with pytest.raises(DataError, match="directory"):
        load_space(str(tmp_path) + "/")


def test_not_utf8_is_data_error(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_bytes(b"task: \xff\xfe node\n")
    with pytest.raises(DataError, match="UTF-8"):
        load_space(path)


def test_unknown_name_is_config_error():
    with pytest.raises(ConfigError) as err:
        load_space("lpgnaz")
    assert err.value.field == "space"
    assert all(name in str(err.value) for name in SHIPPED)


def test_a_search_space_passes_through_and_is_hashable():
    s = load_space("tiny")
    assert load_space(s) is s
    assert hash(s) == hash(load_space("tiny"))  # usable as a static argument of jax.jit


def test_name_defaults_to_file_stem(tmp_path):
    doc = _tiny()
    del doc["name"]
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(doc))
    assert load_space(path).name == "mine"


def test_components_are_the_layer_components():
    """Every quantised component of the shipped spaces exists in the layers."""
    for name in SHIPPED:
        assert set(load_space(name).components) <= set(COMPONENTS)
