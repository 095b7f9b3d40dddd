"""Overflow to vendors for the routing engine: the queue's rules, service-level
sampling, share credit, and sending a call to the first vendor able to take it.

The rules of a queue's ``overflow`` are checked in order:

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
* ``share`` is deficit-based: each new call of the queue earns the vendor
  ``percent``/100 of a call; a credit of one sends the call. A share call the
  vendor did not take (failed, or an in-house agent took it over) gives the
  credit back. Credit saved up while the vendor could not take calls is capped
  at ``SHARE_CREDIT_CAP`` calls.
"""

from __future__ import annotations

from collections import deque
from typing import Mapping

from ccswitch.model import Condition, Dialplan, Queue, ServiceLevel
from ccswitch.routing import actions as act
from ccswitch.routing import timers as tm
from ccswitch.routing.actions import NoteLevel
from ccswitch.routing.agents import Agents
from ccswitch.routing.record import Route
from ccswitch.routing.runtime import LiveCall, VendorTry
from ccswitch.routing.states import CALL_TRANSITIONS, CallState, transition
from ccswitch.routing.target import Target
from ccswitch.routing.vendors import Vendors, VendorSlot

#: Share credit a vendor can save up while it cannot take calls, in calls.
SHARE_CREDIT_CAP = 3.0
_EPSILON = 1e-9


class Overflow:
    """The overflow rules' memory (share credit, service-level samples) and decisions."""

    def __init__(self, dialplan: Dialplan, agents: Agents, vendors: Vendors,
                 calls: Mapping[str, LiveCall]) -> None:
        self.dialplan = dialplan
        self._agents = agents
        self._vendors = vendors
        self._calls = calls
        # Per queue: (time, wait) of calls the in-house agents handled; wait None = abandoned.
        self._samples: dict[str, deque[tuple[float, float | None]]] = {}
        self._sl_on: dict[tuple[str, int], bool] = {}  # service_level_below rule is on
        self.credit: dict[tuple[str, str], float] = {}  # share credit per (queue, vendor)

    def reload(self, dialplan: Dialplan) -> None:
        """Changed queues restart their service-level rules and keep the share credit of
        the share rules they still have."""
        old_queues = self.dialplan.queues
        self.dialplan = dialplan
        if old_queues != dialplan.queues:
            self._sl_on.clear()
            self.credit = {key: credit for key, credit in self.credit.items()
                           if _shares(dialplan.queues.get(key[0]), key[1])}

    def check(self, call: LiveCall, agent_free: bool, now: float) -> list[act.Action]:
        """Check the queue's rules in order; the first that holds and has a vendor able to
        take the call sends it there."""
        queue = call.queue
        if call.entering:
            for rule in queue.overflow:
                if rule.condition is Condition.SHARE:
                    assert rule.percent is not None
                    key = (queue.name, rule.vendors[0])
                    self.credit[key] = min(SHARE_CREDIT_CAP,
                                           self.credit.get(key, 0.0) + rule.percent / 100)
        actions: list[act.Action] = []
        for index, rule in enumerate(queue.overflow):
            if not self._holds(call, index, agent_free, now):
                continue
            share = rule.condition is Condition.SHARE
            actions.extend(self.send(call, rule.vendors, rule.condition.value, now,
                                     share=share))
            if call.vendor is not None:
                break
        return actions

    def _holds(self, call: LiveCall, index: int, agent_free: bool, now: float) -> bool:
        rule = call.queue.overflow[index]
        queue = call.queue
        match rule.condition:
            case Condition.WAIT_EXCEEDS:
                assert rule.seconds is not None and call.record.queued_at is not None
                return now - call.record.queued_at >= rule.seconds - _EPSILON
            case Condition.NO_AGENTS_AVAILABLE:
                return not agent_free
            case Condition.NO_AGENTS_LOGGED_IN:
                return self._agents.all_logged_out(queue.group)
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
                calendar = self.dialplan.calendars.get(rule.calendar)
                return calendar is not None and not calendar.is_open(now)
            case Condition.SERVICE_LEVEL_BELOW:
                assert rule.service_level is not None
                on = self._service_level_low(queue, index, rule.service_level, now)
                return on and not agent_free
            case Condition.SHARE:
                return (call.entering
                        and self.credit.get((queue.name, rule.vendors[0]), 0.0) >= 1 - _EPSILON)
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

    def sample(self, call: LiveCall, now: float) -> None:
        """Remember an in-house-handled call for service_level_below rules."""
        if not any(r.service_level is not None for r in call.queue.overflow):
            return
        if call.record.overflow_reason is not None and call.record.answered_at is None:
            return
        wait = call.record.freeze().wait
        self._samples.setdefault(call.queue.name, deque()).append((now, wait))

    def send(self, call: LiveCall, vendors: tuple[str, ...], reason: str, now: float,
             *, share: bool = False) -> list[act.Action]:
        """Offer the call to the first of ``vendors`` that can take it (none: no change)."""
        actions: list[act.Action] = []
        for i, name in enumerate(vendors):
            slot = self._vendors.slots.get(name)
            if slot is None or slot.removed or name in call.failed_vendors:
                continue
            cause = self._vendors.unavailable(slot, now, self.dialplan.calendars)
            if cause is not None:
                actions.extend(self.unavailable(call, name, cause))
                continue
            record = call.record
            trying = VendorTry(vendor=name, reason=reason, fallbacks=vendors[i + 1:],
                               share=share, prior=(record.route, record.vendor,
                                                   record.overflow_reason,
                                                   record.overflowed_at))
            call_id = record.call_id
            if call.state is not CallState.OVERFLOW:
                call.state = transition(f"call {call_id}", CALL_TRANSITIONS, call.state,
                                        "overflow")
            call.vendor = trying
            slot.in_use += 1
            if share:
                key = (call.queue.name, name)
                self.credit[key] = self.credit.get(key, 0.0) - 1
            if record.overflow_reason is None:
                record.overflow_reason = reason
                record.overflowed_at = now
            record.route = Route.VENDOR
            record.vendor = name
            actions.append(act.note(NoteLevel.INFO,
                                    "call {call_id} overflows to vendor {vendor}: {reason}",
                                    call_id=call_id, vendor=name, reason=reason,
                                    queue=call.queue.name))
            actions.append(act.OverflowFired(call_id=call_id, queue=call.queue.name,
                                             vendor=name, reason=reason))
            actions.extend(ring_trunk(call, slot, trying, now))
            break
        return actions

    def unavailable(self, call: LiveCall, vendor: str, cause: str) -> list[act.Action]:
        """An OverflowUnavailable, once per call, vendor and cause."""
        if (vendor, cause) in call.noted:
            return []
        call.noted.add((vendor, cause))
        return [act.OverflowUnavailable(call_id=call.call_id, queue=call.queue.name,
                                        vendor=vendor, cause=cause)]

    def give_back(self, call: LiveCall, trying: VendorTry) -> None:
        """A share call the vendor did not take returns its credit."""
        if trying.share and not trying.answered:
            key = (call.queue.name, trying.vendor)
            self.credit[key] = min(SHARE_CREDIT_CAP, self.credit.get(key, 0.0) + 1)


def ring_trunk(call: LiveCall, slot: VendorSlot, trying: VendorTry,
               now: float) -> list[act.Action]:
    """Offer the call to the vendor's current trunk, with the vendor's ring timeout."""
    call.offer_seq += 1
    trying.seq = call.offer_seq
    trying.offered_at = now
    call_id = call.call_id
    return [act.Ring(call_id=call_id, target=Target.vendor(trying.vendor),
                           uri=slot.vendor.trunks[trying.trunk]),
            act.StartTimer(timer_id=tm.VendorRingTimer(call_id), delay=slot.vendor.ring_timeout)]


def _shares(queue: Queue | None, vendor: str) -> bool:
    """Whether ``queue`` has a share rule for ``vendor``."""
    return queue is not None and any(
        r.condition is Condition.SHARE and r.vendors == (vendor,) for r in queue.overflow)
