"""``Architecture``: the one description of a GNN that the baselines, the search and the export share.

An architecture is a frozen dataclass of layer choices plus an optional quantisation config. It
serialises to the ``lpgnas.arch/v1`` JSON format, which :func:`from_json` validates with errors that
name the offending field (a :class:`~lpgnas.errors.ConfigError`).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Mapping

from lpgnas._validate import finite_number, non_negative_int, positive_int
from lpgnas.errors import ConfigError

__all__ = [
    "SCHEMA",
    "OPS",
    "ATTENTIONS",
    "SOFTMAX_ATTENTIONS",
    "AGGREGATORS",
    "ACTIVATIONS",
    "LayerSpec",
    "Propagation",
    "Architecture",
    "baseline",
    "BASELINES",
    "NODE_ONLY_BASELINES",
    "SMP_ETA",
    "read_architecture",
    "write_architecture",
]

SCHEMA = "lpgnas.arch/v1"
OPS = ("gcn", "gat", "gin", "sage", "attn", "linear")
ATTENTIONS = ("const", "gcn", "gat", "sym-gat", "cos", "linear", "gene-linear")
SOFTMAX_ATTENTIONS = ("gat", "sym-gat", "cos", "linear", "gene-linear")
"""Attention types that score edges with learned vectors and a softmax; ``const`` and ``gcn`` use
fixed edge weights, so a layer with them is counted (size, memory, BitOPs) as a GCN layer."""
AGGREGATORS = ("add", "mean", "max")
ACTIVATIONS = ("none", "relu", "elu", "leaky_relu", "relu6", "tanh", "sigmoid", "softplus")
TASKS = ("node", "graph")
READOUTS = ("sum", "mean", "max")
NORMS = ("none", "batch")


@dataclasses.dataclass(frozen=True)
class LayerSpec:
    """One message-passing layer.

    op: ``gcn`` | ``gat`` | ``gin`` | ``sage`` | ``attn`` (the generic LPGNAS layer whose
    ``attention`` and ``aggregator`` are free choices) | ``linear`` (a dense layer ``x W + b`` without
    message passing, e.g. the MLP of APPNP; single head, no skip). ``hidden`` is the width per head; with
    ``concat`` the layer outputs ``hidden * heads`` features, else the heads are averaged.
    ``activation`` is applied after the layer (the last layer usually has ``none``).
    """

    op: str = "gcn"
    hidden: int = 16
    heads: int = 1
    concat: bool = True
    attention: str = "gcn"
    aggregator: str = "add"
    activation: str = "relu"
    skip: bool = False

    def out_dim(self) -> int:
        return self.hidden * self.heads if self.concat else self.hidden

    def validate(self, where: str) -> None:
        _choice(f"{where}.op", self.op, OPS)
        _choice(f"{where}.attention", self.attention, ATTENTIONS)
        _choice(f"{where}.aggregator", self.aggregator, AGGREGATORS)
        _choice(f"{where}.activation", self.activation, ACTIVATIONS)
        positive_int(f"{where}.hidden", self.hidden)
        positive_int(f"{where}.heads", self.heads)
        for name in ("concat", "skip"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{where}.{name}", f"must be true or false, got {getattr(self, name)!r}")
        if self.op == "linear" and self.heads != 1:
            raise ConfigError(f"{where}.heads", f"a linear layer has a single head, got {self.heads}")


# bounds that keep every propagation setting a sane float32 (and refuse 10**400 cleanly)
_PROP_MAX_STEPS = 1000
_PROP_MAX_VALUE = 1e6


@dataclasses.dataclass(frozen=True)
class Propagation:
    r"""K-step propagation of a node model's output (APPNP-style: the layers compute logits, then
    ``steps`` propagation steps smooth them over the graph), optionally smoothness-aware (SMP).

    Step ``k`` (see :class:`lpgnas.quant.SmoothPropagation`):
    ``F^{k+1} = Q_{k+1}(X0 / (1 + mu_k) + mu_k / (1 + mu_k) * A_hat F^k)``, ``X0 = Q_0(logits)``,
    with ``A_hat`` the GCN normalisation with self loops and ``Q_k`` the quantisers of the
    ``propagate`` component of the architecture's quantisation config (the last step's output, the
    logits, stays in full precision).

    steps: K. lam: the initial multiplier ``lambda`` (APPNP teleport ``1 / (1 + lam)``: 9 is
    teleport 0.1). eta: the dual-ascent step on the multiplier, ``mu <- clip(mu + eta (S(F) - eps),
    0, mu_max)`` with ``eps = rho * S(X0)``; ``0`` keeps ``mu = lam`` (plain APPNP); ``None`` (the
    default) is the method's own: :data:`SMP_ETA` when the propagation steps are quantised with the
    ``alpha`` method (the ``smp-*`` presets: the smoothness-aware method), else 0 (FP32 and naive QAT
    propagate as APPNP). rho, mu_max: see above.
    """

    steps: int = 10
    lam: float = 9.0
    eta: float | None = None
    rho: float = 0.5
    mu_max: float = 100.0

    def validate(self, where: str = "propagation") -> "Propagation":
        positive_int(f"{where}.steps", self.steps)
        if self.steps > _PROP_MAX_STEPS:
            raise ConfigError(f"{where}.steps", f"must be at most {_PROP_MAX_STEPS}, got {self.steps}")
        finite_number(f"{where}.lam", self.lam, ge=0, le=_PROP_MAX_VALUE)
        if self.eta is not None:
            finite_number(f"{where}.eta", self.eta, ge=0, le=_PROP_MAX_VALUE)
        finite_number(f"{where}.rho", self.rho, ge=0, le=_PROP_MAX_VALUE)
        finite_number(f"{where}.mu_max", self.mu_max, gt=0, le=_PROP_MAX_VALUE)
        if self.lam > self.mu_max:
            raise ConfigError(f"{where}.lam", f"{self.lam} exceeds mu_max {self.mu_max} (the multiplier is "
                                              "clipped to [0, mu_max])")
        return self

    def resolved_eta(self, step_method: str) -> float:
        """The dual step actually used when the steps are quantised with ``step_method``
        (``"fp32"`` when they are not)."""
        if self.eta is not None:
            return float(self.eta)
        return SMP_ETA if step_method == "alpha" else 0.0

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


SMP_ETA = 0.05  # the dual step of the smoothness-aware method (eta=None with alpha-quantised steps)


@dataclasses.dataclass(frozen=True)
class Architecture:
    """A whole GNN: layers, regularisation, readout (graph tasks) and quantisation.

    ``quant`` is a :class:`lpgnas.quant.QuantConfig` or ``None`` (full precision).
    ``propagation`` (node tasks only): a :class:`Propagation` applied to the last layer's output
    (APPNP / smoothness-aware propagation), or ``None``.
    ``search`` carries provenance (space, dataset, lambda, seed, metrics) for searched models.
    Graph tasks read out with ``readout`` (pooling), ``jk`` (pool the input and every layer, one
    scorer each) and ``norm`` (``batch``: a batch norm after every layer but ``gin`` ones, whose MLP
    holds its own); ``head`` (graph tasks only) replaces the linear scorers by an MLP of that width on
    the pooled representation (with ``jk``, the pooled representations side by side): linear, ReLU,
    dropout, linear -- Degree-Quant's and PyTorch Geometric's GIN head. Node tasks do not use these
    fields.
    """

    layers: tuple[LayerSpec, ...]
    task: str = "node"
    dropout: float = 0.5
    input_dropout: float = 0.5
    attn_dropout: float = 0.0
    norm: str = "none"
    readout: str = "sum"
    jk: bool = False
    head: int = 0
    quant: Any = None
    propagation: Propagation | None = None
    # provenance only: left out of the hash so that an Architecture (a static part of a model's
    # graph definition under jit) stays hashable although this holds a JSON object
    search: Mapping[str, Any] | None = dataclasses.field(default=None, hash=False)

    def __post_init__(self):
        object.__setattr__(self, "layers", tuple(self.layers))

    def validate(self) -> "Architecture":
        _choice("task", self.task, TASKS)
        _choice("norm", self.norm, NORMS)
        _choice("readout", self.readout, READOUTS)
        if not self.layers:
            raise ConfigError("layers", "must hold at least one layer")
        for i, layer in enumerate(self.layers):
            if not isinstance(layer, LayerSpec):
                raise ConfigError(f"layers[{i}]", f"must be a LayerSpec, got {type(layer).__name__}")
            layer.validate(f"layers[{i}]")
        for name in ("dropout", "input_dropout", "attn_dropout"):
            finite_number(name, getattr(self, name), ge=0, lt=1)
        non_negative_int("head", self.head)
        if self.head and self.task != "graph":
            raise ConfigError("head", f"an MLP head reads pooled graphs (graph tasks); got task {self.task!r}")
        if self.propagation is not None:
            if not isinstance(self.propagation, Propagation):
                raise ConfigError("propagation", f"must be a Propagation, got {type(self.propagation).__name__}")
            if self.task != "node":
                raise ConfigError("propagation", "only node tasks propagate the output (got task 'graph')")
            self.propagation.validate()
        return self

    def to_json(self) -> dict:
        """The ``lpgnas.arch/v1`` document; ``propagation`` and ``head`` are written only when set
        (documents of models without them stay as older lpgnas versions write and read them)."""
        quant = None
        if self.quant is not None:
            quant = self.quant.to_json() if hasattr(self.quant, "to_json") else dict(self.quant)
        out = {
            "schema": SCHEMA,
            "task": self.task,
            "layers": [dataclasses.asdict(layer) for layer in self.layers],
            "dropout": self.dropout,
            "input_dropout": self.input_dropout,
            "attn_dropout": self.attn_dropout,
            "norm": self.norm,
            "readout": self.readout,
            "jk": self.jk,
            "quant": quant,
            "search": dict(self.search) if self.search is not None else None,
        }
        if self.head:
            out["head"] = self.head
        if self.propagation is not None:
            out["propagation"] = self.propagation.to_json()
        return out

    @classmethod
    def from_json(cls, obj: Any, *, source: object | None = None) -> "Architecture":
        try:
            return _from_json(obj)
        except ConfigError as e:
            if source is not None and e.source is None:
                raise ConfigError(e.field, e.problem, source=source) from None
            raise


_LAYER_FIELDS = {f.name: f for f in dataclasses.fields(LayerSpec)}
_PROP_FIELDS = {f.name for f in dataclasses.fields(Propagation)}
_ARCH_KEYS = {"schema", "task", "layers", "dropout", "input_dropout", "attn_dropout", "norm", "readout", "jk",
              "head", "quant", "search", "propagation"}


def _from_json(obj: Any) -> Architecture:
    if not isinstance(obj, Mapping):
        raise ConfigError("<root>", f"must be a JSON object, got {type(obj).__name__}")
    if "schema" not in obj:
        raise ConfigError("schema", f"missing (expected {SCHEMA!r})")
    if obj["schema"] != SCHEMA:
        raise ConfigError("schema", f"unknown schema version {obj['schema']!r} (this lpgnas reads {SCHEMA!r})")
    unknown = sorted(set(obj) - _ARCH_KEYS, key=str)
    if unknown:
        raise ConfigError(unknown[0], "unknown field")
    for key in ("task", "layers"):
        if key not in obj:
            raise ConfigError(key, "missing")
    if not isinstance(obj["layers"], list):
        raise ConfigError("layers", "must be a list of layer objects")
    layers = []
    for i, raw in enumerate(obj["layers"]):
        if not isinstance(raw, Mapping):
            raise ConfigError(f"layers[{i}]", "must be an object")
        bad = sorted(set(raw) - set(_LAYER_FIELDS), key=str)
        if bad:
            raise ConfigError(f"layers[{i}].{bad[0]}", "unknown field")
        for key in ("op", "hidden"):
            if key not in raw:
                raise ConfigError(f"layers[{i}].{key}", "missing")
        layers.append(LayerSpec(**raw))
    quant = obj.get("quant")
    if quant is not None:
        from lpgnas.quant import QuantConfig  # floor 1: allowed

        if not hasattr(QuantConfig, "from_json"):  # pragma: no cover - library under construction
            raise ConfigError("quant", "this build of lpgnas cannot read quantisation configs")
        try:
            quant = QuantConfig.from_json(quant)
        except ConfigError as e:
            field = e.field if e.field == "quant" or e.field.startswith("quant.") else f"quant.{e.field}"
            raise ConfigError(field, e.problem) from None
    kwargs = {k: obj[k] for k in ("task", "dropout", "input_dropout", "attn_dropout", "norm", "readout", "jk",
                                  "head")
              if k in obj}
    if "jk" in kwargs and not isinstance(kwargs["jk"], bool):
        raise ConfigError("jk", f"must be true or false, got {kwargs['jk']!r}")
    search = obj.get("search")
    if search is not None and not isinstance(search, Mapping):
        raise ConfigError("search", "must be an object or null")
    propagation = _propagation_from_json(obj.get("propagation"))
    return Architecture(layers=tuple(layers), quant=quant, search=search, propagation=propagation,
                        **kwargs).validate()


def _propagation_from_json(raw: Any) -> Propagation | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise ConfigError("propagation", f"must be an object or null, got {type(raw).__name__}")
    bad = sorted(set(raw) - _PROP_FIELDS, key=str)
    if bad:
        raise ConfigError(f"propagation.{bad[0]}", "unknown field")
    return Propagation(**raw).validate()


def _choice(field: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(field, f"unknown value {value!r}; allowed: {', '.join(allowed)}")


def write_architecture(arch: Architecture, path: str | os.PathLike) -> None:
    """Write ``arch`` as JSON atomically (temp file in the same folder, then rename)."""
    from lpgnas._atomic import atomic_write_json

    atomic_write_json(path, arch.to_json())


def read_architecture(path: str | os.PathLike) -> Architecture:
    """Read and validate an architecture JSON file; errors name the file and the field."""
    from lpgnas._jsonio import read_json

    return Architecture.from_json(read_json(path, "architecture file"), source=path)


def baseline(model: str, *, task: str = "node", num_layers: int | None = None, hidden: int | None = None,
             heads: int | None = None, num_classes: int | None = None, readout: str = "sum", jk: bool = True,
             head: int = 0) -> Architecture:
    """The FP32 baseline architectures: ``gcn``, ``gat``, ``gin``, ``sage``, ``appnp``.

    Node tasks follow the published set-ups (GCN: 2 layers of 16, dropout 0.5; GAT: 8 heads x 8 then
    one output head, dropout 0.6 on inputs and attention; GIN/SAGE: 2 layers; APPNP: an MLP of 2
    ``linear`` layers (hidden 64, dropout 0.5) whose logits are propagated K = 10 steps with teleport
    0.1, i.e. :class:`Propagation` ``(steps=10, lam=9)``). Graph tasks use GIN's
    set-up: 5 layers (incl. input) with batch norm and a ``readout`` (default GIN's sum) of every
    layer (jumping knowledge; ``jk=False`` pools the last layer only), each pooled representation
    scored by a linear layer, or with ``head > 0`` all of them by one MLP of that width (Degree-Quant's
    GIN: ``num_layers=5, jk=False, head=64``); ``jk`` and ``head`` are for graph tasks only;
    ``appnp`` is node-level only. The last layer's width is ``num_classes`` for node tasks (it is the
    classifier).
    """
    if model not in BASELINES:
        raise ConfigError("model", f"unknown model {model!r}; allowed: {', '.join(BASELINES)}")
    if model in NODE_ONLY_BASELINES and task != "node":
        raise ConfigError("model", f"{model!r} is a node-classification model (it propagates node outputs); "
                                   f"use gcn, gat, gin or sage for {task}-level tasks")
    if task == "graph":
        n = num_layers or 4
        h = hidden or 64
        layers = tuple(LayerSpec(op=model, hidden=h, heads=1, attention=_default_attention(model),
                                 aggregator="mean" if model == "sage" else "add", activation="relu")
                       for _ in range(n))
        return Architecture(layers=layers, task="graph", dropout=0.5, input_dropout=0.0, norm="batch",
                            readout=readout, jk=jk, head=head).validate()
    if head:
        raise ConfigError("head", f"an MLP head reads pooled graphs (graph tasks); got task {task!r}")
    if num_classes is None:
        raise ConfigError("num_classes", "needed to build a node-classification baseline")
    n = num_layers or 2
    if model == "appnp":
        h = hidden or 64
        layers = [LayerSpec(op="linear", hidden=h, attention="const", activation="relu") for _ in range(n - 1)]
        layers.append(LayerSpec(op="linear", hidden=num_classes, attention="const", activation="none"))
        return Architecture(layers=tuple(layers), dropout=0.5, input_dropout=0.5,
                            propagation=Propagation(steps=10, lam=9.0)).validate()
    if model == "gat":
        h, k = hidden or 8, heads or 8
        layers = [LayerSpec(op="gat", hidden=h, heads=k, concat=True, attention="gat", activation="elu")
                  for _ in range(n - 1)]
        layers.append(LayerSpec(op="gat", hidden=num_classes, heads=1, concat=False, attention="gat",
                                activation="none"))
        return Architecture(layers=tuple(layers), dropout=0.6, input_dropout=0.6, attn_dropout=0.6).validate()
    h = hidden or (16 if model == "gcn" else 64)
    agg = "mean" if model == "sage" else "add"
    att = _default_attention(model)
    layers = [LayerSpec(op=model, hidden=h, attention=att, aggregator=agg, activation="relu") for _ in range(n - 1)]
    layers.append(LayerSpec(op=model, hidden=num_classes, attention=att, aggregator=agg, activation="none"))
    return Architecture(layers=tuple(layers), dropout=0.5, input_dropout=0.5).validate()


def _default_attention(model: str) -> str:
    return {"gcn": "gcn", "gat": "gat"}.get(model, "const")


BASELINES = ("gcn", "gat", "gin", "sage", "appnp")
NODE_ONLY_BASELINES = ("appnp",)
