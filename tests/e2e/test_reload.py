"""SIGHUP reloads the dialplans of a running ccswitch without dropping calls."""

from __future__ import annotations

import json

import pytest

from tests.e2e.node import AGENT_HZ, ANNOUNCEMENT_S, CALLER_HZ, NodeFactory, agent_uri, dialplan
from tests.phones.client import PhoneFactory, free_udp_port

pytestmark = pytest.mark.e2e


def test_reload_adds_an_agent_who_takes_the_waiting_caller(
        node_factory: NodeFactory, phone_factory: PhoneFactory) -> None:
    """A caller waits with nobody logged in; a reload adds bob, who gets the call at once."""
    alice = {"uri": agent_uri("alice", free_udp_port()), "logged_in": False}
    node = node_factory(dialplan({"alice": alice}))
    caller = phone_factory("--role", "caller", "--dial", node.dial_uri, "--tone", str(CALLER_HZ),
                           "--hangup-after", str(ANNOUNCEMENT_S + 6.0), "--timeout", "40",
                           name="caller")
    node.wait_metric(1, "ccswitch_queue_depth", timeout=15, queue="support")
    bob_port = free_udp_port()
    bob = phone_factory("--role", "agent", "--port", str(bob_port), "--user", "bob",
                        "--tone", str(AGENT_HZ), "--timeout", "40", name="bob")
    node.reload(dialplan({"alice": alice, "bob": {"uri": agent_uri("bob", bob_port)}}))
    bob.wait_state("CONFIRMED", timeout=10)
    assert caller.wait_exit(20) == 0, caller.describe()

    [wav] = node.wait_recordings(1)
    meta = json.loads(wav.with_suffix(".json").read_text())
    assert meta["outcome"] == "answered_inhouse" and meta["agent_id"] == "bob"
    assert node.metric("ccswitch_config_reloads_total", result="ok") == 1
    assert node.metric("ccswitch_agents", group="inhouse", state="logged_out") == 1


def test_a_bad_dialplan_is_refused_and_the_old_one_keeps_routing(
        node_factory: NodeFactory, phone_factory: PhoneFactory) -> None:
    """A reload with an invalid file is logged and counted; calls still reach the old agents."""
    agent_port = free_udp_port()
    node = node_factory(dialplan({"alice": {"uri": agent_uri("alice", agent_port)}}))
    node.reload("queues:\n  support:\n    group: nobody\n")
    node.wait_metric(1, "ccswitch_config_reloads_total", result="failed")
    assert "the running config stays in force" in node.log()

    agent = phone_factory("--role", "agent", "--port", str(agent_port), "--user", "alice",
                          "--tone", str(AGENT_HZ), "--timeout", "30", name="agent")
    caller = phone_factory("--role", "caller", "--dial", node.dial_uri, "--tone", str(CALLER_HZ),
                           "--hangup-after", str(ANNOUNCEMENT_S + 2.0), "--timeout", "30",
                           name="caller")
    assert caller.wait_exit(20) == 0, caller.describe()
    assert agent.wait_exit(10) == 0, agent.describe()
    [wav] = node.wait_recordings(1)
    assert json.loads(wav.with_suffix(".json").read_text())["agent_id"] == "alice"
