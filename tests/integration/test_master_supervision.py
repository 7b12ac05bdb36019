"""The master keeps the pool right: TTIN/TTOU, crashed, hung and recycled workers."""

import os
import re
import shutil
import signal
import time

from forkd_harness import Forkd, child_pids, http_get, pid_alive, wait_until
from master_util import (connection_refused, get_in_thread, kill_quietly, wait_gone,
                         wait_worker_set, workers_of)
from master_util import quick_term_args
from master_util import forkd_factory  # noqa: F401 - with --shutdown-delay 0


def _settle_count(fk, n, hold=0.6):
    """Waits for n workers, then checks the count holds for `hold` s."""
    pids = fk.wait_workers(n, timeout=15)
    deadline = time.monotonic() + hold
    while time.monotonic() < deadline:
        now = workers_of(fk.pid)
        assert len(now) == n, "expected %d workers, saw %s\n%s" % (n, now, fk.diagnostics())
        time.sleep(0.05)
    return pids


def test_ttin_ttou_change_the_worker_processes(forkd_factory, example_app):
    fk = forkd_factory(example_app, ["--workers", "2", "--max-workers", "3"])
    first = _settle_count(fk, 2, hold=0)

    fk.signal(signal.SIGTTIN)
    three = fk.wait_workers(3)
    assert set(first) < set(three)  # one added, none replaced

    fk.signal(signal.SIGTTIN)  # at --max-workers already
    _settle_count(fk, 3)
    assert "already at the limit of 3 workers" in fk.log()

    for _ in range(4):  # one past the minimum
        fk.signal(signal.SIGTTOU)
        time.sleep(0.1)
    last = _settle_count(fk, 1)
    assert set(last) <= set(three)  # TTOU retires, never respawns
    assert "already at the minimum of 1 worker" in fk.log()
    status, _, _ = http_get(fk.port, "/hello")
    assert status == 200


def test_ttin_burst_stops_at_max_workers(forkd_factory, example_app):
    fk = forkd_factory(example_app, ["--workers", "1", "--max-workers", "4"])
    fk.wait_workers(1)
    for _ in range(6):
        fk.signal(signal.SIGTTIN)
        time.sleep(0.05)
    _settle_count(fk, 4)


def test_killed_worker_is_replaced(forkd_factory, example_app):
    fk = forkd_factory(example_app, ["--workers", "3"])
    before = fk.wait_workers(3)
    victim = before[1]
    kill_quietly(victim, signal.SIGKILL)
    after = wait_worker_set(fk.pid, lambda p: len(p) == 3 and victim not in p, 10,
                            "a replacement for %d" % victim)
    assert set(after) - set(before), "no new pid"
    assert set(before) - {victim} <= set(after)  # the others were left alone
    assert "Worker (pid:%d) was sent SIGKILL" % victim in fk.log()
    status, _, _ = http_get(fk.port, "/hello")
    assert status == 200


def test_crashed_worker_is_replaced_and_logged(forkd_factory, example_app):
    fk = forkd_factory(example_app, ["--workers", "2"])
    before = fk.wait_workers(2)
    victim = before[0]
    kill_quietly(victim, signal.SIGSEGV)
    wait_worker_set(fk.pid, lambda p: len(p) == 2 and victim not in p, 10,
                    "a replacement for %d" % victim)
    assert re.search(r"Worker \(pid:%d\) was killed by SIGSEGV" % victim, fk.log()), fk.log()


def test_hung_worker_is_killed_and_replaced(forkd_factory, example_app):
    fk = forkd_factory(example_app, ["--workers", "2", "--timeout", "2"])
    before = fk.wait_workers(2)
    victim = before[0]
    kill_quietly(victim, signal.SIGSTOP)
    try:
        # timeout 2 s, then SIGABRT (pending on a stopped process), then
        # SIGKILL 2 s later; allow for the 250 ms ticks.
        after = wait_worker_set(fk.pid, lambda p: len(p) == 2 and victim not in p, 12,
                                "the hung worker %d to be replaced" % victim)
    finally:
        if pid_alive(victim):
            kill_quietly(victim, signal.SIGKILL)
    assert before[1] in after  # the healthy one was left alone
    assert "WORKER TIMEOUT (pid:%d)" % victim in fk.log(), fk.log()
    # The healthy workers are not timed out for being idle.
    time.sleep(2.5)
    assert set(workers_of(fk.pid)) == set(after), fk.log()
    status, _, _ = http_get(fk.port, "/hello")
    assert status == 200


def test_max_requests_recycles_without_failures(forkd_factory, example_app):
    fk = forkd_factory(example_app, ["--workers", "1", "--max-requests", "20",
                                     "--max-requests-jitter", "5"])
    fk.wait_workers(1)
    master_fds = len(os.listdir("/proc/%d/fd" % fk.pid))
    seen = []
    failures = []
    deadline = time.monotonic() + 60
    for i in range(100):
        assert time.monotonic() < deadline, "100 requests took over 60 s"
        for pid in workers_of(fk.pid):
            if pid not in seen:
                seen.append(pid)
        try:
            status, _, body = http_get(fk.port, "/hello?i=%d" % i, timeout=10)
            if status != 200 or body != b"hello\n":
                failures.append((i, status, body))
        except Exception as e:  # noqa: BLE001 - counted
            failures.append((i, type(e).__name__, str(e)))
    assert failures == [], failures
    # Each worker serves 20..25 requests: 100 requests need 4 to 5 workers
    # (the last one may be young). Every one lives long enough to be seen.
    assert 4 <= len(seen) <= 6, (seen, fk.log())
    log = fk.log()
    assert log.count("Autorestarting worker") >= 3, log
    assert "WORKER TIMEOUT" not in log
    assert not re.search(r"Worker \(pid:\d+\) (was killed|exited with code [1-9])", log), log
    wait_until(lambda: len(workers_of(fk.pid)) == 1, 5, what="one worker")
    # Every recycle was reaped and left no descriptor behind in the master
    # (a recycle may be under way at the last request: allow it to settle).
    wait_until(lambda: len(os.listdir("/proc/%d/fd" % fk.pid)) == master_fds
               and child_pids(fk.pid) == workers_of(fk.pid)
               and not _zombie_children(fk.pid), 3,
               what="no leaked descriptors or zombies in the master")


def _zombie_children(ppid):
    return [int(p) for p in os.listdir("/proc") if p.isdigit() and _is_zombie_child(int(p), ppid)]


def _is_zombie_child(pid, ppid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[0] == "Z" and int(fields[1]) == ppid


def test_workers_run_the_masters_image_after_the_binary_is_replaced(
        forkd_bin, example_app, tmp_short):
    # A package upgrade renames a new file over the binary while forkd runs.
    # Replacement workers must still run the master's own image (they share
    # its scoreboard layout and argv contract), not whatever the path holds
    # now; only USR2 is meant to pick up the new file.
    binary = os.path.join(tmp_short, "forkd")
    shutil.copy2(forkd_bin, binary)
    fk = Forkd(example_app, quick_term_args(["--workers", "2"]), binary=binary,
               tmpdir=tmp_short).start()
    try:
        _check_replacement_runs_the_old_image(fk, binary, tmp_short)
    finally:
        fk.stop()


def _check_replacement_runs_the_old_image(fk, binary, tmp_short):
    before = fk.wait_workers(2)
    marker = os.path.join(tmp_short, "ran-the-new-file")
    staged = binary + ".new"
    with open(staged, "w") as f:
        f.write("#!/bin/sh\ntouch %s\nexit 1\n" % marker)
    os.chmod(staged, 0o755)
    os.rename(staged, binary)

    kill_quietly(before[0], signal.SIGKILL)
    after = wait_worker_set(fk.pid, lambda p: len(p) == 2 and before[0] not in p, 10,
                            "a replacement worker")
    fk.signal(signal.SIGHUP)  # a reload starts every worker again
    wait_worker_set(fk.pid, lambda p: len(p) == 2 and not set(p) & set(after), 15,
                    "the reloaded workers")
    assert fk.alive(), fk.diagnostics()
    assert not os.path.exists(marker), "a worker was started from the replaced file"
    for _ in range(4):
        assert http_get(fk.port, "/hello")[0] == 200


def test_workers_stop_when_the_master_is_killed(forkd_factory, example_app):
    # A master killed outright (the OOM killer, kill -9) must not leave its
    # workers serving unsupervised and holding the port: they stop, like
    # Gunicorn's workers do when their parent goes.
    fk = forkd_factory(example_app, ["--workers", "2"])
    workers = fk.wait_workers(2)
    slow, result = get_in_thread(fk.port, "/sleep?ms=1000")
    time.sleep(0.3)
    fk.signal(signal.SIGKILL)
    try:
        for pid in workers:
            assert wait_gone(pid, 5), "worker %d outlived its master" % pid
    finally:
        for pid in workers:
            if pid_alive(pid):
                kill_quietly(pid, signal.SIGKILL)
    slow.join(10)
    assert result.get("status") == 200, result  # they stopped gracefully
    assert connection_refused(fk.port)


def test_whole_server_suspended_and_resumed_keeps_its_workers(forkd_factory, example_app):
    # Ctrl-Z then fg, or a frozen container: the master did not run either,
    # so stale heartbeats prove nothing; it must not kill every worker.
    fk = forkd_factory(example_app, ["--workers", "2", "--timeout", "2"])
    workers = fk.wait_workers(2)
    os.killpg(fk.pid, signal.SIGSTOP)  # the master's process group: all of forkd
    try:
        time.sleep(3.5)
    finally:
        os.killpg(fk.pid, signal.SIGCONT)
    time.sleep(2.5)  # past the timeout again: a hung worker would be gone by now
    assert workers_of(fk.pid) == workers, fk.log()
    assert "WORKER TIMEOUT" not in fk.log()
    assert http_get(fk.port, "/hello")[0] == 200
