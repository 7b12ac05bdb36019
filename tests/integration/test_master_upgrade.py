"""USR2 binary upgrade: a new master on the same sockets, then WINCH + TERM the old."""

import os
import shutil
import signal
import time

from forkd_harness import (Forkd, LoadGenerator, child_pids, free_port, http_get, pid_alive,
                           is_worker_process, process_exe, unix_http_request, wait_until)
from master_util import (kill_quietly, read_pid, wait_exit, wait_gone, wait_worker_set,
                         workers_of)
from master_util import quick_term_args
from master_util import forkd_factory  # noqa: F401 - with --shutdown-delay 0


def _stop_orphan_master(pid):
    """TERMs a master that is not our child; KILLs it and its workers if it lingers."""
    if not pid or not pid_alive(pid):
        return
    workers = workers_of(pid)
    kill_quietly(pid, signal.SIGTERM)
    if not wait_gone(pid, 15):
        kill_quietly(pid, signal.SIGKILL)
    for w in workers:
        if pid_alive(w):
            kill_quietly(w, signal.SIGKILL)


def test_usr2_upgrade_under_load_without_refused_requests(forkd_factory, example_app):
    fk = forkd_factory(example_app, ["--workers", "2", "--graceful-timeout", "10"])
    old_workers = fk.wait_workers(2)
    pidfile2 = fk.pidfile + ".2"
    new_master = None
    # A new connection per request: a moment without a listener would show
    # as refused connects.
    load = LoadGenerator(fk.url("/sleep?ms=10"), threads=3, duration=20, max_requests=3000,
                         headers={"Connection": "close"}, timeout=10).start()
    try:
        time.sleep(0.5)
        fk.signal(signal.SIGUSR2)
        new_master = wait_until(lambda: read_pid(pidfile2), 10, what=pidfile2)
        assert new_master in child_pids(fk.pid), "the new master is a child of the old"
        assert process_exe(new_master) == os.path.realpath(fk.binary)
        assert not is_worker_process(new_master)
        new_workers = wait_worker_set(new_master, lambda p: len(p) == 2, 10,
                                      "the new master's workers")
        assert not set(new_workers) & set(old_workers)
        assert read_pid(fk.pidfile) == fk.pid  # the old one still owns it
        time.sleep(0.5)  # both generations serve side by side

        fk.signal(signal.SIGWINCH)
        wait_worker_set(fk.pid, lambda p: p == [], 10, "the old workers to stop")
        for pid in old_workers:
            assert wait_gone(pid, 5)
        assert fk.alive()
        time.sleep(0.5)  # only the new workers serve now

        fk.signal(signal.SIGTERM)
        assert wait_exit(fk.proc, 10) == 0, fk.diagnostics()
        wait_until(lambda: read_pid(fk.pidfile) == new_master, 5,
                   what="the new master to take over the pidfile")
        assert not os.path.exists(pidfile2)
        time.sleep(0.5)
        summary = load.stop()
        assert summary.failed == 0, summary
        assert summary.ok > 50, summary

        assert pid_alive(new_master)
        assert workers_of(new_master) == new_workers
        for _ in range(5):
            status, headers, _ = http_get(fk.port, "/hello")
            assert status == 200
        assert "this master takes over" in fk.log(), fk.log()
    finally:
        load.stop()
        _stop_orphan_master(new_master)
    assert not os.path.exists(fk.pidfile), "the new master removes the pidfile at exit"


def test_second_usr2_while_upgrading_is_refused(forkd_factory, example_app):
    fk = forkd_factory(example_app, ["--workers", "1"])
    fk.wait_workers(1)
    new_master = None
    try:
        fk.signal(signal.SIGUSR2)
        new_master = wait_until(lambda: read_pid(fk.pidfile + ".2"), 10, what="pidfile.2")
        wait_worker_set(new_master, lambda p: len(p) == 1, 10, "the new master's worker")
        fk.signal(signal.SIGUSR2)
        wait_until(lambda: "an upgrade is already running" in fk.log(), 5,
                   what="the refusal in the log")
        masters = [p for p in child_pids(fk.pid) if not is_worker_process(p)]
        assert masters == [new_master]
        # The new master refuses to upgrade while the old one runs.
        os.kill(new_master, signal.SIGUSR2)
        wait_until(lambda: "this master is itself an upgrade" in fk.log(), 5,
                   what="the new master's refusal")
        assert [p for p in child_pids(new_master) if not is_worker_process(p)] == []
    finally:
        _stop_orphan_master(new_master)
    # The old master goes on alone when the new one exits.
    wait_until(lambda: "The new master (pid %d)" % new_master in fk.log(), 10,
               what="the old master noticing the new one left")
    assert fk.alive()
    assert http_get(fk.port, "/hello")[0] == 200
    assert read_pid(fk.pidfile) == fk.pid


def test_usr2_upgrade_keeps_a_unix_socket_bind(forkd_factory, example_app, tmp_short):
    sock = os.path.join(tmp_short, "fk.sock")
    port = free_port()
    fk = forkd_factory(example_app, ["--workers", "1", "--bind", "127.0.0.1:%d" % port,
                                     "--bind", "unix:" + sock], port=port)
    fk.wait_workers(1)
    assert unix_http_request(sock, "GET", "/hello")[0] == 200
    new_master = None
    try:
        fk.signal(signal.SIGUSR2)
        new_master = wait_until(lambda: read_pid(fk.pidfile + ".2"), 10, what="pidfile.2")
        wait_worker_set(new_master, lambda p: len(p) == 1, 10, "the new master's worker")
        fk.signal(signal.SIGWINCH)
        wait_worker_set(fk.pid, lambda p: p == [], 10, "the old workers to stop")
        fk.signal(signal.SIGTERM)
        assert wait_exit(fk.proc, 10) == 0, fk.diagnostics()
        # The old master left the socket file to the new one.
        assert os.path.exists(sock)
        for _ in range(3):
            assert unix_http_request(sock, "GET", "/hello")[0] == 200
        wait_until(lambda: read_pid(fk.pidfile) == new_master, 5, what="pidfile takeover")
        os.kill(new_master, signal.SIGTERM)
        assert wait_gone(new_master, 15)
        # Now the sole owner, it removes the socket file at exit.
        wait_until(lambda: not os.path.exists(sock), 5, what="the socket file to go")
    finally:
        _stop_orphan_master(new_master)


def _replace_file(path, make):
    """Renames a new file over path, as a package upgrade does."""
    staged = path + ".new"
    make(staged)
    os.chmod(staged, 0o755)
    os.rename(staged, path)


def test_usr2_with_a_broken_new_binary_keeps_the_old_master(forkd_bin, example_app, tmp_short):
    binary = os.path.join(tmp_short, "forkd")
    shutil.copy2(forkd_bin, binary)
    fk = Forkd(example_app, quick_term_args(["--workers", "2"]), binary=binary,
               tmpdir=tmp_short).start()
    try:
        workers = fk.wait_workers(2)

        def broken(path):
            with open(path, "w") as f:
                f.write("#!/bin/sh\necho 'forkd: this build is broken' >&2\nexit 1\n")
        _replace_file(binary, broken)
        fk.signal(signal.SIGUSR2)
        wait_until(lambda: "The new master (pid" in fk.log(), 10,
                   what="the old master to see the new one fail")
        assert "exited with code 1" in fk.log()
        assert fk.alive()
        assert not os.path.exists(fk.pidfile + ".2")
        assert read_pid(fk.pidfile) == fk.pid
        assert workers_of(fk.pid) == workers
        assert http_get(fk.port, "/hello")[0] == 200

        # Fixed build: a second USR2 runs it (the path, not the old image).
        _replace_file(binary, lambda p: shutil.copy2(forkd_bin, p))
        fk.signal(signal.SIGUSR2)
        new_master = wait_until(lambda: read_pid(fk.pidfile + ".2"), 10, what="pidfile.2")
        try:
            assert process_exe(new_master) == os.path.realpath(binary)  # not "(deleted)"
            [w] = wait_worker_set(new_master, lambda p: len(p) == 2, 10, "new workers")[:1]
            assert process_exe(w) == os.path.realpath(binary)
        finally:
            _stop_orphan_master(new_master)
    finally:
        fk.stop()
