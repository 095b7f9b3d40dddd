"""Dead agent phones end to end: a real ccswitch process, SIPp agents and callers.

An agent's SIPp is stopped, so nothing listens on its port: its offers must end
within the agent's no_response_timeout, callers go on to the live agent, the dead
one shows ``unreachable`` in the API and metrics, and a phone listening on its
port again brings it back through the OPTIONS probes.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.e2e.node import ANNOUNCEMENT_S, CALLER_HZ, Node, NodeFactory, agent_uri, dialplan
from tests.phones.client import SippFactory, free_udp_port, write_ulaw_tone

pytestmark = pytest.mark.e2e

TOKEN = "d3ad-" + "a1b2c3d4" * 4
NO_RESPONSE_S = 1.0


def sipp_agent(sipp_factory: SippFactory, port: int, calls: int, name: str) -> Any:
    """A SIPp agent answering ``calls`` calls on ``port`` (and OPTIONS, with -aa)."""
    return sipp_factory("uas_answer.xml", "-m", str(calls), "-aa", "-i", "127.0.0.1",
                        "-p", str(port), "-mp", str(free_udp_port()), "-rtp_echo",
                        "-timeout", "60s", name=name)


def agent_state(node: Node, agent_id: str) -> str:
    status, body = node.api("GET", "agents", token=TOKEN)
    assert status == 200, body
    [agent] = [a for a in body["agents"] if a["agent_id"] == agent_id]
    return str(agent["state"])


def wait_state(node: Node, agent_id: str, state: str, timeout: float) -> float:
    """Seconds until the API shows ``agent_id`` in ``state``."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if agent_state(node, agent_id) == state:
            return time.monotonic() - start
        time.sleep(0.1)
    raise AssertionError(f"{agent_id} not {state} after {timeout}s "
                         f"(is {agent_state(node, agent_id)})\n{node.log()}")


def test_a_dead_agent_is_skipped_at_once_and_back_when_its_phone_listens(
        node_factory: NodeFactory, sipp_factory: SippFactory) -> None:
    """alice's SIPp is stopped: two callers in a row both reach bob, alice's one offer ends within
    ~1 s as unreachable, the API and metrics show her unreachable, and a SIPp listening
    on her port again makes her ready through the probes."""
    alice_port, bob_port = free_udp_port(), free_udp_port()
    contact = {"no_response_timeout": NO_RESPONSE_S, "probe_interval": 1}
    node = node_factory(dialplan({"alice": {"uri": agent_uri("alice", alice_port), **contact},
                                  "bob": {"uri": agent_uri("bob", bob_port), **contact}},
                                 wrap_up=0),
                        api_token=TOKEN)
    alice = sipp_agent(sipp_factory, alice_port, 1, "alice")
    time.sleep(0.3)
    alice.stop()  # her phone is gone: nothing listens on her port any more
    sipp_agent(sipp_factory, bob_port, 2, "bob")
    write_ulaw_tone(sipp_factory.cwd / "caller_audio.ulaw", CALLER_HZ, seconds=1.0)
    # Each caller stays on through the notice, the dead offer and a few seconds with bob.
    stay_ms = int((ANNOUNCEMENT_S + NO_RESPONSE_S + 2.0) * 1000)
    callers = sipp_factory("uac_call.xml", f"127.0.0.1:{node.sip_port}", "-s", "100",
                           "-m", "2", "-l", "1", "-d", str(stay_ms), "-i", "127.0.0.1",
                           "-p", str(free_udp_port()), "-mp", str(free_udp_port()),
                           "-timeout", "40s", name="callers")
    assert callers.wait(40) == 0, callers.describe()

    rows = node.wait_cdr(2)
    assert [(r["outcome"], r["agent_id"]) for r in rows] == [("answered_inhouse", "bob")] * 2
    alice_offers = [o for r in rows for o in r["offers"]
                    if o.get("agent_id") == "alice"]
    assert [o["result"] for o in alice_offers] == ["unreachable"], rows
    [offer] = alice_offers
    assert offer["ended_at"] - offer["offered_at"] < NO_RESPONSE_S + 0.5, offer
    assert agent_state(node, "alice") == "unreachable"
    node.wait_metric(1, "ccswitch_agents", group="inhouse", state="unreachable")
    assert "agent alice unreachable (no_response)" in node.log()

    sipp_agent(sipp_factory, alice_port, 1, "alice-back")
    assert wait_state(node, "alice", "ready", timeout=5) < 3
    node.wait_metric(0, "ccswitch_agents", group="inhouse", state="unreachable")


def test_an_agent_the_node_cannot_send_to_is_skipped_at_once(
        node_factory: NodeFactory, sipp_factory: SippFactory) -> None:
    """alice's address cannot be sent to from the node's 127.0.0.1 socket (no route): with
    the no-response check off, her offer still ends at once and the caller reaches bob."""
    bob_port = free_udp_port()
    node = node_factory(dialplan({"alice": {"uri": "sip:alice@192.0.2.1:5060",
                                            "no_response_timeout": 0},
                                  "bob": {"uri": agent_uri("bob", bob_port)}}),
                        api_token=TOKEN)
    sipp_agent(sipp_factory, bob_port, 1, "bob")
    write_ulaw_tone(sipp_factory.cwd / "caller_audio.ulaw", CALLER_HZ, seconds=1.0)
    caller = sipp_factory("uac_call.xml", f"127.0.0.1:{node.sip_port}", "-s", "100",
                          "-m", "1", "-d", str(int((ANNOUNCEMENT_S + 2.0) * 1000)),
                          "-i", "127.0.0.1", "-p", str(free_udp_port()),
                          "-mp", str(free_udp_port()), "-timeout", "30s", name="caller")
    assert caller.wait(30) == 0, caller.describe()
    [row] = node.wait_cdr(1)
    assert (row["outcome"], row["agent_id"]) == ("answered_inhouse", "bob")
    [offer, _] = row["offers"]
    assert (offer["agent_id"], offer["result"]) == ("alice", "unreachable")
    assert offer["ended_at"] - offer["offered_at"] < 0.5, offer
    assert agent_state(node, "alice") == "unreachable"
    assert "agent alice unreachable (send_failed)" in node.log()
