"""Whom forkd believes (issue 13 item 3), against the real binary and app.

- The client's proxy facts (X-Forwarded-*, Forwarded, X-Real-IP, and the
  same names spelled with '_') never reach the app unless the peer is in
  --forwarded-allow-ips; then they pass and X-Forwarded-For gets the peer
  appended. HTTP/1.1 and HTTP/2 (prior knowledge), every worker class, and
  the h2c bridge to a gRPC app.
- --header-map refuse answers 400; drop (the default) removes the fields.
- --proxy-protocol: PROXY v1 and v2 headers from raw sockets; the address
  they give is the client's in X-Forwarded-For, the access log and the
  --forwarded-allow-ips check; a peer outside --proxy-allow-ips, a missing
  or bad header are closed (counted, logged); HTTP/2 and TLS after the
  header.
"""

import json
import os
import re
import shutil
import socket
import ssl
import struct
import subprocess
import tempfile
import time

import pytest

import metrics_util
from forkd_harness import free_port, wait_until
from proxy_fixtures import CLASS_ARGS, CLASSES, LogMark, Started, app  # noqa: F401

h2_connection = pytest.importorskip("h2.connection")
import h2.config  # noqa: E402
import h2.events  # noqa: E402

SPOOF = [
    ("X-Forwarded-For", "198.51.100.1"),
    ("X-Forwarded-For", "198.51.100.2"),
    ("X-Forwarded-Proto", "https"),
    ("X-Forwarded-Host", "evil.example"),
    ("X-Forwarded-Port", "443"),
    ("X-Forwarded-Ssl", "on"),
    ("X-Forwarded-Protocol", "ssl"),
    ("Forwarded", "for=198.51.100.1;proto=https"),
    ("X-Real-IP", "198.51.100.1"),
    ("X_Forwarded_For", "198.51.100.66"),
    ("X-Forwarded_Proto", "https"),
    ("X-Plain", "kept"),
]
FACTS = ["x-forwarded-port", "x-forwarded-ssl", "x-forwarded-protocol", "forwarded",
         "x-real-ip"]


# --- clients ------------------------------------------------------------------------


def read_response(sock, timeout=10):
    """(status, headers dict with lowercase names, body) of a Connection:
    close response, or None when the server closed without answering."""
    sock.settimeout(timeout)
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    if not data:
        return None
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", ""):
        out, rest = b"", body
        while True:
            size, _, rest = rest.partition(b"\r\n")
            n = int(size.split(b";")[0], 16)
            if n == 0:
                break
            out, rest = out + rest[:n], rest[n + 2:]
        body = out
    return int(lines[0].split()[1]), headers, body


def http1_bytes(path, fields, host="shop.example"):
    lines = ["GET %s HTTP/1.1" % path, "Host: " + host]
    lines += ["%s: %s" % f for f in fields]
    return ("\r\n".join(lines) + "\r\nConnection: close\r\n\r\n").encode()


def exchange(port, data, preamble=b"", timeout=10, wrap=None):
    """Sends preamble (a PROXY header) and data on one connection; returns
    read_response()'s result."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw:
        if preamble:
            raw.sendall(preamble)
        sock = wrap(raw) if wrap else raw
        sock.sendall(data)
        return read_response(sock, timeout)


def app_headers(port, fields, preamble=b"", **kw):
    """The request headers the app saw (its /headers JSON) for a GET with
    `fields`."""
    r = exchange(port, http1_bytes("/headers", fields), preamble, **kw)
    assert r is not None, "closed without an answer"
    status, _, body = r
    assert status == 200, r
    return json.loads(body)


def h2_app_headers(port, fields, preamble=b"", timeout=10):
    """The same over HTTP/2 with prior knowledge: (status, app's headers or
    the body text)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        if preamble:
            sock.sendall(preamble)
        conn = h2_connection.H2Connection(
            config=h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        conn.initiate_connection()
        sid = conn.get_next_available_stream_id()
        conn.send_headers(sid, [(":method", "GET"), (":scheme", "http"),
                                (":authority", "shop.example"), (":path", "/headers")]
                          + [(n.lower(), v) for n, v in fields], end_stream=True)
        sock.sendall(conn.data_to_send())
        status, body = None, b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            data = sock.recv(65536)
            if not data:
                break
            for ev in conn.receive_data(data):
                if isinstance(ev, h2.events.ResponseReceived):
                    status = int(dict(ev.headers)[":status"])
                elif isinstance(ev, h2.events.DataReceived):
                    body += ev.data
                    conn.acknowledge_received_data(ev.flow_controlled_length, sid)
                elif isinstance(ev, (h2.events.StreamEnded, h2.events.StreamReset)):
                    return status, json.loads(body) if status == 200 else body.decode()
            sock.sendall(conn.data_to_send())
        raise AssertionError("no HTTP/2 answer (status %s)" % status)


def proxy_v1(src, sport=40001, dst=None, dport=8000):
    family = "TCP6" if ":" in src else "TCP4"
    dst = dst or ("::1" if ":" in src else "127.0.0.1")
    return ("PROXY %s %s %s %d %d\r\n" % (family, src, dst, sport, dport)).encode()


V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"


def proxy_v2(src, sport=40002, dst=None, dport=8000, command=1, tlvs=b""):
    if ":" in src:
        fam, af = 0x21, socket.AF_INET6
        dst = dst or "::1"
    else:
        fam, af = 0x11, socket.AF_INET
        dst = dst or "127.0.0.1"
    body = (socket.inet_pton(af, src) + socket.inet_pton(af, dst)
            + struct.pack(">HH", sport, dport) + tlvs)
    return V2_SIGNATURE + bytes([0x20 | command, fam]) + struct.pack(">H", len(body)) + body


def proxy_v2_local():
    return V2_SIGNATURE + bytes([0x20, 0x00]) + struct.pack(">H", 0)


def closed_without_answer(port, data, timeout=10):
    """True when forkd closes the connection without sending a byte."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            return True
        return read_response(sock, timeout) is None


# --- forwarding fields without PROXY protocol ---------------------------------------


@pytest.fixture(scope="module", params=CLASSES)
def plain(request, app):
    """(class, Forkd) with the defaults: nobody is trusted, '_' dropped."""
    started = Started()
    try:
        yield request.param, started.forkd(app, ["--workers", "1"] + CLASS_ARGS[request.param])
    finally:
        started.stop()


def assert_only_forkds_facts(seen, peer, proto="http", host="shop.example"):
    assert seen["x-forwarded-for"] == peer, seen
    assert seen["x-forwarded-proto"] == proto, seen
    assert seen["x-forwarded-host"] == host, seen
    for name in FACTS + ["x_forwarded_for", "x-forwarded_proto"]:
        assert name not in seen, (name, seen)
    assert seen["x-plain"] == "kept"


def test_spoofed_facts_never_reach_the_app(plain):
    _, fk = plain
    assert_only_forkds_facts(app_headers(fk.port, SPOOF), "127.0.0.1")


def test_spoofed_facts_never_reach_the_app_over_http2(plain):
    _, fk = plain
    status, seen = h2_app_headers(fk.port, SPOOF)
    assert status == 200, seen
    assert_only_forkds_facts(seen, "127.0.0.1")


def test_underscore_fields_are_dropped_and_counted(forkd_factory, example_app):
    mport, margs = metrics_util.metrics_args()
    fk = forkd_factory(example_app, ["--workers", "1", "--worker-class", "async"] + margs)
    seen = app_headers(fk.port, [("My_Header", "1"), ("X_Real_IP", "6.6.6.6"),
                                 ("My-Header", "2")])
    assert seen["my-header"] == "2" and "my_header" not in seen and "x_real_ip" not in seen
    status, seen = h2_app_headers(fk.port, [("my_header", "1")])
    assert status == 200 and "my_header" not in seen, seen
    m = metrics_util.quiet(mport)
    assert metrics_util.value(m, "forkd_request_fields_dropped_total",
                              reason="underscore") == 3
    # Each request from the untrusted 127.0.0.1 carried no other facts.
    assert metrics_util.value(m, "forkd_request_fields_dropped_total",
                              reason="untrusted_forwarding") == 0


def test_header_map_dangerous_passes_underscores_but_not_spoofed_facts(forkd_factory,
                                                                       example_app):
    fk = forkd_factory(example_app, ["--workers", "1", "--header-map", "dangerous"])
    seen = app_headers(fk.port, [("My_Header", "1"), ("X_Forwarded_For", "6.6.6.6")])
    assert seen["my_header"] == "1"
    assert "x_forwarded_for" not in seen and seen["x-forwarded-for"] == "127.0.0.1", seen


@pytest.mark.parametrize("cls", ["sync", "async"])
def test_header_map_refuse_answers_400(forkd_factory, example_app, cls):
    fk = forkd_factory(example_app, ["--workers", "1", "--header-map", "refuse"]
                       + CLASS_ARGS[cls])
    mark = LogMark(fk)
    status, _, body = exchange(fk.port, http1_bytes("/headers", [("X_Forwarded_For", "1")]))
    assert status == 400
    assert b"X_Forwarded_For" in body and b"--header-map" in body, body
    mark.wait_for('400 for GET /headers from 127.0.0.1')
    status, text = h2_app_headers(fk.port, [("my_header", "1")])
    assert status == 400 and "my_header" in text, text
    # Fields without '_' are served as usual.
    assert app_headers(fk.port, [("My-Header", "1")])["my-header"] == "1"


def test_header_map_refuse_checks_request_trailers(forkd_factory, example_app):
    fk = forkd_factory(example_app, ["--workers", "1", "--worker-class", "async",
                                     "--header-map", "refuse"])
    req = (b"POST /trailers HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
           b"Connection: close\r\n\r\n5\r\nhello\r\n0\r\nMy_Trailer: 1\r\n\r\n")
    status, _, body = exchange(fk.port, req)
    assert status == 400 and b"My_Trailer" in body, body


def test_bad_trust_flags_stop_start_up(forkd_bin, tmp_short):
    for args, needle in [(["--forwarded-allow-ips", "10.0.0.0/40"], "--forwarded-allow-ips"),
                         (["--proxy-allow-ips", "lb.example"], "--proxy-allow-ips"),
                         (["--header-map", "keep"], "--header-map")]:
        r = subprocess.run([forkd_bin, "--bind", "127.0.0.1:0", "--admin-bind", "",
                            "--metrics-bind", ""] + args,
                           capture_output=True, text=True, timeout=20)
        assert r.returncode != 0
        assert needle in r.stderr, r.stderr


# --- PROXY protocol -----------------------------------------------------------------


def wait_proxy_ready(fk, timeout=20):
    """Waits until forkd answers a request sent behind a PROXY header."""
    def answers():
        try:
            r = exchange(fk.port, http1_bytes("/hello", []), proxy_v1("192.0.2.250"),
                         timeout=2)
        except OSError:
            return None
        return r is not None and r[0] == 200
    wait_until(answers, timeout, interval=0.1, what="forkd behind PROXY headers")


@pytest.fixture(scope="module", params=CLASSES)
def pp(request, app):
    """(class, Forkd, access log path, metrics port): --proxy-protocol with
    10.0.0.0/8 as the trusted proxies."""
    tmp = tempfile.mkdtemp(prefix="fkpp")
    log = os.path.join(tmp, "access.log")
    mport, margs = metrics_util.metrics_args()
    started = Started()
    try:
        fk = started.forkd(app, ["--workers", "1", "--proxy-protocol",
                                 "--forwarded-allow-ips", "10.0.0.0/8, 2001:db8:a::/48",
                                 "--access-logfile", log] + margs + CLASS_ARGS[request.param],
                           wait_ready=False)
        wait_proxy_ready(fk)
        yield request.param, fk, log, mport
    finally:
        started.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def access_lines(path, needle, timeout=5):
    def found():
        try:
            with open(path) as f:
                return [l for l in f.read().splitlines() if needle in l]
        except FileNotFoundError:
            return None
    return wait_until(found, timeout, what="%r in the access log" % needle)


@pytest.mark.parametrize("header", ["v1", "v2"])
def test_proxy_header_gives_the_client_address(pp, header):
    _, fk, log, _ = pp
    make = proxy_v1 if header == "v1" else proxy_v2
    seen = app_headers(fk.port, SPOOF, make("203.0.113.7"))
    # An untrusted client (not in 10.0.0.0/8): its claims go, forkd's stay.
    assert_only_forkds_facts(seen, "203.0.113.7")
    seen = app_headers(fk.port, [], make("2001:db8::7"))
    assert seen["x-forwarded-for"] == "2001:db8::7", seen
    tag = "/headers?" + header
    r = exchange(fk.port, http1_bytes(tag, []), make("198.51.100.23"))
    assert r[0] == 200
    line = access_lines(log, "GET %s HTTP/1.1" % tag)[0]
    assert line.startswith("198.51.100.23 "), line


@pytest.mark.parametrize("header", ["v1", "v2"])
def test_proxy_header_address_is_checked_against_forwarded_allow_ips(pp, header):
    _, fk, _, _ = pp
    make = proxy_v1 if header == "v1" else proxy_v2
    seen = app_headers(fk.port, SPOOF, make("10.1.2.3"))
    # A trusted proxy: its facts pass, its address is appended.
    assert seen["x-forwarded-for"] == "198.51.100.1, 198.51.100.2, 10.1.2.3", seen
    assert seen["x-forwarded-proto"] == "https"
    assert seen["x-forwarded-host"] == "evil.example"
    for name in FACTS:
        assert name in seen, (name, seen)
    assert "x_forwarded_for" not in seen  # '_' is dropped all the same
    seen = app_headers(fk.port, [("X-Forwarded-For", "198.51.100.9")],
                       make("2001:db8:a::1"))
    assert seen["x-forwarded-for"] == "198.51.100.9, 2001:db8:a::1", seen


def test_proxy_v2_tlvs_and_local(pp):
    _, fk, _, _ = pp
    tlvs = b"\x01" + struct.pack(">H", 8) + b"http/1.1" + b"\x04" + struct.pack(">H", 3) + b"\0\0\0"
    assert app_headers(fk.port, [], proxy_v2("203.0.113.8", tlvs=tlvs))[
        "x-forwarded-for"] == "203.0.113.8"
    # LOCAL (a balancer's health check) and UNKNOWN: the socket's peer.
    assert app_headers(fk.port, [], proxy_v2_local())["x-forwarded-for"] == "127.0.0.1"
    assert app_headers(fk.port, [], b"PROXY UNKNOWN\r\n")["x-forwarded-for"] == "127.0.0.1"


def test_proxy_header_then_http2(pp):
    _, fk, log, _ = pp
    for make in (proxy_v1, proxy_v2):
        status, seen = h2_app_headers(fk.port, SPOOF, make("203.0.113.44"))
        assert status == 200, seen
        assert_only_forkds_facts(seen, "203.0.113.44")
        status, seen = h2_app_headers(fk.port, [("x-forwarded-for", "1.1.1.1")],
                                      make("10.9.9.9"))
        assert seen["x-forwarded-for"] == "1.1.1.1, 10.9.9.9", seen
    line = access_lines(log, "HTTP/2.0")[0]
    assert line.startswith("203.0.113.44 ") or line.startswith("10.9.9.9 "), line


def test_proxy_header_split_in_small_writes(pp):
    _, fk, _, _ = pp
    header = proxy_v2("203.0.113.77")
    with socket.create_connection(("127.0.0.1", fk.port), timeout=10) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(0, len(header), 5):
            sock.sendall(header[i:i + 5])
            time.sleep(0.02)
        sock.sendall(http1_bytes("/headers", []))
        status, _, body = read_response(sock)
    assert status == 200 and json.loads(body)["x-forwarded-for"] == "203.0.113.77"


def test_missing_or_bad_header_is_closed_counted_and_logged(pp):
    _, fk, _, mport = pp
    before = metrics_util.metrics(mport)
    mark = LogMark(fk)
    assert closed_without_answer(fk.port, http1_bytes("/hello", []))
    mark.wait_for("bad PROXY protocol header: no PROXY protocol header")
    time.sleep(1.1)  # the log says one rejection a second
    mark = LogMark(fk)
    assert closed_without_answer(fk.port, b"PROXY TCP4 1.2.3.4 5.6.7.8 99999 1\r\nGET / HTTP/1.1\r\n\r\n")
    mark.wait_for("bad PROXY protocol header: v1 header has a bad port")
    assert closed_without_answer(fk.port, V2_SIGNATURE + b"\x21\x11\x00\x04abcd")

    def counted():
        m = metrics_util.metrics(mport)
        return metrics_util.value(m, "forkd_proxy_protocol_rejected_total",
                                  reason="malformed") - metrics_util.value(
            before, "forkd_proxy_protocol_rejected_total", reason="malformed") == 3
    wait_until(counted, 5, what="3 malformed PROXY headers counted")
    # forkd serves on.
    assert app_headers(fk.port, [], proxy_v1("203.0.113.1"))["x-forwarded-for"] == "203.0.113.1"


def test_peer_outside_proxy_allow_ips_is_closed(forkd_factory, example_app):
    mport, margs = metrics_util.metrics_args()
    fk = forkd_factory(example_app, ["--workers", "1", "--proxy-protocol",
                                     "--proxy-allow-ips", "192.0.2.0/24"] + margs,
                       wait_ready=False)
    wait_until(lambda: metrics_util.probe(mport, "/readyz")[0] == 200, 20,
               what="forkd ready")
    mark = LogMark(fk)
    assert closed_without_answer(fk.port, proxy_v1("203.0.113.5") + http1_bytes("/hello", []))
    mark.wait_for("closed connection from 127.0.0.1: peer not in --proxy-allow-ips")
    wait_until(lambda: metrics_util.value(metrics_util.metrics(mport),
                                          "forkd_proxy_protocol_rejected_total",
                                          reason="untrusted_peer") == 1,
               5, what="the rejection counted")


@pytest.mark.parametrize("cls", CLASSES)
def test_slow_proxy_header_times_out(forkd_factory, example_app, cls):
    # A peer that never finishes its header is closed after a fixed bound
    # (5 s), whatever --keepalive says: a keep-alive shorter than the bound
    # must not cut it first (it did, reported as the 5 s timeout).
    mport, margs = metrics_util.metrics_args()
    fk = forkd_factory(example_app, ["--workers", "1", "--proxy-protocol",
                                     "--keepalive", "1"] + margs + CLASS_ARGS[cls],
                       wait_ready=False)
    wait_proxy_ready(fk)
    mark = LogMark(fk)
    with socket.create_connection(("127.0.0.1", fk.port), timeout=15) as sock:
        started = time.monotonic()
        sock.sendall(b"PROXY TCP4 203.0.113.1")
        assert read_response(sock, timeout=15) is None
        # Not before the bound (a busy machine can only make it later).
        assert time.monotonic() - started >= 4.5
    mark.wait_for("no PROXY protocol header in time")
    wait_until(lambda: metrics_util.value(metrics_util.metrics(mport),
                                          "forkd_proxy_protocol_rejected_total",
                                          reason="timeout") == 1,
               5, what="the timeout counted")


def test_proxy_header_bound_follows_a_shorter_client_header_timeout(
        forkd_factory, example_app):
    # The header is the first part of the request head: a
    # --client-header-timeout shorter than the 5 s bound is the bound.
    mport, margs = metrics_util.metrics_args()
    fk = forkd_factory(example_app, ["--workers", "1", "--proxy-protocol",
                                     "--client-header-timeout", "1"] + margs,
                       wait_ready=False)
    wait_proxy_ready(fk)
    mark = LogMark(fk)
    with socket.create_connection(("127.0.0.1", fk.port), timeout=15) as sock:
        sock.sendall(b"PROXY TCP4 203.0.113.1")
        assert read_response(sock, timeout=15) is None
    mark.wait_for("22 bytes within 1000 ms")
    wait_until(lambda: metrics_util.value(metrics_util.metrics(mport),
                                          "forkd_proxy_protocol_rejected_total",
                                          reason="timeout") == 1,
               5, what="the timeout counted")


# --- TLS after a PROXY header -------------------------------------------------------


def _openssl(*args, cwd):
    subprocess.run(("openssl",) + args, cwd=cwd, check=True, capture_output=True, timeout=30)


@pytest.fixture(scope="module")
def cert():
    if shutil.which("openssl") is None:
        pytest.fail("openssl is required (scripts/install-deps.sh installs it)")
    d = tempfile.mkdtemp(prefix="fkppt")
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", "key.pem", "-out", "cert.pem", "-days", "2", "-subj", "/CN=localhost",
             "-addext", "subjectAltName=IP:127.0.0.1", cwd=d)
    yield os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
    shutil.rmtree(d, ignore_errors=True)


@pytest.mark.parametrize("cls", CLASSES)
def test_tls_after_proxy_header(forkd_factory, example_app, cert, cls):
    certfile, keyfile = cert
    fk = forkd_factory(example_app, ["--workers", "1", "--proxy-protocol",
                                     "--certfile", certfile, "--keyfile", keyfile]
                       + CLASS_ARGS[cls], wait_ready=False)
    ctx = ssl.create_default_context(cafile=certfile)
    ctx.set_alpn_protocols(["http/1.1"])

    def wrap(raw):
        return ctx.wrap_socket(raw, server_hostname="127.0.0.1")

    def answers():
        try:
            return exchange(fk.port, http1_bytes("/hello", []), proxy_v2("192.0.2.9"),
                            timeout=2, wrap=wrap)
        except OSError:
            return None
    wait_until(answers, 20, interval=0.1, what="forkd with TLS behind PROXY headers")
    seen = app_headers(fk.port, SPOOF, proxy_v1("203.0.113.99"), wrap=wrap)
    assert_only_forkds_facts(seen, "203.0.113.99", proto="https")


# --- the h2c bridge to a gRPC app ---------------------------------------------------


GRPC_SPOOF = (("x-forwarded-for", "198.51.100.1"), ("x-forwarded-proto", "https"),
              ("x-real-ip", "198.51.100.1"), ("forwarded", "for=198.51.100.1"),
              ("x_forwarded_for", "198.51.100.66"), ("x-plain", "kept"))


@pytest.mark.parametrize("allow", ["", "127.0.0.1"])
def test_grpc_bridge_applies_the_same_rules(allow):
    import test_grpc_upstream as g
    with g.grpc_stack(["--forwarded-allow-ips", allow]) as (app, _, client, _):
        assert client.unary(b"hi", timeout=10, metadata=GRPC_SPOOF) == b"echo:hi"
        md = app.metadata[-1]
    assert md.get("x-plain") == "kept"
    assert "x_forwarded_for" not in md, md
    assert md.get("x-forwarded-host", "").startswith("127.0.0.1:")
    if allow:
        assert md.get("x-forwarded-for") == "198.51.100.1, 127.0.0.1", md
        assert md.get("x-forwarded-proto") == "https"
        assert md.get("x-real-ip") == "198.51.100.1" and "forwarded" in md
    else:
        assert md.get("x-forwarded-for") == "127.0.0.1", md
        assert md.get("x-forwarded-proto") == "http"
        assert "x-real-ip" not in md and "forwarded" not in md, md


def test_grpc_bridge_refuses_underscores_under_refuse():
    import grpc
    import test_grpc_upstream as g
    with g.grpc_stack(["--header-map", "refuse"]) as (app, _, client, _):
        with pytest.raises(grpc.RpcError) as e:
            client.unary(b"hi", timeout=10, metadata=(("my_key", "1"),))
        assert "400" in e.value.details() and "my_key" in e.value.details(), e.value
        assert app.metadata == []
        assert client.unary(b"ok", timeout=10, metadata=(("my-key", "1"),)) == b"echo:ok"
