"""gnn-benchmark ``.npz`` graphs (Shchur et al. 2018: Amazon Photo / Computers, Coauthor CS / Physics).

The file holds a CSR adjacency (``adj_data, adj_indices, adj_indptr, adj_shape``), CSR features
(``attr_*``, or a dense ``attr_matrix``) and integer ``labels``. The adjacency as stored is not
symmetric: it is symmetrised (``A + A^T``) and its diagonal dropped. Object arrays (names) are never
unpickled. There is no standard split (``split=None``).
"""

from __future__ import annotations

import os
import pathlib
import zipfile

import jraph
import numpy as np
import scipy.sparse as sp

from lpgnas.data._edges import canonical_edges, check_finite
from lpgnas.data._graph import Graph
from lpgnas.errors import DataError

__all__ = ["load_npz_graph"]


def _get(z, path, key: str) -> np.ndarray:
    if key not in z.files:
        raise DataError(path, f"missing array {key!r} (found {', '.join(sorted(z.files))})")
    try:
        return z[key]
    except ValueError as e:  # object array with allow_pickle=False, or a broken member
        raise DataError(path, f"cannot read array {key!r} ({e})") from None


def _csr(z, path, prefix: str, what: str) -> sp.csr_matrix:
    data, indices, indptr, shape = (_get(z, path, f"{prefix}_{k}")
                                    for k in ("data", "indices", "indptr", "shape"))
    shape = tuple(int(v) for v in np.asarray(shape).ravel())
    if len(shape) != 2:
        raise DataError(path, f"{prefix}_shape must have 2 entries, found {len(shape)}")
    if indptr.shape[0] != shape[0] + 1:
        raise DataError(path, f"{what}: {prefix}_indptr has {indptr.shape[0]} entries, "
                              f"expected rows + 1 = {shape[0] + 1}")
    if data.shape[0] != indices.shape[0] or (indptr.size and int(indptr[-1]) != indices.shape[0]):
        raise DataError(path, f"{what}: {prefix}_data / {prefix}_indices / {prefix}_indptr "
                              "disagree in length")
    if indices.size and (int(indices.min()) < 0 or int(indices.max()) >= shape[1]):
        bad = int(indices.max()) if int(indices.max()) >= shape[1] else int(indices.min())
        raise DataError(path, f"{what}: column index {bad} points outside the matrix "
                              f"(valid 0..{shape[1] - 1})")
    if indptr.size and (np.diff(indptr) < 0).any():
        raise DataError(path, f"{what}: {prefix}_indptr is not non-decreasing")
    return sp.csr_matrix((np.asarray(data, np.float32), indices, indptr), shape=shape)


def load_npz_graph(path: str | os.PathLike, name: str = "") -> Graph:
    """Load one gnn-benchmark ``.npz`` file into a :class:`Graph` (no split)."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise DataError(path, "missing file")
    try:
        z = np.load(path, allow_pickle=False)
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as e:
        raise DataError(path, f"not a readable .npz archive ({e})") from None
    with z:
        try:
            adj = _csr(z, path, "adj", "adjacency")
            if "attr_data" in z.files:
                feats = _csr(z, path, "attr", "features").toarray()
            elif "attr_matrix" in z.files:
                feats = np.asarray(_get(z, path, "attr_matrix"), dtype=np.float32)
            else:
                raise DataError(path, "missing features (neither attr_data nor attr_matrix)")
            labels = np.asarray(_get(z, path, "labels"))
            num_names = None
            if "class_names" in z.files:
                try:
                    num_names = int(z["class_names"].shape[0])
                except ValueError:  # stored as an object array: names are not needed
                    num_names = None
        except (zipfile.BadZipFile, EOFError, OSError) as e:
            raise DataError(path, f"corrupt .npz archive ({e})") from None

    n = adj.shape[0]
    if adj.shape[1] != n:
        raise DataError(path, f"adjacency must be square, found shape {adj.shape}")
    if feats.ndim != 2 or feats.shape[0] != n:
        raise DataError(path, f"features have {feats.shape[0] if feats.ndim else 0} rows but the "
                              f"adjacency has {n} nodes")
    feats = np.asarray(feats, dtype=np.float32)
    check_finite(path, feats, "features")
    if labels.ndim == 2:  # one-hot labels
        if labels.shape[0] != n or (labels.sum(axis=1) != 1).any():
            raise DataError(path, "2-D labels must be one-hot with one row per node")
        labels = np.argmax(labels, axis=1)
    if labels.ndim != 1 or labels.shape[0] != n:
        raise DataError(path, f"labels have shape {labels.shape}, expected ({n},)")
    if labels.dtype.kind not in "iu":
        raise DataError(path, f"labels must be integers, found dtype {labels.dtype}")
    num_classes = int(labels.max()) + 1 if labels.size else 0
    if labels.size and int(labels.min()) < 0:
        raise DataError(path, f"label {int(labels.min())} out of range (must be >= 0)")
    if num_names is not None:
        if num_classes > num_names:
            raise DataError(path, f"label {num_classes - 1} out of range: only {num_names} class names")
        num_classes = num_names

    adj.eliminate_zeros()
    coo = adj.tocoo()
    senders, receivers = canonical_edges(coo.row, coo.col, n)
    graph = jraph.GraphsTuple(
        nodes=feats, edges=None, senders=senders, receivers=receivers,
        n_node=np.array([n], np.int32), n_edge=np.array([senders.shape[0]], np.int32), globals=None)
    return Graph(graph=graph, labels=labels.astype(np.int32), num_classes=num_classes, name=name,
                 split=None)
