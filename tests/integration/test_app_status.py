"""App mode (issue 11) as operators see it: the admin API's status and
worker calls, `forkctl`, /metrics, the probes and the start-up log.

The real forkd runs the example app as its app processes (`-- python3
app.py`, each on its own inherited socket); a real gRPC client
(admin_client.AdminClient) and the real forkctl binary talk to its admin
API; every answer is checked against what the OS says (the master's
children, /proc) and what the app processes say (/pid on their own sockets).
"""

import json
import os
import signal
import time

import pytest

from admin_client import NOT_SERVING, SERVING, AdminClient, forkctl
from forkd_harness import free_port, http_get, pid_alive, wait_until
from metrics_util import metrics, probe, total, value, wait_probe
from app_forkd import AppForkd, example_app

READY = 2  # AppProcessState.APP_PROCESS_STATE_READY


class ObservedForkd(AppForkd):
    """App mode with the admin API and the metrics plane on free ports."""

    def __init__(self, app_cmd, args=(), **kw):
        self.admin_port = free_port()
        self.metrics_port = free_port()
        self.admin_addr = "127.0.0.1:%d" % self.admin_port
        args = ["--admin-bind", self.admin_addr,
                "--metrics-bind", "127.0.0.1:%d" % self.metrics_port] + list(args)
        super().__init__(app_cmd, args, **kw)


@pytest.fixture
def observed():
    """Started forkd fixtures: observed(args, app_cmd=None, **kw) -> (fk, client)."""
    made = []

    def make(args, app_cmd=None, **kw):
        fk = ObservedForkd(app_cmd or example_app(), args, **kw)
        fk.start()
        client = AdminClient(fk.admin_addr)
        made.append((fk, client))
        return fk, client
    yield make
    for fk, client in reversed(made):
        client.close()
        fk.cleanup()


def wait_status(client, predicate, timeout=20, what="status"):
    return wait_until(lambda: (lambda s: s if predicate(s) else None)(client.status()),
                      timeout, interval=0.1, what=what)


def ready_pids(status):
    return sorted(a.pid for a in status.app_processes if a.state == READY)


def test_status_lists_the_app_processes_as_the_os_sees_them(observed):
    fk, client = observed(["-w", "3"])
    apps = fk.ready_apps(3)
    s = wait_status(client, lambda s: len(ready_pids(s)) == 3, what="3 ready")
    assert s.mode == "app"
    assert s.app_command.endswith("app.py --verbose")
    assert s.worker_class == "sync"
    assert (s.desired_workers, s.actual_workers, s.ready_workers) == (3, 3, 3)
    assert (s.proxy_workers, s.ready_proxy_workers, s.proxy_worker_class) == (1, 1, "async")
    assert ready_pids(s) == sorted(apps)
    assert sorted(a.slot for a in s.app_processes) == [0, 1, 2]
    for a in s.app_processes:
        assert a.socket == apps[a.pid]
        assert a.cap == 1
        assert a.rss_bytes > 1 << 20       # a Python interpreter
        assert 0 < a.age_seconds < 60
        # A date, consistent with the age (both from the same snapshot).
        assert abs(a.started_at_unix_seconds + a.age_seconds - time.time()) < 30
        assert a.restarts == 0 and a.last_exit == "" and a.last_exit_code == -1
    # `workers` are the proxy workers: forkd processes, not app processes.
    assert len(s.workers) == 1 and s.workers[0].pid not in apps

    # Six requests through forkd: each app process says which one answered.
    # (The harness's own start-up requests went through forkd too.)
    before = {a.pid: a.requests for a in s.app_processes}
    served = dict(before)
    for _ in range(6):
        status, _, body = http_get(fk.port, "/pid")
        assert status == 200
        served[int(body)] = served.get(int(body), 0) + 1
    s = wait_status(client, lambda s: sum(a.requests for a in s.app_processes)
                    == sum(before.values()) + 6, what="6 requests counted")
    assert {a.pid: a.requests for a in s.app_processes} == served
    assert all(a.cpu_seconds > 0 for a in s.app_processes)

    out = forkctl(fk.admin_addr, "status")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split()[:5] == ["MASTER", "VERSION", "UPTIME", "CLASS", "WORKERS"]
    assert "3/3" in lines[1].split()
    mode = [l for l in lines if l.startswith("Mode: app:")]
    assert mode and "3 sync app processes" in mode[0] and "1/1 async proxy workers" in mode[0]
    table = lines[lines.index("APP PROCESSES") + 1:lines.index("PROXY WORKERS")]
    assert table[0].split()[:3] == ["SLOT", "PID", "STATE"]
    rows = {int(l.split()[1]): l.split() for l in table[1:] if l.strip()}
    assert sorted(rows) == sorted(apps)
    for pid, row in rows.items():
        assert row[2] == "ready"
        assert int(row[4]) == served.get(pid, 0)  # REQUESTS
    out = forkctl(fk.admin_addr, "-o", "json", "status")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["mode"] == "app"
    assert sorted(a["pid"] for a in doc["app_processes"]) == sorted(apps)


def test_scale_and_kill_act_on_app_processes(observed):
    fk, client = observed(["-w", "2", "--max-workers", "4"])
    fk.ready_apps(2)
    r = client.scale(count=3, wait=True, timeout_ms=20000)
    assert r.reached and r.ready_workers == 3, r
    assert r.result.desired_workers == 3
    apps = fk.ready_apps(3)  # three app processes on the OS side
    assert len(client.status().workers) == 1  # proxy workers unchanged

    out = forkctl(fk.admin_addr, "scale", "-1", "--wait")
    assert out.returncode == 0, out.stderr
    apps = fk.ready_apps(2)

    # KillWorker with an app process's pid: it leaves once idle, its
    # replacement starts at once (in another slot), and the restarts say why.
    victim = min(apps)
    out = forkctl(fk.admin_addr, "kill", victim)
    assert out.returncode == 0, out.stderr
    assert "app process %d" % victim in out.stdout
    wait_until(lambda: not pid_alive(victim), 15, what="killed app process gone")
    apps = fk.ready_apps(2)
    assert victim not in apps
    s = wait_status(client, lambda s: s.app_restarts.get("killed") == 1
                    and len(ready_pids(s)) == 2, what="replacement ready")
    assert victim not in [a.pid for a in s.app_processes]
    assert sum(s.app_restarts.values()) == 2  # scale_down and killed
    assert s.app_restarts["scale_down"] == 1

    out = forkctl(fk.admin_addr, "kill", "999999")
    assert out.returncode == 1 and "no worker or app process" in out.stderr


def test_threads_change_the_cap_of_every_app_process(observed):
    fk, client = observed(["-w", "2", "--worker-class", "gthread", "--threads", "2",
                           "--max-threads", "8"])
    fk.ready_apps(2)
    wait_status(client, lambda s: len(ready_pids(s)) == 2)
    r = client.threads(5, wait=True, timeout_ms=20000)
    assert r.reached and (r.workers, r.converged_workers) == (2, 2), r
    s = client.status()
    assert s.threads == 5 and s.in_flight_cap == 10
    assert [a.cap for a in s.app_processes] == [5, 5]


def test_crash_is_reported_with_its_signal_and_counted(observed):
    fk, client = observed(["-w", "2"])
    apps = fk.ready_apps(2)
    victim = max(apps)
    os.kill(victim, signal.SIGKILL)
    s = wait_status(client, lambda s: s.app_restarts.get("crash") == 1
                    and len(ready_pids(s)) == 2 and victim not in ready_pids(s),
                    what="crash replaced")
    row = [a for a in s.app_processes if a.socket == apps[victim]]
    assert row and row[0].last_exit == "crash"
    assert row[0].last_exit_signal == signal.SIGKILL and row[0].last_exit_code == -1
    assert "SIGKILL" in row[0].last_exit_detail
    out = forkctl(fk.admin_addr, "status")
    assert "crash (SIGKILL)" in out.stdout, out.stdout
    m = metrics(fk.metrics_port)
    assert value(m, "forkd_app_restarts_total", reason="crash") == 1


def test_metrics_count_app_processes_and_their_requests(observed):
    fk, client = observed(["-w", "3"])
    apps = fk.ready_apps(3)
    # The harness's start-up requests went through forkd too.
    start = wait_status(client, lambda s: len(ready_pids(s)) == 3)
    already = sum(a.requests for a in start.app_processes)
    for _ in range(9):
        assert http_get(fk.port, "/pid")[0] == 200

    def counted():
        m = metrics(fk.metrics_port)
        return total(m, "forkd_app_requests_total") == already + 9 and m
    m = wait_until(counted, 10, interval=0.1, what="9 app requests in /metrics")
    assert value(m, "forkd_workers", state="ready") == 3  # the app processes
    assert value(m, "forkd_workers_desired") == 3
    assert value(m, "forkd_proxy_workers", state="ready") == 1
    assert value(m, "forkd_app_processes", state="ready") == 3
    assert value(m, "forkd_app_processes", state="starting") == 0
    for slot in ("0", "1", "2"):
        assert value(m, "forkd_app_rss_bytes", slot=slot) > 1 << 20
        assert value(m, "forkd_app_cpu_seconds_total", slot=slot) > 0
        assert 'forkd_app_in_flight{slot="%s"}' % slot in m
    assert value(m, "forkd_app_up") == 1
    assert "forkd_app_checks_total{result=\"failed\"}" not in m

    # kill -9 of one: its slot's counters keep what it served.
    before = {s: value(m, "forkd_app_requests_total", slot=s) for s in ("0", "1", "2")}
    os.kill(min(apps), signal.SIGKILL)
    fk.ready_apps(3)
    m = metrics(fk.metrics_port)
    for s, n in before.items():
        assert value(m, "forkd_app_requests_total", slot=s) >= n
    assert value(m, "forkd_app_restarts_total", reason="crash") == 1


def test_readyz_counts_app_processes_and_never_checks_upstream(observed):
    fk, client = observed(["-w", "2", "--app-health-interval", "0.2"])
    fk.ready_apps(2)
    status, body = wait_probe(fk.metrics_port, "/readyz", 200,
                              contains="2 of 2 app processes ready")
    assert "1 proxy workers ready" in body
    assert probe(fk.metrics_port, "/startupz")[0] == 200
    assert client.health("") == SERVING
    log = fk.error_log_text()
    # No --upstream in app mode: nothing checks the default unix:/tmp/app.sock.
    assert "App check failed" not in log and "app.sock" not in log
    # Gunicorn's start-up line says what runs.
    assert "Using worker: sync app processes (1 request at a time each), " \
           "async proxy workers" in log
    fk.stop()
    assert "App check" not in fk.error_log_text()


def test_readyz_waits_for_the_whole_pool_to_start(observed):
    # The app processes accept on their sockets but never answer
    # --app-health-path: none ever enters the rotation.
    hang = ["/usr/bin/python3", "-c", "import time; time.sleep(600)"]
    fk, client = observed(["-w", "2", "--app-health-path", "/healthz",
                           "--max-queue-time", "1"], app_cmd=hang, wait_ready=False)
    wait_until(lambda: len(fk.app_processes()) == 2, 20, what="2 app processes")
    status, body = wait_probe(fk.metrics_port, "/readyz", 503,
                              contains="0 of 2 app processes ready")
    assert probe(fk.metrics_port, "/startupz")[0] == 503
    assert client.health("") == NOT_SERVING
    s = client.status()
    assert [a.state for a in s.app_processes] == [1, 1]  # STARTING
    assert s.ready_workers == 0


def test_gthread_start_up_line_names_the_app_cap(observed):
    fk, _ = observed(["-w", "1", "--worker-class", "gthread", "--threads", "4"])
    fk.ready_apps(1)
    log = fk.error_log_text()
    assert "Using worker: gthread app processes (up to 4 requests at a time " \
           "each), async proxy workers" in log
    assert "Using worker: gthread\n" not in log
