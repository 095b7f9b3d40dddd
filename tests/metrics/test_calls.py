"""CallMetrics: the labels each call event produces, read back from a real prometheus registry."""

from __future__ import annotations

from ccswitch.metrics.calls import CallMetrics
from ccswitch.metrics.registry import Metrics
from ccswitch.routing.actions import OverflowFired, OverflowUnavailable
import attrs

from ccswitch.routing.record import CallRecord, Hold, Offer, Outcome, Route
from ccswitch.routing.target import CALLER, Target

T0 = 1_700_000_000.0


def answered_by_agent() -> CallRecord:
    return CallRecord(
        call_id="c1", caller="1001", dialed="100", queue="support", group="team",
        arrived_at=T0, short_abandon_threshold=5.0, agent_id="alice",
        outcome=Outcome.ANSWERED_INHOUSE, announced_at=T0 + 4, queued_at=T0 + 4,
        answered_at=T0 + 10, ended_at=T0 + 70,
        offers=(Offer(agent_id="alice", offered_at=T0 + 6, ended_at=T0 + 10,
                      result="answered"),))


def answered_by_vendor() -> CallRecord:
    return CallRecord(
        call_id="c2", caller="1001", dialed="100", queue="support", group="team",
        arrived_at=T0, short_abandon_threshold=5.0, outcome=Outcome.ANSWERED_VENDOR,
        queued_at=T0, answered_at=T0 + 8, ended_at=T0 + 20, route=Route.VENDOR,
        vendor="acme", overflow_reason="max_wait",
        offers=(Offer(vendor="acme", trunk="sip:acme1@127.0.0.1", offered_at=T0 + 5,
                      ended_at=T0 + 8, result="answered"),))


def sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_answered_call_counts_by_queue_outcome_route_and_empty_vendor() -> None:
    """An in-house answered call counts once with route inhouse and an empty vendor label."""
    metrics = Metrics()
    CallMetrics(metrics).finished(answered_by_agent())
    assert sample(metrics, "ccswitch_calls_total", queue="support",
                  outcome="answered_inhouse", route="inhouse", vendor="") == 1.0


def test_answered_call_times_wait_ring_and_talk() -> None:
    """Its queue wait, the agent's ring time and the talk time go to their histograms."""
    metrics = Metrics()
    CallMetrics(metrics).finished(answered_by_agent())
    assert sample(metrics, "ccswitch_queue_wait_seconds_sum", queue="support",
                  outcome="answered_inhouse", route="inhouse", vendor="") == 6.0
    assert sample(metrics, "ccswitch_agent_ring_seconds_sum", queue="support",
                  group="team") == 4.0
    assert sample(metrics, "ccswitch_call_talk_seconds_sum", queue="support", group="team",
                  route="inhouse", vendor="") == 60.0


def test_holds_are_timed_per_call_and_counted_by_party() -> None:
    """A call held 10 s by the agent and 5 s by the caller: 15 s of hold, one hold each."""
    metrics = Metrics()
    record = attrs.evolve(answered_by_agent(), holds=(
        Hold(party=Target.agent("alice"), start=T0 + 20, end=T0 + 30),
        Hold(party=CALLER, start=T0 + 40, end=T0 + 45)))
    CallMetrics(metrics).finished(record)
    labels = {"queue": "support", "route": "inhouse", "vendor": ""}
    assert sample(metrics, "ccswitch_hold_seconds_sum", **labels) == 15.0
    assert sample(metrics, "ccswitch_holds_total", party="agent", **labels) == 1.0
    assert sample(metrics, "ccswitch_holds_total", party="caller", **labels) == 1.0
    assert sample(metrics, "ccswitch_call_talk_seconds_sum", group="team", **labels) == 45.0


def test_vendor_call_times_the_vendor_and_names_it() -> None:
    """A vendor-answered call names the vendor and times its speed of answer."""
    metrics = Metrics()
    CallMetrics(metrics).finished(answered_by_vendor())
    assert sample(metrics, "ccswitch_calls_total", queue="support",
                  outcome="answered_vendor", route="vendor", vendor="acme") == 1.0
    assert sample(metrics, "ccswitch_vendor_wait_seconds_sum", queue="support",
                  vendor="acme", outcome="answered_vendor") == 3.0


def test_rejected_call_counts_with_the_rejected_outcome() -> None:
    """A call refused before it queued counts under outcome rejected and has no wait."""
    metrics = Metrics()
    CallMetrics(metrics).finished(CallRecord(
        call_id="c3", caller="1001", dialed="100", queue="support", group="team",
        arrived_at=T0, short_abandon_threshold=5.0, outcome=Outcome.REJECTED, ended_at=T0))
    assert sample(metrics, "ccswitch_calls_total", queue="support", outcome="rejected",
                  route="inhouse", vendor="") == 1.0
    assert sample(metrics, "ccswitch_queue_wait_seconds_count", queue="support",
                  outcome="rejected", route="inhouse", vendor="") is None


def test_refused_invite_counts_by_limit() -> None:
    """An INVITE over the call rate counts under limit rate."""
    metrics = Metrics()
    CallMetrics(metrics).refused("rate")
    assert sample(metrics, "ccswitch_overload_refused_total", limit="rate") == 1.0


def test_overflow_counts_by_queue_rule_and_vendor() -> None:
    """A call's first overflow notice counts by queue, the rule that fired and the vendor,
    in the overflows and in the sends to vendors."""
    metrics = Metrics()
    CallMetrics(metrics).overflowed(OverflowFired(call_id="c1", queue="support",
                                                  vendor="acme", reason="max_wait", first=True))
    for name in ("ccswitch_overflow_total", "ccswitch_vendor_sends_total"):
        assert sample(metrics, name, queue="support", reason="max_wait", vendor="acme") == 1.0


def test_a_later_send_counts_as_a_send_only() -> None:
    """A notice that is not the call's first counts a send to a vendor, not an overflow."""
    metrics = Metrics()
    CallMetrics(metrics).overflowed(OverflowFired(call_id="c1", queue="support",
                                                  vendor="acme", reason="max_wait", first=False))
    assert sample(metrics, "ccswitch_vendor_sends_total", queue="support", reason="max_wait",
                  vendor="acme") == 1.0
    assert not sample(metrics, "ccswitch_overflow_total", queue="support", reason="max_wait",
                      vendor="acme")


def test_overflow_failure_counts_by_cause() -> None:
    """A vendor that cannot take a call counts by queue, vendor and cause."""
    metrics = Metrics()
    CallMetrics(metrics).overflow_failed(OverflowUnavailable(call_id="c1", queue="support",
                                                             vendor="acme", cause="full"))
    assert sample(metrics, "ccswitch_overflow_failed_total", queue="support", vendor="acme",
                  cause="full") == 1.0


def test_offer_failure_counts_by_kind_and_status() -> None:
    """A failed offer counts by queue, the target's kind and the SIP status."""
    metrics = Metrics()
    CallMetrics(metrics).offer_failed("support", Target.vendor("acme"), 503)
    assert sample(metrics, "ccswitch_offer_failures_total", queue="support", kind="vendor",
                  status="503") == 1.0


def test_recording_failure_counts() -> None:
    """A failed recording adds one to the recording errors."""
    metrics = Metrics()
    CallMetrics(metrics).recording_failed()
    assert sample(metrics, "ccswitch_recording_errors_total") == 1.0
