"""A real Prometheus (Debian's `prometheus`) scrapes the real forkd.

Every PromQL expression of deploy/grafana/forkd-dashboard.json and of
deploy/prometheus/forkd-rules.yaml must return data through Prometheus'
HTTP API after a few seconds of bounded traffic; promtool checks and
unit-tests the rules. Sidecar mode fills every panel but the app processes
row; app mode (forkd running the example app's processes) fills every panel
and every rule.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import urllib.parse
import urllib.request

import yaml

from forkd_harness import (REPO_DIR, LoadGenerator, free_port, http_get, raw_request,
                           short_tmpdir, wait_until, require_tools)
from test_app_mode import AppForkd, example_app as app_command
import admin_client
from metrics_util import metrics_args

PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")
DASHBOARD = os.path.join(REPO_DIR, "deploy", "grafana", "forkd-dashboard.json")
RULES = os.path.join(REPO_DIR, "deploy", "prometheus", "forkd-rules.yaml")
RULES_TEST = os.path.join(REPO_DIR, "deploy", "prometheus", "forkd-rules.test.yaml")
POD = "forkd-test-0"

require_tools("prometheus", "promtool")


APP_ROW = "App processes"  # the row that only app mode fills


def dashboard_exprs(app_row=None):
    """(panel title, expr) of every panel; app_row=True: only the panels of
    the app processes row, False: every other one."""
    with open(DASHBOARD) as f:
        dash = json.load(f)
    out = []
    row = ""
    for panel in dash["panels"]:
        if panel["type"] == "row":
            row = panel["title"]
            continue
        if app_row is not None and row.startswith(APP_ROW) != app_row:
            continue
        for target in panel.get("targets", []):
            out.append((panel["title"], target["expr"]))
    return out


def rule_exprs():
    with open(RULES) as f:
        rules = yaml.safe_load(f)
    out = []
    for group in rules["groups"]:
        for rule in group["rules"]:
            out.append((rule.get("record") or rule.get("alert"), rule["expr"],
                        "alert" in rule))
    return out


def grafana(expr):
    """The query Grafana would send for pod=All and a 1 s scrape interval."""
    return (expr.replace("$__rate_interval", "10s")
                .replace("$__range", "30s")
                .replace('"$pod"', '"%s"' % POD))


def with_bool(expr):
    """An alert condition with its thresholds turned into `bool` comparisons,
    so it returns the series it watches whether or not they cross them."""
    return re.sub(r"(>=|<=|==|!=|>|<)\s*(?=[0-9.])", r"\1 bool ", expr)


def test_promtool_checks_and_tests_the_rules():
    r = subprocess.run([PROMTOOL, "check", "rules", RULES], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS: 9 rules found" in r.stdout
    r = subprocess.run([PROMTOOL, "test", "rules", RULES_TEST], capture_output=True,
                       text=True, timeout=60, cwd=os.path.dirname(RULES_TEST))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout


def test_dashboard_has_datasource_and_pod_variables():
    with open(DASHBOARD) as f:
        dash = json.load(f)
    names = {v["name"]: v for v in dash["templating"]["list"]}
    assert names["datasource"]["type"] == "datasource"
    assert names["datasource"]["query"] == "prometheus"
    assert "forkd_build_info" in names["pod"]["definition"]
    for title, expr in dashboard_exprs():
        assert 'pod=~"$pod"' in expr, (title, expr)
    for panel in dash["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]


class Prometheus:
    def __init__(self, target_port):
        self.dir = short_tmpdir("fkp")
        self.port = free_port()
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s",
                       "scrape_timeout": "900ms"},
            "rule_files": [RULES],
            "scrape_configs": [{
                "job_name": "forkd",
                "static_configs": [{"targets": ["127.0.0.1:%d" % target_port],
                                    "labels": {"pod": POD, "namespace": "test"}}],
            }],
        }
        self.config = os.path.join(self.dir, "prometheus.yml")
        with open(self.config, "w") as f:
            yaml.safe_dump(config, f)
        self.log = open(os.path.join(self.dir, "prometheus.log"), "wb")
        self.proc = subprocess.Popen(
            [PROMETHEUS, "--config.file=" + self.config,
             "--storage.tsdb.path=" + os.path.join(self.dir, "data"),
             "--web.listen-address=127.0.0.1:%d" % self.port, "--log.level=warn"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log,
            start_new_session=True)
        wait_until(self._ready, 30, interval=0.2, what="prometheus ready")

    def _ready(self):
        assert self.proc.poll() is None, "prometheus exited: " + self.tail()
        with urllib.request.urlopen("http://127.0.0.1:%d/-/ready" % self.port,
                                    timeout=2) as r:
            return r.status == 200

    def query(self, expr):
        url = "http://127.0.0.1:%d/api/v1/query?%s" % (
            self.port, urllib.parse.urlencode({"query": expr}))
        with urllib.request.urlopen(url, timeout=10) as r:
            body = json.load(r)
        assert body["status"] == "success", body
        return body["data"]["result"]

    def tail(self):
        self.log.flush()
        with open(self.log.name, "rb") as f:
            return f.read()[-3000:].decode("utf-8", "replace")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def test_every_dashboard_and_rule_expression_returns_data(forkd_factory, example_app):
    admin_port = free_port()
    mport, args = metrics_args(extra=["--workers", "2", "--threads", "2",
                                      "--admin-bind", "127.0.0.1:%d" % admin_port])
    fk = forkd_factory(example_app, args)
    prom = Prometheus(mport)
    try:
        # Bounded traffic: successes, app errors, forkd's own rejections.
        load = LoadGenerator(fk.url("/sleep?ms=2"), threads=3, duration=6, max_requests=800)
        load.start()
        for _ in range(5):
            http_get(fk.port, "/fail")
            http_get(fk.port, "/status?code=404")
            raw_request(fk.port, b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n")
        # One admin command, so the admin panels have data.
        r = admin_client.forkctl("127.0.0.1:%d" % admin_port, "version", timeout=20)
        assert r.returncode == 0, r.stderr
        summary = load.wait()
        assert summary.ok > 0

        wait_until(lambda: prom.query('forkd:requests:rate5m{pod="%s"}' % POD),
                   30, interval=0.5, what="the recording rules evaluated")
        wait_until(lambda: prom.query(
            'count_over_time(forkd_build_info{pod="%s"}[30s]) >= 8' % POD),
            30, interval=0.5, what="8 scrapes")

        empty = []
        for title, expr in dashboard_exprs(app_row=False):
            q = grafana(expr)
            if not prom.query(q):
                empty.append(("dashboard: " + title, q))
        for name, expr, is_alert in rule_exprs():
            q = with_bool(expr) if is_alert else expr
            if not prom.query(q):
                empty.append(("rule: " + name, q))
        assert not empty, "expressions without data: %s\n%s" % (empty, prom.tail())
        # The scrape itself: pod label attached, target healthy.
        up = prom.query('up{job="forkd",pod="%s"}' % POD)
        assert up and up[0]["value"][1] == "1"
    finally:
        prom.stop()


def test_app_mode_fills_every_panel_and_rule():
    """forkd -w 2 -- python3 app.py: a real Prometheus scrapes the app
    processes' series; every panel (the app processes row too) and every
    rule returns data."""
    admin_port = free_port()
    mport, args = metrics_args(extra=["-w", "2", "--admin-bind",
                                      "127.0.0.1:%d" % admin_port])
    with AppForkd(app_command(), args) as fk:
        prom = Prometheus(mport)
        try:
            load = LoadGenerator(fk.url("/sleep?ms=2"), threads=3, duration=6,
                                 max_requests=600)
            load.start()
            for _ in range(5):
                http_get(fk.port, "/fail")
                raw_request(fk.port, b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n")
            r = admin_client.forkctl("127.0.0.1:%d" % admin_port, "version", timeout=20)
            assert r.returncode == 0, r.stderr
            summary = load.wait()
            assert summary.ok > 0

            wait_until(lambda: prom.query('forkd:requests:rate5m{pod="%s"}' % POD),
                       30, interval=0.5, what="the recording rules evaluated")
            wait_until(lambda: prom.query(
                'count_over_time(forkd_app_requests_total{pod="%s",slot="1"}[30s]) >= 8'
                % POD), 30, interval=0.5, what="8 scrapes of the app series")
            assert len(dashboard_exprs(app_row=True)) >= 6
            empty = []
            for title, expr in dashboard_exprs():
                q = grafana(expr)
                if not prom.query(q):
                    empty.append(("dashboard: " + title, q))
            for name, expr, is_alert in rule_exprs():
                q = with_bool(expr) if is_alert else expr
                if not prom.query(q):
                    empty.append(("rule: " + name, q))
            assert not empty, "expressions without data: %s\n%s" % (empty, prom.tail())
            # Both app processes served; the app counts as up.
            served = prom.query('sum by (slot) (forkd_app_requests_total{pod="%s"}) > 0'
                                % POD)
            assert sorted(r["metric"]["slot"] for r in served) == ["0", "1"]
            up = prom.query('forkd_app_up{pod="%s"}' % POD)
            assert up and up[0]["value"][1] == "1"
        finally:
            prom.stop()
