"""HTTP/2 in the gthread and sync classes: how streams share the cap.

A tiny app on a unix socket counts the requests it is serving at once and
remembers the peak. The rules (issue 5):
- gthread with --threads N: streams of one connection and of many go to
  the app concurrently but never more than N at a time per worker
  (workers x threads in all); the rest wait, they are not refused, and all
  complete. HTTP/1.1 clients are served next to busy HTTP/2 connections.
- sync: streams reach the app one at a time, and all complete; once they
  are answered the connection ends with GOAWAY.
- TERM with open streams on gthread finishes them; h2load completes; a
  live --threads change resizes the line streams wait in.
Loopback only, every load bounded in count and time.
"""

import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

import hpack  # python3-h2's dependency (scripts/install-deps.sh)
import pytest

import forkd_harness
from admin_client import forkctl, start_admin_forkd
from forkd_harness import Forkd, h2load, http_get, require_tools, wait_until

require_tools("nghttp", "h2load")

PEAK_APP = r'''
import os, socketserver, sys, threading, time
from http.server import BaseHTTPRequestHandler
from urllib.parse import urlparse, parse_qs

lock = threading.Lock()
state = {"now": 0, "peak": 0, "served": 0}

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def address_string(self):
        return "unix"
    def log_message(self, *args):
        pass
    def reply(self, body):
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        u = urlparse(self.path)
        q = parse_qs(u.query)
        if u.path == "/peak":
            with lock:
                body = ("%d %d %d" % (state["peak"], state["now"], state["served"])).encode()
                if "reset" in q:
                    state["peak"] = state["now"]
                    state["served"] = 0
            return self.reply(body)
        with lock:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
        try:
            time.sleep(int(q.get("ms", ["0"])[0]) / 1000.0)
        finally:
            with lock:
                state["now"] -= 1
                state["served"] += 1
        self.reply(b"ok\n")

class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    request_queue_size = 128

path = sys.argv[1]
if os.path.exists(path):
    os.unlink(path)
Server(path, Handler).serve_forever()
'''


class PeakApp:
    def __init__(self):
        self.tmpdir = forkd_harness.short_tmpdir("fkp")
        self.socket_path = os.path.join(self.tmpdir, "app.sock")
        script = os.path.join(self.tmpdir, "peak_app.py")
        with open(script, "w") as f:
            f.write(PEAK_APP)
        self.proc = subprocess.Popen([sys.executable, script, self.socket_path],
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        wait_until(lambda: os.path.exists(self.socket_path), 10, what="the peak app")

    @property
    def upstream(self):
        return "unix:" + self.socket_path

    def peak(self, reset=False):
        """(peak, now, served) since the last reset, asked over its socket."""
        body = forkd_harness.unix_http_request(
            self.socket_path, "GET", "/peak?reset=1" if reset else "/peak")[2]
        return tuple(int(x) for x in body.split())

    def close(self):
        self.proc.kill()
        self.proc.wait(timeout=10)
        shutil.rmtree(self.tmpdir, ignore_errors=True)


@pytest.fixture(scope="module")
def peak_app():
    a = PeakApp()
    yield a
    a.close()


def start(app, worker_class, workers=1, threads=1, extra=()):
    args = ["--worker-class", worker_class, "--workers", str(workers)]
    if worker_class == "gthread":
        args += ["--threads", str(threads)]
    f = Forkd(app.upstream, args + list(extra))
    f.start()
    f.wait_workers(workers)
    return f


def nghttp_streams(url, m, timeout=60):
    """m concurrent GETs of url on one HTTP/2 connection; their statuses."""
    p = subprocess.run(["nghttp", "-n", "-s", "-m", str(m), url],
                       capture_output=True, timeout=timeout)
    out = p.stdout.decode() + p.stderr.decode()
    assert p.returncode == 0, out
    return [row.split()[4] for row in out.splitlines() if "/slow" in row]


def test_gthread_streams_of_one_connection_wait_for_the_threads(peak_app):
    f = start(peak_app, "gthread", threads=3)
    try:
        peak_app.peak(reset=True)
        statuses = nghttp_streams(f.url("/slow?ms=300"), m=12)
        assert statuses == ["200"] * 12, statuses
        peak, now, served = peak_app.peak()
        # Concurrent up to the cap, never past it.
        assert peak == 3 and served == 12, (peak, served)
    finally:
        f.cleanup()


def test_gthread_streams_of_many_connections_share_workers_x_threads(peak_app):
    f = start(peak_app, "gthread", workers=2, threads=2)
    try:
        peak_app.peak(reset=True)
        r = h2load(f.url("/slow?ms=100"), n=96, c=6, m=8)
        assert (r["ok"], r["failed"], r["errored"], r["timeout"]) == (96, 0, 0, 0), r["output"]
        peak, now, served = peak_app.peak()
        assert 2 <= peak <= 4 and served == 96, (peak, served)
        # Several slow connections at once, from different clients.
        peak_app.peak(reset=True)
        results = []
        threads = [threading.Thread(target=lambda: results.append(
            nghttp_streams(f.url("/slow?ms=200"), m=5))) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert results == [["200"] * 5] * 4, results
        peak, now, served = peak_app.peak()
        assert peak <= 4 and served == 20, (peak, served)
    finally:
        f.cleanup()


def test_sync_serves_streams_one_at_a_time(peak_app):
    f = start(peak_app, "sync")
    try:
        peak_app.peak(reset=True)
        statuses = nghttp_streams(f.url("/slow?ms=150"), m=6)
        assert statuses == ["200"] * 6, statuses
        r = h2load(f.url("/slow?ms=20"), n=40, c=2, m=4)
        assert (r["ok"], r["failed"], r["errored"]) == (40, 0, 0), r["output"]
        peak, now, served = peak_app.peak()
        assert peak == 1 and served == 46, (peak, served)
        # HTTP/1.1 after HTTP/2: served, one request per connection.
        status, headers, body = http_get(f.port, "/slow?ms=1")
        assert (status, body) == (200, b"ok\n")
        assert headers.get("Connection", "").lower() == "close"
    finally:
        f.cleanup()


def test_gthread_serves_http1_next_to_busy_http2(peak_app):
    f = start(peak_app, "gthread", threads=2)
    try:
        peak_app.peak(reset=True)
        h2 = []
        busy = threading.Thread(target=lambda: h2.append(
            nghttp_streams(f.url("/slow?ms=400"), m=10)))
        busy.start()
        try:
            wait_until(lambda: peak_app.peak()[1] >= 2, 10, what="streams at the app")
            # HTTP/1.1 clients meanwhile: they wait their turn in line, and
            # are answered while the HTTP/2 connection still has streams.
            answers = [http_get(f.port, "/slow?ms=1", timeout=20) for _ in range(3)]
            assert [a[0] for a in answers] == [200] * 3, answers
        finally:
            busy.join(60)
        assert h2 == [["200"] * 10], h2
        peak, now, served = peak_app.peak()
        assert peak <= 2 and served == 13, (peak, served)
    finally:
        f.cleanup()


def test_gthread_graceful_term_finishes_open_streams(peak_app):
    f = start(peak_app, "gthread", threads=2, extra=["--graceful-timeout", "20"])
    try:
        peak_app.peak(reset=True)
        result = []
        client = threading.Thread(target=lambda: result.append(
            nghttp_streams(f.url("/slow?ms=1000"), m=4)))
        client.start()
        wait_until(lambda: peak_app.peak()[1] == 2, 10, what="two streams at the app")
        f.signal(signal.SIGTERM)
        client.join(60)
        # All four finish: two were at the app, two waited for a thread.
        assert result == [["200"] * 4], result
        assert f.proc.wait(timeout=30) == 0
        assert peak_app.peak()[2] == 4
    finally:
        f.cleanup()


def test_h2load_against_gthread(peak_app):
    f = start(peak_app, "gthread", threads=4)
    try:
        r = h2load(f.url("/slow?ms=0"), n=3000, c=4, m=10)
        assert (r["ok"], r["failed"], r["errored"], r["timeout"]) == (3000, 0, 0, 0), r["output"]
    finally:
        f.cleanup()


def test_gthread_live_thread_change_resizes_the_line_for_streams(forkd_factory, peak_app):
    fk = start_admin_forkd(forkd_factory, peak_app.upstream,
                           ["--workers", "1", "--worker-class", "gthread", "--threads", "1",
                            "--max-threads", "8"])
    fk.wait_workers(1)
    peak_app.peak(reset=True)
    result = []
    client = threading.Thread(target=lambda: result.append(
        nghttp_streams(fk.url("/slow?ms=300"), m=12)))
    client.start()
    try:
        wait_until(lambda: peak_app.peak()[1] == 1, 10, what="the first stream at the app")
        out = forkctl(fk.admin_addr, "threads", "4")
        assert out.returncode == 0, out.stderr
    finally:
        client.join(60)
    assert result == [["200"] * 12], result
    # Streams that waited behind one slot take the four at once.
    assert peak_app.peak(reset=True)[0] == 4
    out = forkctl(fk.admin_addr, "threads", "2")
    assert out.returncode == 0, out.stderr
    assert nghttp_streams(fk.url("/slow?ms=100"), m=8) == ["200"] * 8
    peak, now, served = peak_app.peak()
    assert peak == 2 and served == 8, (peak, served)


def test_sync_says_goaway_once_its_streams_are_answered(peak_app):
    """Gunicorn's sync worker closes after one request; the HTTP/2 analogue:
    every stream the client sent is answered, then GOAWAY(NO_ERROR) naming
    the last one, and the connection ends."""
    f = start(peak_app, "sync")
    sock = socket.create_connection(("127.0.0.1", f.port), timeout=10)
    try:
        def frame(ftype, flags, sid, payload=b""):
            return (struct.pack(">I", len(payload))[1:] + bytes([ftype, flags])
                    + struct.pack(">I", sid) + payload)
        enc = hpack.Encoder()
        out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(0x4, 0, 0)
        for sid in (1, 3, 5):
            block = enc.encode([(":method", "GET"), (":scheme", "http"),
                                (":authority", "127.0.0.1"), (":path", "/slow?ms=50")])
            out += frame(0x1, 0x1 | 0x4, sid, block)  # END_STREAM | END_HEADERS
        sock.sendall(out)
        buf, ended, goaways = b"", set(), []
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            data = sock.recv(65536)
            if not data:
                break
            buf += data
            while len(buf) >= 9 and len(buf) >= 9 + int.from_bytes(buf[:3], "big"):
                n = int.from_bytes(buf[:3], "big")
                ftype, flags = buf[3], buf[4]
                sid = int.from_bytes(buf[5:9], "big") & 0x7FFFFFFF
                payload, buf = buf[9:9 + n], buf[9 + n:]
                if ftype in (0x0, 0x1) and flags & 0x1:
                    ended.add(sid)
                elif ftype == 0x7:
                    goaways.append(struct.unpack(">II", payload[:8]))
                elif ftype == 0x6 and not flags & 0x1:
                    sock.sendall(frame(0x6, 0x1, 0, payload))  # PING ACK
        assert ended == {1, 3, 5}, (ended, goaways)
        assert goaways and goaways[-1] == (5, 0), goaways
        assert not data, "the connection stayed open"
        # The worker goes on with the next client.
        assert http_get(f.port, "/slow?ms=1")[0] == 200
    finally:
        sock.close()
        f.cleanup()


def test_gthread_a_stream_waits_in_line_at_most_the_upstream_timeout(peak_app):
    f = start(peak_app, "gthread", threads=1, extra=["--upstream-timeout", "3"])
    try:
        # One thread: the first two (2 s each) are served in turn; the third
        # would wait 4 s for the thread and gets 504 at 3 s instead.
        statuses = nghttp_streams(f.url("/slow?ms=2000"), m=3)
        assert sorted(statuses) == ["200", "200", "504"], statuses
        wait_until(lambda: "in line for a free thread" in f.log(), 5,
                   what="the log line naming the wait")
    finally:
        f.cleanup()
