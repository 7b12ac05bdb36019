"""forkd in front of a real Gunicorn (Debian's `gunicorn`) serving
tests/apps/wsgi_app.py on a unix socket, with Gunicorn's sync workers
(which close after every response) and its gthread workers (which keep
connections alive and drop idle ones after --keep-alive)."""

import os
import shutil
import subprocess

import pytest

from forkd_harness import (REPO_DIR, LoadGenerator, Headers, http_get, http_request,
                           short_tmpdir, wait_until)
from proxy_fixtures import CLASS_ARGS, CLASSES, Started, require_forkd
from wire import WireConnection, chunked, pattern, request_bytes

GUNICORN = shutil.which("gunicorn") or "/usr/bin/gunicorn"
APPS_DIR = os.path.join(REPO_DIR, "tests", "apps")

GUNICORN_CLASSES = {
    "gunicorn-sync": ["--worker-class", "sync", "--workers", "2"],
    # --keep-alive 1: idle pooled connections are dropped by Gunicorn often.
    "gunicorn-gthread": ["--worker-class", "gthread", "--workers", "2", "--threads", "4",
                         "--keep-alive", "1"],
}


class Gunicorn:
    def __init__(self, args):
        self.tmpdir = short_tmpdir("fkg")
        self.socket_path = os.path.join(self.tmpdir, "g.sock")
        self.log_path = os.path.join(self.tmpdir, "gunicorn.log")
        self.args = args
        self.proc = None

    @property
    def upstream(self):
        return "unix:" + self.socket_path

    def start(self):
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [GUNICORN, "--bind", "unix:" + self.socket_path, "--chdir", APPS_DIR,
                 "--graceful-timeout", "2"] + self.args + ["wsgi_app:app"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)

        def up():
            if self.proc.poll() is not None:
                raise RuntimeError("gunicorn exited: %s" % self.log())
            return os.path.exists(self.socket_path)
        wait_until(up, 20, what="gunicorn on " + self.socket_path)
        return self

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        shutil.rmtree(self.tmpdir, ignore_errors=True)


@pytest.fixture(scope="module", params=list(GUNICORN_CLASSES))
def gunicorn(request):
    if not os.access(GUNICORN, os.X_OK):
        # scripts/install-deps.sh installs it: missing is a failed install.
        pytest.fail("gunicorn not installed (%s)" % GUNICORN)
    g = Gunicorn(GUNICORN_CLASSES[request.param])
    try:
        yield g.start()
    finally:
        g.stop()


@pytest.fixture(scope="module", params=CLASSES)
def server(request, gunicorn):
    require_forkd()
    started = Started()
    try:
        yield started.forkd(gunicorn.upstream, ["--workers", "2", "--request-buffer", "65536"]
                            + CLASS_ARGS[request.param])
    finally:
        started.stop()


def test_get(server):
    assert http_get(server.port, "/")[::2] == (200, b"hello\n")
    status, headers, body = http_get(server.port, "/bytes?n=3000000", timeout=30)
    assert status == 200 and len(body) == 3_000_000 and body == b"x" * 3_000_000


@pytest.mark.parametrize("size", [1000, 500_000])
def test_post_echo(server, size):
    body = pattern(size, seed=11)
    status, headers, got = http_request(server.port, "POST", "/echo", body=body,
                                        headers={"Content-Type": "application/x-test"})
    assert status == 200
    assert headers["X-Echo-Method"] == "POST"
    assert headers["X-Echo-Length"] == str(size)
    assert headers["Content-Type"] == "application/x-test"
    assert got == body


@pytest.mark.parametrize("size", [1000, 500_000])
def test_chunked_post_echo(server, size):
    # Over --request-buffer the body streams to Gunicorn chunked.
    body = pattern(size, seed=5)
    with WireConnection(server.port, timeout=30) as c:
        c.send(request_bytes("PUT", "/echo", [("Transfer-Encoding", "chunked"),
                                              ("Connection", "close")], body=chunked(body)))
        r = c.read_response()
    assert r.status == 200, r
    assert r.headers["X-Echo-Method"] == "PUT"
    assert r.body == body


def test_bounded_load_has_no_failures(server):
    load = LoadGenerator(server.url("/sleep?ms=2"), threads=8, duration=2.0, timeout=10)
    load.start()
    summary = load.wait()
    assert summary.failed == 0, summary.reasons
    assert summary.ok > 20, summary
