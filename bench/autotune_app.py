#!/usr/bin/env python3
"""The synthetic apps bench/autotune.sh tunes (issue 12), one file, served by
forkd in app mode on the inherited fd 3 (LISTEN_FDS=1):

  forkd -w N --worker-class gthread --threads T -- \
      python3 autotune_app.py --threads {threads} --state DIR

At most --threads requests of one process run at a time (a gthread
worker's pool; one thread on the CPU at a time, as with the GIL), the other
connections wait for a thread.

  /cpu     ~5 ms of CPU (CPU-bound)
  /io      50 ms of waiting (I/O-bound: a slow database call)
  /mixed   5 ms of CPU + 20 ms of waiting
  /knee    20 ms of waiting, stretched by the number N of /knee requests in
           flight across all processes (a shared lock-protected counter in
           DIR/knee): 20 ms x (1 + 0.02 (N-1) + 0.002 N (N-1)), the
           Universal Scalability Law with a knee at ~22 in flight, so
           throughput falls past it (lock contention in a database)
  /pid     the process's pid (the integration tests' readiness check)
  /flip    /cpu or /io, as DIR/mode says ("cpu" or "io", read at most
           every 0.2 s): the load flips without a restart
"""
import argparse
import fcntl
import mmap
import os
import socket
import socketserver
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

SIGMA, KAPPA, KNEE_BASE = 0.02, 0.002, 0.020


def spin(seconds):
    # CPU time, not wall time: a thread preempted by the others still does
    # its ~5 ms of work (what a request's Python code costs).
    end = time.thread_time() + seconds
    n = 0
    while time.thread_time() < end:
        n += 1
    return n


class Knee:
    """Requests in flight across processes: an 8-byte counter in a shared
    file, changed under flock."""

    def __init__(self, path):
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        if os.fstat(fd).st_size < 8:
            os.ftruncate(fd, 8)
        self.fd = fd
        self.map = mmap.mmap(fd, 8)

    def add(self, d):
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        try:
            n = struct.unpack_from("q", self.map, 0)[0] + d
            struct.pack_into("q", self.map, 0, max(0, n))
            return n
        finally:
            fcntl.flock(self.fd, fcntl.LOCK_UN)


class Mode:
    def __init__(self, path):
        self.path, self.value, self.read_at = path, "cpu", 0.0
        self.lock = threading.Lock()

    def get(self):
        now = time.monotonic()
        with self.lock:
            if now - self.read_at > 0.2:
                self.read_at = now
                try:
                    with open(self.path) as f:
                        self.value = f.read().strip() or "cpu"
                except OSError:
                    pass
            return self.value


def make_handler(pool, knee, mode):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_GET(self):
            path = self.path.split("?", 1)[0]
            if path == "/flip":
                path = "/" + mode.get()
            with pool:  # one of --threads
                if path == "/cpu":
                    spin(0.005)
                elif path == "/io":
                    time.sleep(0.05)
                elif path == "/mixed":
                    spin(0.005)
                    time.sleep(0.02)
                elif path == "/knee":
                    n = knee.add(1)
                    try:
                        time.sleep(KNEE_BASE * (1 + SIGMA * (n - 1) + KAPPA * n * (n - 1)))
                    finally:
                        knee.add(-1)
                elif path == "/pid":
                    pass
                elif path not in ("/", "/health"):
                    self.send_error(404)
                    return
            body = (b"%d" % os.getpid() if path == "/pid"
                    else b"ok %d\n" % os.getpid())
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler


class Server(socketserver.ThreadingMixIn, HTTPServer):
    daemon_threads = True

    def __init__(self, sock, handler):
        HTTPServer.__init__(self, None, handler, bind_and_activate=False)
        self.socket = sock
        self.server_address = ""

    def server_bind(self):
        pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--state", required=True)
    a = ap.parse_args()
    if os.environ.get("LISTEN_FDS") != "1":
        sys.exit("autotune_app.py: run it under forkd's app mode (LISTEN_FDS=1)")
    sock = socket.socket(fileno=3)
    pool = threading.BoundedSemaphore(max(1, a.threads))
    handler = make_handler(pool, Knee(os.path.join(a.state, "knee")),
                           Mode(os.path.join(a.state, "mode")))
    Server(sock, handler).serve_forever(poll_interval=0.5)


if __name__ == "__main__":
    main()
