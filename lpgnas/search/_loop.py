"""The search round: build the supernet, alternate weight and logit updates for ``epochs``, fine-tune
the derived sub-network for ``finetune`` epochs, and write the run directory.

Node tasks (transductive, full batch) run ``chunk`` epochs per call of one compiled program
(``lax.scan`` over epochs); graph tasks alternate a weight step on a training batch and a logit step
on a validation batch (padded batches of one bucket, one compile per step kind).
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from lpgnas._jsonio import read_json
from lpgnas.arch import Architecture, write_architecture
from lpgnas.data import (
    Graph,
    GraphDataset,
    Split,
    default_node_split,
    iterate_batches,
    kfold_splits,
    make_buckets,
    node_split,
)
from lpgnas.errors import ConfigError, LpgnasError
from lpgnas.search._config import SearchConfig
from lpgnas.search._rundir import RunDir, read_log
from lpgnas.search._steps import (
    Program,
    Schedule,
    SearchState,
    accuracy,
    init_state,
    make_program,
    phase,
)
from lpgnas.search_spaces import SearchSpace, load_space
from lpgnas.supernet import Supernet, architecture_cost, derive

__all__ = ["SearchResult", "search"]


class SearchResult(NamedTuple):
    """The derived architecture, the summary (see :func:`search`), the supernet in its final state
    and the per-epoch log records."""

    arch: Architecture
    summary: dict
    supernet: Supernet
    log: list


def _fingerprint(space: SearchSpace, dataset: str, config: SearchConfig) -> dict:
    return {"schema": "lpgnas.search/v1", "dataset": dataset, "space": space.to_json(), "config": config.to_json()}


def _legacy_fingerprint(run: RunDir, fingerprint: dict, space: SearchSpace) -> dict:
    """``fingerprint`` as an earlier lpgnas wrote it for the same search, when the run directory
    holds such a search: before the read-out moved into the space (``supernet.readout`` in the
    config: the pooling this search uses), before graph searches had ``num_buckets`` (one shape:
    only a search with ``num_buckets=1``, or a node search, which does not batch, is the same
    search), and before searches recorded their split (when this one
    uses the split every search used then: the graph's public split; graph tasks: fold 0).
    Otherwise ``fingerprint`` unchanged."""
    path = run.file("search.json")
    if not os.path.exists(path):
        return fingerprint
    try:
        existing = read_json(path, "search description", expect=dict)
    except LpgnasError:
        return fingerprint  # RunDir.start reports it
    old = existing.get("config")
    old_supernet = old.get("supernet") if isinstance(old, dict) else None
    if isinstance(old_supernet, dict) and "readout" in old_supernet and space.graph is None:
        supernet = {**fingerprint["config"]["supernet"], "readout": space.readout.readout}
        fingerprint = {**fingerprint, "config": {**fingerprint["config"], "supernet": supernet}}
    if isinstance(old, dict) and "num_buckets" not in old and (space.task == "node"
                                                               or fingerprint["config"]["num_buckets"] == 1):
        # before the setting, graph searches padded every batch to one shape (node searches do not batch)
        fingerprint = {**fingerprint, "config": {k: v for k, v in fingerprint["config"].items() if k != "num_buckets"}}
    config = fingerprint["config"]
    if config["split"] not in ("public", None) or config["split_seed"] is not None:
        return fingerprint
    if isinstance(old, dict) and "split" not in old and "split_seed" not in old:
        config = {k: v for k, v in config.items() if k not in ("split", "split_seed")}
        return {**fingerprint, "config": config}
    return fingerprint


def _record(epoch: int, config: SearchConfig, m: dict, choices: dict) -> dict:
    return {
        "epoch": epoch,
        "phase": "search" if epoch < config.epochs else "finetune",
        "temperature": round(float(m["temperature"]), 6),
        "lambda": config.lam,
        "train_loss": round(float(m["train_loss"]), 6),
        "val_loss": round(float(m["val_loss"]), 6),
        "train_acc": round(float(m["train_acc"]), 6),
        "val_acc": round(float(m["val_acc"]), 6),
        "expected_cost": round(float(m["cost"]), 8),
        "choices": choices,
    }


def _choices(net: Supernet, logits) -> dict:
    nnx.update(net, logits)
    return net.choices()


# --------------------------------------------------------------------------------------------------
# compiled programs, shared by the searches of one process (lambdas, seeds, resumed runs)

_COMPILED: dict = {}


def _static(config: SearchConfig) -> tuple:
    """The settings compiled into a program (the rest -- temperature, lambda, epochs, warm-up,
    seed -- are traced inputs)."""
    return (config.gumbel, config.hard, config.cost, config.lr, config.weight_decay, config.arch_lr,
            config.arch_weight_decay)


def _shapes(tree) -> tuple:
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    return (treedef, tuple((np.shape(x), str(np.asarray(x).dtype) if not hasattr(x, "dtype") else str(x.dtype))
                           for x in leaves))


# --------------------------------------------------------------------------------------------------
# node classification


def _split_meta(config: SearchConfig) -> dict:
    """The split a checkpoint records (and a resumed search must share)."""
    return {"split": config.split, "split_seed": config.split_seed}


def _start(net, program: Program, config: SearchConfig, run: RunDir | None, resume: bool):
    """The initial search state and log records: fresh, or the run's last checkpoint with its log cut
    back to the checkpoint's epoch."""
    state = init_state(net, program, config.seed)
    if run is None or not resume:
        return state, []
    state, meta = run.load_checkpoint(state)
    for key, want in _split_meta(config).items():
        if key in meta and meta[key] != want:  # checkpoints written before the split was recorded lack it
            raise ConfigError("--resume", f"the checkpoint in {run.path} was written by a search with {key} "
                                          f"{meta[key]!r}, this search has {want!r}; use another directory")
    run.cut_log(int(state.epoch))
    return state, read_log(run.log_path)


def _node_chunk(program: Program, chunk: int):
    def epoch_body(state: SearchState, data, sched: Schedule):
        x, ga, labels, train_m, val_m, test_m = data
        key, k_w, k_a = jax.random.split(jax.random.wrap_key_data(state.key), 3)
        state = state._replace(key=jax.random.key_data(key))
        state, train_loss = program.weight_step(state, (x, ga, labels, train_m), sched, k_w)
        state, (out, val_loss, cost) = program.logit_step(state, (x, ga, labels, val_m), sched, k_a)
        ph = phase(state.epoch, sched)
        val_acc = accuracy(out, labels, val_m)
        test_acc = accuracy(out, labels, test_m)
        better = (ph.discrete > 0) & (val_acc > state.best_val)
        state = state._replace(
            best_val=jnp.where(better, val_acc, state.best_val),
            best_test=jnp.where(better, test_acc, state.best_test),
            best_epoch=jnp.where(better, state.epoch, state.best_epoch),
            epoch=state.epoch + 1,
        )
        metrics = {"temperature": ph.temperature, "train_loss": train_loss, "val_loss": val_loss,
                   "train_acc": accuracy(out, labels, train_m), "val_acc": val_acc, "test_acc": test_acc,
                   "cost": cost, "logits": state.logits}
        return state, metrics

    @jax.jit
    def run_chunk(state: SearchState, data, sched: Schedule, limit):
        def body(s, _):
            return jax.lax.cond(s.epoch < limit, lambda s: epoch_body(s, data, sched),
                                lambda s: (s, _zeros_like_metrics(s)), s)

        def _zeros_like_metrics(s):
            z = jnp.zeros((), jnp.float32)
            return {"temperature": z, "train_loss": z, "val_loss": z, "train_acc": z, "val_acc": z, "test_acc": z,
                    "cost": z, "logits": s.logits}

        return jax.lax.scan(body, state, None, length=chunk)

    return run_chunk


def _search_node(net: Supernet, graph: Graph, split: Split, config: SearchConfig, run: RunDir | None, resume: bool,
                 progress, arrays) -> tuple[SearchState, list, float, float]:
    from lpgnas.train import node_arrays  # floor 4 helper, shared with the trainer

    x, ga = arrays if arrays is not None else node_arrays(graph)
    train_m, val_m, test_m = (jnp.asarray(m) for m in split.masks(graph.num_nodes))
    labels = jnp.asarray(graph.labels, jnp.int32)
    data = (x, ga, labels, train_m, val_m, test_m)
    program = make_program(net, config, graph.num_nodes, graph.num_edges)
    state, records = _start(net, program, config, run, resume)
    chunk = math.gcd(config.chunk, config.checkpoint_every)
    sched = Schedule.of(config)
    total = config.total_epochs
    limit = jnp.asarray(total, jnp.int32)
    key = ("node", program.graphdef, _static(config), chunk, float(graph.num_nodes), float(graph.num_edges),
           _shapes((state, data)))
    compiled = _COMPILED.get(key)
    compile_s = 0.0
    if compiled is None and int(state.epoch) < total:
        t0 = time.perf_counter()
        compiled = _node_chunk(program, chunk).lower(state, data, sched, limit).compile()
        compile_s = time.perf_counter() - t0
        _COMPILED[key] = compiled
    t0 = time.perf_counter()
    while int(state.epoch) < total:
        start = int(state.epoch)
        state, ms = compiled(state, data, sched, limit)
        end = int(state.epoch)
        host = jax.device_get({k: v for k, v in ms.items() if k != "logits"})
        new = []
        for i in range(end - start):
            logits_i = jax.tree_util.tree_map(lambda a: a[i], ms["logits"])
            new.append(_record(start + i, config, {k: v[i] for k, v in host.items()}, _choices(net, logits_i)))
        records.extend(new)
        if run is not None:
            run.append_log(new)
            if end % config.checkpoint_every == 0 or end == total:
                run.save_checkpoint(state, {"epoch": end, **_split_meta(config)})
        if progress is not None:
            progress(end, total)
    jax.block_until_ready(state)
    return state, records, time.perf_counter() - t0, compile_s


# --------------------------------------------------------------------------------------------------
# graph classification


def _search_graph(net: Supernet, dataset: GraphDataset, split: Split, config: SearchConfig, run: RunDir | None,
                  resume: bool, progress) -> tuple[SearchState, list, float, float]:
    from lpgnas.train import batch_arrays

    for name in ("train", "val"):
        if len(getattr(split, name)) == 0:
            raise ConfigError("split", f"the {name} set is empty: the search needs training and validation graphs")
    n_mean = float(np.mean(dataset.n_node))
    e_mean = float(np.mean(dataset.n_edge))
    program = make_program(net, config, n_mean, e_mean)
    state, records = _start(net, program, config, run, resume)
    buckets = make_buckets(dataset, config.batch_size, num_buckets=config.num_buckets)
    sched = Schedule.of(config)
    key = ("graph", program.graphdef, _static(config), n_mean, e_mean)
    if key not in _COMPILED:
        _COMPILED[key] = (jax.jit(program.weight_step), jax.jit(program.logit_step), jax.jit(program.evaluate))
    weight_step, logit_step, evaluate = _COMPILED[key]

    def batches(idx, shuffle, seed):
        return [batch_arrays(b) for b in iterate_batches(dataset, idx, config.batch_size, buckets=buckets,
                                                          shuffle=shuffle, seed=seed)]

    compile_s = 0.0
    compiled = set()  # (function, batch shape) pairs compiled

    def call(fn, shape, state, *args):
        """``fn(state, *args)``; its first call for a batch shape (the compile) counts as compile time."""
        nonlocal compile_s
        if (fn, shape) in compiled:
            return fn(state, *args)
        jax.block_until_ready(state)
        t0 = time.perf_counter()
        out = jax.block_until_ready(fn(state, *args))
        compile_s += time.perf_counter() - t0
        compiled.add((fn, shape))
        return out

    def eval_set(st, fixed):
        hits = count = 0.0
        for x, ga, labels, gmask in fixed:
            out = call(evaluate, x.shape, st, x, ga, sched)
            hits += float(accuracy(out, labels, gmask)) * float(np.sum(np.asarray(gmask)))
            count += float(np.sum(np.asarray(gmask)))
        return hits / max(count, 1.0)

    val_fixed = batches(split.val, False, 0)
    test_fixed = batches(split.test, False, 0)
    train_fixed = batches(split.train, False, 0)
    total = config.total_epochs
    t_start = time.perf_counter()
    while int(state.epoch) < total:
        epoch = int(state.epoch)
        key = jax.random.wrap_key_data(state.key)
        val_batches = batches(split.val, True, config.seed * 100_003 + epoch + 7)
        losses, vlosses, costs = [], [], []
        for j, (x, ga, labels, gmask) in enumerate(batches(split.train, True, config.seed * 100_003 + epoch)):
            key, k_w, k_a = jax.random.split(key, 3)
            vbatch = val_batches[j % len(val_batches)]
            state, loss = call(weight_step, x.shape, state, (x, ga, labels, gmask), sched, k_w)
            state, (_, vloss, cost) = call(logit_step, vbatch[0].shape, state, vbatch, sched, k_a)
            losses.append(float(loss))
            vlosses.append(float(vloss))
            costs.append(float(cost))
        ph = phase(state.epoch, sched)
        val_acc = eval_set(state, val_fixed)
        train_acc = eval_set(state, train_fixed)
        if float(ph.discrete) > 0 and val_acc > float(state.best_val):
            state = state._replace(best_val=jnp.asarray(val_acc, jnp.float32),
                                   best_test=jnp.asarray(eval_set(state, test_fixed), jnp.float32),
                                   best_epoch=jnp.asarray(epoch, jnp.int32))
        state = state._replace(key=jax.random.key_data(key), epoch=state.epoch + 1)
        m = {"temperature": ph.temperature, "train_loss": np.mean(losses), "val_loss": np.mean(vlosses),
             "train_acc": train_acc, "val_acc": val_acc, "cost": np.mean(costs)}
        rec = _record(epoch, config, m, _choices(net, state.logits))
        records.append(rec)
        if run is not None:
            run.append_log([rec])
            if (epoch + 1) % config.checkpoint_every == 0 or epoch + 1 == total:
                run.save_checkpoint(state, {"epoch": epoch + 1, **_split_meta(config)})
        if progress is not None:
            progress(epoch + 1, total)
    return state, records, time.perf_counter() - t_start - compile_s, compile_s


# --------------------------------------------------------------------------------------------------
# entry point


def search(space: SearchSpace | str, data: Graph | GraphDataset, *, config: SearchConfig = SearchConfig(),
           out: str | None = None, resume: bool = False, dataset: str | None = None, split: Split | None = None,
           arrays=None, progress: Callable[[int, int], None] | None = None) -> SearchResult:
    """One differentiable search round of ``space`` on ``data``.

    Args:
      space: a :class:`~lpgnas.search_spaces.SearchSpace`, a shipped name or a YAML path.
      data: a node-level :class:`~lpgnas.data.Graph` or a graph-level
        :class:`~lpgnas.data.GraphDataset`.
      config: :class:`SearchConfig`; node tasks search on its ``split`` (default: public where the
        graph has one, else random), drawn with ``split_seed`` (default: ``seed``).
      split: graph tasks only, the graph ids to search on (default: fold 0 of 10 stratified folds).
      out: run directory (``None``: nothing is written); its ``search.json`` and checkpoints record
        the split, so resuming with another split is refused.
      resume: continue from ``out``'s last checkpoint (same search only); the result equals an
        uninterrupted run's. dataset: name recorded in the provenance.
      arrays: node tasks, device arrays from :func:`lpgnas.train.node_arrays` to reuse.
      progress: ``progress(epochs_done, total_epochs)`` after each chunk / epoch.

    The summary holds:

    * ``val_acc`` / ``test_acc`` -- the derived (argmax) sub-network with the supernet's shared
      weights, fine-tuned for ``config.finetune`` epochs (weights only, training split); the
      fine-tune epoch with the best validation accuracy is kept and its test accuracy reported
      (not a retraining from scratch: ``lpgnas train --arch arch.json`` does that);
    * ``supernet_val_acc`` -- the relaxed supernet at the last search epoch (evaluation mode);
    * ``model_size_bits``, ``fp32_model_size_bits``, ``buffer_bits`` (feature memory),
      ``fp32_buffer_bits``, ``bitops``, ``compression`` -- exact costs of the derived architecture
      (:func:`lpgnas.supernet.architecture_cost`); ``expected_cost`` -- the normalised expected cost
      at the last search epoch;
    * ``search_seconds`` (every epoch, compile excluded), ``compile_seconds``, ``epoch_ms``,
      ``arch_path`` (``None`` without ``out``), the choices and the settings;
    * ``split`` / ``split_seed`` -- the split searched on (node tasks: ``public``, ``random`` or
      ``per-class`` and its seed, ``None`` for public; graph tasks: ``fold-0`` with seed 0, or
      ``custom`` for a given ``split``) and ``split_sizes`` (train / val / test counts). The
      architecture's ``search`` provenance records ``split`` and ``split_seed`` too. The split only
      chooses the architecture: ``lpgnas train --arch`` re-draws a random / per-class split per seed.
    """
    config.validate()
    space = load_space(space)
    if isinstance(data, GraphDataset):
        task = "graph"
    elif isinstance(data, Graph):
        task = "node"
    else:
        raise ConfigError("dataset", f"expected a Graph or a GraphDataset, got {type(data).__name__}")
    if space.task != task:
        raise ConfigError("space", f"search space {space.name!r} is for {space.task}-level tasks but the dataset is "
                                   f"{task}-level")
    name = dataset or getattr(data, "name", "") or "dataset"
    if task == "node":
        if split is not None:
            raise ConfigError("split", "node tasks search on config.split, drawn with config.split_seed; for a "
                                       "split of your own pass graph.with_split(...) and split='public'")
        kind = config.split or default_node_split(data)
        split_seed = None if kind == "public" else (config.seed if config.split_seed is None else config.split_seed)
        config = dataclasses.replace(config, split=kind, split_seed=split_seed)
        split = node_split(data, kind, split_seed or 0)  # refuses a public split the graph lacks, before any file
        split_name = kind
        for part in ("train", "val"):
            if len(getattr(split, part)) == 0:
                raise ConfigError("split", f"the {part} set of the {kind} split is empty: the search needs "
                                           "training and validation nodes")
    else:
        if config.split is not None or config.split_seed is not None:
            raise ConfigError("split", "node-level datasets only: a graph-level search uses fold 0 of 10 "
                                       "stratified folds (or the split passed to search())")
        split_name, split_seed = ("custom", None) if split is not None else ("fold-0", 0)
        if split is None:
            split = kfold_splits(data.labels, k=10, seed=0, folds=data.folds)[0]
    run = RunDir(out) if out is not None else None
    if run is not None:
        resume = run.start(_legacy_fingerprint(run, _fingerprint(space, name, config), space), resume=resume)
    elif resume:
        raise ConfigError("--resume", "needs a run directory (--out)")
    rngs = nnx.Rngs(params=config.seed)
    if task == "node":
        net = Supernet(space, data.num_features, data.num_classes, num_nodes=data.num_nodes,
                       config=config.supernet, rngs=rngs)
        state, log, search_s, compile_s = _search_node(net, data, split, config, run, resume, progress, arrays)
        n, e = data.num_nodes, data.num_edges
    else:
        net = Supernet(space, data.num_features, data.num_classes, config=config.supernet, rngs=rngs)
        state, log, search_s, compile_s = _search_graph(net, data, split, config, run, resume, progress)
        n, e = float(np.mean(data.n_node)), float(np.mean(data.n_edge))
    nnx.update(net, state.params, state.logits, state.rest)
    last_search = [r for r in log if r["phase"] == "search"]
    metrics = {"val_acc": float(state.best_val), "test_acc": float(state.best_test)}
    provenance = {"space": space.name, "dataset": name, "lambda": config.lam, "seed": config.seed,
                  "cost": config.cost, "epochs": config.epochs, "split": split_name, "split_seed": split_seed,
                  "metrics": metrics}
    arch = derive(net, search=provenance)
    report = architecture_cost(arch, data.num_features, data.num_classes, n, e)
    arch_path = None
    if run is not None:
        arch_path = run.file("arch.json")
        write_architecture(arch, arch_path)
    summary = {
        "space": space.name,
        "dataset": name,
        "task": task,
        "lambda": config.lam,
        "cost": config.cost,
        "seed": config.seed,
        "split": split_name,
        "split_seed": split_seed,
        "split_sizes": {"train": len(split.train), "val": len(split.val), "test": len(split.test)},
        "epochs": config.epochs,
        "finetune": config.finetune,
        "val_acc": float(state.best_val),
        "test_acc": float(state.best_test),
        "best_finetune_epoch": int(state.best_epoch) - config.epochs if int(state.best_epoch) >= 0 else None,
        "supernet_val_acc": last_search[-1]["val_acc"] if last_search else None,
        "expected_cost": last_search[-1]["expected_cost"] if last_search else None,
        "model_size_bits": float(report.model_size_bits),
        "fp32_model_size_bits": float(report.fp32_model_size_bits),
        "buffer_bits": float(report.feature_bits),
        "fp32_buffer_bits": float(report.fp32_feature_bits),
        "bitops": float(report.bitops),
        "fp32_bitops": float(report.fp32_bitops),
        "compression": float(report.compression),
        "search_seconds": round(search_s, 3),
        "compile_seconds": round(compile_s, 3),
        "epoch_ms": round(1000.0 * search_s / max(config.total_epochs, 1), 3),
        "choices": net.choices(),
        "arch_path": arch_path,
    }
    if run is not None:
        from lpgnas.search._rundir import atomic_write_json

        atomic_write_json(run.file("summary.json"), summary)
    return SearchResult(arch, summary, net, log)
