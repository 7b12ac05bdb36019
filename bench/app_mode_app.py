"""The WSGI app bench/app_mode.sh serves, with Gunicorn alone and with forkd
in app mode (the same file, the same Gunicorn, so only what is in front
differs).

  /        "hello" after ~1 ms of CPU (the work a small view does)
  /big     512 KiB: a response a slow reader cannot take in one go
  /slow    "slow" after 20 ms of waiting (a database call)
"""
import time

BIG = b"x" * (512 * 1024)


def _spin(seconds):
    end = time.perf_counter() + seconds
    n = 0
    while time.perf_counter() < end:
        n += 1
    return n


def app(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    if path == "/big":
        body = BIG
    elif path == "/slow":
        time.sleep(0.02)
        body = b"slow\n"
    else:
        _spin(0.001)
        body = b"hello\n"
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]
