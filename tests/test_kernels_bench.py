"""The kernel benchmark CLI at a toy size: it must write a markdown table with every method."""

import numpy as np

from lpgnas.kernels.bench import main, power_law_graph


def test_bench_writes_markdown_table(tmp_path, capsys):
    out = tmp_path / "res" / "kernels_test.md"
    argv = ["--nodes", "300", "--edges", "2000", "--features", "16", "--bits", "2,8", "--repeats", "1",
            "--copy-mb", "1", "--out", str(out)]
    assert main(argv) == 0
    text = out.read_text()
    assert "python -m lpgnas.kernels.bench --nodes 300" in text
    assert "| method | time (ms) |" in text
    for name in ("fp32 segment_sum", "fp32 BCOO", "packed 2-bit", "packed 8-bit"):
        assert name in text
    rows = [line for line in text.splitlines() if line.startswith("| packed")]
    assert len(rows) == 2
    assert "max abs err" in text and text in capsys.readouterr().out


def test_bench_rejects_bad_bits(capsys):
    assert main(["--bits", "3", "--nodes", "10", "--edges", "10"]) == 2
    assert "--bits" in capsys.readouterr().err


def test_local_power_law_graph():
    s, r = power_law_graph(500, 5000, seed=1)
    assert s.shape == r.shape == (5000,) and s.dtype == np.int32
    assert np.all(s != r) and np.all(np.diff(r) >= 0)
    deg = np.bincount(r, minlength=500)
    assert deg.max() > 5 * deg.mean()  # heavy tail
