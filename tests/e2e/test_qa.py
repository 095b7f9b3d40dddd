"""The quality program end to end: a real ccswitch process, pjsua2 phones, the CLI."""

from __future__ import annotations

import json

import pytest

from tests.e2e.node import (
    AGENT_HZ, ANNOUNCEMENT_S, CALLER_HZ, Node, NodeFactory, agent_uri, dialplan,
)
from tests.phones.client import PhoneFactory, free_udp_port

pytestmark = pytest.mark.e2e


def _answered_call(node: Node, phone_factory: PhoneFactory, agent_port: int) -> None:
    """One call from a pjsua2 caller answered by the pjsua2 agent alice, then hung up."""
    agent = phone_factory("--role", "agent", "--port", str(agent_port), "--user", "alice",
                          "--tone", str(AGENT_HZ), "--answer-delay", "0.5", "--timeout", "40",
                          name="agent")
    caller = phone_factory("--role", "caller", "--dial", node.dial_uri, "--tone", str(CALLER_HZ),
                           "--hangup-after", str(ANNOUNCEMENT_S + 2.0), "--timeout", "40",
                           name="caller")
    assert caller.wait_exit(30) == 0, caller.describe()
    assert agent.wait_exit(10) == 0, agent.describe()


def _samples(node: Node) -> list[dict[str, object]]:
    result = node.cli("qa", "samples", "--format", "json")
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_a_call_through_a_node_sampling_everything_is_flagged_and_listed(
        node_factory: NodeFactory, phone_factory: PhoneFactory) -> None:
    """qa.sampling percent 100: the answered call ends flagged (reason random) and
    ``ccswitch qa samples`` lists it with its agent and recording."""
    agent_port = free_udp_port()
    plan = dialplan({"alice": {"uri": agent_uri("alice", agent_port)}})
    plan["qa"] = {"sampling": {"seed": "e2e-seed", "percent": 100}}
    node = node_factory(plan)
    _answered_call(node, phone_factory, agent_port)
    [record] = node.wait_cdr(1)
    node.wait_log("sampled for QA (random)")
    [sample] = _samples(node)
    assert (sample["call_id"], sample["sampled"], sample["reason"], sample["agent_id"]) == (
        record["call_id"], True, "random", "alice")
    assert sample["recording_path"] == record["recording_path"]


def test_sampling_rules_added_by_a_reload_apply_to_the_next_call(
        node_factory: NodeFactory, phone_factory: PhoneFactory) -> None:
    """A node started without qa samples nothing; after a reload adding percent 100, the
    next call is flagged."""
    agent_port = free_udp_port()
    plan = dialplan({"alice": {"uri": agent_uri("alice", agent_port)}})
    node = node_factory(plan)
    _answered_call(node, phone_factory, agent_port)
    node.wait_cdr(1)
    node.reload({**plan, "qa": {"sampling": {"seed": "e2e-seed", "percent": 100}}})
    node.wait_metric(1, "ccswitch_config_reloads_total", result="ok")
    assert _samples(node) == []
    _answered_call(node, phone_factory, agent_port)
    second = max(node.wait_cdr(2), key=lambda r: r["arrived_ms"])
    node.wait_log("sampled for QA (random)")
    assert [s["call_id"] for s in _samples(node)] == [second["call_id"]]
