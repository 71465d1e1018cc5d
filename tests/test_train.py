"""The trainers: learning happens, selection is on validation, seeds share one compile."""

import dataclasses

import numpy as np
import pytest

from lpgnas import data as D
from lpgnas.arch import baseline
from lpgnas.errors import ConfigError
from lpgnas.train import (TRAIN_DEFAULTS, TrainConfig, apply_recipe, node_arrays, recorded_recipe, recipes,
                          summarize, train_graph, train_node)


@pytest.fixture(scope="module")
def small_graph():
    return D.load_dataset("synthetic:nodes=400,edges=4000,classes=3,features=16,homophily=0.9,seed=1")


def test_node_training_learns_and_is_deterministic(small_graph):
    arch = baseline("gcn", num_classes=small_graph.num_classes)
    cfg = TrainConfig(epochs=60, patience=1000, chunk=20)
    r1, model = train_node(arch, small_graph, seed=0, config=cfg)
    r2, _ = train_node(arch, small_graph, seed=0, config=cfg)
    assert r1.val_acc > 0.8 and r1.test_acc > 0.8  # chance is 1/3
    assert (r1.val_acc, r1.test_acc, r1.best_epoch) == (r2.val_acc, r2.test_acc, r2.best_epoch)
    assert r2.compile_seconds < 0.5 * max(r1.compile_seconds, 1e-3) or r2.compile_seconds < 0.05
    assert r1.epochs == 60


def test_early_stopping_respects_patience(small_graph):
    arch = baseline("gcn", num_classes=small_graph.num_classes)
    r, _ = train_node(arch, small_graph, seed=0, config=TrainConfig(epochs=500, patience=5, chunk=10, lr=0.05))
    assert r.epochs < 500
    assert r.best_epoch < r.epochs


def test_selected_model_reproduces_reported_validation_accuracy(small_graph):
    import jax.numpy as jnp

    arch = baseline("gat", num_classes=small_graph.num_classes, hidden=4, heads=2)
    r, model = train_node(arch, small_graph, seed=3, config=TrainConfig(epochs=40, patience=1000, chunk=20))
    x, ga = node_arrays(small_graph)
    logits = model(x, ga)
    val = small_graph.split.val
    acc = float(jnp.mean((jnp.argmax(logits[val], -1) == small_graph.labels[val]).astype(jnp.float32)))
    assert acc == pytest.approx(r.val_acc, abs=1e-6)


def test_cora_gcn_reaches_published_accuracy(data_root):
    graph = D.load_dataset("cora", data_root)
    graph = graph.with_features(D.row_normalize(graph.features))
    arch = baseline("gcn", num_classes=graph.num_classes)
    cfg = TrainConfig(epochs=200, lr=0.01, weight_decay=5e-4, weight_decay_scope="first", patience=200)
    r, _ = train_node(arch, graph, seed=0, config=cfg)
    assert r.test_acc >= 0.79 and r.val_acc >= 0.77


def test_graph_training_on_mutag_fold(data_root):
    ds = D.load_dataset("mutag", data_root)
    split = D.kfold_splits(ds.labels, k=10, seed=0, folds=ds.folds)[0]
    arch = baseline("gin", task="graph", hidden=32, num_layers=3)
    r, _ = train_graph(arch, ds, split, seed=0, config=TrainConfig(epochs=15, patience=100, lr=0.01, batch_size=32))
    assert r.val_acc >= 0.7  # majority class is 66%
    assert r.epochs == 15


def test_summarize_reports_percent_mean_and_std():
    from lpgnas.train import RunResult

    runs = [RunResult(seed=i, val_acc=v, test_acc=t, train_acc=1.0, best_epoch=1, epochs=10, train_seconds=s,
                      compile_seconds=0.5) for i, (v, t, s) in enumerate([(0.8, 0.7, 1.0), (0.6, 0.9, 3.0)])]
    s = summarize(runs)
    assert s.test_acc_mean == pytest.approx(80.0)
    assert s.test_acc_std == pytest.approx(10.0)
    assert s.val_acc_mean == pytest.approx(70.0)
    assert s.train_seconds_median == pytest.approx(2.0)
    assert set(s.to_json()) >= {"test_acc_mean", "test_acc_std", "val_acc_mean", "epochs", "train_seconds_median",
                                "compile_seconds"}


def test_config_is_hashable_for_program_cache():
    cfg = TrainConfig()
    assert hash(cfg) == hash(dataclasses.replace(cfg))
    assert np.isfinite(cfg.lr)


def test_lazily_initialised_quantiser_steps_are_learned(small_graph):
    from lpgnas.quant import QuantConfig, QuantSpec

    arch = dataclasses.replace(baseline("gcn", num_classes=small_graph.num_classes),
                               quant=QuantConfig(default=QuantSpec("lsq", 4, signed=False), name="lsq4"))
    _, model = train_node(arch, small_graph, seed=0, config=TrainConfig(epochs=20, patience=1000, chunk=10))
    step = float(np.asarray(model.layers[0].q_aggregate.step[...]).ravel()[0])
    assert step > 0.0


@pytest.mark.parametrize("name, task, dropouts", [
    ("gcn", "node", (0.5, 0.5, 0.0)),
    ("gat", "node", (0.6, 0.6, 0.6)),
    ("appnp", "node", (0.5, 0.5, 0.0)),
    ("gin", "graph", (0.5, 0.0, 0.0)),
])
def test_a_recipe_sets_dropouts_and_optimisation_but_keeps_the_layers(name, task, dropouts):
    arch = dataclasses.replace(baseline("sage", task=task, num_classes=3), dropout=0.1, input_dropout=0.2)
    trained, config = apply_recipe(arch, name)
    assert (trained.dropout, trained.input_dropout, trained.attn_dropout) == dropouts
    assert trained.layers == arch.layers and trained.task == task
    assert config == TRAIN_DEFAULTS[(name, task)] and config is not TRAIN_DEFAULTS[(name, task)]
    assert name in recipes(task) and name in recipes() and recipes() == tuple(sorted(set(recipes())))


@pytest.mark.parametrize("name, task", [("appnp", "graph"), ("mlp", "node")])
def test_an_unknown_recipe_names_the_field_and_the_choices(name, task):
    with pytest.raises(ConfigError) as e:
        apply_recipe(baseline("gin", task=task, num_classes=3), name)
    assert e.value.field == "recipe" and ", ".join(recipes(task)) in e.value.problem


@pytest.mark.parametrize("search, want", [
    (None, None),
    ({"retrain": {"recipe": "gat"}}, "gat"),
    ({"retrain": {"seeds": 3}}, None),
    ({"retrain": {"recipe": "bogus"}}, None),
    ({"retrain": "gat"}, None),
])
def test_the_recipe_a_tune_recorded(search, want):
    arch = dataclasses.replace(baseline("gcn", num_classes=3), search=search)
    assert recorded_recipe(arch) == want


@pytest.mark.parametrize("quant, own, want", [
    (None, None, None),  # FP32: nothing to mask
    ("int4", None, None),  # naive QAT: no mask
    ("dq-int4", None, (0.1, 0.2)),  # the preset's masking reaches the trainer
    ("dq-int8", None, (0.0, 0.1)),
    ("dq-int4", (0.3, 0.4), (0.3, 0.4)),  # an explicit setting is kept
])
def test_with_arch_masking_takes_the_architectures_degree_quant_setting(quant, own, want):
    from lpgnas import quant as Q
    from lpgnas.arch import baseline
    from lpgnas.train import TrainConfig, with_arch_masking

    arch = baseline("gcn", num_classes=3)
    if quant is not None:
        arch = dataclasses.replace(arch, quant=Q.QuantConfig.preset(quant))
    assert with_arch_masking(TrainConfig(dq=own), arch).dq == want
