"""Metrics registry and the HTTP endpoints that expose it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest_twisted
from prometheus_client import generate_latest
from twisted.internet import reactor
from twisted.internet.task import Clock
from twisted.web.client import Agent, readBody
from twisted.web.server import Site

from ccswitch.metrics.calls import CallMetrics
from ccswitch.metrics.http import build_site_root
from ccswitch.metrics import registry
from ccswitch.metrics.registry import (
    BASE_BUCKETS, LiveStateCollector, Metrics, OverflowCollector, buckets_with,
)
from ccswitch.model import (AdmissionConfig, Condition, Dialplan, Group, MaxWait, OverflowRule,
                            Queue)
from ccswitch.calls.admission import CallAdmission
from ccswitch.routing.actions import OverflowFired, OverflowUnavailable
from tests.routing.driver import Driver, make_dialplan, make_queue, make_vendor


def test_buckets_include_service_level_threshold() -> None:
    """The 20 s service-level threshold is an exact bucket edge."""
    assert 20.0 in BASE_BUCKETS


def test_short_abandon_thresholds_become_bucket_edges() -> None:
    """Configured short-abandon thresholds are merged in, sorted, without duplicates."""
    buckets = buckets_with([7, 20, 0])
    assert 7.0 in buckets and buckets == tuple(sorted(set(buckets)))
    assert 0.0 not in buckets


def test_histogram_uses_merged_buckets() -> None:
    """An observation just under a custom threshold lands in that threshold's bucket."""
    metrics = Metrics(short_abandon_thresholds=[7])
    metrics.queue_wait.labels(queue="q", outcome="abandoned_queue", route="inhouse",
                              vendor="").observe(6.9)
    text = generate_latest(metrics.registry).decode()
    labels = 'outcome="abandoned_queue",queue="q",route="inhouse",vendor=""'
    assert f'ccswitch_queue_wait_seconds_bucket{{le="7.0",{labels}}} 1.0' in text
    assert f'ccswitch_queue_wait_seconds_bucket{{le="5.0",{labels}}} 0.0' in text


def test_live_state_collector_reads_at_scrape_time() -> None:
    """Queue depth and agent gauges reflect the callables at each scrape."""
    depths = {"support": 2}
    metrics = Metrics()
    metrics.watch(LiveStateCollector(lambda: depths, lambda: {("inhouse", "ready"): 3},
                                     lambda: 5))
    text = generate_latest(metrics.registry).decode()
    assert 'ccswitch_queue_depth{queue="support"} 2.0' in text
    assert 'ccswitch_agents{group="inhouse",state="ready"} 3.0' in text
    assert "ccswitch_active_calls 5.0" in text
    depths["support"] = 0
    assert 'ccswitch_queue_depth{queue="support"} 0.0' in generate_latest(metrics.registry).decode()


def test_live_state_collector_exports_vendor_gauges_and_queue_info() -> None:
    """Vendor channels in use / max / up and the queue->group info come from the callables."""
    metrics = Metrics()
    metrics.watch(LiveStateCollector(
        dict, dict, lambda: 0,
        vendor_states=lambda: {"acme": (3, 20, True), "globex": (0, 5, False)},
        queue_groups=lambda: {"support": "support-inhouse"}))
    text = generate_latest(metrics.registry).decode()
    for line in ('ccswitch_vendor_channels_in_use{vendor="acme"} 3.0',
                 'ccswitch_vendor_channels_max{vendor="acme"} 20.0',
                 'ccswitch_vendor_up{vendor="acme"} 1.0',
                 'ccswitch_vendor_up{vendor="globex"} 0.0',
                 'ccswitch_queue_info{group="support-inhouse",queue="support"} 1.0'):
        assert line in text


def _plan() -> Dialplan:
    """Queue support overflows to acme when the wait exceeds 60 s, and to bpo at max_wait."""
    support = Queue(name="support", group="inhouse", announcement=Path("notice.wav"),
                    overflow=(OverflowRule(condition=Condition.WAIT_EXCEEDS, vendors=("acme",),
                                           seconds=60),),
                    max_wait=MaxWait(seconds=300, vendors=("bpo",)))
    return Dialplan(agents={}, groups={"inhouse": Group(name="inhouse", agents=())},
                    queues={"support": support}, routes=())


def _samples(metrics: Metrics) -> set[str]:
    return set(generate_latest(metrics.registry).decode().splitlines())


def test_fixed_label_sets_are_exported_at_zero_before_any_event() -> None:
    """A fresh registry has the reload results, overload limits, drop reasons and 403 at 0."""
    samples = _samples(Metrics())
    for line in ('ccswitch_config_reloads_total{result="failed"} 0.0',
                 'ccswitch_config_reloads_total{result="ok"} 0.0',
                 'ccswitch_overload_refused_total{limit="calls"} 0.0',
                 'ccswitch_overload_refused_total{limit="rate"} 0.0',
                 'ccswitch_sip_dropped_total{reason="banned"} 0.0',
                 'ccswitch_sip_dropped_total{reason="scanner"} 0.0',
                 'ccswitch_sip_dropped_total{reason="rate_limited"} 0.0',
                 'ccswitch_sip_rejected_total{status="403"} 0.0',
                 'ccswitch_sip_rejected_total{status="503"} 0.0'):
        assert line in samples


def test_dialplan_series_are_exported_at_zero_before_any_call() -> None:
    """Per queue: in-house outcomes, and per overflow vendor its outcomes and causes, at 0."""
    metrics = Metrics()
    metrics.zero_dialplan_series(_plan())
    samples = _samples(metrics)
    inhouse = 'queue="support",route="inhouse",vendor=""'
    for line in (f'ccswitch_calls_total{{outcome="media_timeout",{inhouse}}} 0.0',
                 f'ccswitch_calls_total{{outcome="rejected",{inhouse}}} 0.0',
                 f'ccswitch_calls_total{{outcome="abandoned_queue",{inhouse}}} 0.0',
                 f'ccswitch_queue_wait_seconds_count{{outcome="answered_inhouse",{inhouse}}} 0.0',
                 'ccswitch_calls_total{outcome="overflow_failed",queue="support",'
                 'route="vendor",vendor="acme"} 0.0',
                 'ccswitch_calls_total{outcome="vendor_lost",queue="support",'
                 'route="vendor",vendor="acme"} 0.0',
                 'ccswitch_calls_total{outcome="answered_vendor",queue="support",'
                 'route="vendor",vendor="bpo"} 0.0',
                 'ccswitch_vendor_wait_seconds_count{outcome="answered_vendor",'
                 'queue="support",vendor="acme"} 0.0',
                 'ccswitch_overflow_total{queue="support",reason="wait_exceeds",'
                 'vendor="acme"} 0.0',
                 'ccswitch_overflow_total{queue="support",reason="max_wait",vendor="bpo"} 0.0',
                 'ccswitch_vendor_sends_total{queue="support",reason="wait_exceeds",'
                 'vendor="acme"} 0.0',
                 'ccswitch_overflow_failed_total{cause="failed",queue="support",'
                 'vendor="acme"} 0.0',
                 'ccswitch_agent_ring_seconds_count{group="inhouse",queue="support"} 0.0'):
        assert line in samples, line
    assert not any('outcome="rejected"' in line for line in samples
                   if line.startswith("ccswitch_queue_wait_seconds"))


def test_hold_series_are_exported_at_zero_before_any_call() -> None:
    """Per queue and route: the hold time histogram and the holds by each party, at 0."""
    metrics = Metrics()
    metrics.zero_dialplan_series(_plan())
    samples = _samples(metrics)
    inhouse = 'queue="support",route="inhouse",vendor=""'
    acme = 'queue="support",route="vendor",vendor="acme"'
    for line in (f'ccswitch_hold_seconds_count{{{inhouse}}} 0.0',
                 f'ccswitch_hold_seconds_count{{{acme}}} 0.0',
                 f'ccswitch_holds_total{{party="agent",{inhouse}}} 0.0',
                 f'ccswitch_holds_total{{party="caller",{inhouse}}} 0.0',
                 f'ccswitch_holds_total{{party="vendor",{acme}}} 0.0'):
        assert line in samples, line


def test_zeroing_the_dialplan_again_keeps_the_counts() -> None:
    """After a reload the series that already counted keep their values."""
    metrics = Metrics()
    metrics.zero_dialplan_series(_plan())
    metrics.calls.labels(queue="support", outcome="rejected", route="inhouse", vendor="").inc()
    metrics.zero_dialplan_series(_plan())
    assert ('ccswitch_calls_total{outcome="rejected",queue="support",route="inhouse",'
            'vendor=""} 1.0') in _samples(metrics)


def test_zeroed_causes_and_limits_are_the_ones_ccswitch_counts() -> None:
    """The overflow causes and overload limits zeroed are those the engine and admission use."""
    for cause in registry.OVERFLOW_FAILURE_CAUSES:
        OverflowUnavailable(call_id="c", queue="q", vendor="v", cause=cause)
    full = CallAdmission(AdmissionConfig(max_calls=0), Clock()).admit(0)
    rate = CallAdmission(AdmissionConfig(max_call_rate=0.001), Clock())
    rate.admit(0)
    limited = rate.admit(0)
    assert full is not None and limited is not None
    assert {full.limit, limited.limit} == set(registry.OVERLOAD_LIMITS)


def _serve(metrics: Metrics, status: dict[str, object]):  # type: ignore[no-untyped-def]
    return reactor.listenTCP(0, Site(build_site_root(metrics.registry, lambda: status)),
                             interface="127.0.0.1")


@pytest_twisted.inlineCallbacks
def test_metrics_endpoint_serves_prometheus_text():  # type: ignore[no-untyped-def]
    """GET /metrics returns the exposition format with ccswitch counters."""
    metrics = Metrics()
    metrics.calls.labels(queue="support", outcome="answered_inhouse", route="inhouse",
                         vendor="").inc()
    port = _serve(metrics, {"status": "ok"})
    try:
        url = f"http://127.0.0.1:{port.getHost().port}/metrics".encode()
        response = yield Agent(reactor).request(b"GET", url)
        body = yield readBody(response)
        assert response.code == 200
        assert (b'ccswitch_calls_total{outcome="answered_inhouse",queue="support",'
                b'route="inhouse",vendor=""} 1.0') in body
        assert response.headers.getRawHeaders(b"content-type")[0].startswith(b"text/plain")
    finally:
        yield port.stopListening()


@pytest_twisted.inlineCallbacks
def test_healthz_reports_unhealthy_with_503():  # type: ignore[no-untyped-def]
    """/healthz answers 503 with the status body when a check fails."""
    port = _serve(Metrics(), {"status": "degraded", "reason": "test"})
    try:
        url = f"http://127.0.0.1:{port.getHost().port}/healthz".encode()
        response = yield Agent(reactor).request(b"GET", url)
        body = yield readBody(response)
        assert response.code == 503
        assert json.loads(body) == {"status": "degraded", "reason": "test"}
    finally:
        yield port.stopListening()


def _overflow_driver() -> Driver:
    """Agents busy, a share of 50 % to acme and wait_exceeds 30 s to acme then globex."""
    rules = (OverflowRule(condition=Condition.SHARE, vendors=("acme",), percent=50.0),
             OverflowRule(condition=Condition.WAIT_EXCEEDS, vendors=("acme", "globex"),
                          seconds=30.0))
    d = Driver(make_dialplan(("alice",), vendors=(make_vendor("acme"), make_vendor("globex")),
                             queues=[make_queue(overflow=rules)]))
    d.queued("busy")
    d.answer("busy", "alice")
    return d


def test_overflow_counts_calls_by_first_reason_and_every_send_apart() -> None:
    """A share call acme declines, later sent to globex by wait_exceeds, is one overflow (its
    first reason and vendor, as the CDR's overflow_reason) and two vendor sends."""
    d = _overflow_driver()
    d.queued("c1")  # the share's credit reaches 1: acme
    d.vendor_fail("c1", "acme", 486)
    d.advance(30)  # back in the queue, then wait_exceeds: acme failed it, so globex
    d.vendor_answer("c1", "globex")
    d.vendor_hangup("c1", "globex")
    metrics = Metrics()
    for action in d.log:
        if isinstance(action, OverflowFired):
            CallMetrics(metrics).overflowed(action)
    samples = _samples(metrics)
    assert 'ccswitch_overflow_total{queue="support",reason="share",vendor="acme"} 1.0' in samples
    assert not any(s.startswith("ccswitch_overflow_total{") and "wait_exceeds" in s
                   for s in samples)
    for line in ('ccswitch_vendor_sends_total{queue="support",reason="share",vendor="acme"} 1.0',
                 'ccswitch_vendor_sends_total{queue="support",reason="wait_exceeds",'
                 'vendor="globex"} 1.0'):
        assert line in samples, line
    assert [r.overflow_reason for r in d.records if r.call_id == "c1"] == ["share"]


def test_overflow_collector_exports_rule_states_and_share_counts() -> None:
    """Rule states, the share's target and its calls and vendor calls, read at scrape time."""
    d = _overflow_driver()
    metrics = Metrics()
    metrics.watch(OverflowCollector(lambda: d.engine.view))
    d.queued("c1")  # credit 1: acme
    d.vendor_answer("c1", "acme")
    d.queued("c2")
    d.advance(30)  # c2 waited 30 s: wait_exceeds sends it
    samples = _samples(metrics)
    for line in ('ccswitch_overflow_rule_active{queue="support",rule="wait_exceeds"} 1.0',
                 'ccswitch_overflow_rule_active{queue="support",rule="share"} 0.0',
                 'ccswitch_share_target_ratio{queue="support",vendor="acme"} 0.5',
                 'ccswitch_share_calls_total{queue="support",vendor="acme"} 3.0',
                 'ccswitch_share_vendor_calls_total{queue="support",vendor="acme"} 1.0'):
        assert line in samples, line
