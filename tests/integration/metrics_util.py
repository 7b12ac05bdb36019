"""Helpers for the metrics and probes integration tests.

scrape(port) reads /metrics; parse(text) turns the exposition into
{"name{label=value,...}": float} with labels sorted; monotonic(samples)
keeps the series that must never go down (counters and histogram parts);
probe(port, path) answers (status, body text).
"""

import http.client
import re
import time

from forkd_harness import free_port, wait_until

_LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def get(port, path, timeout=5):
    """GET http://127.0.0.1:port/path: (status, headers dict, body text)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        body = resp.read().decode("utf-8", "replace")
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body
    finally:
        conn.close()


def scrape(port):
    status, headers, body = get(port, "/metrics")
    assert status == 200, body
    return body


def parse(text):
    samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _LINE.match(line)
        assert m, "bad exposition line: %r" % line
        labels = sorted(_LABEL.findall(m.group(3) or ""))
        key = m.group(1) + "{" + ",".join('%s="%s"' % kv for kv in labels) + "}"
        samples[key] = float(m.group(4))
    return samples


def metrics(port):
    return parse(scrape(port))


def value(samples, name, **labels):
    key = name + "{" + ",".join('%s="%s"' % kv for kv in sorted(labels.items())) + "}"
    return samples.get(key, 0.0)


def total(samples, name):
    """Sum of every series of a family (by exact metric name)."""
    return sum(v for k, v in samples.items() if k.split("{", 1)[0] == name)


def monotonic(samples):
    """The series that must never decrease."""
    keep = {}
    for k, v in samples.items():
        name = k.split("{", 1)[0]
        if name.endswith(("_total", "_bucket", "_count", "_sum")):
            keep[k] = v
    return keep


def assert_not_lower(now, before, what):
    lower = {k: (before[k], now.get(k)) for k in before
             if k not in now or now[k] < before[k]}
    assert not lower, "%s: counters went backwards: %s" % (what, lower)


def probe(port, path):
    status, _, body = get(port, path)
    return status, body.strip()


def wait_probe(port, path, want_status, timeout=10, contains=""):
    def ok():
        status, body = probe(port, path)
        return (status == want_status and contains in body) and (status, body)
    return wait_until(ok, timeout, interval=0.05,
                      what="%s answering %d%s" % (path, want_status,
                                                  " with %r" % contains if contains else ""))


def metrics_args(port=None, extra=()):
    """forkd arguments for a metrics plane on a free loopback port."""
    port = port or free_port()
    return port, ["--metrics-bind", "127.0.0.1:%d" % port] + list(extra)


def quiet(port, keys=("forkd_request_duration_seconds_count",)):
    """The metrics once two scrapes 300 ms apart agree on `keys` (the master
    publishes its snapshot every <= 250 ms), so no request is still on its
    way into the counters."""
    def same():
        a = metrics(port)
        time.sleep(0.3)
        b = metrics(port)
        return all(total(a, k) == total(b, k) for k in keys) and b
    return wait_until(same, 5, interval=0, what="quiet metrics")
