#!/usr/bin/python3
"""Writes the seed corpus of the fuzz targets (tests/fuzz/corpus/<name>/ for
the target <name>_fuzz).

Run from anywhere: /usr/bin/python3 tests/fuzz/make_seeds.py. The HTTP/2
seeds are real conversations made with Debian's python3-h2; the others are
written out here. Each seed starts with the control bytes its target reads
first (see the target's header comment).
"""
import pathlib

import h2.config
import h2.connection
import h2.settings

HERE = pathlib.Path(__file__).resolve().parent
CTRL = b"\x00\x12\x34"  # options 0, split seed 0x1234


def write(target, name, data):
    d = HERE / "corpus" / target.removesuffix("_fuzz")
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)


def http1():
    requests = {
        "get": b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        "pipelined": b"GET /a HTTP/1.1\r\nHost: a\r\n\r\n"
                     b"POST /b HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"
                     b"GET /c HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        "chunked": b"POST /u HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
                   b"TE: trailers\r\n\r\n5;ext=\"v\"\r\nhello\r\n0\r\nX-Sum: 1\r\n\r\n",
        "absolute": b"GET http://example.com:8080/x?q HTTP/1.1\r\nHost: other\r\n\r\n",
        "upgrade": b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                   b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
        "expect": b"PUT /f HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n"
                  b"Content-Length: 2\r\n\r\nok",
        "long_line_bare_lf": b"GET /" + b"a" * 4100 + b" HTTP/1.1\n",
        "leading_crlf": b"\r\n\r\nOPTIONS * HTTP/1.2\r\nHost: a\r\n\r\n",
        "smuggle": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n"
                   b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    }
    for name, raw in requests.items():
        write("http1_request_fuzz", name, CTRL + raw)
    write("http1_request_fuzz", "tight_limits", b"\x01\x00\x07" + requests["chunked"])
    responses = {
        "length": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        "chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n"
                   b"3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n",
        "interim": b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s>\r\n\r\n"
                   b"HTTP/1.1 204 No Content\r\n\r\n",
        "until_close": b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it",
        "keepalive": b"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n"
                     b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    }
    for name, raw in responses.items():
        write("http1_response_fuzz", name, CTRL + raw)
    write("http1_response_fuzz", "head", b"\x01\x00\x09" + responses["length"])


def pump(client, server):
    """Moves bytes both ways until quiet; returns (client->server, server->client)."""
    c2s, s2c = b"", b""
    while True:
        a = client.data_to_send()
        if a:
            c2s += a
            server.receive_data(a)
        b = server.data_to_send()
        if b:
            s2c += b
            client.receive_data(b)
        if not a and not b:
            return c2s, s2c


def h2_pair():
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    server = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=False, validate_inbound_headers=False))
    client.initiate_connection()
    server.initiate_connection()
    return client, server


def req(sid, method, path, extra=()):
    return [(":method", method), (":scheme", "http"), (":authority", "app"),
            (":path", path)] + list(extra)


def http2():
    preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
    # Client side of a few conversations: the server fuzz target adds the
    # preface itself, so it is stripped here.
    convs = {}
    c, s = h2_pair()
    c.send_headers(1, req(1, "GET", "/"), end_stream=True)
    convs["get"] = pump(c, s)[0]
    c, s = h2_pair()
    c.send_headers(1, req(1, "POST", "/u", [("content-length", "5")]))
    c.send_data(1, b"hello")
    c.send_headers(1, [("x-trailer", "1")], end_stream=True)
    c.send_headers(3, req(3, "GET", "/b", [("cookie", "a=1"), ("cookie", "b=2")]),
                   end_stream=True)
    c.reset_stream(3)
    c.ping(b"12345678")
    c.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 100})
    c.increment_flow_control_window(1000)
    convs["post_trailers_reset"] = pump(c, s)[0]
    c, s = h2_pair()
    for sid in (1, 3, 5, 7, 9):
        c.send_headers(sid, req(sid, "GET", "/%d" % sid, [("te", "trailers")]),
                       end_stream=(sid != 3))
    c.end_stream(3)
    convs["streams"] = pump(c, s)[0]
    for name, raw in convs.items():
        assert raw.startswith(preface)
        write("http2_session_fuzz", name, CTRL + raw[len(preface):])

    # Server side answering forkd's client session: it opens streams 1
    # (GET), 3 (POST with a body) and 5 (GET) before reading anything.
    def answers(respond):
        c, s = h2_pair()
        c.send_headers(1, req(1, "GET", "/svc/M"), end_stream=True)
        c.send_headers(3, req(3, "POST", "/svc/M"))
        c.send_data(3, b"p" * 1000)
        c.send_headers(3, [("x-trailer", "1")], end_stream=True)
        c.send_headers(5, req(5, "GET", "/svc/M"), end_stream=True)
        pump(c, s)
        respond(s)
        raw = s.data_to_send()
        # The session under test reads the server's preface first.
        return server_preface() + raw

    def server_preface():
        _, s = h2_pair()
        return s.data_to_send()

    def grpc(s):
        for sid in (1, 3, 5):
            s.send_headers(sid, [(":status", "200"), ("content-type", "application/grpc")])
            s.send_data(sid, b"\x00\x00\x00\x00\x02hi")
            s.send_headers(sid, [("grpc-status", "0"), ("grpc-message", "ok")],
                           end_stream=True)

    def mixed(s):
        s.send_headers(1, [(":status", "103"), ("link", "</s>")])
        s.send_headers(1, [(":status", "200")], end_stream=True)
        s.reset_stream(3, 7)
        s.send_headers(5, [(":status", "204")], end_stream=True)
        s.ping(b"abcdefgh")
        s.close_connection(last_stream_id=5)

    write("h2_client_session_fuzz", "grpc", CTRL + answers(grpc))
    write("h2_client_session_fuzz", "mixed", CTRL + answers(mixed))


def config():
    write("config_fuzz", "full",
          b"# forkd.conf\nbind = 0.0.0.0:8080\nbind = unix:/run/forkd.sock\n"
          b"workers = 4\nworker_class = gthread\nthreads = 8\ntimeout = 30.5\n"
          b"limit-request-body = 10m\naccess-logformat = \"\"%(r)s\" %(s)s\"\n"
          b"upstream = http://127.0.0.1:9000\nhttp2 = false\nlog-level = debug\n")
    write("config_fuzz", "tls", b"certfile = /c.pem\nkeyfile = /k.pem\n"
          b"ssl-min-version = TLSv1.3\nciphers = ECDHE+AESGCM\n")
    write("config_fuzz", "nul", b"bind = unix:\x00\n")
    write("config_fuzz", "huge", b"graceful_timeout = 1e300\nkeepalive=-0\n")


def access_log():
    fields = b"\x00".join([b"GET", b"/p?q=1", b"HTTP/1.1", b"rid-1", b"\x03",
                           b"User-Agent", b"curl\n", b"Referer", b"x\"y", b"",
                           b"Content-Type", b"text/plain"])
    write("access_log_format_fuzz", "default",
          b'%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"\x00' + fields)
    write("access_log_format_fuzz", "json", b"json\x00" + fields)
    write("access_log_format_fuzz", "atoms",
          b"%(m)s %(U)s %(q)s %(H)s %(T)s %(M)s %(D)s %(L)s %(B)s %(rid)s "
          b"%({user-agent}i)s %({content-type}o)s %({HOME}e)s %%\x00" + fields)


if __name__ == "__main__":
    http1()
    http2()
    config()
    access_log()
