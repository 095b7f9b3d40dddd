"""The engine's side of shared state: agents held by other nodes, refused reservations,
vendors full over all nodes."""

from __future__ import annotations

from ccswitch.model import Condition, OverflowRule
from ccswitch.routing import actions as act
from ccswitch.routing import events as ev
from ccswitch.routing.record import Route
from ccswitch.routing.states import AgentState, CallState
from ccswitch.routing.target import Target
from tests.routing.driver import T0, Driver, make_dialplan, make_queue, make_vendor


def test_an_agent_busy_elsewhere_is_not_offered_until_free() -> None:
    """BusyElsewhere parks a ready agent as remote; FreeElsewhere brings it back with the
    other node's idle time and the waiting caller gets it."""
    d = Driver(make_dialplan(("alice",)))
    d.feed(ev.AgentBusyElsewhere(agent_id="alice"))
    assert d.engine.view.agents["alice"].state is AgentState.REMOTE
    d.queued("c1")
    assert d.engine.view.calls["c1"].ringing == ()
    actions = d.feed(ev.AgentFreeElsewhere(agent_id="alice", idle_since=T0 - 5))
    assert act.Ring(call_id="c1", target=Target.agent("alice"), uri="sip:alice@127.0.0.1:5090") \
        in actions
    assert d.engine.view.to_dict()["agents"]["alice"]["idle_since"] == T0 - 5


def test_a_refused_reservation_withdraws_the_offer_without_a_miss() -> None:
    """AgentTaken: CANCEL, no miss counted, the agent is remote and the next agent rings."""
    d = Driver(make_dialplan(("alice", "bob")))
    d.queued("c1")
    actions = d.feed(ev.AgentTaken(call_id="c1", agent_id="alice"))
    assert actions[0] == act.Cancel(call_id="c1", target=Target.agent("alice"))
    assert d.engine.view.agents["alice"].state is AgentState.REMOTE
    assert d.engine.view.to_dict()["agents"]["alice"]["misses"] == 0
    assert d.engine.view.calls["c1"].ringing == ("bob",)


def test_a_pause_for_a_remote_agent_applies_when_it_is_freed() -> None:
    """Pause while another node holds the agent: remembered, applied on FreeElsewhere."""
    d = Driver(make_dialplan(("alice",)))
    d.feed(ev.AgentBusyElsewhere(agent_id="alice"))
    d.feed(ev.AgentPause(agent_id="alice"))
    assert d.engine.view.agents["alice"].state is AgentState.REMOTE
    d.feed(ev.AgentFreeElsewhere(agent_id="alice"))
    assert d.engine.view.agents["alice"].state is AgentState.NOT_READY


def test_busy_elsewhere_does_not_touch_an_agent_busy_here() -> None:
    """Our own hold's BUSY echo (or a stale one) leaves a reserved agent alone."""
    d = Driver(make_dialplan(("alice",)))
    d.queued("c1")
    d.feed(ev.AgentBusyElsewhere(agent_id="alice"))
    assert d.engine.view.agents["alice"].state is AgentState.RESERVED


def test_vendor_full_everywhere_tries_the_next_vendor_with_the_record_unchanged() -> None:
    """VendorFull: the vendor is cancelled before any offer, noted full, the next vendor
    of the rule is tried; with none left the caller waits and the record is in-house."""
    rule = OverflowRule(condition=Condition.NO_AGENTS_LOGGED_IN, vendors=("acme", "globex"))
    d = Driver(make_dialplan(("alice",), logged_out=("alice",),
                             vendors=(make_vendor("acme"), make_vendor("globex")),
                             queues=[make_queue(overflow=(rule,))]))
    d.queued("c1")
    actions = d.feed(ev.VendorFull(call_id="c1", vendor="acme"))
    assert act.OverflowUnavailable(call_id="c1", queue="support", vendor="acme",
                                   cause="full") in actions
    assert [a.target.id for a in d.rung("c1")] == ["acme", "globex"]
    d.feed(ev.VendorFull(call_id="c1", vendor="globex"))
    record = d.engine.view.calls["c1"].record
    assert d.engine.view.calls["c1"].state is CallState.QUEUED
    assert (record.route, record.vendor, record.overflow_reason, record.offers) == (
        Route.INHOUSE, None, None, ())
    assert d.engine.view.vendors["acme"].in_use == 0


def test_waiting_lists_queued_calls_and_the_view_shows_agent_groups() -> None:
    """waiting(): queued, not ringing, with queue entry time; an agent's groups are shown."""
    d = Driver(make_dialplan(("alice",), logged_out=("alice",),
                             groups={"g1": ("alice",), "g2": ()},
                             queues=[make_queue("q1", "g1"), make_queue("q2", "g2")]))
    d.queued("c1", queue="q1")
    d.advance(2)
    d.queued("c2", queue="q2")
    assert d.engine.view.waiting() == [("q1", "c1", T0), ("q2", "c2", T0 + 2)]
    assert d.engine.view.agents["alice"].groups == ("g1",)
