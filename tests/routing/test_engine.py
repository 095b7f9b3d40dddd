"""The routing engine, driven event by event on a task.Clock."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ccswitch.errors import CCSwitchError, IllegalTransition
from ccswitch.model import Strategy
from ccswitch.routing import actions as act
from ccswitch.routing import events as ev
from ccswitch.routing import timers as tm
from ccswitch.routing.engine import RoutingEngine
from ccswitch.routing.record import Offer, Outcome
from ccswitch.routing.runtime import UnknownAgent, UnknownCall, UnknownQueue
from ccswitch.routing.states import AgentState, CallState
from ccswitch.routing.target import Target

from .driver import (
    ANNOUNCEMENT, GROUP, MOH, QUEUE, T0, Driver, cancelled, changes, make_dialplan, make_queue,
    rung, uri,
)

R, A = AgentState.READY, AgentState.RESERVED


def asc(agent: str, old: AgentState, new: AgentState, group: str = GROUP) -> act.AgentStateChanged:
    return act.AgentStateChanged(agent_id=agent, group=group, old=old, new=new)


def bridged(d: Driver, call_id: str, agent: str) -> None:
    """Queue ``call_id`` and have ``agent`` (who must be picked) answer it."""
    assert rung(d.queued(call_id)) == [agent]
    d.answer(call_id, agent)


# -- the happy path -----------------------------------------------------------


def test_happy_path_action_sequence() -> None:
    """Arrive, announce, ring, answer, hang up, wrap up: the exact actions, in order."""
    d = Driver(make_dialplan())
    assert d.arrive("c1") == [act.AnswerCaller(call_id="c1"),
                              act.PlayAnnouncement(call_id="c1", path=ANNOUNCEMENT)]
    d.advance(3)
    assert d.announce("c1") == [
        act.StartMusicOnHold(call_id="c1", path=MOH),
        act.StartRecording(call_id="c1"),
        asc("alice", R, A),
        act.Ring(call_id="c1", target=Target.agent("alice"), uri=uri("alice")),
        act.StartTimer(timer_id=tm.RingTimer("c1"), delay=15.0),
    ]
    d.advance(1)
    assert d.feed(ev.LegRinging(call_id="c1", target=Target.agent("alice"))) == []
    d.advance(2)
    assert d.answer("c1", "alice") == [
        act.CancelTimer(timer_id=tm.RingTimer("c1")),
        act.StopMusicOnHold(call_id="c1"),
        act.Bridge(call_id="c1", target=Target.agent("alice")),
        asc("alice", A, AgentState.ON_CALL),
    ]
    d.advance(60)
    actions = d.caller_hangup("c1")
    [record] = d.records
    assert actions == [
        act.Hangup(call_id="c1", target=Target.agent("alice")),
        act.CallFinished(record=record),
        asc("alice", AgentState.ON_CALL, AgentState.WRAP_UP),
        act.StartTimer(timer_id=tm.WrapUpTimer("alice"), delay=5.0),
    ]
    assert d.advance(5) == [asc("alice", AgentState.WRAP_UP, R)]


def test_happy_path_record() -> None:
    """The answered call's record has every timestamp and derived duration."""
    d = Driver(make_dialplan())
    d.arrive("c1", caller="5550100", dialed="100")
    d.advance(3)
    d.announce("c1")
    d.advance(2.5)
    d.answer("c1", "alice")
    d.advance(60)
    d.caller_hangup("c1")
    [r] = d.records
    assert (r.call_id, r.caller, r.dialed, r.queue, r.group) == (
        "c1", "5550100", "100", QUEUE, GROUP)
    assert (r.outcome, r.agent_id, r.qa_notice_played) == (Outcome.ANSWERED_INHOUSE, "alice", True)
    assert (r.arrived_at, r.announced_at, r.queued_at, r.answered_at, r.ended_at) == (
        T0, T0 + 3, T0 + 3, T0 + 5.5, T0 + 65.5)
    assert (r.wait, r.ring, r.talk, r.total, r.short_abandon) == (2.5, 2.5, 60, 65.5, False)
    assert r.offers == (Offer(agent_id="alice", offered_at=T0 + 3, ended_at=T0 + 5.5,
                              result="answered"),)


def test_no_music_on_hold_configured_starts_silence() -> None:
    """A queue without music_on_hold asks for StartMusicOnHold with path None."""
    d = Driver(make_dialplan(music_on_hold=None, logged_out=("alice", "bob")))
    d.arrive("c1")
    assert d.announce("c1") == [act.StartMusicOnHold(call_id="c1", path=None),
                                act.StartRecording(call_id="c1")]


def test_logged_out_agents_start_logged_out() -> None:
    """Agents with logged_in false start LOGGED_OUT and are not offered calls."""
    d = Driver(make_dialplan(logged_out=("alice",)))
    assert d.engine.view.agents["alice"].state is AgentState.LOGGED_OUT
    assert rung(d.queued("c1")) == ["bob"]


# -- strategies in the engine ---------------------------------------------------


def test_longest_idle_picks_the_agent_idle_longest() -> None:
    """The agent idle the longest gets the call, even if listed later in the group."""
    d = Driver(make_dialplan())
    d.advance(1)
    d.feed(ev.AgentPause(agent_id="alice"))
    d.feed(ev.AgentReady(agent_id="alice"))  # alice idle since T0+1, bob since T0
    assert rung(d.queued("c1")) == ["bob"]


def test_longest_idle_rotates_between_agents() -> None:
    """After a call an agent goes to the back of the line: calls alternate."""
    d = Driver(make_dialplan(wrap_up=0.0))
    order = []
    for n in range(4):
        actions = d.queued(f"c{n}")
        [agent] = rung(actions)
        order.append(agent)
        d.advance(1)
        d.answer(f"c{n}", agent)
        d.advance(10)
        d.agent_hangup(f"c{n}", agent)
        d.advance(1)
    assert order == ["alice", "bob", "alice", "bob"]


def test_ring_all_rings_every_ready_agent_with_one_timer() -> None:
    """ring_all offers the call to every READY agent at once, one ring timer per round."""
    d = Driver(make_dialplan(("alice", "bob", "carol"), strategy=Strategy.RING_ALL,
                             logged_out=("carol",)))
    actions = d.queued("c1")
    assert rung(actions) == ["alice", "bob"]
    assert [a for a in actions if isinstance(a, act.StartTimer)] == [
        act.StartTimer(timer_id=tm.RingTimer("c1"), delay=15.0)]
    assert d.engine.view.calls["c1"].ringing == ("alice", "bob")


def test_ring_all_first_answer_cancels_the_others() -> None:
    """With ring_all the first answer wins; the others are cancelled and READY, not missed."""
    d = Driver(make_dialplan(("alice", "bob", "carol"), strategy=Strategy.RING_ALL))
    d.queued("c1")
    d.advance(4)
    assert d.answer("c1", "bob") == [
        act.CancelTimer(timer_id=tm.RingTimer("c1")),
        act.StopMusicOnHold(call_id="c1"),
        act.Cancel(call_id="c1", target=Target.agent("alice")),
        act.Cancel(call_id="c1", target=Target.agent("carol")),
        act.Bridge(call_id="c1", target=Target.agent("bob")),
        asc("bob", A, AgentState.ON_CALL),
        asc("alice", A, R),
        asc("carol", A, R),
    ]
    assert [(o.agent_id, o.result) for o in d.engine.view.calls["c1"].record.offers] == [
        ("alice", "cancelled"), ("bob", "answered"), ("carol", "cancelled")]
    assert d.engine.view.to_dict()["agents"]["alice"]["misses"] == 0


def test_ring_all_one_failure_does_not_end_the_round() -> None:
    """A failed offer while other agents still ring keeps the round (and its timer) going."""
    d = Driver(make_dialplan(("alice", "bob"), strategy=Strategy.RING_ALL))
    d.queued("c1")
    actions = d.fail("c1", "alice", 486)
    assert actions == [asc("alice", A, R)]
    assert d.engine.view.calls["c1"].state is CallState.RINGING
    assert d.engine.view.calls["c1"].ringing == ("bob",)
    assert tm.RingTimer("c1") in d.pending_timers()


def test_ring_all_round_ends_when_the_last_offer_fails() -> None:
    """When every ringing agent failed the call is offered again in a new round."""
    d = Driver(make_dialplan(("alice", "bob"), strategy=Strategy.RING_ALL))
    d.queued("c1")
    d.fail("c1", "alice", 486)
    actions = d.fail("c1", "bob", 480)
    assert actions[:2] == [act.CancelTimer(timer_id=tm.RingTimer("c1")), asc("bob", A, R)]
    assert rung(actions) == ["alice", "bob"]


# -- unanswered offers --------------------------------------------------------------


def test_ring_timeout_moves_on_to_the_next_agent() -> None:
    """A ring timeout cancels the offer (no_answer) and rings the next agent."""
    d = Driver(make_dialplan())
    d.queued("c1")
    assert d.advance(15) == [
        act.Cancel(call_id="c1", target=Target.agent("alice")),
        asc("alice", A, R),
        asc("bob", R, A),
        act.Ring(call_id="c1", target=Target.agent("bob"), uri=uri("bob")),
        act.StartTimer(timer_id=tm.RingTimer("c1"), delay=15.0),
    ]
    [offer] = d.engine.view.calls["c1"].record.offers
    assert (offer.agent_id, offer.result, offer.ring) == ("alice", "no_answer", 15.0)


def test_failed_offer_moves_on_to_the_next_agent() -> None:
    """An error status (486) from the agent ends the offer and rings the next agent."""
    d = Driver(make_dialplan())
    d.queued("c1")
    d.advance(2)
    assert d.fail("c1", "alice", 486) == [
        act.CancelTimer(timer_id=tm.RingTimer("c1")),
        asc("alice", A, R),
        asc("bob", R, A),
        act.Ring(call_id="c1", target=Target.agent("bob"), uri=uri("bob")),
        act.StartTimer(timer_id=tm.RingTimer("c1"), delay=15.0),
    ]
    [offer] = d.engine.view.calls["c1"].record.offers
    assert (offer.result, offer.ring) == ("failed:486", 2.0)


def test_the_only_agent_is_offered_again_after_a_miss() -> None:
    """When every READY agent was tried, the strategy starts over with all of them."""
    d = Driver(make_dialplan(("alice",)))
    d.queued("c1")
    assert rung(d.advance(15)) == ["alice"]


def test_max_misses_in_a_row_set_the_agent_not_ready() -> None:
    """After max_misses unanswered offers in a row the agent goes NOT_READY; the call waits."""
    d = Driver(make_dialplan(("alice",), max_misses=3))
    d.queued("c1")
    d.advance(15)
    d.advance(15)
    actions = d.advance(15)
    assert changes(actions) == [("alice", "reserved", "not_ready")]
    assert rung(actions) == []
    assert d.engine.view.agents["alice"].state is AgentState.NOT_READY
    assert d.engine.view.calls["c1"].state is CallState.QUEUED


def test_an_answer_resets_the_miss_count() -> None:
    """Misses only count in a row: an answered offer in between starts the count again."""
    d = Driver(make_dialplan(("alice",), max_misses=2, wrap_up=0.0))
    d.queued("c1")
    d.advance(15)  # miss 1, rung again
    d.answer("c1", "alice")
    d.agent_hangup("c1", "alice")
    d.queued("c2")
    first = d.fail("c2", "alice", 486)  # miss 1 again, not 2
    assert changes(first)[0] == ("alice", "reserved", "ready")
    second = d.fail("c2", "alice", 486)
    assert changes(second) == [("alice", "reserved", "not_ready")]


def test_agent_ready_resets_the_miss_count() -> None:
    """An agent made ready again after too many misses starts from zero."""
    d = Driver(make_dialplan(("alice",), max_misses=1))
    d.queued("c1")
    d.fail("c1", "alice", 486)
    assert d.engine.view.agents["alice"].state is AgentState.NOT_READY
    assert rung(d.feed(ev.AgentReady(agent_id="alice"))) == ["alice"]
    assert d.engine.view.to_dict()["agents"]["alice"]["misses"] == 0


# -- abandons -----------------------------------------------------------------------


def test_abandon_while_announcing() -> None:
    """A caller leaving during the announcement within short_abandon: SHORT_ABANDON."""
    d = Driver(make_dialplan())
    d.arrive("c1")
    d.advance(2)
    actions = d.caller_hangup("c1")
    [r] = d.records
    assert actions == [act.CallFinished(record=r)]
    assert (r.outcome, r.qa_notice_played, r.announced_at, r.queued_at) == (
        Outcome.SHORT_ABANDON, False, None, None)
    assert (r.ended_at, r.wait, r.total, r.short_abandon) == (T0 + 2, None, 2, True)
    assert list(d.engine.view.calls) == []


def test_abandon_while_queued() -> None:
    """A caller leaving while waiting with nobody ready: ABANDONED_QUEUE with its wait."""
    d = Driver(make_dialplan(logged_out=("alice", "bob")))
    d.arrive("c1")
    d.advance(3)
    d.announce("c1")
    d.advance(20)
    actions = d.caller_hangup("c1")
    [r] = d.records
    assert actions == [act.CallFinished(record=r)]
    assert (r.outcome, r.agent_id, r.queued_at, r.ended_at) == (
        Outcome.ABANDONED_QUEUE, None, T0 + 3, T0 + 23)
    assert (r.wait, r.talk, r.ring, r.total, r.short_abandon) == (20, None, None, 23, False)


def test_abandon_while_ringing() -> None:
    """A caller leaving while an agent rings: offer cancelled, agent READY in place,
    ABANDONED_RINGING (the call is older than short_abandon)."""
    d = Driver(make_dialplan())
    d.queued("c1")
    d.advance(6)
    actions = d.caller_hangup("c1")
    [r] = d.records
    assert actions == [
        act.CancelTimer(timer_id=tm.RingTimer("c1")),
        act.Cancel(call_id="c1", target=Target.agent("alice")),
        act.CallFinished(record=r),
        asc("alice", A, R),
    ]
    assert (r.outcome, r.wait) == (Outcome.ABANDONED_RINGING, 6)
    assert [(o.agent_id, o.result) for o in r.offers] == [("alice", "cancelled")]
    alice = d.engine.view.to_dict()["agents"]["alice"]
    assert (alice["misses"], alice["idle_since"]) == (0, T0)


# -- ends of answered calls ------------------------------------------------------


def test_caller_hangup_while_bridged() -> None:
    """The caller hanging up on a bridged call: BYE to the agent, ANSWERED with talk time."""
    d = Driver(make_dialplan())
    bridged(d, "c1", "alice")
    d.advance(42)
    actions = d.caller_hangup("c1")
    [r] = d.records
    assert actions[:2] == [act.Hangup(call_id="c1", target=Target.agent("alice")),
                           act.CallFinished(record=r)]
    assert not any(isinstance(a, act.HangupCaller) for a in actions)
    assert (r.outcome, r.agent_id, r.talk) == (Outcome.ANSWERED_INHOUSE, "alice", 42)


def test_agent_hangup_while_bridged() -> None:
    """The agent hanging up: BYE to the caller, ANSWERED, agent into wrap-up."""
    d = Driver(make_dialplan())
    bridged(d, "c1", "alice")
    d.advance(30)
    actions = d.agent_hangup("c1", "alice")
    [r] = d.records
    assert actions == [
        act.HangupCaller(call_id="c1"),
        act.CallFinished(record=r),
        asc("alice", AgentState.ON_CALL, AgentState.WRAP_UP),
        act.StartTimer(timer_id=tm.WrapUpTimer("alice"), delay=5.0),
    ]
    assert (r.outcome, r.talk) == (Outcome.ANSWERED_INHOUSE, 30)


def test_wrap_up_delays_the_next_offer() -> None:
    """A waiting call reaches an agent only once the agent's wrap-up is over."""
    d = Driver(make_dialplan(("alice",)))
    bridged(d, "c1", "alice")
    assert rung(d.queued("c2")) == []
    assert rung(d.agent_hangup("c1", "alice")) == []
    assert d.advance(4.9) == []
    assert d.advance(0.1) == [
        asc("alice", AgentState.WRAP_UP, R),
        asc("alice", R, A),
        act.Ring(call_id="c2", target=Target.agent("alice"), uri=uri("alice")),
        act.StartTimer(timer_id=tm.RingTimer("c2"), delay=15.0),
    ]


def test_zero_wrap_up_frees_the_agent_at_once() -> None:
    """wrap_up 0: the agent is READY when the call ends and gets the next call right away."""
    d = Driver(make_dialplan(("alice",), wrap_up=0.0))
    bridged(d, "c1", "alice")
    d.queued("c2")
    actions = d.caller_hangup("c1")
    assert changes(actions) == [("alice", "on_call", "ready"), ("alice", "ready", "reserved")]
    assert not any(isinstance(a, act.StartTimer) and isinstance(a.timer_id, tm.WrapUpTimer)
                   for a in actions)
    assert rung(actions) == ["alice"]


# -- ordering -----------------------------------------------------------------------


def test_fifo_across_two_waiting_callers() -> None:
    """The caller queued first is offered the freed agent first."""
    d = Driver(make_dialplan(("alice",), wrap_up=0.0))
    bridged(d, "c0", "alice")
    d.queued("c1")
    d.advance(1)
    d.queued("c2")
    assert rung(d.agent_hangup("c0", "alice")) == ["alice"]
    assert d.engine.view.calls["c1"].ringing == ("alice",)
    assert d.engine.view.calls["c2"].state is CallState.QUEUED


def test_fifo_across_queues_sharing_an_agent() -> None:
    """An agent serving two queues goes to the longest-waiting caller of either."""
    plan = make_dialplan(("alice",), logged_out=("alice",),
                         groups={"g-support": ("alice",), "g-sales": ("alice",)},
                         queues=[make_queue("support", "g-support"),
                                 make_queue("sales", "g-sales")])
    d = Driver(plan)
    d.queued("s1", "sales")
    d.advance(1)
    d.queued("p1", "support")
    actions = d.feed(ev.AgentLogin(agent_id="alice"))
    assert [(a.call_id, a.target.id) for a in actions if isinstance(a, act.Ring)] == [
        ("s1", "alice")]


def test_state_changes_are_reported_once_per_group() -> None:
    """An agent in two groups gets one AgentStateChanged per group, in dialplan order."""
    plan = make_dialplan(("alice",), groups={"g1": ("alice",), "g2": ("alice",)},
                         queues=[make_queue("support", "g1")])
    d = Driver(plan)
    assert d.feed(ev.AgentPause(agent_id="alice")) == [
        asc("alice", R, AgentState.NOT_READY, "g1"), asc("alice", R, AgentState.NOT_READY, "g2")]


# -- presence ---------------------------------------------------------------------


def test_login_makes_a_logged_out_agent_ready_and_dispatches() -> None:
    """AgentLogin: LOGGED_OUT -> READY, and a waiting call is offered at once."""
    d = Driver(make_dialplan(("alice",), logged_out=("alice",)))
    d.queued("c1")
    actions = d.feed(ev.AgentLogin(agent_id="alice"))
    assert changes(actions) == [("alice", "logged_out", "ready"), ("alice", "ready", "reserved")]


def test_logout_and_pause_from_ready() -> None:
    """AgentPause and AgentLogout take a READY agent out at once."""
    d = Driver(make_dialplan())
    assert changes(d.feed(ev.AgentPause(agent_id="alice"))) == [("alice", "ready", "not_ready")]
    assert changes(d.feed(ev.AgentLogout(agent_id="bob"))) == [("bob", "ready", "logged_out")]


def test_pause_while_on_call_is_applied_after_wrap_up() -> None:
    """A pause during a call is remembered and applied when wrap-up ends."""
    d = Driver(make_dialplan(("alice",)))
    bridged(d, "c1", "alice")
    assert d.feed(ev.AgentPause(agent_id="alice")) == []
    assert d.engine.view.agents["alice"].state is AgentState.ON_CALL
    d.agent_hangup("c1", "alice")
    d.queued("c2")
    assert d.advance(5) == [asc("alice", AgentState.WRAP_UP, AgentState.NOT_READY)]


def test_logout_while_ringing_is_applied_when_the_offer_ends() -> None:
    """A logout while being offered a call takes effect when that offer ends."""
    d = Driver(make_dialplan(("alice",)))
    d.queued("c1")
    assert d.feed(ev.AgentLogout(agent_id="alice")) == []
    actions = d.advance(15)
    assert changes(actions) == [("alice", "reserved", "logged_out")]
    assert rung(actions) == []


def test_ready_while_on_call_forgets_a_remembered_pause() -> None:
    """AgentReady while busy cancels an earlier remembered pause."""
    d = Driver(make_dialplan(("alice",), wrap_up=0.0))
    bridged(d, "c1", "alice")
    d.feed(ev.AgentPause(agent_id="alice"))
    assert d.feed(ev.AgentReady(agent_id="alice")) == []
    assert changes(d.agent_hangup("c1", "alice")) == [("alice", "on_call", "ready")]


def test_ready_during_wrap_up_ends_it_early() -> None:
    """AgentReady in wrap-up cancels the wrap-up timer and offers the next call."""
    d = Driver(make_dialplan(("alice",)))
    bridged(d, "c1", "alice")
    d.agent_hangup("c1", "alice")
    d.queued("c2")
    actions = d.feed(ev.AgentReady(agent_id="alice"))
    assert actions[:2] == [act.CancelTimer(timer_id=tm.WrapUpTimer("alice")),
                           asc("alice", AgentState.WRAP_UP, R)]
    assert rung(actions) == ["alice"]
    assert tm.WrapUpTimer("alice") not in d.pending_timers()


# -- queries ------------------------------------------------------------------------


def depths(d: Driver) -> dict[str, int]:
    return {name: queue.depth for name, queue in d.engine.view.queues.items()}


def test_queue_depths_and_agent_states_counts() -> None:
    """Depth counts queued and ringing callers; agent counts cover every group x state."""
    plan = make_dialplan(("alice", "bob", "carol"), logged_out=("carol",),
                         groups={"g1": ("alice", "bob"), "g2": ("bob", "carol")},
                         queues=[make_queue("support", "g1"), make_queue("sales", "g2")])
    d = Driver(plan)
    assert depths(d) == {"support": 0, "sales": 0}
    d.arrive("c1")
    assert depths(d) == {"support": 0, "sales": 0}  # still announcing
    d.announce("c1")  # rings alice
    d.queued("c2")  # rings bob
    d.queued("c3")  # waits
    assert depths(d) == {"support": 3, "sales": 0}
    states = d.engine.view.agent_counts()
    assert len(states) == 2 * len(AgentState)
    assert states[("g1", "reserved")] == 2
    assert states[("g2", "reserved")] == 1 and states[("g2", "logged_out")] == 1
    assert states[("g1", "ready")] == 0 and states[("g2", "wrap_up")] == 0
    assert sum(states.values()) == 4


def test_calls_lists_live_calls_in_arrival_order() -> None:
    """calls() names every call in progress, oldest first, and forgets finished ones."""
    d = Driver(make_dialplan())
    d.arrive("c2")
    d.arrive("c1")
    d.caller_hangup("c2")
    assert list(d.engine.view.calls) == ["c1"]


# -- refusals -----------------------------------------------------------------------


def test_unknown_call_raises_and_changes_nothing() -> None:
    """An event about an unknown call raises UnknownCall and leaves the state as it was."""
    d = Driver(make_dialplan())
    d.queued("c1")
    before = d.engine.view.to_dict()
    with pytest.raises(UnknownCall) as info:
        d.feed(ev.LegAnswered(call_id="nope", target=Target.agent("alice")))
    assert info.value.call_id == "nope"
    assert d.engine.view.to_dict() == before


def test_finished_call_is_forgotten() -> None:
    """After CallFinished, later events about the call raise UnknownCall."""
    d = Driver(make_dialplan())
    d.arrive("c1")
    d.caller_hangup("c1")
    with pytest.raises(UnknownCall):
        d.caller_hangup("c1")


def test_unknown_agent_raises_and_changes_nothing() -> None:
    """An event naming an agent not in the dialplan raises UnknownAgent."""
    d = Driver(make_dialplan())
    d.queued("c1")
    before = d.engine.view.to_dict()
    with pytest.raises(UnknownAgent):
        d.answer("c1", "ghost")
    with pytest.raises(UnknownAgent):
        d.feed(ev.AgentLogin(agent_id="ghost"))
    assert d.engine.view.to_dict() == before


def test_unknown_queue_raises() -> None:
    """A call for a queue the dialplan lacks is refused with UnknownQueue."""
    d = Driver(make_dialplan())
    with pytest.raises(UnknownQueue):
        d.arrive("c1", queue="sales")
    assert list(d.engine.view.calls) == []


def test_answer_from_an_agent_not_offered_is_illegal() -> None:
    """An answer from an agent not ringing for that call raises and changes nothing."""
    d = Driver(make_dialplan())
    d.queued("c1")  # rings alice only
    before = d.engine.view.to_dict()
    with pytest.raises(IllegalTransition):
        d.answer("c1", "bob")
    assert d.engine.view.to_dict() == before


@pytest.mark.parametrize("event", [
    ev.AnnouncementFinished(call_id="c1"),
    ev.LegHungUp(call_id="c1", target=Target.agent("alice")),
    ev.CallArrived(call_id="c1", caller="1", dialed="100", queue=QUEUE),
    ev.AgentLogin(agent_id="alice"),
    ev.LegFailed(call_id="c1", target=Target.agent("bob"), status=486),
])
def test_impossible_events_raise_illegal_transition(event: ev.Event) -> None:
    """Events impossible in the current state raise IllegalTransition and change nothing."""
    d = Driver(make_dialplan())
    d.queued("c1")  # c1 ringing alice; bob READY
    before = d.engine.view.to_dict()
    with pytest.raises(IllegalTransition):
        d.feed(event)
    assert d.engine.view.to_dict() == before


def test_agent_hangup_from_another_agent_is_illegal() -> None:
    """Only the bridged agent can hang up a bridged call."""
    d = Driver(make_dialplan())
    bridged(d, "c1", "alice")
    with pytest.raises(IllegalTransition):
        d.agent_hangup("c1", "bob")
    assert d.engine.view.calls["c1"].state is CallState.BRIDGED


@pytest.mark.parametrize("timer_id", [tm.RingTimer("c1"), tm.RingTimer("gone"),
                                      tm.WrapUpTimer("alice"), tm.WrapUpTimer("ghost"),
                                      tm.VendorRingTimer("c1"), tm.MaxWaitTimer("gone")])
def test_stale_or_unknown_timers_are_ignored(timer_id: tm.TimerId) -> None:
    """A timer that no longer means anything yields no action and changes nothing."""
    d = Driver(make_dialplan(logged_out=("bob",)))
    bridged(d, "c1", "alice")  # c1 bridged, alice on call: no ring nor wrap-up pending
    before = d.engine.view.to_dict()
    assert d.feed(ev.TimerFired(timer_id=timer_id)) == []
    assert d.engine.view.to_dict() == before


def test_events_validate_their_fields() -> None:
    """Events refuse empty ids and impossible status codes."""
    with pytest.raises(ValueError):
        ev.AgentLogin(agent_id="")
    with pytest.raises(ValueError):
        ev.LegFailed(call_id="c1", target=Target.agent("alice"), status=42)
    with pytest.raises(TypeError):
        ev.CallerHungUp("c1")  # type: ignore[call-arg]


def test_a_target_names_an_agent_or_a_vendor() -> None:
    """Targets are frozen values: same kind and id are equal; an agent is not a vendor."""
    assert Target.agent("alice") == Target("agent", "alice")
    assert Target.agent("acme") != Target.vendor("acme")
    assert str(Target.vendor("acme")) == "vendor acme"
    with pytest.raises(ValueError):
        Target("supervisor", "x")
    with pytest.raises(ValueError):
        Target.agent("")


def test_a_media_timeout_names_a_target_or_the_caller() -> None:
    """MediaTimedOut.leg is a Target or "caller"; a bare kind is refused."""
    assert ev.MediaTimedOut(call_id="c1", leg="caller").leg == "caller"
    with pytest.raises(ValueError):
        ev.MediaTimedOut(call_id="c1", leg="agent")  # type: ignore[arg-type]


def test_timer_ids_are_typed_values() -> None:
    """A timer id is a frozen value: equal ids are one dict key; a string is refused."""
    assert {tm.RingTimer("c1"): 1}[tm.RingTimer("c1")] == 1
    assert tm.RingTimer("c1") != tm.VendorRingTimer("c1")
    with pytest.raises(TypeError):
        ev.TimerFired(timer_id="ring:c1")  # type: ignore[arg-type]


def test_non_call_actions_have_no_call_id() -> None:
    """Timer, finish and agent actions carry no call_id; call actions all do."""
    timer = act.StartTimer(timer_id=tm.RingTimer("c1"), delay=1.0)
    assert not hasattr(timer, "call_id")
    assert not hasattr(act.CancelTimer(timer_id=tm.WrapUpTimer("x")), "call_id")
    assert isinstance(timer, act.BaseAction)
    assert isinstance(act.Bridge(call_id="c1", target=Target.agent("a")), act.CallAction)


# -- records --------------------------------------------------------------------------


def test_record_to_dict_is_json_with_the_expected_keys() -> None:
    """to_dict is JSON-serialisable, with ms epoch times, ISO twins and derived durations."""
    d = Driver(make_dialplan())
    d.arrive("c1")
    d.advance(3)
    d.announce("c1")
    d.advance(15)
    d.advance(1.25)
    d.answer("c1", "bob")
    d.advance(10)
    d.caller_hangup("c1")
    data = json.loads(json.dumps(d.records[0].to_dict()))
    times = ["arrived_at", "announced_at", "queued_at", "overflowed_at", "answered_at",
             "ended_at"]
    assert set(data) == {
        "call_id", "caller", "dialed", "queue", "group", "agent_id", "outcome", "route",
        "vendor", "overflow_reason",
        *times, *(f"{t}_iso" for t in times), "wait", "vendor_wait", "ring", "talk", "total",
        "short_abandon", "short_abandon_threshold", "qa_notice_played", "offers", "hold",
        "holds"}
    assert data["arrived_at"] == T0 and data["arrived_at_iso"] == "2023-11-14T22:13:20.000Z"
    assert data["answered_at_iso"] == "2023-11-14T22:13:39.250Z"
    assert (data["outcome"], data["agent_id"], data["wait"], data["ring"], data["talk"]) == (
        "answered_inhouse", "bob", 16.25, 1.25, 10)
    assert [(o["agent_id"], o["result"], o["ring"]) for o in data["offers"]] == [
        ("alice", "no_answer", 15), ("bob", "answered", 1.25)]
    assert set(data["offers"][0]) == {"agent_id", "vendor", "trunk", "offered_at", "offered_at_iso", "ended_at",
                                      "ended_at_iso", "ring", "result"}


def test_same_events_give_the_same_actions() -> None:
    """The engine is deterministic: one event script, identical actions twice."""
    def script() -> list[Any]:
        d = Driver(make_dialplan(("alice", "bob", "carol"), strategy=Strategy.RING_ALL))
        d.queued("c1")
        d.queued("c2")
        d.fail("c1", "bob", 486)
        d.advance(15)
        d.answer("c1", "alice")
        d.caller_hangup("c1")
        d.advance(20)
        return [a.record.to_dict() if isinstance(a, act.CallFinished) else a for a in d.log]

    assert script() == script()


# -- property: random event sequences -------------------------------------------------
#
# Operations mostly aim at live calls and the agents they concern (by index), so
# sequences get far into calls; some name random or unknown ids to hit refusals.

AGENTS = ("alice", "bob", "carol", "dave", "ghost")

_index = st.integers(0, 7)
_who = st.sampled_from(("offered", "offered", "offered", "bridged", "bridged", *AGENTS))

operations = st.one_of(
    st.tuples(st.just("arrive"), st.sampled_from(["support", "support", "sales", "nowhere"])),
    st.tuples(st.just("arrive_again"), _index),
    st.tuples(st.just("announce"), _index),
    st.tuples(st.just("announce"), _index),
    st.tuples(st.just("caller_hangup"), _index),
    st.tuples(st.sampled_from(["ringing", "answer", "answer", "agent_hangup"]), _index, _who,
              _index),
    st.tuples(st.just("fail"), _index, _who, _index,
              st.sampled_from([403, 408, 480, 486, 503, 603])),
    st.tuples(st.just("timer"), st.sampled_from(["ring", "wrapup", "vring"]), _index),
    st.tuples(st.sampled_from(["AgentLogin", "AgentLogout", "AgentReady", "AgentPause",
                               "AgentResponded", "AgentSendFailed"]),
              st.sampled_from(AGENTS)),
    st.tuples(st.just("advance"), st.sampled_from([0.5, 3.0, 5.0, 7.0, 10.0])),
)

_PRESENCE: dict[str, Any] = {"AgentLogin": ev.AgentLogin, "AgentLogout": ev.AgentLogout,
                             "AgentReady": ev.AgentReady, "AgentPause": ev.AgentPause,
                             "AgentResponded": ev.AgentResponded,
                             "AgentSendFailed": ev.AgentSendFailed}


def _pick_call(d: Driver, index: int) -> str:
    live = list(d.engine.view.calls)
    return live[index % len(live)] if live else "gone"


def _pick_agent(d: Driver, call_id: str, who: str, index: int) -> str:
    if call_id not in list(d.engine.view.calls):
        return who if who in AGENTS else "alice"
    if who == "offered":
        offered = d.engine.view.calls[call_id].ringing
        return offered[index % len(offered)] if offered else "alice"
    if who == "bridged":
        return d.engine.view.calls[call_id].record.agent_id or "bob"
    return who


def _event(d: Driver, op: tuple[Any, ...], serial: int) -> ev.Event:
    kind = op[0]
    if kind == "arrive":
        return ev.CallArrived(call_id=f"c{serial}", caller="555", dialed="100", queue=op[1])
    if kind == "arrive_again":
        return ev.CallArrived(call_id=_pick_call(d, op[1]), caller="555", dialed="100",
                              queue="support")
    if kind in _PRESENCE:
        return _PRESENCE[kind](agent_id=op[1])  # type: ignore[no-any-return]
    if kind == "timer":
        if op[1] == "ring":
            return ev.TimerFired(timer_id=tm.RingTimer(_pick_call(d, op[2])))
        if op[1] == "wrapup":
            return ev.TimerFired(timer_id=tm.WrapUpTimer(AGENTS[op[2] % len(AGENTS)]))
        return ev.TimerFired(timer_id=tm.VendorRingTimer(_pick_call(d, op[2])))
    call_id = _pick_call(d, op[1])
    if kind == "announce":
        return ev.AnnouncementFinished(call_id=call_id)
    if kind == "caller_hangup":
        return ev.CallerHungUp(call_id=call_id)
    agent_id = _pick_agent(d, call_id, op[2], op[3])
    if kind == "ringing":
        return ev.LegRinging(call_id=call_id, target=Target.agent(agent_id))
    if kind == "answer":
        return ev.LegAnswered(call_id=call_id, target=Target.agent(agent_id))
    if kind == "agent_hangup":
        return ev.LegHungUp(call_id=call_id, target=Target.agent(agent_id))
    assert kind == "fail"
    return ev.LegFailed(call_id=call_id, target=Target.agent(agent_id), status=op[4])


def _plan() -> Any:
    return make_dialplan(
        ("alice", "bob", "carol", "dave"), logged_out=("dave",), no_response=3.0,
        groups={"g1": ("alice", "bob"), "g2": ("bob", "carol", "dave")},
        queues=[make_queue("support", "g1", max_misses=2, ring_timeout=10.0, wrap_up=5.0),
                make_queue("sales", "g2", strategy=Strategy.RING_ALL, max_misses=1,
                           ring_timeout=7.0, wrap_up=0.0)])


def _check_invariants(d: Driver) -> None:
    engine: RoutingEngine = d.engine
    snap = engine.view.to_dict()
    calls, agents = snap["calls"], snap["agents"]
    offered = [(aid, cid) for cid, c in calls.items() for aid in c["ringing"]]
    reserved = [aid for aid, a in agents.items() if a["state"] == "reserved"]
    # Every RESERVED agent is ringing for exactly one live call, and only they ring.
    assert sorted(reserved) == sorted(aid for aid, _ in offered)
    for aid, cid in offered:
        assert agents[aid]["call_id"] == cid
    for c in calls.values():
        assert (c["state"] == "ringing") == bool(c["ringing"])
        ring = tm.RingTimer(c["record"]["call_id"])
        assert ring in d.pending_timers() or c["state"] != "ringing"
    on_call = [aid for aid, a in agents.items() if a["state"] == "on_call"]
    assert sorted(on_call) == sorted(c["record"]["agent_id"] for c in calls.values()
                                     if c["state"] == "bridged")
    # Whoever wraps up has a wrap-up timer running (injected TimerFired events may
    # leave extra, stale timers behind: those are ignored when they fire).
    for aid, a in agents.items():
        if a["state"] == "wrap_up":
            assert tm.WrapUpTimer(aid) in d.pending_timers()
    # An unreachable agent is probed: its probe timer is running.
    for aid, a in agents.items():
        if a["state"] == "unreachable":
            assert tm.AgentProbeTimer(aid) in d.pending_timers()
    # Nobody READY is left idle while a caller their group serves is waiting.
    plan = _plan()
    for c in calls.values():
        if c["state"] == "queued":
            group = plan.groups[plan.queues[c["queue"]].group]
            assert all(agents[a]["state"] != "ready" for a in group.agents)
    depth = sum(1 for c in calls.values() if c["state"] in ("queued", "ringing"))
    assert sum(q.depth for q in engine.view.queues.values()) == depth


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(operations, min_size=20, max_size=80))
def test_random_event_sequences_keep_the_invariants(ops: list[tuple[Any, ...]]) -> None:
    """Any event sequence: only CCSwitchErrors, which change nothing; offers stay consistent."""
    d = Driver(_plan())
    for serial, op in enumerate(ops):
        if op[0] == "advance":
            d.advance(op[1])  # timers fire through the engine and must never raise
        else:
            event = _event(d, op, serial)
            before = d.engine.view.to_dict()
            try:
                d.feed(event)
            except CCSwitchError:
                assert d.engine.view.to_dict() == before
        _check_invariants(d)
    for record in d.records:
        assert record.outcome is not None and record.ended_at is not None
        json.dumps(record.to_dict())
