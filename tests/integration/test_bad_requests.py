"""Malformed and oversized requests, for each worker class: the right status
with a short plain body, the connection closed, one error-log line naming
the cause, and the next client served as usual."""

import os
import threading

import pytest

from fake_upstream import FakeUpstream
from forkd_harness import http_get
from proxy_fixtures import (CLASS_ARGS, CLASSES, LogMark, Started, app,  # noqa: F401
                            serve_each_class)
from wire import WireConnection, chunked

H = b"Host: test.local"


def head(lines, request_line=b"GET / HTTP/1.1"):
    return request_line + b"\r\n" + b"".join(l + b"\r\n" for l in lines) + b"\r\n"


# (id, request bytes, status, cause the body and the log line must name)
CASES = [
    ("cl-and-te",
     head([H, b"Content-Length: 5", b"Transfer-Encoding: chunked"], b"POST /echo HTTP/1.1")
     + b"0\r\n\r\n",
     400, "both Content-Length and Transfer-Encoding"),
    ("duplicate-cl-differing",
     head([H, b"Content-Length: 5", b"Content-Length: 6"], b"POST /echo HTTP/1.1") + b"hello!",
     400, "duplicate Content-Length"),
    ("bad-chunk-size",
     head([H, b"Transfer-Encoding: chunked"], b"POST /echo HTTP/1.1")
     + b"zz\r\nhello\r\n0\r\n\r\n",
     400, "chunk size"),
    ("obs-fold", head([H, b"X-Folded: first", b"  second"]), 400, "obs-fold"),
    ("bare-cr", head([H, b"X-Cr: a\rb"]), 400, "bare CR"),
    ("invalid-header-name", head([H, b"Bad@Name: 1"]), 400, "header name"),
    ("space-in-header-name", head([H, b"Bad Name: 1"]), 400, "header name"),
    ("http2-version", head([H], b"GET / HTTP/2.0"), 505, "HTTP version"),
    ("missing-host", head([], b"GET / HTTP/1.1"), 400, "Host"),
    ("request-line-5000",
     head([H], b"GET /" + b"a" * 4986 + b" HTTP/1.1"), 414, "request line too long"),
    ("request-line-4095",
     head([H], b"GET /" + b"a" * (4095 - len(b"GET / HTTP/1.1")) + b" HTTP/1.1"),
     414, "request line too long"),
    ("101-headers",
     head([H] + [b"X-H-%d: v" % i for i in range(100)]), 431, "too many header fields"),
    ("9000-byte-header", head([H, b"X-Big: " + b"b" * 9000]), 431, "header field too long"),
    ("8191-byte-header", head([H, b"X-Big: " + b"b" * (8191 - 7)]), 431,
     "header field too long"),
    # 8189 bytes + CRLF is 8191: over --limit-request-field-size (8190),
    # which counts the CRLF as Gunicorn does.
    ("8189-byte-header", head([H, b"X-Big: " + b"b" * (8189 - 7)]), 431,
     "header field too long"),
    ("body-over-limit-cl",
     head([H, b"Content-Length: 2000"], b"POST /echo HTTP/1.1") + b"x" * 2000,
     413, "exceeds limit"),
    ("body-over-limit-chunked",
     head([H, b"Transfer-Encoding: chunked"], b"POST /echo HTTP/1.1")
     + b"7d0\r\n" + b"x" * 2000 + b"\r\n0\r\n\r\n",
     413, "exceeds limit"),
    ("te-gzip",
     head([H, b"Transfer-Encoding: gzip"], b"POST /echo HTTP/1.1") + b"abc",
     501, "transfer coding"),
]


def test_case_sizes():
    cases = dict((c[0], c[1]) for c in CASES)
    assert len(cases["request-line-5000"].split(b"\r\n")[0]) == 5000
    assert len(cases["request-line-4095"].split(b"\r\n")[0]) == 4095
    assert len(cases["8191-byte-header"].split(b"\r\n")[2]) == 8191
    assert len(cases["8189-byte-header"].split(b"\r\n")[2]) == 8189


@pytest.fixture(scope="module", params=CLASSES)
def server(request, app):
    for _, fk in serve_each_class(request, app,
                                  ["--workers", "1", "--limit-request-body", "1000"]):
        yield fk


@pytest.mark.parametrize("data,status,cause", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_request(server, data, status, cause):
    fk = server
    mark = LogMark(fk)
    with WireConnection(fk.port, timeout=5) as c:
        c.send(data)
        r = c.read_response()
        assert r.status == status, r
        assert r.headers["Connection"].lower() == "close"
        assert r.headers["Content-Type"].startswith("text/plain")
        assert 0 < len(r.body) < 200, r.body
        assert cause.lower().encode() in r.body.lower(), r.body
        assert c.closed_by_server(timeout=3), "connection left open after %d" % status
    lines = mark.wait_for("%d for " % status)
    assert len(lines) == 1, lines
    assert cause.lower() in lines[0].lower(), lines[0]
    # The worker is fine: the next client is served.
    status2, _, body2 = http_get(fk.port, "/")
    assert (status2, body2) == (200, b"hello\n")


def test_valid_body_under_limit_still_served(server):
    # The same server takes a body under --limit-request-body.
    fk = server
    with WireConnection(fk.port) as c:
        c.send(head([H, b"Content-Length: 1000", b"Connection: close"], b"POST /echo HTTP/1.1")
               + b"y" * 1000)
        r = c.read_response()
    assert r.status == 200 and r.body == b"y" * 1000


@pytest.mark.parametrize("cls", CLASSES)
def test_request_exactly_at_limits_is_served(tmp_short, cls):
    # Exactly --limit-request-line (4094) bytes of request line and
    # --limit-request-fields (100) fields, one of 8190 bytes with its CRLF
    # (--limit-request-field-size, counted as Gunicorn does): all
    # forwarded. (A scripted app: the example app itself stops at 100
    # headers, and forkd adds four.)
    target = "/at-limit?" + "q" * (4094 - len("GET /at-limit? HTTP/1.1"))
    big = "X-Big: " + "b" * (8188 - len("X-Big: "))
    fields = [b"Host: test.local", big.encode()] + [b"X-F-%02d: v" % i for i in range(98)]
    data = head(fields, ("GET %s HTTP/1.1" % target).encode())
    assert len(data.split(b"\r\n")[0]) == 4094
    assert len(fields) == 100 and max(len(f) + 2 for f in fields) == 8190
    started = Started()
    try:
        with FakeUpstream(os.path.join(tmp_short, "up.sock")) as up:
            fk = started.forkd(up.upstream, ["--workers", "1"] + CLASS_ARGS[cls])
            with WireConnection(fk.port) as c:
                c.send(data)
                r = c.read_response()
            assert (r.status, r.body) == (200, b"ok\n"), r
            [req] = [q for q in up.snapshot() if q.target == target]
            assert req.headers["x-big"] == "b" * (8188 - len("X-Big: "))
            assert sum(1 for k in req.headers if k.startswith("x-f-")) == 98
    finally:
        started.stop()


def test_bad_head_request_answer_has_no_body(server):
    fk = server
    with WireConnection(fk.port, timeout=5) as c:
        c.send(head([H, b"X-Folded: a", b" b"], b"HEAD / HTTP/1.1"))
        r = c.read_response("HEAD")
        assert r.status == 400
        assert int(r.headers["Content-Length"]) > 0
        assert c.closed_by_server(), "a body followed the HEAD answer, or no close"


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_413_reaches_client_still_sending_a_large_body(server, framing):
    # The client keeps sending megabytes forkd will never read: the answer
    # must still arrive, not be lost to a reset (lingering close).
    fk = server
    size = 4_000_000
    if framing == "chunked":
        data = chunked(b"z" * size, piece=65536)
        req = head([H, b"Transfer-Encoding: chunked"], b"POST /echo HTTP/1.1")
    else:
        data = b"z" * size
        req = head([H, b"Content-Length: %d" % size], b"POST /echo HTTP/1.1")
    with WireConnection(fk.port, timeout=10) as c:
        c.send(req)

        def send_body():
            try:
                c.sock.sendall(data)
            except OSError:
                pass
        sender = threading.Thread(target=send_body)
        sender.start()
        r = c.read_response()
        sender.join(15)
    assert r.status == 413, r
    assert b"exceeds limit" in r.body
