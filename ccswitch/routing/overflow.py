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
  credit back. Credit saved up while the vendor could not take calls is kept as
  the rule's ``catch_up`` says: until the end of the clock hour or day (then the
  whole calls of it lapse), or up to a number of calls (``none``:
  :data:`~ccswitch.model.SHARE_CREDIT_CAP`). Per share the engine counts the
  queue's calls and the share calls the vendor answered, for the achieved split.
* A rule is *on* for its queue while (outside_hours) its calendar is closed,
  (no_agents_logged_in) nobody of the group is logged in, (service_level_below)
  its hysteresis state is on, (share) the vendor is owed a whole call it could
  not take; the per-call rules (wait_exceeds, no_agents_available,
  queue_length_exceeds) are on when they held for a caller at the queue's latest
  check (of a caller entering it, for queue_length_exceeds), and off when they
  held for none. The state is checked after every event; each change is a Note
  and shows in the view.
"""

from __future__ import annotations

import datetime
from collections import deque
from typing import Mapping

from ccswitch.model import (
    CatchUp, CatchUpPeriod, Condition, Dialplan, OverflowRule, Queue,
    ServiceLevel,
)
from ccswitch.routing import actions as act
from ccswitch.routing import timers as tm
from ccswitch.routing.actions import NoteLevel
from ccswitch.routing.agents import Agents
from ccswitch.routing.calendar import load_zone
from ccswitch.routing.record import Route
from ccswitch.routing.runtime import LiveCall, VendorTry
from ccswitch.routing.states import CALL_TRANSITIONS, CallState, transition
from ccswitch.routing.target import Target
from ccswitch.routing.vendors import Vendors, VendorSlot

_EPSILON = 1e-9


def _period_start(catch_up: CatchUp, dialplan: Dialplan, now: float) -> float | None:
    """When the clock hour or day of ``now`` began in the share's time zone (its
    calendar's, else UTC); None for a share that does not catch up by period."""
    if catch_up.period not in (CatchUpPeriod.HOUR, CatchUpPeriod.DAY):
        return None
    calendar = None if catch_up.calendar is None else dialplan.calendars.get(catch_up.calendar)
    zone = load_zone("UTC" if calendar is None else calendar.timezone)
    start = datetime.datetime.fromtimestamp(now, zone).replace(minute=0, second=0,
                                                               microsecond=0)
    if catch_up.period is CatchUpPeriod.DAY:
        start = start.replace(hour=0)
    return start.timestamp()


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
        self._period: dict[tuple[str, str], float] = {}  # start of the share's catch-up period
        # Per (queue, vendor) of a share since start: calls that entered the queue, and
        # share calls the vendor answered.
        self.share_calls: dict[tuple[str, str], int] = {}
        self.share_taken: dict[tuple[str, str], int] = {}
        self.active: dict[tuple[str, str], bool] = {}  # (queue, rule name) -> rule is on
        self._held: dict[tuple[str, str], bool] = {}  # per-call rules checked since then

    def reload(self, dialplan: Dialplan) -> None:
        """Changed queues restart their service-level rules and keep the share credit of
        the share rules they still have."""
        old_queues = self.dialplan.queues
        self.dialplan = dialplan
        if old_queues != dialplan.queues:
            self._sl_on.clear()
            for tally in (self.credit, self._period, self.share_calls, self.share_taken):
                for key in [k for k in tally
                            if _share_rule(dialplan.queues.get(k[0]), k[1]) is None]:
                    del tally[key]

    def check(self, call: LiveCall, agent_free: bool, now: float) -> list[act.Action]:
        """Check the queue's rules in order; the first that holds and has a vendor able to
        take the call sends it there."""
        queue = call.queue
        actions: list[act.Action] = []
        if call.entering:
            for rule in queue.overflow:
                if rule.condition is Condition.SHARE:
                    actions.extend(self._earn(queue, rule, now))
        for index, (rule, name) in enumerate(zip(queue.overflow, queue.rule_names)):
            held = self._holds(call, index, agent_free, now)
            if call.entering or rule.condition is not Condition.QUEUE_LENGTH_EXCEEDS:
                key = (queue.name, name)  # queue length is decided on entry only
                self._held[key] = self._held.get(key, False) or held
            if not held:
                continue
            share = rule.condition is Condition.SHARE
            actions.extend(self.send(call, rule.vendors, rule.condition.value, now,
                                     share=share))
            if call.vendor is not None:
                break
        return actions

    def _earn(self, queue: Queue, rule: OverflowRule, now: float) -> list[act.Action]:
        """A call entered ``queue``: the share's vendor earns its part of a call. A new
        catch-up period first lets the whole calls still owed from the last one lapse."""
        assert rule.percent is not None
        key = (queue.name, rule.vendors[0])
        actions: list[act.Action] = []
        credit = self.credit.get(key, 0.0)
        start = _period_start(rule.catch_up, self.dialplan, now)
        if start is not None and self._period.get(key) != start:
            if key in self._period and credit >= 1:
                actions.append(act.note(
                    NoteLevel.WARN, "queue {queue}: {calls} share call(s) vendor {vendor} "
                    "could not take lapse with the {period}", queue=queue.name,
                    vendor=key[1], calls=int(credit), period=rule.catch_up.period.value))
                credit %= 1.0
            self._period[key] = start
        self.credit[key] = _capped(rule.catch_up, credit + rule.percent / 100)
        self.share_calls[key] = self.share_calls.get(key, 0) + 1
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
            first = record.overflow_reason is None
            if first:
                record.overflow_reason = reason
                record.overflowed_at = now
            record.route = Route.VENDOR
            record.vendor = name
            actions.append(act.note(NoteLevel.INFO,
                                    "call {call_id} overflows to vendor {vendor}: {reason}",
                                    call_id=call_id, vendor=name, reason=reason,
                                    queue=call.queue.name))
            actions.append(act.OverflowFired(call_id=call_id, queue=call.queue.name,
                                             vendor=name, reason=reason, first=first))
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
        rule = _share_rule(call.queue, trying.vendor)
        if trying.share and not trying.answered and rule is not None:
            key = (call.queue.name, trying.vendor)
            self.credit[key] = _capped(rule.catch_up, self.credit.get(key, 0.0) + 1)

    def taken(self, call: LiveCall, trying: VendorTry) -> None:
        """The vendor answered ``trying``: a share call counts towards the achieved split."""
        if trying.share:
            key = (call.queue.name, trying.vendor)
            self.share_taken[key] = self.share_taken.get(key, 0) + 1

    def states(self, now: float) -> list[act.Action]:
        """Check whether each queue's rules are on (see the module docstring); a Note for
        every rule that turned on or off since the last check."""
        actions: list[act.Action] = []
        active: dict[tuple[str, str], bool] = {}
        for queue in self.dialplan.queues.values():
            for index, (rule, name) in enumerate(zip(queue.overflow, queue.rule_names)):
                key = (queue.name, name)
                was = self.active.get(key, False)
                on = active[key] = self._on(queue, index, rule, self._held.get(key, was), now)
                if on != was:
                    actions.append(act.note(NoteLevel.INFO,
                                            "queue {queue}: overflow rule {rule} turned {state}",
                                            queue=queue.name, rule=name,
                                            state="on" if on else "off"))
        self.active = active
        self._held.clear()
        return actions

    def _on(self, queue: Queue, index: int, rule: OverflowRule, held: bool,
            now: float) -> bool:
        """Whether the rule is on; ``held``: for a per-call rule, whether it held at the
        latest check (else its state so far)."""
        match rule.condition:
            case (Condition.WAIT_EXCEEDS | Condition.NO_AGENTS_AVAILABLE
                  | Condition.QUEUE_LENGTH_EXCEEDS):
                return held
            case Condition.NO_AGENTS_LOGGED_IN:
                return self._agents.all_logged_out(queue.group)
            case Condition.OUTSIDE_HOURS:
                assert rule.calendar is not None
                calendar = self.dialplan.calendars.get(rule.calendar)
                return calendar is not None and not calendar.is_open(now)
            case Condition.SERVICE_LEVEL_BELOW:
                return self._sl_on.get((queue.name, index), False)
            case Condition.SHARE:
                return self.credit.get((queue.name, rule.vendors[0]), 0.0) >= 1 - _EPSILON
        return False  # pragma: no cover - every condition is matched above


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


def _share_rule(queue: Queue | None, vendor: str) -> OverflowRule | None:
    """``queue``'s share rule for ``vendor``, if it has one."""
    if queue is None:
        return None
    return next((r for r in queue.overflow
                 if r.condition is Condition.SHARE and r.vendors == (vendor,)), None)


def _capped(catch_up: CatchUp, credit: float) -> float:
    cap = catch_up.cap
    return credit if cap is None else min(cap, credit)
