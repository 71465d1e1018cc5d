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

from lpgnas._validate import finite_number
from lpgnas.arch import READOUTS
from lpgnas.data import DEGREE_ENCODINGS, NODE_SPLITS
from lpgnas.errors import ConfigError, LpgnasError

__all__ = ["main", "build_parser", "TRAIN_DEFAULTS"]

from lpgnas.train import TRAIN_DEFAULTS  # noqa: E402  (re-exported: the published set-ups)
from lpgnas.train import apply_recipe, recipes, recorded_recipe  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lpgnas", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train and evaluate a baseline or an architecture JSON over seeds/folds")
    what = t.add_mutually_exclusive_group()
    what.add_argument("--model", choices=("gcn", "gat", "gin", "sage", "appnp"), default=None,
                      help="FP32 baseline architecture (default gcn; appnp: MLP + K=10 propagation, node tasks)")
    what.add_argument("--arch", default=None, help="architecture JSON (lpgnas.arch/v1) to retrain")
    t.add_argument("--dataset", required=True, help="dataset name (cora, citeseer, mutag, ...) or synthetic:k=v,...")
    t.add_argument("--data-root", default=None, help="data root (default: $LPGNAS_DATA, else the user cache)")
    t.add_argument("--seeds", type=int, default=10, help="number of seeds (node tasks)")
    t.add_argument("--folds", type=int, default=10, help="cross-validation folds (graph tasks)")
    t.add_argument("--fold", default=None, metavar="I[,I...]",
                   help="run only these folds (0-based) of the --folds cross-validation (graph tasks): a long "
                        "cross-validation in pieces, each fold trained exactly as in the full run")
    t.add_argument("--split", choices=NODE_SPLITS, default=None,
                   help="node split: public (Planetoid), random 60/20/20 or 20/30 per class, re-drawn per seed")
    t.add_argument("--recipe", choices=recipes(), default=None,
                   help="train as this published model is (its dropouts, learning rate, weight decay, epochs; "
                        "--epochs/--lr/... still override). Default: the recipe a tune chose for the architecture on "
                        "validation (search.retrain.recipe of its JSON), else APPNP's for a propagation block, else "
                        "that of the first layer's op (gcn for attn layers)")
    t.add_argument("--epochs", type=int, default=None)
    t.add_argument("--lr", type=float, default=None)
    t.add_argument("--weight-decay", type=float, default=None)
    t.add_argument("--patience", type=int, default=None)
    t.add_argument("--hidden", type=int, default=None, help="hidden width (baselines)")
    t.add_argument("--layers", type=int, default=None, help="number of layers (baselines)")
    t.add_argument("--readout", choices=READOUTS, default=None,
                   help="graph pooling of every layer (graph tasks; default: the architecture's, sum for the "
                        "GIN baseline; mean keeps the logits of large graphs in range)")
    t.add_argument("--jk", action=argparse.BooleanOptionalAction, default=None,
                   help="graph tasks: read out the input and every layer (jumping knowledge; the GIN baseline's "
                        "default) or, with --no-jk, the last layer only (default: the architecture's)")
    t.add_argument("--head", type=int, default=None, metavar="WIDTH",
                   help="graph tasks: score the pooled representation with an MLP of this width (linear, ReLU, "
                        "dropout, linear), 0 for one linear scorer per pooled representation (default: the "
                        "architecture's, 0 for the baselines). Degree-Quant's GIN: --layers 5 --no-jk --head 64")
    t.add_argument("--batch-size", type=int, default=None, help="graphs per batch (graph tasks)")
    t.add_argument("--degree-encoding", choices=DEGREE_ENCODINGS, default=None,
                   help="node features of graph sets without node labels (graph tasks): onehot, the degree clipped "
                        "at 64 (default), or normalized, one column of the degree standardised over the set "
                        "(PyTorch Geometric's choice for sets with hubs, e.g. REDDIT-BINARY)")
    t.add_argument("--select", choices=("acc", "loss"), default=None,
                   help="the validation figure that picks the kept epoch: acc (default; ties: lower loss) or loss "
                        "(ties: higher accuracy)")
    q = t.add_mutually_exclusive_group()
    q.add_argument("--quant", default=None, metavar="SCHEME",
                   help="quantisation scheme, one of: " + ", ".join(_presets()) + " (default: the architecture's own, "
                        "else fp32)")
    q.add_argument("--quant-config", default=None, metavar="FILE.json", help="a QuantConfig JSON file")
    t.add_argument("--a2q-target-bits", type=float, default=2.0,
                   help="A2Q: average feature bits the memory penalty aims at (default 2.0)")
    t.add_argument("--a2q-penalty", type=float, default=1.0,
                   help="A2Q: weight c of the memory penalty c * relu(M / M_target - 1)^2 (default 1.0)")
    t.add_argument("--save", default=None, metavar="DIR",
                   help="save the model of the run with the best validation accuracy (arch.json, weights, meta.json)")
    t.add_argument("--json", action="store_true", help="print the summary as one JSON object on the last line")
    t.set_defaults(func=_cmd_train)

    inf = sub.add_parser("infer", help="run a saved node-level model with packed low-bit kernels: accuracy, bytes, "
                                       "latency, agreement with the QAT evaluation")
    inf.add_argument("--model", required=True, metavar="DIR", help="model folder written by lpgnas train --save")
    inf.add_argument("--dataset", required=True, help="the (node-level) dataset the model was trained on")
    inf.add_argument("--data-root", default=None, help="data root (default: $LPGNAS_DATA, else the user cache)")
    inf.add_argument("--backend", choices=("auto", "reference", "pallas"), default="auto",
                     help="aggregation kernel: auto (Pallas on GPU/TPU, pure-JAX reference on CPU), reference, pallas")
    inf.add_argument("--interpret", action="store_true", help="run the Pallas kernel in interpret mode (testing)")
    inf.add_argument("--messages", choices=("exact", "fused"), default="exact",
                     help="exact: pack the quantised messages as the QAT model rounds them (default); fused: pack "
                          "XW and weight it in the kernel (skips the per-edge rounding)")
    inf.add_argument("--split", choices=NODE_SPLITS, default=None,
                     help="split of the reported accuracies (default: the one in the model's meta.json)")
    inf.add_argument("--repeats", type=int, default=20, help="timed runs; the median latency is reported")
    inf.add_argument("--json", action="store_true", help="print the report as one JSON object on the last line")
    inf.set_defaults(func=_cmd_infer)

    s = sub.add_parser("search", help="differentiable search of architecture and per-component bits (one round)")
    s.add_argument("--space", default="lpgnas", help="search space: a shipped name (lpgnas, tiny, ...) or a YAML path")
    s.add_argument("--dataset", required=True, help="dataset name or synthetic:k=v,...")
    s.add_argument("--data-root", default=None, help="data root (default: $LPGNAS_DATA, else the user cache)")
    s.add_argument("--lambda", dest="lam", type=float, default=0.1, help="weight of the normalised expected cost")
    s.add_argument("--cost", choices=("size", "buffer", "bitops"), default="size",
                   help="cost target: model size, feature memory (buffer) or BitOPs")
    s.add_argument("--epochs", type=int, default=300, help="search epochs")
    s.add_argument("--finetune", type=int, default=50,
                   help="epochs training the derived sub-network's shared weights after the search")
    s.add_argument("--temperature", default="1.0:0.1", help="softmax temperature START:END (exponential schedule)")
    s.add_argument("--gumbel", action="store_true", help="Gumbel-softmax relaxation")
    s.add_argument("--hard", action="store_true", help="straight-through one-hot forward")
    s.add_argument("--arch-lr", type=float, default=0.01, help="Adam learning rate of the logits")
    s.add_argument("--warmup", type=int, default=0, help="first epochs with weight updates only")
    s.add_argument("--seed", type=int, default=0, help="seed of the search (and of a random / per-class split)")
    s.add_argument("--split", choices=NODE_SPLITS, default=None,
                   help="node split searched on: public (Planetoid), random 60/20/20 or 20/30 per class, drawn "
                        "with --seed (default: public where the dataset has one, else random, as train); it only "
                        "chooses the architecture: retrain with lpgnas train --arch (splits re-drawn per seed)")
    s.add_argument("--out", required=True, help="run directory (log.jsonl, checkpoints, arch.json, summary.json)")
    s.add_argument("--resume", action="store_true", help="continue the search in --out from its last checkpoint")
    s.add_argument("--json", action="store_true", help="print the summary as one JSON object on the last line")
    s.set_defaults(func=_cmd_search)

    # `tune`, `pareto` and `export` live in their own modules (same rules: parse, call, print).
    from lpgnas import _cli_pareto, _cli_tune

    _cli_tune.add_parsers(sub)
    _cli_pareto.add_parsers(sub)
    return parser


_SEARCH_FLAGS = {"lambda": "--lambda", "epochs": "--epochs", "finetune": "--finetune", "t_start": "--temperature",
                 "t_end": "--temperature", "arch_lr": "--arch-lr", "warmup": "--warmup", "seed": "--seed",
                 "cost": "--cost", "space": "--space", "dataset": "--dataset", "split": "--split"}


def _as_flag(e: ConfigError) -> ConfigError:
    """The same error, naming the command-line flag of a library field."""
    if e.field in _SEARCH_FLAGS and e.source is None:
        return ConfigError(_SEARCH_FLAGS[e.field], e.problem)
    return e


def _temperature(text: str) -> tuple[float, float]:
    parts = text.split(":")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) not in (1, 2) or not all(np.isfinite(v) and v > 0 for v in values):
        raise ConfigError("--temperature", f"expected START:END (positive numbers, e.g. 1.0:0.1), got {text!r}")
    return values[0], values[-1]


def _cmd_search(args: argparse.Namespace) -> int:
    from lpgnas import data as D
    from lpgnas.search import SearchConfig, search
    from lpgnas.search_spaces import load_space

    finite_number("--lambda", args.lam, ge=0)
    t_start, t_end = _temperature(args.temperature)
    try:
        space = load_space(args.space)
        config = SearchConfig(epochs=args.epochs, lam=args.lam, cost=args.cost, gumbel=args.gumbel, hard=args.hard,
                              t_start=t_start, t_end=t_end, seed=args.seed, arch_lr=args.arch_lr,
                              warmup=args.warmup, finetune=args.finetune, split=args.split).validate()
        obj = D.load_dataset(args.dataset, args.data_root)
    except ConfigError as e:
        raise _as_flag(e) from None
    if isinstance(obj, D.Graph) and np.all(obj.features >= 0):  # bag-of-words features, as `train` does
        obj = obj.with_features(D.row_normalize(obj.features))
    update, close = _progress(sys.stderr.isatty() and not args.json, "search")
    try:
        result = search(space, obj, config=config, out=args.out, resume=args.resume, dataset=args.dataset,
                        progress=update)
    except ConfigError as e:
        raise _as_flag(e) from None
    finally:
        close()
    s = result.summary
    if args.json:
        print(json.dumps(s))
        return 0
    layers = " | ".join(f"{spec.op}({spec.attention},{spec.aggregator}) {spec.hidden}x{spec.heads} {spec.activation}"
                        + (" +skip" if spec.skip else "") for spec in result.arch.layers)
    split = s["split"] + (f" seed {s['split_seed']}" if s["split_seed"] is not None else "")
    print(f"search {s['space']} on {s['dataset']} (lambda {s['lambda']}, cost {s['cost']}, split {split}): "
          f"{s['epochs']}+{s['finetune']} epochs in {s['search_seconds']:.1f}s (compile {s['compile_seconds']:.1f}s)")
    print(f"derived: {layers}")
    print(f"derived sub-network (shared weights, fine-tuned): val {100 * s['val_acc']:.2f}  "
          f"test {100 * s['test_acc']:.2f}")
    print(f"model size {s['model_size_bits'] / 8192:.2f} KiB (fp32 {s['fp32_model_size_bits'] / 8192:.2f} KiB), "
          f"feature memory {s['buffer_bits'] / 8192:.1f} KiB, compression {s['compression']:.2f}x")
    retrain_split = f" --split {s['split']}" if s["task"] == "node" else ""
    print(f"architecture: {s['arch_path']}  (retrain: lpgnas train --arch {s['arch_path']} --dataset {s['dataset']}"
          f"{retrain_split})")
    return 0


def _presets() -> tuple[str, ...]:
    from lpgnas.quant import PRESETS

    return PRESETS


def _quant_config(args: argparse.Namespace):
    """The QuantConfig the flags ask for, or None to keep the architecture's own."""
    from lpgnas.quant import QuantConfig

    if args.quant is not None:
        if args.quant not in _presets():
            raise ConfigError("--quant", f"unknown scheme {args.quant!r}; allowed: {', '.join(_presets())}")
        return QuantConfig.preset(args.quant)
    if args.quant_config is not None:
        from lpgnas._jsonio import read_json

        obj = read_json(args.quant_config, "quantisation config file")
        try:
            return QuantConfig.from_json(obj)
        except ConfigError as e:
            raise ConfigError(e.field, e.problem, source=args.quant_config) from None
    return None


def _a2q_loss(arch, in_dim: int, num_classes: int, num_nodes: int | None, target_bits: float, c: float):
    """The A2Q memory penalty as an auxiliary loss, with ``M_target`` = the memory of the model's A2Q
    tensors with every row at ``target_bits`` bits (an average of ``target_bits``, whatever the
    tensors' initial widths), and ``a = c / M_target^2``."""
    from flax import nnx

    from lpgnas.nn import GNN
    from lpgnas.quant import a2q_memory_kb, a2q_memory_penalty

    probe = GNN(arch, in_dim, num_classes, num_nodes=num_nodes, rngs=nnx.Rngs(0))
    target_kb = float(a2q_memory_kb(probe, bits=target_bits))
    if target_kb <= 0:
        return None
    a = c / target_kb ** 2
    return lambda model: a2q_memory_penalty(model, target_kb, a)


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


def _fold_ids(text: str | None, k: int) -> set[int]:
    """The folds ``--fold`` names (0-based, comma-separated), all ``k`` without it."""
    if text is None:
        return set(range(k))
    try:
        ids = {int(v) for v in text.split(",") if v.strip()}
    except ValueError:
        ids = set()
    if not ids:
        raise ConfigError("--fold", f"expected comma-separated fold numbers, got {text!r}")
    bad = sorted(i for i in ids if not 0 <= i < k)
    if bad:
        raise ConfigError("--fold", f"fold {bad[0]} does not exist: the cross-validation has folds 0..{k - 1}")
    return ids


def _cmd_train(args: argparse.Namespace) -> int:
    from lpgnas import data as D
    from lpgnas.arch import baseline, read_architecture
    from lpgnas.train import node_arrays, summarize, train_graph, train_node

    for name in ("seeds", "folds"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name}", f"must be at least 1, got {getattr(args, name)}")
    degree_encoding = args.degree_encoding or "onehot"
    obj = D.load_dataset(args.dataset, args.data_root, degree_encoding=degree_encoding)
    task = "graph" if isinstance(obj, D.GraphDataset) else "node"
    if args.degree_encoding is not None and task != "graph":
        raise ConfigError("--degree-encoding", f"encodes the degree of graph-level sets; {args.dataset} is a "
                                               "node-level dataset")
    for flag, value in (("--readout", args.readout), ("--jk", args.jk), ("--head", args.head)):
        if value is not None and task != "graph":
            raise ConfigError(flag, f"reads out pooled graphs; {args.dataset} is a node-level dataset")
    if args.head is not None and args.head < 0:
        raise ConfigError("--head", f"must be a width >= 0, got {args.head}")
    readout_overrides = {k: v for k, v in (("readout", args.readout), ("jk", args.jk), ("head", args.head))
                         if v is not None}
    if args.fold is not None and task != "graph":
        raise ConfigError("--fold", f"picks cross-validation folds (graph tasks); {args.dataset} is a node-level "
                                    "dataset (use --seeds)")
    if args.arch is not None:
        arch = read_architecture(args.arch)
        if arch.task != task:
            raise ConfigError("task", f"architecture is for {arch.task}-level tasks but {args.dataset} is a "
                                      f"{task}-level dataset", source=args.arch)
        model_name = "arch"
        arch = dataclasses.replace(arch, **readout_overrides)
    else:
        model_name = args.model or ("gin" if task == "graph" else "gcn")
        arch = baseline(model_name, task=task, num_classes=obj.num_classes, hidden=args.hidden,
                        num_layers=args.layers, **{"readout": "sum", **readout_overrides})
    if args.recipe is not None:
        try:
            arch, defaults = apply_recipe(arch, args.recipe)
        except ConfigError as e:
            raise ConfigError("--recipe", e.problem) from None
    else:
        # the published optimisation set-up closest to the architecture: the one its tune chose on
        # validation (the dropouts are already in the JSON), APPNP's for a propagation block, else
        # that of the first layer's op
        op = recorded_recipe(arch)
        if op is None and arch.propagation is not None:
            op = "appnp"
        elif op is None:
            op = arch.layers[0].op if arch.layers[0].op in ("gcn", "gat", "gin", "sage") else "gcn"
        defaults = dict(TRAIN_DEFAULTS[(op, task)])
    quant = _quant_config(args)
    for flag, key in (("epochs", "epochs"), ("lr", "lr"), ("weight_decay", "weight_decay"),
                      ("patience", "patience"), ("batch_size", "batch_size"), ("select", "select")):
        value = getattr(args, flag)
        if value is not None:
            defaults[key] = value
    show = sys.stderr.isatty() and not args.json
    runs, costs = [], []
    summary_extra = {}
    best = {"val": -1.0}

    def keep_best(result, model, meta):
        if args.save is not None and result.val_acc > best["val"]:
            best.update(val=result.val_acc, model=model, meta=dict(
                meta, seed=result.seed, val_acc=round(100 * result.val_acc, 3),
                test_acc=round(100 * result.test_acc, 3), dataset=args.dataset))
    if task == "node":
        graph = obj
        row_norm = bool(np.all(graph.features >= 0))
        if row_norm:  # bag-of-words style features: the standard row normalisation
            graph = graph.with_features(D.row_normalize(graph.features))
        arch, config = _with_quant(arch, quant, defaults, args, graph.num_features, graph.num_classes,
                                   graph.num_nodes)
        split_kind = D.check_node_split(args.split or D.default_node_split(graph), graph, field="--split",
                                        name=args.dataset)
        arrays = node_arrays(graph)
        for seed in range(args.seeds):
            split = D.node_split(graph, split_kind, seed)
            update, close = _progress(show, f"seed {seed}")
            result, model = train_node(arch, graph, seed=seed, config=config, split=split, arrays=arrays,
                                       progress=update)
            close()
            runs.append(result)
            costs.append(_node_cost(model, graph))
            keep_best(result, model, dict(in_dim=graph.num_features, num_classes=graph.num_classes,
                                          num_nodes=graph.num_nodes, row_normalize=row_norm,
                                          split=split_kind))
            if not args.json:
                print(f"seed {seed}: val {100 * result.val_acc:.2f}  test {100 * result.test_acc:.2f}  "
                      f"(best epoch {result.best_epoch}, {result.train_seconds:.2f}s)")
        summary_extra["split"] = split_kind
        summary_extra["seeds"] = args.seeds
    else:
        dataset = obj
        arch, config = _with_quant(arch, quant, defaults, args, dataset.num_features, dataset.num_classes, None)
        splits = D.kfold_splits(dataset.labels, k=args.folds, seed=0, folds=dataset.folds)
        fold_ids = _fold_ids(args.fold, len(splits))
        for fold, split in enumerate(splits):
            if fold not in fold_ids:
                continue
            update, close = _progress(show, f"fold {fold + 1}/{len(splits)}")
            result, model = train_graph(arch, dataset, split, seed=fold, config=config, progress=update)
            close()
            runs.append(result)
            costs.append(_graph_cost(model, dataset))
            keep_best(result, model, dict(in_dim=dataset.num_features, num_classes=dataset.num_classes,
                                          num_nodes=None, row_normalize=False, split=f"fold-{fold}",
                                          degree_encoding=degree_encoding))
            if not args.json:
                print(f"fold {fold + 1}: val {100 * result.val_acc:.2f}  test {100 * result.test_acc:.2f}  "
                      f"(best epoch {result.best_epoch}, {result.train_seconds:.1f}s)")
        summary_extra["split"] = f"{len(splits)}-fold"
        summary_extra["folds"] = len(splits)
        summary_extra["seeds"] = len(runs)
        summary_extra["fold_ids"] = sorted(fold_ids)
        summary_extra["degree_encoding"] = degree_encoding
    summary = summarize(runs)
    if args.save is not None:
        from lpgnas.nn import save_model

        save_model(args.save, best["model"], best["meta"])
        summary_extra["model_path"] = args.save
    summary_extra["quant"] = "fp32" if arch.quant is None else (arch.quant.name or "custom")
    summary_extra.update(_mean_cost(costs))
    summary_extra["val_accs"] = [round(100 * r.val_acc, 3) for r in runs]  # per seed / fold, in run order
    summary_extra["test_accs"] = [round(100 * r.test_acc, 3) for r in runs]
    out = {"dataset": args.dataset, "model": model_name, **summary_extra, **summary.to_json(),
           "config": {k: v for k, v in dataclasses.asdict(config).items() if k not in ("aux_loss",)}}
    if args.json:
        print(json.dumps(out))
    else:
        print(f"{args.dataset} {model_name}: test {summary.test_acc_mean:.2f} ± {summary.test_acc_std:.2f}  "
              f"val {summary.val_acc_mean:.2f}  ({len(runs)} runs, median {summary.train_seconds_median:.2f}s, "
              f"compile {summary.compile_seconds:.2f}s)")
        print(f"quant {summary_extra['quant']}: model {summary_extra['model_size_bits'] / 8192:.1f} KiB "
              f"(fp32 {summary_extra['fp32_model_size_bits'] / 8192:.1f}), features "
              f"{summary_extra['feature_bits'] / 8192:.1f} KiB (fp32 {summary_extra['fp32_feature_bits'] / 8192:.1f}), "
              f"compression {summary_extra['compression']:.2f}x, avg feature bits {summary_extra['avg_feature_bits']:.2f}")
    return 0


def _with_quant(arch, quant, defaults: dict, args, in_dim: int, num_classes: int, num_nodes: int | None):
    """Attach the requested quantisation to ``arch`` and derive the training settings it needs
    (Degree-Quant masking, the A2Q memory penalty)."""
    from lpgnas.train import TrainConfig, with_arch_masking

    if quant is not None:
        arch = dataclasses.replace(arch, quant=None if quant.name == "fp32" else quant)
    q = arch.quant
    if q is not None and "a2q" in (q.default.method, getattr(q.weight, "method", None)):
        if args.a2q_target_bits <= 0:
            raise ConfigError("--a2q-target-bits", f"must be positive, got {args.a2q_target_bits}")
        defaults["aux_loss"] = _a2q_loss(arch, in_dim, num_classes, num_nodes, args.a2q_target_bits,
                                         args.a2q_penalty)
    return arch, with_arch_masking(TrainConfig(**defaults), arch)


def _node_cost(model, graph):
    from lpgnas.cost import gnn_cost
    from lpgnas.nn import insert_self_loops

    deg = graph.in_degree()
    _, loop_receivers, _ = insert_self_loops(graph.senders, graph.receivers, graph.num_nodes)
    return gnn_cost(model, graph.num_nodes, graph.num_edges, node_degree=deg, edge_degree=deg[loop_receivers])


def _graph_cost(model, dataset):
    from lpgnas.cost import gnn_cost

    # per graph, at the dataset's average size (a graph model holds one graph's features at a time)
    n = max(1, round(float(np.mean(dataset.n_node))))
    e = round(float(np.mean(dataset.n_edge)))
    return gnn_cost(model, n, e)


_COST_KEYS = ("model_size_bits", "fp32_model_size_bits", "feature_bits", "fp32_feature_bits", "bitops",
              "compression", "avg_feature_bits")


def _mean_cost(costs) -> dict:
    out = {}
    for key in _COST_KEYS:
        values = [float(getattr(c, key)) for c in costs]
        v = float(np.mean(values))
        out[key] = round(v, 4) if key in ("compression", "avg_feature_bits") else round(v)
    return out


def _cmd_infer(args: argparse.Namespace) -> int:
    import os

    from lpgnas import data as D
    from lpgnas.infer import infer_report
    from lpgnas.nn import load_model

    if args.repeats < 1:
        raise ConfigError("--repeats", f"must be at least 1, got {args.repeats}")
    model, arch, meta = load_model(args.model)
    meta_path = os.path.join(args.model, "meta.json")
    trained_on = meta.get("dataset", "?")
    if arch.task != "node":
        raise ConfigError("--model", f"{args.model} holds a graph-level model; lpgnas infer runs node-level models "
                                     "only (graph tasks are not supported yet)")
    obj = D.load_dataset(args.dataset, args.data_root)
    if isinstance(obj, D.GraphDataset):
        raise ConfigError("--dataset", f"{args.dataset} is a graph-level dataset; lpgnas infer runs node-level "
                                       "models only (graph tasks are not supported yet)")
    graph = obj
    for what, want, got in (("input features", meta["in_dim"], graph.num_features),
                            ("nodes", meta.get("num_nodes"), graph.num_nodes),
                            ("classes", meta["num_classes"], graph.num_classes)):
        if want is not None and want != got:
            raise ConfigError("--dataset", f"{args.dataset} has {got} {what} but the model in {args.model} was "
                                           f"trained on {trained_on} with {want}")
    if meta.get("row_normalize"):
        graph = graph.with_features(D.row_normalize(graph.features))
    split_kind = args.split or meta.get("split") or D.default_node_split(graph)
    D.check_node_split(split_kind, source=meta_path)  # a bad value can only come from meta.json
    D.check_node_split(split_kind, graph, field="--split", name=args.dataset)
    split = D.node_split(graph, split_kind, int(meta.get("seed", 0)))
    report = infer_report(model, graph, split, backend=args.backend, interpret=True if args.interpret else None,
                          messages=args.messages, repeats=args.repeats)
    quant = "fp32" if arch.quant is None else (arch.quant.name or "custom")
    out = {"model": args.model, "dataset": args.dataset, "trained_on": trained_on, "quant": quant,
           "split": split_kind, **report}
    if args.json:
        print(json.dumps(out))
        return 0
    print(f"{args.dataset} ({quant}, {out['backend']}, messages {args.messages}): test {out['test_acc']:.2f}  val "
          f"{out['val_acc']:.2f}  (QAT {out['qat_test_acc']:.2f} / {out['qat_val_acc']:.2f}), agreement "
          f"{100 * out['agreement']:.2f}%")
    print(f"features {out['packed_feature_bytes'] / 2**20:.2f} MiB packed "
          f"(fp32 {out['fp32_feature_bytes'] / 2**20:.2f}), weights {out['packed_weight_bytes'] / 1024:.1f} KiB (fp32 {out['fp32_weight_bytes'] / 1024:.1f})")
    print(f"latency {out['latency_ms']:.3f} ms (QAT {out['qat_latency_ms']:.3f}, fp32 {out['fp32_latency_ms']:.3f}), "
          f"compile {out['compile_seconds']:.2f}s")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

