"""Smoke test of the training-speed benchmark (experiments/bench_train.py): a few epochs on Cora."""

import importlib.util
import math
import os

import pytest

_HERE = os.path.dirname(os.path.abspath(__file__))
_SCRIPT = os.path.join(_HERE, "..", "experiments", "bench_train.py")


def _load_bench():
    spec = importlib.util.spec_from_file_location("bench_train", _SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench():
    return _load_bench()


def _has_pyg() -> bool:
    return importlib.util.find_spec("torch") is not None and importlib.util.find_spec("torch_geometric") is not None


@pytest.fixture(scope="module")
def report(bench, data_root):
    return bench.run_benchmark("cora", data_root=data_root, epochs=2, repeats=2, threads=1, pyg=_has_pyg(),
                               pyg_warmup=1)


def test_lpgnas_row_has_figures(report):
    row = report.lpgnas
    assert row.ok
    assert len(row.per_epoch) == 2
    assert all(t > 0 and math.isfinite(t) for t in row.per_epoch)
    first, later = row.compile_seconds
    assert first > 0
    assert 0.0 <= row.test_acc <= 100.0 and 0.0 <= row.val_acc <= 100.0


def test_pyg_rows(report):
    names = [r.name for r in report.rows[1:]]
    assert names == ["PyG GCNConv(cached=True)", "PyG GCNConv(cached=False)"]
    if not _has_pyg():
        assert all(r.status == "skipped" for r in report.rows[1:])
        assert report.ratio() is None
        return
    for row in report.rows[1:]:
        assert row.ok and len(row.per_epoch) == 2 and row.compile_seconds is None
    best = report.fastest_pyg()
    assert report.ratio() == pytest.approx(best.median / report.lpgnas.median)


@pytest.mark.parametrize("field,kwargs", [
    ("--epochs", dict(epochs=0)),
    ("--repeats", dict(repeats=0)),
    ("--dataset", dict(dataset="pubmed")),
])
def test_bad_settings_raise_config_error(bench, data_root, field, kwargs):
    from lpgnas.errors import ConfigError

    args = dict(dataset="cora", epochs=2, repeats=1)
    args.update(kwargs)
    with pytest.raises(ConfigError, match=field):
        bench.run_benchmark(args.pop("dataset"), data_root=data_root, pyg=False, **args)


def test_markdown_reports_figures_and_verdict(bench, report):
    text = bench.render_markdown(report, "python experiments/bench_train.py --epochs 2")
    assert "`python experiments/bench_train.py --epochs 2`" in text
    assert f"{1e3 * report.lpgnas.median:.3f}" in text
    assert report.machine["jax"] in text
    if report.ratio() is None:
        assert "not evaluated" in text
    else:
        assert ("**met**" in text) == (report.ratio() >= bench.TARGET_RATIO)


def test_markdown_without_pyg(bench, report):
    rows = (report.rows[0],) + tuple(r._replace(status="not installed", per_epoch=()) for r in report.rows[1:])
    machine = dict(report.machine, torch="not installed", torch_geometric="not installed")
    text = bench.render_markdown(report._replace(rows=rows, machine=machine), "cmd")
    assert text.count("| not installed |") == 2
    assert "PyTorch Geometric not installed" in text


def test_pyg_not_installed_row(bench, monkeypatch):
    monkeypatch.setattr(bench, "_import_pyg", lambda: None)
    row = bench.bench_pyg(None, epochs=2, seeds=[0], cached=True, threads=2)
    assert row.status == "not installed" and not row.ok
    assert math.isnan(row.median)


@pytest.mark.parametrize("before,after,noisy", [
    ("0.50 / 0.40 / 0.30", "1.90 / 0.40 / 0.30", False),
    ("7.10 / 7.00 / 6.00", "1.00 / 1.00 / 1.00", True),
    ("0.10 / 0.10 / 0.10", "2.50 / 1.00 / 1.00", True),
    ("n/a", "n/a", False),
])
def test_noisy_flag_follows_load(bench, report, before, after, noisy):
    machine = dict(report.machine, usable_cores=2, load_before=before, load_after=after)
    assert bench._oversubscribed(machine) is noisy
    text = bench.render_markdown(report._replace(machine=machine), "cmd")
    assert ("**Noisy run**" in text) is noisy
