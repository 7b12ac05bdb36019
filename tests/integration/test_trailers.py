"""Trailer fields through forkd and its HTTP/1.1 upstream, both ways.

- An HTTP/1.1 client's chunked request with trailers: the app gets them, in
  a chunked request (a buffered body keeps its chunked framing only when
  trailers go on), less the fields not allowed in trailers.
- The app's chunked response with trailers: an HTTP/1.1 client gets them in
  its chunked response, an HTTP/1.0 client gets the body without them, an
  HTTP/2 client gets a trailing HEADERS frame with END_STREAM.
- An HTTP/2 client's request trailers (HEADERS after DATA) reach the app as
  chunked trailers.
- Limits (--limit-request-fields, --limit-request-field-size) and bad trailer
  syntax get 431/400, and the worker serves the next request.
- TE: trailers goes on to the app when the client sent it; Trailer goes on
  where trailers can follow.

The app is deploy/example-app/app.py, whose /trailers tells in JSON what the
request carried and answers with trailers. HTTP/2 clients are python3-h2
(Debian's) and curl.
"""

import json
import socket
import subprocess
import time

import pytest

from proxy_fixtures import (CLASSES, Started, app,  # noqa: F401
                            require_forkd, serve_each_class)
from forkd_harness import require_tools
from wire import WireConnection, chunked, pattern, request_bytes

REQUEST_BUFFER = 65536

require_tools("curl")

# A missing python3-h2 fails here (scripts/install-deps.sh installs it):
# a skip would hide a missing install step in CI.
import h2.connection as h2_connection  # noqa: E402
import h2.config  # noqa: E402
import h2.events  # noqa: E402


@pytest.fixture(scope="module", params=CLASSES)
def server(request, app):
    """(class name, Forkd), small request buffer so large bodies stream."""
    yield from serve_each_class(request, app,
                                ["--workers", "1", "--request-buffer", str(REQUEST_BUFFER)])


@pytest.fixture(scope="module")
def h2_server(app):
    """One async worker (the class that serves HTTP/2) with tight field limits."""
    require_forkd()
    started = Started()
    try:
        yield started.forkd(app, ["--worker-class", "async", "--workers", "1",
                                  "--limit-request-fields", "8",
                                  "--limit-request-field-size", "200"])
    finally:
        started.stop()


@pytest.fixture(scope="module")
def limited(app):
    """Tight field limits: 6 fields of at most 64 bytes."""
    require_forkd()
    started = Started()
    try:
        yield started.forkd(app, ["--worker-class", "async", "--workers", "1",
                                  "--limit-request-fields", "6",
                                  "--limit-request-field-size", "64"])
    finally:
        started.stop()


# --- HTTP/1.1 helpers ---------------------------------------------------------------


def chunked_with_trailers(body, trailers, piece=1000):
    """body in chunks, then a trailer section of (name, value) pairs."""
    section = "".join("%s: %s\r\n" % t for t in trailers).encode("latin-1")
    return chunked(body, piece)[:-2] + section + b"\r\n"


def read_chunked_response(c):
    """Reads one response from a WireConnection, keeping the trailers.

    Returns (status, head pairs as a lowercase dict, body, trailer pairs).
    """
    status, _, _, pairs, _ = c.read_head()
    headers = {n.lower(): v for n, v in pairs}
    body = bytearray()
    trailers = []
    if "chunked" not in headers.get("transfer-encoding", ""):
        if "content-length" in headers:
            body += c.read_exact(int(headers["content-length"]))
        else:
            body += c.read_to_eof()
        return status, headers, bytes(body), trailers
    while True:
        size = int(c.read_until(b"\r\n").split(b";")[0], 16)
        if size == 0:
            break
        body += c.read_exact(size)
        assert c.read_exact(2) == b"\r\n"
    while True:
        line = c.read_until(b"\r\n")
        if line == b"\r\n":
            break
        name, _, value = line[:-2].decode("latin-1").partition(":")
        trailers.append((name, value.strip()))
    return status, headers, bytes(body), trailers


def post_trailers(fk, body, trailers, headers=(), target="/trailers"):
    """POSTs a chunked body with trailers; returns (status, JSON or body)."""
    with WireConnection(fk.port, timeout=10) as c:
        c.send(request_bytes("POST", target,
                             [("Transfer-Encoding", "chunked")] + list(headers),
                             body=chunked_with_trailers(body, trailers)))
        status, _, data, _ = read_chunked_response(c)
    if status == 200 and target.startswith("/trailers"):
        return status, json.loads(data)
    return status, data


# --- HTTP/1.1 request trailers -------------------------------------------------------


def test_request_trailers_reach_the_app(server):
    _, fk = server
    body = pattern(3000, seed=1)
    status, seen = post_trailers(fk, body, [("X-Checksum", "sha256=abc"),
                                            ("Grpc-Timeout", "1S")],
                                 headers=[("Trailer", "X-Checksum, Grpc-Timeout")])
    assert status == 200
    assert seen["length"] == len(body)
    assert seen["trailers"] == [["X-Checksum", "sha256=abc"], ["Grpc-Timeout", "1S"]]
    # Trailers can only follow a chunked body: the buffered request stays
    # chunked, announced by the client's Trailer field.
    assert seen["transfer_encoding"] == "chunked"
    assert seen["content_length"] is None
    assert seen["trailer"] == "X-Checksum, Grpc-Timeout"


def test_request_trailers_not_allowed_are_dropped(server):
    _, fk = server
    status, seen = post_trailers(fk, b"hello", [
        ("Content-Type", "text/evil"),
        ("Host", "evil.example"),
        ("X-Forwarded-For", "6.6.6.6"),
        ("Authorization", "Bearer stolen"),
        ("Content-Length", "1"),
        ("Transfer-Encoding", "gzip"),
        ("X-Kept", "yes"),
    ])
    assert status == 200
    assert seen["trailers"] == [["X-Kept", "yes"]]
    assert seen["length"] == 5


def test_large_streamed_request_keeps_its_trailers(server):
    # Past --request-buffer the body streams to the app as it comes, chunked;
    # the trailers end it.
    _, fk = server
    body = pattern(5 * REQUEST_BUFFER, seed=2)
    status, seen = post_trailers(fk, body, [("X-Checksum", "big")])
    assert status == 200
    assert seen["length"] == len(body)
    assert seen["trailers"] == [["X-Checksum", "big"]]
    assert seen["transfer_encoding"] == "chunked"


def test_chunked_request_without_trailers_is_sent_with_a_length(server):
    # Nothing to carry after the body: a buffered body goes with a
    # Content-Length, and a Trailer field that announced nothing is dropped.
    _, fk = server
    with WireConnection(fk.port, timeout=10) as c:
        c.send(request_bytes("POST", "/trailers",
                             [("Transfer-Encoding", "chunked"), ("Trailer", "X-Checksum")],
                             body=chunked(b"abcdef", piece=2)))
        status, _, data, _ = read_chunked_response(c)
    seen = json.loads(data)
    assert status == 200
    assert (seen["length"], seen["content_length"], seen["transfer_encoding"]) == (6, "6", None)
    assert seen["trailers"] == [] and seen["trailer"] is None


def test_keep_alive_after_trailers(server):
    # Requests with trailers pipelined on one connection: each ends where its
    # trailer section ends.
    cls, fk = server
    one = request_bytes("POST", "/trailers", [("Transfer-Encoding", "chunked")],
                        body=chunked_with_trailers(b"first", [("X-N", "1")]))
    two = request_bytes("POST", "/trailers", [("Transfer-Encoding", "chunked")],
                        body=chunked_with_trailers(b"second!", [("X-N", "2")]))
    with WireConnection(fk.port, timeout=10) as c:
        c.send(one + two + request_bytes("GET", "/hello"))
        answers = []
        for _ in range(2):
            status, headers, data, _ = read_chunked_response(c)
            answers.append((status, json.loads(data)))
            if headers.get("connection") == "close":
                break
        if cls != "sync":
            assert len(answers) == 2
            assert c.read_response().body == b"hello\n"
    assert answers[0][1]["trailers"] == [["X-N", "1"]]
    assert answers[0][1]["length"] == 5
    if len(answers) > 1:
        assert answers[1][1]["trailers"] == [["X-N", "2"]]


# --- TE ------------------------------------------------------------------------------


@pytest.mark.parametrize("te, version, expected", [
    ("trailers", "HTTP/1.1", "trailers"),
    ("gzip;q=0.5, trailers", "HTTP/1.1", "trailers"),
    ("gzip", "HTTP/1.1", None),
    (None, "HTTP/1.1", None),
    ("trailers", "HTTP/1.0", None),
])
def test_te_trailers_goes_on_to_the_app(server, te, version, expected):
    # TE is hop-by-hop; forkd says "trailers" on its own hop only when the
    # client did and forkd passes trailers on to it (HTTP/1.1).
    _, fk = server
    headers = [("Connection", "TE"), ("TE", te)] if te else []
    with WireConnection(fk.port, timeout=10) as c:
        c.send(request_bytes("GET", "/trailers", headers, version=version))
        status, _, data, _ = read_chunked_response(c)
    assert status == 200
    assert json.loads(data)["te"] == expected


# --- HTTP/1.x response trailers -------------------------------------------------------


def test_response_trailers_reach_an_http11_client(server):
    _, fk = server
    with WireConnection(fk.port, timeout=10) as c:
        c.send(request_bytes("POST", "/trailers", body=b"12345"))
        status, headers, data, trailers = read_chunked_response(c)
    assert status == 200
    assert headers["transfer-encoding"] == "chunked"
    assert headers["trailer"] == "X-Body-Length, X-Request-Trailers, Grpc-Status"
    assert json.loads(data)["length"] == 5
    assert trailers == [("X-Body-Length", "5"), ("X-Request-Trailers", "0"),
                        ("Grpc-Status", "0")]


def test_response_trailers_not_allowed_are_dropped(server):
    cls, fk = server
    with WireConnection(fk.port, timeout=10) as c:
        c.send(request_bytes("GET", "/trailers?bad=1"))
        status, _, _, trailers = read_chunked_response(c)
        if cls != "sync":  # one request per connection there
            # The connection goes on: the trailer section ended the response.
            c.send(request_bytes("GET", "/hello"))
            assert c.read_response().body == b"hello\n"
    assert status == 200
    assert [n for n, _ in trailers] == ["X-Body-Length", "X-Request-Trailers", "Grpc-Status"]


def test_response_trailers_dropped_for_an_http10_client(server):
    # An HTTP/1.0 client gets the body until the connection closes, with no
    # chunk framing, no trailer section and no Trailer field.
    _, fk = server
    with WireConnection(fk.port, timeout=10) as c:
        c.send(request_bytes("GET", "/trailers", version="HTTP/1.0", host=None))
        status, headers, data, trailers = read_chunked_response(c)
    assert status == 200
    assert "transfer-encoding" not in headers and "trailer" not in headers
    seen = json.loads(data)  # the whole body is the JSON, nothing after it
    assert seen["length"] == 0
    assert trailers == []


# --- limits and bad syntax -------------------------------------------------------------


def expect_refused(fk, trailer_section, status, detail):
    data = (request_bytes("POST", "/trailers", [("Transfer-Encoding", "chunked")])
            + b"5\r\nhello\r\n0\r\n" + trailer_section)
    with WireConnection(fk.port, timeout=10) as c:
        c.send(data)
        r = c.read_response()
    assert r.status == status, (r.status, r.body)
    assert detail in r.body.decode(), r.body
    # The worker serves the next client.
    with WireConnection(fk.port, timeout=10) as c:
        c.send(request_bytes("GET", "/hello"))
        assert c.read_response().body == b"hello\n"


def test_too_many_trailer_fields_is_431(limited):
    fields = b"".join(b"X-%d: v\r\n" % i for i in range(7))
    expect_refused(limited, fields + b"\r\n", 431, "too many trailer fields")


def test_trailers_at_the_count_limit_pass(limited):
    # 6 trailer fields after a head of 2: each section has its own count.
    trailers = [("X-%d" % i, "v") for i in range(6)]
    status, seen = post_trailers(limited, b"x", trailers)
    assert status == 200
    assert seen["trailers"] == [list(t) for t in trailers]


def test_too_long_trailer_field_is_431(limited):
    expect_refused(limited, b"X-Long: " + b"v" * 100 + b"\r\n\r\n", 431,
                   "trailer field too long")


@pytest.mark.parametrize("section, detail", [
    (b"X-A: 1\r\n folded\r\n\r\n", "obs-fold"),
    (b"X-A: 1\rX-B: 2\r\n\r\n", "bare CR"),
    (b"Bad Name: 1\r\n\r\n", "header name"),
    (b"X-A: 1\n\r\n", "bare LF"),
    (b"nocolon\r\n\r\n", "missing colon"),
])
def test_malformed_trailers_are_400(limited, section, detail):
    expect_refused(limited, section, 400, detail)


# --- HTTP/2 ---------------------------------------------------------------------------


class H2:
    """A minimal h2c (prior knowledge) client on python3-h2."""

    def __init__(self, port, timeout=10, validate=True):
        # validate=False lets the client send what RFC 9113 forbids.
        config = h2.config.H2Configuration(client_side=True, header_encoding="utf-8",
                                           validate_outbound_headers=validate,
                                           normalize_outbound_headers=validate)
        self.conn = h2_connection.H2Connection(config=config)
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.timeout = timeout
        self.conn.initiate_connection()
        self.flush()

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def flush(self):
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def exchange(self, path, method="GET", headers=(), body=None, trailers=None):
        """One request; returns dict(status, headers, body, trailers, reset).

        The body goes out as the stream's and connection's windows allow.
        """
        sid = self.conn.get_next_available_stream_id()
        has_body = body is not None or trailers is not None
        self.conn.send_headers(sid, [(":method", method), (":scheme", "http"),
                                     (":authority", "127.0.0.1"), (":path", path)]
                               + list(headers), end_stream=not has_body)
        self.flush()
        r = dict(status=None, headers=None, body=bytearray(), trailers=None, reset=None,
                 ended=False)
        deadline = time.monotonic() + self.timeout
        body = memoryview(body or b"")
        while body and r["reset"] is None:
            n = min(len(body), self.conn.local_flow_control_window(sid),
                    self.conn.max_outbound_frame_size)
            if n == 0:
                self._pump(sid, r, deadline)  # wait for WINDOW_UPDATE
                continue
            self.conn.send_data(sid, bytes(body[:n]))
            body = body[n:]
            self.flush()
        if has_body and r["reset"] is None:
            if trailers is not None:
                self.conn.send_headers(sid, list(trailers), end_stream=True)
            else:
                self.conn.end_stream(sid)
            self.flush()
        while not r["ended"] and r["reset"] is None:
            self._pump(sid, r, deadline)
        return r

    def _pump(self, sid, r, deadline):
        assert time.monotonic() < deadline, "no response on stream %d: %r" % (sid, r)
        data = self.sock.recv(1 << 16)
        assert data, "connection closed: %r" % r
        for ev in self.conn.receive_data(data):
            if getattr(ev, "stream_id", None) != sid:
                continue
            if isinstance(ev, h2.events.ResponseReceived):
                r["headers"] = dict(ev.headers)
                r["status"] = int(r["headers"][":status"])
            elif isinstance(ev, h2.events.DataReceived):
                r["body"] += ev.data
                self.conn.acknowledge_received_data(ev.flow_controlled_length, sid)
            elif isinstance(ev, h2.events.TrailersReceived):
                r["trailers"] = list(ev.headers)
            elif isinstance(ev, h2.events.StreamEnded):
                r["ended"] = True
            elif isinstance(ev, h2.events.StreamReset):
                r["reset"] = ev.error_code
        self.flush()


def test_h2_request_trailers_reach_the_app(h2_server):
    with H2(h2_server.port) as c:
        r = c.exchange("/trailers", "POST", headers=[("te", "trailers")], body=b"hello",
                       trailers=[("x-checksum", "abc"), ("grpc-timeout", "1S"),
                                 ("content-type", "text/evil"), ("host", "evil.example")])
    assert r["status"] == 200 and r["reset"] is None
    seen = json.loads(r["body"])
    assert seen["length"] == 5
    assert seen["trailers"] == [["x-checksum", "abc"], ["grpc-timeout", "1S"]]
    assert seen["transfer_encoding"] == "chunked"
    assert seen["te"] == "trailers"


def test_h2_request_trailers_with_a_large_body(h2_server):
    body = pattern(3 * 65536, seed=4)
    with H2(h2_server.port) as c:
        r = c.exchange("/trailers", "POST", body=body, trailers=[("x-n", "1")])
    seen = json.loads(r["body"])
    assert (seen["length"], seen["trailers"]) == (len(body), [["x-n", "1"]])


def test_h2_response_trailers_end_the_stream(h2_server):
    with H2(h2_server.port) as c:
        r = c.exchange("/trailers?bad=1", "POST", body=b"abc")
        # The connection goes on serving.
        again = c.exchange("/hello")
    assert r["status"] == 200 and r["ended"]
    assert json.loads(r["body"])["length"] == 3
    # Lowercase in HTTP/2, and only those allowed in trailers.
    assert r["trailers"] == [("x-body-length", "3"), ("x-request-trailers", "0"),
                             ("grpc-status", "0")]
    assert r["headers"]["trailer"].lower().startswith("x-body-length")
    assert again["status"] == 200 and bytes(again["body"]) == b"hello\n"


def test_h2_response_without_trailers_has_none(h2_server):
    with H2(h2_server.port) as c:
        r = c.exchange("/stream?chunks=2&interval_ms=0")
    assert r["status"] == 200 and r["ended"] and r["trailers"] is None
    assert len(r["body"]) == 32


def test_h2_too_many_request_trailers_is_431(h2_server):
    # The limits of the HTTP/1 path hold: 8 fields.
    with H2(h2_server.port) as c:
        r = c.exchange("/trailers", "POST", body=b"x",
                       trailers=[("x-%d" % i, "v") for i in range(9)])
        assert r["status"] == 431, r
        assert c.exchange("/hello")["status"] == 200


def test_h2_trailers_after_a_content_length_body_are_dropped(h2_server):
    # An HTTP/1.1 body with a Content-Length cannot carry trailers.
    with H2(h2_server.port) as c:
        r = c.exchange("/trailers", "POST", headers=[("content-length", "5")],
                       body=b"hello", trailers=[("x-checksum", "abc")])
    seen = json.loads(r["body"])
    assert r["status"] == 200
    assert (seen["length"], seen["content_length"], seen["trailers"]) == (5, "5", [])


def test_curl_h2_sees_response_trailers(h2_server):
    # curl prints a response's trailer fields after its head with -D.
    p = subprocess.run(["curl", "-s", "--max-time", "20", "--http2-prior-knowledge",
                        "-D", "-", "-o", "/dev/null", h2_server.url("/trailers")],
                       capture_output=True, timeout=30)
    assert p.returncode == 0, p.stderr
    out = p.stdout.decode("latin-1").lower()
    assert "grpc-status: 0" in out and "x-body-length: 0" in out, out


@pytest.mark.parametrize("bad", [
    [(":path", "/elsewhere")],            # no pseudo-header in trailers
    [("connection", "close")],            # connection-specific
    [("transfer-encoding", "chunked")],
    [("te", "gzip")],
    [("X-Upper", "1")],                   # names are lowercase in HTTP/2
])
def test_h2_request_trailers_breaking_rfc9113_reset_the_stream(h2_server, bad):
    # RFC 9113 8.1 and 8.2: a malformed request is a stream error
    # (RST_STREAM PROTOCOL_ERROR); the connection and the worker go on.
    with H2(h2_server.port, validate=False) as c:
        r = c.exchange("/trailers", "POST", body=b"x", trailers=bad)
        assert r["reset"] == 1, r
        assert c.exchange("/hello")["status"] == 200
