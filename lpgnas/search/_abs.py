"""The ``abs`` tune backend: SGQuant's automatic bit selection (ABS) on Ray Tune.

A *fixed* topology (the ``fixed:`` block of a search space, e.g. ``search_spaces/sgquant.yaml``:
a 2-layer GCN) is trained once in full precision; every trial samples the bits of the space's
quantised components, builds the quantised model, fine-tunes it from the FP32 weights and reports
its validation accuracy and exact costs. The searcher (Optuna TPE or NSGA-II, multi-objective:
``val_acc`` max, ``buffer_bits`` min) proposes the bits; ASHA stops unpromising fine-tunes early.

Sampled parameters (:func:`abs_choices`), ``i`` the layer:

* ``l{i}.{component}`` -- the bits of every quantised component (weights: one per layer);
* ``l{i}.{component}.format`` -- its number format, only when the space lists several;
* ``deg.b{k}`` -- the topology-aware bits of in-degree bucket ``k`` (only with ``degree_buckets``),
  one table shared by every bucketed component (``bucket_bits="shared"``, the default: few
  dimensions, so TPE gets somewhere in tens of trials); or, with ``bucket_bits="component"``,
  ``l{i}.{component}.b{k}`` -- the bits of bucket ``k`` of each bucketed component in each layer
  (SGQuant's full component x layer x topology granularity: one
  :class:`~lpgnas.quant.DegreeBits` table per override), replacing ``l{i}.{component}`` and ``deg.b{k}``.

The search starts from a few uniform-precision points (:func:`warm_start_points`).

A per-node / per-edge row of in-degree bucket ``k`` is stored at ``min(l{i}.{component}, deg.b{k})``
bits (:class:`lpgnas.quant.QuantConfig` applies one :class:`~lpgnas.quant.DegreeBits` table to all
quantised node/edge tensors of the uniform formats: effective bits = ``min(spec bits, table)``); a
component at 32 bits stays in full precision in every bucket. The input features are quantised per
row (unsigned, one scale per node): a row-normalised bag-of-words row holds one distinct non-zero
value, which a 1-bit per-row code keeps exactly.

Every report of a trial (one per chunk of fine-tuning epochs) carries the complete record: the
accuracies of the validation-selected epoch so far and the (fixed) costs, so a trial that ASHA
stops early is still a valid, recorded point; its last report is its final one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import socket
import sys
import tempfile
import time
from typing import Any, Callable, ClassVar, Mapping, Sequence

import numpy as np

from lpgnas.arch import Architecture
from lpgnas.errors import ConfigError
from lpgnas.search._trials import TrialResult
from lpgnas.search_spaces import QuantChoices, SearchSpace, load_space

__all__ = [
    "AbsBackend",
    "make_abs_backend",
    "SAMPLERS",
    "FIXED_BASELINES",
    "FINETUNE_LR_FACTOR",
    "OBJECTIVES",
    "BUCKET_BITS",
    "abs_choices",
    "abs_quant_config",
    "abs_architecture",
    "bit_summary",
    "warm_start_points",
]

SAMPLERS = ("tpe", "nsga2")
FIXED_BASELINES = ("w8a8", "w4a8", "w4a4")
FINETUNE_LR_FACTOR = 1.0
"""Fine-tuning learning rate = this x the FP32 learning rate of the model (``TRAIN_DEFAULTS``).
Chosen on validation accuracy: 50 fine-tuning epochs of four bit assignments (8-bit activations,
4-bit activations with 4- or 2-bit weights, degree buckets 8/8/4/2) on Cora and CiteSeer GCN, mean
validation accuracy 63.6% at x1 (lr 0.01), 62.6% at x0.5, 62.3% at x0.2; the 8-bit assignment was
within 0.8 points at every rate."""
FP32_DIR = "fp32"
OBJECTIVES = (("val_acc", "max"), ("buffer_bits", "min"))
"""The searcher's objectives: validation accuracy and feature memory."""
_ACT_MOMENTUM = 0.1  # as the presets: EMA ranges that keep up with full-batch training


# --------------------------------------------------------------------------------------------------
# sampled parameters -> QuantConfig


def _skipped(space: SearchSpace, layer: int, component: str) -> bool:
    """Node tasks never quantise the logits (the last layer's ``output``)."""
    return space.task == "node" and component == "output" and layer == space.num_layers[0] - 1


BUCKET_BITS = ("shared", "component")


def _per_component(space: SearchSpace, q, bucket_bits: str) -> bool:
    """Whether component ``q`` gets its own bits per in-degree bucket."""
    if bucket_bits not in BUCKET_BITS:
        raise ConfigError("--bucket-bits", f"unknown value {bucket_bits!r}; allowed: {', '.join(BUCKET_BITS)}")
    return bucket_bits == "component" and bool(space.degree_buckets) and q.bucketed


def abs_choices(space: SearchSpace, bucket_bits: str = "shared") -> dict[str, tuple]:
    """The sampled parameters of ``space`` and their candidate values (see the module docstring)."""
    _check_space(space)
    out: dict[str, tuple] = {}
    for i in range(space.num_layers[0]):
        for q in space.quant:
            if _skipped(space, i, q.component):
                continue
            if _per_component(space, q, bucket_bits):
                for k in range(space.num_buckets):
                    out[f"l{i}.{q.component}.b{k}"] = tuple(sorted(q.bits))
            else:
                out[f"l{i}.{q.component}"] = tuple(sorted(q.bits))
            if len(q.formats) > 1:
                out[f"l{i}.{q.component}.format"] = tuple(q.formats)
    shared = [q for q in space.quant if q.bucketed and not _per_component(space, q, bucket_bits)]
    if space.degree_buckets and shared:
        table_bits = sorted({b for q in shared for b in q.bits})
        for k in range(space.num_buckets):
            out[f"deg.b{k}"] = tuple(table_bits)
    return out


def _check_params(space: SearchSpace, params: Mapping[str, Any], bucket_bits: str = "shared") -> None:
    choices = abs_choices(space, bucket_bits)
    missing = [k for k in choices if k not in params]
    if missing:
        raise ConfigError("config", f"missing sampled parameters: {', '.join(missing)}")
    for k, allowed in choices.items():
        if params[k] not in allowed:
            raise ConfigError(f"config.{k}", f"{params[k]!r} is not one of {', '.join(map(str, allowed))}")


def _component_spec(space: SearchSpace, component: str, bits: int, fmt: str):
    """The :class:`~lpgnas.quant.QuantSpec` of one sampled component: the search candidate's spec
    (``lpgnas.supernet``'s ``option_spec``, shared with the differentiable search), with affine
    weights per output channel, affine input features per row (node) and running activation ranges
    at the presets' EMA momentum."""
    from lpgnas.supernet._mixed import COMPONENT_KINDS, option_spec

    option = QuantChoices(component, (int(bits),), (fmt,)).options()[0]
    spec = option_spec(option, component)
    if spec.is_fp32:
        return spec
    if COMPONENT_KINDS[component] == "weight":
        return spec.replace(granularity="column") if spec.method == "affine" else spec
    if component == "input" and spec.method == "affine":
        return spec.replace(granularity="row")
    return spec.replace(momentum=_ACT_MOMENTUM)


def abs_quant_config(space: SearchSpace, params: Mapping[str, Any], bucket_bits: str = "shared"):
    """The :class:`~lpgnas.quant.QuantConfig` of one sampled configuration (``None`` when every
    component is at 32 bits: the FP32 model)."""
    from lpgnas import quant as Q

    _check_params(space, params, bucket_bits)
    overrides = []
    for i in range(space.num_layers[0]):
        for q in space.quant:
            if _skipped(space, i, q.component):
                continue
            fmt = params.get(f"l{i}.{q.component}.format", q.formats[0])
            table = None
            if _per_component(space, q, bucket_bits):
                per_bucket = tuple(int(params[f"l{i}.{q.component}.b{k}"]) for k in range(space.num_buckets))
                bits = max(per_bucket)  # the spec holds the widest bucket; the table narrows the others
                if min(per_bucket) < bits:
                    table = Q.DegreeBits(tuple(space.degree_buckets), per_bucket)
            else:
                bits = params[f"l{i}.{q.component}"]
            spec = _component_spec(space, q.component, bits, fmt)
            if table is not None and spec.is_fp32 and fmt == "affine":
                # a 32-bit widest bucket with narrower ones: affine rows, at the table's bits
                spec = _component_spec(space, q.component, 16, "affine").replace(bits=32)
            if spec.method not in ("affine", "dq", "sgquant"):
                table = None  # topology-aware bits apply to the uniform formats only
            if not spec.is_fp32 or table is not None:
                overrides.append(Q.Override(spec, layer=i, component=q.component, degree_bits=table))
    if not overrides:
        return None
    degree_bits = None
    if space.degree_buckets and any(k.startswith("deg.") for k in abs_choices(space, bucket_bits)):
        table = tuple(int(params[f"deg.b{k}"]) for k in range(space.num_buckets))
        if min(table) < 32:
            degree_bits = Q.DegreeBits(tuple(space.degree_buckets), table)
    dq = space.degree_quant
    return Q.QuantConfig(default=Q.QuantSpec("fp32", 32), overrides=tuple(overrides), degree_bits=degree_bits,
                         dq=None if dq is None else dq.settings(), name="abs")


def abs_architecture(space: SearchSpace, params: Mapping[str, Any], num_classes: int,
                     bucket_bits: str = "shared") -> Architecture:
    """The space's fixed topology with the quantisation of ``params``."""
    arch = space.base_architecture(num_classes if space.task == "node" else None)
    return dataclasses.replace(arch, quant=abs_quant_config(space, params, bucket_bits)).validate()


def _nearest(allowed: Sequence[int], bits: int) -> int:
    """The smallest candidate >= ``bits`` (else the largest)."""
    above = [b for b in sorted(allowed) if b >= bits]
    return above[0] if above else max(allowed)


def warm_start_points(space: SearchSpace, bucket_bits: str = "shared") -> list[dict[str, Any]]:
    """Uniform-precision configurations the search starts from (the references a bit search is
    measured against; any low-bit component or degree bucket sinks the accuracy, so uniformly
    sampled first trials rarely land near the front): every component at 8 bits; the model's input
    features (``l0.input``) at their fewest bits and the rest at 8, 16 and 4 bits; degree buckets at
    their most bits (no cap); the first listed format."""
    choices = abs_choices(space, bucket_bits)
    least_input = {k: min(v) for k, v in choices.items() if k == "l0.input" or k.startswith("l0.input.b")}
    points = []
    for bits, low_input in ((8, False), (8, True), (16, True), (4, True)):
        p = {}
        for k, allowed in choices.items():
            if k.endswith(".format"):
                p[k] = allowed[0]
            elif k.startswith("deg."):
                p[k] = max(allowed)
            elif low_input and k in least_input:
                p[k] = least_input[k]
            else:
                p[k] = _nearest(allowed, bits)
        if p not in points:
            points.append(p)
    return points


def bit_summary(space: SearchSpace, params: Mapping[str, Any], bucket_bits: str = "shared") -> dict[str, Any]:
    """Bits actually stored per layer/component (``[b_0, ..., b_K]`` per in-degree bucket for
    node/edge tensors; a single value for weights), for reports."""
    _check_params(space, params, bucket_bits)
    shared = f"deg.b0" in params and any(k.startswith("deg.") for k in abs_choices(space, bucket_bits))
    table = [int(params[f"deg.b{k}"]) for k in range(space.num_buckets)] if shared else []
    out: dict[str, Any] = {}
    for i in range(space.num_layers[0]):
        for q in space.quant:
            if _skipped(space, i, q.component):
                continue
            if _per_component(space, q, bucket_bits):
                out[f"l{i}.{q.component}"] = [int(params[f"l{i}.{q.component}.b{k}"])
                                              for k in range(space.num_buckets)]
                continue
            b = int(params[f"l{i}.{q.component}"])
            fmt = params.get(f"l{i}.{q.component}.format", q.formats[0])
            uses_table = bool(space.degree_buckets) and q.bucketed and b < 32 and fmt == "affine"
            out[f"l{i}.{q.component}"] = [min(b, t) for t in table] if uses_table else b
    return out


# --------------------------------------------------------------------------------------------------
# the backend


def _check_space(space: SearchSpace) -> None:
    if space.fixed is None:
        raise ConfigError("--space", f"the abs backend searches the bits of a fixed topology; space {space.name!r} "
                                     "searches the topology ('layer:' block): use a space with a 'fixed:' block "
                                     "(e.g. sgquant) or --backend differentiable")
    if space.task != "node":
        raise ConfigError("--space", f"space {space.name!r} is a graph-level space; the abs backend supports "
                                     "node-classification spaces only")
    if not space.quant:
        raise ConfigError("--space", f"space {space.name!r} quantises no component (empty 'quant:' block)")


@dataclasses.dataclass(frozen=True)
class AbsBackend:
    """SGQuant automatic bit selection as a :class:`~lpgnas.search._backend.Backend`.

    ``space``: a search space (a shipped name, a YAML path or a :class:`SearchSpace`) with a fixed
    topology. ``dataset``/``data_root``: the node-classification dataset (bag-of-words features are
    row-normalised, as ``lpgnas train`` does; public split). ``finetune_epochs``: epochs of each
    trial's fine-tuning from the FP32 weights, at ``finetune_lr`` (``None``: the model's FP32
    learning rate x :data:`FINETUNE_LR_FACTOR`). ``sampler``: ``tpe`` or ``nsga2``. ``seed``: FP32
    training and fine-tuning seed. ``with_baselines``: also fine-tune the fixed-bit baselines
    (:data:`FIXED_BASELINES`; the FP32 point is always given). ``chunk``: fine-tuning epochs per
    report; ASHA (``time_attr`` = ``training_iteration``, i.e. reports) keeps a trial for at least
    ``grace_period`` reports and promotes 1 in ``reduction_factor``.
    """

    space: Any = "sgquant"
    dataset: str = "cora"
    data_root: str | None = None
    finetune_epochs: int = 50
    finetune_lr: float | None = None
    sampler: str = "tpe"
    seed: int = 0
    with_baselines: bool = True
    chunk: int = 5
    grace_period: int = 2
    reduction_factor: int = 3
    bucket_bits: str = "shared"
    _state: dict = dataclasses.field(default_factory=dict, init=False, compare=False, hash=False, repr=False)

    name: ClassVar[str] = "abs"
    metric: ClassVar[str] = "val_acc"
    mode: ClassVar[str] = "max"

    @classmethod
    def from_flags(cls, space: str | SearchSpace = "sgquant", dataset: str = "cora", *, data_root: str | None = None,
                   finetune_epochs: int = 50, sampler: str = "tpe", seed: int = 0, baselines: bool = True,
                   finetune_lr: float | None = None, bucket_bits: str = "shared") -> "AbsBackend":
        """The backend from command-line values (``baselines``: compute the fixed-bit baselines)."""
        return cls(space=space, dataset=dataset, data_root=data_root, finetune_epochs=finetune_epochs,
                   finetune_lr=finetune_lr, sampler=sampler, seed=seed, with_baselines=baselines,
                   bucket_bits=bucket_bits)

    @classmethod
    def from_json(cls, settings: Mapping[str, Any]) -> "AbsBackend":
        """The backend :meth:`describe` described (``lpgnas tune --resume``)."""
        if not isinstance(settings, Mapping) or settings.get("backend") != cls.name:
            raise ConfigError("settings", "not the settings of an abs tune")
        kw = {k: settings[k] for k in _SETTINGS if k in settings}
        kw["space"] = SearchSpace.from_json(settings.get("space"), source="tune.json")
        if "baselines" in settings:
            kw["with_baselines"] = bool(settings["baselines"])
        return cls(**kw)

    def __post_init__(self):
        if isinstance(self.space, (str, os.PathLike)):
            object.__setattr__(self, "space", load_space(os.fspath(self.space)))
        if not isinstance(self.space, SearchSpace):
            raise ConfigError("--space", f"expected a space name, a YAML path or a SearchSpace, got "
                                         f"{type(self.space).__name__}")
        _check_space(self.space)
        if self.bucket_bits not in BUCKET_BITS:
            raise ConfigError("--bucket-bits", f"unknown value {self.bucket_bits!r}; allowed: "
                                               f"{', '.join(BUCKET_BITS)}")
        if self.sampler not in SAMPLERS:
            raise ConfigError("--sampler", f"unknown sampler {self.sampler!r}; allowed: {', '.join(SAMPLERS)}")
        for name, field in (("finetune_epochs", "--finetune-epochs"), ("chunk", "chunk"),
                            ("grace_period", "grace_period"), ("seed", "seed")):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < (0 if name == "seed" else 1):
                raise ConfigError(field, f"must be a {'non-negative' if name == 'seed' else 'positive'} integer, "
                                         f"got {v!r}")
        if not isinstance(self.reduction_factor, (int, float)) or self.reduction_factor < 2:
            raise ConfigError("reduction_factor", f"must be at least 2, got {self.reduction_factor!r}")
        if self.finetune_lr is not None and not (math.isfinite(self.finetune_lr) and self.finetune_lr > 0):
            raise ConfigError("--finetune-lr", f"must be a positive number, got {self.finetune_lr!r}")

    # -- protocol -------------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "space": self.space.to_json(), "dataset": self.dataset,
                "data_root": self.data_root, "finetune_epochs": self.finetune_epochs, "finetune_lr": self.finetune_lr,
                "learning_rate": self.learning_rate(),
                "sampler": self.sampler, "seed": self.seed, "baselines": self.with_baselines, "chunk": self.chunk,
                "grace_period": self.grace_period, "reduction_factor": self.reduction_factor,
                "bucket_bits": self.bucket_bits}

    def prepare(self, out: str) -> None:
        """Train the FP32 model once and save it under ``out/fp32/`` (reused when it exists)."""
        folder = os.path.join(out, FP32_DIR)
        if not _model_saved(folder):
            graph, arrays = _node_data(self.dataset, self.data_root)
            from lpgnas.nn import save_model
            from lpgnas.train import TrainConfig, train_node

            arch = self.space.base_architecture(graph.num_classes)
            result, model = train_node(arch, graph, seed=self.seed, config=TrainConfig(**self._defaults()),
                                       arrays=arrays)
            save_model(folder, model, dict(
                in_dim=graph.num_features, num_classes=graph.num_classes, num_nodes=graph.num_nodes,
                row_normalize=_row_normalised(graph), split="public", seed=self.seed, dataset=self.dataset,
                val_acc=round(100 * result.val_acc, 3), test_acc=round(100 * result.test_acc, 3),
                fp32_val_acc=result.val_acc, fp32_test_acc=result.test_acc,
                train_seconds=result.train_seconds + result.compile_seconds, backend=self.name))
        files = {}
        for name in ("arch.json", "weights.msgpack", "meta.json"):
            with open(os.path.join(folder, name), "rb") as f:
                files[name] = f.read()
        self._state["fp32"] = files

    def param_space(self) -> dict[str, Any]:
        from ray import tune

        return {k: tune.choice(list(v)) for k, v in abs_choices(self.space, self.bucket_bits).items()}

    def trainable(self, report: Callable[[dict], None] | None = None) -> Callable[[dict], None]:
        """The trial function (``report``: defaults to ``ray.tune.report``; tests inject their own).
        Needs :meth:`prepare` first: the FP32 checkpoint travels inside the trainable, so workers on
        other machines need no shared file system."""
        files = self._state.get("fp32")
        if files is None:
            raise RuntimeError("AbsBackend.trainable() needs prepare(out) first (it trains/loads the FP32 model)")
        return _AbsTrial(self, files, report)

    def search_alg(self, num_samples: int, seed: int) -> Any:
        """Optuna, multi-objective (:data:`OBJECTIVES`): TPE (``n_startup_trials`` = a quarter of the
        trials, at most 10; constant liar for parallel trials) or NSGA-II (population = a quarter of
        the trials, 4 to 50). The first trials (up to a quarter of them) are the uniform-precision
        points of :func:`warm_start_points`."""
        import optuna

        if self.sampler == "nsga2":
            sampler = optuna.samplers.NSGAIISampler(population_size=max(4, min(50, num_samples // 4)), seed=seed)
        else:
            sampler = optuna.samplers.TPESampler(n_startup_trials=max(2, min(10, num_samples // 4)), seed=seed,
                                                 constant_liar=True)
        points = warm_start_points(self.space, self.bucket_bits)[: num_samples // 4]
        return _tune_class("AbsOptunaSearch")(metric=[m for m, _ in OBJECTIVES], mode=[d for _, d in OBJECTIVES],
                                              sampler=sampler, points_to_evaluate=points or None)

    def scheduler(self) -> Any:
        """ASHA on ``val_acc`` (max) over reports (``training_iteration``)."""
        max_t = self.num_reports()
        return _tune_class("AbsASHAScheduler")(time_attr="training_iteration", metric=self.metric, mode=self.mode,
                                               max_t=max_t, grace_period=min(self.grace_period, max_t),
                                               reduction_factor=self.reduction_factor)

    def baselines(self, out: str) -> Sequence[tuple[TrialResult, Architecture]]:
        """The FP32 model of :meth:`prepare` and (``with_baselines``) the fixed-bit presets of
        :data:`FIXED_BASELINES` on the same topology, fine-tuned from the FP32 weights with the
        trials' recipe."""
        from lpgnas import quant as Q
        from lpgnas.nn import load_model

        self.prepare(out)
        graph, arrays = _node_data(self.dataset, self.data_root)
        fp32, arch, meta = load_model(os.path.join(out, FP32_DIR))
        costs = _node_costs(fp32, graph)
        model_name = self.space.fixed.model
        node = _host()
        points = [(_result(f"fp32-{model_name}", "baseline", self.dataset, meta["fp32_val_acc"],
                           meta["fp32_test_acc"], costs, meta.get("train_seconds", 0.0), f"fp32 {model_name}", {},
                           node, {"avg_feature_bits": float(costs.avg_feature_bits)}), arch)]
        if self.with_baselines:
            for preset in FIXED_BASELINES:
                qarch = dataclasses.replace(arch, quant=Q.QuantConfig.preset(preset))
                r, model, seconds = self._finetune(qarch, graph, arrays, fp32, None)
                c = _node_costs(model, graph)
                points.append((_result(f"{preset}-{model_name}", "baseline", self.dataset, r.val_acc, r.test_acc, c,
                                       seconds, f"{preset} {model_name}", {"quant": preset}, node,
                                       {"avg_feature_bits": float(c.avg_feature_bits),
                                        "feature_compression": float(c.fp32_feature_bits / c.feature_bits),
                                        "best_epoch": r.best_epoch, "finetune_epochs": self.finetune_epochs,
                                        "finetune_lr": self.learning_rate()}), qarch))
        return points

    # -- helpers --------------------------------------------------------------------------------
    def _defaults(self) -> dict:
        from lpgnas.train import TRAIN_DEFAULTS

        return dict(TRAIN_DEFAULTS[(self.space.fixed.model, self.space.task)])

    def learning_rate(self) -> float:
        """The fine-tuning learning rate."""
        return float(self.finetune_lr) if self.finetune_lr is not None else self._defaults()["lr"] * FINETUNE_LR_FACTOR

    def num_reports(self) -> int:
        """Reports of a full trial (one per chunk of fine-tuning epochs): ASHA's ``max_t``."""
        return math.ceil(self.finetune_epochs / self.chunk)

    def finetune_config(self):
        """The :class:`~lpgnas.train.TrainConfig` of a trial: the model's defaults with the fine-tuning
        epochs and learning rate, no early stop (ASHA decides)."""
        from lpgnas.train import TrainConfig

        d = self._defaults()
        d.update(epochs=self.finetune_epochs, lr=self.learning_rate(), patience=self.finetune_epochs,
                 chunk=self.chunk)
        return TrainConfig(**d)

    def _finetune(self, arch, graph, arrays, fp32, report):
        from lpgnas.train import train_node, with_arch_masking

        config = with_arch_masking(self.finetune_config(), arch)  # a degree_quant space masks its candidates
        t0 = time.perf_counter()
        result, model = train_node(arch, graph, seed=self.seed, config=config, arrays=arrays,
                                   init=fp32, report=report)
        return result, model, time.perf_counter() - t0


_SETTINGS = ("dataset", "data_root", "finetune_epochs", "finetune_lr", "sampler", "seed", "chunk", "grace_period",
             "reduction_factor", "bucket_bits")


def make_abs_backend(args) -> AbsBackend:
    """The backend of a new ``lpgnas tune --backend abs`` (an ``argparse.Namespace`` with ``space``,
    ``dataset``, ``data_root``, ``finetune_epochs``, ``sampler``; optional ``no_baselines``,
    ``baselines``; ``None`` takes the default)."""
    if getattr(args, "baselines", None) is not None:
        raise ConfigError("--baselines", "the abs backend's reference points are fixed (FP32 and "
                                         f"{'/'.join(FIXED_BASELINES)} of the space's model); use --no-baselines "
                                         "to skip the fixed-bit ones")
    if getattr(args, "dataset", None) is None:
        raise ConfigError("--dataset", "required for a new tune")
    given = {k: getattr(args, k, None) for k in ("space", "finetune_epochs", "sampler", "bucket_bits")}
    return AbsBackend.from_flags(dataset=args.dataset, data_root=getattr(args, "data_root", None),
                                 baselines=not getattr(args, "no_baselines", False),
                                 **{k: v for k, v in given.items() if v is not None})


# --------------------------------------------------------------------------------------------------
# Ray Tune classes (defined on first use, so that importing this module does not import Ray; still
# picklable by reference as ``lpgnas.search._abs.<name>``)

_TUNE_CLASSES = ("AbsOptunaSearch", "AbsASHAScheduler")


def _define_tune_classes() -> None:
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    class AbsOptunaSearch(OptunaSearch):
        """Multi-objective Optuna search that keeps its own metrics and modes when ``TuneConfig``
        names a single metric (as an orchestrator shared with single-objective backends does)."""

        def set_search_properties(self, metric, mode, config, **spec) -> bool:
            return super().set_search_properties(None, None, config, **spec)

    class AbsASHAScheduler(ASHAScheduler):
        """ASHA that accepts a ``TuneConfig`` naming the same metric and mode as its own."""

        def set_search_properties(self, metric, mode, **spec) -> bool:
            if metric in (None, self._metric) and mode in (None, self._mode):
                return True
            return super().set_search_properties(metric, mode, **spec)

    for cls in (AbsOptunaSearch, AbsASHAScheduler):
        cls.__module__ = __name__
        cls.__qualname__ = cls.__name__
        globals()[cls.__name__] = cls


def _tune_class(name: str):
    if name not in globals():
        _define_tune_classes()
    return globals()[name]


def __getattr__(name: str):
    if name in _TUNE_CLASSES:
        return _tune_class(name)
    raise AttributeError(name)


# --------------------------------------------------------------------------------------------------
# one trial


class _AbsTrial:
    """The function trainable of :class:`AbsBackend` (picklable; holds the FP32 checkpoint bytes)."""

    def __init__(self, backend: AbsBackend, files: Mapping[str, bytes], report: Callable[[dict], None] | None):
        self.backend = backend
        self.files = dict(files)
        self.report = report

    def __call__(self, config: dict) -> None:
        b = self.backend
        send = self.report
        if send is None:
            from ray import tune

            send = tune.report
        t0 = time.perf_counter()
        graph, arrays = _node_data(b.dataset, b.data_root)
        fp32 = _fp32_model(self.files)
        params = {k: config[k] for k in abs_choices(b.space, b.bucket_bits) if k in config}
        arch = abs_architecture(b.space, params, graph.num_classes, b.bucket_bits)
        costs = _node_costs(_probe(arch, graph), graph)
        bits = bit_summary(b.space, params, b.bucket_bits)
        model_name = b.space.fixed.model
        fixed = {
            "model_size_bits": float(costs.model_size_bits), "buffer_bits": float(costs.feature_bits),
            "bitops": float(costs.bitops), "fp32_model_size_bits": float(costs.fp32_model_size_bits),
            "fp32_buffer_bits": float(costs.fp32_feature_bits), "fp32_bitops": float(costs.fp32_bitops),
            "arch_json": json.dumps(arch.to_json()), "node": _host(),
        }
        feature_compression = float(costs.fp32_feature_bits / costs.feature_bits)
        name = f"abs {model_name} {float(costs.avg_feature_bits):.2f}b {feature_compression:.1f}x"
        extra = {"bits": bits, "avg_feature_bits": float(costs.avg_feature_bits),
                 "feature_compression": feature_compression,
                 "compression": float(costs.compression), "finetune_epochs": b.finetune_epochs,
                 "finetune_lr": b.learning_rate()}

        def on_chunk(epochs_done: int, m: dict) -> None:
            send({"val_acc": m["best_val_acc"], "test_acc": m["best_test_acc"], **fixed,
                  "seconds": time.perf_counter() - t0, "name": name,
                  "extra": json.dumps({**extra, "best_epoch": m["best_epoch"], "epochs": epochs_done}),
                  "epoch": epochs_done, "last_val_acc": m["val_acc"], "train_loss": m["train_loss"]})

        b._finetune(arch, graph, arrays, fp32, on_chunk)


def _probe(arch: Architecture, graph):
    from flax import nnx

    from lpgnas.nn import GNN

    return GNN(arch, graph.num_features, graph.num_classes, num_nodes=graph.num_nodes, rngs=nnx.Rngs(0))


# --------------------------------------------------------------------------------------------------
# shared pieces (cached per process: a Ray worker runs many trials)

_CACHE: dict = {}


def _row_normalised(graph) -> bool:
    return bool(np.all(graph.features >= 0))


def _node_data(dataset: str, data_root: str | None):
    """``(graph, device arrays)`` of a node dataset, bag-of-words features row-normalised (cached)."""
    key = ("data", dataset, data_root)
    if key not in _CACHE:
        from lpgnas import data as D
        from lpgnas.train import node_arrays

        obj = D.load_dataset(dataset, data_root)
        if isinstance(obj, D.GraphDataset):
            raise ConfigError("--dataset", f"{dataset} is a graph-level dataset; the abs backend supports "
                                           "node-classification datasets only")
        if obj.split is None:
            raise ConfigError("--dataset", f"{dataset} has no public split (the abs backend uses it)")
        if _row_normalised(obj):
            obj = obj.with_features(D.row_normalize(obj.features))
        _CACHE[key] = (obj, node_arrays(obj))
    return _CACHE[key]


def _fp32_model(files: Mapping[str, bytes]):
    """The FP32 model of a checkpoint held as bytes (cached by content)."""
    digest = hashlib.sha256(b"".join(files[k] for k in sorted(files))).hexdigest()
    key = ("fp32", digest)
    if key not in _CACHE:
        from lpgnas.nn import load_model

        with tempfile.TemporaryDirectory(prefix="lpgnas-abs-") as tmp:
            for name, data in files.items():
                with open(os.path.join(tmp, name), "wb") as f:
                    f.write(data)
            _CACHE[key] = load_model(tmp)[0]
    return _CACHE[key]


def _model_saved(folder: str) -> bool:
    from lpgnas.nn import MODEL_FILES

    return all(os.path.exists(os.path.join(folder, n)) for n in MODEL_FILES)


def _node_costs(model, graph):
    """Exact costs of a built node model with its per-row (in-degree) bits."""
    from lpgnas.cost import gnn_cost
    from lpgnas.nn import insert_self_loops

    deg = np.asarray(graph.in_degree())
    looped = any(layer.spec.op in ("gcn", "gat", "attn") for layer in model.layers)
    receivers = insert_self_loops(graph.senders, graph.receivers, graph.num_nodes)[1] if looped else graph.receivers
    return gnn_cost(model, graph.num_nodes, graph.num_edges, node_degree=deg, edge_degree=deg[np.asarray(receivers)])


def _host() -> str:
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        return ray.util.get_node_ip_address()
    return socket.gethostname()


def _result(trial_id, backend, dataset, val_acc, test_acc, costs, seconds, name, config, node, extra) -> TrialResult:
    return TrialResult(
        trial_id=trial_id, backend=backend, dataset=dataset, val_acc=val_acc, test_acc=test_acc,
        model_size_bits=float(costs.model_size_bits), buffer_bits=float(costs.feature_bits),
        bitops=float(costs.bitops), fp32_model_size_bits=float(costs.fp32_model_size_bits),
        fp32_buffer_bits=float(costs.fp32_feature_bits), fp32_bitops=float(costs.fp32_bitops), seconds=seconds,
        name=name, config=config, node=node, extra=extra)
