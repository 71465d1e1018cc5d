"""The ``lpgnas`` command: parse flags, call the library, print. Configuration is read here, once.

Exit codes: 0 success, 2 bad input (a message naming the file or field, never a traceback).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from typing import Sequence

import numpy as np

from lpgnas.errors import ConfigError, LpgnasError

__all__ = ["main", "build_parser", "TRAIN_DEFAULTS"]

# Per (model, task) optimisation defaults: the published set-ups, chosen on validation accuracy.
TRAIN_DEFAULTS = {
    ("gcn", "node"): dict(epochs=200, lr=0.01, weight_decay=5e-4, weight_decay_scope="first", patience=200),
    ("gat", "node"): dict(epochs=400, lr=0.005, weight_decay=1e-3, patience=100),
    ("sage", "node"): dict(epochs=200, lr=0.01, weight_decay=5e-4, patience=100),
    ("gin", "node"): dict(epochs=200, lr=0.01, weight_decay=5e-4, patience=100),
    ("gin", "graph"): dict(epochs=150, lr=0.01, weight_decay=0.0, patience=150, lr_step=50, lr_gamma=0.5,
                           batch_size=32),
    ("gcn", "graph"): dict(epochs=150, lr=0.01, weight_decay=0.0, patience=150, lr_step=50, lr_gamma=0.5),
    ("gat", "graph"): dict(epochs=150, lr=0.005, weight_decay=0.0, patience=150, lr_step=50, lr_gamma=0.5),
    ("sage", "graph"): dict(epochs=150, lr=0.01, weight_decay=0.0, patience=150, lr_step=50, lr_gamma=0.5),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lpgnas", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train and evaluate a baseline or an architecture JSON over seeds/folds")
    what = t.add_mutually_exclusive_group()
    what.add_argument("--model", choices=("gcn", "gat", "gin", "sage"), default=None,
                      help="FP32 baseline architecture (default gcn)")
    what.add_argument("--arch", default=None, help="architecture JSON (lpgnas.arch/v1) to retrain")
    t.add_argument("--dataset", required=True, help="dataset name (cora, citeseer, mutag, ...) or synthetic:k=v,...")
    t.add_argument("--data-root", default=None, help="data root (default: $LPGNAS_DATA, else the user cache)")
    t.add_argument("--seeds", type=int, default=10, help="number of seeds (node tasks)")
    t.add_argument("--folds", type=int, default=10, help="cross-validation folds (graph tasks)")
    t.add_argument("--split", choices=("public", "random", "per-class"), default=None,
                   help="node split: public (Planetoid), random 60/20/20 or 20/30 per class, re-drawn per seed")
    t.add_argument("--epochs", type=int, default=None)
    t.add_argument("--lr", type=float, default=None)
    t.add_argument("--weight-decay", type=float, default=None)
    t.add_argument("--patience", type=int, default=None)
    t.add_argument("--hidden", type=int, default=None, help="hidden width (baselines)")
    t.add_argument("--layers", type=int, default=None, help="number of layers (baselines)")
    t.add_argument("--batch-size", type=int, default=None, help="graphs per batch (graph tasks)")
    t.add_argument("--json", action="store_true", help="print the summary as one JSON object on the last line")
    t.set_defaults(func=_cmd_train)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except LpgnasError as e:
        print(f"lpgnas {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"lpgnas {args.command}: interrupted", file=sys.stderr)
        return 130


def _progress(enabled: bool, desc: str):
    if not enabled:
        return None, (lambda: None)
    from tqdm import tqdm

    bar = tqdm(total=0, desc=desc, file=sys.stderr, leave=False)

    def update(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    return update, bar.close


def _cmd_train(args: argparse.Namespace) -> int:
    from lpgnas import data as D
    from lpgnas.arch import baseline, read_architecture
    from lpgnas.train import TrainConfig, node_arrays, summarize, train_graph, train_node

    for name in ("seeds", "folds"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name}", f"must be at least 1, got {getattr(args, name)}")
    obj = D.load_dataset(args.dataset, args.data_root)
    task = "graph" if isinstance(obj, D.GraphDataset) else "node"
    if args.arch is not None:
        arch = read_architecture(args.arch)
        if arch.task != task:
            raise ConfigError("task", f"architecture is for {arch.task}-level tasks but {args.dataset} is a "
                                      f"{task}-level dataset", source=args.arch)
        model_name = "arch"
        op = arch.layers[0].op if arch.layers[0].op in ("gcn", "gat", "gin", "sage") else "gcn"
    else:
        model_name = args.model or ("gin" if task == "graph" else "gcn")
        op = model_name
        arch = None
    defaults = dict(TRAIN_DEFAULTS[(op, task)])
    for flag, key in (("epochs", "epochs"), ("lr", "lr"), ("weight_decay", "weight_decay"),
                      ("patience", "patience"), ("batch_size", "batch_size")):
        value = getattr(args, flag)
        if value is not None:
            defaults[key] = value
    config = TrainConfig(**defaults)
    show = sys.stderr.isatty() and not args.json
    runs = []
    summary_extra = {}
    if task == "node":
        graph = obj
        if np.all(graph.features >= 0):  # bag-of-words style features: the standard row normalisation
            graph = graph.with_features(D.row_normalize(graph.features))
        if arch is None:
            arch = baseline(model_name, num_classes=graph.num_classes, hidden=args.hidden, num_layers=args.layers)
        split_kind = args.split or ("public" if graph.split is not None else "random")
        if split_kind == "public" and graph.split is None:
            raise ConfigError("--split", f"{args.dataset} has no public split; use random or per-class")
        arrays = node_arrays(graph)
        for seed in range(args.seeds):
            split = _node_split(graph, split_kind, seed)
            update, close = _progress(show, f"seed {seed}")
            result, _ = train_node(arch, graph, seed=seed, config=config, split=split, arrays=arrays,
                                   progress=update)
            close()
            runs.append(result)
            if not args.json:
                print(f"seed {seed}: val {100 * result.val_acc:.2f}  test {100 * result.test_acc:.2f}  "
                      f"(best epoch {result.best_epoch}, {result.train_seconds:.2f}s)")
        summary_extra["split"] = split_kind
        summary_extra["seeds"] = args.seeds
    else:
        dataset = obj
        if arch is None:
            arch = baseline(model_name, task="graph", hidden=args.hidden, num_layers=args.layers)
        splits = D.kfold_splits(dataset.labels, k=args.folds, seed=0, folds=dataset.folds)
        for fold, split in enumerate(splits):
            update, close = _progress(show, f"fold {fold + 1}/{len(splits)}")
            result, _ = train_graph(arch, dataset, split, seed=fold, config=config, progress=update)
            close()
            runs.append(result)
            if not args.json:
                print(f"fold {fold + 1}: val {100 * result.val_acc:.2f}  test {100 * result.test_acc:.2f}  "
                      f"(best epoch {result.best_epoch}, {result.train_seconds:.1f}s)")
        summary_extra["split"] = f"{len(splits)}-fold"
        summary_extra["folds"] = len(splits)
        summary_extra["seeds"] = len(splits)
    summary = summarize(runs)
    out = {"dataset": args.dataset, "model": model_name, **summary_extra, **summary.to_json(),
           "config": {k: v for k, v in dataclasses.asdict(config).items() if k not in ("aux_loss",)}}
    if args.json:
        print(json.dumps(out))
    else:
        print(f"{args.dataset} {model_name}: test {summary.test_acc_mean:.2f} ± {summary.test_acc_std:.2f}  "
              f"val {summary.val_acc_mean:.2f}  ({len(runs)} runs, median {summary.train_seconds_median:.2f}s, "
              f"compile {summary.compile_seconds:.2f}s)")
    return 0


def _node_split(graph, kind: str, seed: int):
    from lpgnas import data as D

    if kind == "public":
        return graph.split
    if kind == "random":
        return D.random_split(graph.labels, seed)
    return D.per_class_split(graph.labels, seed)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

