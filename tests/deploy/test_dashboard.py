"""The Grafana dashboard (and the rules' expressions) only query series that exist.

A series exists when ccswitch exports it (checked against the real registry, by exact
sample name: a ``_bucket`` on a gauge is as wrong as a typo) or when
deploy/prometheus/ccswitch.rules.yml records it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml
from twisted.internet.task import Clock

from ccswitch.metrics.registry import LiveStateCollector, Metrics, OverflowCollector
from ccswitch.routing.engine import RoutingEngine
from tests.routing.driver import make_dialplan

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "ccswitch-dashboard.json"
RULES = ROOT / "deploy" / "prometheus" / "ccswitch.rules.yml"
DATASOURCE = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
PROMTOOL = shutil.which("promtool")
REQUIRED = any(os.environ.get(v) for v in ("CCSWITCH_REQUIRE_PROMTOOL", "CCSWITCH_REQUIRE_TOOLS"))

# Series names the dashboard or rules may use before ccswitch exports them, because
# the code adding them is being written at the same time. Empty now:
# ccswitch_state_backend_up, the last such name, is in the registry.
BEING_ADDED: frozenset[str] = frozenset()

# A series name in PromQL, with the level:...:operations parts of a recorded name.
SERIES = re.compile(r"(?<![\w:])(?:[a-zA-Z_]\w*:)?ccswitch_\w*(?::\w+)?")
# Sample names per metric type, as the Prometheus text format exposes them.
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
# Label ccswitch puts on the series of each queue; such queries must honour $queue.
QUEUE_SERIES = ("ccswitch_queue_depth", "ccswitch_calls_total", "ccswitch_queue_wait_seconds",
                "ccswitch_agent_ring_seconds", "ccswitch_call_talk_seconds", "ccswitch_queue_info",
                "ccswitch_overflow_total", "ccswitch_overflow_failed_total",
                "ccswitch_vendor_wait_seconds", "queue:", "queue_route:", "queue_vendor:")
# Series with a vendor label naming a vendor; such queries must honour $vendor.
VENDOR_SERIES = ("ccswitch_vendor_channels_in_use", "ccswitch_vendor_channels_max",
                 "ccswitch_vendor_up", "ccswitch_overflow_total", "ccswitch_overflow_failed_total",
                 "ccswitch_vendor_wait_seconds", "queue_vendor:")


def exported_series() -> set[str]:
    """Every sample name a ccswitch node can expose (whether or not observed yet)."""
    metrics = Metrics(short_abandon_thresholds=[5])
    metrics.watch(LiveStateCollector(lambda: {"support": 1},
                                     lambda: {("support-inhouse", "ready"): 1}, lambda: 1))
    engine = RoutingEngine(make_dialplan(), clock=Clock())
    metrics.watch(OverflowCollector(lambda: engine.view))
    names: set[str] = set()
    for family in metrics.registry.collect():
        names.update(family.name + suffix for suffix in SUFFIXES[family.type])
    return names


def recorded_series() -> set[str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return {rule["record"] for group in groups for rule in group["rules"] if "record" in rule}


def known_series() -> set[str]:
    return exported_series() | recorded_series() | BEING_ADDED


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def all_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Panels at top level and inside rows (a collapsed row keeps its panels inside)."""
    for panel in panels:
        yield panel
        yield from all_panels(panel.get("panels", []))


def panel_exprs() -> list[str]:
    return [target["expr"] for panel in all_panels(dashboard()["panels"])
            for target in panel.get("targets", [])]


def variable_queries() -> list[str]:
    out = []
    for var in dashboard()["templating"]["list"]:
        query = var.get("query")
        if var["type"] == "query":
            out.append(query["query"] if isinstance(query, dict) else query)
    return out


def rule_exprs() -> list[str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule["expr"] for group in groups for rule in group["rules"]]


def test_the_registry_lists_what_ccswitch_exports() -> None:
    """The reference set itself is right: histogram, counter and gauge names as exposed."""
    names = exported_series()
    assert {"ccswitch_calls_total", "ccswitch_queue_wait_seconds_bucket",
            "ccswitch_queue_depth", "ccswitch_state_backend_up"} <= names
    assert "ccswitch_calls" not in names and "ccswitch_queue_depth_bucket" not in names


def test_names_being_added_are_not_exported_yet() -> None:
    """A name that ccswitch now exports leaves BEING_ADDED, so the allowance cannot go stale."""
    assert not BEING_ADDED & exported_series()


def test_every_panel_query_uses_known_series() -> None:
    """No panel or variable can show 'No data' because of a misspelt or unexported series."""
    exprs = panel_exprs() + variable_queries()
    used = {name for expr in exprs for name in SERIES.findall(expr)}
    assert len(exprs) >= 20 and used
    assert used <= known_series(), f"unknown series: {sorted(used - known_series())}"


def test_every_rule_expression_uses_known_series() -> None:
    """Rules only read exported series and series recorded by the same file."""
    used = {name for expr in rule_exprs() for name in SERIES.findall(expr)}
    assert used <= known_series(), f"unknown series: {sorted(used - known_series())}"


def test_dashboard_covers_every_kpi_and_health_signal() -> None:
    """Queue depth, agents, ASA, SL, abandonment, calls, ring/talk, SIP rejects, errors are shown."""
    used = {name for expr in panel_exprs() for name in SERIES.findall(expr)}
    for series in ("ccswitch_queue_depth", "ccswitch_agents", "ccswitch_active_calls",
                   "queue:ccswitch_asa_seconds:mean5m", "queue:ccswitch_service_level:ratio_rate5m",
                   "queue:ccswitch_abandon:ratio_rate5m", "ccswitch_agent_ring_seconds_bucket",
                   "ccswitch_call_talk_seconds_bucket", "ccswitch_sip_rejected_total",
                   "ccswitch_recording_errors_total", "ccswitch_state_backend_up"):
        assert series in used, f"no panel shows {series}"
    for histogram in ("ccswitch_agent_ring_seconds_bucket", "ccswitch_call_talk_seconds_bucket"):
        exprs = [e for e in panel_exprs() if histogram in e]
        for quantile in ("0.5", "0.9"):
            assert any(e.startswith(f"histogram_quantile({quantile},") for e in exprs), histogram


def test_every_panel_queries_the_datasource_variable() -> None:
    """Panels and their queries use ${DS_PROMETHEUS}, a datasource variable, never a fixed uid."""
    variables = {v["name"]: v for v in dashboard()["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    assert variables["DS_PROMETHEUS"]["query"] == "prometheus"
    for panel in all_panels(dashboard()["panels"]):
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert all(t["datasource"] == DATASOURCE for t in panel["targets"]), panel["title"]


def test_queue_variable_filters_every_queue_query() -> None:
    """$queue lists the queues and every query over per-queue series is filtered by it."""
    variables = {v["name"]: v for v in dashboard()["templating"]["list"]}
    queue = variables["queue"]
    assert queue["type"] == "query" and queue["multi"] and queue["includeAll"]
    assert queue["query"]["query"] == "label_values(ccswitch_queue_depth, queue)"
    for expr in panel_exprs():
        if any(series in expr for series in QUEUE_SERIES):
            assert 'queue=~"$queue"' in expr, expr


def test_vendor_variable_filters_every_vendor_query() -> None:
    """$vendor lists the vendors and every query over per-vendor series is filtered by it."""
    variables = {v["name"]: v for v in dashboard()["templating"]["list"]}
    vendor = variables["vendor"]
    assert vendor["type"] == "query" and vendor["multi"] and vendor["includeAll"]
    assert vendor["query"]["query"] == "label_values(ccswitch_vendor_channels_max, vendor)"
    for panel in all_panels(dashboard()["panels"]):
        for target in panel.get("targets", []):
            if any(series in target["expr"] for series in VENDOR_SERIES):
                assert 'vendor=~"$vendor"' in target["expr"], (panel["title"], target["expr"])


def test_panels_have_unique_ids_and_do_not_overlap() -> None:
    """Panel ids are unique and the 24-column grid has no two panels on the same cell."""
    panels = list(all_panels(dashboard()["panels"]))
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for panel in dashboard()["panels"]:
        pos = panel["gridPos"]
        assert 0 <= pos["x"] and pos["x"] + pos["w"] <= 24, panel["title"]
        mine = {(x, y) for x in range(pos["x"], pos["x"] + pos["w"])
                for y in range(pos["y"], pos["y"] + pos["h"])}
        assert not mine & cells, f"{panel['title']} overlaps another panel"
        cells |= mine


def test_dashboard_is_current_schema() -> None:
    """Schema 39 and the dashboard's fixed uid."""
    data = dashboard()
    assert data["schemaVersion"] == 39 and data["uid"] == "ccswitch"


def test_vendors_row_shows_capacity_health_overflow_and_route_comparison() -> None:
    """The open 'Vendors' row: channels vs max, up, overflows, failures, in-house vs vendor KPIs."""
    panels = dashboard()["panels"]
    [start] = [i for i, p in enumerate(panels) if p["type"] == "row" and p["title"] == "Vendors"]
    assert panels[start]["collapsed"] is False and panels[start]["panels"] == []
    end = next((i for i in range(start + 1, len(panels)) if panels[i]["type"] == "row"),
               len(panels))
    exprs = [t["expr"] for p in panels[start + 1:end] for t in p["targets"]]
    used = {name for expr in exprs for name in SERIES.findall(expr)}
    for series in ("ccswitch_vendor_channels_in_use", "ccswitch_vendor_channels_max",
                   "ccswitch_vendor_up", "ccswitch_overflow_total", "ccswitch_overflow_failed_total"):
        assert series in used, f"the Vendors row does not show {series}"
    for kpi in ("service_level:ratio_rate1h", "asa_seconds:mean1h", "aht_seconds:mean1h"):
        for level in ("queue_route", "queue_vendor"):
            assert f"{level}:ccswitch_{kpi}" in used, f"the Vendors row does not compare {kpi}"
    # Vendor calls are never abandoned: their counterpart is the overflow-failed rate.
    assert {"queue_route:ccswitch_abandon:ratio_rate1h",
            "queue_vendor:ccswitch_overflow_failed:ratio_rate1h"} <= used
    assert any("sum by (queue, reason)" in e and "ccswitch_overflow_total" in e for e in exprs)
    assert any("sum by (queue, vendor)" in e and "ccswitch_overflow_total" in e for e in exprs)
    assert any("by (vendor, cause)" in e and "ccswitch_overflow_failed_total" in e for e in exprs)


def test_vendor_speed_panels_explain_both_clocks() -> None:
    """Panels comparing in-house and vendor SL or ASA say route waits run from queue entry
    and vendor waits from the vendor's offer."""
    kpis = ("queue_vendor:ccswitch_service_level:", "queue_vendor:ccswitch_asa_seconds:")
    panels = [p for p in all_panels(dashboard()["panels"])
              if any(k in t["expr"] for t in p.get("targets", []) for k in kpis)]
    assert len(panels) >= 2
    for panel in panels:
        text = panel["description"].lower()
        assert "queue entry" in text, panel["title"]
        assert "offered the call" in text, panel["title"]


@pytest.mark.skipif(PROMTOOL is None and not REQUIRED, reason="promtool is missing")
def test_every_panel_query_is_valid_promql(tmp_path: Path) -> None:
    """promtool parses every panel query (Grafana's variables replaced by sample values)."""
    assert PROMTOOL is not None, "promtool is required here but not installed"
    substitutions = {"$__rate_interval": "5m", "$queue": ".*", "$group": ".*", "$instance": ".*",
                     "$vendor": ".*"}
    records = []
    for number, expr in enumerate(panel_exprs()):
        for variable, value in substitutions.items():
            expr = expr.replace(variable, value)
        assert "$" not in expr, expr
        records.append({"record": f"dashboard:panel_{number}", "expr": expr})
    path = tmp_path / "panels.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "panels", "rules": records}]}))
    result = subprocess.run([PROMTOOL, "check", "rules", str(path)], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_protection_row_shows_drops_bans_refusals_and_media_timeouts() -> None:
    """The open 'Protection' row: drops by reason, bans, overload refusals by limit, media
    timeouts by queue."""
    panels = dashboard()["panels"]
    [start] = [i for i, p in enumerate(panels) if p["type"] == "row" and p["title"] == "Protection"]
    assert panels[start]["collapsed"] is False and panels[start]["panels"] == []
    end = next((i for i in range(start + 1, len(panels)) if panels[i]["type"] == "row"),
               len(panels))
    exprs = [t["expr"] for p in panels[start + 1:end] for t in p["targets"]]
    assert any("sum by (reason)" in e and "ccswitch_sip_dropped_total" in e for e in exprs)
    assert any("ccswitch_sip_banned_sources" in e for e in exprs)
    assert any("limit)" in e and "ccswitch_overload_refused_total" in e for e in exprs)
    assert any("sum by (queue)" in e and 'outcome="media_timeout"' in e
               and "ccswitch_calls_total" in e for e in exprs)
