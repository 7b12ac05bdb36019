"""HTTP/2 through forkd's workers of every class, with real clients and bad peers.

Real clients: curl (--http2-prior-knowledge, and --http2 for the HTTP/1.1
"Upgrade: h2c" path), nghttp, h2load, Python's h2 (Debian's python3-h2) for
flow control and graceful close, and raw frame bytes for peers that break
the rules. Every bad peer must end in the right GOAWAY or RST_STREAM, and
the worker must go on serving the next client, HTTP/1.1 or HTTP/2.

The shared server (`fk`) runs once per worker class (async, gthread, sync);
tests whose rule differs by class say so. Everything is on loopback, one
worker unless said, every wait bounded.
"""

import base64
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time

import pytest

import forkd_harness
from forkd_harness import (ExampleApp, Forkd, LoadGenerator, free_port, h2load, http_get,
                           wait_until)
import metrics_util
from proxy_fixtures import app_bytes

# A missing python3-h2 fails here (scripts/install-deps.sh installs it):
# a skip would hide a missing install step in CI.
import h2.connection as h2_connection  # noqa: E402
import h2.config  # noqa: E402
import h2.events  # noqa: E402
import h2.settings  # noqa: E402
import hpack  # noqa: E402

forkd_harness.require_tools("curl", "nghttp", "h2load", "openssl")

# RFC 9113 §7 error codes and frame types.
NO_ERROR, PROTOCOL_ERROR, FLOW_CONTROL_ERROR, CANCEL, ENHANCE_YOUR_CALM = 0x0, 0x1, 0x3, 0x8, 0xb
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = (
    0x0, 0x1, 0x3, 0x4, 0x6, 0x7, 0x8, 0x9)
END_STREAM, ACK, END_HEADERS = 0x1, 0x1, 0x4
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
ASYNC = ["--worker-class", "async", "--workers", "1"]
CLASS_ARGS = {
    "async": ASYNC,
    "gthread": ["--worker-class", "gthread", "--workers", "1", "--threads", "4"],
    "sync": ["--worker-class", "sync", "--workers", "1"],
}


# --- fixtures ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def app():
    a = ExampleApp()
    a.start()
    yield a
    a.cleanup()


@pytest.fixture(scope="module", params=list(CLASS_ARGS))
def fk(app, request):
    """One worker of each class with an access log and /metrics."""
    mport = free_port()
    tmp = forkd_harness.short_tmpdir("fkh")
    access = os.path.join(tmp, "access.log")
    f = Forkd(app, CLASS_ARGS[request.param] + [
        "--access-logfile", access, "--metrics-bind", "127.0.0.1:%d" % mport], tmpdir=tmp)
    f.worker_class = request.param
    f.access_log_path = access
    f.metrics_port = mport
    f.start()
    f.wait_workers(1)
    yield f
    f.cleanup()
    shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def tight(app):
    """Answers 504 after 1 s and 503 past 2 requests in flight."""
    f = Forkd(app, ASYNC + ["--upstream-timeout", "1", "--worker-connections", "2"])
    f.start()
    yield f
    f.cleanup()


def skip_for_sync(fk, why):
    """The sync class serves one stream at a time and ends a connection once
    it is idle (GOAWAY): tests of concurrency or of long-lived connections
    do not apply to it (test_http2_threaded.py tests its own rules)."""
    if fk.worker_class == "sync":
        pytest.skip("sync: " + why)


def the_worker(fk):
    pids = fk.worker_pids()
    assert len(pids) == 1, pids
    return pids[0]


# --- real clients -----------------------------------------------------------------


def curl(*args, timeout=30):
    """Runs curl -s; returns (exit code, stdout bytes, stderr text)."""
    p = subprocess.run(["curl", "-s", "--max-time", str(timeout)] + list(args),
                       capture_output=True, timeout=timeout + 10)
    return p.returncode, p.stdout, p.stderr.decode("utf-8", "replace")


def curl_h2(fk, path, *args, timeout=30):
    """GET (or what args say) over h2c with prior knowledge.

    Returns (status, http_version, headers dict, body bytes).
    """
    marker = b"\n--forkd-test--"
    code, out, err = curl("--http2-prior-knowledge", "-D", "-", "-w",
                          marker.decode() + "%{http_code} %{http_version}", *args,
                          fk.url(path), timeout=timeout)
    assert code == 0, "curl exit %d: %s" % (code, err)
    out, _, tail = out.rpartition(marker)
    status, version = tail.decode().split()
    head, _, body = out.partition(b"\r\n\r\n")
    headers = {}
    for line in head.decode("latin-1").split("\r\n")[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status), version, headers, body


def run_tool(args, timeout=60):
    p = subprocess.run(args, capture_output=True, timeout=timeout)
    return p.returncode, p.stdout.decode("utf-8", "replace") + p.stderr.decode("utf-8", "replace")


def served_by_same_worker(fk, worker):
    """The next HTTP/1.1 and HTTP/2 clients are answered, by the same worker."""
    status, _, body = http_get(fk.port, "/hello", timeout=5)
    assert (status, body) == (200, b"hello\n")
    status, version, _, body = curl_h2(fk, "/hello", timeout=10)
    assert (status, version, body) == (200, "2", b"hello\n")
    assert fk.worker_pids() == [worker], "the worker was replaced: %s" % fk.diagnostics()


# --- Python h2 clients --------------------------------------------------------------


class H2Client:
    """An h2c client (prior knowledge) on python3-h2, driven by hand.

    Responses land in self.responses[stream_id]: status, headers, body,
    ended, reset (error code), data_at (arrival times of DATA frames).
    With auto_ack the received DATA is acknowledged at once (windows
    reopen); without it, ack() does it.
    """

    def __init__(self, port, window=None, auto_ack=True, timeout=10):
        config = h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        self.conn = h2_connection.H2Connection(config=config)
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.auto_ack = auto_ack
        self.responses = {}
        self.goaways = []  # (last_stream_id, error_code)
        self.closed = False
        self.unacked = {}  # stream id -> received bytes not yet acknowledged
        self.conn.initiate_connection()
        if window is not None:
            self.conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window})
        self.flush()

    def close(self):
        self.sock.close()

    def flush(self):
        data = self.conn.data_to_send()
        if data and not self.closed:
            try:
                self.sock.sendall(data)
            except OSError:
                self.closed = True

    def request(self, path, method="GET", headers=(), end_stream=True):
        sid = self.conn.get_next_available_stream_id()
        self.conn.send_headers(sid, [(":method", method), (":scheme", "http"),
                                     (":authority", "127.0.0.1"), (":path", path)]
                               + list(headers), end_stream=end_stream)
        self.responses[sid] = dict(status=None, headers={}, body=bytearray(), ended=False,
                                   reset=None, data_at=[])
        self.flush()
        return sid

    def ack(self, sid):
        n = self.unacked.pop(sid, 0)
        if n:
            self.conn.acknowledge_received_data(n, sid)
            self.flush()

    def pump(self, timeout=0.2):
        """Reads what arrives within timeout and handles it; False at EOF."""
        if self.closed:
            return False
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(1 << 16)
        except socket.timeout:
            return True
        except ConnectionResetError:
            data = b""
        if not data:
            self.closed = True
            return False
        for ev in self.conn.receive_data(data):
            r = self.responses.get(getattr(ev, "stream_id", None))
            if isinstance(ev, h2.events.ResponseReceived):
                r["headers"] = dict(ev.headers)
                r["status"] = int(r["headers"][":status"])
            elif isinstance(ev, h2.events.DataReceived):
                r["body"] += ev.data
                r["data_at"].append(time.monotonic())
                if self.auto_ack:
                    self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                else:
                    self.unacked[ev.stream_id] = (self.unacked.get(ev.stream_id, 0)
                                                  + ev.flow_controlled_length)
            elif isinstance(ev, h2.events.StreamEnded):
                r["ended"] = True
            elif isinstance(ev, h2.events.StreamReset):
                if r is not None:
                    r["reset"] = ev.error_code
            elif isinstance(ev, h2.events.ConnectionTerminated):
                self.goaways.append((ev.last_stream_id, ev.error_code))
        self.flush()
        return True

    def wait(self, predicate, timeout=10, what="condition"):
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError("timed out waiting for %s; responses %s goaways %s" % (
                    what, {k: {kk: vv for kk, vv in v.items() if kk != "body"}
                           for k, v in self.responses.items()}, self.goaways))
            if not self.pump(0.1) and not predicate():
                raise EOFError("connection closed while waiting for %s" % what)

    def get(self, path, timeout=10):
        sid = self.request(path)
        self.wait(lambda: self.responses[sid]["ended"] or self.responses[sid]["reset"] is not None,
                  timeout, "response to " + path)
        return self.responses[sid]


# --- raw frames ---------------------------------------------------------------------


def frame(ftype, flags, stream_id, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(
        ">I", stream_id & 0x7FFFFFFF) + payload


class RawPeer:
    """A client that writes frames as given and reads the server's frames."""

    def __init__(self, port, timeout=5, answer_pings=False):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.answer_pings = answer_pings
        self.encoder = hpack.Encoder()
        self.buf = b""
        self.frames = []
        self.eof = False
        self.send(PREFACE + frame(SETTINGS, 0, 0))

    def close(self):
        self.sock.close()

    def send(self, data):
        """Sends data; a server that already hung up is no error here."""
        try:
            self.sock.sendall(data)
            return True
        except (BrokenPipeError, ConnectionResetError):
            return False

    def request_block(self, path="/hello", extra=()):
        return self.encoder.encode([(":method", "GET"), (":scheme", "http"),
                                    (":authority", "127.0.0.1"), (":path", path)]
                                   + list(extra))

    def read_until(self, predicate, timeout=5):
        """Reads frames until predicate(frame) holds for one (returned) or EOF."""
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            while seen < len(self.frames):
                f = self.frames[seen]
                seen += 1
                if predicate(f):
                    return f
            left = deadline - time.monotonic()
            if self.eof or left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(1 << 16)
            except socket.timeout:
                return None
            except ConnectionResetError:
                data = b""
            if not data:
                self.eof = True
                continue
            self.buf += data
            while len(self.buf) >= 9:
                length = int.from_bytes(self.buf[:3], "big")
                if len(self.buf) < 9 + length:
                    break
                ftype, flags = self.buf[3], self.buf[4]
                sid = int.from_bytes(self.buf[5:9], "big") & 0x7FFFFFFF
                self.frames.append((ftype, flags, sid, self.buf[9:9 + length]))
                if self.answer_pings and ftype == PING and not flags & ACK:
                    self.send(frame(PING, ACK, 0, self.buf[9:9 + length]))
                self.buf = self.buf[9 + length:]

    def goaway(self, timeout=5):
        """(last_stream_id, error_code) of the server's GOAWAY, or None."""
        f = self.read_until(lambda f: f[0] == GOAWAY, timeout)
        if f is None:
            return None
        last, code = struct.unpack(">II", f[3][:8])
        return last & 0x7FFFFFFF, code

    def closed_by_server(self, timeout=5):
        self.read_until(lambda f: False, timeout)
        return self.eof


def rst_code(f):
    return struct.unpack(">I", f[3][:4])[0]


# --- the basics with real clients -----------------------------------------------


def test_curl_get_and_post(fk):
    status, version, headers, body = curl_h2(fk, "/hello")
    assert (status, version, body) == (200, "2", b"hello\n")
    assert headers["content-type"].startswith("text/plain")
    payload = os.urandom(300_000)
    path = os.path.join(fk.tmpdir, "post.bin")
    with open(path, "wb") as f:
        f.write(payload)
    status, version, headers, body = curl_h2(
        fk, "/echo", "--data-binary", "@" + path, "-H", "content-type: application/x-test")
    assert (status, version) == (200, "2")
    assert headers["x-echo-method"] == "POST"
    assert headers["x-echo-length"] == str(len(payload))
    assert body == payload


def test_large_download_through_small_windows(fk):
    n = 5_000_000
    status, version, _, body = curl_h2(fk, "/bytes?n=%d" % n)
    assert (status, version, len(body)) == (200, "2", n)
    assert body == app_bytes(n)
    # nghttp with a 16 KiB stream window and a 64 KiB connection window.
    out_path = os.path.join(fk.tmpdir, "nghttp.out")
    with open(out_path, "wb") as out:
        p = subprocess.run(["nghttp", "-w", "14", "-W", "16", fk.url("/bytes?n=%d" % n)],
                           stdout=out, stderr=subprocess.PIPE, timeout=60)
    assert p.returncode == 0, p.stderr
    assert os.path.getsize(out_path) == n
    with open(out_path, "rb") as f:
        assert f.read() == app_bytes(n)


def test_download_respects_the_client_window(fk):
    """With 16 KiB of window and no WINDOW_UPDATE, forkd sends 16 KiB, no more."""
    c = H2Client(fk.port, window=16384, auto_ack=False)
    try:
        sid = c.request("/bytes?n=1000000")
        r = c.responses[sid]
        c.wait(lambda: len(r["body"]) >= 16384, 10, "the first window")
        end = time.monotonic() + 0.5
        while time.monotonic() < end:
            c.pump(0.1)
        assert len(r["body"]) == 16384 and not r["ended"]
        while not r["ended"]:  # reopen the windows as we read
            c.ack(sid)
            c.pump(0.2)
            assert not c.closed
        assert bytes(r["body"]) == app_bytes(1000000)
    finally:
        c.close()


def test_streamed_response_arrives_as_it_is_produced(fk):
    c = H2Client(fk.port)
    try:
        r = c.get("/stream?chunks=5&interval_ms=150&size=100", timeout=10)
        assert r["status"] == 200 and r["ended"] and len(r["body"]) == 500
        # The first chunk is delivered long before the last one is produced.
        assert r["data_at"][-1] - r["data_at"][0] >= 0.4, r["data_at"]
    finally:
        c.close()
    status, version, _, body = curl_h2(fk, "/stream?chunks=3&interval_ms=10&size=7")
    assert (status, version, len(body)) == (200, "2", 21)


def test_nghttp_concurrent_streams(fk):
    code, out = run_tool(["nghttp", "-n", "-s", "-m", "30", fk.url("/hello")])
    assert code == 0, out
    rows = [line.split() for line in out.splitlines() if "/hello" in line]
    assert len(rows) == 30, out
    assert all(row[4] == "200" for row in rows), out


def test_h2load_all_succeed(fk):
    r = h2load(fk.url("/hello"), n=3000, c=4, m=10)
    assert (r["ok"], r["failed"], r["errored"], r["timeout"]) == (3000, 0, 0, 0), r["output"]


def test_streams_of_one_connection_reach_the_app_in_parallel(fk):
    skip_for_sync(fk, "streams reach the app one at a time")
    # 20 x 300 ms one after another would take 6 s.
    start = time.monotonic()
    code, out = run_tool(["nghttp", "-n", "-s", "-m", "20", fk.url("/sleep?ms=300")])
    elapsed = time.monotonic() - start
    assert code == 0, out
    rows = [line.split() for line in out.splitlines() if "/sleep" in line]
    assert len(rows) == 20 and all(row[4] == "200" for row in rows), out
    assert elapsed < 3.0, "20 streams of 300 ms took %.2fs: not concurrent" % elapsed


def test_http1_and_http2_clients_at_once_on_one_port(fk):
    load = LoadGenerator(fk.url("/hello"), threads=3, duration=3, timeout=10)
    load.start()
    try:
        r = h2load(fk.url("/hello"), n=2000, c=2, m=8)
        code, out, err = curl("--http2", "-w", "%{http_version}", fk.url("/hello"))
    finally:
        summary = load.wait()
    assert r["ok"] == 2000 and r["failed"] == 0 and r["errored"] == 0, r["output"]
    assert (code, out) == (0, b"hello\n2"), err
    assert summary.failed == 0 and summary.ok > 10, summary


def test_forwarding_headers_and_request_id_reach_the_app(fk):
    status, _, headers, _ = curl_h2(fk, "/echo", "-H", "x-request-id: h2-abc-123",
                                    "-H", "x-forwarded-for: 10.9.9.9",
                                    "-H", "x-forwarded-proto: https")
    assert status == 200
    assert headers["x-seen-x-request-id"] == "h2-abc-123"
    # No --forwarded-allow-ips: the client's claims are replaced.
    assert headers["x-seen-x-forwarded-for"] == "127.0.0.1"
    assert headers["x-seen-x-forwarded-proto"] == "http"
    assert headers["x-seen-x-forwarded-host"] == "127.0.0.1:%d" % fk.port
    assert headers["x-seen-host"] == "127.0.0.1:%d" % fk.port
    status, _, headers, _ = curl_h2(fk, "/echo")
    assert re.fullmatch(r"[0-9a-f]{32}", headers["x-seen-x-request-id"]), headers


@pytest.mark.parametrize("worker_class", list(CLASS_ARGS))
def test_request_body_is_streamed_and_flow_controlled(tmp_path, worker_class):
    """A 16 MB upload to an app that has not read yet: forkd takes a bounded
    part of it (its window never reopens past its buffers), and the app gets
    every byte once it reads."""
    sock_dir = forkd_harness.short_tmpdir("fkb")
    path = os.path.join(sock_dir, "hold.sock")
    release = threading.Event()
    head_seen = threading.Event()
    got = {}
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(8)
    listener.settimeout(30)

    def serve(conn):
        with conn:
            conn.settimeout(30)
            data = b""
            while b"\r\n\r\n" not in data:
                piece = conn.recv(65536)
                if not piece:
                    return
                data += piece
            head, _, body = data.partition(b"\r\n\r\n")
            head = head.decode("latin-1")
            if not head.startswith("POST /upload "):  # forkd's start-up check
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                return
            got["head"] = head
            head_seen.set()
            release.wait(30)
            length = int(re.search(r"(?im)^content-length: *(\d+)", head).group(1))
            received = len(body)
            while received < length:
                piece = conn.recv(1 << 20)
                if not piece:
                    break
                received += len(piece)
            got["received"] = received
            answer = b"%d" % received
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(answer), answer))

    def holding_app():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    t = threading.Thread(target=holding_app, daemon=True)
    t.start()
    f = Forkd("unix:" + path, CLASS_ARGS[worker_class] + [
        "--request-buffer", "65536", "--app-health-interval", "0"])
    f.start()
    total = 16 << 20
    c = H2Client(f.port)
    try:
        sid = c.request("/upload", method="POST",
                        headers=[("content-length", str(total))], end_stream=False)
        sent = 0
        chunk = b"u" * 16384
        progress = []  # (time, bytes sent)
        deadline = time.monotonic() + 60
        released_at = None
        while sent < total:
            assert time.monotonic() < deadline, "upload stalled at %d bytes" % sent
            window = min(c.conn.local_flow_control_window(sid), c.conn.max_outbound_frame_size)
            if window > 0:
                n = min(window, total - sent)
                c.conn.send_data(sid, chunk[:n] if n <= len(chunk) else b"u" * n)
                c.flush()
                sent += n
                progress.append((time.monotonic(), sent))
                continue
            c.pump(0.1)
            if released_at is None and head_seen.is_set():
                stuck_since = progress[-1][0] if progress else time.monotonic()
                if time.monotonic() - stuck_since >= 1.0:
                    # forkd stopped opening the window while the app waits.
                    held = sent
                    release.set()
                    released_at = time.monotonic()
        c.conn.end_stream(sid)
        c.flush()
        c.wait(lambda: c.responses[sid]["ended"], 30, "the upload's answer")
        assert released_at is not None, "forkd took the whole body before the app read"
        # Bounded by the buffers (64 KiB request buffer, socket buffers and
        # the 64 KiB stream window), far below the body.
        assert held < 4 << 20, held
        assert head_seen.is_set() and "content-length: %d" % total in got["head"].lower()
        assert c.responses[sid]["status"] == 200
        assert bytes(c.responses[sid]["body"]) == b"%d" % total
        assert got["received"] == total
    finally:
        release.set()
        c.close()
        f.cleanup()
        listener.close()
        shutil.rmtree(sock_dir, ignore_errors=True)


@pytest.mark.parametrize("worker_class", list(CLASS_ARGS))
def test_empty_answer_then_app_close_is_delivered(tmp_short, worker_class):
    """An app that closes right after an empty answer (204, Content-Length:
    0): the answer is complete, not "closed mid-response"."""
    path = os.path.join(tmp_short, "close.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(16)

    def serve():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    piece = conn.recv(65536)
                    if not piece:
                        break
                    data += piece
                if data.startswith(b"GET /empty"):
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n"
                                 b"Connection: close\r\n\r\n")
                else:
                    conn.sendall(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")

    threading.Thread(target=serve, daemon=True).start()
    f = Forkd("unix:" + path, CLASS_ARGS[worker_class] + ["--app-health-interval", "0"])
    f.start()
    try:
        for _ in range(5):
            assert http_get(f.port, "/empty", timeout=5)[:3:2] == (200, b"")
            assert http_get(f.port, "/nothing", timeout=5)[0] == 204
            c = H2Client(f.port)
            try:
                r = c.get("/empty")
                assert (r["status"], r["ended"], r["reset"], bytes(r["body"])) == (200, True, None, b"")
                if worker_class == "sync":
                    # It said GOAWAY once idle: the next stream goes on a
                    # new connection.
                    c.close()
                    c = H2Client(f.port)
                assert c.get("/nothing")["status"] == 204
            finally:
                c.close()
        assert "mid-response" not in f.log(), f.log()
    finally:
        f.cleanup()
        listener.close()


def test_app_failures_are_http2_answers(tight):
    c = H2Client(tight.port)
    try:
        r = c.get("/close", timeout=10)
        assert r["status"] == 502 and r["ended"], r
        r = c.get("/sleep?ms=3000", timeout=10)
        assert r["status"] == 504 and r["ended"], r
        # Two requests in flight is the cap; the others get 503.
        # 400 ms: well inside the 1 s upstream timeout on a loaded machine.
        sids = [c.request("/sleep?ms=400") for _ in range(5)]
        c.wait(lambda: all(c.responses[s]["ended"] for s in sids), 15, "five answers")
        statuses = sorted(c.responses[s]["status"] for s in sids)
        assert statuses.count(200) == 2 and statuses.count(503) == 3, statuses
        # The connection is still good.
        assert c.get("/hello")["status"] == 200
    finally:
        c.close()
    no_app = Forkd(None, ASYNC)
    no_app.start()
    try:
        status, version, _, body = curl_h2(no_app, "/hello")
        assert (status, version) == (502, "2"), body
    finally:
        no_app.cleanup()


def quiet_metrics(port):
    return metrics_util.quiet(port, keys=("forkd_request_duration_seconds_count",
                                          "forkd_http2_connections_total"))


def test_access_log_and_metrics_count_http2(fk):
    before = quiet_metrics(fk.metrics_port)
    tag = "h2tag%d" % time.monotonic_ns()
    for _ in range(3):
        assert curl_h2(fk, "/hello?" + tag)[0] == 200
    assert http_get(fk.port, "/hello?" + tag + "h1")[0] == 200
    r = h2load(fk.url("/hello"), n=50, c=1, m=5)
    assert r["ok"] == 50

    def log_lines():
        with open(fk.access_log_path) as f:
            return [line for line in f if tag in line]
    lines = wait_until(lambda: len(log_lines()) == 4 and log_lines(), 5, what="access log lines")
    assert sum('"GET /hello?%s HTTP/2.0" 200 6' % tag in line for line in lines) == 3, lines
    assert sum('"GET /hello?%sh1 HTTP/1.1" 200 6' % tag in line for line in lines) == 1, lines

    def delta(m, name, **labels):
        return metrics_util.value(m, name, **labels) - metrics_util.value(before, name, **labels)

    def settled():
        m = metrics_util.metrics(fk.metrics_port)
        return m if delta(m, "forkd_requests_by_protocol_total", protocol="http2",
                          status_class="2xx") >= 53 else None
    m = wait_until(settled, 5, what="metrics")
    assert delta(m, "forkd_requests_by_protocol_total", protocol="http2", status_class="2xx") == 53
    assert delta(m, "forkd_requests_by_protocol_total", protocol="http1", status_class="2xx") == 1
    assert delta(m, "forkd_requests_total", method="GET", status_class="2xx") == 54
    assert delta(m, "forkd_http2_connections_total") == 4
    assert delta(m, "forkd_http2_streams_total") == 53
    assert delta(m, "forkd_http2_goaways_sent_total", error_code="ENHANCE_YOUR_CALM") == 0
    # An open HTTP/2 connection counts as a client connection (idle here).
    c = H2Client(fk.port)
    try:
        c.pump(0.2)
        wait_until(lambda: metrics_util.value(metrics_util.metrics(fk.metrics_port),
                                              "forkd_client_connections", state="idle") >= 1,
                   5, what="the HTTP/2 connection in forkd_client_connections")
    finally:
        c.close()
    if shutil.which("promtool"):
        p = subprocess.run(["promtool", "check", "metrics"], capture_output=True, timeout=30,
                           input=metrics_util.scrape(fk.metrics_port).encode())
        assert p.returncode == 0, p.stdout + p.stderr


# --- Upgrade: h2c -----------------------------------------------------------------


def test_upgrade_h2c_with_curl_and_nghttp(fk):
    code, out, err = curl("--http2", "-w", "\n%{http_version}", fk.url("/hello?upgraded"))
    assert (code, out) == (0, b"hello\n\n2"), err
    code, out, err = curl("--http2", "-I", fk.url("/bytes?n=1234"))
    assert code == 0 and b"HTTP/2 200" in out and b"content-length: 1234" in out, out
    code, out = run_tool(["nghttp", "-u", "-v", fk.url("/hello")])
    assert code == 0 and "HTTP/1.1 101 Switching Protocols" in out, out
    assert ":status: 200" in out and "hello" in out, out
    # More streams go on the upgraded connection, concurrently.
    code, out = run_tool(["nghttp", "-u", "-n", "-s", "-m", "5", fk.url("/sleep?ms=200")])
    rows = [line.split() for line in out.splitlines() if "/sleep" in line]
    assert code == 0 and len(rows) == 5 and all(r[4] == "200" for r in rows), out
    with open(fk.access_log_path) as f:
        assert any('"GET /hello?upgraded HTTP/2.0" 200' in line for line in f)


def upgrade_request(settings_headers, body=b"", extra=b""):
    head = (b"POST /echo HTTP/1.1\r\n" if body else b"GET /hello HTTP/1.1\r\n")
    head += b"Host: t\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n" + extra
    for value in settings_headers:
        head += b"HTTP2-Settings: " + value + b"\r\n"
    if body:
        head += b"Content-Length: %d\r\n" % len(body)
    return head + b"Connection: close\r\n\r\n" + body


def settings_field(*pairs):
    payload = b"".join(struct.pack(">HI", k, v) for k, v in pairs)
    return base64.urlsafe_b64encode(payload).rstrip(b"=")


def test_upgrade_serves_the_request_as_stream_1(fk):
    sock = socket.create_connection(("127.0.0.1", fk.port), timeout=5)
    with sock:
        sock.sendall(upgrade_request([settings_field((0x3, 100), (0x4, 65535))]))
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(4096)
        head, _, rest = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101 "), head
        assert b"upgrade: h2c" in head.lower()
        config = h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        conn = h2_connection.H2Connection(config=config)
        conn.initiate_upgrade_connection()
        sock.sendall(conn.data_to_send())
        events = conn.receive_data(rest)
        body, status, ended = b"", None, False
        deadline = time.monotonic() + 5
        while not ended and time.monotonic() < deadline:
            for ev in events:
                if isinstance(ev, h2.events.ResponseReceived) and ev.stream_id == 1:
                    status = dict(ev.headers)[":status"]
                elif isinstance(ev, h2.events.DataReceived) and ev.stream_id == 1:
                    body += ev.data
                elif isinstance(ev, h2.events.StreamEnded) and ev.stream_id == 1:
                    ended = True
            sock.sendall(conn.data_to_send())
            if not ended:
                events = conn.receive_data(sock.recv(65536))
        assert (status, body, ended) == ("200", b"hello\n", True)


@pytest.mark.parametrize("request_bytes", [
    # A body: served in HTTP/1.1 as if no upgrade was asked.
    upgrade_request([settings_field((0x3, 100))], body=b"ping"),
    # Settings that are not valid: ENABLE_PUSH 2, MAX_FRAME_SIZE 100, not base64url.
    upgrade_request([settings_field((0x2, 2))]),
    upgrade_request([settings_field((0x5, 100))]),
    upgrade_request([b"!!not-base64!!"]),
    # Two HTTP2-Settings fields, or none.
    upgrade_request([settings_field((0x3, 100)), settings_field((0x3, 100))]),
    upgrade_request([]),
], ids=["body", "enable-push-2", "tiny-frames", "not-base64", "two-fields", "no-field"])
def test_upgrade_refused_serves_http1(fk, request_bytes):
    reply = forkd_harness.raw_request(fk.port, request_bytes, timeout=5)
    assert reply.startswith(b"HTTP/1.1 200 "), reply[:200]
    assert b"101" not in reply.split(b"\r\n", 1)[0]
    expected = b"ping" if b"POST" in request_bytes[:5] else b"hello\n"
    assert reply.endswith(expected), reply[-200:]


def test_upgrade_h2c_is_ignored_over_tls(app, tmp_short):
    """h2c is cleartext HTTP/2: over TLS the request is served in HTTP/1.1."""
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", "key.pem", "-out",
                    "cert.pem", "-days", "1", "-subj", "/CN=127.0.0.1"],
                   cwd=tmp_short, check=True, capture_output=True, timeout=30)
    f = Forkd(app, ASYNC + ["--certfile", os.path.join(tmp_short, "cert.pem"),
                            "--keyfile", os.path.join(tmp_short, "key.pem")], wait_ready=False)
    f.start()
    try:
        import ssl
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE

        def answer():
            raw = socket.create_connection(("127.0.0.1", f.port), timeout=5)
            with ctx.wrap_socket(raw) as tls:
                tls.sendall(upgrade_request([settings_field((0x3, 100))]))
                data = b""
                while True:
                    piece = tls.recv(65536)
                    if not piece:
                        return data
                    data += piece
        reply = wait_until(answer, 20, what="forkd over TLS")
        assert reply.startswith(b"HTTP/1.1 200 "), reply[:200]
        assert reply.endswith(b"hello\n")
    finally:
        f.cleanup()


# --- bad peers ----------------------------------------------------------------------


def abuse_delta(fk, before, kind):
    """How much forkd_http2_abuse_total{kind} grew since `before` (> 0)."""
    def moved():
        m = metrics_util.metrics(fk.metrics_port)
        v = (metrics_util.value(m, "forkd_http2_abuse_total", kind=kind)
             - metrics_util.value(before, "forkd_http2_abuse_total", kind=kind))
        return v if v > 0 else None
    return wait_until(moved, 5, what="forkd_http2_abuse_total{kind=%s}" % kind)


def test_rapid_reset_ends_in_goaway_enhance_your_calm(fk):
    worker = the_worker(fk)
    before = metrics_util.metrics(fk.metrics_port)
    p = RawPeer(fk.port)
    try:
        burst = b""
        for i in range(300):
            sid = 1 + 2 * i
            burst += frame(HEADERS, END_STREAM | END_HEADERS, sid, p.request_block("/hello"))
            burst += frame(RST_STREAM, 0, sid, struct.pack(">I", CANCEL))
        p.send(burst)
        assert p.goaway()[1] == ENHANCE_YOUR_CALM
        assert p.closed_by_server()
    finally:
        p.close()
    assert abuse_delta(fk, before, "rapid_reset") == 1
    served_by_same_worker(fk, worker)


@pytest.mark.parametrize("flood", ["ping", "settings"])
def test_ping_and_settings_floods_end_in_goaway(fk, flood):
    worker = the_worker(fk)
    before = metrics_util.metrics(fk.metrics_port)
    p = RawPeer(fk.port)
    try:
        if flood == "ping":
            p.send(b"".join(frame(PING, 0, 0, struct.pack(">Q", i)) for i in range(500)))
        else:
            p.send(frame(SETTINGS, 0, 0, struct.pack(">HI", 0x3, 50)) * 500)
        assert p.goaway()[1] == ENHANCE_YOUR_CALM
        assert p.closed_by_server()
    finally:
        p.close()
    assert abuse_delta(fk, before, flood + "_flood") == 1
    served_by_same_worker(fk, worker)


def test_continuation_flood_ends_in_goaway(fk):
    worker = the_worker(fk)
    before = metrics_util.metrics(fk.metrics_port)
    p = RawPeer(fk.port)
    try:
        block = p.request_block("/hello", [("x-pad-%d" % i, "v" * 20) for i in range(20)])
        pieces = [block[i:i + 8] for i in range(0, len(block), 8)]
        assert len(pieces) > 20
        data = frame(HEADERS, END_STREAM, 1, pieces[0])
        for piece in pieces[1:-1]:
            data += frame(CONTINUATION, 0, 1, piece)
        data += frame(CONTINUATION, END_HEADERS, 1, pieces[-1])
        p.send(data)
        assert p.goaway()[1] == ENHANCE_YOUR_CALM
        assert p.closed_by_server()
    finally:
        p.close()
    assert abuse_delta(fk, before, "continuation_flood") == 1
    served_by_same_worker(fk, worker)


def test_header_list_bomb_is_refused_with_431(fk):
    """One 4 KB field in the HPACK table, referenced by one byte 1000 times:
    4 MB of header list from 1 KB on the wire."""
    worker = the_worker(fk)
    before = metrics_util.metrics(fk.metrics_port)
    p = RawPeer(fk.port)
    try:
        block = p.request_block("/hello")
        # Literal with incremental indexing, new name: "x-bomb: <4000 bytes>".
        name, value = b"x-bomb", b"b" * 4000
        block += b"\x40" + bytes([len(name)]) + name + b"\x7f" + hpack_int(len(value) - 127) + value
        block += b"\xbe" * 1000  # indexed field 62: the newest table entry
        p.send(frame(HEADERS, END_STREAM | END_HEADERS, 1, block))
        head = p.read_until(lambda f: f[0] == HEADERS and f[2] == 1)
        assert head is not None, p.frames
        status = hpack.Decoder().decode(head[3])
        assert (":status", "431") in status, status
        # The connection lives on: the next stream is served. (A fresh
        # encoder: the server's table holds the bomb, ours does not.)
        p.send(frame(HEADERS, END_STREAM | END_HEADERS, 3, hpack.Encoder().encode(
            [(":method", "GET"), (":scheme", "http"), (":authority", "127.0.0.1"),
             (":path", "/hello")])))
        nxt = p.read_until(lambda f: f[0] in (HEADERS, RST_STREAM, GOAWAY) and f[2] in (0, 3))
        assert nxt is not None and nxt[0] == HEADERS and nxt[2] == 3, p.frames[-3:]
    finally:
        p.close()
    assert abuse_delta(fk, before, "header_list_too_large") == 1
    served_by_same_worker(fk, worker)


def hpack_int(n):
    """The continuation bytes of an HPACK integer after a full prefix."""
    out = b""
    while n >= 128:
        out += bytes([(n % 128) + 128])
        n //= 128
    return out + bytes([n])


def test_window_update_overflows(fk):
    worker = the_worker(fk)
    # The connection window past 2^31-1: GOAWAY(FLOW_CONTROL_ERROR).
    p = RawPeer(fk.port)
    try:
        p.send(frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 0x7FFFFFFF)))
        assert p.goaway()[1] == FLOW_CONTROL_ERROR
        assert p.closed_by_server()
    finally:
        p.close()
    # A stream's window past 2^31-1: RST_STREAM(FLOW_CONTROL_ERROR) for it,
    # and the connection goes on.
    p = RawPeer(fk.port)
    try:
        p.send(frame(HEADERS, END_STREAM | END_HEADERS, 1, p.request_block("/sleep?ms=300")))
        p.send(frame(WINDOW_UPDATE, 0, 1, struct.pack(">I", 0x7FFFFFFF)))
        rst = p.read_until(lambda f: f[0] in (RST_STREAM, GOAWAY))
        assert rst is not None and rst[0] == RST_STREAM and rst[2] == 1, p.frames
        assert rst_code(rst) == FLOW_CONTROL_ERROR
        p.send(frame(HEADERS, END_STREAM | END_HEADERS, 3, p.request_block("/hello")))
        ok = p.read_until(lambda f: f[0] == HEADERS and f[2] == 3)
        assert ok is not None and (":status", "200") in hpack.Decoder().decode(ok[3])
    finally:
        p.close()
    served_by_same_worker(fk, worker)


def test_garbage_after_the_preface_ends_only_that_connection(fk):
    worker = the_worker(fk)
    p = RawPeer(fk.port)
    try:
        p.send(b"\x00\x00\x04\xff\x00\x00\x00\x00\x00" + b"junk" + b"GET / HTTP/1.1\r\n\r\n" * 3)
        p.closed_by_server()
    finally:
        p.close()
    served_by_same_worker(fk, worker)


# --- graceful close -----------------------------------------------------------------


@pytest.mark.parametrize("worker_class", list(CLASS_ARGS))
@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGTERM], ids=["HUP", "TERM"])
def test_open_stream_finishes_across_a_graceful_stop(app, sig, worker_class):
    f = Forkd(app, CLASS_ARGS[worker_class] + ["--graceful-timeout", "20"])
    f.start()
    try:
        old = f.wait_workers(1)
        p = RawPeer(f.port, answer_pings=True)
        p.send(frame(HEADERS, END_STREAM | END_HEADERS, 1, p.request_block("/sleep?ms=1500")))
        time.sleep(0.4)  # the slow request reaches the app
        f.signal(sig)
        # GOAWAY(NO_ERROR) at once (last stream 2^31-1, then a PING round
        # trip), while the stream is still at the app.
        first = p.read_until(lambda fr: fr[0] == GOAWAY, 5)
        assert first is not None, p.frames
        assert struct.unpack(">II", first[3][:8])[1] == NO_ERROR
        assert not any(fr[0] == DATA for fr in p.frames)
        # The stream finishes: 200 and its body.
        end = p.read_until(lambda fr: fr[0] == DATA and fr[2] == 1 and fr[1] & END_STREAM, 10)
        assert end is not None, p.frames
        head = next(fr for fr in p.frames if fr[0] == HEADERS and fr[2] == 1)
        assert (":status", "200") in hpack.Decoder().decode(head[3])
        body = b"".join(fr[3] for fr in p.frames if fr[0] == DATA and fr[2] == 1)
        assert body.startswith(b"pid=")
        # The final GOAWAY names stream 1 as the last one served; then the
        # server closes the connection.
        goaways = [struct.unpack(">II", fr[3][:8]) for fr in p.frames if fr[0] == GOAWAY]
        if len(goaways) < 2:
            p.read_until(lambda fr: fr[0] == GOAWAY and fr is not first, 5)
            goaways = [struct.unpack(">II", fr[3][:8]) for fr in p.frames if fr[0] == GOAWAY]
        assert goaways == [(0x7FFFFFFF, NO_ERROR), (1, NO_ERROR)], goaways
        assert not any(fr[0] == RST_STREAM for fr in p.frames), p.frames
        assert p.closed_by_server(5)
        p.close()
        if sig == signal.SIGHUP:
            # New streams go on a new connection, served by the new worker.
            new = wait_until(lambda: (lambda w: w if len(w) == 1 and w != old else None)(
                f.worker_pids()), 20, what="the old worker to leave")
            c = H2Client(f.port)
            try:
                assert c.get("/hello")["status"] == 200
            finally:
                c.close()
            assert f.worker_pids() == new
        else:
            assert f.proc.wait(timeout=20) == 0
    finally:
        f.cleanup()
