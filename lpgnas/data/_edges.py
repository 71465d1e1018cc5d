"""Edge-list canonicalisation and the shared validation helpers of the loaders.

Every loader funnels its raw edges through :func:`canonical_edges` (one graph) or
:func:`canonical_dataset_edges` (many graphs stored back to back), which give the conventions of
:mod:`lpgnas.data._graph`: ``int32``, both directions, no self loops, no duplicates, sorted by
receiver then sender.
"""

from __future__ import annotations

import os

import numpy as np

from lpgnas.errors import DataError

__all__ = [
    "sorted_unique",
    "canonical_edges",
    "canonical_dataset_edges",
    "check_edges_in_range",
    "check_finite",
    "remap_labels",
    "one_hot",
]


def check_edges_in_range(path: str | os.PathLike, senders: np.ndarray, receivers: np.ndarray,
                         num_nodes: int, what: str = "edge") -> None:
    """Raise :class:`DataError` when an endpoint is negative or ``>= num_nodes``."""
    for ends in (senders, receivers):
        if ends.size == 0:
            continue
        lo, hi = int(ends.min()), int(ends.max())
        if lo < 0 or hi >= num_nodes:
            bad = lo if lo < 0 else hi
            raise DataError(path, f"{what} endpoint {bad} points outside the graph "
                                  f"(valid node ids are 0..{num_nodes - 1})")


def check_finite(path: str | os.PathLike, x: np.ndarray, what: str = "features") -> None:
    """Raise :class:`DataError` when ``x`` holds NaN or infinity."""
    if x.size and not np.isfinite(x).all():
        bad = np.argwhere(~np.isfinite(x))[0]
        where = tuple(int(i) for i in bad)
        raise DataError(path, f"{what} hold a non-finite value (NaN or inf) at index {where}")


def sorted_unique(key: np.ndarray) -> np.ndarray:
    """Sorted distinct values of a 1-D integer array (sort + adjacent compare; ``np.unique`` is far
    slower on tens of millions of int64 keys in numpy 2.x)."""
    key = np.sort(key)
    if key.shape[0] < 2:
        return key
    keep = np.empty(key.shape[0], dtype=bool)
    keep[0] = True
    np.not_equal(key[1:], key[:-1], out=keep[1:])
    return key[keep]


def canonical_edges(senders: np.ndarray, receivers: np.ndarray, num_nodes: int
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Symmetrise, drop self loops, deduplicate and sort by ``(receiver, sender)``.

    Endpoints must already be in ``0..num_nodes-1``. Returns ``int32`` arrays.
    """
    s = np.asarray(senders, dtype=np.int64).ravel()
    r = np.asarray(receivers, dtype=np.int64).ravel()
    keep = s != r
    s, r = s[keep], r[keep]
    n = np.int64(max(num_nodes, 1))
    key = np.concatenate([r * n + s, s * n + r])
    key = sorted_unique(key)
    return (key % n).astype(np.int32), (key // n).astype(np.int32)


def canonical_dataset_edges(senders: np.ndarray, receivers: np.ndarray, n_node: np.ndarray
                            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Canonicalise the edges of many graphs given in *global* node ids.

    Both endpoints of every edge must lie in the same graph (checked by the caller). Returns the
    *local* (per-graph, 0-based) ``senders``, ``receivers`` and the per-graph ``n_edge``
    (all ``int32``), grouped by graph in graph order.
    """
    n_node = np.asarray(n_node, dtype=np.int64)
    total = int(n_node.sum())
    s, r = canonical_edges(senders, receivers, total)
    offsets = np.concatenate([[0], np.cumsum(n_node)])
    graph_of_node = np.repeat(np.arange(n_node.shape[0], dtype=np.int64), n_node)
    g = graph_of_node[r]
    n_edge = np.bincount(g, minlength=n_node.shape[0]).astype(np.int32)
    base = offsets[g]
    return (s - base).astype(np.int32), (r - base).astype(np.int32), n_edge


def remap_labels(path: str | os.PathLike, values: np.ndarray, what: str = "graph labels"
                 ) -> tuple[np.ndarray, int]:
    """Map arbitrary integer labels to ``0..C-1`` (sorted order); returns ``(labels, C)``."""
    values = np.asarray(values)
    if values.dtype.kind == "f":
        if not np.isfinite(values).all() or not np.all(values == np.round(values)):
            raise DataError(path, f"{what} must be integers")
    if values.size == 0:
        raise DataError(path, f"no {what}")
    uniq, inv = np.unique(values, return_inverse=True)
    return inv.astype(np.int32).ravel(), int(uniq.shape[0])


def one_hot(index: np.ndarray, depth: int) -> np.ndarray:
    """``float32`` one-hot rows of ``index`` (``0 <= index < depth``)."""
    out = np.zeros((index.shape[0], depth), dtype=np.float32)
    out[np.arange(index.shape[0]), index] = 1.0
    return out
