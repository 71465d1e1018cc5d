"""The ``differentiable`` tune backend: one LPGNAS search round per trial, then the derived
architecture retrained from scratch.

A trial samples ``lambda`` (the weight of the cost term), the search ``seed``, the ``cost``
target and, when several are given, the search ``space`` (a space variant), runs :func:`lpgnas.search.search`, retrains the derived :class:`~lpgnas.arch.Architecture`
with the trainer (node tasks: the dataset's public split, or a fixed random 60/20/20 split when it
has none; with ``split`` set, the search draws that split with the trial's seed and each retraining
run re-draws it with its own seed, as ``lpgnas train --split`` does; graph tasks: fold 0 of 10
stratified folds) for ``retrain_seeds`` seeds and reports once:
the mean validation / test accuracy over those seeds (each run keeps its validation-selected epoch;
test accuracy is only reported), the exact costs of the architecture
(:func:`lpgnas.supernet.architecture_cost`) and the architecture itself.

The reference points of a run (:meth:`DifferentiableBackend.baselines`) are the FP32 GCN and GAT
(graph tasks: GIN) and the fixed-bit W8A8 / W4A8 / W4A4 GCN (GIN), trained with the same seeds and
the same split.

Nothing here imports JAX or Ray at module level: Ray unpickles the backend in fresh workers, and
the driver's refusals (bad flags) stay fast.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import socket
import time
from typing import Any, Callable, ClassVar, Mapping, Sequence

from lpgnas._validate import is_finite_number, is_int, positive_int
from lpgnas.errors import ConfigError

__all__ = ["DifferentiableBackend", "task_baselines", "DEFAULT_LAMBDAS"]

#: The cost weights a tune samples when neither ``lambdas`` nor ``lambda_range`` is given.
DEFAULT_LAMBDAS = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0)

_COSTS = ("size", "buffer", "bitops")
_NODE_BASELINES = ("fp32-gcn", "fp32-gat", "w8a8-gcn", "w4a8-gcn", "w4a4-gcn")
_GRAPH_BASELINES = ("fp32-gin", "w8a8-gin", "w4a8-gin", "w4a4-gin")
_DEFAULT = "default"  # the task's whole baseline set


def task_baselines(task: str) -> tuple[str, ...]:
    """The reference points of a ``task`` (``node`` | ``graph``), as ``<quant>-<model>`` ids."""
    return _NODE_BASELINES if task == "node" else _GRAPH_BASELINES


@dataclasses.dataclass(frozen=True)
class DifferentiableBackend:
    """Settings of a differentiable tune (all plain JSON values; see :meth:`describe`).

    space: a shipped space name or a YAML path (made absolute), or several of them (a tuple, or one
    comma-separated string): each trial then draws its space variant like the costs. dataset: a dataset name or
    ``synthetic:...``. data_root: the data root (made absolute; ``None``: ``$LPGNAS_DATA`` of the
    worker, else its cache).
    lambdas: the cost weights sampled uniformly (``tune.choice``; with ``grid`` every one,
    ``tune.grid_search``; default :data:`DEFAULT_LAMBDAS`). lambda_range: ``(min, max)`` sampled
    log-uniformly instead (not with ``grid``). seeds: search seeds to draw from (``None``: a random integer per trial; with
    ``grid``: ``(0,)``). costs: cost targets (``size``, ``buffer``, ``bitops``), sampled like the
    lambdas when more than one.
    epochs / finetune / temperature: the search round (:class:`~lpgnas.search.SearchConfig`).
    retrain_seeds: from-scratch training runs of the derived architecture (seeds ``0..n-1``; the
    baselines use the same). retrain_epochs / retrain_weight_decay: their epochs and weight decay, for
    the retraining runs and the baselines alike (``None``: the defaults of the comparable baseline,
    GCN for node tasks and GIN for graph tasks, from ``lpgnas.train.TRAIN_DEFAULTS``; a dataset the
    published set-ups under-train, such as Amazon Photo, needs a set-up chosen on validation).
    retrain_recipes: training recipes (:func:`lpgnas.train.apply_recipe`: a published model's dropouts and
    optimisation set-up, e.g. ``("gcn", "gat")``) each retraining tries, keeping the one with the best mean
    validation accuracy (recorded as ``search.retrain.recipe`` of the trial's architecture, which
    ``lpgnas train --arch`` then follows); the baselines try the same ones and their own. ``None`` (the
    default): one set-up, the comparable baseline's (see above), the architecture's dropouts kept.
    baseline_ids: ids of :func:`task_baselines` to train as reference points, ``("default",)`` for
    all of the task's, ``()`` for none.
    split: node tasks, ``public``, ``random`` or ``per-class`` (:func:`lpgnas.data.node_split`): the
    search draws it with the trial's seed, the retraining runs and the baselines with theirs (seeds
    ``0..n-1``). ``None`` (the default): one fixed split for everything, the public one, else random
    60/20/20 with seed 0 (not written by :meth:`describe`, so tunes from before the setting resume).
    """

    name: ClassVar[str] = "differentiable"
    metric: ClassVar[str] = "val_acc"
    mode: ClassVar[str] = "max"

    space: str | tuple[str, ...] = "lpgnas"
    dataset: str = "cora"
    data_root: str | None = None
    lambdas: tuple[float, ...] | None = None
    lambda_range: tuple[float, float] | None = None
    grid: bool = False
    seeds: tuple[int, ...] | None = None
    costs: tuple[str, ...] = ("size",)
    epochs: int = 300
    finetune: int = 50
    temperature: tuple[float, float] = (1.0, 0.1)
    retrain_seeds: int = 3
    retrain_epochs: int | None = None
    retrain_weight_decay: float | None = None
    retrain_recipes: tuple[str, ...] | None = None
    baseline_ids: tuple[str, ...] = (_DEFAULT,)
    split: str | None = None

    def __post_init__(self):
        def fix(k, v):  # normalising a frozen dataclass
            object.__setattr__(self, k, v)

        if self.lambdas is None and self.lambda_range is None:
            fix("lambdas", DEFAULT_LAMBDAS)
        if self.data_root is not None:
            fix("data_root", os.path.abspath(os.path.expanduser(str(self.data_root))))
        if isinstance(self.space, str) and "," in self.space:
            fix("space", tuple(p.strip() for p in self.space.split(",")))
        if isinstance(self.space, (list, tuple)):
            spaces = tuple(_absolute_space(v.strip()) if isinstance(v, str) and v.strip() else v
                           for v in self.space)
            fix("space", spaces[0] if len(spaces) == 1 else spaces)
        elif isinstance(self.space, str) and self.space:
            fix("space", _absolute_space(self.space))
        if isinstance(self.retrain_recipes, str):
            fix("retrain_recipes", tuple(p.strip() for p in self.retrain_recipes.split(",") if p.strip()))
        for name in ("lambdas", "lambda_range", "seeds", "temperature", "retrain_recipes"):
            v = getattr(self, name)
            if v is not None and not isinstance(v, (str, bytes)):
                fix(name, tuple(v))
        for name in ("costs", "baseline_ids"):
            v = getattr(self, name)
            fix(name, (v,) if isinstance(v, str) else tuple(v))
        self.validate()

    # -- settings ------------------------------------------------------------------------------

    def validate(self) -> "DifferentiableBackend":
        """Check the settings (cheap: no file is read); errors name the field."""
        spaces = self.spaces
        if not spaces or not all(isinstance(v, str) and v.strip() for v in spaces):
            raise ConfigError("space", f"expected search-space names or paths, got {self.space!r}")
        if len(set(spaces)) != len(spaces):
            raise ConfigError("space", f"a space variant is listed twice: {list(spaces)!r}")
        if not isinstance(self.dataset, str) or not self.dataset.strip():
            raise ConfigError("dataset", f"expected a dataset name, got {self.dataset!r}")
        if (self.lambdas is None) == (self.lambda_range is None):
            raise ConfigError("lambdas", "give either a list of lambdas or a lambda range (not both)")
        if self.lambdas is not None:
            if not self.lambdas or not all(is_finite_number(v) and v >= 0 for v in self.lambdas):
                raise ConfigError("lambdas", f"must be finite numbers >= 0, got {list(self.lambdas)!r}")
        if self.lambda_range is not None:
            lo_hi = self.lambda_range
            if (len(lo_hi) != 2 or not all(is_finite_number(v) for v in lo_hi) or not 0 < lo_hi[0] < lo_hi[1]):
                raise ConfigError("lambda_range", f"must be MIN < MAX, both > 0 (log-uniform), got {list(lo_hi)!r}")
            if self.grid:
                raise ConfigError("grid", "a grid needs a list of lambdas, not a range")
        if not isinstance(self.grid, bool):
            raise ConfigError("grid", f"must be true or false, got {self.grid!r}")
        if self.seeds is not None:
            if not self.seeds or not all(is_int(s) and s >= 0 for s in self.seeds):
                raise ConfigError("seeds", f"must be non-negative integers, got {list(self.seeds)!r}")
        if not self.costs or any(c not in _COSTS for c in self.costs):
            raise ConfigError("costs", f"each must be one of {', '.join(_COSTS)}, got {list(self.costs)!r}")
        for name in ("epochs", "finetune", "retrain_seeds"):
            positive_int(name, getattr(self, name))
        if self.retrain_epochs is not None:
            positive_int("retrain_epochs", self.retrain_epochs)
        if self.retrain_weight_decay is not None:
            wd = self.retrain_weight_decay
            if not is_finite_number(wd) or wd < 0:
                raise ConfigError("retrain_weight_decay", f"must be a number >= 0, got {wd!r}")
        if self.retrain_recipes is not None:
            from lpgnas.train import recipes

            known = recipes()
            r = self.retrain_recipes
            if not r or any(not isinstance(v, str) or v not in known for v in r) or len(set(r)) != len(r):
                raise ConfigError("retrain_recipes", f"expected distinct names from {', '.join(known)}, "
                                                     f"got {list(r)!r}")
        t = self.temperature
        if len(t) != 2 or not all(is_finite_number(v) and v > 0 for v in t):
            raise ConfigError("temperature", f"must be START, END > 0, got {list(t)!r}")
        if self.split is not None:
            from lpgnas.data import check_node_split

            check_node_split(self.split)
        known = set(_NODE_BASELINES) | set(_GRAPH_BASELINES) | {_DEFAULT}
        bad = [b for b in self.baseline_ids if b not in known]
        if bad:
            raise ConfigError("baseline_ids", f"unknown baseline {bad[0]!r}; known: {', '.join(sorted(known))}")
        return self

    @property
    def spaces(self) -> tuple[str, ...]:
        """The space variants a trial draws from (one or more)."""
        return tuple(self.space) if isinstance(self.space, tuple) else (self.space,)

    def describe(self) -> dict[str, Any]:
        """The settings as JSON values (``from_json`` reads them back)."""
        out = dataclasses.asdict(self)
        for k, v in out.items():
            if isinstance(v, tuple):
                out[k] = list(v)
        for key in ("split", "retrain_weight_decay", "retrain_recipes"):
            if out[key] is None:
                del out[key]  # the default: a tune.json written before the setting holds the same tune
        return out

    @classmethod
    def from_json(cls, obj: Mapping[str, Any], *, source: object | None = None) -> "DifferentiableBackend":
        """The backend :meth:`describe` wrote (e.g. from a run's ``tune.json``)."""
        if not isinstance(obj, Mapping):
            raise ConfigError("settings", "must be an object", source=source)
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(obj) - fields)
        if unknown:
            raise ConfigError(f"settings.{unknown[0]}", "unknown field", source=source)
        try:
            return cls(**dict(obj))
        except ConfigError as e:
            raise ConfigError(f"settings.{e.field}", e.problem, source=source) from None
        except (TypeError, ValueError) as e:
            raise ConfigError("settings", f"bad value ({e})", source=source) from None

    # -- Backend protocol ---------------------------------------------------------------------------

    def prepare(self, out: str) -> None:
        """Load the space and the dataset once on the driver (errors before any trial starts) and
        check that they are for the same task."""
        from lpgnas.search_spaces import load_space

        obj, _, label = _load(self.dataset, self.data_root)
        task = _task(obj)
        self._search_split(label)
        for name in self.spaces:
            space = load_space(name)
            if space.task != task:
                raise ConfigError("space", f"search space {space.name!r} is for {space.task}-level tasks but "
                                           f"{self.dataset} is a {task}-level dataset")
        self._baseline_ids(task)

    def param_space(self) -> dict[str, Any]:
        from ray import tune

        def pick(values):
            values = list(values)
            if self.grid:
                return tune.grid_search(values)
            return values[0] if len(values) == 1 else tune.choice(values)

        if self.lambda_range is not None:
            lam = tune.loguniform(*self.lambda_range)
        else:
            lam = pick(self.lambdas)
        if self.seeds is not None:
            seed = pick(self.seeds)
        elif self.grid:
            seed = 0
        else:
            seed = tune.randint(0, 1_000_000)
        out = {"lambda": lam, "seed": seed, "cost": pick(self.costs)}
        if len(self.spaces) > 1:
            out["space"] = pick(self.spaces)
        return out

    def trainable(self) -> Callable[[dict], None]:
        return self._trial

    def search_alg(self, num_samples: int, seed: int) -> Any:
        return None  # random / grid sampling of the parameter space (seeded by the orchestrator)

    def scheduler(self) -> Any:
        return None

    def baselines(self, out: str) -> list:
        """Train the reference points that ``out/baselines.jsonl`` does not hold yet."""
        from lpgnas.search._trials import BASELINES
        from lpgnas.search._rundir import read_log

        if not self.baseline_ids:
            return []
        wanted = self._baseline_ids(_task(_load(self.dataset, self.data_root)[0]))
        done = {r.get("trial_id") for r in read_log(os.path.join(out, BASELINES)) if isinstance(r, dict)}
        return [self._baseline(b) for b in wanted if b not in done]

    def _baseline_ids(self, task: str) -> tuple[str, ...]:
        wanted = task_baselines(task) if _DEFAULT in self.baseline_ids else tuple(self.baseline_ids)
        bad = [b for b in wanted if b not in task_baselines(task)]
        if bad:
            raise ConfigError("baseline_ids", f"{bad[0]!r} is not a {task}-level baseline; allowed: "
                                              f"{', '.join(task_baselines(task))}")
        return wanted

    # -- one trial ----------------------------------------------------------------------------------

    def _trial(self, config: dict) -> None:
        from ray import tune

        tune.report(self.run_trial(config))

    def run_trial(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """Run one trial in this process (search, retrain, costs) and return its final report
        (every :data:`~lpgnas.search.METRICS` key, ``arch_json``, ``node``, ``name``, ``extra``)."""
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # trials may share a GPU
        from lpgnas.search import SearchConfig, search

        t0 = time.perf_counter()
        lam, seed, cost = float(config["lambda"]), int(config["seed"]), str(config["cost"])
        space = str(config.get("space", self.spaces[0]))
        if space not in self.spaces:
            raise ConfigError("space", f"{space!r} is not one of this tune's spaces {list(self.spaces)!r}")
        obj, arrays, label = _load(self.dataset, self.data_root)
        split_kind, split_seed = self._search_split(label)
        sc = SearchConfig(epochs=self.epochs, finetune=self.finetune, lam=lam, cost=cost, seed=seed,
                          t_start=float(self.temperature[0]), t_end=float(self.temperature[1]),
                          split=split_kind, split_seed=split_seed)
        result = search(space, obj, config=sc, dataset=self.dataset, arrays=arrays)
        trained, runs, chosen = self._retrain_best(result.arch, obj, arrays, label)
        split = self.split or label
        vals = [r.val_acc for r in runs]
        tests = [r.test_acc for r in runs]
        retrain = {"seeds": len(runs), "epochs": chosen.pop("epochs"),
                   "val_acc": _mean(vals), "test_acc": _mean(tests), "val_acc_std": _std(vals),
                   "test_acc_std": _std(tests), "split": split, **chosen}
        arch = dataclasses.replace(trained, search={**(result.arch.search or {}), "retrain": retrain})
        s = result.summary
        extra = {"search_val_acc": s["val_acc"], "search_test_acc": s["test_acc"],
                 "supernet_val_acc": s["supernet_val_acc"], "search_seconds": s["search_seconds"],
                 "compile_seconds": s["compile_seconds"], "val_accs": vals, "test_accs": tests,
                 "val_acc_std": retrain["val_acc_std"], "test_acc_std": retrain["test_acc_std"],
                 "split": split, **{k: retrain[k] for k in ("recipe", "recipe_val_acc") if k in retrain},
                 **_node_identity()}
        return {
            **self._costs(arch, obj),
            "val_acc": _mean(vals),
            "test_acc": _mean(tests),
            "seconds": time.perf_counter() - t0,
            "arch_json": json.dumps(arch.to_json()),
            "node": _node_address(),
            "name": f"lambda={lam:g} seed={seed} cost={cost}" + (f" space={_short(space)}" if len(self.spaces) > 1
                                                                else ""),
            "extra": json.dumps(extra),
        }

    # -- pieces ---------------------------------------------------------------------------------------

    def _train_config(self, task: str, model: str | None = None):
        from lpgnas.train import TRAIN_DEFAULTS, TrainConfig

        model = model or ("gcn" if task == "node" else "gin")
        kw = dict(TRAIN_DEFAULTS[(model, task)])
        if self.retrain_epochs is not None:
            kw["epochs"] = self.retrain_epochs
        if self.retrain_weight_decay is not None:
            kw["weight_decay"] = float(self.retrain_weight_decay)
        return TrainConfig(**kw)

    def _search_split(self, label: str) -> tuple[str | None, int | None]:
        """``(split, split_seed)`` of a trial's :class:`~lpgnas.search.SearchConfig`, for a dataset
        whose :func:`_load` split name is ``label``; refuses a ``split`` the dataset cannot give."""
        if label not in ("public", "random-0"):  # a graph-level dataset
            if self.split is not None:
                raise ConfigError("split", f"node-level datasets only; {self.dataset} is a graph-level dataset "
                                           "(fold 0 of 10 stratified folds)")
            return None, None
        if self.split is None:  # the tune's one fixed split
            return ("public", None) if label == "public" else ("random", 0)
        if self.split == "public" and label != "public":
            raise ConfigError("split", f"{self.dataset} has no public split; use random or per-class")
        return self.split, None  # drawn with the trial's search seed

    def _retrain_best(self, arch, obj, arrays, label: str, model: str | None = None) -> tuple[Any, list, dict]:
        """Retrain ``arch`` under each of :attr:`retrain_recipes` (a baseline ``model`` also under its own,
        first) and keep the recipe with the best mean validation accuracy (ties: the earlier one):
        ``(arch as trained, its runs, {"epochs", "recipe", "recipe_val_acc"})``; without recipes, the one
        set-up of ``model`` (default: the task's comparable baseline) and ``{"epochs"}``."""
        from lpgnas.train import apply_recipe

        if self.retrain_recipes is None:
            config = self._train_config(arch.task, model)
            return arch, self._retrain(arch, obj, arrays, label, config), {"epochs": config.epochs}
        names = tuple(self.retrain_recipes)
        if model is not None and model not in names:
            names = (model, *names)
        best, by_name = None, {}
        for name in names:
            candidate = apply_recipe(arch, name)[0]
            config = self._train_config(arch.task, name)
            runs = self._retrain(candidate, obj, arrays, label, config)
            by_name[name] = _mean([r.val_acc for r in runs])
            if best is None or by_name[name] > by_name[best[0]]:
                best = (name, candidate, runs, config.epochs)
        name, candidate, runs, epochs = best
        return candidate, runs, {"epochs": epochs, "recipe": name, "recipe_val_acc": by_name}

    def _retrain(self, arch, obj, arrays, label: str, config) -> list:
        """``retrain_seeds`` runs of ``arch`` under ``config`` (a :class:`~lpgnas.train.TrainConfig`
        from :meth:`_train_config`)."""
        from lpgnas import data as D
        from lpgnas.train import train_graph, train_node, with_arch_masking

        config = with_arch_masking(config, arch)
        if isinstance(obj, D.GraphDataset):
            split = D.kfold_splits(obj.labels, k=10, seed=0, folds=obj.folds)[0]
            return [train_graph(arch, obj, split, seed=s, config=config)[0] for s in range(self.retrain_seeds)]
        self._search_split(label)
        # the default: the graph's fixed split; with ``split``: re-drawn per seed, as `lpgnas train` does
        return [train_node(arch, obj, seed=s, config=config, arrays=arrays,
                           split=None if self.split is None else D.node_split(obj, self.split, s))[0]
                for s in range(self.retrain_seeds)]

    @staticmethod
    def _costs(arch, obj) -> dict[str, float]:
        import numpy as np

        from lpgnas import data as D
        from lpgnas.supernet import architecture_cost

        if isinstance(obj, D.GraphDataset):
            n, e = float(np.mean(obj.n_node)), float(np.mean(obj.n_edge))
        else:
            n, e = obj.num_nodes, obj.num_edges
        r = architecture_cost(arch, obj.num_features, obj.num_classes, n, e)
        return {"model_size_bits": float(r.model_size_bits), "buffer_bits": float(r.feature_bits),
                "bitops": float(r.bitops), "fp32_model_size_bits": float(r.fp32_model_size_bits),
                "fp32_buffer_bits": float(r.fp32_feature_bits), "fp32_bitops": float(r.fp32_bitops)}

    def _baseline(self, bid: str):
        from lpgnas.arch import baseline
        from lpgnas.quant import QuantConfig
        from lpgnas.search._trials import TrialResult

        t0 = time.perf_counter()
        obj, arrays, label = _load(self.dataset, self.data_root)
        split = self.split or label
        task = _task(obj)
        quant, model = bid.split("-", 1)
        if task == "node":
            arch = baseline(model, num_classes=obj.num_classes)
        else:
            arch = baseline(model, task="graph")
        if quant != "fp32":
            arch = dataclasses.replace(arch, quant=QuantConfig.preset(quant))
        arch, runs, chosen = self._retrain_best(arch, obj, arrays, label, model=model)
        vals = [r.val_acc for r in runs]
        tests = [r.test_acc for r in runs]
        epochs = chosen.pop("epochs")
        arch = dataclasses.replace(arch, search={"baseline": bid, "dataset": self.dataset, "retrain": {
            "seeds": len(runs), "epochs": epochs, "val_acc": _mean(vals), "test_acc": _mean(tests),
            "val_acc_std": _std(vals), "test_acc_std": _std(tests), "split": split, **chosen}})
        result = TrialResult(
            trial_id=bid, backend="baseline", dataset=self.dataset, val_acc=_mean(vals), test_acc=_mean(tests),
            seconds=time.perf_counter() - t0, name=f"{quant} {model}", node=socket.gethostname(),
            config={"model": model, "quant": quant, "epochs": epochs, "seeds": len(runs),
                    **({"recipe": chosen["recipe"]} if "recipe" in chosen else {})},
            extra={"val_accs": vals, "test_accs": tests, "val_acc_std": _std(vals), "test_acc_std": _std(tests),
                   "split": split, **chosen},
            **self._costs(arch, obj))
        return result, arch


# --------------------------------------------------------------------------------------------------
# helpers (module level: cached per process, so that the trials of a reused Ray worker share them)

_DATA: dict = {}


def _absolute_space(value: str) -> str:
    """A shipped space name as is; a YAML path made absolute (workers may run elsewhere)."""
    return value if _is_space_name(value) else os.path.abspath(os.path.expanduser(value))


def _short(space: str) -> str:
    """A space's name for trial names: shipped names as is, paths by their file stem."""
    return os.path.splitext(os.path.basename(space))[0]


def _is_space_name(value: str) -> bool:
    return os.sep not in value and "/" not in value and not value.endswith((".yaml", ".yml"))


def _task(obj) -> str:
    from lpgnas import data as D

    return "graph" if isinstance(obj, D.GraphDataset) else "node"


def _load(dataset: str, root: str | None):
    """``(data, arrays, split)``: the dataset as the search and the trainer see it (bag-of-words rows
    normalised, a fixed random split for node sets without one), for node tasks its device arrays,
    and the name of the split. Cached per process."""
    key = (dataset, root)
    if key not in _DATA:
        import numpy as np

        from lpgnas import data as D
        from lpgnas.train import node_arrays

        obj = D.load_dataset(dataset, root)
        arrays, split = None, "fold 0 of 10"
        if isinstance(obj, D.Graph):
            split = "public"
            if np.all(obj.features >= 0):  # bag-of-words features, as `lpgnas train` / `search` do
                obj = obj.with_features(D.row_normalize(obj.features))
            if obj.split is None:
                obj = dataclasses.replace(obj, split=D.random_split(obj.labels, 0))
                split = "random-0"
            arrays = node_arrays(obj)
        _DATA[key] = (obj, arrays, split)
    return _DATA[key]


def _mean(xs: Sequence[float]) -> float:
    return float(sum(xs) / len(xs))


def _std(xs: Sequence[float]) -> float:
    m = _mean(xs)
    return float(math.sqrt(sum((x - m) ** 2 for x in xs) / len(xs)))


def _node_address() -> str:
    try:
        import ray

        if ray.is_initialized():
            return ray.util.get_node_ip_address()
    except Exception:  # pragma: no cover - no Ray, or not inside a Ray worker
        pass
    return socket.gethostname()


def _node_identity() -> dict[str, str]:
    out = {"hostname": socket.gethostname()}
    try:
        import ray

        if ray.is_initialized():
            out["node_id"] = ray.get_runtime_context().get_node_id()
    except Exception:  # pragma: no cover
        pass
    return out
