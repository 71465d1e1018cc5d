"""The tune orchestrator: runs a :class:`~lpgnas.search._backend.Backend`'s trials on Ray Tune and
records every finished trial in a tune run directory.

``out/`` holds

* ``tune.json`` -- what was asked (backend, its settings, trials, seed, where Ray keeps the
  experiment); a resumed run must ask the same;
* ``results.jsonl``, ``trials/<id>/`` -- one record per finished trial, written by a Tune callback on
  the driver as each trial finishes (:func:`lpgnas.search.record_trial`: atomic files, then one log
  line; an id is never written twice);
* ``baselines.jsonl`` -- the backend's reference points, trained once on the driver;
* ``ray/<experiment>/`` -- Ray Tune's own experiment state (unless ``storage`` points elsewhere).

Fault tolerance. A trial whose worker dies is retried (``max_failures``). The driver may be killed
at any time: what was recorded stays recorded (every record is on disk before its log line), and
``resume=True`` restores the Ray experiment (:meth:`ray.tune.Tuner.restore`), so finished trials are
not run again. Tune snapshots its experiment state only every few seconds, so a trial that finished
just before the kill may come back as unfinished: it is *replayed* -- its worker reports the recorded
result at once instead of training -- and recorded trials that Ray lost track of cost nothing. After
the run, the experiment's finished trials are swept once more, so a trial that finished while the
driver was dying is recorded on resume (under its own id, once).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import socket
import time
import warnings
from typing import Any, Callable, Iterator, Mapping, NamedTuple

from lpgnas._jsonio import read_json
from lpgnas._validate import finite_number, is_int, non_negative_int, positive_int
from lpgnas.arch import Architecture
from lpgnas.errors import ConfigError, DataError, LpgnasError
from lpgnas.search._backend import Backend
from lpgnas.search._rundir import _diff, atomic_write_json
from lpgnas.search._trials import BASELINES, METRICS, RESULTS, TrialResult, read_results, record_trial

__all__ = ["run_tune", "TuneOutcome", "read_tune", "result_from_report", "TUNE_FILE", "TUNE_SCHEMA"]

TUNE_FILE = "tune.json"
TUNE_SCHEMA = "lpgnas.tune/v1"
# What makes two tunes the same tune (``--resume`` refuses a different one).
_IDENTITY = ("backend", "settings", "trials", "seed")
_TRAINABLE_NAME = "lpgnas_trial"
_LOG = logging.getLogger(__name__)


class TuneOutcome(NamedTuple):
    """What :func:`run_tune` did.

    ``results``: every trial record of ``out`` (this call's and earlier ones), in finishing order;
    ``baselines``: the reference points. ``recorded``: how many trials this call recorded.
    ``skipped``: ids of trials that ended without a final report (e.g. stopped early by a
    scheduler). ``failed``: ids of trials that errored after their retries. ``experiment``: Ray's
    experiment path (local folder or URI).
    """

    out: str
    results: list
    baselines: list
    recorded: int
    skipped: list
    failed: list
    wall_seconds: float
    experiment: str


def read_tune(out: str) -> dict:
    """The ``tune.json`` of a run directory (what was asked). Raises :class:`DataError` when it is
    missing or unreadable."""
    path = os.path.join(out, TUNE_FILE)
    spec = read_json(path, TUNE_FILE, missing="no such file: not a tune run directory")
    if not isinstance(spec, dict) or spec.get("schema") != TUNE_SCHEMA:
        raise DataError(path, f"not a {TUNE_SCHEMA} file")
    missing = [k for k in (*_IDENTITY, "experiment", "storage") if k not in spec]
    if missing:
        raise DataError(path, f"lacks {', '.join(missing)}")
    return spec


# --------------------------------------------------------------------------------------------------
# reports -> records


def _json_safe(v: Any) -> Any:
    if isinstance(v, Mapping):
        return {str(k): _json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_safe(x) for x in v]
    if isinstance(v, (bool, str)) or v is None:
        return v
    if isinstance(v, int) or (hasattr(v, "dtype") and getattr(v.dtype, "kind", "") in "iu"):
        return int(v)
    if isinstance(v, float) or (hasattr(v, "dtype") and getattr(v.dtype, "kind", "") == "f"):
        f = float(v)
        return f if math.isfinite(f) else None
    return str(v)


def result_from_report(trial_id: str, config: Mapping[str, Any], report: Mapping[str, Any] | None, *,
                       backend: str, dataset: str) -> tuple[TrialResult, Architecture] | None:
    """The record of a trial from its last report, or ``None`` when that report is not a final one
    (it lacks a :data:`METRICS` key or ``arch_json``). Raises :class:`DataError` on a final report
    whose values are malformed."""
    if not report or any(k not in report for k in (*METRICS, "arch_json")):
        return None
    source = f"trial {trial_id}"
    try:
        arch = Architecture.from_json(json.loads(report["arch_json"]), source=source)
    except (TypeError, json.JSONDecodeError) as e:
        raise DataError(source, f"arch_json is not valid JSON ({e})") from None
    extra = report.get("extra") or {}
    if isinstance(extra, str):
        try:
            extra = json.loads(extra)
        except json.JSONDecodeError:
            extra = {"extra": extra}
    if not isinstance(extra, Mapping):
        extra = {"extra": extra}
    try:
        result = TrialResult(
            trial_id=str(trial_id), backend=backend, dataset=str(report.get("dataset") or dataset),
            name=str(report.get("name", "")), node=str(report.get("node", "")),
            config=_json_safe(dict(config)), extra=_json_safe(dict(extra)),
            **{m: float(report[m]) for m in METRICS})
    except (TypeError, ValueError) as e:
        raise DataError(source, f"bad final report ({e})") from None
    return result, arch


def _replay_report(out: str, result: TrialResult) -> dict | None:
    """The final report a recorded trial made (rebuilt from its record), to replay it."""
    path = os.path.join(out, "trials", result.trial_id, "arch.json")
    try:
        with open(path) as f:
            arch_json = f.read()
    except FileNotFoundError:
        return None
    rep = {m: getattr(result, m) for m in METRICS}
    rep.update(arch_json=arch_json, node=result.node, name=result.name, dataset=result.dataset,
               extra=json.dumps({**result.extra, "replayed": True}))
    return rep


class _Session:
    """The recording side of one :func:`run_tune` call (the Tune callback forwards to it)."""

    def __init__(self, out: str, backend: str, dataset: str):
        self.out, self.backend, self.dataset = out, backend, dataset
        self.recorded = 0
        self.skipped: set[str] = set()
        self.failed: set[str] = set()

    def record(self, trial_id: str, config: Mapping, report: Mapping | None) -> None:
        try:
            got = result_from_report(trial_id, config, report, backend=self.backend, dataset=self.dataset)
        except LpgnasError as e:
            _LOG.error("lpgnas tune: trial %s not recorded: %s", trial_id, e)
            self.skipped.add(trial_id)
            return
        if got is None:
            self.skipped.add(trial_id)
            return
        self.skipped.discard(trial_id)
        if record_trial(self.out, got[0], got[1], log=RESULTS):
            self.recorded += 1


_ACTIVE: _Session | None = None


def _make_recorder_class():
    from ray import tune

    class _Recorder(tune.Callback):
        """Forwards finished trials to the running :func:`run_tune` call. Stateless: Tune pickles
        its callbacks with the experiment, and a restored experiment must record into the resumed
        run, not into the one that was pickled."""

        def on_trial_complete(self, iteration, trials, trial, **info):
            if _ACTIVE is not None:
                _ACTIVE.record(trial.trial_id, trial.config, trial.last_result)

        def on_trial_error(self, iteration, trials, trial, **info):
            if _ACTIVE is not None:
                _ACTIVE.failed.add(trial.trial_id)

    _Recorder.__qualname__ = "_Recorder"
    _Recorder.__module__ = __name__
    return _Recorder


def __getattr__(name: str):
    # ``_Recorder`` is built on first use, so that importing this module does not import Ray; it is
    # still picklable by reference (``lpgnas.search._tune._Recorder``).
    if name == "_Recorder":
        cls = _make_recorder_class()
        globals()["_Recorder"] = cls
        return cls
    raise AttributeError(name)


def _trainable(fn: Callable[[dict], None], replay: Mapping[str, dict]) -> Callable[[dict], None]:
    """The function Tune runs: ``fn`` unless the trial was recorded already (then its recorded
    report is replayed at once)."""

    def lpgnas_trial(config: dict) -> None:
        if replay:
            from ray import tune

            report = replay.get(tune.get_context().get_trial_id())
            if report is not None:
                tune.report(dict(report))
                return
        fn(config)

    return lpgnas_trial


# --------------------------------------------------------------------------------------------------
# Ray


@contextlib.contextmanager
def _ray_session(address: str | None, num_cpus: int | None, verbose: int) -> Iterator[bool]:
    """Use the Ray of this process if it is initialised, else attach to ``address`` /
    ``RAY_ADDRESS``, else start an embedded local Ray (no dashboard). Yields whether the cluster is
    embedded; only what this function started or attached is shut down / disconnected."""
    for key, value in (("RAY_USAGE_STATS_ENABLED", "0"), ("TUNE_GLOBAL_CHECKPOINT_S", "2")):
        os.environ.setdefault(key, value)
    import ray

    level = logging.ERROR if verbose <= 0 else (logging.WARNING if verbose == 1 else logging.INFO)
    if ray.is_initialized():
        yield False
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address:
        _probe(address)
    try:
        with warnings.catch_warnings():
            # JAX warns about any fork once it runs; Ray's fork is subprocess's fork + exec (safe)
            warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called", category=RuntimeWarning)
            if address:
                ray.init(address=address, logging_level=level, log_to_driver=verbose > 0)
            else:
                # no dashboard UI; Ray's dashboard agent still starts and must bind to loopback only
                ray.init(address="local", num_cpus=num_cpus or _cpu_count(), include_dashboard=False,
                         dashboard_host="127.0.0.1", logging_level=level, log_to_driver=verbose > 0)
    except (ConnectionError, ValueError, RuntimeError) as e:
        raise ConfigError("--address", f"cannot connect to Ray at {address or 'a new local instance'}: {e}") from None
    try:
        yield not address
    finally:
        ray.shutdown()


def _probe(address: str, timeout: float = 10.0) -> None:
    """Fail fast (a :class:`ConfigError` naming ``--address``) when nothing listens at ``address``:
    Ray itself retries an unreachable cluster for minutes."""
    if address in ("auto", "local"):
        return
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError("--address", f"expected HOST:PORT (or ray://HOST:PORT), got {address!r}")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as e:
        raise ConfigError("--address", f"no Ray cluster answers at {hostport} ({e.strerror or e})") from None


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _check_resources(cpus_per_trial: float, gpus_per_trial: float) -> None:
    import ray

    have = ray.cluster_resources()
    if cpus_per_trial > have.get("CPU", 0):
        raise ConfigError("--cpus-per-trial", f"{cpus_per_trial:g} CPUs per trial but the Ray cluster has "
                                              f"{have.get('CPU', 0):g}")
    if gpus_per_trial > have.get("GPU", 0):
        raise ConfigError("--gpus-per-trial", f"{gpus_per_trial:g} GPUs per trial but the Ray cluster has "
                                              f"{have.get('GPU', 0):g}")


@contextlib.contextmanager
def _quiet_tune(verbose: int) -> Iterator[None]:
    """Tune's console output engine prints a table even at ``verbose=0``; the legacy one does not.
    Optuna's INFO lines are held back, too."""
    if verbose > 0:
        yield
        return
    old = os.environ.get("RAY_AIR_NEW_OUTPUT")
    os.environ["RAY_AIR_NEW_OUTPUT"] = "0"
    searchers = logging.getLogger("optuna")  # a searcher's chatter (e.g. "A new study created")
    level = searchers.level
    searchers.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        searchers.setLevel(level)
        if old is None:
            os.environ.pop("RAY_AIR_NEW_OUTPUT", None)
        else:
            os.environ["RAY_AIR_NEW_OUTPUT"] = old


# --------------------------------------------------------------------------------------------------
# the run directory


def _is_uri(path: str) -> bool:
    return "://" in path


def _check_out(out: str, spec: dict, resume: bool) -> dict | None:
    """The stored tune.json of ``out`` when resuming; refuses a folder that is not fit for this run."""
    path = os.path.join(out, TUNE_FILE)
    if resume:
        if not os.path.isfile(path):
            raise ConfigError("--resume", f"{out} holds no {TUNE_FILE}: there is no tune to resume")
        stored = read_tune(out)
        diff = _diff({k: stored[k] for k in _IDENTITY}, {k: spec[k] for k in _IDENTITY})
        if diff is not None:
            raise ConfigError("--out", f"{out} holds a different tune ({diff}: "
                                       f"{_show(stored, diff)} there, {_show(spec, diff)} asked); use a new --out "
                                       "or resume with the run's own settings")
        return stored
    if os.path.isdir(out) and os.listdir(out):
        if os.path.isfile(path):
            try:
                stored = read_tune(out)
                same = _diff({k: stored[k] for k in _IDENTITY}, {k: spec[k] for k in _IDENTITY}) is None
            except DataError:
                same = False
            if same:
                raise ConfigError("--out", f"{out} already holds this tune; pass --resume to continue it or "
                                           "choose a new --out")
            raise ConfigError("--out", f"{out} holds a different tune; choose a new --out")
        raise ConfigError("--out", f"{out} is not empty and holds no tune ({TUNE_FILE}); choose a new or "
                                   "empty folder")
    if os.path.exists(out) and not os.path.isdir(out):
        raise ConfigError("--out", f"{out} is a file, not a folder")
    return None


def _show(spec: dict, dotted: str) -> str:
    v: Any = spec
    for part in dotted.split("."):
        if not isinstance(v, dict) or part not in v:
            return "(absent)"
        v = v[part]
    return json.dumps(v)


# --------------------------------------------------------------------------------------------------
# the run


def _check_args(trials, cpus_per_trial, gpus_per_trial, max_failures, max_concurrent, seed, num_cpus) -> None:
    positive_int("--trials", trials)
    finite_number("--cpus-per-trial", cpus_per_trial, gt=0)
    finite_number("--gpus-per-trial", gpus_per_trial, ge=0)
    if not is_int(max_failures) or max_failures < -1:
        raise ConfigError("--max-failures", f"must be an integer >= 0 (-1: retry forever), got {max_failures!r}")
    if max_concurrent is not None:
        positive_int("--max-concurrent", max_concurrent)
    non_negative_int("--seed", seed)
    if num_cpus is not None:
        positive_int("num_cpus", num_cpus)


def run_tune(backend: Backend, *, out: str, trials: int, address: str | None = None, resume: bool = False,
             cpus_per_trial: float = 1.0, gpus_per_trial: float = 0.0, max_failures: int = 2,
             max_concurrent: int | None = None, seed: int = 0, storage: str | None = None,
             num_cpus: int | None = None, verbose: int = 0) -> TuneOutcome:
    """Run ``trials`` trials of ``backend`` on Ray Tune and record them under ``out``.

    Args:
      backend: a :class:`~lpgnas.search._backend.Backend` (e.g. :class:`DifferentiableBackend`).
      out: the run directory (new or empty; with ``resume``, a run of the same tune).
      trials: Ray Tune's ``num_samples`` (with ``tune.grid_search`` in the parameter space, every
        grid point is run ``trials`` times).
      address: a Ray cluster to attach to (default ``$RAY_ADDRESS``); without one, an embedded local
        Ray with ``num_cpus`` CPUs (default: the CPUs this process may use) and no dashboard is
        started and shut down at the end. A Ray already initialised in this process is used as is.
      resume: continue the tune in ``out`` (restores Ray's experiment; finished trials do not run
        again; trials that errored run again). Settings must equal the stored ones.
      cpus_per_trial / gpus_per_trial: resources of a trial. max_failures: retries of a trial whose
        worker died or raised (-1: forever). max_concurrent: bound on running trials (default: as
        many as the resources allow). seed: seed of the random sampling of the parameter space.
      storage: where Ray keeps the experiment (a folder or a URI such as ``s3://bucket/prefix``;
        default ``out/ray``); the records are always written under ``out``.
      verbose: 0 quiet; 1 Ray warnings and worker output; 2 Tune's progress table.

    Returns:
      A :class:`TuneOutcome`. Raises :class:`ConfigError` (a field or flag named) for bad settings,
      a folder ``out`` that holds something else, or a cluster without the resources of a trial.
    """
    global _ACTIVE
    t_start = time.perf_counter()
    _check_args(trials, cpus_per_trial, gpus_per_trial, max_failures, max_concurrent, seed, num_cpus)
    if _is_uri(out):
        raise ConfigError("--out", f"must be a local folder (use --storage for a URI), got {out!r}")
    out = os.path.abspath(out)
    settings = backend.describe()
    spec = {"schema": TUNE_SCHEMA, "backend": backend.name, "settings": settings, "trials": trials, "seed": seed}
    stored = _check_out(out, spec, resume)
    if stored is not None:
        experiment_name, storage_value = stored["experiment"], stored["storage"]
        if storage is not None and _storage_value(storage) != storage_value:
            raise ConfigError("--storage", f"the tune in {out} keeps its Ray experiment at {storage_value}, "
                                           f"not {storage}")
    else:
        storage_value = _storage_value(storage)
        experiment_name = "tune" if storage is None else os.path.basename(out.rstrip(os.sep)) or "tune"
    storage_path = _storage_path(storage_value, out)
    experiment = (f"{storage_path.rstrip('/')}/{experiment_name}" if _is_uri(storage_path)
                  else os.path.join(storage_path, experiment_name))
    spec.update(experiment=experiment_name, storage=storage_value)
    spec["resources"] = {"cpus_per_trial": cpus_per_trial, "gpus_per_trial": gpus_per_trial,
                         "max_failures": max_failures, "max_concurrent": max_concurrent}
    now = time.strftime("%Y-%m-%dT%H:%M:%S")
    if stored is not None:
        spec.update(created=stored.get("created"), resumed=[*stored.get("resumed", []), now])
    else:
        spec["created"] = now

    created = not os.path.exists(out)
    os.makedirs(out, exist_ok=True)
    session = _Session(out, backend.name, str(settings.get("dataset", getattr(backend, "dataset", ""))))
    try:
        backend.prepare(out)  # bad data / space: fails before Ray starts
        ray_cm = _ray_session(address, num_cpus, verbose)
        ray_cm.__enter__()
    except BaseException:
        if created and not os.listdir(out):
            os.rmdir(out)
        raise
    try:
        with _quiet_tune(verbose):
            _check_resources(cpus_per_trial, gpus_per_trial)
            if stored is None and _experiment_exists(experiment):
                raise ConfigError("--storage", f"{experiment} already holds a Ray Tune experiment (of another "
                                               "run); choose another --storage or run directory name")
            atomic_write_json(os.path.join(out, TUNE_FILE), spec)
            for result, arch in backend.baselines(out):
                record_trial(out, result, arch, log=BASELINES)
            _ACTIVE = session
            grid = _tuner(backend, out=out, trials=trials, resume=resume, experiment=experiment,
                          experiment_name=experiment_name, storage_path=storage_path,
                          cpus_per_trial=cpus_per_trial, gpus_per_trial=gpus_per_trial, max_failures=max_failures,
                          max_concurrent=max_concurrent, seed=seed, verbose=verbose).fit()
            _sweep(session, grid)
    except BaseException:
        if created and os.listdir(out) == [] and stored is None:
            os.rmdir(out)
        raise
    finally:
        _ACTIVE = None
        ray_cm.__exit__(None, None, None)
    results = read_results(out)
    return TuneOutcome(out=out, results=results, baselines=read_results(out, log=BASELINES),
                       recorded=session.recorded, skipped=sorted(session.skipped),
                       failed=sorted(session.failed - {r.trial_id for r in results}),
                       wall_seconds=time.perf_counter() - t_start, experiment=experiment)


def _tuner(backend: Backend, *, out, trials, resume, experiment, experiment_name, storage_path, cpus_per_trial,
           gpus_per_trial, max_failures, max_concurrent, seed, verbose):
    """A new :class:`ray.tune.Tuner`, or the restored one of ``experiment`` when resuming."""
    from ray import tune
    from ray.tune.search.basic_variant import BasicVariantGenerator

    replay = {}
    if resume:
        for r in read_results(out):
            rep = _replay_report(out, r)
            if rep is not None:
                replay[r.trial_id] = rep
    resources = {"cpu": float(cpus_per_trial), "gpu": float(gpus_per_trial)}
    trainable = tune.with_resources(_trainable(backend.trainable(), replay), resources)
    if resume and tune.Tuner.can_restore(experiment):
        return tune.Tuner.restore(experiment, trainable=trainable, resume_errored=True)
    search_alg = backend.search_alg(trials, seed)
    concurrency = max_concurrent
    if search_alg is None:  # random / grid sampling, seeded; the generator bounds the concurrency itself
        search_alg = BasicVariantGenerator(max_concurrent=max_concurrent or 0, random_state=seed)
        concurrency = None
    return tune.Tuner(
        trainable,
        param_space=backend.param_space(),
        tune_config=tune.TuneConfig(
            metric=backend.metric, mode=backend.mode, num_samples=trials, search_alg=search_alg,
            scheduler=backend.scheduler(), max_concurrent_trials=concurrency, reuse_actors=True),
        run_config=tune.RunConfig(
            name=experiment_name, storage_path=storage_path,
            failure_config=tune.FailureConfig(max_failures=max_failures),
            callbacks=[_recorder()], verbose=max(0, min(int(verbose), 3))),
    )


def _recorder():
    import sys

    return getattr(sys.modules[__name__], "_Recorder")()


def _experiment_exists(experiment: str) -> bool:
    from ray import tune

    return bool(tune.Tuner.can_restore(experiment))


def _storage_value(storage: str | None) -> str:
    """What tune.json stores: ``ray`` (``out/ray``, relative so that a run directory can move), an
    absolute folder or a URI."""
    if storage is None:
        return "ray"
    if _is_uri(storage):
        return storage
    return os.path.abspath(os.path.expanduser(storage))


def _storage_path(value: str, out: str) -> str:
    return value if _is_uri(value) or os.path.isabs(value) else os.path.join(out, value)


def _sweep(session: _Session, grid) -> None:
    """Record the experiment's finished trials that the log lacks (e.g. finished while the driver of
    an earlier call was dying); count the errored ones."""
    done = {r.trial_id for r in read_results(session.out)}
    for i in range(len(grid)):
        res = grid[i]
        metrics = dict(res.metrics or {})
        trial_id = metrics.get("trial_id")
        if res.error is not None:
            if trial_id is not None:
                session.failed.add(str(trial_id))
            continue
        if trial_id is None or trial_id in done:
            continue
        session.record(str(trial_id), res.config or {}, metrics)

