"""Prometheus rules and scrape config: checked and unit-tested by promtool, cross-checked here.

promtool comes with the Debian package ``prometheus``. Without it these tests skip,
unless CCSWITCH_REQUIRE_PROMTOOL or CCSWITCH_REQUIRE_TOOLS is set (CI, ``make test``):
then a missing promtool fails them.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import generate_latest

from ccswitch.metrics.registry import Metrics
from ccswitch.routing.record import Outcome

ROOT = Path(__file__).resolve().parents[2]
PROM = ROOT / "deploy" / "prometheus"
RULES = PROM / "ccswitch.rules.yml"
KPI_TESTS = PROM / "ccswitch-kpis.promtool.yml"
ALERT_TESTS = PROM / "ccswitch-alerts.promtool.yml"
SCRAPE_CONFIG = PROM / "prometheus.yml"
RUNBOOK = ROOT / "docs" / "RUNBOOK.md"
PROMTOOL = shutil.which("promtool")
REQUIRED = any(os.environ.get(v) for v in ("CCSWITCH_REQUIRE_PROMTOOL", "CCSWITCH_REQUIRE_TOOLS"))
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None and not REQUIRED,
    reason="promtool is missing (Debian package prometheus); set CCSWITCH_REQUIRE_PROMTOOL=1 "
           "to fail instead")


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None, "promtool is required here but not installed"
    return subprocess.run([PROMTOOL, *args], cwd=PROM, capture_output=True, text=True,
                          timeout=120)


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def rules() -> list[dict[str, Any]]:
    return [rule for group in load(RULES)["groups"] for rule in group["rules"]]


def alerts() -> list[dict[str, Any]]:
    return [rule for rule in rules() if "alert" in rule]


def outcome_matchers(expr: str, op: str) -> list[str]:
    """The values of every outcome matcher with operator ``op`` (=, !=, =~, !~) in ``expr``."""
    return re.findall(rf'outcome{re.escape(op)}"([^"]*)"', expr)


def records() -> dict[str, str]:
    return {rule["record"]: rule["expr"] for rule in rules() if "record" in rule}


def duration(text: str) -> float:
    """Seconds in a Prometheus duration such as 1m30s."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    parts = re.findall(r"(\d+)(ms|s|m|h|d)", text)
    assert parts and "".join(n + u for n, u in parts) == text, text
    return sum(int(n) * units[u] for n, u in parts)


def alert_checks(path: Path) -> list[dict[str, Any]]:
    return [check for test in load(path)["tests"] for check in test.get("alert_rule_test", [])]


def github_anchor(heading: str) -> str:
    """The fragment GitHub gives a Markdown heading."""
    slug = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return slug.replace(" ", "-")


@needs_promtool
def test_promtool_accepts_the_rules() -> None:
    """promtool check rules finds no syntax or PromQL error in the rules file."""
    result = promtool("check", "rules", RULES.name)
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_promtool_rule_unit_tests_pass() -> None:
    """Every recording rule computes the expected KPI and every alert fires only when it should."""
    result = promtool("test", "rules", KPI_TESTS.name, ALERT_TESTS.name)
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_promtool_accepts_the_scrape_config() -> None:
    """promtool check config accepts prometheus.yml and the rule files it loads."""
    result = promtool("check", "config", SCRAPE_CONFIG.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert RULES.name in result.stdout


def test_unit_tests_show_every_alert_firing_and_quiet() -> None:
    """For each alert the timing tests expect it firing at least once and quiet at least once."""
    checks = alert_checks(ALERT_TESTS)
    for alert in alerts():
        name = alert["alert"]
        outcomes = [bool(c.get("exp_alerts")) for c in checks if c["alertname"] == name]
        assert True in outcomes, f"no promtool test shows {name} firing"
        assert False in outcomes, f"no promtool test shows {name} not firing"


def test_alert_timing_tests_run_at_the_shipped_intervals() -> None:
    """The timing tests sample at prometheus.yml's scrape interval and evaluate at its
    evaluation interval."""
    shipped = load(SCRAPE_CONFIG)["global"]
    tests = load(ALERT_TESTS)
    assert tests["evaluation_interval"] == shipped["evaluation_interval"]
    assert {test["interval"] for test in tests["tests"]} == {shipped["scrape_interval"]}
    jobs = {job["job_name"]: job for job in load(SCRAPE_CONFIG)["scrape_configs"]}
    assert jobs["ccswitch"].get("scrape_interval", shipped["scrape_interval"]) == (
        shipped["scrape_interval"])


def test_every_alert_goes_from_quiet_to_firing_within_a_minute() -> None:
    """Each alert's timing test has it quiet at the moment of its event (or when its
    condition has lasted its stated time) and firing at most one minute later."""
    checks = alert_checks(ALERT_TESTS)
    for alert in alerts():
        name = alert["alert"]
        quiet = [duration(c["eval_time"]) for c in checks
                 if c["alertname"] == name and not c.get("exp_alerts")]
        firing = [duration(c["eval_time"]) for c in checks
                  if c["alertname"] == name and c.get("exp_alerts")]
        assert any(0 < f - q <= 60 for q in quiet for f in firing), name


def test_promtool_test_files_stay_out_of_a_rules_glob() -> None:
    """Only the rules file matches *rules*, so rule_files: [*rules*.yml] loads no test file."""
    assert sorted(PROM.glob("*rules*")) == [RULES]
    assert {ALERT_TESTS, KPI_TESTS} <= set(PROM.glob("*.promtool.yml"))


def test_unit_tests_check_every_recording_rule() -> None:
    """Each recorded series is asserted by a promtool test or feeds another recording rule."""
    tested = " ".join(check["expr"] for path in (KPI_TESTS, ALERT_TESTS)
                      for test in load(path)["tests"]
                      for check in test.get("promql_expr_test", []))
    records = [rule for rule in rules() if "record" in rule]
    for rule in records:
        name = rule["record"]
        feeds = [r["record"] for r in records if r is not rule and name in r["expr"]]
        assert name in tested or feeds, f"{name} is neither tested nor used"


def test_every_alert_has_severity_and_annotations() -> None:
    """Alerts carry a severity Alertmanager can route on and the three annotations."""
    for alert in alerts():
        assert alert["labels"]["severity"] in ("warning", "critical"), alert["alert"]
        annotations = alert["annotations"]
        assert {"summary", "description", "runbook_url"} <= set(annotations), alert["alert"]
        assert all(annotations[key].strip() for key in ("summary", "description"))


def test_runbook_has_exactly_one_section_per_alert() -> None:
    """docs/RUNBOOK.md has a '## <alert>' section for every alert and none for others."""
    headings = [line[3:].strip() for line in RUNBOOK.read_text().splitlines()
                if line.startswith("## ")]
    assert sorted(headings) == sorted(alert["alert"] for alert in alerts())


def test_every_runbook_url_points_at_its_section() -> None:
    """Each runbook_url is docs/RUNBOOK.md#<anchor of the alert's own section>."""
    anchors = {github_anchor(line[3:]) for line in RUNBOOK.read_text().splitlines()
               if line.startswith("## ")}
    for alert in alerts():
        path, _, fragment = alert["annotations"]["runbook_url"].partition("#")
        assert path == "docs/RUNBOOK.md"
        assert fragment == github_anchor(alert["alert"]) and fragment in anchors


def test_runbook_sections_give_meaning_checks_and_remedies() -> None:
    """Every runbook section says what the alert means, what to check and how to fix it."""
    sections = re.split(r"^## ", RUNBOOK.read_text(), flags=re.M)[1:]
    assert sections
    for section in sections:
        title = section.splitlines()[0]
        for part in ("**Meaning.**", "**First checks.**", "**Remedies.**"):
            assert part in section, f"{title}: no {part}"


def test_bucket_edges_in_the_rules_are_what_ccswitch_exposes() -> None:
    """Every histogram bucket the rules select (name and le="...") is in ccswitch's exposition."""
    metrics = Metrics(short_abandon_thresholds=[5])
    metrics.queue_wait.labels(queue="q", outcome="answered_inhouse", route="inhouse",
                              vendor="").observe(1)
    metrics.vendor_wait.labels(queue="q", vendor="v", outcome="answered_vendor").observe(1)
    text = generate_latest(metrics.registry).decode()
    selected = set(re.findall(r'(ccswitch_\w+_bucket)\{[^}]*le="([^"]+)"', RULES.read_text()))
    assert {edge for _, edge in selected} == {"20.0"}
    assert {"ccswitch_queue_wait_seconds_bucket",
            "ccswitch_vendor_wait_seconds_bucket"} <= {name for name, _ in selected}
    for name, edge in selected:
        assert re.search(rf'^{name}{{[^}}]*le="{re.escape(edge)}"', text, flags=re.M), (name, edge)


def test_vendor_speed_of_answer_runs_on_the_vendor_clock() -> None:
    """Per-vendor SL and ASA read ccswitch_vendor_wait_seconds; per-route ones the queue wait."""
    exprs = {rule["record"]: rule["expr"] for rule in rules() if "record" in rule}
    for window in ("rate5m", "rate1h"):
        mean = window.replace("rate", "mean")
        for name in (f"queue_vendor:ccswitch_calls_answered_within_threshold:{window}",
                     f"queue_vendor:ccswitch_asa_seconds:{mean}",
                     f"queue_vendor:ccswitch_vendor_wait_seconds_count:{window}"):
            assert "ccswitch_vendor_wait_seconds" in exprs[name], name
            assert "ccswitch_queue_wait_seconds" not in exprs[name], name
        assert (f"queue_vendor:ccswitch_vendor_wait_seconds_count:{window}"
                in exprs[f"queue_vendor:ccswitch_service_level:ratio_{window}"])
        for name in (f"queue_route:ccswitch_calls_answered_within_threshold:{window}",
                     f"queue_route:ccswitch_asa_seconds:{mean}"):
            assert "ccswitch_queue_wait_seconds" in exprs[name], name


def test_scrape_job_is_the_one_the_down_alert_watches() -> None:
    """prometheus.yml scrapes job "ccswitch", the job CcswitchDown watches, and loads the rules."""
    config = load(SCRAPE_CONFIG)
    assert RULES.name in config["rule_files"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["ccswitch"].get("metrics_path", "/metrics") == "/metrics"
    [down] = [alert for alert in alerts() if alert["alert"] == "CcswitchDown"]
    assert 'up{job="ccswitch"}' in down["expr"]


def test_rules_only_name_outcomes_prometheus_sees() -> None:
    """Every outcome a rule matches on is one ccswitch counts; interrupted (CDR only) never is."""
    live = {str(o) for o in Outcome} - {str(Outcome.INTERRUPTED)}
    for rule in rules():
        for op in ("=", "!=", "=~", "!~"):
            for value in outcome_matchers(rule["expr"], op):
                assert set(value.split("|")) <= live, (rule.get("record") or rule["alert"], value)


def test_rules_header_classifies_every_outcome() -> None:
    """The header comment names every outcome, so a new one cannot slip in unclassified."""
    header = RULES.read_text().split("\ngroups:", 1)[0]
    for outcome in Outcome:
        assert str(outcome) in header, f"the rules header does not mention {outcome}"


def test_media_timeout_is_counted_but_neither_answered_nor_abandoned() -> None:
    """media_timeout stays in the SL denominator and out of answered and abandoned counts."""
    exprs = records()
    checked = 0
    for name, expr in exprs.items():
        if ":ccswitch_calls_sl_offered:" in name:
            [excluded] = outcome_matchers(expr, "!~")
            assert re.fullmatch(excluded, "rejected") and re.fullmatch(excluded, "short_abandon")
            assert not re.fullmatch(excluded, "media_timeout"), name
            checked += 1
        elif re.search(r":ccswitch_calls_(answered|abandoned|answered_within_threshold):", name):
            for included in outcome_matchers(expr, "=~") + outcome_matchers(expr, "="):
                assert not re.fullmatch(included, "media_timeout"), name
            checked += 1
    assert checked >= 12


def test_protection_alerts_watch_the_guard_overload_and_media_metrics() -> None:
    """SipFloodBans reads the ban gauge, OverloadRefusingCalls the refusals per node and limit,
    MediaTimeouts the media_timeout calls per queue."""
    exprs = {alert["alert"]: alert["expr"] for alert in alerts()}
    assert "ccswitch_sip_banned_sources" in exprs["SipFloodBans"]
    assert "sum by (job, instance, limit) (increase(ccswitch_overload_refused_total" in (
        exprs["OverloadRefusingCalls"])
    assert 'sum by (queue) (increase(ccswitch_calls_total{outcome="media_timeout"}' in (
        exprs["MediaTimeouts"])
    assert "ccswitch_sip_rejected_total" in exprs["UntrustedSipFlood"]
