"""What a call's life adds to the Prometheus metrics: one place maps it to labels.

The call runtime reports finished calls (rejected ones included), refused
INVITEs, overflow notices, offers that failed and recordings that failed;
:class:`CallMetrics` turns each into the counters and histograms of
:class:`~ccswitch.metrics.registry.Metrics`. Safe on any thread (the
``prometheus_client`` metrics are).
"""

from __future__ import annotations

from ccswitch.metrics.registry import Metrics
from ccswitch.routing.actions import OverflowFired, OverflowUnavailable
from ccswitch.routing.record import CallRecord
from ccswitch.routing.target import Target


class CallMetrics:
    """Counts and times calls on ``metrics``."""

    def __init__(self, metrics: Metrics) -> None:
        self._m = metrics

    def finished(self, record: CallRecord) -> None:
        """A finished call: its outcome, waits, ring times of the agents offered, talk
        and hold time, and its holds by the party that held."""
        m = self._m
        outcome = str(record.outcome)
        route = str(record.route)
        vendor = record.vendor or ""
        m.calls.labels(queue=record.queue, outcome=outcome, route=route, vendor=vendor).inc()
        if record.wait is not None:
            m.queue_wait.labels(queue=record.queue, outcome=outcome, route=route,
                                vendor=vendor).observe(record.wait)
        if record.vendor_wait is not None:
            m.vendor_wait.labels(queue=record.queue, vendor=vendor, outcome=outcome).observe(
                record.vendor_wait)
        for offer in record.offers:
            if offer.agent_id is not None:
                m.agent_ring.labels(queue=record.queue, group=record.group).observe(offer.ring)
        if record.talk is not None:
            m.call_talk.labels(queue=record.queue, group=record.group, route=route,
                               vendor=vendor).observe(record.talk)
            m.call_hold.labels(queue=record.queue, route=route, vendor=vendor).observe(
                record.hold)
        for hold in record.holds:
            party = hold.party if isinstance(hold.party, str) else hold.party.kind.value
            m.holds.labels(queue=record.queue, route=route, vendor=vendor, party=party).inc()

    def refused(self, limit: str) -> None:
        """An INVITE refused by the call limit ``limit`` (calls or rate)."""
        self._m.overload_refused.labels(limit=limit).inc()

    def overflowed(self, notice: OverflowFired) -> None:
        """A send to a vendor (counted once the vendor's channel is granted), and the
        call's overflow if it is its first, as the CDR's overflow_reason."""
        labels = {"queue": notice.queue, "reason": notice.reason, "vendor": notice.vendor}
        self._m.vendor_sends.labels(**labels).inc()
        if notice.first:
            self._m.overflow.labels(**labels).inc()

    def overflow_failed(self, notice: OverflowUnavailable) -> None:
        """A vendor that could not take a call, by cause."""
        self._m.overflow_failed.labels(queue=notice.queue, vendor=notice.vendor,
                                       cause=notice.cause).inc()

    def offer_failed(self, queue: str, target: Target, status: int) -> None:
        """An offer to an agent or vendor that ended unanswered with ``status``."""
        self._m.offer_failures.labels(queue=queue, kind=target.kind.value,
                                      status=str(status)).inc()

    def recording_failed(self) -> None:
        self._m.recording_errors.inc()
