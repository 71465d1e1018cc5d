"""The abs tune backend (SGQuant automatic bit selection): sampled bits -> QuantConfig, the trainer's
``init``/``report`` hooks it relies on, one trial run in-process, and one small real Ray Tune run."""

import dataclasses
import json
import os

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from lpgnas import data as D
from lpgnas import quant as Q
from lpgnas.arch import baseline
from lpgnas.errors import ConfigError
from lpgnas.nn import GNN, load_model
from lpgnas.search import METRICS, TrialResult
from lpgnas.search._abs import (
    AbsBackend,
    abs_architecture,
    abs_choices,
    abs_quant_config,
    bit_summary,
    make_abs_backend,
    warm_start_points,
)
from lpgnas.search._backend import FINAL_KEYS
from lpgnas.search_spaces import SearchSpace, load_space
from lpgnas.train import TrainConfig, node_arrays, train_graph, train_node

# Ray tests start Ray instances; under pytest-xdist they share one worker, one after another.
pytestmark = pytest.mark.xdist_group("ray")

DATASET = "synthetic:nodes=300,edges=2400,classes=3,features=24,homophily=0.9,seed=3"


def _space(**changes) -> SearchSpace:
    obj = load_space("sgquant").to_json()
    obj.update(changes)
    return SearchSpace.from_json(obj)


MSG_SPACE = _space(name="sgquant-msg", quant={
    "weight": {"bits": [2, 4, 8, 32], "formats": ["affine"]},
    "input": {"bits": [1, 8, 32], "formats": ["affine"]},
    "message": {"bits": [4, 8, 32], "formats": ["affine"]},
    "aggregate": {"bits": [2, 4, 8, 32], "formats": ["affine"]},
})


@pytest.fixture(scope="module")
def graph():
    return D.load_dataset(DATASET)


@pytest.fixture(scope="module")
def fp32(graph):
    arch = baseline("gcn", num_classes=graph.num_classes)
    _, model = train_node(arch, graph, seed=0, config=TrainConfig(epochs=60, chunk=30, patience=1000))
    return arch, model


def _all(space, bits, **over):
    params = {k: bits for k in abs_choices(space)}
    params.update({k.replace("_", "."): v for k, v in over.items()})
    return params


# --------------------------------------------------------------------------------------------------
# sampled parameters -> QuantConfig


@pytest.mark.parametrize("space, keys", [
    (load_space("sgquant"), ["l0.weight", "l0.input", "l0.message", "l0.aggregate", "l1.weight", "l1.input",
                             "l1.message", "l1.aggregate",
                             "deg.b0", "deg.b1", "deg.b2", "deg.b3"]),
    (_space(degree_buckets=None), ["l0.weight", "l0.input", "l0.message", "l0.aggregate", "l1.weight",
                                   "l1.input", "l1.message", "l1.aggregate"]),
    (_space(quant={"weight": {"bits": [4, 8], "formats": ["affine", "lsq"]},
                   "output": {"bits": [8], "formats": ["affine"]}}, degree_buckets=None),
     ["l0.weight", "l0.weight.format", "l0.output", "l1.weight", "l1.weight.format"]),  # no l1.output: logits
])
def test_choices_name_every_sampled_decision(space, keys):
    assert sorted(abs_choices(space)) == sorted(keys)


@pytest.mark.parametrize("params, component, layer, expect", [
    # (sampled, component, layer, (method, bits, granularity, signed))
    (dict(l0_input=1), "input", 0, ("affine", 1, "row", False)),
    (dict(l0_weight=4), "weight", 0, ("affine", 4, "column", True)),
    (dict(l1_aggregate=8), "aggregate", 1, ("affine", 8, "tensor", False)),
    (dict(l0_message=4), "message", 0, ("affine", 4, "tensor", False)),
    (dict(l0_input=1), "input", 1, ("fp32", 32, "tensor", True)),  # other layers stay FP32
    (dict(l0_message=4), "linear", 0, ("fp32", 32, "tensor", True)),  # unlisted components stay FP32
])
def test_sampled_bits_land_on_their_layer_and_component(params, component, layer, expect):
    cfg = abs_quant_config(MSG_SPACE, _all(MSG_SPACE, 32, **params))
    spec = cfg.spec(layer, component)
    assert (spec.method, spec.bits, spec.granularity, spec.signed) == expect


def test_a_degree_quant_space_masks_its_candidates_and_their_fine_tuning():
    space = _space(name="sgquant-dq", degree_quant={"p_min": 0.1, "p_max": 0.2})
    cfg = abs_quant_config(space, _all(space, 32, l0_aggregate=4))
    assert cfg.dq == Q.DQSettings(0.1, 0.2)
    assert abs_quant_config(MSG_SPACE, _all(MSG_SPACE, 32, l0_aggregate=4)).dq is None
    assert abs_quant_config(space, _all(space, 32)) is None  # the FP32 model has nothing to mask


# the sgquant buckets are in-degree 0-1, 2-3, 4-7, 8+
@pytest.mark.parametrize("over, key, per_bucket", [
    (dict(l0_aggregate=8, deg_b0=32, deg_b1=8, deg_b2=4, deg_b3=2), "l0.aggregate", [8, 8, 4, 2]),
    (dict(l0_aggregate=4, deg_b0=32, deg_b1=8, deg_b2=4, deg_b3=2), "l0.aggregate", [4, 4, 4, 2]),
    (dict(l1_message=8, deg_b0=2, deg_b1=32, deg_b2=32, deg_b3=4), "l1.message", [2, 8, 8, 4]),
    (dict(l0_input=1, deg_b0=8, deg_b1=8, deg_b2=8, deg_b3=8), "l0.input", [1, 1, 1, 1]),
    (dict(l0_weight=4, deg_b0=2, deg_b1=2, deg_b2=2, deg_b3=2), "l0.weight", 4),  # weights: no buckets
])
def test_bucket_bits_land_on_rows_of_that_in_degree(graph, over, key, per_bucket):
    params = _all(MSG_SPACE, 32, **over)
    assert bit_summary(MSG_SPACE, params)[key] == per_bucket
    arch = abs_architecture(MSG_SPACE, params, graph.num_classes)
    layer, component = key.split(".")
    model = GNN(arch, graph.num_features, graph.num_classes, num_nodes=graph.num_nodes, rngs=nnx.Rngs(0))
    q = getattr(model.layers[int(layer[1:])], f"q_{component}")
    degrees = np.array([0, 1, 2, 3, 4, 7, 8, 50])
    if isinstance(per_bucket, int):
        assert q.plan.degree_bits is None and q.bits == per_bucket
        return
    got = np.minimum(np.asarray(q.plan.degree_bits.lookup(jnp.asarray(degrees))), q.plan.bits)
    want = np.array(per_bucket)[[0, 0, 1, 1, 2, 2, 3, 3]]
    np.testing.assert_array_equal(got, want)
    deg = np.asarray(graph.in_degree())
    bucket = np.searchsorted(np.array([1, 3, 7]), deg, side="left")
    assert float(Q.avg_bits(q, jnp.asarray(deg))) == pytest.approx(float(np.mean(np.array(per_bucket)[bucket])))


def test_without_degree_buckets_every_row_has_the_component_bits():
    space = _space(degree_buckets=None)
    params = _all(space, 32, l0_input=1, l1_aggregate=4, l1_weight=8)
    cfg = abs_quant_config(space, params)
    assert cfg.degree_bits is None and cfg.spec(1, "aggregate").bits == 4
    assert bit_summary(space, params) == {"l0.weight": 32, "l0.input": 1, "l0.message": 32, "l0.aggregate": 32,
                                          "l1.weight": 8, "l1.input": 32, "l1.message": 32, "l1.aggregate": 4}


def test_all_32_bits_is_the_fp32_model(graph, fp32):
    arch, model = fp32
    params = _all(load_space("sgquant"), 32)
    assert abs_quant_config(load_space("sgquant"), params) is None
    qarch = abs_architecture(load_space("sgquant"), params, graph.num_classes)
    assert qarch == arch
    built = GNN(qarch, graph.num_features, graph.num_classes, num_nodes=graph.num_nodes, rngs=nnx.Rngs(0))
    nnx.update(built, nnx.state(model))
    x, ga = node_arrays(graph)
    np.testing.assert_array_equal(np.asarray(built(x, ga)), np.asarray(model(x, ga)))


@pytest.mark.parametrize("params, field", [
    ({"l0.weight": 8}, "config"),  # missing keys
    (dict(_all(load_space("sgquant"), 32), **{"l0.input": 3}), "config.l0.input"),  # not a candidate
])
def test_bad_sampled_parameters_raise_config_error(params, field):
    with pytest.raises(ConfigError) as e:
        abs_quant_config(load_space("sgquant"), params)
    assert e.value.field == field


@pytest.mark.parametrize("kwargs, field", [
    (dict(space="lpgnas"), "--space"),  # searches the topology
    (dict(space=_space(task="graph", fixed={"model": "gin"}, degree_buckets=None,
                       quant={"weight": {"bits": [8], "formats": ["affine"]}})), "--space"),
    (dict(sampler="random"), "--sampler"),
    (dict(finetune_epochs=0), "--finetune-epochs"),
])
def test_backend_refuses_what_it_cannot_run(kwargs, field):
    with pytest.raises(ConfigError) as e:
        AbsBackend(**kwargs)
    assert e.value.field == field


def test_settings_round_trip_and_the_cli_factory():
    import argparse

    b = AbsBackend(space=MSG_SPACE, dataset="cora", data_root="/data", finetune_epochs=30, sampler="nsga2", seed=2,
                   with_baselines=False, chunk=3)
    settings = json.loads(json.dumps(b.describe()))
    assert AbsBackend.from_json(settings) == b
    assert settings["learning_rate"] == 0.01  # GCN's FP32 learning rate x FINETUNE_LR_FACTOR
    args = argparse.Namespace(space=None, dataset="cora", data_root=None, finetune_epochs=None, sampler=None,
                              no_baselines=True, baselines=None)
    made = make_abs_backend(args)
    assert made == AbsBackend(space="sgquant", dataset="cora", with_baselines=False)
    with pytest.raises(ConfigError) as e:
        make_abs_backend(argparse.Namespace(**{**vars(args), "baselines": "fp32-gat"}))
    assert e.value.field == "--baselines"


# --------------------------------------------------------------------------------------------------
# the trainer hooks


def test_init_starts_from_the_given_weights(graph, fp32):
    arch, model = fp32
    frozen = TrainConfig(epochs=4, chunk=2, lr=0.0, weight_decay=0.0, patience=1000)
    r, tuned = train_node(arch, graph, seed=5, config=frozen, init=model)
    x, ga = node_arrays(graph)
    np.testing.assert_allclose(np.asarray(tuned(x, ga)), np.asarray(model(x, ga)), rtol=1e-6, atol=1e-6)
    val = graph.split.val
    acc = float(np.mean(np.argmax(np.asarray(model(x, ga))[val], -1) == graph.labels[val]))
    assert r.val_acc == pytest.approx(acc, abs=1e-6)
    # without init, seed 5 starts elsewhere
    _, fresh = train_node(arch, graph, seed=5, config=frozen)
    assert not np.allclose(np.asarray(fresh.layers[0].kernel[...]), np.asarray(model.layers[0].kernel[...]))


def test_init_copies_weights_into_a_quantised_model_but_not_quantiser_state(graph, fp32):
    arch, model = fp32
    quant = Q.QuantConfig(overrides=(Q.Override(Q.QuantSpec("affine", 8, signed=False), component="aggregate"),
                                     Q.Override(Q.QuantSpec("lsq", 4), component="weight")))
    qarch = dataclasses.replace(arch, quant=quant)
    frozen = TrainConfig(epochs=1, chunk=1, lr=0.0, weight_decay=0.0, patience=1000)
    _, tuned = train_node(qarch, graph, seed=1, config=frozen, init=model)
    for i in range(2):
        np.testing.assert_array_equal(np.asarray(tuned.layers[i].kernel[...]), np.asarray(model.layers[i].kernel[...]))
    assert int(tuned.layers[0].q_aggregate.count[...]) > 0  # its observer ran on the copied weights
    # the LSQ step is initialised (2 mean|W| / sqrt(Qp), Qp = 7 at 4 bits) from the copied weights
    w = np.asarray(model.layers[0].kernel[...])
    assert float(tuned.layers[0].q_weight.step[...]) == pytest.approx(2 * np.abs(w).mean() / np.sqrt(7), rel=1e-5)


def test_report_is_called_once_per_chunk_with_the_last_epoch(graph):
    arch = baseline("gcn", num_classes=graph.num_classes)
    calls = []
    r, _ = train_node(arch, graph, seed=0, config=TrainConfig(epochs=10, chunk=3, patience=1000),
                      report=lambda e, m: calls.append((e, m)))
    assert [e for e, _ in calls] == [3, 6, 9, 10]
    for _, m in calls:
        assert 0.0 <= m["val_acc"] <= 1.0 and m["val_loss"] > 0 and m["train_loss"] > 0
        assert m["best_val_acc"] >= m["val_acc"] - 1e-9
    assert calls[-1][1]["best_val_acc"] == pytest.approx(r.val_acc)
    assert calls[-1][1]["best_test_acc"] == pytest.approx(r.test_acc)


def test_train_graph_takes_init_and_reports_per_epoch(data_root):
    ds = D.load_dataset("mutag", data_root)
    split = D.kfold_splits(ds.labels, k=10, seed=0, folds=ds.folds)[0]
    arch = baseline("gin", task="graph", hidden=8, num_layers=2)
    cfg = TrainConfig(epochs=2, batch_size=64, lr=0.0, weight_decay=0.0, num_buckets=1)
    _, first = train_graph(arch, ds, split, seed=0, config=cfg)
    calls = []
    _, second = train_graph(arch, ds, split, seed=7, config=cfg, init=first,
                            report=lambda e, m: calls.append((e, m)))
    assert [e for e, _ in calls] == [1, 2] and all(m["train_loss"] > 0 for _, m in calls)
    np.testing.assert_array_equal(np.asarray(second.layers[1].kernel2[...]), np.asarray(first.layers[1].kernel2[...]))


# --------------------------------------------------------------------------------------------------
# the backend


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("abs"))
    backend = AbsBackend(space=MSG_SPACE, dataset=DATASET, finetune_epochs=6, chunk=2, with_baselines=True)
    backend.prepare(out)
    return backend, out


def test_prepare_saves_the_fp32_model_once(prepared):
    backend, out = prepared
    folder = os.path.join(out, "fp32")
    model, arch, meta = load_model(folder)
    assert arch.quant is None and meta["dataset"] == DATASET and 0.5 < meta["fp32_val_acc"] <= 1.0
    stamp = os.path.getmtime(os.path.join(folder, "weights.msgpack"))
    backend.prepare(out)  # a resumed run reuses it
    assert os.path.getmtime(os.path.join(folder, "weights.msgpack")) == stamp


def test_trainable_reports_complete_records_every_chunk(prepared, graph):
    backend, _ = prepared
    reports = []
    params = _all(MSG_SPACE, 32, l0_input=1, l0_weight=8, l1_weight=8, l0_aggregate=8, l1_aggregate=8,
                  l0_message=8, l1_message=8, l1_input=8, deg_b0=32, deg_b1=32, deg_b2=8, deg_b3=4)
    backend.trainable(report=reports.append)(dict(params))
    assert len(reports) == backend.num_reports() == 3
    for rep in reports:
        assert all(k in rep for k in (*METRICS, *FINAL_KEYS, "extra"))
        assert {k: rep[k] for k in ("buffer_bits", "model_size_bits", "bitops")} == \
            {k: reports[0][k] for k in ("buffer_bits", "model_size_bits", "bitops")}
    assert [r["val_acc"] for r in reports] == sorted(r["val_acc"] for r in reports)  # best so far
    last = reports[-1]
    extra = json.loads(last["extra"])
    assert extra["bits"]["l1.message"] == [8, 8, 8, 4] and extra["bits"]["l0.input"] == [1, 1, 1, 1]
    assert last["buffer_bits"] < last["fp32_buffer_bits"] / 2
    assert extra["feature_compression"] == pytest.approx(last["fp32_buffer_bits"] / last["buffer_bits"])
    assert last["val_acc"] > 0.6  # chance is 1/3; fine-tuned from a trained FP32 model
    r = TrialResult(trial_id="t", backend="abs", dataset=DATASET, **{m: last[m] for m in METRICS})
    assert r.feature_compression > 2
    arch = abs_architecture(MSG_SPACE, params, graph.num_classes)
    assert json.loads(last["arch_json"]) == json.loads(json.dumps(arch.to_json()))


def test_searcher_keeps_two_objectives_and_asha_accepts_the_backend_metric(prepared):
    pytest.importorskip("ray")
    backend, _ = prepared
    searcher = backend.search_alg(16, 0)
    assert searcher.set_search_properties(backend.metric, backend.mode, backend.param_space())
    assert searcher.metric == ["val_acc", "buffer_bits"]
    assert [d.name for d in searcher._ot_study.directions] == ["MAXIMIZE", "MINIMIZE"]
    warm = warm_start_points(MSG_SPACE)
    assert [searcher.suggest(f"t{i}") for i in range(4)] == warm  # 16 trials: 4 warm-start points first
    assert warm[1] == dict(warm[0], **{"l0.input": 1})
    assert searcher.suggest("t4")["l0.input"] in (1, 8, 32)
    asha = backend.scheduler()
    assert asha.set_search_properties(backend.metric, backend.mode)  # the orchestrator's TuneConfig
    assert not asha.set_search_properties("test_acc", "max")  # never another metric
    assert asha._max_t == backend.num_reports() == 3


def test_a_small_ray_tune_run_records_every_trial_and_the_baselines(prepared, tmp_path):
    pytest.importorskip("ray")
    from lpgnas.search import BASELINES, read_results
    from lpgnas.search._tune import run_tune

    backend, _ = prepared
    quick = dataclasses.replace(backend, finetune_epochs=2, chunk=1, grace_period=1, reduction_factor=2)
    out = str(tmp_path / "run")
    outcome = run_tune(quick, out=out, trials=3, num_cpus=2, seed=0, max_failures=0)
    results = read_results(out)
    # every report is a complete record, so trials stopped early by ASHA are recorded too
    assert len(results) == 3 and not outcome.failed and not outcome.skipped
    for r in results:
        assert r.backend == "abs" and 0.0 < r.val_acc <= 1.0 and r.buffer_bits <= r.fp32_buffer_bits
        assert set(abs_choices(MSG_SPACE)) <= set(r.config) and "bits" in r.extra
    base = {r.trial_id: r for r in read_results(out, log=BASELINES)}
    assert list(base) == ["fp32-gcn", "w8a8-gcn", "w4a8-gcn", "w4a4-gcn"]
    assert all(r.backend == "baseline" for r in base.values())
    assert base["fp32-gcn"].buffer_bits == base["fp32-gcn"].fp32_buffer_bits
    assert base["w4a4-gcn"].buffer_bits < base["w8a8-gcn"].buffer_bits < base["fp32-gcn"].buffer_bits
    assert base["w4a8-gcn"].model_size_bits < base["w8a8-gcn"].model_size_bits


# --------------------------------------------------------------------------------------------------
# bucket_bits="component": a bit table per layer x component (SGQuant's full granularity)


def _component_params(space, bits, **over):
    params = {k: bits for k in abs_choices(space, "component")}
    params.update({k.replace("_", "."): v for k, v in over.items()})
    return params


def test_component_bucket_keys_replace_the_shared_table():
    space = load_space("sgquant")
    keys = set(abs_choices(space, "component"))
    assert {"l0.weight", "l1.weight"} <= keys and not any(k.startswith("deg.") for k in keys)
    for i in (0, 1):
        for c in ("input", "message", "aggregate"):
            assert f"l{i}.{c}" not in keys
            assert {f"l{i}.{c}.b{k}" for k in range(4)} <= keys
    assert len(keys) == 2 + 2 * 3 * 4


@pytest.mark.parametrize("per_bucket, spec_bits, table", [
    ((8, 8, 4, 2), 8, (8, 8, 4, 2)),
    ((4, 4, 4, 4), 4, None),            # uniform: no table needed
    ((32, 8, 8, 2), 32, (32, 8, 8, 2)),  # widest bucket in full precision, the others narrowed
])
def test_component_bucket_bits_become_per_override_tables(per_bucket, spec_bits, table):
    space = load_space("sgquant")
    over = {f"l1_message_b{k}": b for k, b in enumerate(per_bucket)}
    params = _component_params(space, 32, l0_input_b0=1, l0_input_b1=1, l0_input_b2=1, l0_input_b3=1, **over)
    cfg = abs_quant_config(space, params, "component")
    assert cfg.degree_bits is None
    assert cfg.spec(1, "message").bits == spec_bits and cfg.spec(1, "message").method == "affine"
    got = cfg.degree_table(1, "message")
    assert (got.bits if got is not None else None) == table
    assert cfg.degree_table(0, "input") is None and cfg.spec(0, "input").bits == 1
    assert cfg.spec(0, "aggregate").is_fp32
    assert bit_summary(space, params, "component")["l1.message"] == list(per_bucket)


def test_component_bucket_bits_reach_the_built_quantisers():
    space = load_space("sgquant")
    params = _component_params(space, 32, l0_aggregate_b0=8, l0_aggregate_b1=8, l0_aggregate_b2=4,
                               l0_aggregate_b3=2)
    arch = abs_architecture(space, params, 7, "component")
    model = GNN(arch, 5, 7, num_nodes=6, rngs=nnx.Rngs(0))
    deg = jnp.asarray([0, 1, 2, 3, 7, 8], jnp.int32)  # buckets 0 0 1 1 2 3
    q = model.layers[0].q_aggregate
    assert float(Q.avg_bits(q, deg)) == pytest.approx((8 + 8 + 8 + 8 + 4 + 2) / 6)
    assert model.layers[1].q_aggregate is Q.identity


def test_bad_bucket_bits_is_refused():
    with pytest.raises(ConfigError) as e:
        AbsBackend(space="sgquant", dataset="cora", bucket_bits="layer")
    assert e.value.field == "--bucket-bits"
    b = AbsBackend(space="sgquant", dataset="cora", bucket_bits="component", with_baselines=False)
    assert AbsBackend.from_json(json.loads(json.dumps(b.describe()))).bucket_bits == "component"
