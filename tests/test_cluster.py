"""``lpgnas tune`` on a real Ray cluster and under faults.

* a two-node cluster on this machine (:mod:`_ray_cluster`): ``lpgnas tune --address`` runs its trials
  on both nodes and records each once;
* a trial whose worker process dies is retried and recorded once;
* a driver killed with SIGKILL mid-run resumes with ``--resume``: no finished trial is re-run, lost,
  changed or recorded twice.

The fault tests use :class:`FakeBackend`, a test-only backend whose trials take a fixed time and log
every start to a side file. Ray pickles the trainable for its workers; so that the workers need not
import this file, the drivers run this module as ``__main__`` (``python tests/test_cluster.py drive
...``): cloudpickle then ships the backend class by value.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:  # pytest (prepend mode) and `python tests/test_cluster.py` put it there already
    sys.path.insert(0, HERE)

if importlib.util.find_spec("ray") is None or importlib.util.find_spec("psutil") is None:
    pytest.skip("ray (and its psutil) are not installed", allow_module_level=True)

from _ray_cluster import ClusterStartError, kill_marked, kill_tree, ray_cluster  # noqa: E402

# Ray tests start Ray instances; under pytest-xdist they share one worker, one after another.
pytestmark = pytest.mark.xdist_group("ray")

RESULTS = "results.jsonl"
# Keys a trial's final report carries (lpgnas.search.METRICS + the backend contract's FINAL_KEYS).
_METRICS = ("val_acc", "test_acc", "model_size_bits", "buffer_bits", "bitops", "fp32_model_size_bits",
            "fp32_buffer_bits", "fp32_bitops", "seconds")


# ------------------------------------------------------------------------------------------------
# the test-only backend (also imported by the drivers below, which run this file as __main__)


@dataclasses.dataclass(frozen=True)
class FakeBackend:
    """A backend whose trial sleeps ``delay`` s and reports fixed metrics with a real architecture.

    Every trial start appends ``{"tune_id", "pid", "node_id"}`` to ``side`` (one JSON line). With
    ``die_marker`` set, the first trial to create that file (``O_EXCL``: exactly once in the whole
    run) kills its own worker process with ``os._exit`` right after logging its start.
    """

    arch_json: str
    side: str
    delay: float = 1.0
    die_marker: str | None = None

    name = "fake"
    metric = "val_acc"
    mode = "max"

    def describe(self) -> dict[str, Any]:
        return {"delay": self.delay}

    def prepare(self, out: str) -> None:
        pass

    def param_space(self) -> dict[str, Any]:
        from ray import tune

        return {"x": tune.uniform(0.0, 1.0)}

    def trainable(self) -> Callable[[dict], None]:
        return self._trial

    def search_alg(self, num_samples: int, seed: int) -> Any:
        return None

    def scheduler(self) -> Any:
        return None

    def baselines(self, out: str) -> list:
        return []

    def _trial(self, config: dict) -> None:
        import ray
        from ray import tune

        t0 = time.perf_counter()
        tune_id = tune.get_context().get_trial_id()
        node_id = ray.get_runtime_context().get_node_id()
        line = json.dumps({"tune_id": tune_id, "pid": os.getpid(), "node_id": node_id})
        with open(self.side, "a") as f:
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())
        if self.die_marker is not None:
            try:
                fd = os.open(self.die_marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                pass
            else:
                os.write(fd, line.encode())
                os.close(fd)
                os._exit(1)  # the worker process dies, as on an OOM kill or a lost node
        time.sleep(self.delay)
        x = float(config["x"])
        tune.report({
            "val_acc": x, "test_acc": x, "model_size_bits": 1000.0 * (1.0 + x), "buffer_bits": 1.0e6,
            "bitops": 1.0e9, "fp32_model_size_bits": 32000.0, "fp32_buffer_bits": 3.2e7, "fp32_bitops": 3.2e10,
            "seconds": time.perf_counter() - t0, "arch_json": self.arch_json,
            "node": ray.util.get_node_ip_address(), "name": f"x={x:.3f}",
            "extra": json.dumps({"tune_id": tune_id, "node_id": node_id, "pid": os.getpid()}),
        })


def _small_arch_json() -> str:
    from lpgnas.arch import baseline

    return json.dumps(baseline("gcn", num_classes=7).to_json())


def _drive(argv: list[str]) -> int:
    """``python tests/test_cluster.py drive --out DIR --side FILE ...``: one run_tune call."""
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--side", required=True)
    p.add_argument("--trials", type=int, default=4)
    p.add_argument("--delay", type=float, default=1.0)
    p.add_argument("--die-marker", default=None)
    p.add_argument("--address", default=None)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--max-failures", type=int, default=2)
    p.add_argument("--max-concurrent", type=int, default=None)
    p.add_argument("--num-cpus", type=int, default=None)
    a = p.parse_args(argv)
    from lpgnas.search._tune import run_tune

    backend = FakeBackend(arch_json=_small_arch_json(), side=a.side, delay=a.delay, die_marker=a.die_marker)
    outcome = run_tune(backend, out=a.out, trials=a.trials, address=a.address, resume=a.resume,
                       cpus_per_trial=1.0, max_failures=a.max_failures, max_concurrent=a.max_concurrent, seed=0,
                       num_cpus=a.num_cpus)
    print(json.dumps({"trials": [r.trial_id for r in outcome.results], "failed": outcome.failed}))
    return 0


# ------------------------------------------------------------------------------------------------
# helpers


def _records(out: str) -> list[dict]:
    """Every complete line of ``out/results.jsonl`` (duplicates kept: the tests count them)."""
    path = os.path.join(out, RESULTS)
    if not os.path.exists(path):
        return []
    recs = []
    with open(path) as f:
        for line in f:
            if line.endswith("\n") and line.strip():
                recs.append(json.loads(line))
    return recs


def _starts(side: str) -> list[dict]:
    if not os.path.exists(side):
        return []
    with open(side) as f:
        return [json.loads(line) for line in f if line.strip()]


def _extra(rec: dict) -> dict:
    e = rec.get("extra") or {}
    return json.loads(e) if isinstance(e, str) else e


def _env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "RAY_USAGE_STATS_ENABLED": "0", **extra}
    env.pop("RAY_ADDRESS", None)
    return env


def _data_root_env() -> dict[str, str]:
    """The data root the workers of the cluster see (the `data_root` fixture's rule, without skipping)."""
    root = os.environ.get("LPGNAS_DATA") or os.path.abspath(os.path.join(HERE, "..", "..", "shared", "datasets"))
    return {"LPGNAS_DATA": root}


def _driver_cmd(*args: str) -> list[str]:
    return [sys.executable, os.path.abspath(__file__), "drive", *args]


def _run(cmd: list[str], env: dict, timeout: float) -> subprocess.CompletedProcess:
    """Run a driver in its own session; on timeout kill its whole tree and fail with its output."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_tree(proc, timeout=5.0)
        out, err = proc.communicate()
        pytest.fail(f"{' '.join(cmd[:6])} ... did not finish in {timeout:.0f} s\n{out[-3000:]}\n{err[-3000:]}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def _check(r: subprocess.CompletedProcess) -> None:
    assert r.returncode == 0, f"exit {r.returncode}\nstdout:\n{r.stdout[-3000:]}\nstderr:\n{r.stderr[-5000:]}"


@contextlib.contextmanager
def _ray_tmpdir():
    """A short ``RAY_TMPDIR`` for an embedded Ray, so that its processes can be found and stopped."""
    d = tempfile.mkdtemp(prefix="rk-", dir="/tmp")
    try:
        yield d
    finally:
        kill_marked([d])
        shutil.rmtree(d, ignore_errors=True)


# ------------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="module")
def cluster():
    """A two-node Ray cluster (1 CPU each) on this machine; skips when Ray cannot start here."""
    env = {"JAX_PLATFORMS": "cpu", **_data_root_env()}
    with contextlib.ExitStack() as stack:
        for attempt in range(2):  # a second try with fresh ports: one may have been taken meanwhile
            try:
                c = stack.enter_context(ray_cluster(2, num_cpus=1, env=env))
                break
            except (ClusterStartError, OSError, subprocess.SubprocessError) as e:
                if attempt == 1:
                    pytest.skip(f"cannot start a two-node Ray cluster on this machine: {e}")
        yield c


# ------------------------------------------------------------------------------------------------
# tests


def test_tune_runs_trials_on_both_nodes(cluster, data_root, tmp_path):
    out = tmp_path / "run"
    cmd = [os.path.join(os.path.dirname(sys.executable), "lpgnas"), "tune", "--backend", "differentiable",
           "--space", "tiny", "--dataset", "cora", "--trials", "4", "--out", str(out), "--address",
           cluster.address, "--epochs", "3", "--finetune", "1", "--retrain-seeds", "1", "--retrain-epochs", "3",
           "--no-baselines", "--cpus-per-trial", "1", "--json"]
    r = _run(cmd, _env(LPGNAS_DATA=data_root, **cluster.env), timeout=300)
    _check(r)
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["trials_recorded"] == 4 and summary["trials_failed"] == 0, summary
    recs = _records(str(out))
    ids = [rec["trial_id"] for rec in recs]
    assert len(ids) == 4 and len(set(ids)) == 4, ids
    assert {rec["node"] for rec in recs} <= {cluster.ip, *cluster.node_ids}, [rec["node"] for rec in recs]
    used = {_extra(rec).get("node_id") for rec in recs}
    assert used == set(cluster.node_ids), f"trials ran on {used}, cluster nodes {cluster.node_ids}"
    for rec in recs:
        assert os.path.isfile(out / "trials" / rec["trial_id"] / "arch.json")
        assert 0.0 <= rec["val_acc"] <= 1.0 and rec["model_size_bits"] > 0


def test_dead_worker_is_retried_and_recorded_once(cluster, tmp_path):
    out, side, marker = tmp_path / "run", tmp_path / "starts.jsonl", tmp_path / "died"
    r = _run(_driver_cmd("--out", str(out), "--side", str(side), "--trials", "3", "--delay", "0.5",
                         "--die-marker", str(marker), "--address", cluster.address, "--max-failures", "2"),
             _env(**cluster.env), timeout=120)
    _check(r)
    assert json.loads(r.stdout.strip().splitlines()[-1])["failed"] == []
    assert marker.exists(), "no trial was killed: the fault was not injected"
    victim = json.loads(marker.read_text())
    starts = _starts(str(side))
    recs = _records(str(out))
    tune_ids = [_extra(rec)["tune_id"] for rec in recs]
    assert len(recs) == 3 and len(set(rec["trial_id"] for rec in recs)) == 3, [rec["trial_id"] for rec in recs]
    assert sorted(tune_ids) == sorted(set(tune_ids))
    # the killed trial started twice (a new worker process the second time) and is recorded once
    again = [s for s in starts if s["tune_id"] == victim["tune_id"]]
    assert len(again) == 2 and again[0]["pid"] != again[1]["pid"], again
    assert tune_ids.count(victim["tune_id"]) == 1
    assert _extra(recs[tune_ids.index(victim["tune_id"])])["pid"] == again[1]["pid"]
    # no other trial was started twice
    assert len(starts) == 4, starts


def test_killed_driver_resumes_without_rerunning_finished_trials(cluster, tmp_path):
    # The driver runs an embedded Ray (the default of `lpgnas tune`), not the cluster: `cluster` is
    # requested only so that this test skips with the others where Ray cannot start.
    out, side = tmp_path / "run", tmp_path / "starts.jsonl"
    n = 6
    args = ("--out", str(out), "--side", str(side), "--trials", str(n), "--delay", "1.0", "--num-cpus", "2")
    with _ray_tmpdir() as raytmp:
        env = _env(RAY_TMPDIR=raytmp)
        log = tmp_path / "driver.log"  # a file, not a pipe: nobody reads while the driver runs
        with open(log, "wb") as f:
            proc = subprocess.Popen(_driver_cmd(*args), env=env, stdout=f, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        try:
            deadline = time.monotonic() + 120
            while len(_records(str(out))) < 2:
                if proc.poll() is not None:
                    pytest.fail(f"driver exited ({proc.returncode}) before 2 trials finished:\n"
                                + log.read_text(errors="replace")[-4000:])
                if time.monotonic() > deadline:
                    pytest.fail("2 trials did not finish in 120 s")
                time.sleep(0.05)
            before = _records(str(out))
            with open(out / RESULTS, "rb") as f:
                raw_before = f.read()
            os.killpg(proc.pid, signal.SIGKILL)  # the driver and, in its group, the embedded Ray
            proc.wait(timeout=30)
        finally:
            kill_tree(proc, timeout=1.0)
            kill_marked([raytmp])  # Ray processes that left the group
        assert len(before) < n, "the run finished before the kill: make the trials slower"

        r = _run(_driver_cmd(*args, "--resume"), env, timeout=150)
    _check(r)
    assert len(json.loads(r.stdout.strip().splitlines()[-1])["trials"]) == n
    after = _records(str(out))
    ids = [rec["trial_id"] for rec in after]
    assert len(ids) == n and len(set(ids)) == n, ids
    with open(out / RESULTS, "rb") as f:
        raw_after = f.read()
    # records are never rewritten: the file before the kill (complete lines) is a prefix of the file after it
    complete = raw_before[: raw_before.rfind(b"\n") + 1]
    assert raw_after.startswith(complete)
    assert after[: len(before)] == before
    # finished trials were not re-run: each started exactly once
    starts = _starts(str(side))
    for rec in before:
        tid = _extra(rec)["tune_id"]
        assert sum(s["tune_id"] == tid for s in starts) == 1, (tid, starts)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "drive":
        sys.exit(_drive(sys.argv[2:]))
    sys.exit(f"usage: {sys.argv[0]} drive --out DIR --side FILE [...]")
