"""Resizing through the admin API under load: no request may fail (issue 3).

A bounded load (the harness's LoadGenerator, keep-alive clients) runs while
the pool is scaled up and down and its thread count changed, alternately,
through the real gRPC API and forkctl. Scaling down retires idle, then
oldest workers gracefully, and thread pools shrink only by idle threads, so
the load generator must count zero failures.
"""

import time

from admin_client import AdminClient, forkctl, start_admin_forkd, task_count
from forkd_harness import LoadGenerator, wait_until


def test_scaling_and_thread_changes_under_load_fail_no_request(forkd_factory, example_app):
    fk = start_admin_forkd(forkd_factory, example_app,
                           ["--workers", "2", "--worker-class", "gthread", "--threads", "2",
                            "--max-workers", "8", "--max-threads", "8",
                            "--graceful-timeout", "20"])
    fk.wait_workers(2)
    client = AdminClient(fk.admin_addr)
    load = LoadGenerator(fk.url("/sleep?ms=5"), threads=6, duration=60, timeout=10).start()
    time.sleep(0.5)
    threads_cycle = [4, 1, 6, 2, 8, 3]
    for i in range(24):
        if i % 2 == 0:
            r = client.scale(delta=+2, wait=True, timeout_ms=20000)
            assert r.reached, r
        else:
            out = forkctl(fk.admin_addr, "scale", "-2")
            assert out.returncode == 0, out.stderr
        n = threads_cycle[i % len(threads_cycle)]
        if i % 3 == 0:
            out = forkctl(fk.admin_addr, "threads", n)
            assert out.returncode == 0, out.stderr
        else:
            assert client.threads(n).reached
        time.sleep(0.1)
    summary = load.stop()
    assert summary.failed == 0, summary
    assert summary.ok > 200, summary

    # The pool ends where the last commands put it.
    s = client.status()
    assert (s.desired_workers, s.threads) == (2, threads_cycle[23 % len(threads_cycle)])
    pids = fk.wait_workers(2)
    for p in pids:
        wait_until(lambda: task_count(p) == 1 + s.threads, 10, what="threads of %d" % p)
    client.close()
