"""RFC 9112 details, through the real forkd and the example app, for each
worker class: higher HTTP/1.x minor versions are served as HTTP/1.1, an
absolute-form target's authority is the one Host the app sees, a bad
authority is 400, --limit-request-field-size counts the CRLF as Gunicorn
does, and the answer to a request never depends on how its bytes were
split across writes."""

import time

import pytest

from proxy_fixtures import CLASSES, LogMark, app, serve_each_class  # noqa: F401
from wire import WireConnection, request_bytes


@pytest.fixture(scope="module", params=CLASSES)
def server(request, app):
    for _, fk in serve_each_class(request, app, ["--workers", "1"]):
        yield fk


def exchange(fk, pieces, method="GET"):
    """Sends `pieces` as separate writes, a little apart (so they are likely
    separate reads; the answer must be the same either way)."""
    with WireConnection(fk.port, timeout=10) as c:
        for i, piece in enumerate(pieces):
            if i:
                time.sleep(0.05)
            c.send(piece)
        return c.read_response(method)


@pytest.mark.parametrize("minor", [2, 9])
def test_higher_minor_version_is_served_as_http11(server, minor):
    data = request_bytes("GET", "/echo", version="HTTP/1.%d" % minor)
    r = exchange(server, [data])
    assert r.status == 200, r
    assert r.version == "HTTP/1.1"
    # HTTP/1.1's rules too: Host is required.
    r = exchange(server, [request_bytes("GET", "/echo", version="HTTP/1.%d" % minor,
                                        host=None)])
    assert r.status == 400 and b"missing Host" in r.body, r


def test_http2_version_in_http1_syntax_is_505(server):
    r = exchange(server, [request_bytes("GET", "/", version="HTTP/2.0")])
    assert r.status == 505, r


def test_absolute_form_authority_is_the_host_the_app_sees(server):
    # RFC 9112 3.2.2: the client's other Host is replaced, never passed on.
    data = request_bytes("GET", "http://shop.example:8443/echo?x=1",
                         host="evil.example")
    r = exchange(server, [data])
    assert r.status == 200, r
    assert r.headers["X-Seen-Host"] == "shop.example:8443"
    assert r.headers["X-Seen-X-Forwarded-Host"] == "shop.example:8443"


def test_absolute_form_without_host_in_http10_gets_one(server):
    r = exchange(server, [request_bytes("GET", "http://a.example/echo",
                                        version="HTTP/1.0", host=None)])
    assert r.status == 200, r
    assert r.headers["X-Seen-Host"] == "a.example"


@pytest.mark.parametrize("target", ["s://]ufd/", "http://[::1/", "http://u@a/"])
def test_bad_absolute_form_authority_is_400(server, target):
    mark = LogMark(server)
    r = exchange(server, [request_bytes("GET", target)])
    assert r.status == 400, r
    assert b"request target" in r.body, r.body
    assert len(mark.wait_for("400 for ")) == 1


def test_field_size_limit_counts_the_crlf(server):
    # Default 8190: a field line of 8188 bytes + CRLF fits, 8189 does not.
    fits = "b" * (8188 - len("X-Big: "))
    r = exchange(server, [request_bytes("GET", "/echo", [("X-Big", fits)])])
    assert r.status == 200, r
    r = exchange(server, [request_bytes("GET", "/echo", [("X-Big", fits + "b")])])
    assert r.status == 431, r
    assert b"header field too long" in r.body


# The reproduction: over the limit and ending in a bare LF. In one
# write it was 400 ("bare LF"), in pieces 414/431: now always the limit.
LONG_LINE = b"GET /" + b"a" * 4100 + b" HTTP/1.1\n"
LONG_FIELD = b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + b"b" * 9000 + b"\n\r\n"


@pytest.mark.parametrize("data,status,cause", [
    (LONG_LINE, 414, "request line too long"),
    (LONG_FIELD, 431, "header field too long"),
], ids=["request-line", "field"])
@pytest.mark.parametrize("split", ["one-write", "pieces", "lf-alone"])
def test_verdict_does_not_depend_on_the_split(server, data, status, cause, split):
    lf = data.index(b"\n", 30)
    pieces = {
        "one-write": [data],
        "pieces": [data[:17], data[17:3000], data[3000:]],
        "lf-alone": [data[:lf], data[lf:]],
    }[split]
    r = exchange(server, pieces)
    assert r.status == status, r
    assert cause.encode() in r.body, r.body
