"""``lpgnas pareto`` and ``lpgnas export``: Pareto fronts of tune runs and the export of one model.

Both read a tune run directory (``results.jsonl``, ``baselines.jsonl``, ``trials/<id>/arch.json``;
see :mod:`lpgnas.search._trials`) and choose on validation accuracy and costs only.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os

__all__ = ["add_parsers", "load_runs"]

_DEFAULT_OBJECTIVES = "val_acc:max,model_size_bits:min"


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register the ``pareto`` and ``export`` subcommands."""
    p = sub.add_parser("pareto", help="non-dominated trials of tune runs: table, hypervolume, baselines, "
                                      "pareto.csv and pareto.png")
    p.add_argument("runs", nargs="+", metavar="RUN",
                   help="tune run directories (several runs of one dataset are pooled; ids become RUNNAME:ID)")
    p.add_argument("--objectives", default=_DEFAULT_OBJECTIVES,
                   help=f"comma-separated metric:max|min (default {_DEFAULT_OBJECTIVES}); metrics: val_acc, "
                        "test_acc, model_size_bits, buffer_bits, bitops, compression, feature_compression, ...")
    p.add_argument("--out", default=None, metavar="DIR", help="where pareto.csv and pareto.png go (default: the "
                                                             "first RUN)")
    p.add_argument("--reference", default=None, metavar="V1,V2",
                   help="hypervolume reference point in the objectives' units (default: 0 for maximised "
                        "objectives, 1.1 x the worst value of any trial or baseline for minimised ones)")
    p.add_argument("--json", action="store_true", help="print the front as one JSON object on the last line")
    p.set_defaults(func=_cmd_pareto)

    e = sub.add_parser("export", help="write the architecture JSON of one trial of a tune run")
    e.add_argument("run", metavar="RUN", help="tune run directory")
    e.add_argument("--pick", required=True, metavar="SPEC",
                   help="knee | max-acc | smallest | a trial id | max-acc:METRIC<=N (also >=, <, >; "
                        "smallest:... likewise; N a number or a baseline of the run scaled, e.g. "
                        "model_size_bits<=fp32-gcn/8); chosen on validation accuracy, never test accuracy")
    e.add_argument("-o", "--output", required=True, metavar="ARCH.json", help="architecture file to write")
    e.add_argument("--objectives", default=_DEFAULT_OBJECTIVES,
                   help=f"objectives of the front used by knee/max-acc/smallest (default {_DEFAULT_OBJECTIVES})")
    e.add_argument("--json", action="store_true", help="print what was picked as one JSON object on the last line")
    e.set_defaults(func=_cmd_export)


# -- reading runs ---------------------------------------------------------------------------------------


def _read_run(path: str):
    from lpgnas.errors import DataError
    from lpgnas.search import BASELINES, RESULTS, read_results

    if not os.path.isdir(path):
        raise DataError(path, "no such run directory")
    log = os.path.join(path, RESULTS)
    if not os.path.exists(log):
        raise DataError(log, "missing: not a tune run directory, or no trial has finished yet")
    records = read_results(path)
    trials = [r for r in records if r.backend != "baseline"]
    baselines = [r for r in records if r.backend == "baseline"] + read_results(path, log=BASELINES)
    if not trials:
        raise DataError(log, "holds no finished trial")
    return trials, baselines


def _run_names(paths: list[str]) -> list[str]:
    names = [os.path.basename(os.path.normpath(p)) or p for p in paths]
    if len(set(names)) == len(names):
        return names
    return [os.path.normpath(p).strip(os.sep).replace(os.sep, "_") or f"run{i}" for i, p in enumerate(paths)]


def load_runs(paths: list[str]):
    """``(trials, baselines, run_of)`` pooled over run directories: ids become ``RUNNAME:ID`` when
    there are several runs, ``run_of`` maps each (new) id to its run directory. Raises
    :class:`DataError` for a missing/empty run and :class:`ConfigError` (``RUN``) when the runs
    hold different datasets."""
    from lpgnas.errors import ConfigError

    unique, seen = [], set()
    for p in paths:
        key = os.path.realpath(p)
        if key not in seen:
            seen.add(key)
            unique.append(p)
    pooled = len(unique) > 1
    trials, baselines, run_of, dataset_of = [], [], {}, {}
    for path, name in zip(unique, _run_names(unique)):
        ts, bs = _read_run(path)
        for group, sink in ((ts, trials), (bs, baselines)):
            for r in group:
                if pooled:
                    r = dataclasses.replace(r, trial_id=f"{name}:{r.trial_id}")
                sink.append(r)
                run_of[r.trial_id] = path
                dataset_of.setdefault(r.dataset, path)
    if len(dataset_of) > 1:
        which = ", ".join(f"{d} ({p})" for d, p in dataset_of.items())
        raise ConfigError("RUN", f"the runs mix datasets: {which}; pool runs of one dataset only")
    return trials, baselines, run_of


# -- pareto -------------------------------------------------------------------------------------------


def _cmd_pareto(args: argparse.Namespace) -> int:
    from lpgnas import pareto as P

    objectives = P.parse_objectives(args.objectives)
    reference = None if args.reference is None else P.parse_reference(args.reference, objectives)
    trials, baselines, run_of = load_runs(list(args.runs))
    summary = P.front_summary(trials, baselines, objectives, reference=reference, runs=run_of)
    by_id = {r.trial_id: r for r in trials}
    front = [by_id[rec["trial_id"]] for rec in summary["front"]]
    out_dir = args.out if args.out is not None else args.runs[0]
    csv_path = os.path.join(out_dir, "pareto.csv")
    png_path = os.path.join(out_dir, "pareto.png")
    P.write_csv(csv_path, summary["front"])
    P.plot(png_path, trials, front, baselines, objectives)
    dataset = trials[0].dataset
    if not args.json:
        names = ", ".join(args.runs)
        print(f"{names}: {len(trials)} trials, {len(baselines)} baselines ({dataset}); objectives "
              f"{', '.join(summary['objectives'])}")
        print(f"non-dominated set ({len(front)} of {len(trials)}, chosen on validation accuracy):")
        print(P.format_table(front))
        ref = ", ".join(f"{o.name}={v:.6g}" for o, v in zip(objectives, summary["reference"]))
        hv = summary["hypervolume"]
        print(f"hypervolume {hv:.6g} (reference {ref})" if hv is not None else f"hypervolume inf (reference {ref})")
        for b in baselines:
            by = summary["dominated_by"][b.trial_id]
            label = f"{b.name} [{b.trial_id}]" if b.name and b.name != b.trial_id else b.trial_id
            verdict = f"dominated by the front (e.g. {by})" if by is not None else "NOT dominated by the front"
            print(f"baseline {label}: {verdict}")
        print(f"wrote {csv_path} and {png_path}")
    else:
        out = {"objectives": summary["objectives"], "dataset": dataset, "runs": list(args.runs),
               "trials": len(trials), "front": summary["front"], "hypervolume": summary["hypervolume"],
               "reference": summary["reference"], "baselines_dominated": summary["baselines_dominated"],
               "dominated_by": summary["dominated_by"], "csv": csv_path, "png": png_path}
        print(json.dumps(out))
    return 0


# -- export -------------------------------------------------------------------------------------------


def _cmd_export(args: argparse.Namespace) -> int:
    from lpgnas import pareto as P
    from lpgnas.arch import write_architecture
    from lpgnas.search import read_trial_arch

    objectives = P.parse_objectives(args.objectives)
    trials, baselines = _read_run(args.run)
    spec = args.pick.strip()
    # ids as `lpgnas pareto` prints them when it pools runs (RUNNAME:ID) are accepted too
    prefix = os.path.basename(os.path.normpath(args.run)) + ":"
    ids = {r.trial_id for r in trials}
    if spec not in ids and spec.startswith(prefix) and spec[len(prefix):] in ids:
        spec = spec[len(prefix):]
    chosen = P.pick(trials, spec, objectives, baselines)
    arch = read_trial_arch(args.run, chosen.trial_id)
    record = P.trial_record(chosen, os.path.abspath(args.run))
    provenance = {k: record[k] for k in ("run", "trial_id", "name", "backend", "dataset", "val_acc", "test_acc",
                                         "model_size_bits", "buffer_bits", "bitops", "fp32_model_size_bits",
                                         "fp32_buffer_bits", "compression", "feature_compression")}
    provenance = {"pick": args.pick, "objectives": [str(o) for o in objectives], **provenance}
    search = dict(arch.search or {})
    search["export"] = provenance
    exported = dataclasses.replace(arch, search=search)
    write_architecture(exported, args.output)
    if args.json:
        print(json.dumps({"out": args.output, **provenance}))
        return 0
    print(f"picked {chosen.trial_id} ({chosen.name or '-'}) by {args.pick!r} from {args.run}:")
    print(P.format_table([chosen]))
    print(f"wrote {args.output} (retrain with: lpgnas train --arch {args.output} --dataset {chosen.dataset})")
    return 0
