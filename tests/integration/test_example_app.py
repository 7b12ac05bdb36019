"""The example app (deploy/example-app/app.py) and the harness, without forkd.

Every endpoint is checked directly over the app's unix socket, so the
behaviour the forkd tests rely on is pinned down on its own.
"""

import http.client
import importlib.util
import json
import os
import signal
import socket
import subprocess
import threading
import time

import pytest

from forkd_harness import (APP_PY, PYTHON, ExampleApp, LoadGenerator, UnixHTTPConnection,
                           free_port, http_get, http_request, raw_request, raw_unix_request,
                           short_tmpdir, unix_http_request, wait_until)


def get(app, path, **kw):
    return unix_http_request(app.socket_path, "GET", path, **kw)


def split_response(raw):
    """Splits raw bytes into [(status line, headers bytes)], body remainder."""
    heads = []
    rest = raw
    while rest.startswith(b"HTTP/"):
        head, sep, rest = rest.partition(b"\r\n\r\n")
        assert sep, raw
        heads.append(head)
        if not head.split(b" ", 2)[1].startswith(b"1"):
            break
    return heads, rest


def test_hello(example_app):
    for path in ("/", "/hello"):
        status, headers, body = get(example_app, path)
        assert (status, body) == (200, b"hello\n")
        assert headers["content-type"].startswith("text/plain")
        assert headers["Content-Length"] == "6"


def test_socket_mode_0666(example_app):
    assert os.stat(example_app.socket_path).st_mode & 0o777 == 0o666


def test_pid_and_cpu(example_app):
    status, _, body = get(example_app, "/pid")
    assert status == 200 and int(body) == example_app.pid
    start = time.monotonic()
    status, _, body = get(example_app, "/cpu?ms=50")
    assert time.monotonic() - start >= 0.05
    assert status == 200 and body == b"pid=%d cpu_ms=50\n" % example_app.pid


def test_sleep(example_app):
    start = time.monotonic()
    status, _, body = get(example_app, "/sleep?ms=120")
    assert time.monotonic() - start >= 0.12
    assert status == 200 and b"slept_ms=120" in body


def test_sleep_default(example_app):
    status, _, body = get(example_app, "/sleep")
    assert status == 200 and b"slept_ms=100" in body


@pytest.mark.parametrize("n", [0, 1, 65535, 65536, 65537, 3_000_001])
def test_bytes_exact_length(example_app, n):
    status, headers, body = get(example_app, "/bytes?n=%d" % n)
    assert status == 200
    assert headers["Content-Length"] == str(n)
    assert len(body) == n


def test_head_has_no_body(example_app):
    conn = UnixHTTPConnection(example_app.socket_path)
    conn.request("HEAD", "/bytes?n=100")
    resp = conn.getresponse()
    assert resp.status == 200 and resp.getheader("Content-Length") == "100"
    assert resp.read() == b""
    conn.request("GET", "/hello")  # same connection still in sync
    assert conn.getresponse().read() == b"hello\n"
    conn.close()


@pytest.mark.parametrize("path", [
    "/cpu?ms=abc", "/sleep?ms=-1", "/bytes?n=x", "/bytes?n=-5", "/status?code=99",
    "/status?code=600", "/stream?chunks=z", "/stream?size=0", "/continue?code=200",
])
def test_bad_params_400(example_app, path):
    status, headers, body = get(example_app, path)
    assert status == 400, body
    assert body.startswith(b"bad request")


def test_unknown_path_404(example_app):
    assert get(example_app, "/no/such/thing")[0] == 404


def test_stream_is_chunked_and_spaced(example_app):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect(example_app.socket_path)
    start = time.monotonic()
    sock.sendall(b"GET /stream?chunks=4&interval_ms=300&size=10 HTTP/1.1\r\n"
                 b"Host: x\r\nConnection: close\r\n\r\n")
    raw = b""
    first_chunk_at = None
    while True:
        piece = sock.recv(65536)
        if not piece:
            break
        raw += piece
        if first_chunk_at is None and b"\r\n\r\na\r\n" in raw:
            first_chunk_at = time.monotonic() - start
    total = time.monotonic() - start
    sock.close()
    heads, body = split_response(raw)
    assert heads[0].startswith(b"HTTP/1.1 200")
    assert b"transfer-encoding: chunked" in heads[0].lower()
    assert b"content-length" not in heads[0].lower()
    assert body == (b"a\r\n" + b"0123456789" + b"\r\n") * 4 + b"0\r\n\r\n"
    assert total >= 0.9  # three 300 ms gaps
    assert first_chunk_at is not None and first_chunk_at < total - 0.5


def test_stream_read_by_http_client(example_app):
    status, headers, body = get(example_app, "/stream?chunks=3&interval_ms=0&size=70000")
    assert status == 200 and headers["transfer-encoding"] == "chunked"
    assert len(body) == 3 * 70000


@pytest.mark.parametrize("code", [200, 201, 302, 404, 418, 429, 500, 502, 503, 504])
def test_status(example_app, code):
    status, _, body = get(example_app, "/status?code=%d" % code)
    assert status == code and body == b"status %d\n" % code


def test_status_204_has_no_body(example_app):
    raw = raw_unix_request(example_app.socket_path,
                           b"GET /status?code=204 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    heads, body = split_response(raw)
    assert heads[0].startswith(b"HTTP/1.1 204") and body == b""


def test_fail(example_app):
    status, _, body = get(example_app, "/fail")
    assert status == 500 and body == b"fail\n"


def test_close_gives_no_response(example_app):
    raw = raw_unix_request(example_app.socket_path, b"GET /close HTTP/1.1\r\nHost: x\r\n\r\n")
    assert raw == b""


def test_close_after_body(example_app):
    raw = raw_unix_request(example_app.socket_path,
                           b"POST /close HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
    assert raw == b""


def test_reset_gives_no_response(example_app):
    raw = raw_unix_request(example_app.socket_path, b"GET /reset HTTP/1.1\r\nHost: x\r\n\r\n")
    assert raw == b""
    assert get(example_app, "/hello")[0] == 200  # the server lives on


def test_echo_content_length(example_app):
    body = os.urandom(200_000)
    status, headers, got = unix_http_request(
        example_app.socket_path, "POST", "/echo", body=body,
        headers={"X-Forwarded-For": "10.0.0.1", "X-Forwarded-Proto": "https",
                 "X-Forwarded-Host": "example.test", "X-Request-Id": "abc-123"})
    assert status == 200 and got == body
    assert headers["X-Echo-Method"] == "POST"
    assert headers["X-Echo-Length"] == str(len(body))
    assert headers["X-Seen-X-Forwarded-For"] == "10.0.0.1"
    assert headers["X-Seen-X-Forwarded-Proto"] == "https"
    assert headers["X-Seen-X-Forwarded-Host"] == "example.test"
    assert headers["X-Seen-X-Request-Id"] == "abc-123"
    assert headers["X-Seen-Content-Length"] == str(len(body))
    seen = headers["X-Seen-Headers"].split(",")
    assert {"x-forwarded-for", "x-request-id", "content-length", "host"} <= set(seen)


def test_echo_absent_headers_not_invented(example_app):
    status, headers, _ = unix_http_request(example_app.socket_path, "PUT", "/echo", body=b"x")
    assert status == 200 and headers["X-Echo-Method"] == "PUT"
    assert "X-Seen-X-Forwarded-For" not in headers
    assert "X-Seen-X-Request-Id" not in headers


def test_echo_connection_header(example_app):
    raw = raw_unix_request(example_app.socket_path,
                           b"POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                           b"Content-Length: 2\r\n\r\nhi")
    heads, body = split_response(raw)
    assert b"\r\nX-Seen-Connection: close" in heads[0]
    assert body == b"hi"


def test_echo_chunked_request(example_app):
    raw = raw_unix_request(
        example_app.socket_path,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"Connection: close\r\n\r\n"
        b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Trailer: t\r\n\r\n")
    heads, body = split_response(raw)
    assert heads[0].startswith(b"HTTP/1.1 200")
    assert b"X-Echo-Length: 12" in heads[0]
    assert b"X-Seen-Transfer-Encoding: chunked" in heads[0]
    assert body == b"hello, world"


def test_echo_any_method(example_app):
    status, headers, body = unix_http_request(example_app.socket_path, "PROPFIND", "/echo",
                                              body=b"<x/>")
    assert status == 200 and headers["X-Echo-Method"] == "PROPFIND" and body == b"<x/>"


def test_bad_chunked_body_400(example_app):
    raw = raw_unix_request(example_app.socket_path,
                           b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                           b"\r\nzz\r\n")
    assert raw.startswith(b"HTTP/1.1 400")


def test_expect_100_continue(example_app):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(5)
    sock.connect(example_app.socket_path)
    sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
                 b"Expect: 100-continue\r\nConnection: close\r\n\r\n")
    interim = sock.recv(1024)
    assert interim.startswith(b"HTTP/1.1 100")
    sock.sendall(b"data")
    rest = b""
    while True:
        piece = sock.recv(65536)
        if not piece:
            break
        rest += piece
    sock.close()
    assert rest.startswith(b"HTTP/1.1 200") and rest.endswith(b"\r\n\r\ndata")


def test_headers_json(example_app):
    status, headers, body = get(example_app, "/headers", headers={"X-A": "1", "X-Request-Id": "q"})
    assert status == 200 and headers["content-type"] == "application/json"
    seen = json.loads(body)
    assert seen["x-a"] == "1" and seen["x-request-id"] == "q" and "host" in seen


def test_early_hints_before_final_response(example_app):
    raw = raw_unix_request(example_app.socket_path,
                           b"GET /continue HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    heads, body = split_response(raw)
    assert len(heads) == 2, raw
    assert heads[0].startswith(b"HTTP/1.1 103")
    assert b"\r\nLink: </style.css>; rel=preload; as=style" in heads[0]
    assert heads[1].startswith(b"HTTP/1.1 200")
    assert body == b"continued\n"


def test_keep_alive_reuses_connection(example_app):
    conn = UnixHTTPConnection(example_app.socket_path)
    socks = set()
    for path in ("/hello", "/bytes?n=70000", "/stream?chunks=2&interval_ms=0", "/fail", "/hello"):
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        assert not resp.will_close
        socks.add(id(conn.sock))
    assert len(socks) == 1
    conn.close()


def test_concurrent_requests_are_threaded(example_app):
    results = []

    def call():
        results.append(get(example_app, "/sleep?ms=500")[0])

    start = time.monotonic()
    threads = [threading.Thread(target=call) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(15)
    assert results == [200] * 8
    # Serial would take 4 s; threaded takes about 0.5 s.
    assert time.monotonic() - start < 3.0


def test_handler_exception_gives_500_and_server_survives(tmp_short):
    spec = importlib.util.spec_from_file_location("forkd_example_app", APP_PY)
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)

    def boom(handler, query, body, length):
        raise RuntimeError("boom")

    app.ROUTES["/boom"] = boom
    path = os.path.join(tmp_short, "inproc.sock")
    server = app.UnixServer(path, app.Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                              daemon=True)
    thread.start()
    try:
        status, _, body = unix_http_request(path, "GET", "/boom")
        assert status == 500 and body == b"internal error\n"
        assert unix_http_request(path, "GET", "/hello")[0] == 200
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_sigterm_removes_socket_and_restart(example_app):
    path = example_app.socket_path
    old_pid = example_app.pid
    assert example_app.stop() == 0
    assert not os.path.exists(path)
    example_app.start()
    assert example_app.pid != old_pid
    assert int(get(example_app, "/pid")[2]) == example_app.pid


def test_stale_socket_is_replaced(tmp_short):
    path = os.path.join(tmp_short, "app.sock")
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(path)
    stale.close()  # the file stays, nobody listens
    app = ExampleApp(tmpdir=tmp_short)
    try:
        app.start()
        assert get(app, "/hello")[0] == 200
    finally:
        app.stop()


def test_sigint_exit(tmp_short):
    app = ExampleApp(tmpdir=tmp_short).start()
    app.proc.send_signal(signal.SIGINT)
    assert app.proc.wait(10) == 0
    assert not os.path.exists(app.socket_path)


@pytest.fixture
def tcp_app(tmp_short):
    proc = subprocess.Popen([PYTHON, APP_PY, "--port", "0"], stdout=subprocess.PIPE,
                            stdin=subprocess.DEVNULL)
    try:
        port = int(proc.stdout.readline())
        wait_until(lambda: http_get(port, "/hello", timeout=1)[0] == 200, 10, what="tcp app")
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


def test_tcp_mode_and_harness_clients(tcp_app):
    status, headers, body = http_get(tcp_app, "/hello")
    assert (status, body) == (200, b"hello\n") and headers["content-length"] == "6"
    status, headers, body = http_request(tcp_app, "POST", "/echo", body=b"abc")
    assert status == 200 and body == b"abc"
    raw = raw_request(tcp_app, b"GET /pid HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 200") and raw.endswith(b"\n")
    # A malformed Content-Length: the app answers 400 and closes.
    raw = raw_request(tcp_app, b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: zz\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 400") and b"Connection: close" in raw
    # /reset over TCP is a real RST: the reader sees nothing, not a response.
    assert raw_request(tcp_app, b"GET /reset HTTP/1.1\r\nHost: x\r\n\r\n") == b""


def test_raw_request_timeout_is_bounded(tcp_app):
    start = time.monotonic()
    # An incomplete request: the app waits for more, we give up after 1 s.
    assert raw_request(tcp_app, b"GET / HTTP/1.1\r\n", timeout=1) == b""
    assert time.monotonic() - start < 3


def test_load_generator_counts(tcp_app):
    load = LoadGenerator("http://127.0.0.1:%d/hello" % tcp_app, threads=3, duration=10,
                         max_requests=50)
    summary = load.start().wait()
    assert summary.ok == 150 and summary.failed == 0, summary
    load = LoadGenerator("http://127.0.0.1:%d/fail" % tcp_app, threads=2, duration=10,
                         max_requests=5)
    summary = load.start().wait()
    assert summary.ok == 0 and summary.failed == 10 and summary.reasons[0] == "HTTP 500"


def test_load_generator_time_bound_and_refused():
    port = free_port()  # nobody listens
    start = time.monotonic()
    load = LoadGenerator("http://127.0.0.1:%d/" % port, threads=2, duration=0.5)
    summary = load.start().wait()
    assert time.monotonic() - start < 3
    assert summary.ok == 0 and summary.failed > 0
    assert "ConnectionRefusedError" in summary.reasons[0]


def test_load_generator_stop(tcp_app):
    load = LoadGenerator("http://127.0.0.1:%d/sleep?ms=20" % tcp_app, threads=2, duration=60)
    load.start()
    time.sleep(0.5)
    start = time.monotonic()
    summary = load.stop()
    assert time.monotonic() - start < 5
    assert summary.ok > 0 and summary.failed == 0 and not load.running()


def test_short_tmpdir_fits_socket_paths():
    path = short_tmpdir()
    try:
        assert len(os.path.join(path, "forkd-app.sock").encode()) < 108
    finally:
        os.rmdir(path)
