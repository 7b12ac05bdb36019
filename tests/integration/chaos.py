"""Chaos under load (issue 13 item 6): faults against a running forkd while
real clients load it, and the bookkeeping that explains every failure.

    report = run_chaos(Plan(...))

test_chaos.py runs a short plan and asserts on the report; bench/chaos.py
runs a long one and prints its tables. The plan runs in phases, so that a
failure can be pinned on what caused it:

    warmup     load only; then the load stops, the pool settles, and the
               master's and workers' fds and RSS are taken as the baseline
    planned    HUP x N (each waits for the new generation), then a resize
               storm over the admin API (ScaleWorkers, SetThreads)
    drain      Drain / Resume over the admin API, a few times
    kills      kill -9 of a random worker every few seconds, and kill -9 of
               the app, started again after a moment
    (settle)   load stops; fds and RSS are compared with the baseline
    upgrade    USR2, WINCH and TERM of the old master (a binary upgrade)
               under load; the new master goes on serving

Load in every phase: a probe client of our own (keep-alive HTTP/1.1
threads that record each request's times, status and connection), plus wrk
(HTTP/1.1) and h2load (HTTP/2) for real load, run in chunks of a couple of
seconds so that their summaries fall in one phase each.

Every fault is recorded with its time window. A failed probe request is
explained when
  - it got 502 while the app was down (killed, not yet restarted), and the
    error log has forkd's line for that request id; or
  - it got no answer and the worker holding its connection was killed
    after the connection's last answer and before the failure (the worker
    of a connection comes from the access log: %(rid)s -> %(p)s of the
    connection's earlier requests), or, for a connection that never got an
    answer, a worker was killed while the request was in flight.
A 503 saying "draining" while the server was drained is the documented
answer of a drained server, counted apart and not as a failure. Anything
else is unexplained; in a planned phase nothing may fail at all.

Watched all along (every 0.25 s): the master is alive (until its planned
TERM in the upgrade), no child of a master stays a zombie, and every
counter of /metrics never goes down (per master: a USR2 upgrade starts a
new master whose counters start again, which Prometheus sees as a reset;
the watcher tells the masters apart by process_start_time_seconds).
"""

import collections
import http.client
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import traceback

import metrics_util
from admin_client import AdminClient
from forkd_harness import (ExampleApp, Forkd, _proc_stat, free_port, pid_alive, rss_kib,
                           short_tmpdir, wait_until)
from master_util import read_pid, wait_gone, wait_worker_set, workers_of

Plan = collections.namedtuple("Plan", [
    "worker_class",     # gthread (the resize storm sets threads) or async
                        # (it sets worker connections)
    "workers",          # initial worker count
    "threads",          # initial threads per worker (gthread)
    "max_workers",
    "probe_threads",    # our own recording HTTP/1.1 clients
    "h2_probe_threads",  # and HTTP/2 ones
    "wrk_connections",  # 0: no wrk
    "h2_clients",       # 0: no h2load
    "h2_streams",
    "warmup",           # seconds of load before the baseline
    "hups",             # HUP count in the planned phase
    "resizes",          # admin resize rounds (ScaleWorkers + SetThreads)
    "drains",           # Drain/Resume rounds
    "drain_hold",       # seconds drained each round
    "kill_seconds",     # length of the kill phase
    "kill_interval",    # seconds between two worker kills
    "boot_kills",       # at the start of the kill phase: kill -9 this many
                        # new workers in a row while they boot
    "app_kills",        # app kill -9 + restart count in the kill phase
    "app_down",         # seconds the app stays down
    "upgrade",          # run the USR2 phase
    "min_requests",     # keep loading in the kill phase until this many
                        # requests were served in all (0: no minimum)
    "path",             # what the probe client and wrk ask for
    "seed",
])

DEFAULT_PLAN = Plan(worker_class="gthread", workers=3, threads=4, max_workers=8, probe_threads=4, h2_probe_threads=2,
                    wrk_connections=8,
                    h2_clients=2, h2_streams=4, warmup=2.0, hups=3, resizes=4, drains=2,
                    drain_hold=0.7, kill_seconds=12.0, kill_interval=2.0, boot_kills=6, app_kills=1,
                    app_down=1.0, upgrade=True, min_requests=0, path="/sleep?ms=3", seed=13)

PLANNED_PHASES = ("warmup", "planned", "drain", "upgrade")
LOAD_CHUNK = 2  # seconds per wrk / h2load run


# --- probe client -------------------------------------------------------------------


class ProbeClient:
    """Keep-alive HTTP/1.1 GETs from `threads` threads, each request recorded:
    dict(t0, t1, status (None: no answer), error, rid, body (first bytes
    of a non-2xx), conn (thread, n), conn_t0, reused, phase)."""

    def __init__(self, port, path, threads, phase_of):
        self.port, self.path, self.threads = port, path, threads
        self.phase_of = phase_of
        self.records = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._paused = threading.Event()
        self._idle = [threading.Event() for _ in range(threads)]
        self._threads = []

    def start(self):
        for i in range(self.threads):
            t = threading.Thread(target=self._run, args=(i,), daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def pause(self):
        """Every thread closes its connection and waits for resume()."""
        self._paused.set()
        for e in self._idle:
            e.wait(30)

    def resume(self):
        for e in self._idle:
            e.clear()
        self._paused.clear()

    def stop(self):
        self._stop.set()
        for t in self._threads:
            t.join(30)

    def _run(self, tid):
        conn, conn_n, conn_t0, used, n = None, 0, 0.0, 0, 0
        while not self._stop.is_set():
            if self._paused.is_set():
                if conn is not None:
                    conn.close()
                    conn = None
                self._idle[tid].set()
                time.sleep(0.02)
                continue
            n += 1
            rid = "chaos-%d-%d" % (tid, n)
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
                conn_n, conn_t0, used = conn_n + 1, time.monotonic(), 0
            rec = {"rid": rid, "conn": (tid, conn_n), "conn_t0": conn_t0, "reused": used > 0,
                   "status": None, "error": None, "body": b""}
            rec["t0"] = time.monotonic()
            rec["phase"] = self.phase_of()
            try:
                conn.request("GET", self.path, headers={"X-Request-Id": rid})
                resp = conn.getresponse()
                body = resp.read()
                rec["status"] = resp.status
                if not 200 <= resp.status < 300:
                    rec["body"] = body[:200]
                used += 1
                if resp.will_close:
                    conn.close()
                    conn = None
            except Exception as e:  # noqa: BLE001 - every error is recorded
                rec["error"] = "%s: %s" % (type(e).__name__, e)
                conn.close()
                conn = None
            rec["t1"] = time.monotonic()
            with self._lock:
                self.records.append(rec)
            if rec["status"] is None:
                self._stop.wait(0.01)
        if conn is not None:
            conn.close()


class H2ProbeClient(ProbeClient):
    """ProbeClient over HTTP/2 (h2c with prior knowledge, Python's h2): one
    stream at a time per connection, records as ProbeClient's plus
    "refused" (see below).

    A GOAWAY ends a connection gracefully: the stream in flight is waited
    for when its id is at most the GOAWAY's last stream id (the server took
    it), and then the client moves to a new connection. A stream above it
    was never processed by the server, so the client sends it again on a
    new connection, as RFC 9113 6.8 allows; such a request is recorded once,
    with refused=True, and is not a failure. (Python's h2 closes its state
    machine on the first GOAWAY, even the NO_ERROR notice of a graceful
    shutdown; _graceful_h2_connection keeps it open for the streams that
    still finish.)
    """

    def _run(self, tid):
        import h2.config
        import h2.connection
        import h2.events
        sock = conn = None
        conn_n, conn_t0, used, n = 0, 0.0, 0, 0
        while not self._stop.is_set():
            if self._paused.is_set():
                if sock is not None:
                    sock.close()
                    sock = conn = None
                self._idle[tid].set()
                time.sleep(0.02)
                continue
            n += 1
            rid = "chaos-h2-%d-%d" % (tid, n)
            rec = {"rid": rid, "status": None, "error": None, "body": b"", "refused": False,
                   "t0": time.monotonic(), "phase": self.phase_of(),
                   "conn": (tid + 1000, conn_n + 1), "conn_t0": time.monotonic(),
                   "reused": False}
            for attempt in range(2):
                if sock is None:
                    try:
                        sock = socket.create_connection(("127.0.0.1", self.port), timeout=15)
                    except OSError as e:
                        rec["error"] = "%s: %s" % (type(e).__name__, e)
                        break
                    conn = _graceful_h2_connection(h2)
                    conn.initiate_connection()
                    conn_n, conn_t0, used = conn_n + 1, time.monotonic(), 0
                rec.update(conn=(tid + 1000, conn_n), conn_t0=conn_t0, reused=used > 0)
                try:
                    status, body, goaway = self._exchange(sock, conn, rid, h2)
                except _Refused:
                    rec["refused"] = True
                    sock.close()
                    sock = conn = None
                    continue  # never processed: send it again
                except Exception as e:  # noqa: BLE001 - every error is recorded
                    rec["error"] = "%s: %s" % (type(e).__name__, e)
                    sock.close()
                    sock = conn = None
                    break
                rec["status"] = status
                if not 200 <= status < 300:
                    rec["body"] = body[:200]
                used += 1
                if goaway:
                    sock.close()
                    sock = conn = None
                break
            rec["t1"] = time.monotonic()
            with self._lock:
                self.records.append(rec)
            if rec["status"] is None:
                self._stop.wait(0.01)
        if sock is not None:
            sock.close()

    def _exchange(self, sock, conn, rid, h2):
        sid = conn.get_next_available_stream_id()
        conn.send_headers(sid, [(b":method", b"GET"), (b":scheme", b"http"),
                                (b":authority", b"127.0.0.1:%d" % self.port),
                                (b":path", self.path.encode()),
                                (b"x-request-id", rid.encode())], end_stream=True)
        sock.sendall(conn.data_to_send())
        status, body, goaway = None, b"", False
        while True:
            data = sock.recv(65536)
            if not data:
                raise ConnectionError("connection closed with stream %d open" % sid)
            for ev in conn.receive_data(data):
                if isinstance(ev, h2.events.ResponseReceived) and ev.stream_id == sid:
                    status = int(dict(ev.headers)[b":status"])
                elif isinstance(ev, h2.events.DataReceived):
                    conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                    if ev.stream_id == sid:
                        body += ev.data
                elif isinstance(ev, h2.events.StreamReset) and ev.stream_id == sid:
                    raise ConnectionError("stream reset: %s" % ev.error_code)
                elif isinstance(ev, h2.events.ConnectionTerminated):
                    if ev.error_code != 0:
                        raise ConnectionError("GOAWAY %s" % ev.error_code)
                    if sid > ev.last_stream_id:
                        raise _Refused()
                    goaway = True
                elif isinstance(ev, h2.events.StreamEnded) and ev.stream_id == sid:
                    out = conn.data_to_send()
                    if out:
                        sock.sendall(out)
                    if status is None:
                        raise ConnectionError("stream %d ended without a response" % sid)
                    return status, body, goaway
            out = conn.data_to_send()
            if out:
                sock.sendall(out)


class _Refused(Exception):
    pass


def _graceful_h2_connection(h2):
    """An h2 client connection that stays open after a NO_ERROR GOAWAY, so
    the streams the server still finishes can be read (h2 closes its state
    machine on any GOAWAY, and then refuses every later frame)."""

    class Graceful(h2.connection.H2Connection):
        def _receive_goaway_frame(self, frame):
            state = self.state_machine.state
            frames, events = super()._receive_goaway_frame(frame)
            if frame.error_code == 0:
                self.state_machine.state = state
            return frames, events

    return Graceful(h2.config.H2Configuration(client_side=True, header_encoding=None))


class Probes:
    """Several probe clients driven as one."""

    def __init__(self, probes):
        self.probes = probes

    def start(self):
        for p in self.probes:
            p.start()
        return self

    def pause(self):
        for p in self.probes:
            p._paused.set()
        for p in self.probes:
            p.pause()

    def resume(self):
        for p in self.probes:
            p.resume()

    def stop(self):
        for p in self.probes:
            p._stop.set()
        for p in self.probes:
            p.stop()

    @property
    def records(self):
        return [r for p in self.probes for r in p.records]


# --- wrk and h2load in chunks -------------------------------------------------------


_WRK_REQS = re.compile(r"(\d+) requests in")
_WRK_SOCK = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
_WRK_NON2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)")
_H2LOAD = re.compile(r"requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, "
                     r"(\d+) failed, (\d+) errored, (\d+) timeout")


def _wrk_summary(out):
    m = _WRK_REQS.search(out)
    s = _WRK_SOCK.search(out)
    e = _WRK_NON2XX.search(out)
    return {"requests": int(m.group(1)) if m else 0,
            "socket_errors": sum(map(int, s.groups())) if s else 0,
            "non2xx": int(e.group(1)) if e else 0,
            "parsed": m is not None}


def _h2load_summary(out):
    m = _H2LOAD.search(out)
    if not m:
        return {"requests": 0, "succeeded": 0, "non2xx": 0, "errored": 0, "parsed": False}
    total, done, ok, failed, errored, timeout = map(int, m.groups())
    # h2load's "failed" counts the errored streams and the non-2xx/3xx answers.
    return {"requests": done, "succeeded": ok, "non2xx": failed - errored,
            "errored": errored + timeout + (total - done), "parsed": True}


class ChunkedLoad:
    """wrk and h2load, each run again every LOAD_CHUNK seconds until stopped;
    every run's summary is filed under the phase it started in (a phase
    ends only after its runs did, see finish_phase)."""

    def __init__(self, url, plan, phase_of):
        self.url, self.plan, self.phase_of = url, plan, phase_of
        self.summaries = collections.defaultdict(lambda: collections.defaultdict(int))
        self.outputs = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._pause = threading.Event()
        self._idle = [threading.Event(), threading.Event()]
        self._threads = []

    def _loop(self, idx, cmd, summarize, tool):
        while not self._stop.is_set():
            if self._pause.is_set():
                self._idle[idx].set()
                time.sleep(0.05)
                continue
            self._idle[idx].clear()
            phase = self.phase_of()
            p = subprocess.run(cmd, capture_output=True, timeout=LOAD_CHUNK + 30)
            out = p.stdout.decode(errors="replace") + p.stderr.decode(errors="replace")
            s = summarize(out)
            with self._lock:
                agg = self.summaries[(tool, phase)]
                for k, v in s.items():
                    agg[k] += int(v)
                agg["runs"] += 1
                if not s["parsed"] or p.returncode != 0:
                    self.outputs.append((tool, phase, p.returncode, out[-2000:]))
        self._idle[idx].set()

    def start(self):
        if self.plan.wrk_connections:
            cmd = ["wrk", "-t", "1", "-c", str(self.plan.wrk_connections), "-d",
                   "%ds" % LOAD_CHUNK, "--timeout", "10s", self.url + self.plan.path]
            self._spawn(0, cmd, _wrk_summary, "wrk")
        else:
            self._idle[0].set()
        if self.plan.h2_clients:
            cmd = ["h2load", "-c", str(self.plan.h2_clients), "-m", str(self.plan.h2_streams),
                   "-D", str(LOAD_CHUNK), "-T", "10", "-N", "10", self.url + self.plan.path]
            self._spawn(1, cmd, _h2load_summary, "h2load")
        else:
            self._idle[1].set()
        return self

    def _spawn(self, idx, cmd, summarize, tool):
        t = threading.Thread(target=self._loop, args=(idx, cmd, summarize, tool), daemon=True)
        t.start()
        self._threads.append(t)

    def pause(self):
        """Stops starting runs and waits until the running ones ended."""
        self._pause.set()
        for e in self._idle:
            e.wait(LOAD_CHUNK + 40)

    def resume(self):
        self._pause.clear()

    def stop(self):
        self._stop.set()
        for t in self._threads:
            t.join(LOAD_CHUNK + 40)


# --- watchers --------------------------------------------------------------------


def open_fds(pid):
    try:
        return len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return None


def zombie_children(ppid):
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = _proc_stat(int(name))
            if st is not None and st[1] == ppid and st[0] == "Z":
                out.append(int(name))
    return out


class Watcher:
    """Every 0.25 s: masters alive, zombies, /metrics monotone per master."""

    def __init__(self, metrics_port, masters):
        self.metrics_port = metrics_port
        self.masters = masters        # list of pids; the test appends the new master
        self.expected_exit = set()    # masters whose exit is planned
        self.master_deaths = []       # (pid, time) of unplanned exits
        self.zombies = {}             # pid -> (first seen, last seen)
        self.backwards = []           # counters that went down
        self.scrapes = 0
        self.scrape_errors = 0
        self.series_seen = 0
        self._last = {}               # master start time -> last monotone samples
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._thread.join(10)

    def _run(self):
        while not self._stop.wait(0.25):
            now = time.monotonic()
            for pid in list(self.masters):
                if pid in self.expected_exit:
                    continue
                if not pid_alive(pid) and all(p != pid for p, _ in self.master_deaths):
                    self.master_deaths.append((pid, now))
                for z in zombie_children(pid):
                    first, _ = self.zombies.get(z, (now, now))
                    self.zombies[z] = (first, now)
            try:
                samples = metrics_util.metrics(self.metrics_port)
            except Exception:  # noqa: BLE001 - the port moves during an upgrade
                self.scrape_errors += 1
                continue
            self.scrapes += 1
            start = samples.get("process_start_time_seconds{}")
            mono = metrics_util.monotonic(samples)
            self.series_seen = max(self.series_seen, len(mono))
            before = self._last.get(start)
            if before is not None:
                for k, v in before.items():
                    if k in mono and mono[k] < v:
                        self.backwards.append((k, v, mono[k]))
                    elif k not in mono:
                        self.backwards.append((k, v, None))
            self._last[start] = mono

    def lasting_zombies(self, at_least=1.0):
        return {z: (l - f) for z, (f, l) in self.zombies.items() if l - f >= at_least}


# --- the run -------------------------------------------------------------------------


def _boot_kill_streak(master, n, rng, fault):
    """kill -9 of one worker, then of each replacement as soon as it exists
    (while it boots), n times in a row: what an OOM killer does to a pod
    short of memory. The master backs off between the attempts."""
    known = set(workers_of(master))
    victim = rng.choice(sorted(known))
    t0 = time.monotonic()
    os.kill(victim, signal.SIGKILL)
    fault("worker kill -9", t0, pid=victim)
    kills, limit = 0, time.monotonic() + 30
    while kills < n and time.monotonic() < limit:
        # /proc/PID/task/*/children, not a scan of /proc: fast enough to
        # catch a worker within its first milliseconds.
        for p in _children(master):
            if p not in known:
                known.add(p)
                if kills < n:
                    t0 = time.monotonic()
                    os.kill(p, signal.SIGKILL)
                    fault("boot kill -9", t0, pid=p)
                    kills += 1
        time.sleep(0.001)


def _children(pid):
    out = []
    try:
        tasks = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return out
    for t in tasks:
        try:
            with open("/proc/%d/task/%s/children" % (pid, t)) as f:
                out += [int(c) for c in f.read().split()]
        except OSError:
            pass
    return out


class Report:
    def __init__(self):
        self.faults = []          # dict(kind, t0, t1, pid, detail)
        self.phases = []          # (name, t0, t1)
        self.records = []
        self.explained = []       # (record, fault kind)
        self.unexplained = []     # records
        self.drain_503 = 0
        self.load = {}
        self.load_outputs = []
        self.baseline = {}
        self.after = {}
        self.watcher = None
        self.requests_served = 0  # forkd's own count across the run
        self.log_tail = ""
        self.notes = []
        self.aborted = None       # the traceback when the plan could not go on
        self.error_log = ""
        self.access_log = ""


def _wait_ready_generation(client, generation, workers, timeout=30):
    """Waits until `workers` workers of `generation` are ready and no other
    worker is left."""
    def ok():
        s = client.status()
        cur = [w for w in s.workers if w.generation == generation and not w.retiring
               and w.state in (2, 3)]
        return s if len(cur) == workers and len(s.workers) == workers else None
    return wait_until(ok, timeout, interval=0.05, what="generation %d ready" % generation)


def fd_targets(pid):
    """{fd: what it points at} of pid ({} when it is gone)."""
    out = {}
    try:
        names = os.listdir("/proc/%d/fd" % pid)
    except OSError:
        return out
    for name in names:
        try:
            out[int(name)] = os.readlink("/proc/%d/fd/%s" % (pid, name))
        except OSError:
            pass
    return out


def _steady_fds(pid, samples=10):
    """The fewest fds pid held over `samples` looks 0.1 s apart: a leaked fd
    stays, where a scrape, a /proc read or the app check holds one for a
    moment."""
    best = None
    for _ in range(samples):
        fds = fd_targets(pid)
        if best is None or len(fds) < len(best):
            best = fds
        time.sleep(0.1)
    return best or {}


def _pool_level(fk_pid):
    ws = workers_of(fk_pid)
    master = _steady_fds(fk_pid)
    workers = {p: _steady_fds(p, 3) for p in ws}
    return {"master_fds": len(master), "master_rss_kib": rss_kib(fk_pid),
            "worker_fds": sorted(len(f) for f in workers.values()),
            "worker_rss_kib": sorted(rss_kib(p) or 0 for p in ws),
            "workers": ws, "master_fd_targets": master}


def _settle(fk, client, workers):
    """After the load stopped: keep-alive connections closed (--keepalive 2),
    every worker ready, nothing in flight."""
    s = client.status()
    _wait_ready_generation(client, s.generation, workers)
    time.sleep(2.6)
    metrics_util.quiet(fk.metrics_port)


def run_chaos(plan=DEFAULT_PLAN, forkd_bin=None, log=print):
    rng = random.Random(plan.seed)
    report = Report()
    phase = {"name": "start"}

    def phase_of():
        return phase["name"]

    app = ExampleApp()
    app.start()
    metrics_port = free_port()
    admin_port = free_port()
    tmpdir = short_tmpdir("fkc")
    access_log = os.path.join(tmpdir, "access.log")
    size = (["--threads", str(plan.threads)] if plan.worker_class == "gthread"
            else ["--worker-connections", "100"])
    fk = Forkd(app, ["--workers", str(plan.workers), "--worker-class", plan.worker_class,
                     "--max-workers", str(plan.max_workers)] + size + [
                     "--max-threads", "16", "--graceful-timeout", "15", "--keepalive", "2",
                     "--metrics-bind", "127.0.0.1:%d" % metrics_port,
                     "--admin-bind", "127.0.0.1:%d" % admin_port,
                     "--app-health-interval", "1",
                     "--access-logfile", access_log,
                     "--access-logformat", "%(rid)s %(p)s %(s)s"],
               binary=forkd_bin, tmpdir=tmpdir)
    fk.metrics_port = metrics_port
    new_master = None
    probe = load = watcher = None
    client = None
    try:
        fk.start()
        fk.wait_workers(plan.workers)
        client = AdminClient("127.0.0.1:%d" % admin_port)
        watcher = Watcher(metrics_port, [fk.pid]).start()
        report.watcher = watcher
        probe = Probes([ProbeClient(fk.port, plan.path, plan.probe_threads, phase_of),
                        H2ProbeClient(fk.port, plan.path, plan.h2_probe_threads, phase_of)])
        load = ChunkedLoad(fk.url(""), plan, phase_of)

        def begin(name):
            phase["name"] = name
            phase["t0"] = time.monotonic()
            log("phase %s" % name)

        def end():
            load.pause()
            report.phases.append((phase["name"], phase["t0"], time.monotonic()))
            phase["name"] = "between"
            load.resume()

        def fault(kind, t0, pid=None, detail=""):
            report.faults.append({"kind": kind, "t0": t0, "t1": time.monotonic(),
                                  "pid": pid, "detail": detail})

        # warmup, then the baseline with the load stopped and the pool settled
        begin("warmup")
        probe.start()
        load.start()
        time.sleep(plan.warmup)
        end()
        load.pause()
        probe.pause()
        _settle(fk, client, plan.workers)
        report.baseline = _pool_level(fk.pid)
        probe.resume()
        load.resume()

        # planned: HUP x N, then the resize storm
        begin("planned")
        workers = plan.workers
        for _ in range(plan.hups):
            gen = client.status().generation
            t0 = time.monotonic()
            fk.signal(signal.SIGHUP)
            _wait_ready_generation(client, gen + 1, workers)
            fault("HUP", t0, detail="generation %d" % (gen + 1))
            time.sleep(0.3)
        for i in range(plan.resizes):
            t0 = time.monotonic()
            target = rng.randint(2, min(plan.max_workers, 6))
            r = client.scale(count=target, wait=True, timeout_ms=20000)
            assert r.reached, r
            workers = target
            if plan.worker_class == "gthread":
                size = rng.choice([1, 2, 4, 8])
                client.threads(size, wait=True, timeout_ms=20000)
            else:
                size = rng.choice([20, 50, 100, 200])
                client.connections(size, wait=True, timeout_ms=20000)
            fault("resize", t0, detail="workers %d size %d" % (target, size))
            time.sleep(0.2)
        client.scale(count=plan.workers, wait=True, timeout_ms=20000)
        if plan.worker_class == "gthread":
            client.threads(plan.threads, wait=True, timeout_ms=20000)
        else:
            client.connections(100, wait=True, timeout_ms=20000)
        workers = plan.workers
        time.sleep(0.5)
        end()

        # drain / resume
        begin("drain")
        for _ in range(plan.drains):
            time.sleep(0.3)
            t0 = time.monotonic()
            client.drain()
            time.sleep(plan.drain_hold)
            client.resume()
            fault("drain", t0)
        time.sleep(0.5)
        end()

        # kills: a streak of booting workers, then workers every
        # kill_interval, the app app_kills times
        begin("kills")
        deadline = time.monotonic() + plan.kill_seconds
        if plan.boot_kills:
            _boot_kill_streak(fk.pid, plan.boot_kills, rng, fault)
        app_kill_at = sorted(deadline - plan.kill_seconds * (k + 1) / (plan.app_kills + 1)
                             for k in range(plan.app_kills))
        next_kill = time.monotonic() + plan.kill_interval / 2
        while True:
            now = time.monotonic()
            if now >= deadline and (plan.min_requests <= 0
                                    or _served(metrics_port) >= plan.min_requests):
                break
            if app_kill_at and now >= app_kill_at[0]:
                app_kill_at.pop(0)
                t0 = time.monotonic()
                app.proc.kill()
                app.proc.wait(10)
                time.sleep(plan.app_down)
                app.start()
                fault("app kill -9", t0, pid=None)
            elif now >= next_kill:
                ws = workers_of(fk.pid)
                if ws:
                    victim = rng.choice(ws)
                    t0 = time.monotonic()
                    os.kill(victim, signal.SIGKILL)
                    fault("worker kill -9", t0, pid=victim)
                next_kill = now + plan.kill_interval
            time.sleep(0.05)
        time.sleep(1.0)  # the last replacement worker boots under load
        end()

        # settle and compare with the baseline (same master)
        load.pause()
        probe.pause()
        _settle(fk, client, plan.workers)
        report.after = _pool_level(fk.pid)
        report.zombies_now = zombie_children(fk.pid)
        probe.resume()
        load.resume()

        if plan.upgrade:
            begin("upgrade")
            time.sleep(0.5)
            t0 = time.monotonic()
            fk.signal(signal.SIGUSR2)
            new_master = wait_until(lambda: read_pid(fk.pidfile + ".2"), 15, what="pidfile.2")
            watcher.masters.append(new_master)
            wait_worker_set(new_master, lambda p: len(p) == plan.workers, 20,
                            "the new master's workers")
            time.sleep(0.5)
            fk.signal(signal.SIGWINCH)
            wait_worker_set(fk.pid, lambda p: p == [], 20, "the old workers to stop")
            watcher.expected_exit.add(fk.pid)
            fk.signal(signal.SIGTERM)
            code = fk.proc.wait(20)
            report.notes.append("old master exit code %s" % code)
            wait_until(lambda: read_pid(fk.pidfile) == new_master, 10, what="pidfile takeover")
            fault("USR2 upgrade", t0, pid=new_master)
            time.sleep(1.5)  # the new master serves alone
            end()
            report.upgrade_exit = code
        load.stop()
        probe.stop()
        time.sleep(0.3)
        watcher.stop()
        try:
            report.requests_served = _served(metrics_port)
        except Exception:  # noqa: BLE001
            pass
        report.new_master = new_master
        report.new_master_alive = new_master is not None and pid_alive(new_master)
        report.new_master_zombies = zombie_children(new_master) if new_master else []
    except Exception:  # noqa: BLE001 - reported by check() with what the watcher saw
        report.aborted = traceback.format_exc()
    finally:
        if load:
            load.stop()
        if probe:
            probe.stop()
        if watcher:
            watcher.stop()
        if client:
            client.close()
        report.log_tail = fk.diagnostics() if fk.proc else ""
        report.error_log = fk.log()
        report.access_log = _read(access_log)
        if new_master and pid_alive(new_master):
            ws = workers_of(new_master)
            os.kill(new_master, signal.SIGTERM)
            if not wait_gone(new_master, 20):
                os.kill(new_master, signal.SIGKILL)
            for w in ws:
                if pid_alive(w):
                    os.kill(w, signal.SIGKILL)
        fk.cleanup()
        app.cleanup()
        shutil.rmtree(tmpdir, ignore_errors=True)
    if probe:
        report.records = list(probe.records)
    if load:
        report.load = {k: dict(v) for k, v in load.summaries.items()}
        report.load_outputs = list(load.outputs)
    _attribute(report)
    return report


def _served(metrics_port):
    return int(metrics_util.total(metrics_util.metrics(metrics_port),
                                  "forkd_requests_total"))


def _read(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


# --- attribution ---------------------------------------------------------------


def _attribute(report):
    rid_pid = {}
    for line in report.access_log.splitlines():
        parts = line.split()  # "%(rid)s %(p)s %(s)s": "chaos-1-7 <1234> 200"
        if len(parts) >= 2 and parts[0].startswith("chaos-"):
            pid = parts[1].strip("<>")
            if pid.isdigit():
                rid_pid[parts[0]] = int(pid)
    # Per connection: its worker (from earlier answered requests) and the
    # time of its last answer before each request.
    conn_pid = {}
    last_ok = {}
    windows = collections.defaultdict(list)
    for f in report.faults:
        windows[f["kind"]].append(f)
    kills = windows["worker kill -9"] + windows["boot kill -9"]
    # forkd's line for each 502: "502 for GET /p from ... (request RID): cause"
    logged_502 = set(re.findall(r"\] 502 for .*? \(request ([^)\s]+)\)", report.error_log))
    # "GET /p (request RID): cause; response cut short": the app died after
    # its answer had started, so forkd could only cut it (a reset stream).
    logged_cut = set(re.findall(r" \(request ([^)\s]+)\): .*?; response cut short",
                                report.error_log))
    for rec in sorted(report.records, key=lambda r: r["t0"]):
        conn = rec["conn"]
        # The start of the connection's last answered request: the worker
        # was alive when it answered, and died after that request began
        # (its answer may have reached the client after the kill was sent).
        rec["prev_ok"] = last_ok.get(conn, rec["conn_t0"])
        rec["worker"] = conn_pid.get(conn)
        if rec["status"] is not None:
            last_ok[conn] = rec["t0"]
            if rec["rid"] in rid_pid:
                conn_pid[conn] = rid_pid[rec["rid"]]
        ok = rec["status"] is not None and 200 <= rec["status"] < 300
        if ok:
            continue
        cause = _explain(rec, windows, kills, logged_502, logged_cut)
        rec["cause"] = cause
        if cause == "drain":
            report.drain_503 += 1
        elif cause:
            report.explained.append((rec, cause))
        else:
            report.unexplained.append(rec)


def _overlaps(rec, f, before=0.0, after=0.0):
    return rec["t0"] <= f["t1"] + after and rec["t1"] >= f["t0"] - before


def _explain(rec, windows, kills, logged_502, logged_cut):
    status = rec["status"]
    if status == 503 and b"draining" in rec["body"]:
        if any(_overlaps(rec, f) for f in windows["drain"]):
            return "drain"
        return None
    if status == 502:
        if any(_overlaps(rec, f) for f in windows["app kill -9"]) and \
                rec["rid"] in logged_502:
            return "app kill -9"
        return None
    if status is not None:
        return None
    if rec["rid"] in logged_cut and any(_overlaps(rec, f) for f in windows["app kill -9"]):
        return "app kill -9"
    # No answer: the worker holding the connection died.
    for k in kills:
        if rec["worker"] is not None:
            if k["pid"] == rec["worker"] and rec["prev_ok"] <= k["t0"] <= rec["t1"]:
                return k["kind"]
        elif rec["t0"] - 0.05 <= k["t0"] <= rec["t1"]:
            return k["kind"]
    return None


# --- tables ------------------------------------------------------------------------


FAULT_KINDS = ("worker kill -9", "boot kill -9", "app kill -9", "HUP", "resize", "drain",
               "USR2 upgrade")


def budget_table(report):
    """Rows (fault kind, faults, probe requests failed and attributed to it)."""
    counts = collections.Counter(kind for _, kind in report.explained)
    faults = collections.Counter(f["kind"] for f in report.faults)
    return [(kind, faults.get(kind, 0), counts.get(kind, 0)) for kind in FAULT_KINDS]


def longest_fault(report, kind):
    """Seconds the longest fault of a kind took (a HUP: until the new
    generation served alone; the upgrade: until the new master took over)."""
    return max((f["t1"] - f["t0"] for f in report.faults if f["kind"] == kind), default=0.0)


def format_report(report):
    lines = []
    total = len(report.records)
    h2 = sum(1 for r in report.records if r["rid"].startswith("chaos-h2-"))
    refused = sum(1 for r in report.records if r.get("refused"))
    lines.append("probe requests: %d (HTTP/1.1 %d, HTTP/2 %d), failed: %d (explained %d, "
                 "unexplained %d); 503 while drained (by design): %d; HTTP/2 streams above "
                 "a GOAWAY's last stream id, sent again (RFC 9113 6.8): %d"
                 % (total, total - h2, h2, len(report.explained) + len(report.unexplained),
                    len(report.explained), len(report.unexplained), report.drain_503,
                    refused))
    kills = [r for r, kind in report.explained if kind in ("worker kill -9", "boot kill -9")]
    lines.append("failures from worker kills pinned on the killed worker (access log): %d of "
                 "%d; the rest by time (the request was in flight at the kill)"
                 % (sum(1 for r in kills if r.get("worker") is not None), len(kills)))
    load_total = sum(v.get("requests", 0) for v in report.load.values())
    lines.append("requests in all: %d (probe %d, wrk + h2load %d); served by the last "
                 "master: %d" % (total + load_total, total, load_total,
                                 report.requests_served))
    lines.append("")
    lines.append("%-16s %7s %16s %12s" % ("fault", "count", "probe failures", "longest s"))
    for kind, n, failed in budget_table(report):
        lines.append("%-16s %7d %16d %12.2f" % (kind, n, failed, longest_fault(report, kind)))
    lines.append("")
    lines.append("%-8s %-8s %9s %9s %9s %9s" % ("tool", "phase", "requests", "errors",
                                                 "non-2xx", "runs"))
    for (tool, phase), s in sorted(report.load.items()):
        errors = s.get("socket_errors", 0) if tool == "wrk" else s.get("errored", 0)
        non2xx = s.get("non2xx", 0)
        lines.append("%-8s %-8s %9d %9d %9d %9d" % (tool, phase, s.get("requests", 0), errors,
                                                    non2xx, s.get("runs", 0)))
    lines.append("")
    b, a = report.baseline, report.after
    if b and a:
        lines.append("%-18s %14s %14s" % ("", "baseline", "after storm"))
        for key in ("master_fds", "master_rss_kib", "worker_fds", "worker_rss_kib"):
            lines.append("%-18s %14s %14s" % (key, b[key], a[key]))
    w = report.watcher
    if w:
        lines.append("")
        lines.append("metrics scrapes %d (%d failed), series checked %d, went backwards %d; "
                     "lasting zombies %d; master deaths %d"
                     % (w.scrapes, w.scrape_errors, w.series_seen, len(w.backwards),
                        len(w.lasting_zombies()), len(w.master_deaths)))
    return "\n".join(lines)


# --- checks ---------------------------------------------------------------------------

# A worker's fds after the storm may differ from the baseline by its idle
# upstream keep-alive connections (at most the peak concurrency it saw);
# a leak of one fd per fault or per thousand requests exceeds this.
WORKER_FD_MARGIN = 8
MASTER_RSS_MARGIN_KIB = 8 * 1024
WORKER_RSS_MARGIN_KIB = 8 * 1024


def _describe(rec, faults=()):
    near = sorted(faults, key=lambda f: abs(f["t0"] - rec["t0"]))[:2]
    return ("%s phase=%s status=%s error=%s body=%r worker=%s reused=%s conn_age=%.3f "
            "took=%.3f nearest faults: %s"
            % (rec["rid"], rec["phase"], rec["status"], rec["error"], rec["body"][:80],
               rec.get("worker"), rec["reused"], rec["t0"] - rec["conn_t0"],
               rec["t1"] - rec["t0"],
               ", ".join("%s %+.3f..%+.3f s" % (f["kind"], f["t0"] - rec["t0"],
                                               f["t1"] - rec["t0"]) for f in near)))


def check(report):
    """Every broken promise of the chaos plan, as messages (empty: all kept)."""
    problems = []
    if report.aborted:
        problems.append("the plan stopped early: " + report.aborted.strip().splitlines()[-1])
    if not report.records:
        problems.append("the probe client recorded no request")
    for rec in report.unexplained[:10]:
        problems.append("unexplained failure: " + _describe(rec, report.faults))
    if len(report.unexplained) > 10:
        problems.append("... %d unexplained failures in all" % len(report.unexplained))
    # A failure explained by a fault is a planned phase's only if the request
    # never overlapped the kills phase: one begun just before that phase
    # can meet its first kill.
    kills_windows = [(t0, t1) for name, t0, t1 in report.phases if name == "kills"]
    planned = [rec for rec, _ in report.explained
               if not any(rec["t0"] <= t1 and rec["t1"] >= t0 for t0, t1 in kills_windows)]
    for rec in planned[:5]:
        problems.append("failure in a planned phase: " + _describe(rec, report.faults))
    for (tool, phase), s in sorted(report.load.items()):
        if phase == "kills":
            continue
        # h2load's "errored" streams are not checked: after a GOAWAY (a
        # retiring worker, a drain) nghttp2 refuses the streams h2load had
        # queued on that connection without sending them, which RFC 9113
        # allows and forkd never sees. The HTTP/2 probe client checks the
        # same paths request by request. Its "failed" (non-2xx) are checked.
        errors = s.get("socket_errors", 0) if tool == "wrk" else 0
        non2xx = s.get("non2xx", 0)
        if errors or (non2xx and phase != "drain"):
            problems.append("%s in phase %s: %d errors, %d non-2xx answers"
                            % (tool, phase, errors, non2xx))
        if not s.get("requests"):
            problems.append("%s in phase %s served nothing" % (tool, phase))
    for tool, phase, code, out in report.load_outputs[:3]:
        problems.append("%s in phase %s exited %s: %s" % (tool, phase, code, out[-300:]))
    w = report.watcher
    if w is None or w.scrapes == 0:
        problems.append("no /metrics scrape succeeded")
    else:
        for k, before, now in w.backwards[:10]:
            problems.append("counter went backwards: %s %s -> %s" % (k, before, now))
        for pid, at in w.master_deaths:
            problems.append("master %d died unplanned" % pid)
        for z, age in w.lasting_zombies().items():
            problems.append("zombie child %d stayed %.1f s" % (z, age))
    stuck = [line for line in report.error_log.splitlines() if "did not stop in time" in line]
    if stuck:
        # Every planned stop here retires workers whose requests take
        # milliseconds: one that needs SIGKILL at --graceful-timeout was stuck.
        problems.append("a worker had to be killed at --graceful-timeout: " + stuck[0])
    if getattr(report, "zombies_now", None):
        problems.append("zombie children after the storm: %s" % report.zombies_now)
    if getattr(report, "upgrade_exit", 0) not in (0, None):
        problems.append("the old master exited %s after the upgrade" % report.upgrade_exit)
    if getattr(report, "new_master", None) and not report.new_master_alive:
        problems.append("the new master is gone")
    if getattr(report, "new_master_zombies", None):
        problems.append("zombie children of the new master: %s" % report.new_master_zombies)
    b, a = report.baseline, report.after
    if not (b and a):
        problems.append("no fd/RSS measurement")
    else:
        if a["master_fds"] != b["master_fds"]:
            kinds = collections.Counter(re.sub(r"\[\d+\]", "", t)
                                        for t in b["master_fd_targets"].values())
            kinds.subtract(re.sub(r"\[\d+\]", "", t)
                           for t in a["master_fd_targets"].values())
            problems.append("master fds %s -> %s (baseline minus after, by kind: %s)"
                            % (b["master_fds"], a["master_fds"],
                               {k: v for k, v in kinds.items() if v}))
        if a["master_rss_kib"] > b["master_rss_kib"] + MASTER_RSS_MARGIN_KIB:
            problems.append("master RSS %s KiB -> %s KiB"
                            % (b["master_rss_kib"], a["master_rss_kib"]))
        if max(a["worker_fds"]) > max(b["worker_fds"]) + WORKER_FD_MARGIN:
            problems.append("worker fds %s -> %s" % (b["worker_fds"], a["worker_fds"]))
        if max(a["worker_rss_kib"]) > max(b["worker_rss_kib"]) + WORKER_RSS_MARGIN_KIB:
            problems.append("worker RSS %s KiB -> %s KiB"
                            % (b["worker_rss_kib"], a["worker_rss_kib"]))
    return problems
