"""App mode, master side (issue 11): `forkd -w N -- CMD` runs N app processes.

The master starts the example app (and Debian's Gunicorn, Node) as its app
processes, each on its own unix socket, and supervises them. These tests
look at the app processes from outside: the master's children whose
environment carries FORKD_SOCKET, each asked for /pid on its own socket.
Requests through forkd's port: test_app_routing.py.
"""
import os
import shutil
import signal

import pytest

from app_forkd import AppForkd, example_app, write_node_app, write_wsgi_app
from forkd_harness import (Forkd, child_pids, http_request, is_worker_process, pid_alive,
                           process_cmdline, process_comm, short_tmpdir, unix_http_request,
                           wait_until)


def test_app_processes_on_fd3_each_its_own_socket_and_output_prefixed():
    with AppForkd(example_app(), ["-w", "3"]) as fk:
        apps = fk.ready_apps(3)
        assert len(set(apps.values())) == 3  # one socket each
        for sock in apps.values():
            assert os.stat(os.path.dirname(sock)).st_mode & 0o777 == 0o700
        # The example app says "listening on fd 3" on stderr: relayed whole,
        # prefixed with its slot.
        wait_until(lambda: fk.stderr_text().count("listening on fd 3") == 3, 10,
                   what="three [app N] lines")
        lines = [l for l in fk.stderr_text().splitlines() if "listening on fd 3" in l]
        assert sorted(l.split("]")[0] for l in lines) == ["[app 0", "[app 1", "[app 2"]
        for l in lines:
            assert l.startswith("[app ") and l.count("app[") == 1


def test_ps_names_the_proxy_workers_and_leaves_the_app_processes_alone():
    # forkd's own processes in app mode are proxy event loops, and ps says so;
    # the app processes keep the command line they were started with.
    with AppForkd(example_app(), ["-w", "2"]) as fk:
        apps = fk.ready_apps(2)
        proxies = wait_until(
            lambda: [p for p in child_pids(fk.proc.pid) if is_worker_process(p)] or None,
            20, what="the proxy worker")
        assert len(proxies) == 1, proxies
        title = ["forkd: proxy worker 0 (gen 1)"]
        wait_until(lambda: process_cmdline(proxies[0]) == title, 10,
                   what="the proxy worker's title %r" % title)
        assert process_comm(proxies[0]) == "forkd-proxy"
        for pid in apps:
            assert process_cmdline(pid) == example_app(), process_cmdline(pid)
            assert not is_worker_process(pid)
        port = fk.port
        assert process_cmdline(fk.proc.pid) == ["forkd: master 127.0.0.1:%d" % port]
        assert process_comm(fk.proc.pid) == "forkd-master"


def test_ttin_ttou_change_the_app_process_count():
    with AppForkd(example_app(), ["-w", "2"]) as fk:
        fk.ready_apps(2)
        fk.proc.send_signal(signal.SIGTTIN)
        fk.ready_apps(3)
        # One at a time: two pending TTOUs would merge into one signal.
        fk.proc.send_signal(signal.SIGTTOU)
        fk.ready_apps(2)
        fk.proc.send_signal(signal.SIGTTOU)
        fk.ready_apps(1)


def test_killed_app_process_is_replaced():
    with AppForkd(example_app(), ["-w", "2"]) as fk:
        apps = fk.ready_apps(2)
        victim = sorted(apps)[0]
        os.kill(victim, signal.SIGKILL)
        after = fk.ready_apps(2)
        assert victim not in after
        assert set(apps) - {victim} <= set(after)
        assert "App process" in fk.error_log_text()


def test_hup_replaces_every_app_process():
    with AppForkd(example_app(), ["-w", "2"]) as fk:
        before = set(fk.ready_apps(2))
        fk.proc.send_signal(signal.SIGHUP)
        def replaced():
            apps = fk.app_processes()
            return len(apps) == 2 and not (set(apps) & before)
        wait_until(replaced, 30, what="new app processes after HUP")
        fk.ready_apps(2)


def test_term_stops_every_app_process():
    with AppForkd(example_app(), ["-w", "2"]) as fk:
        apps = fk.ready_apps(2)
        code = fk.stop()
        assert code == 0
        for pid in apps:
            wait_until(lambda: not pid_alive(pid), 10, what="app %d gone" % pid)
        # The socket directory is removed at exit.
        assert not os.path.exists(os.path.dirname(next(iter(apps.values()))))


def test_kill_9_of_the_master_leaves_no_app_process():
    with AppForkd(example_app(), ["-w", "2"]) as fk:
        apps = fk.ready_apps(2)
        os.kill(fk.proc.pid, signal.SIGKILL)
        fk.proc.wait(10)
        for pid in apps:
            wait_until(lambda: not pid_alive(pid), 10, what="app %d gone" % pid)


def test_app_that_never_boots_backs_off():
    # A short --max-queue-time: with no app process ever ready, a request
    # waits that long for one, then gets 503 with Retry-After.
    with AppForkd(["/bin/sh", "-c", "echo boom; exit 1"],
                  ["-w", "1", "--max-queue-time", "1"]) as fk:
        wait_until(lambda: fk.error_log_text().count("failed to boot") >= 3, 20,
                   what="repeated boot failures")
        assert "[app 0] boom" in fk.stderr_text()
        status, headers, _ = http_request(fk.port, "GET", "/")
        assert status == 503
        assert headers.get("Retry-After") == "1"
        assert "no free app process" in fk.error_log_text()


def test_upstream_is_refused_in_app_mode():
    tmp = short_tmpdir("fka")
    fk = Forkd(args=["--", "/bin/true"], tmpdir=tmp, wait_ready=False)
    fk.start()
    assert fk.proc.wait(10) == 2
    with open(fk.stderr_path) as f:
        assert "--upstream" in f.read()
    shutil.rmtree(tmp, ignore_errors=True)


@pytest.mark.skipif(not os.access("/usr/bin/gunicorn", os.X_OK), reason="no /usr/bin/gunicorn")
def test_debian_gunicorn_binds_the_socket_placeholder():
    tmp = short_tmpdir("fkg")
    write_wsgi_app(tmp)
    cmd = ["/usr/bin/gunicorn", "-w", "1", "--threads", "{threads}", "--chdir", tmp,
           "--bind", "unix:{socket}", "wsgiapp:app"]
    with AppForkd(cmd, ["-w", "2", "--threads", "2"], tmpdir=tmp) as fk:
        def served():
            apps = fk.app_processes()
            if len(apps) != 2:
                return None
            for sock in apps.values():
                try:
                    status, _, _ = unix_http_request(sock, "GET", "/", timeout=2)
                except OSError:
                    return None
                if status != 200:
                    return None
            return apps
        wait_until(served, 30, what="two gunicorn app processes")
        assert "[app " in fk.stderr_text()


@pytest.mark.skipif(not os.access("/usr/bin/node", os.X_OK), reason="no /usr/bin/node")
def test_node_serves_on_fd3():
    tmp = short_tmpdir("fkn")
    js = write_node_app(tmp)
    with AppForkd(["/usr/bin/node", js], ["-w", "2"], tmpdir=tmp) as fk:
        fk.ready_apps(2)
