"""Search-space files and their loader (installed as ``lpgnas.search_spaces``).

Shipped spaces (YAML files next to this module; copy one to start your own):

* ``lpgnas`` -- the LPGNAS space: per layer attention x aggregator x activation x width x heads x
  skip, and per layer and component the bit width and number format;
* ``sgquant`` -- a fixed GCN whose bits are searched per component x layer x in-degree bucket;
* ``small`` -- GCN/GAT attention up to 8 heads x 32 with 2-32 bit weights, inputs and aggregation;
* ``compact`` -- GCN/GAT attention up to 2 heads x 32 with per-column 1-8 bit weights and 4/8-bit
  inputs and aggregation (fully quantised models, for the small end of a size-accuracy front);
* ``graph`` -- the LPGNAS choices for graph classification, with batch norm and a jumping-knowledge
  sum read-out (the space's ``graph`` block);
* ``methods`` -- the graph-aware quantisers as candidates: fixed point, affine, Degree-Quant
  (percentile ranges, trained under Degree-Quant's protective mask) and the smoothness-aware learned
  range, per component, with GCN/GAT layers up to 8 heads x 32;
* ``tiny`` -- a small space for tests and the demo.

>>> space = load_space("tiny")
>>> space.layer.attention
('gcn', 'gat')
"""

from lpgnas.search_spaces._load import list_spaces, load_space, parse_space_yaml, space_path
from lpgnas.search_spaces._space import (
    ALLOWED_BITS,
    LPGNAS_BITS,
    LPGNAS_FORMATS,
    FORMATS,
    SPACE_SCHEMA,
    DegreeQuant,
    FixedTopology,
    GraphReadout,
    LayerChoices,
    QuantChoices,
    QuantOption,
    SearchSpace,
    is_signed,
)

__all__ = [
    "ALLOWED_BITS",
    "LPGNAS_BITS",
    "LPGNAS_FORMATS",
    "FORMATS",
    "SPACE_SCHEMA",
    "DegreeQuant",
    "FixedTopology",
    "GraphReadout",
    "LayerChoices",
    "QuantChoices",
    "QuantOption",
    "SearchSpace",
    "is_signed",
    "list_spaces",
    "load_space",
    "parse_space_yaml",
    "space_path",
]
