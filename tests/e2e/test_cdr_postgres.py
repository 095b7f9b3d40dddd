"""Two real ccswitch nodes write their call records to one real PostgreSQL."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.e2e.node import Node, NodeFactory, agent_uri, dialplan
from tests.pgd import PostgresServer, postgres_server
from tests.phones.client import Phone, PhoneFactory, free_udp_port

__all__ = ["postgres_server"]

pytestmark = pytest.mark.e2e


def short_caller(phone_factory: PhoneFactory, node: Node, name: str) -> Phone:
    """A caller who hangs up during the QA notice: a record without needing an agent."""
    return phone_factory("--role", "caller", "--user", name, "--dial", node.dial_uri,
                         "--hangup-after", "1.0", "--timeout", "30", name=name)


def plan() -> dict[str, Any]:
    return dialplan({"alice": {"uri": agent_uri("alice", free_udp_port())}})


def exported(node: Node) -> list[dict[str, Any]]:
    result = node.cli("export-cdr")
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_report_on_either_node_sees_both_nodes_calls(
        node_factory: NodeFactory, phone_factory: PhoneFactory,
        postgres_server: PostgresServer) -> None:
    """One call on each node; export-cdr and report from node A show both, by node."""
    url = postgres_server.new_database()
    node_a, node_b = (node_factory(plan(), node=name, cdr_database=url)
                      for name in ("node-a", "node-b"))
    for node, name in ((node_a, "on-a"), (node_b, "on-b")):
        phone = short_caller(phone_factory, node, name)
        assert phone.wait_exit(30) == 0, phone.describe()
    rows = node_a.wait_cdr(2)
    assert sorted((r["caller"], r["node"]) for r in rows) == [
        ("on-a", "node-a"), ("on-b", "node-b")]
    assert exported(node_b) == rows
    report = node_a.cli("report", "--format", "json")
    assert report.returncode == 0, report.stderr
    assert sum(line["offered"] for line in json.loads(report.stdout)["lines"]) == 2


def test_a_node_started_while_the_database_is_down_spools_then_catches_up(
        node_factory: NodeFactory, phone_factory: PhoneFactory,
        postgres_server: PostgresServer) -> None:
    """The node starts and takes a call with PostgreSQL stopped; once it is back the
    spooled record lands (within the 5 s retry) and the gauges say so."""
    url = postgres_server.new_database()
    postgres_server.stop()
    try:
        node = node_factory(plan(), node="node-a", cdr_database=url)
        assert node.metric("ccswitch_cdr_backend_up") == 0
        phone = short_caller(phone_factory, node, "during")
        assert phone.wait_exit(30) == 0, phone.describe()
        node.wait_metric(1, "ccswitch_cdr_spooled_records", timeout=10)
    finally:
        postgres_server.start()
    started = time.monotonic()
    node.wait_metric(1, "ccswitch_cdr_backend_up", timeout=15)
    caught_up = time.monotonic() - started
    assert node.metric("ccswitch_cdr_spooled_records") == 0
    [row] = node.wait_cdr(1)
    assert (row["caller"], row["node"]) == ("during", "node-a")
    assert caught_up < 7.0
    log = node.log()
    assert log.count("unreachable (") == 1 and "reachable again: 1 spooled record" in log
