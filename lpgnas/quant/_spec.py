"""Quantisation configuration: :class:`QuantSpec` (one component), :class:`QuantConfig` (a model),
the named presets and the validation that turns a bad value into a :class:`ConfigError`.

Conventions:

* ``bits`` is 1..32; 32 means full precision for the uniform methods (the quantiser is the identity).
* ``signed=True`` means symmetric signed codes ``[-2^(b-1), 2^(b-1)-1]`` with zero point 0;
  ``signed=False`` means asymmetric unsigned codes ``[0, 2^b-1]`` with a zero point (so negative
  values are still representable). At 1 bit the signed codes are ``{-1, 0}``: no positive value
  survives (and symmetric affine scaling rounds every value to 0), so use ``binary`` for signed
  1-bit data; the search spaces do (:meth:`lpgnas.search_spaces.QuantChoices.options`).
* ``granularity``: ``"tensor"`` (one scale), ``"row"`` (one per node/edge, or per input channel of a
  weight ``[in, out]``), ``"column"`` (one per feature channel / output channel of a weight).
* ``observer``/``backward`` left ``None`` take the method's default (see :data:`METHOD_DEFAULTS`).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import numpy as np

from lpgnas.errors import ConfigError
from lpgnas.quant._core import BACKWARDS, GRANULARITIES
from lpgnas.quant._observers import OBSERVERS

__all__ = [
    "METHODS",
    "COMPONENTS",
    "KINDS",
    "METHOD_DEFAULTS",
    "QuantSpec",
    "Override",
    "DegreeBits",
    "DQSettings",
    "QuantConfig",
    "PRESETS",
    "SGQUANT_ALLOWED_BITS",
    "sgquant_bits_for_degree",
    "dq_default_percentile",
]

METHODS = ("fp32", "fixed", "binary", "ternary", "affine", "dq", "sgquant", "lsq", "alpha", "a2q")
COMPONENTS = (
    "weight",
    "input",
    "linear",
    "edge_weight",
    "attention_logit",
    "attention",
    "message",
    "aggregate",
    "output",
    "propagate",  # the K propagation steps of an Architecture.propagation block (layer index = len(layers))
)
KINDS = ("weight", "node", "edge")
SGQUANT_ALLOWED_BITS = (1, 2, 4, 8, 16, 32)
MAX_SAMPLES = 4096  # default sub-sample size of the sampling statistics (QuantSpec.max_samples)
MAX_SAMPLES_LIMIT = 1 << 24

# method -> (default bits, default activation observer, default backward)
METHOD_DEFAULTS: dict[str, tuple[int, str | None, str]] = {
    "fp32": (32, None, "ste"),
    "fixed": (8, None, "ste"),
    "binary": (1, None, "ste"),
    "ternary": (2, None, "ste"),
    "affine": (8, "ema", "ste"),
    "dq": (8, "percentile", "ste"),
    "sgquant": (8, "rowavg", "ste"),
    "lsq": (8, None, "clip"),
    "alpha": (4, "ema", "clip"),
    "a2q": (4, None, "clip"),
}
_OBSERVER_METHODS = ("affine", "dq", "sgquant", "alpha")


def dq_default_percentile(bits: int) -> float:
    """Degree-Quant's percentile: 0.001 at 8 bits and above, 0.01 below."""
    return 0.001 if bits >= 8 else 0.01


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _is_num(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


def _check_choice(field: str, value, choices) -> None:
    if value not in choices:
        raise ConfigError(field, f"{value!r} is not one of {', '.join(map(str, choices))}")


def _check_bits(field: str, value) -> None:
    if not _is_int(value):
        raise ConfigError(field, f"must be an integer number of bits, got {value!r}")
    if not 1 <= int(value) <= 32:
        raise ConfigError(field, f"must be between 1 and 32, got {value}")


@dataclasses.dataclass(frozen=True)
class QuantSpec:
    """How one tensor is quantised.

    method: one of :data:`METHODS`. bits: 1..32 (``None`` -> the method default; binary is 1 bit,
    ternary 2). signed / granularity / observer / backward: see the module docstring.
    frac_bits: fixed point fraction bits (default ``bits // 2``; integer bits = ``bits - frac_bits``).
    percentile: ``dq``/percentile observer tail mass (default 0.001 for >= 8 bits, else 0.01).
    momentum: EMA momentum of the running observers. min_bits / max_bits: A2Q bit-width bounds.
    local_gradient: A2Q trains node/edge step and bits with the local quantisation error.
    nns_buckets: A2Q nearest-neighbour search per in-degree bucket (0 = one global pool).
    max_samples: sub-sample size of the sampling statistics (``percentile`` observer; per-tensor
      ``alpha`` grid search): at most this many elements per step, drawn deterministically from the
      step key; smaller tensors are used whole. Left out of :meth:`to_json` at its default.
    """

    method: str = "fp32"
    bits: int | None = None
    signed: bool = True
    granularity: str = "tensor"
    observer: str | None = None
    backward: str | None = None
    frac_bits: int | None = None
    percentile: float | None = None
    momentum: float = 0.01
    min_bits: float = 1.0
    max_bits: float = 8.0
    local_gradient: bool = True
    nns_buckets: int = 0
    max_samples: int = MAX_SAMPLES

    def __post_init__(self):
        _check_choice("method", self.method, METHODS)
        if self.bits is None:
            object.__setattr__(self, "bits", METHOD_DEFAULTS[self.method][0])
        _check_bits("bits", self.bits)
        object.__setattr__(self, "bits", int(self.bits))
        if not isinstance(self.signed, bool):
            raise ConfigError("signed", f"must be true or false, got {self.signed!r}")
        _check_choice("granularity", self.granularity, GRANULARITIES)
        if self.observer is not None:
            _check_choice("observer", self.observer, OBSERVERS)
            if self.observer in ("percentile", "rowavg") and self.granularity != "tensor":
                raise ConfigError(
                    "observer", f"{self.observer!r} needs granularity 'tensor', not {self.granularity!r}"
                )
        if self.backward is not None:
            _check_choice("backward", self.backward, BACKWARDS)
        if self.method == "binary" and self.bits != 1:
            raise ConfigError("bits", f"binary quantisation is 1 bit, got {self.bits}")
        if self.method == "ternary" and self.bits != 2:
            raise ConfigError("bits", f"ternary quantisation is 2 bits, got {self.bits}")
        if self.method in ("dq", "sgquant") and self.granularity != "tensor" and self.observer is None:
            raise ConfigError("granularity", f"method {self.method!r} observes whole tensors; use 'tensor'")
        if self.frac_bits is not None:
            if not _is_int(self.frac_bits) or not 0 <= self.frac_bits <= 32:
                raise ConfigError("frac_bits", f"must be an integer in 0..32, got {self.frac_bits!r}")
        if self.method == "fixed" and self.bits > 24:
            raise ConfigError("bits", "fixed point supports at most 24 bits (float32 mantissa)")
        if self.percentile is not None and not (_is_num(self.percentile) and 0.0 <= self.percentile < 0.5):
            raise ConfigError("percentile", f"must be in [0, 0.5), got {self.percentile!r}")
        if not (_is_num(self.momentum) and 0.0 < self.momentum <= 1.0):
            raise ConfigError("momentum", f"must be in (0, 1], got {self.momentum!r}")
        for name in ("min_bits", "max_bits"):
            v = getattr(self, name)
            if not (_is_num(v) and 1.0 <= v <= 16.0):
                raise ConfigError(name, f"must be a number in [1, 16], got {v!r}")
        if self.min_bits > self.max_bits:
            raise ConfigError("min_bits", f"{self.min_bits} exceeds max_bits {self.max_bits}")
        if not isinstance(self.local_gradient, bool):
            raise ConfigError("local_gradient", f"must be true or false, got {self.local_gradient!r}")
        if not (_is_int(self.nns_buckets) and 0 <= self.nns_buckets <= 32):
            raise ConfigError("nns_buckets", f"must be an integer in 0..32, got {self.nns_buckets!r}")
        if not (_is_int(self.max_samples) and 1 <= self.max_samples <= MAX_SAMPLES_LIMIT):
            raise ConfigError(
                "max_samples", f"must be an integer in 1..{MAX_SAMPLES_LIMIT}, got {self.max_samples!r}"
            )
        object.__setattr__(self, "max_samples", int(self.max_samples))

    # -- derived ------------------------------------------------------------------------------
    @property
    def is_fp32(self) -> bool:
        """True when this spec leaves the tensor in full precision."""
        return self.method == "fp32" or (self.bits >= 32 and self.method != "a2q")

    def resolved_observer(self, kind: str) -> str:
        """The observer actually used for a tensor of ``kind``: weights and per-row activations
        use the current range (no running statistic)."""
        if kind == "weight" or self.granularity == "row":
            return "current"
        if self.observer is not None:
            return self.observer
        default = METHOD_DEFAULTS[self.method][1]
        return default if default is not None else "current"

    def resolved_backward(self) -> str:
        return self.backward if self.backward is not None else METHOD_DEFAULTS[self.method][2]

    def resolved_percentile(self) -> float:
        return self.percentile if self.percentile is not None else dq_default_percentile(self.bits)

    def resolved_frac_bits(self) -> int:
        return self.frac_bits if self.frac_bits is not None else self.bits // 2

    def replace(self, **changes) -> QuantSpec:
        return dataclasses.replace(self, **changes)

    def to_json(self) -> dict:
        out = dataclasses.asdict(self)
        if self.max_samples == MAX_SAMPLES:  # newer field: omitted at its default (older readers)
            del out["max_samples"]
        return out

    @classmethod
    def from_json(cls, data: Any, *, field: str = "spec", source=None) -> QuantSpec:
        if isinstance(data, str):
            data = {"method": data}
        if not isinstance(data, dict):
            raise ConfigError(field, f"must be an object, got {type(data).__name__}", source=source)
        names = {f.name for f in dataclasses.fields(cls)}
        for k in data:
            if k not in names:
                raise ConfigError(f"{field}.{k}", "unknown field", source=source)
        try:
            return cls(**data)
        except ConfigError as e:
            raise ConfigError(f"{field}.{e.field}", e.problem, source=source) from None


@dataclasses.dataclass(frozen=True)
class Override:
    """Use ``spec`` for ``component`` of ``layer`` (``None`` = every layer / every component).
    The most specific matching override wins; among equally specific ones, the later one.

    ``degree_bits``: topology-aware bits of this override's rows (SGQuant's component x layer x
    in-degree granularity); ``None`` falls back to the config's :attr:`QuantConfig.degree_bits`.
    """

    spec: QuantSpec
    layer: int | None = None
    component: str | None = None
    degree_bits: "DegreeBits | None" = None

    def __post_init__(self):
        if not isinstance(self.spec, QuantSpec):
            raise ConfigError("spec", f"must be a QuantSpec, got {type(self.spec).__name__}")
        if self.layer is not None and not (_is_int(self.layer) and self.layer >= 0):
            raise ConfigError("layer", f"must be a non-negative integer or null, got {self.layer!r}")
        if self.component is not None:
            _check_choice("component", self.component, COMPONENTS)
        if self.degree_bits is not None and not isinstance(self.degree_bits, DegreeBits):
            raise ConfigError("degree_bits", f"must be a DegreeBits, got {type(self.degree_bits).__name__}")

    def matches(self, layer: int, component: str) -> bool:
        return (self.layer is None or self.layer == layer) and (
            self.component is None or self.component == component
        )

    @property
    def specificity(self) -> int:
        return (self.layer is not None) + (self.component is not None)

    def to_json(self) -> dict:
        out = {"layer": self.layer, "component": self.component, "spec": self.spec.to_json()}
        if self.degree_bits is not None:
            out["degree_bits"] = self.degree_bits.to_json()
        return out


def sgquant_bits_for_degree(degree, allowed=SGQUANT_ALLOWED_BITS) -> np.ndarray:
    """SGQuant's topology-aware bits: 32 for ``d <= 1``, else ``max(2, 32 / sqrt(d))`` snapped down
    to the largest allowed value not above it. Works elementwise on integer arrays."""
    d = np.asarray(degree, dtype=np.float64)
    raw = np.maximum(2.0, 32.0 / np.sqrt(np.maximum(d, 1.0)))
    allowed_arr = np.asarray(sorted(allowed), dtype=np.float64)
    idx = np.searchsorted(allowed_arr, raw + 1e-9, side="right") - 1
    snapped = allowed_arr[np.clip(idx, 0, len(allowed_arr) - 1)]
    return np.where(d <= 1, 32, snapped).astype(np.int32)


@dataclasses.dataclass(frozen=True)
class DegreeBits:
    """Topology buckets: in-degree ``d`` gets ``bits[i]`` for the first ``i`` with
    ``d <= thresholds[i]``, and ``bits[-1]`` above every threshold."""

    thresholds: tuple[int, ...]
    bits: tuple[int, ...]

    def __post_init__(self):
        object.__setattr__(self, "thresholds", tuple(self.thresholds))
        object.__setattr__(self, "bits", tuple(self.bits))
        if len(self.bits) != len(self.thresholds) + 1:
            raise ConfigError("degree_bits.bits", "needs exactly one more entry than thresholds")
        prev = -1
        for t in self.thresholds:
            if not _is_int(t) or t <= prev:
                raise ConfigError("degree_bits.thresholds", "must be increasing non-negative integers")
            prev = t
        for b in self.bits:
            _check_bits("degree_bits.bits", b)

    @classmethod
    def sgquant(cls, allowed=SGQUANT_ALLOWED_BITS, max_degree: int = 4096) -> DegreeBits:
        """The table of :func:`sgquant_bits_for_degree` as buckets."""
        d = np.arange(max_degree + 1)
        b = sgquant_bits_for_degree(d, allowed)
        change = np.nonzero(b[1:] != b[:-1])[0]
        return cls(tuple(int(d[i]) for i in change), tuple(int(b[i]) for i in change) + (int(b[-1]),))

    def lookup(self, degree):
        """Bits per degree (``int32`` array, jit-friendly)."""
        import jax.numpy as jnp

        d = jnp.asarray(degree).astype(jnp.int32)
        thr = jnp.asarray(self.thresholds, jnp.int32).reshape((1,) * d.ndim + (len(self.thresholds),))
        bits = jnp.asarray(self.bits, jnp.int32)
        # searchsorted(thr, d, side="left") == the number of thresholds below d: one fused compare
        # and count over a handful of thresholds (searchsorted is a loop per call on CPU)
        return bits[jnp.sum((d[..., None] > thr).astype(jnp.int32), axis=-1)]

    def to_json(self) -> dict:
        return {"thresholds": list(self.thresholds), "bits": list(self.bits)}


@dataclasses.dataclass(frozen=True)
class DQSettings:
    """Degree-Quant protective masking: ``p(d) = p_min + (p_max - p_min) * CDF_in-degree(d)``."""

    p_min: float = 0.0
    p_max: float = 0.1

    def __post_init__(self):
        for name in ("p_min", "p_max"):
            v = getattr(self, name)
            if not (_is_num(v) and 0.0 <= v <= 1.0):
                raise ConfigError(f"dq.{name}", f"must be a probability in [0, 1], got {v!r}")
        if self.p_min > self.p_max:
            raise ConfigError("dq.p_min", f"{self.p_min} exceeds p_max {self.p_max}")

    def to_json(self) -> dict:
        return {"p_min": self.p_min, "p_max": self.p_max}


def _check_component(component: str) -> None:
    _check_choice("component", component, COMPONENTS)


def _degree_bits_from_json(db: Any, field: str, source: str | None) -> DegreeBits | None:
    """A ``{"thresholds": [...], "bits": [...]}`` object (or null), errors naming ``field``."""
    if db is None:
        return None
    if not isinstance(db, dict) or set(db) != {"thresholds", "bits"}:
        raise ConfigError(field, "must be {'thresholds': [...], 'bits': [...]}", source=source)
    for key in ("thresholds", "bits"):
        if not isinstance(db[key], list):
            raise ConfigError(f"{field}.{key}", f"must be a list, got {db[key]!r}", source=source)
    try:
        return DegreeBits(tuple(db["thresholds"]), tuple(db["bits"]))
    except ConfigError as e:
        raise ConfigError(f"{field}.{e.field.split('.', 1)[-1]}", e.problem, source=source) from None


@dataclasses.dataclass(frozen=True)
class QuantConfig:
    """The quantisation of a whole model.

    default: spec of every component without an override. weight: default spec of the ``"weight"``
    component (``None`` -> ``default``). overrides: per-layer / per-component specs (see
    :class:`Override`). degree_bits: topology-aware bits for node/edge tensors of the uniform
    methods (effective bits per row = ``min(spec.bits, degree_bits(d))``; rows at 32 bits stay in
    full precision). dq: Degree-Quant mask settings (the trainer draws the mask with
    :func:`lpgnas.quant.dq_protect_mask`). name: the preset name, informational.
    """

    default: QuantSpec = dataclasses.field(default_factory=QuantSpec)
    weight: QuantSpec | None = None
    overrides: tuple[Override, ...] = ()
    degree_bits: DegreeBits | None = None
    dq: DQSettings | None = None
    name: str = ""

    def __post_init__(self):
        object.__setattr__(self, "overrides", tuple(self.overrides))
        if not isinstance(self.default, QuantSpec):
            raise ConfigError("default", "must be a QuantSpec")
        if self.weight is not None and not isinstance(self.weight, QuantSpec):
            raise ConfigError("weight", "must be a QuantSpec or None")
        for i, o in enumerate(self.overrides):
            if not isinstance(o, Override):
                raise ConfigError(f"overrides[{i}]", "must be an Override")

    # -- lookup -------------------------------------------------------------------------------
    def spec(self, layer: int, component: str) -> QuantSpec:
        """The spec of ``component`` in ``layer`` (most specific override wins)."""
        _check_component(component)
        base = self.weight if (component == "weight" and self.weight is not None) else self.default
        matching = [
            (o.specificity, i, o) for i, o in enumerate(self.overrides) if o.matches(layer, component)
        ]
        if not matching:
            return base
        return max(matching, key=lambda t: (t[0], t[1]))[2].spec

    def degree_table(self, layer: int, component: str) -> DegreeBits | None:
        """The in-degree bit table of ``component`` in ``layer``: the winning override's own table,
        else :attr:`degree_bits` (``None``: no topology-aware bits)."""
        _check_component(component)
        matching = [
            (o.specificity, i, o) for i, o in enumerate(self.overrides) if o.matches(layer, component)
        ]
        if matching:
            winner = max(matching, key=lambda t: (t[0], t[1]))[2]
            if winner.degree_bits is not None:
                return winner.degree_bits
        return self.degree_bits

    @property
    def is_fp32(self) -> bool:
        specs = [self.default, self.weight] + [o.spec for o in self.overrides]
        return all(s is None or s.is_fp32 for s in specs)

    def with_overrides(self, *overrides: Override) -> QuantConfig:
        return dataclasses.replace(self, overrides=self.overrides + tuple(overrides))

    def replace(self, **changes) -> QuantConfig:
        return dataclasses.replace(self, **changes)

    # -- json ---------------------------------------------------------------------------------
    def to_json(self) -> dict:
        """A JSON-serialisable dict; :meth:`from_json` restores an equal config."""
        return {
            "name": self.name,
            "default": self.default.to_json(),
            "weight": None if self.weight is None else self.weight.to_json(),
            "overrides": [o.to_json() for o in self.overrides],
            "degree_bits": None if self.degree_bits is None else self.degree_bits.to_json(),
            "dq": None if self.dq is None else self.dq.to_json(),
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json(), sort_keys=True)

    @classmethod
    def from_json(cls, data: Any, *, source=None) -> QuantConfig:
        """Parse a dict (or a JSON string, or a preset name) into a config; a bad value raises
        :class:`ConfigError` naming the field (e.g. ``overrides[1].spec.bits``)."""
        if isinstance(data, str):
            stripped = data.strip()
            if stripped in PRESETS:
                return cls.preset(stripped)
            try:
                data = json.loads(stripped)
            except json.JSONDecodeError as e:
                raise ConfigError("quant", f"not valid JSON or a preset name: {e}", source=source) from None
        if not isinstance(data, dict):
            raise ConfigError("quant", f"must be an object, got {type(data).__name__}", source=source)
        known = {"name", "default", "weight", "overrides", "degree_bits", "dq"}
        for k in data:
            if k not in known:
                raise ConfigError(k, "unknown field", source=source)
        default = QuantSpec.from_json(data.get("default", {}), field="default", source=source)
        weight = data.get("weight")
        weight = None if weight is None else QuantSpec.from_json(weight, field="weight", source=source)
        raw_overrides = data.get("overrides")
        raw_overrides = [] if raw_overrides is None else raw_overrides
        if not isinstance(raw_overrides, list):
            raise ConfigError("overrides", "must be a list", source=source)
        overrides = []
        for i, o in enumerate(raw_overrides):
            f = f"overrides[{i}]"
            if not isinstance(o, dict):
                raise ConfigError(f, "must be an object", source=source)
            for k in o:
                if k not in ("layer", "component", "spec", "degree_bits"):
                    raise ConfigError(f"{f}.{k}", "unknown field", source=source)
            spec = QuantSpec.from_json(o.get("spec", {}), field=f"{f}.spec", source=source)
            odb = _degree_bits_from_json(o.get("degree_bits"), f"{f}.degree_bits", source)
            try:
                overrides.append(Override(spec, o.get("layer"), o.get("component"), odb))
            except ConfigError as e:
                raise ConfigError(f"{f}.{e.field}", e.problem, source=source) from None
        db = _degree_bits_from_json(data.get("degree_bits"), "degree_bits", source)
        dq = data.get("dq")
        if dq is not None:
            if not isinstance(dq, dict) or not set(dq) <= {"p_min", "p_max"}:
                raise ConfigError("dq", "must be {'p_min': ..., 'p_max': ...}", source=source)
            try:
                dq = DQSettings(**dq)
            except ConfigError as e:
                raise ConfigError(e.field, e.problem, source=source) from None
        name = data.get("name", "")
        if not isinstance(name, str):
            raise ConfigError("name", "must be a string", source=source)
        return cls(default, weight, tuple(overrides), db, dq, name)

    @classmethod
    def loads(cls, text: str, *, source=None) -> QuantConfig:
        return cls.from_json(text, source=source)

    # -- presets ------------------------------------------------------------------------------
    @classmethod
    def preset(cls, name: str) -> QuantConfig:
        """One of the named schemes in :data:`PRESETS`."""
        if name not in _PRESET_BUILDERS:
            raise ConfigError("preset", f"{name!r} is not one of {', '.join(PRESETS)}")
        return _PRESET_BUILDERS[name]()


# ---------------------------------------------------------------------------------------------
# presets


# Presets are tuned for full-batch node training (one optimiser step per epoch, a few hundred steps):
# running ranges use EMA momentum 0.1 (0.01 lags the growing activations for most of such a run),
# and the input features are quantised per row (a row-normalised bag-of-words row holds a single
# distinct non-zero value, which a per-row scale keeps exact; a per-tensor or percentile range
# rounds most of them to zero at 4 bits).
_PRESET_MOMENTUM = 0.1


def _act(method: str, bits: int, **kw) -> QuantSpec:
    kw.setdefault("momentum", _PRESET_MOMENTUM)
    return QuantSpec(method, bits, signed=False, **kw)


def _w(method: str, bits: int, granularity: str = "tensor", **kw) -> QuantSpec:
    return QuantSpec(method, bits, signed=True, granularity=granularity, **kw)


def _row_input(method: str, bits: int) -> Override:
    return Override(QuantSpec(method, bits, signed=False, granularity="row"), component="input")


def _uniform(name: str, wbits: int, abits: int, granularity: str) -> QuantConfig:
    return QuantConfig(default=_act("affine", abits), weight=_w("affine", wbits, granularity),
                       overrides=(_row_input("affine", abits),), name=name)


def _dq(name: str, bits: int, p_min: float, p_max: float) -> QuantConfig:
    return QuantConfig(
        default=_act("dq", bits),
        weight=_w("affine", bits),
        overrides=(_row_input("affine", bits),),
        dq=DQSettings(p_min, p_max),
        name=name,
    )


def _a2q() -> QuantConfig:
    """A2Q: learned per-node step and bits on every node/edge tensor (4 bits at the start, 2..8:
    a signed 1-bit code set ``{-1, 0}`` holds no positive value), per-channel weights. Layer inputs
    (bag-of-words rows, post-activation features) use unsigned codes starting at 2 bits (1..8): a
    row-normalised bag-of-words row holds one distinct non-zero value, exact at 1 bit, so the memory
    penalty takes those bits first. Small edge tensors stay 8-bit affine."""
    small = (
        Override(_act("affine", 8), component="edge_weight"),
        Override(_act("affine", 8), component="attention"),
        Override(QuantSpec("affine", 8, signed=True), component="attention_logit"),
        Override(QuantSpec("a2q", 2, signed=False, min_bits=1.0, max_bits=8.0), component="input"),
    )
    return QuantConfig(
        default=QuantSpec("a2q", 4, signed=True, min_bits=2.0, max_bits=8.0),
        weight=QuantSpec("a2q", 4, signed=True, granularity="column", min_bits=2.0, max_bits=8.0),
        overrides=small,
        name="a2q",
    )


def _sgquant() -> QuantConfig:
    return QuantConfig(
        default=_act("sgquant", 8, observer="ema"),
        weight=_w("affine", 8),
        overrides=(Override(_act("sgquant", 4, observer="ema"), component="attention"), _row_input("affine", 8)),
        degree_bits=DegreeBits.sgquant(),
        name="sgquant",
    )


def _smp(name: str, bits: int) -> QuantConfig:
    """Smoothness-aware low-bit propagation: learned-range (alpha) quantisers everywhere, the
    propagation steps included (``propagate``; alpha there turns on the dual ascent of an
    ``Architecture.propagation`` left at ``eta=None``)."""
    return QuantConfig(default=_act("alpha", bits), weight=_w("alpha", bits),
                       overrides=(_row_input("affine", bits), Override(_act("alpha", bits), component="propagate")),
                       name=name)


_PRESET_BUILDERS = {
    "fp32": lambda: QuantConfig(name="fp32"),
    "int8": lambda: _uniform("int8", 8, 8, "tensor"),
    "int4": lambda: _uniform("int4", 4, 4, "tensor"),
    "int2": lambda: _uniform("int2", 2, 2, "tensor"),  # naive W2A2 QAT (the propagation steps: plain APPNP)
    "w8a8": lambda: _uniform("w8a8", 8, 8, "column"),
    "w4a8": lambda: _uniform("w4a8", 4, 8, "column"),
    "w4a4": lambda: _uniform("w4a4", 4, 4, "column"),
    "dq-int8": lambda: _dq("dq-int8", 8, 0.0, 0.1),
    "dq-int4": lambda: _dq("dq-int4", 4, 0.1, 0.2),
    "a2q": _a2q,
    "sgquant": _sgquant,
    "smp-int2": lambda: _smp("smp-int2", 2),
    "smp-int4": lambda: _smp("smp-int4", 4),
}
PRESETS: tuple[str, ...] = tuple(_PRESET_BUILDERS)
