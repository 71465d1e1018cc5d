"""Pareto fronts of tune runs: dominance, hypervolume, knee, the export selector, and the ``pareto`` /
``export`` commands on a run directory built with ``record_trial`` (plus one retrain of an export)."""

import csv
import dataclasses
import itertools
import json
import math
import os
import shutil

import importlib.resources

import jsonschema
import numpy as np
import pytest

from lpgnas import pareto as P
from lpgnas.arch import baseline, read_architecture
from lpgnas.cli import main
from lpgnas.errors import ConfigError
from lpgnas.quant import QuantConfig
from lpgnas.search import BASELINES, TrialResult, read_trial_arch, record_trial

ACC_SIZE = P.parse_objectives("val_acc:max,model_size_bits:min")
ACC_SIZE_OPS = P.parse_objectives("val_acc:max,model_size_bits:min,bitops:min")
SCHEMA_VALIDATOR = jsonschema.Draft202012Validator(
    json.loads((importlib.resources.files("lpgnas") / "arch_schema.json").read_text()))
COSTS3 = P.parse_objectives("model_size_bits:min,buffer_bits:min,bitops:min")


def _r(tid, val=0.8, size=1e5, bitops=1e9, *, test=None, buffer=1e6, backend="abs", dataset="cora", name=None):
    return TrialResult(trial_id=tid, backend=backend, dataset=dataset, val_acc=val,
                       test_acc=val if test is None else test, model_size_bits=size, buffer_bits=buffer,
                       bitops=bitops, fp32_model_size_bits=7.4e5, fp32_buffer_bits=1.6e7, fp32_bitops=9e9,
                       name=tid if name is None else name)


def _ids(points):
    return [p.trial_id for p in points]


# -- objectives ---------------------------------------------------------------------------------------


def test_parse_objectives_reads_names_and_senses():
    assert P.parse_objectives(" val_acc:max , feature_compression:max,bitops:min") == (
        P.Objective("val_acc", "max"), P.Objective("feature_compression", "max"), P.Objective("bitops", "min"))
    assert str(ACC_SIZE[1]) == "model_size_bits:min"


@pytest.mark.parametrize("spec, words", [
    ("val_acc:max", "at least two"),
    ("val_acc:max,size:min", "unknown metric 'size'"),
    ("val_acc:up,model_size_bits:min", "max or min"),
    ("val_acc:max,val_acc:min", "twice"),
    ("val_acc,model_size_bits:min", "no sense"),
    ("", "expected a list"),
])
def test_parse_objectives_errors_name_the_flag(spec, words):
    with pytest.raises(ConfigError, match=words) as e:
        P.parse_objectives(spec)
    assert e.value.field == "--objectives"


@pytest.mark.parametrize("spec, ok", [("0,2e6", (0.0, 2e6)), ("0", None), ("0,x", None), ("0,inf", None)])
def test_parse_reference(spec, ok):
    if ok is not None:
        assert P.parse_reference(spec, ACC_SIZE) == ok
    else:
        with pytest.raises(ConfigError) as e:
            P.parse_reference(spec, ACC_SIZE)
        assert e.value.field == "--reference"


# -- non-dominated sets -------------------------------------------------------------------------------


@pytest.mark.parametrize("objectives, points, front", [
    # a plain trade-off: every point stays, in input order
    (ACC_SIZE, [("a", 0.6, 10), ("b", 0.8, 40), ("c", 0.7, 20)], ["a", "b", "c"]),
    # one point dominates all others
    (ACC_SIZE, [("a", 0.7, 30), ("b", 0.9, 10), ("c", 0.8, 20)], ["b"]),
    # duplicates do not dominate each other: both kept
    (ACC_SIZE, [("a", 0.8, 10), ("b", 0.7, 20), ("c", 0.8, 10)], ["a", "c"]),
    # equal in one objective, worse in the other: dominated
    (ACC_SIZE, [("a", 0.8, 10), ("b", 0.8, 20), ("c", 0.7, 10)], ["a"]),
    # a single point
    (ACC_SIZE, [("a", 0.5, 10)], ["a"]),
    # a NaN objective is never on the front and dominates nothing
    (ACC_SIZE, [("a", math.nan, 1), ("b", 0.7, 20)], ["b"]),
    # three objectives: b beats a only in bitops, c/d trade off
    (ACC_SIZE_OPS, [("a", 0.8, 10, 100), ("b", 0.8, 10, 50), ("c", 0.9, 20, 100), ("d", 0.7, 5, 200)],
     ["b", "c", "d"]),
    # three objectives, duplicates and a point dominated by one of them
    (ACC_SIZE_OPS, [("a", 0.8, 10, 5), ("b", 0.8, 10, 5), ("c", 0.8, 10, 6)], ["a", "b"]),
])
def test_non_dominated(objectives, points, front):
    rs = [_r(*p) for p in points]
    assert _ids(P.non_dominated(rs, objectives)) == front


def _naive_front(rs, objectives):
    y = P.objective_matrix(rs, objectives)
    return [rs[i] for i in range(len(rs))
            if not any(np.all(y[j] <= y[i]) and np.any(y[j] < y[i]) for j in range(len(rs)))]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_non_dominated_matches_pairwise_definition(seed):
    rng = np.random.default_rng(seed)
    v = rng.integers(0, 6, size=(60, 3))  # small ranges: many ties and duplicates
    rs = [_r(f"t{i}", val=float(a) / 10, size=float(b), bitops=float(c)) for i, (a, b, c) in enumerate(v)]
    got = P.non_dominated(rs, ACC_SIZE_OPS)
    assert got == _naive_front(rs, ACC_SIZE_OPS)
    assert 0 < len(got) < len(rs)


def test_dominates_is_strict():
    a, b = _r("a", 0.8, 10), _r("b", 0.8, 10)
    assert not P.dominates(a, b, ACC_SIZE) and not P.dominates(b, a, ACC_SIZE)
    assert P.dominates(a, _r("c", 0.8, 11), ACC_SIZE)


# -- hypervolume --------------------------------------------------------------------------------------


def test_hypervolume_two_objectives_by_hand():
    # boxes [-0.8, 0] x [100, 110], [-0.7, 0] x [50, 110], [-0.5, 0] x [10, 110] (accuracy negated):
    # 0.8 * 10 + 0.7 * 50 + 0.5 * 40 = 63
    front = [_r("a", 0.8, 100), _r("b", 0.7, 50), _r("e", 0.5, 10)]
    assert P.hypervolume(front, ACC_SIZE, (0.0, 110.0)) == pytest.approx(63.0)
    # dominated points, duplicates and points beyond the reference add nothing
    extra = front + [_r("d", 0.6, 90), _r("a2", 0.8, 100), _r("far", 0.99, 200)]
    assert P.hypervolume(extra, ACC_SIZE, (0.0, 110.0)) == pytest.approx(63.0)
    assert P.hypervolume([], ACC_SIZE, (0.0, 110.0)) == 0.0


def test_hypervolume_three_objectives_by_hand():
    # boxes [1,4]x[2,4]x[3,4] (6) and [2,4]x[1,4]x[2,4] (12) overlap in [2,4]x[2,4]x[3,4] (4): 14
    front = [_r("a", size=1, buffer=2, bitops=3), _r("b", size=2, buffer=1, bitops=2)]
    assert P.hypervolume(front, COSTS3, (4.0, 4.0, 4.0)) == pytest.approx(14.0)
    # with accuracy maximised: negated internally, same geometry
    front = [_r("a", val=0.5, size=1, bitops=3), _r("b", val=0.25, size=2, bitops=2)]
    # boxes [-0.5,0]x[1,4]x[3,4] (1.5) and [-0.25,0]x[2,4]x[2,4] (1.0), overlap [-0.25,0]x[2,4]x[3,4] (0.5)
    assert P.hypervolume(front, ACC_SIZE_OPS, (0.0, 4.0, 4.0)) == pytest.approx(2.0)


@pytest.mark.parametrize("seed", [0, 1])
def test_hypervolume_three_objectives_matches_grid_count(seed):
    rng = np.random.default_rng(seed)
    v = rng.integers(0, 6, size=(12, 3))
    rs = [_r(f"t{i}", size=float(a), buffer=float(b), bitops=float(c)) for i, (a, b, c) in enumerate(v)]
    # count the unit cells of [0, 6)^3 whose lower corner some point weakly dominates
    cells = np.array(list(itertools.product(range(6), repeat=3)))
    covered = np.any(np.all(v[:, None, :] <= cells[None, :, :], axis=-1), axis=0)
    assert P.hypervolume(rs, COSTS3, (6.0, 6.0, 6.0)) == pytest.approx(float(np.sum(covered)))


def test_default_reference_uses_worst_of_trials_and_baselines():
    trials = [_r("a", 0.8, 100), _r("b", 0.7, 50)]
    base = [_r("fp32", 0.8, 400, backend="baseline")]
    assert P.default_reference(trials + base, ACC_SIZE) == (0.0, pytest.approx(440.0))
    acc_comp = P.parse_objectives("val_acc:max,compression:max")
    assert P.default_reference(trials, acc_comp) == (0.0, 0.0)


# -- knee ---------------------------------------------------------------------------------------------


def test_knee_on_a_convex_front_is_the_elbow():
    sizes = [1, 2, 4, 8, 16]
    accs = [0.50, 0.78, 0.80, 0.82, 0.83]
    front = [_r(f"s{s}", a, s) for s, a in zip(sizes, accs)]
    assert P.knee(front, ACC_SIZE).trial_id == "s2"
    assert P.knee(list(reversed(front)), ACC_SIZE).trial_id == "s2"  # order does not matter
    # a concave bulge elsewhere moves the knee
    front2 = [_r(f"s{s}", a, s) for s, a in zip(sizes, [0.50, 0.60, 0.81, 0.82, 0.83])]
    assert P.knee(front2, ACC_SIZE).trial_id == "s4"
    assert P.knee([_r("only", 0.5, 3)], ACC_SIZE).trial_id == "only"


def test_knee_three_objectives_is_closest_to_the_ideal():
    front = [_r("a", 0.9, 10, 100), _r("b", 0.85, 2, 20), _r("c", 0.5, 1, 10)]
    assert P.knee(front, ACC_SIZE_OPS).trial_id == "b"


# -- picks --------------------------------------------------------------------------------------------

TRIALS = [
    _r("fp", 0.82, 4e5, 1e8),       # ties w8 in val; lower bitops keeps it on the 3-objective front
    _r("w8", 0.82, 1e5, 9e8),
    _r("w4", 0.81, 5e4, 5e8),
    _r("w2", 0.70, 2.5e4, 1e8),     # ties w2c in size; lower bitops keeps it on the front
    _r("w2c", 0.72, 2.5e4, 2e8),
    _r("lucky", 0.60, 3e4, 1e9, test=0.99),  # best test accuracy: never picked for it
]


PICK_BASELINES = [_r("fp32-gcn", 0.81, 4.8e5, backend="baseline"), _r("w4a8-gcn", 0.81, 6.0e4, backend="baseline")]


@pytest.mark.parametrize("spec, objectives, expected", [
    ("max-acc", ACC_SIZE_OPS, "w8"),               # val tie fp/w8 -> smaller model
    ("smallest", ACC_SIZE_OPS, "w2c"),             # size tie w2/w2c -> higher val
    ("max-acc", ACC_SIZE, "w8"),
    ("smallest", ACC_SIZE, "w2c"),
    ("knee", ACC_SIZE, "w4"),
    ("lucky", ACC_SIZE, "lucky"),                  # a trial id, even off the front
    ("max-acc:model_size_bits<=6e4", ACC_SIZE, "w4"),
    ("max-acc:model_size_bits<50000", ACC_SIZE, "w2c"),
    ("max-acc:model_size_bits>1e5", ACC_SIZE, "fp"),   # from all trials, not only the front
    ("max-acc:model_size_bits>=1e5", ACC_SIZE, "w8"),
    ("smallest:val_acc>=0.81", ACC_SIZE, "w4"),
    ("max-acc: model_size_bits <= 1e6 , bitops<=2e8", ACC_SIZE, "fp"),
    ("max-acc:compression>=10", ACC_SIZE, "w4"),
    ("max-acc:model_size_bits<=fp32-gcn/8", ACC_SIZE, "w4"),     # bound 6e4 from the baseline
    ("max-acc:model_size_bits<fp32-gcn/9.6", ACC_SIZE, "w2c"),  # strictly below 5e4: not w4
    ("max-acc:model_size_bits<=w4a8-gcn", ACC_SIZE, "w4"),
    ("max-acc:model_size_bits<=w4a8-gcn*2, val_acc>=fp32-gcn", ACC_SIZE, "w8"),
    ("smallest:val_acc>=w4a8-gcn", ACC_SIZE, "w4"),
])
def test_pick(spec, objectives, expected):
    assert P.pick(TRIALS, spec, objectives, PICK_BASELINES).trial_id == expected


@pytest.mark.parametrize("spec, words", [
    ("max-acc:model_size_bits<=10", "no trial satisfies"),
    ("nope", "neither a trial id"),
    ("max-acc:size<=1", "unknown metric"),
    ("max-acc:model_size_bits=<1", "cannot read"),
    ("max-acc:model_size_bits<=1MB", "neither a number nor BASELINE"),
    ("max-acc:model_size_bits<=nan", "must be a number"),
    ("max-acc:model_size_bits<=fp32-gat/8", "baselines of this run: fp32-gcn, w4a8-gcn"),
    ("max-acc:model_size_bits<=fp32-gcn/0", "division by zero"),
    ("max-acc:model_size_bits<=fp32-gcn/100", "that is model_size_bits<=4800"),
    ("max-acc:model_size_bits<=fp32-gcn/x", "neither a number"),
])
def test_pick_errors_name_the_flag(spec, words):
    with pytest.raises(ConfigError, match=words) as e:
        P.pick(TRIALS, spec, ACC_SIZE, PICK_BASELINES)
    assert e.value.field == "--pick"


def test_pick_from_no_trials_is_an_error():
    with pytest.raises(ConfigError, match="no trials"):
        P.pick([], "knee", ACC_SIZE)


# -- summary, table, csv, plot ------------------------------------------------------------------------


def test_front_summary_and_table():
    base = [_r("b-fp32", 0.80, 7.4e5, backend="baseline"), _r("b-w8", 0.83, 2e5, backend="baseline")]
    s = P.front_summary(TRIALS, base, ACC_SIZE)
    assert [r["trial_id"] for r in s["front"]] == ["w8", "w4", "w2c"]
    assert s["baselines_dominated"] == {"b-fp32": True, "b-w8": False}
    assert s["dominated_by"]["b-fp32"] == "w8"
    assert s["reference"] == [0.0, pytest.approx(8.14e5)]
    # sweep: 0.82 * (8.14e5 - 1e5) + 0.81 * (1e5 - 5e4) + 0.72 * (5e4 - 2.5e4)
    assert s["hypervolume"] == pytest.approx(0.82 * 7.14e5 + 0.81 * 5e4 + 0.72 * 2.5e4)
    json.dumps(s, allow_nan=False)
    table = P.format_table([TRIALS[2]]).splitlines()
    assert table[0].split()[:4] == ["id", "name", "val", "%"]
    assert table[1].split() == ["w4", "w4", "81.00", "81.00", "6.1", "14.8x", "122.1", "16.0x", "500M"]


def test_write_csv_is_atomic_and_flat(tmp_path):
    path = tmp_path / "sub" / "f.csv"
    rows = [P.trial_record(t, "runs/x") for t in TRIALS[:2]] + [{"trial_id": "z", "extra_col": 1}]
    P.write_csv(path, rows)
    with open(path) as f:
        got = list(csv.DictReader(f))
    assert [r["trial_id"] for r in got] == ["fp", "w8", "z"]
    assert got[0]["config"] == "{}" and got[2]["val_acc"] == "" and got[2]["extra_col"] == "1"
    assert float(got[1]["model_size_bits"]) == 1e5
    assert sorted(os.listdir(tmp_path / "sub")) == ["f.csv"]  # no temp file left


@pytest.mark.parametrize("objectives", [ACC_SIZE, ACC_SIZE_OPS, P.parse_objectives("compression:max,val_acc:max")])
def test_plot_writes_a_png(tmp_path, objectives):
    base = [_r("b-fp32", 0.80, 7.4e5, backend="baseline", name="fp32 gcn")]
    front = P.non_dominated(TRIALS, objectives)
    path = tmp_path / "p.png"
    P.plot(path, TRIALS, front, base, objectives)
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert os.listdir(tmp_path) == ["p.png"]


# -- the commands on a run directory ------------------------------------------------------------------

CORA_CLASSES = 7


def _arch(preset, hidden=None):
    arch = baseline("gcn", num_classes=CORA_CLASSES, hidden=hidden)
    return dataclasses.replace(arch, quant=None if preset == "fp32" else QuantConfig.preset(preset))


# (id, preset, hidden, val, test, size bits, buffer bits, bitops)
RUN_TRIALS = [
    ("t_w8", "w8a8", None, 0.80, 0.81, 2.0e5, 4e6, 1e9),
    ("t_w4", "w4a8", None, 0.79, 0.80, 1.0e5, 4e6, 5e8),
    ("t_w4a4", "w4a4", None, 0.75, 0.76, 1.0e5, 2e6, 3e8),
    ("t_i4", "int4", 8, 0.60, 0.62, 5.0e4, 2e6, 2e8),
    ("t_bad", "fp32", 32, 0.50, 0.99, 2.5e5, 1e7, 4e9),
]
RUN_BASELINES = [
    ("b_fp32", "fp32", None, 0.79, 0.80, 7.4e5, 1.6e7, 9e9),
    ("b_w4a4", "w4a4", None, 0.78, 0.78, 1.0e5, 2e6, 3e8),
    ("b_w8a8", "w8a8", None, 0.81, 0.81, 1.85e5, 4e6, 1e9),
]
RUN_FRONT = ["t_w8", "t_w4", "t_i4"]
RUN_HV = 0.80 * (8.14e5 - 2e5) + 0.79 * (2e5 - 1e5) + 0.60 * (1e5 - 5e4)


def _build_run(out, dataset="cora"):
    for rows, log, backend in ((RUN_TRIALS, "results.jsonl", "differentiable"), (RUN_BASELINES, BASELINES,
                                                                               "baseline")):
        for tid, preset, hidden, val, test, size, buf, ops in rows:
            r = TrialResult(trial_id=tid, backend=backend, dataset=dataset, val_acc=val, test_acc=test,
                            model_size_bits=size, buffer_bits=buf, bitops=ops, fp32_model_size_bits=7.4e5,
                            fp32_buffer_bits=1.6e7, fp32_bitops=9e9, seconds=1.0, name=f"{preset} gcn",
                            config={"preset": preset})
            assert record_trial(str(out), r, _arch(preset, hidden), log=log)
    return str(out)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return _build_run(tmp_path_factory.mktemp("runs") / "runA")


def _last_json(capsys):
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_pareto_command_json(run_dir, tmp_path, capsys):
    out_dir = tmp_path / "report"
    assert main(["pareto", run_dir, "--out", str(out_dir), "--json"]) == 0
    res = _last_json(capsys)
    assert res["objectives"] == ["val_acc:max", "model_size_bits:min"]
    assert [r["trial_id"] for r in res["front"]] == RUN_FRONT
    assert all(r["run"] == run_dir and r["name"] and "bitops" in r for r in res["front"])
    assert res["hypervolume"] == pytest.approx(RUN_HV)
    assert res["reference"] == [0.0, pytest.approx(8.14e5)]
    assert res["baselines_dominated"] == {"b_fp32": True, "b_w4a4": True, "b_w8a8": False}
    with open(res["csv"]) as f:
        assert [r["trial_id"] for r in csv.DictReader(f)] == RUN_FRONT
    with open(res["png"], "rb") as f:
        assert f.read(4) == b"\x89PNG"
    assert os.path.dirname(res["csv"]) == str(out_dir)


def test_pareto_command_text_and_reference(run_dir, tmp_path, capsys):
    assert main(["pareto", run_dir, "--out", str(tmp_path), "--reference", "0.5,3e5"]) == 0
    text = capsys.readouterr().out
    assert "t_w4a4" not in text and "t_w4 " in text
    # only points better than (0.5, 3e5): 0.3 * 1e5 + 0.29 * 1e5 + 0.1 * 5e4
    assert f"hypervolume {0.3e5 + 0.29e5 + 0.05e5:.6g}" in text
    assert "baseline w8a8 gcn [b_w8a8]: NOT dominated by the front" in text
    assert "baseline fp32 gcn [b_fp32]: dominated by the front (e.g. t_w8)" in text


def test_pareto_pools_runs_of_one_dataset(run_dir, tmp_path, capsys):
    other = tmp_path / "runB"
    shutil.copytree(run_dir, other)
    assert main(["pareto", run_dir, str(other), "--out", str(tmp_path), "--json"]) == 0
    res = _last_json(capsys)
    ids = [r["trial_id"] for r in res["front"]]
    # identical copies: duplicates are all kept, ids stay unique through the run prefix
    assert sorted(ids) == sorted([f"runA:{t}" for t in RUN_FRONT] + [f"runB:{t}" for t in RUN_FRONT])
    assert {r["run"] for r in res["front"]} == {run_dir, str(other)}
    assert set(res["baselines_dominated"]) == {f"run{x}:{b[0]}" for x in "AB" for b in RUN_BASELINES}


def test_pareto_refuses_mixed_datasets(run_dir, tmp_path, capsys):
    other = _build_run(tmp_path / "cs", dataset="citeseer")
    assert main(["pareto", run_dir, other, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "mix datasets" in err and "cora" in err and "citeseer" in err


@pytest.mark.parametrize("setup, words", [
    ("missing", "no such run directory"),
    ("no-log", "results.jsonl: missing"),
    ("empty", "results.jsonl: holds no finished trial"),
])
def test_pareto_run_errors_name_the_path(tmp_path, capsys, setup, words):
    run = tmp_path / "r"
    if setup != "missing":
        run.mkdir()
    if setup == "empty":
        (run / "results.jsonl").write_text("")
    assert main(["pareto", str(run)]) == 2
    err = capsys.readouterr().err
    assert words in err and str(run) in err


@pytest.mark.parametrize("flags, words", [
    (["--objectives", "val_acc:max"], "--objectives"),
    (["--reference", "1,2,3"], "--reference"),
])
def test_pareto_flag_errors(run_dir, tmp_path, capsys, flags, words):
    assert main(["pareto", run_dir, "--out", str(tmp_path), *flags]) == 2
    assert words in capsys.readouterr().err


@pytest.mark.parametrize("spec, expected", [
    ("knee", "t_w4"),
    ("max-acc", "t_w8"),
    ("smallest", "t_i4"),
    ("t_w4a4", "t_w4a4"),
    ("runA:t_bad", "t_bad"),  # the id as a pooled `lpgnas pareto` prints it
    ("max-acc:model_size_bits<=1.5e5", "t_w4"),
    ("max-acc:model_size_bits<=b_fp32/5", "t_w4"),  # a bound from the run's baselines: 1.48e5
])
def test_export_writes_the_picked_architecture(run_dir, tmp_path, capsys, spec, expected):
    out = tmp_path / "arch.json"
    assert main(["export", run_dir, "--pick", spec, "-o", str(out), "--json"]) == 0
    res = _last_json(capsys)
    assert res["trial_id"] == expected and res["out"] == str(out) and res["pick"] == spec
    got, trial = read_architecture(out), read_trial_arch(run_dir, expected)
    assert got.layers == trial.layers and got.quant == trial.quant
    assert got == dataclasses.replace(trial, search=got.search) and hash(got) == hash(trial)
    with open(out) as f:
        SCHEMA_VALIDATOR.validate(json.load(f))
    prov = got.search["export"]
    assert prov["trial_id"] == expected and prov["run"] == os.path.abspath(run_dir)
    assert prov["val_acc"] == res["val_acc"] and "test_acc" in prov and prov["model_size_bits"] > 0


@pytest.mark.parametrize("spec, words", [("max-acc:model_size_bits<=1", "no trial satisfies"),
                                         ("t_nope", "neither a trial id"), ("b_fp32", "neither a trial id"),
                                         ("max-acc:model_size_bits<=b_gat/8",
                                          "baselines of this run: b_fp32, b_w4a4, b_w8a8")])
def test_export_pick_errors(run_dir, tmp_path, capsys, spec, words):
    out = tmp_path / "arch.json"
    assert main(["export", run_dir, "--pick", spec, "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--pick" in err and words in err and not out.exists()


def test_export_of_a_trial_without_architecture_names_the_file(tmp_path, capsys):
    run = tmp_path / "r"
    record_trial(str(run), _r("t0"), None)
    assert main(["export", str(run), "--pick", "t0", "-o", str(tmp_path / "a.json")]) == 2
    err = capsys.readouterr().err
    assert "no such architecture file" in err and os.path.join("t0", "arch.json") in err


def test_exported_architecture_retrains(run_dir, tmp_path, capsys, data_root):
    out = tmp_path / "knee.json"
    assert main(["export", run_dir, "--pick", "knee", "-o", str(out)]) == 0
    assert "picked t_w4" in capsys.readouterr().out
    rc = main(["train", "--arch", str(out), "--dataset", "cora", "--data-root", data_root, "--seeds", "1",
               "--epochs", "3", "--json"])
    assert rc == 0
    res = _last_json(capsys)
    assert res["quant"] == "w4a8" and 0.0 <= res["test_acc_mean"] <= 100.0
