"""QAT speed: per-epoch training time of each quantisation scheme against FP32, same model, same run.

    python experiments/bench_quant.py [--dataset cora] [--model gcn] [--seeds 3] [--rounds 2]
                                      [--schemes fp32,int8,...] [--out experiments/results/bench_quant.md]

Each scheme is trained with ``lpgnas train --dataset D --model M --quant S --seeds K --json`` (the
model's published epochs, every epoch = train step + validation/test evaluation, compile excluded);
per-epoch ms = ``train_seconds_median / epochs``. The schemes are run in ``rounds`` interleaved
passes and the FP32 time of the same pass is the baseline of each ratio, so load on a shared machine
hits both sides. Target (issue: quantisation library): a quantised epoch costs at most 2x FP32.
Prints figures and writes a markdown report; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _runner import machine, run_json, write_atomic  # noqa: E402

DEFAULT_SCHEMES = ("fp32", "int8", "int4", "w8a8", "w4a8", "w4a4", "dq-int8", "dq-int4", "a2q", "sgquant",
                   "smp-int4")
TARGET = 2.0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="cora")
    p.add_argument("--model", default="gcn")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--schemes", default=",".join(DEFAULT_SCHEMES))
    p.add_argument("--out", default="experiments/results/bench_quant.md")
    args = p.parse_args()
    schemes = [s for s in args.schemes.split(",") if s]
    if "fp32" not in schemes:
        schemes.insert(0, "fp32")
    load_before = os.getloadavg()
    per_epoch: dict[str, list[float]] = {s: [] for s in schemes}
    ratios: dict[str, list[float]] = {s: [] for s in schemes}
    acc: dict[str, float] = {}
    compile_s: dict[str, float] = {}
    for rnd in range(args.rounds):
        this = {}
        for s in schemes:
            r = run_json(f"train --dataset {args.dataset} --model {args.model} --quant {s} --seeds {args.seeds} "
                         "--json")
            ms = 1000.0 * r["train_seconds_median"] / r["epochs"]
            this[s] = ms
            per_epoch[s].append(ms)
            acc[s] = r["test_acc_mean"]
            compile_s[s] = r["compile_seconds"]
            print(f"round {rnd + 1} {s}: {ms:.2f} ms/epoch (test {r['test_acc_mean']:.2f})", flush=True)
        for s in schemes:
            ratios[s].append(this[s] / this["fp32"])
    load_after = os.getloadavg()
    lines = [
        f"# QAT speed: quantised vs FP32 epochs ({args.dataset}, {args.model.upper()})",
        "",
        f"Command: `python experiments/bench_quant.py --dataset {args.dataset} --model {args.model} "
        f"--seeds {args.seeds} --rounds {args.rounds}`",
        "",
        f"- machine: {machine()}",
        f"- load average (1/5/15 min) before: {' / '.join(f'{v:.2f}' for v in load_before)}, after: "
        f"{' / '.join(f'{v:.2f}' for v in load_after)}"
        + (" (above the core count: other processes competed for the CPU; the ratios, taken within each round, "
           "are the figures to read)" if max(load_before[0], load_after[0]) > (os.cpu_count() or 1) else ""),
        f"- per epoch: `train_seconds_median / epochs` of `lpgnas train ... --seeds {args.seeds}` (train step + "
        "evaluation forward, compile excluded); ratio = scheme / FP32 of the same round, median over rounds",
        "",
        f"| scheme | ms/epoch (median) | ratio to FP32 | <= {TARGET}x | compile s | test acc % ({args.seeds} seeds) |",
        "|---|---:|---:|---|---:|---:|",
    ]
    for s in schemes:
        ratio = statistics.median(ratios[s])
        lines.append(f"| {s} | {statistics.median(per_epoch[s]):.2f} | {ratio:.2f} | "
                     f"{'yes' if ratio <= TARGET else 'no'} | {compile_s[s]:.1f} | {acc[s]:.2f} |")
    worst = max(statistics.median(ratios[s]) for s in schemes)
    lines += ["", f"Worst ratio: **{worst:.2f}x** (target <= {TARGET}x: **{'met' if worst <= TARGET else 'not met'}**)."]
    write_atomic(args.out, "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
