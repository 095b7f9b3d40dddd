"""The state store's behaviour, the same tests against both implementations.

``center`` gives ``make(node) -> StateStore`` over one shared center: views of one
EmbeddedState on a task.Clock, or RedisStores on a real redis-server started for the
session on a free 127.0.0.1 port (no persistence, a temp dir). TTLs are short and real
on Redis (``expire`` sleeps) and advanced on the Clock for the embedded store.
The Redis half skips when redis-server is missing, unless CCSWITCH_REQUIRE_TOOLS is set.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from twisted.internet import task

from ccswitch.state.embedded import EmbeddedState, EmbeddedStore
from ccswitch.state.redis_store import RedisStore
from ccswitch.state.redis_url import StateUrlError
from tests.phones.client import free_tcp_port
from tests.redisd import RedisServer
from ccswitch.state.store import (
    EventKind, Grant, StateStore, StoreEvent, StoreUnavailable, Waiting,
)

LONG = 30.0  # a TTL that does not run out during a test
SHORT = 0.3  # a TTL that does
PAST = 0.45  # long enough after SHORT
MAXLEN = 5  # record stream bound in tests
Q = ["q"]


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A real redis-server for the session (skipped if missing and not required)."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    try:
        yield server
    finally:
        server.stop()


_prefixes = itertools.count()


class Center:
    """One center shared by the stores ``make`` returns."""

    def __init__(self, kind: str, make: Callable[[str], StateStore],
                 expire: Callable[[float], None], lose_data: Callable[[], None]) -> None:
        self.kind = kind
        self.make = make
        self.expire = expire
        self.lose_data = lose_data  # everything gone, as in a Redis restarted empty
        self.stores: list[StateStore] = []

    def node(self, name: str, ttl: float = LONG) -> StateStore:
        """A store for node ``name``, alive for ``ttl``."""
        store = self.make(name)
        self.stores.append(store)
        store.heartbeat(ttl)
        return store

    def wait_for(self, predicate: Callable[[], bool]) -> bool:
        """Embedded events are synchronous; Redis ones arrive within 2 s."""
        if self.kind == "embedded":
            return predicate()
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.01)
        return predicate()


@pytest.fixture(params=["embedded", "redis"])
def center(request: pytest.FixtureRequest) -> Iterator[Center]:
    """A factory of node stores over one center, for each implementation."""
    if request.param == "embedded":
        clock = task.Clock()
        state = EmbeddedState(clock, record_maxlen=MAXLEN)
        c = Center("embedded", state.view, clock.advance, state.lose_data)
    else:
        server: RedisServer = request.getfixturevalue("redis_server")
        prefix = f"t{next(_prefixes)}-{os.getpid()}:"

        def make(node: str) -> StateStore:
            return RedisStore.from_url(server.url, node=node, prefix=prefix,
                                       stream_maxlen=MAXLEN)
        def lose_data() -> None:
            client = server.client()
            for key in client.scan_iter(match=f"{prefix}*"):
                client.delete(key)
        c = Center("redis", make, time.sleep, lose_data)
    try:
        yield c
    finally:
        for store in c.stores:
            store.close()


def ready(store: StateStore, *agents: str) -> None:
    for agent in agents:
        store.set_presence(agent, "ready")


def records_of(store: StateStore) -> list[dict[str, Any]]:
    """The record stream (``records()`` is on both implementations, not the Protocol)."""
    assert isinstance(store, (RedisStore, EmbeddedStore))
    return store.records()


# -- reservations ---------------------------------------------------------------

def test_two_nodes_reserving_one_agent_one_wins(center: Center) -> None:
    """The first reservation is GRANTED; the other node gets BUSY naming the holder."""
    a, b = center.node("A"), center.node("B")
    ready(a, "alice")
    assert a.reserve("alice", "a1", "q", Q, LONG).grant is Grant.GRANTED
    got = b.reserve("alice", "b1", "q", Q, LONG)
    assert (got.grant, got.holder) == (Grant.BUSY, "A/a1")
    assert b.holders() == {"alice": "A/a1"}


def test_concurrent_reservations_grant_exactly_one(center: Center) -> None:
    """Eight nodes racing for one agent from eight threads: exactly one GRANTED."""
    stores = [center.node(f"N{i}") for i in range(8)]
    ready(stores[0], "alice")
    barrier = threading.Barrier(len(stores), timeout=5)
    grants: list[Grant] = []

    def go(i: int) -> None:
        barrier.wait()
        grants.append(stores[i].reserve("alice", f"c{i}", "q", Q, LONG).grant)
    threads = [threading.Thread(target=go, args=(i,)) for i in range(len(stores))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=5)
    assert sorted(grants) == sorted([Grant.GRANTED] + [Grant.BUSY] * 7)


def test_release_tells_other_nodes_and_frees_the_agent(center: Center) -> None:
    """After A releases, B's subscriber sees FREE (node A, idle_since) and B can reserve."""
    a, b = center.node("A"), center.node("B")
    seen: list[StoreEvent] = []
    b.subscribe(seen.append)
    ready(a, "alice")
    assert a.reserve("alice", "a1", "q", Q, LONG).grant is Grant.GRANTED
    a.release("alice", "a1", 123.25)
    assert center.wait_for(lambda: any(e.kind is EventKind.FREE for e in seen))
    free = [e for e in seen if e.kind is EventKind.FREE]
    assert [(e.agent, e.node, e.idle_since) for e in free] == [("alice", "A", 123.25)]
    assert b.reserve("alice", "b1", "q", Q, LONG).grant is Grant.GRANTED


def test_reserve_tells_other_nodes_busy(center: Center) -> None:
    """A grant is announced to every node as BUSY from the reserving node."""
    a, b = center.node("A"), center.node("B")
    seen: list[StoreEvent] = []
    b.subscribe(seen.append)
    ready(a, "alice")
    a.reserve("alice", "a1", "q", Q, LONG)
    assert center.wait_for(lambda: any(e.kind is EventKind.BUSY for e in seen))
    assert [(e.agent, e.node) for e in seen if e.kind is EventKind.BUSY] == [("alice", "A")]


def test_release_by_another_call_changes_nothing(center: Center) -> None:
    """Releasing with a call (or node) that does not hold the agent leaves the hold."""
    a, b = center.node("A"), center.node("B")
    ready(a, "alice")
    a.reserve("alice", "a1", "q", Q, LONG)
    a.release("alice", "other", 1.0)
    b.release("alice", "a1", 1.0)
    assert a.holders() == {"alice": "A/a1"}


def test_a_dead_nodes_hold_expires(center: Center) -> None:
    """A hold that is not refreshed ends after its TTL; another node then gets GRANTED."""
    a, b = center.node("A"), center.node("B")
    ready(a, "alice")
    assert a.reserve("alice", "a1", "q", Q, SHORT).grant is Grant.GRANTED
    center.expire(PAST)
    assert b.holders() == {}
    assert b.reserve("alice", "b1", "q", Q, LONG).grant is Grant.GRANTED


def test_refresh_keeps_the_hold(center: Center) -> None:
    """Refreshing before the TTL runs out keeps the agent held past the first TTL."""
    a, b = center.node("A"), center.node("B")
    ready(a, "alice")
    a.reserve("alice", "a1", "q", Q, 0.4)
    center.expire(0.25)
    assert a.refresh("alice", "a1", 0.4) is True
    center.expire(0.25)
    assert b.reserve("alice", "b1", "q", Q, LONG).grant is Grant.BUSY


def test_refresh_of_a_hold_not_ours_is_false(center: Center) -> None:
    """refresh is False for another call, another node, or an expired hold."""
    a, b = center.node("A"), center.node("B")
    ready(a, "alice")
    a.reserve("alice", "a1", "q", Q, SHORT)
    assert a.refresh("alice", "a2", LONG) is False
    assert b.refresh("alice", "a1", LONG) is False
    center.expire(PAST)
    assert a.refresh("alice", "a1", LONG) is False


def test_reserve_of_a_not_ready_agent(center: Center) -> None:
    """A not_ready, logged_out or never-set presence gives NOT_READY, even when free."""
    a = center.node("A")
    a.set_presence("alice", "not_ready")
    a.set_presence("bob", "logged_out")
    for agent in ("alice", "bob", "carol"):
        assert a.reserve(agent, "a1", "q", Q, LONG).grant is Grant.NOT_READY
    assert a.holders() == {}


# -- global queue order ---------------------------------------------------------

def test_an_older_caller_on_another_node_goes_first(center: Center) -> None:
    """A's caller (t=10) is refused naming B's (t=5); B's is GRANTED."""
    a, b = center.node("A"), center.node("B")
    ready(a, "alice")
    a.enqueue("q", "a1", 10.0)
    b.enqueue("q", "b1", 5.0)
    got = a.reserve("alice", "a1", "q", Q, LONG)
    assert (got.grant, got.older) == (Grant.OLDER_CALLER, "B/b1")
    assert b.reserve("alice", "b1", "q", Q, LONG).grant is Grant.GRANTED


def test_the_oldest_of_several_queues_is_named(center: Center) -> None:
    """Across the agent's queues the oldest live caller is the one named."""
    a, b, c = center.node("A"), center.node("B"), center.node("C")
    ready(a, "alice")
    a.enqueue("q1", "a1", 10.0)
    b.enqueue("q2", "b1", 7.0)
    c.enqueue("q1", "c1", 3.0)
    got = a.reserve("alice", "a1", "q1", ["q1", "q2"], LONG)
    assert (got.grant, got.older) == (Grant.OLDER_CALLER, "C/c1")


def test_equal_times_are_ordered_by_call_id(center: Center) -> None:
    """Callers queued at the same time go by call id."""
    a, b = center.node("A"), center.node("B")
    ready(a, "alice")
    a.enqueue("q", "x2", 5.0)
    b.enqueue("q", "x1", 5.0)
    got = a.reserve("alice", "x2", "q", Q, LONG)
    assert (got.grant, got.older) == (Grant.OLDER_CALLER, "B/x1")
    assert b.reserve("alice", "x1", "q", Q, LONG).grant is Grant.GRANTED


def test_a_granted_call_stops_waiting(center: Center) -> None:
    """After B's call is granted (and released) it no longer blocks A's newer caller."""
    a, b = center.node("A"), center.node("B")
    ready(a, "alice")
    a.enqueue("q", "a1", 10.0)
    b.enqueue("q", "b1", 5.0)
    b.reserve("alice", "b1", "q", Q, LONG)
    b.release("alice", "b1", 20.0)
    assert a.reserve("alice", "a1", "q", Q, LONG).grant is Grant.GRANTED


def test_an_older_caller_on_a_dead_node_does_not_block(center: Center) -> None:
    """Once B's liveness ran out, its older caller no longer holds A's back."""
    a, b = center.node("A"), center.node("B", ttl=SHORT)
    ready(a, "alice")
    a.enqueue("q", "a1", 10.0)
    b.enqueue("q", "b1", 5.0)
    center.expire(PAST)
    a.heartbeat(LONG)
    assert a.reserve("alice", "a1", "q", Q, LONG).grant is Grant.GRANTED


def test_a_dead_nodes_waiting_callers_are_removed_when_met(center: Center) -> None:
    """A dead node's caller met by a reservation is gone even when the node comes back."""
    a, b = center.node("A"), center.node("B", ttl=SHORT)
    ready(a, "alice", "bob")
    a.enqueue("q", "a1", 10.0)
    b.enqueue("q", "b1", 5.0)
    center.expire(PAST)
    a.heartbeat(LONG)
    a.reserve("alice", "a1", "q", Q, LONG)
    b.heartbeat(LONG)
    a.enqueue("q", "a2", 20.0)
    assert a.reserve("bob", "a2", "q", Q, LONG).grant is Grant.GRANTED


def test_a_caller_in_a_queue_the_agent_does_not_serve_does_not_block(
        center: Center) -> None:
    """B's older caller in q2 does not hold back A's caller for an agent of q1 only."""
    a, b = center.node("A"), center.node("B")
    ready(a, "alice")
    a.enqueue("q1", "a1", 10.0)
    b.enqueue("q2", "b1", 5.0)
    assert a.reserve("alice", "a1", "q1", ["q1"], LONG).grant is Grant.GRANTED


def test_dequeue_removes_the_caller(center: Center) -> None:
    """A dequeued older caller no longer blocks; dequeue twice is harmless."""
    a, b = center.node("A"), center.node("B")
    ready(a, "alice")
    a.enqueue("q", "a1", 10.0)
    b.enqueue("q", "b1", 5.0)
    b.dequeue("q", "b1")
    b.dequeue("q", "b1")
    assert a.reserve("alice", "a1", "q", Q, LONG).grant is Grant.GRANTED


def test_a_call_not_waiting_is_behind_every_waiting_caller(center: Center) -> None:
    """Reserving for a call that is not enqueued is refused while anyone waits."""
    a, b = center.node("A"), center.node("B")
    ready(a, "alice")
    b.enqueue("q", "b1", 500.0)
    got = a.reserve("alice", "a1", "q", Q, LONG)
    assert (got.grant, got.older) == (Grant.OLDER_CALLER, "B/b1")


# -- presence -------------------------------------------------------------------

def test_presence_set_on_one_node_is_seen_by_another(center: Center) -> None:
    """B reads A's presence change and its subscriber gets a PRESENCE event."""
    a, b = center.node("A"), center.node("B")
    seen: list[StoreEvent] = []
    b.subscribe(seen.append)
    a.set_presence("alice", "not_ready")
    assert b.presences() == {"alice": "not_ready"}
    assert center.wait_for(lambda: len(seen) >= 1)
    assert [(e.kind, e.agent, e.node, e.presence) for e in seen] == [
        (EventKind.PRESENCE, "alice", "A", "not_ready")]


def test_a_closed_subscription_gets_no_more_events(center: Center) -> None:
    """After close, the callback is not called again."""
    a, b = center.node("A"), center.node("B")
    seen: list[StoreEvent] = []
    watch: list[StoreEvent] = []
    b.subscribe(watch.append)
    sub = b.subscribe(seen.append)
    sub.close()
    a.set_presence("alice", "ready")
    assert center.wait_for(lambda: len(watch) == 1)
    assert seen == []


def test_a_failing_subscriber_keeps_getting_events(center: Center) -> None:
    """A callback that raises is logged; it and the other subscribers keep receiving."""
    a, b = center.node("A"), center.node("B")
    calls: list[StoreEvent] = []
    seen: list[StoreEvent] = []

    def boom(event: StoreEvent) -> None:
        calls.append(event)
        raise RuntimeError("subscriber bug")
    b.subscribe(boom)
    b.subscribe(seen.append)
    a.set_presence("alice", "ready")
    a.set_presence("alice", "not_ready")
    assert center.wait_for(lambda: len(calls) == 2 and len(seen) == 2)
    assert [e.presence for e in calls] == ["ready", "not_ready"]


def test_an_unknown_presence_is_refused(center: Center) -> None:
    """set_presence rejects a value outside PRESENCES and changes nothing."""
    a = center.node("A")
    with pytest.raises(ValueError):
        a.set_presence("alice", "dancing")
    assert a.presences() == {}


# -- vendor channels ------------------------------------------------------------

def test_vendor_channels_are_limited_across_nodes(center: Center) -> None:
    """max 2: one channel on A and one on B, then neither node gets a third."""
    a, b = center.node("A"), center.node("B")
    assert a.acquire_channel("telco", "a1", 2) is True
    assert b.acquire_channel("telco", "b1", 2) is True
    assert a.acquire_channel("telco", "a2", 2) is False
    assert b.acquire_channel("telco", "b2", 2) is False
    assert a.channels_in_use("telco") == 2


def test_releasing_a_channel_frees_it(center: Center) -> None:
    """After B releases its channel, A gets one."""
    a, b = center.node("A"), center.node("B")
    a.acquire_channel("telco", "a1", 2)
    b.acquire_channel("telco", "b1", 2)
    b.release_channel("telco", "b1")
    b.release_channel("telco", "b1")
    assert a.acquire_channel("telco", "a2", 2) is True
    assert b.channels_in_use("telco") == 2


def test_acquire_is_idempotent_per_call(center: Center) -> None:
    """The same call acquiring twice holds one channel, and keeps it even at the max."""
    a = center.node("A")
    assert a.acquire_channel("telco", "a1", 1) is True
    assert a.acquire_channel("telco", "a1", 1) is True
    assert a.channels_in_use("telco") == 1
    assert a.acquire_channel("other", "a1", 1) is True


def test_a_dead_nodes_channels_stop_counting(center: Center) -> None:
    """B's channels count while B is live, and not once its liveness ran out."""
    a, b = center.node("A"), center.node("B", ttl=SHORT)
    b.acquire_channel("telco", "b1", 2)
    b.acquire_channel("telco", "b2", 2)
    assert a.acquire_channel("telco", "a1", 2) is False
    center.expire(PAST)
    a.heartbeat(LONG)
    assert a.acquire_channel("telco", "a1", 2) is True
    assert a.channels_in_use("telco") == 1


# -- records --------------------------------------------------------------------

def test_the_record_stream_is_bounded(center: Center) -> None:
    """Only the newest MAXLEN records are kept, oldest first."""
    a, b = center.node("A"), center.node("B")
    for i in range(12):
        (a if i % 2 else b).append_record({"call_id": f"c{i}", "n": i, "cost": 0.5})
    assert records_of(a) == [{"call_id": f"c{i}", "n": i, "cost": 0.5}
                             for i in range(12 - MAXLEN, 12)]


def test_a_record_appended_twice_is_in_the_stream_once(center: Center) -> None:
    """A replay of a call's record adds nothing; another node's record of the same call id
    is its own."""
    a, b = center.node("A"), center.node("B")
    a.append_record({"call_id": "c1", "n": 1})
    a.append_record({"call_id": "c1", "n": 1})
    b.append_record({"call_id": "c1", "n": 2})
    assert records_of(a) == [{"call_id": "c1", "n": 1}, {"call_id": "c1", "n": 2}]


def test_a_record_without_a_call_id_is_refused(center: Center) -> None:
    """append_record names the missing call_id and appends nothing."""
    a = center.node("A")
    with pytest.raises(ValueError, match="call_id"):
        a.append_record({"n": 1})
    assert records_of(a) == []


# -- resync ---------------------------------------------------------------------

def test_heartbeat_is_false_until_the_node_resyncs(center: Center) -> None:
    """A node that never resynced is told to; after its resync the heartbeat is True."""
    a = center.node("A")
    assert a.heartbeat(LONG) is False
    a.resync(waiting=[], holds={}, channels={})
    assert a.heartbeat(LONG) is True


def test_a_loss_of_data_is_seen_by_every_nodes_next_heartbeat(center: Center) -> None:
    """Once the store lost its data each node's heartbeat is False until it resyncs."""
    a, b = center.node("A"), center.node("B")
    for store in (a, b):
        store.resync(waiting=[], holds={}, channels={})
    center.lose_data()
    assert (a.heartbeat(LONG), b.heartbeat(LONG)) == (False, False)
    a.resync(waiting=[], holds={}, channels={})
    assert (a.heartbeat(LONG), b.heartbeat(LONG)) == (True, False)


def test_resync_replaces_this_nodes_waiting_callers(center: Center) -> None:
    """A's old caller is gone, its new one waits; B's caller is untouched."""
    a, b, c = center.node("A"), center.node("B"), center.node("C")
    ready(a, "alice")
    a.enqueue("q1", "a1", 1.0)
    b.enqueue("q1", "b1", 5.0)
    a.resync(waiting=[Waiting(queue="q2", call="a9", queued_at=3.0)], holds={}, channels={})
    c.enqueue("q1", "c1", 100.0)
    assert c.reserve("alice", "c1", "q1", ["q1", "q2"], LONG).older == "A/a9"
    a.dequeue("q2", "a9")
    assert c.reserve("alice", "c1", "q1", ["q1", "q2"], LONG).older == "B/b1"


def test_resync_replaces_this_nodes_holds(center: Center) -> None:
    """A's old hold ends, the resynced one exists; B's hold is untouched."""
    a, b = center.node("A"), center.node("B")
    ready(a, "alice", "bob", "carol")
    a.reserve("alice", "a1", "q", Q, LONG)
    b.reserve("bob", "b1", "q", Q, LONG)
    a.resync(waiting=[], holds={"carol": "a9"}, channels={})
    assert b.holders() == {"bob": "B/b1", "carol": "A/a9"}
    assert a.refresh("carol", "a9", LONG) is True


def test_resync_does_not_take_an_agent_another_node_holds(center: Center) -> None:
    """A resynced hold on an agent B holds now is dropped; B keeps it."""
    a, b = center.node("A"), center.node("B")
    ready(a, "alice")
    b.reserve("alice", "b1", "q", Q, LONG)
    a.resync(waiting=[], holds={"alice": "a1"}, channels={})
    assert a.holders() == {"alice": "B/b1"}


def test_resync_replaces_this_nodes_channels(center: Center) -> None:
    """A's two channels become one; B's channel still counts."""
    a, b = center.node("A"), center.node("B")
    a.acquire_channel("telco", "a1", 5)
    a.acquire_channel("telco", "a2", 5)
    a.acquire_channel("other", "a3", 5)
    b.acquire_channel("telco", "b1", 5)
    a.resync(waiting=[], holds={}, channels={"telco": ["a9"]})
    assert (a.channels_in_use("telco"), a.channels_in_use("other")) == (2, 0)
    assert a.acquire_channel("telco", "a9", 2) is True
    assert a.acquire_channel("telco", "a4", 2) is False


# -- Redis only -----------------------------------------------------------------

def _calls(store: StateStore) -> dict[str, Callable[[], object]]:
    return {
        "ping": store.ping,
        "heartbeat": lambda: store.heartbeat(LONG),
        "set_presence": lambda: store.set_presence("alice", "ready"),
        "presences": store.presences,
        "enqueue": lambda: store.enqueue("q", "a1", 1.0),
        "dequeue": lambda: store.dequeue("q", "a1"),
        "reserve": lambda: store.reserve("alice", "a1", "q", Q, LONG),
        "refresh": lambda: store.refresh("alice", "a1", LONG),
        "release": lambda: store.release("alice", "a1", 1.0),
        "holders": store.holders,
        "acquire_channel": lambda: store.acquire_channel("telco", "a1", 2),
        "release_channel": lambda: store.release_channel("telco", "a1"),
        "channels_in_use": lambda: store.channels_in_use("telco"),
        "append_record": lambda: store.append_record({"call_id": "a1"}),
        "resync": lambda: store.resync(waiting=[], holds={}, channels={}),
        "subscribe": lambda: store.subscribe(lambda e: None),
    }


def test_every_method_on_a_stopped_redis_raises_store_unavailable(
        redis_server: RedisServer) -> None:
    """With redis-server down each method raises StoreUnavailable; after a restart the
    same store works again."""
    store = RedisStore.from_url(redis_server.url, node="A", prefix="down:")
    try:
        store.ping()
        redis_server.stop()
        try:
            not_raised = []
            for name, call in _calls(store).items():
                try:
                    call()
                    not_raised.append(name)
                except StoreUnavailable as e:
                    assert "redis" in str(e) and name.split("_")[0] in str(e)
        finally:
            redis_server.start()
        assert not_raised == []
        store.set_presence("alice", "ready")
        assert store.presences() == {"alice": "ready"}
    finally:
        store.close()


def test_a_record_written_during_a_freeze_and_replayed_is_streamed_once(
        redis_server: RedisServer) -> None:
    """Redis frozen (SIGSTOP): the append times out but runs on SIGCONT; the replay of the
    same record (from the node's spool) then adds nothing."""
    store = RedisStore.from_url(redis_server.url, node="A", prefix="freeze:",
                                socket_timeout=0.3)
    try:
        store.ping()
        redis_server.freeze()
        try:
            with pytest.raises(StoreUnavailable):
                store.append_record({"call_id": "c1"})
        finally:
            redis_server.thaw()
        store.append_record({"call_id": "c1"})
        assert store.records() == [{"call_id": "c1"}]
    finally:
        store.close()


def test_a_redis_restarted_empty_is_seen_by_the_next_heartbeat(
        redis_server: RedisServer) -> None:
    """redis-server restarted without persistence: the next heartbeat is False."""
    store = RedisStore.from_url(redis_server.url, node="A", prefix="empty:")
    try:
        store.resync(waiting=[], holds={}, channels={})
        assert store.heartbeat(LONG) is True
        redis_server.stop()
        redis_server.start()
        assert store.heartbeat(LONG) is False
    finally:
        store.close()


def test_close_stops_the_event_threads(redis_server: RedisServer) -> None:
    """close() ends every subscription's thread; its callback is not called again."""
    store = RedisStore.from_url(redis_server.url, node="A", prefix="close:")
    other = RedisStore.from_url(redis_server.url, node="B", prefix="close:")
    seen: list[StoreEvent] = []
    try:
        store.subscribe(seen.append)
        store.subscribe(seen.append)
        names = {t.name for t in threading.enumerate()}
        assert "ccswitch-state-events-A" in names
        store.close()
        assert all(t.name != "ccswitch-state-events-A" for t in threading.enumerate())
        other.set_presence("alice", "ready")
        time.sleep(0.1)
        assert seen == []
    finally:
        other.close()


def test_a_subscription_survives_a_redis_restart(redis_server: RedisServer) -> None:
    """The event thread reconnects after Redis comes back and keeps delivering."""
    a = RedisStore.from_url(redis_server.url, node="A", prefix="restart:")
    b = RedisStore.from_url(redis_server.url, node="B", prefix="restart:")
    seen: list[StoreEvent] = []
    try:
        b.subscribe(seen.append)
        redis_server.stop()
        time.sleep(0.3)
        redis_server.start()
        deadline = time.monotonic() + 5.0
        while not seen and time.monotonic() < deadline:
            a.set_presence("alice", "ready")
            time.sleep(0.1)
        assert seen and seen[0].agent == "alice"
    finally:
        a.close()
        b.close()


def test_an_unreachable_sentinel_is_store_unavailable() -> None:
    """A sentinel URL builds a store without connecting; using it raises StoreUnavailable."""
    store = RedisStore.from_url(f"redis+sentinel://127.0.0.1:{free_tcp_port()}/mymaster",
                                node="A", socket_timeout=0.2)
    try:
        with pytest.raises(StoreUnavailable, match="sentinel"):
            store.ping()
    finally:
        store.close()


def test_an_unknown_url_scheme_is_refused() -> None:
    """Only redis, rediss, unix and redis+sentinel URLs are accepted."""
    with pytest.raises(StateUrlError):
        RedisStore.from_url("memcached://127.0.0.1:11211", node="A")
