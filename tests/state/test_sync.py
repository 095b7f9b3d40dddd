"""The node's side of the shared state (SharedState) over the embedded store, with a real
routing engine on the real reactor; no SIP (the engine's actions are not carried out)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import pytest_twisted
from twisted.internet import reactor, task

from ccswitch.metrics.registry import Metrics
from ccswitch.routing import events as ev
from ccswitch.routing.engine import RoutingEngine
from ccswitch.state.embedded import EmbeddedState
from ccswitch.state.sync import SharedState
from tests.routing.driver import make_dialplan

TTL = 0.3  # hold_ttl: the node ticks every 0.1 s
PRESENCE = {"alice": "ready", "bob": "logged_out"}


def until(check: Callable[[], bool], timeout: float = 2.0) -> Iterator[Any]:
    """(in an inlineCallbacks test, with ``yield from``) let the reactor run until
    ``check()``; fails after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not true after {timeout}s"
        yield task.deferLater(reactor, 0.05, lambda: None)


@pytest.fixture
def center(tmp_path: Path) -> Iterator[tuple[EmbeddedState, SharedState]]:
    """Node A (alice logged in, bob out) sharing an embedded store, started."""
    state = EmbeddedState(reactor)
    engine = RoutingEngine(make_dialplan(("alice", "bob"), logged_out=("bob",)),
                           clock=reactor)

    def feed(event: ev.Event) -> None:
        engine.handle(event)

    feed(ev.NodeStarted())
    shared = SharedState(store=state.view("A"), engine=engine, feed=feed, reactor=reactor,
                         metrics=Metrics(), spool=tmp_path / "spool.jsonl", hold_ttl=TTL)
    shared.start()
    try:
        yield state, shared
    finally:
        shared.stop()


@pytest_twisted.inlineCallbacks
def test_a_started_node_publishes_its_agents_presence(
        center: tuple[EmbeddedState, SharedState]) -> Iterator[Any]:
    """At start the store gets every agent's presence from the node."""
    state, _ = center
    observer = state.view("X")
    yield from until(lambda: observer.presences() == PRESENCE)


@pytest_twisted.inlineCallbacks
def test_after_a_loss_of_data_the_node_publishes_its_presence_again(
        center: tuple[EmbeddedState, SharedState]) -> Iterator[Any]:
    """The store forgets everything: at its next heartbeat the node resyncs and every
    agent's presence is back, though the node had pushed it all before."""
    state, shared = center
    observer = state.view("X")
    yield from until(lambda: observer.presences() == PRESENCE)
    state.lose_data()
    yield from until(lambda: observer.presences() == PRESENCE)
    assert shared.up


def test_a_spooled_line_that_is_not_a_record_is_dropped_and_the_rest_replayed(
        tmp_path: Path) -> None:
    """A torn or foreign spool line is logged and dropped at start; the records around it
    reach the stream in order and the spool is emptied."""
    spool = tmp_path / "spool.jsonl"
    spool.write_text('{"call_id": "c1"}\n{"call_id": "c2", "tor\n[1, 2]\n{"n": 3}\n'
                     '{"call_id": "c3"}\n', encoding="utf-8")
    state = EmbeddedState(reactor)
    engine = RoutingEngine(make_dialplan(("alice",)), clock=reactor)
    shared = SharedState(store=state.view("A"), engine=engine, feed=engine.handle,
                         reactor=reactor, metrics=Metrics(), spool=spool, hold_ttl=TTL)
    shared.start()
    try:
        assert [r["call_id"] for r in state.records()] == ["c1", "c3"]
        assert spool.read_text(encoding="utf-8") == ""
    finally:
        shared.stop()


def test_an_unreadable_spool_is_logged_and_the_node_joins(tmp_path: Path) -> None:
    """A spool that cannot be read (here a directory) does not stop the node's start: it
    joins the shared state and publishes its presence."""
    spool = tmp_path / "spool.jsonl"
    spool.mkdir()
    state = EmbeddedState(reactor)
    engine = RoutingEngine(make_dialplan(("alice",)), clock=reactor)
    shared = SharedState(store=state.view("A"), engine=engine, feed=engine.handle,
                         reactor=reactor, metrics=Metrics(), spool=spool, hold_ttl=TTL)
    shared.start()
    try:
        assert shared.up
        assert state.view("A").heartbeat(TTL) is True  # resynced
    finally:
        shared.stop()
