"""TimerRunner: the engine's StartTimer/CancelTimer carried out on a task.Clock."""

from __future__ import annotations

from twisted.internet.task import Clock

from ccswitch.calls.timers import TimerRunner
from ccswitch.routing import actions as act
from ccswitch.routing import events as ev
from ccswitch.routing import timers as tm

RING = tm.RingTimer("c1")


def runner() -> tuple[Clock, TimerRunner, list[ev.TimerFired]]:
    clock, fired = Clock(), []
    return clock, TimerRunner(clock, fired.append), fired


def test_started_timer_fires_as_an_event() -> None:
    """A started timer comes back as TimerFired after its delay, and is then gone."""
    clock, timers, fired = runner()
    assert timers.carry_out(act.StartTimer(timer_id=RING, delay=15.0))
    clock.advance(15)
    assert fired == [ev.TimerFired(timer_id=RING)] and timers.pending() == {}


def test_restarting_a_timer_replaces_it() -> None:
    """Starting a running timer again moves its deadline; it fires once."""
    clock, timers, fired = runner()
    timers.start(RING, 15.0)
    clock.advance(10)
    timers.start(RING, 15.0)
    assert timers.pending() == {RING: 25.0}
    clock.advance(14)
    assert fired == []
    clock.advance(1)
    assert fired == [ev.TimerFired(timer_id=RING)]


def test_cancelled_timer_never_fires() -> None:
    """A cancelled timer does not fire."""
    clock, timers, fired = runner()
    timers.start(RING, 15.0)
    assert timers.carry_out(act.CancelTimer(timer_id=RING))
    clock.advance(20)
    assert fired == []


def test_other_actions_are_not_timers() -> None:
    """carry_out leaves every other action alone and says so."""
    _, timers, _ = runner()
    assert not timers.carry_out(act.AnswerCaller(call_id="c1"))
