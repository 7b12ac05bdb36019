#!/usr/bin/env python3
"""bench/chaos.py: the chaos plan of tests/integration/chaos.py, longer.

    bench/chaos.py [--kill-seconds S] [--min-requests N] [--hups N] ...

Prints the failure budget per fault, the wrk/h2load summaries per phase,
fds and RSS before and after the storm, and what the watcher saw. Exits 1
when a check fails (an unexplained failure, a failure in a planned phase,
a counter that went backwards, a lasting zombie, the master dying, fds or
RSS not back to their level). bench/chaos.sh is the usual way in.
"""

import argparse
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))

import chaos  # noqa: E402


def main():
    d = chaos.DEFAULT_PLAN
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--forkd", default=os.environ.get("FORKD_BIN"))
    ap.add_argument("--kill-seconds", type=float, default=60.0)
    ap.add_argument("--kill-interval", type=float, default=d.kill_interval)
    ap.add_argument("--boot-kills", type=int, default=d.boot_kills)
    ap.add_argument("--app-kills", type=int, default=3)
    ap.add_argument("--app-down", type=float, default=d.app_down)
    ap.add_argument("--min-requests", type=int, default=100000,
                    help="keep the kill phase going until forkd served this many")
    ap.add_argument("--hups", type=int, default=d.hups)
    ap.add_argument("--resizes", type=int, default=8)
    ap.add_argument("--drains", type=int, default=3)
    ap.add_argument("--worker-class", choices=("gthread", "async"), default=d.worker_class)
    ap.add_argument("--workers", type=int, default=d.workers)
    ap.add_argument("--probe-threads", type=int, default=d.probe_threads)
    ap.add_argument("--h2-probe-threads", type=int, default=d.h2_probe_threads)
    ap.add_argument("--wrk-connections", type=int, default=d.wrk_connections)
    ap.add_argument("--h2-clients", type=int, default=d.h2_clients)
    ap.add_argument("--no-upgrade", action="store_true")
    ap.add_argument("--seed", type=int, default=d.seed)
    a = ap.parse_args()
    plan = d._replace(kill_seconds=a.kill_seconds, kill_interval=a.kill_interval,
                      boot_kills=a.boot_kills, app_kills=a.app_kills, app_down=a.app_down,
                      min_requests=a.min_requests, hups=a.hups, resizes=a.resizes,
                      drains=a.drains, worker_class=a.worker_class, workers=a.workers, probe_threads=a.probe_threads,
                      h2_probe_threads=a.h2_probe_threads,
                      wrk_connections=a.wrk_connections, h2_clients=a.h2_clients,
                      upgrade=not a.no_upgrade, seed=a.seed)
    report = chaos.run_chaos(plan, forkd_bin=a.forkd,
                             log=lambda m: print("chaos: " + m, file=sys.stderr, flush=True))
    print(chaos.format_report(report))
    problems = chaos.check(report)
    for p in problems:
        print("FAIL: " + p)
    if problems:
        keep = tempfile.mkdtemp(prefix="chaos-logs-", dir="/tmp")
        for name, text in (("error.log", report.error_log), ("access.log", report.access_log),
                           ("faults.txt", "\n".join(map(str, report.faults)))):
            with open(os.path.join(keep, name), "w") as f:
                f.write(text)
        print("logs kept in " + keep)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
