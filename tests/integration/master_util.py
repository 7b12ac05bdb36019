"""Helpers shared by the process-model tests (test_master_*.py).

They look at the real processes in /proc: a worker is a child of the master
that ps shows as "forkd: worker SLOT (gen G)"; what it was started with is in
its launch message (forkd_harness.worker_launch).
"""

import math
import os
import socket
import subprocess
import threading
import time

import pytest

from forkd_harness import (child_pids, http_get, is_worker_process, pid_alive, wait_until,
                           worker_launch)


def quick_term_args(args):
    """args plus --shutdown-delay 0 unless they set it.

    These tests time TERM's drain, not the readiness delay before it
    (test_shutdown_delay_keeps_serving_before_draining covers that one).
    """
    args = list(args)
    if not any(a == "--shutdown-delay" or a.startswith("--shutdown-delay=") for a in args):
        args += ["--shutdown-delay", "0"]
    return args


@pytest.fixture
def forkd_factory(forkd_factory):
    """conftest's forkd_factory with quick_term_args(); import it into a test module."""
    def make(upstream=None, args=(), **kwargs):
        return forkd_factory(upstream, quick_term_args(args), **kwargs)
    return make


def workers_of(master_pid):
    """Live worker children of master_pid, sorted (never other children)."""
    return [p for p in child_pids(master_pid) if is_worker_process(p)]


def wait_worker_set(master_pid, predicate, timeout, what):
    """Polls workers_of(master_pid) until predicate(pids) is true; returns pids."""
    def check():
        pids = workers_of(master_pid)
        return (pids,) if predicate(pids) else None  # a 1-tuple: [] is a result too
    return wait_until(check, timeout, what=what)[0]


def read_pid(path):
    """The pid a pidfile holds, or None (missing, empty or being written)."""
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def worker_generation(pid):
    """The generation the master gave a worker (None if gone)."""
    launch = worker_launch(pid)
    return None if launch is None else launch["generation"]


def worker_config_args(pid):
    """The --flag=value arguments the master handed a worker, as a dict."""
    launch = worker_launch(pid)
    out = {}
    for arg in launch["config_args"] if launch else []:
        name, _, value = arg.partition("=")
        out[name] = value
    return out


def wait_exit(proc, timeout):
    """proc's exit code, or None if it is still running after timeout s."""
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return None


def wait_gone(pid, timeout):
    """Waits until pid is gone (or a zombie); returns True if it went."""
    try:
        wait_until(lambda: not pid_alive(pid), timeout, what="pid %d to exit" % pid)
        return True
    except TimeoutError:
        return False


def kill_quietly(pid, sig):
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def connection_refused(port, timeout=2):
    """True when nothing accepts on port: refused, or reset/closed unanswered."""
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    except ConnectionRefusedError:
        return True
    with sock:
        try:
            sock.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
            return sock.recv(100) == b""
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False


def get_in_thread(port, path, timeout=15):
    """Starts GET path on a new connection in a thread.

    Returns (thread, result dict); result gets "status" or "error" and "at"
    (monotonic time the answer came).
    """
    result = {}

    def run():
        try:
            status, _, body = http_get(port, path, timeout=timeout)
            result["status"] = status
            result["body"] = body
        except Exception as e:  # noqa: BLE001 - reported by the test
            result["error"] = "%s: %s" % (type(e).__name__, e)
        result["at"] = time.monotonic()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, result


def _read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def _quota_cpus(quota, period):
    if quota <= 0 or period <= 0:
        return None
    return max(1, math.ceil(quota / period))


def expected_cpus():
    """The CPU count forkd should see: affinity, then cgroup v2 / v1 quotas.

    Mirrors the documented rule (cgroup v2 cpu.max, v1 CFS quota, cpuset via
    the affinity mask), walking from the process's cgroup up to the root.
    """
    cpus = len(os.sched_getaffinity(0))
    paths = {}
    for line in (_read("/proc/self/cgroup") or "").splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            for c in parts[1].split(",") if parts[1] else [""]:
                paths[c] = parts[2]

    def dirs(base, rel):
        parts = [p for p in rel.split("/") if p]
        return [os.path.join(base, *parts[:n]) for n in range(len(parts), -1, -1)]

    for d in dirs("/sys/fs/cgroup", paths.get("", "/")):
        text = _read(os.path.join(d, "cpu.max"))
        if text and not text.startswith("max"):
            fields = text.split()
            n = _quota_cpus(int(fields[0]), int(fields[1]) if len(fields) > 1 else 100000)
            if n:
                cpus = min(cpus, n)
    for mount in ("cpu,cpuacct", "cpuacct,cpu", "cpu"):
        base = os.path.join("/sys/fs/cgroup", mount)
        if not os.path.isdir(base):
            continue
        for d in dirs(base, paths.get("cpu", "/")):
            quota = _read(os.path.join(d, "cpu.cfs_quota_us"))
            period = _read(os.path.join(d, "cpu.cfs_period_us"))
            if quota and period:
                n = _quota_cpus(int(quota), int(period))
                if n:
                    cpus = min(cpus, n)
        break
    return cpus
