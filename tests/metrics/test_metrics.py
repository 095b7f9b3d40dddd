"""Metrics registry and the HTTP endpoints that expose it."""

from __future__ import annotations

import json

import pytest_twisted
from prometheus_client import generate_latest
from twisted.internet import reactor
from twisted.web.client import Agent, readBody
from twisted.web.server import Site

from ccswitch.metrics.http import build_site_root
from ccswitch.metrics.registry import BASE_BUCKETS, LiveStateCollector, Metrics, buckets_with


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
