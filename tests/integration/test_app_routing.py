"""App mode end to end (issue 11, "Proof"): every request goes through the
real forkd binary's --bind port, from real clients, to the app processes the
master runs (`forkd -w N -- CMD`): the example app on fd 3, Debian's
Gunicorn through {socket} and through LISTEN_FDS, Node on fd 3.

Routing, scaling, crashes, hangs, recycling, reload, shutdown, the queue in
front of busy processes, slow clients and HTTP/2, each under bounded load.
test_app_mode.py looks at the same processes from the master's side.
"""
import collections
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest

from app_forkd import (AppForkd, GUNICORN, NODE, example_app, get,
                       get_pid, write_node_app, write_wsgi_app)
from forkd_harness import (FORKCTL_BIN, LoadGenerator, free_port, h2load,
                           pid_alive, require_tools, short_tmpdir,
                           unix_http_request, wait_until)



@pytest.fixture
def tmp():
    path = short_tmpdir("fkr")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def pid_in(body):
    """The app pid in a /pid ("123\\n"), /sleep or /grow ("pid=123 ...") body."""
    m = re.match(rb"(?:pid=)?(\d+)", body)
    return int(m.group(1)) if m else None


class Served:
    """Which app process served each response a LoadGenerator read."""

    def __init__(self):
        self._lock = threading.Lock()
        self._pids = []

    def __call__(self, status, body):
        if 200 <= status < 300:
            with self._lock:
                self._pids.append(pid_in(body))

    def mark(self):
        with self._lock:
            return len(self._pids)

    def since(self, mark=0):
        with self._lock:
            return set(self._pids[mark:])


def load(fk, path, served, threads=4, duration=40):
    """Keep-alive load through forkd, bounded in time; stop() it."""
    return LoadGenerator(fk.url(path), threads=threads, duration=duration,
                         timeout=15, on_response=served).start()


def wait_served(served, pids, mark=0, timeout=20):
    """Waits until the load has been served by every pid in `pids`."""
    want = set(pids)
    wait_until(lambda: want <= served.since(mark), timeout,
               what="responses from %s (seen %s)" % (sorted(want), sorted(served.since(mark))))


def app_ready_on_socket(fk, n):
    """Waits for n app processes whose own sockets answer GET / with 200
    (any app: the example app, Gunicorn, Node); returns {pid: socket}."""
    def ok():
        apps = fk.app_processes()
        if len(apps) != n:
            return None
        for sock in apps.values():
            try:
                if unix_http_request(sock, "GET", "/", timeout=2)[0] != 200:
                    return None
            except OSError:
                return None
        return apps
    return wait_until(ok, 30, interval=0.1, what="%d app processes answering" % n)


def ppid_of(pid):
    with open("/proc/%d/stat" % pid) as f:
        text = f.read()
    return int(text[text.rindex(")") + 2:].split()[1])


# --- 1. requests spread over every app process -------------------------------------


def _apps(tmp):
    """name -> (command, needs) for the app servers forkd runs."""
    write_wsgi_app(tmp)
    js = write_node_app(tmp)
    return {
        "example-fd3": (example_app(), None),
        "gunicorn-socket": ([GUNICORN, "-w", "1", "--threads", "{threads}", "--chdir", tmp,
                             "--bind", "unix:{socket}", "wsgiapp:app"], GUNICORN),
        "gunicorn-listen-fds": ([GUNICORN, "-w", "1", "--chdir", tmp, "wsgiapp:app"], GUNICORN),
        "node-fd3": (["/usr/bin/node", js], NODE),
    }


@pytest.mark.parametrize("app", ["example-fd3", "gunicorn-socket", "gunicorn-listen-fds",
                                 "node-fd3"])
def test_requests_spread_over_every_app_process(tmp, app):
    cmd, needs = _apps(tmp)[app]
    if needs and not os.access(needs, os.X_OK):
        pytest.skip("no %s" % needs)
    with AppForkd(cmd, ["-w", "3"], tmpdir=tmp) as fk:
        apps = app_ready_on_socket(fk, 3)

        def owner(pid):  # Gunicorn answers from its worker, the app's child
            return pid if pid in apps else ppid_of(pid)

        # The master marks each ready a moment after its socket answers.
        seen = set()
        wait_until(lambda: seen.add(owner(get_pid(fk.port))) or seen == set(apps), 20,
                   what="every app process served through forkd")
        owners = collections.Counter(owner(get_pid(fk.port)) for _ in range(30))
        assert set(owners) == set(apps), (owners, apps)
        # Idle ties rotate: sequential requests share the processes evenly.
        assert min(owners.values()) >= 5, owners


# --- 2. scaling under load -------------------------------------------------------------


def test_ttin_ttou_under_load_fail_no_request():
    served = Served()
    with AppForkd(example_app(), ["-w", "2"]) as fk:
        first = fk.ready_apps(2)
        gen = load(fk, "/sleep?ms=10", served)
        try:
            wait_served(served, first)
            fk.proc.send_signal(signal.SIGTTIN)
            grown = fk.ready_apps(3)
            wait_served(served, set(grown) - set(first), served.mark())
            for n in (2, 1):  # one at a time: two TTOUs pending merge into one
                fk.proc.send_signal(signal.SIGTTOU)
                left = fk.ready_apps(n)
            mark = served.mark()
            wait_until(lambda: served.mark() > mark + 20, 20, what="load after scale down")
            assert served.since(mark + 5) == set(left)
        finally:
            summary = gen.stop()
        assert summary.failed == 0, summary
        assert summary.ok > 0


def test_forkctl_scale_under_load_fails_no_request():
    if not os.access(FORKCTL_BIN, os.X_OK):
        pytest.skip("forkctl not built (%s)" % FORKCTL_BIN)
    admin = "127.0.0.1:%d" % free_port()
    served = Served()
    with AppForkd(example_app(), ["-w", "1", "--admin-bind", admin]) as fk:
        fk.ready_apps(1)
        gen = load(fk, "/sleep?ms=10", served)
        try:
            for n in ("3", "1"):
                p = subprocess.run([FORKCTL_BIN, "--addr", admin, "scale", n, "--wait"],
                                   capture_output=True, text=True, timeout=60)
                assert p.returncode == 0, p.stdout + p.stderr
                apps = fk.ready_apps(int(n))
                wait_served(served, apps, served.mark())
        finally:
            summary = gen.stop()
        assert summary.failed == 0, summary


# --- 3. kill -9 of an app process -----------------------------------------------------


def test_kill_9_of_an_app_process_fails_only_its_in_flight_request():
    served = Served()
    # sync: one request at a time per process, so at most one is in flight
    # on the victim when it dies.
    with AppForkd(example_app(), ["-w", "3", "--worker-class", "sync"]) as fk:
        before = fk.ready_apps(3)
        gen = load(fk, "/sleep?ms=50", served, threads=6)
        try:
            wait_served(served, before)
            victim = sorted(before)[0]
            os.kill(victim, signal.SIGKILL)
            after = fk.ready_apps(3)
            assert victim not in after
            mark = served.mark()
            wait_served(served, after, mark)
        finally:
            summary = gen.stop()
        assert summary.failed <= 1, summary
        # Later requests all succeed, on the replacement too.
        clean = Served()
        summary = LoadGenerator(fk.url("/sleep?ms=10"), threads=6, duration=20,
                                max_requests=20, on_response=clean).start().wait()
        assert summary.failed == 0 and summary.ok == 120, summary
        assert clean.since() == set(after)


# --- 4. a hung app process -------------------------------------------------------------


@pytest.mark.parametrize("abort", ["dies-on-abort", "ignores-abort"])
def test_hung_app_process_is_killed_after_timeout(abort):
    cmd = example_app()
    if abort == "ignores-abort":
        # An ignored signal stays ignored across exec: only SIGKILL ends it.
        cmd = ["/bin/sh", "-c", 'trap "" ABRT; exec "$@"', "sh"] + cmd
    with AppForkd(cmd, ["-w", "2", "--timeout", "2"]) as fk:
        before = fk.ready_apps(2)
        answer = {}

        def hang():
            status, _, body = get(fk.port, "/sleep?ms=60000", timeout=40)
            answer.update(status=status, body=body)

        t = threading.Thread(target=hang, daemon=True)
        t.start()
        # The other process keeps serving meanwhile.
        wait_until(lambda: len(fk.app_processes()) == 2 and
                   fk.error_log_text().count("WORKER TIMEOUT") == 1, 20,
                   what="WORKER TIMEOUT")
        hung = int(re.search(r"WORKER TIMEOUT \(pid:(\d+)\)", fk.error_log_text()).group(1))
        assert hung in before
        t.join(30)
        assert answer.get("status") in (502, 504), answer
        after = fk.ready_apps(2)
        assert hung not in after
        wait_until(lambda: "(pid: %d) was killed by" % hung in fk.error_log_text(), 10,
                   what="the hung process's exit")
        exit_line = [l for l in fk.error_log_text().splitlines()
                     if "(pid: %d) was killed by" % hung in l]
        killer = "SIGABRT" if abort == "dies-on-abort" else "SIGKILL"
        assert len(exit_line) == 1 and killer in exit_line[0], exit_line
        for _ in range(6):
            assert get_pid(fk.port) in after


# --- 5. recycling ------------------------------------------------------------------------


def test_max_requests_recycles_without_a_failed_request():
    served = Served()
    with AppForkd(example_app(), ["-w", "2", "--max-requests", "25"]) as fk:
        first = fk.ready_apps(2)
        gen = load(fk, "/pid", served)
        try:
            # 2 x 2 generations of recycled processes, at least.
            wait_until(lambda: len(served.since() - set(first)) >= 4, 40,
                       what="recycled app processes")
        finally:
            summary = gen.stop()
        assert summary.failed == 0, summary
        assert "(--max-requests): replacing it" in fk.error_log_text()


def test_max_worker_memory_recycles_without_a_failed_request():
    served = Served()
    # Each /grow keeps 2 MiB more; the Python app starts near 20 MiB. Paced
    # (about 100 requests a second in all), so the load outlasts the master's
    # once-a-second memory check instead of ending before it looks.
    with AppForkd(example_app(), ["-w", "2", "--max-worker-memory", "64Mi"]) as fk:
        first = fk.ready_apps(2)
        gen = LoadGenerator(fk.url("/grow?mb=2"), threads=2, duration=40, max_requests=600,
                            timeout=15, on_response=served, pause=0.02).start()
        try:
            wait_until(lambda: len(served.since() - set(first)) >= 2, 40,
                       what="app processes replaced for memory")
        finally:
            summary = gen.stop()
        assert summary.failed == 0, summary
        assert "(--max-worker-memory" in fk.error_log_text()
        # Replaced, not grown without bound: every process now is below the
        # limit plus what the load could add before the check saw it.
        for pid in fk.app_processes():
            with open("/proc/%d/status" % pid) as f:
                rss_kib = int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))
            assert rss_kib < 256 * 1024, (pid, rss_kib)


# --- 6. HUP ---------------------------------------------------------------------------


def test_hup_rolling_restart_under_load_fails_no_request():
    served = Served()
    with AppForkd(example_app(), ["-w", "2"]) as fk:
        before = set(fk.ready_apps(2))
        gen = load(fk, "/sleep?ms=10", served)
        try:
            wait_served(served, before)
            fk.proc.send_signal(signal.SIGHUP)
            wait_until(lambda: len(fk.app_processes()) == 2 and
                       not set(fk.app_processes()) & before, 30,
                       what="new app processes after HUP")
            after = set(fk.ready_apps(2))
            mark = served.mark()
            wait_served(served, after, mark)
            wait_until(lambda: served.mark() > mark + 20, 20, what="load after HUP")
            assert served.since(mark + 5) == after
        finally:
            summary = gen.stop()
        assert summary.failed == 0, summary


# --- 7. TERM ------------------------------------------------------------------------------


def test_term_lets_requests_in_flight_complete_and_leaves_no_app_process():
    with AppForkd(example_app(), ["-w", "2", "--graceful-timeout", "20"]) as fk:
        apps = fk.ready_apps(2)
        answers = []

        def slow():
            answers.append(get(fk.port, "/sleep?ms=1500", timeout=30))

        threads = [threading.Thread(target=slow, daemon=True) for _ in range(2)]
        for t in threads:
            t.start()
        time.sleep(0.5)  # both requests reach an app process
        fk.proc.send_signal(signal.SIGTERM)
        for t in threads:
            t.join(30)
        assert [a[0] for a in answers] == [200, 200], answers
        assert {pid_in(a[2]) for a in answers} == set(apps)
        assert fk.proc.wait(30) == 0
        for pid in apps:
            wait_until(lambda: not pid_alive(pid), 10, what="app %d gone" % pid)


# --- 8. the queue in front of busy app processes ------------------------------------


def test_requests_past_every_cap_wait_and_are_served_in_order():
    with AppForkd(example_app(), ["-w", "1", "--worker-class", "sync"]) as fk:
        fk.ready_apps(1)
        done = []
        lock = threading.Lock()

        def one(i):
            status, _, _ = get(fk.port, "/sleep?ms=200&i=%d" % i, timeout=30)
            with lock:
                done.append((i, status))

        threads = []
        for i in range(5):
            t = threading.Thread(target=one, args=(i,), daemon=True)
            t.start()
            threads.append(t)
            time.sleep(0.1)  # arrival order: 0, 1, 2, ...
        for t in threads:
            t.join(30)
        assert done == [(i, 200) for i in range(5)]


def test_max_queue_time_answers_503_with_retry_after():
    with AppForkd(example_app(), ["-w", "1", "--worker-class", "sync",
                                  "--max-queue-time", "0.3"]) as fk:
        fk.ready_apps(1)
        holder = {}
        t = threading.Thread(
            target=lambda: holder.update(r=get(fk.port, "/sleep?ms=3000", timeout=30)),
            daemon=True)
        t.start()
        time.sleep(0.5)  # the holder has the only app process
        status, headers, body = get(fk.port, "/pid?queued=1")
        assert status == 503, body
        assert dict(headers).get("Retry-After") == "1", headers
        assert b"--max-queue-time" in body, body
        t.join(30)
        assert holder["r"][0] == 200
        lines = [l for l in fk.error_log_text().splitlines() if "/pid?queued=1" in l]
        assert len(lines) == 1 and "--max-queue-time" in lines[0], lines
        assert get_pid(fk.port) in fk.app_processes()


# --- 9. slow clients never hold an app process ----------------------------------------


def test_slow_clients_do_not_hold_the_only_sync_app_process():
    # 10 send their head slowly, 5 their body, 10 read slowly: 25 pending
    # clients, one sync app process.
    with AppForkd(example_app(), ["-w", "1", "--worker-class", "sync"]) as fk:
        (app_pid,) = fk.ready_apps(1)
        # Below --response-buffer (1 MiB): forkd reads it all from the app.
        # (Not with a tiny SO_RCVBUF: over loopback's 64 KiB MSS the window
        # then stays shut between zero-window probes that back off for
        # seconds, a stall of the client's own making.)
        body_size = 768 * 1024
        senders, uploaders, readers = [], [], []
        try:
            for _ in range(10):  # head sent without its final CRLF
                s = socket.create_connection(("127.0.0.1", fk.port), timeout=20)
                s.sendall(b"GET /pid HTTP/1.1\r\nHost: x\r\nX-Slow: 1\r\n")
                senders.append(s)
            for _ in range(5):  # head and half the body
                s = socket.create_connection(("127.0.0.1", fk.port), timeout=20)
                s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n"
                          + b"a" * 50)
                uploaders.append(s)
            for _ in range(10):  # whole request, response never read yet
                s = socket.create_connection(("127.0.0.1", fk.port), timeout=20)
                s.sendall(b"GET /bytes?n=%d HTTP/1.1\r\nHost: x\r\n\r\n" % body_size)
                readers.append(s)
            # A fast client is served while all twenty are still pending.
            for _ in range(5):
                assert get_pid(fk.port, timeout=20) == app_pid
            for s in senders + uploaders:  # no answer yet
                s.setblocking(False)
                with pytest.raises(BlockingIOError):
                    s.recv(1)
                s.settimeout(20)
            for s in senders:
                s.sendall(b"\r\n")
            for s in senders:
                assert read_response(s).startswith(b"HTTP/1.1 200"), "slow sender"
            for s in uploaders:
                s.sendall(b"b" * 50)
                resp = read_response(s)
                assert resp.startswith(b"HTTP/1.1 200"), resp[:100]
                assert resp.endswith(b"a" * 50 + b"b" * 50), resp[-120:]
            for i, s in enumerate(readers):
                try:
                    resp = read_response(s)
                except OSError as e:
                    raise AssertionError("reader %d: %s\n%s" % (i, e, fk.diagnostics()))
                assert resp.startswith(b"HTTP/1.1 200"), resp[:100]
                assert len(resp.split(b"\r\n\r\n", 1)[1]) == body_size, fk.diagnostics()
        finally:
            for s in senders + uploaders + readers:
                s.close()


def read_response(s):
    """Reads one Content-Length response from a blocking socket."""
    data = b""
    while b"\r\n\r\n" not in data:
        piece = s.recv(65536)
        if not piece:
            return data
        data += piece
    head, rest = data.split(b"\r\n\r\n", 1)
    length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
    while len(rest) < length:
        piece = s.recv(65536)
        if not piece:
            break
        rest += piece
    return head + b"\r\n\r\n" + rest


# --- 10. HTTP/2 ---------------------------------------------------------------------------


def test_http2_prior_knowledge_reaches_every_app_process():
    require_tools("curl", "nghttp", "h2load")
    with AppForkd(example_app(), ["-w", "3", "--worker-class", "sync"]) as fk:
        apps = fk.ready_apps(3)
        p = subprocess.run(["curl", "-sS", "--http2-prior-knowledge", "-w", " %{http_version}",
                            fk.url("/pid")], capture_output=True, text=True, timeout=30)
        pid, version = p.stdout.split()
        assert (p.returncode, version) == (0, "2") and int(pid) in apps, p.stdout + p.stderr
        # Twelve concurrent streams on one connection, over three processes
        # that take one request each: queued, then spread over all three.
        # (Not curl with several URLs: 7.88's reuse of a prior-knowledge
        # connection fails on its side, curl#10634.)
        p = subprocess.run(["nghttp", "-m", "12", fk.url("/sleep?ms=50")],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stdout + p.stderr
        pids = [pid_in(l.encode()) for l in p.stdout.splitlines()]
        assert len(pids) == 12 and set(pids) == set(apps), p.stdout
        r = h2load(fk.url("/sleep?ms=5"), n=120, c=2, m=6)
        assert r["ok"] == 120, r["output"]


def test_a_dead_app_process_the_master_has_not_reaped_costs_no_request():
    # Between an app process's death and the master's reaping it, its slot
    # still reads ready: a connect to it is refused, and nothing reached
    # the app, so forkd tries another process instead of answering 502.
    # The master is stopped to hold that window open.
    with AppForkd(example_app(), ["-w", "2", "--worker-class", "sync"]) as fk:
        apps = fk.ready_apps(2)
        victim, survivor = sorted(apps)
        fk.proc.send_signal(signal.SIGSTOP)
        try:
            os.kill(victim, signal.SIGKILL)
            wait_until(lambda: not os.path.exists("/proc/%d/fd" % victim) or
                       not os.listdir("/proc/%d/fd" % victim), 10, what="victim dead")
            answers = [get(fk.port, "/pid", timeout=20) for _ in range(6)]
        finally:
            fk.proc.send_signal(signal.SIGCONT)
        assert [a[0] for a in answers] == [200] * 6, [a[:1] + a[2:] for a in answers]
        assert {pid_in(a[2]) for a in answers} == {survivor}
        after = fk.ready_apps(2)
        assert victim not in after


# The tail of the little apps below: a threading HTTP server `s` with the
# handler class H, on the unix socket forkd hands over as fd 3.
SERVE_ON_FD3 = r'''
class S(ThreadingHTTPServer):
    address_family = socket.AF_UNIX
    daemon_threads = True
    def server_bind(self):
        pass
    def server_activate(self):
        pass

s = S("", H, bind_and_activate=False)
s.socket = socket.socket(fileno=3)
'''


COUNTING_APP = r'''
import os, socket, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

lock = threading.Lock()
now = peak = 0

class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a):
        pass
    def do_GET(self):
        global now, peak
        if self.path == "/peak":
            body = b"%d" % peak
        else:
            with lock:
                now += 1
                peak = max(peak, now)
            time.sleep(0.02)
            with lock:
                now -= 1
            body = b"%d" % os.getpid()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

''' + SERVE_ON_FD3 + '''
s.serve_forever()
'''


@pytest.mark.parametrize("cls,cap", [("sync", 1), ("gthread", 3)])
def test_two_proxy_workers_never_pass_a_process_cap(tmp, cls, cap):
    # The cap lives in the scoreboard, shared by every proxy worker: the
    # app itself counts the most requests it ever had at once.
    script = os.path.join(tmp, "counting.py")
    with open(script, "w") as f:
        f.write(COUNTING_APP)
    args = ["-w", "2", "--worker-class", cls, "--threads", str(cap)]
    with AppForkd(["/usr/bin/python3", script], args, proxy_workers=2, tmpdir=tmp) as fk:
        apps = app_ready_on_socket(fk, 2)
        served = Served()
        summary = LoadGenerator(fk.url("/work"), threads=12, duration=20, max_requests=25,
                                timeout=15, on_response=served).start().wait()
        assert summary.failed == 0 and summary.ok == 300, summary
        assert served.since() == set(apps)
        for sock in apps.values():
            status, _, body = unix_http_request(sock, "GET", "/peak")
            assert status == 200 and int(body) == cap, (sock, body)


DEAF_APP = r'''
import os, socket, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

deaf = False

class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a):
        pass
    def do_GET(self):
        global deaf
        body = b"%d" % os.getpid()
        # Deaf: a connection forkd kept alive serves this one and closes.
        self.close_connection = deaf
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        if self.path == "/deaf":
            # Alive, its listener gone: every new connection is refused.
            deaf = True
            self.server.socket.close()
            threading.Thread(target=self.server.shutdown).start()

''' + SERVE_ON_FD3 + '''
try:
    s.serve_forever()
except OSError:
    pass
threading.Event().wait()  # stays alive, deaf, until forkd replaces it
'''


def test_a_live_app_process_that_refuses_leaves_the_rotation_and_is_replaced(tmp):
    # A process whose listener is gone stays alive: forkd takes it out of the
    # rotation on the first refused connect (that request goes to another
    # process), and replaces it when it does not accept again in --timeout.
    script = os.path.join(tmp, "deaf.py")
    with open(script, "w") as f:
        f.write(DEAF_APP)
    args = ["-w", "2", "--worker-class", "sync", "--timeout", "3"]
    with AppForkd(["/usr/bin/python3", script], args, tmpdir=tmp) as fk:
        apps = app_ready_on_socket(fk, 2)
        victim = next(iter(apps))
        status, _, body = unix_http_request(apps[victim], "GET", "/deaf")
        assert status == 200 and int(body) == victim
        answers = [get(fk.port, "/pid", timeout=10) for _ in range(12)]
        assert [a[0] for a in answers] == [200] * 12, [a[:1] + a[2:] for a in answers]
        # A connection forkd kept to it may serve once more; no new one does.
        pids = [pid_in(a[2]) for a in answers]
        assert victim not in pids[4:], pids
        wait_until(lambda: "refused a connection: out of the rotation" in fk.error_log_text(),
                   10, what="the refusing process taken out")
        wait_until(lambda: victim not in fk.app_processes(), 20,
                   what="the refusing process replaced")
        assert "still refuses connections after" in fk.error_log_text()
        after = app_ready_on_socket(fk, 2)
        assert victim not in after
        answers = [get(fk.port, "/pid", timeout=10) for _ in range(8)]
        assert [a[0] for a in answers] == [200] * 8
