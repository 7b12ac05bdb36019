"""Every answer forkd gives before it closes a connection reaches the client
(issue 13, item 1).

The client here is the one that lost answers: it sends the whole bad request
in one write, with more bytes behind the bad part (a body, junk) that forkd
never reads, optionally half-closes, waits, and only then reads. Closing a
socket with unread bytes makes the kernel send a reset, and a reset that
arrives before the client read the answer destroys it; forkd's lingering
close (server/proxy/lingering_close.h) must prevent that on every path, in
every worker class: parse errors, the limits (414, 431, 413 before the
body), 501, 505, 503 while draining or over the cap, TLS (a bad request in
TLS, plain HTTP to the TLS port) and HTTP/2 (GOAWAY).

Each case is tried FORKD_ANSWER_TRIES times (default 100): every try must
read the whole answer. `FORKD_ANSWER_TRIES=1000` is the manual run.
"""

import os
import socket
import ssl
import struct
import time

import pytest

import admin_client
from forkd_harness import free_port, http_get, wait_until
from proxy_fixtures import CLASS_ARGS, CLASSES, Started, app  # noqa: F401
from test_tls import certs, start_tls  # noqa: F401

TRIES = int(os.environ.get("FORKD_ANSWER_TRIES", "100"))
# Unread input behind the bad part: more than forkd reads at once (16 KiB),
# less than the socket buffers hold, so the write never waits for forkd.
JUNK = b"j" * (64 * 1024)
PAUSE = 0.005  # between the write and the first read: forkd answers meanwhile
H = b"Host: test.local\r\n"


def req(line, *fields, body=b""):
    return line + b"\r\n" + H + b"".join(f + b"\r\n" for f in fields) + b"\r\n" + body


# (id, request bytes (JUNK follows), status, what the body names)
CASES = [
    ("chunk-size-0x5",
     req(b"POST /echo HTTP/1.1", b"Transfer-Encoding: chunked", body=b"0x5\r\nhello\r\n0\r\n\r\n"),
     400, b"chunk"),
    ("chunk-size-overflow",
     req(b"POST /echo HTTP/1.1", b"Transfer-Encoding: chunked",
         body=b"FFFFFFFFFFFFFFFFF1\r\nhello\r\n0\r\n\r\n"),
     400, b"chunk"),
    ("obs-fold", req(b"GET / HTTP/1.1", b"X-Folded: a", b"  b"), 400, b"obs-fold"),
    ("request-line-too-long", req(b"GET /" + b"a" * 5000 + b" HTTP/1.1"), 414, b"too long"),
    ("header-too-long", req(b"GET / HTTP/1.1", b"X-Big: " + b"b" * 9000), 431, b"too long"),
    ("body-over-limit-before-body",
     req(b"POST /echo HTTP/1.1", b"Content-Length: 100000"), 413, b"exceeds limit"),
    ("http-version", req(b"GET / HTTP/2.0"), 505, b"version"),
    ("transfer-coding", req(b"POST /echo HTTP/1.1", b"Transfer-Encoding: gzip"), 501,
     b"transfer coding"),
]


def read_all(sock):
    """Everything the server sends until it closes (a reset ends it too)."""
    got = b""
    while True:
        try:
            piece = sock.recv(65536)
        except (ConnectionResetError, socket.timeout, ssl.SSLError, OSError):
            return got
        if not piece:
            return got
        got += piece


def send_all(sock, data):
    try:
        sock.sendall(data)
    except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
        pass  # a reset: what was answered is read below (or not)


def one_try(port, data, half_close, wrap=None):
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    s = wrap(raw) if wrap else raw
    half_close = half_close and wrap is None
    try:
        if half_close:
            # Corked, the FIN rides on the request's last segment: forkd
            # reads the end of the request and the EOF together.
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
        send_all(s, data)
        if half_close:
            try:
                s.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        time.sleep(PAUSE)
        return read_all(s)
    finally:
        s.close()


def answered(got, status, cause):
    head, _, body = got.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 %d " % status):
        return False
    length = [l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")]
    return (len(length) == 1 and len(body) == int(length[0].split(b":")[1])
            and cause.lower() in body.lower())


def run_tries(port, data, status, cause, wrap=None, tries=TRIES, junk=JUNK):
    """The tries that did not read the whole answer. They alternate: with
    and without unread junk behind the request, with and without a
    half-close after it (the whole request and the FIN in one read)."""
    missed = []
    for i in range(tries):
        got = one_try(port, data + (junk if i % 4 < 2 else b""), half_close=i % 2 == 1,
                      wrap=wrap)
        if not answered(got, status, cause):
            missed.append(got[:80])
    return missed


@pytest.fixture(scope="module", params=CLASSES)
def server(request, app):  # noqa: F811
    started = Started()
    try:
        fk = started.forkd(app, ["--workers", "1", "--limit-request-body", "1000"]
                           + CLASS_ARGS[request.param])
        fk.worker_class = request.param
        yield fk
    finally:
        started.stop()


@pytest.mark.parametrize("data,status,cause", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_answer_arrives_every_time(server, data, status, cause):
    missed = run_tries(server.port, data, status, cause)
    assert not missed, "%d of %d tries read no whole %d (%s): %r" % (
        len(missed), TRIES, status, server.worker_class, missed[:3])
    # The worker is fine afterwards.
    assert http_get(server.port, "/")[0] == 200


def test_408_arrives(request, app):  # noqa: F811
    """A head that never completes: 408 when --client-header-timeout passes,
    read by a client that only reads afterwards (every class)."""
    started = Started()
    request.addfinalizer(started.stop)
    for cls in CLASSES:
        fk = started.forkd(app, ["--workers", "1", "--client-header-timeout", "0.5",
                                 "--worker-connections", "64"] + CLASS_ARGS[cls])
        socks = []
        for _ in range(20):
            s = socket.create_connection(("127.0.0.1", fk.port), timeout=10)
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: abc")
            socks.append(s)
        time.sleep(1.5)
        missed = 0
        for s in socks:
            if not answered(read_all(s), 408, b"client-header-timeout"):
                missed += 1
            s.close()
        assert missed == 0, "%s: %d of 20 missed the 408" % (cls, missed)
        assert http_get(fk.port, "/")[0] == 200


@pytest.mark.parametrize("cls", CLASSES)
def test_503_while_draining_arrives(forkd_factory, example_app, cls):
    """A drained server accepts no new connections; requests on the ones it
    holds get 503 and the close."""
    fk = admin_client.start_admin_forkd(forkd_factory, example_app,
                                        ["--workers", "1", "--keepalive", "60"]
                                        + CLASS_ARGS[cls])
    tries = max(TRIES // 2, 10)
    conns = [socket.create_connection(("127.0.0.1", fk.port), timeout=10)
             for _ in range(tries)]
    try:
        for c in conns[:1]:  # accepted and served before the drain
            c.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert c.recv(4096).startswith(b"HTTP/1.1 200")
        time.sleep(0.5)  # the rest are accepted too (idle)
        out = admin_client.forkctl(fk.admin_addr, "drain", timeout=30)
        assert out.returncode == 0, out.stderr
        data = req(b"POST /echo HTTP/1.1", b"Content-Length: 200000") + JUNK
        missed = []
        for i, c in enumerate(conns[1:]):
            send_all(c, data)
            if i % 2:
                c.shutdown(socket.SHUT_WR)
            time.sleep(PAUSE)
            got = read_all(c)
            if not answered(got, 503, b"draining"):
                missed.append(got[:80])
        assert not missed, "%d of %d tries missed the 503: %r" % (
            len(missed), tries - 1, missed[:3])
    finally:
        for c in conns:
            c.close()


def test_503_over_the_cap_arrives(forkd_factory, example_app):
    """async: past --worker-connections requests in flight, 503."""
    fk = forkd_factory(example_app, ["--workers", "1", "--worker-class", "async",
                                     "--worker-connections", "1"])
    slow = socket.create_connection(("127.0.0.1", fk.port), timeout=30)
    try:
        slow.sendall(b"GET /sleep?ms=20000 HTTP/1.1\r\nHost: x\r\n\r\n")
        wait_until(lambda: http_get(fk.port, "/")[0] == 503, 10, what="503 over the cap")
        data = req(b"POST /echo HTTP/1.1", b"Content-Length: 200000")
        missed = run_tries(fk.port, data, 503, b"cap", tries=max(TRIES // 2, 10))
        assert not missed, "%d tries missed the 503: %r" % (len(missed), missed[:3])
    finally:
        slow.close()


@pytest.mark.parametrize("cls", CLASSES)
def test_tls_answers_arrive(forkd_factory, example_app, certs, cls):  # noqa: F811
    fk = start_tls(forkd_factory, example_app, certs, cls)
    ctx = ssl.create_default_context(cafile=certs["ca.pem"])

    def wrap(raw):
        return ctx.wrap_socket(raw, server_hostname="127.0.0.1")
    tries = max(TRIES // 2, 10)
    missed = run_tries(fk.port, CASES[0][1], 400, b"chunk", wrap=wrap, tries=tries)
    assert not missed, "TLS: %d of %d tries missed the 400: %r" % (len(missed), tries, missed[:3])
    # Plain HTTP to the TLS port: forkd's hint, then the close.
    plain = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    missed = run_tries(fk.port, plain, 400, b"TLS", tries=tries)
    assert not missed, "plain HTTP: %d of %d missed the hint: %r" % (
        len(missed), tries, missed[:3])


# --- HTTP/2: the GOAWAY that ends a connection arrives ---------------------------------

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
GOAWAY = 0x7


def frame(ftype, flags, stream_id, payload=b""):
    return (struct.pack(">I", len(payload))[1:] + bytes([ftype, flags])
            + struct.pack(">I", stream_id) + payload)


def goaway_code(data):
    """The error code of the first GOAWAY frame in data, or None."""
    i = 0
    while i + 9 <= len(data):
        length = int.from_bytes(data[i:i + 3], "big")
        if i + 9 + length > len(data):
            return None
        if data[i + 3] == GOAWAY:
            return struct.unpack(">I", data[i + 13:i + 17])[0]
        i += 9 + length
    return None


def test_http2_goaway_arrives(server):
    # DATA on stream 0 is a connection error (PROTOCOL_ERROR); the junk
    # behind it is never read by the session.
    bad = PREFACE + frame(0x4, 0, 0) + frame(0x0, 0, 0, b"x" * 8)
    missed = 0
    for i in range(TRIES):
        got = one_try(server.port, bad + (JUNK if i % 4 < 2 else b""), half_close=i % 2 == 1)
        if goaway_code(got) != 0x1:
            missed += 1
    assert missed == 0, "%s: %d of %d tries read no GOAWAY(PROTOCOL_ERROR)" % (
        server.worker_class, missed, TRIES)
    assert http_get(server.port, "/")[0] == 200
