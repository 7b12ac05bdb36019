"""When the app fails or is slow, and when clients are slow or too many:
forkd answers 502/503/504 with a short body naming the cause, never lets a
slow upload reach the app early, retries only what is safe to retry, and
keeps requests in flight within the class's cap."""

import os
import shutil
import socket
import threading
import time

import pytest

from fake_upstream import FakeUpstream, ok_response
from forkd_harness import free_port, http_get, http_request, short_tmpdir
from proxy_fixtures import CLASS_ARGS, CLASSES, KEEPALIVE_CLASSES, LogMark, Started
from wire import WireConnection, chunked, request_bytes


@pytest.fixture
def started():
    s = Started()
    yield s
    s.stop()


@pytest.fixture
def tmpdir_short():
    path = short_tmpdir("fkf")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def one_worker(cls, *extra):
    return ["--workers", "1"] + CLASS_ARGS[cls] + list(extra)


# --- the app is gone, refuses, closes, resets or is slow ----------------------------


@pytest.mark.parametrize("cls", CLASSES)
def test_app_socket_missing_then_back(started, cls):
    app = started.app()
    fk = started.forkd(app, one_worker(cls))
    for _ in range(3):  # warm the upstream pool
        assert http_get(fk.port, "/")[0] == 200
    app.stop()
    assert not os.path.exists(app.socket_path)
    mark = LogMark(fk)
    for _ in range(3):
        status, headers, body = http_get(fk.port, "/hello")
        assert status == 502, body
        assert headers["Content-Type"].startswith("text/plain")
        assert b"connect to unix:" + app.socket_path.encode() in body, body
        assert b"No such file or directory" in body, body
    lines = mark.wait_for("502 for GET /hello")
    assert all("connect to unix:" in l for l in lines), lines
    app.start()
    # Back at once: pooled connections to the old app are not held against it.
    for _ in range(5):
        status, _, body = http_get(fk.port, "/hello")
        assert (status, body) == (200, b"hello\n")


@pytest.mark.parametrize("cls", CLASSES)
def test_app_socket_refusing(started, tmpdir_short, cls):
    # A socket file nobody listens on (the app died without removing it).
    path = os.path.join(tmpdir_short, "dead.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    try:
        fk = started.forkd("unix:" + path, one_worker(cls))
        status, _, body = http_get(fk.port, "/")
        assert status == 502
        assert b"Connection refused" in body, body
    finally:
        s.close()


@pytest.mark.parametrize("cls", CLASSES)
def test_upstream_timeout_is_504(started, cls):
    app = started.app()
    fk = started.forkd(app, one_worker(cls, "--upstream-timeout", "1"))
    mark = LogMark(fk)
    with WireConnection(fk.port, timeout=10) as c:
        start = time.monotonic()
        c.send(request_bytes("GET", "/sleep?ms=3000"))
        r = c.read_response()
        took = time.monotonic() - start
        assert r.status == 504, r
        assert 0.9 <= took <= 2.5, took
        assert b"did not answer" in r.body, r.body
        if cls in KEEPALIVE_CLASSES:
            # The request was read whole: the client connection stays usable.
            c.send(request_bytes("GET", "/"))
            r2 = c.read_response()
            assert (r2.status, r2.body) == (200, b"hello\n")
    assert len(mark.wait_for("504 for GET /sleep?ms=3000")) == 1


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("path", ["/close", "/reset"])
def test_app_drops_request_is_502(started, cls, path):
    app = started.app()
    fk = started.forkd(app, one_worker(cls))
    assert http_get(fk.port, "/")[0] == 200  # a pooled connection exists
    mark = LogMark(fk)
    for method in ("GET", "POST"):
        status, _, body = http_request(fk.port, method, path, body=b"x" * 10)
        assert status == 502, body
        assert b"app closed the connection" in body or b"reset" in body.lower(), body
    assert len(mark.wait_for("502 for POST " + path)) == 1
    status, _, body = http_get(fk.port, "/")
    assert (status, body) == (200, b"hello\n")


# --- retries -------------------------------------------------------------------------


def close_on_reused(req):
    """Answers everything, except /pay and /read on a reused connection:
    those it reads and then closes without answering (it took the request,
    then died)."""
    if req.index > 0 and req.target in ("/pay", "/read"):
        return None
    return ok_response(b"answered\n")


@pytest.mark.parametrize("cls", CLASSES)
def test_non_idempotent_request_not_retried(started, tmpdir_short, cls):
    # RFC 9110 9.2.2: a proxy must not retry a POST the app may have acted on.
    with FakeUpstream(os.path.join(tmpdir_short, "up.sock"), close_on_reused) as up:
        fk = started.forkd(up.upstream, one_worker(cls))
        assert http_request(fk.port, "POST", "/warm", body=b"1")[0] == 200
        status, _, body = http_request(fk.port, "POST", "/pay", body=b"once")
        assert status == 502, body
        time.sleep(0.3)
        pays = [r for r in up.snapshot() if r.target == "/pay"]
        assert len(pays) == 1, "POST delivered %d times" % len(pays)


@pytest.mark.parametrize("cls", CLASSES)
def test_idempotent_request_retried_once(started, tmpdir_short, cls):
    with FakeUpstream(os.path.join(tmpdir_short, "up.sock"), close_on_reused) as up:
        fk = started.forkd(up.upstream, one_worker(cls))
        assert http_get(fk.port, "/warm")[0] == 200
        status, _, body = http_get(fk.port, "/read")
        assert (status, body) == (200, b"answered\n")
        reads = [r for r in up.snapshot() if r.target == "/read"]
        assert len(reads) == 2  # once on the pooled connection, once fresh


@pytest.mark.parametrize("cls", CLASSES)
def test_pooled_connection_closed_by_idle_app_is_replaced(started, tmpdir_short, cls):
    # The app drops idle keep-alive connections (Gunicorn's --keep-alive):
    # a POST must still go through, exactly once.
    def answer_then_drop(req):
        return ok_response(req.body), 0.05

    with FakeUpstream(os.path.join(tmpdir_short, "up.sock"), answer_then_drop) as up:
        fk = started.forkd(up.upstream, one_worker(cls))
        for i in range(3):
            time.sleep(0.3)  # the app has closed the pooled connection by now
            body = b"post-%d" % i
            status, _, got = http_request(fk.port, "POST", "/submit", body=body)
            assert (status, got) == (200, body)
        posts = [r.body for r in up.snapshot() if r.target == "/submit"]
        assert posts == [b"post-0", b"post-1", b"post-2"]


# --- slow clients do not hold the app --------------------------------------------------


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_slow_upload_reaches_app_only_when_complete(started, tmpdir_short, cls, framing):
    with FakeUpstream(os.path.join(tmpdir_short, "up.sock"),
                      lambda req: ok_response(b"got %d\n" % len(req.body))) as up:
        fk = started.forkd(up.upstream, one_worker(cls))  # default --request-buffer
        body = b"0123456789" * 10
        if framing == "chunked":
            payload = chunked(body, piece=10)
            head = request_bytes("POST", "/upload", [("Transfer-Encoding", "chunked")])
        else:
            payload = body
            head = request_bytes("POST", "/upload", [("Content-Length", str(len(body)))])
        with WireConnection(fk.port, timeout=10) as c:
            c.send(head)
            first_sent = time.monotonic()
            for i in range(0, len(payload), 5):
                time.sleep(0.05)
                last_sent = time.monotonic()  # before: forkd may be quicker
                c.send(payload[i:i + 5])
            r = c.read_response()
        assert last_sent - first_sent >= 0.9
        assert (r.status, r.body) == (200, b"got 100\n")
        [req] = [q for q in up.snapshot() if q.target == "/upload"]
        assert req.body == body
        assert req.headers.get("content-length") == "100"
        assert req.first_byte_at >= last_sent, (
            "the app saw the request %.2fs before the upload ended"
            % (last_sent - req.first_byte_at))


# --- concurrency caps ------------------------------------------------------------------


def concurrent(n, fn):
    results = [None] * n
    def run(i):
        try:
            results[i] = fn(i)
        except Exception as e:  # noqa: BLE001 - reported by the caller
            results[i] = e
    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results, time.monotonic() - start


def test_async_over_cap_gets_503(started):
    app = started.app()
    fk = started.forkd(app, ["--workers", "1", "--worker-class", "async",
                             "--worker-connections", "2"])
    mark = LogMark(fk)
    results, _ = concurrent(6, lambda i: http_get(fk.port, "/sleep?ms=500", timeout=10))
    assert not any(isinstance(r, Exception) for r in results), results
    statuses = sorted(r[0] for r in results)
    assert set(statuses) <= {200, 503}, statuses
    assert statuses.count(200) >= 2, statuses
    assert statuses.count(503) >= 1, statuses
    for status, headers, body in results:
        if status == 503:
            assert b"cap of 2" in body, body
            assert headers["Content-Type"].startswith("text/plain")
    mark.wait_for("503 for GET /sleep")
    # Under the cap again: served.
    assert http_get(fk.port, "/")[0] == 200


@pytest.mark.parametrize("cls,rounds", [("sync", 6), ("gthread", 3)])
def test_threaded_classes_bound_requests_in_flight(started, cls, rounds):
    # One worker: sync runs one request at a time, gthread --threads 2 two.
    # Extra connections wait in the backlog; none is refused.
    app = started.app()
    args = ["--workers", "1", "--worker-class", cls]
    if cls == "gthread":
        args += ["--threads", "2"]
    fk = started.forkd(app, args)
    results, took = concurrent(6, lambda i: http_get(fk.port, "/sleep?ms=300", timeout=20))
    assert [r[0] if not isinstance(r, Exception) else r for r in results] == [200] * 6
    assert took >= rounds * 0.3 - 0.05, "6 requests of 0.3s took %.2fs" % took


def test_client_aborts_do_not_leak_capacity(started):
    # Clients that vanish mid-download or while the app works must give their
    # slot back, or the worker's cap of 2 fills up with ghosts.
    app = started.app()
    fk = started.forkd(app, ["--workers", "1", "--worker-class", "async",
                             "--worker-connections", "2"])
    for _ in range(4):
        with WireConnection(fk.port, timeout=5) as c:
            c.send(request_bytes("GET", "/bytes?n=50000000"))
            c.read_exact(100_000)
        time.sleep(0.1)  # forkd sees the reset on its next write
    for _ in range(4):
        with WireConnection(fk.port, timeout=5) as c:
            c.send(request_bytes("GET", "/sleep?ms=200"))
            time.sleep(0.02)
    time.sleep(0.6)  # the abandoned sleeps finish at the app
    results, _ = concurrent(2, lambda i: http_get(fk.port, "/sleep?ms=200", timeout=10))
    assert [r[0] for r in results] == [200, 200], results


@pytest.mark.parametrize("cls", ["sync", "gthread"])
def test_client_aborts_free_their_thread(started, cls):
    app = started.app()
    args = ["--workers", "1", "--worker-class", cls, "--threads", "2"]
    fk = started.forkd(app, args)
    for _ in range(4):
        with WireConnection(fk.port, timeout=5) as c:
            c.send(request_bytes("GET", "/bytes?n=50000000"))
            c.read_exact(100_000)
    # Every thread is free again: each answers promptly (a thread stuck on an
    # abandoned download would hold the rest in the backlog for --timeout).
    results, took = concurrent(4, lambda i: http_get(fk.port, "/", timeout=10))
    assert [r[0] for r in results] == [200] * 4, results
    assert took < 5, took


# --- unusual but valid (or invalid) app responses ---------------------------------------


@pytest.mark.parametrize("cls", CLASSES)
def test_app_body_until_close_is_rechunked(started, tmpdir_short, cls):
    body = b"no length, ends with the connection\n" * 100

    def respond(req):
        if req.target == "/until-close":
            return b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n" + body, 0
        return ok_response()

    with FakeUpstream(os.path.join(tmpdir_short, "up.sock"), respond) as up:
        fk = started.forkd(up.upstream, one_worker(cls))
        with WireConnection(fk.port, timeout=10) as c:
            c.send(request_bytes("GET", "/until-close"))
            r = c.read_response()
            assert r.status == 200 and r.body == body
            if cls in KEEPALIVE_CLASSES:
                assert r.headers["Transfer-Encoding"] == "chunked"
                c.send(request_bytes("GET", "/after"))
                r2 = c.read_response()
                assert (r2.status, r2.body) == (200, b"ok\n")
        # HTTP/1.0 clients get the body delimited by the close.
        with WireConnection(fk.port, timeout=10) as c:
            c.send(request_bytes("GET", "/until-close", version="HTTP/1.0", host=None))
            r = c.read_response()
            assert "transfer-encoding" not in r.headers
            assert r.status == 200 and r.body == body


@pytest.mark.parametrize("cls", CLASSES)
def test_app_hop_by_hop_response_headers_dropped(started, tmpdir_short, cls):
    def respond(req):
        return (b"HTTP/1.1 200 OK\r\nConnection: close, X-Hop\r\nX-Hop: private\r\n"
                b"Keep-Alive: timeout=9\r\nX-Kept: yes\r\nContent-Length: 3\r\n\r\nabc")

    with FakeUpstream(os.path.join(tmpdir_short, "up.sock"), respond) as up:
        fk = started.forkd(up.upstream, one_worker(cls))
        with WireConnection(fk.port, timeout=10) as c:
            for i in range(2 if cls in KEEPALIVE_CLASSES else 1):
                c.send(request_bytes("GET", "/hop-%d" % i))
                r = c.read_response()
                assert (r.status, r.body) == (200, b"abc")
                assert r.headers["X-Kept"] == "yes"
                assert "x-hop" not in r.headers and "keep-alive" not in r.headers
                if cls in KEEPALIVE_CLASSES:
                    # The app's "close" is about its own connection, not ours.
                    assert "close" not in r.headers.get("Connection", "").lower()
        hops = [q for q in up.snapshot() if q.target.startswith("/hop-")]
        if cls in KEEPALIVE_CLASSES:
            # The app asked to close: its connection is not reused.
            assert hops[0].conn != hops[1].conn


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("answer,cause", [
    (b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: x\r\n\r\n",
     b"switched protocols"),
    (b"HTTP/1.1 2x0 Odd\r\nContent-Length: 0\r\n\r\n", b"invalid response"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", b"closed the connection"),
], ids=["101", "bad-status-line", "short-body"])
def test_app_broken_response(started, tmpdir_short, cls, answer, cause):
    def respond(req):
        return (answer, 0) if req.target == "/broken" else ok_response()

    with FakeUpstream(os.path.join(tmpdir_short, "up.sock"), respond) as up:
        fk = started.forkd(up.upstream, one_worker(cls))
        with WireConnection(fk.port, timeout=10) as c:
            c.send(request_bytes("GET", "/broken"))
            if cause == b"closed the connection":
                # The head went out already: the only signal left is to cut
                # the response short by closing.
                status, _, _, pairs, _ = c.read_head()
                assert status == 200
                got = c.read_to_eof()
                assert got == b"short"
            else:
                r = c.read_response()
                assert r.status == 502, r
                assert cause in r.body, r.body
        assert http_get(fk.port, "/")[::2] == (200, b"ok\n")


# --- app connections: TCP upstreams, apps that drop idle connections -------------------


@pytest.mark.parametrize("cls", CLASSES)
def test_tcp_upstream(started, cls):
    app = started.tcp_app()
    fk = started.forkd(app.upstream, one_worker(cls, "--request-buffer", "65536"))
    assert http_get(fk.port, "/")[::2] == (200, b"hello\n")
    body = os.urandom(300_000)
    status, headers, got = http_request(fk.port, "POST", "/echo", body=body)
    assert status == 200 and got == body
    with WireConnection(fk.port, timeout=10) as c:
        c.send(request_bytes("GET", "/stream?chunks=3&interval_ms=10&size=64"))
        r = c.read_response()
        assert r.status == 200 and len(r.body) == 192
    status, _, body = http_get(fk.port, "/bytes?n=3000000", timeout=20)
    assert status == 200 and len(body) == 3_000_000


@pytest.mark.parametrize("cls", CLASSES)
def test_tcp_upstream_refused(started, cls):
    port = free_port()  # nothing listens there
    fk = started.forkd("http://127.0.0.1:%d" % port, one_worker(cls))
    status, _, body = http_get(fk.port, "/")
    assert status == 502
    assert b"Connection refused" in body, body


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("transport", ["unix", "tcp"])
def test_app_dropping_idle_connections_loses_no_post(started, cls, transport):
    # The app closes keep-alive connections idle for 0.2 s (as Gunicorn does
    # after --keep-alive): every POST after a pause must still go through,
    # once (a POST that reached a dead connection cannot be retried).
    args = ["--idle-timeout", "0.2"]
    app = started.app(args=args) if transport == "unix" else started.tcp_app(args)
    fk = started.forkd(app.upstream, one_worker(cls))
    for i in range(4):
        time.sleep(0.4)
        body = b"post-%d" % i
        status, headers, got = http_request(fk.port, "POST", "/echo", body=body)
        assert (status, got) == (200, body), (i, status, got)


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("size", [10_000, 500_000, 3_000_000],
                         ids=["buffered", "buffered-unread", "streamed"])
def test_app_answering_before_the_body_is_relayed(started, tmpdir_short, cls, size):
    # An app may refuse an upload from its head alone (413, 401...) and
    # close without reading the body. The client must get that answer, not
    # a 502 for the write that then fails.
    refusal = (b"HTTP/1.1 413 Payload Too Large\r\nContent-Type: text/plain\r\n"
               b"Content-Length: 9\r\nConnection: close\r\n\r\ntoo big!\n")

    def early(req):
        return refusal if req.target == "/upload" else None

    with FakeUpstream(os.path.join(tmpdir_short, "up.sock"), respond_early=early) as up:
        fk = started.forkd(up.upstream, one_worker(cls))  # --request-buffer 1m
        with WireConnection(fk.port, timeout=10) as c:
            c.send(request_bytes("POST", "/upload", [("Content-Length", str(size))]))
            # Send the body while reading, as a real client would.
            sender = threading.Thread(target=lambda: _send_quietly(c.sock, b"u" * size))
            sender.start()
            r = c.read_response()
            sender.join(10)
        assert (r.status, r.body) == (413, b"too big!\n"), r
        assert http_get(fk.port, "/")[::2] == (200, b"ok\n")


def _send_quietly(sock, data):
    try:
        sock.sendall(data)
    except OSError:
        pass  # forkd closed after answering: the rest is not wanted


# --- stalled clients -------------------------------------------------------------------


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("stall", ["head", "body"])
def test_stalled_client_closed_after_timeout(started, tmpdir_short, cls, stall):
    # A client that stops mid-head or mid-body gets 408 and the close after
    # --client-header-timeout / --client-body-timeout, and the app never
    # sees the unfinished request. (An upload in progress counts toward the
    # async cap, admission coming before buffering: with a cap of 2 the
    # other client still fits.)
    with FakeUpstream(os.path.join(tmpdir_short, "up.sock")) as up:
        fk = started.forkd(up.upstream, ["--workers", "1", "--client-header-timeout", "2",
                                         "--client-body-timeout", "2"] + CLASS_ARGS[cls]
                           + (["--worker-connections", "2"] if cls == "async" else []))
        with WireConnection(fk.port, timeout=10) as c:
            if stall == "head":
                c.send(b"POST /stalled HTTP/1.1\r\nHost: x\r\nX-Partial: ")
            else:
                c.send(request_bytes("POST", "/stalled", [("Content-Length", "1000")]) + b"a" * 10)
            start = time.monotonic()
            if cls != "sync":
                # Meanwhile other clients are served.
                assert http_get(fk.port, "/other", timeout=5)[::2] == (200, b"ok\n")
            try:
                rest = c.read_to_eof()
            except socket.timeout:
                pytest.fail("stalled connection still open after 10 s")
            took = time.monotonic() - start
        assert 1.5 <= took <= 5, took
        assert rest.startswith(b"HTTP/1.1 408 "), rest
        assert b"200 OK" not in rest
        assert http_get(fk.port, "/after", timeout=5)[::2] == (200, b"ok\n")
        assert [q.target for q in up.snapshot() if q.target == "/stalled"] == []


@pytest.mark.parametrize("cls", CLASSES)
def test_error_answer_to_head_has_no_body(started, cls):
    # forkd's own answers follow HEAD's rules too: a 502 body sent to a HEAD
    # request would be read as the start of the next response.
    app = started.app()
    fk = started.forkd(app, one_worker(cls))
    with WireConnection(fk.port, timeout=10) as c:
        c.send(request_bytes("HEAD", "/close"))
        r = c.read_response("HEAD")
        assert r.status == 502
        assert int(r.headers["Content-Length"]) > 0  # what a GET would get
        if cls == "sync":
            assert c.closed_by_server()
            return
        c.send(request_bytes("GET", "/"))
        r2 = c.read_response()
        assert (r2.status, r2.body) == (200, b"hello\n")


@pytest.mark.parametrize("cls", CLASSES)
def test_upstream_timeout_is_between_bytes(started, cls):
    # --upstream-timeout bounds the app's silence, not the whole response:
    # a stream that keeps sending completes; one that stalls is cut short.
    app = started.app()
    fk = started.forkd(app, one_worker(cls, "--upstream-timeout", "1"))
    with WireConnection(fk.port, timeout=10) as c:
        c.send(request_bytes("GET", "/stream?chunks=5&interval_ms=400&size=10"))
        r = c.read_response()
        assert r.status == 200 and r.body == b"0123456789" * 5
    mark = LogMark(fk)
    with WireConnection(fk.port, timeout=10) as c:
        start = time.monotonic()
        c.send(request_bytes("GET", "/stream?chunks=3&interval_ms=3000&size=10"))
        status, _, _, pairs, _ = c.read_head()
        assert status == 200
        assert c.read_until(b"\r\n") == b"a\r\n"  # the first chunk arrives
        rest = c.read_to_eof()  # then the connection ends, unterminated
        took = time.monotonic() - start
    assert rest == b"0123456789\r\n", rest
    assert 0.9 <= took <= 2.5, took
    assert mark.wait_for("cut short")
