"""--upstream-protocol h2c: a gRPC service on a unix socket behind forkd.

The service is Python grpcio (Debian's python3-grpcio) with generic handlers
and raw-bytes messages, listening on unix:<tmp>/app.sock in this process, so
the tests can see what the handlers saw (cancellations, metadata, how many
connections reached the app). The client is a grpcio channel to forkd's
127.0.0.1 port (h2c with prior knowledge). Loopback only; every call has a
deadline.
"""

import contextlib
import os
import shutil
import signal
import subprocess
import threading
import time
from concurrent import futures

import pytest

import forkd_harness
import metrics_util
from forkd_harness import FORKD_BIN, Forkd, free_port, http_get, wait_until

# python3-grpcio comes from scripts/install-deps.sh; a missing one fails
# here rather than skipping, so CI shows the missing install step.
import grpc  # noqa: E402

ASYNC = ["--worker-class", "async", "--workers", "1"]
H2C = ["--upstream-protocol", "h2c"]
BIG = 64 * 1024 * 1024
CHANNEL_OPTIONS = [("grpc.max_receive_message_length", BIG),
                   ("grpc.max_send_message_length", BIG)]
SERVICE = "forkd.test.Echo"


def _ident(b):
    return b


class App:
    """The gRPC test service and what its handlers observed."""

    def __init__(self, path, max_concurrent_streams=None, tcp=False):
        self.path = path
        self.lock = threading.Lock()
        self.metadata = []          # invocation metadata of Unary calls
        self.cancelled = []         # ids of Sleep calls the app saw cancelled
        self.started = {}           # id -> threading.Event, a Sleep began
        self.cancel_seen = {}       # id -> threading.Event
        self.stream_sent_at = []    # monotonic time of each streamed message
        options = list(CHANNEL_OPTIONS)
        if max_concurrent_streams:
            options.append(("grpc.max_concurrent_streams", max_concurrent_streams))
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=64),
                                  options=options)
        handlers = {
            "Unary": grpc.unary_unary_rpc_method_handler(self.unary, _ident, _ident),
            "ServerStream": grpc.unary_stream_rpc_method_handler(
                self.server_stream, _ident, _ident),
            "ClientStream": grpc.stream_unary_rpc_method_handler(
                self.client_stream, _ident, _ident),
            "Bidi": grpc.stream_stream_rpc_method_handler(self.bidi, _ident, _ident),
            "Sleep": grpc.unary_unary_rpc_method_handler(self.sleep, _ident, _ident),
            "Fail": grpc.unary_unary_rpc_method_handler(self.fail, _ident, _ident),
        }
        self.server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(SERVICE, handlers),))
        if tcp:
            self.port = self.server.add_insecure_port("127.0.0.1:0")
        else:
            self.server.add_insecure_port("unix:" + path)

    def start(self):
        self.server.start()
        return self

    def stop(self):
        self.server.stop(grace=None).wait(5)

    # -- handlers --

    def unary(self, request, context):
        with self.lock:
            self.metadata.append(dict(context.invocation_metadata()))
        return b"echo:" + request

    def server_stream(self, request, context):
        count, pause_ms = (int(x) for x in request.decode().split(","))
        for i in range(count):
            with self.lock:
                self.stream_sent_at.append(time.monotonic())
            yield b"msg-%d" % i
            if pause_ms:
                time.sleep(pause_ms / 1000)

    def client_stream(self, request_iterator, context):
        n = total = 0
        for m in request_iterator:
            n += 1
            total += len(m)
        return b"%d messages, %d bytes" % (n, total)

    def bidi(self, request_iterator, context):
        for m in request_iterator:
            yield b"re:" + m

    def sleep(self, request, context):
        call_id, seconds = request.decode().split(",")
        with self.lock:
            started = self.started.setdefault(call_id, threading.Event())
            seen = self.cancel_seen.setdefault(call_id, threading.Event())

        def on_done():
            if not context.is_active() or context.cancelled():
                with self.lock:
                    self.cancelled.append(call_id)
                seen.set()
        context.add_callback(on_done)
        started.set()
        deadline = time.monotonic() + float(seconds)
        while time.monotonic() < deadline and context.is_active():
            time.sleep(0.01)
        if not context.is_active():
            with self.lock:
                if call_id not in self.cancelled:
                    self.cancelled.append(call_id)
            seen.set()
        return b"slept"

    def fail(self, request, context):
        context.abort(grpc.StatusCode.FAILED_PRECONDITION, "no such widget: " + request.decode())

    def events(self, call_id):
        with self.lock:
            return (self.started.setdefault(call_id, threading.Event()),
                    self.cancel_seen.setdefault(call_id, threading.Event()))


def app_connections(path):
    """Connected unix sockets bound to path: the app's accepted connections."""
    n = 0
    with open("/proc/net/unix") as f:
        next(f)
        for line in f:
            parts = line.split()
            if len(parts) >= 8 and parts[7] == path and parts[5] == "03":
                n += 1
    return n


class Client:
    def __init__(self, target, credentials=None, options=()):
        opts = CHANNEL_OPTIONS + list(options)
        if credentials is None:
            self.channel = grpc.insecure_channel(target, options=opts)
        else:
            self.channel = grpc.secure_channel(target, credentials, options=opts)
        m = "/%s/" % SERVICE
        self.unary = self.channel.unary_unary(m + "Unary")
        self.server_stream = self.channel.unary_stream(m + "ServerStream")
        self.client_stream = self.channel.stream_unary(m + "ClientStream")
        self.bidi = self.channel.stream_stream(m + "Bidi")
        self.sleep = self.channel.unary_unary(m + "Sleep")
        self.fail = self.channel.unary_unary(m + "Fail")

    def close(self):
        self.channel.close()


# --- fixtures -----------------------------------------------------------------------


@contextlib.contextmanager
def grpc_stack(forkd_args=(), access_log=False, **app_kw):
    """A grpcio App on <tmp>/app.sock, forkd (async, h2c upstream, plus
    `forkd_args`; with `access_log`, an access log at fk.access_log) in
    front of it and a Client to forkd; yields (app, fk, client, tmp) and
    tears all of it down."""
    tmp = forkd_harness.short_tmpdir("fkg")
    app = App(os.path.join(tmp, "app.sock"), **app_kw).start()
    fk = client = None
    try:
        args = ASYNC + H2C + list(forkd_args)
        access = os.path.join(tmp, "access.log")
        if access_log:
            args += ["--access-logfile", access]
        fk = Forkd("unix:" + app.path, args, tmpdir=tmp).start()
        fk.access_log = access
        client = Client("127.0.0.1:%d" % fk.port)
        yield app, fk, client, tmp
    finally:
        if client is not None:
            client.close()
        if fk is not None:
            fk.cleanup()
        app.stop()
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def env():
    mport = free_port()
    with grpc_stack(["--upstream-timeout", "2", "--metrics-bind", "127.0.0.1:%d" % mport],
                    access_log=True) as (app, fk, client, _):
        fk.metrics_port = mport
        yield app, fk, client


# --- calls --------------------------------------------------------------------------


def test_unary_passes_forwarded_metadata(env):
    app, fk, c = env
    assert c.unary(b"hi", timeout=10, metadata=(("x-request-id", "rid-123"),)) == b"echo:hi"
    md = app.metadata[-1]
    assert md.get("x-request-id") == "rid-123"
    assert md.get("x-forwarded-for") == "127.0.0.1"
    assert md.get("x-forwarded-proto") == "http"
    assert md.get("x-forwarded-host", "").startswith("127.0.0.1:")


def test_server_streaming_arrives_as_produced(env):
    app, fk, c = env
    # 200 quick messages: all arrive, in order.
    got = list(c.server_stream(b"200,0", timeout=20))
    assert got == [b"msg-%d" % i for i in range(200)]
    # 5 messages 300 ms apart: the first is here before the app sent the
    # last one (no response buffering in forkd).
    it = c.server_stream(b"5,300", timeout=20)
    first = next(it)
    first_at = time.monotonic()
    rest = list(it)
    assert first == b"msg-0" and len(rest) == 4
    assert first_at < app.stream_sent_at[-1]


def test_client_streaming_and_bidi(env):
    app, fk, c = env
    msgs = [b"x" * (i * 1000) for i in range(1, 51)]
    assert c.client_stream(iter(msgs), timeout=20) == b"50 messages, %d bytes" % sum(map(len, msgs))

    # Bidi in lock step: each answer comes back before the next message is
    # sent, so nothing can be buffered up to the end of the request.
    q = []
    cond = threading.Condition()

    def requests():
        for i in range(20):
            yield b"m%d" % i
            with cond:
                assert cond.wait_for(lambda: len(q) > i, timeout=10), "no answer to m%d" % i
    for reply in c.bidi(requests(), timeout=30):
        with cond:
            q.append(reply)
            cond.notify_all()
    assert q == [b"re:m%d" % i for i in range(20)]


def test_status_and_message_pass_through_trailers(env):
    app, fk, c = env
    with pytest.raises(grpc.RpcError) as e:
        c.fail(b"42", timeout=10)
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert e.value.details() == "no such widget: 42"


def test_deadline_exceeded_and_forkd_keeps_serving(env):
    app, fk, c = env
    with pytest.raises(grpc.RpcError) as e:
        c.sleep(b"dl,5", timeout=0.5)
    assert e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    _, seen = app.events("dl")
    assert seen.wait(5), "the app never saw the expired call end"
    assert c.unary(b"after", timeout=10) == b"echo:after"


def test_cancelled_call_reaches_the_app(env):
    app, fk, c = env
    started, seen = app.events("cx")
    fut = c.sleep.future(b"cx,10", timeout=30)
    assert started.wait(10), "the call never reached the app"
    fut.cancel()
    assert seen.wait(5), "the app did not see the cancellation"
    assert "cx" in app.cancelled
    assert c.unary(b"next", timeout=10) == b"echo:next"


def test_large_messages_both_ways(env):
    app, fk, c = env
    big = os.urandom(6 * 1024 * 1024)
    assert c.unary(big, timeout=60) == b"echo:" + big
    got = list(c.bidi(iter([big[:3_000_000], big[3_000_000:]]), timeout=60))
    assert got == [b"re:" + big[:3_000_000], b"re:" + big[3_000_000:]]


def test_concurrent_calls_share_one_app_connection(env):
    app, fk, c = env
    calls = [c.sleep.future(b"mx%d,0.3" % i, timeout=30) for i in range(40)]
    calls += [c.unary.future(b"u%d" % i, timeout=30) for i in range(40)]
    results = [f.result() for f in calls]
    assert results[:40] == [b"slept"] * 40
    assert results[40:] == [b"echo:u%d" % i for i in range(40)]
    # One worker multiplexes all of them: the app accepted one connection
    # (two if a reconnect raced), not one per call.
    assert 1 <= app_connections(app.path) <= 2


def test_http1_client_gets_505(env):
    app, fk, c = env
    status, _, body = http_get(fk.port, "/hello")
    assert status == 505
    assert b"h2c" in body and b"HTTP/2" in body


def test_access_log_and_metrics_count_calls(env):
    app, fk, c = env
    before = metrics_util.quiet(fk.metrics_port)
    for i in range(5):
        assert c.unary(b"m%d" % i, timeout=10, metadata=(("x-request-id", "logtag-%d" % i),)) \
            == b"echo:m%d" % i

    def lines():
        with open(fk.access_log) as f:
            return [ln for ln in f if "/forkd.test.Echo/Unary" in ln and "HTTP/2.0" in ln]
    wait_until(lambda: len(lines()) >= 5, 5, what="access log lines")
    assert any('"POST /forkd.test.Echo/Unary HTTP/2.0" 200' in ln for ln in lines())

    def delta(m, name, **labels):
        return metrics_util.value(m, name, **labels) - metrics_util.value(before, name, **labels)

    def settled():
        m = metrics_util.metrics(fk.metrics_port)
        return m if delta(m, "forkd_requests_by_protocol_total", protocol="http2",
                          status_class="2xx") >= 5 else None
    wait_until(settled, 5, what="metrics")
    m = metrics_util.quiet(fk.metrics_port)
    assert delta(m, "forkd_requests_by_protocol_total", protocol="http2", status_class="2xx") == 5
    assert delta(m, "forkd_requests_total", method="POST", status_class="2xx") == 5


# --- the app's side -----------------------------------------------------------------


def test_missing_app_is_unavailable_until_it_comes_back():
    tmp = forkd_harness.short_tmpdir("fkg")
    path = os.path.join(tmp, "app.sock")
    fk = Forkd("unix:" + path, ASYNC + H2C, tmpdir=tmp).start()
    client = Client("127.0.0.1:%d" % fk.port)
    app = None
    try:
        with pytest.raises(grpc.RpcError) as e:
            client.unary(b"x", timeout=10)
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE
        app = App(path).start()
        # grpcio may wait out its reconnect backoff; forkd answers at once.
        deadline = time.monotonic() + 20
        while True:
            try:
                assert client.unary(b"back", timeout=5) == b"echo:back"
                break
            except grpc.RpcError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        with open(fk.error_log_path) as f:
            assert "502" in f.read()
    finally:
        client.close()
        fk.cleanup()
        if app:
            app.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def test_app_stream_limit_opens_more_connections():
    with grpc_stack(max_concurrent_streams=4) as (app, fk, client, _):
        # Warm up one connection so forkd knows the app's limit.
        assert client.unary(b"w", timeout=10) == b"echo:w"
        calls = [client.sleep.future(b"lim%d,0.5" % i, timeout=30) for i in range(12)]
        assert [f.result() for f in calls] == [b"slept"] * 12
        assert app_connections(app.path) >= 3


# --- start-up checks ----------------------------------------------------------------


@pytest.mark.parametrize("args, expect", [
    (["--upstream-protocol", "h3"], "--upstream-protocol: \"h3\" is not an upstream protocol"),
    (["--worker-class", "gthread", "--upstream-protocol", "h2c"], "needs --worker-class async"),
    (["--worker-class", "sync", "--upstream-protocol", "h2c"], "needs --worker-class async"),
])
def test_bad_upstream_protocol_stops_start_up(args, expect):
    p = subprocess.run([FORKD_BIN, "--bind", "127.0.0.1:%d" % free_port(),
                        "--upstream", "unix:/tmp/none.sock"] + args,
                       capture_output=True, timeout=20, text=True)
    assert p.returncode != 0
    assert expect in p.stderr, p.stderr


# --- timeouts, the cap, graceful stop, TLS -------------------------------------------


@pytest.fixture(scope="module")
def tight():
    """--upstream-timeout 1 and at most 2 calls in flight."""
    with grpc_stack(["--upstream-timeout", "1", "--worker-connections", "2"]) as (
            app, fk, client, _):
        yield app, fk, client


def test_silent_app_gets_504_and_sees_the_cancel(tight):
    app, fk, c = tight
    _, seen = app.events("slow")
    with pytest.raises(grpc.RpcError) as e:
        c.sleep(b"slow,5", timeout=30)
    # HTTP 504 without grpc-status: grpcio maps it to UNAVAILABLE.
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "504" in e.value.details()
    assert seen.wait(5), "the app was not told the call is over"
    with open(fk.error_log_path) as f:
        assert "504 for POST /forkd.test.Echo/Sleep" in f.read()


def test_stream_with_regular_messages_outlives_the_upstream_timeout(tight):
    app, fk, c = tight
    # 8 messages 400 ms apart: 2.8 s in all, never 1 s of silence.
    got = list(c.server_stream(b"8,400", timeout=30))
    assert got == [b"msg-%d" % i for i in range(8)]


def test_stream_idle_past_the_timeout_is_reset(tight):
    app, fk, c = tight
    # 2 messages with 1.5 s between them: the stream is cut after the first.
    it = c.server_stream(b"2,1500", timeout=30)
    assert next(it) == b"msg-0"
    with pytest.raises(grpc.RpcError) as e:
        next(it)
    assert e.value.code() in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNAVAILABLE,
                              grpc.StatusCode.UNKNOWN)


def test_calls_past_the_in_flight_cap_get_503(tight):
    app, fk, c = tight
    calls = [c.sleep.future(b"cap%d,0.6" % i, timeout=30) for i in range(4)]
    ok = refused = 0
    for f in calls:
        try:
            assert f.result() == b"slept"
            ok += 1
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.UNAVAILABLE, e
            assert "503" in e.details()
            refused += 1
    assert ok == 2 and refused == 2
    assert c.unary(b"then", timeout=10) == b"echo:then"


def test_graceful_stop_lets_open_calls_finish():
    with grpc_stack(["--graceful-timeout", "20"]) as (app, fk, client, _):
        started, _ = app.events("gs")
        fut = client.sleep.future(b"gs,1.5", timeout=30)
        assert started.wait(10)
        fk.signal(signal.SIGTERM)
        assert fut.result() == b"slept"
        assert fk.proc.wait(20) == 0


def test_over_tls_with_alpn_h2():
    # openssl comes from scripts/install-deps.sh: a missing one fails below.
    tmp = forkd_harness.short_tmpdir("fkg")
    run = lambda *a: subprocess.run(("openssl",) + a, cwd=tmp, check=True,
                                    capture_output=True, timeout=30)
    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=forkd grpc test CA",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")
    run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost")
    with open(os.path.join(tmp, "server.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-out", "server.pem", "-extfile", "server.ext")
    app = App(os.path.join(tmp, "app.sock")).start()
    fk = Forkd("unix:" + app.path,
               ASYNC + H2C + ["--certfile", os.path.join(tmp, "server.pem"),
                              "--keyfile", os.path.join(tmp, "server.key")],
               tmpdir=tmp, wait_ready=False).start()
    with open(os.path.join(tmp, "ca.pem"), "rb") as f:
        creds = grpc.ssl_channel_credentials(root_certificates=f.read())
    client = Client("127.0.0.1:%d" % fk.port, creds)  # the certificate names the IP: no DNS
    try:
        deadline = time.monotonic() + 20
        while True:  # the port answers once the workers run
            try:
                assert client.unary(b"tls", timeout=5) == b"echo:tls"
                break
            except grpc.RpcError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        assert app.metadata[-1].get("x-forwarded-proto") == "https"
        assert list(client.server_stream(b"20,0", timeout=10)) == [b"msg-%d" % i
                                                                    for i in range(20)]
    finally:
        client.close()
        fk.cleanup()
        app.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def test_app_goaway_lets_open_calls_finish_and_new_ones_reconnect():
    tmp = forkd_harness.short_tmpdir("fkg")
    path = os.path.join(tmp, "app.sock")
    old = App(path).start()
    fk = Forkd("unix:" + path, ASYNC + H2C, tmpdir=tmp).start()
    client = Client("127.0.0.1:%d" % fk.port)
    new = None
    try:
        assert client.unary(b"1", timeout=10) == b"echo:1"
        started, _ = old.events("ga")
        slow = client.sleep.future(b"ga,1.5", timeout=30)
        assert started.wait(10)
        # The old app says GOAWAY and finishes what it has; a new one
        # takes over the socket path.
        stopping = old.server.stop(grace=10)
        new = App(path).start()
        deadline = time.monotonic() + 20
        while True:
            try:
                assert client.unary(b"2", timeout=5) == b"echo:2"
                break
            except grpc.RpcError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        assert slow.result() == b"slept"
        assert stopping.wait(15)
        assert any(md for md in new.metadata), "the new call did not reach the new app"
    finally:
        client.close()
        fk.cleanup()
        if new:
            new.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def test_loopback_tcp_app():
    tmp = forkd_harness.short_tmpdir("fkg")
    app = App(None, tcp=True).start()
    fk = Forkd("http://127.0.0.1:%d" % app.port, ASYNC + H2C, tmpdir=tmp).start()
    client = Client("127.0.0.1:%d" % fk.port)
    try:
        assert client.unary(b"tcp", timeout=10) == b"echo:tcp"
        assert list(client.bidi(iter([b"a", b"b"]), timeout=10)) == [b"re:a", b"re:b"]
    finally:
        client.close()
        fk.cleanup()
        app.stop()
        shutil.rmtree(tmp, ignore_errors=True)


# --- an app that refuses and resets streams (raw HTTP/2, python3-h2) -----------------


class RawH2App:
    """An h2c app on a unix socket, written with python3-h2: echoes each
    request body as a gRPC answer, except that it refuses the first
    `refuse` streams unprocessed (RST_STREAM REFUSED_STREAM) and resets
    streams whose path ends in /Reset after one DATA frame."""

    def __init__(self, path, refuse=0):
        import socket as socketlib
        self.path = path
        self.refuse = refuse
        self.requests = 0  # streams that reached the app, refused ones too
        self.sock = socketlib.socket(socketlib.AF_UNIX, socketlib.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.stopped = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def stop(self):
        self.stopped = True
        self.thread.join(5)
        self.sock.close()

    def _accept(self):
        while not self.stopped:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        import h2.config
        import h2.connection
        import h2.events
        import h2.errors
        h2c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
        h2c.initiate_connection()
        try:
            conn.sendall(h2c.data_to_send())
        except OSError:  # forkd's start-up check connects and leaves
            conn.close()
            return
        paths, bodies = {}, {}
        conn.settimeout(0.2)
        while not self.stopped:
            try:
                data = conn.recv(65536)
            except OSError:
                continue
            if not data:
                break
            for ev in h2c.receive_data(data):
                if isinstance(ev, h2.events.RequestReceived):
                    paths[ev.stream_id] = dict(ev.headers).get(b":path", b"")
                    bodies[ev.stream_id] = b""
                    self.requests += 1
                elif isinstance(ev, h2.events.DataReceived):
                    bodies[ev.stream_id] += ev.data
                    h2c.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                elif isinstance(ev, h2.events.StreamEnded):
                    sid = ev.stream_id
                    if self.refuse > 0:
                        self.refuse -= 1
                        h2c.reset_stream(sid, h2.errors.ErrorCodes.REFUSED_STREAM)
                        continue
                    h2c.send_headers(sid, [(":status", "200"),
                                           ("content-type", "application/grpc")])
                    if paths[sid].endswith(b"/Reset"):
                        h2c.send_data(sid, bodies[sid][:5])
                        h2c.reset_stream(sid, h2.errors.ErrorCodes.INTERNAL_ERROR)
                        continue
                    h2c.send_data(sid, bodies[sid])
                    h2c.send_headers(sid, [("grpc-status", "0")], end_stream=True)
            try:
                conn.sendall(h2c.data_to_send())
            except OSError:
                break  # forkd went away (end of the test)
        conn.close()


@pytest.fixture
def raw_app():
    import h2.connection  # noqa: F401  python3-h2, as above
    tmp = forkd_harness.short_tmpdir("fkg")
    made = []

    def make(refuse=0):
        app = RawH2App(os.path.join(tmp, "app.sock"), refuse=refuse)
        fk = Forkd("unix:" + app.path, ASYNC + H2C, tmpdir=tmp).start()
        client = grpc.insecure_channel("127.0.0.1:%d" % fk.port)
        made.append((app, fk, client))
        return app, fk, client
    yield make
    for app, fk, client in made:
        client.close()
        fk.cleanup()
        app.stop()
    shutil.rmtree(tmp, ignore_errors=True)


def test_refused_stream_is_sent_again(raw_app):
    app, fk, channel = raw_app(refuse=1)
    call = channel.unary_unary("/forkd.test.Echo/Unary")
    assert call(b"once more", timeout=10) == b"once more"
    assert app.requests == 2  # refused, then served


def test_app_reset_mid_response_resets_the_client_stream(raw_app):
    app, fk, channel = raw_app()
    call = channel.unary_unary("/forkd.test.Echo/Reset")
    with pytest.raises(grpc.RpcError) as e:
        call(b"x" * 100, timeout=10)
    assert e.value.code() == grpc.StatusCode.INTERNAL
    # The worker is fine: the next call is answered.
    assert channel.unary_unary("/forkd.test.Echo/Unary")(b"ok", timeout=10) == b"ok"
