"""Reservations with shared state: the engine reserves before it rings and decides what a
refusal means (reservations=True)."""

from __future__ import annotations

from ccswitch.model import Condition, OverflowRule
from ccswitch.routing import actions as act
from ccswitch.routing.states import AgentState
from ccswitch.routing.target import Target
from tests.routing.driver import Driver, make_dialplan, make_queue, make_vendor, uri

ALICE, BOB, ACME = Target.agent("alice"), Target.agent("bob"), Target.vendor("acme")


def of(kind: type[act.Action], actions: list[act.Action]) -> list[act.Action]:
    return [a for a in actions if isinstance(a, kind)]


def reserving_driver() -> Driver:
    return Driver(make_dialplan(("alice", "bob")), reservations=True)


def test_an_offer_is_reserved_not_rung() -> None:
    """With shared state the engine asks for a reservation where it would ring."""
    d = reserving_driver()
    actions = d.queued("c1")
    assert of(act.Reserve, actions) == [act.Reserve(call_id="c1", target=ALICE)]
    assert of(act.Ring, actions) == []
    assert d.engine.view.calls["c1"].ringing == ("alice",)


def test_a_granted_reservation_rings() -> None:
    """ReservationDecided granted: the Ring the engine kept goes out now."""
    d = reserving_driver()
    d.queued("c1")
    assert d.decide("c1", ALICE, True) == [
        act.Ring(call_id="c1", target=ALICE, uri=uri("alice"))]


def test_a_refused_reservation_offers_the_next_agent_without_a_miss() -> None:
    """Refused: the offer is withdrawn as AgentTaken does, and the next agent is reserved."""
    d = reserving_driver()
    d.queued("c1")
    actions = d.decide("c1", ALICE, False)
    assert act.Cancel(call_id="c1", target=ALICE) in actions
    assert of(act.Reserve, actions) == [act.Reserve(call_id="c1", target=BOB)]
    assert d.engine.view.agents["alice"].state is AgentState.REMOTE
    assert d.engine.view.to_dict()["agents"]["alice"]["misses"] == 0


def test_a_decision_after_the_caller_left_does_nothing() -> None:
    """A reservation answered after the call ended is ignored (no error, no Ring)."""
    d = reserving_driver()
    d.queued("c1")
    d.caller_hangup("c1")
    assert d.decide("c1", ALICE, True) == []


def test_a_decision_for_a_withdrawn_offer_does_nothing() -> None:
    """An offer cancelled while reserving (ring timeout) is not rung when the grant comes."""
    d = reserving_driver()
    d.queued("c1")
    d.advance(15)  # the ring timeout withdraws alice's offer
    assert d.decide("c1", ALICE, True) == []


def test_without_shared_state_the_engine_rings_at_once() -> None:
    """reservations=False (the default): Ring, never Reserve."""
    d = Driver(make_dialplan(("alice", "bob")))
    actions = d.queued("c1")
    assert of(act.Reserve, actions) == [] and len(of(act.Ring, actions)) == 1


def vendor_driver() -> Driver:
    rule = OverflowRule(condition=Condition.NO_AGENTS_LOGGED_IN, vendors=("acme", "globex"))
    return Driver(make_dialplan(("alice",), logged_out=("alice",),
                                vendors=(make_vendor("acme"), make_vendor("globex")),
                                queues=[make_queue(overflow=(rule,))]), reservations=True)


def test_the_overflow_notice_waits_for_the_vendor_channel() -> None:
    """A vendor offer is reserved; its OverflowFired goes out with the Ring on the grant."""
    d = vendor_driver()
    actions = d.queued("c1")
    assert of(act.OverflowFired, actions) == []
    assert of(act.Reserve, actions) == [act.Reserve(call_id="c1", target=ACME)]
    granted = d.decide("c1", ACME, True)
    assert [type(a) for a in granted] == [act.OverflowFired, act.Ring]


def test_a_full_vendor_moves_on_to_the_next_and_is_never_counted() -> None:
    """Refused channel: as VendorFull, the next vendor is reserved; no notice for acme."""
    d = vendor_driver()
    d.queued("c1")
    actions = d.decide("c1", ACME, False)
    assert act.OverflowUnavailable(call_id="c1", queue="support", vendor="acme",
                                   cause="full") in actions
    assert of(act.Reserve, actions) == [act.Reserve(call_id="c1", target=Target.vendor("globex"))]
    assert [a.vendor for a in of(act.OverflowFired, d.log)] == []
