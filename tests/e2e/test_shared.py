"""Several ccswitch nodes sharing one real redis-server: one agent, calls on both nodes."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.e2e.node import (
    AGENT_HZ, ANNOUNCEMENT_S, CALLER_HZ, Node, NodeFactory, agent_uri, dialplan,
)
from tests.phones.client import Phone, PhoneFactory, SippFactory, free_udp_port
from tests.redisd import RedisServer

pytestmark = pytest.mark.e2e

TOKEN = "shared-" + "0123456789abcdef" * 2


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis")
    try:
        yield server
    finally:
        server.stop()


def wait_for(check: Any, timeout: float = 20.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"not true after {timeout}s: {what or check}")


def two_nodes(node_factory: NodeFactory, redis_server: RedisServer, agent_port: int,
              **options: Any) -> tuple[Node, Node]:
    plan = dialplan({"alice": {"uri": agent_uri("alice", agent_port)}}, wrap_up=0)
    return tuple(node_factory(plan, state=redis_server.url, node=name, **options)  # type: ignore[return-value]
                 for name in ("node-a", "node-b"))


def caller(phone_factory: PhoneFactory, node: Node, name: str, stay: float) -> Phone:
    return phone_factory("--role", "caller", "--user", name, "--dial", node.dial_uri,
                         "--tone", str(CALLER_HZ), "--hangup-after", str(stay),
                         "--timeout", "60", name=name)


def records(*nodes: Node, count: int) -> dict[str, dict[str, Any]]:
    """Every node's CDR rows, by caller, once there are ``count`` in all."""
    def collect() -> dict[str, dict[str, Any]] | None:
        rows = [row for node in nodes for row in node.wait_cdr(0)]
        return {row["caller"]: row for row in rows} if len(rows) >= count else None
    found: dict[str, dict[str, Any]] = wait_for(collect, what=f"{count} call records")
    return found


def test_one_agent_two_nodes_one_call_at_a_time_in_global_order(
        node_factory: NodeFactory, phone_factory: PhoneFactory,
        redis_server: RedisServer) -> None:
    """alice is on a call from node A; a caller waits on node B, then a younger one on A.
    When A frees alice she goes to B's older caller, not A's own, and never has two calls."""
    agent_port = free_udp_port()
    node_a, node_b = two_nodes(node_factory, redis_server, agent_port)
    alice = phone_factory("--role", "agent", "--port", str(agent_port), "--user", "alice",
                          "--tone", str(AGENT_HZ), "--calls", "3", "--timeout", "90",
                          name="alice")
    first = caller(phone_factory, node_a, "first", ANNOUNCEMENT_S + 12.0)
    node_a.wait_metric(1, "ccswitch_agents", timeout=20, group="inhouse", state="on_call")
    node_b.wait_metric(1, "ccswitch_agents", timeout=5, group="inhouse", state="remote")
    older = caller(phone_factory, node_b, "older", ANNOUNCEMENT_S + 12.0)
    node_b.wait_metric(1, "ccswitch_queue_depth", timeout=20, queue="support")
    time.sleep(1.0)
    younger = caller(phone_factory, node_a, "younger", ANNOUNCEMENT_S + 12.0)
    node_a.wait_metric(1, "ccswitch_queue_depth", timeout=20, queue="support")
    assert node_a.metric("ccswitch_agents", group="inhouse", state="on_call") == 1
    for phone in (first, older, younger):
        assert phone.wait_exit(60) == 0, phone.describe()
    assert alice.wait_exit(10) == 0, alice.describe()

    calls = records(node_a, node_b, count=3)
    assert {c: (r["outcome"], r["agent_id"]) for c, r in calls.items()} == {
        c: ("answered_inhouse", "alice") for c in ("first", "older", "younger")}
    assert calls["older"]["queued_ms"] < calls["younger"]["queued_ms"]
    ordered = sorted(calls.values(), key=lambda r: r["answered_ms"])
    assert [r["caller"] for r in ordered] == ["first", "older", "younger"]
    for before, after in zip(ordered, ordered[1:]):
        assert after["answered_ms"] >= before["ended_ms"]  # never two calls at once
    assert calls["older"]["call_id"] in {r["call_id"] for r in node_b.wait_cdr(1)}


def test_a_killed_nodes_reservation_expires_and_the_agent_serves_the_other_node(
        node_factory: NodeFactory, phone_factory: PhoneFactory,
        redis_server: RedisServer) -> None:
    """Node A dies (SIGKILL) with alice on its call; after hold_ttl her hold is gone and
    node B's caller gets her."""
    agent_port = free_udp_port()
    node_a, node_b = two_nodes(node_factory, redis_server, agent_port, hold_ttl=3)
    alice = phone_factory("--role", "agent", "--port", str(agent_port), "--user", "alice",
                          "--tone", str(AGENT_HZ), "--calls", "2", "--timeout", "60",
                          name="alice")
    doomed = caller(phone_factory, node_a, "doomed", 60.0)
    node_a.wait_metric(1, "ccswitch_agents", timeout=20, group="inhouse", state="on_call")
    node_b.wait_metric(1, "ccswitch_agents", timeout=5, group="inhouse", state="remote")
    node_a.kill()
    killed_at = time.time()
    doomed.stop()
    later = caller(phone_factory, node_b, "later", ANNOUNCEMENT_S + 8.0)
    assert later.wait_exit(40) == 0, later.describe()
    [row] = node_b.wait_cdr(1)
    assert (row["outcome"], row["agent_id"]) == ("answered_inhouse", "alice")
    assert row["answered_ms"] / 1000 - killed_at < 3 + 1 + ANNOUNCEMENT_S + 2.0
    alice.stop()


def test_redis_outage_degrades_routing_then_recovers_without_losing_records(
        node_factory: NodeFactory, phone_factory: PhoneFactory,
        redis_server: RedisServer) -> None:
    """redis-server stops during a call: the call goes on, a new call is still routed on
    local knowledge, ccswitch_state_backend_up is 0; once Redis is back the node is up
    again and the record stream has every call, the outage's included."""
    agent_port = free_udp_port()
    node = node_factory(dialplan({"alice": {"uri": agent_uri("alice", agent_port)}},
                                 wrap_up=0), state=redis_server.url, node="solo", hold_ttl=3)
    alice = phone_factory("--role", "agent", "--port", str(agent_port), "--user", "alice",
                          "--tone", str(AGENT_HZ), "--calls", "2", "--timeout", "60",
                          name="alice")
    during = caller(phone_factory, node, "during", ANNOUNCEMENT_S + 6.0)
    node.wait_metric(1, "ccswitch_agents", timeout=20, group="inhouse", state="on_call")
    redis_server.stop()
    node.wait_metric(0, "ccswitch_state_backend_up", timeout=10)
    assert during.wait_exit(30) == 0, during.describe()
    after = caller(phone_factory, node, "after", ANNOUNCEMENT_S + 3.0)
    assert after.wait_exit(30) == 0, after.describe()
    assert alice.wait_exit(10) == 0, alice.describe()
    assert "state store unreachable" in node.log()
    calls = records(node, count=2)
    assert calls["after"]["outcome"] == "answered_inhouse"

    redis_server.start()
    node.wait_metric(1, "ccswitch_state_backend_up", timeout=15)
    stream = wait_for(lambda: stream_records(redis_server) if len(
        stream_records(redis_server)) >= 2 else None, timeout=10, what="2 streamed records")
    assert sorted(r["caller"] for r in stream) == ["after", "during"]
    assert "replayed 2 spooled call record(s)" in node.log()


def stream_records(server: RedisServer) -> list[dict[str, Any]]:
    entries = server.client().xrange("ccswitch:records")
    return [json.loads(fields[b"record"]) for _, fields in entries]


def test_vendor_max_channels_and_agent_presence_hold_across_nodes(
        node_factory: NodeFactory, phone_factory: PhoneFactory, sipp_factory: SippFactory,
        redis_server: RedisServer) -> None:
    """acme (max_channels 1) has node A's call: node B's caller is not sent there (full)
    but waits; an agent logged in through node A's API is ready on node B too and takes
    B's caller."""
    agent_port, acme_port = free_udp_port(), free_udp_port()
    plan = dialplan({"alice": {"uri": agent_uri("alice", agent_port), "logged_in": False}},
                    wrap_up=0, overflow=[{"no_agents_logged_in": True, "to": ["acme"]}])
    plan["vendors"] = {"acme": {"trunks": [f"sip:overflow@127.0.0.1:{acme_port}"],
                                "max_channels": 1, "probe_interval": 0}}
    node_a, node_b = (node_factory(plan, state=redis_server.url, node=name,
                                   api_token=TOKEN) for name in ("node-a", "node-b"))
    acme = sipp_factory("uas_answer.xml", "-m", "1", "-i", "127.0.0.1", "-p", str(acme_port),
                        "-mp", str(free_udp_port()), "-rtp_echo", "-timeout", "60s",
                        name="acme")
    at_vendor = caller(phone_factory, node_a, "at-vendor", ANNOUNCEMENT_S + 14.0)
    node_a.wait_metric(1, "ccswitch_vendor_channels_in_use", timeout=20, vendor="acme")
    waiting = caller(phone_factory, node_b, "waiting", ANNOUNCEMENT_S + 12.0)
    node_b.wait_metric(1, "ccswitch_overflow_failed_total", timeout=20, vendor="acme",
                       cause="full")
    assert node_b.metric("ccswitch_queue_depth", queue="support") == 1
    alice = phone_factory("--role", "agent", "--port", str(agent_port), "--user", "alice",
                          "--tone", str(AGENT_HZ), "--timeout", "60", name="alice")
    assert node_a.api("POST", "agents/alice/login", TOKEN)[0] == 200
    for phone in (at_vendor, waiting):
        assert phone.wait_exit(40) == 0, phone.describe()
    assert alice.wait_exit(10) == 0, alice.describe()
    assert acme.wait(10) == 0, acme.describe()
    calls = records(node_a, node_b, count=2)
    assert (calls["at-vendor"]["outcome"], calls["at-vendor"]["vendor"]) == (
        "answered_vendor", "acme")
    assert (calls["waiting"]["outcome"], calls["waiting"]["agent_id"]) == (
        "answered_inhouse", "alice")
    states = {a["agent_id"]: a["state"]
              for a in node_b.api("GET", "agents", TOKEN)[1]["agents"]}
    assert states == {"alice": "ready"}


def test_a_node_started_during_a_redis_outage_serves_and_joins_later(
        node_factory: NodeFactory, phone_factory: PhoneFactory,
        redis_server: RedisServer) -> None:
    """Redis is down when the node starts: it starts anyway (degraded) and answers calls;
    once Redis is up it joins: backend up and the agent's presence is in Redis."""
    redis_server.stop()
    agent_port = free_udp_port()
    node = node_factory(dialplan({"alice": {"uri": agent_uri("alice", agent_port)}},
                                 wrap_up=0), state=redis_server.url, node="early", hold_ttl=3)
    assert node.metric("ccswitch_state_backend_up") == 0
    alice = phone_factory("--role", "agent", "--port", str(agent_port), "--user", "alice",
                          "--tone", str(AGENT_HZ), "--timeout", "40", name="alice")
    solo = caller(phone_factory, node, "solo", ANNOUNCEMENT_S + 2.0)
    assert solo.wait_exit(30) == 0, solo.describe()
    assert alice.wait_exit(10) == 0, alice.describe()
    redis_server.start()
    node.wait_metric(1, "ccswitch_state_backend_up", timeout=15)
    assert redis_server.client().hget("ccswitch:presence", "alice") == b"ready"
    wait_for(lambda: len(stream_records(redis_server)) == 1, timeout=10,
             what="the outage's record replayed")


def test_the_cdr_row_and_the_stream_entry_name_the_node(
        node_factory: NodeFactory, phone_factory: PhoneFactory,
        redis_server: RedisServer) -> None:
    """A call's CDR row and its entry in the shared record stream carry the config's node."""
    node = node_factory(dialplan({"alice": {"uri": agent_uri("alice", free_udp_port())}},
                                 wrap_up=0), state=redis_server.url, node="node-x")
    gone = caller(phone_factory, node, "gone", 1.0)
    assert gone.wait_exit(20) == 0, gone.describe()
    [row] = node.wait_cdr(1)
    assert row["node"] == "node-x"
    [entry] = wait_for(lambda: stream_records(redis_server), timeout=10, what="the record")
    assert entry["node"] == "node-x"


def test_records_of_calls_ending_while_redis_is_frozen_are_streamed_once(
        node_factory: NodeFactory, phone_factory: PhoneFactory,
        redis_server: RedisServer) -> None:
    """Three calls end (during their announcement, so no other store call comes first)
    while redis-server is frozen (SIGSTOP): a stream write times out but runs on SIGCONT,
    the records are spooled and replayed, and each call has exactly one stream entry."""
    node = node_factory(dialplan({"alice": {"uri": agent_uri("alice", free_udp_port()),
                                            "logged_in": False}}, wrap_up=0),
                        state=redis_server.url, node="solo")
    callers = [caller(phone_factory, node, f"c{i}", 60.0) for i in range(3)]
    node.wait_metric(3, "ccswitch_active_calls", timeout=20)
    redis_server.freeze()
    try:
        for phone in callers:
            phone.proc.send_signal(signal.SIGTERM)  # all hang up at once
        for phone in callers:
            phone.stop()
        node.wait_metric(0, "ccswitch_state_backend_up", timeout=10)
        node.wait_cdr(3)
    finally:
        redis_server.thaw()
    wait_for(lambda: "spooled call record(s)" in node.log(), timeout=15,
             what="the spool replayed")
    time.sleep(0.5)  # a late duplicate would be in by now
    assert sorted(r["caller"] for r in stream_records(redis_server)) == ["c0", "c1", "c2"]


def test_a_redis_restarted_empty_is_refilled_and_calls_flow_again(
        node_factory: NodeFactory, phone_factory: PhoneFactory,
        redis_server: RedisServer) -> None:
    """redis-server restarts without its data between two heartbeats: both nodes notice
    at their next heartbeat and publish their state again, and node B's caller gets
    alice."""
    agent_port = free_udp_port()
    node_a, node_b = two_nodes(node_factory, redis_server, agent_port, hold_ttl=3)
    alice = phone_factory("--role", "agent", "--port", str(agent_port), "--user", "alice",
                          "--tone", str(AGENT_HZ), "--timeout", "40", name="alice")
    presence = redis_server.client().hget
    wait_for(lambda: presence("ccswitch:presence", "alice") == b"ready", timeout=10)
    redis_server.stop()
    redis_server.start()
    restarted = time.monotonic()
    later = caller(phone_factory, node_b, "later", ANNOUNCEMENT_S + 2.0)
    wait_for(lambda: presence("ccswitch:presence", "alice") == b"ready", timeout=10,
             what="alice's presence published again")
    print(f"presence back {time.monotonic() - restarted:.2f}s after the restart")
    assert later.wait_exit(30) == 0, later.describe()
    assert alice.wait_exit(10) == 0, alice.describe()
    [row] = node_b.wait_cdr(1)
    assert (row["outcome"], row["agent_id"]) == ("answered_inhouse", "alice")
    for node in (node_a, node_b):
        wait_for(lambda: "state store refilled" in node.log(), timeout=5,
                 what="the node resynced")


def test_during_a_redis_outage_another_nodes_agent_is_offered_after_hold_ttl(
        node_factory: NodeFactory, phone_factory: PhoneFactory,
        redis_server: RedisServer) -> None:
    """Redis stops while alice is on node A's call, which then ends: node B, which last
    saw her held by A, frees her hold_ttl later on its own and its caller gets her."""
    agent_port = free_udp_port()
    node_a, node_b = two_nodes(node_factory, redis_server, agent_port, hold_ttl=3)
    alice = phone_factory("--role", "agent", "--port", str(agent_port), "--user", "alice",
                          "--tone", str(AGENT_HZ), "--calls", "2", "--timeout", "60",
                          name="alice")
    first = caller(phone_factory, node_a, "first", 60.0)
    node_a.wait_metric(1, "ccswitch_agents", timeout=20, group="inhouse", state="on_call")
    node_b.wait_metric(1, "ccswitch_agents", timeout=5, group="inhouse", state="remote")
    redis_server.stop()
    stopped = time.monotonic()
    first.stop()  # hangs up: node A frees alice, node B cannot hear of it
    later = caller(phone_factory, node_b, "later", ANNOUNCEMENT_S + 2.0)
    node_b.wait_metric(1, "ccswitch_agents", timeout=15, group="inhouse", state="ready")
    freed = time.monotonic() - stopped
    print(f"alice free on node B {freed:.2f}s after Redis stopped")
    assert freed < 3 + 1 + 1.5  # hold_ttl, one tick, slack
    assert later.wait_exit(30) == 0, later.describe()
    assert alice.wait_exit(10) == 0, alice.describe()
    [row] = node_b.wait_cdr(1)
    assert (row["outcome"], row["agent_id"]) == ("answered_inhouse", "alice")
