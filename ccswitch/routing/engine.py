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
  longest-waiting call that can use it. One ``StartTimer(RingTimer(call))`` per round.
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

Overflow to vendors (the queue's ``overflow`` rules, checked in order):

* A waiting call's rules are checked on every dispatch, before in-house agents
  are offered it. ``share`` and ``queue_length_exceeds`` are decided once, when
  the call enters the queue. ``no_agents_available``, ``queue_length_exceeds``
  and ``service_level_below`` only fire while no in-house agent is free for the
  call; ``wait_exceeds`` fires once the wait is over and the call is not ringing
  an agent (an agent who just let it ring out does not hold it back); ``share``,
  ``outside_hours`` and ``no_agents_logged_in`` fire regardless.
* A rule that holds sends the call to the first of its vendors that is in
  rotation, inside its schedule, under ``max_channels`` and has not already
  failed this call; if there is none the next rule is tried, and with no rule
  left the caller keeps waiting for in-house agents. A call is never dropped
  because a vendor is full.
* A vendor's trunks are tried in order on 5xx and 408 (no response); any other
  error, or its ``ring_timeout``, moves on to the rule's next vendor, then back
  to the queue. 5xx, 408 and ring timeouts count against the vendor's health.
* ``share`` is deficit-based: each new call of the queue earns the vendor
  ``percent``/100 of a call; a credit of one sends the call. A share call the
  vendor did not take (failed, or an in-house agent took it over) gives the
  credit back. Credit saved up while the vendor could not take calls is capped
  at ``SHARE_CREDIT_CAP`` calls.
* While a vendor rings, an agent who becomes free may be offered the call too
  (``inhouse_takeover``); whoever answers first gets it.
* ``max_wait``: when it runs out, in-house offers are withdrawn and the call goes
  to the ``max_wait`` vendors, else hears the ``announcement`` (if any) and is
  hung up (outcome ``timeout``). A vendor already ringing is left to finish.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Protocol

import attrs

from ccswitch.errors import CCSwitchError, IllegalTransition
from ccswitch.model import MAX_WAIT_REASON, Agent, Condition, Dialplan, Queue, ServiceLevel, Vendor
from ccswitch.routing import actions as act
from ccswitch.routing import events as ev
from ccswitch.routing import timers as tm
from ccswitch.routing.actions import NoteLevel
from ccswitch.routing.record import CallRecord, Offer, Outcome, Route
from ccswitch.routing.states import (
    AGENT_TRANSITIONS, CALL_TRANSITIONS, VENDOR_TRANSITIONS, AgentState, CallState, VendorHealth,
    transition,
)
from ccswitch.routing.strategies import STRATEGIES, AgentView

DEBUG, INFO, WARN = NoteLevel.DEBUG, NoteLevel.INFO, NoteLevel.WARN

#: Share credit a vendor can save up while it cannot take calls, in calls.
SHARE_CREDIT_CAP = 3.0
_EPSILON = 1e-9


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
class _Vendor:
    vendor: Vendor
    health: VendorHealth = VendorHealth.UP
    failures: int = 0  # in a row
    in_use: int = 0
    removed: bool = False  # dropped by a reload: forget it once its last call ends


@attrs.define(kw_only=True, eq=False)
class _VendorTry:
    """The call's offer to a vendor: which trunk, why, and who comes next."""

    vendor: str
    reason: str
    fallbacks: tuple[str, ...]
    trunk: int = 0
    seq: int = 0
    offered_at: float = 0.0
    answered: bool = False
    share: bool = False  # sent by a share rule: give the credit back if the vendor does not take it
    prior: tuple[Route, str | None, str | None, float | None] = (Route.INHOUSE, None, None, None)


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
    vendor: _VendorTry | None = None
    failed_vendors: set[str] = attrs.Factory(set)
    noted: set[tuple[str, str]] = attrs.Factory(set)  # (vendor, cause) already reported
    entering: bool = True  # rules not yet checked since it entered the queue
    final: bool = False  # max_wait ran out: no way back to the queue


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
        self._vendors: dict[str, _Vendor] = {
            name: _Vendor(vendor=vendor) for name, vendor in dialplan.vendors.items()}
        self._started = False
        # Per queue: (time, wait) of calls the in-house agents handled; wait None = abandoned.
        self._samples: dict[str, deque[tuple[float, float | None]]] = {}
        self._sl_on: dict[tuple[str, int], bool] = {}  # service_level_below rule is on
        self._credit: dict[tuple[str, str], float] = {}  # share credit per (queue, vendor)

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
        actions.extend(self._reload_vendors(old_plan, dialplan))
        if old_plan.queues != dialplan.queues:
            self._sl_on.clear()
            self._credit = {key: credit for key, credit in self._credit.items()
                            if _shares(dialplan.queues.get(key[0]), key[1])}
        actions.extend(self._dispatch(now))
        return actions

    def _reload_vendors(self, old_plan: Dialplan, dialplan: Dialplan) -> list[act.Action]:
        """New vendors start in rotation (and get probed); changed ones keep their health;
        removed ones finish their calls and are forgotten."""
        actions: list[act.Action] = []
        for name, gone in list(self._vendors.items()):
            if name not in dialplan.vendors:
                if gone.in_use:
                    gone.removed = True
                else:
                    del self._vendors[name]
        for name, vendor in dialplan.vendors.items():
            existing = self._vendors.get(name)
            if existing is None:
                self._vendors[name] = _Vendor(vendor=vendor)
                if self._started:
                    actions.extend(self._probe(name))
                continue
            old = old_plan.vendors.get(name)
            existing.vendor = vendor
            existing.removed = False
            if self._started and old is not None and old.probe_interval != vendor.probe_interval:
                actions.extend(self._probe(name))
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
            case ev.MediaTimedOut():
                actions = self._media_timed_out(event, now)
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
            case ev.VendorRinging():
                actions = self._vendor_ringing(event)
            case ev.VendorAnswered():
                actions = self._vendor_answered(event, now)
            case ev.VendorFailed():
                actions = self._vendor_failed(event, now)
            case ev.VendorHungUp():
                actions = self._vendor_hung_up(event, now)
            case ev.VendorProbed():
                actions = self._vendor_probed(event, now)
            case ev.NodeStarted():
                actions = self._node_started()
            case ev.PresenceSet():
                actions = self._set_presence(event.agent_id, event.presence, now)
            case ev.AgentBusyElsewhere():
                actions = self._busy_elsewhere(event)
            case ev.AgentFreeElsewhere():
                actions = self._free_elsewhere(event, now)
            case ev.AgentTaken():
                actions = self._agent_taken(event, now)
            case ev.VendorFull():
                actions = self._vendor_full(event, now)
            case _:
                raise TypeError(f"not a routing event: {event!r}")
        actions.extend(self._dispatch(now))
        return actions

    # -- queries ----------------------------------------------------------

    def queue_depths(self) -> dict[str, int]:
        """Callers waiting per queue (queued, or offered to agents or a vendor), every
        queue present."""
        depths = dict.fromkeys(self._dialplan.queues, 0)
        for call in self._calls.values():
            if call.state in (CallState.QUEUED, CallState.RINGING, CallState.OVERFLOW):
                depths[call.queue.name] = depths.get(call.queue.name, 0) + 1
        return depths

    def presence(self) -> dict[str, tuple[str, bool]]:
        """Per agent: the presence it returns to once free (logged_out, ready, not_ready)
        and its dialplan ``logged_in`` (what the embedded store saves)."""
        return {agent_id: (_presence_of(agent), agent.agent.logged_in)
                for agent_id, agent in self._agents.items() if not agent.removed}

    def restore(self, saved: dict[str, tuple[str, bool]]) -> list[act.Action]:
        """Put agents back into a saved presence (before any call); the dialplan wins for
        an agent whose ``logged_in`` changed since the save, or that is not in it."""
        actions: list[act.Action] = []
        now = self._clock.seconds()
        for agent_id, (presence, logged_in) in saved.items():
            agent = self._agents.get(agent_id)
            if agent is not None and agent.agent.logged_in == logged_in:
                actions.extend(self._set_presence(agent_id, presence, now))
        return actions

    def agents(self) -> dict[str, AgentState]:
        """Every agent's state, by id."""
        return {agent_id: agent.state for agent_id, agent in self._agents.items()}

    def agent_groups(self, agent_id: str) -> list[str]:
        """The groups an agent belongs to, in dialplan order; raises UnknownAgent."""
        return list(self._agent(agent_id).groups)

    def call_vendor(self, call_id: str) -> str | None:
        """The vendor a call is offered to or bridged with now; None for none or an
        unknown call."""
        call = self._calls.get(call_id)
        return None if call is None or call.vendor is None else call.vendor.vendor

    def busy_agents(self) -> dict[str, str]:
        """agent -> call of the agents this node holds (reserved, on a call, wrapping up)."""
        return {agent_id: agent.call_id for agent_id, agent in self._agents.items()
                if agent.call_id is not None and agent.state in (
                    AgentState.RESERVED, AgentState.ON_CALL, AgentState.WRAP_UP)}

    def waiting(self) -> list[tuple[str, str, float]]:
        """(queue, call, queued_at) of the calls waiting for an agent and not ringing one."""
        return [(c.queue.name, call_id, c.record.queued_at)
                for call_id, c in self._calls.items()
                if c.state is CallState.QUEUED and c.record.queued_at is not None]

    def queues_served_by(self, agent_id: str) -> list[str]:
        """The queues whose group holds the agent (the callers it may be owed to)."""
        groups = set(self._agent(agent_id).groups)
        return sorted(name for name, q in self._dialplan.queues.items() if q.group in groups)

    def queue_groups(self) -> dict[str, str]:
        """The in-house group of each queue of the dialplan in force."""
        return {name: queue.group for name, queue in self._dialplan.queues.items()}

    def vendor_states(self) -> dict[str, tuple[int, int, VendorHealth]]:
        """Per vendor of the dialplan: (channels in use, max_channels, health)."""
        return {name: (rt.in_use, rt.vendor.max_channels, rt.health)
                for name, rt in self._vendors.items() if not rt.removed}

    def vendor_health(self, vendor: str) -> VendorHealth:
        """One vendor's health; raises KeyError for a vendor the dialplan lacks."""
        return self._vendors[vendor].health

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
                    "vendor": None if call.vendor is None else call.vendor.vendor,
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
            "vendors": {
                name: {"health": rt.health.value, "failures": rt.failures, "in_use": rt.in_use}
                for name, rt in self._vendors.items()
            },
            "share_credit": {f"{q}/{v}": c for (q, v), c in self._credit.items()},
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
        call_id = event.call_id
        call.state = transition(f"call {call_id}", CALL_TRANSITIONS, call.state,
                                "AnnouncementFinished")
        if call.state is CallState.ENDED:  # the max-wait farewell is over
            return [act.HangupCaller(call_id=call_id), *self._finish(call, Outcome.TIMEOUT, now)]
        record = call.record
        record.qa_notice_played = True
        record.announced_at = record.queued_at = now
        moh = call.queue.music_on_hold
        actions: list[act.Action] = [act.StartMusicOnHold(call_id=call_id,
                                                          path=None if moh is None else str(moh))]
        actions.extend(act.StartTimer(timer_id=timer_id, delay=delay)
                       for timer_id, delay in _queue_timers(call.queue, call_id))
        return actions

    def _agent_ringing(self, event: ev.AgentRinging) -> list[act.Action]:
        call = self._call(event.call_id)
        self._offered(call, event.agent_id, "AgentRinging")
        return []

    def _agent_answered(self, event: ev.AgentAnswered, now: float) -> list[act.Action]:
        call = self._call(event.call_id)
        agent = self._offered(call, event.agent_id, "AgentAnswered")
        call_id = event.call_id
        new_state = transition(f"call {call_id}", CALL_TRANSITIONS, call.state, "AgentAnswered")
        actions: list[act.Action] = [act.CancelTimer(timer_id=tm.RingTimer(call_id)),
                                     act.StopMusicOnHold(call_id=call_id)]
        if call.vendor is not None:  # taken over from the vendor
            actions.extend(self._withdraw_vendor(call, "cancelled", now))
        call.record.route = Route.INHOUSE
        call.record.vendor = None
        others = [a for a in call.ringing if a != event.agent_id]
        for other in others:
            actions.append(act.CancelAgent(call_id=call_id, agent_id=other))
            self._end_offer(call, other, "cancelled", now)
        self._end_offer(call, event.agent_id, "answered", now)
        call.state = new_state
        call.record.agent_id = event.agent_id
        call.record.answered_at = now
        self._sample(call, now)
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
            actions.append(act.CancelTimer(timer_id=tm.RingTimer(event.call_id)))
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
        return self._caller_gone(self._call(event.call_id), now)

    def _media_timed_out(self, event: ev.MediaTimedOut, now: float) -> list[act.Action]:
        """A silent party ends the whole call: both sides are hung up, outcome media_timeout."""
        call = self._call(event.call_id)
        return [act.note(WARN, "call {call_id}: no RTP from the {leg} for too long, ending "
                         "the call", call_id=event.call_id, leg=event.leg),
                act.HangupCaller(call_id=event.call_id),
                *self._caller_gone(call, now, Outcome.MEDIA_TIMEOUT)]

    def _caller_gone(self, call: _Call, now: float,
                     outcome: Outcome | None = None) -> list[act.Action]:
        """The caller's side is gone: end the call (``outcome`` None: the one it earned)."""
        call_id = call.record.call_id
        transition(f"call {call_id}", CALL_TRANSITIONS, call.state, "CallerHungUp")
        if call.state is CallState.BRIDGED:
            agent_id = call.record.agent_id
            if agent_id is None:
                assert call.vendor is not None
                return [act.HangupVendor(call_id=call_id, vendor=call.vendor.vendor),
                        *self._finish(call, outcome or Outcome.ANSWERED_VENDOR, now)]
            return [act.HangupAgent(call_id=call_id, agent_id=agent_id),
                    *self._finish(call, outcome or Outcome.ANSWERED_INHOUSE, now),
                    *self._after_call(self._agents[agent_id], call.queue, now)]
        if call.state is CallState.CLOSING:
            return self._finish(call, outcome or Outcome.TIMEOUT, now)
        actions: list[act.Action] = []
        if call.vendor is not None:
            actions.extend(self._withdraw_vendor(call, "cancelled", now))
        cancels, ringing = self._cancel_ringing(call, now)
        actions.extend(cancels)
        actions.extend(self._finish(call, outcome or self._unanswered(call, bool(ringing), now),
                                    now))
        actions.extend(self._release_cancelled(ringing, now))
        return actions

    def _unanswered(self, call: _Call, ringing: bool, now: float) -> Outcome:
        """The outcome of a caller who left before anyone answered."""
        record = call.record
        if record.overflow_reason is not None:
            return Outcome.OVERFLOW_FAILED
        if now - record.arrived_at < record.short_abandon_threshold:
            return Outcome.SHORT_ABANDON
        return Outcome.ABANDONED_RINGING if ringing else Outcome.ABANDONED_QUEUE

    def _agent_hung_up(self, event: ev.AgentHungUp, now: float) -> list[act.Action]:
        call = self._call(event.call_id)
        agent = self._agent(event.agent_id)
        transition(f"call {event.call_id}", CALL_TRANSITIONS, call.state, "AgentHungUp")
        if call.record.agent_id != event.agent_id:
            raise IllegalTransition(f"offer {event.call_id}->{event.agent_id}", "not bridged",
                                    "AgentHungUp")
        return [act.HangupCaller(call_id=event.call_id),
                *self._finish(call, Outcome.ANSWERED_INHOUSE, now),
                *self._after_call(agent, call.queue, now)]

    # -- shared state -----------------------------------------------------------

    def _set_presence(self, agent_id: str, presence: str, now: float) -> list[act.Action]:
        """Move an agent towards ``presence`` (a busy one gets it when free); unknown
        agents are ignored (another node's dialplan may differ)."""
        agent = self._agents.get(agent_id)
        if agent is None or agent.removed or _presence_of(agent) == presence:
            return []
        actions: list[act.Action] = []
        if presence == AgentState.LOGGED_OUT.value:
            steps: tuple[type[ev.AgentLogin | ev.AgentLogout | ev.AgentPause | ev.AgentReady],
                         ...] = (ev.AgentLogout,)
        elif presence == AgentState.READY.value:
            steps = (ev.AgentLogin,) if agent.state is AgentState.LOGGED_OUT else (
                ev.AgentReady,)
        elif agent.state is AgentState.LOGGED_OUT:
            steps = (ev.AgentLogin, ev.AgentPause)
        else:
            steps = (ev.AgentPause,)
        for step in steps:
            actions.extend(self._presence(step(agent_id=agent_id), now))
        return actions

    def _busy_elsewhere(self, event: ev.AgentBusyElsewhere) -> list[act.Action]:
        agent = self._agents.get(event.agent_id)
        if agent is None or agent.state is not AgentState.READY:
            return []  # busy here (our own hold), away, or not in our dialplan
        old = agent.state
        agent.state = transition(f"agent {event.agent_id}", AGENT_TRANSITIONS, old,
                                 "remote_busy")
        return self._changed(agent, old)

    def _free_elsewhere(self, event: ev.AgentFreeElsewhere, now: float) -> list[act.Action]:
        agent = self._agents.get(event.agent_id)
        if agent is None or agent.state is not AgentState.REMOTE:
            return []
        actions = self._release(agent, "remote_free", now, fresh=False)
        agent.idle_since = now if event.idle_since is None else event.idle_since
        return actions

    def _agent_taken(self, event: ev.AgentTaken, now: float) -> list[act.Action]:
        """Our reservation was refused: withdraw the offer without counting a miss."""
        call = self._call(event.call_id)
        agent = self._offered(call, event.agent_id, "AgentTaken")
        call_id = event.call_id
        actions: list[act.Action] = [act.CancelAgent(call_id=call_id, agent_id=event.agent_id)]
        self._end_offer(call, event.agent_id, "cancelled", now)
        call.tried.discard(event.agent_id)
        if not call.ringing:
            actions.append(act.CancelTimer(timer_id=tm.RingTimer(call_id)))
            trigger = "round_over"
            call.state = transition(f"call {call_id}", CALL_TRANSITIONS, call.state, trigger)
        old = agent.state
        agent.state = transition(f"agent {event.agent_id}", AGENT_TRANSITIONS, old, "taken")
        agent.call_id = None
        actions.extend(self._changed(agent, old))
        return actions

    def _vendor_full(self, event: ev.VendorFull, now: float) -> list[act.Action]:
        """The vendor is full over all nodes: like a vendor at its cap here."""
        call = self._call(event.call_id)
        trying = self._trying(call, event.vendor, "VendorFull")
        call_id = event.call_id
        actions: list[act.Action] = [
            act.CancelVendor(call_id=call_id, vendor=event.vendor),
            act.CancelTimer(timer_id=tm.VendorRingTimer(call_id))]
        record = call.record  # no offer was made: the record is as before it
        record.route, record.vendor, record.overflow_reason, record.overflowed_at = trying.prior
        return actions + self._leave_vendor(call, trying, "full", now)

    # -- vendor events --------------------------------------------------------

    def _trying(self, call: _Call, vendor: str, event: str) -> _VendorTry:
        """The call's vendor offer, which must be to ``vendor`` (else IllegalTransition)."""
        trying = call.vendor
        if trying is None or trying.vendor != vendor:
            raise IllegalTransition(f"offer {call.record.call_id}->vendor {vendor}", "none", event)
        return trying

    def _vendor_ringing(self, event: ev.VendorRinging) -> list[act.Action]:
        call = self._call(event.call_id)
        trying = self._trying(call, event.vendor, "VendorRinging")
        if trying.answered:
            raise IllegalTransition(f"offer {event.call_id}->vendor {event.vendor}", "answered",
                                    "VendorRinging")
        transition(f"call {event.call_id}", CALL_TRANSITIONS, call.state, "VendorRinging")
        return []

    def _vendor_answered(self, event: ev.VendorAnswered, now: float) -> list[act.Action]:
        call = self._call(event.call_id)
        trying = self._trying(call, event.vendor, "VendorAnswered")
        call_id = event.call_id
        new_state = transition(f"call {call_id}", CALL_TRANSITIONS, call.state, "VendorAnswered")
        actions: list[act.Action] = [
            act.CancelTimer(timer_id=tm.VendorRingTimer(call_id)),
            act.StopMusicOnHold(call_id=call_id)]
        cancels, ringing = self._cancel_ringing(call, now)
        actions.extend(cancels)
        self._end_vendor_offer(call, trying, "answered", now)
        trying.answered = True
        call.state = new_state
        call.record.answered_at = now
        actions.append(act.BridgeVendor(call_id=call_id, vendor=event.vendor))
        actions.extend(self._vendor_result(event.vendor, ok=True, now=now))
        actions.extend(self._release_cancelled(ringing, now))
        return actions

    def _vendor_failed(self, event: ev.VendorFailed, now: float) -> list[act.Action]:
        call = self._call(event.call_id)
        trying = self._trying(call, event.vendor, "VendorFailed")
        if trying.answered:
            raise IllegalTransition(f"offer {event.call_id}->vendor {event.vendor}", "answered",
                                    "VendorFailed")
        transition(f"call {event.call_id}", CALL_TRANSITIONS, call.state, "VendorFailed")
        status = event.status
        trunk_down = status == 408 or 500 <= status < 600
        actions: list[act.Action] = [
            act.CancelTimer(timer_id=tm.VendorRingTimer(event.call_id))]
        self._end_vendor_offer(call, trying, f"failed:{status}", now)
        if trunk_down:
            actions.extend(self._vendor_result(event.vendor, ok=False, now=now))
        rt = self._vendors.get(event.vendor)
        if (trunk_down and rt is not None and trying.trunk + 1 < len(rt.vendor.trunks)
                and rt.health is VendorHealth.UP):
            trying.trunk += 1
            actions.extend(self._ring_trunk(call, rt, trying, now))
            return actions
        actions.extend(self._vendor_gave_up(call, now))
        return actions

    def _vendor_ring_timeout(self, call_id: str, now: float) -> list[act.Action]:
        call = self._calls.get(call_id)
        trying = None if call is None else call.vendor
        if call is None or trying is None or trying.answered:
            return []  # stale
        actions: list[act.Action] = [act.CancelVendor(call_id=call_id, vendor=trying.vendor)]
        self._end_vendor_offer(call, trying, "no_answer", now)
        actions.extend(self._vendor_result(trying.vendor, ok=False, now=now))
        actions.extend(self._vendor_gave_up(call, now))
        return actions

    def _vendor_gave_up(self, call: _Call, now: float) -> list[act.Action]:
        """The vendor offer ended unanswered: its next vendor, else back to the queue."""
        trying = call.vendor
        assert trying is not None
        return self._leave_vendor(call, trying, "failed", now)

    def _leave_vendor(self, call: _Call, trying: _VendorTry, cause: str,
                      now: float) -> list[act.Action]:
        """The vendor did not take the call (``cause`` full or failed): its channel is
        freed, then the rule's next vendor; with none left the call goes back to the
        queue, or after max_wait to its final action."""
        call.failed_vendors.add(trying.vendor)
        self._release_vendor(call)
        actions = self._note(call, trying.vendor, cause)
        actions.extend(self._send_to_vendor(call, trying.fallbacks, trying.reason, now))
        if call.vendor is not None:
            return actions
        if call.final:
            return actions + self._close(call, now)
        trigger = "vendors_exhausted_ringing" if call.ringing else "vendors_exhausted"
        call.state = transition(f"call {call.record.call_id}", CALL_TRANSITIONS, call.state,
                                trigger)
        return actions

    def _vendor_hung_up(self, event: ev.VendorHungUp, now: float) -> list[act.Action]:
        call = self._call(event.call_id)
        trying = self._trying(call, event.vendor, "VendorHungUp")
        transition(f"call {event.call_id}", CALL_TRANSITIONS, call.state, "VendorHungUp")
        assert trying.answered
        return [act.HangupCaller(call_id=event.call_id),
                *self._finish(call, Outcome.ANSWERED_VENDOR, now)]

    def _vendor_probed(self, event: ev.VendorProbed, now: float) -> list[act.Action]:
        if event.vendor not in self._vendors:
            return [act.note(DEBUG, "probe result for unknown vendor {vendor}",
                             vendor=event.vendor)]
        return self._vendor_result(event.vendor, ok=event.ok, now=now)

    def _node_started(self) -> list[act.Action]:
        if self._started:
            raise IllegalTransition("node", "started", "NodeStarted")
        self._started = True
        actions: list[act.Action] = []
        for name in self._vendors:
            actions.extend(self._probe(name))
        return actions

    # -- timers and presence ------------------------------------------------

    def _timer_fired(self, event: ev.TimerFired, now: float) -> list[act.Action]:
        match event.timer_id:
            case tm.RingTimer(call_id):
                return self._ring_timeout(call_id, now)
            case tm.WrapUpTimer(agent_id):
                agent = self._agents.get(agent_id)
                if agent is not None and agent.state is AgentState.WRAP_UP:
                    return self._release(agent, "wrap_up_done", now, fresh=True)
            case tm.VendorRingTimer(call_id):
                return self._vendor_ring_timeout(call_id, now)
            case tm.WaitTimer():
                return []  # nothing to do but the dispatch that follows every event
            case tm.MaxWaitTimer(call_id):
                return self._max_wait(call_id, now)
            case tm.ProbeTimer(vendor):
                return self._probe(vendor)
            case tm.CooldownTimer(vendor):
                return self._cooldown_over(vendor)
        return [act.note(DEBUG, "ignoring stale timer {timer_id}", timer_id=event.timer_id)]

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
            actions.append(act.CancelTimer(timer_id=tm.WrapUpTimer(event.agent_id)))
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
        """Check waiting calls' overflow rules, then offer them, oldest first, to the READY
        agents their strategy picks (calls with a vendor too, if the queue allows a
        takeover: to agents who became free after the call went to the vendor)."""
        waiting = [c for c in self._calls.values() if c.state is CallState.QUEUED or (
            c.state is CallState.OVERFLOW and c.queue.inhouse_takeover and not c.ringing
            and c.vendor is not None and not c.vendor.answered)]
        if not waiting:
            return []
        waiting.sort(key=lambda c: (c.record.queued_at, c.seq))
        actions: list[act.Action] = []
        for call in waiting:
            members = self._members.get(call.queue.group, ())
            since = call.vendor.offered_at if call.vendor is not None else None
            candidates = [
                AgentView(id=agent_id, idle_since=agent.idle_since, misses=agent.misses,
                          order=order)
                for order, agent_id in enumerate(members)
                if (agent := self._agents[agent_id]).state is AgentState.READY
                and (since is None or agent.idle_since > since)
            ]
            if call.state is CallState.QUEUED:
                if call.queue.overflow:
                    actions.extend(self._overflow(call, bool(candidates), now))
                call.entering = False
                if call.state is not CallState.QUEUED:
                    continue  # just sent to a vendor: agents free now are not a takeover
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
            actions.append(act.StartTimer(timer_id=tm.RingTimer(call_id),
                                          delay=call.queue.ring_timeout))
        return actions

    # -- overflow ---------------------------------------------------------------

    def _overflow(self, call: _Call, agent_free: bool, now: float) -> list[act.Action]:
        """Check the queue's rules in order; the first that holds and has a vendor able to
        take the call sends it there."""
        queue = call.queue
        if call.entering:
            for rule in queue.overflow:
                if rule.condition is Condition.SHARE:
                    assert rule.percent is not None
                    key = (queue.name, rule.vendors[0])
                    self._credit[key] = min(SHARE_CREDIT_CAP,
                                            self._credit.get(key, 0.0) + rule.percent / 100)
        actions: list[act.Action] = []
        for index, rule in enumerate(queue.overflow):
            if not self._holds(call, index, agent_free, now):
                continue
            share = rule.condition is Condition.SHARE
            actions.extend(self._send_to_vendor(call, rule.vendors, rule.condition.value, now,
                                                share=share))
            if call.vendor is not None:
                break
        return actions

    def _holds(self, call: _Call, index: int, agent_free: bool, now: float) -> bool:
        rule = call.queue.overflow[index]
        queue = call.queue
        match rule.condition:
            case Condition.WAIT_EXCEEDS:
                assert rule.seconds is not None and call.record.queued_at is not None
                return now - call.record.queued_at >= rule.seconds - _EPSILON
            case Condition.NO_AGENTS_AVAILABLE:
                return not agent_free
            case Condition.NO_AGENTS_LOGGED_IN:
                return all(self._agents[a].state is AgentState.LOGGED_OUT
                           for a in self._members.get(queue.group, ()))
            case Condition.QUEUE_LENGTH_EXCEEDS:
                assert rule.length is not None
                if not call.entering or agent_free:
                    return False
                ahead = sum(1 for c in self._calls.values() if c is not call
                            and c.queue.name == queue.name
                            and c.state in (CallState.QUEUED, CallState.RINGING))
                return ahead > rule.length
            case Condition.OUTSIDE_HOURS:
                assert rule.calendar is not None
                calendar = self._dialplan.calendars.get(rule.calendar)
                return calendar is not None and not calendar.is_open(now)
            case Condition.SERVICE_LEVEL_BELOW:
                assert rule.service_level is not None
                on = self._service_level_low(queue, index, rule.service_level, now)
                return on and not agent_free
            case Condition.SHARE:
                return (call.entering
                        and self._credit.get((queue.name, rule.vendors[0]), 0.0) >= 1 - _EPSILON)
        return False  # pragma: no cover - every condition is matched above

    def _service_level_low(self, queue: Queue, index: int, target: ServiceLevel,
                           now: float) -> bool:
        """The rule's on/off state, with hysteresis: on below ``percent``, off again at
        ``percent + hysteresis``; off with fewer than ``min_calls`` calls in the window."""
        samples = self._samples.get(queue.name)
        horizon = max((r.service_level.window for r in queue.overflow
                       if r.service_level is not None), default=target.window)
        if samples is not None:
            while samples and samples[0][0] < now - horizon:
                samples.popleft()
        recent = [wait for at, wait in samples or () if at >= now - target.window]
        key = (queue.name, index)
        if len(recent) < target.min_calls:
            self._sl_on[key] = False
            return False
        within = sum(1 for wait in recent if wait is not None and wait <= target.within)
        level = 100.0 * within / len(recent)
        on = self._sl_on.get(key, False)
        if on and level >= target.percent + target.hysteresis:
            on = False
        elif not on and level < target.percent:
            on = True
        self._sl_on[key] = on
        return on

    def _sample(self, call: _Call, now: float) -> None:
        """Remember an in-house-handled call for service_level_below rules."""
        if not any(r.service_level is not None for r in call.queue.overflow):
            return
        if call.record.overflow_reason is not None and call.record.answered_at is None:
            return
        self._samples.setdefault(call.queue.name, deque()).append((now, call.record.wait))

    def _send_to_vendor(self, call: _Call, vendors: tuple[str, ...], reason: str, now: float,
                        *, share: bool = False) -> list[act.Action]:
        """Offer the call to the first of ``vendors`` that can take it (none: no change)."""
        actions: list[act.Action] = []
        for i, name in enumerate(vendors):
            rt = self._vendors.get(name)
            if rt is None or rt.removed or name in call.failed_vendors:
                continue
            cause = self._unavailable(rt, now)
            if cause is not None:
                actions.extend(self._note(call, name, cause))
                continue
            record = call.record
            trying = _VendorTry(vendor=name, reason=reason, fallbacks=vendors[i + 1:],
                                share=share, prior=(record.route, record.vendor,
                                                    record.overflow_reason,
                                                    record.overflowed_at))
            call_id = record.call_id
            if call.state is not CallState.OVERFLOW:
                call.state = transition(f"call {call_id}", CALL_TRANSITIONS, call.state,
                                        "overflow")
            call.vendor = trying
            rt.in_use += 1
            if share:
                key = (call.queue.name, name)
                self._credit[key] = self._credit.get(key, 0.0) - 1
            if record.overflow_reason is None:
                record.overflow_reason = reason
                record.overflowed_at = now
            record.route = Route.VENDOR
            record.vendor = name
            actions.append(act.note(INFO, "call {call_id} overflows to vendor {vendor}: {reason}",
                                    call_id=call_id, vendor=name, reason=reason,
                                    queue=call.queue.name))
            actions.append(act.OverflowFired(call_id=call_id, queue=call.queue.name,
                                             vendor=name, reason=reason))
            actions.extend(self._ring_trunk(call, rt, trying, now))
            break
        return actions

    def _unavailable(self, rt: _Vendor, now: float) -> str | None:
        """Why a vendor cannot take a call now (down, closed, full), or None."""
        if rt.health is not VendorHealth.UP:
            return "down"
        schedule = rt.vendor.schedule
        if schedule is not None:
            calendar = self._dialplan.calendars.get(schedule)
            if calendar is not None and not calendar.is_open(now):
                return "closed"
        if rt.in_use >= rt.vendor.max_channels:
            return "full"
        return None

    def _note(self, call: _Call, vendor: str, cause: str) -> list[act.Action]:
        """An OverflowUnavailable, once per call, vendor and cause."""
        if (vendor, cause) in call.noted:
            return []
        call.noted.add((vendor, cause))
        return [act.OverflowUnavailable(call_id=call.record.call_id, queue=call.queue.name,
                                        vendor=vendor, cause=cause)]

    def _ring_trunk(self, call: _Call, rt: _Vendor, trying: _VendorTry,
                    now: float) -> list[act.Action]:
        call.offer_seq += 1
        trying.seq = call.offer_seq
        trying.offered_at = now
        call_id = call.record.call_id
        return [act.RingVendor(call_id=call_id, vendor=trying.vendor,
                               uri=rt.vendor.trunks[trying.trunk]),
                act.StartTimer(timer_id=tm.VendorRingTimer(call_id),
                               delay=rt.vendor.ring_timeout)]

    def _end_vendor_offer(self, call: _Call, trying: _VendorTry, result: str,
                          now: float) -> None:
        rt = self._vendors.get(trying.vendor)
        trunk = rt.vendor.trunks[trying.trunk] if rt is not None else "?"
        call.ended_offers.append((trying.seq, Offer(
            vendor=trying.vendor, trunk=trunk, offered_at=trying.offered_at, ended_at=now,
            result=result)))
        call.ended_offers.sort(key=lambda item: item[0])
        call.record.offers = [offer for _, offer in call.ended_offers]

    def _withdraw_vendor(self, call: _Call, result: str, now: float) -> list[act.Action]:
        """Cancel the vendor offer still ringing (someone else answered, the caller left)."""
        trying = call.vendor
        assert trying is not None and not trying.answered
        call_id = call.record.call_id
        self._end_vendor_offer(call, trying, result, now)
        self._release_vendor(call)
        return [act.CancelVendor(call_id=call_id, vendor=trying.vendor),
                act.CancelTimer(timer_id=tm.VendorRingTimer(call_id))]

    def _release_vendor(self, call: _Call) -> None:
        """The call no longer holds a channel of its vendor."""
        trying = call.vendor
        assert trying is not None
        call.vendor = None
        rt = self._vendors.get(trying.vendor)
        if rt is None:
            return
        rt.in_use -= 1
        if trying.share and not trying.answered:
            key = (call.queue.name, trying.vendor)
            self._credit[key] = min(SHARE_CREDIT_CAP, self._credit.get(key, 0.0) + 1)
        if rt.removed and rt.in_use == 0:
            del self._vendors[trying.vendor]

    def _max_wait(self, call_id: str, now: float) -> list[act.Action]:
        call = self._calls.get(call_id)
        if call is None or call.state not in (CallState.QUEUED, CallState.RINGING,
                                              CallState.OVERFLOW):
            return []
        max_wait = call.queue.max_wait
        assert max_wait is not None
        call.final = True
        actions: list[act.Action] = [
            act.note(INFO, "call {call_id} waited the queue's max_wait of {seconds}s",
                     call_id=call_id, seconds=max_wait.seconds, queue=call.queue.name)]
        actions.extend(self._withdraw_agents(call, now))
        if call.vendor is not None:
            return actions  # a vendor already has it: its answer or failure decides
        actions.extend(self._send_to_vendor(call, max_wait.vendors, MAX_WAIT_REASON, now))
        if call.vendor is None:
            actions.extend(self._close(call, now))
        return actions

    def _withdraw_agents(self, call: _Call, now: float) -> list[act.Action]:
        cancels, ringing = self._cancel_ringing(call, now)
        return cancels + self._release_cancelled(ringing, now)

    def _cancel_ringing(self, call: _Call, now: float) -> tuple[list[act.Action], list[str]]:
        """CANCEL every offer of the call still ringing (recorded as cancelled): the
        actions, and the agents, whom ``_release_cancelled`` then frees."""
        ringing = list(call.ringing)
        if not ringing:
            return [], []
        call_id = call.record.call_id
        actions: list[act.Action] = [act.CancelTimer(timer_id=tm.RingTimer(call_id))]
        for agent_id in ringing:
            actions.append(act.CancelAgent(call_id=call_id, agent_id=agent_id))
            self._end_offer(call, agent_id, "cancelled", now)
        return actions, ringing

    def _release_cancelled(self, agent_ids: list[str], now: float) -> list[act.Action]:
        """Agents whose offer was cancelled are ready again, keeping their place in line."""
        actions: list[act.Action] = []
        for agent_id in agent_ids:
            actions.extend(self._release(self._agents[agent_id], "cancel", now, fresh=False))
        return actions

    def _close(self, call: _Call, now: float) -> list[act.Action]:
        """The final action of max_wait: the announcement (if any), then hang up."""
        actions = self._withdraw_agents(call, now)
        call_id = call.record.call_id
        call.state = transition(f"call {call_id}", CALL_TRANSITIONS, call.state, "close")
        max_wait = call.queue.max_wait
        if max_wait is None or max_wait.announcement is None:
            call.state = CallState.CLOSING
            return [*actions, act.HangupCaller(call_id=call_id),
                    *self._finish(call, Outcome.TIMEOUT, now)]
        return [*actions, act.StopMusicOnHold(call_id=call_id),
                act.PlayAnnouncement(call_id=call_id, path=str(max_wait.announcement))]

    # -- vendor health ------------------------------------------------------------

    def _vendor_result(self, vendor: str, *, ok: bool, now: float) -> list[act.Action]:
        """Count a call attempt's or probe's result towards the vendor's health."""
        rt = self._vendors.get(vendor)
        if rt is None:
            return []
        if ok:
            rt.failures = 0
            trigger = "success"
        else:
            rt.failures += 1
            trigger = "failure_limit" if rt.failures >= rt.vendor.failures else "failure"
        return self._vendor_transition(rt, trigger)

    def _vendor_transition(self, rt: _Vendor, trigger: str) -> list[act.Action]:
        old = rt.health
        name = rt.vendor.name
        rt.health = transition(f"vendor {name}", VENDOR_TRANSITIONS, old, trigger)
        if rt.health is old:
            return []
        actions: list[act.Action] = [act.VendorHealthChanged(vendor=name, old=old,
                                                             new=rt.health)]
        rt.failures = 0
        if rt.health is VendorHealth.DOWN:
            actions.append(act.note(WARN, "vendor {vendor} out of rotation for {cooldown}s",
                                    vendor=name, cooldown=rt.vendor.cooldown))
            actions.append(act.StartTimer(timer_id=tm.CooldownTimer(name),
                                          delay=rt.vendor.cooldown))
        elif rt.health is VendorHealth.PROBING:
            actions.append(act.ProbeVendor(vendor=name, uris=rt.vendor.trunks))
        else:
            actions.append(act.note(INFO, "vendor {vendor} back in rotation", vendor=name))
        return actions

    def _cooldown_over(self, vendor: str) -> list[act.Action]:
        rt = self._vendors.get(vendor)
        if rt is None or rt.health is not VendorHealth.DOWN:
            return []
        probes = rt.vendor.probe_interval > 0
        return self._vendor_transition(rt, "cooldown_over" if probes
                                       else "cooldown_over_no_probes")

    def _probe(self, vendor: str) -> list[act.Action]:
        """Probe a vendor's trunks now and again after its probe_interval."""
        rt = self._vendors.get(vendor)
        if rt is None or rt.removed or rt.vendor.probe_interval <= 0:
            return []
        return [act.ProbeVendor(vendor=vendor, uris=rt.vendor.trunks),
                act.StartTimer(timer_id=tm.ProbeTimer(vendor),
                               delay=rt.vendor.probe_interval)]

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
            return [act.note(INFO, "agent {agent} missed {misses} offers in a row: not ready",
                             agent=agent.agent.id, misses=agent.misses, queue=queue.name),
                    *self._release(agent, "miss_limit", now, fresh=True)]
        return self._release(agent, "miss", now, fresh=True)

    def _after_call(self, agent: _Agent, queue: Queue, now: float) -> list[act.Action]:
        """The bridged call ended: wrap up, or straight back to READY if wrap_up is 0."""
        if queue.wrap_up <= 0:
            return self._release(agent, "call_end_no_wrap_up", now, fresh=True)
        old = agent.state
        agent.state = transition(f"agent {agent.agent.id}", AGENT_TRANSITIONS, old, "call_end")
        return [*self._changed(agent, old),
                act.StartTimer(timer_id=tm.WrapUpTimer(agent.agent.id), delay=queue.wrap_up)]

    def _end_offer(self, call: _Call, agent_id: str, result: str, now: float) -> None:
        seq, offered_at = call.ringing.pop(agent_id)
        call.ended_offers.append(
            (seq, Offer(agent_id=agent_id, offered_at=offered_at, ended_at=now, result=result)))
        call.ended_offers.sort(key=lambda item: item[0])
        call.record.offers = [offer for _, offer in call.ended_offers]

    def _finish(self, call: _Call, outcome: Outcome, now: float) -> list[act.Action]:
        """End the call: its timers go, its vendor channel is freed, the record is final."""
        call.state = CallState.ENDED
        record = call.record
        record.outcome = outcome
        record.ended_at = now
        call_id = record.call_id
        del self._calls[call_id]
        if call.vendor is not None:
            self._release_vendor(call)
        if outcome in (Outcome.ABANDONED_QUEUE, Outcome.ABANDONED_RINGING):
            self._sample(call, now)
        actions: list[act.Action] = [act.CancelTimer(timer_id=timer_id)
                                     for timer_id, _ in _queue_timers(call.queue, call_id)]
        actions.append(act.CallFinished(record=record))
        return actions


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


def _queue_timers(queue: Queue, call_id: str) -> list[tuple[tm.TimerId, float]]:
    """(timer id, delay) of the timers a call starts on entering ``queue``: one per
    distinct wait_exceeds time (the dispatch after it checks the rules) and max_wait."""
    waits = sorted({rule.seconds for rule in queue.overflow
                    if rule.condition is Condition.WAIT_EXCEEDS and rule.seconds})
    timers: list[tuple[tm.TimerId, float]] = [
        (tm.WaitTimer(call_id, i), seconds) for i, seconds in enumerate(waits)]
    if queue.max_wait is not None:
        timers.append((tm.MaxWaitTimer(call_id), queue.max_wait.seconds))
    return timers


def _shares(queue: Queue | None, vendor: str) -> bool:
    """Whether ``queue`` has a share rule for ``vendor``."""
    return queue is not None and any(
        r.condition is Condition.SHARE and r.vendors == (vendor,) for r in queue.overflow)


def _presence_of(agent: _Agent) -> str:
    """Where an agent returns to once free: logged_out, ready or not_ready."""
    if agent.state in (AgentState.LOGGED_OUT, AgentState.NOT_READY):
        return agent.state.value
    if agent.pending == "AgentLogout":
        return AgentState.LOGGED_OUT.value
    if agent.pending == "AgentPause":
        return AgentState.NOT_READY.value
    return AgentState.READY.value


def _new_agent(agent: Agent, groups: list[str], now: float) -> _Agent:
    return _Agent(agent=agent, groups=tuple(groups), idle_since=now,
                  state=AgentState.READY if agent.logged_in else AgentState.LOGGED_OUT)
