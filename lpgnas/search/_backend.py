"""The contract between the tune orchestrator (:mod:`lpgnas.search._tune`) and a search backend
(``differentiable``: LPGNAS searches + retraining; ``abs``: SGQuant automatic bit selection).

A backend is a plain object (picklable: Ray ships its trainable to the workers) that says what to
sample, how to run one trial, and which reference points the run is compared against. The
orchestrator owns everything Ray-specific that is not a choice of the backend (Tuner, storage,
failures, resume, recording results).

A trial reports through ``ray.tune.report(metrics)``; its **last** report must hold every name in
:data:`lpgnas.search.METRICS` (accuracies as fractions), ``arch_json`` (the architecture as a JSON
string, ``lpgnas.arch/v1``), ``node`` (the host it ran on), ``name`` (a short label) and optionally
``extra`` (a JSON string of backend-specific values). Intermediate reports (for schedulers such as
ASHA) need only the backend's ``metric``.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol, Sequence

from lpgnas.arch import Architecture
from lpgnas.search._trials import TrialResult

__all__ = ["Backend", "FINAL_KEYS"]

# Keys besides METRICS that a trial's last report carries.
FINAL_KEYS = ("arch_json", "node", "name")


class Backend(Protocol):
    """What a tune backend provides (see the module docstring for the reporting contract)."""

    name: str  # "differentiable" | "abs"
    metric: str  # the metric schedulers and single-objective searchers optimise, e.g. "val_acc"
    mode: str  # "max" | "min"

    def describe(self) -> dict[str, Any]:
        """The backend's settings as JSON values (stored in the run directory; ``--resume`` checks it)."""

    def prepare(self, out: str) -> None:
        """Driver-side work before any trial (e.g. the shared FP32 checkpoint under ``out``).
        Idempotent: a resumed run calls it again and it must reuse what exists."""

    def param_space(self) -> dict[str, Any]:
        """The Ray Tune parameter space (``tune.choice`` / ``tune.loguniform`` / ``tune.grid_search`` ...)."""

    def trainable(self) -> Callable[[dict], None]:
        """A function trainable ``f(config)`` that runs one trial and reports (see module docstring)."""

    def search_alg(self, num_samples: int, seed: int) -> Any:
        """A ``ray.tune.search.Searcher`` or ``None`` (random / grid sampling of ``param_space``)."""

    def scheduler(self) -> Any:
        """A ``ray.tune.schedulers.TrialScheduler`` or ``None`` (FIFO)."""

    def baselines(self, out: str) -> Sequence[tuple[TrialResult, Architecture]]:
        """The reference points of the run (FP32 and fixed-bit models), computed on the driver; the
        orchestrator records them in ``baselines.jsonl`` once."""
