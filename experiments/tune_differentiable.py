"""Differentiable tune (LPGNAS searches over lambda, each derived architecture retrained) on Cora and
CiteSeer: the front of validation accuracy against model size, and whether it dominates the FP32
GCN/GAT and fixed-bit W8A8/W4A8/W4A4 GCN baselines (issue target for a 32-trial tune).

    python experiments/tune_differentiable.py [--datasets cora,citeseer] [--trials 32] [--space tiny]
        [--epochs 300] [--finetune 50] [--retrain-seeds 3] [--lambda-range 0.01:10] [--split random]
        [--retrain-epochs N] [--retrain-weight-decay WD] [--retrain-recipes gcn,gat] [--lambdas L1,L2,... [--grid] [--seeds S1,S2,...]]
        [--runs runs/tune_diff] [--out experiments/results/tune_differentiable.md] [--report-only]

``--lambdas`` replaces the log-uniform lambda range by a list; with ``--grid`` every lambda x space
variant x seed (``--seeds``, default 0) is run ``--trials`` times (a stratified sweep instead of a
random draw), so a 32-trial grid is e.g. 8 lambdas x 2 spaces x 2 seeds with ``--trials 1``.

A dataset whose run directory exists is resumed (finished trials are not run again). Fronts and
dominance use validation accuracy and model size only; test accuracy is reported. Next to ``--out``
the script draws one plot per dataset (``<out stem>_<dataset>.png``): validation accuracy against
model size of every trial (one lambda each: the size-accuracy trade-off over lambda), the front and
the FP32 / fixed-bit baselines.
"""

from __future__ import annotations

import argparse
import os
import time

from _runner import machine, write_atomic

from lpgnas.pareto import front_summary, parse_objectives, plot
from lpgnas.search import TUNE_FILE, DifferentiableBackend, read_results, run_tune

OBJECTIVES = "val_acc:max,model_size_bits:min"
RUNS = "runs/tune_diff"
OUT = "experiments/results/tune_differentiable.md"


def run_dataset(ds: str, args) -> dict:
    out = os.path.join(args.runs, ds)
    if args.lambdas:
        lam = dict(lambdas=_floats(args.lambdas), lambda_range=None)
    else:
        lo, hi = (float(v) for v in args.lambda_range.split(":"))
        lam = dict(lambda_range=(lo, hi))
    seeds = tuple(int(v) for v in _floats(args.seeds)) if args.seeds else None
    backend = DifferentiableBackend(space=args.space, dataset=ds, data_root=args.data_root, **lam,
                                    grid=args.grid, seeds=seeds, retrain_recipes=args.retrain_recipes,
                                    epochs=args.epochs, finetune=args.finetune, retrain_seeds=args.retrain_seeds,
                                    split=args.split, retrain_epochs=args.retrain_epochs,
                                    retrain_weight_decay=args.retrain_weight_decay)
    wall = float("nan")
    if not args.report_only:
        resume = os.path.isfile(os.path.join(out, TUNE_FILE))
        t0 = time.perf_counter()
        run_tune(backend, out=out, trials=args.trials, resume=resume, seed=0, max_failures=1)
        wall = time.perf_counter() - t0
    results = read_results(out)
    baselines = read_results(out, log="baselines.jsonl")
    objectives = parse_objectives(OBJECTIVES)
    summary = front_summary(results, baselines, objectives)
    by_id = {r.trial_id: r for r in results}
    front = [by_id[rec["trial_id"]] for rec in summary["front"]]
    png = plot_path(args.out, ds)
    plot(png, results, front, baselines, objectives,
         title=f"{ds}: LPGNAS searches over lambda ({len(results)} trials), retrained")
    print(f"{ds}: {len(results)} trials, front {len(summary['front'])}, dominated baselines "
          f"{summary['baselines_dominated']}", flush=True)
    return dict(ds=ds, out=out, results=results, baselines=baselines, summary=summary, wall=wall, png=png)


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(v) for v in text.split(",") if v.strip())


def expected_trials(args) -> int:
    """Trials a full run holds: ``--trials``, times the grid's size with ``--grid``."""
    if not args.grid:
        return args.trials
    spaces = len([v for v in args.space.split(",") if v.strip()])
    seeds = len(_floats(args.seeds)) if args.seeds else 1
    return args.trials * len(_floats(args.lambdas)) * spaces * seeds


def _lambda_flags(args) -> str:
    if not args.lambdas:
        return f" --lambda-range {args.lambda_range}"
    return (f" --lambdas {args.lambdas}" + (" --grid" if args.grid else "")
            + (f" --seeds {args.seeds}" if args.seeds else ""))


def _lambda_text(args) -> str:
    if not args.lambdas:
        return f"lambda drawn log-uniformly from {args.lambda_range}"
    if not args.grid:
        return f"lambda drawn uniformly from {{{args.lambdas}}}"
    return (f"every lambda of {{{args.lambdas}}} x space variant x search seed of {{{args.seeds or '0'}}} "
            f"run {args.trials} time(s), a grid")


def plot_path(out: str, ds: str) -> str:
    """``<out stem>_<dataset>.png`` beside the report."""
    return f"{os.path.splitext(out)[0]}_{ds}.png"


def _row(label: str, r) -> str:
    std = r.extra.get("test_acc_std") if isinstance(r.extra, dict) else None
    test = f"{100 * r.test_acc:.2f}" + (f" ± {100 * std:.2f}" if isinstance(std, (int, float)) else "")
    return (f"| {label} | {r.name} | {100 * r.val_acc:.2f} | {test} | {r.model_size_bits / 8192:.2f} | "
            f"{r.compression:.2f}x | {r.feature_compression:.2f}x |")


def _spaces(space: str) -> str:
    names = [f"`{n.strip()}`" for n in space.split(",")]
    return f"the {names[0]} space" if len(names) == 1 else f"a space drawn per trial from {', '.join(names)}"


def _split_text(split: str | None) -> str:
    if split is None:
        return "node datasets: the public split; graph datasets: fold 0 of 10 stratified folds"
    return (f"{split} split: the search draws it with the trial's seed, each retraining run and each baseline "
            "re-draws it with its own seed")


def report(runs, args) -> str:
    lines = [
        "# Differentiable tune: LPGNAS searches over lambda, retrained (`lpgnas tune --backend differentiable`)",
        "",
        f"Machine: {machine()} (shared with other jobs while this ran). Generated by "
        f"`python experiments/tune_differentiable.py --datasets {','.join(r['ds'] for r in runs)} --trials "
        f"{args.trials} --space {args.space} --epochs {args.epochs} --finetune {args.finetune} --retrain-seeds "
        f"{args.retrain_seeds}{_lambda_flags(args)}"
        + (f" --split {args.split}" if args.split else "")
        + (f" --retrain-epochs {args.retrain_epochs}" if args.retrain_epochs else "")
        + (f" --retrain-weight-decay {args.retrain_weight_decay:g}" if args.retrain_weight_decay is not None else "")
        + (f" --retrain-recipes {args.retrain_recipes}" if args.retrain_recipes else "")
        + (f" --runs {args.runs}" if args.runs != RUNS else "") + (f" --out {args.out}" if args.out != OUT else "")
        + "`.",
        "",
        f"Each trial: one search of {_spaces(args.space)} ({args.epochs} + {args.finetune} epochs, "
        f"{_lambda_text(args)}, cost = model size), then the derived architecture retrained from "
        f"scratch for {args.retrain_seeds} seeds ({_split_text(args.split)}; kept epoch chosen on validation)"
        + (f" under each training recipe of {{{args.retrain_recipes}}} (a published model's dropouts, learning rate, "
           "weight decay and epochs), the recipe with the best mean validation accuracy kept" if args.retrain_recipes
           else "") + ". Baselines (named in each section: FP32 GCN and GAT and fixed-bit GCN on node datasets, "
        "FP32 and fixed-bit GIN on graph datasets), trained on the driver with the same seeds"
        + (" and the same recipe choice (their own recipe among the candidates)" if args.retrain_recipes else "")
        + ". Objectives: validation accuracy "
        "(max) and model size (min); a baseline is dominated when a front point is at least as good in both and "
        "better in one. Test accuracy is reported only. Accuracies in percent (mean over the retrain seeds).",
        "",
    ]
    for run in runs:
        s = run["summary"]
        dom = s["baselines_dominated"]
        lines += [f"## {run['ds']}", "",
                  f"{len(run['results'])} of {expected_trials(args)} trials"
                  + (" (interrupted: resume with the same command)" if len(run["results"]) < expected_trials(args)
                     else "")
                  + (f", wall {run['wall']:.0f} s" if run["wall"] == run["wall"] else ", wall not measured (report "
                     "regenerated with --report-only)")
                  + f", sum of trial times {sum(r.seconds for r in run['results']):.0f} s, run directory `{run['out']}`; "
                  f"hypervolume {s['hypervolume']:.4g} (reference {s['reference']}). Plot: "
                  f"[`{os.path.basename(run['png'])}`]({os.path.basename(run['png'])}).", "",
                  "Baselines dominated by the front: " + ", ".join(
                      f"{k} {'yes' if v else 'NO'}" for k, v in dom.items())
                  + (" -> target met." if dom and all(dom.values()) else " -> target NOT met."), "",
                  "| point | name | val | test | size KiB | compression | feature compression |",
                  "|---|---|---|---|---|---|---|"]
        for b in run["baselines"]:
            lines.append(_row(f"baseline {b.trial_id}", b))
        ids = {rec["trial_id"] for rec in s["front"]}
        for r in sorted((r for r in run["results"] if r.trial_id in ids), key=lambda r: r.model_size_bits):
            lines.append(_row(f"front {r.trial_id}", r))
        lines += ["", "Every trial (the size-accuracy trade-off over lambda):", "",
                  "| trial | name | val | test | size KiB | compression | feature compression |",
                  "|---|---|---|---|---|---|---|"]
        for r in sorted(run["results"], key=lambda r: r.model_size_bits):
            lines.append(_row(("front " if r.trial_id in ids else "") + r.trial_id, r))
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", default="cora,citeseer")
    p.add_argument("--trials", type=int, default=32)
    p.add_argument("--space", default="tiny")
    p.add_argument("--epochs", type=int, default=300)
    p.add_argument("--finetune", type=int, default=50)
    p.add_argument("--retrain-seeds", type=int, default=3)
    p.add_argument("--lambda-range", default="0.01:10")
    p.add_argument("--lambdas", default=None, help="L1,L2,...: a list of lambdas instead of --lambda-range")
    p.add_argument("--grid", action="store_true", help="run every lambda x space x seed (needs --lambdas)")
    p.add_argument("--seeds", default=None, help="S1,S2,...: search seeds (default: random; with --grid: 0)")
    p.add_argument("--retrain-recipes", default=None,
                   help="gcn,gat,...: training recipes each retraining (baselines too) tries, kept on validation")
    p.add_argument("--retrain-epochs", type=int, default=None)
    p.add_argument("--retrain-weight-decay", type=float, default=None)
    p.add_argument("--split", default=None, choices=("public", "random", "per-class"),
                   help="node split (default: public, else a fixed random split); random / per-class are "
                        "re-drawn per seed")
    p.add_argument("--data-root", default=None)
    p.add_argument("--runs", default=RUNS)
    p.add_argument("--out", default=OUT)
    p.add_argument("--report-only", action="store_true")
    args = p.parse_args()
    if args.grid and not args.lambdas:
        p.error("--grid needs --lambdas")
    runs = [run_dataset(ds, args) for ds in args.datasets.split(",")]
    write_atomic(args.out, report(runs, args) + "\n")


if __name__ == "__main__":
    main()
