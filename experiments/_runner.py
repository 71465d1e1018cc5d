"""Shared plumbing of the experiment scripts: run ``lpgnas`` commands in-process, keep an append-only
JSONL log of finished rows (a re-run skips them), write the markdown table atomically."""

from __future__ import annotations

import contextlib
import io
import json
import os
import platform
import shlex
import time
from typing import Callable, Iterable

from lpgnas import cli


def run_json(argv: str) -> dict:
    """Run ``lpgnas <argv>`` (which must include ``--json``) and return its summary object."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = cli.main(shlex.split(argv))
    if code != 0:
        raise SystemExit(f"lpgnas {argv} exited with {code}")
    return json.loads(buf.getvalue().strip().splitlines()[-1])


def read_log(path: str) -> list[dict]:
    """The records of an append-only JSONL log (none when it does not exist yet)."""
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def append_log(path: str, rec: dict) -> None:
    """Append one finished record: a record once written is never lost or rewritten."""
    with open(path, "a") as f:
        f.write(json.dumps(rec) + "\n")


def run_rows(rows: dict[str, str], wanted: Iterable[str], log: str, extra: Callable[[str], dict] | None = None,
             report: Callable[[dict], str] | None = None, rerun: bool = False,
             reason: str | None = None) -> dict[str, dict]:
    """Run each wanted row's command unless the log already holds it; returns the latest record of every
    logged row. With ``rerun`` the wanted rows run again even when logged (a fix made their figures
    stale): the new record, stamped with ``reason``, is appended and supersedes the earlier one, which
    stays in the log (see :func:`superseded`)."""
    if rerun and not reason:
        raise SystemExit("a re-run needs a reason (kept beside the superseded record)")
    done = {rec["row"]: rec for rec in read_log(log)}
    for row in wanted:
        if row in done and not rerun:
            continue
        if row not in rows:
            raise SystemExit(f"unknown row {row!r}; known: {', '.join(rows)}")
        t0 = time.perf_counter()
        rec = {"row": row, "command": f"lpgnas {rows[row]}", **(extra(row) if extra else {}), **run_json(rows[row]),
               "wall_seconds": round(time.perf_counter() - t0, 1)}
        if rerun:
            rec["rerun_reason"] = reason
        append_log(log, rec)
        done[row] = rec
        if report:
            print(report(rec), flush=True)
    return done


def superseded(log: str) -> dict[str, list[tuple[dict, dict]]]:
    """Per row, ``(earlier record, the re-run record that superseded it)`` pairs, oldest first."""
    pairs: dict[str, list[tuple[dict, dict]]] = {}
    latest: dict[str, dict] = {}
    for rec in read_log(log):
        if rec["row"] in latest:
            pairs.setdefault(rec["row"], []).append((latest[rec["row"]], rec))
        latest[rec["row"]] = rec
    return pairs


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}"


def write_atomic(path: str, text: str) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)
    print(f"wrote {path}")
