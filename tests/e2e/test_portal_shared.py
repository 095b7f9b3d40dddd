"""The wallboard with Redis shared state: two real ccswitch nodes and a real redis-server;
node B's wallboard shows what happens on node A."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.e2e.node import (
    AGENT_HZ, ANNOUNCEMENT_S, CALLER_HZ, Node, NodeFactory, agent_uri, dialplan,
)
from tests.e2e.test_portal_cluster import snapshots, supervisor_cookie
from tests.phones.client import PhoneFactory, SippFactory, free_udp_port
from tests.redisd import RedisServer

pytestmark = pytest.mark.e2e


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis")
    try:
        yield server
    finally:
        server.stop()


def first(node: Node, cookie: str, timeout: float, check: Any) -> dict[str, Any] | None:
    """The first wallboard snapshot of ``node`` for which ``check`` holds, if any in time."""
    for snap in snapshots(node, cookie, timeout):
        if check(snap):
            return dict(snap)
    return None


def test_agent_on_a_call_at_another_node_shows_as_remote(
        node_factory: NodeFactory, phone_factory: PhoneFactory,
        redis_server: RedisServer) -> None:
    """Alice answers a call of node A; node B's wallboard shows her remote, and why."""
    agent_port = free_udp_port()
    plan = dialplan({"alice": {"uri": agent_uri("alice", agent_port)}}, wrap_up=0)
    node_a = node_factory(plan, state=redis_server.url, node="node-a")
    node_b = node_factory(plan, state=redis_server.url, node="node-b", portal={})
    cookie = supervisor_cookie(node_b)
    agent = phone_factory("--role", "agent", "--port", str(agent_port), "--user", "alice",
                          "--tone", str(AGENT_HZ), "--answer-delay", "0.5", "--timeout", "40",
                          name="agent")
    caller = phone_factory("--role", "caller", "--dial", node_a.dial_uri, "--tone",
                           str(CALLER_HZ), "--hangup-after", str(ANNOUNCEMENT_S + 6.0),
                           "--timeout", "40", name="caller")
    seen = first(node_b, cookie, ANNOUNCEMENT_S + 8.0,
                 lambda s: s["agents"][0]["state"] == "remote")
    assert caller.wait_exit(30) == 0, caller.describe()
    assert agent.wait_exit(10) == 0, agent.describe()
    assert seen is not None, node_b.log()
    assert seen["agents"][0]["reason"] == "on a call on another node"


def test_vendor_channels_in_use_on_another_node_count(
        node_factory: NodeFactory, phone_factory: PhoneFactory, sipp_factory: SippFactory,
        redis_server: RedisServer) -> None:
    """Node A's call holds a channel of acme: node B's wallboard shows acme 1 in use."""
    acme_port = free_udp_port()
    plan = dialplan({"alice": {"uri": agent_uri("alice", free_udp_port()),
                               "logged_in": False}},
                    wrap_up=0, overflow=[{"no_agents_logged_in": True, "to": ["acme"]}])
    plan["vendors"] = {"acme": {"trunks": [f"sip:overflow@127.0.0.1:{acme_port}"],
                                "max_channels": 3, "probe_interval": 0}}
    node_a = node_factory(plan, state=redis_server.url, node="node-a")
    node_b = node_factory(plan, state=redis_server.url, node="node-b", portal={})
    cookie = supervisor_cookie(node_b)
    acme = sipp_factory("uas_answer.xml", "-m", "1", "-i", "127.0.0.1", "-p", str(acme_port),
                        "-mp", str(free_udp_port()), "-rtp_echo", "-timeout", "60s",
                        name="acme")
    caller = phone_factory("--role", "caller", "--dial", node_a.dial_uri, "--tone",
                           str(CALLER_HZ), "--hangup-after", str(ANNOUNCEMENT_S + 8.0),
                           "--timeout", "40", name="caller")
    seen = first(node_b, cookie, ANNOUNCEMENT_S + 10.0,
                 lambda s: s["vendors"][0]["in_use"] == 1)
    # Meanwhile node B's own count (its metric, from its engine) is 0: the 1 is Redis's.
    own = node_b.metric("ccswitch_vendor_channels_in_use", vendor="acme")
    assert caller.wait_exit(30) == 0, caller.describe()
    assert acme.wait(10) == 0, acme.describe()
    assert seen is not None, node_b.log()
    assert own == 0
    assert seen["vendors"][0] == {"name": "acme", "in_use": 1, "max": 3, "up": True,
                                  "sl_today": None}
