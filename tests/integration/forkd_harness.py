"""Helpers for forkd's integration tests: real processes, real sockets.

Everything binds 127.0.0.1 or unix sockets in short temporary directories, and
every wait is bounded by a timeout.  Processes started here are killed at
interpreter exit even if a test forgets to stop them.

    FORKD_BIN         the forkd binary (set by CTest); default <repo>/build/forkd
    FORKCTL_BIN       the forkctl binary (set by CTest); default: next to
                      FORKD_BIN, else <dir of FORKD_BIN>/control/forkctl
    FORKD_SOURCE_DIR  the repo root (set by CTest); default two levels up

Main pieces: free_port(), short_tmpdir(), http_get(), http_request(),
raw_request(), unix_http_request(), raw_unix_request(), ExampleApp, Forkd,
LoadGenerator.
"""

import atexit
import collections
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import weakref

REPO_DIR = os.path.abspath(
    os.environ.get("FORKD_SOURCE_DIR")
    or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
FORKD_BIN = os.environ.get("FORKD_BIN") or os.path.join(REPO_DIR, "build", "forkd")


def _find_forkctl():
    if os.environ.get("FORKCTL_BIN"):
        return os.environ["FORKCTL_BIN"]
    here = os.path.dirname(os.path.abspath(FORKD_BIN))
    for candidate in (os.path.join(here, "forkctl"),
                      os.path.join(here, "control", "forkctl")):
        if os.access(candidate, os.X_OK):
            return candidate
    return os.path.join(here, "forkctl")


FORKCTL_BIN = _find_forkctl()
APP_PY = os.path.join(REPO_DIR, "deploy", "example-app", "app.py")
PYTHON = sys.executable or "/usr/bin/python3"

_live = weakref.WeakSet()  # started ExampleApp/Forkd objects, stopped atexit


@atexit.register
def _stop_leftovers():
    for proc in list(_live):
        try:
            proc.stop(timeout=5)
        except Exception:
            pass


# --- small utilities ---------------------------------------------------------


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def short_tmpdir(prefix="fk"):
    """A fresh directory under /tmp with a short path (unix sockets < 108 bytes)."""
    return tempfile.mkdtemp(prefix=prefix, dir="/tmp")


class StopWaiting(Exception):
    """Raised by a wait_until() predicate to give up at once."""


def h2load(url, n, c, m, timeout=90, extra=()):
    """Runs h2load -n N -c C -m M; asserts it exited 0 and printed its
    request summary, which it returns as a dict (total, done, ok, failed,
    errored, timeout) plus the whole output."""
    p = subprocess.run(["h2load", "-n", str(n), "-c", str(c), "-m", str(m)]
                       + list(extra) + [url], capture_output=True, timeout=timeout)
    out = p.stdout.decode(errors="replace") + p.stderr.decode(errors="replace")
    found = re.search(r"requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, "
                      r"(\d+) failed, (\d+) errored, (\d+) timeout", out)
    assert p.returncode == 0 and found, out
    return dict(zip(("total", "done", "ok", "failed", "errored", "timeout"),
                    map(int, found.groups())), output=out)


def require_tools(*names):
    """Fails (not skips) when a command the tests use is missing: every one
    comes from scripts/install-deps.sh, and a skip would hide a missing
    install step in CI."""
    for name in names:
        if shutil.which(name) is None:
            raise RuntimeError("%s not installed: run scripts/install-deps.sh" % name)


def wait_until(predicate, timeout, interval=0.05, what="condition"):
    """Polls predicate() until it returns a truthy value, which is returned.

    Raises TimeoutError after timeout seconds.  Exceptions from predicate
    count as "not yet", except StopWaiting, which propagates.
    """
    deadline = time.monotonic() + timeout
    last_error = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except StopWaiting:
            raise
        except Exception as e:  # noqa: BLE001 - retried until the deadline
            last_error = e
        if time.monotonic() >= deadline:
            extra = " (last error: %r)" % (last_error,) if last_error else ""
            raise TimeoutError("timed out after %.1fs waiting for %s%s" % (timeout, what, extra))
        time.sleep(interval)


def _tail(path, lines=40):
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 16384))
            text = f.read().decode("utf-8", "replace")
    except OSError as e:
        return "<%s: %s>" % (path, e)
    return "\n".join(text.splitlines()[-lines:])


def _read_text(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""


class Headers(dict):
    """Response headers: a dict with lowercase keys and case-insensitive lookup.

    Repeated headers are joined with ", " (Set-Cookie aside, as RFC 9110 allows).
    """

    def __init__(self, pairs=()):
        super().__init__()
        for name, value in pairs:
            key = name.lower()
            super().__setitem__(key, self[key] + ", " + value if key in self else value)

    def __getitem__(self, key):
        return super().__getitem__(key.lower())

    def __contains__(self, key):
        return super().__contains__(key.lower())

    def get(self, key, default=None):
        return super().get(key.lower(), default)


# --- HTTP clients --------------------------------------------------------------


class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over a unix stream socket."""

    def __init__(self, path, timeout=10):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.unix_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def _do_request(conn, method, path, body, headers):
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, Headers(resp.getheaders()), data
    finally:
        conn.close()


def http_request(port, method, path, body=None, headers=None, timeout=10, host="127.0.0.1"):
    """One request on a new TCP connection; returns (status, Headers, body bytes)."""
    return _do_request(http.client.HTTPConnection(host, port, timeout=timeout),
                       method, path, body, headers)


def http_get(port, path, headers=None, timeout=10, host="127.0.0.1"):
    """GET on a new TCP connection; returns (status, Headers, body bytes)."""
    return http_request(port, "GET", path, headers=headers, timeout=timeout, host=host)


def unix_http_request(socket_path, method, path, body=None, headers=None, timeout=10):
    """One request over a unix socket; returns (status, Headers, body bytes)."""
    return _do_request(UnixHTTPConnection(socket_path, timeout=timeout),
                       method, path, body, headers)


def _raw_exchange(sock, data, timeout, half_close):
    deadline = time.monotonic() + timeout
    chunks = []
    with sock:
        sock.settimeout(timeout)
        if data:
            sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            sock.settimeout(left)
            try:
                piece = sock.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                break
            if not piece:
                break
            chunks.append(piece)
    return b"".join(chunks)


def raw_request(port, data, timeout=5, half_close=False, host="127.0.0.1"):
    """Sends raw bytes over TCP; returns everything read until close or timeout.

    timeout bounds the whole exchange.  A reset by the peer ends the read
    (what arrived before it is returned).  half_close=True shuts down the
    write side after sending.
    """
    sock = socket.create_connection((host, port), timeout=timeout)
    return _raw_exchange(sock, data, timeout, half_close)


def raw_unix_request(socket_path, data, timeout=5, half_close=False):
    """raw_request() over a unix socket."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(socket_path)
    except OSError:
        sock.close()
        raise
    return _raw_exchange(sock, data, timeout, half_close)


# --- processes -------------------------------------------------------------------


def _stop_process(proc, sig=signal.SIGTERM, timeout=15):
    """Signals proc, waits up to timeout, then SIGKILLs; returns the exit code."""
    if proc.poll() is None:
        try:
            proc.send_signal(sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    return proc.returncode


def _clk_tck():
    return os.sysconf("SC_CLK_TCK")


def _proc_stat(pid):
    """(state, ppid, starttime ticks) of a pid, or None if it is gone."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            text = f.read().decode("ascii", "replace")
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    # fields[0] is field 3 (state); ppid is field 4; starttime is field 22.
    return fields[0], int(fields[1]), int(fields[19])


def process_age(pid):
    """Seconds since pid started, or None if it is gone."""
    st = _proc_stat(pid)
    if st is None:
        return None
    with open("/proc/uptime") as f:
        uptime = float(f.read().split()[0])
    return uptime - st[2] / _clk_tck()


WORKER_TITLE = "forkd: worker "
PROXY_WORKER_TITLE = "forkd: proxy worker "  # app mode


def is_worker_process(pid):
    """True if pid runs as a forkd worker ("forkd: worker SLOT (gen G)" in ps,
    "forkd: proxy worker SLOT (gen G)" in app mode)."""
    argv = process_cmdline(pid)
    return bool(argv) and argv[0].startswith((WORKER_TITLE, PROXY_WORKER_TITLE))


def process_comm(pid):
    """The short name of pid (/proc/PID/comm: what top and ps -e show), or None."""
    try:
        with open("/proc/%d/comm" % pid, "rb") as f:
            return f.read().decode("utf-8", "replace").rstrip("\n")
    except OSError:
        return None


def worker_launch(pid):
    """The launch message a worker was started with (server/worker/worker_launch.h),
    read from its sealed memfd, as a dict: slot, generation, scoreboard_fd,
    listen_fds, record_metrics, config_args. None if pid is gone or not a worker."""
    fd_dir = "/proc/%d/fd" % pid
    try:
        for name in os.listdir(fd_dir):
            try:
                target = os.readlink(os.path.join(fd_dir, name))
            except OSError:
                continue
            if target.startswith("/memfd:forkd-worker-launch"):
                with open(os.path.join(fd_dir, name), "rb") as f:
                    return _decode_worker_launch(f.read())
    except OSError:
        return None
    return None


def _decode_worker_launch(data):
    fields = []
    while data:
        length, _, rest = data.partition(b":")
        n = int(length)
        fields.append(rest[:n].decode("utf-8", "replace"))
        assert rest[n:n + 1] == b",", "malformed launch message"
        data = rest[n + 1:]
    assert fields[0] == "forkd-worker-launch/1", fields[0]
    count = int(fields[6])
    return {"slot": int(fields[1]), "generation": int(fields[2]),
            "scoreboard_fd": int(fields[3]),
            "listen_fds": [int(x) for x in fields[4].split(",") if x],
            "record_metrics": fields[5] == "1",
            "config_args": fields[7:7 + count]}


def process_cmdline(pid):
    """argv of pid as a list of str ([] if gone or a zombie)."""
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            raw = f.read()
    except OSError:
        return []
    return [a.decode("utf-8", "replace") for a in raw.split(b"\0") if a]


def process_exe(pid):
    try:
        return os.path.realpath(os.readlink("/proc/%d/exe" % pid))
    except OSError:
        return None


def rss_kib(pid):
    """VmRSS of pid in KiB, or None."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def child_pids(ppid):
    """Live (non-zombie) children of ppid, found by scanning /proc/*/stat."""
    children = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        st = _proc_stat(int(name))
        if st is not None and st[1] == ppid and st[0] not in ("Z", "X"):
            children.append(int(name))
    return sorted(children)


def pid_alive(pid):
    st = _proc_stat(pid)
    return st is not None and st[0] not in ("Z", "X")


class ExampleApp:
    """deploy/example-app/app.py on a unix socket in a short temp directory.

        with ExampleApp() as app:
            unix_http_request(app.socket_path, "GET", "/hello")
    """

    def __init__(self, tmpdir=None, args=(), socket_name="app.sock", start_timeout=10):
        self._own_tmpdir = tmpdir is None
        self.tmpdir = tmpdir or short_tmpdir("fka")
        self.socket_path = os.path.join(self.tmpdir, socket_name)
        self.args = list(args)
        self.start_timeout = start_timeout
        self.proc = None
        self._log_path = os.path.join(self.tmpdir, "app.log")

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    @property
    def upstream(self):
        """The --upstream value for forkd."""
        return "unix:" + self.socket_path

    def start(self):
        if self.proc and self.proc.poll() is None:
            raise RuntimeError("app already running")
        with open(self._log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [PYTHON, APP_PY, "--socket", self.socket_path] + self.args,
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        _live.add(self)
        try:
            wait_until(self._accepts, self.start_timeout, what="example app on " + self.socket_path)
        except (TimeoutError, StopWaiting) as e:
            self.stop(timeout=2)
            raise RuntimeError("%s\n--- app log ---\n%s" % (e, _tail(self._log_path))) from None
        return self

    def _accepts(self):
        if self.proc.poll() is not None:
            raise StopWaiting("app exited with %s" % self.proc.returncode)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(1)
            s.connect(self.socket_path)
        return True

    def stop(self, timeout=10):
        """SIGTERM (the app removes its socket), SIGKILL after timeout; returns exit code."""
        if not self.proc:
            return None
        code = _stop_process(self.proc, signal.SIGTERM, timeout)
        _live.discard(self)
        return code

    def restart(self):
        self.stop()
        return self.start()

    def log(self):
        return _read_text(self._log_path)

    def cleanup(self):
        self.stop()
        if self._own_tmpdir:
            shutil.rmtree(self.tmpdir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()


def _has_flag(args, flag):
    return any(a == flag or a.startswith(flag + "=") for a in args)


class Forkd:
    """The real forkd binary in front of an upstream, on a free loopback port.

        with ExampleApp() as app, Forkd(app, ["--workers", "2"]) as fk:
            status, headers, body = http_get(fk.port, "/hello")

    upstream: an ExampleApp, or an --upstream string ("unix:/p",
    "http://127.0.0.1:N"); None points at a socket nobody listens on.
    The defaults below are left out when args already give the flag:
    --bind 127.0.0.1:<port> --upstream ... --admin-bind "" --metrics-bind ""
    --shutdown-delay 0 --pidfile <tmp>/forkd.pid --error-logfile <tmp>/error.log.
    (forkd's own --shutdown-delay default, 5 s, is for Kubernetes; tests
    that exercise it pass the flag.)
    FORKD_* variables of the test environment are not passed on (each flag
    reads FORKD_<NAME>); env adds variables for the child.
    """

    def __init__(self, upstream=None, args=(), env=None, tmpdir=None, start_timeout=20,
                 port=None, binary=None, wait_ready=True):
        self._own_tmpdir = tmpdir is None
        self.tmpdir = tmpdir or short_tmpdir("fkd")
        if isinstance(upstream, ExampleApp):
            upstream = upstream.upstream
        self.upstream = upstream or "unix:" + os.path.join(self.tmpdir, "no-app.sock")
        self.extra_args = list(args)
        self.binary = binary or FORKD_BIN
        self.port = port or free_port()
        self.pidfile = os.path.join(self.tmpdir, "forkd.pid")
        self.error_log_path = os.path.join(self.tmpdir, "error.log")
        self.stdout_path = os.path.join(self.tmpdir, "stdout.log")
        self.stderr_path = os.path.join(self.tmpdir, "stderr.log")
        self.env = dict(env or {})
        self.start_timeout = start_timeout
        self.wait_ready = wait_ready
        self.proc = None
        self._seen_workers = set()

    # -- lifecycle --

    def command(self):
        args = []
        defaults = [
            ("--bind", "127.0.0.1:%d" % self.port),
            ("--upstream", self.upstream),
            ("--admin-bind", ""),
            ("--metrics-bind", ""),
            ("--shutdown-delay", "0"),
            ("--pidfile", self.pidfile),
            ("--error-logfile", self.error_log_path),
        ]
        for flag, value in defaults:
            if not _has_flag(self.extra_args, flag):
                args += [flag, value]
        return [self.binary] + args + self.extra_args

    def start(self):
        if self.proc and self.proc.poll() is None:
            raise RuntimeError("forkd already running")
        if not os.access(self.binary, os.X_OK):
            raise FileNotFoundError("forkd binary not found: %s (set FORKD_BIN)" % self.binary)
        env = {k: v for k, v in os.environ.items() if not k.startswith("FORKD_")}
        env.update(self.env)
        with open(self.stdout_path, "ab") as out, open(self.stderr_path, "ab") as err:
            self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=err, env=env,
                                         start_new_session=True)
        _live.add(self)
        if self.wait_ready:
            try:
                self.wait_answering(self.start_timeout)
            except Exception as e:
                self.stop(timeout=5)
                raise RuntimeError("forkd did not answer on port %d: %s\n%s"
                                   % (self.port, e, self.diagnostics())) from None
        return self

    def wait_answering(self, timeout=20):
        """Waits until the port answers an HTTP request with any status."""
        def answers():
            if self.proc.poll() is not None:
                raise StopWaiting("forkd exited with %s" % self.proc.returncode)
            status, _, _ = http_get(self.port, "/", timeout=2)
            return status
        return wait_until(answers, timeout, interval=0.1, what="forkd on port %d" % self.port)

    def stop(self, timeout=15, sig=signal.SIGTERM):
        """sig (TERM) to the master, wait up to timeout, then KILL.

        Workers still alive after the master is gone are killed too.
        Returns the master's exit code.
        """
        if not self.proc:
            return None
        if self.proc.poll() is None:
            self._seen_workers.update(self._children())
        code = _stop_process(self.proc, sig, timeout)
        for pid in list(self._seen_workers):
            if pid_alive(pid) and self._is_forkd(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        _live.discard(self)
        return code

    def cleanup(self):
        self.stop()
        if self._own_tmpdir:
            shutil.rmtree(self.tmpdir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()

    # -- inspection --

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def url(self, path="/"):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def log(self):
        """The error log's text."""
        return _read_text(self.error_log_path)

    def stdout(self):
        return _read_text(self.stdout_path)

    def stderr(self):
        return _read_text(self.stderr_path)

    def diagnostics(self):
        return "--- error log (%s) ---\n%s\n--- stderr ---\n%s" % (
            self.error_log_path, _tail(self.error_log_path), _tail(self.stderr_path))

    def signal(self, sig):
        os.kill(self.pid, sig)

    def _is_forkd(self, pid):
        exe = process_exe(pid)
        return exe is not None and exe == os.path.realpath(self.binary)

    def _children(self):
        return [p for p in child_pids(self.pid)
                if self._is_forkd(p) or is_worker_process(p)]

    def worker_pids(self):
        """Live worker pids: forkd children of the master, sorted.

        When some children are workers ("forkd: worker SLOT (gen G)") only those
        count, which leaves out any other helper the master forks.
        """
        if not self.alive():
            return []
        children = self._children()
        workers = [p for p in children if is_worker_process(p)]
        result = workers if workers else children
        self._seen_workers.update(result)
        return result

    def wait_workers(self, n, timeout=30, min_age=0.2):
        """Waits until exactly n workers exist, each alive > min_age s; returns their pids."""
        def settled():
            pids = self.worker_pids()
            if len(pids) != n:
                return None
            ages = [process_age(p) for p in pids]
            if any(a is None or a <= min_age for a in ages):
                return None
            return pids
        try:
            return wait_until(settled, timeout, interval=0.05, what="%d forkd workers" % n)
        except TimeoutError as e:
            raise TimeoutError("%s; now %s\n%s" % (e, self.worker_pids(), self.diagnostics())) from None


# --- load ---------------------------------------------------------------------------


class LoadGenerator:
    """N threads of keep-alive GETs against a URL, bounded in count and time.

        load = LoadGenerator(fk.url("/sleep?ms=5"), threads=4, duration=5)
        load.start(); ...; summary = load.stop()
        assert summary.failed == 0, summary.reasons

    Each thread stops after `duration` seconds or `max_requests` requests.
    A failure is a non-2xx status, an exception or a refused connection; the
    first `keep_reasons` reasons are kept.  After a failure the thread
    reconnects.  on_response(status, body), if given, sees every response
    (from the load threads).  `pause` seconds between one thread's requests
    paces the load (a count-bounded load on a fast machine may otherwise be
    over before the master's once-a-second checks look).
    """

    Summary = collections.namedtuple(
        "Summary", "ok failed reasons statuses elapsed requests")

    def __init__(self, url, threads=4, duration=10.0, max_requests=None, timeout=10.0,
                 headers=None, method="GET", keep_reasons=10, on_response=None,
                 pause=0.0):
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "http":
            raise ValueError("http:// URLs only: %s" % url)
        self.host = parts.hostname
        self.port = parts.port or 80
        self.path = (parts.path or "/") + ("?" + parts.query if parts.query else "")
        self.threads = threads
        self.duration = duration
        self.max_requests = max_requests
        self.timeout = timeout
        self.headers = dict(headers or {})
        self.method = method
        self.keep_reasons = keep_reasons
        self.on_response = on_response
        self.pause = pause
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._workers = []
        self._ok = 0
        self._failed = 0
        self._reasons = []
        self._statuses = collections.Counter()
        self._started = None
        self._finished = None

    def _record(self, ok, status=None, reason=None):
        with self._lock:
            if status is not None:
                self._statuses[status] += 1
            if ok:
                self._ok += 1
            else:
                self._failed += 1
                if len(self._reasons) < self.keep_reasons:
                    self._reasons.append(reason)

    def _run(self):
        deadline = self._started + self.duration
        done = 0
        conn = None
        while not self._stop.is_set() and time.monotonic() < deadline:
            if self.max_requests is not None and done >= self.max_requests:
                break
            if done and self.pause and self._stop.wait(self.pause):
                break
            done += 1
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
                conn.request(self.method, self.path, headers=self.headers)
                resp = conn.getresponse()
                data = resp.read()
                if self.on_response is not None:
                    self.on_response(resp.status, data)
                if 200 <= resp.status < 300:
                    self._record(True, resp.status)
                else:
                    self._record(False, resp.status, "HTTP %d" % resp.status)
                if resp.will_close:
                    conn.close()
                    conn = None
            except Exception as e:  # noqa: BLE001 - every error is a counted failure
                self._record(False, None, "%s: %s" % (type(e).__name__, e))
                if conn is not None:
                    conn.close()
                    conn = None
                self._stop.wait(0.01)  # no hot loop against a refused port
        if conn is not None:
            conn.close()

    def start(self):
        if self._workers:
            raise RuntimeError("already started")
        self._started = time.monotonic()
        for i in range(self.threads):
            t = threading.Thread(target=self._run, name="load-%d" % i, daemon=True)
            t.start()
            self._workers.append(t)
        return self

    def running(self):
        return any(t.is_alive() for t in self._workers)

    def wait(self, timeout=None):
        """Waits for the threads to finish on their own (duration/max_requests)."""
        limit = self.duration + self.timeout + 5 if timeout is None else timeout
        deadline = time.monotonic() + limit
        for t in self._workers:
            t.join(max(0.0, deadline - time.monotonic()))
        return self.summary()

    def stop(self):
        """Stops the threads (each finishes its current request) and returns summary()."""
        self._stop.set()
        deadline = time.monotonic() + self.timeout + 5
        for t in self._workers:
            t.join(max(0.0, deadline - time.monotonic()))
        return self.summary()

    def summary(self):
        with self._lock:
            end = self._finished or time.monotonic()
            if not self.running():
                self._finished = end
            return self.Summary(ok=self._ok, failed=self._failed, reasons=list(self._reasons),
                                statuses=dict(self._statuses),
                                elapsed=end - (self._started or end),
                                requests=self._ok + self._failed)
