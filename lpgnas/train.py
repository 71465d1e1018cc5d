"""One trainer for node- and graph-level tasks.

Node tasks train full-batch: a whole chunk of epochs (train step + evaluation + early-stopping
bookkeeping) runs inside one jitted ``lax.fori_loop``, so there is one compile per graph and no
Python work per epoch. Graph tasks train on padded mini-batches, one compile per size bucket.
Model selection (the kept parameters, the early stop) uses the validation split only; the test
accuracy of the selected parameters is reported, never used to choose.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, Callable, Iterable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.experimental import sparse as jsparse

from lpgnas.arch import Architecture, baseline
from lpgnas.data import Graph, GraphDataset, Split, iterate_batches, make_buckets
from lpgnas.nn import GNN, GraphArrays, SparseRows, graph_arrays, sparse_rows

__all__ = [
    "TRAIN_DEFAULTS",
    "recipes",
    "apply_recipe",
    "recorded_recipe",
    "TrainConfig",
    "with_arch_masking",
    "RunResult",
    "Summary",
    "node_arrays",
    "batch_arrays",
    "train_node",
    "train_graph",
    "summarize",
]


# Per (model, task) optimisation defaults: the published set-ups, chosen on validation accuracy.
TRAIN_DEFAULTS = {
    ("gcn", "node"): dict(epochs=200, lr=0.01, weight_decay=5e-4, weight_decay_scope="first", patience=200),
    ("gat", "node"): dict(epochs=400, lr=0.005, weight_decay=1e-3, patience=100),
    ("sage", "node"): dict(epochs=200, lr=0.01, weight_decay=5e-4, patience=100),
    ("gin", "node"): dict(epochs=200, lr=0.01, weight_decay=5e-4, patience=100),
    # APPNP (Klicpera et al. 2019): hidden 64, dropout 0.5, lr 0.01, L2 5e-3 on the first layer, K=10, teleport 0.1
    ("appnp", "node"): dict(epochs=300, lr=0.01, weight_decay=5e-3, weight_decay_scope="first", patience=100),
    ("gin", "graph"): dict(epochs=150, lr=0.01, weight_decay=0.0, patience=150, lr_step=50, lr_gamma=0.5,
                           batch_size=32, num_buckets=5),
    ("gcn", "graph"): dict(epochs=150, lr=0.01, weight_decay=0.0, patience=150, lr_step=50, lr_gamma=0.5),
    ("gat", "graph"): dict(epochs=150, lr=0.005, weight_decay=0.0, patience=150, lr_step=50, lr_gamma=0.5),
    ("sage", "graph"): dict(epochs=150, lr=0.01, weight_decay=0.0, patience=150, lr_step=50, lr_gamma=0.5),
}


def recipes(task: str | None = None) -> tuple[str, ...]:
    """The training recipes of a ``task`` (``node`` | ``graph``): the models of
    :data:`TRAIN_DEFAULTS`, each a published set-up; without a task, every recipe name (sorted)."""
    if task is None:
        return tuple(sorted({m for (m, _) in TRAIN_DEFAULTS}))
    return tuple(m for (m, t) in TRAIN_DEFAULTS if t == task)


def apply_recipe(arch: Architecture, name: str) -> tuple[Architecture, dict]:
    """``arch`` set up to train as the published ``name`` model is: ``(arch with the dropouts of
    lpgnas.arch.baseline(name), a new dict of TRAIN_DEFAULTS[(name, arch.task)])``, e.g. ``gat``: dropout
    0.6 on inputs, hidden features and attention, lr 0.005, weight decay 1e-3 on every kernel, 400
    epochs. The architecture's layers and quantisation are kept."""
    from lpgnas.errors import ConfigError

    if (name, arch.task) not in TRAIN_DEFAULTS:
        raise ConfigError("recipe", f"unknown recipe {name!r} for {arch.task}-level tasks; allowed: "
                                    f"{', '.join(recipes(arch.task))}")
    ref = baseline(name, task=arch.task, num_classes=2)
    arch = dataclasses.replace(arch, dropout=ref.dropout, input_dropout=ref.input_dropout,
                               attn_dropout=ref.attn_dropout)
    return arch, dict(TRAIN_DEFAULTS[(name, arch.task)])


def recorded_recipe(arch: Architecture) -> str | None:
    """The recipe a tune retrained ``arch`` with and chose on validation (``search.retrain.recipe``
    of its JSON), or ``None``."""
    from collections.abc import Mapping

    retrain = arch.search.get("retrain") if isinstance(arch.search, Mapping) else None
    name = retrain.get("recipe") if isinstance(retrain, Mapping) else None
    return name if isinstance(name, str) and (name, arch.task) in TRAIN_DEFAULTS else None


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings (plain values; the CLI fills them from flags and model defaults).

    ``weight_decay_scope``: ``all`` (every kernel), or ``first`` (the first layer only, Kipf's GCN).
    ``lr_step``/``lr_gamma``: step decay (GIN: halve every 50 epochs); 0 disables.
    ``aux_loss``: an optional ``model -> scalar`` added to the training loss (e.g. a memory penalty).
    ``dq``: Degree-Quant protection probabilities ``(p_min, p_max)`` or ``None``.
    ``select``: which validation figure picks the kept epoch: ``acc`` (ties broken by lower loss) or
    ``loss`` (ties broken by higher accuracy).
    """

    epochs: int = 200
    lr: float = 0.01
    weight_decay: float = 5e-4
    weight_decay_scope: str = "all"
    patience: int = 100
    chunk: int = 25
    batch_size: int = 32
    lr_step: int = 0
    lr_gamma: float = 0.5
    num_buckets: int = 3
    select: str = "acc"
    aux_loss: Callable[[Any], jax.Array] | None = None
    dq: tuple[float, float] | None = None


def with_arch_masking(config: TrainConfig, arch) -> TrainConfig:
    """``config`` with the Degree-Quant protective masking that ``arch``'s quantisation config names
    (``arch.quant.dq``: a ``dq-*`` preset, or the ``degree_quant`` block of the space a search
    derived it from), so that retraining masks as the search or the preset did. ``config.dq`` set
    already is kept (an explicit choice)."""
    q = getattr(arch, "quant", None)
    if config.dq is not None or q is None or q.dq is None:
        return config
    return dataclasses.replace(config, dq=(q.dq.p_min, q.dq.p_max))


class RunResult(NamedTuple):
    """One training run, evaluated at its validation-selected epoch (accuracies in [0, 1])."""

    seed: int
    val_acc: float
    test_acc: float
    train_acc: float
    best_epoch: int
    epochs: int
    train_seconds: float
    compile_seconds: float


class Summary(NamedTuple):
    """Mean and standard deviation over seeds or folds (accuracies in percent)."""

    runs: tuple[RunResult, ...]
    test_acc_mean: float
    test_acc_std: float
    val_acc_mean: float
    val_acc_std: float
    epochs: float
    train_seconds_median: float
    compile_seconds: float

    def to_json(self) -> dict:
        return {
            "test_acc_mean": round(self.test_acc_mean, 3),
            "test_acc_std": round(self.test_acc_std, 3),
            "val_acc_mean": round(self.val_acc_mean, 3),
            "val_acc_std": round(self.val_acc_std, 3),
            "epochs": self.epochs,
            "train_seconds_median": round(self.train_seconds_median, 4),
            "compile_seconds": round(self.compile_seconds, 3),
        }


def summarize(runs: Iterable[RunResult]) -> Summary:
    runs = tuple(runs)
    test = np.array([r.test_acc for r in runs]) * 100
    val = np.array([r.val_acc for r in runs]) * 100
    return Summary(
        runs=runs,
        test_acc_mean=float(test.mean()),
        test_acc_std=float(test.std()),
        val_acc_mean=float(val.mean()),
        val_acc_std=float(val.std()),
        epochs=float(np.mean([r.epochs for r in runs])),
        train_seconds_median=float(np.median([r.train_seconds for r in runs])),
        compile_seconds=float(max(r.compile_seconds for r in runs)),
    )


# --------------------------------------------------------------------------------------------------
# shared pieces


def _optimizer(config: TrainConfig, steps_per_epoch: int = 1) -> optax.GradientTransformation:
    def decay_mask(tree):
        def keep(path, _):
            keys = [getattr(p, "key", getattr(p, "idx", None)) for p in path]
            is_kernel = any(k in ("kernel", "root", "kernel2", "skip_kernel") for k in keys)
            if config.weight_decay_scope == "first":
                return is_kernel and "layers" in keys and keys[keys.index("layers") + 1] == 0
            return is_kernel

        return jax.tree_util.tree_map_with_path(keep, tree)

    if config.lr_step > 0:
        lr = optax.exponential_decay(config.lr, config.lr_step * steps_per_epoch, config.lr_gamma, staircase=True)
    else:
        lr = config.lr
    parts = []
    if config.weight_decay > 0:
        parts.append(optax.add_decayed_weights(config.weight_decay, mask=decay_mask))
    parts.append(optax.adam(lr))
    return optax.chain(*parts)


def _initialise_quantizers(model, x, ga) -> None:
    """One training-mode forward pass before the states are split, so that quantiser parameters
    initialised lazily from data (LSQ step, learned range) become real starting values of their
    ``nnx.Param``; inside the jitted step only non-``Param`` state written by the forward pass is
    kept, so a value written there for the first time would otherwise be lost every step."""
    if model.arch.quant is not None:
        model(x, ga, training=True)


def _load_init(model, init) -> None:
    """Copy into ``model`` every ``nnx.Param`` and batch-norm statistic of ``init`` (a trained
    :class:`GNN`) whose path and shape match, except quantiser state (initialised afresh by
    :func:`_initialise_quantizers`): e.g. start a quantised model from the FP32 model's weights."""
    from lpgnas.quant import StatefulQuantizer

    def variables(m) -> dict:
        nodes = list(nnx.iter_graph(m))
        skip = [tuple(p) for p, n in nodes if isinstance(n, StatefulQuantizer)]
        return {tuple(p): n for p, n in nodes if isinstance(n, (nnx.Param, nnx.BatchStat))
                and not any(tuple(p[:len(q)]) == q for q in skip)}

    source = variables(init)
    for path, var in variables(model).items():
        src = source.get(path)
        if src is not None and type(src) is type(var) and src[...].shape == var[...].shape:
            var[...] = jnp.asarray(src[...], var[...].dtype)


def _update(tx, grads, opt_state, params):
    """One optimiser update. optax mixes Python floats with int32 step counts internally, which the
    strict dtype-promotion mode that our own code runs under (tests) rejects; optax runs under the
    standard rules, everything else stays strict."""
    with jax.numpy_dtype_promotion("standard"):
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state


def _split(model):
    """``(graphdef, params, rest)`` with plain array leaves, so the states can cross any JAX transform
    (a Variable captured at one trace level cannot be mutated at another)."""
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    return graphdef, nnx.as_pure(params), nnx.as_pure(rest)


def _xent(logits: jax.Array, labels: jax.Array, mask: jax.Array) -> jax.Array:
    safe = jnp.where(mask, labels, 0)
    per = optax.softmax_cross_entropy_with_integer_labels(logits, safe)
    m = mask.astype(logits.dtype)
    return jnp.sum(per * m) / jnp.maximum(jnp.sum(m), 1.0)


def _correct(logits: jax.Array, labels: jax.Array, mask: jax.Array) -> jax.Array:
    hit = (jnp.argmax(logits, axis=-1) == labels) & mask
    return jnp.sum(hit.astype(jnp.float32))


def _dq_probability(in_degree, dq):
    """Degree-Quant's per-node protection probability (``None`` without DQ): one sort of the degrees,
    so node tasks compute it once per chunk, not per epoch."""
    if dq is None:
        return None
    from lpgnas.quant import dq_protect_probability

    return dq_protect_probability(in_degree, p_min=dq[0], p_max=dq[1])


def _dq_mask(key, prob):
    """The protective mask drawn from :func:`_dq_probability` (``None`` without DQ)."""
    if prob is None:
        return None
    from lpgnas.quant import dq_sample_mask

    return dq_sample_mask(key, prob)


# --------------------------------------------------------------------------------------------------
# node classification (full batch)


def node_arrays(graph: Graph, *, sparse_features: bool | None = None
                ) -> tuple[jax.Array | SparseRows | jsparse.BCOO, GraphArrays]:
    """Device copies of a node-level graph's features and edge arrays (with self loops inserted).

    Features are stored sparse when ``sparse_features`` is True, or when it is None and at most 10%
    of the entries are non-zero (bag-of-words features): as row-compact :class:`~lpgnas.nn.SparseRows`
    (non-zeros of each row padded to the widest row; quantised input layers quantise the compact rows
    exactly, see :func:`lpgnas.quant.row_compact_exact`), else as a ``BCOO`` matrix. The first layer
    then costs O(nnz) instead of O(N F).
    """
    g = graph.graph
    ga = graph_arrays(g.senders, g.receivers, graph.num_nodes, edge_weight=g.edges)
    x = np.asarray(g.nodes, np.float32)
    if sparse_features is None:
        sparse_features = x.size > 0 and np.count_nonzero(x) <= 0.1 * x.size
    if sparse_features:
        compact = sparse_rows(x)  # row-compact: quantised input layers stay O(N K D); None -> BCOO
        if compact is not None:
            return compact, ga
        rows, cols = np.nonzero(x)
        indices = jnp.asarray(np.stack([rows, cols], axis=1).astype(np.int32))
        return jsparse.BCOO((jnp.asarray(x[rows, cols]), indices), shape=x.shape, indices_sorted=True,
                            unique_indices=True), ga
    return jnp.asarray(x), ga


class _NodeCarry(NamedTuple):
    params: Any
    rest: Any
    opt_state: Any
    best_params: Any
    best_rest: Any
    best_val_acc: jax.Array
    best_val_loss: jax.Array
    best_test_acc: jax.Array
    best_train_acc: jax.Array
    best_epoch: jax.Array
    min_val_loss: jax.Array
    max_val_acc: jax.Array
    bad_epochs: jax.Array
    epoch: jax.Array
    stopped: jax.Array
    key: jax.Array
    last: jax.Array  # [val_acc, val_loss, train_loss] of the last epoch run (for ``report``)


def _node_program(graphdef, tx, config: TrainConfig):
    """The jitted chunk runner for full-batch node training (closed over the static pieces)."""

    def forward(params, rest, x, ga, training, key, protect):
        model = nnx.merge(graphdef, params, rest)
        logits = model(x, ga, training=training, key=key, protect=protect)
        aux = config.aux_loss(model) if (training and config.aux_loss is not None) else 0.0
        _, _, new_rest = _split(model)
        return logits, aux, new_rest

    def epoch_body(c: _NodeCarry, data, dq_prob) -> _NodeCarry:
        x, ga, labels, train_m, val_m, test_m = data
        key, k_drop, k_dq = jax.random.split(c.key, 3)
        protect = _dq_mask(k_dq, dq_prob)

        def loss_fn(params):
            logits, aux, new_rest = forward(params, c.rest, x, ga, True, k_drop, protect)
            return _xent(logits, labels, train_m) + aux, new_rest

        (train_loss, rest), grads = jax.value_and_grad(loss_fn, has_aux=True)(c.params)
        params, opt_state = _update(tx, grads, c.opt_state, c.params)

        logits, _, _ = forward(params, rest, x, ga, False, None, None)
        val_loss = _xent(logits, labels, val_m)
        n_val = jnp.maximum(jnp.sum(val_m.astype(jnp.float32)), 1.0)
        val_acc = _correct(logits, labels, val_m) / n_val
        test_acc = _correct(logits, labels, test_m) / jnp.maximum(jnp.sum(test_m.astype(jnp.float32)), 1.0)
        train_acc = _correct(logits, labels, train_m) / jnp.maximum(jnp.sum(train_m.astype(jnp.float32)), 1.0)

        if config.select == "loss":
            better = (val_loss < c.best_val_loss) | ((val_loss == c.best_val_loss) & (val_acc > c.best_val_acc))
        else:
            better = (val_acc > c.best_val_acc) | ((val_acc == c.best_val_acc) & (val_loss < c.best_val_loss))
        pick = lambda new, old: jax.tree_util.tree_map(lambda a, b: jnp.where(better, a, b), new, old)  # noqa: E731
        improved = (val_acc > c.max_val_acc) | (val_loss < c.min_val_loss)
        bad = jnp.where(improved, 0, c.bad_epochs + 1)
        return _NodeCarry(
            params=params,
            rest=rest,
            opt_state=opt_state,
            best_params=pick(params, c.best_params),
            best_rest=pick(rest, c.best_rest),
            best_val_acc=jnp.where(better, val_acc, c.best_val_acc),
            best_val_loss=jnp.where(better, val_loss, c.best_val_loss),
            best_test_acc=jnp.where(better, test_acc, c.best_test_acc),
            best_train_acc=jnp.where(better, train_acc, c.best_train_acc),
            best_epoch=jnp.where(better, c.epoch, c.best_epoch),
            min_val_loss=jnp.minimum(val_loss, c.min_val_loss),
            max_val_acc=jnp.maximum(val_acc, c.max_val_acc),
            bad_epochs=bad,
            epoch=c.epoch + 1,
            stopped=(bad >= config.patience) | (c.epoch + 1 >= config.epochs),
            key=key,
            last=jnp.stack([val_acc, val_loss, train_loss]).astype(jnp.float32),
        )

    @jax.jit
    def run_chunk(carry: _NodeCarry, data) -> _NodeCarry:
        dq_prob = _dq_probability(data[1].in_degree, config.dq)

        def body(_, c):
            return jax.lax.cond(c.stopped, lambda c: c, lambda c: epoch_body(c, data, dq_prob), c)

        return jax.lax.fori_loop(0, config.chunk, body, carry)

    return run_chunk


def train_node(arch: Architecture, graph: Graph, *, seed: int = 0, config: TrainConfig = TrainConfig(),
               split: Split | None = None, arrays: tuple[jax.Array, GraphArrays] | None = None,
               progress: Callable[[int, int], None] | None = None, init: GNN | None = None,
               report: Callable[[int, dict], None] | None = None) -> tuple[RunResult, GNN]:
    """Train ``arch`` on a node-classification graph; returns the result and the selected model.

    ``split`` overrides the graph's own split. ``arrays`` reuses device arrays from
    :func:`node_arrays` across seeds. ``progress(epoch, total)`` is called after each chunk.
    ``init``: a trained :class:`GNN` (e.g. the FP32 model of the same topology) whose weights start
    the training (matching paths and shapes; quantiser state is initialised as without it).
    ``report(epochs_done, metrics)`` is called after each chunk with the last epoch's ``val_acc``,
    ``val_loss``, ``train_loss`` and the validation-selected epoch so far (``best_val_acc``,
    ``best_test_acc``, ``best_epoch``): one host transfer per chunk.
    """
    split = split or graph.split
    if split is None:
        raise ValueError(f"graph {graph.name!r} has no split: pass split=")
    x, ga = arrays if arrays is not None else node_arrays(graph)
    train_m, val_m, test_m = (jnp.asarray(m) for m in split.masks(graph.num_nodes))
    labels = jnp.asarray(graph.labels, jnp.int32)
    model = GNN(arch, graph.num_features, graph.num_classes, num_nodes=graph.num_nodes,
                rngs=nnx.Rngs(params=seed, dropout=seed + 1_000_003))
    if init is not None:
        _load_init(model, init)
    _initialise_quantizers(model, x, ga)
    graphdef, params, rest = _split(model)
    tx = _optimizer(config)
    carry = _NodeCarry(
        params=params, rest=rest, opt_state=tx.init(params), best_params=params, best_rest=rest,
        best_val_acc=jnp.asarray(-1.0), best_val_loss=jnp.asarray(jnp.inf), best_test_acc=jnp.asarray(0.0),
        best_train_acc=jnp.asarray(0.0), best_epoch=jnp.asarray(0), min_val_loss=jnp.asarray(jnp.inf),
        max_val_acc=jnp.asarray(-1.0), bad_epochs=jnp.asarray(0), epoch=jnp.asarray(0),
        stopped=jnp.asarray(False), key=jax.random.key(seed), last=jnp.zeros((3,), jnp.float32),
    )
    data = (x, ga, labels, train_m, val_m, test_m)
    run_chunk = _cached(_node_program, graphdef, tx, config)
    t0 = time.perf_counter()
    compiled = run_chunk.lower(carry, data).compile()
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    n_chunks = math.ceil(config.epochs / config.chunk)
    for i in range(n_chunks):
        carry = compiled(carry, data)
        if progress is not None:
            progress(min((i + 1) * config.chunk, config.epochs), config.epochs)
        if report is not None:
            _report_chunk(report, carry)
        if bool(carry.stopped):
            break
    jax.block_until_ready(carry)
    train_s = time.perf_counter() - t0
    result = RunResult(
        seed=seed, val_acc=float(carry.best_val_acc), test_acc=float(carry.best_test_acc),
        train_acc=float(carry.best_train_acc), best_epoch=int(carry.best_epoch), epochs=int(carry.epoch),
        train_seconds=train_s, compile_seconds=compile_s,
    )
    return result, nnx.merge(graphdef, carry.best_params, carry.best_rest)


def _report_chunk(report: Callable[[int, dict], None], carry: _NodeCarry) -> None:
    last, best_val, best_test, best_epoch, epoch = jax.device_get(
        (carry.last, carry.best_val_acc, carry.best_test_acc, carry.best_epoch, carry.epoch))
    report(int(epoch), {"val_acc": float(last[0]), "val_loss": float(last[1]), "train_loss": float(last[2]),
                        "best_val_acc": float(best_val), "best_test_acc": float(best_test),
                        "best_epoch": int(best_epoch)})


_PROGRAMS: dict = {}


def _cached(builder, graphdef, tx, config, tx_key=None):
    """Build (once) the jitted program of ``builder`` for these static pieces, so that the seeds and
    folds of one set-up share their compiles."""
    key = (builder.__name__, graphdef, dataclasses.replace(config, aux_loss=None), id(config.aux_loss), tx_key)
    prog = _PROGRAMS.get(key)
    if prog is None:
        prog = builder(graphdef, tx, config)
        _PROGRAMS[key] = prog
    return prog


# --------------------------------------------------------------------------------------------------
# graph classification (padded mini-batches)


def _graph_program(graphdef, tx, config: TrainConfig):
    """The jitted train step and evaluation for padded graph batches (one compile per bucket)."""

    def loss_fn(params, rest, x, ga, labels, gmask, key):
        m = nnx.merge(graphdef, params, rest)
        protect = _dq_mask(jax.random.fold_in(key, 1), _dq_probability(ga.in_degree, config.dq))
        logits = m(x, ga, training=True, key=key, protect=protect)
        loss = _xent(logits, labels, gmask)
        if config.aux_loss is not None:
            loss = loss + config.aux_loss(m)
        _, _, new_rest = _split(m)
        return loss, new_rest

    @jax.jit
    def step(params, rest, opt_state, x, ga, labels, gmask, key):
        (loss, rest), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, rest, x, ga, labels, gmask, key)
        params, opt_state = _update(tx, grads, opt_state, params)
        return params, rest, opt_state, loss

    @jax.jit
    def evaluate(params, rest, x, ga, labels, gmask):
        m = nnx.merge(graphdef, params, rest)
        logits = m(x, ga, training=False)
        safe = jnp.where(gmask, labels, 0)
        per = optax.softmax_cross_entropy_with_integer_labels(logits, safe)
        return _correct(logits, labels, gmask), jnp.sum(jnp.where(gmask, per, 0.0))

    return step, evaluate


def batch_arrays(batch) -> tuple[jax.Array, GraphArrays, jax.Array, jax.Array]:
    """Device arrays of a :class:`lpgnas.data.PaddedBatch`: ``(x, graph_arrays, labels, graph_mask)``."""
    g = batch.graph
    n = int(g.nodes.shape[0])
    node_graph = np.repeat(np.arange(g.n_node.shape[0], dtype=np.int32), np.asarray(g.n_node))
    ga = graph_arrays(g.senders, g.receivers, n, node_graph=node_graph, node_mask=batch.node_mask,
                      num_graphs=int(g.n_node.shape[0]))
    return (jnp.asarray(g.nodes, jnp.float32), ga, jnp.asarray(batch.labels, jnp.int32),
            jnp.asarray(batch.graph_mask))


_EVAL_BATCH = 128


def train_graph(arch: Architecture, dataset: GraphDataset, split: Split, *, seed: int = 0,
                config: TrainConfig = TrainConfig(), progress: Callable[[int, int], None] | None = None,
                init: GNN | None = None, report: Callable[[int, dict], None] | None = None
                ) -> tuple[RunResult, GNN]:
    """Train ``arch`` for graph classification on ``split`` (train/val/test graph ids).

    The kept parameters are those of the epoch with the best validation accuracy (ties: lower
    validation loss); their test accuracy is reported. ``init`` and ``report`` as in
    :func:`train_node` (``report`` is called after every epoch).
    """
    model = GNN(arch, dataset.num_features, dataset.num_classes, rngs=nnx.Rngs(params=seed))
    if init is not None:
        _load_init(model, init)
    buckets = make_buckets(dataset, config.batch_size, num_buckets=config.num_buckets)
    if arch.quant is not None and len(split.train):
        first = next(iterate_batches(dataset, split.train, config.batch_size, buckets=buckets, shuffle=False, seed=0))
        x0, ga0, _, _ = batch_arrays(first)
        _initialise_quantizers(model, x0, ga0)
    graphdef, params, rest = _split(model)
    tx = _optimizer(config, steps_per_epoch=math.ceil(len(split.train) / config.batch_size))
    opt_state = tx.init(params)

    step, evaluate = _cached(_graph_program, graphdef, tx, config,
                             tx_key=math.ceil(len(split.train) / config.batch_size))

    def eval_set(params, rest, batches):
        hits, loss, count = 0.0, 0.0, 0
        for x, ga, labels, gmask in batches:
            h, lsum = evaluate(params, rest, x, ga, labels, gmask)
            hits += float(h)
            loss += float(lsum)
            count += int(np.asarray(gmask).sum())
        return hits / max(count, 1), loss / max(count, 1)

    eval_buckets = make_buckets(dataset, _EVAL_BATCH, num_buckets=config.num_buckets)

    def fixed_batches(idx):
        return [batch_arrays(b) for b in iterate_batches(dataset, idx, _EVAL_BATCH, buckets=eval_buckets,
                                                          shuffle=False, seed=0)] if len(idx) else []

    val_batches = fixed_batches(split.val)
    test_batches = fixed_batches(split.test)
    key = jax.random.key(seed)
    best = (-1.0, math.inf)
    best_state = (params, rest)
    best_epoch, bad = 0, 0
    best_test, best_train = 0.0, 0.0
    compile_s = 0.0
    t_start = time.perf_counter()
    epoch = 0
    for epoch in range(config.epochs):
        loss_sum, n_steps = 0.0, 0
        for b in iterate_batches(dataset, split.train, config.batch_size, buckets=buckets, shuffle=True,
                                 seed=seed * 100_003 + epoch):
            key, sub = jax.random.split(key)
            x, ga, labels, gmask = batch_arrays(b)
            t0 = time.perf_counter()
            params, rest, opt_state, loss = step(params, rest, opt_state, x, ga, labels, gmask, sub)
            if report is not None:
                loss_sum, n_steps = loss_sum + loss, n_steps + 1
            if epoch == 0:
                jax.block_until_ready(params)
                compile_s += time.perf_counter() - t0
        val_acc, val_loss = eval_set(params, rest, val_batches)
        if (val_acc, -val_loss) > (best[0], -best[1]):
            best = (val_acc, val_loss)
            best_state = (params, rest)
            best_epoch = epoch
            best_test = eval_set(params, rest, test_batches)[0]
            bad = 0
        else:
            bad += 1
        if progress is not None:
            progress(epoch + 1, config.epochs)
        if report is not None:
            report(epoch + 1, {"val_acc": val_acc, "val_loss": val_loss,
                               "train_loss": float(loss_sum) / max(n_steps, 1), "best_val_acc": best[0],
                               "best_test_acc": best_test, "best_epoch": best_epoch})
        if bad >= config.patience:
            break
    train_s = time.perf_counter() - t_start - compile_s
    result = RunResult(seed=seed, val_acc=best[0], test_acc=best_test, train_acc=best_train,
                       best_epoch=best_epoch, epochs=epoch + 1, train_seconds=train_s, compile_seconds=compile_s)
    return result, nnx.merge(graphdef, *best_state)
