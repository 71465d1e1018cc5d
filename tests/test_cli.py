"""The ``lpgnas`` command: JSON summaries and exit code 2 with a clear message on bad input."""

import json

import pytest

from lpgnas import cli

REQUIRED = {"dataset", "model", "seeds", "test_acc_mean", "test_acc_std", "val_acc_mean", "epochs",
            "train_seconds_median", "compile_seconds"}


def _run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_train_json_summary_is_last_line(capsys, data_root):
    code, out, err = _run(capsys, "train", "--dataset", "cora", "--model", "gcn", "--seeds", "2", "--epochs", "30",
                          "--json", "--data-root", data_root)
    assert code == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert REQUIRED <= set(summary)
    assert summary["seeds"] == 2 and summary["split"] == "public"
    assert 0 <= summary["test_acc_mean"] <= 100


@pytest.mark.parametrize("extra, select, encoding", [
    ([], "acc", "onehot"),
    (["--select", "loss", "--degree-encoding", "normalized"], "loss", "normalized"),
])
def test_train_graph_task_with_folds(capsys, data_root, extra, select, encoding):
    code, out, err = _run(capsys, "train", "--dataset", "mutag", "--folds", "2", "--epochs", "2", "--hidden", "8",
                          "--layers", "2", "--json", "--data-root", data_root, *extra)
    assert code == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["model"] == "gin" and summary["folds"] == 2
    assert summary["config"]["select"] == select and summary["degree_encoding"] == encoding


@pytest.mark.parametrize("argv,needle", [
    (["--dataset", "no-such-set"], "no-such-set"),
    (["--dataset", "cora", "--seeds", "0"], "--seeds"),
    (["--dataset", "amazon-photo", "--split", "public"], "--split"),
    (["--dataset", "synthetic:nodes=50,bogus=1"], "bogus"),
    (["--dataset", "cora", "--readout", "mean"], "--readout"),
    (["--dataset", "cora", "--degree-encoding", "normalized"], "--degree-encoding"),
    (["--dataset", "cora", "--head", "8"], "--head"),
    (["--dataset", "cora", "--no-jk"], "--jk"),
    (["--dataset", "mutag", "--head", "-1"], "--head"),
])
def test_bad_input_exits_2_with_message(capsys, data_root, argv, needle):
    code, out, err = _run(capsys, "train", *argv, "--data-root", data_root)
    assert code == 2
    assert needle in err and "Traceback" not in err


@pytest.mark.parametrize("readout", ["mean", "max"])
def test_readout_flag_sets_the_saved_architecture(capsys, tmp_path, data_root, readout):
    code, _, err = _run(capsys, "train", "--dataset", "mutag", "--folds", "2", "--epochs", "1", "--hidden", "8",
                        "--layers", "2", "--readout", readout, "--save", str(tmp_path), "--data-root", data_root)
    assert code == 0, err
    saved = json.loads((tmp_path / "arch.json").read_text())
    assert saved["readout"] == readout and saved["layers"][0]["op"] == "gin"


@pytest.mark.parametrize("flags, jk, head", [
    ([], True, None),
    (["--no-jk", "--head", "16"], False, 16),   # Degree-Quant's GIN read-out: last layer, MLP head
    (["--jk", "--head", "0"], True, None),
])
def test_jk_and_head_flags_set_the_saved_architecture(capsys, tmp_path, data_root, flags, jk, head):
    code, _, err = _run(capsys, "train", "--dataset", "mutag", "--folds", "2", "--fold", "0", "--epochs", "1",
                        "--hidden", "8", "--layers", "2", *flags, "--save", str(tmp_path), "--data-root", data_root)
    assert code == 0, err
    saved = json.loads((tmp_path / "arch.json").read_text())
    assert saved["jk"] is jk and saved.get("head") == head


def test_bad_architecture_file_names_field(capsys, tmp_path, data_root):
    path = tmp_path / "arch.json"
    path.write_text(json.dumps({"schema": "lpgnas.arch/v1", "task": "node",
                                "layers": [{"op": "gcn", "hidden": 0}]}))
    code, _, err = _run(capsys, "train", "--arch", str(path), "--dataset", "cora", "--data-root", data_root)
    assert code == 2 and "layers[0].hidden" in err and str(path) in err
    path.write_text("{not json")
    code, _, err = _run(capsys, "train", "--arch", str(path), "--dataset", "cora", "--data-root", data_root)
    assert code == 2 and "not valid JSON" in err


def test_unknown_model_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["train", "--dataset", "cora", "--model", "transformer"])
    assert e.value.code == 2


def test_train_save_writes_a_loadable_model(capsys, tmp_path, data_root):
    from lpgnas.nn import load_model

    out_dir = tmp_path / "model"
    code, out, err = _run(capsys, "train", "--dataset", "cora", "--model", "gcn", "--quant", "w4a8", "--seeds", "2",
                          "--epochs", "10", "--save", str(out_dir), "--json", "--data-root", data_root)
    assert code == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["model_path"] == str(out_dir) and summary["quant"] == "w4a8"
    assert summary["model_size_bits"] < summary["fp32_model_size_bits"]
    model, arch, meta = load_model(out_dir)
    assert arch.quant.name == "w4a8" and meta["dataset"] == "cora" and meta["row_normalize"] is True


def test_recipe_flag_and_the_recipe_a_tune_recorded(capsys, tmp_path, data_root):
    common = ["--dataset", "cora", "--seeds", "1", "--epochs", "2", "--json", "--data-root", data_root]
    code, out, err = _run(capsys, "train", "--model", "gcn", "--recipe", "gat", "--save", str(tmp_path), *common)
    assert code == 0, err
    config = json.loads(out.strip().splitlines()[-1])["config"]
    assert (config["lr"], config["weight_decay"], config["weight_decay_scope"]) == (0.005, 1e-3, "all")
    saved = json.loads((tmp_path / "arch.json").read_text())
    assert (saved["dropout"], saved["input_dropout"], saved["attn_dropout"]) == (0.6, 0.6, 0.6)
    saved["search"] = {"retrain": {"recipe": "gat"}}  # as a tune writes it: no --recipe needed to follow it
    path = tmp_path / "tuned.json"
    path.write_text(json.dumps(saved))
    code, out, err = _run(capsys, "train", "--arch", str(path), *common)
    assert code == 0, err
    assert json.loads(out.strip().splitlines()[-1])["config"]["lr"] == 0.005


def test_a_recipe_of_the_wrong_task_exits_2(capsys, data_root):
    code, _, err = _run(capsys, "train", "--dataset", "mutag", "--recipe", "appnp", "--data-root", data_root)
    assert code == 2 and "--recipe" in err and "appnp" in err and "Traceback" not in err


def test_a_fold_alone_trains_as_in_the_full_cross_validation(capsys, data_root):
    common = ["train", "--dataset", "mutag", "--folds", "3", "--epochs", "2", "--hidden", "8", "--layers", "2",
              "--json", "--data-root", data_root]
    code, out, err = _run(capsys, *common)
    assert code == 0, err
    full = json.loads(out.strip().splitlines()[-1])
    assert full["fold_ids"] == [0, 1, 2] and len(full["test_accs"]) == 3
    code, out, err = _run(capsys, *common, "--fold", "2,1")
    assert code == 0, err
    part = json.loads(out.strip().splitlines()[-1])
    assert part["fold_ids"] == [1, 2] and part["seeds"] == 2
    assert (part["val_accs"], part["test_accs"]) == (full["val_accs"][1:], full["test_accs"][1:])


@pytest.mark.parametrize("argv, needle", [
    (["--dataset", "mutag", "--folds", "3", "--fold", "3"], "folds 0..2"),
    (["--dataset", "mutag", "--fold", "a"], "--fold"),
    (["--dataset", "cora", "--fold", "0"], "node-level"),
])
def test_bad_fold_exits_2(capsys, data_root, argv, needle):
    code, _, err = _run(capsys, "train", *argv, "--data-root", data_root)
    assert code == 2 and needle in err and "Traceback" not in err
