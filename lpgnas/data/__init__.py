"""Graph data: containers, loaders, splits and padded batching."""

from lpgnas.data._graph import Graph, GraphDataset, Split

__all__ = ["Graph", "GraphDataset", "Split"]
