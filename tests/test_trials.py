"""Trial records of a tune run directory: written once, read back exactly, torn lines skipped."""

import dataclasses
import json
import os

import pytest

from lpgnas.arch import baseline, read_architecture
from lpgnas.errors import DataError
from lpgnas.quant import QuantConfig
from lpgnas.search import METRICS, TrialResult, read_results, read_trial_arch, record_trial


def _result(tid: str, val: float = 0.8, size: float = 1e5, **kw) -> TrialResult:
    return TrialResult(trial_id=tid, backend="abs", dataset="cora", val_acc=val, test_acc=val - 0.01,
                       model_size_bits=size, buffer_bits=2e6, bitops=3e9, fp32_model_size_bits=4e5,
                       fp32_buffer_bits=1.6e7, fp32_bitops=9e9, seconds=1.5, name=tid,
                       config={"l0.input.b0": 4}, node="10.0.0.1", extra={"avg_bits": 3.5}, **kw)


def test_record_then_read_round_trips_and_writes_the_trial_folder(tmp_path):
    arch = dataclasses.replace(baseline("gcn", num_classes=7), quant=QuantConfig.preset("w4a8"))
    r = _result("t1")
    assert record_trial(str(tmp_path), r, arch)
    assert read_results(str(tmp_path)) == [r]
    assert read_trial_arch(str(tmp_path), "t1") == arch
    with open(tmp_path / "trials" / "t1" / "metrics.json") as f:
        assert TrialResult.from_json(json.load(f)) == r
    assert read_architecture(tmp_path / "trials" / "t1" / "arch.json") == arch


def test_a_trial_is_recorded_once(tmp_path):
    assert record_trial(str(tmp_path), _result("a"), None)
    assert not record_trial(str(tmp_path), _result("a", val=0.1), None)
    assert record_trial(str(tmp_path), _result("b"), None)
    got = read_results(str(tmp_path))
    assert [r.trial_id for r in got] == ["a", "b"]
    assert got[0].val_acc == pytest.approx(0.8)
    with open(tmp_path / "results.jsonl") as f:
        assert len(f.readlines()) == 2


def test_a_torn_last_line_is_skipped_and_the_next_record_starts_a_fresh_line(tmp_path):
    record_trial(str(tmp_path), _result("a"), None)
    with open(tmp_path / "results.jsonl", "a") as f:
        f.write('{"trial_id": "half", "backe')  # a driver killed mid-write
    assert [r.trial_id for r in read_results(str(tmp_path))] == ["a"]
    record_trial(str(tmp_path), _result("b"), None)
    assert [r.trial_id for r in read_results(str(tmp_path))] == ["a", "b"]


@pytest.mark.parametrize("name, expected", [
    ("val_acc", 0.8), ("model_size_bits", 1e5), ("compression", 4.0), ("feature_compression", 8.0),
    ("avg_bits", 3.5),
])
def test_metric_by_name(name, expected):
    assert _result("m").metric(name) == pytest.approx(expected)


def test_metric_unknown_name_raises_key_error():
    with pytest.raises(KeyError):
        _result("m").metric("nope")


@pytest.mark.parametrize("bad", ["", "a/b", "..", "."])
def test_trial_ids_must_be_folder_names(bad):
    with pytest.raises(ValueError, match="trial_id"):
        _result(bad)


def test_bad_records_name_the_file(tmp_path):
    rec = _result("x").to_json()
    del rec["val_acc"]
    with open(tmp_path / "results.jsonl", "w") as f:
        f.write(json.dumps(rec) + "\n")
    with pytest.raises(DataError, match="results.jsonl.*val_acc"):
        read_results(str(tmp_path))


def test_missing_run_directory_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="no such run directory"):
        read_results(str(tmp_path / "absent"))


def test_every_metric_is_a_float():
    r = _result("f")
    assert all(isinstance(getattr(r, m), float) for m in METRICS)
    assert os.sep not in r.trial_id
