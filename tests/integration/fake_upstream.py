"""A scripted HTTP/1.1 app on a unix socket that records what reaches it.

For the few checks the example app cannot observe: when the first byte of
a request arrived, and how many times a request was delivered.

    up = FakeUpstream(path, respond=lambda req: b"HTTP/1.1 200 OK\\r\\n...")
    up.start(); ...; up.stop()
    up.requests  -> [Request(conn, index, method, target, body, first_byte_at)]

respond(request) returns the bytes to answer with, None to close the
connection without answering, or (bytes, seconds) to answer and then close
the connection after that many seconds (an app dropping an idle keep-alive
connection).
"""

import collections
import os
import socket
import threading
import time

Request = collections.namedtuple(
    "Request", "conn index method target headers body first_byte_at complete_at")


def ok_response(body=b"ok\n", extra=b""):
    return (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n%s\r\n%s"
            % (len(body), extra, body))


class FakeUpstream:
    def __init__(self, path, respond=None, respond_early=None):
        self.path = path
        self.respond = respond or (lambda req: ok_response())
        # respond_early(request without body) -> bytes sent right after the
        # head, before the body is read, then the connection closes; None
        # reads the body and calls respond() as usual.
        self.respond_early = respond_early
        self.requests = []
        self._lock = threading.Lock()
        self._sock = None
        self._threads = []
        self._conns = []
        self._stopping = False
        self._next_conn = 0

    @property
    def upstream(self):
        return "unix:" + self.path

    def start(self):
        if os.path.exists(self.path):
            os.unlink(self.path)
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.bind(self.path)
        self._sock.listen(64)
        self._sock.settimeout(0.2)
        t = threading.Thread(target=self._accept_loop, daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def stop(self):
        self._stopping = True
        for t in self._threads:
            t.join(5)
        with self._lock:
            for c in self._conns:
                try:
                    c.close()
                except OSError:
                    pass
        self._sock.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def snapshot(self):
        with self._lock:
            return list(self.requests)

    def _accept_loop(self):
        while not self._stopping:
            try:
                conn, _ = self._sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self._lock:
                conn_id = self._next_conn
                self._next_conn += 1
                self._conns.append(conn)
            t = threading.Thread(target=self._serve, args=(conn, conn_id), daemon=True)
            t.start()
            self._threads.append(t)

    def _serve(self, conn, conn_id):
        conn.settimeout(0.2)
        buf = bytearray()
        index = 0
        first_byte_at = None

        def fill():
            nonlocal first_byte_at
            while not self._stopping:
                try:
                    piece = conn.recv(65536)
                except socket.timeout:
                    continue
                except OSError:
                    return False
                if not piece:
                    return False
                if first_byte_at is None:
                    first_byte_at = time.monotonic()
                buf.extend(piece)
                return True
            return False

        try:
            while not self._stopping:
                while b"\r\n\r\n" not in buf:
                    if not fill():
                        return
                end = buf.index(b"\r\n\r\n") + 4
                lines = bytes(buf[:end - 4]).decode("latin-1").split("\r\n")
                del buf[:end]
                method, target, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = bytearray()
                if self.respond_early is not None:
                    early = self.respond_early(Request(conn_id, index, method, target, headers,
                                                       b"", first_byte_at, None))
                    if early is not None:
                        with self._lock:
                            self.requests.append(Request(conn_id, index, method, target,
                                                         headers, None, first_byte_at, None))
                        conn.sendall(early)
                        return
                if headers.get("transfer-encoding", "").lower() == "chunked":
                    while True:
                        while b"\r\n" not in buf:
                            if not fill():
                                return
                        i = buf.index(b"\r\n")
                        size = int(bytes(buf[:i]).split(b";")[0], 16)
                        del buf[:i + 2]
                        while len(buf) < size + 2:
                            if not fill():
                                return
                        body += buf[:size]
                        del buf[:size + 2]
                        if size == 0:
                            break
                else:
                    n = int(headers.get("content-length", "0"))
                    while len(buf) < n:
                        if not fill():
                            return
                    body += buf[:n]
                    del buf[:n]
                req = Request(conn_id, index, method, target, headers, bytes(body),
                              first_byte_at, time.monotonic())
                with self._lock:
                    self.requests.append(req)
                index += 1
                first_byte_at = time.monotonic() if buf else None
                answer = self.respond(req)
                if answer is None:
                    return
                if isinstance(answer, tuple):
                    conn.sendall(answer[0])
                    time.sleep(answer[1])
                    return
                conn.sendall(answer)
        finally:
            conn.close()
