"""Shared pieces of the request-path tests (test_proxy, test_bad_requests,
test_app_failures, test_gunicorn): the worker classes, a module-scoped forkd
per class, and log helpers."""

import os
import select
import subprocess

import pytest

import forkd_harness
from forkd_harness import ExampleApp, Forkd, wait_until

# The flags that select each worker class.
CLASS_ARGS = {
    "sync": ["--worker-class", "sync"],
    "gthread": ["--worker-class", "gthread", "--threads", "4"],
    "async": ["--worker-class", "async"],
}
CLASSES = list(CLASS_ARGS)
KEEPALIVE_CLASSES = ["gthread", "async"]


def require_forkd():
    """The forkd binary's path; skips (or fails, when FORKD_BIN names no
    file) like conftest's forkd_bin fixture, for module-scoped fixtures."""
    path = forkd_harness.FORKD_BIN
    if not os.access(path, os.X_OK):
        if os.environ.get("FORKD_BIN"):
            pytest.fail("FORKD_BIN=%s is not an executable file" % path)
        pytest.skip("forkd not built (%s); set FORKD_BIN" % path)
    return path


class Started:
    """Starts ExampleApp/Forkd objects and stops them all at the end."""

    def __init__(self):
        self.items = []

    def app(self, **kw):
        app = ExampleApp(**kw).start()
        self.items.append(app)
        return app

    def tcp_app(self, args=()):
        app = TcpExampleApp(args).start()
        self.items.append(app)
        return app

    def forkd(self, upstream, args=(), **kw):
        fk = Forkd(upstream, list(args), binary=require_forkd(), **kw)
        self.items.append(fk)
        return fk.start()

    def stop(self):
        for item in reversed(self.items):
            item.cleanup()


class LogMark:
    """Remembers the error log's length; new_lines() is what came after."""

    def __init__(self, fk):
        self.fk = fk
        self.offset = len(fk.log())

    def new_lines(self):
        return self.fk.log()[self.offset:].splitlines()

    def wait_for(self, needle, timeout=5):
        """The new lines containing needle, once there is at least one."""
        def found():
            return [l for l in self.new_lines() if needle in l]
        try:
            return wait_until(found, timeout, what="%r in the error log" % needle)
        except TimeoutError:
            raise AssertionError("no log line with %r; new lines:\n%s"
                                 % (needle, "\n".join(self.new_lines()))) from None


# What the example app's /bytes?n=N sends.
_APP_BLOCK = (b"0123456789abcdefghijklmnopqrstuvwxyz" * (65536 // 36 + 1))[:65536]


@pytest.fixture(scope="module")
def app():
    """The example app, one per test module (import it as a fixture)."""
    started = Started()
    try:
        yield started.app()
    finally:
        started.stop()


def serve_each_class(request, app, args):
    """Body of a module-scoped fixture parametrized by CLASSES: yields
    (class name, Forkd) for forkd started with `args` and the class's flags
    in front of `app`, and stops it after the module."""
    require_forkd()
    started = Started()
    try:
        yield request.param, started.forkd(app, list(args) + CLASS_ARGS[request.param])
    finally:
        started.stop()


def app_bytes(n):
    return (_APP_BLOCK * (n // len(_APP_BLOCK) + 1))[:n]


class TcpExampleApp:
    """The example app on 127.0.0.1 (--port 0: it prints the port it got)."""

    def __init__(self, args=()):
        self.args = list(args)
        self.proc = None
        self.port = None

    @property
    def upstream(self):
        return "http://127.0.0.1:%d" % self.port

    def start(self):
        self.proc = subprocess.Popen([forkd_harness.PYTHON, forkd_harness.APP_PY, "--port", "0"]
                                     + self.args, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        ready, _, _ = select.select([self.proc.stdout], [], [], 10)
        line = self.proc.stdout.readline() if ready else b""
        if not line.strip().isdigit():
            self.cleanup()
            raise RuntimeError("example app on TCP did not start: %r" % line)
        self.port = int(line)
        return self

    def cleanup(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc:
            self.proc.stdout.close()
