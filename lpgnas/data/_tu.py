"""TU graph-classification sets, from the GIN text format or the original TU file set.

GIN / powerful-gnns text (``<NAME>.txt``)::

    G                      number of graphs
    n l                    per graph: number of nodes, graph label
    t k v1 .. vk [a ..]    per node: node tag, degree, k neighbour ids (0-based, within the graph),
                           optional node attributes

Original TU files (``TU/<DS>_A.txt`` 1-based global ``row, col`` pairs, ``_graph_indicator``,
``_graph_labels``, optional ``_node_labels`` and ``_node_attributes``).

Both give the same :class:`GraphDataset`: edges symmetric without self loops, sorted by receiver
within each graph; graph labels remapped to ``0..C-1`` in sorted order; node features the one-hot
of the node tags / labels (sorted order), with node attributes appended; a set without informative
tags (none, or a single value) gets degree features instead: with ``degree_encoding="onehot"``
(the default) the one-hot of the node degree clipped at ``degree_cap`` (``degree_cap + 1``
columns, the last meaning ``>= degree_cap``); with ``"normalized"`` one column, the degree
standardised by the mean and standard deviation over every node of the set (PyTorch Geometric's
convention for sets whose maximum degree is 1000 or more, e.g. REDDIT-BINARY, where a clipped
one-hot loses the hubs).
"""

from __future__ import annotations

import os
import pathlib
import re

import numpy as np

from lpgnas.data._edges import (canonical_dataset_edges, check_finite, one_hot, remap_labels)
from lpgnas.data._graph import GraphDataset
from lpgnas.data._text import Tokens, read_bytes, tokenize
from lpgnas.errors import DataError

__all__ = ["load_gin_text", "load_tu_files", "load_folds", "degree_features", "find_tu_prefix",
           "DEGREE_ENCODINGS"]

DEFAULT_DEGREE_CAP = 64
#: How a set without informative node tags encodes the node degree (see the module docstring).
DEGREE_ENCODINGS = ("onehot", "normalized")


def degree_features(receivers: np.ndarray, num_nodes: int, cap: int = DEFAULT_DEGREE_CAP,
                    encoding: str = "onehot") -> np.ndarray:
    """Degree features of ``num_nodes`` nodes from the (in-)degrees of ``receivers``: ``onehot``, the
    one-hot of the degree clipped at ``cap`` (``[num_nodes, cap + 1]``), or ``normalized``, the
    degree standardised over these nodes (``[num_nodes, 1]``; a constant degree gives zeros)."""
    if encoding not in DEGREE_ENCODINGS:
        raise ValueError(f"degree encoding must be one of {', '.join(DEGREE_ENCODINGS)}, got {encoding!r}")
    if cap < 1:
        raise ValueError(f"degree_cap must be >= 1, got {cap}")
    deg = np.bincount(np.asarray(receivers, np.int64), minlength=num_nodes)
    if encoding == "normalized":
        deg = deg.astype(np.float64)
        std = deg.std(ddof=1) if num_nodes > 1 else 0.0
        return ((deg - deg.mean()) / (std if std > 0 else 1.0)).astype(np.float32)[:, None]
    return one_hot(np.minimum(deg, cap), cap + 1)


def _node_features(path, tags: np.ndarray | None, attrs: np.ndarray | None, receivers_global: np.ndarray,
                   num_nodes: int, degree_cap: int, degree_encoding: str) -> np.ndarray:
    parts = []
    if tags is not None and np.unique(tags).shape[0] > 1:
        idx, depth = remap_labels(path, tags, "node tags")
        parts.append(one_hot(idx, depth))
    else:
        parts.append(degree_features(receivers_global, num_nodes, degree_cap, degree_encoding))
    if attrs is not None and attrs.shape[1]:
        attrs = np.asarray(attrs, np.float32)
        check_finite(path, attrs, "node attributes")
        parts.append(attrs)
    return np.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]


def _as_int(path, values: np.ndarray, what: str, lines: np.ndarray | None = None) -> np.ndarray:
    if values.dtype.kind == "i":
        return values
    bad = ~(np.isfinite(values) & (values == np.round(values)))
    if bad.any():
        where = f"line {int(lines[np.argmax(bad)])}: " if lines is not None else ""
        raise DataError(path, f"{where}{what} must be integers, found {values[np.argmax(bad)]!r}")
    return values.astype(np.int64)


def _assemble(path, n_node, labels_raw, src_global, dst_global, tags, attrs, degree_cap,
              name, degree_encoding) -> GraphDataset:
    n_node = np.asarray(n_node, np.int64)
    num_nodes = int(n_node.sum())
    senders, receivers, n_edge = canonical_dataset_edges(src_global, dst_global, n_node)
    labels, num_classes = remap_labels(path, labels_raw, "graph labels")
    node_off = np.concatenate([[0], np.cumsum(n_node)[:-1]]).astype(np.int64)
    graph_of_edge = np.repeat(np.arange(n_node.shape[0]), n_edge)
    recv_global = receivers.astype(np.int64) + node_off[graph_of_edge]
    nodes = _node_features(path, tags, attrs, recv_global, num_nodes, degree_cap, degree_encoding)
    return GraphDataset(nodes=nodes, senders=senders, receivers=receivers,
                        n_node=n_node.astype(np.int32), n_edge=n_edge, labels=labels,
                        num_classes=num_classes, name=name, folds=None)


# ----------------------------------------------------------------------------------------- GIN


def _gin_walk(path, tk: Tokens, iv: np.ndarray, cnt, off, lineno) -> np.ndarray:
    """Line indices (into the non-empty lines) of the graph headers."""
    num_lines = cnt.shape[0]
    if num_lines == 0:
        raise DataError(path, "empty file")
    if cnt[0] != 1:
        raise DataError(path, f"line {lineno[0]}: expected the number of graphs alone, found "
                              f"{cnt[0]} fields")
    num_graphs = int(iv[off[0]])
    if num_graphs < 1:
        raise DataError(path, f"line {lineno[0]}: number of graphs must be positive, found {num_graphs}")
    cnt_l, off_l, iv_l = cnt.tolist(), off.tolist(), iv
    headers = np.empty(num_graphs, np.int64)
    h = 1
    for g in range(num_graphs):
        if h >= num_lines:
            raise DataError(path, f"truncated: the header announces {num_graphs} graphs but the file "
                                  f"ends after {g}")
        if cnt_l[h] != 2:
            raise DataError(path, f"line {lineno[h]}: graph {g} header must be 'num_nodes label', "
                                  f"found {cnt_l[h]} fields")
        n = int(iv_l[off_l[h]])
        if n < 0:
            raise DataError(path, f"line {lineno[h]}: graph {g} has a negative node count {n}")
        headers[g] = h
        h += 1 + n
    if h > num_lines:
        g = num_graphs - 1
        raise DataError(path, f"truncated: graph {g} (line {lineno[headers[g]]}) announces "
                              f"{int(iv_l[off_l[headers[g]]])} nodes but the file ends after "
                              f"{num_lines - headers[g] - 1}")
    if h < num_lines:
        raise DataError(path, f"line {lineno[h]}: unexpected content after the last of the "
                              f"{num_graphs} announced graphs (bad node counts?)")
    return headers


def load_gin_text(path: str | os.PathLike, *, name: str = "", degree_cap: int = DEFAULT_DEGREE_CAP,
                  degree_encoding: str = "onehot") -> GraphDataset:
    """Parse a GIN / powerful-gnns ``<NAME>.txt`` file into a :class:`GraphDataset`."""
    path = pathlib.Path(path)
    tk = tokenize(path, read_bytes(path))
    v = tk.values
    nonempty = np.flatnonzero(tk.counts > 0)
    cnt, off, lineno = tk.counts[nonempty], tk.line_start[nonempty], nonempty + 1
    line_of_token = np.repeat(np.arange(nonempty.shape[0]), cnt)
    # structural tokens must be integers; non-integer tokens are legal only as node attributes
    iv = v if tk.is_integer else np.where(np.isfinite(v), np.round(v), -1).astype(np.int64)

    headers = _gin_walk(path, tk, iv, cnt, off, lineno)
    hdr_pos = off[headers]
    n_node = _as_int(path, v[hdr_pos], "node counts", lineno[headers])
    labels_raw = _as_int(path, v[hdr_pos + 1], "graph labels", lineno[headers])

    is_node = np.ones(cnt.shape[0], bool)
    is_node[0] = False
    is_node[headers] = False
    node_line = np.flatnonzero(is_node)
    nc, no = cnt[node_line], off[node_line]
    short = nc < 2
    if short.any():
        raise DataError(path, f"line {lineno[node_line[np.argmax(short)]]}: node line must be "
                              "'tag degree neighbours...', found 1 field")
    tags = _as_int(path, v[no], "node tags", lineno[node_line])
    deg = _as_int(path, v[no + 1], "node degrees", lineno[node_line])
    extra = nc - 2 - deg
    if (deg < 0).any() or (extra < 0).any():
        i = int(np.argmax((deg < 0) | (extra < 0)))
        raise DataError(path, f"line {lineno[node_line[i]]}: node degree {int(deg[i])} but "
                              f"{int(nc[i]) - 2} neighbour ids follow")
    attrs = None
    if (extra > 0).any():
        if (extra != extra[0]).any():
            i = int(np.argmax(extra != extra[0]))
            raise DataError(path, f"line {lineno[node_line[i]]}: {int(extra[i])} node attributes, "
                                  f"but the first node line has {int(extra[0])}")
        width = int(extra[0])
        apos = (no + 2 + deg)[:, None] + np.arange(width)[None, :]
        attrs = v[apos].astype(np.float32)

    num_graphs = n_node.shape[0]
    num_nodes = int(n_node.sum())
    graph_of_node = np.repeat(np.arange(num_graphs), n_node)
    node_off = np.concatenate([[0], np.cumsum(n_node)[:-1]]).astype(np.int64)
    total = int(deg.sum())
    start = np.concatenate([[0], np.cumsum(deg)[:-1]]).astype(np.int64)
    pos = np.repeat(no + 2 - start, deg) + np.arange(total)
    nb = _as_int(path, v[pos], "neighbour ids", lineno[line_of_token[pos]])
    src = np.repeat(np.arange(num_nodes, dtype=np.int64), deg)
    g_e = graph_of_node[src]
    outside = (nb < 0) | (nb >= n_node[g_e])
    if outside.any():
        i = int(np.argmax(outside))
        raise DataError(path, f"line {lineno[line_of_token[pos[i]]]}: neighbour id {int(nb[i])} "
                              f"points outside its graph of {int(n_node[g_e[i]])} nodes")
    dst = nb + node_off[g_e]
    return _assemble(path, n_node, labels_raw, src, dst, tags, attrs, degree_cap, name, degree_encoding)


# ------------------------------------------------------------------------------------------ TU


def find_tu_prefix(directory: str | os.PathLike, expected: str | None = None) -> str | None:
    """The ``DS`` of the ``DS_A.txt`` file in ``directory`` (``None`` when there is none)."""
    d = pathlib.Path(directory)
    if not d.is_dir():
        return None
    found = sorted(p.name[: -len("_A.txt")] for p in d.glob("*_A.txt"))
    if not found:
        return None
    if expected is not None and expected in found:
        return expected
    if len(found) > 1:
        raise DataError(d, f"several TU data sets here ({', '.join(found)}); expected {expected}")
    return found[0]


def _column(path, tk: Tokens, num_rows: int | None, what: str) -> np.ndarray:
    nonempty = tk.counts[tk.counts > 0]
    if (nonempty != 1).any():
        line = int(np.flatnonzero((tk.counts > 0) & (tk.counts != 1))[0]) + 1
        raise DataError(path, f"line {line}: expected one {what} per line")
    if num_rows is not None and tk.values.shape[0] != num_rows:
        raise DataError(path, f"has {tk.values.shape[0]} {what} lines, expected {num_rows}")
    return tk.values


def _matrix(path, tk: Tokens, num_rows: int, what: str) -> np.ndarray:
    nonempty = tk.counts[tk.counts > 0]
    if nonempty.shape[0] != num_rows:
        raise DataError(path, f"has {nonempty.shape[0]} {what} rows, expected {num_rows} (one per node)")
    if nonempty.size and (nonempty != nonempty[0]).any():
        line = int(np.flatnonzero((tk.counts > 0) & (tk.counts != nonempty[0]))[0]) + 1
        raise DataError(path, f"line {line}: inconsistent number of {what} columns")
    width = int(nonempty[0]) if nonempty.size else 0
    return tk.values.reshape(num_rows, width)


def load_tu_files(directory: str | os.PathLike, prefix: str | None = None, *, name: str = "",
                  degree_cap: int = DEFAULT_DEGREE_CAP, degree_encoding: str = "onehot") -> GraphDataset:
    """Parse the original TU file set ``<directory>/<prefix>_*.txt`` into a :class:`GraphDataset`."""
    d = pathlib.Path(directory)
    prefix = find_tu_prefix(d, prefix)
    if prefix is None:
        raise DataError(d / "*_A.txt", "missing file (no TU data set in this folder)")
    f = {k: d / f"{prefix}_{k}.txt" for k in ("A", "graph_indicator", "graph_labels", "node_labels",
                                               "node_attributes")}

    gl_path = f["graph_labels"]
    labels_raw = _column(gl_path, tokenize(gl_path, read_bytes(gl_path)), None, "graph label")
    labels_raw = _as_int(gl_path, labels_raw, "graph labels")
    num_graphs = labels_raw.shape[0]
    gi_path = f["graph_indicator"]
    gi = _as_int(gi_path, _column(gi_path, tokenize(gi_path, read_bytes(gi_path)), None, "graph id"),
                 "graph ids")
    num_nodes = gi.shape[0]
    if num_nodes and (int(gi.min()) < 1 or int(gi.max()) > num_graphs):
        bad = int(gi.min()) if int(gi.min()) < 1 else int(gi.max())
        raise DataError(gi_path, f"graph id {bad} out of range 1..{num_graphs} "
                                 f"({gl_path.name} has {num_graphs} lines)")
    if (np.diff(gi) < 0).any():
        line = int(np.argmax(np.diff(gi) < 0)) + 2
        raise DataError(gi_path, f"line {line}: graph ids must be non-decreasing (nodes grouped by graph)")
    gi = gi - 1
    n_node = np.bincount(gi, minlength=num_graphs).astype(np.int64)

    a_path = f["A"]
    tk = tokenize(a_path, read_bytes(a_path), commas=True)
    nonempty = tk.counts[tk.counts > 0]
    if (nonempty != 2).any():
        line = int(np.flatnonzero((tk.counts > 0) & (tk.counts != 2))[0]) + 1
        raise DataError(a_path, f"line {line}: expected 'row, col' (two node ids)")
    pairs = _as_int(a_path, tk.values, "node ids").reshape(-1, 2) - 1
    if pairs.size and (int(pairs.min()) < 0 or int(pairs.max()) >= num_nodes):
        bad = int(pairs.max()) + 1 if int(pairs.max()) >= num_nodes else int(pairs.min()) + 1
        raise DataError(a_path, f"edge endpoint {bad} points outside the graph (node ids are "
                                f"1..{num_nodes}, from {gi_path.name})")
    src, dst = pairs[:, 0], pairs[:, 1]
    cross = gi[src] != gi[dst]
    if cross.any():
        i = int(np.argmax(cross))
        raise DataError(a_path, f"line {i + 1}: edge {int(src[i]) + 1}, {int(dst[i]) + 1} joins two "
                                "different graphs")

    tags = None
    if f["node_labels"].is_file():
        p = f["node_labels"]
        tags = _as_int(p, _matrix(p, tokenize(p, read_bytes(p), commas=True), num_nodes,
                                  "node label")[:, 0], "node labels")
    attrs = None
    if f["node_attributes"].is_file():
        p = f["node_attributes"]
        attrs = _matrix(p, tokenize(p, read_bytes(p), commas=True), num_nodes, "node attribute")
        check_finite(p, attrs.astype(np.float64), "node attributes")
    return _assemble(gl_path, n_node, labels_raw, src, dst, tags, attrs, degree_cap, name, degree_encoding)


# --------------------------------------------------------------------------------------- folds

_FOLD_RE = re.compile(r"^train_idx-(\d+)\.txt$")


def load_folds(directory: str | os.PathLike, num_graphs: int
               ) -> tuple[tuple[np.ndarray, np.ndarray], ...] | None:
    """Shipped folds ``<directory>/{train,test}_idx-<i>.txt`` (0-based graph ids), or ``None``."""
    d = pathlib.Path(directory)
    if not d.is_dir():
        return None
    ids = sorted(int(m.group(1)) for p in d.iterdir() if (m := _FOLD_RE.match(p.name)))
    if not ids:
        return None
    folds = []
    for i in ids:
        pair = []
        for kind in ("train", "test"):
            p = d / f"{kind}_idx-{i}.txt"
            idx = _as_int(p, _column(p, tokenize(p, read_bytes(p)), None, "graph index"), "graph indices")
            if idx.size and (int(idx.min()) < 0 or int(idx.max()) >= num_graphs):
                bad = int(idx.min()) if int(idx.min()) < 0 else int(idx.max())
                raise DataError(p, f"graph index {bad} out of range 0..{num_graphs - 1}")
            pair.append(idx.astype(np.int64))
        if np.intersect1d(pair[0], pair[1]).size:
            raise DataError(d / f"test_idx-{i}.txt", f"fold {i}: test indices overlap train indices")
        folds.append((pair[0], pair[1]))
    return tuple(folds)
