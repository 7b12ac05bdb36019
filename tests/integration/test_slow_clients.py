"""Slow clients (slowloris) cost a connection slot for a bounded time, never
a thread and never forever (issue 13, item 2): --client-header-timeout,
--client-body-timeout and their HTTP/2 equivalents, in every worker class.
Each timeout answers 408 (HTTP/2: GOAWAY or RST_STREAM), writes one log
line and moves forkd_client_timeouts_total{phase}."""

import socket
import struct
import threading
import time

import pytest

import metrics_util
from forkd_harness import free_port, http_get, wait_until
from proxy_fixtures import CLASS_ARGS, CLASSES, LogMark, Started, app  # noqa: F401

TIMEOUT = 2  # seconds, both timeouts
CONNS = 2    # --worker-connections


@pytest.fixture(scope="module", params=CLASSES)
def server(request, app):  # noqa: F811
    started = Started()
    mport = free_port()
    try:
        fk = started.forkd(app, ["--workers", "1", "--worker-connections", str(CONNS),
                                 "--client-header-timeout", str(TIMEOUT),
                                 "--client-body-timeout", str(TIMEOUT),
                                 "--metrics-bind", "127.0.0.1:%d" % mport]
                           + CLASS_ARGS[request.param])
        fk.metrics_port = mport
        fk.worker_class = request.param
        yield fk
    finally:
        started.stop()


def timeouts(fk, phase):
    return metrics_util.value(metrics_util.metrics(fk.metrics_port),
                              "forkd_client_timeouts_total", phase=phase)


def wait_timeouts(fk, phase, want):
    """The counter once it reached want (the master reads the slots)."""
    try:
        return wait_until(lambda: timeouts(fk, phase) >= want and timeouts(fk, phase), 5,
                          what="forkd_client_timeouts_total{phase=%s} >= %d" % (phase, want))
    except TimeoutError:
        return timeouts(fk, phase)


class Trickler(threading.Thread):
    """Sends `first`, then one byte per `every` seconds, until the server
    closes or `limit` seconds pass; keeps what the server sent."""

    def __init__(self, port, first, every=0.5, limit=4 * TIMEOUT + 4):
        super().__init__(daemon=True)
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=limit)
        self.first, self.every, self.limit = first, every, limit
        self.got = b""
        self.closed_at = None
        self.start()

    def run(self):
        start = time.monotonic()
        try:
            self.sock.sendall(self.first)
            self.sock.settimeout(self.every)
            while time.monotonic() - start < self.limit:
                try:
                    piece = self.sock.recv(4096)
                    if not piece:
                        self.closed_at = time.monotonic() - start
                        return
                    self.got += piece
                except socket.timeout:
                    self.sock.sendall(b"a")
        except OSError:
            self.closed_at = time.monotonic() - start
        finally:
            self.sock.close()


def test_trickled_heads_get_408_and_normal_clients_are_served(server):
    fk = server
    mark = LogMark(fk)
    before = timeouts(fk, "header")
    slow = [Trickler(fk.port, b"GET / HTTP/1.1\r\nHost: x\r\nX-Long: ") for _ in range(2 * CONNS)]
    # A normal client keeps asking; while the slow ones hold every slot it
    # waits in the listen backlog, and is served once they time out.
    statuses = []
    end = time.monotonic() + 2 * TIMEOUT + 1
    while time.monotonic() < end:
        statuses.append(http_get(fk.port, "/", timeout=4 * TIMEOUT)[0])
        time.sleep(0.2)
    for t in slow:
        t.join(4 * TIMEOUT + 5)
    assert statuses and set(statuses) == {200}, statuses
    for t in slow:
        assert t.got.startswith(b"HTTP/1.1 408 "), t.got[:100]
        assert b"client-header-timeout" in t.got
        assert t.closed_at is not None, "slow connection left open"
    lines = mark.wait_for("408 for")
    assert len(lines) == 2 * CONNS, lines
    assert wait_timeouts(fk, "header", before + 2 * CONNS) - before == 2 * CONNS


def test_stalled_body_gets_408(server):
    fk = server
    mark = LogMark(fk)
    before = timeouts(fk, "body")
    s = socket.create_connection(("127.0.0.1", fk.port), timeout=4 * TIMEOUT)
    s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
    got = b""
    start = time.monotonic()
    while True:
        piece = s.recv(4096)
        if not piece:
            break
        got += piece
    waited = time.monotonic() - start
    s.close()
    assert got.startswith(b"HTTP/1.1 408 "), got
    assert b"client-body-timeout" in got
    assert waited >= TIMEOUT * 0.9, waited
    assert len(mark.wait_for("client-body-timeout")) == 1
    assert wait_timeouts(fk, "body", before + 1) - before == 1
    assert http_get(fk.port, "/")[0] == 200


# --- HTTP/2 -----------------------------------------------------------------------------

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def frame(ftype, flags, stream_id, payload=b""):
    return (struct.pack(">I", len(payload))[1:] + bytes([ftype, flags])
            + struct.pack(">I", stream_id) + payload)


def read_frames(sock, limit):
    """Frames (type, flags, stream, payload) until the server closes."""
    sock.settimeout(limit)
    buf = b""
    try:
        while True:
            piece = sock.recv(65536)
            if not piece:
                break
            buf += piece
    except (socket.timeout, ConnectionResetError):
        pass
    frames = []
    while len(buf) >= 9:
        n = int.from_bytes(buf[:3], "big")
        frames.append((buf[3], buf[4], int.from_bytes(buf[5:9], "big") & 0x7FFFFFFF,
                       buf[9:9 + n]))
        buf = buf[9 + n:]
    return frames


# A request head for stream 1 (HPACK: static table indexes, literal authority).
HEADERS_BLOCK = bytes([0x82, 0x86, 0x84, 0x41, 0x01, 0x78])  # GET http / host "x"


@pytest.mark.parametrize("case", ["no-settings", "open-header-block", "stalled-body"])
def test_http2_slow_clients(server, case):
    fk = server
    mark = LogMark(fk)
    before = timeouts(fk, "h2")
    s = socket.create_connection(("127.0.0.1", fk.port))
    if case == "no-settings":
        s.sendall(PREFACE)
    elif case == "open-header-block":  # HEADERS without END_HEADERS, no CONTINUATION
        s.sendall(PREFACE + frame(0x4, 0, 0) + frame(0x1, 0x1, 1, HEADERS_BLOCK))
    else:  # HEADERS without END_STREAM, then no DATA
        s.sendall(PREFACE + frame(0x4, 0, 0) + frame(0x1, 0x4, 1, HEADERS_BLOCK))
    if case == "stalled-body":
        # The stream is reset; the connection stays (read until the reset).
        deadline = time.monotonic() + 4 * TIMEOUT
        buf = b""
        s.settimeout(0.5)
        while b"\x03\x00\x00\x00\x00\x01" not in buf and time.monotonic() < deadline:
            try:
                buf += s.recv(65536)
            except socket.timeout:
                pass
        # RST_STREAM(CANCEL) on stream 1: type 3, flags 0, stream 1, code 8.
        assert b"\x00\x00\x04\x03\x00\x00\x00\x00\x01\x00\x00\x00\x08" in buf, buf
        line = "RST_STREAM"
    else:
        frames = read_frames(s, 4 * TIMEOUT)
        goaways = [f for f in frames if f[0] == 0x7]
        assert goaways, frames
        assert struct.unpack(">I", goaways[0][3][4:8])[0] == 0x1  # PROTOCOL_ERROR
        line = "GOAWAY"
    s.close()
    assert len(mark.wait_for(line)) == 1
    assert wait_timeouts(fk, "h2", before + 1) - before == 1
    assert http_get(fk.port, "/")[0] == 200
