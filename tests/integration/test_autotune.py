"""--autotune with the real binaries (issue 12). Limit mode: app mode in
front of the example app, more clients than the limit lets through, forkctl
tune. Full mode: bench/autotune.sh's synthetic app (CPU-bound and I/O-bound)
tuned live; the assertions are directions and bounds, never timings (a
noisy 2-core machine)."""
import http.client
import json
import os
import re
import shutil
import threading
import time

from admin_client import forkctl
from app_forkd import AppForkd, example_app
from forkd_harness import REPO_DIR, free_port, short_tmpdir, wait_until
from metrics_util import metrics, value

AUTOTUNE_APP = os.path.join(REPO_DIR, "bench", "autotune_app.py")

CAP = 16  # -w 1 --threads 16: the app processes' cap


def overload(port, path, clients, seconds):
    """`clients` threads, each one request after another for `seconds`:
    {status: count} and the connection errors (exceptions)."""
    statuses, errors, retry_after = {}, [], set()
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def run():
        while time.monotonic() < stop:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
            try:
                conn.request("GET", path)
                r = conn.getresponse()
                r.read()
                with lock:
                    statuses[r.status] = statuses.get(r.status, 0) + 1
                    if r.status == 503:
                        retry_after.add(r.getheader("Retry-After"))
            except Exception as e:  # noqa: BLE001 - counted, asserted empty
                with lock:
                    errors.append(repr(e))
            finally:
                conn.close()

    threads = [threading.Thread(target=run, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 30)
    return statuses, errors, retry_after


def test_limit_mode_under_overload_and_forkctl_tune():
    admin, mport = free_port(), free_port()
    # A p99 target below the app's 50 ms: the latency guard keeps the
    # limit at its minimum, far below the cap, and the clients over it wait
    # in forkd's queue, then get 503 past --max-queue-time.
    args = ["-w", "1", "--worker-class", "gthread", "--threads", str(CAP),
            "--autotune", "limit", "--latency-target", "20ms",
            "--autotune-bounds", "limit=2:%d" % CAP, "--max-queue-time", "0.3",
            "--admin-bind", "127.0.0.1:%d" % admin,
            "--metrics-bind", "127.0.0.1:%d" % mport]
    with AppForkd(example_app(), args) as fk:
        fk.ready_apps(1)
        addr = "127.0.0.1:%d" % admin
        statuses, errors, retry_after = overload(fk.port, "/sleep?ms=50", clients=24,
                                                 seconds=8)
        assert errors == [], errors[:5]
        assert statuses.get(200, 0) > 0, statuses
        assert statuses.get(503, 0) > 0, statuses
        assert set(statuses) <= {200, 503}, statuses
        assert retry_after == {"1"}, retry_after
        m = metrics(mport)
        limit = value(m, "forkd_autotune_limit")
        assert 2 <= limit <= CAP // 2, limit
        assert value(m, "forkd_autotune_mode", mode="limit") == 1
        assert value(m, "forkd_queue_timeouts_total") > 0
        # Every decision is one JSON line in the log.
        lines = [l for l in fk.error_log_text().splitlines() if "autotune decision " in l]
        assert lines, fk.error_log_text()[-3000:]
        decisions = [json.loads(l.split("autotune decision ", 1)[1]) for l in lines]
        assert all(d["controller"] == "limit" for d in decisions), decisions
        assert "min_rtt_done" in {d["rule"] for d in decisions}, decisions

        r = forkctl(addr, "tune", timeout=30)
        assert r.returncode == 0, r.stderr
        assert "mode limit, phase " in r.stdout, r.stdout
        # The limit moves between the metrics read and this call: a number.
        assert re.search(r"\blimit \d+", r.stdout), r.stdout
        assert "min_rtt_done" in r.stdout, r.stdout
        r = forkctl(addr, "-o", "json", "tune", timeout=30)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["mode"] == "limit"
        r = forkctl(addr, "tune", "report", timeout=30)
        assert r.returncode == 0, r.stderr
        assert "-w 1 --threads" in r.stdout, r.stdout

        # Bad SetTune: a clear INVALID_ARGUMENT, nothing changed.
        for bad, words in ((["--pin", "cores=3"], "unknown knob"),
                           (["--bounds", "threads=9:2"], "min above max"),
                           (["--mode", "max"], "is not off, limit or full"),
                           (["--latency-target", "soon"], "not a duration")):
            r = forkctl(addr, "tune", *bad, timeout=30)
            assert r.returncode == 1, (bad, r.stdout, r.stderr)
            assert "invalid argument" in r.stderr and words in r.stderr, (bad, r.stderr)
        r = forkctl(addr, "tune", "--pin", "limit=5", timeout=30)
        assert r.returncode == 0, r.stderr
        assert "pinned limit=5" in r.stdout, r.stdout
        assert value(metrics(mport), "forkd_autotune_limit") == 5

        # Off, live: no limit any more; every request goes to the app.
        r = forkctl(addr, "tune", "--mode", "off", timeout=30)
        assert r.returncode == 0, r.stderr
        assert "mode off" in r.stdout and "limit none" in r.stdout, r.stdout
        wait_until(lambda: value(metrics(mport), "forkd_autotune_limit") == 0, 5,
                   interval=0.1, what="the limit metric at 0")
        statuses, errors, _ = overload(fk.port, "/sleep?ms=50", clients=8, seconds=2)
        assert errors == [] and set(statuses) == {200}, (statuses, errors[:5])


def synthetic_app(state):
    """bench/autotune_app.py, its pool sized by forkd's {threads}."""
    return ["/usr/bin/python3", AUTOTUNE_APP, "--threads", "{threads}", "--state", state]


def decisions_of(fk):
    lines = [l for l in fk.error_log_text().splitlines() if "autotune decision " in l]
    return [json.loads(l.split("autotune decision ", 1)[1]) for l in lines]


def tune_under_load(fk, mport, path, clients, seconds):
    """Load for `seconds` while the workers/threads in force are sampled
    every 0.25 s: (statuses, errors, [(workers, threads)])."""
    seen, result = [], {}

    def run():
        result["r"] = overload(fk.port, path, clients, seconds)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    deadline = time.monotonic() + seconds + 40
    while t.is_alive() and time.monotonic() < deadline:
        m = metrics(mport)
        seen.append((int(value(m, "forkd_autotune_workers")),
                     int(value(m, "forkd_autotune_threads"))))
        time.sleep(0.25)
    t.join(5)
    statuses, errors, _ = result["r"]
    return statuses, errors, seen


def test_full_mode_cpu_bound_app_gets_processes_within_bounds_and_one_thread():
    state = short_tmpdir()
    mport = free_port()
    try:
        # One process of one thread: the app's latency is its CPU time, so
        # /proc classifies it CPU-bound even on a busy machine (with two
        # threads under the GIL the latency doubles and it reads as mixed).
        # Bounds below the derived default.
        args = ["-w", "1", "--worker-class", "gthread", "--threads", "1",
                "--autotune", "full", "--autotune-bounds", "workers=1:3,threads=1:8",
                "--admin-bind", "", "--metrics-bind", "127.0.0.1:%d" % mport]
        with AppForkd(synthetic_app(state), args) as fk:
            fk.ready_apps(1)
            statuses, errors, seen = tune_under_load(fk, mport, "/cpu", clients=6,
                                                     seconds=20)
            assert errors == [], errors[:5]
            assert set(statuses) == {200}, statuses
            assert seen, "no metrics sampled"
            assert all(1 <= w <= 3 and 1 <= t <= 8 for w, t in seen), seen
            decisions = decisions_of(fk)
            assert decisions, fk.error_log_text()[-3000:]
            assert all(d["controller"] == "capacity" for d in decisions), decisions
            for d in decisions:
                if d["knob"] == "workers":
                    assert 1 <= d["new"] <= 3, d
            # Classified CPU-bound from /proc: threads 1, kept there.
            assert any("[cpu-bound]" in d["why"] for d in decisions), [
                (d["rule"], d["why"]) for d in decisions]
            first = next(i for i, d in enumerate(decisions) if "[cpu-bound]" in d["why"])
            assert not any(d["knob"] == "threads" and d["new"] > 1
                           for d in decisions[first:]), decisions
            assert value(metrics(mport), "forkd_autotune_threads") == 1, seen[-5:]
    finally:
        shutil.rmtree(state, ignore_errors=True)


def test_full_mode_io_bound_app_gets_more_concurrency_and_an_operator_scale_pins():
    state = short_tmpdir()
    admin, mport = free_port(), free_port()
    try:
        args = ["-w", "1", "--worker-class", "gthread", "--threads", "1",
                "--autotune", "full", "--autotune-bounds", "workers=1:4,threads=1:16",
                "--admin-bind", "127.0.0.1:%d" % admin,
                "--metrics-bind", "127.0.0.1:%d" % mport]
        with AppForkd(synthetic_app(state), args) as fk:
            fk.ready_apps(1)
            # 24 clients on a 50 ms wait: one slot serves 20 req/s; each
            # change of threads replaces the app processes under load.
            statuses, errors, seen = tune_under_load(fk, mport, "/io", clients=24,
                                                     seconds=20)
            assert errors == [], errors[:5]
            assert set(statuses) == {200}, statuses
            assert all(1 <= w <= 4 and 1 <= t <= 16 for w, t in seen), seen
            w, t = seen[-1]
            assert w * t > 1, seen
            decisions = decisions_of(fk)
            assert any("[io-bound]" in d["why"] for d in decisions), decisions
            assert any(d["knob"] == "threads" and d["new"] > d["old"]
                       for d in decisions), decisions

            # An operator's scale is a pin: the controller keeps it.
            addr = "127.0.0.1:%d" % admin
            r = forkctl(addr, "scale", "2", timeout=30)
            assert r.returncode == 0, r.stderr
            r = forkctl(addr, "-o", "json", "tune", timeout=30)
            assert r.returncode == 0, r.stderr
            tune = json.loads(r.stdout)
            assert tune.get("pinWorkers", tune.get("pin_workers")) == 2, tune
            statuses, errors, seen = tune_under_load(fk, mport, "/io", clients=24,
                                                     seconds=8)
            assert errors == [] and set(statuses) == {200}, (statuses, errors[:5])
            assert all(w == 2 for w, _ in seen), seen
            assert "set to 2 by an operator: pinned" in fk.error_log_text()
    finally:
        shutil.rmtree(state, ignore_errors=True)
