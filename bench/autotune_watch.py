#!/usr/bin/env python3
"""bench/autotune.sh's measuring side (issue 12): forkd's /metrics sampled
over a run, and what the script reports from the samples.

  watch METRICS_PORT SECONDS OUT [MARKS]
      samples /metrics every 0.5 s for SECONDS into OUT (JSON lines: t, the
      2xx/3xx and 4xx/5xx request totals, the request-duration histogram,
      workers and threads in force). MARKS: "T=CMD;..." runs the shell CMD
      T seconds in (the load flip writes the app's mode file).
  converge OUT BEST FROM TO [FOLLOW]
      from the samples between FROM and TO seconds: time from FROM until the
      throughput over a 5 s window first reaches 0.9 x BEST; the throughput
      over the FOLLOW (60) seconds after that as a ratio of BEST; p99 (ms) of
      those seconds; 4xx/5xx answers between FROM and TO; the last change of
      workers x threads (seconds after FROM) and the final configuration.
      Prints "T90 RATIO P99_MS FAILED LAST_CHANGE WxT".
  h2log LOG SECONDS
      an h2load --log-file: "GOODPUT_RPS P99_MS OK NON2XX" (goodput: 2xx per
      second of the run; p99 of the 2xx answers).
"""
import json
import re
import subprocess
import sys
import time
import urllib.request

LINE = re.compile(r'^([a-z_]+)(\{[^}]*\})? ([^ ]+)$')


def scrape(port):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=2) as r:
        text = r.read().decode()
    ok = bad = 0
    buckets = {}
    workers = threads = 0
    for line in text.splitlines():
        m = LINE.match(line)
        if not m:
            continue
        name, labels, value = m.group(1), m.group(2) or "", float(m.group(3))
        if name == "forkd_requests_total":
            if 'status_class="2xx"' in labels or 'status_class="3xx"' in labels:
                ok += value
            elif 'status_class="4xx"' in labels or 'status_class="5xx"' in labels:
                bad += value
        elif name == "forkd_request_duration_seconds_bucket":
            le = re.search(r'le="([^"]+)"', labels).group(1)
            le = float("inf") if le == "+Inf" else float(le)
            buckets[le] = buckets.get(le, 0) + value
        elif name == "forkd_autotune_workers":
            workers = int(value)
        elif name == "forkd_autotune_threads":
            threads = int(value)
    return {"ok": ok, "bad": bad, "buckets": sorted(buckets.items()),
            "workers": workers, "threads": threads}


def watch(port, seconds, out, marks=""):
    todo = []
    for m in filter(None, marks.split(";")):
        t, cmd = m.split("=", 1)
        todo.append((float(t), cmd))
    start = time.monotonic()
    with open(out, "w") as f:
        while True:
            t = time.monotonic() - start
            for mark in [m for m in todo if m[0] <= t]:
                subprocess.run(mark[1], shell=True, check=False)
                todo.remove(mark)
            try:
                s = scrape(port)
                s["t"] = t
                f.write(json.dumps(s) + "\n")
                f.flush()
            except OSError:
                pass
            if t >= seconds:
                return
            time.sleep(max(0.0, 0.5 - (time.monotonic() - start - t)))


def load(out):
    with open(out) as f:
        return [json.loads(l) for l in f if l.strip()]


def at(samples, t):
    """The last sample at or before t (the first one if none)."""
    best = samples[0]
    for s in samples:
        if s["t"] <= t:
            best = s
    return best


def p99(a, b):
    """p99 (ms) of the requests between samples a and b, interpolated in
    the bucket as Prometheus' histogram_quantile."""
    d = [(le, cb - ca) for (le, cb), (_, ca) in zip(b["buckets"], a["buckets"])]
    total = d[-1][1] if d else 0
    if total <= 0:
        return float("nan")
    rank, lo, prev = 0.99 * total, 0.0, 0.0
    for le, c in d:
        if c >= rank:
            if le == float("inf"):
                return lo * 1000
            return (lo + (le - lo) * (rank - prev) / max(c - prev, 1e-9)) * 1000
        lo, prev = le, c
    return lo * 1000


def converge(out, best, t_from, t_to, follow=60.0):
    s = [x for x in load(out) if t_from - 0.6 <= x["t"] <= t_to + 0.1]
    if len(s) < 2 or best <= 0:
        print("n/a n/a n/a n/a n/a n/a")
        return
    first = s[0]
    t90 = None
    for x in s:
        if x["t"] - 5 < first["t"]:
            continue
        y = at(s, x["t"] - 5)
        rate = (x["ok"] - y["ok"]) / max(x["t"] - y["t"], 1e-9)
        if rate >= 0.9 * best:
            t90 = x["t"] - t_from
            break
    start = t_from + (t90 if t90 is not None else 0)
    end = min(start + follow, s[-1]["t"])
    a, b = at(s, start), at(s, end)
    rate = (b["ok"] - a["ok"]) / max(b["t"] - a["t"], 1e-9)
    failed = int(s[-1]["bad"] - first["bad"])
    last, cfg = 0.0, (first["workers"], first["threads"])
    for x in s:
        c = (x["workers"], x["threads"])
        if c != cfg:
            last, cfg = x["t"] - t_from, c
    print("%s %.2f %.0f %d %.0f %dx%d" % (
        "%.0f" % t90 if t90 is not None else ">%.0f" % (t_to - t_from),
        rate / best, p99(a, b), failed, last, cfg[0], cfg[1]))


def h2log(path, seconds):
    lat, ok, other = [], 0, 0
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) < 3:
                continue
            status, us = int(parts[1]), int(parts[2])
            if 200 <= status < 300:
                ok += 1
                lat.append(us / 1000)
            else:
                other += 1
    lat.sort()
    p = lat[min(len(lat) - 1, int(0.99 * len(lat)))] if lat else float("nan")
    print("%.0f %.0f %d %d" % (ok / seconds, p, ok, other))


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "watch":
        watch(int(args[0]), float(args[1]), args[2], args[3] if len(args) > 3 else "")
    elif cmd == "converge":
        converge(args[0], float(args[1]), float(args[2]), float(args[3]),
                 float(args[4]) if len(args) > 4 else 60.0)
    elif cmd == "h2log":
        h2log(args[0], float(args[1]))
    else:
        sys.exit("autotune_watch.py: unknown command %s" % cmd)


if __name__ == "__main__":
    main()
