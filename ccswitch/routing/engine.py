"""The call-routing engine: events in, actions out, no I/O.

``RoutingEngine.handle`` takes one :mod:`~ccswitch.routing.events` event and
returns the :mod:`~ccswitch.routing.actions` the adapter must carry out, in
order. Time comes from an injected clock (``seconds()``); timers are actions
(``StartTimer``) whose expiry comes back as ``TimerFired``. An event the engine
cannot accept raises a :class:`~ccswitch.errors.CCSwitchError` (``UnknownCall``,
``UnknownAgent``, ``UnknownQueue`` or ``IllegalTransition``) and changes nothing.

Rules worth knowing:

* Agents with ``logged_in: true`` start READY, idle since the engine was built
  (ties go by group order); the others start LOGGED_OUT.
* After every accepted event the engine dispatches: waiting (QUEUED) calls, oldest
  ``queued_at`` first across all queues, get the READY agents of their queue's group
  picked by the queue's strategy. So a READY agent in several groups goes to the
  longest-waiting call that can use it. One ``StartTimer("ring:<call>")`` per round.
* A missed offer (ring timeout or an error status from the agent's side) counts
  against the agent: back to READY at the end of the line, or NOT_READY once
  ``max_misses`` offers in a row were missed. An answer, ``AgentLogin`` or
  ``AgentReady`` resets the count. A cancelled offer (another agent answered, the
  caller left) is not a miss and keeps the agent's place in line.
* ``AgentPause``/``AgentLogout`` while an agent is reserved, on a call or in wrap-up
  are remembered and applied when the agent frees up; ``AgentReady`` meanwhile
  forgets them (and, in wrap-up, ends the wrap-up at once).
* ``AgentStateChanged`` is emitted once per group the agent belongs to (in dialplan
  order); an agent in no group produces none.
* ``CallFinished`` is the last action about a call; the engine forgets the call,
  and later events about it raise ``UnknownCall``. Timer ids that no longer mean
  anything (a cancelled timer racing its cancel) are ignored.
"""

from __future__ import annotations

from typing import Any, Protocol

import attrs
from twisted.logger import Logger

from ccswitch.errors import CCSwitchError, IllegalTransition
from ccswitch.model import Agent, Dialplan, Queue
from ccswitch.routing import actions as act
from ccswitch.routing import events as ev
from ccswitch.routing.record import CallRecord, Offer, Outcome
from ccswitch.routing.states import (
    AGENT_TRANSITIONS, CALL_TRANSITIONS, AgentState, CallState, transition,
)
from ccswitch.routing.strategies import STRATEGIES, AgentView

log = Logger()

RING_TIMER_PREFIX = "ring:"
WRAP_UP_TIMER_PREFIX = "wrapup:"


def ring_timer(call_id: str) -> str:
    """The id of a call's ring timer (one per offer round)."""
    return f"{RING_TIMER_PREFIX}{call_id}"


def wrap_up_timer(agent_id: str) -> str:
    """The id of an agent's wrap-up timer."""
    return f"{WRAP_UP_TIMER_PREFIX}{agent_id}"


class Clock(Protocol):
    """Anything with ``seconds()`` (an IReactorTime, ``task.Clock``)."""

    def seconds(self) -> float: ...


class UnknownCall(CCSwitchError):
    """An event names a call the engine does not know (never seen, or already finished)."""

    error_id = "routing.unknown_call"

    def __init__(self, call_id: str) -> None:
        self.call_id = call_id
        super().__init__(f"unknown call {call_id!r}")


class UnknownAgent(CCSwitchError):
    """An event names an agent the dialplan does not define."""

    error_id = "routing.unknown_agent"

    def __init__(self, agent_id: str) -> None:
        self.agent_id = agent_id
        super().__init__(f"unknown agent {agent_id!r}")


class UnknownQueue(CCSwitchError):
    """A call arrived for a queue the dialplan does not define."""

    error_id = "routing.unknown_queue"

    def __init__(self, queue: str) -> None:
        self.queue = queue
        super().__init__(f"unknown queue {queue!r}")


@attrs.define(kw_only=True, eq=False)
class _Agent:
    agent: Agent
    groups: tuple[str, ...]
    state: AgentState
    idle_since: float
    misses: int = 0
    call_id: str | None = None  # the call it is reserved for, on, or wrapping up
    pending: str | None = None  # "AgentPause"/"AgentLogout" to apply once free
    removed: bool = False  # dropped from the dialplan by a reload: forget it once free


@attrs.define(kw_only=True, eq=False)
class _Call:
    seq: int
    queue: Queue
    record: CallRecord
    state: CallState = CallState.ANNOUNCING
    ringing: dict[str, tuple[int, float]] = attrs.Factory(dict)  # agent -> (seq, offered_at)
    ended_offers: list[tuple[int, Offer]] = attrs.Factory(list)
    tried: set[str] = attrs.Factory(set)
    offer_seq: int = 0


class RoutingEngine:
    """Routes calls to in-house agents per the dialplan; pure and deterministic."""

    def __init__(self, dialplan: Dialplan, clock: Clock) -> None:
        self._dialplan = dialplan
        self._clock = clock
        now = clock.seconds()
        self._members, member_of = _memberships(dialplan)
        self._agents: dict[str, _Agent] = {
            agent_id: _new_agent(agent, member_of[agent_id], now)
            for agent_id, agent in dialplan.agents.items()
        }
        self._calls: dict[str, _Call] = {}
        self._seq = 0

    def reload(self, dialplan: Dialplan) -> list[act.Action]:
        """Put a new dialplan in force without touching calls in progress.

        - Calls already in the engine keep the queue settings they arrived with;
          new calls get the new queues and routes.
        - A new agent starts as its ``logged_in`` says. An existing agent keeps
          its state, except that a change of ``logged_in`` in the file is applied
          as a login or logout (a logout while busy waits until the agent is free).
        - An agent no longer in the dialplan is dropped at once when idle; when
          busy it finishes its call (or wrap-up) and is then dropped. It is never
          offered a call again.
        """
        now = self._clock.seconds()
        old_plan = self._dialplan
        self._dialplan = dialplan
        self._members, member_of = _memberships(dialplan)
        actions: list[act.Action] = []
        for agent_id, gone in list(self._agents.items()):
            if agent_id in dialplan.agents:
                continue
            gone.groups = ()
            if gone.state in (AgentState.READY, AgentState.NOT_READY, AgentState.LOGGED_OUT):
                del self._agents[agent_id]
            else:
                gone.removed = True
        for agent_id, spec in dialplan.agents.items():
            agent = self._agents.get(agent_id)
            if agent is None:
                self._agents[agent_id] = _new_agent(spec, member_of[agent_id], now)
                continue
            agent.agent = spec
            agent.groups = tuple(member_of[agent_id])
            agent.removed = False
            before = old_plan.agents.get(agent_id)
            if before is not None and before.logged_in != spec.logged_in:
                presence = ev.AgentLogin if spec.logged_in else ev.AgentLogout
                try:
                    actions.extend(self._presence(presence(agent_id=agent_id), now))
                except IllegalTransition:
                    pass  # already in the state the file asks for
        actions.extend(self._dispatch(now))
        return actions

    # -- the one entry point ------------------------------------------------

    def handle(self, event: ev.Event) -> list[act.Action]:
        """Apply ``event``; return the actions to perform, in order."""
        now = self._clock.seconds()
        actions: list[act.Action]
        match event:
            case ev.CallArrived():
                actions = self._call_arrived(event, now)
            case ev.AnnouncementFinished():
                actions = self._announcement_finished(event, now)
            case ev.CallerHungUp():
                actions = self._caller_hung_up(event, now)
            case ev.AgentRinging():
                actions = self._agent_ringing(event)
            case ev.AgentAnswered():
                actions = self._agent_answered(event, now)
            case ev.AgentFailed():
                actions = self._agent_failed(event, now)
            case ev.AgentHungUp():
                actions = self._agent_hung_up(event, now)
            case ev.TimerFired():
                actions = self._timer_fired(event, now)
            case ev.AgentLogin() | ev.AgentLogout() | ev.AgentReady() | ev.AgentPause():
                actions = self._presence(event, now)
            case _:
                raise TypeError(f"not a routing event: {event!r}")
        actions.extend(self._dispatch(now))
        return actions

    # -- queries ----------------------------------------------------------

    def queue_depths(self) -> dict[str, int]:
        """Callers waiting per queue (queued or being offered), every queue present."""
        depths = dict.fromkeys(self._dialplan.queues, 0)
        for call in self._calls.values():
            if call.state in (CallState.QUEUED, CallState.RINGING):
                depths[call.queue.name] = depths.get(call.queue.name, 0) + 1
        return depths

    def agent_states(self) -> dict[tuple[str, str], int]:
        """Agents per (group, state value), for every group and state, zeros included."""
        counts = {(group, state.value): 0 for group in self._members for state in AgentState}
        for agent in self._agents.values():
            for group in agent.groups:
                counts[(group, agent.state.value)] += 1
        return counts

    def agent_state(self, agent_id: str) -> AgentState:
        """One agent's state; raises UnknownAgent."""
        return self._agent(agent_id).state

    def calls(self) -> list[str]:
        """Ids of the calls in progress, in arrival order."""
        return list(self._calls)

    def call_state(self, call_id: str) -> CallState:
        """One call's state; raises UnknownCall."""
        return self._call(call_id).state

    def ringing_agents(self, call_id: str) -> tuple[str, ...]:
        """Agents currently offered the call, in ringing order; raises UnknownCall."""
        return tuple(self._call(call_id).ringing)

    def record(self, call_id: str) -> CallRecord:
        """The live record of a call in progress; raises UnknownCall."""
        return self._call(call_id).record

    def snapshot(self) -> dict[str, Any]:
        """A JSON-ready view of the whole routing state (for debugging and tests)."""
        return {
            "calls": {
                call_id: {
                    "state": call.state.value, "queue": call.queue.name,
                    "ringing": list(call.ringing), "tried": sorted(call.tried),
                    "record": call.record.to_dict(),
                }
                for call_id, call in self._calls.items()
            },
            "agents": {
                agent_id: {
                    "state": agent.state.value, "idle_since": agent.idle_since,
                    "misses": agent.misses, "call_id": agent.call_id, "pending": agent.pending,
                }
                for agent_id, agent in self._agents.items()
            },
        }

    # -- lookups ------------------------------------------------------------

    def _call(self, call_id: str) -> _Call:
        call = self._calls.get(call_id)
        if call is None:
            raise UnknownCall(call_id)
        return call

    def _agent(self, agent_id: str) -> _Agent:
        agent = self._agents.get(agent_id)
        if agent is None:
            raise UnknownAgent(agent_id)
        return agent

    def _offered(self, call: _Call, agent_id: str, event: str) -> _Agent:
        """The agent, which must be ringing for ``call`` (else IllegalTransition)."""
        agent = self._agent(agent_id)
        if agent_id not in call.ringing:
            raise IllegalTransition(f"offer {call.record.call_id}->{agent_id}", "none", event)
        return agent

    # -- call events ----------------------------------------------------------

    def _call_arrived(self, event: ev.CallArrived, now: float) -> list[act.Action]:
        existing = self._calls.get(event.call_id)
        if existing is not None:
            raise IllegalTransition(f"call {event.call_id}", existing.state.value, "CallArrived")
        queue = self._dialplan.queues.get(event.queue)
        if queue is None:
            raise UnknownQueue(event.queue)
        self._seq += 1
        record = CallRecord(call_id=event.call_id, caller=event.caller, dialed=event.dialed,
                            queue=queue.name, group=queue.group, arrived_at=now,
                            short_abandon_threshold=queue.short_abandon)
        self._calls[event.call_id] = _Call(seq=self._seq, queue=queue, record=record)
        return [act.AnswerCaller(call_id=event.call_id),
                act.PlayAnnouncement(call_id=event.call_id, path=str(queue.announcement))]

    def _announcement_finished(self, event: ev.AnnouncementFinished,
                               now: float) -> list[act.Action]:
        call = self._call(event.call_id)
        call.state = transition(f"call {event.call_id}", CALL_TRANSITIONS, call.state,
                                "AnnouncementFinished")
        record = call.record
        record.qa_notice_played = True
        record.announced_at = record.queued_at = now
        moh = call.queue.music_on_hold
        return [act.StartMusicOnHold(call_id=event.call_id,
                                     path=None if moh is None else str(moh))]

    def _agent_ringing(self, event: ev.AgentRinging) -> list[act.Action]:
        call = self._call(event.call_id)
        self._offered(call, event.agent_id, "AgentRinging")
        return []

    def _agent_answered(self, event: ev.AgentAnswered, now: float) -> list[act.Action]:
        call = self._call(event.call_id)
        agent = self._offered(call, event.agent_id, "AgentAnswered")
        call_id = event.call_id
        new_state = transition(f"call {call_id}", CALL_TRANSITIONS, call.state, "AgentAnswered")
        actions: list[act.Action] = [act.CancelTimer(timer_id=ring_timer(call_id)),
                                     act.StopMusicOnHold(call_id=call_id)]
        others = [a for a in call.ringing if a != event.agent_id]
        for other in others:
            actions.append(act.CancelAgent(call_id=call_id, agent_id=other))
            self._end_offer(call, other, "cancelled", now)
        self._end_offer(call, event.agent_id, "answered", now)
        call.state = new_state
        call.record.agent_id = event.agent_id
        call.record.answered_at = now
        actions.append(act.Bridge(call_id=call_id, agent_id=event.agent_id))
        old = agent.state
        agent.state = transition(f"agent {event.agent_id}", AGENT_TRANSITIONS, old,
                                 "AgentAnswered")
        agent.misses = 0
        actions.extend(self._changed(agent, old))
        for other in others:
            actions.extend(self._release(self._agents[other], "cancel", now, fresh=False))
        return actions

    def _agent_failed(self, event: ev.AgentFailed, now: float) -> list[act.Action]:
        call = self._call(event.call_id)
        agent = self._offered(call, event.agent_id, "AgentFailed")
        call.state = transition(f"call {event.call_id}", CALL_TRANSITIONS, call.state,
                                "AgentFailed")
        self._end_offer(call, event.agent_id, f"failed:{event.status}", now)
        actions: list[act.Action] = []
        if not call.ringing:
            actions.append(act.CancelTimer(timer_id=ring_timer(event.call_id)))
            call.state = transition(f"call {event.call_id}", CALL_TRANSITIONS, call.state,
                                    "round_over")
        actions.extend(self._miss(agent, call.queue, now))
        return actions

    def _ring_timeout(self, call_id: str, now: float) -> list[act.Action]:
        call = self._calls.get(call_id)
        if call is None or call.state is not CallState.RINGING:
            return []  # stale: the round ended before the timer fired
        call.state = transition(f"call {call_id}", CALL_TRANSITIONS, call.state, "ring_timeout")
        missed = list(call.ringing)
        actions: list[act.Action] = []
        for agent_id in missed:
            actions.append(act.CancelAgent(call_id=call_id, agent_id=agent_id))
            self._end_offer(call, agent_id, "no_answer", now)
        for agent_id in missed:
            actions.extend(self._miss(self._agents[agent_id], call.queue, now))
        return actions

    def _caller_hung_up(self, event: ev.CallerHungUp, now: float) -> list[act.Action]:
        call = self._call(event.call_id)
        call_id = event.call_id
        transition(f"call {call_id}", CALL_TRANSITIONS, call.state, "CallerHungUp")
        if call.state is CallState.BRIDGED:
            agent_id = call.record.agent_id
            assert agent_id is not None
            return [act.HangupAgent(call_id=call_id, agent_id=agent_id),
                    self._finish(call, Outcome.ANSWERED, now),
                    *self._after_call(self._agents[agent_id], call.queue, now)]
        actions: list[act.Action] = []
        ringing = list(call.ringing)
        if ringing:
            actions.append(act.CancelTimer(timer_id=ring_timer(call_id)))
        for agent_id in ringing:
            actions.append(act.CancelAgent(call_id=call_id, agent_id=agent_id))
            self._end_offer(call, agent_id, "cancelled", now)
        actions.append(self._finish(call, Outcome.ABANDONED, now))
        for agent_id in ringing:
            actions.extend(self._release(self._agents[agent_id], "cancel", now, fresh=False))
        return actions

    def _agent_hung_up(self, event: ev.AgentHungUp, now: float) -> list[act.Action]:
        call = self._call(event.call_id)
        agent = self._agent(event.agent_id)
        transition(f"call {event.call_id}", CALL_TRANSITIONS, call.state, "AgentHungUp")
        if call.record.agent_id != event.agent_id:
            raise IllegalTransition(f"offer {event.call_id}->{event.agent_id}", "not bridged",
                                    "AgentHungUp")
        return [act.HangupCaller(call_id=event.call_id),
                self._finish(call, Outcome.ANSWERED, now),
                *self._after_call(agent, call.queue, now)]

    # -- timers and presence ------------------------------------------------

    def _timer_fired(self, event: ev.TimerFired, now: float) -> list[act.Action]:
        timer_id = event.timer_id
        if timer_id.startswith(RING_TIMER_PREFIX):
            return self._ring_timeout(timer_id[len(RING_TIMER_PREFIX):], now)
        if timer_id.startswith(WRAP_UP_TIMER_PREFIX):
            agent = self._agents.get(timer_id[len(WRAP_UP_TIMER_PREFIX):])
            if agent is not None and agent.state is AgentState.WRAP_UP:
                return self._release(agent, "wrap_up_done", now, fresh=True)
        log.debug("ignoring stale or unknown timer {timer_id}", timer_id=timer_id)
        return []

    def _presence(self, event: ev.AgentLogin | ev.AgentLogout | ev.AgentReady | ev.AgentPause,
                  now: float) -> list[act.Action]:
        agent = self._agent(event.agent_id)
        name = type(event).__name__
        old = agent.state
        new = transition(f"agent {event.agent_id}", AGENT_TRANSITIONS, old, name)
        if new is old:
            # Busy: remember a pause/logout for later; a ready forgets it.
            agent.pending = None if isinstance(event, ev.AgentReady) else name
            return []
        actions: list[act.Action] = []
        if old is AgentState.WRAP_UP:
            actions.append(act.CancelTimer(timer_id=wrap_up_timer(event.agent_id)))
            agent.call_id = None
        agent.state = new
        agent.pending = None
        if new is AgentState.READY:
            agent.idle_since = now
            agent.misses = 0
        actions.extend(self._changed(agent, old))
        return actions

    # -- dispatch -------------------------------------------------------------

    def _dispatch(self, now: float) -> list[act.Action]:
        """Offer waiting calls, oldest first, to the READY agents their strategy picks."""
        waiting = [c for c in self._calls.values() if c.state is CallState.QUEUED]
        if not waiting:
            return []
        waiting.sort(key=lambda c: (c.record.queued_at, c.seq))
        actions: list[act.Action] = []
        for call in waiting:
            members = self._members.get(call.queue.group, ())
            candidates = [
                AgentView(id=agent_id, idle_since=agent.idle_since, misses=agent.misses,
                          order=order)
                for order, agent_id in enumerate(members)
                if (agent := self._agents[agent_id]).state is AgentState.READY
            ]
            if not candidates:
                continue
            ready = {c.id for c in candidates}
            picked = [agent_id for agent_id in dict.fromkeys(
                STRATEGIES[call.queue.strategy](candidates, frozenset(call.tried)))
                if agent_id in ready]
            if not picked:
                continue
            call_id = call.record.call_id
            call.state = transition(f"call {call_id}", CALL_TRANSITIONS, call.state, "offer")
            for agent_id in picked:
                agent = self._agents[agent_id]
                old = agent.state
                agent.state = transition(f"agent {agent_id}", AGENT_TRANSITIONS, old, "offer")
                agent.call_id = call_id
                call.offer_seq += 1
                call.ringing[agent_id] = (call.offer_seq, now)
                call.tried.add(agent_id)
                actions.extend(self._changed(agent, old))
                actions.append(act.RingAgent(call_id=call_id, agent_id=agent_id,
                                             uri=agent.agent.uri))
            actions.append(act.StartTimer(timer_id=ring_timer(call_id),
                                          delay=call.queue.ring_timeout))
        return actions

    # -- helpers ------------------------------------------------------------

    def _changed(self, agent: _Agent, old: AgentState) -> list[act.Action]:
        if agent.state is old:
            return []
        return [act.AgentStateChanged(agent_id=agent.agent.id, group=group, old=old,
                                      new=agent.state)
                for group in agent.groups]

    def _release(self, agent: _Agent, trigger: str, now: float, *,
                 fresh: bool) -> list[act.Action]:
        """Free a busy agent with ``trigger``, applying a remembered pause/logout.

        ``fresh``: the agent goes to the back of the line (idle from now).
        """
        old = agent.state
        new = transition(f"agent {agent.agent.id}", AGENT_TRANSITIONS, old, trigger)
        if agent.pending is not None and new in (AgentState.READY, AgentState.NOT_READY):
            new = AGENT_TRANSITIONS.get((new, agent.pending), new)
            agent.pending = None
        agent.state = new
        agent.call_id = None
        if fresh and new is AgentState.READY:
            agent.idle_since = now
        if agent.removed:
            del self._agents[agent.agent.id]
        return self._changed(agent, old)

    def _miss(self, agent: _Agent, queue: Queue, now: float) -> list[act.Action]:
        agent.misses += 1
        if agent.misses >= queue.max_misses:
            log.info("agent {agent} missed {misses} offers in a row: not ready",
                     agent=agent.agent.id, misses=agent.misses, queue=queue.name)
            return self._release(agent, "miss_limit", now, fresh=True)
        return self._release(agent, "miss", now, fresh=True)

    def _after_call(self, agent: _Agent, queue: Queue, now: float) -> list[act.Action]:
        """The bridged call ended: wrap up, or straight back to READY if wrap_up is 0."""
        if queue.wrap_up <= 0:
            return self._release(agent, "call_end_no_wrap_up", now, fresh=True)
        old = agent.state
        agent.state = transition(f"agent {agent.agent.id}", AGENT_TRANSITIONS, old, "call_end")
        return [*self._changed(agent, old),
                act.StartTimer(timer_id=wrap_up_timer(agent.agent.id), delay=queue.wrap_up)]

    def _end_offer(self, call: _Call, agent_id: str, result: str, now: float) -> None:
        seq, offered_at = call.ringing.pop(agent_id)
        call.ended_offers.append(
            (seq, Offer(agent_id=agent_id, offered_at=offered_at, ended_at=now, result=result)))
        call.ended_offers.sort(key=lambda item: item[0])
        call.record.offers = [offer for _, offer in call.ended_offers]

    def _finish(self, call: _Call, outcome: Outcome, now: float) -> act.CallFinished:
        call.state = CallState.ENDED
        record = call.record
        record.outcome = outcome
        record.ended_at = now
        del self._calls[record.call_id]
        return act.CallFinished(record=record)


def _memberships(dialplan: Dialplan) -> tuple[dict[str, tuple[str, ...]], dict[str, list[str]]]:
    """Members of each group (known agents, listed order) and each agent's groups."""
    members: dict[str, tuple[str, ...]] = {}
    member_of: dict[str, list[str]] = {agent_id: [] for agent_id in dialplan.agents}
    for name, group in dialplan.groups.items():
        ids = tuple(dict.fromkeys(a for a in group.agents if a in dialplan.agents))
        members[name] = ids
        for agent_id in ids:
            member_of[agent_id].append(name)
    return members, member_of


def _new_agent(agent: Agent, groups: list[str], now: float) -> _Agent:
    return _Agent(agent=agent, groups=tuple(groups), idle_since=now,
                  state=AgentState.READY if agent.logged_in else AgentState.LOGGED_OUT)
