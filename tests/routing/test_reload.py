"""Reloading the dialplan (SIGHUP) while calls are in progress."""

from __future__ import annotations

import pytest

from ccswitch.routing import actions as act
from ccswitch.routing import timers as tm
from ccswitch.routing.runtime import UnknownQueue
from ccswitch.routing.record import Outcome
from ccswitch.routing.states import AgentState

from .driver import GROUP, QUEUE, Driver, make_dialplan, make_queue, rung


def test_a_new_agent_takes_a_call_that_was_waiting() -> None:
    """A caller queued with nobody logged in is offered to an agent the reload adds."""
    d = Driver(make_dialplan(["alice"], logged_out=["alice"]))
    assert rung(d.queued("c1")) == []
    actions = d.reload(make_dialplan(["alice", "bob"], logged_out=["alice"]))
    assert rung(actions) == ["bob"]
    assert d.engine.view.agents["bob"].state is AgentState.RESERVED


def test_logged_in_changed_in_the_file_logs_the_agent_in() -> None:
    """Flipping an agent's logged_in to true in the file logs it in and offers waiting calls."""
    d = Driver(make_dialplan(["alice"], logged_out=["alice"]))
    d.queued("c1")
    actions = d.reload(make_dialplan(["alice"]))
    assert rung(actions) == ["alice"]


def test_unchanged_agents_keep_their_runtime_state() -> None:
    """An agent on a call stays on it across a reload that does not change it."""
    d = Driver(make_dialplan(["alice", "bob"]))
    d.queued("c1")
    d.answer("c1", "alice")
    assert d.reload(make_dialplan(["alice", "bob"])) == []
    assert d.engine.view.agents["alice"].state is AgentState.ON_CALL
    d.caller_hangup("c1")
    assert d.records[-1].outcome is Outcome.ANSWERED_INHOUSE and d.records[-1].agent_id == "alice"


def test_removed_idle_agent_disappears_at_once() -> None:
    """An idle agent no longer in the dialplan is gone from the engine and its metrics."""
    d = Driver(make_dialplan(["alice", "bob"]))
    d.reload(make_dialplan(["alice"]))
    assert "bob" not in d.engine.view.agents
    assert d.engine.view.agent_counts()[(GROUP, "ready")] == 1


def test_removed_busy_agent_finishes_its_call_and_is_never_offered_again() -> None:
    """A removed agent on a call keeps it to the end, wraps up, then is forgotten."""
    d = Driver(make_dialplan(["alice", "bob"], wrap_up=2.0))
    d.queued("c1")
    d.answer("c1", "alice")
    d.reload(make_dialplan(["bob"], wrap_up=2.0))
    assert d.engine.view.agents["alice"].state is AgentState.ON_CALL
    assert d.engine.view.agent_counts()[(GROUP, "on_call")] == 0  # no longer counted in the group
    d.agent_hangup("c1", "alice")
    assert d.records[-1].agent_id == "alice"
    d.advance(2.0)
    assert "alice" not in d.engine.view.agents
    d.queued("c2")
    assert [a.target.id for a in d.log if isinstance(a, act.Ring)][-1] == "bob"


def test_queue_settings_apply_to_new_calls_only() -> None:
    """A call in progress keeps its ring timeout; a call after the reload gets the new one."""
    d = Driver(make_dialplan(["alice", "bob"], ring_timeout=10.0))
    d.queued("c1")
    d.reload(make_dialplan(["alice", "bob"], ring_timeout=3.0))
    d.queued("c2")
    timers = d.pending_timers()
    assert timers[tm.RingTimer("c1")] - d.now == pytest.approx(10.0)
    assert timers[tm.RingTimer("c2")] - d.now == pytest.approx(3.0)


def test_a_removed_queue_stops_taking_new_calls_but_keeps_its_caller() -> None:
    """Calls already in a queue the reload removes are still served; new ones are refused."""
    d = Driver(make_dialplan(["alice"], logged_out=["alice"]))
    d.queued("c1")
    plan = make_dialplan(["alice"], queues=[make_queue("sales", GROUP)])
    actions = d.reload(plan)
    assert rung(actions) == ["alice"]  # logged in by the file, serves the old caller
    with pytest.raises(UnknownQueue):
        d.arrive("c2", QUEUE)
