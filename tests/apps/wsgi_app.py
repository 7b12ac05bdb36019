"""A tiny WSGI app for tests that put forkd in front of a real Gunicorn.

    gunicorn --bind unix:/tmp/x.sock --chdir tests/apps wsgi_app:app

Endpoints: / and /hello (200 "hello\\n"), /sleep?ms=N (default 100),
/echo (the request body back, any method), /bytes?n=N (exactly N bytes,
default 1024).  Bad query values give 400; unknown paths 404.
"""

import os
import time
from urllib.parse import parse_qs

_CHUNK = 64 * 1024
_BLOCK = b"x" * _CHUNK
_MAX_MS = 600_000
_MAX_BYTES = 1 << 40


class _BadRequest(Exception):
    pass


def _int_param(environ, name, default, hi):
    values = parse_qs(environ.get("QUERY_STRING", "")).get(name)
    if not values:
        return default
    try:
        value = int(values[-1], 10)
    except ValueError:
        raise _BadRequest("%s: not an integer" % name) from None
    if not 0 <= value <= hi:
        raise _BadRequest("%s: out of range [0, %d]" % (name, hi))
    return value


def _text(start_response, status, text):
    body = text.encode()
    start_response(status, [("Content-Type", "text/plain; charset=utf-8"),
                            ("Content-Length", str(len(body)))])
    return [body]


def _bytes_body(n):
    while n > 0:
        piece = _BLOCK[:min(n, _CHUNK)]
        n -= len(piece)
        yield piece


def app(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    try:
        if path in ("/", "/hello"):
            return _text(start_response, "200 OK", "hello\n")
        if path == "/sleep":
            ms = _int_param(environ, "ms", 100, _MAX_MS)
            time.sleep(ms / 1000.0)
            return _text(start_response, "200 OK", "pid=%d slept_ms=%d\n" % (os.getpid(), ms))
        if path == "/bytes":
            n = _int_param(environ, "n", 1024, _MAX_BYTES)
            start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                      ("Content-Length", str(n))])
            return _bytes_body(n)
        if path == "/echo":
            # Gunicorn's wsgi.input handles Content-Length and chunked bodies.
            body = environ["wsgi.input"].read()
            start_response("200 OK", [
                ("Content-Type", environ.get("CONTENT_TYPE") or "application/octet-stream"),
                ("Content-Length", str(len(body))),
                ("X-Echo-Method", environ["REQUEST_METHOD"]),
                ("X-Echo-Length", str(len(body)))])
            return [body]
        return _text(start_response, "404 Not Found", "not found: %s\n" % path)
    except _BadRequest as e:
        return _text(start_response, "400 Bad Request", "bad request: %s\n" % e)
