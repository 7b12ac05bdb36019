#!/usr/bin/env python3
"""forkd's example app: a small HTTP/1.1 server on a unix socket.

It stands for "the application" in the pod: forkd proxies to it in the
manifests, the integration tests and by hand.  Standard library only.

Usage:
    app.py [--socket PATH] [--port N] [--verbose] [--idle-timeout S]
           [--max-body BYTES]

    --socket PATH   listen on a unix socket (default /tmp/forkd-app.sock);
                    a stale socket file is removed first, the new one is
                    chmod 0666 and removed again on SIGTERM/SIGINT.
    --port N        listen on TCP 127.0.0.1:N instead (0 = pick a free port;
                    the chosen port is then printed on stdout).
    --verbose       log every request on stderr (quiet by default).

    Socket activation (forkd's app mode, systemd): when LISTEN_FDS=1 and
    LISTEN_PID is this process, the app serves on the inherited fd 3 and
    ignores --socket/--port.  /pid answers the serving process's pid, so a
    client can see which app process served it.

One thread per connection (daemon threads), HTTP/1.1 keep-alive.  A handler
that raises answers 500 (or drops the connection if the response had
started); the server itself keeps running.

Endpoints (any method unless said; HEAD gives the headers only):
    /, /hello                      200 "hello\\n"
    /cpu?ms=N                      busy-loop N ms (default 10), reply pid and ms
    /sleep?ms=N                    sleep N ms (default 100), reply
    /bytes?n=N                     exactly N bytes (default 1024), Content-Length,
                                   written in 64 KiB pieces
    /stream?chunks=N&interval_ms=M&size=S
                                   chunked response: N chunks (default 5) of S
                                   bytes (default 16), M ms apart (default 100)
    /status?code=C                 status C (200..599, default 200), short body
    /fail                          500
    /close                         read the request, close without answering
    /reset                         read the request, SO_LINGER 0 and close
                                   (an RST over TCP; a unix socket has no RST,
                                   so the peer sees EOF, or ECONNRESET if it
                                   had sent more bytes that were never read)
    /echo                          200, body = request body (Content-Length or
                                   chunked); headers X-Echo-Method,
                                   X-Echo-Length, X-Seen-<Name> for the
                                   forwarding headers listed in SEEN_HEADERS
                                   (only when present), X-Seen-Headers = the
                                   lowercase names of all request headers, in
                                   order, comma-joined
    /headers                       JSON object of the request headers
                                   (lowercase names; repeats joined by ", ")
    /continue?code=C               an interim 1xx (default 103 Early Hints with
                                   a Link header) and then 200 "continued\\n"
    /pid                           the app's pid
    /grow?mb=N                     keep N more MiB (default 8) allocated and
                                   touched for the process's lifetime (a
                                   leak, for --max-worker-memory); reply the
                                   pid and the MiB held
    /trailers?bad=B                chunked 200 whose JSON body tells what the
                                   request carried: length, trailers (the
                                   chunked request's trailer fields as
                                   [name, value] pairs), te, trailer,
                                   transfer_encoding, content_length (those
                                   headers, or null); announced with
                                   "Trailer:" and followed by the trailer
                                   fields X-Body-Length, X-Request-Trailers
                                   (their count) and Grpc-Status: 0; with
                                   bad=1 also fields not allowed in trailers
                                   (Content-Type, Set-Cookie, Content-Length,
                                   Host)
Missing query parameters take the defaults above; bad ones give 400.
"""

import argparse
import json
import os
import signal
import socket
import socketserver
import stat
import struct
import sys
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

CHUNK = 64 * 1024
_BLOCK = (b"0123456789abcdefghijklmnopqrstuvwxyz" * (CHUNK // 36 + 1))[:CHUNK]

# Request headers echoed back by /echo as X-Seen-<Name>.
SEEN_HEADERS = (
    "X-Forwarded-For",
    "X-Forwarded-Proto",
    "X-Forwarded-Host",
    "X-Request-Id",
    "Connection",
    "Host",
    "Content-Length",
    "Transfer-Encoding",
)

MAX_MS = 600_000

_LEAK = []  # /grow's memory, never freed
_LEAK_LOCK = threading.Lock()
MAX_BYTES = 1 << 40


class BadRequest(Exception):
    """A client error answered with 400 and the message."""


class ClosedBody(Exception):
    """The client went away or sent a malformed chunked body."""


def _int_param(query, name, default, lo, hi):
    values = query.get(name)
    if not values:
        return default
    raw = values[-1]
    try:
        value = int(raw, 10)
    except ValueError:
        raise BadRequest("%s: not an integer: %r" % (name, raw)) from None
    if value < lo or value > hi:
        raise BadRequest("%s: %d out of range [%d, %d]" % (name, value, lo, hi))
    return value


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "forkd-example-app/1"
    error_content_type = "text/plain; charset=utf-8"
    error_message_format = "%(code)d %(message)s\n"

    def version_string(self):
        return self.server_version

    # --- plumbing -----------------------------------------------------------

    def setup(self):
        super().setup()
        if self.connection.family in (socket.AF_INET, socket.AF_INET6):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def address_string(self):
        # Unix-socket peers have no address ('' instead of a (host, port)).
        if isinstance(self.client_address, tuple) and self.client_address:
            return str(self.client_address[0])
        return "unix"

    def log_message(self, fmt, *args):
        if self.server.verbose:
            sys.stderr.write("app[%d] %s %s\n" % (os.getpid(), self.address_string(), fmt % args))

    def send_response(self, code, message=None):
        if code >= 200:
            self._final_started = True
        super().send_response(code, message)

    def _reply(self, code, body=b"", ctype="text/plain; charset=utf-8", headers=()):
        if isinstance(body, str):
            body = body.encode()
        self.send_response(code)
        bodyless = code in (204, 304)
        if not bodyless:
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        if body and not bodyless and self.command != "HEAD":
            self.wfile.write(body)

    # --- request bodies ----------------------------------------------------

    def _read_exact(self, n):
        data = self.rfile.read(n)
        if len(data) != n:
            raise ClosedBody("body ended early")
        return data

    def _body_pieces(self):
        """Yields the request body in pieces (Content-Length or chunked)."""
        te = self.headers.get("Transfer-Encoding")
        if te is not None:
            if te.strip().lower() != "chunked":
                raise BadRequest("unsupported Transfer-Encoding: %s" % te)
            while True:
                line = self.rfile.readline(1024)
                if not line.endswith(b"\n"):
                    raise ClosedBody("bad chunk size line")
                size_text = line.split(b";", 1)[0].strip()
                try:
                    size = int(size_text, 16)
                except ValueError:
                    raise ClosedBody("bad chunk size %r" % size_text) from None
                if size == 0:
                    while True:  # trailers, up to the empty line
                        trailer = self.rfile.readline(8192)
                        if not trailer.endswith(b"\n"):
                            raise ClosedBody("bad trailer")
                        if trailer in (b"\r\n", b"\n"):
                            return
                        name, colon, value = trailer.decode("latin-1").partition(":")
                        if not colon:
                            raise ClosedBody("bad trailer %r" % trailer)
                        self._trailers.append((name, value.strip()))
                while size > 0:
                    piece = self._read_exact(min(size, CHUNK))
                    size -= len(piece)
                    yield piece
                if self.rfile.readline(3) not in (b"\r\n", b"\n"):
                    raise ClosedBody("chunk not followed by CRLF")
        length = self.headers.get("Content-Length")
        if length is None:
            return
        try:
            remaining = int(length.strip(), 10)
            if remaining < 0:
                raise ValueError
        except ValueError:
            raise BadRequest("bad Content-Length: %r" % length) from None
        while remaining > 0:
            piece = self._read_exact(min(remaining, CHUNK))
            remaining -= len(piece)
            yield piece

    def _read_body(self, keep):
        """Reads the whole request body; returns it if keep, else b''."""
        pieces = []
        total = 0
        for piece in self._body_pieces():
            total += len(piece)
            if keep:
                if total > self.server.max_body:
                    raise BadRequest("body larger than %d bytes" % self.server.max_body)
                pieces.append(piece)
        return b"".join(pieces), total

    # --- dispatch -----------------------------------------------------------

    def _dispatch(self):
        self._final_started = False
        self._trailers = []  # of a chunked request body, once it is read
        try:
            parts = urlsplit(self.path)
            path = parts.path
            query = parse_qs(parts.query, keep_blank_values=True)
            route = ROUTES.get(path)
            body, length = self._read_body(keep=(route is Handler.r_echo))
            if route is None:
                self._reply(404, "not found: %s\n" % path)
                return
            route(self, query, body, length)
        except BadRequest as e:
            self.close_connection = True
            if not self._final_started:
                self._reply(400, "bad request: %s\n" % e, headers=[("Connection", "close")])
        except ClosedBody as e:
            self.log_message("request body: %s", e)
            self.close_connection = True
            if not self._final_started:
                self._reply(400, "bad request body: %s\n" % e, headers=[("Connection", "close")])
        except (BrokenPipeError, ConnectionResetError, socket.timeout):
            self.close_connection = True
        except Exception:
            traceback.print_exc()
            self.close_connection = True
            if not self._final_started:
                try:
                    self._reply(500, "internal error\n", headers=[("Connection", "close")])
                except OSError:
                    pass

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _dispatch

    def __getattr__(self, name):
        # Any other method token (do_FOO) is dispatched too, so /echo takes it.
        if name.startswith("do_"):
            return self._dispatch
        raise AttributeError(name)

    # --- endpoints ----------------------------------------------------------

    def r_hello(self, query, body, length):
        self._reply(200, "hello\n")

    def r_cpu(self, query, body, length):
        ms = _int_param(query, "ms", 10, 0, MAX_MS)
        deadline = time.perf_counter() + ms / 1000.0
        x = 0
        while time.perf_counter() < deadline:
            for i in range(1000):
                x += i * i
        self._reply(200, "pid=%d cpu_ms=%d\n" % (os.getpid(), ms))

    def r_sleep(self, query, body, length):
        ms = _int_param(query, "ms", 100, 0, MAX_MS)
        time.sleep(ms / 1000.0)
        self._reply(200, "pid=%d slept_ms=%d\n" % (os.getpid(), ms))

    def r_bytes(self, query, body, length):
        n = _int_param(query, "n", 1024, 0, MAX_BYTES)
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(n))
        self.end_headers()
        if self.command == "HEAD":
            return
        block = memoryview(_BLOCK)
        while n > 0:
            piece = block[: min(n, CHUNK)]
            self.wfile.write(piece)
            n -= len(piece)

    def r_stream(self, query, body, length):
        chunks = _int_param(query, "chunks", 5, 0, 1_000_000)
        interval = _int_param(query, "interval_ms", 100, 0, MAX_MS)
        size = _int_param(query, "size", 16, 1, 16 * CHUNK)
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if self.command == "HEAD":
            return
        data = (_BLOCK * (size // CHUNK + 1))[:size]
        for i in range(chunks):
            if i and interval:
                time.sleep(interval / 1000.0)
            self.wfile.write(b"%x\r\n%s\r\n" % (size, data))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")

    def r_status(self, query, body, length):
        code = _int_param(query, "code", 200, 200, 599)
        self._reply(code, "status %d\n" % code)

    def r_fail(self, query, body, length):
        self._reply(500, "fail\n")

    def r_close(self, query, body, length):
        self.close_connection = True  # finish() closes the socket, nothing sent

    def r_reset(self, query, body, length):
        self.close_connection = True
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        # Close now: the server's own shutdown(SHUT_WR) would send a FIN first.
        # The descriptor really closes when finish() drops rfile/wfile.
        self.connection.close()

    def r_echo(self, query, body, length):
        headers = [("X-Echo-Method", self.command), ("X-Echo-Length", str(length))]
        for name in SEEN_HEADERS:
            values = self.headers.get_all(name)
            if values:
                headers.append(("X-Seen-" + name, ", ".join(values)))
        headers.append(("X-Seen-Headers", ",".join(k.lower() for k in self.headers.keys())))
        ctype = self.headers.get("Content-Type", "application/octet-stream")
        self._reply(200, body, ctype=ctype, headers=headers)

    def r_headers(self, query, body, length):
        seen = {}
        for name, value in self.headers.items():
            key = name.lower()
            seen[key] = seen[key] + ", " + value if key in seen else value
        self._reply(200, json.dumps(seen, indent=1) + "\n", ctype="application/json")

    def r_continue(self, query, body, length):
        code = _int_param(query, "code", 103, 100, 199)
        if code == 101:
            raise BadRequest("101 would switch protocols")
        self.send_response_only(code)
        if code == 103:
            self.send_header("Link", "</style.css>; rel=preload; as=style")
        self.end_headers()
        self.wfile.flush()
        self._reply(200, "continued\n")

    def r_pid(self, query, body, length):
        self._reply(200, "%d\n" % os.getpid())

    def r_grow(self, query, body, length):
        mb = _int_param(query, "mb", 8, 0, 1024)
        with _LEAK_LOCK:
            _LEAK.append(bytearray(b"x" * (mb << 20)))  # written: resident
            held = sum(len(b) for b in _LEAK) >> 20
        self._reply(200, "pid=%d held_mb=%d\n" % (os.getpid(), held))

    def r_trailers(self, query, body, length):
        bad = _int_param(query, "bad", 0, 0, 1)
        seen = {
            "length": length,
            "trailers": [list(t) for t in self._trailers],
        }
        for name in ("TE", "Trailer", "Transfer-Encoding", "Content-Length"):
            seen[name.lower().replace("-", "_")] = self.headers.get(name)
        data = (json.dumps(seen) + "\n").encode()
        trailers = [("X-Body-Length", str(length)),
                    ("X-Request-Trailers", str(len(self._trailers))),
                    ("Grpc-Status", "0")]
        if bad:
            trailers += [("Content-Type", "text/evil"), ("Set-Cookie", "stolen=1"),
                         ("Content-Length", "1"), ("Host", "evil.example")]
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Trailer", ", ".join(n for n, _ in trailers))
        self.end_headers()
        if self.command == "HEAD":
            return
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.write(b"0\r\n" + "".join("%s: %s\r\n" % t for t in trailers).encode()
                         + b"\r\n")


ROUTES = {
    "/": Handler.r_hello,
    "/hello": Handler.r_hello,
    "/cpu": Handler.r_cpu,
    "/sleep": Handler.r_sleep,
    "/bytes": Handler.r_bytes,
    "/stream": Handler.r_stream,
    "/status": Handler.r_status,
    "/fail": Handler.r_fail,
    "/close": Handler.r_close,
    "/reset": Handler.r_reset,
    "/echo": Handler.r_echo,
    "/headers": Handler.r_headers,
    "/continue": Handler.r_continue,
    "/pid": Handler.r_pid,
    "/grow": Handler.r_grow,
    "/trailers": Handler.r_trailers,
}


class _ServerMixin(socketserver.ThreadingMixIn):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 1024
    verbose = False
    max_body = 64 << 20

    def handle_error(self, request, client_address):
        # Errors outside a handler's own try (parsing, a client gone mid-way).
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, socket.timeout)) and not self.verbose:
            return
        traceback.print_exc()


class UnixServer(_ServerMixin, socketserver.UnixStreamServer):
    pass


class InheritedServer(_ServerMixin, socketserver.UnixStreamServer):
    """Serves on an already listening socket (LISTEN_FDS: fd 3)."""

    def __init__(self, fd, handler):
        socketserver.BaseServer.__init__(self, "", handler)
        self.socket = socket.socket(fileno=fd)
        self.server_address = self.socket.getsockname()


def _inherited_fd():
    """fd 3 when systemd-style socket activation hands us one, else None."""
    if os.environ.get("LISTEN_PID") != str(os.getpid()):
        return None
    if os.environ.get("LISTEN_FDS") != "1":
        return None
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(name, None)
    return 3


class TCPServer(_ServerMixin, socketserver.TCPServer):
    allow_reuse_address = True


def _remove_stale_socket(path):
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        sys.exit("app: %s exists and is not a socket" % path)
    os.unlink(path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--socket", default="/tmp/forkd-app.sock", help="unix socket path")
    parser.add_argument("--port", type=int, default=None, help="TCP port on 127.0.0.1 instead")
    parser.add_argument("--verbose", action="store_true", help="log requests")
    parser.add_argument("--idle-timeout", type=float, default=300.0,
                        help="close a connection idle this many seconds (default 300)")
    parser.add_argument("--max-body", type=int, default=64 << 20,
                        help="largest /echo body in bytes (default 64 MiB)")
    args = parser.parse_args(argv)

    Handler.timeout = args.idle_timeout if args.idle_timeout > 0 else None
    inherited = _inherited_fd()
    if inherited is not None:
        server = InheritedServer(inherited, Handler)
        where = "fd 3 (%s)" % (server.server_address or "unix")
        socket_path = None
    elif args.port is not None:
        server = TCPServer(("127.0.0.1", args.port), Handler)
        where = "127.0.0.1:%d" % server.server_address[1]
        socket_path = None
        if args.port == 0:
            print(server.server_address[1], flush=True)
    else:
        socket_path = args.socket
        _remove_stale_socket(socket_path)
        server = UnixServer(socket_path, Handler)
        os.chmod(socket_path, 0o666)
        where = "unix:" + socket_path
    server.verbose = args.verbose
    server.max_body = args.max_body

    def on_signal(signum, frame):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if args.verbose:
        sys.stderr.write("app[%d] listening on %s\n" % (os.getpid(), where))
    try:
        server.serve_forever(poll_interval=0.5)
    except SystemExit:
        pass
    finally:
        # Stop answering first, then remove the path so a restart can bind it.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        server.server_close()
        if socket_path:
            try:
                os.unlink(socket_path)
            except FileNotFoundError:
                pass
        if args.verbose:
            sys.stderr.write("app[%d] stopped (%d threads)\n" % (os.getpid(), threading.active_count()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
