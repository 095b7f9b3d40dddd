"""The quality program end to end: a real ccswitch process, pjsua2 phones, the CLI."""

from __future__ import annotations

import json
import time

import pytest

from tests.e2e.node import AGENT_HZ, ANNOUNCEMENT_S, CALLER_HZ, NodeFactory, agent_uri, dialplan
from tests.phones.client import PhoneFactory, free_udp_port

pytestmark = pytest.mark.e2e


def test_a_call_through_a_node_sampling_everything_is_flagged_and_listed(
        node_factory: NodeFactory, phone_factory: PhoneFactory) -> None:
    """qa.sampling percent 100: the answered call ends flagged (reason random) and
    ``ccswitch qa samples`` lists it with its agent and recording."""
    agent_port = free_udp_port()
    plan = dialplan({"alice": {"uri": agent_uri("alice", agent_port)}})
    plan["qa"] = {"sampling": {"seed": "e2e-seed", "percent": 100}}
    node = node_factory(plan)
    agent = phone_factory("--role", "agent", "--port", str(agent_port), "--user", "alice",
                          "--tone", str(AGENT_HZ), "--answer-delay", "0.5", "--timeout", "40",
                          name="agent")
    caller = phone_factory("--role", "caller", "--dial", node.dial_uri, "--tone", str(CALLER_HZ),
                           "--hangup-after", str(ANNOUNCEMENT_S + 2.0), "--timeout", "40",
                           name="caller")
    assert caller.wait_exit(30) == 0, caller.describe()
    assert agent.wait_exit(10) == 0, agent.describe()
    [record] = node.wait_cdr(1)
    node.wait_log("sampled for QA (random)")
    listed: list[dict[str, object]] = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not listed:
        result = node.cli("qa", "samples", "--format", "json")
        assert result.returncode == 0, result.stderr
        listed = [json.loads(line) for line in result.stdout.splitlines()]
        time.sleep(0.2)
    [sample] = listed
    assert (sample["call_id"], sample["sampled"], sample["reason"], sample["agent_id"]) == (
        record["call_id"], True, "random", "alice")
    assert sample["recording_path"] == record["recording_path"]
