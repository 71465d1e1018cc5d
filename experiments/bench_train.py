"""Training-speed benchmark: lpgnas GCN against PyTorch Geometric's GCN, same machine, same run.

    python experiments/bench_train.py [--dataset cora|citeseer] [--epochs 200] [--repeats 5]
                                      [--threads 2] [--out experiments/results/bench_train.md]

What is timed: ``epochs`` epochs of full-batch GCN training (2 layers, 16 hidden, dropout 0.5 on the
input and the hidden layer, Adam lr 0.01, weight decay 5e-4 on the first layer) with an evaluation
forward every epoch (validation and test accuracy), on the public Planetoid split with row-normalised
features. Per-epoch time = timed seconds / epochs; the figure is the median over ``repeats`` seeds.

* lpgnas: :func:`lpgnas.train.train_node` with early stopping disabled; its ``train_seconds``
  excludes the compile, which is reported apart (``compile_seconds``, first and later repeats).
* PyG: ``torch_geometric.nn.GCNConv`` in the usual user loop (train step, then ``eval()`` +
  ``no_grad`` forward and the accuracies), ``torch.set_num_threads(threads)``, warm-up epochs on a
  throw-away model excluded; both ``cached=True`` (normalisation computed once) and uncached.
  When torch / torch_geometric is not installed the PyG rows read "not installed".

The benchmark prints figures and writes a markdown report; it asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import statistics
import sys
import time
import warnings
from typing import NamedTuple, Sequence

import numpy as np

__all__ = [
    "BenchRow",
    "BenchReport",
    "TARGET_RATIO",
    "load_graph",
    "bench_lpgnas",
    "bench_pyg",
    "run_benchmark",
    "render_markdown",
    "main",
]

TARGET_RATIO = 3.0
"""The speed target: PyG per-epoch time / lpgnas per-epoch time, against the faster PyG variant."""

DATASETS = ("cora", "citeseer")
PYG_WARMUP_EPOCHS = 10


class BenchRow(NamedTuple):
    """One framework's figures (times in seconds, accuracies in percent).

    ``status`` is ``"ok"`` or why there are no figures (``"not installed"``); ``per_epoch`` holds
    one per-epoch time per repeat; ``compile_seconds`` is ``(first, later max)`` for lpgnas, ``None``
    for eager frameworks; ``test_acc``/``val_acc`` are means over repeats at the validation-selected
    epoch.
    """

    name: str
    status: str
    per_epoch: tuple[float, ...] = ()
    compile_seconds: tuple[float, float] | None = None
    test_acc: float = float("nan")
    val_acc: float = float("nan")
    note: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok" and len(self.per_epoch) > 0

    @property
    def median(self) -> float:
        return statistics.median(self.per_epoch) if self.per_epoch else float("nan")


class BenchReport(NamedTuple):
    """All rows of one benchmark run and its setting."""

    dataset: str
    epochs: int
    repeats: int
    threads: int
    rows: tuple[BenchRow, ...]
    machine: dict

    @property
    def lpgnas(self) -> BenchRow:
        return self.rows[0]

    def fastest_pyg(self) -> BenchRow | None:
        pyg = [r for r in self.rows[1:] if r.ok]
        return min(pyg, key=lambda r: r.median) if pyg else None

    def ratio(self) -> float | None:
        """Faster PyG per-epoch median / lpgnas per-epoch median (``None`` without PyG figures)."""
        best = self.fastest_pyg()
        if best is None or not self.lpgnas.ok:
            return None
        return best.median / self.lpgnas.median


# --------------------------------------------------------------------------------------------------
# data


def load_graph(dataset: str, data_root: str | None = None):
    """The Planetoid graph with its public split and row-normalised features (lpgnas loader)."""
    from lpgnas.data import load_dataset, row_normalize
    from lpgnas.errors import ConfigError

    if dataset not in DATASETS:
        raise ConfigError("--dataset", f"unknown dataset {dataset!r}; allowed: {', '.join(DATASETS)}")
    graph = load_dataset(dataset, data_root)
    return graph.with_features(row_normalize(graph.features))


# --------------------------------------------------------------------------------------------------
# lpgnas


def _lpgnas_config(epochs: int):
    from lpgnas.train import TRAIN_DEFAULTS
    from lpgnas.train import TrainConfig

    settings = dict(TRAIN_DEFAULTS[("gcn", "node")])
    settings.update(epochs=epochs, patience=10**9)
    return TrainConfig(**settings)


def bench_lpgnas(graph, *, epochs: int, seeds: Sequence[int]) -> BenchRow:
    """Train the lpgnas GCN baseline once per seed; per-epoch time = ``train_seconds / epochs``."""
    from lpgnas.arch import baseline
    from lpgnas.train import node_arrays, train_node

    arch = baseline("gcn", num_classes=graph.num_classes, hidden=16, num_layers=2)
    config = _lpgnas_config(epochs)
    arrays = node_arrays(graph)
    per_epoch, compiles, tests, vals = [], [], [], []
    for seed in seeds:
        result, _ = train_node(arch, graph, seed=seed, config=config, arrays=arrays)
        if result.epochs != epochs:
            raise RuntimeError(f"lpgnas stopped after {result.epochs} of {epochs} epochs")
        per_epoch.append(result.train_seconds / epochs)
        compiles.append(result.compile_seconds)
        tests.append(100 * result.test_acc)
        vals.append(100 * result.val_acc)
    later = max(compiles[1:]) if len(compiles) > 1 else float("nan")
    layout = {"BCOO": "sparse BCOO", "SparseRows": "row-compact sparse (SparseRows)"}.get(
        type(arrays[0]).__name__, "dense")
    return BenchRow(
        name="lpgnas (JAX)", status="ok", per_epoch=tuple(per_epoch), compile_seconds=(compiles[0], later),
        test_acc=float(np.mean(tests)), val_acc=float(np.mean(vals)),
        note=f"train_node, chunk {config.chunk}, features {layout}",
    )


# --------------------------------------------------------------------------------------------------
# PyTorch Geometric


def _import_pyg():
    """``(torch, torch_geometric)`` or ``None`` when either is missing."""
    try:
        with warnings.catch_warnings():  # import-time deprecation notices of torch's own modules
            warnings.simplefilter("ignore", DeprecationWarning)
            import torch
            import torch_geometric  # noqa: F401
            from torch_geometric.data import Data  # noqa: F401
            from torch_geometric.nn import GCNConv  # noqa: F401
    except ImportError:
        return None
    return torch, torch_geometric


def _pyg_data(graph, torch):
    from torch_geometric.data import Data

    train_m, val_m, test_m = graph.masks()
    edge_index = np.stack([np.asarray(graph.senders, np.int64), np.asarray(graph.receivers, np.int64)])
    return Data(
        x=torch.from_numpy(np.ascontiguousarray(graph.features, np.float32)),
        edge_index=torch.from_numpy(edge_index),
        y=torch.from_numpy(np.asarray(graph.labels, np.int64)),
        train_mask=torch.from_numpy(train_m),
        val_mask=torch.from_numpy(val_m),
        test_mask=torch.from_numpy(test_m),
    )


def _pyg_model(torch, in_dim: int, hidden: int, out_dim: int, cached: bool):
    """Kipf & Welling's GCN as PyG's own example writes it."""
    from torch_geometric.nn import GCNConv

    class GCN(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = GCNConv(in_dim, hidden, cached=cached)
            self.conv2 = GCNConv(hidden, out_dim, cached=cached)

        def forward(self, x, edge_index):
            x = torch.nn.functional.dropout(x, p=0.5, training=self.training)
            x = self.conv1(x, edge_index).relu()
            x = torch.nn.functional.dropout(x, p=0.5, training=self.training)
            return self.conv2(x, edge_index)

    return GCN()


def _pyg_run(torch, data, num_classes: int, *, epochs: int, seed: int, cached: bool) -> tuple[float, float, float]:
    """One training run: ``(seconds for the epochs, val acc, test acc)`` at the best-validation epoch."""
    torch.manual_seed(seed)
    model = _pyg_model(torch, data.num_features, 16, num_classes, cached)
    optimizer = torch.optim.Adam([
        dict(params=model.conv1.parameters(), weight_decay=5e-4),
        dict(params=model.conv2.parameters(), weight_decay=0.0),
    ], lr=0.01)
    f = torch.nn.functional
    best_val, best_test = -1.0, 0.0
    t0 = time.perf_counter()
    for _ in range(epochs):
        model.train()
        optimizer.zero_grad()
        out = model(data.x, data.edge_index)
        loss = f.cross_entropy(out[data.train_mask], data.y[data.train_mask])
        loss.backward()
        optimizer.step()
        model.eval()
        with torch.no_grad():
            pred = model(data.x, data.edge_index).argmax(dim=-1)
            val = float((pred[data.val_mask] == data.y[data.val_mask]).float().mean())
            test = float((pred[data.test_mask] == data.y[data.test_mask]).float().mean())
        if val > best_val:
            best_val, best_test = val, test
    return time.perf_counter() - t0, best_val, best_test


def bench_pyg(graph, *, epochs: int, seeds: Sequence[int], cached: bool, threads: int,
              warmup_epochs: int = PYG_WARMUP_EPOCHS) -> BenchRow:
    """PyG's GCN once per seed (after ``warmup_epochs`` on a throw-away model, not timed)."""
    name = f"PyG GCNConv(cached={cached})"
    mods = _import_pyg()
    if mods is None:
        return BenchRow(name=name, status="not installed")
    torch, _ = mods
    torch.set_num_threads(threads)
    data = _pyg_data(graph, torch)
    if warmup_epochs > 0:
        _pyg_run(torch, data, graph.num_classes, epochs=warmup_epochs, seed=10**6, cached=cached)
    per_epoch, tests, vals = [], [], []
    for seed in seeds:
        seconds, val, test = _pyg_run(torch, data, graph.num_classes, epochs=epochs, seed=seed, cached=cached)
        per_epoch.append(seconds / epochs)
        vals.append(100 * val)
        tests.append(100 * test)
    return BenchRow(name=name, status="ok", per_epoch=tuple(per_epoch), test_acc=float(np.mean(tests)),
                    val_acc=float(np.mean(vals)), note=f"eager, dense x, {threads} torch threads")


# --------------------------------------------------------------------------------------------------
# the whole run


def machine_info(threads: int) -> dict:
    """CPU model, cores and library versions (torch/PyG: ``"not installed"`` when missing)."""
    import jax

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        usable = os.cpu_count() or 0
    mods = _import_pyg()
    return {
        "cpu": cpu,
        "cores": os.cpu_count() or 0,
        "usable_cores": usable,
        "threads": threads,
        "python": platform.python_version(),
        "jax": jax.__version__,
        "jax_backend": jax.default_backend(),
        "torch": mods[0].__version__ if mods else "not installed",
        "torch_geometric": mods[1].__version__ if mods else "not installed",
    }


def run_benchmark(dataset: str = "cora", *, data_root: str | None = None, epochs: int = 200, repeats: int = 5,
                  threads: int = 2, pyg: bool = True, pyg_warmup: int = PYG_WARMUP_EPOCHS,
                  log=None) -> BenchReport:
    """Run lpgnas and (when ``pyg`` and installed) both PyG variants, interleaved per repeat so that
    a drift in machine load hits every framework alike."""
    from lpgnas.errors import ConfigError

    for field, value in (("--epochs", epochs), ("--repeats", repeats), ("--threads", threads)):
        if value < 1:
            raise ConfigError(field, f"must be at least 1, got {value}")
    graph = load_graph(dataset, data_root)
    load_before = _loadavg()
    seeds = list(range(repeats))
    variants = (True, False)
    rows: list[list[BenchRow]] = [[] for _ in range(1 + len(variants))]
    for i, seed in enumerate(seeds):
        rows[0].append(bench_lpgnas(graph, epochs=epochs, seeds=[seed]))
        for j, cached in enumerate(variants):
            if pyg:
                row = bench_pyg(graph, epochs=epochs, seeds=[seed], cached=cached, threads=threads,
                                warmup_epochs=pyg_warmup if i == 0 else 0)
            else:
                row = BenchRow(name=f"PyG GCNConv(cached={cached})", status="skipped")
            rows[1 + j].append(row)
        if log is not None:
            parts = [f"{r[-1].name}: {1e3 * r[-1].median:.2f} ms/epoch" for r in rows if r[-1].ok]
            log(f"repeat {i + 1}/{repeats} (seed {seed}): " + "; ".join(parts))
    merged = tuple(_merge(r) for r in rows)
    machine = dict(machine_info(threads), load_before=load_before, load_after=_loadavg())
    return BenchReport(dataset=dataset, epochs=epochs, repeats=repeats, threads=threads, rows=merged,
                       machine=machine)


def _loadavg() -> str:
    """The 1/5/15-minute load averages as text (other processes on the machine skew the figures)."""
    try:
        return " / ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:  # pragma: no cover - not available
        return "n/a"


def _merge(parts: list[BenchRow]) -> BenchRow:
    """One row from the single-seed rows of the repeats (compile: the first and the later max)."""
    first = parts[0]
    if not first.ok:
        return first
    compile_s = None
    if first.compile_seconds is not None:
        later = [p.compile_seconds[0] for p in parts[1:]]
        compile_s = (first.compile_seconds[0], max(later) if later else float("nan"))
    return first._replace(
        per_epoch=tuple(p.per_epoch[0] for p in parts), compile_seconds=compile_s,
        test_acc=float(np.mean([p.test_acc for p in parts])), val_acc=float(np.mean([p.val_acc for p in parts])),
    )


def render_markdown(report: BenchReport, command: str) -> str:
    """The report as markdown: machine, command, the table, the ratio and whether the target is met."""
    m = report.machine
    lines = [
        f"# Training speed: lpgnas vs PyTorch Geometric ({report.dataset}, GCN)",
        "",
        f"Command: `{command}`",
        "",
        f"- machine: {m['cpu']}, {m['cores']} cores ({m['usable_cores']} usable), Python {m['python']}",
        f"- versions: jax {m['jax']} (backend {m['jax_backend']}), torch {m['torch']}, "
        f"torch_geometric {m['torch_geometric']}",
        f"- load average (1/5/15 min) before: {m.get('load_before', 'n/a')}, after: {m.get('load_after', 'n/a')} "
        f"(above the core count means other processes competed for the CPU: the figures are noisy)",
        f"- setting: {report.epochs} epochs x {report.repeats} repeats (seeds 0..{report.repeats - 1}), "
        f"each epoch = train step + evaluation forward (val + test accuracy); 2-layer GCN, 16 hidden, dropout 0.5 "
        f"(input + hidden), Adam lr 0.01, weight decay 5e-4 on the first layer; public split, row-normalised "
        f"features; torch threads {report.threads}",
        "",
        "| framework | per-epoch ms (median) | per-epoch ms (min..max) | compile s (first / later) | "
        "test acc % | val acc % | notes |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for row in report.rows:
        if not row.ok:
            lines.append(f"| {row.name} | {row.status} | | | | | |")
            continue
        lo, hi = min(row.per_epoch), max(row.per_epoch)
        comp = "—" if row.compile_seconds is None else f"{row.compile_seconds[0]:.2f} / {row.compile_seconds[1]:.2f}"
        lines.append(f"| {row.name} | {1e3 * row.median:.3f} | {1e3 * lo:.3f}..{1e3 * hi:.3f} | {comp} | "
                     f"{row.test_acc:.2f} | {row.val_acc:.2f} | {row.note} |")
    lines.append("")
    ratio = report.ratio()
    if ratio is None:
        lines.append(f"Ratio: n/a (PyTorch Geometric {'not installed' if m['torch'] == 'not installed' else 'skipped'}"
                     f"); target >= {TARGET_RATIO:g}x not evaluated.")
    else:
        best = report.fastest_pyg()
        verdict = "met" if ratio >= TARGET_RATIO else "NOT met"
        lines.append(f"Ratio (fastest PyG = {best.name}, per-epoch / lpgnas per-epoch): **{ratio:.2f}x**; "
                     f"target >= {TARGET_RATIO:g}x on {report.threads} cores: **{verdict}**.")
    if _oversubscribed(m):
        lines.append("")
        lines.append(f"**Noisy run**: the 1-minute load average exceeded the {m['usable_cores']} usable cores, so "
                     "other processes competed for the CPU. Eager PyTorch suffers most (each of its many small ops "
                     "waits for a descheduled OpenMP worker); treat the ratio as an upper bound and re-run on "
                     "an idle machine for a representative figure.")
    lines += [
        "",
        "lpgnas per-epoch = `train_seconds / epochs` of `train_node` (compile excluded, reported apart; one "
        "compiled program shared by the seeds). PyG per-epoch = wall time of the epoch loop / epochs, warm-up "
        f"({PYG_WARMUP_EPOCHS} epochs on a throw-away model) excluded. Accuracies: test accuracy at the best-"
        "validation epoch, mean over repeats. Repeats of the three rows are interleaved.",
        "",
    ]
    return "\n".join(lines)


def _oversubscribed(machine: dict) -> bool:
    """Whether the 1-minute load average before or after the run exceeded the usable cores."""
    cores = machine.get("usable_cores") or 0
    for key in ("load_before", "load_after"):
        text = machine.get(key, "n/a")
        try:
            if cores and float(text.split("/")[0]) > cores:
                return True
        except ValueError:
            continue
    return False


def _print_table(report: BenchReport) -> None:
    print(f"{'framework':32s} {'ms/epoch':>10s} {'compile s':>10s} {'test %':>8s} {'val %':>8s}")
    for row in report.rows:
        if not row.ok:
            print(f"{row.name:32s} {row.status:>10s}")
            continue
        comp = "-" if row.compile_seconds is None else f"{row.compile_seconds[0]:.2f}"
        print(f"{row.name:32s} {1e3 * row.median:10.3f} {comp:>10s} {row.test_acc:8.2f} {row.val_acc:8.2f}")
    ratio = report.ratio()
    if ratio is None:
        print(f"ratio: n/a (PyTorch Geometric {report.rows[1].status})")
    else:
        verdict = "met" if ratio >= TARGET_RATIO else "NOT met"
        print(f"ratio (fastest PyG / lpgnas): {ratio:.2f}x  (target >= {TARGET_RATIO:g}x: {verdict})")
    if _oversubscribed(report.machine):
        print(f"noisy: load average {report.machine['load_before']} -> {report.machine['load_after']} "
              f"on {report.machine['usable_cores']} cores")


def _pin_cores(threads: int) -> None:
    """Restrict the process to ``threads`` cores (both XLA's and torch's pools then see that many)."""
    try:
        cores = sorted(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return
    if len(cores) > threads:
        os.sched_setaffinity(0, cores[:threads])


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", choices=DATASETS, default="cora")
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=2, help="cores for the process and torch threads (default 2)")
    p.add_argument("--data-root", default=None, help="data root (default: $LPGNAS_DATA, else the user cache)")
    p.add_argument("--no-pyg", action="store_true", help="skip PyTorch Geometric even when installed")
    p.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                                                  "bench_train.md"))
    args = p.parse_args(argv)
    if args.threads < 1:
        p.error(f"--threads must be at least 1, got {args.threads}")
    _pin_cores(args.threads)  # before jax starts its thread pools
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    from lpgnas.errors import LpgnasError

    try:
        report = run_benchmark(args.dataset, data_root=args.data_root, epochs=args.epochs, repeats=args.repeats,
                               threads=args.threads, pyg=not args.no_pyg,
                               log=lambda s: print(s, file=sys.stderr, flush=True))
    except LpgnasError as e:
        print(f"bench_train: error: {e}", file=sys.stderr)
        return 2
    _print_table(report)
    shown = ["python", "experiments/bench_train.py"] + list(argv if argv is not None else sys.argv[1:])
    text = render_markdown(report, shlex.join(shown))
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(text)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
