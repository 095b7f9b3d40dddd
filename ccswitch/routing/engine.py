"""The call-routing engine: events in, actions out, no I/O.

``RoutingEngine.handle`` takes one :mod:`~ccswitch.routing.events` event and
returns the :mod:`~ccswitch.routing.actions` the adapter must carry out, in
order. Time comes from an injected clock (``seconds()``); timers are actions
(``StartTimer``) whose expiry comes back as ``TimerFired``. An event the engine
cannot accept raises a :class:`~ccswitch.errors.CCSwitchError` (``UnknownCall``,
``UnknownAgent``, ``UnknownQueue`` or ``IllegalTransition``) and changes nothing.

This module is the core: it hands each event to the part that owns it (agents in
:mod:`~ccswitch.routing.agents`, calls in :mod:`~ccswitch.routing.calls`, vendors
in :mod:`~ccswitch.routing.vendors`, overflow rules in
:mod:`~ccswitch.routing.overflow`), puts a new dialplan in force, and after every
accepted event dispatches waiting calls to free agents:

* Waiting (QUEUED) calls, oldest ``queued_at`` first across all queues, get the
  READY agents of their queue's group picked by the queue's strategy. So a READY
  agent in several groups goes to the longest-waiting call that can use it. One
  ``StartTimer(RingTimer(call))`` per round.
* A waiting call's overflow rules are checked before in-house agents are offered it.
* ``AgentStateChanged`` is emitted once per group the agent belongs to (in dialplan
  order); an agent in no group produces none.
* Timer ids that no longer mean anything (a cancelled timer racing its cancel)
  are ignored.
"""

from __future__ import annotations

from typing import Any

from ccswitch.model import Dialplan
from ccswitch.routing import actions as act
from ccswitch.routing import events as ev
from ccswitch.routing import timers as tm
from ccswitch.routing.actions import NoteLevel
from ccswitch.routing.agents import Agents
from ccswitch.routing.calls import Calls
from ccswitch.routing.record import CallRecord
from ccswitch.routing.runtime import Clock
from ccswitch.routing.states import (
    CALL_TRANSITIONS, AgentState, CallState, VendorHealth, transition,
)
from ccswitch.routing.strategies import STRATEGIES
from ccswitch.routing.target import Target
from ccswitch.routing.vendors import Vendors


class RoutingEngine:
    """Routes calls to in-house agents and vendors per the dialplan; pure and deterministic."""

    def __init__(self, dialplan: Dialplan, clock: Clock) -> None:
        self._dialplan = dialplan
        self._clock = clock
        self._agents = Agents(dialplan, clock.seconds())
        self._vendors = Vendors(dialplan)
        self._calls = Calls(dialplan, self._agents, self._vendors)

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
        actions = self._agents.reload(old_plan, dialplan, now)
        actions.extend(self._vendors.reload(old_plan, dialplan))
        self._calls.overflow.reload(dialplan)
        actions.extend(self._dispatch(now))
        return actions

    # -- the one entry point ------------------------------------------------

    def handle(self, event: ev.Event) -> list[act.Action]:
        """Apply ``event``; return the actions to perform, in order."""
        now = self._clock.seconds()
        calls = self._calls
        agents = self._agents
        actions: list[act.Action]
        match event:
            case ev.CallArrived():
                actions = calls.call_arrived(event, now)
            case ev.AnnouncementFinished():
                actions = calls.announcement_finished(event, now)
            case ev.CallerHungUp():
                actions = calls.caller_hung_up(event, now)
            case ev.MediaTimedOut():
                actions = calls.media_timed_out(event, now)
            case ev.LegRinging():
                actions = (calls.agent_ringing(event) if event.target.is_agent
                           else calls.vendor_ringing(event))
            case ev.LegAnswered():
                actions = (calls.agent_answered(event, now) if event.target.is_agent
                           else calls.vendor_answered(event, now))
            case ev.LegFailed():
                actions = (calls.agent_failed(event, now) if event.target.is_agent
                           else calls.vendor_failed(event, now))
            case ev.LegHungUp():
                actions = (calls.agent_hung_up(event, now) if event.target.is_agent
                           else calls.vendor_hung_up(event, now))
            case ev.TimerFired():
                actions = self._timer_fired(event, now)
            case ev.AgentLogin() | ev.AgentLogout() | ev.AgentReady() | ev.AgentPause():
                actions = agents.presence(event, now)
            case ev.VendorProbed():
                actions = self._vendors.probed(event.vendor, event.ok)
            case ev.NodeStarted():
                actions = self._vendors.node_started()
            case ev.PresenceSet():
                actions = agents.set_presence(event.agent_id, event.presence, now)
            case ev.AgentBusyElsewhere():
                actions = agents.busy_elsewhere(event)
            case ev.AgentFreeElsewhere():
                actions = agents.free_elsewhere(event, now)
            case ev.AgentTaken():
                actions = calls.agent_taken(event, now)
            case ev.VendorFull():
                actions = calls.vendor_full(event, now)
            case _:
                raise TypeError(f"not a routing event: {event!r}")
        actions.extend(self._dispatch(now))
        return actions


    def queue_depths(self) -> dict[str, int]:
        """Callers waiting per queue (queued, or offered to agents or a vendor), every
        queue present."""
        depths = dict.fromkeys(self._dialplan.queues, 0)
        for call in self._calls.live.values():
            if call.state in (CallState.QUEUED, CallState.RINGING, CallState.OVERFLOW):
                depths[call.queue.name] = depths.get(call.queue.name, 0) + 1
        return depths

    def presence(self) -> dict[str, tuple[str, bool]]:
        """Per agent: the presence it returns to once free (logged_out, ready, not_ready)
        and its dialplan ``logged_in`` (what the embedded store saves)."""
        return {agent_id: (agent.presence, agent.agent.logged_in)
                for agent_id, agent in self._agents.slots.items() if not agent.removed}

    def restore(self, saved: dict[str, tuple[str, bool]]) -> list[act.Action]:
        """Put agents back into a saved presence (before any call); the dialplan wins for
        an agent whose ``logged_in`` changed since the save, or that is not in it."""
        return self._agents.restore(saved, self._clock.seconds())

    def agents(self) -> dict[str, AgentState]:
        """Every agent's state, by id."""
        return {agent_id: agent.state for agent_id, agent in self._agents.slots.items()}

    def agent_groups(self, agent_id: str) -> list[str]:
        """The groups an agent belongs to, in dialplan order; raises UnknownAgent."""
        return list(self._agents.get(agent_id).groups)

    def call_vendor(self, call_id: str) -> str | None:
        """The vendor a call is offered to or bridged with now; None for none or an
        unknown call."""
        call = self._calls.live.get(call_id)
        return None if call is None or call.vendor is None else call.vendor.vendor

    def busy_agents(self) -> dict[str, str]:
        """agent -> call of the agents this node holds (reserved, on a call, wrapping up)."""
        return {agent_id: agent.call_id for agent_id, agent in self._agents.slots.items()
                if agent.call_id is not None and agent.state in (
                    AgentState.RESERVED, AgentState.ON_CALL, AgentState.WRAP_UP)}

    def waiting(self) -> list[tuple[str, str, float]]:
        """(queue, call, queued_at) of the calls waiting for an agent and not ringing one."""
        return [(c.queue.name, call_id, c.record.queued_at)
                for call_id, c in self._calls.live.items()
                if c.state is CallState.QUEUED and c.record.queued_at is not None]

    def queues_served_by(self, agent_id: str) -> list[str]:
        """The queues whose group holds the agent (the callers it may be owed to)."""
        groups = set(self._agents.get(agent_id).groups)
        return sorted(name for name, q in self._dialplan.queues.items() if q.group in groups)

    def queue_groups(self) -> dict[str, str]:
        """The in-house group of each queue of the dialplan in force."""
        return {name: queue.group for name, queue in self._dialplan.queues.items()}

    def vendor_states(self) -> dict[str, tuple[int, int, VendorHealth]]:
        """Per vendor of the dialplan: (channels in use, max_channels, health)."""
        return {name: (rt.in_use, rt.vendor.max_channels, rt.health)
                for name, rt in self._vendors.slots.items() if not rt.removed}

    def vendor_health(self, vendor: str) -> VendorHealth:
        """One vendor's health; raises KeyError for a vendor the dialplan lacks."""
        return self._vendors.slots[vendor].health

    def agent_states(self) -> dict[tuple[str, str], int]:
        """Agents per (group, state value), for every group and state, zeros included."""
        counts = {(group, state.value): 0 for group in self._agents.members for state in AgentState}
        for agent in self._agents.slots.values():
            for group in agent.groups:
                counts[(group, agent.state.value)] += 1
        return counts

    def agent_state(self, agent_id: str) -> AgentState:
        """One agent's state; raises UnknownAgent."""
        return self._agents.get(agent_id).state

    def calls(self) -> list[str]:
        """Ids of the calls in progress, in arrival order."""
        return list(self._calls.live)

    def call_state(self, call_id: str) -> CallState:
        """One call's state; raises UnknownCall."""
        return self._calls.get(call_id).state

    def ringing_agents(self, call_id: str) -> tuple[str, ...]:
        """Agents currently offered the call, in ringing order; raises UnknownCall."""
        return tuple(self._calls.get(call_id).ringing)

    def record(self, call_id: str) -> CallRecord:
        """The live record of a call in progress; raises UnknownCall."""
        return self._calls.get(call_id).record

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
                for call_id, call in self._calls.live.items()
            },
            "agents": {
                agent_id: {
                    "state": agent.state.value, "idle_since": agent.idle_since,
                    "misses": agent.misses, "call_id": agent.call_id, "pending": agent.pending,
                }
                for agent_id, agent in self._agents.slots.items()
            },
            "vendors": {
                name: {"health": rt.health.value, "failures": rt.failures, "in_use": rt.in_use}
                for name, rt in self._vendors.slots.items()
            },
            "share_credit": {f"{q}/{v}": c for (q, v), c in self._calls.overflow.credit.items()},
        }

    # -- lookups ------------------------------------------------------------

    def _timer_fired(self, event: ev.TimerFired, now: float) -> list[act.Action]:
        match event.timer_id:
            case tm.RingTimer(call_id):
                return self._calls.ring_timeout(call_id, now)
            case tm.WrapUpTimer(agent_id):
                agent = self._agents.slots.get(agent_id)
                if agent is not None and agent.state is AgentState.WRAP_UP:
                    return self._agents.release(agent, "wrap_up_done", now, fresh=True)
            case tm.VendorRingTimer(call_id):
                return self._calls.vendor_ring_timeout(call_id, now)
            case tm.WaitTimer():
                return []  # nothing to do but the dispatch that follows every event
            case tm.MaxWaitTimer(call_id):
                return self._calls.max_wait(call_id, now)
            case tm.ProbeTimer(vendor):
                return self._vendors.probe(vendor)
            case tm.CooldownTimer(vendor):
                return self._vendors.cooldown_over(vendor)
        return [act.note(NoteLevel.DEBUG, "ignoring stale timer {timer_id}",
                         timer_id=event.timer_id)]

    # -- dispatch -------------------------------------------------------------

    def _dispatch(self, now: float) -> list[act.Action]:
        """Check waiting calls' overflow rules, then offer them, oldest first, to the READY
        agents their strategy picks (calls with a vendor too, if the queue allows a
        takeover: to agents who became free after the call went to the vendor)."""
        waiting = [c for c in self._calls.live.values() if c.state is CallState.QUEUED or (
            c.state is CallState.OVERFLOW and c.queue.inhouse_takeover and not c.ringing
            and c.vendor is not None and not c.vendor.answered)]
        if not waiting:
            return []
        waiting.sort(key=lambda c: (c.record.queued_at, c.seq))
        actions: list[act.Action] = []
        for call in waiting:
            since = call.vendor.offered_at if call.vendor is not None else None
            candidates = self._agents.ready(call.queue.group, since)
            if call.state is CallState.QUEUED:
                if call.queue.overflow:
                    actions.extend(self._calls.overflow.check(call, bool(candidates), now))
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
            call_id = call.call_id
            call.state = transition(f"call {call_id}", CALL_TRANSITIONS, call.state, "offer")
            for agent_id in picked:
                call.offer_seq += 1
                call.ringing[agent_id] = (call.offer_seq, now)
                call.tried.add(agent_id)
                actions.extend(self._agents.offer(agent_id, call_id))
                actions.append(act.Ring(call_id=call_id, target=Target.agent(agent_id),
                                             uri=self._agents.slots[agent_id].agent.uri))
            actions.append(act.StartTimer(timer_id=tm.RingTimer(call_id),
                                          delay=call.queue.ring_timeout))
        return actions
