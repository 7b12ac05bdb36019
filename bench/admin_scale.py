#!/usr/bin/python3
"""How fast the admin API resizes a running forkd (issue 3's benchmark).

  bench/admin_scale.py [--runs 9] [--forkd build/forkd]

Starts the example app and forkd (gthread, 2 workers x 2 threads, admin API
on a free loopback port) and measures, RUNS times each, with a real gRPC
client (tests/integration/admin_client.py):

  scale +4   ScaleWorkers(delta=+4, wait=true): from the call to its answer,
             which comes once all four new workers are ready (the answer
             must say reached=true); then ScaleWorkers(-4) and a wait until
             the retired workers are gone, outside the timing.
  threads    SetThreads(N) without wait: from the call until every worker's
             /proc/PID/task shows N request threads (+ its main thread),
             polled every 0.5 ms; N alternates 8 and 2 (grow, shrink).
  threads+w  SetThreads(N, wait=true): from the call to its answer.

Prints each run and the medians. A benchmark, not a test: nothing asserts a
number. Target (issue 3): scale +4 under 100 ms on this machine.
"""

import argparse
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--forkd", default=os.environ.get("FORKD_BIN") or
                    os.path.join(REPO, "build", "forkd"))
    opts = ap.parse_args()
    os.environ["FORKD_BIN"] = os.path.abspath(opts.forkd)

    from forkd_harness import ExampleApp, Forkd, free_port, wait_until  # noqa: E402
    from admin_client import AdminClient, task_count  # noqa: E402

    admin_port = free_port()
    with ExampleApp() as app, Forkd(app, ["--workers", "2", "--worker-class", "gthread",
                                          "--threads", "2", "--max-workers", "16",
                                          "--admin-bind", "127.0.0.1:%d" % admin_port]) as fk:
        fk.wait_workers(2)
        client = AdminClient("127.0.0.1:%d" % admin_port)
        client.status()  # connect once, outside the timings

        scale_ms = []
        for i in range(opts.runs):
            t0 = time.perf_counter()
            r = client.scale(delta=+4, wait=True, timeout_ms=10000)
            ms = (time.perf_counter() - t0) * 1000
            if not r.reached:
                sys.exit("run %d: ScaleWorkers(+4) answered without all workers ready" % i)
            scale_ms.append(ms)
            print("scale +4   run %d: %6.1f ms (server waited %.1f ms)"
                  % (i, ms, r.waited_seconds * 1000))
            client.scale(delta=-4)
            fk.wait_workers(2, timeout=30, min_age=0)

        pids = fk.wait_workers(2)
        threads_ms, threads_wait_ms = [], []
        for i in range(opts.runs):
            n = 8 if i % 2 == 0 else 2
            t0 = time.perf_counter()
            client.threads(n, wait=False)
            while any(task_count(p) != n + 1 for p in pids):
                if time.perf_counter() - t0 > 10:
                    sys.exit("run %d: pools did not reach %d threads" % (i, n))
                time.sleep(0.0005)
            ms = (time.perf_counter() - t0) * 1000
            threads_ms.append(ms)
            print("threads %d  run %d: %6.1f ms (until /proc/PID/task)" % (n, i, ms))

        for i in range(opts.runs):
            n = 6 if i % 2 == 0 else 3
            t0 = time.perf_counter()
            r = client.threads(n, wait=True)
            ms = (time.perf_counter() - t0) * 1000
            if not r.reached:
                sys.exit("run %d: SetThreads(%d, wait) not reached" % (i, n))
            threads_wait_ms.append(ms)
            print("threads+w %d run %d: %6.1f ms (answer)" % (n, i, ms))
        client.close()

    print()
    print("median over %d runs on %d CPUs:" % (opts.runs, os.cpu_count()))
    print("  ScaleWorkers(+4, wait) to the answer, 4 ready:  %6.1f ms" % statistics.median(scale_ms))
    print("  SetThreads to every pool at size (/proc):       %6.1f ms" % statistics.median(threads_ms))
    print("  SetThreads(wait) to the answer:                 %6.1f ms"
          % statistics.median(threads_wait_ms))


if __name__ == "__main__":
    main()
