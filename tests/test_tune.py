"""``lpgnas tune`` on Ray Tune: a tiny differentiable tune end to end (one record per trial, each
architecture reads back and retrains), resuming a finished run re-runs and re-records nothing, a
trial missing from the log is recorded on resume, and bad input is refused with exit code 2.

One embedded Ray serves the whole module (run_tune uses a Ray that this process initialised)."""

import contextlib
import dataclasses
import io
import json
import logging
import math
import os
import shutil
import warnings

import numpy as np
import pytest

from lpgnas import cli
from lpgnas.arch import read_architecture
from lpgnas.errors import ConfigError, DataError
from lpgnas.search import METRICS, read_results
from lpgnas.search._differentiable import DifferentiableBackend
from lpgnas.search._tune import TUNE_FILE, read_tune, result_from_report

# Ray tests start Ray instances; under pytest-xdist they share one worker, one after another.
pytestmark = pytest.mark.xdist_group("ray")

SYNTH = "synthetic:nodes=200,edges=1200,classes=3,features=8,seed=0"
# 2 trials (the lambda grid), tiny search and retraining, one baseline; one trial at a time (the
# second reuses the first one's worker and its compiled programs).
TINY = ["tune", "--space", "tiny", "--dataset", SYNTH, "--grid", "--lambdas", "0.1,3", "--trials", "1",
        "--epochs", "5", "--finetune", "2", "--retrain-seeds", "1", "--retrain-epochs", "5",
        "--max-concurrent", "1"]


def _main(argv):
    """``lpgnas`` in this process: ``(exit code, stdout, stderr)``."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(argv)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def ray_session():
    ray = pytest.importorskip("ray")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called", category=RuntimeWarning)
        ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level=logging.ERROR,
                 log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def tuned(ray_session, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("tune") / "run")
    code, stdout, stderr = _main([*TINY, "--baselines", "fp32-gcn", "--out", out, "--json"])
    assert code == 0, stderr
    return out, json.loads(stdout.strip().splitlines()[-1])


def test_every_trial_is_recorded_once_with_all_metrics(tuned):
    out, summary = tuned
    with open(os.path.join(out, "results.jsonl")) as f:
        lines = [json.loads(line) for line in f if line.strip()]
    assert len(lines) == 2 and len({r["trial_id"] for r in lines}) == 2
    assert summary["trials_recorded"] == 2 and summary["recorded_now"] == 2
    assert summary["trials_skipped"] == 0 and summary["trials_failed"] == 0
    assert sorted(r["config"]["lambda"] for r in lines) == [0.1, 3.0]
    for rec in lines:
        assert all(isinstance(rec[m], float) and math.isfinite(rec[m]) for m in METRICS)
        assert 0.0 <= rec["val_acc"] <= 1.0 and 0.0 <= rec["test_acc"] <= 1.0
        assert 0 < rec["model_size_bits"] <= rec["fp32_model_size_bits"]
        assert rec["backend"] == "differentiable" and rec["dataset"] == SYNTH and rec["node"]
        assert rec["name"].startswith(f"lambda={rec['config']['lambda']:g} ")
        assert rec["extra"]["val_accs"] == [rec["val_acc"]]
    assert any(r["model_size_bits"] < r["fp32_model_size_bits"] for r in lines)  # the tiny space quantises
    assert [r.trial_id for r in read_results(out)] == [r["trial_id"] for r in lines]
    spec = read_tune(out)
    assert spec["backend"] == "differentiable" and spec["trials"] == 1 and spec["storage"] == "ray"
    assert os.path.isdir(os.path.join(out, "ray", spec["experiment"]))


def test_trial_architectures_read_back_and_retrain(tuned):
    out, summary = tuned
    for rec in summary["results"]:
        path = os.path.join(out, "trials", rec["trial_id"], "arch.json")
        arch = read_architecture(path)
        assert arch.search["lambda"] == rec["config"]["lambda"]
        assert arch.search["retrain"]["val_acc"] == pytest.approx(rec["val_acc"])
        with open(os.path.join(out, "trials", rec["trial_id"], "metrics.json")) as f:
            assert json.load(f) == rec
    code, stdout, stderr = _main(["train", "--arch", path, "--dataset", SYNTH, "--epochs", "2", "--seeds", "1",
                                  "--json"])
    assert code == 0, stderr
    assert json.loads(stdout.strip().splitlines()[-1])["model_size_bits"] == summary["results"][-1]["model_size_bits"]


def test_baseline_is_recorded_apart(tuned):
    out, summary = tuned
    base = read_results(out, log="baselines.jsonl")
    assert [b.trial_id for b in base] == ["fp32-gcn"] and base[0].backend == "baseline"
    assert base[0].model_size_bits == base[0].fp32_model_size_bits  # full precision
    assert read_architecture(os.path.join(out, "trials", "fp32-gcn", "arch.json")).quant is None
    assert [b["trial_id"] for b in summary["baselines"]] == ["fp32-gcn"]


def test_resume_of_a_finished_run_reruns_nothing(tuned):
    out, _ = tuned
    before = open(os.path.join(out, "results.jsonl")).read()
    base_before = open(os.path.join(out, "baselines.jsonl")).read()
    code, stdout, stderr = _main(["tune", "--resume", out, "--json"])
    assert code == 0, stderr
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert summary["recorded_now"] == 0 and summary["trials_recorded"] == 2
    assert open(os.path.join(out, "results.jsonl")).read() == before
    assert open(os.path.join(out, "baselines.jsonl")).read() == base_before
    assert len(read_tune(out)["resumed"]) >= 1


def test_resume_records_a_finished_trial_the_log_lacks(tuned, tmp_path):
    # the driver died between a trial's end and its record: a moved copy of the run, last line cut
    out = str(tmp_path / "copy")
    shutil.copytree(tuned[0], out)
    path = os.path.join(out, "results.jsonl")
    lines = open(path).read().splitlines(keepends=True)
    with open(path, "w") as f:
        f.writelines(lines[:-1])
    shutil.rmtree(os.path.join(out, "trials", json.loads(lines[-1])["trial_id"]))
    code, stdout, stderr = _main(["tune", "--out", out, "--resume", "--json"])
    assert code == 0, stderr
    assert json.loads(stdout.strip().splitlines()[-1])["recorded_now"] == 1
    again = open(path).read().splitlines()
    assert [json.loads(x)["trial_id"] for x in again] == [json.loads(x)["trial_id"] for x in lines]
    assert os.path.isfile(os.path.join(out, "trials", json.loads(lines[-1])["trial_id"], "arch.json"))


# -- refusals (no trial runs) -------------------------------------------------------------------------


@pytest.mark.parametrize("extra, flag", [
    (["--trials", "0"], "--trials"),
    (["--lambdas", "a,b"], "--lambdas"),
    (["--lambdas", "0.1,-1"], "--lambdas"),
    (["--lambda-range", "3:1"], "--lambda-range"),
    (["--cost", "latency"], "--cost"),
    (["--epochs", "0"], "--epochs"),
    (["--baselines", "fp32-gin"], "--baselines"),
    (["--retrain-weight-decay", "-1"], "--retrain-weight-decay"),
    (["--retrain-recipes", "gcn,mlp"], "--retrain-recipes"),
])
def test_bad_flags_exit_2_naming_the_flag(tmp_path, extra, flag):
    out = tmp_path / "run"
    base = [a for a in TINY if a not in ("--grid", "--lambdas", "0.1,3")] if "--lambda-range" in extra else TINY
    if "--baselines" not in extra:
        base = [*base, "--no-baselines"]
    code, _, stderr = _main([*base, "--out", str(out), *extra])
    assert code == 2 and flag in stderr and "Traceback" not in stderr
    assert not out.exists()


@pytest.mark.parametrize("space, dataset, needle", [
    ("no-such-space", SYNTH, "no-such-space"),
    ("tiny", "no-such-dataset", "--dataset"),
])
def test_unknown_space_or_dataset_exits_2(tmp_path, space, dataset, needle):
    out = tmp_path / "run"
    code, _, stderr = _main(["tune", "--space", space, "--dataset", dataset, "--out", str(out), "--no-baselines"])
    assert code == 2 and needle in stderr and "Traceback" not in stderr
    assert not out.exists()


def test_out_holding_another_tune_or_files_is_refused(tuned, tmp_path):
    out, _ = tuned
    before = sorted(os.listdir(out))
    code, _, stderr = _main([*TINY, "--baselines", "fp32-gcn", "--out", out])
    assert code == 2 and "--out" in stderr and "--resume" in stderr  # the same tune: resume it
    code, _, stderr = _main([*TINY, "--baselines", "fp32-gcn", "--epochs", "7", "--out", out])
    assert code == 2 and "different tune" in stderr
    code, _, stderr = _main(["tune", "--resume", out, "--epochs", "7"])
    assert code == 2 and "epochs" in stderr
    assert sorted(os.listdir(out)) == before
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    code, _, stderr = _main([*TINY, "--out", str(other)])
    assert code == 2 and "--out" in stderr and "not empty" in stderr


@pytest.mark.parametrize("argv", [["--resume"], ["--resume", "{d}"], ["--out", "{d}", "--resume"]])
def test_resume_without_a_tune_is_refused(tmp_path, argv):
    argv = [a.format(d=tmp_path) for a in argv]
    code, _, stderr = _main(["tune", *argv])
    assert code == 2 and "--resume" in stderr and "Traceback" not in stderr


# -- pieces ---------------------------------------------------------------------------------------------


def _report(**over):
    from lpgnas.arch import baseline

    rep = {m: 1.0 for m in METRICS}
    rep.update(val_acc=0.5, arch_json=json.dumps(baseline("gcn", num_classes=3).to_json()), node="n1",
               name="x", extra=json.dumps({"k": 1}))
    rep.update(over)
    return {k: v for k, v in rep.items() if v is not None}


@pytest.mark.parametrize("drop", ["val_acc", "bitops", "seconds", "arch_json"])
def test_a_report_without_the_final_keys_is_not_a_record(drop):
    assert result_from_report("t1", {}, _report(**{drop: None}), backend="b", dataset="d") is None


def test_a_final_report_becomes_a_record_with_json_safe_config():
    config = {"lambda": np.float64(0.3), "seed": np.int64(4), "cost": "size"}
    result, arch = result_from_report("t1", config, _report(), backend="differentiable", dataset="cora")
    assert result.trial_id == "t1" and result.val_acc == 0.5 and result.dataset == "cora"
    assert json.dumps(result.to_json())  # plain JSON
    assert result.config == {"lambda": 0.3, "seed": 4, "cost": "size"} and type(result.config["seed"]) is int
    assert result.extra == {"k": 1} and arch.layers[0].op == "gcn"
    with pytest.raises(DataError, match="t1"):
        result_from_report("t1", {}, _report(arch_json="{"), backend="b", dataset="d")


@pytest.mark.parametrize("kw, field", [
    (dict(lambdas=()), "lambdas"),
    (dict(lambdas=(0.1,), lambda_range=(0.1, 1.0)), "lambdas"),
    (dict(lambdas=None, lambda_range=(0.1, 1.0), grid=True), "grid"),
    (dict(costs=("size", "energy")), "costs"),
    (dict(seeds=(-1,)), "seeds"),
    (dict(retrain_seeds=0), "retrain_seeds"),
    (dict(temperature=(1.0, 0.0)), "temperature"),
    (dict(space=("tiny", "")), "space"),
    (dict(space=("tiny", "tiny")), "space"),
    (dict(space="tiny,,small"), "space"),
    (dict(space=("tiny", "  ")), "space"),
    (dict(space=()), "space"),
    (dict(split="bogus"), "split"),
    (dict(split="Random"), "split"),
    (dict(retrain_weight_decay=-1e-4), "retrain_weight_decay"),
    (dict(retrain_weight_decay=float("nan")), "retrain_weight_decay"),
    (dict(retrain_recipes=()), "retrain_recipes"),
    (dict(retrain_recipes=("gcn", "bogus")), "retrain_recipes"),
    (dict(retrain_recipes=("gat", "gat")), "retrain_recipes"),
])
def test_backend_settings_are_validated(kw, field):
    with pytest.raises(ConfigError) as e:
        DifferentiableBackend(dataset=SYNTH, **kw)
    assert e.value.field == field


@pytest.mark.parametrize("kw, model, want", [
    (dict(), "gcn", (200, 5e-4)),
    (dict(retrain_epochs=700), "gcn", (700, 5e-4)),
    (dict(retrain_weight_decay=0.0), "gcn", (200, 0.0)),
    (dict(retrain_epochs=50, retrain_weight_decay=1e-5), "gat", (50, 1e-5)),
])
def test_retraining_set_up_overrides_apply_to_trials_and_baselines(kw, model, want):
    b = DifferentiableBackend(dataset=SYNTH, **kw)
    cfg = b._train_config("node", model)
    assert (cfg.epochs, cfg.weight_decay) == want
    settings = json.loads(json.dumps(b.describe()))
    assert ("retrain_weight_decay" in settings) == ("retrain_weight_decay" in kw)
    assert DifferentiableBackend.from_json(settings) == b


def test_backend_settings_round_trip_and_param_space():
    pytest.importorskip("ray")
    b = DifferentiableBackend(space="tiny", dataset=SYNTH, lambdas=(0.1, 1.0), seeds=(0, 1), costs=("size",),
                              grid=True, data_root="rel/data")
    assert os.path.isabs(b.data_root)
    settings = json.loads(json.dumps(b.describe()))
    assert DifferentiableBackend.from_json(settings) == b
    space = b.param_space()
    assert space["lambda"] == {"grid_search": [0.1, 1.0]} and space["seed"] == {"grid_search": [0, 1]}
    assert space["cost"] == {"grid_search": ["size"]}
    ranged = DifferentiableBackend(dataset=SYNTH, lambda_range=(0.01, 1.0)).param_space()
    assert ranged["cost"] == "size" and 0.01 <= ranged["lambda"].sample() <= 1.0


@pytest.mark.parametrize("space, spaces", [
    ("tiny", ("tiny",)),
    ("tiny,small", ("tiny", "small")),
    ((" tiny", "small "), ("tiny", "small")),
    (["tiny"], ("tiny",)),
])
def test_space_variants_are_drawn_per_trial(space, spaces):
    pytest.importorskip("ray")
    b = DifferentiableBackend(space=space, dataset=SYNTH)
    assert b.spaces == spaces
    assert DifferentiableBackend.from_json(json.loads(json.dumps(b.describe()))) == b
    drawn = b.param_space().get("space")
    if len(spaces) == 1:
        assert drawn is None  # a single space is not a trial parameter (names and configs stay as before)
    else:
        assert sorted(drawn.categories) == sorted(spaces)
    grid = DifferentiableBackend(space=space, dataset=SYNTH, lambdas=(0.1,), grid=True).param_space()
    assert grid.get("space", {"grid_search": list(spaces)}) == {"grid_search": list(spaces)}


def test_a_space_path_variant_is_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    b = DifferentiableBackend(space="tiny,spaces/mine.yaml", dataset=SYNTH)
    assert b.spaces == ("tiny", str(tmp_path / "spaces" / "mine.yaml"))


@pytest.mark.parametrize("split, searched", [
    (None, ("public", None)),     # the default: the dataset's fixed split
    ("random", ("random", 3)),    # drawn with the trial's seed; the retraining re-draws it per seed
])
def test_a_trial_runs_the_space_and_split_it_drew(split, searched):
    b = DifferentiableBackend(space="tiny,small", dataset=SYNTH, epochs=2, finetune=1, retrain_seeds=1,
                              retrain_epochs=2, baseline_ids=(), split=split)
    report = b.run_trial({"lambda": 1.0, "seed": 3, "cost": "size", "space": "small"})
    arch = json.loads(report["arch_json"])
    assert arch["search"]["space"] == "small" and report["name"].endswith("space=small")
    assert (arch["search"]["split"], arch["search"]["split_seed"]) == searched
    assert arch["search"]["retrain"]["split"] == json.loads(report["extra"])["split"] == searched[0]
    with pytest.raises(ConfigError, match="not one of"):
        b.run_trial({"lambda": 1.0, "seed": 0, "cost": "size", "space": "lpgnas"})


def _fake_retrain(vals):
    """A ``_retrain`` that trains nothing: each recipe, told apart by the epochs of the training set-up
    it is given (GCN's 200, GAT's 400), gets its validation accuracy from ``vals``; the runs remember
    the dropout they were given."""
    from lpgnas.train import RunResult

    def retrain(self, arch, obj, arrays, label, config):
        model = {200: "gcn", 400: "gat"}[config.epochs]
        return [RunResult(seed=0, val_acc=vals[model], test_acc=arch.dropout, train_acc=0.0, best_epoch=0,
                          epochs=1, train_seconds=0.0, compile_seconds=0.0)]
    return retrain


@pytest.mark.parametrize("recipes, model, vals, want", [
    (("gcn", "gat"), None, {"gcn": 0.7, "gat": 0.8}, ("gat", 0.6, 400)),
    (("gcn", "gat"), None, {"gcn": 0.8, "gat": 0.8}, ("gcn", 0.5, 200)),       # a tie keeps the earlier one
    (("gcn",), "gat", {"gcn": 0.75, "gat": 0.7}, ("gcn", 0.5, 200)),          # a baseline also tries its own
    (("gcn",), "gat", {"gcn": 0.7, "gat": 0.7}, ("gat", 0.6, 400)),           # ... first
])
def test_retraining_keeps_the_recipe_best_on_validation(monkeypatch, recipes, model, vals, want):
    from lpgnas.arch import baseline

    b = DifferentiableBackend(dataset=SYNTH, retrain_recipes=recipes)
    monkeypatch.setattr(DifferentiableBackend, "_retrain", _fake_retrain(vals))
    arch, runs, chosen = b._retrain_best(baseline("gcn", num_classes=3), None, None, "public", model=model)
    assert (chosen["recipe"], arch.dropout, chosen["epochs"]) == want
    assert runs[0].test_acc == arch.dropout  # the runs of the kept recipe, trained with its dropouts
    assert set(chosen["recipe_val_acc"]) == set(recipes) | ({model} if model else set())
    settings = json.loads(json.dumps(b.describe()))
    assert settings["retrain_recipes"] == list(recipes) and DifferentiableBackend.from_json(settings) == b


def test_a_trial_records_the_recipe_it_kept(tmp_path):
    from lpgnas.arch import Architecture, write_architecture
    from lpgnas.train import recorded_recipe

    b = DifferentiableBackend(space="tiny", dataset=SYNTH, epochs=2, finetune=1, retrain_seeds=1, retrain_epochs=2,
                              baseline_ids=(), retrain_recipes=("gcn", "gat"))
    report = b.run_trial({"lambda": 1.0, "seed": 0, "cost": "size"})
    arch = Architecture.from_json(json.loads(report["arch_json"]))
    retrain = arch.search["retrain"]
    assert set(retrain["recipe_val_acc"]) == {"gcn", "gat"}
    assert retrain["recipe_val_acc"][retrain["recipe"]] == max(retrain["recipe_val_acc"].values())
    assert arch.dropout == {"gcn": 0.5, "gat": 0.6}[retrain["recipe"]]
    assert json.loads(report["extra"])["recipe"] == retrain["recipe"]
    write_architecture(arch, str(tmp_path / "arch.json"))
    assert recorded_recipe(read_architecture(str(tmp_path / "arch.json"))) == retrain["recipe"]


def test_without_recipes_the_architecture_trains_as_derived(monkeypatch):
    from lpgnas.arch import baseline

    b = DifferentiableBackend(dataset=SYNTH)
    assert "retrain_recipes" not in b.describe()  # tunes from before the setting resume
    monkeypatch.setattr(DifferentiableBackend, "_retrain", _fake_retrain({"gcn": 0.5, "gat": 0.5}))
    arch = dataclasses.replace(baseline("gcn", num_classes=3), dropout=0.3)
    kept, _, chosen = b._retrain_best(arch, None, None, "public")
    assert kept is arch and chosen == {"epochs": 200}
    assert b._retrain_best(arch, None, None, "public", model="gat")[2] == {"epochs": 400}


@pytest.mark.parametrize("split, label, want", [
    (None, "public", ("public", None)),          # the default: one fixed split for the whole tune
    (None, "random-0", ("random", 0)),           # ... a random one with seed 0 where there is no public one
    ("random", "public", ("random", None)),      # drawn with each trial's search seed
    ("per-class", "random-0", ("per-class", None)),
    ("public", "random-0", "no public split"),
    (None, "fold 0 of 10", (None, None)),        # graph tasks
    ("random", "fold 0 of 10", "node-level"),
])
def test_the_split_a_trial_searches(split, label, want):
    b = DifferentiableBackend(dataset=SYNTH, split=split)
    if isinstance(want, str):
        with pytest.raises(ConfigError, match=want) as e:
            b._search_split(label)
        assert e.value.field == "split"
    else:
        assert b._search_split(label) == want


def test_split_setting_round_trips_and_the_default_is_not_written():
    assert "split" not in DifferentiableBackend(dataset=SYNTH).describe()  # tunes from before it resume
    b = DifferentiableBackend(dataset=SYNTH, split="per-class")
    assert b.describe()["split"] == "per-class"
    assert DifferentiableBackend.from_json(json.loads(json.dumps(b.describe()))) == b


@pytest.mark.parametrize("extra, needle", [
    (["--split", "bogus"], None),                           # argparse: exit 2
    (["--backend", "abs", "--split", "random"], "--split"),  # the abs backend uses the public split
])
def test_bad_split_flags_exit_2(tmp_path, extra, needle):
    out = tmp_path / "run"
    argv = ["tune", "--space", "tiny", "--dataset", SYNTH, "--out", str(out), "--no-baselines", *extra]
    if needle is None:
        with pytest.raises(SystemExit) as e:
            _main(argv)
        assert e.value.code == 2
    else:
        code, _, stderr = _main(argv)
        assert code == 2 and needle in stderr and "Traceback" not in stderr
    assert not out.exists()


def test_tune_json_must_be_a_tune(tmp_path):
    with pytest.raises(DataError, match=TUNE_FILE):
        read_tune(str(tmp_path))
    (tmp_path / TUNE_FILE).write_text('{"schema": "other"}')
    with pytest.raises(DataError, match="lpgnas.tune/v1"):
        read_tune(str(tmp_path))


@pytest.mark.parametrize("address", ["127.0.0.1:1", "not-an-address"])
def test_an_unreachable_address_fails_fast(address):
    from lpgnas.search._tune import _probe

    with pytest.raises(ConfigError) as e:
        _probe(address, timeout=2.0)
    assert e.value.field == "--address"


def test_the_recorder_pickles_by_reference():
    pytest.importorskip("ray")
    import pickle

    from lpgnas.search import _tune

    rec = _tune._recorder()
    assert type(pickle.loads(pickle.dumps(rec))) is _tune._Recorder


class _FakeBackend:
    """A backend whose trials fail (``raise``) or end without a final report (``partial``)."""

    name, metric, mode = "fake", "val_acc", "max"

    def __init__(self, kind):
        self.kind = kind

    def describe(self):
        return {"dataset": "none", "kind": self.kind}

    def prepare(self, out):
        pass

    def param_space(self):
        return {"x": 1}

    def trainable(self):
        kind = self.kind

        def fake_trial(config):  # a closure: shipped to the worker by value
            from ray import tune

            if kind == "raise":
                raise RuntimeError("boom")
            tune.report({"val_acc": 0.5})

        return fake_trial

    def search_alg(self, num_samples, seed):
        return None

    def scheduler(self):
        return None

    def baselines(self, out):
        return []


@pytest.mark.parametrize("kind", ["raise", "partial"])
def test_failed_and_unfinished_trials_are_counted_not_recorded(ray_session, tmp_path, kind):
    from lpgnas.search._tune import run_tune

    outcome = run_tune(_FakeBackend(kind), out=str(tmp_path / "run"), trials=1, max_failures=0)
    assert outcome.results == [] and outcome.recorded == 0
    assert len(outcome.failed if kind == "raise" else outcome.skipped) == 1
    assert (outcome.skipped if kind == "raise" else outcome.failed) == []
    assert not os.path.exists(tmp_path / "run" / "results.jsonl")
