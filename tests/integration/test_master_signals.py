"""Signals to the master: HUP, TERM, INT/QUIT, WINCH, USR1 (Gunicorn's meanings)."""

import os
import signal
import subprocess
import time

import pytest

from forkd_harness import Forkd, LoadGenerator, http_get, wait_until
from master_util import (connection_refused, get_in_thread, quick_term_args, wait_exit,
                         wait_gone, wait_worker_set, worker_config_args, worker_generation,
                         workers_of)
from master_util import forkd_factory  # noqa: F401 - with --shutdown-delay 0


def _all_new(old):
    return lambda pids: bool(pids) and not set(pids) & set(old)


# --- HUP -----------------------------------------------------------------------


def test_hup_under_load_replaces_every_worker_without_failures(forkd_factory, example_app):
    fk = forkd_factory(example_app, ["--workers", "3", "--worker-class", "gthread",
                                     "--threads", "4", "--graceful-timeout", "10"])
    old = fk.wait_workers(3)
    load = LoadGenerator(fk.url("/sleep?ms=20"), threads=4, duration=3.0, max_requests=1000,
                         timeout=10).start()
    time.sleep(1.0)
    fk.signal(signal.SIGHUP)
    new = wait_worker_set(fk.pid, lambda p: len(p) == 3 and _all_new(old)(p), 15,
                          "3 new workers and no old ones")
    summary = load.wait()
    assert summary.failed == 0, summary
    assert summary.ok > 50, summary
    assert all(worker_generation(p) == 2 for p in new), new
    assert fk.alive()
    status, _, _ = http_get(fk.port, "/hello")
    assert status == 200


def test_hup_with_busy_keepalive_clients_loses_no_request(forkd_factory, example_app):
    # Clients at the pool's capacity reuse their connections: a retired
    # worker must not close one whose next request is already on its way
    # (it did before e135a00: RemoteDisconnected).
    fk = forkd_factory(example_app, ["--workers", "2", "--worker-class", "gthread",
                                     "--threads", "2"])
    fk.wait_workers(2)
    load = LoadGenerator(fk.url("/sleep?ms=10"), threads=3, duration=2.5, max_requests=1000,
                         timeout=10).start()
    for _ in range(3):
        time.sleep(0.5)
        fk.signal(signal.SIGHUP)
    summary = load.wait()
    assert summary.failed == 0, summary


def test_hup_applies_a_changed_config_file(forkd_factory, example_app, tmp_short):
    conf = os.path.join(tmp_short, "forkd.conf")
    with open(conf, "w") as f:
        f.write("# before\nworkers = 2\ntimeout = 30\nkeepalive = 2\n")
    fk = forkd_factory(example_app, ["--config", conf])
    old = fk.wait_workers(2)
    assert worker_config_args(old[0])["--timeout"] == "30"

    with open(conf, "w") as f:
        f.write("# after\nworkers = 3\ntimeout = 7\nkeepalive = 5\n")
    fk.signal(signal.SIGHUP)
    new = wait_worker_set(fk.pid, lambda p: len(p) == 3 and _all_new(old)(p), 15,
                          "3 workers of the new configuration")
    for pid in new:
        args = worker_config_args(pid)
        assert args["--timeout"] == "7", args
        assert args["--keepalive"] == "5", args
    time.sleep(0.5)
    assert len(workers_of(fk.pid)) == 3


def test_hup_with_a_broken_config_file_keeps_the_pool(forkd_factory, example_app, tmp_short):
    conf = os.path.join(tmp_short, "forkd.conf")
    with open(conf, "w") as f:
        f.write("workers = 2\n")
    fk = forkd_factory(example_app, ["--config", conf])
    old = fk.wait_workers(2)
    with open(conf, "w") as f:
        f.write("workers = many\n")
    fk.signal(signal.SIGHUP)
    wait_until(lambda: "Reload failed" in fk.log(), 5, what="the reload error")
    time.sleep(0.5)
    assert workers_of(fk.pid) == old
    status, _, _ = http_get(fk.port, "/hello")
    assert status == 200


def test_size_set_by_ttin_survives_hup(forkd_factory, example_app):
    fk = forkd_factory(example_app, ["--workers", "2"])
    fk.wait_workers(2)
    fk.signal(signal.SIGTTIN)
    old = fk.wait_workers(3)
    fk.signal(signal.SIGHUP)
    new = wait_worker_set(fk.pid, lambda p: len(p) == 3 and _all_new(old)(p), 15,
                          "3 new workers")
    assert all(worker_generation(p) == 2 for p in new)
    time.sleep(0.5)
    assert len(workers_of(fk.pid)) == 3, fk.log()


# --- TERM / INT / QUIT -------------------------------------------------------------


CLASSES = {
    "sync": ["--worker-class", "sync", "--workers", "4"],
    "gthread": ["--worker-class", "gthread", "--workers", "2", "--threads", "4"],
    "async": ["--worker-class", "async", "--workers", "2"],
}


@pytest.mark.parametrize("worker_class", sorted(CLASSES))
def test_term_finishes_requests_in_flight(forkd_factory, example_app, worker_class):
    graceful = 10
    fk = forkd_factory(example_app, CLASSES[worker_class] + [
        "--graceful-timeout", str(graceful)])
    workers = fk.wait_workers(4 if worker_class == "sync" else 2)
    for _ in range(4):
        assert http_get(fk.port, "/hello")[0] == 200
    requests = [get_in_thread(fk.port, "/sleep?ms=1500") for _ in range(4)]
    time.sleep(0.3)
    term_at = time.monotonic()
    fk.signal(signal.SIGTERM)
    code = wait_exit(fk.proc, graceful + 5)
    exited_at = time.monotonic()
    for t, _ in requests:
        t.join(10)
    results = [r for _, r in requests]
    assert [r.get("status") for r in results] == [200] * 4, (results, fk.diagnostics())
    assert code == 0, fk.diagnostics()
    assert exited_at - term_at < graceful, "exit took %.1f s" % (exited_at - term_at)
    # The master waited for the answers before leaving.
    assert all(r["at"] <= exited_at + 0.05 for r in results)
    assert connection_refused(fk.port)
    for pid in workers:
        assert wait_gone(pid, 5), "worker %d outlived the master" % pid
    assert not os.path.exists(fk.pidfile)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGQUIT])
def test_quick_shutdown_is_prompt(forkd_factory, example_app, sig):
    fk = forkd_factory(example_app, ["--workers", "2", "--graceful-timeout", "30"])
    workers = fk.wait_workers(2)
    slow, _ = get_in_thread(fk.port, "/sleep?ms=8000", timeout=12)
    time.sleep(0.3)
    sent = time.monotonic()
    fk.signal(sig)
    code = wait_exit(fk.proc, 5)
    elapsed = time.monotonic() - sent
    assert code == 0, (code, fk.diagnostics())
    assert elapsed < 5
    for pid in workers:
        assert wait_gone(pid, 3), "worker %d outlived the master" % pid
    assert connection_refused(fk.port)
    slow.join(12)


# --- WINCH ------------------------------------------------------------------------


def test_winch_stops_workers_and_hup_brings_them_back(forkd_factory, example_app):
    fk = forkd_factory(example_app, ["--workers", "2"])
    old = fk.wait_workers(2)
    fk.signal(signal.SIGWINCH)
    wait_worker_set(fk.pid, lambda p: p == [], 10, "no workers after WINCH")
    time.sleep(1.0)  # nothing respawns them
    assert workers_of(fk.pid) == []
    assert fk.alive()
    fk.signal(signal.SIGHUP)
    new = wait_worker_set(fk.pid, lambda p: len(p) == 2, 10, "2 workers after HUP")
    assert not set(new) & set(old)
    status, _, _ = http_get(fk.port, "/hello")
    assert status == 200


def test_winch_then_ttin_starts_one_worker(forkd_factory, example_app):
    fk = forkd_factory(example_app, ["--workers", "2"])
    fk.wait_workers(2)
    fk.signal(signal.SIGWINCH)
    wait_worker_set(fk.pid, lambda p: p == [], 10, "no workers after WINCH")
    fk.signal(signal.SIGTTOU)  # nothing to remove: refused, master lives
    fk.signal(signal.SIGTTIN)
    fk.wait_workers(1, timeout=10)
    time.sleep(0.5)
    assert len(workers_of(fk.pid)) == 1
    status, _, _ = http_get(fk.port, "/hello")
    assert status == 200


# --- USR1 -------------------------------------------------------------------------


def test_usr1_reopens_error_and_access_logs(forkd_factory, example_app, tmp_short):
    access = os.path.join(tmp_short, "access.log")
    fk = forkd_factory(example_app, ["--workers", "2", "--access-logfile", access])
    fk.wait_workers(2)
    assert http_get(fk.port, "/hello?before")[0] == 200
    wait_until(lambda: "before" in open(access).read(), 5, what="the first access line")

    os.rename(fk.error_log_path, fk.error_log_path + ".1")
    os.rename(access, access + ".1")
    fk.signal(signal.SIGUSR1)
    wait_until(lambda: os.path.exists(fk.error_log_path), 5, what="a new error log")
    wait_until(lambda: os.path.exists(access), 5, what="a new access log")

    fk.signal(signal.SIGTTIN)  # the master logs "Handling signal: ttin"
    wait_until(lambda: "Handling signal: ttin" in fk.log(), 5, what="a line in the new error log")
    fk.wait_workers(3)
    # Every worker (the old ones reopened too) logs to the new access log.
    for i in range(12):
        assert http_get(fk.port, "/hello?after%d" % i)[0] == 200
    wait_until(lambda: open(access).read().count("after") == 12, 5,
               what="12 lines in the new access log")
    with open(access + ".1") as f:
        assert "after" not in f.read()
    with open(fk.error_log_path + ".1") as f:
        assert "ttin" not in f.read()


def test_second_term_stops_quickly(forkd_factory, example_app):
    fk = forkd_factory(example_app, ["--workers", "1", "--graceful-timeout", "30"])
    fk.wait_workers(1)
    slow, _ = get_in_thread(fk.port, "/sleep?ms=8000", timeout=12)
    time.sleep(0.3)
    fk.signal(signal.SIGTERM)
    time.sleep(0.5)
    assert fk.alive()  # still draining the slow request
    sent = time.monotonic()
    fk.signal(signal.SIGTERM)
    assert wait_exit(fk.proc, 5) == 0, fk.diagnostics()
    assert time.monotonic() - sent < 5
    slow.join(12)


def test_graceful_timeout_bounds_the_drain(forkd_factory, example_app):
    fk = forkd_factory(example_app, ["--workers", "1", "--graceful-timeout", "2"])
    [worker] = fk.wait_workers(1)
    slow, result = get_in_thread(fk.port, "/sleep?ms=9000", timeout=12)
    time.sleep(0.3)
    sent = time.monotonic()
    fk.signal(signal.SIGTERM)
    code = wait_exit(fk.proc, 8)
    elapsed = time.monotonic() - sent
    assert code == 0, (code, fk.diagnostics())
    assert 1.5 <= elapsed < 5, elapsed
    assert wait_gone(worker, 3)
    assert "did not stop in time; SIGKILL" in fk.log()
    slow.join(12)
    assert result.get("status") != 200, result


def test_shutdown_delay_keeps_serving_before_draining(forkd_factory, example_app):
    fk = forkd_factory(example_app, ["--workers", "2", "--shutdown-delay", "1.5"])
    fk.wait_workers(2)
    sent = time.monotonic()
    fk.signal(signal.SIGTERM)
    time.sleep(0.3)
    status, _, body = http_get(fk.port, "/hello")
    assert (status, body) == (200, b"hello\n")
    code = wait_exit(fk.proc, 10)
    assert code == 0, fk.diagnostics()
    assert time.monotonic() - sent >= 1.4


def _blocks(pid, signo):
    """True once pid's signal mask holds signo (/proc/PID/status SigBlk)."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("SigBlk:"):
                    return bool(int(line.split()[1], 16) & (1 << (signo - 1)))
    except OSError:
        pass
    return False


def test_term_right_after_start_is_not_lost(forkd_factory, example_app):
    fk = forkd_factory(example_app, ["--workers", "3"], wait_ready=False)
    # As soon as main() blocks TERM (the master reads it from its signalfd):
    # before or while the master spawns. A fixed sleep raced the dynamic
    # loader on a busy machine, and a TERM before main() kills any program.
    wait_until(lambda: _blocks(fk.pid, signal.SIGTERM), 10, interval=0.001,
               what="the master to block TERM")
    fk.signal(signal.SIGTERM)
    assert wait_exit(fk.proc, 10) == 0, fk.diagnostics()
    assert connection_refused(fk.port)
    assert not os.path.exists(fk.pidfile)


def _double_hup_under_load(fk):
    # A reload while the previous one is still handing over: two generations
    # retire, one after the other. A new connection per request, so a moment
    # without a worker would show as a failed request.
    old = fk.wait_workers(2)
    load = LoadGenerator(fk.url("/sleep?ms=10"), threads=3, duration=2.5, max_requests=1000,
                         headers={"Connection": "close"}, timeout=10).start()
    time.sleep(0.5)
    fk.signal(signal.SIGHUP)
    time.sleep(0.15)  # the first reload's workers are still booting or young
    fk.signal(signal.SIGHUP)
    new = wait_worker_set(fk.pid, lambda p: len(p) == 2 and _all_new(old)(p)
                          and all(worker_generation(x) == 3 for x in p), 15,
                          "2 workers of generation 3 only")
    summary = load.wait()
    assert summary.failed == 0, summary
    assert summary.ok > 50, summary
    time.sleep(0.5)
    assert workers_of(fk.pid) == new


def test_double_hup_under_load(forkd_factory, example_app):
    _double_hup_under_load(forkd_factory(example_app, ["--workers", "2"]))


def test_double_hup_under_load_gthread(forkd_factory, example_app):
    # gthread: a connection accepted just before the stop, its request not
    # read yet, must still be answered (it was closed before e135a00).
    _double_hup_under_load(forkd_factory(example_app, ["--workers", "2", "--worker-class",
                                                       "gthread", "--threads", "2"]))


def test_ttou_retires_an_idle_worker_not_a_busy_one(forkd_factory, example_app):
    fk = forkd_factory(example_app, ["--workers", "2", "--worker-class", "sync"])
    fk.wait_workers(2)
    slow, result = get_in_thread(fk.port, "/sleep?ms=3000")
    time.sleep(0.3)
    fk.signal(signal.SIGTTOU)
    # An idle worker exits at once; the busy one would take until its
    # request ends (3 s).
    left = wait_worker_set(fk.pid, lambda p: len(p) == 1, 1.5, "one worker")
    assert not result, "the slow request ended early: %r" % (result,)
    slow.join(10)
    assert result.get("status") == 200, result
    assert workers_of(fk.pid) == left


def test_winch_is_ignored_when_stdin_is_a_terminal(forkd_bin, example_app, tmp_short):
    # In a terminal, WINCH means "window resized", not "stop the workers".
    master_fd, slave_fd = os.openpty()
    fk = Forkd(example_app, quick_term_args(["--workers", "2"]), binary=forkd_bin,
               tmpdir=tmp_short)
    try:
        with open(fk.stderr_path, "ab") as err:
            fk.proc = subprocess.Popen(fk.command(), stdin=slave_fd, stdout=err, stderr=err,
                                       start_new_session=True)
        fk.wait_answering(20)
        workers = fk.wait_workers(2)
        fk.signal(signal.SIGWINCH)
        wait_until(lambda: "SIGWINCH ignored" in fk.log(), 5, what="the WINCH note")
        time.sleep(0.5)
        assert workers_of(fk.pid) == workers
    finally:
        fk.stop()
        os.close(master_fd)
        os.close(slave_fd)
