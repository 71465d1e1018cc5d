"""Graph data: containers, loaders, splits and padded batching.

Loaders read the original published files from ``<root>/<name>/`` (``root`` from
:func:`resolve_data_root`) and, when absent, download them into the per-user cache.
"""

from lpgnas.data._batching import Bucket, PaddedBatch, iterate_batches, make_buckets
from lpgnas.data._download import resolve_data_root
from lpgnas.data._features import row_normalize
from lpgnas.data._graph import Graph, GraphDataset, Split
from lpgnas.data._load import DATASETS, load_dataset
from lpgnas.data._splits import (
    NODE_SPLITS,
    check_node_split,
    default_node_split,
    kfold_splits,
    node_split,
    per_class_split,
    public_split,
    random_split,
)
from lpgnas.data._stats import dataset_stats
from lpgnas.data._synthetic import synthetic_graph
from lpgnas.data._tu import DEGREE_ENCODINGS

__all__ = [
    "Graph",
    "GraphDataset",
    "Split",
    "PaddedBatch",
    "Bucket",
    "resolve_data_root",
    "load_dataset",
    "DATASETS",
    "DEGREE_ENCODINGS",
    "row_normalize",
    "NODE_SPLITS",
    "check_node_split",
    "default_node_split",
    "node_split",
    "public_split",
    "random_split",
    "per_class_split",
    "kfold_splits",
    "make_buckets",
    "iterate_batches",
    "dataset_stats",
    "synthetic_graph",
]
