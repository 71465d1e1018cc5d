"""Ray overhead of ``lpgnas tune``: the same trials in one process and through Ray Tune.

    python experiments/bench_tune.py [--trials 8] [--dataset cora] [--space tiny] [--epochs 100]
                                     [--finetune 20] [--retrain-epochs 100] [--cpus 2]
                                     [--modes sequential,ray,ray-1] [--out experiments/results/bench_tune.md]

The workload: ``trials`` differentiable-backend trials with fixed settings (lambda from a fixed list,
search seed 0, cost ``size``, one retraining seed), i.e. exactly what a ``--grid`` tune runs.

* ``sequential`` -- one Python process calls :meth:`DifferentiableBackend.run_trial` (the function a
  Ray trial runs, without ``tune.report``) for every trial in turn;
* ``ray`` -- :func:`lpgnas.search._tune.run_tune` with an embedded local Ray of ``cpus`` CPUs and one
  CPU per trial: ``cpus`` trials run at once, in Ray worker processes (actors reused across trials);
* ``ray-1`` -- the same with ``max_concurrent=1``: one trial at a time, as in ``sequential``.

Ray runs trial workers at niceness 15; the ``sequential`` process gets the same (``--nice``), so that
other jobs of a shared machine slow both alike.

Every mode runs in a fresh subprocess, and its figure is the wall time of that subprocess (Python start,
imports, data loading, JIT compiles and, for Ray, starting and stopping Ray: everything a user waits
for); the time inside the process (the loop, or the ``run_tune`` call) is reported too.

Fairness: XLA's CPU backend runs each process's computations on a thread pool as wide as the machine.
``sequential`` and ``ray-1`` run one trial at a time on all cores; ``ray`` runs ``cpus`` trial processes
at once, each with its own thread pool, so the cores are shared (more parallelism across trials, less
inside each). Ray's overhead proper is ``ray-1`` / ``sequential``; ``ray`` / ``sequential`` is what a user
gets with the default settings. The script prints figures and writes a markdown report; it asserts
nothing about speed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Sequence

__all__ = ["LAMBDAS", "TARGET", "backend_for", "configs", "run_mode", "main"]

# Fixed cost weights, one per trial (cycled when more trials are asked).
LAMBDAS = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 0.05, 0.5)
TARGET = 1.10  # Ray may add at most 10 % wall time
MODES = ("sequential", "ray", "ray-1")


def _lambdas(trials: int) -> list[float]:
    return [LAMBDAS[i % len(LAMBDAS)] * (1 + i // len(LAMBDAS)) for i in range(trials)]


def backend_for(a: argparse.Namespace):
    """The backend of the benchmark: a grid over ``trials`` lambdas, seed 0, cost ``size``."""
    from lpgnas.search._differentiable import DifferentiableBackend

    return DifferentiableBackend(space=a.space, dataset=a.dataset, data_root=a.data_root, lambdas=_lambdas(a.trials),
                                 grid=True, seeds=(0,), costs=("size",), epochs=a.epochs, finetune=a.finetune,
                                 retrain_seeds=1, retrain_epochs=a.retrain_epochs, baseline_ids=())


def configs(trials: int) -> list[dict]:
    """The trial configurations, as the grid of :func:`backend_for` yields them."""
    return [{"lambda": lam, "seed": 0, "cost": "size"} for lam in _lambdas(trials)]


def run_mode(a: argparse.Namespace) -> dict:
    """Run one mode in this process; returns its figures (inner wall time, per-trial results)."""
    backend = backend_for(a)
    t0 = time.perf_counter()
    if a.mode == "sequential":
        reports = [backend.run_trial(c) for c in configs(a.trials)]
        inner = time.perf_counter() - t0
        rows = [{"lambda": c["lambda"], "val_acc": r["val_acc"], "seconds": r["seconds"]}
                for c, r in zip(configs(a.trials), reports)]
    else:
        from lpgnas.search._tune import run_tune

        out = tempfile.mkdtemp(prefix="bench-tune-")
        try:
            outcome = run_tune(backend, out=os.path.join(out, "run"), trials=1, cpus_per_trial=1.0,
                               num_cpus=a.cpus, max_concurrent=1 if a.mode == "ray-1" else None, seed=0)
        finally:
            inner = time.perf_counter() - t0
        rows = [{"lambda": r.config["lambda"], "val_acc": r.val_acc, "seconds": r.seconds} for r in outcome.results]
        shutil.rmtree(out, ignore_errors=True)
    return {"mode": a.mode, "inner_seconds": inner, "trials": sorted(rows, key=lambda r: r["lambda"])}


def _child(a: argparse.Namespace, mode: str) -> dict:
    """Run ``mode`` in a fresh interpreter; its wall time as seen from here."""
    cmd = [sys.executable, os.path.abspath(__file__), "--child", mode, *_pass_through(a)]
    env = {**os.environ, "JAX_PLATFORMS": os.environ.get("JAX_PLATFORMS", "cpu")}
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"{mode} failed ({r.returncode}):\n{r.stderr[-4000:]}")
    res = json.loads(r.stdout.strip().splitlines()[-1])
    res.update(wall_seconds=wall, load_before=load0, load_after=os.getloadavg())
    return res


def _pass_through(a: argparse.Namespace) -> list[str]:
    out = ["--trials", str(a.trials), "--dataset", a.dataset, "--space", a.space, "--epochs", str(a.epochs),
           "--finetune", str(a.finetune), "--retrain-epochs", str(a.retrain_epochs), "--cpus", str(a.cpus),
           "--nice", str(a.nice)]
    if a.data_root:
        out += ["--data-root", a.data_root]
    return out


def _machine() -> str:
    import jax
    import ray

    return (f"{platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}, "
            f"jax {jax.__version__} ({jax.default_backend()}), ray {ray.__version__}")


def render(a: argparse.Namespace, results: Sequence[dict], command: str, machine: str) -> str:
    by = {r["mode"]: r for r in results}
    seq = by.get("sequential")
    lines = [
        "# Ray overhead of `lpgnas tune`",
        "",
        f"Machine: {machine}. Generated by `{command}`.",
        "",
        f"Workload: {a.trials} differentiable trials (space `{a.space}`, {a.dataset}; lambda "
        f"{', '.join(f'{x:g}' for x in _lambdas(a.trials))}; search seed 0, {a.epochs} + {a.finetune} epochs; "
        f"one retraining run of {a.retrain_epochs} epochs), the same in every mode. Wall time = the whole "
        "fresh process (start, imports, data, compiles, Ray start/stop); inner = the trial loop or the "
        "`run_tune` call. Load average = 1/5/15-minute load of the machine (other jobs included) before "
        "and after each mode.",
        "",
        "| mode | what runs | wall s | inner s | wall / sequential | load avg before -> after |",
        "|---|---|---|---|---|---|",
    ]
    what = {"sequential": "one process, `run_trial` in a loop",
            "ray": f"`run_tune`, embedded Ray, {a.cpus} CPUs, {a.cpus} trials at once",
            "ray-1": f"`run_tune`, embedded Ray, {a.cpus} CPUs, `max_concurrent=1`"}
    for r in results:
        ratio = f"{r['wall_seconds'] / seq['wall_seconds']:.2f}" if seq else "-"
        lb = "/".join(f"{x:.1f}" for x in r["load_before"])
        la = "/".join(f"{x:.1f}" for x in r["load_after"])
        lines.append(f"| {r['mode']} | {what[r['mode']]} | {r['wall_seconds']:.1f} | {r['inner_seconds']:.1f} | "
                     f"{ratio} | {lb} -> {la} |")
    lines += ["", "## Target", ""]
    if seq:
        for mode in ("ray-1", "ray"):
            if mode in by:
                ratio = by[mode]["wall_seconds"] / seq["wall_seconds"]
                verdict = "met" if ratio <= TARGET else "not met"
                lines.append(f"- `{mode}` / `sequential` = {ratio:.2f} (target <= {TARGET:.2f}) -> {verdict}.")
        if "ray-1" in by and by["ray-1"]["wall_seconds"] < seq["wall_seconds"]:
            lines.append("- `ray-1` ran faster than `sequential`, which does the same work with less machinery: "
                         "the difference is the noise of the shared machine, and it is as large as the effect measured.")
    lines += ["", "## Same work in every mode", "",
              "Validation accuracy of each trial (the retrained architecture) per mode, and its seconds:", "",
              "| lambda | " + " | ".join(r["mode"] for r in results) + " |",
              "|---|" + "---|" * len(results)]
    lams = [t["lambda"] for t in results[0]["trials"]]
    for i, lam in enumerate(lams):
        cells = []
        for r in results:
            t = r["trials"][i] if i < len(r["trials"]) else None
            cells.append(f"{100 * t['val_acc']:.1f} ({t['seconds']:.1f} s)" if t else "-")
        lines.append(f"| {lam:g} | " + " | ".join(cells) + " |")
    lines += ["", "## Notes", "",
              "- `ray-1` / `sequential` is Ray's own overhead (starting Ray and its worker processes, each "
              "importing JAX and loading the dataset, scheduling, reporting, the experiment state written to "
              "disk); `ray` / `sequential` adds the effect of running trials side by side.",
              "- Fairness: XLA runs each process's computations on a thread pool as wide as the machine. "
              "`sequential` and `ray-1` give one trial all cores; `ray` runs several trial processes whose thread "
              "pools share the cores. Small graphs (Cora) leave cores idle inside one trial, so running trials "
              "side by side can win; large ones would not.",
              f"- Niceness: Ray starts its trial workers at niceness 15 (`RAY_worker_niceness`); the `sequential` "
              f"process runs at niceness {a.nice} (`--nice`), so that on a shared machine both compete alike "
              "for the cores with other jobs (Ray's driver, GCS and raylet stay at 0).",
              "- The machine is shared (see the load averages): every figure is inflated by other jobs, by "
              "different amounts in different modes. Treat ratios near the target as unresolved by one run.",
              ""]
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trials", type=int, default=8)
    p.add_argument("--dataset", default="cora")
    p.add_argument("--data-root", default=None)
    p.add_argument("--space", default="tiny")
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--finetune", type=int, default=20)
    p.add_argument("--retrain-epochs", type=int, default=100)
    p.add_argument("--cpus", type=int, default=2)
    p.add_argument("--modes", default=",".join(MODES))
    p.add_argument("--nice", type=int, default=15,
                   help="niceness of the sequential process (default 15: what Ray gives its trial workers)")
    p.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                                                 "bench_tune.md"))
    p.add_argument("--child", choices=MODES, default=None, help=argparse.SUPPRESS)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    a = _parser().parse_args(argv)
    if a.child is not None:
        a.mode = a.child
        if a.mode == "sequential" and a.nice:
            os.nice(a.nice)  # Ray runs its trial workers at niceness 15 (RAY_worker_niceness)
        print(json.dumps(run_mode(a)))
        return 0
    modes = [m.strip() for m in a.modes.split(",") if m.strip()]
    bad = [m for m in modes if m not in MODES]
    if bad:
        raise SystemExit(f"--modes: unknown mode {bad[0]!r}; allowed: {', '.join(MODES)}")
    command = "python experiments/bench_tune.py " + " ".join(shlex.quote(x) for x in (argv or sys.argv[1:]))
    results = []
    for mode in modes:
        r = _child(a, mode)
        print(f"{mode:>10}: wall {r['wall_seconds']:.1f} s, inner {r['inner_seconds']:.1f} s, "
              f"load {r['load_before'][0]:.1f} -> {r['load_after'][0]:.1f}", flush=True)
        results.append(r)
    text = render(a, results, command.strip(), _machine())
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with open(a.out, "w") as f:
        f.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
