"""A call's life in the routing engine: arrival, the announcement, offers to agents and
vendors and their answers or failures, the caller leaving, max_wait, the end.

:class:`Calls` keeps the calls in progress (:class:`~ccswitch.routing.runtime.LiveCall`)
and turns call events into actions, using the agents, vendors and overflow rules.
Which waiting call gets which free agent is decided by the engine's dispatch.

* ``StartRecording`` comes once per call: with the answer (``recordings.start:
  answer``) or when the announcement was heard and the call is queued
  (``after_notice``); a call that ends during the announcement is not recorded.
* ``CallFinished`` is the last action about a call; the call is then forgotten,
  and later events about it raise ``UnknownCall``.
* A vendor's trunks are tried in order on 5xx and 408 (no response); any other
  error, or its ``ring_timeout``, moves on to the rule's next vendor, then back
  to the queue. 5xx, 408 and ring timeouts count against the vendor's health.
* While a vendor rings, an agent who becomes free may be offered the call too
  (``inhouse_takeover``); whoever answers first gets it.
* ``max_wait``: when it runs out, in-house offers are withdrawn and the call goes
  to the ``max_wait`` vendors, else hears the ``announcement`` (if any) and is
  hung up (outcome ``timeout``). A vendor already ringing is left to finish.
* A bridged vendor leg found dead (``VendorLegLost``) ends the call with outcome
  ``vendor_lost``: the caller already talked to the vendor, so it is not queued again.
"""

from __future__ import annotations

import attrs

from ccswitch.errors import IllegalTransition
from ccswitch.model import MAX_WAIT_REASON, Condition, Dialplan, Queue, RecordingStart
from ccswitch.routing import actions as act
from ccswitch.routing import events as ev
from ccswitch.routing import timers as tm
from ccswitch.routing.actions import NoteLevel
from ccswitch.routing.agents import IN_ROTATION, Agents, AgentSlot
from ccswitch.routing.overflow import Overflow, ring_trunk
from ccswitch.routing.record import Hold, Offer, Outcome, Route
from ccswitch.routing.runtime import CallProgress, LiveCall, UnknownCall, UnknownQueue, VendorTry
from ccswitch.routing.states import CALL_TRANSITIONS, AgentState, CallState, transition
from ccswitch.routing.target import CALLER, Caller, Target
from ccswitch.routing.vendors import Vendors


class Calls:
    """The calls in progress, in arrival order."""

    def __init__(self, dialplan: Dialplan, agents: Agents, vendors: Vendors,
                 recording_start: RecordingStart) -> None:
        self.live: dict[str, LiveCall] = {}
        self._recording_start = recording_start
        self._seq = 0
        self._agents = agents
        self._vendors = vendors
        self.overflow = Overflow(dialplan, agents, vendors, self.live)

    def get(self, call_id: str) -> LiveCall:
        call = self.live.get(call_id)
        if call is None:
            raise UnknownCall(call_id)
        return call

    def _offered(self, call: LiveCall, agent_id: str, event: str) -> AgentSlot:
        """The agent, which must be ringing for ``call`` (else IllegalTransition)."""
        agent = self._agents.get(agent_id)
        if agent_id not in call.ringing:
            raise IllegalTransition(f"offer {call.record.call_id}->{agent_id}", "none", event)
        return agent

    # -- call events ----------------------------------------------------------

    def call_arrived(self, event: ev.CallArrived, now: float) -> list[act.Action]:
        existing = self.live.get(event.call_id)
        if existing is not None:
            raise IllegalTransition(f"call {event.call_id}", existing.state.value, "CallArrived")
        queue = self.overflow.dialplan.queues.get(event.queue)
        if queue is None:
            raise UnknownQueue(event.queue)
        self._seq += 1
        record = CallProgress(call_id=event.call_id, caller=event.caller, dialed=event.dialed,
                            queue=queue.name, group=queue.group, arrived_at=now,
                            short_abandon_threshold=queue.short_abandon)
        self.live[event.call_id] = LiveCall(seq=self._seq, queue=queue, record=record)
        actions: list[act.Action] = [act.AnswerCaller(call_id=event.call_id)]
        if self._recording_start is RecordingStart.ANSWER:
            actions.append(act.StartRecording(call_id=event.call_id))
        actions.append(act.PlayAnnouncement(call_id=event.call_id, path=str(queue.announcement)))
        return actions

    def call_rejected(self, event: ev.CallRejected, now: float) -> list[act.Action]:
        """A call refused before it was set up: its record, never a live call."""
        if event.call_id in self.live:
            raise IllegalTransition(f"call {event.call_id}", self.live[event.call_id].state.value,
                                    "CallRejected")
        queue = self.overflow.dialplan.queues.get(event.queue)
        if queue is None:
            raise UnknownQueue(event.queue)
        record = CallProgress(call_id=event.call_id, caller=event.caller, dialed=event.dialed,
                              queue=queue.name, group=queue.group, arrived_at=now,
                              short_abandon_threshold=queue.short_abandon,
                              outcome=Outcome.REJECTED, ended_at=now)
        return [act.note(NoteLevel.DEBUG, "call {call_id} for {queue} rejected: {reason}",
                         call_id=event.call_id, queue=queue.name, reason=event.reason),
                act.CallFinished(record=record.freeze())]

    def announcement_finished(self, event: ev.AnnouncementFinished,
                               now: float) -> list[act.Action]:
        call = self.get(event.call_id)
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
        if self._recording_start is RecordingStart.AFTER_NOTICE:
            actions.append(act.StartRecording(call_id=call_id))
        return actions

    def agent_ringing(self, event: ev.LegRinging) -> list[act.Action]:
        call = self.get(event.call_id)
        return self._agents.heard(self._offered(call, event.target.id, "AgentRinging"))

    def agent_answered(self, event: ev.LegAnswered, now: float) -> list[act.Action]:
        call = self.get(event.call_id)
        agent = self._offered(call, event.target.id, "AgentAnswered")
        call_id = event.call_id
        new_state = transition(f"call {call_id}", CALL_TRANSITIONS, call.state, "AgentAnswered")
        actions: list[act.Action] = [*self._agents.heard(agent),
                                     act.CancelTimer(timer_id=tm.RingTimer(call_id)),
                                     act.StopMusicOnHold(call_id=call_id)]
        if call.vendor is not None:  # taken over from the vendor
            actions.extend(self._withdraw_vendor(call, "cancelled", now))
        call.record.route = Route.INHOUSE
        call.record.vendor = None
        others = [a for a in call.ringing if a != event.target.id]
        for other in others:
            actions.append(act.Cancel(call_id=call_id, target=Target.agent(other)))
            call.end_agent_offer(other, "cancelled", now)
        call.end_agent_offer(event.target.id, "answered", now)
        call.state = new_state
        call.record.agent_id = event.target.id
        call.record.answered_at = now
        call.record.bridged(event.target, now)
        self.overflow.sample(call, now)
        actions.append(act.Bridge(call_id=call_id, target=event.target))
        actions.extend(self._agents.answered(agent))
        actions.extend(self._agents.release_cancelled(others, now))
        return actions

    def agent_failed(self, event: ev.LegFailed, now: float) -> list[act.Action]:
        call = self.get(event.call_id)
        agent = self._offered(call, event.target.id, "AgentFailed")
        call.state = transition(f"call {event.call_id}", CALL_TRANSITIONS, call.state,
                                "AgentFailed")
        call.end_agent_offer(event.target.id, f"failed:{event.status}", now)
        actions = self._agents.heard(agent)
        if not call.ringing:
            actions.append(act.CancelTimer(timer_id=tm.RingTimer(event.call_id)))
            call.state = transition(f"call {event.call_id}", CALL_TRANSITIONS, call.state,
                                    "round_over")
        actions.extend(self._agents.miss(agent, call.queue, now))
        return actions

    def ring_timeout(self, call_id: str, now: float) -> list[act.Action]:
        call = self.live.get(call_id)
        if call is None or call.state is not CallState.RINGING:
            return []  # stale: the round ended before the timer fired
        call.state = transition(f"call {call_id}", CALL_TRANSITIONS, call.state, "ring_timeout")
        missed = list(call.ringing)
        actions: list[act.Action] = []
        for agent_id in missed:
            actions.append(act.Cancel(call_id=call_id, target=Target.agent(agent_id)))
            call.end_agent_offer(agent_id, "no_answer", now)
        for agent_id in missed:
            actions.extend(self._agents.miss(self._agents.slots[agent_id], call.queue, now))
        return actions

    def caller_hung_up(self, event: ev.CallerHungUp, now: float) -> list[act.Action]:
        return self._caller_gone(self.get(event.call_id), now)

    def media_timed_out(self, event: ev.MediaTimedOut, now: float) -> list[act.Action]:
        """A silent party ends the whole call: both sides are hung up, outcome media_timeout."""
        call = self.get(event.call_id)
        return [act.note(NoteLevel.WARN, "call {call_id}: no RTP from the {leg} for too long, "
                         "ending the call", call_id=event.call_id, leg=event.leg),
                act.HangupCaller(call_id=event.call_id),
                *self._caller_gone(call, now, Outcome.MEDIA_TIMEOUT)]

    def vendor_leg_lost(self, event: ev.VendorLegLost, now: float) -> list[act.Action]:
        """The answered vendor leg died: the vendor goes out of rotation at once and the
        call ends with outcome vendor_lost (the caller already talked to the vendor, so
        it is not queued again). Evidence about a leg no longer bridged is only noted."""
        call = self.live.get(event.call_id)
        if (call is None or call.state is not CallState.BRIDGED or call.vendor is None
                or call.vendor.vendor != event.vendor):
            return [act.note(NoteLevel.DEBUG, "call {call_id}: vendor {vendor} leg lost "
                             "({cause}) but not bridged to it", call_id=event.call_id,
                             vendor=event.vendor, cause=event.cause),
                    *self._vendors.lost(event.vendor, event.cause)]
        return [act.note(NoteLevel.WARN, "call {call_id}: vendor {vendor} leg lost ({cause}), "
                         "ending the call", call_id=event.call_id, vendor=event.vendor,
                         cause=event.cause),
                *self._vendors.lost(event.vendor, event.cause),
                act.HangupCaller(call_id=event.call_id),
                *self._caller_gone(call, now, Outcome.VENDOR_LOST)]

    def held(self, event: ev.LegHeld, now: float) -> list[act.Action]:
        """A party of a bridged call holds the other side: the hold is recorded and the
        held side hears the queue's music on hold (or silence) instead of the holder. A
        hold before the bridge (the caller in the queue already hears music) is no hold
        of the conversation and is not recorded."""
        call = self.get(event.call_id)
        call_id = event.call_id
        if call.state is not CallState.BRIDGED:
            return [act.note(NoteLevel.DEBUG, "call {call_id}: {party} holds before the "
                             "bridge, not counted", call_id=call_id, party=str(event.party))]
        held = self._other_side(call, event.party, "LegHeld")
        if call.record.open_hold(event.party) is not None:
            raise IllegalTransition(f"call {call_id}", "held", "LegHeld")
        call.record.holds.append(Hold(party=event.party, start=now))
        moh = call.queue.music_on_hold
        return [act.StartHoldMusic(call_id=call_id, party=held,
                                   path=None if moh is None else str(moh))]

    def resumed(self, event: ev.LegResumed, now: float) -> list[act.Action]:
        """The holding party takes the call back: its hold ends, the held side hears it
        again. A resume with no hold recorded (one taken before the bridge) does nothing."""
        call = self.get(event.call_id)
        index = call.record.open_hold(event.party)
        if index is None:
            return []
        held = self._other_side(call, event.party, "LegResumed")
        record = call.record
        record.holds[index] = attrs.evolve(record.holds[index], end=now)
        return [act.StopHoldMusic(call_id=event.call_id, party=held)]

    @staticmethod
    def _other_side(call: LiveCall, party: Target | Caller, event: str) -> Target | Caller:
        """The side ``party`` talks to in a bridged call (IllegalTransition if ``party``
        is not in the bridge)."""
        segments = call.record.segments
        bridged = segments[-1].target if segments and segments[-1].ended_at is None else None
        if bridged is None or party not in (CALLER, bridged):
            raise IllegalTransition(f"call {call.record.call_id}", "not bridged with "
                                    f"{party}", event)
        return bridged if party == CALLER else CALLER

    def _caller_gone(self, call: LiveCall, now: float,
                     outcome: Outcome | None = None) -> list[act.Action]:
        """The caller's side is gone: end the call (``outcome`` None: the one it earned)."""
        call_id = call.record.call_id
        transition(f"call {call_id}", CALL_TRANSITIONS, call.state, "CallerHungUp")
        if call.state is CallState.BRIDGED:
            agent_id = call.record.agent_id
            if agent_id is None:
                assert call.vendor is not None
                return [act.Hangup(call_id=call_id, target=Target.vendor(call.vendor.vendor)),
                        *self._finish(call, outcome or Outcome.ANSWERED_VENDOR, now)]
            return [act.Hangup(call_id=call_id, target=Target.agent(agent_id)),
                    *self._finish(call, outcome or Outcome.ANSWERED_INHOUSE, now),
                    *self._agents.after_call(self._agents.slots[agent_id], call.queue, now)]
        if call.state is CallState.CLOSING:
            return self._finish(call, outcome or Outcome.TIMEOUT, now)
        actions: list[act.Action] = []
        if call.vendor is not None:
            actions.extend(self._withdraw_vendor(call, "cancelled", now))
        cancels, ringing = self._cancel_ringing(call, now)
        actions.extend(cancels)
        actions.extend(self._finish(call, outcome or self._unanswered(call, bool(ringing), now),
                                    now))
        actions.extend(self._agents.release_cancelled(ringing, now))
        return actions

    def _unanswered(self, call: LiveCall, ringing: bool, now: float) -> Outcome:
        """The outcome of a caller who left before anyone answered."""
        record = call.record
        if record.overflow_reason is not None:
            return Outcome.OVERFLOW_FAILED
        if now - record.arrived_at < record.short_abandon_threshold:
            return Outcome.SHORT_ABANDON
        return Outcome.ABANDONED_RINGING if ringing else Outcome.ABANDONED_QUEUE

    def agent_hung_up(self, event: ev.LegHungUp, now: float) -> list[act.Action]:
        call = self.get(event.call_id)
        agent = self._agents.get(event.target.id)
        transition(f"call {event.call_id}", CALL_TRANSITIONS, call.state, "AgentHungUp")
        if call.record.agent_id != event.target.id:
            raise IllegalTransition(f"offer {event.call_id}->{event.target.id}", "not bridged",
                                    "AgentHungUp")
        return [act.HangupCaller(call_id=event.call_id),
                *self._finish(call, Outcome.ANSWERED_INHOUSE, now),
                *self._agents.after_call(agent, call.queue, now)]

    def agent_taken(self, event: ev.AgentTaken, now: float) -> list[act.Action]:
        """Our reservation was refused: withdraw the offer without counting a miss."""
        call = self.get(event.call_id)
        agent = self._offered(call, event.agent_id, "AgentTaken")
        call_id = event.call_id
        actions: list[act.Action] = [act.Cancel(call_id=call_id,
                                                target=Target.agent(event.agent_id)),
                                     *self._agents.heard(agent)]  # never rung: nothing to check
        call.end_agent_offer(event.agent_id, "cancelled", now)
        call.tried.discard(event.agent_id)
        if not call.ringing:
            actions.append(act.CancelTimer(timer_id=tm.RingTimer(call_id)))
            trigger = "round_over"
            call.state = transition(f"call {call_id}", CALL_TRANSITIONS, call.state, trigger)
        actions.extend(self._agents.taken(agent))
        return actions

    def unreachable(self, agent: AgentSlot, reason: str, now: float) -> list[act.Action]:
        """The agent's phone is dead (``reason`` no_response or send_failed): its live
        offer ends at once (not a miss) and the agent leaves rotation. Only a reserved
        or ready agent is affected."""
        actions = self._agents.heard(agent)
        if agent.state not in IN_ROTATION:
            return actions  # away or busy: nothing to take out of rotation
        if agent.state is AgentState.RESERVED:
            assert agent.call_id is not None
            call = self.live[agent.call_id]
            call_id = call.call_id
            call.state = transition(f"call {call_id}", CALL_TRANSITIONS, call.state,
                                    "unreachable")
            call.end_agent_offer(agent.id, "unreachable", now)
            actions.append(act.Cancel(call_id=call_id, target=Target.agent(agent.id)))
            if not call.ringing:
                actions.append(act.CancelTimer(timer_id=tm.RingTimer(call_id)))
                call.state = transition(f"call {call_id}", CALL_TRANSITIONS, call.state,
                                        "round_over")
        actions.extend(self._agents.unreachable(agent, reason, now))
        return actions

    def vendor_full(self, event: ev.VendorFull, now: float) -> list[act.Action]:
        """The vendor is full over all nodes: like a vendor at its cap here."""
        call = self.get(event.call_id)
        trying = self._trying(call, event.vendor, "VendorFull")
        call_id = event.call_id
        actions: list[act.Action] = [
            act.Cancel(call_id=call_id, target=Target.vendor(event.vendor)),
            act.CancelTimer(timer_id=tm.VendorRingTimer(call_id))]
        record = call.record  # no offer was made: the record is as before it
        record.route, record.vendor, record.overflow_reason, record.overflowed_at = trying.prior
        return actions + self._leave_vendor(call, trying, "full", now)

    # -- vendor events --------------------------------------------------------

    def _trying(self, call: LiveCall, vendor: str, event: str) -> VendorTry:
        """The call's vendor offer, which must be to ``vendor`` (else IllegalTransition)."""
        trying = call.vendor
        if trying is None or trying.vendor != vendor:
            raise IllegalTransition(f"offer {call.record.call_id}->vendor {vendor}", "none", event)
        return trying

    def vendor_ringing(self, event: ev.LegRinging) -> list[act.Action]:
        call = self.get(event.call_id)
        trying = self._trying(call, event.target.id, "VendorRinging")
        if trying.answered:
            raise IllegalTransition(f"offer {event.call_id}->vendor {event.target.id}", "answered",
                                    "VendorRinging")
        transition(f"call {event.call_id}", CALL_TRANSITIONS, call.state, "VendorRinging")
        return []

    def vendor_answered(self, event: ev.LegAnswered, now: float) -> list[act.Action]:
        call = self.get(event.call_id)
        trying = self._trying(call, event.target.id, "VendorAnswered")
        call_id = event.call_id
        new_state = transition(f"call {call_id}", CALL_TRANSITIONS, call.state, "VendorAnswered")
        actions: list[act.Action] = [
            act.CancelTimer(timer_id=tm.VendorRingTimer(call_id)),
            act.StopMusicOnHold(call_id=call_id)]
        cancels, ringing = self._cancel_ringing(call, now)
        actions.extend(cancels)
        self._end_vendor_offer(call, trying, "answered", now)
        trying.answered = True
        self.overflow.taken(call, trying)
        call.state = new_state
        call.record.answered_at = now
        call.record.bridged(event.target, now)
        actions.append(act.Bridge(call_id=call_id, target=event.target))
        actions.extend(self._vendors.result(event.target.id, ok=True))
        actions.extend(self._agents.release_cancelled(ringing, now))
        return actions

    def vendor_failed(self, event: ev.LegFailed, now: float) -> list[act.Action]:
        call = self.get(event.call_id)
        trying = self._trying(call, event.target.id, "VendorFailed")
        if trying.answered:
            raise IllegalTransition(f"offer {event.call_id}->vendor {event.target.id}", "answered",
                                    "VendorFailed")
        transition(f"call {event.call_id}", CALL_TRANSITIONS, call.state, "VendorFailed")
        status = event.status
        trunk_down = status == 408 or 500 <= status < 600
        actions: list[act.Action] = [
            act.CancelTimer(timer_id=tm.VendorRingTimer(event.call_id))]
        self._end_vendor_offer(call, trying, f"failed:{status}", now)
        if trunk_down:
            actions.extend(self._vendors.result(event.target.id, ok=False))
        slot = self._vendors.next_trunk(event.target.id, trying.trunk) if trunk_down else None
        if slot is not None:
            trying.trunk += 1
            actions.extend(ring_trunk(call, slot, trying, now))
            return actions
        actions.extend(self._vendor_gave_up(call, now))
        return actions

    def vendor_ring_timeout(self, call_id: str, now: float) -> list[act.Action]:
        call = self.live.get(call_id)
        trying = None if call is None else call.vendor
        if call is None or trying is None or trying.answered:
            return []  # stale
        actions: list[act.Action] = [act.Cancel(call_id=call_id,
                                                target=Target.vendor(trying.vendor))]
        self._end_vendor_offer(call, trying, "no_answer", now)
        actions.extend(self._vendors.result(trying.vendor, ok=False))
        actions.extend(self._vendor_gave_up(call, now))
        return actions

    def _vendor_gave_up(self, call: LiveCall, now: float) -> list[act.Action]:
        """The vendor offer ended unanswered: its next vendor, else back to the queue."""
        trying = call.vendor
        assert trying is not None
        return self._leave_vendor(call, trying, "failed", now)

    def _leave_vendor(self, call: LiveCall, trying: VendorTry, cause: str,
                      now: float) -> list[act.Action]:
        """The vendor did not take the call (``cause`` full or failed): its channel is
        freed, then the rule's next vendor; with none left the call goes back to the
        queue, or after max_wait to its final action."""
        call.failed_vendors.add(trying.vendor)
        self._release_vendor(call)
        actions = self.overflow.unavailable(call, trying.vendor, cause)
        actions.extend(self.overflow.send(call, trying.fallbacks, trying.reason, now))
        if call.vendor is not None:
            return actions
        if call.final:
            return actions + self._close(call, now)
        trigger = "vendors_exhausted_ringing" if call.ringing else "vendors_exhausted"
        call.state = transition(f"call {call.record.call_id}", CALL_TRANSITIONS, call.state,
                                trigger)
        return actions

    def vendor_hung_up(self, event: ev.LegHungUp, now: float) -> list[act.Action]:
        call = self.get(event.call_id)
        trying = self._trying(call, event.target.id, "VendorHungUp")
        transition(f"call {event.call_id}", CALL_TRANSITIONS, call.state, "VendorHungUp")
        assert trying.answered
        return [act.HangupCaller(call_id=event.call_id),
                *self._finish(call, Outcome.ANSWERED_VENDOR, now)]

    def _end_vendor_offer(self, call: LiveCall, trying: VendorTry, result: str,
                          now: float) -> None:
        call.add_offer(trying.seq, Offer(
            vendor=trying.vendor, trunk=self._vendors.trunk(trying.vendor, trying.trunk),
            offered_at=trying.offered_at, ended_at=now, result=result))

    def _withdraw_vendor(self, call: LiveCall, result: str, now: float) -> list[act.Action]:
        """Cancel the vendor offer still ringing (someone else answered, the caller left)."""
        trying = call.vendor
        assert trying is not None and not trying.answered
        call_id = call.record.call_id
        self._end_vendor_offer(call, trying, result, now)
        self._release_vendor(call)
        return [act.Cancel(call_id=call_id, target=Target.vendor(trying.vendor)),
                act.CancelTimer(timer_id=tm.VendorRingTimer(call_id))]

    def _release_vendor(self, call: LiveCall) -> None:
        """The call no longer holds a channel of its vendor."""
        trying = call.vendor
        assert trying is not None
        call.vendor = None
        if self._vendors.release(trying.vendor):
            self.overflow.give_back(call, trying)

    def max_wait(self, call_id: str, now: float) -> list[act.Action]:
        call = self.live.get(call_id)
        if call is None or call.state not in (CallState.QUEUED, CallState.RINGING,
                                              CallState.OVERFLOW):
            return []
        max_wait = call.queue.max_wait
        assert max_wait is not None
        call.final = True
        actions: list[act.Action] = [
            act.note(NoteLevel.INFO, "call {call_id} waited the queue's max_wait of {seconds}s",
                     call_id=call_id, seconds=max_wait.seconds, queue=call.queue.name)]
        actions.extend(self._withdraw_agents(call, now))
        if call.vendor is not None:
            return actions  # a vendor already has it: its answer or failure decides
        actions.extend(self.overflow.send(call, max_wait.vendors, MAX_WAIT_REASON, now))
        if call.vendor is None:
            actions.extend(self._close(call, now))
        return actions

    def _withdraw_agents(self, call: LiveCall, now: float) -> list[act.Action]:
        cancels, ringing = self._cancel_ringing(call, now)
        return cancels + self._agents.release_cancelled(ringing, now)

    def _cancel_ringing(self, call: LiveCall, now: float) -> tuple[list[act.Action], list[str]]:
        """CANCEL every offer of the call still ringing (recorded as cancelled): the
        actions, and the agents, whom ``Agents.release_cancelled`` then frees."""
        ringing = list(call.ringing)
        if not ringing:
            return [], []
        call_id = call.record.call_id
        actions: list[act.Action] = [act.CancelTimer(timer_id=tm.RingTimer(call_id))]
        for agent_id in ringing:
            actions.append(act.Cancel(call_id=call_id, target=Target.agent(agent_id)))
            call.end_agent_offer(agent_id, "cancelled", now)
        return actions, ringing

    def _close(self, call: LiveCall, now: float) -> list[act.Action]:
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

    def _finish(self, call: LiveCall, outcome: Outcome, now: float) -> list[act.Action]:
        """End the call: its timers go, its vendor channel is freed, the record is final."""
        call.state = CallState.ENDED
        record = call.record
        record.outcome = outcome
        record.ended_at = now
        record.close_segment(now)
        record.close_holds(now)
        call_id = record.call_id
        del self.live[call_id]
        if call.vendor is not None:
            self._release_vendor(call)
        if outcome in (Outcome.ABANDONED_QUEUE, Outcome.ABANDONED_RINGING):
            self.overflow.sample(call, now)
        actions: list[act.Action] = [act.CancelTimer(timer_id=timer_id)
                                     for timer_id, _ in _queue_timers(call.queue, call_id)]
        actions.append(act.CallFinished(record=record.freeze()))
        return actions


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
