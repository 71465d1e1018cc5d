"""Degree-Quant on REDDIT-BINARY (GIN, 10-fold cross-validation): FP32, naive QAT and Degree-Quant at INT8
and INT4 side by side, against the Degree-Quant released-code logs (DQ INT8 92.4 ± 2.6, INT4 86.2 ± 3.2;
naive QAT 75.7 / 56.2).

    python experiments/dq_reddit.py [--rows dq-int8,int8,dq-int4,int4,fp32] [--budget-minutes M] [--jobs N]
        [--out experiments/results/dq_reddit.md]

Two models, each with the five schemes: our FP32 GIN baseline (4 GIN layers, every layer mean-pooled into a
linear scorer each: rows ``fp32``, ``dq-int8``, ...) and Degree-Quant's GIN (5 GIN layers, the last one
mean-pooled into an MLP head of width 64: rows ``dqgin-fp32``, ``dqgin-dq-int8``, ...; ``--layers 5 --no-jk
--head 64``); both train with our set-up (one-hot degree features, batch 32, lr 0.01 halved every 50 epochs,
200 epochs, the epoch kept by validation accuracy).

One fold takes about 15-30 minutes on 2 CPU cores, so a row (10 folds) does not fit one sitting. Every finished
fold is appended to the JSONL log beside ``--out`` (``lpgnas train ... --fold K``, which trains the fold exactly
as the full cross-validation does); a re-run trains only the folds the log lacks, row by row in ``--rows`` order,
and ``--budget-minutes`` stops starting new folds after M minutes. The report shows every row's folds so far;
a row is a result only once it holds all 10. Model selection (the kept epoch) uses each fold's validation
carve-out; test accuracy is reported.

``--jobs N`` trains N folds at once, each in its own process (on a GPU machine they share the device; set
``XLA_PYTHON_CLIENT_PREALLOCATE=false``). Each record names the device it was trained on (``device``) and how
many folds shared the machine (``jobs``), so its ``wall_seconds`` is read in that light.

Rows ``dqsetup-*`` train Degree-Quant's GIN with Degree-Quant's logged training set-up as far as our trainer
has it: one standardised degree column as the node feature, batch 128, lr 0.005 (halved every 50 epochs),
weight decay 2e-4, 200 epochs, the epoch kept by minimum validation loss. Their folds use the previous fold
as validation; ours keep the 10 % carve-out of the training part.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

import numpy as np
from _runner import append_log, machine, read_log, run_json, write_atomic

FOLDS = 10
# The FP32 GIN set-up that meets the foundation target on REDDIT-BINARY (baselines.md: mean readout, 200 epochs).
BASE = f"train --dataset reddit-binary --model gin --readout mean --epochs 200 --folds {FOLDS} --json"
SCHEMES = ("dq-int8", "int8", "dq-int4", "int4", "fp32")
# Degree-Quant's released REDDIT-BINARY GIN: 5 layers of 64, the last one mean-pooled, an MLP head of 64.
DQ_MODEL = "--layers 5 --no-jk --head 64"
ROWS = {**{scheme: f"{BASE} --quant {scheme}" for scheme in SCHEMES},
        **{f"dqgin-{scheme}": f"{BASE} {DQ_MODEL} --quant {scheme}" for scheme in ("fp32", *SCHEMES[:-1])}}
# Degree-Quant's released runs clip the gradient outside the percentile range (GC_PER in their logs); our dq
# presets pass it straight through. The -gc rows use the presets with the clipped backward
# (experiments/configs/dq-int*-gc.json).
for scheme in ("dq-int8", "dq-int4"):
    ROWS[f"{scheme}-gc"] = f"{BASE} --quant-config experiments/configs/{scheme}-gc.json"
# Degree-Quant's logged training set-up on their GIN (see the module docstring).
DQ_SETUP = (f"{BASE} {DQ_MODEL} --degree-encoding normalized --batch-size 128 --lr 0.005 --weight-decay 2e-4 "
            "--select loss")
ROWS.update({f"dqsetup-{scheme}": f"{DQ_SETUP} --quant {scheme}" for scheme in SCHEMES[::-1]})
ROWS.update({f"dqsetup-{scheme}-gc": f"{DQ_SETUP} --quant-config experiments/configs/{scheme}-gc.json"
             for scheme in ("dq-int8", "dq-int4")})
# Degree-Quant released-code logs, GIN on REDDIT-BINARY (accuracy %, mean ± std over 10 folds).
REFERENCE = {"dq-int8": "92.4 ± 2.6", "int8": "75.7 (naive QAT)", "dq-int4": "86.2 ± 3.2", "int4": "56.2 (naive QAT)",
             "fp32": "-"}
REFERENCE.update({f"dqgin-{scheme}": ref for scheme, ref in REFERENCE.items()})
REFERENCE.update({f"{scheme}-gc": REFERENCE[scheme] for scheme in ("dq-int8", "dq-int4")})
REFERENCE.update({f"dqsetup-{scheme}": REFERENCE[scheme.removesuffix("-gc")] for scheme in
                  (*SCHEMES, "dq-int8-gc", "dq-int4-gc")})


def train_fold(row: str, command: str, fold: int, jobs: int) -> dict:
    """Train fold ``fold`` of ``row`` (``lpgnas <command>``, in this process) and return its log record."""
    import jax  # the CLI below runs in this process: the device is the one it trains on

    t0 = time.perf_counter()
    summary = run_json(f"{command} --fold {fold}")
    return {"row": row, "fold": fold, "command": f"lpgnas {command} --fold {fold}",
            "val_acc": summary["val_accs"][0], "test_acc": summary["test_accs"][0],
            "epochs": summary["epochs"],
            **{k: summary[k] for k in ("model_size_bits", "fp32_model_size_bits", "compression",
                                   "avg_feature_bits")},
            "wall_seconds": round(time.perf_counter() - t0, 1),
            "device": jax.devices()[0].device_kind, "jobs": jobs}


def run_folds(rows: list[str], log: str, budget_s: float | None, out: str,
              jobs: int = 1) -> dict[tuple[str, int], dict]:
    for row in rows:
        if row not in ROWS:
            raise SystemExit(f"unknown row {row!r}; known: {', '.join(ROWS)}")
    done = {(rec["row"], rec["fold"]): rec for rec in read_log(log)}
    pending = [(row, fold) for row in rows for fold in range(FOLDS) if (row, fold) not in done]
    t_start = time.perf_counter()

    def budget_left() -> bool:
        return budget_s is None or time.perf_counter() - t_start <= budget_s

    def finish(rec: dict) -> None:
        append_log(log, rec)  # a finished fold is never lost
        done[(rec["row"], rec["fold"])] = rec
        write_atomic(out, report(done))  # the table is current after every fold
        print(f"{rec['row']} fold {rec['fold']}: test {rec['test_acc']:.2f} val {rec['val_acc']:.2f} "
              f"({rec['wall_seconds']:.0f} s, {rec['device']}, {rec['jobs']} at once)", flush=True)

    if jobs == 1:
        for row, fold in pending:
            if not budget_left():
                print(f"budget spent: stopping before {row} fold {fold}", flush=True)
                break
            finish(train_fold(row, ROWS[row], fold, 1))
        return done
    # Fresh processes (spawn): each fold owns its JAX runtime; records are written here, in one process.
    with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        running = set()
        while pending or running:
            while pending and len(running) < jobs and budget_left():
                row, fold = pending.pop(0)
                running.add(pool.submit(train_fold, row, ROWS[row], fold, jobs))
            if not running:
                print(f"budget spent: {len(pending)} folds not started", flush=True)
                break
            finished, running = wait(running, return_when=FIRST_COMPLETED)
            for fut in finished:
                try:
                    finish(fut.result())
                except (Exception, SystemExit) as e:  # one failed fold must not cost the others already running
                    print(f"a fold failed: {e!r}", flush=True)
            if not budget_left() and pending:
                print(f"budget spent: {len(pending)} folds not started; waiting for {len(running)}", flush=True)
                pending = []
    return done


def report(done: dict[tuple[str, int], dict]) -> str:
    lines = [
        "# Degree-Quant on REDDIT-BINARY: GIN, FP32 / naive QAT / Degree-Quant, 10-fold cross-validation",
        "",
        f"Driver machine: {machine()}; the device column names where each row's folds trained (records "
        "without one trained on the 2-core CPU machine of sessions 1-13). Generated by "
        "`python experiments/dq_reddit.py`; each fold by the command in the last column with `--fold K` (K = 0..9), appended to `dq_reddit.jsonl` as it finishes. Accuracy in "
        "percent, mean ± std over the folds finished so far (the kept epoch of each fold chosen on its validation "
        "carve-out). A row is a result only at 10 of 10 folds. Rows `dqgin-*` train Degree-Quant's GIN (5 layers, "
        "the last one mean-pooled into an MLP head of 64: `--layers 5 --no-jk --head 64`), the others our GIN "
        "baseline (4 layers, every layer pooled into a linear scorer); both with our training set-up. Rows `dqsetup-*` "
        "train Degree-Quant's GIN with Degree-Quant's logged set-up (standardised degree feature, batch 128, lr 0.005 "
        "halved every 50 epochs, weight decay 2e-4, epoch kept by minimum validation loss); their validation is our "
        "10 % carve-out, not Degree-Quant's previous fold. The read-out "
        "(scorers or head) stays in full precision and is counted in the compression.",
        "",
        "| row | folds | test acc | val acc | avg feature bits | compression | Degree-Quant logs | device | command |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in ROWS:
        recs = [done[(row, k)] for k in range(FOLDS) if (row, k) in done]
        if not recs and row.startswith(("dqgin-", "dqsetup-")):
            continue  # Degree-Quant's model and set-up: listed once a fold of it has run
        if not recs:
            lines.append(f"| {row} | 0 of {FOLDS} | - | - | - | - | {REFERENCE[row]} | - | `lpgnas {ROWS[row]}` |")
            continue
        test = np.array([r["test_acc"] for r in recs])
        val = np.array([r["val_acc"] for r in recs])
        r0 = recs[0]
        devices = ", ".join(sorted({r.get("device", "cpu") for r in recs}))
        lines.append(f"| {row} | {len(recs)} of {FOLDS} ({', '.join(str(r['fold']) for r in recs)}) | "
                     f"{test.mean():.2f} ± {test.std():.2f} | {val.mean():.2f} | {r0['avg_feature_bits']:.2f} | "
                     f"{r0['compression']:.2f}x | {REFERENCE[row]} | {devices} | `lpgnas {ROWS[row]}` |")
    lines += ["", "FP32 over all 10 folds with this set-up: `reddit-binary-gin-mean-e200` in "
              "[`baselines.md`](baselines.md)."]
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", default=",".join(SCHEMES))
    p.add_argument("--budget-minutes", type=float, default=None,
                   help="start no new fold after this many minutes (the folds run so far are kept)")
    p.add_argument("--jobs", type=int, default=1, help="folds trained at once, one process each")
    p.add_argument("--out", default="experiments/results/dq_reddit.md")
    args = p.parse_args()
    if args.jobs < 1:
        p.error("--jobs must be at least 1")
    if not os.path.isdir("experiments/configs"):  # the -gc rows name their config files from the root
        p.error("run from the repository root: the -gc rows read experiments/configs/*.json")
    log = os.path.splitext(args.out)[0] + ".jsonl"
    budget = None if args.budget_minutes is None else 60 * args.budget_minutes
    done = run_folds([r.strip() for r in args.rows.split(",") if r.strip()], log, budget, args.out, args.jobs)
    write_atomic(args.out, report(done))


if __name__ == "__main__":
    main()
