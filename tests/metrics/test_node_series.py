"""A real ccswitch process exports its known series at 0 before any event."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.node import Node, agent_uri, dialplan
from tests.phones.client import free_udp_port

pytestmark = pytest.mark.e2e


def test_a_started_node_exports_its_counters_at_zero(tmp_path: Path) -> None:
    """Before any call or reload: refused reloads, overload refusals and the queue's
    rejected and media-timeout calls are all exported at 0."""
    node = Node(tmp_path, dialplan({"alice": {"uri": agent_uri("alice", free_udp_port())}}),
                log_level="info")
    try:
        inhouse = {"queue": "support", "route": "inhouse", "vendor": ""}
        assert node.metric("ccswitch_config_reloads_total", result="failed") == 0
        assert node.metric("ccswitch_overload_refused_total", limit="calls") == 0
        assert node.metric("ccswitch_calls_total", outcome="rejected", **inhouse) == 0
        assert node.metric("ccswitch_calls_total", outcome="media_timeout", **inhouse) == 0
    finally:
        node.stop()


def test_a_queue_added_by_a_reload_is_exported_at_zero(tmp_path: Path) -> None:
    """After a reload that adds queue sales, its calls by outcome are exported at 0."""
    agents = {"alice": {"uri": agent_uri("alice", free_udp_port())}}
    node = Node(tmp_path, dialplan(agents), log_level="info")
    try:
        plan = dialplan(agents)
        plan["queues"]["sales"] = dict(plan["queues"]["support"])
        plan["routes"].append({"number": "200", "queue": "sales"})
        node.reload(plan)
        node.wait_metric(1, "ccswitch_config_reloads_total", result="ok")
        assert node.metric("ccswitch_calls_total", queue="sales", outcome="abandoned_queue",
                           route="inhouse", vendor="") == 0
    finally:
        node.stop()


def test_a_node_exports_its_overflow_rule_states_and_shares(tmp_path: Path) -> None:
    """A node whose queue shares 20 % with acme and has alice logged out exports the rules'
    states (no_agents_logged_in on) and the share's target and counts from the start."""
    plan = dialplan({"alice": {"uri": agent_uri("alice", free_udp_port()), "logged_in": False}},
                    overflow=[{"share": {"vendor": "acme", "percent": 20}},
                              {"no_agents_logged_in": True, "to": ["acme"]}])
    plan["vendors"] = {"acme": {"trunks": [f"sip:acme@127.0.0.1:{free_udp_port()}"],
                                "max_channels": 5, "probe_interval": 0}}
    node = Node(tmp_path, plan, log_level="info")
    try:
        share = {"queue": "support", "vendor": "acme"}
        assert node.metric("ccswitch_share_target_ratio", **share) == 0.2
        assert node.metric("ccswitch_share_calls_total", **share) == 0
        assert node.metric("ccswitch_share_vendor_calls_total", **share) == 0
        assert node.metric("ccswitch_overflow_rule_active", queue="support",
                           rule="no_agents_logged_in") == 1
        assert node.metric("ccswitch_overflow_rule_active", queue="support", rule="share") == 0
    finally:
        node.stop()
