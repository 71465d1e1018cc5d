"""``lpgnas tune``: Ray Tune sweeps of a search backend (``differentiable``: LPGNAS searches over
the cost weight lambda, each derived architecture retrained from scratch; ``abs``: SGQuant
automatic bit selection), recorded in a run directory (see :mod:`lpgnas.search._tune`).

Output: a table of the recorded trials (accuracies in percent, sizes in KiB, compression = FP32
model size / model size) and the baselines. With ``--json`` the last stdout line is one JSON object:
``out``, ``backend``, ``dataset``, ``experiment`` (Ray's experiment path), ``trials_requested``,
``trials_recorded`` (records in ``results.jsonl``), ``recorded_now`` (by this call),
``trials_skipped`` / ``skipped_ids`` (ended without a final report), ``trials_failed`` /
``failed_ids`` (errored after their retries), ``wall_seconds``, and ``results`` / ``baselines``
(every record, as :meth:`lpgnas.search.TrialResult.to_json`).

Exit codes: 0 done (failed trials are listed; ``--resume`` runs them again), 1 every trial failed
and none is recorded, 2 bad input (a message naming the flag or file).
"""

from __future__ import annotations

import argparse
import json
import os

from lpgnas.errors import ConfigError

__all__ = ["add_parsers"]

_DEFAULT_TRIALS = 16

# library field -> flag (errors from the backend name the flag the user typed)
_FLAGS = {"space": "--space", "dataset": "--dataset", "data_root": "--data-root", "lambdas": "--lambdas",
          "lambda_range": "--lambda-range", "grid": "--grid", "seeds": "--seeds", "costs": "--cost",
          "cost": "--cost", "epochs": "--epochs", "finetune": "--finetune", "temperature": "--temperature",
          "retrain_seeds": "--retrain-seeds", "retrain_epochs": "--retrain-epochs",
          "retrain_weight_decay": "--retrain-weight-decay", "retrain_recipes": "--retrain-recipes",
          "baseline_ids": "--baselines",
          "split": "--split"}


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register the ``tune`` subcommand."""
    from lpgnas.data import NODE_SPLITS

    t = sub.add_parser("tune", help="Ray Tune sweep of a search backend; every finished trial is recorded in --out",
                       description="Ray Tune sweep of a search backend (differentiable: LPGNAS searches over the "
                                   "cost weight lambda, each derived architecture retrained from scratch; abs: SGQuant "
                                   "automatic bit selection). Every finished trial is recorded in --out "
                                   "(results.jsonl, trials/<id>/arch.json); --resume continues a killed run.")
    t.add_argument("--backend", choices=("differentiable", "abs"), default=None,
                   help="differentiable: LPGNAS searches over lambda, each derived model retrained (default); "
                        "abs: SGQuant automatic bit selection")
    t.add_argument("--space", default=None, help="search space: a shipped name (lpgnas, tiny, ...) or a YAML path "
                                                 "(default lpgnas); differentiable: several, comma-separated, "
                                                 "are space variants each trial draws from")
    t.add_argument("--dataset", default=None, help="dataset name or synthetic:k=v,... (required for a new tune)")
    t.add_argument("--data-root", default=None, help="data root (default: $LPGNAS_DATA, else the user cache)")
    t.add_argument("--trials", type=int, default=None,
                   help=f"trials (Ray Tune num_samples; with --grid, runs per grid point; default {_DEFAULT_TRIALS})")
    t.add_argument("--out", default=None, help="run directory (new or empty; results.jsonl, trials/, tune.json)")
    t.add_argument("--resume", nargs="?", const=True, default=None, metavar="DIR",
                   help="continue the tune in DIR (or --out) with the settings of its tune.json; finished trials "
                        "are not run again")
    t.add_argument("--address", default=None,
                   help="Ray cluster to attach to (default $RAY_ADDRESS; else an embedded local Ray, no dashboard)")
    t.add_argument("--storage", default=None, metavar="URI",
                   help="where Ray keeps the experiment: a folder or a URI (default OUT/ray)")
    t.add_argument("--cpus-per-trial", type=float, default=1.0)
    t.add_argument("--gpus-per-trial", type=float, default=0.0)
    t.add_argument("--max-failures", type=int, default=2, help="retries of a failed trial (-1: forever)")
    t.add_argument("--max-concurrent", type=int, default=None, help="bound on concurrently running trials")
    t.add_argument("--seed", type=int, default=None, help="seed of the parameter sampling (default 0)")
    d = t.add_argument_group("differentiable backend")
    lam = d.add_mutually_exclusive_group()
    lam.add_argument("--lambdas", default=None, metavar="L1,L2,...",
                     help="cost weights to sample from (default 0.01,0.03,0.1,0.3,1,3)")
    lam.add_argument("--lambda-range", default=None, metavar="MIN:MAX", help="sample lambda log-uniformly instead")
    d.add_argument("--grid", action="store_const", const=True, default=None,
                   help="run every lambda (x every --seeds value, x every --cost) instead of sampling")
    d.add_argument("--seeds", default=None, metavar="S1,S2,...",
                   help="search seeds to sample from (default: a random seed per trial; with --grid: 0)")
    d.add_argument("--cost", default=None, metavar="TARGET[,TARGET]",
                   help="cost target(s): size, buffer, bitops (default size)")
    d.add_argument("--epochs", type=int, default=None, help="search epochs (default 300)")
    d.add_argument("--finetune", type=int, default=None, help="fine-tune epochs after the search (default 50)")
    d.add_argument("--temperature", default=None, metavar="START:END", help="softmax temperature (default 1.0:0.1)")
    d.add_argument("--split", choices=NODE_SPLITS, default=None,
                   help="node split: the search draws it with the trial's seed, each retraining run and baseline "
                        "re-draws it with its own (default: one fixed split, the public one, else random 60/20/20 "
                        "with seed 0)")
    d.add_argument("--retrain-seeds", type=int, default=None,
                   help="from-scratch retraining runs of each derived architecture (default 3)")
    d.add_argument("--retrain-epochs", type=int, default=None,
                   help="their epochs (default: the comparable baseline's, GCN for node tasks, GIN for graphs)")
    d.add_argument("--retrain-weight-decay", type=float, default=None,
                   help="their weight decay, baselines included (default: the comparable baseline's)")
    d.add_argument("--retrain-recipes", default=None, metavar="NAME[,NAME]",
                   help="training recipes (published set-ups: gcn, gat, sage, gin, appnp: their dropouts, learning "
                        "rate, weight decay, epochs) each retraining tries, keeping the best on validation; the "
                        "baselines try them and their own (default: one, the comparable baseline's)")
    base = d.add_mutually_exclusive_group()
    base.add_argument("--baselines", default=None, metavar="ID,...",
                      help="reference points to train (default: all of the task's: fp32-gcn, fp32-gat, w8a8-gcn, "
                           "w4a8-gcn, w4a4-gcn; graph tasks the GIN ones)")
    base.add_argument("--no-baselines", action="store_true", help="train no reference points")
    a = t.add_argument_group("abs backend")
    a.add_argument("--sampler", choices=("tpe", "nsga2"), default=None, help="Optuna sampler (abs backend)")
    a.add_argument("--finetune-epochs", type=int, default=None, help="fine-tune epochs per trial (abs backend)")
    a.add_argument("--bucket-bits", choices=("shared", "component"), default=None,
                   help="in-degree bucket bits: one table shared by every component (default) or a table per "
                        "layer and component (SGQuant's full granularity; many more dimensions)")
    t.add_argument("-v", "--verbose", action="count", default=0, help="Ray warnings and worker output (-vv: Tune's "
                                                                       "progress table)")
    t.add_argument("--json", action="store_true", help="print the summary as one JSON object on the last line")
    t.set_defaults(func=_cmd_tune)


# --------------------------------------------------------------------------------------------------
# flags -> backend settings


def _floats(flag: str, text: str) -> list[float]:
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        values = []
    if not values:
        raise ConfigError(flag, f"expected comma-separated numbers, got {text!r}")
    return values


def _ints(flag: str, text: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        values = []
    if not values:
        raise ConfigError(flag, f"expected comma-separated integers, got {text!r}")
    return values


def _pair(flag: str, text: str, example: str) -> list[float]:
    parts = text.split(":")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) != 2:
        raise ConfigError(flag, f"expected {example}, got {text!r}")
    return values


def _differentiable_overrides(args: argparse.Namespace) -> dict:
    """The settings the flags give explicitly (library field names)."""
    s: dict = {}
    if args.space is not None:
        s["space"] = args.space
    if args.dataset is not None:
        s["dataset"] = args.dataset
    if args.data_root is not None:
        s["data_root"] = args.data_root
    if args.lambdas is not None:
        s["lambdas"], s["lambda_range"] = _floats("--lambdas", args.lambdas), None
    if args.lambda_range is not None:
        s["lambda_range"], s["lambdas"] = _pair("--lambda-range", args.lambda_range, "MIN:MAX (e.g. 0.01:3)"), None
    if args.grid is not None:
        s["grid"] = True
    if args.seeds is not None:
        s["seeds"] = _ints("--seeds", args.seeds)
    if args.cost is not None:
        s["costs"] = [c.strip() for c in args.cost.split(",") if c.strip()]
    for name in ("epochs", "finetune", "retrain_seeds", "retrain_epochs", "retrain_weight_decay", "split"):
        if getattr(args, name) is not None:
            s[name] = getattr(args, name)
    if args.retrain_recipes is not None:
        s["retrain_recipes"] = [r.strip() for r in args.retrain_recipes.split(",") if r.strip()]
    if args.temperature is not None:
        s["temperature"] = _pair("--temperature", args.temperature, "START:END (e.g. 1.0:0.1)")
    if args.no_baselines:
        s["baseline_ids"] = []
    elif args.baselines is not None:
        s["baseline_ids"] = [b.strip() for b in args.baselines.split(",") if b.strip()]
    return s


def _as_flag(e: ConfigError) -> ConfigError:
    if e.source is None and e.field in _FLAGS:
        return ConfigError(_FLAGS[e.field], e.problem)
    return e


def _differentiable(args: argparse.Namespace, stored: dict | None):
    from lpgnas.search._differentiable import DifferentiableBackend

    over = _differentiable_overrides(args)
    if stored is None:
        if "dataset" not in over:
            raise ConfigError("--dataset", "required for a new tune")
        if "data_root" not in over and os.environ.get("LPGNAS_DATA"):
            over["data_root"] = os.environ["LPGNAS_DATA"]  # resolved here: Ray workers may not see it
        try:
            return DifferentiableBackend(**over)
        except ConfigError as e:
            raise _as_flag(e) from None
    settings = {**stored, **over}
    try:
        return DifferentiableBackend(**settings)
    except TypeError as e:
        raise ConfigError("settings", f"not a differentiable tune ({e})") from None
    except ConfigError as e:
        raise _as_flag(e) from None


def _abs(args: argparse.Namespace, stored: dict | None):
    if args.split not in (None, "public"):
        raise ConfigError("--split", "the abs backend searches and fine-tunes on the public split; --split "
                                     "random / per-class is for the differentiable backend")
    try:
        from lpgnas.search import _abs as abs_module
    except ModuleNotFoundError as e:
        if e.name != "lpgnas.search._abs":
            raise
        raise ConfigError("--backend", "abs backend not available in this build") from None
    if stored is not None:
        cls = getattr(abs_module, "AbsBackend", None)
        from_json = getattr(cls, "from_json", None)
        if from_json is not None:
            return from_json(stored)
        if cls is not None:
            return cls(**stored)
        raise ConfigError("--backend", "abs backend not available in this build")
    factory = getattr(abs_module, "make_abs_backend", None)
    if factory is None:
        raise ConfigError("--backend", "abs backend not available in this build")
    if args.dataset is None:
        raise ConfigError("--dataset", "required for a new tune")
    return factory(args)


# --------------------------------------------------------------------------------------------------
# the command


def _cmd_tune(args: argparse.Namespace) -> int:
    from lpgnas.search._tune import TUNE_FILE, read_tune, run_tune

    stored_spec = None
    if args.resume is not None:
        run_dir = args.resume if isinstance(args.resume, str) else args.out
        if run_dir is None:
            raise ConfigError("--resume", "give the run directory (--resume runs/x, or --out runs/x --resume)")
        if isinstance(args.resume, str) and args.out is not None \
                and os.path.abspath(args.out) != os.path.abspath(args.resume):
            raise ConfigError("--out", f"differs from the run directory given to --resume ({args.resume})")
        if not os.path.isfile(os.path.join(run_dir, TUNE_FILE)):
            raise ConfigError("--resume", f"{run_dir} holds no {TUNE_FILE}: there is no tune to resume")
        stored_spec = read_tune(run_dir)
        out = run_dir
    else:
        if args.out is None:
            raise ConfigError("--out", "required (the run directory)")
        out = args.out
    kind = args.backend or (stored_spec["backend"] if stored_spec else "differentiable")
    if stored_spec is not None and kind != stored_spec["backend"]:
        raise ConfigError("--backend", f"the tune in {out} uses the {stored_spec['backend']} backend, not {kind}")
    stored_settings = stored_spec["settings"] if stored_spec else None
    backend = _differentiable(args, stored_settings) if kind == "differentiable" else _abs(args, stored_settings)
    trials = args.trials if args.trials is not None else (stored_spec["trials"] if stored_spec else _DEFAULT_TRIALS)
    seed = args.seed if args.seed is not None else (stored_spec["seed"] if stored_spec else 0)
    try:
        outcome = run_tune(backend, out=out, trials=trials, address=args.address, resume=stored_spec is not None,
                           cpus_per_trial=args.cpus_per_trial, gpus_per_trial=args.gpus_per_trial,
                           max_failures=args.max_failures, max_concurrent=args.max_concurrent, seed=seed,
                           storage=args.storage, verbose=args.verbose)
    except ConfigError as e:
        raise _as_flag(e) from None
    dataset = backend.describe().get("dataset", "")
    if args.json:
        print(json.dumps({
            "out": outcome.out, "backend": backend.name, "dataset": dataset, "experiment": outcome.experiment,
            "trials_requested": trials, "trials_recorded": len(outcome.results), "recorded_now": outcome.recorded,
            "trials_skipped": len(outcome.skipped), "skipped_ids": outcome.skipped,
            "trials_failed": len(outcome.failed), "failed_ids": outcome.failed,
            "wall_seconds": round(outcome.wall_seconds, 3),
            "results": [r.to_json() for r in outcome.results],
            "baselines": [r.to_json() for r in outcome.baselines],
        }))
        return _exit_code(outcome)
    print(f"tune {backend.name} on {dataset}: {len(outcome.results)} trials recorded in {outcome.out} "
          f"({outcome.recorded} now, {len(outcome.skipped)} skipped, {len(outcome.failed)} failed) "
          f"in {outcome.wall_seconds:.1f}s")
    for line in _table(sorted(outcome.results, key=lambda r: -r.val_acc) + list(outcome.baselines)):
        print(line)
    if outcome.skipped:
        print("skipped (no final report): " + ", ".join(outcome.skipped))
    if outcome.failed:
        print("failed: " + ", ".join(outcome.failed) + f"  (lpgnas tune --resume {out} runs them again)")
    return _exit_code(outcome)


def _exit_code(outcome) -> int:
    """1 when trials failed and none was ever recorded (nothing to show for the run), else 0."""
    return 1 if outcome.failed and not outcome.results else 0


def _table(results) -> list[str]:
    head = (f"{'id':<14} {'name':<30} {'val %':>6} {'test %':>6} {'size KiB':>9} {'feat KiB':>9} {'compr':>6} "
            f"{'sec':>7}  node")
    lines = [head]
    for r in results:
        lines.append(f"{r.trial_id:<14} {r.name[:30]:<30} {100 * r.val_acc:6.2f} {100 * r.test_acc:6.2f} "
                     f"{r.model_size_bits / 8192:9.2f} {r.buffer_bits / 8192:9.1f} {r.compression:5.2f}x "
                     f"{r.seconds:7.1f}  {r.node}")
    return lines
