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
* After the dispatch, each overflow rule's on/off state is checked; a change is a
  Note and shows in ``view.overflow_rules``.
* Timer ids that no longer mean anything (a cancelled timer racing its cancel)
  are ignored.

Reservations (``reservations=True``, when nodes share state): no ``Ring`` goes out
before the shared store agreed. The engine emits ``Reserve(call, target)`` where it
would ring and keeps the ``Ring`` (and, for a vendor, the ``OverflowFired`` notice
that led to it) pending, so the offer is *reserving*: it counts as offered (ring
timer running, the agent out of the free pool) but nobody rings yet. On
``ReservationDecided``:

* granted: the notice and the ``Ring`` are emitted now;
* refused: the offer is withdrawn as ``AgentTaken`` (the call goes on to the next
  free agent, no miss counted) or ``VendorFull`` (the next vendor) would do;
* an offer no longer pending (cancelled, the call over, another vendor tried now)
  gives nothing: the adapter's next push to the store gives the hold back.
"""

from __future__ import annotations

from ccswitch.clock import TimeSource
from ccswitch.model import Dialplan, RecordingStart
from ccswitch.routing import actions as act
from ccswitch.routing import events as ev
from ccswitch.routing import timers as tm
from ccswitch.routing.actions import NoteLevel
from ccswitch.routing.agents import Agents
from ccswitch.routing.calls import Calls
from ccswitch.routing.states import (
    CALL_TRANSITIONS, AgentState, CallState, transition,
)
from ccswitch.routing.strategies import STRATEGIES
from ccswitch.routing.target import Target
from ccswitch.routing.vendors import Vendors
from ccswitch.routing.view import (
    AgentInfo, CallInfo, EngineView, QueueInfo, ShareInfo, VendorInfo,
)


class RoutingEngine:
    """Routes calls to in-house agents and vendors per the dialplan; pure and deterministic."""

    def __init__(self, dialplan: Dialplan, clock: TimeSource, *,
                 recording_start: RecordingStart = RecordingStart.AFTER_NOTICE,
                 reservations: bool = False) -> None:
        """``recording_start`` is the service's ``recordings.start``: when the engine
        emits ``StartRecording`` (fixed for the engine's life, like the setting).
        ``reservations``: the node shares state, so every offer is reserved first."""
        self._dialplan = dialplan
        self._clock = clock
        self._agents = Agents(dialplan, clock.seconds())
        self._vendors = Vendors(dialplan)
        self._calls = Calls(dialplan, self._agents, self._vendors, recording_start)
        self._reservations = reservations
        # (call, target) -> the Ring waiting for its reservation, with the overflow
        # notices that go out with it; notices seen before their Ring wait in _notices.
        self._reserving: dict[tuple[str, Target], tuple[act.Ring,
                                                         tuple[act.OverflowFired, ...]]] = {}
        self._notices: dict[tuple[str, Target], act.OverflowFired] = {}
        self._view: EngineView | None = None

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
        self._view = None
        old_plan = self._dialplan
        self._dialplan = dialplan
        actions = self._agents.reload(old_plan, dialplan, now)
        actions.extend(self._vendors.reload(old_plan, dialplan))
        self._calls.overflow.reload(dialplan)
        actions.extend(self._dispatch(now))
        actions.extend(self._calls.overflow.states(now))
        return self._reserve_first(actions)

    # -- the one entry point ------------------------------------------------

    def handle(self, event: ev.Event) -> list[act.Action]:
        """Apply ``event``; return the actions to perform, in order."""
        now = self._clock.seconds()
        self._view = None
        calls = self._calls
        agents = self._agents
        actions: list[act.Action]
        match event:
            case ev.CallArrived():
                actions = calls.call_arrived(event, now)
            case ev.CallRejected():
                actions = calls.call_rejected(event, now)
            case ev.AnnouncementFinished():
                actions = calls.announcement_finished(event, now)
            case ev.CallerHungUp():
                actions = calls.caller_hung_up(event, now)
            case ev.MediaTimedOut():
                actions = calls.media_timed_out(event, now)
            case ev.VendorLegLost():
                actions = calls.vendor_leg_lost(event, now)
            case ev.LegHeld():
                actions = calls.held(event, now)
            case ev.LegResumed():
                actions = calls.resumed(event, now)
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
            case ev.AgentResponded():
                actions = agents.responded(event.agent_id, now)
            case ev.AgentSendFailed():
                agent = agents.slots.get(event.agent_id)
                actions = [] if agent is None else calls.unreachable(agent, "send_failed", now)
            case ev.TimerFired():
                actions = self._timer_fired(event, now)
            case ev.AgentLogin() | ev.AgentLogout() | ev.AgentReady() | ev.AgentPause():
                actions = agents.presence(event, now)
            case ev.VendorProbed():
                actions = self._vendors.probed(event.vendor, event.ok, event.answered)
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
            case ev.ReservationDecided():
                if event.granted:  # the kept Ring goes out as it is
                    return self._granted(event) + self._reserve_first(self._dispatch(now))
                actions = self._refused(event, now)
            case _:
                raise TypeError(f"not a routing event: {event!r}")
        actions.extend(self._dispatch(now))
        actions.extend(self._calls.overflow.states(now))
        return self._reserve_first(actions)

    # -- reservations -----------------------------------------------------------

    def _reserve_first(self, actions: list[act.Action]) -> list[act.Action]:
        """With reservations, each Ring becomes a Reserve and waits (with its overflow
        notice) for ReservationDecided; a Cancel or the call's end drops the wait."""
        if not self._reservations:
            return actions
        out: list[act.Action] = []
        for action in actions:
            if isinstance(action, act.Ring):
                key = (action.call_id, action.target)
                notice = self._notices.pop(key, None)
                self._reserving[key] = (action, () if notice is None else (notice,))
                out.append(act.Reserve(call_id=action.call_id, target=action.target))
                continue
            if isinstance(action, act.OverflowFired):
                self._notices[(action.call_id, Target.vendor(action.vendor))] = action
                continue
            if isinstance(action, act.Cancel):
                self._reserving.pop((action.call_id, action.target), None)
            elif isinstance(action, act.CallFinished):
                call_id = action.record.call_id
                for key in [key for key in self._reserving if key[0] == call_id]:
                    del self._reserving[key]
                for key in [key for key in self._notices if key[0] == call_id]:
                    del self._notices[key]
            out.append(action)
        return out

    def _still_reserving(self, event: ev.ReservationDecided
                         ) -> tuple[act.Ring, tuple[act.OverflowFired, ...]] | None:
        """The kept Ring and notices of the offer ``event`` answers, if it still stands."""
        pending = self._reserving.pop((event.call_id, event.target), None)
        call = self._calls.live.get(event.call_id)
        target = event.target
        if pending is None or call is None:
            return None
        if target.is_agent:
            return pending if target.id in call.ringing else None
        return pending if call.vendor is not None and call.vendor.vendor == target.id else None

    def _granted(self, event: ev.ReservationDecided) -> list[act.Action]:
        pending = self._still_reserving(event)
        return [] if pending is None else [*pending[1], pending[0]]

    def _refused(self, event: ev.ReservationDecided, now: float) -> list[act.Action]:
        target = event.target
        if self._still_reserving(event) is None:
            return []
        if target.is_agent:
            return self._calls.agent_taken(
                ev.AgentTaken(call_id=event.call_id, agent_id=target.id), now)
        return self._calls.vendor_full(ev.VendorFull(call_id=event.call_id, vendor=target.id),
                                       now)


    # -- what adapters read ---------------------------------------------------

    @property
    def view(self) -> EngineView:
        """The engine's state now, as frozen values; the same object until the next
        ``handle()``, ``reload()`` or ``restore()``."""
        if self._view is None:
            self._view = self._build_view()
        return self._view

    def restore(self, saved: dict[str, tuple[str, bool]]) -> list[act.Action]:
        """Put agents back into a saved presence (before any call); the dialplan wins for
        an agent whose ``logged_in`` changed since the save, or that is not in it."""
        self._view = None
        return self._agents.restore(saved, self._clock.seconds())

    def _build_view(self) -> EngineView:
        live = self._calls.live
        overflow = self._calls.overflow
        shares = {(name, rule.vendors[0]): rule.percent
                  for name, q in self._dialplan.queues.items() for rule in q.overflow
                  if rule.percent is not None}
        depths = dict.fromkeys(self._dialplan.queues, 0)
        for call in live.values():
            if call.state in (CallState.QUEUED, CallState.RINGING, CallState.OVERFLOW):
                depths[call.queue.name] = depths.get(call.queue.name, 0) + 1
        return EngineView(
            agents={agent_id: AgentInfo(
                id=agent_id, state=a.state, groups=a.groups, presence=a.presence,
                logged_in=a.agent.logged_in, idle_since=a.idle_since, misses=a.misses,
                call_id=a.call_id, pending=a.pending, removed=a.removed)
                for agent_id, a in self._agents.slots.items()},
            calls={call_id: CallInfo(
                id=call_id, state=c.state, queue=c.queue.name, ringing=tuple(c.ringing),
                tried=tuple(sorted(c.tried)),
                vendor=None if c.vendor is None else c.vendor.vendor,
                record=c.record.freeze())
                for call_id, c in live.items()},
            queues={name: QueueInfo(name=name, group=q.group, depth=depths[name])
                    for name, q in self._dialplan.queues.items()},
            vendors={name: VendorInfo(name=name, health=v.health, failures=v.failures,
                                      in_use=v.in_use, max_channels=v.vendor.max_channels)
                     for name, v in self._vendors.slots.items() if not v.removed},
            groups=self._agents.members,
            share_credit=self._calls.overflow.credit,
            shares={key: ShareInfo(queue=key[0], vendor=key[1], percent=percent,
                                   calls=overflow.share_calls.get(key, 0),
                                   taken=overflow.share_taken.get(key, 0))
                    for key, percent in shares.items()},
            overflow_rules=overflow.active,
        )

    # -- timers ---------------------------------------------------------------

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
            case tm.NoResponseTimer(_, agent_id):
                agent = self._agents.slots.get(agent_id)
                if agent is None or agent.unheard != event.timer_id:
                    return []  # stale: the phone responded, or the agent was removed
                return self._calls.unreachable(agent, "no_response", now)
            case tm.AgentProbeTimer(agent_id):
                agent = self._agents.slots.get(agent_id)
                if agent is not None and agent.state is AgentState.UNREACHABLE:
                    return self._agents.probe(agent)
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
                agent = self._agents.slots[agent_id]
                actions.append(act.Ring(call_id=call_id, target=Target.agent(agent_id),
                                        uri=agent.agent.uri))
                actions.extend(self._agents.check_response(agent, call_id))
            actions.append(act.StartTimer(timer_id=tm.RingTimer(call_id),
                                          delay=call.queue.ring_timeout))
        return actions
