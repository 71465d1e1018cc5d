"""A real multi-node Ray cluster on this machine, for the cluster tests (``tests/test_cluster.py``).

:func:`ray_cluster` starts a head node and ``num_nodes - 1`` worker nodes, each a ``ray start ...
--block`` subprocess in its own session (process group), with its own ports and its own short temp
dir (Unix socket paths are limited to ~107 characters, hence ``/tmp/rc-XXXX``). It yields a
:class:`Cluster` once ``ray.nodes()`` shows every node alive, and on exit stops only what it started:
SIGTERM to each ``ray start`` process, then SIGKILL to its process group and to any process whose
command line or environment names one of the cluster's temp dirs (the raylet, GCS, agents and the
worker processes, which run in process groups of their own). It never
runs ``ray stop``, which would kill every Ray process of the machine, other people's included.

Worker nodes get their own ``--temp-dir``: Ray 2.60 accepts it per node (``ray start --help``: "Can
be specified per node"), so the two nodes' sockets, logs and session folders never mix.

:func:`kill_tree` / :func:`kill_marked` are the same teardown, usable for any subprocess tree a test
started (e.g. a tune driver with its embedded Ray under ``RAY_TMPDIR``).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Iterator, Mapping, NamedTuple, Sequence

import psutil

__all__ = ["Cluster", "ClusterStartError", "Node", "MARK", "ray_cluster", "free_ports", "kill_tree", "kill_marked",
           "ray_bin"]

# The environment variable that tags every process of a node we started (value: the node's temp dir).
MARK = "LPGNAS_TEST_RAY_NODE"

# Every node's object store: the minimum Ray accepts is 75 MiB; /dev/shm is shared with other users.
OBJECT_STORE_BYTES = 80 * 1024 * 1024


class Node(NamedTuple):
    """One started node: its Ray node id, node-manager port, temp dir and ``ray start`` process."""

    node_id: str
    node_manager_port: int
    temp_dir: str
    is_head: bool


class Cluster(NamedTuple):
    """A running cluster: the GCS ``address`` (``127.0.0.1:PORT``) to pass to ``ray.init`` /
    ``--address``, its nodes (head first), the node IP they share (Ray resolves 127.0.0.1 to the
    host's address) and ``env``: the variables a driver needs to attach (the cluster's own
    authentication token; Ray 2.60 enables token authentication by default)."""

    address: str
    nodes: tuple[Node, ...]
    ip: str
    env: Mapping[str, str]

    @property
    def node_ids(self) -> tuple[str, ...]:
        return tuple(n.node_id for n in self.nodes)


class ClusterStartError(RuntimeError):
    """Ray could not start a node here (the tests skip with this message)."""


def ray_bin() -> str:
    """The ``ray`` script of the interpreter running the tests (the project's virtualenv)."""
    cand = os.path.join(os.path.dirname(sys.executable), "ray")
    return cand if os.path.exists(cand) else (shutil.which("ray") or cand)


def free_ports(n: int) -> list[int]:
    """``n`` distinct TCP ports free right now (held together while choosing, so they differ)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("", 0))  # Ray binds its ports on every interface
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _node_args(temp_dir: str, num_cpus: int, ports: Sequence[int]) -> list[str]:
    nm, om, agent_http, agent_grpc, renv, metrics = ports
    return [
        "--num-cpus", str(num_cpus), "--num-gpus", "0",
        "--temp-dir", temp_dir,
        "--object-store-memory", str(OBJECT_STORE_BYTES),
        "--node-manager-port", str(nm), "--object-manager-port", str(om),
        "--dashboard-agent-listen-port", str(agent_http), "--dashboard-agent-grpc-port", str(agent_grpc),
        "--runtime-env-agent-port", str(renv), "--metrics-export-port", str(metrics),
        # 0/0: workers bind OS-chosen ports (the default range 10002-19999 would be shared by both nodes).
        "--min-worker-port", "0", "--max-worker-port", "0",
        "--include-log-monitor", "false",
        "--disable-usage-stats", "--log-style", "record", "--log-color", "false",
        "--block",
    ]


def _spawn(args: list[str], env: Mapping[str, str], log_path: str) -> subprocess.Popen:
    log = open(log_path, "wb")
    try:
        return subprocess.Popen(args, env=dict(env), stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    finally:
        log.close()


_WAIT_NODES = r"""
import json, sys, time
import ray
ray.init(address=sys.argv[1], logging_level="ERROR", log_to_driver=False)
want, deadline = int(sys.argv[2]), time.monotonic() + float(sys.argv[3])
while True:
    alive = [n for n in ray.nodes() if n.get("Alive")]
    if len(alive) >= want or time.monotonic() > deadline:
        break
    time.sleep(0.5)
print(json.dumps([{"id": n["NodeID"], "port": n.get("NodeManagerPort"), "ip": n.get("NodeManagerAddress")}
                  for n in alive]))
"""


def _wait_nodes(address: str, want: int, timeout: float, env: Mapping[str, str]) -> list[dict]:
    """The alive nodes once ``want`` are up (one short-lived driver polling ``ray.nodes()``)."""
    r = subprocess.run([sys.executable, "-c", _WAIT_NODES, address, str(want), str(timeout)], env=dict(env),
                       capture_output=True, text=True, timeout=timeout + 60)
    if r.returncode != 0:
        raise ClusterStartError(f"could not query the cluster at {address}: {r.stderr.strip()[-800:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def _marked(markers: Sequence[str]) -> list[psutil.Process]:
    """Processes whose command line or environment names one of ``markers`` (our temp dirs). Ray's
    worker processes rename themselves (``ray::IDLE``) and start their own process groups, but they
    inherit the environment of the node that started them: :data:`MARK` there names the temp dir."""
    me, found = os.getpid(), []
    for p in psutil.process_iter(["pid", "cmdline", "environ"]):
        if p.pid == me:
            continue
        text = " ".join(p.info.get("cmdline") or ())
        env = p.info.get("environ") or {}
        text += " " + env.get(MARK, "") + " " + env.get("RAY_TMPDIR", "")
        if any(m in text for m in markers):
            found.append(p)
    return found


def kill_marked(markers: Sequence[str], *, timeout: float = 5.0) -> None:
    """SIGTERM, then SIGKILL, every process whose command line or environment (``MARK``,
    ``RAY_TMPDIR``) names one of ``markers`` (by PID)."""
    procs = _marked(markers)
    for p in procs:
        with contextlib.suppress(psutil.Error):
            p.terminate()
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    for p in alive:
        with contextlib.suppress(psutil.Error):
            p.kill()
    psutil.wait_procs(alive, timeout=timeout)


def kill_tree(proc: subprocess.Popen, *, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
    """Stop a subprocess started with ``start_new_session=True``: ``sig`` to it, wait ``timeout``,
    then SIGKILL its whole process group (and the descendants that left the group)."""
    try:
        kids = psutil.Process(proc.pid).children(recursive=True)
    except psutil.Error:
        kids = []
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # the session leader's pid is the group id
    for k in kids:
        with contextlib.suppress(psutil.Error):
            k.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=timeout)


@contextlib.contextmanager
def ray_cluster(num_nodes: int = 2, *, num_cpus: int = 1, env: Mapping[str, str] | None = None,
                timeout: float = 120.0) -> Iterator[Cluster]:
    """Start a ``num_nodes``-node Ray cluster on 127.0.0.1 (``num_cpus`` CPUs each); yield it; stop it.

    ``env`` is added to the environment of every node (trial workers inherit it from their raylet).
    Raises :class:`ClusterStartError` when a node does not come up within ``timeout`` seconds; the
    logs of the ``ray start`` processes are quoted in the message.
    """
    # A token of our own (not ~/.ray/auth_token, shared with every other Ray user of the machine).
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    base_env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", **(env or {}), **auth}
    base_env.pop("RAY_ADDRESS", None)
    base_env.pop("RAY_AUTH_TOKEN_PATH", None)
    procs: list[subprocess.Popen] = []
    temps: list[str] = []
    logs: list[str] = []
    ray = ray_bin()
    try:
        head_port, dash_port = free_ports(2)
        address = f"127.0.0.1:{head_port}"
        node_ports: list[int] = []
        for i in range(num_nodes):
            tmp = tempfile.mkdtemp(prefix="rc-", dir="/tmp")
            temps.append(tmp)
            ports = free_ports(6)
            node_ports.append(ports[0])
            if i == 0:
                # No --ray-client-server-port: the client server only starts with ray[client] installed
                # (and then defaults to 10001, shared by every head on the host: give it a free port then).
                # Ray 2.60 still runs a headless dashboard process (state / job API) on the head,
                # bound to 127.0.0.1; its default port 8265 would clash with any other Ray here.
                args = [ray, "start", "--head", "--port", str(head_port), "--include-dashboard", "false",
                        "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dash_port)]
                if _has_ray_client():
                    args += ["--ray-client-server-port", str(free_ports(1)[0])]
            else:
                args = [ray, "start", "--address", address]
            log = os.path.join(tmp, "ray-start.log")
            logs.append(log)
            procs.append(_spawn(args + _node_args(tmp, num_cpus, ports), {**base_env, MARK: tmp}, log))
            if i == 0:  # the workers need the GCS up
                _wait_port(head_port, procs, logs, timeout)
        _check_alive(procs, logs)
        nodes = _wait_nodes(address, num_nodes, timeout, base_env)
        if len(nodes) < num_nodes:
            raise ClusterStartError(f"only {len(nodes)} of {num_nodes} Ray nodes came up in {timeout:.0f} s"
                                    + _tails(logs))
        by_port = {n["port"]: n for n in nodes}
        started = []
        for i, (port, tmp) in enumerate(zip(node_ports, temps)):
            if port not in by_port:
                raise ClusterStartError(f"node {i} (node-manager port {port}) is not in the cluster" + _tails(logs))
            started.append(Node(by_port[port]["id"], port, tmp, i == 0))
        yield Cluster(address, tuple(started), nodes[0]["ip"], auth)
    finally:
        for p in reversed(procs):  # workers first, then the head
            kill_tree(p, timeout=10.0)
        kill_marked(temps)
        for t in temps:
            shutil.rmtree(t, ignore_errors=True)


def _has_ray_client() -> bool:
    """Whether Ray would start its client server (Ray's own test: ``grpc`` importable)."""
    return importlib.util.find_spec("grpc") is not None


def _check_alive(procs, logs) -> None:
    for p, log in zip(procs, logs):
        if p.poll() is not None:
            raise ClusterStartError(f"`ray start` exited with {p.returncode}" + _tails([log]))


def _wait_port(port: int, procs, logs, timeout: float) -> None:
    """Until the head's GCS accepts TCP connections (or its ``ray start`` died / ``timeout``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _check_alive(procs, logs)
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return
        time.sleep(0.2)
    raise ClusterStartError(f"the Ray head did not listen on port {port} within {timeout:.0f} s" + _tails(logs))


def _tails(logs: Sequence[str], n: int = 1500) -> str:
    out = []
    for log in logs:
        with contextlib.suppress(OSError), open(log, "rb") as f:
            out.append(f"\n--- {log}:\n" + f.read().decode(errors="replace")[-n:])
    return "".join(out)
