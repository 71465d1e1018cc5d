"""Results of tune trials: :class:`TrialResult` and the run-directory files that hold them.

A tune run directory ``out/`` holds

* ``results.jsonl`` -- one :class:`TrialResult` per finished trial, appended as trials finish
  (append-only; a torn last line from a killed driver is skipped; a trial id is never written twice);
* ``baselines.jsonl`` -- the same records for the reference points (FP32, fixed-bit) of the run;
* ``trials/<trial_id>/arch.json`` and ``trials/<trial_id>/metrics.json`` -- each trial's
  architecture (``lpgnas.arch/v1``) and its record, both written atomically before the log line.

Accuracies are fractions in [0, 1] (as in the search summary); sizes are bits.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Any, Iterable, Mapping

from lpgnas.arch import Architecture, read_architecture, write_architecture
from lpgnas.errors import DataError
from lpgnas.search._rundir import atomic_write_json, read_log

__all__ = ["TrialResult", "RESULTS", "BASELINES", "METRICS", "record_trial", "read_results", "read_trial_arch",
           "trial_arch_path", "iter_runs"]

RESULTS = "results.jsonl"
BASELINES = "baselines.jsonl"

# The numeric metrics of a trial (all present in every record; NaN where a backend cannot measure one).
METRICS = ("val_acc", "test_acc", "model_size_bits", "buffer_bits", "bitops", "fp32_model_size_bits",
           "fp32_buffer_bits", "fp32_bitops", "seconds")


@dataclasses.dataclass(frozen=True)
class TrialResult:
    """One finished trial (or baseline point).

    ``trial_id``: unique within a run directory. ``backend``: ``differentiable``, ``abs`` or
    ``baseline``. ``name``: a short human label (e.g. ``lambda=0.3 seed=1`` or ``fp32 gcn``).
    ``config``: the sampled parameters (JSON values). ``seconds``: wall time of the trial.
    ``node``: the host (Ray node IP or hostname) the trial ran on. ``extra``: backend-specific
    JSON values (e.g. the search's own accuracies before retraining, std over seeds).
    """

    trial_id: str
    backend: str
    dataset: str
    val_acc: float
    test_acc: float
    model_size_bits: float
    buffer_bits: float
    bitops: float
    fp32_model_size_bits: float
    fp32_buffer_bits: float
    fp32_bitops: float
    seconds: float = 0.0
    name: str = ""
    config: Mapping[str, Any] = dataclasses.field(default_factory=dict, hash=False)
    node: str = ""
    extra: Mapping[str, Any] = dataclasses.field(default_factory=dict, hash=False)

    def __post_init__(self):
        if not isinstance(self.trial_id, str) or not self.trial_id or "/" in self.trial_id or self.trial_id in (".",
                                                                                                            ".."):
            raise ValueError(f"trial_id must be a non-empty name without '/', got {self.trial_id!r}")
        for m in METRICS:
            object.__setattr__(self, m, float(getattr(self, m)))

    @property
    def compression(self) -> float:
        """FP32 model size / model size."""
        return self.fp32_model_size_bits / self.model_size_bits if self.model_size_bits > 0 else math.inf

    @property
    def feature_compression(self) -> float:
        """FP32 feature memory / feature memory."""
        return self.fp32_buffer_bits / self.buffer_bits if self.buffer_bits > 0 else math.inf

    def metric(self, name: str) -> float:
        """A numeric metric by name: one of :data:`METRICS`, ``compression``, ``feature_compression``
        or a numeric ``extra`` entry."""
        if name in METRICS or name in ("compression", "feature_compression"):
            return float(getattr(self, name))
        v = self.extra.get(name)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return float(v)
        raise KeyError(name)

    def to_json(self) -> dict:
        out = dataclasses.asdict(self)
        out["config"] = dict(self.config)
        out["extra"] = dict(self.extra)
        return out

    @classmethod
    def from_json(cls, obj: Mapping[str, Any], *, source: str = "<record>") -> "TrialResult":
        if not isinstance(obj, Mapping):
            raise DataError(source, f"a trial record must be a JSON object, got {type(obj).__name__}")
        fields = {f.name for f in dataclasses.fields(cls)}
        missing = [f for f in ("trial_id", "backend", "dataset", *METRICS[:-1]) if f not in obj]
        if missing:
            raise DataError(source, f"trial record {obj.get('trial_id', '?')!r} lacks {', '.join(missing)}")
        try:
            return cls(**{k: v for k, v in obj.items() if k in fields})
        except (TypeError, ValueError) as e:
            raise DataError(source, f"bad trial record {obj.get('trial_id', '?')!r}: {e}") from None


def trial_arch_path(out: str, trial_id: str) -> str:
    return os.path.join(out, "trials", trial_id, "arch.json")


def _ids(path: str) -> set[str]:
    return {r.get("trial_id") for r in read_log(path) if isinstance(r, dict)}


def record_trial(out: str, result: TrialResult, arch: Architecture | None, *, log: str = RESULTS) -> bool:
    """Write ``trials/<id>/arch.json`` and ``metrics.json`` (atomically), then append the record to
    ``out/<log>`` unless that log already holds the id. Returns False when it did (nothing new is
    written then: a finished trial is recorded exactly once)."""
    path = os.path.join(out, log)
    if result.trial_id in _ids(path):
        return False
    folder = os.path.join(out, "trials", result.trial_id)
    os.makedirs(folder, exist_ok=True)
    if arch is not None:
        write_architecture(arch, os.path.join(folder, "arch.json"))
    atomic_write_json(os.path.join(folder, "metrics.json"), result.to_json())
    _append_line(path, json.dumps(result.to_json()))
    return True


def _append_line(path: str, line: str) -> None:
    # A killed writer can leave a torn last line without a newline: start on a fresh line then.
    prefix = ""
    if os.path.exists(path) and os.path.getsize(path) > 0:
        with open(path, "rb") as f:
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":
                prefix = "\n"
    with open(path, "a") as f:
        f.write(prefix + line + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_results(out: str, *, log: str = RESULTS) -> list[TrialResult]:
    """The records of ``out/<log>`` in the order they finished (torn lines skipped; the first record of
    an id wins). Raises :class:`DataError` when ``out`` is not a folder."""
    if not os.path.isdir(out):
        raise DataError(out, "no such run directory")
    path = os.path.join(out, log)
    seen: set[str] = set()
    results = []
    for rec in read_log(path):
        r = TrialResult.from_json(rec, source=path)
        if r.trial_id not in seen:
            seen.add(r.trial_id)
            results.append(r)
    return results


def read_trial_arch(out: str, trial_id: str) -> Architecture:
    """The architecture a trial wrote (``trials/<id>/arch.json``)."""
    return read_architecture(trial_arch_path(out, trial_id))


def iter_runs(paths: Iterable[str]) -> Iterable[tuple[str, TrialResult]]:
    """``(run_dir, result)`` for every trial of every run directory."""
    for p in paths:
        for r in read_results(p):
            yield p, r
