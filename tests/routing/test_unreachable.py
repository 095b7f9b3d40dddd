"""Dead agent phones: no response to an offer, or an INVITE that cannot be sent, take the
agent out of rotation at once; OPTIONS probes bring it back."""

from __future__ import annotations

import pytest

from ccswitch.routing import actions as act
from ccswitch.routing import events as ev
from ccswitch.routing import timers as tm
from ccswitch.routing.states import AgentState, CallState

from .driver import Driver, cancelled, make_dialplan, rung, uri

U = AgentState.UNREACHABLE


def dead_alice() -> Driver:
    """alice (a dead phone) then bob, longest idle; 3 s no-response check, 10 s probes."""
    return Driver(make_dialplan(("alice", "bob"), no_response=3.0, probe_interval=10.0))


def probes(actions: list[act.Action]) -> list[str]:
    return [a.agent_id for a in actions if isinstance(a, act.ProbeAgent)]


def test_no_response_in_time_ends_the_offer_and_rings_the_next_agent() -> None:
    """No response within no_response_timeout: alice's offer ends and bob rings at once."""
    d = dead_alice()
    assert rung(d.queued("c1")) == ["alice"]
    assert d.advance(2.9) == []
    actions = d.advance(0.1)
    assert cancelled(actions) == ["alice"]
    assert rung(actions) == ["bob"]
    assert [o.result for o in d.engine.view.calls["c1"].record.offers] == ["unreachable"]


def test_an_agent_with_no_response_is_unreachable_not_a_miss() -> None:
    """The silent agent goes unreachable; its miss count is untouched."""
    d = dead_alice()
    d.queued("c1")
    d.advance(3)
    assert d.engine.view.agents["alice"].state is U
    assert d.engine.view.agents["alice"].misses == 0


def test_a_provisional_response_stops_the_check() -> None:
    """100 Trying (AgentResponded) in time: the offer rings on until ring_timeout."""
    d = dead_alice()
    d.queued("c1")
    d.advance(0.1)
    d.feed(ev.AgentResponded(agent_id="alice"))
    assert d.advance(10) == []
    assert d.engine.view.calls["c1"].ringing == ("alice",)


def test_an_unreachable_agent_is_not_offered_calls() -> None:
    """Once alice is unreachable the next callers go to bob only, then wait."""
    d = dead_alice()
    d.queued("c1")
    d.advance(3)
    d.answer("c1", "bob")
    assert rung(d.queued("c2")) == []
    assert d.engine.view.calls["c2"].state is CallState.QUEUED


def test_the_only_agent_dead_sends_the_call_back_to_the_queue() -> None:
    """A round whose only offer hits a dead phone ends: the call waits, unrung."""
    d = Driver(make_dialplan(("alice",), no_response=3.0))
    d.queued("c1")
    actions = d.advance(3)
    assert act.CancelTimer(timer_id=tm.RingTimer("c1")) in actions
    assert d.engine.view.calls["c1"].state is CallState.QUEUED
    assert rung(actions) == []


def test_an_unreachable_agent_is_probed_every_interval() -> None:
    """OPTIONS probes go to the agent's URI every probe_interval, not before."""
    d = dead_alice()
    d.queued("c1")
    d.advance(3)
    d.answer("c1", "bob")
    assert probes(d.advance(9.9)) == []
    actions = d.advance(0.1)
    assert [a for a in actions if isinstance(a, act.ProbeAgent)] == [
        act.ProbeAgent(agent_id="alice", uri=uri("alice"))]
    assert probes(d.advance(10)) == ["alice"]


def test_a_probe_answer_brings_the_agent_back_into_rotation() -> None:
    """Any answer to a probe makes alice ready again; the next caller may get her."""
    d = Driver(make_dialplan(("alice",), no_response=3.0))
    d.queued("c1")
    d.advance(13)
    actions = d.feed(ev.AgentResponded(agent_id="alice"))
    assert act.CancelTimer(timer_id=tm.AgentProbeTimer("alice")) in actions
    assert rung(actions) == ["alice"]  # the waiting caller is offered her at once
    assert probes(d.advance(30)) == []


def test_a_cancelled_offer_to_a_dead_phone_still_takes_the_agent_out() -> None:
    """The caller leaves before the check runs out: alice still goes unreachable."""
    d = dead_alice()
    d.queued("c1")
    d.advance(1)
    d.caller_hangup("c1")
    assert d.engine.view.agents["alice"].state is AgentState.READY
    d.advance(2)
    assert d.engine.view.agents["alice"].state is U
    assert rung(d.queued("c2")) == ["bob"]


def test_a_late_response_after_a_cancel_keeps_the_agent_in_rotation() -> None:
    """The phone responds after the offer was cancelled: alice stays ready."""
    d = dead_alice()
    d.queued("c1")
    d.advance(1)
    d.caller_hangup("c1")
    d.feed(ev.AgentResponded(agent_id="alice"))
    d.advance(5)
    assert d.engine.view.agents["alice"].state is AgentState.READY


def test_a_new_offer_restarts_a_check_left_running_by_a_cancelled_one() -> None:
    """Offered again while a cancelled offer's check runs: only the new offer's check
    counts, from the new offer."""
    d = dead_alice()
    d.queued("c1")
    d.advance(1)
    d.caller_hangup("c1")
    d.advance(0.5)
    assert rung(d.queued("c2")) == ["alice"]
    assert d.advance(2.9) == []
    assert d.engine.view.agents["alice"].state is AgentState.RESERVED
    actions = d.advance(0.1)
    assert cancelled(actions) == ["alice"]
    assert [o.result for o in d.engine.view.calls["c2"].record.offers] == ["unreachable"]


def test_a_send_failure_ends_the_offer_at_once() -> None:
    """AgentSendFailed mid-offer: no waiting for the check, bob rings now."""
    d = dead_alice()
    d.queued("c1")
    actions = d.feed(ev.AgentSendFailed(agent_id="alice"))
    assert cancelled(actions) == ["alice"]
    assert rung(actions) == ["bob"]
    assert act.CancelTimer(timer_id=tm.NoResponseTimer("c1", "alice")) in actions
    assert d.engine.view.agents["alice"].state is U


def test_a_send_error_for_an_agent_on_a_call_changes_nothing() -> None:
    """AgentSendFailed for an agent already on its call changes nothing."""
    d = dead_alice()
    d.queued("c1")
    d.answer("c1", "alice")
    assert d.feed(ev.AgentSendFailed(agent_id="alice")) == []
    assert d.engine.view.agents["alice"].state is AgentState.ON_CALL


def test_pause_takes_an_unreachable_agent_out_and_stops_the_probes() -> None:
    """An operator pause moves the agent to not-ready; no more probes."""
    d = dead_alice()
    d.queued("c1")
    d.advance(3)
    d.feed(ev.AgentPause(agent_id="alice"))
    assert d.engine.view.agents["alice"].state is AgentState.NOT_READY
    assert probes(d.advance(30)) == []


def test_ready_while_unreachable_probes_at_once_and_keeps_it_out() -> None:
    """An operator ready does not put a dead phone back; it probes it now."""
    d = dead_alice()
    d.queued("c1")
    d.advance(3)
    actions = d.feed(ev.AgentReady(agent_id="alice"))
    assert probes(actions) == ["alice"]
    assert d.engine.view.agents["alice"].state is U


def test_unreachable_presence_is_ready() -> None:
    """The saved/shared presence of an unreachable agent is still ready (logged in)."""
    d = dead_alice()
    d.queued("c1")
    d.advance(3)
    assert d.engine.view.presence()["alice"] == ("ready", True)


def test_unreachable_agents_are_counted_in_agent_states() -> None:
    """The per-group state counts (the agents metric) show the unreachable agent."""
    d = dead_alice()
    d.queued("c1")
    d.advance(3)
    assert d.engine.view.agent_counts()[("support-inhouse", "unreachable")] == 1


def test_dead_phone_events_validate_the_agent_id() -> None:
    """AgentResponded and AgentSendFailed need a non-empty agent id."""
    for event in (ev.AgentResponded, ev.AgentSendFailed):
        with pytest.raises(ValueError):
            event(agent_id="")
