"""Planetoid citation graphs (Cora, CiteSeer, PubMed) from the original ``ind.<name>.*`` files.

Assembly follows Kipf & Welling: features ``vstack(allx, tx)``, labels ``vstack(ally, ty)``, the rows
of the sorted test ids moved to the positions listed in ``test.index``. CiteSeer's test ids have
gaps (isolated nodes without a row in ``tx``); they get zero feature rows and label ``-1``.
The public split is train = the first ``len(y)`` nodes, val = the next 500 (fewer only in sets with
fewer rows in ``allx``), test = ``test.index``. Test node ``test.index[i]`` gets row ``i`` of ``tx`` /
``ty``.
"""

from __future__ import annotations

import itertools
import os
import pathlib

import jraph
import numpy as np
import scipy.sparse as sp

from lpgnas.data._edges import canonical_edges, check_edges_in_range, check_finite
from lpgnas.data._graph import Graph, Split
from lpgnas.data._pickle import load_pickle
from lpgnas.errors import DataError

__all__ = ["PLANETOID_PARTS", "planetoid_files", "load_planetoid"]

PLANETOID_PARTS = ("x", "y", "tx", "ty", "allx", "ally", "graph", "test.index")
NUM_VAL = 500


def planetoid_files(name: str) -> tuple[str, ...]:
    """The published file names of Planetoid dataset ``name``."""
    return tuple(f"ind.{name}.{part}" for part in PLANETOID_PARTS)


def _features(path: pathlib.Path) -> sp.csr_matrix:
    obj = load_pickle(path)
    try:
        if sp.issparse(obj):
            m = obj.tocsr() if obj.format != "csr" else obj
            m = sp.csr_matrix((np.asarray(m.data), np.asarray(m.indices), np.asarray(m.indptr)),
                              shape=tuple(int(d) for d in m.shape))
        elif isinstance(obj, np.ndarray) and obj.ndim == 2:
            m = sp.csr_matrix(obj)
        else:
            raise DataError(path, f"expected a 2-D feature matrix, found {type(obj).__name__}")
    except (ValueError, TypeError, AttributeError) as e:
        raise DataError(path, f"malformed sparse feature matrix ({e})") from None
    m.data = np.asarray(m.data, dtype=np.float32)
    check_finite(path, m.data, "features")
    return m


def _one_hot_labels(path: pathlib.Path) -> np.ndarray:
    obj = load_pickle(path)
    if sp.issparse(obj):
        obj = obj.toarray()
    if not isinstance(obj, np.ndarray) or obj.ndim != 2:
        raise DataError(path, f"expected a 2-D one-hot label matrix, found "
                              f"{getattr(obj, 'shape', type(obj).__name__)}")
    y = np.asarray(obj)
    if not np.isin(y, (0, 1)).all():
        raise DataError(path, "label matrix must be one-hot (entries 0 or 1)")
    if (y.sum(axis=1) > 1).any():
        row = int(np.argmax(y.sum(axis=1) > 1))
        raise DataError(path, f"label row {row} has more than one class set")
    return y


def _labels_from_one_hot(y: np.ndarray) -> np.ndarray:
    lab = np.argmax(y, axis=1).astype(np.int32)
    lab[y.sum(axis=1) == 0] = -1
    return lab


def _test_index(path: pathlib.Path) -> np.ndarray:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise DataError(path, "missing file") from None
    try:
        idx = np.array(text.split(), dtype=np.int64)
    except ValueError:
        raise DataError(path, "test.index must hold one integer node id per line") from None
    if idx.size == 0:
        raise DataError(path, "no test ids")
    return idx


def _adjacency(path: pathlib.Path) -> tuple[np.ndarray, np.ndarray]:
    obj = load_pickle(path)
    if not isinstance(obj, dict):
        raise DataError(path, f"expected a dict of adjacency lists, found {type(obj).__name__}")
    try:
        keys = np.fromiter(obj.keys(), dtype=np.int64, count=len(obj))
        lengths = np.fromiter(map(len, obj.values()), dtype=np.int64, count=len(obj))
        nbrs = np.fromiter(itertools.chain.from_iterable(obj.values()), dtype=np.int64,
                           count=int(lengths.sum()))
    except (TypeError, ValueError, OverflowError):
        raise DataError(path, "adjacency lists must map integer node ids to lists of integer ids") from None
    return np.repeat(keys, lengths), nbrs


def load_planetoid(directory: str | os.PathLike, name: str) -> Graph:
    """Load Planetoid dataset ``name`` from ``directory`` (holding ``ind.<name>.*``)."""
    d = pathlib.Path(directory)
    p = {part: d / f"ind.{name}.{part}" for part in PLANETOID_PARTS}
    for part in PLANETOID_PARTS:
        if not p[part].is_file():
            raise DataError(p[part], "missing file")

    x, tx, allx = (_features(p[k]) for k in ("x", "tx", "allx"))
    y, ty, ally = (_one_hot_labels(p[k]) for k in ("y", "ty", "ally"))
    for fk, lk, f, lab in (("x", "y", x, y), ("tx", "ty", tx, ty), ("allx", "ally", allx, ally)):
        if f.shape[0] != lab.shape[0]:
            raise DataError(p[fk], f"has {f.shape[0]} feature rows but {p[lk].name} has "
                                   f"{lab.shape[0]} label rows")
    num_features = allx.shape[1]
    for k, f in (("x", x), ("tx", tx)):
        if f.shape[1] != num_features:
            raise DataError(p[k], f"has {f.shape[1]} feature columns, {p['allx'].name} has {num_features}")
    num_classes = ally.shape[1]
    for k, lab in (("y", y), ("ty", ty)):
        if lab.shape[1] != num_classes:
            raise DataError(p[k], f"has {lab.shape[1]} label columns, {p['ally'].name} has {num_classes}")
    if y.shape[0] > allx.shape[0]:
        raise DataError(p["allx"], f"has {allx.shape[0]} rows, fewer than the {y.shape[0]} rows of "
                                   f"{p['y'].name} (the training nodes come first in allx)")

    test_idx = _test_index(p["test.index"])
    if test_idx.shape[0] != tx.shape[0]:
        raise DataError(p["test.index"], f"lists {test_idx.shape[0]} test ids but "
                                         f"{p['tx'].name} has {tx.shape[0]} rows")
    n_all = allx.shape[0]
    test_sorted = np.sort(test_idx)
    if np.unique(test_sorted).shape[0] != test_sorted.shape[0]:
        raise DataError(p["test.index"], "test ids are not unique")
    if test_sorted[0] < n_all:
        raise DataError(p["test.index"], f"test id {int(test_sorted[0])} overlaps the "
                                         f"{n_all} rows of {p['allx'].name}")
    # rows of tx are stored in sorted-test-id order; ids between len(allx) and the largest test id
    # without a row are isolated nodes (CiteSeer): zero features, label -1.
    num_nodes = int(test_sorted[-1]) + 1
    tail = num_nodes - n_all
    rows = test_sorted - n_all
    place = sp.csr_matrix((np.ones(rows.shape[0], np.float32), (rows, np.arange(rows.shape[0]))),
                          shape=(tail, rows.shape[0]))
    tx_ext = place @ tx
    ty_ext = np.zeros((tail, num_classes), dtype=ty.dtype)
    ty_ext[rows] = ty

    feats = sp.vstack([allx, tx_ext]).tocsr()
    onehot = np.concatenate([ally, ty_ext])
    # Kipf & Welling: features[test_idx_reorder] = features[test_idx_range]
    perm = np.arange(num_nodes)
    perm[test_idx] = test_sorted
    feats = feats[perm]
    onehot = onehot[perm]
    nodes = np.asarray(feats.toarray(), dtype=np.float32)
    labels = _labels_from_one_hot(onehot)

    s, r = _adjacency(p["graph"])
    check_edges_in_range(p["graph"], s, r, num_nodes)
    senders, receivers = canonical_edges(s, r, num_nodes)

    graph = jraph.GraphsTuple(
        nodes=nodes, edges=None, senders=senders, receivers=receivers,
        n_node=np.array([num_nodes], np.int32), n_edge=np.array([senders.shape[0]], np.int32),
        globals=None)
    ntrain = y.shape[0]
    split = Split(train=np.arange(ntrain), val=np.arange(ntrain, min(ntrain + NUM_VAL, n_all)),
                  test=test_sorted)
    return Graph(graph=graph, labels=labels, num_classes=int(num_classes), name=name, split=split)
