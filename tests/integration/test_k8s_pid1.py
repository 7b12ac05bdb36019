"""forkd as PID 1 of its container: it reaps every child, its own or not,
and TERM still stops it gracefully.

The container is approximated by a new PID namespace (`unshare --pid
--fork`, root only): forkd is its PID 1. Orphans are made inside the
namespace with `nsenter --pid` (a shell that starts background sleeps and
exits), so the kernel reparents them to forkd, exactly as in a container
whose app left a grandchild behind. Without root or unshare the test skips
and says why.
"""

import os
import signal
import subprocess
import time

import pytest

from forkd_harness import (ExampleApp, _proc_stat, child_pids, free_port, http_get,
                           wait_until)


def can_unshare_pid():
    if os.geteuid() != 0:
        return "needs root for a PID namespace"
    try:
        r = subprocess.run(["unshare", "--pid", "--fork", "true"], capture_output=True,
                           timeout=10)
    except (OSError, subprocess.TimeoutExpired) as e:
        return "unshare unavailable: %s" % e
    return None if r.returncode == 0 else "unshare --pid failed: %s" % r.stderr.decode().strip()


def ns_pids(pid):
    """NSpid of a process: its pid in each nested PID namespace, outermost first."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("NSpid:"):
                return [int(x) for x in line.split()[1:]]
    return []


def children_by_state(ppid):
    """{pid: state} of every child of ppid, zombies included."""
    out = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = _proc_stat(int(name))
            if st is not None and st[1] == ppid:
                out[int(name)] = st[0]
    return out


def test_forkd_as_pid1_reaps_orphans_and_stops_gracefully_on_term(forkd_bin, tmp_short):
    reason = can_unshare_pid()
    if reason:
        pytest.skip(reason)
    port = free_port()
    with ExampleApp() as app:
        log_path = os.path.join(tmp_short, "forkd.log")
        with open(log_path, "wb") as log:
            wrapper = subprocess.Popen(
                ["unshare", "--pid", "--fork", "--kill-child", forkd_bin,
                 "--bind", "127.0.0.1:%d" % port, "--upstream", app.upstream,
                 "--workers", "2", "--admin-bind", "", "--metrics-bind", "",
                 "--shutdown-delay", "0", "--log-level", "debug"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        try:
            master = wait_until(lambda: child_pids(wrapper.pid)[0], 10, what="forkd under unshare")
            assert ns_pids(master)[-1] == 1, "forkd is not PID 1 of its namespace"
            wait_until(lambda: http_get(port, "/hello", timeout=2)[0] == 200, 20,
                       what="forkd answering as PID 1")
            workers = wait_until(lambda: len(child_pids(master)) == 2 and child_pids(master), 20,
                                 what="two workers")

            # A "container process" that leaves two children behind and exits.
            subprocess.run(["nsenter", "--target", str(master), "--pid", "--",
                            "/bin/sh", "-c", "sleep 0.6 & sleep 0.6 & exit 0"],
                           check=True, timeout=10)
            orphans = wait_until(
                lambda: [p for p in children_by_state(master) if p not in workers] or None,
                2, interval=0.01, what="orphans reparented to forkd")
            assert len(orphans) == 2, orphans
            # Once they exit, forkd reaps them: no zombie is left under PID 1.
            wait_until(lambda: not any(p in children_by_state(master) for p in orphans), 5,
                       what="forkd to reap the orphans (zombies: %s)" % children_by_state(master))
            # Reaping strangers did not disturb the workers.
            assert sorted(child_pids(master)) == sorted(workers)
            assert http_get(port, "/hello", timeout=5)[0] == 200

            # TERM reaches PID 1 (signals it has no handler for would not).
            os.kill(master, signal.SIGTERM)
            assert wrapper.wait(timeout=30) == 0
        finally:
            if wrapper.poll() is None:
                wrapper.kill()  # --kill-child takes forkd with it
                wrapper.wait(10)
    with open(log_path, "rb") as f:
        text = f.read().decode("utf-8", "replace")
    assert text.count("(not a worker)") >= 2, text[-3000:]
