"""Pareto fronts of tune runs: non-dominated sets, hypervolume, knee, the export selector, tables,
CSV and plots.

Conventions (shared by ``lpgnas pareto``, ``lpgnas export`` and the experiment scripts):

* An :class:`Objective` is a metric name of :class:`~lpgnas.search.TrialResult` (one of
  :data:`lpgnas.search.METRICS`, ``compression`` or ``feature_compression``) and a sense, ``max`` or
  ``min``. Internally every objective is turned into one to *minimise* (maximised ones are negated).
* **Dominance**: ``a`` dominates ``b`` when ``a`` is at least as good in every objective and strictly
  better in one. Equal points do not dominate each other, so duplicates on the front are **all kept**
  (in input order). A point with NaN in an objective is never on the front and dominates nothing.
* **Hypervolume**: the exact volume (in the objectives' own units, e.g. accuracy fraction x bits) of
  the region dominated by the front and bounded by the reference point. Points not strictly better
  than the reference in every objective add nothing. 2 objectives: one sweep; 3+: slicing along the
  last objective (exact, ``O(n^(k-1) log n)``; fronts here are small).
* **Default reference** (:func:`default_reference`): over all trials *and* baselines, per objective,
  ``min`` objectives take the worst (largest) finite value plus 10% of its magnitude (``1.1 x worst``
  for the positive costs), ``max`` objectives take ``min(0, worst - 10% |worst|)``, i.e. 0 for
  accuracies and compressions. Pass ``reference`` (own units) to override.
* **Knee** (:func:`knee`): objectives are normalised to [0, 1] over the front's points with finite
  values (0 = best; the others are not candidates). With two objectives, the point with the largest
  signed distance from the straight line through the two extreme points, positive on the side of the
  ideal point (ties: the first in front order). With 3+, the point closest (Euclidean) to the ideal
  point (the normalised origin).
* **Picks** (:func:`pick`) use validation accuracy and the costs only, never test accuracy.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
from typing import Any, Iterable, Mapping, NamedTuple, Sequence

import numpy as np

from lpgnas._atomic import atomic_write_bytes
from lpgnas.errors import ConfigError
from lpgnas.search import METRICS, TrialResult

__all__ = [
    "Objective",
    "OBJECTIVE_NAMES",
    "DEFAULT_OBJECTIVES",
    "parse_objectives",
    "parse_reference",
    "objective_matrix",
    "dominates",
    "non_dominated",
    "default_reference",
    "hypervolume",
    "knee",
    "pick",
    "PICK_FORMS",
    "sort_front",
    "trial_record",
    "front_summary",
    "format_table",
    "TABLE_COLUMNS",
    "write_csv",
    "plot",
]

OBJECTIVE_NAMES = METRICS + ("compression", "feature_compression")
DEFAULT_OBJECTIVES = "val_acc:max,model_size_bits:min"
PICK_FORMS = ("knee", "max-acc", "smallest", "<trial id>", "max-acc:<metric><op><number|baseline[/x]>",
              "smallest:<metric><op><number|baseline[/x]>")
_ACCURACIES = ("val_acc", "test_acc")


class Objective(NamedTuple):
    """One objective: a metric name and ``"max"`` or ``"min"``."""

    name: str
    sense: str

    def __str__(self) -> str:
        return f"{self.name}:{self.sense}"


# -- objectives ---------------------------------------------------------------------------------------


def parse_objectives(spec: str, *, field: str = "--objectives") -> tuple[Objective, ...]:
    """``"val_acc:max,model_size_bits:min"`` -> objectives. At least two, no duplicates; the names are
    :data:`OBJECTIVE_NAMES`. Raises :class:`ConfigError` naming ``field``."""
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(field, f"expected a list like {DEFAULT_OBJECTIVES!r}, got {spec!r}")
    out: list[Objective] = []
    for part in spec.split(","):
        part = part.strip()
        name, sep, sense = part.partition(":")
        name, sense = name.strip(), sense.strip()
        if not sep:
            raise ConfigError(field, f"{part!r} has no sense; write {part}:max or {part}:min")
        if name not in OBJECTIVE_NAMES:
            raise ConfigError(field, f"unknown metric {name!r}; allowed: {', '.join(OBJECTIVE_NAMES)}")
        if sense not in ("max", "min"):
            raise ConfigError(field, f"{part!r}: the sense must be max or min, got {sense!r}")
        if any(o.name == name for o in out):
            raise ConfigError(field, f"{name} is given twice")
        out.append(Objective(name, sense))
    if len(out) < 2:
        raise ConfigError(field, f"a Pareto front needs at least two objectives, got {len(out)}")
    return tuple(out)


def parse_reference(spec: str, objectives: Sequence[Objective], *, field: str = "--reference") -> tuple[float, ...]:
    """``"0,2e6"`` -> one finite number per objective (in the objectives' own units)."""
    parts = [p.strip() for p in str(spec).split(",")]
    if len(parts) != len(objectives):
        raise ConfigError(field, f"needs one value per objective ({', '.join(map(str, objectives))}), "
                                 f"got {len(parts)}")
    values = []
    for p in parts:
        try:
            v = float(p)
        except ValueError:
            raise ConfigError(field, f"{p!r} is not a number") from None
        if not math.isfinite(v):
            raise ConfigError(field, f"{p!r} is not a finite number")
        values.append(v)
    return tuple(values)


def objective_matrix(points: Sequence[TrialResult], objectives: Sequence[Objective]) -> np.ndarray:
    """``(n, k)`` float64 values to *minimise* (maximised objectives negated)."""
    sign = np.array([-1.0 if o.sense == "max" else 1.0 for o in objectives], dtype=np.float64)
    values = np.array([[p.metric(o.name) for o in objectives] for p in points], dtype=np.float64)
    return values.reshape(len(points), len(objectives)) * sign.reshape(1, -1)


def _reference_vector(reference: Sequence[float], objectives: Sequence[Objective]) -> np.ndarray:
    if len(reference) != len(objectives):
        raise ConfigError("reference", f"needs {len(objectives)} values, got {len(reference)}")
    sign = np.array([-1.0 if o.sense == "max" else 1.0 for o in objectives], dtype=np.float64)
    return np.asarray(reference, dtype=np.float64) * sign


# -- dominance ----------------------------------------------------------------------------------------


def dominates(a: TrialResult, b: TrialResult, objectives: Sequence[Objective]) -> bool:
    """Whether ``a`` is at least as good as ``b`` in every objective and better in one (NaN: False)."""
    y = objective_matrix([a, b], objectives)
    return bool(np.all(y[0] <= y[1]) and np.any(y[0] < y[1]))


def _dominated_mask(y: np.ndarray) -> np.ndarray:
    """``mask[i]``: some row of ``y`` dominates row ``i`` (rows with NaN never dominate)."""
    n = y.shape[0]
    out = np.zeros(n, dtype=bool)
    block = 512  # caps the (block, n, k) comparison tensors
    for start in range(0, n, block):
        yi = y[start:start + block]
        le = np.all(y[:, None, :] <= yi[None, :, :], axis=-1)
        lt = np.any(y[:, None, :] < yi[None, :, :], axis=-1)
        out[start:start + block] = np.any(le & lt, axis=0)
    return out


def non_dominated(points: Sequence[TrialResult], objectives: Sequence[Objective]) -> list[TrialResult]:
    """The points that no other point dominates, in input order. Equal points are all kept; points
    with NaN in an objective are left out."""
    points = list(points)
    if not points:
        return []
    y = objective_matrix(points, objectives)
    keep = ~_dominated_mask(y) & ~np.any(np.isnan(y), axis=1)
    return [p for p, k in zip(points, keep.tolist()) if k]


def sort_front(front: Sequence[TrialResult], objectives: Sequence[Objective]) -> list[TrialResult]:
    """The front ordered by the first objective, best first (ties by the next objectives; stable)."""
    front = list(front)
    if not front:
        return []
    y = objective_matrix(front, objectives)
    order = np.lexsort(tuple(y[:, j] for j in reversed(range(y.shape[1]))))
    return [front[i] for i in order.tolist()]


# -- hypervolume --------------------------------------------------------------------------------------


def default_reference(points: Iterable[TrialResult], objectives: Sequence[Objective]) -> tuple[float, ...]:
    """The reference point used when none is given (own units): per ``min`` objective the worst finite
    value plus 10% of its magnitude (1 when the worst is 0); per ``max`` objective ``min(0, worst -
    10% |worst|)``. ``points`` should be every trial and every baseline."""
    points = list(points)
    ref = []
    for o in objectives:
        v = np.array([p.metric(o.name) for p in points], dtype=np.float64)
        v = v[np.isfinite(v)]
        if o.sense == "min":
            if v.size == 0:
                ref.append(1.0)
                continue
            worst = float(np.max(v))
            ref.append(worst + 0.1 * abs(worst) if worst != 0.0 else 1.0)
        else:
            worst = float(np.min(v)) if v.size else 0.0
            ref.append(min(0.0, worst - 0.1 * abs(worst)))
    return tuple(ref)


def _hv2(y: np.ndarray, r: np.ndarray) -> float:
    order = np.lexsort((y[:, 1], y[:, 0]))
    x, z = y[order, 0], y[order, 1]
    best = np.minimum.accumulate(z)
    prev = np.concatenate([r[1:2], best[:-1]])
    return float(np.sum((r[0] - x) * (prev - best)))


def _hv(y: np.ndarray, r: np.ndarray) -> float:
    if y.shape[0] == 0:
        return 0.0
    k = y.shape[1]
    if k == 1:
        return float(r[0] - np.min(y[:, 0]))
    if k == 2:
        return _hv2(y, r)
    last = y[:, -1]
    levels = np.unique(last)  # sorted
    bounds = np.concatenate([levels[1:], r[-1:]])
    total = 0.0
    for z, z_next in zip(levels.tolist(), bounds.tolist()):
        total += _hv(y[last <= z, :-1], r[:-1]) * (z_next - z)
    return total


def hypervolume(front: Sequence[TrialResult], objectives: Sequence[Objective],
                reference: Sequence[float]) -> float:
    """Exact hypervolume of ``front`` w.r.t. ``reference`` (own units; see the module docstring).
    Dominated points in ``front`` are harmless (they add nothing)."""
    if len(objectives) < 1:
        raise ConfigError("objectives", "needs at least one objective")
    r = _reference_vector(reference, objectives)
    if not front:
        return 0.0
    y = objective_matrix(list(front), objectives)
    y = y[np.all(y < r.reshape(1, -1), axis=1)]  # NaN rows fail the comparison too
    return _hv(y, r)


# -- knee ---------------------------------------------------------------------------------------------


def knee(front: Sequence[TrialResult], objectives: Sequence[Objective]) -> TrialResult:
    """The knee of a front (see the module docstring). Raises :class:`ValueError` on an empty front."""
    front = list(front)
    if not front:
        raise ValueError("knee of an empty front")
    y = objective_matrix(front, objectives)
    ok = np.all(np.isfinite(y), axis=1)
    if not np.any(ok):
        return front[0]
    idx = np.flatnonzero(ok)
    y = y[idx]
    lo, hi = np.min(y, axis=0), np.max(y, axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    n = (y - lo.reshape(1, -1)) / span.reshape(1, -1)
    if len(objectives) == 2:
        a = n[np.lexsort((n[:, 1], n[:, 0]))[0]]
        b = n[np.lexsort((n[:, 0], n[:, 1]))[0]]
        d = b - a
        length = float(np.hypot(d[0], d[1]))
        if length == 0.0:
            return front[int(idx[0])]
        cross = (d[0] * (n[:, 1] - a[1]) - d[1] * (n[:, 0] - a[0])) / length
        toward_ideal = d[0] * (0.0 - a[1]) - d[1] * (0.0 - a[0])
        signed = -cross if toward_ideal < 0 else cross
        return front[int(idx[int(np.argmax(signed))])]
    return front[int(idx[int(np.argmin(np.sum(n * n, axis=1)))])]


# -- picks --------------------------------------------------------------------------------------------

_CONSTRAINT = re.compile(r"^\s*([a-z_]+)\s*(<=|>=|<|>)\s*(\S+)\s*$")
_OPS = {"<=": np.less_equal, ">=": np.greater_equal, "<": np.less, ">": np.greater}


def _finite(v: float, default: float) -> float:
    return v if not math.isnan(v) else default


def _max_acc(candidates: Sequence[TrialResult]) -> TrialResult | None:
    ok = [r for r in candidates if not math.isnan(r.val_acc)]
    if not ok:
        return None
    return min(ok, key=lambda r: (-r.val_acc, _finite(r.model_size_bits, math.inf)))


def _smallest(candidates: Sequence[TrialResult]) -> TrialResult | None:
    ok = [r for r in candidates if not math.isnan(r.model_size_bits)]
    if not ok:
        return None
    return min(ok, key=lambda r: (r.model_size_bits, -_finite(r.val_acc, -math.inf)))


_BASELINE_BOUND = re.compile(r"^([A-Za-z][A-Za-z0-9_.-]*?)(?:([/*])([0-9.eE+-]+))?$")


def _bound(name: str, number: str, spec: str, baselines: Mapping[str, TrialResult]) -> tuple[float, bool]:
    """A constraint's bound and whether it came from a baseline: a plain number, or
    ``BASELINE[/x | *x]``, the same metric of a baseline of the run scaled (``fp32-gcn/8``: an eighth
    of the FP32 GCN's value)."""
    from_baseline = False
    try:
        value = float(number)
    except ValueError:
        from_baseline = True
        m = _BASELINE_BOUND.match(number)
        if m is None or m.group(1) not in baselines:
            known = f"; baselines of this run: {', '.join(sorted(baselines))}" if baselines else ""
            raise ConfigError("--pick", f"{spec!r}: {number!r} is neither a number nor BASELINE[/x|*x]{known}") \
                from None
        base_id, op, factor = m.groups()
        value = baselines[base_id].metric(name)
        if op is not None:
            try:
                f = float(factor)
            except ValueError:
                raise ConfigError("--pick", f"{spec!r}: {factor!r} in {number!r} is not a number") from None
            if op == "/" and f == 0.0:
                raise ConfigError("--pick", f"{spec!r}: division by zero in {number!r}")
            value = value / f if op == "/" else value * f
        if math.isnan(value):
            raise ConfigError("--pick", f"{spec!r}: baseline {base_id!r} has no {name}")
    if math.isnan(value):
        raise ConfigError("--pick", f"{spec!r}: the bound must be a number, got {number!r}")
    return value, from_baseline


def _constraints(text: str, spec: str, baselines: Mapping[str, TrialResult]
                 ) -> tuple[list[tuple[str, str, float]], bool]:
    """The ``(metric, op, bound)`` of every constraint in ``text``, and whether any bound named a
    baseline."""
    out = []
    any_baseline = False
    for part in text.split(","):
        m = _CONSTRAINT.match(part)
        if m is None:
            raise ConfigError("--pick", f"{spec!r}: cannot read the constraint {part.strip()!r}; write e.g. "
                                        "max-acc:model_size_bits<=1e6")
        name, op, number = m.groups()
        if name not in OBJECTIVE_NAMES:
            raise ConfigError("--pick", f"{spec!r}: unknown metric {name!r}; allowed: {', '.join(OBJECTIVE_NAMES)}")
        value, from_baseline = _bound(name, number, spec, baselines)
        out.append((name, op, value))
        any_baseline = any_baseline or from_baseline
    return out, any_baseline


def pick(results: Sequence[TrialResult], spec: str, objectives: Sequence[Objective],
         baselines: Sequence[TrialResult] = ()) -> TrialResult:
    """The trial the export selector ``spec`` names (validation accuracy and costs only):

    * ``knee`` -- :func:`knee` of the front; ``max-acc`` -- the highest ``val_acc`` on the front (ties:
      smaller ``model_size_bits``); ``smallest`` -- the lowest ``model_size_bits`` on the front (ties:
      higher ``val_acc``). The front is :func:`non_dominated` of ``results`` under ``objectives``.
    * a trial id of ``results`` (checked after the three keywords);
    * ``max-acc:<metric><op><number>[,...]`` / ``smallest:<metric><op><number>[,...]`` (``op`` one of
      ``<= >= < >``, plain numbers such as ``1e6``): as above among **all** trials meeting every bound.
      A bound may also name one of ``baselines`` (by trial id), scaled by ``/x`` or ``*x``:
      ``max-acc:model_size_bits<=fp32-gcn/8`` is the best trial at most an eighth of the FP32 GCN.

    Raises :class:`ConfigError` (``--pick``) for an unknown form or id, or when no trial qualifies.
    """
    results = list(results)
    spec = str(spec).strip()
    if not results:
        raise ConfigError("--pick", "there are no trials to pick from")
    if spec in ("knee", "max-acc", "smallest"):
        front = non_dominated(results, objectives)
        if not front:
            raise ConfigError("--pick", f"{spec}: no trial has finite values of {', '.join(map(str, objectives))}")
        chosen = knee(front, objectives) if spec == "knee" else (_max_acc(front) if spec == "max-acc"
                                                               else _smallest(front))
        if chosen is None:
            raise ConfigError("--pick", f"{spec}: no trial on the front has a value to rank by")
        return chosen
    by_id = {r.trial_id: r for r in results}
    if spec in by_id:
        return by_id[spec]
    base, sep, rest = spec.partition(":")
    if sep and base in ("max-acc", "smallest"):
        bounds, any_baseline = _constraints(rest, spec, {b.trial_id: b for b in baselines})
        mask = np.ones(len(results), dtype=bool)
        for name, op, value in bounds:
            v = np.array([r.metric(name) for r in results], dtype=np.float64)
            mask &= _OPS[op](v, value)  # NaN never qualifies
        candidates = [r for r, k in zip(results, mask.tolist()) if k]
        chosen = (_max_acc if base == "max-acc" else _smallest)(candidates)
        if chosen is None:
            hints = []
            for name, _, _ in bounds:
                v = np.array([r.metric(name) for r in results], dtype=np.float64)
                v = v[~np.isnan(v)]
                if v.size:
                    hints.append(f"{name} ranges {_num(float(np.min(v)))} .. {_num(float(np.max(v)))}")
            if any_baseline:  # say what the bounds came to
                hints.insert(0, "that is " + ", ".join(f"{name}{op}{_num(value)}" for name, op, value in bounds))
            raise ConfigError("--pick", f"no trial satisfies {rest.strip()}" + (f" ({'; '.join(hints)})"
                                                                                 if hints else ""))
        return chosen
    known = ", ".join(sorted(by_id)[:5]) + (", ..." if len(by_id) > 5 else "")
    raise ConfigError("--pick", f"{spec!r} is neither a trial id ({known}) nor one of {', '.join(PICK_FORMS)}")


def _num(v: float) -> str:
    return f"{v:.6g}"


# -- records, summary ---------------------------------------------------------------------------------


def trial_record(result: TrialResult, run: str | None = None) -> dict[str, Any]:
    """A flat JSON-ready record: run, trial_id, name, backend, dataset, every metric, compression,
    feature_compression, node, config (non-finite numbers become ``None``)."""
    rec: dict[str, Any] = {"run": run, "trial_id": result.trial_id, "name": result.name,
                           "backend": result.backend, "dataset": result.dataset}
    for m in METRICS + ("compression", "feature_compression"):
        v = result.metric(m)
        rec[m] = v if math.isfinite(v) else None
    rec["node"] = result.node
    rec["config"] = dict(result.config)
    return rec


def front_summary(results: Sequence[TrialResult], baselines: Sequence[TrialResult],
                  objectives: Sequence[Objective], *, reference: Sequence[float] | None = None,
                  runs: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Everything ``lpgnas pareto --json`` reports, JSON-ready: ``objectives`` (``name:sense``),
    ``front`` (:func:`trial_record` of the sorted front; ``runs`` maps trial ids to their run),
    ``hypervolume``, ``reference`` (the one used), ``baselines_dominated`` (baseline id -> whether a
    front point dominates it) and ``dominated_by`` (baseline id -> a dominating front trial id or None)."""
    results, baselines = list(results), list(baselines)
    front = sort_front(non_dominated(results, objectives), objectives)
    ref = tuple(float(v) for v in reference) if reference is not None else default_reference(
        results + baselines, objectives)
    hv = hypervolume(front, objectives, ref)
    runs = runs or {}
    dominated_by: dict[str, str | None] = {}
    if front and baselines:
        yf = objective_matrix(front, objectives)
        yb = objective_matrix(baselines, objectives)
        le = np.all(yf[:, None, :] <= yb[None, :, :], axis=-1)
        lt = np.any(yf[:, None, :] < yb[None, :, :], axis=-1)
        dom = le & lt  # (front, baselines)
        for j, b in enumerate(baselines):
            hit = np.flatnonzero(dom[:, j])
            dominated_by[b.trial_id] = front[int(hit[0])].trial_id if hit.size else None
    else:
        dominated_by = {b.trial_id: None for b in baselines}
    return {
        "objectives": [str(o) for o in objectives],
        "front": [trial_record(r, runs.get(r.trial_id)) for r in front],
        "hypervolume": hv if math.isfinite(hv) else None,
        "reference": list(ref),
        "baselines_dominated": {k: v is not None for k, v in dominated_by.items()},
        "dominated_by": dominated_by,
    }


# -- tables, CSV --------------------------------------------------------------------------------------


def _pct(v: float) -> str:
    return "-" if math.isnan(v) else f"{100.0 * v:.2f}"


def _kib(bits: float) -> str:
    return "-" if math.isnan(bits) else f"{bits / 8192.0:.1f}"


def _times(v: float) -> str:
    return "-" if math.isnan(v) else ("inf" if math.isinf(v) else f"{v:.1f}x")


def _si(v: float) -> str:
    if math.isnan(v):
        return "-"
    for factor, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= factor:
            return f"{v / factor:.3g}{suffix}"
    return f"{v:.3g}"


TABLE_COLUMNS = ("id", "name", "val %", "test %", "size KiB", "compr", "feat KiB", "feat compr", "bitops")


def format_table(rows: Sequence[TrialResult]) -> str:
    """A plain-text table: id, name, val/test accuracy (%), model size (KiB), compression (x), feature
    memory (KiB), feature compression (x), BitOPs (SI suffix)."""
    cells = [list(TABLE_COLUMNS)]
    for r in rows:
        cells.append([r.trial_id, r.name or "-", _pct(r.val_acc), _pct(r.test_acc), _kib(r.model_size_bits),
                      _times(r.compression), _kib(r.buffer_bits), _times(r.feature_compression), _si(r.bitops)])
    widths = [max(len(row[j]) for row in cells) for j in range(len(TABLE_COLUMNS))]
    lines = []
    for row in cells:
        parts = [c.ljust(w) if j < 2 else c.rjust(w) for j, (c, w) in enumerate(zip(row, widths))]
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)


def _cell(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, (dict, list, tuple)):
        return json.dumps(v, sort_keys=True)
    return v


def write_csv(path: str | os.PathLike, rows: Sequence[Mapping[str, Any]]) -> None:
    """Write records (e.g. :func:`trial_record`) as CSV, atomically. Columns: the union of the keys in
    first-seen order; nested values as JSON; ``None`` as an empty cell."""
    columns: list[str] = []
    for row in rows:
        for k in row:
            if k not in columns:
                columns.append(k)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in columns])
    atomic_write_bytes(os.fspath(path), buf.getvalue().encode())


# -- plot ---------------------------------------------------------------------------------------------

_LABELS = {"val_acc": "validation accuracy (%)", "test_acc": "test accuracy (%)",
           "model_size_bits": "model size (KiB)", "buffer_bits": "feature memory (KiB)", "bitops": "BitOPs",
           "fp32_model_size_bits": "FP32 model size (KiB)", "fp32_buffer_bits": "FP32 feature memory (KiB)",
           "fp32_bitops": "FP32 BitOPs", "seconds": "trial time (s)", "compression": "compression (x)",
           "feature_compression": "feature compression (x)"}


def _display(name: str, values: np.ndarray) -> np.ndarray:
    if name in _ACCURACIES:
        return 100.0 * values
    if name.endswith("size_bits") or name.endswith("buffer_bits"):
        return values / 8192.0
    return values


def _axes_objectives(objectives: Sequence[Objective]) -> tuple[Objective, Objective]:
    y = next((o for o in objectives if o.name == "val_acc"), Objective("val_acc", "max"))
    others = [o for o in objectives if o.name != "val_acc"]
    x = next((o for o in others if o.sense == "min"), others[0] if others else objectives[0])
    return x, y


def plot(path: str | os.PathLike, trials: Sequence[TrialResult], front: Sequence[TrialResult],
         baselines: Sequence[TrialResult], objectives: Sequence[Objective], *, title: str | None = None) -> None:
    """Draw all trials (grey), the front (a step line through its 2-D projection + highlighted points)
    and the baselines (labelled markers): x = the first cost objective (log scale when all values are
    positive), y = validation accuracy in percent. Written as PNG atomically (Agg canvas, no pyplot)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    xo, yo = _axes_objectives(objectives)

    def xy(points: Sequence[TrialResult]) -> tuple[np.ndarray, np.ndarray]:
        x = np.array([p.metric(xo.name) for p in points], dtype=np.float64)
        y = np.array([p.metric(yo.name) for p in points], dtype=np.float64)
        ok = np.isfinite(x) & np.isfinite(y)
        return _display(xo.name, x[ok]), _display(yo.name, y[ok])

    fig = Figure(figsize=(7.0, 4.8), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    tx, ty = xy(trials)
    ax.scatter(tx, ty, s=14, c="0.6", label=f"trials ({len(trials)})", zorder=1)
    proj = non_dominated(list(front), (xo, yo))
    px, py = xy(proj)
    if px.size:
        order = np.argsort(px, kind="stable")
        ax.step(px[order], py[order], where="post" if xo.sense == "min" else "pre", color="tab:blue", lw=1.5,
                zorder=2)
    fx, fy = xy(front)
    ax.scatter(fx, fy, s=36, c="tab:blue", edgecolors="k", linewidths=0.5, label=f"front ({len(front)})",
               zorder=3)
    markers = ("s", "^", "D", "v", "P", "X", "*", "h")
    for i, b in enumerate(baselines):
        bx, by = xy([b])
        if not bx.size:
            continue
        ax.scatter(bx, by, s=50, marker=markers[i % len(markers)], c="tab:red", edgecolors="k", linewidths=0.5,
                   zorder=4, label="baselines" if i == 0 else None)
        ax.annotate(b.name or b.trial_id, (float(bx[0]), float(by[0])), textcoords="offset points", xytext=(5, 4),
                    fontsize=7, color="tab:red")
    every_x = np.concatenate([tx, fx] + [xy([b])[0] for b in baselines])
    if every_x.size and np.all(every_x > 0):
        ax.set_xscale("log")
    ax.set_xlabel(_LABELS.get(xo.name, xo.name))
    ax.set_ylabel(_LABELS.get(yo.name, yo.name))
    if title is None:
        datasets = sorted({p.dataset for p in list(trials) + list(baselines)})
        title = f"Pareto front: {', '.join(datasets) or '?'} ({', '.join(map(str, objectives))})"
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    handles, _ = ax.get_legend_handles_labels()
    if handles:
        ax.legend(fontsize=8, loc="lower right")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    atomic_write_bytes(os.fspath(path), buf.getvalue())
