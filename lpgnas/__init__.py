"""lpgnas: find small, fast graph neural networks (joint architecture + bit-width search in JAX).

The public API is re-exported here; subpackages (``lpgnas.data``, ``lpgnas.nn``, ``lpgnas.quant``,
``lpgnas.kernels``, ``lpgnas.search_spaces``, ``lpgnas.supernet``, ``lpgnas.search`` -- the differentiable
search, Ray Tune backends and trial records -- and the module ``lpgnas.pareto``) hold the rest; they are
imported on demand so that ``import lpgnas`` stays light.
"""

from lpgnas.arch import Architecture, LayerSpec, baseline, read_architecture, write_architecture
from lpgnas.data import Graph, GraphDataset, Split, load_dataset
from lpgnas.errors import ConfigError, DataError, LpgnasError
from lpgnas.nn import GNN, GraphArrays
from lpgnas.quant import QuantConfig, QuantSpec
from lpgnas.train import RunResult, Summary, TrainConfig, summarize, train_graph, train_node

__version__ = "0.1.0"

__all__ = [
    "Architecture",
    "ConfigError",
    "DataError",
    "GNN",
    "Graph",
    "GraphArrays",
    "GraphDataset",
    "LayerSpec",
    "LpgnasError",
    "QuantConfig",
    "QuantSpec",
    "RunResult",
    "Split",
    "Summary",
    "TrainConfig",
    "__version__",
    "baseline",
    "load_dataset",
    "read_architecture",
    "summarize",
    "train_graph",
    "train_node",
    "write_architecture",
]
