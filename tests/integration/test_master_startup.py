"""The master's start-up and exit: worker count, pidfile, bad settings.

Real forkd binary in front of the real example app; processes are read from
/proc.
"""

import os
import signal
import socket
import time

import pytest

from forkd_harness import (Forkd, free_port, http_get, process_cmdline, process_comm,
                           process_exe, wait_until, worker_launch)
from master_util import expected_cpus, wait_exit, wait_gone, workers_of
from master_util import forkd_factory  # noqa: F401 - with --shutdown-delay 0


def test_all_workers_exist_when_the_port_first_answers(forkd_factory, example_app):
    fk = forkd_factory(example_app, ["--workers", "4"], wait_ready=False)
    # Poll until the first answer, then look at /proc at once: the master
    # spawns the whole pool before any worker can serve.
    fk.wait_answering(timeout=20)
    workers = workers_of(fk.pid)
    assert len(workers) == 4, (workers, fk.diagnostics())
    binary = os.path.realpath(fk.binary)
    slots = set()
    for pid in workers:
        assert process_exe(pid) == binary
        # ps names the worker as nginx does; nothing else on its command line.
        launch = worker_launch(pid)
        assert launch is not None, pid
        # The title is argv[0] from exec on; the worker clears the rest as it
        # boots, which may be a moment after the port first answers.
        title = "forkd: worker %d (gen 1)" % launch["slot"]
        wait_until(lambda: process_cmdline(pid) == [title], 10,
                   what="worker %d's command line to be only %r" % (pid, title))
        slots.add(launch["slot"])
        assert launch["generation"] == 1, launch
        assert "--workers=4" in launch["config_args"], launch
        # top and ps -e show the short name, which would be "exe" (the worker
        # is exec'd from /proc/self/exe) unless the worker sets it.
        assert process_comm(pid) == "forkd-worker"
    assert slots == {0, 1, 2, 3}
    master_argv = process_cmdline(fk.pid)
    assert master_argv[0].startswith("forkd: master"), master_argv
    # Where it listens, not the wall of flags it was started with.
    assert master_argv == ["forkd: master 127.0.0.1:%d" % fk.port], master_argv
    assert process_comm(fk.pid) == "forkd-master"
    # The title fit in argv's memory: the environment's is left readable.
    with open("/proc/%d/environ" % fk.pid, "rb") as f:
        assert any(e.startswith(b"PATH=") for e in f.read().split(b"\0"))
    status, _, body = http_get(fk.port, "/hello")
    assert (status, body) == (200, b"hello\n")


class BareForkd(Forkd):
    """forkd started as plain `forkd` from PATH with every setting in FORKD_*
    variables, as a container might: its argv is 6 bytes."""

    def command(self):
        return ["forkd"]


def test_master_title_fits_when_started_as_bare_forkd(forkd_bin, example_app, tmp_short):
    # "forkd: master 127.0.0.1:PORT" is longer than argv's memory; the master
    # moves its environment aside and uses that memory too.
    bindir = os.path.join(tmp_short, "bin")
    os.mkdir(bindir)
    os.symlink(os.path.realpath(forkd_bin), os.path.join(bindir, "forkd"))
    port = free_port()
    env = {
        "PATH": bindir + os.pathsep + os.environ.get("PATH", "/usr/bin:/bin"),
        "FORKD_BIND": "127.0.0.1:%d" % port,
        "FORKD_UPSTREAM": example_app.upstream,
        "FORKD_WORKERS": "1",
        "FORKD_ADMIN_BIND": "",
        "FORKD_METRICS_BIND": "",
        "FORKD_SHUTDOWN_DELAY": "0",
        "FORKD_PIDFILE": os.path.join(tmp_short, "forkd.pid"),
        "FORKD_ERROR_LOGFILE": os.path.join(tmp_short, "error.log"),
    }
    fk = BareForkd(example_app, [], env=env, binary=forkd_bin, tmpdir=tmp_short, port=port)
    fk.pidfile = env["FORKD_PIDFILE"]
    fk.error_log_path = env["FORKD_ERROR_LOGFILE"]
    fk.start()
    try:
        title = ["forkd: master 127.0.0.1:%d" % port]
        assert process_cmdline(fk.pid) == title, fk.diagnostics()
        assert process_comm(fk.pid) == "forkd-master"
        [worker] = fk.wait_workers(1, timeout=15)
        wait_until(lambda: process_cmdline(worker) == ["forkd: worker 0 (gen 1)"], 10,
                   what="the worker's title")
        # The environment the master moved aside is intact: the worker was
        # started with it.
        with open("/proc/%d/environ" % worker, "rb") as f:
            worker_env = f.read().split(b"\0")
        assert ("FORKD_BIND=127.0.0.1:%d" % port).encode() in worker_env
        status, _, body = http_get(port, "/hello")
        assert (status, body) == (200, b"hello\n")
    finally:
        assert fk.stop(timeout=15) == 0, fk.diagnostics()


def _start_pinned(forkd_factory, app, args, cpus):
    """Starts forkd with the CPU affinity `cpus` (inherited across fork)."""
    saved = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        return forkd_factory(app, args)
    finally:
        os.sched_setaffinity(0, saved)


def test_default_workers_follow_the_cpu_count(forkd_factory, example_app):
    # One allowed CPU: (2 x 1) + 1 whatever the cgroup says (it can only
    # lower the count, and never below 1 CPU).
    one_cpu = {min(os.sched_getaffinity(0))}
    fk = _start_pinned(forkd_factory, example_app, [], one_cpu)
    assert len(fk.wait_workers(3, timeout=15)) == 3
    assert len(workers_of(fk.pid)) == 3


def test_default_workers_capped_by_max_workers(forkd_factory, example_app):
    expected = min(2 * expected_cpus() + 1, 4)
    fk = forkd_factory(example_app, ["--max-workers", "4"])
    assert len(fk.wait_workers(expected, timeout=15)) == expected
    time.sleep(0.5)  # and no more show up
    assert len(workers_of(fk.pid)) == expected


def test_pidfile_holds_master_pid_and_is_removed_at_exit(forkd_factory, example_app):
    fk = forkd_factory(example_app, ["--workers", "1"])
    with open(fk.pidfile) as f:
        assert int(f.read().strip()) == fk.pid
    assert fk.stop(timeout=15) == 0
    assert not os.path.exists(fk.pidfile)


@pytest.mark.parametrize("args,needle", [
    (["--workers", "abc"], ['--workers', '"abc"']),
    (["--worker-class", "gevent"], ['--worker-class', '"gevent"']),
    (["--upstream", "ftp://x"], ['--upstream', '"ftp://x"']),
    (["--timeout", "-1"], ['--timeout', '"-1"']),
])
def test_bad_setting_exits_2_naming_flag_and_value(forkd_bin, tmp_short, args, needle):
    fk = Forkd(None, args, binary=forkd_bin, tmpdir=tmp_short, wait_ready=False)
    fk.start()
    code = wait_exit(fk.proc, 10)
    fk.stop()
    assert code == 2, fk.diagnostics()
    message = fk.stderr()
    for part in needle:
        assert part in message, message
    assert not os.path.exists(fk.pidfile)


def test_bad_setting_in_environment_exits_2(forkd_bin, tmp_short):
    fk = Forkd(None, [], env={"FORKD_WORKERS": "zero"}, binary=forkd_bin,
               tmpdir=tmp_short, wait_ready=False)
    fk.start()
    code = wait_exit(fk.proc, 10)
    fk.stop()
    assert code == 2
    assert "zero" in fk.stderr(), fk.stderr()


def test_port_in_use_exits_nonzero_with_a_clear_message(forkd_bin, tmp_short):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        fk = Forkd(None, [], binary=forkd_bin, tmpdir=tmp_short, port=port, wait_ready=False)
        fk.start()
        code = wait_exit(fk.proc, 10)
        fk.stop()
    assert code not in (None, 0), fk.diagnostics()
    text = fk.stderr() + fk.log()
    assert "127.0.0.1:%d" % port in text, text
    assert "in use" in text.lower(), text
    assert not os.path.exists(fk.pidfile)


def test_worker_boot_error_stops_the_master_with_code_3(forkd_bin, example_app, tmp_short):
    # The master does not open the access log; each worker does, and a
    # directory cannot be opened for writing: every worker fails at boot.
    # The master must give up (WORKER_BOOT_ERROR) instead of respawning.
    access_dir = os.path.join(tmp_short, "access.d")
    os.mkdir(access_dir)
    fk = Forkd(example_app, ["--workers", "2", "--access-logfile", access_dir],
               binary=forkd_bin, tmpdir=tmp_short, wait_ready=False)
    fk.start()
    code = wait_exit(fk.proc, 15)
    fk.stop()
    assert code == 3, fk.diagnostics()
    log = fk.log()
    assert "WORKER_BOOT_ERROR" in log, log
    assert access_dir in log, log
    # It gave up rather than looping through respawns.
    assert log.count("Booting worker") <= 2 * 2, log
    assert not os.path.exists(fk.pidfile)


def test_cannot_start_without_a_usable_pidfile_dir(forkd_bin, example_app, tmp_short):
    pidfile = os.path.join(tmp_short, "missing-dir", "forkd.pid")
    fk = Forkd(example_app, ["--workers", "1", "--pidfile", pidfile],
               binary=forkd_bin, tmpdir=tmp_short, wait_ready=False)
    fk.start()
    code = wait_exit(fk.proc, 10)
    fk.stop()
    assert code not in (None, 0), fk.diagnostics()
    assert pidfile in fk.log() + fk.stderr()


def test_sigterm_exit_code_zero_and_workers_gone(forkd_factory, example_app):
    fk = forkd_factory(example_app, ["--workers", "2"])
    workers = fk.wait_workers(2)
    fk.signal(signal.SIGTERM)
    assert wait_exit(fk.proc, 15) == 0, fk.diagnostics()
    for pid in workers:
        assert wait_gone(pid, 5), "worker %d outlived the master" % pid
