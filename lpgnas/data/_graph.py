"""The graph containers that cross every home: :class:`Graph` (one graph, node-level task),
:class:`GraphDataset` (many small graphs, graph-level task) and :class:`Split`.

Arrays are host ``numpy`` arrays; the trainer moves them to the device once.
Conventions (every loader guarantees them):

* ``senders``/``receivers`` are ``int32``, hold each undirected edge in both directions, contain no
  self loops (layers add them when their maths wants them) and are sorted by ``receivers`` (then
  ``senders``), so ``jax.ops.segment_sum(..., indices_are_sorted=True)`` is valid;
* ``nodes`` are ``float32`` ``[N, F]``; ``edges`` is ``None`` or ``float32`` ``[E]`` edge weights;
* labels are ``int32`` in ``0..num_classes-1``; ``-1`` marks an unlabelled node.
"""

from __future__ import annotations

import dataclasses

import jraph
import numpy as np

__all__ = ["Split", "Graph", "GraphDataset"]


@dataclasses.dataclass(frozen=True, eq=False)
class Split:
    """Index sets of one split (node ids for node tasks, graph ids for graph tasks)."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    def __post_init__(self):
        for name in ("train", "val", "test"):
            object.__setattr__(self, name, np.asarray(getattr(self, name), dtype=np.int64))

    def masks(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        out = []
        for idx in (self.train, self.val, self.test):
            m = np.zeros(n, dtype=bool)
            m[idx] = True
            out.append(m)
        return tuple(out)  # type: ignore[return-value]

    def to_json(self) -> dict:
        return {"train": self.train.tolist(), "val": self.val.tolist(), "test": self.test.tolist()}


@dataclasses.dataclass(frozen=True, eq=False)
class Graph:
    """One graph with node labels and (optionally) a split, for node classification."""

    graph: jraph.GraphsTuple
    labels: np.ndarray
    num_classes: int
    name: str = ""
    split: Split | None = None

    @property
    def num_nodes(self) -> int:
        return int(self.graph.nodes.shape[0])

    @property
    def num_edges(self) -> int:
        return int(self.graph.senders.shape[0])

    @property
    def num_features(self) -> int:
        return int(self.graph.nodes.shape[1])

    @property
    def senders(self) -> np.ndarray:
        return self.graph.senders

    @property
    def receivers(self) -> np.ndarray:
        return self.graph.receivers

    @property
    def features(self) -> np.ndarray:
        return self.graph.nodes

    def in_degree(self) -> np.ndarray:
        return np.bincount(self.graph.receivers, minlength=self.num_nodes).astype(np.int32)

    def masks(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self.split is None:
            raise ValueError(f"graph {self.name!r} has no split; call with_split() first")
        return self.split.masks(self.num_nodes)

    def with_split(self, split: Split) -> "Graph":
        return dataclasses.replace(self, split=split)

    def with_features(self, nodes: np.ndarray) -> "Graph":
        return dataclasses.replace(self, graph=self.graph._replace(nodes=np.asarray(nodes, np.float32)))


@dataclasses.dataclass(frozen=True, eq=False)
class GraphDataset:
    """Many small graphs with one label each, stored concatenated (CSR over graphs).

    ``nodes`` ``[sum N, F]``; ``senders``/``receivers`` local to their graph (0-based), concatenated;
    ``n_node``/``n_edge`` ``[G]``; ``labels`` ``[G]``. ``folds`` holds shipped cross-validation folds
    as ``(train_idx, test_idx)`` pairs, or ``None``.
    """

    nodes: np.ndarray
    senders: np.ndarray
    receivers: np.ndarray
    n_node: np.ndarray
    n_edge: np.ndarray
    labels: np.ndarray
    num_classes: int
    name: str = ""
    folds: tuple[tuple[np.ndarray, np.ndarray], ...] | None = None

    def __len__(self) -> int:
        return int(self.n_node.shape[0])

    @property
    def num_features(self) -> int:
        return int(self.nodes.shape[1])

    @property
    def node_offsets(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.n_node)]).astype(np.int64)

    @property
    def edge_offsets(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.n_edge)]).astype(np.int64)

    def graph(self, i: int) -> jraph.GraphsTuple:
        """Graph ``i`` alone, as a single-graph ``GraphsTuple``."""
        no, eo = self.node_offsets, self.edge_offsets
        return jraph.GraphsTuple(
            nodes=self.nodes[no[i]:no[i + 1]],
            edges=None,
            senders=self.senders[eo[i]:eo[i + 1]],
            receivers=self.receivers[eo[i]:eo[i + 1]],
            n_node=self.n_node[i:i + 1],
            n_edge=self.n_edge[i:i + 1],
            globals=None,
        )
