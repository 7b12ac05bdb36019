"""The gRPC admin API and forkctl against the real forkd (issue 3).

Each RPC is driven through a real gRPC client (admin_client.AdminClient) and
through the real forkctl binary, and checked against what the OS says:
worker processes in /proc, threads in /proc/PID/task.
"""

import json
import os
import shutil
import signal
import time

import grpc
import pytest

from admin_client import (NOT_SERVING, SERVING, AdminClient, forkctl, start_admin_forkd,
                          task_count)
from forkd_harness import FORKCTL_BIN, PYTHON, free_port, http_get, wait_until
from netns_host import NetnsHost

GTHREAD = ["--worker-class", "gthread", "--threads", "2"]
LIMITS = ["--max-workers", "6", "--max-threads", "8", "--max-worker-connections", "500",
          "--worker-connections", "200"]


@pytest.fixture
def admin(forkd_factory, example_app):
    """forkd (2 gthread workers x 2 threads, small limits) and an AdminClient."""
    fk = start_admin_forkd(forkd_factory, example_app,
                           ["--workers", "2"] + GTHREAD + LIMITS)
    fk.wait_workers(2)
    client = AdminClient(fk.admin_addr)
    yield fk, client
    client.close()


def ready_current(status):
    return [w for w in status.workers
            if w.generation == status.generation and not w.retiring
            and w.state in (2, 3)]  # READY, BUSY


def wait_status(client, predicate, timeout=15, what="status"):
    return wait_until(lambda: (lambda s: s if predicate(s) else None)(client.status()),
                      timeout, what=what)


# --- reads ---------------------------------------------------------------------


def test_status_reports_the_pool_and_what_the_os_says(admin):
    fk, client = admin
    s = client.status()
    assert s.master_pid == fk.pid
    assert s.worker_class == "gthread"
    assert (s.desired_workers, s.actual_workers, s.ready_workers) == (2, 2, 2)
    assert (s.threads, s.max_threads, s.max_workers) == (2, 8, 6)
    assert s.max_worker_connections == 500
    assert s.in_flight_cap == 4
    assert not s.draining
    assert sorted(w.pid for w in s.workers) == fk.worker_pids()
    for w in s.workers:
        assert w.rss_bytes > 1 << 20
        assert w.cpu_seconds >= 0
        assert w.os_threads == task_count(w.pid)
        assert w.threads == 2
        assert w.heartbeat_age_ms < 5000
        assert w.restarts == 0 and w.last_exit == ""
    http_get(fk.port, "/hello")
    wait_status(client, lambda s: sum(w.requests_served for w in s.workers) >= 1)

    out = forkctl(fk.admin_addr, "status")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split()[:5] == ["MASTER", "VERSION", "UPTIME", "CLASS", "WORKERS"]
    assert lines[1].split()[0] == str(fk.pid)
    assert "2/2" in lines[1]
    for pid in fk.worker_pids():
        assert any(line.split()[1:2] == [str(pid)] for line in lines), out.stdout

    out = forkctl(fk.admin_addr, "-o", "json", "status")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["master_pid"] == fk.pid
    assert sorted(w["pid"] for w in doc["workers"]) == fk.worker_pids()

    out = forkctl(fk.admin_addr, "version")
    assert out.returncode == 0 and "forkd 0.1.0" in out.stdout, out


def test_watch_status_streams_changes(admin):
    fk, client = admin
    stream = client.watch(interval_ms=100, timeout=20)
    first = next(stream)
    assert first.desired_workers == 2
    client.scale(count=3)
    seen = None
    for s in stream:
        if s.desired_workers == 3:
            seen = s
            break
    stream.cancel()
    assert seen is not None

    # forkctl status --watch: one JSON document per line, until interrupted.
    import subprocess
    from forkd_harness import FORKCTL_BIN
    proc = subprocess.Popen([FORKCTL_BIN, "--addr", fk.admin_addr, "-o", "json", "status",
                             "--watch"], stdout=subprocess.PIPE, text=True)
    try:
        docs = [json.loads(proc.stdout.readline()) for _ in range(2)]
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
    assert all(d["desired_workers"] == 3 for d in docs)


def test_reflection_and_health_services_are_served(admin):
    fk, client = admin
    names = client.list_services()
    assert "forkd.admin.v1.Admin" in names, names
    assert "grpc.health.v1.Health" in names, names
    assert wait_until(lambda: client.health("") == SERVING, 10, what="readiness SERVING")
    assert client.health("liveness") == SERVING


# --- changes -------------------------------------------------------------------


def test_scale_absolute_and_delta_change_the_worker_processes(admin):
    fk, client = admin
    r = client.scale(count=4, wait=True)
    assert r.reached and r.ready_workers == 4 and r.result.desired_workers == 4
    assert len(fk.worker_pids()) == 4  # already there when the answer came
    fk.wait_workers(4)

    out = forkctl(fk.admin_addr, "scale", "-1")
    assert out.returncode == 0, out.stderr
    assert "4 -> 3" in out.stdout
    fk.wait_workers(3)

    out = forkctl(fk.admin_addr, "scale", "+2", "--wait")
    assert out.returncode == 0, out.stderr
    assert "5 of 5" in out.stdout, out.stdout
    fk.wait_workers(5)

    r = client.scale(delta=-3, wait=True)
    assert r.reached and r.result.desired_workers == 2
    pids = fk.wait_workers(2)
    # A retired worker counts once the master has reaped it, which may come
    # a loop turn after its process left /proc's list of live workers.
    s = wait_status(client, lambda st: st.exits["scale_down"] == 4,
                    what="4 scale-down exits counted")
    assert sorted(w.pid for w in ready_current(s)) == pids
    assert s.exits["scale_down"] == 4


def test_threads_and_connections_change_live_in_place(admin):
    fk, client = admin
    pids = fk.wait_workers(2)
    base = {p: task_count(p) - 2 for p in pids}  # threads other than the pool

    r = client.threads(6)
    assert r.reached and r.converged_workers == r.workers == 2
    s = client.status()
    assert s.threads == 6 and s.in_flight_cap == 12
    for w in s.workers:
        assert w.threads == 6
        assert task_count(w.pid) == base[w.pid] + 6
    assert fk.worker_pids() == pids  # nobody restarted

    out = forkctl(fk.admin_addr, "threads", "1")
    assert out.returncode == 0, out.stderr
    for p in pids:  # surplus threads leave once idle
        wait_until(lambda: task_count(p) == base[p] + 1, 10, what="pool of 1 in %d" % p)
    assert all(w.threads == 1 for w in client.status().workers)

    r = client.connections(123)
    assert r.reached
    assert all(w.connection_cap == 123 for w in client.status().workers)
    out = forkctl(fk.admin_addr, "connections", "77")
    assert out.returncode == 0, out.stderr
    assert all(w.connection_cap == 77 for w in client.status().workers)
    assert fk.worker_pids() == pids


def test_sizes_set_through_the_api_survive_reload(admin):
    fk, client = admin
    client.scale(count=3, wait=True)
    client.threads(5)
    client.connections(99)
    old = fk.wait_workers(3)

    out = forkctl(fk.admin_addr, "reload")
    assert out.returncode == 0, out.stderr
    assert "generation 2" in out.stdout

    def reloaded(s):
        cur = ready_current(s)
        return (s.generation == 2 and len(cur) == 3 and len(s.workers) == 3
                and not set(w.pid for w in cur) & set(old))
    s = wait_status(client, reloaded, 20, "3 new generation-2 workers")
    assert (s.desired_workers, s.threads, s.worker_connections) == (3, 5, 99)
    for w in s.workers:
        assert w.threads == 5 and w.connection_cap == 99
        assert task_count(w.pid) >= 6
    assert len(fk.wait_workers(3)) == 3


def test_kill_worker_is_replaced(admin):
    fk, client = admin
    victim = fk.wait_workers(2)[0]
    out = forkctl(fk.admin_addr, "kill", victim)
    assert out.returncode == 0, out.stderr
    assert "replacement" in out.stdout
    pids = wait_until(lambda: (lambda p: p if len(p) == 2 and victim not in p else None)(
        fk.worker_pids()), 15, what="a replacement for %d" % victim)
    s = wait_status(client, lambda s: s.exits["killed"] == 1 and len(ready_current(s)) == 2)
    assert sorted(w.pid for w in s.workers) == pids

    with pytest.raises(grpc.RpcError) as e:
        client.kill(1)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND


def test_bad_arguments_are_refused_and_change_nothing(admin):
    fk, client = admin
    pids = fk.wait_workers(2)
    before = client.status()
    cases = [
        (lambda: client.scale(count=0), "--max-workers"),
        (lambda: client.scale(count=7), "--max-workers"),
        (lambda: client.scale(count=-1), "--max-workers"),
        (lambda: client.scale(delta=+5), "--max-workers"),
        (lambda: client.scale(delta=-2), "--max-workers"),
        (lambda: client.threads(0), "--max-threads"),
        (lambda: client.threads(9), "--max-threads"),
        (lambda: client.connections(0), "--max-worker-connections"),
        (lambda: client.connections(501), "--max-worker-connections"),
    ]
    for call, limit in cases:
        with pytest.raises(grpc.RpcError) as e:
            call()
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert limit in e.value.details(), e.value.details()
    for args, limit in ((["scale", "0"], "--max-workers"), (["scale", "+9"], "--max-workers"),
                        (["threads", "9"], "--max-threads"),
                        (["connections", "100000"], "--max-worker-connections")):
        out = forkctl(fk.admin_addr, *args)
        assert out.returncode == 1, out
        assert "invalid argument" in out.stderr and limit in out.stderr, out.stderr
    out = forkctl(fk.admin_addr, "scale", "lots")
    assert out.returncode == 2 and "lots" in out.stderr

    after = client.status()
    for field in ("desired_workers", "threads", "worker_connections", "generation",
                  "settings_generation"):
        assert getattr(after, field) == getattr(before, field), field
    time.sleep(0.3)
    assert fk.worker_pids() == pids


# --- drain, resume, health ------------------------------------------------------


def test_drain_and_resume_flip_readiness_and_health_watch(admin):
    fk, client = admin
    wait_until(lambda: client.health("") == SERVING, 10, what="ready")
    watch = client.health_watch("", timeout=30)
    assert next(watch).status == SERVING

    out = forkctl(fk.admin_addr, "drain")
    assert out.returncode == 0, out.stderr
    assert next(watch).status == NOT_SERVING
    s = client.status()
    assert s.draining and not s.stopping
    assert client.health("liveness") == SERVING  # drained, not dead
    pids = fk.worker_pids()
    assert len(pids) == 2  # draining keeps the workers

    out = forkctl(fk.admin_addr, "resume")
    assert out.returncode == 0, out.stderr
    assert next(watch).status == SERVING
    watch.cancel()
    assert not client.status().draining
    status, _, _ = http_get(fk.port, "/hello")
    assert status == 200
    assert fk.worker_pids() == pids


def test_shutdown_graceful_through_forkctl(forkd_factory, example_app):
    fk = start_admin_forkd(forkd_factory, example_app, ["--workers", "2"])
    fk.wait_workers(2)
    out = forkctl(fk.admin_addr, "shutdown")
    assert out.returncode == 0, out.stderr
    assert fk.proc.wait(timeout=15) == 0


def test_shutdown_quick_through_grpc(forkd_factory, example_app):
    fk = start_admin_forkd(forkd_factory, example_app, ["--workers", "2",
                                                        "--graceful-timeout", "30"])
    fk.wait_workers(2)
    client = AdminClient(fk.admin_addr)
    start = time.monotonic()
    r = client.shutdown(quick=True)
    assert "quick" in r.message
    assert fk.proc.wait(timeout=10) == 0
    assert time.monotonic() - start < 5
    client.close()


# --- access ---------------------------------------------------------------------


def test_token_file_guards_changes(forkd_factory, example_app, tmp_short):
    token_file = os.path.join(tmp_short, "token")
    with open(token_file, "w") as f:
        f.write("s3cret-token\n")
    wrong_file = os.path.join(tmp_short, "wrong")
    with open(wrong_file, "w") as f:
        f.write("nope\n")
    fk = start_admin_forkd(forkd_factory, example_app,
                           ["--workers", "2", "--admin-token-file", token_file])
    pids = fk.wait_workers(2)
    anon = AdminClient(fk.admin_addr)
    before = anon.status()  # reads stay open

    with pytest.raises(grpc.RpcError) as e:
        anon.scale(count=3)
    assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "Bearer" in e.value.details()
    with pytest.raises(grpc.RpcError) as e:
        anon.drain(token="nope")
    assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED
    out = forkctl(fk.admin_addr, "scale", "4")
    assert out.returncode == 1 and "unauthenticated" in out.stderr, out
    out = forkctl(fk.admin_addr, "drain", token_file=wrong_file)
    assert out.returncode == 1 and "permission denied" in out.stderr, out

    after = anon.status()
    assert (after.desired_workers, after.draining) == (before.desired_workers, False)
    assert after.settings_generation == before.settings_generation
    time.sleep(0.3)
    assert fk.worker_pids() == pids

    authed = AdminClient(fk.admin_addr, token="s3cret-token")
    assert authed.scale(count=3, wait=True).reached
    out = forkctl(fk.admin_addr, "scale", "-1", "--wait", token_file=token_file)
    assert out.returncode == 0, out.stderr
    fk.wait_workers(2)
    log = fk.log()
    assert "admin: ScaleWorkers count=3 wait by ipv4:127.0.0.1" in log and "(token)" in log
    assert "admin: refused ScaleWorkers count=3" in log
    anon.close()
    authed.close()


REMOTE_ADMIN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "remote_admin.py")


def remote_calls(host, addr, calls):
    """Runs remote_admin.py inside host's namespace: {call: result} in order
    (a call may appear once)."""
    p = host.run([PYTHON, REMOTE_ADMIN, addr, json.dumps(calls)], timeout=90)
    assert p.returncode == 0, p.stdout + p.stderr
    results = [json.loads(line) for line in p.stdout.splitlines()]
    assert [r["call"] for r in results] == [c for c, _ in calls], p.stdout
    return results


@pytest.fixture
def netns_host():
    with NetnsHost() as host:
        yield host


def test_without_a_token_only_loopback_peers_may_change_things(forkd_factory, example_app,
                                                               netns_host):
    # 0.0.0.0 (the default): the same server is reached from loopback and,
    # over the veth pair, from the test host in the namespace.
    fk = start_admin_forkd(forkd_factory, example_app, ["--workers", "2"], host="0.0.0.0")
    pids = fk.wait_workers(2)
    # Workers up is not yet ready (the master sees readiness on its tick):
    # the remote health call below expects SERVING.
    wait_until(lambda: AdminClient(fk.admin_addr).health("") == SERVING, 10,
               what="readiness SERVING")
    remote_addr = "%s:%d" % (netns_host.host_addr, fk.admin_port)
    results = remote_calls(netns_host, remote_addr, [
        ["status", None], ["health", None], ["scale3", None], ["drain", "any-token"],
        ["reload", None], ["shutdown", None]])
    assert results[0] == {"call": "status", "code": "OK", "details": "", "value": 2}
    assert results[1]["code"] == "OK" and results[1]["value"] == SERVING
    for r in results[2:]:
        assert r["code"] == "PERMISSION_DENIED", r
        assert "--admin-token-file" in r["details"], r
        assert netns_host.peer_addr in r["details"], r  # the peer forkd saw
    p = netns_host.run([FORKCTL_BIN, "--addr", remote_addr, "drain"])
    assert p.returncode == 1 and "permission denied" in p.stderr, p

    local = AdminClient(fk.admin_addr)
    s = local.status()
    assert (s.desired_workers, s.draining, s.generation) == (2, False, 1)
    assert fk.alive() and fk.worker_pids() == pids
    log = fk.log()
    assert "admin: refused ScaleWorkers count=3 wait from ipv4:%s:" % netns_host.peer_addr in log, log
    assert local.scale(count=3, wait=True).reached  # 127.0.0.1: what port-forward delivers
    local.close()


def test_dual_stack_admin_port_tells_mapped_and_v6_peers_from_loopback(
        forkd_factory, example_app, netns_host):
    # On [::] IPv4 clients arrive as v4-mapped addresses (gRPC reports them
    # as ipv4:), IPv6 ones as ipv6:[...]: both remote, while 127.0.0.1 stays
    # loopback.
    fk = start_admin_forkd(forkd_factory, example_app, ["--workers", "1"], host="[::]")
    fk.wait_workers(1)
    for addr, peer in (("%s:%d" % (netns_host.host_addr, fk.admin_port),
                        "ipv4:%s:" % netns_host.peer_addr),
                       ("[%s]:%d" % (netns_host.host_addr6, fk.admin_port),
                        netns_host.peer_addr6)):
        results = remote_calls(netns_host, addr, [["status", None], ["drain", None]])
        assert results[0]["code"] == "OK", results
        assert results[1]["code"] == "PERMISSION_DENIED", results
        assert peer in results[1]["details"], (peer, results[1]["details"])
    local = AdminClient(fk.admin_addr)
    assert not local.status().draining
    local.drain()
    assert local.status().draining
    local.close()


def test_with_a_token_file_remote_peers_need_the_token(forkd_factory, example_app, tmp_short,
                                                       netns_host):
    token_file = os.path.join(tmp_short, "token")
    with open(token_file, "w") as f:
        f.write("r3mote-token\n")
    fk = start_admin_forkd(forkd_factory, example_app,
                           ["--workers", "2", "--admin-token-file", token_file],
                           host=netns_host.host_addr)
    fk.wait_workers(2)
    remote_addr = "%s:%d" % (netns_host.host_addr, fk.admin_port)
    results = remote_calls(netns_host, remote_addr, [
        ["status", None], ["health", None], ["scale3", None], ["drain", "wrong"],
        ["reload", "r3mote-tokenX"], ["shutdown", "Bearer r3mote-token"]])
    by = {r["call"]: r for r in results}
    assert by["status"]["code"] == "OK" and by["health"]["code"] == "OK"
    assert by["scale3"]["code"] == "UNAUTHENTICATED" and "Bearer" in by["scale3"]["details"]
    assert by["drain"]["code"] == "PERMISSION_DENIED", by["drain"]
    assert by["reload"]["code"] == "PERMISSION_DENIED", by["reload"]
    assert by["shutdown"]["code"] == "PERMISSION_DENIED", by["shutdown"]
    assert fk.alive()

    ok = remote_calls(netns_host, remote_addr, [["scale3", "r3mote-token"]])[0]
    assert ok["code"] == "OK" and ok["value"] is True, ok
    p = netns_host.run([FORKCTL_BIN, "--addr", remote_addr, "--token-file", token_file,
                        "scale", "-1", "--wait"])
    assert p.returncode == 0, p
    p = netns_host.run([FORKCTL_BIN, "--addr", remote_addr, "drain"])
    assert p.returncode == 1 and "unauthenticated" in p.stderr, p
    fk.wait_workers(2)
    log = fk.log()
    assert "admin: ScaleWorkers count=3 wait by ipv4:%s:" % netns_host.peer_addr in log, log
    assert "(token)" in log


def _secret_version(directory, version, token):
    """Writes a token the way the kubelet updates a mounted Secret: a new
    timestamped directory, an atomic rename of the `..data` symlink, the old
    directory removed; `token` -> `..data/token` stays."""
    versioned = os.path.join(directory, ".." + version)
    os.mkdir(versioned)
    with open(os.path.join(versioned, "token"), "w") as f:
        f.write(token)
    previous = os.path.realpath(os.path.join(directory, "..data")) \
        if os.path.islink(os.path.join(directory, "..data")) else None
    tmp_link = os.path.join(directory, "..data_tmp")
    os.symlink(".." + version, tmp_link)
    os.rename(tmp_link, os.path.join(directory, "..data"))
    if not os.path.islink(os.path.join(directory, "token")):
        os.symlink("..data/token", os.path.join(directory, "token"))
    if previous:
        shutil.rmtree(previous)


def test_a_rotated_token_works_without_a_restart(forkd_factory, example_app, tmp_short):
    secret = os.path.join(tmp_short, "secret")
    os.mkdir(secret)
    _secret_version(secret, "2026_12_05_08_00_00.1", "first-token\n")
    token_file = os.path.join(secret, "token")
    fk = start_admin_forkd(forkd_factory, example_app,
                           ["--workers", "1", "--admin-token-file", token_file])
    fk.wait_workers(1)
    client = AdminClient(fk.admin_addr)

    def code(token):
        try:
            client.resume(token=token)
            return "OK"
        except grpc.RpcError as e:
            return e.code().name

    assert code("first-token") == "OK"
    # Secret rotation: the kubelet swaps the ..data symlink.
    _secret_version(secret, "2026_12_05_09_00_00.2", "second-token\n")
    assert code("first-token") == "PERMISSION_DENIED"
    assert code("second-token") == "OK"
    new_file = os.path.join(tmp_short, "new")
    with open(new_file, "w") as f:
        f.write("second-token\n")
    out = forkctl(fk.admin_addr, "resume", token_file=new_file)
    assert out.returncode == 0, out.stderr

    # An in-place rewrite (an operator's editor, a hostPath file).
    target = os.path.realpath(token_file)
    with open(target, "w") as f:
        f.write("third-token\n")
    assert code("second-token") == "PERMISSION_DENIED"
    assert code("third-token") == "OK"

    # Emptied: fail closed; neither the last good token nor any other works.
    with open(target, "w"):
        pass
    for token in ("third-token", "second-token"):
        try:
            client.resume(token=token)
            raise AssertionError("a change was accepted while the token file is empty")
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.FAILED_PRECONDITION, e
            assert "--admin-token-file" in e.details() and "empty" in e.details(), e.details()
    assert client.status().master_pid == fk.pid  # reads stay open
    wait_until(lambda: "refusing every change over the admin API" in fk.log(), 5,
               what="the warning about the broken token file")

    _secret_version(secret, "2026_12_05_10_00_00.3", "fourth-token\n")
    assert code("fourth-token") == "OK"
    assert "holds a token again" in fk.log()
    assert fk.alive() and client.status().master_pid == fk.pid  # never restarted
    client.close()


def test_forkctl_without_a_server_suggests_port_forward():
    out = forkctl("127.0.0.1:%d" % free_port(), "status")
    assert out.returncode == 1
    assert "cannot reach" in out.stderr
    assert "kubectl port-forward pod/<pod>" in out.stderr, out.stderr
