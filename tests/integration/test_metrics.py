"""/metrics and the Kubernetes probe endpoints of the real forkd.

Known traffic gives exact counter values; counters survive kill -9, a
scale-down and a reload without going down; `promtool check metrics` finds
nothing to say about a real scrape; /readyz follows the app's socket and a
TERM at once, /startupz waits for the app.
"""

import os
import signal
import subprocess
import time


from forkd_harness import (ExampleApp, free_port, http_get, raw_request, require_tools,
                           wait_until)

require_tools("promtool")
import admin_client
from metrics_util import (assert_not_lower, get, metrics, metrics_args, monotonic,
                          probe, quiet, scrape, total, value, wait_probe)


def settle(port, name, want, timeout=5):
    """Waits until total(name) == want (the master publishes every <= 250 ms)."""
    return wait_until(lambda: (lambda m: total(m, name) == want and m)(metrics(port)),
                      timeout, interval=0.05, what="%s == %s" % (name, want))


def body_length(raw, head_request=False):
    head, sep, rest = raw.partition(b"\r\n\r\n")
    assert sep, raw
    return 0 if head_request else len(rest)


def test_known_traffic_gives_exact_counters(forkd_factory, example_app):
    mport, args = metrics_args(extra=["--workers", "2"])
    fk = forkd_factory(example_app, args)
    base = quiet(mport)
    status, headers, _ = get(mport, "/metrics")
    assert headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"

    requests = (
        [(b"GET /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", False)] * 5
        + [(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n"
            b"Connection: close\r\n\r\nabc", False)] * 2
        + [(b"GET /status?code=503 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
            False)] * 2
        + [(b"GET /status?code=404 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
            False)]
        + [(b"HEAD /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", True)]
        + [(b"GET /close HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", False)]
        + [(b"GET / HTTP/1.1\r\nHost: t\r\nBad Header: x\r\n\r\n", False)]
    )
    sent = received = 0
    statuses = []
    for data, head in requests:
        raw = raw_request(fk.port, data, timeout=10)
        statuses.append(int(raw.split(b" ", 2)[1]))
        sent += len(data)
        received += body_length(raw, head)
    assert statuses == [200] * 5 + [200] * 2 + [503] * 2 + [404, 200, 502, 400]

    n = len(requests)
    m = settle(mport, "forkd_request_duration_seconds_count",
               total(base, "forkd_request_duration_seconds_count") + n)
    time.sleep(0.4)  # two more publishes: nothing else may arrive
    m = metrics(mport)

    def delta(name, **labels):
        return value(m, name, **labels) - value(base, name, **labels)

    assert delta("forkd_requests_total", method="GET", status_class="2xx") == 5
    assert delta("forkd_requests_total", method="HEAD", status_class="2xx") == 1
    assert delta("forkd_requests_total", method="POST", status_class="2xx") == 2
    assert delta("forkd_requests_total", method="GET", status_class="5xx") == 3
    assert delta("forkd_requests_total", method="GET", status_class="4xx") == 2
    assert total(m, "forkd_requests_total") - total(base, "forkd_requests_total") == n
    assert delta("forkd_request_duration_seconds_count") == n
    assert delta("forkd_request_duration_seconds_bucket", le="+Inf") == n
    # The app answered 11 of them; /close and the bad request never got one.
    assert delta("forkd_upstream_duration_seconds_count") == 11
    assert delta("forkd_rejected_requests_total", reason="bad_request", code="400") == 1
    assert (total(m, "forkd_rejected_requests_total")
            - total(base, "forkd_rejected_requests_total")) == 1
    assert (total(m, "forkd_upstream_errors_total")
            - total(base, "forkd_upstream_errors_total")) == 1
    assert delta("forkd_client_connections_accepted_total") == n
    assert delta("forkd_request_bytes_total") == sent
    assert delta("forkd_response_bytes_total") == received
    assert delta("forkd_request_duration_seconds_sum") > 0

    assert value(m, "forkd_workers", state="ready") == 2
    assert value(m, "forkd_workers_desired") == 2
    assert value(m, "forkd_requests_in_flight") == 0
    assert value(m, "forkd_requests_in_flight_limit") == 2  # sync: 2 x 1
    assert value(m, "forkd_config_generation") == 1
    listener = "http://127.0.0.1:%d" % fk.port
    assert value(m, "forkd_accept_queue_max_length", listener=listener) == 2048
    assert value(m, "forkd_accept_queue_length", listener=listener) == 0
    slots = [k for k in m if k.startswith("forkd_worker_resident_memory_bytes{")]
    assert len(slots) == 2 and all(m[k] > 0 for k in slots), slots
    assert all('slot="' in k for k in slots)
    assert value(m, "process_resident_memory_bytes") > 0
    assert value(m, "forkd_probe_success", probe="ready") == 1
    assert value(m, "forkd_app_up") == 1


def test_connection_gauges_count_idle_keepalive_connections(forkd_factory, example_app):
    mport, args = metrics_args(extra=["--workers", "1", "--threads", "4",
                                      "--keepalive", "30"])
    fk = forkd_factory(example_app, args)
    import http.client
    conns = []
    for _ in range(3):
        c = http.client.HTTPConnection("127.0.0.1", fk.port, timeout=5)
        c.request("GET", "/hello")
        assert c.getresponse().read() == b"hello\n"
        conns.append(c)  # kept open: idle keep-alive
    wait_until(lambda: value(metrics(mport), "forkd_client_connections",
                             state="idle") == 3, 5, what="3 idle connections")
    m = metrics(mport)
    assert value(m, "forkd_client_connections", state="active") == 0
    assert value(m, "forkd_config_threads") == 4
    assert value(m, "forkd_requests_in_flight_limit") == 4
    for c in conns:
        c.close()
    wait_until(lambda: value(metrics(mport), "forkd_client_connections",
                             state="idle") == 0, 5, what="no idle connections")


def test_promtool_check_metrics_finds_nothing(forkd_factory, example_app):
    mport, args = metrics_args(extra=["--workers", "2", "--threads", "2"])
    fk = forkd_factory(example_app, args)
    for path in ("/hello", "/status?code=500", "/sleep?ms=5"):
        http_get(fk.port, path)
    raw_request(fk.port, b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n")
    time.sleep(0.3)
    text = scrape(mport)
    r = subprocess.run(["promtool", "check", "metrics"], input=text.encode(),
                       capture_output=True, timeout=30)
    assert r.returncode == 0 and r.stdout == b"" and r.stderr == b"", (r, text[:2000])


def test_counters_never_go_backwards(forkd_factory, example_app):
    mport, args = metrics_args(extra=["--workers", "3", "--max-workers", "4",
                                      "--graceful-timeout", "5"])
    fk = forkd_factory(example_app, args)
    fk.wait_workers(3)
    sent = [0]

    def traffic(n):
        for _ in range(n):
            status, _, _ = http_get(fk.port, "/hello")
            assert status == 200
        sent[0] += n

    base_requests = total(quiet(mport), "forkd_requests_total")
    traffic(30)
    settle(mport, "forkd_requests_total", base_requests + sent[0])
    last = monotonic(metrics(mport))

    def check(what):
        nonlocal last
        m = metrics(mport)
        assert_not_lower(monotonic(m), last, what)
        last = monotonic(m)
        return m

    # kill -9 of a worker: the master folds its counts before reusing the slot.
    # Only a worker the master has seen ready dies of a "crash" (before that
    # it is a boot failure), which a loaded machine can delay past
    # wait_workers' minimum age.
    wait_until(lambda: value(metrics(mport), "forkd_workers", state="ready") == 3,
               15, what="3 workers ready")
    victim = fk.worker_pids()[0]
    os.kill(victim, signal.SIGKILL)
    wait_until(lambda: victim not in fk.worker_pids() and len(fk.worker_pids()) == 3,
               15, what="a replacement worker")
    m = check("after kill -9")
    # The snapshot /metrics reads may trail the process table by a tick.
    m = wait_until(lambda: (lambda m: value(m, "forkd_worker_restarts_total",
                                            reason="crash") >= 1 and m)(metrics(mport)),
                   5, what="the crash counted")
    assert value(m, "forkd_worker_restarts_total", reason="crash") == 1
    traffic(10)

    # TTOU: one worker retires gracefully.
    fk.signal(signal.SIGTTOU)
    fk.wait_workers(2)
    m = wait_until(lambda: (lambda m: value(m, "forkd_worker_restarts_total",
                                            reason="scale_down") == 1 and m)(metrics(mport)),
                   5, what="scale_down counted")
    check("after TTOU")
    assert value(m, "forkd_workers_desired") == 2
    traffic(10)

    # HUP: every worker of generation 1 is replaced.
    old = set(fk.worker_pids())
    fk.signal(signal.SIGHUP)
    wait_until(lambda: not old & set(fk.worker_pids()) and len(fk.worker_pids()) == 2,
               20, what="the new generation")
    m = wait_until(lambda: (lambda m: value(m, "forkd_worker_restarts_total",
                                            reason="reload") == 2 and m)(metrics(mport)),
                   5, what="reload counted")
    check("after HUP")
    assert value(m, "forkd_config_generation") == 2
    traffic(10)

    # Nothing lost on the way: every request sent is counted exactly once.
    m = settle(mport, "forkd_requests_total", base_requests + sent[0])
    assert value(m, "forkd_requests_total", method="GET", status_class="2xx") >= sent[0]
    check("at the end")


def test_probes_follow_the_apps_socket(forkd_factory, example_app):
    mport, args = metrics_args(extra=["--workers", "1", "--app-health-interval", "0.2"])
    fk = forkd_factory(example_app, args)
    wait_probe(mport, "/readyz", 200, contains="app reachable")
    assert probe(mport, "/livez") == (200, "ok: master loop turning")
    assert probe(mport, "/startupz") == (200, "ok: started")

    example_app.stop()  # SIGTERM: the app removes its socket
    status, body = wait_probe(mport, "/readyz", 503, timeout=5)
    assert body.startswith("app unreachable: connect " + example_app.upstream)
    assert probe(mport, "/livez")[0] == 200
    assert probe(mport, "/startupz")[0] == 200  # startup stays done
    assert value(metrics(mport), "forkd_app_up") == 0

    example_app.start()
    wait_probe(mport, "/readyz", 200, timeout=5)
    m = metrics(mport)
    assert value(m, "forkd_app_up") == 1
    assert value(m, "forkd_app_checks_total", result="failed") >= 1


def test_startup_waits_for_the_app_and_health_path(forkd_factory, tmp_short):
    app = ExampleApp(tmpdir=tmp_short)  # not started yet
    mport, args = metrics_args(extra=["--workers", "1", "--app-health-interval", "5",
                                      "--app-health-path", "/status?code=204"])
    fk = forkd_factory(app.upstream, args)
    status, body = wait_probe(mport, "/startupz", 503, contains="waiting for the app")
    assert "No such file or directory" in body, body
    assert probe(mport, "/readyz")[0] == 503
    assert probe(mport, "/livez")[0] == 200
    app.start()
    try:
        # Checked every 250 ms until startup succeeds, not every 5 s.
        wait_probe(mport, "/startupz", 200, timeout=3)
        status, body = wait_probe(mport, "/readyz", 200, timeout=3)
        assert body == "ok: ready: 1 workers ready, app reachable"
    finally:
        app.cleanup()


def test_unhealthy_health_path_is_not_ready(forkd_factory, example_app):
    mport, args = metrics_args(extra=["--workers", "1", "--app-health-interval", "0.2",
                                      "--app-health-path", "/status?code=503"])
    forkd_factory(example_app, args)
    status, body = wait_probe(mport, "/readyz", 503, contains="status 503")
    assert body == "app unreachable: GET /status?code=503 on %s: status 503" % (
        example_app.upstream)
    assert probe(mport, "/startupz")[0] == 503


def test_term_turns_readiness_off_at_once_while_still_serving(forkd_factory, example_app):
    mport, args = metrics_args(extra=["--workers", "1", "--shutdown-delay", "2"])
    fk = forkd_factory(example_app, args)
    wait_probe(mport, "/readyz", 200)
    fk.signal(signal.SIGTERM)
    t0 = time.monotonic()
    status, body = wait_probe(mport, "/readyz", 503, timeout=2)
    assert time.monotonic() - t0 < 0.5
    assert body == "draining: forkd is shutting down"
    # Still serving through --shutdown-delay; liveness unaffected.
    assert http_get(fk.port, "/hello")[0] == 200
    assert probe(mport, "/livez")[0] == 200
    assert value(metrics(mport), "forkd_draining") == 1
    assert fk.proc.wait(timeout=15) == 0


def test_unknown_path_and_method(forkd_factory, example_app):
    mport, args = metrics_args(extra=["--workers", "1"])
    forkd_factory(example_app, args)
    status, _, body = get(mport, "/nope")
    assert status == 404 and "/metrics" in body
    raw = raw_request(mport, b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 405 ")


def test_drain_and_resume_flip_readiness(forkd_factory, example_app):
    admin = "127.0.0.1:%d" % free_port()
    mport, args = metrics_args(extra=["--workers", "1", "--admin-bind", admin])
    forkd_factory(example_app, args)
    wait_probe(mport, "/readyz", 200)
    r = admin_client.forkctl(admin, "drain", timeout=20)
    assert r.returncode == 0, r
    status, body = wait_probe(mport, "/readyz", 503, timeout=2)
    assert "draining" in body
    assert probe(mport, "/livez")[0] == 200
    r = admin_client.forkctl(admin, "resume", timeout=20)
    assert r.returncode == 0, r
    wait_probe(mport, "/readyz", 200, timeout=2)
    m = metrics(mport)
    assert value(m, "forkd_admin_commands_total", command="Drain", result="ok") == 1
    assert value(m, "forkd_admin_commands_total", command="Resume", result="ok") == 1
