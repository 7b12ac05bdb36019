"""Chaos under load (issue 13 item 6), bounded: one run of the plan in
chaos.py with short phases (about 45 s on an idle 2-core machine).

Under wrk, h2load and a recording probe client through the real forkd to
the example app: HUP x3 and a resize storm over the admin API, Drain /
Resume, kill -9 of random workers every 2 s and of the app once, then a
USR2 + WINCH + TERM binary upgrade; six new workers killed in a row while
they boot (an OOM killer's pattern). Asserts (see chaos.check): every
failed request is explained by a kill (in flight on the killed worker, or
502 with its log line while the app was down); nothing fails in the
planned phases; counters never go backwards; no child stays a zombie; the
master lives until its planned TERM; the master's fds are back to their
baseline exactly, the workers' within a few idle upstream connections,
RSS within a margin. bench/chaos.sh runs the same plan over 10^5 requests.
"""

import chaos
from forkd_harness import require_tools

require_tools("wrk", "h2load")


def test_chaos_under_load(forkd_bin):
    plan = chaos.DEFAULT_PLAN._replace(resizes=3, drains=2)
    report = chaos.run_chaos(plan, forkd_bin=forkd_bin)
    summary = chaos.format_report(report)
    print(summary)
    problems = chaos.check(report)
    assert not problems, "\n".join(problems) + "\n\n" + summary + "\n" + report.log_tail
    # The faults happened and were felt: the checks above are not vacuous.
    budget = {kind: (n, failed) for kind, n, failed in chaos.budget_table(report)}
    assert budget["worker kill -9"][0] >= 3 and budget["app kill -9"][0] == 1, budget
    # Six booting workers killed in a row: the master backs off and lives
    # (it used to stop the server after five).
    assert budget["boot kill -9"][0] == 6, budget
    assert budget["HUP"][0] == 3 and budget["USR2 upgrade"][0] == 1, budget
    assert budget["app kill -9"][1] > 0, "no request met the app down: %s" % budget
    assert report.drain_503 > 0, "no request met the drained server"
    assert report.watcher.scrapes > 20 and report.watcher.series_seen > 50
