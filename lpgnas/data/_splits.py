"""Train / validation / test splits (node ids or graph ids), all seeded with
``np.random.default_rng(seed)`` and returned as :class:`Split` with sorted index arrays.

Nodes labelled ``-1`` (unlabelled) are never placed in a split built from labels.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lpgnas.data._graph import Graph, Split
from lpgnas.errors import ConfigError

__all__ = ["NODE_SPLITS", "check_node_split", "default_node_split", "node_split", "public_split", "random_split", "per_class_split",
           "kfold_splits"]

#: The node-task splits :func:`node_split` draws (the ``--split`` choices of ``lpgnas train`` / ``search``).
NODE_SPLITS = ("public", "random", "per-class")


def public_split(graph: Graph) -> Split:
    """The split published with the dataset (set by the loader; Planetoid only)."""
    if graph.split is None:
        raise ConfigError("split", f"dataset {graph.name!r} has no public split; use random_split "
                                   "or per_class_split")
    return graph.split


def default_node_split(graph: Graph) -> str:
    """The split a node task uses when none is asked for: ``public`` where the dataset has one,
    else ``random``."""
    return "public" if graph.split is not None else "random"


def check_node_split(kind: str, graph: Graph | None = None, *, field: str = "split", name: str | None = None,
                     source: object | None = None) -> str:
    """``kind`` if it is one of :data:`NODE_SPLITS` (and, with ``graph``, one the graph can give:
    ``public`` needs the graph's own split), else a :class:`ConfigError` on ``field`` (``name``: the
    dataset as the user typed it; ``source``: the file ``kind`` came from)."""
    if kind not in NODE_SPLITS:
        raise ConfigError(field, f"unknown node split {kind!r}; allowed: {', '.join(NODE_SPLITS)}", source=source)
    if graph is not None and kind == "public" and graph.split is None:
        raise ConfigError(field, f"{name or graph.name or 'the dataset'} has no public split; use random or per-class")
    return kind


def node_split(graph: Graph, kind: str, seed: int) -> Split:
    """The ``kind`` split of a node-classification graph (one of :data:`NODE_SPLITS`): ``public``
    (the graph's own split; ``seed`` is not used), ``random`` (60/20/20 of the labelled nodes,
    :func:`random_split`) or ``per-class`` (20 / 30 per class, :func:`per_class_split`), drawn
    with ``seed``."""
    check_node_split(kind, graph)
    if kind == "public":
        return graph.split
    if kind == "random":
        return random_split(graph.labels, seed)
    return per_class_split(graph.labels, seed)


def _labels(labels) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise ConfigError("labels", f"expected a 1-D integer array, got shape {labels.shape} "
                                    f"dtype {labels.dtype}")
    return labels.astype(np.int64)


def _rank_in_class(idx: np.ndarray, labels: np.ndarray, rng: np.random.Generator
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shuffle ``idx`` and group it by class: returns ``(ids, rank within class, class size)``."""
    ids = rng.permutation(idx)
    ids = ids[np.argsort(labels[ids], kind="stable")]
    lab = labels[ids]
    if ids.shape[0] == 0:
        z = np.zeros(0, np.int64)
        return ids, z, z
    first = np.ones(ids.shape[0], bool)
    first[1:] = lab[1:] != lab[:-1]
    start = np.flatnonzero(first)
    size = np.diff(np.append(start, ids.shape[0]))
    group = np.cumsum(first) - 1
    rank = np.arange(ids.shape[0]) - start[group]
    return ids, rank, size[group]


def _split(train, val, test) -> Split:
    return Split(train=np.sort(train), val=np.sort(val), test=np.sort(test))


def random_split(num_nodes_or_labels, seed: int,
                 fractions: Sequence[float] = (0.6, 0.2, 0.2)) -> Split:
    """Uniformly random split of ``range(n)`` (or of the labelled entries of a label array).

    ``fractions`` = (train, val, test), each >= 0, summing to at most 1; when they sum to 1 the
    test part takes the rounding remainder.
    """
    if np.ndim(num_nodes_or_labels) == 0:
        n = int(num_nodes_or_labels)
        if n < 0:
            raise ConfigError("num_nodes", f"must be >= 0, got {n}")
        idx = np.arange(n)
    else:
        labels = _labels(num_nodes_or_labels)
        idx = np.flatnonzero(labels >= 0)
    fr = np.asarray(fractions, dtype=np.float64)
    if fr.shape != (3,) or (fr < 0).any() or fr.sum() > 1 + 1e-9:
        raise ConfigError("fractions", f"expected three non-negative fractions summing to <= 1, "
                                       f"got {tuple(fractions)}")
    m = idx.shape[0]
    n_train, n_val = int(round(fr[0] * m)), int(round(fr[1] * m))
    n_val = min(n_val, m - n_train)
    n_test = m - n_train - n_val if abs(fr.sum() - 1) < 1e-9 else min(int(round(fr[2] * m)),
                                                                     m - n_train - n_val)
    perm = np.random.default_rng(seed).permutation(idx)
    return _split(perm[:n_train], perm[n_train:n_train + n_val],
                  perm[n_train + n_val:n_train + n_val + n_test])


def per_class_split(labels, seed: int, train_per_class: int = 20, val_per_class: int = 30) -> Split:
    """``train_per_class`` random nodes of each class for training, the next ``val_per_class``
    for validation, every other labelled node for testing (a class with too few nodes gives what
    it has, training first)."""
    if train_per_class < 0 or val_per_class < 0:
        raise ConfigError("train_per_class", "per-class counts must be >= 0")
    labels = _labels(labels)
    ids, rank, _ = _rank_in_class(np.flatnonzero(labels >= 0), labels, np.random.default_rng(seed))
    train = ids[rank < train_per_class]
    val = ids[(rank >= train_per_class) & (rank < train_per_class + val_per_class)]
    test = ids[rank >= train_per_class + val_per_class]
    return _split(train, val, test)


def _carve(idx: np.ndarray, labels: np.ndarray, fraction: float, rng: np.random.Generator
           ) -> tuple[np.ndarray, np.ndarray]:
    """Stratified carve-out: ``(rest, taken)`` with about ``fraction`` of each class taken."""
    ids, rank, size = _rank_in_class(idx, labels, rng)
    take = rank < np.round(fraction * size)
    return ids[~take], ids[take]


def kfold_splits(labels, k: int = 10, seed: int = 0,
                 folds: Sequence[tuple[np.ndarray, np.ndarray]] | None = None,
                 val_fraction: float = 0.1) -> list[Split]:
    """Stratified ``k``-fold cross-validation splits (or the shipped ``folds``).

    Fold ``i`` tests on the ``i``-th part; its validation set is a stratified ``val_fraction``
    carve-out of the remaining (training) part, so model selection never sees the test part.
    With ``folds`` (``(train_idx, test_idx)`` pairs, e.g. ``GraphDataset.folds``) the shipped
    partition is used and only the validation carve-out is drawn.
    """
    labels = _labels(labels)
    if not 0 <= val_fraction < 1:
        raise ConfigError("val_fraction", f"must be in [0, 1), got {val_fraction}")
    rng = np.random.default_rng(seed)
    valid = labels >= 0
    if folds is None:
        if k < 2:
            raise ConfigError("k", f"need at least 2 folds, got {k}")
        labelled = np.flatnonzero(valid)
        if labelled.shape[0] < k:
            raise ConfigError("k", f"{k} folds but only {labelled.shape[0]} labelled items")
        ids, _, _ = _rank_in_class(labelled, labels, rng)
        # ids are shuffled and grouped by class: dealing them round robin gives every fold
        # floor or ceil of n_c / k items of each class c (continuing where the last class stopped)
        fold_of = np.arange(ids.shape[0]) % k
        pairs = [(ids[fold_of != i], ids[fold_of == i]) for i in range(k)]
    else:
        pairs = []
        for i, (tr, te) in enumerate(folds):
            tr, te = np.asarray(tr, np.int64), np.asarray(te, np.int64)
            for nm, a in (("train", tr), ("test", te)):
                if a.size and (a.min() < 0 or a.max() >= labels.shape[0]):
                    raise ConfigError(f"folds[{i}].{nm}", "index out of range")
            pairs.append((tr[valid[tr]], te[valid[te]]))
    out = []
    for train, test in pairs:
        train, val = _carve(train, labels, val_fraction, rng)
        out.append(_split(train, val, test))
    return out
