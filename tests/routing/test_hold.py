"""Hold and resume in the routing engine on a task.Clock: hold periods in the record,
music on hold to the held side, a hold across a hang-up, illegal holds refused."""

from __future__ import annotations

import pytest

from ccswitch.errors import IllegalTransition
from ccswitch.routing import actions as act
from ccswitch.routing import events as ev
from ccswitch.routing.record import Hold
from ccswitch.routing.target import CALLER, Target

from .driver import MOH, T0, Driver, make_dialplan, rung

ALICE = Target.agent("alice")


def bridged() -> Driver:
    """c1 answered by alice at T0 + 5."""
    d = Driver(make_dialplan())
    d.arrive("c1")
    d.advance(3)
    assert rung(d.announce("c1")) == ["alice"]
    d.advance(2)
    d.answer("c1", "alice")
    return d


def test_agent_hold_plays_music_to_the_caller() -> None:
    """An agent's hold starts the queue's music on hold to the caller."""
    d = bridged()
    assert d.feed(ev.LegHeld(call_id="c1", party=ALICE)) == [
        act.StartHoldMusic(call_id="c1", party=CALLER, path=MOH)]


def test_caller_hold_plays_music_to_the_agent() -> None:
    """A caller's hold starts the music on hold to the bridged agent."""
    d = bridged()
    assert d.feed(ev.LegHeld(call_id="c1", party=CALLER)) == [
        act.StartHoldMusic(call_id="c1", party=ALICE, path=MOH)]


def test_resume_stops_the_music_of_the_held_side() -> None:
    """The holder resuming stops the music to the held side."""
    d = bridged()
    d.feed(ev.LegHeld(call_id="c1", party=ALICE))
    assert d.feed(ev.LegResumed(call_id="c1", party=ALICE)) == [
        act.StopHoldMusic(call_id="c1", party=CALLER)]


def test_hold_periods_are_in_the_record() -> None:
    """Two holds of 10 s and 5 s are in the record, in order, 15 s in all, and talk time
    leaves them out."""
    d = bridged()
    d.advance(20)
    d.feed(ev.LegHeld(call_id="c1", party=ALICE))
    d.advance(10)
    d.feed(ev.LegResumed(call_id="c1", party=ALICE))
    d.advance(30)
    d.feed(ev.LegHeld(call_id="c1", party=CALLER))
    d.advance(5)
    d.feed(ev.LegResumed(call_id="c1", party=CALLER))
    d.advance(1)
    d.caller_hangup("c1")
    [r] = d.records
    assert r.holds == (Hold(party=ALICE, start=T0 + 25, end=T0 + 35),
                       Hold(party=CALLER, start=T0 + 65, end=T0 + 70))
    assert r.hold == 15 and r.talk == 66 - 15
    assert r.to_dict()["hold"] == 15 and r.to_dict()["holds"][0]["party"] == "agent"


def test_hold_across_a_hang_up_ends_with_the_call() -> None:
    """A hold still going when the held caller hangs up ends with the call."""
    d = bridged()
    d.feed(ev.LegHeld(call_id="c1", party=ALICE))
    d.advance(8)
    d.caller_hangup("c1")
    [r] = d.records
    assert r.holds == (Hold(party=ALICE, start=T0 + 5, end=T0 + 13),)


def test_hold_before_the_bridge_is_not_recorded() -> None:
    """A caller holding while queued (already hearing music) is no hold of the call."""
    d = Driver(make_dialplan(agents=()))
    d.arrive("c1")
    d.advance(3)
    d.announce("c1")
    actions = d.feed(ev.LegHeld(call_id="c1", party=CALLER))
    assert not any(isinstance(a, act.StartHoldMusic) for a in actions)
    assert d.feed(ev.LegResumed(call_id="c1", party=CALLER)) == []
    d.caller_hangup("c1")
    [r] = d.records
    assert r.holds == ()


def test_holding_twice_is_refused_and_changes_nothing() -> None:
    """A second hold by the same party raises and leaves the one hold recorded."""
    d = bridged()
    d.feed(ev.LegHeld(call_id="c1", party=ALICE))
    with pytest.raises(IllegalTransition):
        d.feed(ev.LegHeld(call_id="c1", party=ALICE))
    d.caller_hangup("c1")
    [r] = d.records
    assert len(r.holds) == 1


def test_hold_by_a_party_not_in_the_bridge_is_refused() -> None:
    """bob, not bridged with the caller, cannot hold the call."""
    d = bridged()
    with pytest.raises(IllegalTransition):
        d.feed(ev.LegHeld(call_id="c1", party=Target.agent("bob")))
