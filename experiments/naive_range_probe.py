"""Why naive QAT collapses on REDDIT-BINARY with Degree-Quant's set-up: a short probe on fold 0.

    python experiments/naive_range_probe.py [--epochs 2] [--fold 0] [--out experiments/results/naive_range_probe.md]

Degree-Quant's GIN (5 layers, mean-pooled, MLP head of 64) with their set-up (standardised degree feature, batch
128, lr 0.005, weight decay 2e-4) under the naive ``int8`` preset predicts one class on every fold of
``dq_reddit.md`` (rows ``dqsetup-int8`` / ``dqsetup-int4``). Each variant here changes one thing of that preset and
trains a few epochs; the table shows the training loss and validation accuracy per epoch, so a variant whose loss
leaves ln 2 (0.6931) trains and one that stays there does not. A diagnosis, not a result: the accuracies are after a
few epochs only (validation carve-out of the fold; test accuracy is not looked at).
"""

from __future__ import annotations

import argparse
import dataclasses
import time

from _runner import machine, write_atomic

from lpgnas import data as D
from lpgnas.arch import baseline
from lpgnas.quant import Override, QuantConfig, QuantSpec
from lpgnas.train import TRAIN_DEFAULTS, TrainConfig, train_graph

COMPONENTS = ("input", "linear", "message", "aggregate", "output")


def variants() -> dict[str, QuantConfig | None]:
    """Name -> quantisation of the probe's variants (``None``: FP32)."""
    base = QuantConfig.preset("int8")
    act = QuantSpec("affine", 8, signed=False, momentum=0.1)  # the preset's activation spec
    out: dict[str, QuantConfig | None] = {"FP32": None, "int8 preset (EMA min/max, momentum 0.1)": base}
    for comp in COMPONENTS:
        out[f"int8, `{comp}` in FP32"] = dataclasses.replace(
            base, overrides=base.overrides + (Override(QuantSpec("fp32"), component=comp),))
    out["int8 weights and input only (activations FP32)"] = dataclasses.replace(base, default=QuantSpec("fp32"))
    out["int8, EMA momentum 0.01"] = dataclasses.replace(base, default=dataclasses.replace(act, momentum=0.01))
    out["int8, signed activation codes"] = dataclasses.replace(base, default=dataclasses.replace(act, signed=True))
    out["int8, percentile range (Degree-Quant's, p = 0.001), no protective mask"] = dataclasses.replace(
        base, default=dataclasses.replace(act, observer="percentile"))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--fold", type=int, default=0)
    p.add_argument("--out", default="experiments/results/naive_range_probe.md")
    args = p.parse_args()
    data = D.load_dataset("reddit-binary", None, degree_encoding="normalized")
    split = D.kfold_splits(data.labels, k=10, seed=0, folds=data.folds)[args.fold]
    settings = dict(TRAIN_DEFAULTS[("gin", "graph")], epochs=args.epochs, lr=0.005, weight_decay=2e-4,
                    batch_size=128, select="loss")
    rows = []
    t0 = time.perf_counter()
    for name, quant in variants().items():
        arch = baseline("gin", task="graph", num_classes=data.num_classes, num_layers=5, readout="mean",
                        jk=False, head=64)
        arch = dataclasses.replace(arch, quant=quant)
        hist: list[tuple[float, float]] = []
        train_graph(arch, data, split, seed=args.fold, config=TrainConfig(**settings),
                    report=lambda epoch, m: hist.append((m["train_loss"], 100 * m["val_acc"])))
        cells = " | ".join(f"{loss:.4f} / {val:.1f}" for loss, val in hist)
        rows.append(f"| {name} | {cells} |")
        print(rows[-1], flush=True)
    head = " | ".join(f"epoch {e + 1}: train loss / val" for e in range(args.epochs))
    text = "\n".join([
        "# Naive QAT on REDDIT-BINARY (Degree-Quant set-up): which part collapses",
        "",
        f"Machine: {machine()}; {time.perf_counter() - t0:.0f} s. Command: `python experiments/naive_range_probe.py "
        f"--epochs {args.epochs} --fold {args.fold}`. Degree-Quant's GIN and set-up as in rows `dqsetup-*` of "
        f"[`dq_reddit.md`](dq_reddit.md), fold {args.fold}, {args.epochs} epochs per variant; each variant changes "
        "one thing of the naive `int8` preset (8-bit per-tensor weights, 8-bit per-row input, 8-bit unsigned affine "
        "activations with an EMA min/max range). A training loss that stays at ln 2 = 0.6931 is a constant "
        "prediction.",
        "",
        f"| variant | {head} |",
        "|---|" + "---|" * args.epochs,
        *rows,
        "",
    ])
    write_atomic(args.out, text)


if __name__ == "__main__":
    main()
