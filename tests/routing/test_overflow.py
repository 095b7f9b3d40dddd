"""Overflow to vendors in the routing engine: every rule, their order, caps, failover, health."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from ccswitch.config.calendars import parse_calendar
from ccswitch.errors import IllegalTransition
from ccswitch.model import (
    CatchUp, CatchUpPeriod, Condition, MaxWait, OverflowRule, ServiceLevel, Vendor,
)
from ccswitch.routing import actions as act
from ccswitch.routing import events as ev
from ccswitch.routing import timers as tm
from ccswitch.routing.calendar import Calendar
from ccswitch.routing.record import Outcome, Route
from ccswitch.routing.states import AgentState, CallState, VendorHealth
from ccswitch.routing.target import Target
from tests.routing.driver import T0, Driver, make_dialplan, make_queue, make_vendor, trunk

ACME = make_vendor("acme", trunks=2)
GLOBEX = make_vendor("globex")
FAREWELL = "/sounds/sorry.wav"


def rule(condition: Condition, *vendors: str, **value: object) -> OverflowRule:
    return OverflowRule(condition=condition, vendors=vendors or ("acme",),
                        **value)  # type: ignore[arg-type]


def driver(*rules: OverflowRule, agents: tuple[str, ...] = ("alice", "bob"),
           logged_out: tuple[str, ...] = (), vendors: tuple[Vendor, ...] = (ACME, GLOBEX),
           calendars: tuple[Calendar, ...] = (), **queue: object) -> Driver:
    plan = make_dialplan(agents, logged_out=logged_out, vendors=vendors, calendars=calendars,
                         queues=[make_queue(overflow=rules, **queue)])  # type: ignore[arg-type]
    return Driver(plan)


def fired(actions: list[act.Action]) -> list[tuple[str, str]]:
    return [(a.vendor, a.reason) for a in actions if isinstance(a, act.OverflowFired)]


def unavailable(d: Driver) -> list[tuple[str, str]]:
    return [(a.vendor, a.cause) for a in d.log if isinstance(a, act.OverflowUnavailable)]


def busy_both(d: Driver) -> None:
    """Two calls answered by alice and bob: nobody is free afterwards."""
    for call_id, agent in (("b1", "alice"), ("b2", "bob")):
        d.queued(call_id)
        d.answer(call_id, agent)


CLOSED = parse_calendar("never", {"timezone": "UTC", "hours": {}})
OPEN = parse_calendar("always", {"timezone": "UTC", "hours": {"daily": ["00:00-24:00"]}})


# -- rules -------------------------------------------------------------------------------


def test_no_agents_logged_in_sends_the_call_to_the_vendor_at_queue_entry() -> None:
    """no_agents_logged_in: the call rings the vendor's first trunk as it enters the queue."""
    d = driver(rule(Condition.NO_AGENTS_LOGGED_IN), logged_out=("alice", "bob"))
    actions = d.queued("c1")
    assert fired(actions) == [("acme", "no_agents_logged_in")]
    assert act.Ring(call_id="c1", target=Target.vendor("acme"), uri=trunk("acme", 1)) in actions
    assert act.StartTimer(timer_id=tm.VendorRingTimer("c1"), delay=30.0) in actions
    assert d.engine.view.calls["c1"].state is CallState.OVERFLOW
    acme = d.engine.view.vendors["acme"]
    assert (acme.in_use, acme.max_channels, acme.health) == (1, 10, VendorHealth.UP)


def test_no_agents_logged_in_does_not_fire_while_an_agent_is_logged_in() -> None:
    """One agent logged in (even busy) keeps no_agents_logged_in quiet."""
    d = driver(rule(Condition.NO_AGENTS_LOGGED_IN), agents=("alice",))
    d.queued("b1")
    d.answer("b1", "alice")
    actions = d.queued("c1")
    assert fired(actions) == [] and d.engine.view.calls["c1"].state is CallState.QUEUED


def test_vendor_answer_bridges_and_the_record_carries_vendor_and_reason() -> None:
    """Vendor answers: bridge, MOH off; at the end answered_vendor with vendor and reason."""
    d = driver(rule(Condition.NO_AGENTS_LOGGED_IN), logged_out=("alice", "bob"))
    d.queued("c1")
    d.advance(4)
    actions = d.vendor_answer("c1", "acme")
    assert act.Bridge(call_id="c1", target=Target.vendor("acme")) in actions
    assert act.StopMusicOnHold(call_id="c1") in actions
    d.advance(60)
    actions = d.vendor_hangup("c1", "acme")
    [r] = d.records
    assert actions[0] == act.HangupCaller(call_id="c1")
    assert (r.outcome, r.route, r.vendor, r.overflow_reason) == (
        Outcome.ANSWERED_VENDOR, Route.VENDOR, "acme", "no_agents_logged_in")
    assert (r.overflowed_at, r.answered_at, r.wait, r.ring, r.talk) == (T0, T0 + 4, 4, 4, 60)
    assert r.vendor_wait == 4
    assert [(o.vendor, o.trunk, o.result) for o in r.offers] == [
        ("acme", trunk("acme", 1), "answered")]
    assert d.engine.view.vendors["acme"].in_use == 0


def test_caller_hangup_while_bridged_to_the_vendor_hangs_up_the_vendor() -> None:
    """The caller leaving a vendor call: BYE to the vendor, channel freed."""
    d = driver(rule(Condition.NO_AGENTS_LOGGED_IN), logged_out=("alice", "bob"))
    d.queued("c1")
    d.vendor_answer("c1", "acme")
    actions = d.caller_hangup("c1")
    assert actions[0] == act.Hangup(call_id="c1", target=Target.vendor("acme"))
    assert d.records[0].outcome is Outcome.ANSWERED_VENDOR
    assert d.engine.view.vendors["acme"].in_use == 0


def test_wait_exceeds_fires_after_the_wait_and_not_before() -> None:
    """wait_exceeds: 30 s in queue with nobody free, then the vendor; not a moment earlier."""
    d = driver(rule(Condition.WAIT_EXCEEDS, seconds=30.0), logged_out=("alice", "bob"))
    d.queued("c1")
    assert d.advance(29.9) == [] and d.engine.view.calls["c1"].state is CallState.QUEUED
    actions = d.advance(0.1)
    assert fired(actions) == [("acme", "wait_exceeds")]
    r = d.engine.view.calls["c1"].record
    assert (r.overflow_reason, r.overflowed_at) == ("wait_exceeds", T0 + 30)


def test_wait_exceeds_waits_for_the_in_house_offer_to_end() -> None:
    """A call ringing an agent when its wait runs out overflows only once the offer ends."""
    d = driver(rule(Condition.WAIT_EXCEEDS, seconds=10.0), agents=("alice",), ring_timeout=15.0)
    d.queued("c1")
    d.advance(10)
    assert d.engine.view.calls["c1"].state is CallState.RINGING
    actions = d.advance(5)  # alice's ring timeout: no one else free, wait exceeded
    assert fired(actions) == [("acme", "wait_exceeds")]
    assert d.engine.view.calls["c1"].state is CallState.OVERFLOW


def test_no_agents_available_fires_when_every_agent_is_busy() -> None:
    """no_agents_available: all agents on calls, the next caller goes to the vendor."""
    d = driver(rule(Condition.NO_AGENTS_AVAILABLE))
    busy_both(d)
    assert fired(d.queued("c1")) == [("acme", "no_agents_available")]


def test_no_agents_available_leaves_the_call_in_house_when_an_agent_is_free() -> None:
    """With a free agent, no_agents_available does not fire and the agent rings."""
    d = driver(rule(Condition.NO_AGENTS_AVAILABLE))
    actions = d.queued("c1")
    assert fired(actions) == [] and d.engine.view.calls["c1"].ringing == ("alice",)


def test_queue_length_exceeds_counts_the_callers_ahead_on_entry_only() -> None:
    """queue_length_exceeds 1: the third waiting caller overflows; the others stay."""
    d = driver(rule(Condition.QUEUE_LENGTH_EXCEEDS, length=1), logged_out=("alice", "bob"))
    assert fired(d.queued("c1")) == [] and fired(d.queued("c2")) == []
    assert fired(d.queued("c3")) == [("acme", "queue_length_exceeds")]
    d.caller_hangup("c3")
    d.queued("c4")  # two ahead again
    assert d.engine.view.calls["c4"].state is CallState.OVERFLOW
    d.advance(100)
    assert d.engine.view.calls["c1"].state is CallState.QUEUED  # decided on entry, not later


def test_outside_hours_overflows_even_with_agents_free() -> None:
    """outside_hours: a closed calendar sends the call on even though alice is free."""
    d = driver(rule(Condition.OUTSIDE_HOURS, "globex", calendar="never"), calendars=(CLOSED,))
    assert fired(d.queued("c1")) == [("globex", "outside_hours")]
    assert d.engine.view.agents["alice"].state is AgentState.READY


def test_outside_hours_keeps_the_call_when_the_calendar_is_open() -> None:
    """An open calendar: outside_hours does not fire."""
    d = driver(rule(Condition.OUTSIDE_HOURS, calendar="always"), calendars=(OPEN,))
    assert fired(d.queued("c1")) == []


def test_rules_are_tried_in_order_and_the_first_that_holds_wins() -> None:
    """Two rules that both hold: the first one's vendor and reason are used."""
    d = driver(rule(Condition.NO_AGENTS_LOGGED_IN, "globex"),
               rule(Condition.NO_AGENTS_AVAILABLE, "acme"), logged_out=("alice", "bob"))
    assert fired(d.queued("c1")) == [("globex", "no_agents_logged_in")]


def test_a_full_vendor_passes_to_the_next_rule() -> None:
    """The first rule's vendor at max_channels: the next rule's vendor takes the call."""
    d = driver(rule(Condition.NO_AGENTS_AVAILABLE, "globex"),
               rule(Condition.NO_AGENTS_AVAILABLE, "acme"),
               logged_out=("alice", "bob"), vendors=(ACME, make_vendor("globex", max_channels=1)))
    d.queued("c1")
    assert fired(d.queued("c2")) == [("acme", "no_agents_available")]
    assert unavailable(d) == [("globex", "full")]


def test_vendor_at_cap_leaves_the_caller_waiting_for_in_house() -> None:
    """Every vendor full: the caller is never dropped, waits, and an agent who frees up
    gets the call; the cap is reported once per call."""
    d = driver(rule(Condition.NO_AGENTS_AVAILABLE), agents=("alice",),
               vendors=(make_vendor("acme", max_channels=1),), inhouse_takeover=False)
    d.queued("b1")
    d.answer("b1", "alice")
    d.queued("c1")  # takes acme's only channel
    d.queued("c2")
    d.advance(20)
    assert d.engine.view.calls["c2"].state is CallState.QUEUED
    assert unavailable(d) == [("acme", "full")]
    d.agent_hangup("b1", "alice")
    d.advance(5)  # wrap-up over
    assert d.engine.view.calls["c2"].ringing == ("alice",)


def test_a_vendor_outside_its_schedule_is_skipped() -> None:
    """A vendor whose schedule is closed is passed over (cause closed)."""
    d = driver(rule(Condition.NO_AGENTS_LOGGED_IN, "acme", "globex"),
               logged_out=("alice", "bob"),
               vendors=(make_vendor("acme", schedule="never"), GLOBEX), calendars=(CLOSED,))
    assert fired(d.queued("c1")) == [("globex", "no_agents_logged_in")]
    assert unavailable(d) == [("acme", "closed")]


# -- failover --------------------------------------------------------------------------


def test_503_fails_over_to_the_vendors_next_trunk() -> None:
    """503 from the first trunk: the vendor's second trunk is rung."""
    d = driver(rule(Condition.NO_AGENTS_LOGGED_IN), logged_out=("alice", "bob"))
    d.queued("c1")
    d.advance(1)
    d.vendor_fail("c1", "acme", 503)
    assert [a.uri for a in d.rung("c1")] == [trunk("acme", 1), trunk("acme", 2)]
    d.vendor_answer("c1", "acme")
    assert d.engine.view.vendors["acme"].in_use == 1


def test_every_trunk_failing_moves_to_the_rules_next_vendor() -> None:
    """Both acme trunks 503/408: globex next, with the same reason; acme noted as failed."""
    d = driver(rule(Condition.NO_AGENTS_LOGGED_IN, "acme", "globex"), logged_out=("alice", "bob"))
    d.queued("c1")
    d.vendor_fail("c1", "acme", 503)
    actions = d.vendor_fail("c1", "acme", 408)
    assert fired(actions) == [("globex", "no_agents_logged_in")]
    assert [(a.target.id, a.uri) for a in d.rung("c1")] == [
        ("acme", trunk("acme", 1)), ("acme", trunk("acme", 2)), ("globex", trunk("globex", 1))]
    d.advance(2)
    d.vendor_answer("c1", "globex")
    assert d.engine.view.calls["c1"].record.vendor_wait == 2  # globex's own speed of answer
    assert unavailable(d) == [("acme", "failed")]
    assert d.engine.view.vendors["acme"].in_use == 0
    assert d.engine.view.vendors["globex"].in_use == 1


def test_a_decline_skips_the_vendors_other_trunks() -> None:
    """486 from the vendor is its answer: no other trunk of it is tried, and its health
    is not charged."""
    d = driver(rule(Condition.NO_AGENTS_LOGGED_IN, "acme", "globex"), logged_out=("alice", "bob"))
    d.queued("c1")
    d.vendor_fail("c1", "acme", 486)
    assert [a.target.id for a in d.rung("c1")] == ["acme", "globex"]
    assert d.engine.view.to_dict()["vendors"]["acme"]["failures"] == 0


def test_vendor_ring_timeout_cancels_and_tries_the_next_vendor() -> None:
    """The vendor rings past its ring_timeout: CANCEL, and the next vendor is rung."""
    d = driver(rule(Condition.NO_AGENTS_LOGGED_IN, "acme", "globex"), logged_out=("alice", "bob"),
               vendors=(make_vendor("acme", ring_timeout=20.0), GLOBEX))
    d.queued("c1")
    actions = d.advance(20)
    assert act.Cancel(call_id="c1", target=Target.vendor("acme")) in actions
    assert [a.target.id for a in d.rung("c1")] == ["acme", "globex"]
    offers = d.engine.view.calls["c1"].record.offers
    assert [(o.vendor, o.result) for o in offers] == [("acme", "no_answer")]


def test_all_vendors_failing_returns_the_call_to_the_queue() -> None:
    """No vendor answers: the caller waits in queue again, is never re-sent to a vendor that
    failed it, and an agent answering later makes it answered_inhouse."""
    d = driver(rule(Condition.NO_AGENTS_AVAILABLE), agents=("alice",),
               vendors=(make_vendor("acme"),))
    d.queued("b1")
    d.answer("b1", "alice")
    d.queued("c1")
    d.vendor_fail("c1", "acme", 503)
    assert d.engine.view.calls["c1"].state is CallState.QUEUED
    d.advance(10)
    assert len(d.rung("c1")) == 1
    d.agent_hangup("b1", "alice")
    d.advance(5)
    d.answer("c1", "alice")
    d.caller_hangup("c1")
    r = d.records[-1]
    assert (r.outcome, r.route, r.vendor, r.overflow_reason) == (
        Outcome.ANSWERED_INHOUSE, Route.INHOUSE, None, "no_agents_available")


def test_caller_leaving_while_the_vendor_rings_is_overflow_failed_not_abandoned() -> None:
    """An overflowed call the caller gives up on is overflow_failed; the vendor is cancelled."""
    d = driver(rule(Condition.NO_AGENTS_LOGGED_IN), logged_out=("alice", "bob"))
    d.queued("c1")
    d.advance(8)
    actions = d.caller_hangup("c1")
    assert act.Cancel(call_id="c1", target=Target.vendor("acme")) in actions
    [r] = d.records
    assert (r.outcome, r.route, r.vendor) == (Outcome.OVERFLOW_FAILED, Route.VENDOR, "acme")
    assert d.engine.view.vendors["acme"].in_use == 0
    assert tm.VendorRingTimer("c1") not in d.pending_timers()


# -- in-house takeover -----------------------------------------------------------------


def test_an_agent_freeing_up_takes_the_call_from_a_ringing_vendor() -> None:
    """inhouse_takeover: alice frees up while acme rings; she is offered the call and her
    answer cancels the vendor."""
    d = driver(rule(Condition.NO_AGENTS_AVAILABLE), agents=("alice",), wrap_up=0.0)
    d.queued("b1")
    d.answer("b1", "alice")
    d.queued("c1")
    d.advance(3)
    d.agent_hangup("b1", "alice")
    assert d.engine.view.calls["c1"].ringing == ("alice",)
    actions = d.answer("c1", "alice")
    assert act.Cancel(call_id="c1", target=Target.vendor("acme")) in actions
    d.caller_hangup("c1")
    r = d.records[-1]
    assert (r.outcome, r.route, r.vendor, r.agent_id) == (
        Outcome.ANSWERED_INHOUSE, Route.INHOUSE, None, "alice")
    assert [(o.agent_id, o.vendor, o.result) for o in r.offers] == [
        (None, "acme", "cancelled"), ("alice", None, "answered")]
    assert d.engine.view.vendors["acme"].in_use == 0


def test_no_takeover_when_the_queue_forbids_it() -> None:
    """inhouse_takeover false: a freed agent is not offered a call the vendor has."""
    d = driver(rule(Condition.NO_AGENTS_AVAILABLE), agents=("alice",), wrap_up=0.0,
               inhouse_takeover=False)
    d.queued("b1")
    d.answer("b1", "alice")
    d.queued("c1")
    d.agent_hangup("b1", "alice")
    assert d.engine.view.calls["c1"].ringing == ()


def test_vendor_answer_cancels_agents_ringing_for_a_takeover() -> None:
    """The vendor answers while a freed agent rings: the agent's offer is cancelled."""
    d = driver(rule(Condition.NO_AGENTS_AVAILABLE), agents=("alice",), wrap_up=0.0)
    d.queued("b1")
    d.answer("b1", "alice")
    d.queued("c1")
    d.advance(1)
    d.agent_hangup("b1", "alice")
    actions = d.vendor_answer("c1", "acme")
    assert act.Cancel(call_id="c1", target=Target.agent("alice")) in actions
    assert d.engine.view.agents["alice"].state is AgentState.READY


# -- share -------------------------------------------------------------------------------


def share_run(percent: float, calls: int, seed: int) -> list[bool]:
    """Simulate ``calls`` arrivals with random talk times; True where acme got the call."""
    d = driver(rule(Condition.SHARE, "acme", percent=percent),
               vendors=(make_vendor("acme", max_channels=1000),),
               agents=tuple(f"a{i}" for i in range(40)), wrap_up=0.0)
    rng = random.Random(seed)
    to_vendor: list[bool] = []
    for n in range(calls):
        call_id = f"c{n}"
        d.queued(call_id)
        state = d.engine.view.calls[call_id].state
        to_vendor.append(state is CallState.OVERFLOW)
        if state is CallState.OVERFLOW:
            d.vendor_answer(call_id, "acme")
        else:
            d.answer(call_id, d.engine.view.calls[call_id].ringing[0])
        d.advance(rng.expovariate(1 / 3.6))  # ~1000 calls an hour
        d.caller_hangup(call_id)
    return to_vendor


@pytest.mark.parametrize("percent", [7.5, 20.0, 33.0, 50.0])
def test_share_stays_within_a_point_of_the_contract_in_every_hour(percent: float) -> None:
    """Deficit-based share over 5000 calls: every block of 1000 (about an hour) is within
    one point of the percentage, and so is the whole run."""
    to_vendor = share_run(percent, 5000, seed=int(percent * 10))
    for start in range(0, 5000, 1000):
        block = to_vendor[start:start + 1000]
        assert abs(100 * sum(block) / len(block) - percent) <= 1.0
    assert abs(100 * sum(to_vendor) / len(to_vendor) - percent) <= 0.1


def test_share_catches_up_calls_the_vendor_could_not_take() -> None:
    """A share call that fails at the vendor gives its credit back: the next call goes."""
    d = driver(rule(Condition.SHARE, "acme", percent=25.0), vendors=(make_vendor("acme"),),
               wrap_up=0.0)
    routes = []
    for n in range(4):
        d.queued(f"c{n}")
        routes.append(d.engine.view.calls[f"c{n}"].state)
    assert routes.count(CallState.OVERFLOW) == 1
    sent = next(n for n, s in enumerate(routes) if s is CallState.OVERFLOW)
    d.vendor_fail(f"c{sent}", "acme", 486)
    d.queued("c9")
    assert d.engine.view.calls["c9"].state is CallState.OVERFLOW


HOUR0 = 1_700_002_800.0  # 2023-11-14T23:00:00Z, the start of a clock hour (UTC)


def outage_run(catch_up: CatchUp, *, down_at: float, down_for: float, seconds: float = 3600,
               seed: int = 7) -> Driver:
    """~1000 calls an hour from HOUR0 for ``seconds``, acme (20 % share) out of rotation for
    ``down_for`` s from ``down_at`` s in; every call acme is sent, it answers."""
    acme = make_vendor("acme", max_channels=1000, failures=1, cooldown=down_for)
    d = Driver(make_dialplan(tuple(f"a{i}" for i in range(40)), vendors=(acme,), queues=[
        make_queue(overflow=(rule(Condition.SHARE, "acme", percent=20.0, catch_up=catch_up),),
                   wrap_up=0.0)]), start=HOUR0)
    rng = random.Random(seed)
    n = 0
    down = False
    while d.now < HOUR0 + seconds:
        if not down and d.now >= HOUR0 + down_at:
            d.feed(ev.VendorProbed(vendor="acme", ok=False))  # out for its cooldown
            down = True
        call_id = f"c{n}"
        n += 1
        d.queued(call_id)
        if d.engine.view.calls[call_id].state is CallState.OVERFLOW:
            d.vendor_answer(call_id, "acme")
        else:
            d.answer(call_id, d.engine.view.calls[call_id].ringing[0])
        d.advance(rng.expovariate(1 / 3.6))
        d.caller_hangup(call_id)
    return d


def achieved(d: Driver) -> float:
    """Percent of the queue's calls acme answered as its share."""
    share = d.engine.view.shares[("support", "acme")]
    return 100 * share.taken / share.calls


@pytest.mark.parametrize("down_for", [90.0, 600.0])
def test_share_catches_up_an_outage_within_the_hour(down_for: float) -> None:
    """catch_up: hour: acme out for 90 s (or 10 min) in an hour of ~1000 calls still ends
    the hour within one point of its 20 %."""
    d = outage_run(CatchUp(period=CatchUpPeriod.HOUR), down_at=1200, down_for=down_for)
    assert d.engine.view.shares[("support", "acme")].calls > 900
    assert abs(achieved(d) - 20.0) <= 1.0


def test_share_without_catch_up_loses_what_it_owed_beyond_three_calls() -> None:
    """catch_up: none keeps at most 3 calls of credit: after a 10-minute outage the hour
    ends more than a point short."""
    d = outage_run(CatchUp(period=CatchUpPeriod.NONE), down_at=1200, down_for=600)
    assert achieved(d) < 19.0


def test_share_catch_up_calls_caps_the_credit_kept() -> None:
    """catch_up: {calls: 5}: during an outage the credit stops growing at 5 calls."""
    d = outage_run(CatchUp(period=CatchUpPeriod.CALLS, calls=5), down_at=0, down_for=600,
                   seconds=300)
    assert d.engine.view.share_credit[("support", "acme")] == pytest.approx(5.0)


def test_share_credit_owed_lapses_when_the_hour_ends() -> None:
    """Credit still owed at the end of the hour lapses (and says so) at the first call of
    the next hour; only the fraction of a call is kept."""
    d = outage_run(CatchUp(period=CatchUpPeriod.HOUR), down_at=3300, down_for=600,
                   seconds=3600)
    owed = d.engine.view.share_credit[("support", "acme")]
    assert owed > 10
    d.queued("next")
    assert d.engine.view.share_credit[("support", "acme")] == pytest.approx(owed % 1 + 0.2)
    assert [n for n in d.notes if "lapse" in n.format] and dict(
        [n for n in d.notes if "lapse" in n.format][0].fields)["calls"] == int(owed)


def test_share_catch_up_day_counts_days_in_the_calendars_time_zone() -> None:
    """catch_up: day with a Europe/Berlin calendar: credit owed survives the UTC hour
    change and lapses at local midnight (23:00 UTC in winter)."""
    berlin = parse_calendar("berlin", {"timezone": "Europe/Berlin", "hours": {}})
    acme = make_vendor("acme", failures=1, cooldown=10_000)
    d = Driver(make_dialplan(vendors=(acme,), calendars=(berlin,), queues=[make_queue(
        overflow=(rule(Condition.SHARE, "acme", percent=50.0,
                       catch_up=CatchUp(period=CatchUpPeriod.DAY, calendar="berlin")),))]),
        start=HOUR0 - 7200)  # 21:00 UTC, 22:00 in Berlin
    d.feed(ev.VendorProbed(vendor="acme", ok=False))
    for n in range(8):  # acme is down: 4 calls owed
        d.queued(f"c{n}")
        d.caller_hangup(f"c{n}")
    d.advance(3600)  # 22:00 UTC: a new hour, the same Berlin day
    d.queued("c8")
    assert d.engine.view.share_credit[("support", "acme")] == pytest.approx(4.5)
    d.caller_hangup("c8")
    d.advance(3600)  # 23:00 UTC: midnight in Berlin
    d.queued("c9")
    assert d.engine.view.share_credit[("support", "acme")] == pytest.approx(1.0)


# -- rule states -------------------------------------------------------------------------


def rule_notes(d: Driver) -> list[tuple[str, str]]:
    """(rule, on/off) of each rule-state Note so far."""
    return [(dict(n.fields)["rule"], dict(n.fields)["state"]) for n in d.notes
            if "overflow rule" in n.format]


def test_a_rule_turning_on_and_off_is_a_note_and_in_the_view() -> None:
    """wait_exceeds turns on when a caller waited its time and off when the next caller
    checked has not: a Note each time, and view.overflow_rules says so."""
    d = driver(rule(Condition.WAIT_EXCEEDS, seconds=30.0))
    busy_both(d)
    d.queued("c1")
    assert d.engine.view.overflow_rules == {("support", "wait_exceeds"): False}
    d.advance(30)
    assert d.engine.view.overflow_rules == {("support", "wait_exceeds"): True}
    d.queued("c2")
    assert d.engine.view.overflow_rules == {("support", "wait_exceeds"): False}
    assert rule_notes(d) == [("wait_exceeds", "on"), ("wait_exceeds", "off")]


def test_a_rule_state_follows_its_calendar() -> None:
    """outside_hours is on while its calendar is closed, checked at every event."""
    calendar = parse_calendar("office", {"timezone": "UTC",
                                         "hours": {"daily": ["23:00-24:00"]}})
    d = Driver(make_dialplan(calendars=(calendar,), vendors=(ACME,), queues=[make_queue(
        overflow=(rule(Condition.OUTSIDE_HOURS, calendar="office"),))]), start=HOUR0 - 60)
    d.feed(ev.NodeStarted())
    assert d.engine.view.overflow_rules[("support", "outside_hours")] is True
    d.advance(60)
    d.queued("c1")
    assert d.engine.view.overflow_rules[("support", "outside_hours")] is False
    assert rule_notes(d) == [("outside_hours", "on"), ("outside_hours", "off")]


def test_queue_length_stays_on_until_a_caller_enters_a_shorter_queue() -> None:
    """queue_length_exceeds is decided on entry: callers already waiting, checked again, do
    not turn it off; the next caller entering a queue short enough does."""
    d = driver(rule(Condition.QUEUE_LENGTH_EXCEEDS, length=1), logged_out=("alice", "bob"))
    for call_id in ("c1", "c2", "c3"):
        d.queued(call_id)
    d.feed(ev.AgentLogin(agent_id="alice"))  # a dispatch checks c1 and c2 again
    assert d.engine.view.overflow_rules[("support", "queue_length_exceeds")] is True
    d.caller_hangup("c1")
    d.caller_hangup("c2")
    d.queued("c4")
    assert d.engine.view.overflow_rules[("support", "queue_length_exceeds")] is False


def test_rules_of_the_same_condition_get_numbered_names() -> None:
    """The second wait_exceeds rule of a queue is wait_exceeds#2; the share is share."""
    d = driver(rule(Condition.WAIT_EXCEEDS, seconds=30.0), rule(Condition.SHARE, percent=10.0),
               rule(Condition.WAIT_EXCEEDS, "globex", seconds=60.0))
    d.queued("c1")
    assert sorted(d.engine.view.overflow_rules) == [
        ("support", "share"), ("support", "wait_exceeds"), ("support", "wait_exceeds#2")]


def test_a_share_is_on_while_its_vendor_is_owed_a_call() -> None:
    """share is on while acme, out of rotation, is owed a whole call, off once it took it."""
    d = driver(rule(Condition.SHARE, percent=50.0),
               vendors=(make_vendor("acme", failures=1, cooldown=60),), wrap_up=0.0)
    d.feed(ev.VendorProbed(vendor="acme", ok=False))
    for n in range(2):
        d.queued(f"c{n}")
        d.caller_hangup(f"c{n}")
    assert d.engine.view.overflow_rules[("support", "share")] is True
    d.advance(60)  # back in rotation
    d.queued("c2")
    assert d.engine.view.overflow_rules[("support", "share")] is False


# -- service level --------------------------------------------------------------------


def test_service_level_rule_turns_on_below_target_and_off_with_hysteresis() -> None:
    """SL below 80 %: overflow starts; it stops only at 80 + 10 %, not at 80 %."""
    target = ServiceLevel(percent=80.0, within=20.0, window=3600.0, hysteresis=10.0, min_calls=4)
    d = driver(rule(Condition.SERVICE_LEVEL_BELOW, service_level=target), agents=("alice",),
               wrap_up=0.0)

    def handled(call_id: str, wait: float) -> None:
        d.queued(call_id)
        d.advance(wait)
        if d.engine.view.calls[call_id].ringing == ():  # ring timeout passed
            d.advance(0)
        d.answer(call_id, "alice")
        d.caller_hangup(call_id)

    # 2 of 4 answered within 20 s: 50 %
    d.queued("x")  # occupy nobody; just a marker that rules run
    d.caller_hangup("x")
    for i, wait in enumerate((1.0, 1.0, 14.0, 14.0)):
        handled(f"fast{i}", wait)
    for i in range(2):
        d.queued(f"slow{i}")
        d.advance(15)  # alice rang out
        d.advance(10)
        d.answer(f"slow{i}", "alice")
        d.caller_hangup(f"slow{i}")
    d.queued("b1")
    d.answer("b1", "alice")
    assert fired(d.queued("c1")) == [("acme", "service_level_below")]
    d.caller_hangup("c1")
    d.agent_hangup("b1", "alice")
    # raise SL to 80 % (8 of 10 within): still on (hysteresis) ...
    for i in range(2):
        handled(f"ok{i}", 1.0)
    d.queued("b2")
    d.answer("b2", "alice")
    assert fired(d.queued("c2")) == [("acme", "service_level_below")]
    d.caller_hangup("c2")
    d.agent_hangup("b2", "alice")
    # ... and off at 90 % or more
    for i in range(10):
        handled(f"good{i}", 1.0)
    d.queued("b3")
    d.answer("b3", "alice")
    assert fired(d.queued("c3")) == []


def test_service_level_rule_needs_min_calls() -> None:
    """With fewer than min_calls in the window the SL rule stays off."""
    target = ServiceLevel(percent=80.0, within=20.0, window=3600.0, min_calls=5)
    d = driver(rule(Condition.SERVICE_LEVEL_BELOW, service_level=target), agents=("alice",))
    d.queued("b1")
    d.answer("b1", "alice")
    assert fired(d.queued("c1")) == []


# -- health -----------------------------------------------------------------------------


def health_driver(**vendor: object) -> Driver:
    options: dict[str, object] = {"failures": 2, "cooldown": 60.0, "probe_interval": 10.0}
    options.update(vendor)
    return driver(rule(Condition.NO_AGENTS_LOGGED_IN, "acme", "globex"),
                  logged_out=("alice", "bob"),
                  vendors=(make_vendor("acme", **options), GLOBEX))  # type: ignore[arg-type]


def test_node_start_probes_every_vendor_with_probes() -> None:
    """NodeStarted: each vendor with a probe_interval gets a probe now and a timer."""
    d = health_driver()
    actions = d.feed(ev.NodeStarted())
    assert act.ProbeVendor(vendor="acme", uris=(trunk("acme", 1),), timeout=4.0) in actions
    pending = d.pending_timers()
    assert tm.ProbeTimer("acme") in pending and tm.ProbeTimer("globex") not in pending
    probes = d.advance(10)
    assert act.ProbeVendor(vendor="acme", uris=(trunk("acme", 1),), timeout=4.0) in probes


def test_repeated_failures_take_a_vendor_out_then_probes_bring_it_back() -> None:
    """failures in a row: DOWN and skipped (cause down); after the cool-down PROBING, a
    good probe puts it back in rotation."""
    d = health_driver()
    d.feed(ev.NodeStarted())
    for call_id in ("c1", "c2"):
        d.queued(call_id)
        d.vendor_fail(call_id, "acme", 503)
    assert d.engine.view.vendors["acme"].health is VendorHealth.DOWN
    d.queued("c3")
    assert [a.target.id for a in d.rung("c3")] == ["globex"]
    assert ("acme", "down") in unavailable(d)
    d.advance(60)
    assert d.engine.view.vendors["acme"].health is VendorHealth.PROBING
    d.feed(ev.VendorProbed(vendor="acme", ok=True))
    assert d.engine.view.vendors["acme"].health is VendorHealth.UP
    d.queued("c4")
    assert [a.target.id for a in d.rung("c4")] == ["acme"]


def test_failed_probes_take_a_vendor_out() -> None:
    """OPTIONS probes failing failures times in a row: the vendor goes DOWN."""
    d = health_driver()
    d.feed(ev.VendorProbed(vendor="acme", ok=False))
    assert d.engine.view.vendors["acme"].health is VendorHealth.UP
    actions = d.feed(ev.VendorProbed(vendor="acme", ok=False))
    assert act.VendorHealthChanged(vendor="acme", old=VendorHealth.UP,
                                   new=VendorHealth.DOWN) in actions
    assert tm.CooldownTimer("acme") in d.pending_timers()


def test_a_failed_probe_while_probing_restarts_the_cool_down() -> None:
    """PROBING and the probe fails: DOWN again for another cool-down."""
    d = health_driver(failures=1)
    d.feed(ev.VendorProbed(vendor="acme", ok=False))
    d.advance(60)
    d.feed(ev.VendorProbed(vendor="acme", ok=False))
    assert d.engine.view.vendors["acme"].health is VendorHealth.DOWN
    assert tm.CooldownTimer("acme") in d.pending_timers()


def test_without_probes_a_vendor_returns_after_the_cool_down() -> None:
    """probe_interval 0: after the cool-down the vendor is straight back in rotation."""
    d = health_driver(failures=1, probe_interval=0.0)
    d.feed(ev.VendorProbed(vendor="acme", ok=False))
    d.advance(60)
    assert d.engine.view.vendors["acme"].health is VendorHealth.UP


def test_a_success_resets_the_failure_count() -> None:
    """Failures must be in a row: an answer in between resets the count."""
    d = health_driver()
    d.queued("c1")
    d.vendor_fail("c1", "acme", 500)
    d.queued("c2")
    d.vendor_answer("c2", "acme")
    d.queued("c3")
    d.vendor_fail("c3", "acme", 500)
    assert d.engine.view.vendors["acme"].health is VendorHealth.UP


# -- max wait -----------------------------------------------------------------------------


def test_max_wait_plays_the_farewell_and_hangs_up_as_timeout() -> None:
    """max_wait with an announcement only: MOH stops, the farewell plays, then hang-up."""
    d = driver(logged_out=("alice", "bob"),
               max_wait=MaxWait(seconds=120.0, announcement=Path(FAREWELL)))
    d.queued("c1")
    actions = d.advance(120)
    assert actions == [act.StopMusicOnHold(call_id="c1"),
                       act.PlayAnnouncement(call_id="c1", path=FAREWELL)]
    actions = d.announce("c1")
    assert actions[0] == act.HangupCaller(call_id="c1")
    [r] = d.records
    assert (r.outcome, r.wait) == (Outcome.TIMEOUT, 120)


def test_max_wait_withdraws_ringing_agents_and_sends_the_call_to_its_vendor() -> None:
    """max_wait with vendors while an agent rings: the offer is cancelled and the vendor
    gets the call with reason max_wait."""
    d = driver(agents=("alice",), ring_timeout=100.0,
               max_wait=MaxWait(seconds=60.0, vendors=("globex",)))
    d.queued("c1")
    actions = d.advance(60)
    assert act.Cancel(call_id="c1", target=Target.agent("alice")) in actions
    assert fired(actions) == [("globex", "max_wait")]


def test_max_wait_vendor_failing_ends_the_call_as_timeout() -> None:
    """The max_wait vendor fails too: no way back to the queue, the call times out."""
    d = driver(logged_out=("alice", "bob"), max_wait=MaxWait(seconds=60.0, vendors=("globex",)))
    d.queued("c1")
    d.advance(60)
    actions = d.vendor_fail("c1", "globex", 503)
    assert act.HangupCaller(call_id="c1") in actions
    assert d.records[0].outcome is Outcome.TIMEOUT


def test_max_wait_leaves_a_ringing_vendor_alone() -> None:
    """A vendor already ringing at max_wait keeps ringing; its answer wins."""
    d = driver(rule(Condition.NO_AGENTS_LOGGED_IN), logged_out=("alice", "bob"),
               max_wait=MaxWait(seconds=10.0))
    d.queued("c1")
    assert d.advance(10) == []
    d.vendor_answer("c1", "acme")
    assert d.engine.view.calls["c1"].state is CallState.BRIDGED


# -- refusals -----------------------------------------------------------------------------


def test_vendor_events_for_another_vendor_are_refused() -> None:
    """An answer from a vendor the call is not with raises and changes nothing."""
    d = driver(rule(Condition.NO_AGENTS_LOGGED_IN), logged_out=("alice", "bob"))
    d.queued("c1")
    with pytest.raises(IllegalTransition):
        d.vendor_answer("c1", "globex")
    assert d.engine.view.calls["c1"].state is CallState.OVERFLOW


def test_reload_keeps_a_busy_removed_vendor_until_its_call_ends() -> None:
    """A vendor dropped by a reload finishes its call, then disappears from the states."""
    d = driver(rule(Condition.NO_AGENTS_LOGGED_IN), logged_out=("alice", "bob"))
    d.queued("c1")
    d.vendor_answer("c1", "acme")
    d.reload(make_dialplan(logged_out=("alice", "bob"), vendors=(GLOBEX,)))
    assert "acme" not in d.engine.view.vendors
    d.vendor_hangup("c1", "acme")
    assert d.records[0].outcome is Outcome.ANSWERED_VENDOR
    assert "acme" not in d.engine.view.to_dict()["vendors"]


# -- media timeout ------------------------------------------------------------------------


def test_media_timeout_on_a_bridged_call_hangs_up_both_sides() -> None:
    """A silent party on an answered call: BYE both ways, outcome media_timeout, agent freed."""
    d = driver()
    d.queued("c1")
    d.answer("c1", "alice")
    actions = d.feed(ev.MediaTimedOut(call_id="c1", leg=Target.agent("alice")))
    assert actions[:2] == [act.HangupCaller(call_id="c1"),
                           act.Hangup(call_id="c1", target=Target.agent("alice"))]
    [r] = d.records
    assert r.outcome is Outcome.MEDIA_TIMEOUT and r.agent_id == "alice"
    assert d.engine.view.agents["alice"].state is AgentState.WRAP_UP


def test_media_timeout_while_a_vendor_rings_cancels_it() -> None:
    """A silent caller whose call is with a vendor: the vendor is cancelled, its channel
    freed, and the outcome is media_timeout rather than overflow_failed."""
    d = driver(rule(Condition.NO_AGENTS_LOGGED_IN), logged_out=("alice", "bob"))
    d.queued("c1")
    actions = d.feed(ev.MediaTimedOut(call_id="c1", leg="caller"))
    assert act.Cancel(call_id="c1", target=Target.vendor("acme")) in actions
    assert d.records[0].outcome is Outcome.MEDIA_TIMEOUT
    assert d.engine.view.vendors["acme"].in_use == 0


# -- dead trunks: out of rotation at the first evidence ---------------------------------


def test_a_lost_vendor_leg_ends_the_call_as_vendor_lost_and_takes_the_vendor_out() -> None:
    """VendorLegLost on a bridged call: caller hung up, outcome vendor_lost, vendor DOWN."""
    d = health_driver(failures=3)
    d.queued("c1")
    d.vendor_answer("c1", "acme")
    actions = d.feed(ev.VendorLegLost(call_id="c1", vendor="acme", cause="dead_media"))
    assert act.HangupCaller(call_id="c1") in actions
    assert act.Hangup(call_id="c1", target=Target.vendor("acme")) in actions
    assert act.VendorHealthChanged(vendor="acme", old=VendorHealth.UP,
                                   new=VendorHealth.DOWN) in actions
    r = d.records[0]
    assert (r.outcome, r.route, r.vendor) == (Outcome.VENDOR_LOST, Route.VENDOR, "acme")
    assert d.engine.view.vendors["acme"].in_use == 0


def test_after_a_lost_leg_the_next_call_goes_to_the_next_vendor() -> None:
    """The vendor whose leg died is skipped (cause down) by the very next call."""
    d = health_driver(failures=3)
    d.queued("c1")
    d.vendor_answer("c1", "acme")
    d.feed(ev.VendorLegLost(call_id="c1", vendor="acme", cause="dead_media"))
    d.queued("c2")
    assert [a.target.id for a in d.rung("c2")] == ["globex"]
    assert ("acme", "down") in unavailable(d)


def test_a_lost_leg_of_a_call_no_longer_bridged_still_takes_the_vendor_out() -> None:
    """Late evidence about a finished call ends nothing but still marks the vendor DOWN."""
    d = health_driver(failures=3)
    d.queued("c1")
    d.vendor_answer("c1", "acme")
    d.vendor_hangup("c1", "acme")
    actions = d.feed(ev.VendorLegLost(call_id="c1", vendor="acme", cause="dead_media"))
    assert not any(isinstance(a, act.HangupCaller) for a in actions)
    assert d.engine.view.vendors["acme"].health is VendorHealth.DOWN


def test_a_probe_round_nobody_answered_takes_the_vendor_out_at_once() -> None:
    """VendorProbed answered=False (probe_timeout ran out): DOWN without failures in a row."""
    d = health_driver(failures=3)
    actions = d.feed(ev.VendorProbed(vendor="acme", ok=False, answered=False))
    assert act.VendorHealthChanged(vendor="acme", old=VendorHealth.UP,
                                   new=VendorHealth.DOWN) in actions
    assert tm.CooldownTimer("acme") in d.pending_timers()


def test_probes_carry_the_vendors_probe_timeout() -> None:
    """ProbeVendor tells the adapter how long to wait: the vendor's probe_timeout."""
    d = health_driver(probe_timeout=1.5)
    actions = d.feed(ev.NodeStarted())
    assert act.ProbeVendor(vendor="acme", uris=(trunk("acme", 1),), timeout=1.5) in actions


def test_an_ok_probe_round_nobody_answered_is_refused() -> None:
    """VendorProbed cannot be ok when no trunk answered."""
    with pytest.raises(ValueError):
        ev.VendorProbed(vendor="acme", ok=True, answered=False)


def test_more_evidence_while_down_changes_nothing_and_warns_once() -> None:
    """A second silent probe round while DOWN: no new warning, the cool-down runs on."""
    d = health_driver(failures=3)
    d.feed(ev.VendorProbed(vendor="acme", ok=False, answered=False))
    d.advance(30)
    actions = d.feed(ev.VendorProbed(vendor="acme", ok=False, answered=False))
    assert not any(isinstance(a, act.Note) and a.level is act.NoteLevel.WARN for a in actions)
    d.advance(30)
    assert d.engine.view.vendors["acme"].health is VendorHealth.PROBING


def test_a_silent_probe_round_while_probing_takes_the_vendor_down_again() -> None:
    """PROBING and no trunk answers: DOWN for another cool-down."""
    d = health_driver(failures=3)
    d.feed(ev.VendorProbed(vendor="acme", ok=False, answered=False))
    d.advance(60)
    d.feed(ev.VendorProbed(vendor="acme", ok=False, answered=False))
    assert d.engine.view.vendors["acme"].health is VendorHealth.DOWN
    assert tm.CooldownTimer("acme") in d.pending_timers()
