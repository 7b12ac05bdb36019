"""The shutdown contract, with the exact commands the chart renders.

The chart's default pod (app + forkd) runs as local processes: the rendered
command, args and env of each container, with only the socket folder, the
image paths and forkd's three binds moved to this machine (k8s_render.LocalPod).
A kubelet stand-in probes forkd with the pod's startup, liveness and
readiness probes (their paths, ports and periods); an "endpoints" stand-in
routes clients to the pod only while readiness holds, removing it a moment
after readiness fails, as a Service does. Then TERM goes to forkd, as on a
rolling update, and:

  - /readyz fails at once while /livez keeps passing (no restart);
  - the load stops by itself once the endpoint is gone, with zero failures;
  - requests in flight when TERM arrives complete, and so do requests sent
    inside the --shutdown-delay window by clients that still route to the
    pod, including those that wait in the listen backlog when the workers
    are told to stop;
  - forkd exits 0 within terminationGracePeriodSeconds, and before the app's
    preStop would let the app stop.

This needs forkd's probes (issue 4); without them the test fails at start-up
on /startupz, it does not pretend.
"""

import http.client
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helm"))

import k8s_render as k8s  # noqa: E402
from forkd_harness import APP_PY, free_port  # noqa: E402

# How long endpoint removal takes to reach clients after readiness fails
# (EndpointSlice update + kube-proxy); it must fit in --shutdown-delay.
PROPAGATION_S = 1.0


def get(port, path, timeout, headers=None):
    """(status, headers, body) of one GET on a new connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, dict((k.lower(), v) for k, v in resp.getheaders()), resp.read()
    finally:
        conn.close()


class Kubelet:
    """Runs a container's startup, liveness and readiness httpGet probes the
    way kubelet does (period, timeout, failure/success thresholds), recording
    every result with its time."""

    def __init__(self, container, local_ports):
        self.container = container
        self.local_ports = local_ports  # container port (name or number) -> local port
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.results = {"startup": [], "liveness": [], "readiness": []}
        self.started_at = None
        self.ready = False
        self.ready_changes = []  # (time, ready)
        self.threads = []

    def _probe(self, kind):
        spec = self.container[kind + "Probe"]
        get_spec = spec["httpGet"]
        port = self.local_ports[get_spec["port"]]
        try:
            status = get(port, get_spec["path"], timeout=spec.get("timeoutSeconds", 1))[0]
            ok = 200 <= status < 400
        except OSError as e:
            status, ok = repr(e), False
        with self.lock:
            self.results[kind].append((time.monotonic(), ok, status))
        return ok

    def _startup_then(self):
        spec = self.container["startupProbe"]
        failures = 0
        while not self.stop.is_set():
            if self._probe("startup"):
                self.started_at = time.monotonic()
                break
            failures += 1
            if failures >= spec.get("failureThreshold", 3):
                return  # kubelet would restart the container; the test sees no start
            self.stop.wait(spec.get("periodSeconds", 10))
        for kind in ("liveness", "readiness"):
            t = threading.Thread(target=self._loop, args=(kind,), daemon=True)
            t.start()
            self.threads.append(t)

    def _loop(self, kind):
        spec = self.container[kind + "Probe"]
        successes = failures = 0
        while not self.stop.is_set():
            if self._probe(kind):
                successes, failures = successes + 1, 0
            else:
                successes, failures = 0, failures + 1
            if kind == "readiness":
                with self.lock:
                    if not self.ready and successes >= spec.get("successThreshold", 1):
                        self.ready = True
                        self.ready_changes.append((time.monotonic(), True))
                    elif self.ready and failures >= spec.get("failureThreshold", 3):
                        self.ready = False
                        self.ready_changes.append((time.monotonic(), False))
            self.stop.wait(spec.get("periodSeconds", 10))

    def start(self):
        t = threading.Thread(target=self._startup_then, daemon=True)
        t.start()
        self.threads.append(t)

    def close(self):
        self.stop.set()
        for t in self.threads:
            t.join(5)


class Endpoints:
    """A Service's view of the pod: routable from readiness until
    PROPAGATION_S after the kubelet marks it not ready."""

    def __init__(self, kubelet):
        self.kubelet = kubelet

    def routable(self):
        with self.kubelet.lock:
            changes = list(self.kubelet.ready_changes)
        if not changes:
            return False
        at, ready = changes[-1]
        return ready or time.monotonic() < at + PROPAGATION_S


class Client(threading.Thread):
    """Keep-alive GETs while the endpoint routes to the pod (bounded by
    max_s); a non-2xx answer or an error is a failure."""

    def __init__(self, port, endpoints, path, max_s):
        super().__init__(daemon=True)
        self.port, self.endpoints, self.path, self.max_s = port, endpoints, path, max_s
        self.ok = 0
        self.failures = []
        self.closes = 0

    def run(self):
        deadline = time.monotonic() + self.max_s
        conn = None
        while time.monotonic() < deadline and self.endpoints.routable():
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                conn.request("GET", self.path)
                resp = conn.getresponse()
                resp.read()
                if 200 <= resp.status < 300:
                    self.ok += 1
                else:
                    self.failures.append("HTTP %d" % resp.status)
                if resp.will_close:
                    self.closes += 1
                    conn.close()
                    conn = None
            except Exception as e:  # noqa: BLE001 - every error is a failure
                self.failures.append("%s: %s" % (type(e).__name__, e))
                if conn is not None:
                    conn.close()
                    conn = None
        if conn is not None:
            conn.close()


class OneRequest(threading.Thread):
    """One GET on its own connection; result = (status, body) or an error."""

    def __init__(self, port, path):
        super().__init__(daemon=True)
        self.port, self.path = port, path
        self.result = None
        self.done_at = None

    def run(self):
        try:
            status, headers, body = get(self.port, self.path, timeout=30)
            self.result = (status, body)
        except Exception as e:  # noqa: BLE001
            self.result = ("%s: %s" % (type(e).__name__, e), b"")
        self.done_at = time.monotonic()


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError("timed out after %.1f s waiting for %s" % (timeout, what))


def test_termination_of_the_rendered_pod_loses_no_request(forkd_bin, tmp_short):
    objs = k8s.render()  # the chart's defaults: what `helm install` runs
    pod = k8s.LocalPod(objs, tmp_short, k8s.image_paths(forkd_bin, APP_PY), free_port)
    grace = pod.spec["terminationGracePeriodSeconds"]
    app_prestop = pod.app["lifecycle"]["preStop"]["sleep"]["seconds"]
    flags = k8s.forkd_flags(pod.forkd_argv[1:])
    delay = float(k8s.flag(flags, "shutdown-delay"))
    assert delay == 5, "the chart's default --shutdown-delay"
    assert PROPAGATION_S + pod.forkd["readinessProbe"]["periodSeconds"] < delay, \
        "the delay must outlast probe period + endpoint propagation"
    local = {"http": pod.http_port, "admin": pod.admin_port, "metrics": pod.metrics_port}
    local_ports = {}
    for p in pod.forkd["ports"]:
        local_ports[p["name"]] = local_ports[p["containerPort"]] = local[p["name"]]

    # The plain two-container form starts both containers together.
    app_log = open(os.path.join(tmp_short, "app.log"), "wb")
    forkd_log = open(os.path.join(tmp_short, "forkd.log"), "wb")
    app = subprocess.Popen(pod.app_argv, env=k8s.pod_env(pod.app_env), stdin=subprocess.DEVNULL,
                           stdout=app_log, stderr=subprocess.STDOUT, start_new_session=True)
    forkd = subprocess.Popen(pod.forkd_argv, env=k8s.pod_env(pod.forkd_env),
                             stdin=subprocess.DEVNULL, stdout=forkd_log,
                             stderr=subprocess.STDOUT, start_new_session=True)
    kubelet = Kubelet(pod.forkd, local_ports)
    kubelet.start()
    endpoints = Endpoints(kubelet)

    def log_tail():
        with open(os.path.join(tmp_short, "forkd.log"), "rb") as f:
            return f.read().decode("utf-8", "replace")[-4000:]

    try:
        try:
            wait_for(endpoints.routable, 30, "the pod to start and pass readiness")
        except AssertionError as e:
            pytest.fail("%s; probes: %s\n--- forkd ---\n%s" % (
                e, {k: v[-3:] for k, v in kubelet.results.items()}, log_tail()))

        # Steady load through the "Service".
        clients = [Client(pod.http_port, endpoints, "/sleep?ms=20", max_s=30) for _ in range(6)]
        for c in clients:
            c.start()
        wait_for(lambda: sum(c.ok for c in clients) >= 100, 20, "100 requests under load")

        # Requests in flight when TERM arrives.
        in_flight = [OneRequest(pod.http_port, "/sleep?ms=800") for _ in range(4)]
        for r in in_flight:
            r.start()
        time.sleep(0.2)
        assert all(r.result is None for r in in_flight)

        term_at = time.monotonic()
        forkd.send_signal(signal.SIGTERM)  # kubelet: TERM to both containers;
        # the app runs its preStop sleep first (app_prestop s), so it stays up.

        # Readiness fails at once; liveness keeps passing.
        wait_for(lambda: get(pod.metrics_port, "/readyz", 1)[0] == 503, 1.0,
                 "/readyz to answer 503 after TERM")
        assert get(pod.metrics_port, "/livez", 1)[0] == 200

        # Clients that still route to the pod late in the delay window; more
        # of them than workers, so some wait in the listen backlog when the
        # workers get their stop signal.
        time.sleep(max(0.0, term_at + delay - 0.4 - time.monotonic()))
        assert forkd.poll() is None
        late = [OneRequest(pod.http_port, "/sleep?ms=1000") for _ in range(12)]
        for r in late:
            r.start()

        rc = forkd.wait(timeout=grace)
        exited_after = time.monotonic() - term_at
        for c in clients:
            c.join(15)
        for r in in_flight + late:
            r.join(15)
        kubelet.close()
    finally:
        kubelet.stop.set()
        for proc in (forkd, app):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM if proc is app else signal.SIGKILL)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
        app_log.close()
        forkd_log.close()

    diag = "\n--- forkd log ---\n" + log_tail()
    assert rc == 0, "forkd exit code %s%s" % (rc, diag)
    assert exited_after < grace, "forkd took %.1f s, grace period %d s" % (exited_after, grace)
    assert exited_after < app_prestop, "the app would have stopped before forkd finished"
    assert exited_after >= delay, "forkd stopped serving before --shutdown-delay ended"

    failures = [f for c in clients for f in c.failures]
    assert not failures, "load failures: %s%s" % (failures[:10], diag)
    total = sum(c.ok for c in clients)
    assert total >= 100
    assert all(not c.is_alive() for c in clients), "clients did not stop after endpoint removal"
    for r in in_flight:
        assert r.result[0] == 200 and b"slept_ms=800" in r.result[1], r.result
    late_results = [r.result for r in late]
    assert all(res is not None and res[0] == 200 for res in late_results), \
        "late requests: %s%s" % (late_results, diag)
    # Readiness went false once, shortly after TERM, and liveness never failed.
    changes = [(round(t - term_at, 2), ready) for t, ready in kubelet.ready_changes if t >= term_at]
    assert changes and changes[0][1] is False, changes
    assert changes[0][0] <= pod.forkd["readinessProbe"]["periodSeconds"] + 1, changes
    live_failures = [r for r in kubelet.results["liveness"] if not r[1] and r[0] < term_at + exited_after]
    assert not live_failures, live_failures
