"""The :class:`SearchSpace` data model and its validation.

A search space lists, for every decision the search makes, the candidate values. It is read from a
YAML file (see :func:`lpgnas.search_spaces.load_space`) whose mapping has the same keys as
:meth:`SearchSpace.to_json`; :meth:`SearchSpace.from_json` validates it and raises a
:class:`~lpgnas.errors.ConfigError` naming the offending field (``layer.attention``,
``quant.weight.bits``, ...).

Two kinds of space:

* a *layer* space (``layer:`` block): every layer chooses its op, attention, aggregator, activation,
  width, heads and skip connection, and every listed quantised component its bit width and format
  (the LPGNAS space);
* a *fixed* space (``fixed:`` block): the topology is a fixed baseline (``gcn``/``gat``/``gin``/
  ``sage``) and only the quantisation is searched, per component x layer x in-degree bucket (the
  SGQuant space).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping, NamedTuple

from lpgnas.arch import (ACTIVATIONS, AGGREGATORS, ATTENTIONS, BASELINES, NORMS, OPS, READOUTS, TASKS, Architecture,
                         baseline)
from lpgnas.errors import ConfigError

__all__ = [
    "SPACE_SCHEMA",
    "FORMATS",
    "ALLOWED_BITS",
    "LPGNAS_BITS",
    "QuantOption",
    "is_signed",
    "LayerChoices",
    "QuantChoices",
    "FixedTopology",
    "GraphReadout",
    "DegreeQuant",
    "LPGNAS_FORMATS",
    "SearchSpace",
]

SPACE_SCHEMA = "lpgnas.space/v1"
FORMATS = ("fixed", "affine", "lsq", "dq", "alpha")
"""Number formats a quantised component may choose: LPGNAS fixed point (binary at 1 bit, ternary
at 2), affine (scale + zero point from observed min/max ranges), LSQ (learned step size), ``dq``
(Degree-Quant: affine with the percentile range, 0.001 of each tail at 8 bits and above, 0.01
below; pair it with the space's ``degree_quant`` masking) and ``alpha`` (the smoothness-aware
method's learned range scaling over the observed range, initialised by a grid search)."""
LPGNAS_FORMATS = ("fixed", "affine", "lsq")
"""The formats of the LPGNAS space (``lpgnas.yaml``)."""
_ASYMMETRIC_FORMATS = ("affine", "dq", "alpha")
"""Formats with a zero point: node and edge tensors in them have unsigned codes."""
_TENSOR_ONLY_FORMATS = ("dq",)
"""Formats whose range is a statistic of the whole tensor (a percentile): no per-row or per-column
scales."""
ALLOWED_BITS = (1, 2, 3, 4, 5, 6, 7, 8, 16, 32)
"""Bit widths a search may choose: those the quantisers' integer paths are checked for (1..8, 16),
and 32, which means full precision whatever the format."""
LPGNAS_BITS = (1, 2, 4, 8, 16, 32)
"""The LPGNAS paper's bit widths, the ones ``lpgnas.yaml`` offers."""
SPACE_GRANULARITIES = ("tensor", "row", "column")
"""Scale granularities of a searched component: one scale (``tensor``), one per node (``row``, node
tensors: ``input``, ``linear``, ``aggregate``, ``output``) or one per output channel (``column``,
``weight``)."""
_GRANULARITY_COMPONENTS = {"row": ("input", "linear", "aggregate", "output"), "column": ("weight",)}

# Components that are not per node / per edge (no in-degree, so never split into degree buckets).
_UNBUCKETED = ("weight",)
# Components that exist only in attention layers (``gat``/``attn``).
_ATTENTION_COMPONENTS = ("attention_logit", "attention")


def _components() -> tuple[str, ...]:
    from lpgnas.nn import COMPONENTS  # imported lazily: listing spaces should not start JAX

    return tuple(COMPONENTS)


class QuantOption(NamedTuple):
    """One resolved quantisation candidate: a :data:`lpgnas.quant.METHODS` name, its bits and the
    granularity of its scale (one of :data:`SPACE_GRANULARITIES`)."""

    method: str
    bits: int
    granularity: str = "tensor"

    def spec(self, *, signed: bool = True):
        """The :class:`lpgnas.quant.QuantSpec` of this option (``signed`` as for ``QuantSpec``)."""
        from lpgnas.quant import QuantSpec

        if self.method == "fp32":
            return QuantSpec("fp32", 32)
        return QuantSpec(self.method, self.bits, signed=signed, granularity=self.granularity)


def is_signed(component: str, method: str) -> bool:
    """Whether a candidate of ``component`` in format ``method`` has signed integer codes: weights
    always; node and edge tensors in every format but the affine family (``affine``, ``dq``,
    ``alpha``: asymmetric codes with a zero point, which still represent negative values)."""
    return component == "weight" or method not in _ASYMMETRIC_FORMATS


def _resolve(component: str, fmt: str, bits: int, granularity: str) -> QuantOption:
    if bits >= 32:
        return QuantOption("fp32", 32)
    if fmt == "dq" and component == "weight":
        fmt = "affine"  # Degree-Quant's percentile range is for activations; weights use their min/max
    if bits == 1 and is_signed(component, fmt):
        # a signed 1-bit uniform grid has the codes {-1, 0}: it zeroes every positive value (and
        # symmetric affine scaling zeroes all of them), so a signed format at 1 bit is binary
        return QuantOption("binary", 1, granularity)
    if fmt == "fixed":
        if bits == 2:
            return QuantOption("ternary", 2, granularity)
        return QuantOption("fixed", bits, granularity)
    return QuantOption(fmt, bits, granularity)


@dataclasses.dataclass(frozen=True)
class LayerChoices:
    """Candidate values of every per-layer decision (each a non-empty tuple without duplicates).

    ``hidden`` is the width per head (as :attr:`lpgnas.arch.LayerSpec.hidden`). The supernet fixes
    the last layer of a node task to the number of classes.
    """

    op: tuple[str, ...] = ("attn",)
    attention: tuple[str, ...] = ("gcn",)
    aggregator: tuple[str, ...] = ("add",)
    activation: tuple[str, ...] = ("relu",)
    hidden: tuple[int, ...] = (16,)
    heads: tuple[int, ...] = (1,)
    skip: tuple[bool, ...] = (False,)

    def num_choices(self) -> dict[str, int]:
        return {f.name: len(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def to_json(self) -> dict:
        return {f.name: list(getattr(self, f.name)) for f in dataclasses.fields(self)}


@dataclasses.dataclass(frozen=True)
class QuantChoices:
    """Quantisation candidates of one component (a name of :data:`lpgnas.nn.COMPONENTS`).

    ``granularity``: ``tensor`` (one scale); ``column`` for ``weight`` (one scale per output
    channel) or ``row`` for a node tensor (one scale per node), as the fixed-bit presets quantise
    weights and layer inputs. Like the presets' scales, they are not counted in the costs.
    """

    component: str
    bits: tuple[int, ...]
    formats: tuple[str, ...]
    granularity: str = "tensor"

    def options(self) -> tuple[QuantOption, ...]:
        """The distinct candidates: every format x bits, where 32 bits is one full-precision
        option, fixed point at 1 / 2 bits is binary / ternary, and every signed format
        (:func:`is_signed`: all but affine node / edge tensors) at 1 bit is binary."""
        out: list[QuantOption] = []
        for b in self.bits:
            for f in self.formats:
                opt = _resolve(self.component, f, b, self.granularity)
                if opt not in out:
                    out.append(opt)
        return tuple(out)

    @property
    def bucketed(self) -> bool:
        """Whether this component is a per-node/per-edge tensor (split by in-degree buckets)."""
        return self.component not in _UNBUCKETED

    def to_json(self) -> dict:
        out = {"bits": list(self.bits), "formats": list(self.formats)}
        if self.granularity != "tensor":
            out["granularity"] = self.granularity
        return out


@dataclasses.dataclass(frozen=True)
class FixedTopology:
    """A fixed baseline topology (only quantisation is searched). ``hidden``/``heads`` ``None``
    take the baseline's published defaults (see :func:`lpgnas.arch.baseline`)."""

    model: str
    hidden: int | None = None
    heads: int | None = None

    def to_json(self) -> dict:
        return {"model": self.model, "hidden": self.hidden, "heads": self.heads}


class GraphReadout(NamedTuple):
    """How a graph-level space turns node representations into a graph's scores (the fields of
    :class:`lpgnas.arch.Architecture` with the same names): ``readout`` pools the nodes of each graph
    (``sum`` | ``mean`` | ``max``); ``norm`` = ``batch`` puts a batch norm after every layer (before
    its activation); ``jk`` pools every layer's output and the input (jumping knowledge) into one
    linear scorer each, summed, instead of the last layer's only. Defaults: mean pooling of the last
    layer, no normalisation."""

    readout: str = "mean"
    norm: str = "none"
    jk: bool = False

    def to_json(self) -> dict:
        return {"readout": self.readout, "norm": self.norm, "jk": self.jk}


class DegreeQuant(NamedTuple):
    """Degree-Quant's protective masking, for the search's training steps and the derived model's
    quantisation-aware training (:class:`lpgnas.quant.DQSettings`): in every training step node
    ``i`` is protected with probability ``p_min + (p_max - p_min) * CDF_in-degree(d_i)``; a
    protected node's quantised node tensors (and its out-edges' edge tensors) stay in full precision
    and feed no range statistic. Evaluation quantises everything. The defaults are Degree-Quant's
    INT8 setting (INT4: ``p_min`` 0.1, ``p_max`` 0.2)."""

    p_min: float = 0.0
    p_max: float = 0.1

    def settings(self):
        """The :class:`lpgnas.quant.DQSettings` a derived quantisation config carries."""
        from lpgnas.quant import DQSettings

        return DQSettings(self.p_min, self.p_max)

    def to_json(self) -> dict:
        return {"p_min": self.p_min, "p_max": self.p_max}


@dataclasses.dataclass(frozen=True)
class SearchSpace:
    """A whole search space. Exactly one of ``layer`` (searched topology) and ``fixed`` is set.

    ``num_layers``: candidate depths (a single value for a fixed space). ``quant``: the quantised
    components and their candidates, in the order of :data:`lpgnas.nn.COMPONENTS`; components not
    listed stay full precision.
    ``degree_buckets``: in-degree thresholds; a node with in-degree ``d`` falls in the first bucket
    ``i`` with ``d <= degree_buckets[i]``, or in the last one above every threshold (so
    ``(1, 3, 7)`` gives the buckets 0-1, 2-3, 4-7, 8+); each bucket chooses its own bits for the
    per-node / per-edge components. Empty: no buckets.
    ``graph``: graph-level ``layer`` spaces, the :class:`GraphReadout` (``None``: its defaults; see
    :attr:`readout`).
    ``degree_quant``: Degree-Quant's protective masking during training (:class:`DegreeQuant`), or
    ``None`` (no masking). With it, the search trains under the mask and the derived architecture's
    quantisation config carries the same setting, so retraining it masks alike.
    """

    name: str
    task: str
    num_layers: tuple[int, ...]
    layer: LayerChoices | None = None
    fixed: FixedTopology | None = None
    quant: tuple[QuantChoices, ...] = ()
    degree_buckets: tuple[int, ...] = ()
    description: str = ""
    graph: GraphReadout | None = None
    degree_quant: DegreeQuant | None = None

    def __post_init__(self):
        # ``quant`` is a set of components: keep it in the canonical component order so that
        # equality does not depend on the order of the file's keys
        if self.quant:
            order = {c: i for i, c in enumerate(_components())}
            ranked = sorted(self.quant, key=lambda q: order.get(q.component, len(order)))
            object.__setattr__(self, "quant", tuple(ranked))

    # -- queries ------------------------------------------------------------------------------
    def quant_for(self, component: str) -> QuantChoices | None:
        """The choices of ``component``, or ``None`` when it is not quantised."""
        for q in self.quant:
            if q.component == component:
                return q
        return None

    @property
    def readout(self) -> GraphReadout:
        """The graph read-out of a graph-level space (the defaults when the file gives none)."""
        return self.graph if self.graph is not None else GraphReadout()

    @property
    def components(self) -> tuple[str, ...]:
        """The quantised components, in the order of :data:`lpgnas.nn.COMPONENTS`."""
        return tuple(q.component for q in self.quant)

    @property
    def num_buckets(self) -> int:
        """Number of in-degree buckets (1 when the space has none)."""
        return len(self.degree_buckets) + 1

    def num_choices(self) -> dict[str, int]:
        """Number of candidates of each decision (per layer, and per bucket for bucketed
        components), for display: ``{"num_layers": 2, "attention": 7, ..., "quant.weight": 13}``."""
        out = {"num_layers": len(self.num_layers)}
        if self.layer is not None:
            out.update(self.layer.num_choices())
        for q in self.quant:
            out[f"quant.{q.component}"] = len(q.options())
        return out

    def size(self) -> float:
        """``log10`` of the number of distinct architectures in the space."""
        per_layer = 0.0  # log10 of the candidates of one layer
        if self.layer is not None:
            per_layer += sum(math.log10(n) for n in self.layer.num_choices().values())
        for q in self.quant:
            reps = self.num_buckets if q.bucketed else 1
            per_layer += reps * math.log10(len(q.options()))
        logs = [n * per_layer for n in self.num_layers]
        top = max(logs)
        return top + math.log10(sum(10.0 ** (v - top) for v in logs))

    def base_architecture(self, num_classes: int | None = None) -> Architecture:
        """The fixed topology of a ``fixed`` space as a full-precision :class:`Architecture`
        (``num_classes`` is needed for node tasks: the last layer is the classifier)."""
        if self.fixed is None:
            raise ConfigError("fixed", f"search space {self.name!r} has no fixed topology")
        return baseline(self.fixed.model, task=self.task, num_layers=self.num_layers[0],
                        hidden=self.fixed.hidden, heads=self.fixed.heads, num_classes=num_classes)

    # -- json ---------------------------------------------------------------------------------
    def to_json(self) -> dict:
        """A JSON-serialisable dict with the keys of the YAML file; :meth:`from_json` restores
        an equal space."""
        return {
            "schema": SPACE_SCHEMA,
            "name": self.name,
            "description": self.description,
            "task": self.task,
            "num_layers": list(self.num_layers),
            "layer": None if self.layer is None else self.layer.to_json(),
            "fixed": None if self.fixed is None else self.fixed.to_json(),
            "quant": {q.component: q.to_json() for q in self.quant},
            "degree_buckets": list(self.degree_buckets),
            # written only when given, so that a space without it reads and fingerprints as before
            **({} if self.graph is None else {"graph": self.graph.to_json()}),
            **({} if self.degree_quant is None else {"degree_quant": self.degree_quant.to_json()}),
        }

    @classmethod
    def from_json(cls, obj: Any, *, source: object | None = None, name: str = "custom") -> "SearchSpace":
        """Validate a parsed YAML/JSON mapping. ``name`` is used when the mapping has none."""
        try:
            return _parse_space(obj, name)
        except ConfigError as e:
            if source is not None and e.source is None:
                raise ConfigError(e.field, e.problem, source=source) from None
            raise


# ---------------------------------------------------------------------------------------------
# validation

_TOP_KEYS = ("schema", "name", "description", "task", "num_layers", "layer", "fixed", "quant", "degree_buckets",
             "graph", "degree_quant")
_LAYER_DEFAULTS = LayerChoices()
_LAYER_ALLOWED: dict[str, tuple] = {
    "op": OPS,
    "attention": ATTENTIONS,
    "aggregator": AGGREGATORS,
    "activation": ACTIVATIONS,
}


def _type_name(v: Any) -> str:
    return "null" if v is None else type(v).__name__


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_keys(field: str, obj: Any, allowed: tuple[str, ...]) -> Mapping:
    if not isinstance(obj, Mapping):
        raise ConfigError(field, f"must be a mapping, got {_type_name(obj)}")
    for k in obj:
        if k not in allowed:
            where = f"{field}.{k}" if field != "<root>" else str(k)
            raise ConfigError(where, f"unknown field; allowed: {', '.join(allowed)}")
    return obj


def _choice_list(field: str, value: Any, check) -> tuple:
    if not isinstance(value, list):
        raise ConfigError(field, f"must be a list of choices (e.g. [{_example(value)}]), got {_type_name(value)}")
    if not value:
        raise ConfigError(field, "must list at least one choice")
    seen: list = []
    for i, v in enumerate(value):
        check(f"{field}[{i}]", v)
        if any(type(v) is type(s) and v == s for s in seen):
            raise ConfigError(field, f"duplicate choice {v!r}")
        seen.append(v)
    return tuple(value)


def _example(value: Any) -> str:
    return repr(value) if isinstance(value, (str, int, float, bool)) else "..."


def _one_of(allowed: tuple[str, ...]):
    def check(field: str, v: Any) -> None:
        if not isinstance(v, str) or v not in allowed:
            raise ConfigError(field, f"unknown value {v!r}; allowed: {', '.join(allowed)}")

    return check


def _positive_int(field: str, v: Any) -> None:
    if not _is_int(v) or v < 1:
        raise ConfigError(field, f"must be a positive integer, got {v!r}")


def _boolean(field: str, v: Any) -> None:
    if not isinstance(v, bool):
        raise ConfigError(field, f"must be true or false, got {v!r}")


def _bits(field: str, v: Any) -> None:
    if not _is_int(v):
        raise ConfigError(field, f"must be an integer number of bits, got {v!r}")
    if not 1 <= v <= 32:
        raise ConfigError(field, f"must be between 1 and 32, got {v}")
    if v not in ALLOWED_BITS:
        raise ConfigError(field, f"{v} is not an allowed bit width; allowed: {', '.join(map(str, ALLOWED_BITS))}")


def _string(field: str, v: Any) -> str:
    if not isinstance(v, str):
        raise ConfigError(field, f"must be a string, got {_type_name(v)}")
    return v


def _parse_layer(raw: Any) -> LayerChoices:
    names = tuple(f.name for f in dataclasses.fields(LayerChoices))
    raw = _check_keys("layer", raw, names)
    values = {}
    for name in names:
        field = f"layer.{name}"
        if name not in raw:
            values[name] = getattr(_LAYER_DEFAULTS, name)
        elif name in _LAYER_ALLOWED:
            values[name] = _choice_list(field, raw[name], _one_of(_LAYER_ALLOWED[name]))
        elif name == "skip":
            values[name] = _choice_list(field, raw[name], _boolean)
        else:
            values[name] = _choice_list(field, raw[name], _positive_int)
    return LayerChoices(**values)


def _parse_fixed(raw: Any) -> FixedTopology:
    raw = _check_keys("fixed", raw, ("model", "hidden", "heads"))
    if "model" not in raw:
        raise ConfigError("fixed.model", f"missing; one of {', '.join(BASELINES)}")
    _one_of(BASELINES)("fixed.model", raw["model"])
    for key in ("hidden", "heads"):
        if raw.get(key) is not None:
            _positive_int(f"fixed.{key}", raw[key])
    return FixedTopology(raw["model"], raw.get("hidden"), raw.get("heads"))


def _parse_quant(raw: Any, fixed: FixedTopology | None) -> tuple[QuantChoices, ...]:
    if raw is None:
        return ()
    components = _components()
    raw = _check_keys("quant", raw, components)
    out = []
    for comp, entry in raw.items():
        field = f"quant.{comp}"
        entry = _check_keys(field, entry, ("bits", "formats", "granularity"))
        for key in ("bits", "formats"):
            if key not in entry:
                raise ConfigError(f"{field}.{key}", "missing")
        bits = _choice_list(f"{field}.bits", entry["bits"], _bits)
        formats = _choice_list(f"{field}.formats", entry["formats"], _one_of(FORMATS))
        if fixed is not None and comp in _ATTENTION_COMPONENTS and fixed.model not in ("gat", "attn"):
            raise ConfigError(field, f"the fixed model {fixed.model!r} has no attention tensor to quantise")
        granularity = entry.get("granularity", "tensor")
        _one_of(SPACE_GRANULARITIES)(f"{field}.granularity", granularity)
        allowed = _GRANULARITY_COMPONENTS.get(granularity)
        if allowed is not None and comp not in allowed:
            raise ConfigError(f"{field}.granularity", f"{granularity!r} applies to {', '.join(allowed)} only")
        tensor_only = [f for f in formats if f in _TENSOR_ONLY_FORMATS]
        if granularity != "tensor" and tensor_only and comp != "weight":  # (dq weights are affine)
            raise ConfigError(f"{field}.formats", f"{tensor_only[0]!r} takes its range from a percentile of the whole "
                                                  f"tensor, so it needs granularity 'tensor', not {granularity!r}")
        out.append(QuantChoices(comp, bits, formats, granularity))
    return tuple(out)


def _parse_buckets(raw: Any) -> tuple[int, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ConfigError("degree_buckets", f"must be a list of in-degree thresholds, got {_type_name(raw)}")
    prev = -1
    for i, t in enumerate(raw):
        if not _is_int(t) or t < 0:
            raise ConfigError(f"degree_buckets[{i}]", f"must be a non-negative integer, got {t!r}")
        if t <= prev:
            raise ConfigError(f"degree_buckets[{i}]", f"thresholds must increase; {t} follows {prev}")
        prev = t
    return tuple(raw)


def _parse_space(obj: Any, default_name: str) -> SearchSpace:
    if obj is None:
        raise ConfigError("<root>", "the search space is empty; expected a mapping of fields")
    obj = _check_keys("<root>", obj, _TOP_KEYS)
    if "schema" in obj and obj["schema"] != SPACE_SCHEMA:
        raise ConfigError("schema", f"unknown version {obj['schema']!r} (this lpgnas reads {SPACE_SCHEMA!r})")
    name = _string("name", obj["name"]) if obj.get("name") is not None else default_name
    description = _string("description", obj["description"]) if obj.get("description") is not None else ""
    if "task" not in obj:
        raise ConfigError("task", f"missing; one of {', '.join(TASKS)}")
    _one_of(TASKS)("task", obj["task"])
    if "num_layers" not in obj:
        raise ConfigError("num_layers", "missing; a list of candidate depths, e.g. [2, 3]")
    num_layers = _choice_list("num_layers", obj["num_layers"], _positive_int)
    layer_raw, fixed_raw = obj.get("layer"), obj.get("fixed")
    if layer_raw is None and fixed_raw is None:
        raise ConfigError("layer", "missing; give either 'layer' (choices to search) or 'fixed' (a fixed topology)")
    if layer_raw is not None and fixed_raw is not None:
        raise ConfigError("fixed", "cannot be combined with 'layer'; a space either searches the topology or fixes it")
    layer = None if layer_raw is None else _parse_layer(layer_raw)
    fixed = None if fixed_raw is None else _parse_fixed(fixed_raw)
    if fixed is not None and len(num_layers) != 1:
        raise ConfigError("num_layers", "a fixed topology has exactly one depth, e.g. [2]")
    quant = _parse_quant(obj.get("quant"), fixed)
    buckets = _parse_buckets(obj.get("degree_buckets"))
    if buckets and not any(q.bucketed for q in quant):
        raise ConfigError("degree_buckets", "no quantised per-node or per-edge component to split into buckets")
    graph = _parse_graph(obj.get("graph"), obj["task"], fixed)
    degree_quant = _parse_degree_quant(obj.get("degree_quant"), quant)
    return SearchSpace(name=name, task=obj["task"], num_layers=num_layers, layer=layer, fixed=fixed,
                       quant=quant, degree_buckets=buckets, description=description, graph=graph,
                       degree_quant=degree_quant)


def _probability(field: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= v <= 1.0:
        raise ConfigError(field, f"must be a probability in [0, 1], got {v!r}")
    return float(v)


def _parse_degree_quant(raw: Any, quant: tuple[QuantChoices, ...]) -> DegreeQuant | None:
    if raw is None:
        return None
    raw = _check_keys("degree_quant", raw, DegreeQuant._fields)
    default = DegreeQuant()
    p_min = _probability("degree_quant.p_min", raw.get("p_min", default.p_min))
    p_max = _probability("degree_quant.p_max", raw.get("p_max", default.p_max))
    if p_min > p_max:
        raise ConfigError("degree_quant.p_min", f"{p_min} exceeds p_max {p_max}")
    if not any(q.component != "weight" for q in quant):
        raise ConfigError("degree_quant", "the mask keeps node and edge tensors in full precision, but the space "
                                          "quantises none (list one under 'quant')")
    return DegreeQuant(p_min, p_max)


def _parse_graph(raw: Any, task: str, fixed: FixedTopology | None) -> GraphReadout | None:
    if raw is None:
        return None
    if task != "graph":
        raise ConfigError("graph", "only graph-level spaces (task: graph) pool their nodes; remove this block")
    if fixed is not None:
        raise ConfigError("graph", f"a fixed topology reads out as its baseline ({fixed.model}) does; remove this "
                                   "block or search the topology with 'layer'")
    raw = _check_keys("graph", raw, GraphReadout._fields)
    default = GraphReadout()
    readout = raw.get("readout", default.readout)
    _one_of(READOUTS)("graph.readout", readout)
    norm = raw.get("norm", default.norm)
    _one_of(NORMS)("graph.norm", norm)
    jk = raw.get("jk", default.jk)
    _boolean("graph.jk", jk)
    return GraphReadout(readout, norm, jk)
