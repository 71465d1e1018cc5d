"""GNN layers and models on ``jax.ops.segment_*`` message passing, quantisable per component."""

from lpgnas.nn._layers import COMPONENTS, GNNLayer, activation, dropout
from lpgnas.nn._message import (GraphArrays, aggregate, attention_logits, coefficient_scale, gcn_norm, graph_arrays,
                                insert_self_loops, pool_graphs, scale_heads, segment_softmax)
from lpgnas.nn._io import MODEL_FILES, load_model, save_model
from lpgnas.nn._model import GNN
from lpgnas.nn._sparse import SparseRows, rows_matmul, sparse_rows

__all__ = [
    "COMPONENTS",
    "GNN",
    "GNNLayer",
    "GraphArrays",
    "MODEL_FILES",
    "SparseRows",
    "activation",
    "aggregate",
    "attention_logits",
    "coefficient_scale",
    "dropout",
    "gcn_norm",
    "graph_arrays",
    "insert_self_loops",
    "load_model",
    "pool_graphs",
    "scale_heads",
    "rows_matmul",
    "save_model",
    "segment_softmax",
    "sparse_rows",
]
