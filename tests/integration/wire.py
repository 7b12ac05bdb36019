"""A tiny HTTP/1.1 client on a raw socket, for tests that need the bytes.

http.client hides what these tests check (interim 1xx responses, pipelining,
whether the server closed the connection), so this reads responses off a
plain socket.  Every read is bounded by the connection's timeout.

    with WireConnection(port) as c:
        c.send(b"GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n")
        r = c.read_response()
        assert r.status == 200 and r.body == b"hello\\n"
"""

import socket
import time

from forkd_harness import Headers


class Response:
    def __init__(self, status, reason, version, header_pairs, body, interim, raw_head):
        self.status = status
        self.reason = reason
        self.version = version
        self.header_pairs = header_pairs
        self.headers = Headers(header_pairs)
        self.body = body
        self.interim = interim  # [Response] of 1xx heads before this one
        self.raw_head = raw_head

    def __repr__(self):
        return "<Response %d %r %r body=%d bytes>" % (
            self.status, self.reason, self.header_pairs, len(self.body))


class WireConnection:
    """One TCP connection to 127.0.0.1:port with a read buffer."""

    def __init__(self, port, timeout=10, host="127.0.0.1"):
        self.timeout = timeout
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = bytearray()

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self):
        piece = self.sock.recv(256 * 1024)
        if not piece:
            raise EOFError("server closed the connection; unread: %r" % bytes(self.buf[:200]))
        self.buf += piece

    def read_until(self, marker):
        while True:
            i = self.buf.find(marker)
            if i >= 0:
                data = bytes(self.buf[:i + len(marker)])
                del self.buf[:i + len(marker)]
                return data
            self._fill()

    def read_exact(self, n):
        while len(self.buf) < n:
            self._fill()
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def read_to_eof(self):
        while True:
            try:
                self._fill()
            except EOFError:
                break
            except ConnectionResetError:
                break
        data = bytes(self.buf)
        self.buf.clear()
        return data

    def read_head(self):
        """Reads one response head; returns (status, reason, version, pairs, raw)."""
        raw = self.read_until(b"\r\n\r\n")
        lines = raw[:-4].split(b"\r\n")
        version, status, reason = (lines[0].decode("latin-1").split(" ", 2) + [""])[:3]
        pairs = []
        for line in lines[1:]:
            name, _, value = line.decode("latin-1").partition(":")
            pairs.append((name, value.strip()))
        return int(status), reason, version, pairs, raw

    def _read_chunked(self):
        body = bytearray()
        while True:
            line = self.read_until(b"\r\n")
            size = int(line.split(b";")[0].strip(), 16)
            if size == 0:
                while self.read_until(b"\r\n") != b"\r\n":
                    pass  # trailers
                return bytes(body)
            body += self.read_exact(size)
            if self.read_exact(2) != b"\r\n":
                raise AssertionError("chunk data not followed by CRLF")

    def read_response(self, method="GET"):
        """Reads one final response (and any 1xx before it)."""
        interim = []
        while True:
            status, reason, version, pairs, raw = self.read_head()
            if 100 <= status < 200:
                interim.append(Response(status, reason, version, pairs, b"", [], raw))
                continue
            break
        headers = Headers(pairs)
        if method == "HEAD" or status in (204, 304):
            body = b""
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            body = self._read_chunked()
        elif "content-length" in headers:
            body = self.read_exact(int(headers["content-length"]))
        else:
            body = self.read_to_eof()
        return Response(status, reason, version, pairs, body, interim, raw)

    def closed_by_server(self, timeout=3):
        """True when the server closes (EOF or reset) within timeout with no
        further bytes; False when it stays open; raises if bytes arrive."""
        if self.buf:
            raise AssertionError("unexpected bytes after the response: %r" % bytes(self.buf[:200]))
        self.sock.settimeout(timeout)
        try:
            piece = self.sock.recv(4096)
        except socket.timeout:
            return False
        except ConnectionResetError:
            return True
        finally:
            self.sock.settimeout(self.timeout)
        if piece:
            raise AssertionError("unexpected bytes after the response: %r" % piece[:200])
        return True


def request_bytes(method, target, headers=(), body=b"", version="HTTP/1.1", host="test.local"):
    """Serialises a request; adds Host (unless host is None) and, for a body
    without a Transfer-Encoding header, a Content-Length."""
    lines = ["%s %s %s" % (method, target, version)]
    names = {n.lower() for n, _ in headers}
    if host is not None and "host" not in names:
        lines.append("Host: " + host)
    for name, value in headers:
        lines.append("%s: %s" % (name, value))
    if body and "transfer-encoding" not in names and "content-length" not in names:
        lines.append("Content-Length: %d" % len(body))
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def chunked(body, piece=7001):
    """body in the chunked transfer coding, in pieces of `piece` bytes."""
    out = bytearray()
    for i in range(0, len(body), piece):
        part = body[i:i + piece]
        out += b"%x\r\n" % len(part) + part + b"\r\n"
    out += b"0\r\n\r\n"
    return bytes(out)


def pattern(n, seed=0):
    """n deterministic, non-repeating-looking bytes."""
    block = bytes((i * 131 + seed * 7 + (i >> 8)) & 0xFF for i in range(65521))
    reps = n // len(block) + 1
    return (block * reps)[:n]


def elapsed(fn, *args, **kwargs):
    """(result, seconds) of fn(*args, **kwargs)."""
    start = time.monotonic()
    result = fn(*args, **kwargs)
    return result, time.monotonic() - start
