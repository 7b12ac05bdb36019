"""The request path end to end: the real forkd in front of the real example
app, for each worker class (sync, gthread --threads 4, async).

Bodies, streaming, HEAD, keep-alive, pipelining, request buffering,
100-continue, the app's interim responses, the headers forkd adds and drops,
and the access log.
"""

import http.client
import json
import os
import re
import socket
import time

import pytest

from forkd_harness import LoadGenerator, http_get, http_request, wait_until
from proxy_fixtures import (CLASS_ARGS, CLASSES, KEEPALIVE_CLASSES, app,  # noqa: F401
                            app_bytes, serve_each_class)
from wire import WireConnection, chunked, pattern, request_bytes

REQUEST_BUFFER = 65536
RESPONSE_BUFFER = 65536


@pytest.fixture(scope="module", params=CLASSES)
def server(request, app):
    """(class name, Forkd) with small request/response buffers."""
    yield from serve_each_class(request, app, [
        "--workers", "2", "--request-buffer", str(REQUEST_BUFFER),
        "--response-buffer", str(RESPONSE_BUFFER)])


def exchange(fk, data, method="GET", timeout=10):
    """Sends data on a new connection; returns (response, connection)."""
    c = WireConnection(fk.port, timeout=timeout)
    c.send(data)
    return c.read_response(method), c


# --- basics -------------------------------------------------------------------


def test_get_root(server):
    _, fk = server
    status, headers, body = http_get(fk.port, "/")
    assert (status, body) == (200, b"hello\n")
    assert headers["Content-Length"] == "6"


def test_large_body_through_smaller_response_buffer(server):
    _, fk = server
    n = 5_000_000
    status, headers, body = http_get(fk.port, "/bytes?n=%d" % n, timeout=30)
    assert status == 200
    assert headers["Content-Length"] == str(n)
    assert len(body) == n
    assert body == app_bytes(n)


def test_large_body_to_slow_reader(server):
    # The client reads slower than the app writes: forkd must hold back the
    # app (bounded buffer) and still deliver every byte.
    _, fk = server
    n = 2_000_000
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    sock.settimeout(20)
    sock.connect(("127.0.0.1", fk.port))
    with sock:
        sock.sendall(request_bytes("GET", "/bytes?n=%d" % n,
                                   [("Connection", "close")]))
        data = bytearray()
        while True:
            piece = sock.recv(65536)
            if not piece:
                break
            data += piece
            time.sleep(0.002)
    head, _, body = bytes(data).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert len(body) == n and body == app_bytes(n)


def test_stream_arrives_chunked_and_complete(server):
    _, fk = server
    r, c = exchange(fk, request_bytes("GET", "/stream?chunks=6&interval_ms=20&size=100"))
    c.close()
    assert r.status == 200
    assert r.headers["Transfer-Encoding"] == "chunked"
    assert "content-length" not in r.headers
    assert r.body == app_bytes(100) * 6


def test_stream_to_http10_client_ends_with_close(server):
    # HTTP/1.0 has no chunked coding: the body runs until forkd closes.
    _, fk = server
    r, c = exchange(fk, request_bytes("GET", "/stream?chunks=3&interval_ms=10&size=50",
                                      version="HTTP/1.0", host=None))
    c.close()
    assert r.status == 200
    assert "transfer-encoding" not in r.headers
    assert r.body == app_bytes(50) * 3


def test_head_keeps_content_length_without_body(server):
    cls, fk = server
    c = WireConnection(fk.port)
    with c:
        c.send(request_bytes("HEAD", "/bytes?n=12345"))
        r = c.read_response("HEAD")
        assert r.status == 200
        assert r.headers["Content-Length"] == "12345"
        if cls == "sync":
            assert c.closed_by_server(), "sync must close after the response"
            return
        # The next response on the connection starts right after the head: a
        # body sent for HEAD would show up here as garbage.
        c.send(request_bytes("GET", "/"))
        r2 = c.read_response()
        assert (r2.status, r2.body) == (200, b"hello\n")


@pytest.mark.parametrize("code", [204, 304])
def test_bodyless_status_then_next_request(server, code):
    cls, fk = server
    with WireConnection(fk.port) as c:
        c.send(request_bytes("GET", "/status?code=%d" % code))
        r = c.read_response()
        assert r.status == code and r.body == b""
        assert "transfer-encoding" not in r.headers
        if cls == "sync":
            assert c.closed_by_server()
            return
        c.send(request_bytes("GET", "/"))
        r2 = c.read_response()
        assert (r2.status, r2.body) == (200, b"hello\n")


def test_app_errors_passed_through(server):
    _, fk = server
    assert http_get(fk.port, "/fail")[::2] == (500, b"fail\n")
    status, headers, body = http_get(fk.port, "/status?code=503")
    assert (status, body) == (503, b"status 503\n")
    assert headers["Server"] == "forkd-example-app/1"
    assert http_get(fk.port, "/nope")[::2] == (404, b"not found: /nope\n")


# --- keep-alive and pipelining ------------------------------------------------


def test_sync_closes_each_connection(server):
    cls, fk = server
    if cls != "sync":
        pytest.skip("sync only")
    conn = http.client.HTTPConnection("127.0.0.1", fk.port, timeout=10)
    try:
        conn.request("GET", "/")
        resp = conn.getresponse()
        assert resp.read() == b"hello\n"
        assert resp.getheader("Connection", "").lower() == "close"
        assert resp.will_close
    finally:
        conn.close()
    # And the server really closes, even when the client asked for more.
    r, c = exchange(fk, request_bytes("GET", "/", [("Connection", "keep-alive")]))
    with c:
        assert r.status == 200
        assert r.headers["Connection"].lower() == "close"
        assert c.closed_by_server()


def test_keepalive_reuses_connection(server):
    cls, fk = server
    if cls not in KEEPALIVE_CLASSES:
        pytest.skip("keep-alive classes only")
    conn = http.client.HTTPConnection("127.0.0.1", fk.port, timeout=10)
    try:
        conn.connect()
        sock = conn.sock
        local = sock.getsockname()
        for i in range(20):
            path = "/" if i % 2 == 0 else "/bytes?n=%d" % (1000 + i)
            conn.request("GET", path)
            resp = conn.getresponse()
            body = resp.read()
            assert resp.status == 200
            assert body == (b"hello\n" if i % 2 == 0 else app_bytes(1000 + i))
            assert "close" not in resp.getheader("Connection", "").lower()
            assert not resp.will_close
            # http.client reconnects silently when the server closed: the
            # same socket object and local port show it did not.
            assert conn.sock is sock and sock.getsockname() == local
    finally:
        conn.close()


def test_pipelined_requests_answered_in_order(server):
    cls, fk = server
    body = b"pipelined-body"
    data = (request_bytes("POST", "/echo", [("X-Request-Id", "pipe-1")], body=body)
            + request_bytes("GET", "/status?code=202")
            + request_bytes("GET", "/bytes?n=70000", [("Connection", "close")]))
    c = WireConnection(fk.port)
    with c:
        c.send(data)
        r1 = c.read_response()
        assert r1.status == 200 and r1.body == body
        assert r1.headers["X-Seen-X-Request-Id"] == "pipe-1"
        if cls == "sync":
            # One request per connection: the rest is never answered.
            assert r1.headers["Connection"].lower() == "close"
            assert c.closed_by_server()
            return
        r2 = c.read_response()
        assert r2.status == 202 and r2.body == b"status 202\n"
        r3 = c.read_response()
        assert r3.status == 200 and r3.body == app_bytes(70000)
        assert c.closed_by_server()


def test_pipelined_request_after_streamed_body(server):
    # The first body is larger than --request-buffer, so it streams to the
    # app; the request behind it must still be parsed from the right byte.
    cls, fk = server
    if cls not in KEEPALIVE_CLASSES:
        pytest.skip("keep-alive classes only")
    big = pattern(300_000, seed=1)
    data = (request_bytes("POST", "/echo", body=big)
            + request_bytes("POST", "/echo", [("Transfer-Encoding", "chunked")],
                            body=chunked(big[:100_000]))
            + request_bytes("GET", "/", [("Connection", "close")]))
    with WireConnection(fk.port, timeout=20) as c:
        c.send(data)
        r1 = c.read_response()
        assert r1.status == 200 and r1.body == big
        r2 = c.read_response()
        assert r2.status == 200 and r2.body == big[:100_000]
        r3 = c.read_response()
        assert (r3.status, r3.body) == (200, b"hello\n")
        assert c.closed_by_server()


def test_concurrent_load_has_no_failures(server):
    _, fk = server
    load = LoadGenerator(fk.url("/bytes?n=20000"), threads=6, duration=1.5, timeout=10)
    load.start()
    summary = load.wait()
    assert summary.failed == 0, summary.reasons
    assert summary.ok > 10, summary


def test_many_pipelined_requests_with_large_responses(server):
    # 40 requests in one send, 200 kB answers: forkd must keep them in order
    # while holding back both the client's input and the app's output.
    cls, fk = server
    if cls not in KEEPALIVE_CLASSES:
        pytest.skip("keep-alive classes only")
    n = 40
    data = b"".join(request_bytes("GET", "/bytes?n=%d" % (200_000 + i)) for i in range(n))
    with WireConnection(fk.port, timeout=30) as c:
        c.send(data)
        for i in range(n):
            r = c.read_response()
            assert r.status == 200 and r.body == app_bytes(200_000 + i), i


def test_head_of_chunked_response_then_next_request(server):
    cls, fk = server
    if cls not in KEEPALIVE_CLASSES:
        pytest.skip("keep-alive classes only")
    with WireConnection(fk.port) as c:
        c.send(request_bytes("HEAD", "/stream?chunks=3") + request_bytes("GET", "/"))
        r = c.read_response("HEAD")
        assert r.status == 200
        r2 = c.read_response()
        assert (r2.status, r2.body) == (200, b"hello\n")


# --- request bodies -------------------------------------------------------------


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
@pytest.mark.parametrize("size", [1000, REQUEST_BUFFER, REQUEST_BUFFER + 1, 1 << 20],
                         ids=["under-buffer", "at-buffer", "buffer-plus-1", "over-buffer"])
def test_request_body_arrives_whole(server, framing, size):
    _, fk = server
    body = pattern(size, seed=size % 251)
    if framing == "chunked":
        data = request_bytes("POST", "/echo", [("Transfer-Encoding", "chunked")],
                             body=chunked(body))
    else:
        data = request_bytes("POST", "/echo", body=body)
    r, c = exchange(fk, data, timeout=30)
    c.close()
    assert r.status == 200
    assert r.headers["X-Echo-Length"] == str(size)
    assert r.body == body
    if size <= REQUEST_BUFFER:
        # Buffered whole, so the app gets a Content-Length even for chunks.
        assert r.headers["X-Seen-Content-Length"] == str(size)
        assert "x-seen-transfer-encoding" not in r.headers
    elif framing == "chunked" and size <= REQUEST_BUFFER + 64:
        # forkd decodes up to 64 bytes past the buffer so that chunk framing
        # can complete; a body that ends in that slack may go either way.
        pass
    elif framing == "chunked":
        assert r.headers["X-Seen-Transfer-Encoding"] == "chunked"
        assert "x-seen-content-length" not in r.headers
    else:
        assert r.headers["X-Seen-Content-Length"] == str(size)


@pytest.mark.parametrize("method", ["POST", "PUT"])
def test_empty_body_with_content_length_zero(server, method):
    # http.client and most clients send "Content-Length: 0" for a POST
    # without a body: there are no body bytes to wait for.
    cls, fk = server
    status, headers, body = http_request(fk.port, method, "/echo", body=b"", timeout=5)
    assert (status, body) == (200, b"")
    assert headers["X-Echo-Method"] == method
    assert headers["X-Seen-Content-Length"] == "0"
    if cls not in KEEPALIVE_CLASSES:
        return
    # And the request behind it on the same connection.
    with WireConnection(fk.port, timeout=5) as c:
        c.send(request_bytes(method, "/echo", [("Content-Length", "0")])
               + request_bytes("POST", "/echo", [("Transfer-Encoding", "chunked")],
                               body=b"0\r\n\r\n")
               + request_bytes("GET", "/"))
        assert c.read_response().headers["X-Echo-Length"] == "0"
        assert c.read_response().headers["X-Echo-Length"] == "0"
        assert c.read_response().body == b"hello\n"


def test_chunked_trailers_stay_out_of_the_header_section(server):
    # The trailers go on as trailers (test_trailers.py), never merged into
    # the head the app sees.
    _, fk = server
    body = pattern(3000, seed=9)
    data = request_bytes("POST", "/echo", [("Transfer-Encoding", "chunked")],
                         body=chunked(body, piece=1000)[:-2] + b"X-Trailer: t\r\n\r\n")
    r, c = exchange(fk, data)
    c.close()
    assert r.status == 200
    assert r.body == body
    assert "x-trailer" not in r.headers["X-Seen-Headers"].split(",")


@pytest.mark.parametrize("size", [5, 300_000])
def test_expect_100_continue(server, size):
    _, fk = server
    body = pattern(size, seed=3)
    c = WireConnection(fk.port, timeout=10)
    with c:
        c.send(request_bytes("POST", "/echo", [("Expect", "100-continue"),
                                               ("Content-Length", str(size))]))
        status, reason, _, _, raw = c.read_head()
        assert raw == b"HTTP/1.1 100 Continue\r\n\r\n"
        c.send(body)
        r = c.read_response()
        assert r.status == 200, r
        assert r.interim == []  # the app's own 100 (if any) is not repeated
        assert r.headers["X-Echo-Length"] == str(size)
        assert r.body == body
        # Expect is hop-by-hop in effect: forkd answered it itself.
        assert "expect" not in r.headers["X-Seen-Headers"].split(",")


def test_interim_response_from_app_reaches_http11_client(server):
    _, fk = server
    r, c = exchange(fk, request_bytes("GET", "/continue"))
    c.close()
    assert [i.status for i in r.interim] == [103]
    assert r.interim[0].headers["Link"] == "</style.css>; rel=preload; as=style"
    assert (r.status, r.body) == (200, b"continued\n")


def test_interim_response_not_sent_to_http10_client(server):
    _, fk = server
    r, c = exchange(fk, request_bytes("GET", "/continue", version="HTTP/1.0", host=None))
    c.close()
    assert r.interim == []
    assert (r.status, r.body) == (200, b"continued\n")


# --- headers forkd adds and drops -------------------------------------------------


def echo(fk, headers, **kw):
    status, h, _ = http_request(fk.port, "GET", "/echo", headers=headers, **kw)
    assert status == 200
    return h


def test_x_forwarded_for_is_client_ip(server):
    _, fk = server
    h = echo(fk, {})
    assert h["X-Seen-X-Forwarded-For"] == "127.0.0.1"


def test_x_forwarded_for_of_an_untrusted_client_is_replaced(server):
    # No --forwarded-allow-ips: nobody's X-Forwarded-For is believed (the
    # trusted case, with the peer appended, is in test_trust.py).
    _, fk = server
    r, c = exchange(fk, request_bytes("GET", "/echo", [
        ("X-Forwarded-For", "198.51.100.1"), ("X-Other", "x"),
        ("X-Forwarded-For", "198.51.100.2, 10.0.0.9")]))
    c.close()
    assert r.headers["X-Seen-X-Forwarded-For"] == "127.0.0.1"


def test_x_forwarded_proto_and_host_set_by_forkd(server):
    _, fk = server
    r, c = exchange(fk, request_bytes("GET", "/echo", [
        ("X-Forwarded-Proto", "https"), ("X-Forwarded-Host", "evil.example")],
        host="shop.example:8443"))
    c.close()
    assert r.headers["X-Seen-X-Forwarded-Proto"] == "http"
    assert r.headers["X-Seen-X-Forwarded-Host"] == "shop.example:8443"
    assert r.headers["X-Seen-Host"] == "shop.example:8443"


def test_request_id_kept_when_sent(server):
    _, fk = server
    h = echo(fk, {"X-Request-Id": "client-chosen-id-42"})
    assert h["X-Seen-X-Request-Id"] == "client-chosen-id-42"


def test_request_id_generated_when_missing(server):
    _, fk = server
    ids = [echo(fk, {})["X-Seen-X-Request-Id"] for _ in range(3)]
    for rid in ids:
        assert re.fullmatch(r"[0-9a-f]{32}", rid), rid
    assert len(set(ids)) == 3


def test_hop_by_hop_headers_not_forwarded(server):
    cls, fk = server
    r, c = exchange(fk, request_bytes("GET", "/echo", [
        ("Connection", "keep-alive, X-Private-Hop"),
        ("X-Private-Hop", "secret"),
        ("Keep-Alive", "timeout=5"),
        # "trailers" would go on (forkd passes trailers): test_trailers.py.
        ("TE", "deflate"),
        ("Upgrade", "h2c"),
        ("Proxy-Authorization", "Basic dXNlcjpwYXNz"),
        ("Proxy-Connection", "keep-alive"),
        ("X-End-To-End", "kept"),
    ]))
    c.close()
    assert r.status == 200
    seen = r.headers["X-Seen-Headers"].split(",")
    for name in ("x-private-hop", "keep-alive", "te", "upgrade", "proxy-authorization",
                 "proxy-connection"):
        assert name not in seen, (name, seen)
    assert "x-end-to-end" in seen
    assert "x-private-hop" not in r.headers.get("X-Seen-Connection", "").lower()


def test_connection_header_cannot_strip_host(server):
    # Listing Host in Connection must not make forkd drop it: the app needs
    # it, and X-Forwarded-Host comes from it.
    _, fk = server
    r, c = exchange(fk, request_bytes("GET", "/echo", [("Connection", "keep-alive, Host")],
                                      host="app.example"))
    c.close()
    assert r.status == 200
    assert r.headers["X-Seen-Host"] == "app.example"
    assert r.headers["X-Seen-X-Forwarded-Host"] == "app.example"


# --- access log -------------------------------------------------------------------


def read_lines(path, n, timeout=5, skip=lambda line: False):
    """The access log's lines without skipped ones, once there are >= n.

    A line is written after its response went out, so a client can see the
    response first: wait, and match lines by content rather than order."""
    def enough():
        try:
            with open(path) as f:
                lines = [l for l in f.read().splitlines() if not skip(l)]
        except FileNotFoundError:
            return None
        return lines if len(lines) >= n else None
    return wait_until(enough, timeout, what="%d access log lines in %s" % (n, path))


def is_probe(line):
    """The harness's readiness probes are GET / (these tests never ask for /)."""
    return '"GET / HTTP/1.1"' in line or '"path":"/",' in line


@pytest.mark.parametrize("cls", CLASSES)
def test_access_log_gunicorn_format(forkd_factory, example_app, tmp_short, cls):
    path = tmp_short + "/access.log"
    fk = forkd_factory(example_app, ["--workers", "1", "--access-logfile", path]
                       + CLASS_ARGS[cls])
    ua = {"User-Agent": "probe/1"}
    assert http_get(fk.port, "/hello?x=1", headers=dict(ua, Referer="http://r.example/"))[0] == 200
    assert http_request(fk.port, "POST", "/echo", body=b"abc", headers=ua)[0] == 200
    assert http_get(fk.port, "/status?code=404", headers=ua)[0] == 404
    lines = read_lines(path, 3, skip=is_probe)
    assert len(lines) == 3, lines
    # %(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"
    line_re = re.compile(r'^(\S+) - - \[([^\]]+)\] "([^"]*)" (\d{3}) (\S+) "([^"]*)" "([^"]*)"$')
    by_request = {}
    for line in lines:
        m = line_re.match(line)
        assert m, line
        assert m.group(1) == "127.0.0.1", line
        by_request[m.group(3)] = m.groups()[3:]
    assert by_request == {
        "GET /hello?x=1 HTTP/1.1": ("200", "6", "http://r.example/", "probe/1"),
        "POST /echo HTTP/1.1": ("200", "3", "-", "probe/1"),
        "GET /status?code=404 HTTP/1.1": ("404", "11", "-", "probe/1"),
    }


def test_access_log_json(forkd_factory, example_app, tmp_short):
    path = tmp_short + "/access.json"
    fk = forkd_factory(example_app, ["--workers", "1", "--worker-class", "async",
                                     "--access-logfile", path, "--access-logformat", "json"])
    assert http_get(fk.port, "/hello", headers={"X-Request-Id": "json-rid-1"})[0] == 200
    assert http_get(fk.port, "/status?code=503")[0] == 503
    assert http_get(fk.port, "/echo")[0] == 200
    records = {r["path"]: r for r in map(json.loads, read_lines(path, 3, skip=is_probe))}
    assert set(records) == {"/hello", "/status", "/echo"}
    hello = records["/hello"]
    assert hello["request_id"] == "json-rid-1"
    assert (hello["method"], hello["status"], hello["bytes"]) == ("GET", 200, 6)
    assert records["/status"]["status"] == 503
    assert records["/status"]["query"] == "code=503"
    assert re.fullmatch(r"[0-9a-f]{32}", records["/echo"]["request_id"])
    assert all(r["remote_addr"] == "127.0.0.1" for r in records.values())


def test_access_log_environment_atom_is_the_masters(forkd_factory, example_app, tmp_short):
    # %({NAME}e)s is the value in forkd's environment, resolved by the master
    # (workers read no environment); a literal % in it stays one %.
    path = tmp_short + "/access.log"
    env = dict(os.environ, FORKD_TEST_POD="web-7%", FORKD_TEST_EMPTY="")
    fk = forkd_factory(example_app, ["--workers", "1", "--access-logfile", path,
                                     "--access-logformat",
                                     "pod=%({FORKD_TEST_POD}e)s unset=%({FORKD_TEST_NONE}e)s "
                                     "%(s)s %(U)s"], env=env)
    assert http_get(fk.port, "/hello")[0] == 200
    assert read_lines(path, 1, skip=lambda l: "/hello" not in l) == [
        "pod=web-7% unset=- 200 /hello"]


def test_access_log_records_forkd_errors(forkd_factory, example_app, tmp_short):
    # forkd's own answers (here a 400) are requests too.
    path = tmp_short + "/access.log"
    fk = forkd_factory(example_app, ["--workers", "1", "--worker-class", "gthread",
                                     "--access-logfile", path, "--access-logformat", "json"])
    r, c = exchange(fk, b"GET /bad HTTP/1.1\r\nHost: x\r\nBad Name: 1\r\n\r\n")
    c.close()
    assert r.status == 400
    records = [json.loads(l) for l in read_lines(path, 1, skip=is_probe)]
    assert [(x["status"], x["path"]) for x in records] == [(400, "/bad")]


# --- connection management ----------------------------------------------------------


def test_client_connection_close_honoured(server):
    cls, fk = server
    with WireConnection(fk.port) as c:
        c.send(request_bytes("GET", "/", [("Connection", "close")]))
        r = c.read_response()
        assert (r.status, r.body) == (200, b"hello\n")
        assert r.headers["Connection"].lower() == "close"
        assert c.closed_by_server()


def test_http10_keepalive(server):
    cls, fk = server
    with WireConnection(fk.port) as c:
        for _ in range(2 if cls in KEEPALIVE_CLASSES else 1):
            c.send(request_bytes("GET", "/", [("Connection", "keep-alive")],
                                 version="HTTP/1.0", host=None))
            r = c.read_response()
            assert (r.status, r.body) == (200, b"hello\n")
            if cls in KEEPALIVE_CLASSES:
                assert r.headers["Connection"].lower() == "keep-alive"
        if cls == "sync":
            assert c.closed_by_server()
    # Without keep-alive an HTTP/1.0 connection ends after the response.
    with WireConnection(fk.port) as c:
        c.send(request_bytes("GET", "/", version="HTTP/1.0", host=None))
        r = c.read_response()
        assert (r.status, r.body) == (200, b"hello\n")
        assert c.closed_by_server()


@pytest.mark.parametrize("cls", KEEPALIVE_CLASSES)
def test_idle_keepalive_connection_closed_after_keepalive(forkd_factory, example_app, cls):
    fk = forkd_factory(example_app, ["--workers", "1", "--keepalive", "1"] + CLASS_ARGS[cls])
    with WireConnection(fk.port) as c:
        c.send(request_bytes("GET", "/"))
        assert c.read_response().status == 200
        time.sleep(0.4)
        c.send(request_bytes("GET", "/"))  # still open well within --keepalive
        assert c.read_response().status == 200
        start = time.monotonic()
        assert c.closed_by_server(timeout=5)
        assert 0.5 <= time.monotonic() - start <= 3.0


def test_repeated_headers_reach_app_in_order(server):
    _, fk = server
    r, c = exchange(fk, request_bytes("GET", "/headers", [
        ("X-Multi", "one"), ("X-Other", "x"), ("X-Multi", "two")]))
    c.close()
    seen = json.loads(r.body)
    assert seen["x-multi"] == "one, two"
