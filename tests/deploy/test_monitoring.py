"""Prometheus rules (checked and unit-tested by promtool) and the Grafana dashboard."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client.core import Metric

from ccswitch.metrics.registry import LiveStateCollector, Metrics

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
PROM = DEPLOY / "prometheus"
RULES = PROM / "ccswitch.rules.yml"
DASHBOARD = DEPLOY / "grafana" / "ccswitch-dashboard.json"
RUNBOOK = DEPLOY.parent / "docs" / "RUNBOOK.md"
PROMTOOL = shutil.which("promtool")
# make test sets CCSWITCH_REQUIRE_TOOLS=1, so a missing tool fails there instead of skipping.
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None and not os.environ.get("CCSWITCH_REQUIRE_TOOLS"),
    reason="promtool (Debian package prometheus) is missing; make test installs it")
METRIC = re.compile(r"\b(?:[a-z]+:)?ccswitch_[a-z_]+(?::[a-z0-9_]+)?")


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], cwd=PROM, capture_output=True, text=True,
                          timeout=120)


@needs_promtool
def test_rules_pass_promtool_check() -> None:
    """promtool accepts every recording and alerting rule."""
    result = promtool("check", "rules", RULES.name)
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_rules_unit_tests_pass() -> None:
    """Recording rules compute the expected SL/ASA/abandonment; alerts fire and stay quiet."""
    result = promtool("test", "rules", "ccswitch.rules.test.yml")
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_scrape_config_passes_promtool_check() -> None:
    """The example scrape config is valid and loads the rules file."""
    result = promtool("check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def exported_names() -> set[str]:
    """Every sample name a ccswitch node exports (histogram/counter series included)."""
    metrics = Metrics(short_abandon_thresholds=[5])
    metrics.watch(LiveStateCollector(lambda: {"q": 0}, lambda: {("g", "ready"): 0},
                                     lambda: 0))
    metrics.queue_wait.labels(queue="q", outcome="answered").observe(1)
    metrics.agent_ring.labels(queue="q", group="g").observe(1)
    metrics.call_talk.labels(queue="q", group="g").observe(1)
    metrics.calls.labels(queue="q", outcome="answered").inc()
    metrics.sip_rejected.labels(status="403").inc()
    metrics.config_reloads.labels(result="ok").inc()
    family: Metric
    names = set()
    for family in metrics.registry.collect():
        names.update(sample.name for sample in family.samples)
    return names


def recorded_names() -> set[str]:
    rules = yaml.safe_load(RULES.read_text())
    return {r["record"] for g in rules["groups"] for r in g["rules"] if "record" in r}


def test_every_dashboard_query_names_metrics_ccswitch_exports() -> None:
    """No panel can show 'No data' because of a misspelt or unexported metric."""
    known = exported_names() | recorded_names()
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert len(exprs) >= 10
    used = {name for expr in exprs for name in METRIC.findall(expr)}
    assert used, "no ccswitch metric found in the dashboard"
    assert used <= known, f"unknown metrics in the dashboard: {sorted(used - known)}"


def test_every_rule_expression_names_metrics_ccswitch_exports() -> None:
    """Rules only use exported series (plus rules recorded in the same file)."""
    known = exported_names() | recorded_names()
    rules = yaml.safe_load(RULES.read_text())
    used = {name for g in rules["groups"] for r in g["rules"] for name in METRIC.findall(r["expr"])}
    assert used <= known, f"unknown metrics in the rules: {sorted(used - known)}"


def test_every_alert_has_a_runbook_section() -> None:
    """Each alert's runbook_url anchor exists as a heading in docs/RUNBOOK.md."""
    rules = yaml.safe_load(RULES.read_text())
    alerts = [r for g in rules["groups"] for r in g["rules"] if "alert" in r]
    headings = {line[3:].strip().lower() for line in RUNBOOK.read_text().splitlines()
                if line.startswith("## ")}
    for alert in alerts:
        anchor = alert["annotations"]["runbook_url"].split("#", 1)[1]
        assert anchor == alert["alert"].lower()
        assert anchor in headings, f"no '## {alert['alert']}' section in RUNBOOK.md"
        assert alert["labels"]["severity"] in ("warning", "critical")
