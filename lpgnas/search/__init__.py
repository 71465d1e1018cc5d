"""Differentiable bilevel search (LPGNAS): one round of alternating weight / logit updates on a
:class:`~lpgnas.supernet.Supernet`, with a run directory (append-only log, checkpoints, resume).

* :func:`search` -- the round: returns a :class:`SearchResult` (derived architecture + summary);
* :class:`SearchConfig` -- its settings;
* :class:`SearchState`, :class:`Schedule`, :func:`make_program` -- the pure weight / logit steps;
* :class:`RunDir`, :func:`read_log` -- the run directory of one search;
* :class:`TrialResult`, :func:`record_trial`, :func:`read_results` -- finished tune trials in a tune run
  directory (``results.jsonl``, ``trials/<id>/``);
* :func:`run_tune` with a :class:`Backend` (:class:`DifferentiableBackend`, ``AbsBackend``) -- Ray Tune runs.
"""

from lpgnas.search._config import SearchConfig
from lpgnas.search._abs import AbsBackend
from lpgnas.search._differentiable import DEFAULT_LAMBDAS, DifferentiableBackend, task_baselines
from lpgnas.search._loop import SearchResult, search
from lpgnas.search._rundir import RunDir, read_log
from lpgnas.search._trials import (
    BASELINES,
    METRICS,
    RESULTS,
    TrialResult,
    iter_runs,
    read_results,
    read_trial_arch,
    record_trial,
    trial_arch_path,
)
from lpgnas.search._tune import TUNE_FILE, TuneOutcome, read_tune, result_from_report, run_tune
from lpgnas.search._backend import Backend
from lpgnas.search._steps import Program, Schedule, SearchState, init_state, make_program, split_supernet

__all__ = [
    "AbsBackend",
    "Backend",
    "DEFAULT_LAMBDAS",
    "DifferentiableBackend",
    "TUNE_FILE",
    "TuneOutcome",
    "read_tune",
    "result_from_report",
    "run_tune",
    "task_baselines",
    "BASELINES",
    "METRICS",
    "RESULTS",
    "TrialResult",
    "iter_runs",
    "read_results",
    "read_trial_arch",
    "record_trial",
    "trial_arch_path",
    "Program",
    "RunDir",
    "Schedule",
    "SearchConfig",
    "SearchResult",
    "SearchState",
    "init_state",
    "make_program",
    "read_log",
    "search",
    "split_supernet",
]
