"""Summary statistics of a loaded dataset, for printing."""

from __future__ import annotations

import numpy as np

from lpgnas.data._graph import Graph, GraphDataset

__all__ = ["dataset_stats"]


def dataset_stats(obj: Graph | GraphDataset) -> dict:
    """Plain-Python statistics of a :class:`Graph` or :class:`GraphDataset`.

    Graph: ``name, task, nodes, edges`` (directed), ``undirected_edges, features, classes,
    labelled, class_counts, avg_degree, max_degree, isolated`` and split sizes when there is a split.
    GraphDataset: ``name, task, graphs, classes, class_counts, features, nodes, edges,
    avg_nodes, avg_edges`` (undirected per graph), ``max_nodes, folds``.
    """
    if isinstance(obj, Graph):
        deg = obj.in_degree()
        lab = obj.labels[obj.labels >= 0]
        out = {
            "name": obj.name, "task": "node", "nodes": obj.num_nodes, "edges": obj.num_edges,
            "undirected_edges": obj.num_edges // 2, "features": obj.num_features,
            "classes": int(obj.num_classes), "labelled": int(lab.shape[0]),
            "class_counts": np.bincount(lab, minlength=obj.num_classes).tolist(),
            "avg_degree": float(deg.mean()) if deg.size else 0.0,
            "max_degree": int(deg.max()) if deg.size else 0,
            "isolated": int((deg == 0).sum()),
        }
        if obj.split is not None:
            out.update(train=int(obj.split.train.shape[0]), val=int(obj.split.val.shape[0]),
                       test=int(obj.split.test.shape[0]))
        return out
    if isinstance(obj, GraphDataset):
        g = len(obj)
        return {
            "name": obj.name, "task": "graph", "graphs": g, "classes": int(obj.num_classes),
            "class_counts": np.bincount(obj.labels, minlength=obj.num_classes).tolist(),
            "features": obj.num_features, "nodes": int(obj.n_node.sum()),
            "edges": int(obj.n_edge.sum()),
            "avg_nodes": float(obj.n_node.mean()) if g else 0.0,
            "avg_edges": float(obj.n_edge.mean()) / 2 if g else 0.0,
            "max_nodes": int(obj.n_node.max()) if g else 0,
            "folds": 0 if obj.folds is None else len(obj.folds),
        }
    raise TypeError(f"dataset_stats expects a Graph or GraphDataset, got {type(obj).__name__}")
