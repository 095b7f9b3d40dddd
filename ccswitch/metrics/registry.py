"""Prometheus metrics for ccswitch.

Per-call timings are observed once, from the call's record when it ends, so the
histograms and the call detail record always agree. Gauges that describe live
state (queue depth, agents by state) are read from the engine at scrape time.
No label carries a per-call or per-caller value.

Every label set ccswitch can know in advance (fixed values below, and per queue,
route and vendor from the dialplan) is exported at 0 from the start: a series
that first appears at 1 gives ``increase()`` and ``rate()`` a single sample, so
Prometheus would miss the first event after a start (the first refused reload,
the first media timeout, ...).
"""

from __future__ import annotations

from typing import Callable, Iterable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ccswitch.model import MAX_WAIT_REASON, Dialplan
from ccswitch.routing.record import Outcome, Route
from ccswitch.routing.view import EngineView
from ccswitch.sip.guard import Verdict

# Seconds to minutes: speed of answer, ring and talk times in a contact centre.
# 20 s is the classic service-level threshold (80/20); short-abandon thresholds
# configured on queues are merged in so they are exact bucket edges.
BASE_BUCKETS: tuple[float, ...] = (
    0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0,
    90.0, 120.0, 180.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0,
)


def buckets_with(extra: Iterable[float]) -> tuple[float, ...]:
    """The base buckets plus the given edges (e.g. short-abandon thresholds)."""
    return tuple(sorted(set(BASE_BUCKETS) | {float(x) for x in extra if x > 0}))


#: Results of a config reload (ccswitch_config_reloads_total).
RELOAD_RESULTS = ("ok", "failed")
#: The overload limits that refuse new calls (ccswitch_overload_refused_total).
OVERLOAD_LIMITS = ("calls", "rate")
#: Why an overflow could not go to a vendor (ccswitch_overflow_failed_total).
OVERFLOW_FAILURE_CAUSES = ("full", "down", "closed", "failed")
#: Statuses ccswitch answers refused requests with: malformed or unsupported requests
#: (400, 406, 415, 416, 420, 483, 505), an untrusted source (403), no route (404), a
#: method it does not serve (405), a loop (482), no usable offer (488), overload or no
#: media port (503). A status not listed here appears when first used.
REJECTED_STATUSES = (400, 403, 404, 405, 406, 415, 416, 420, 482, 483, 488, 503, 505)
#: How in-house calls can end; a call that reached a vendor ends with VENDOR_OUTCOMES.
#: A rejected call has no queue wait, so its histograms have no such series.
INHOUSE_OUTCOMES = (Outcome.ANSWERED_INHOUSE, Outcome.ABANDONED_QUEUE,
                    Outcome.ABANDONED_RINGING, Outcome.SHORT_ABANDON, Outcome.TIMEOUT,
                    Outcome.MEDIA_TIMEOUT, Outcome.REJECTED)
VENDOR_OUTCOMES = (Outcome.ANSWERED_VENDOR, Outcome.OVERFLOW_FAILED, Outcome.TIMEOUT,
                   Outcome.MEDIA_TIMEOUT, Outcome.VENDOR_LOST)


class LiveStateCollector(Collector):
    """Reads queue depth and agent states from callables at scrape time."""

    def __init__(
        self,
        queue_depths: Callable[[], Mapping[str, int]],
        agent_states: Callable[[], Mapping[tuple[str, str], int]],
        active_calls: Callable[[], int],
        vendor_states: Callable[[], Mapping[str, tuple[int, int, bool]]] = dict,
        queue_groups: Callable[[], Mapping[str, str]] = dict,
    ) -> None:
        self._queue_depths = queue_depths
        self._agent_states = agent_states
        self._active_calls = active_calls
        self._vendor_states = vendor_states
        self._queue_groups = queue_groups

    def collect(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily(
            "ccswitch_queue_depth", "Callers waiting in the queue now.", labels=["queue"]
        )
        for queue, n in sorted(self._queue_depths().items()):
            depth.add_metric([queue], n)
        yield depth
        agents = GaugeMetricFamily(
            "ccswitch_agents", "In-house agents by group and state.", labels=["group", "state"]
        )
        for (group, state), n in sorted(self._agent_states().items()):
            agents.add_metric([group, state], n)
        yield agents
        yield GaugeMetricFamily(
            "ccswitch_active_calls", "Calls in progress on this node.", value=self._active_calls()
        )
        info = GaugeMetricFamily(
            "ccswitch_queue_info", "Always 1: the in-house group that serves each queue.",
            labels=["queue", "group"])
        for queue, group in sorted(self._queue_groups().items()):
            info.add_metric([queue, group], 1)
        yield info
        in_use = GaugeMetricFamily(
            "ccswitch_vendor_channels_in_use",
            "Calls a vendor has now (ringing or answered), on this node.", labels=["vendor"])
        cap = GaugeMetricFamily(
            "ccswitch_vendor_channels_max", "A vendor's contractual max_channels.",
            labels=["vendor"])
        up = GaugeMetricFamily(
            "ccswitch_vendor_up",
            "1 while a vendor is in rotation; 0 once taken out after repeated failures or "
            "failed OPTIONS probes, until a probe brings it back.", labels=["vendor"])
        for vendor, (used, most, healthy) in sorted(self._vendor_states().items()):
            in_use.add_metric([vendor], used)
            cap.add_metric([vendor], most)
            up.add_metric([vendor], 1 if healthy else 0)
        yield in_use
        yield cap
        yield up


class OverflowCollector(Collector):
    """Reads the overflow rules' states and the shares' counts from the engine's view at
    scrape time."""

    def __init__(self, view: Callable[[], EngineView]) -> None:
        self._view = view

    def collect(self) -> Iterator[Metric]:
        view = self._view()
        active = GaugeMetricFamily(
            "ccswitch_overflow_rule_active",
            "1 while a queue's overflow rule is on (rule: its condition, #2 for the second "
            "of a condition), 0 while off.", labels=["queue", "rule"])
        for (queue, rule), on in sorted(view.overflow_rules.items()):
            active.add_metric([queue, rule], 1 if on else 0)
        yield active
        target = GaugeMetricFamily(
            "ccswitch_share_target_ratio", "A share rule's contractual part of the queue's "
            "calls (percent / 100).", labels=["queue", "vendor"])
        calls = CounterMetricFamily(
            "ccswitch_share_calls", "Calls that entered a queue with a share rule, per "
            "share vendor.", labels=["queue", "vendor"])
        taken = CounterMetricFamily(
            "ccswitch_share_vendor_calls", "Share calls the vendor answered.",
            labels=["queue", "vendor"])
        for (queue, vendor), share in sorted(view.shares.items()):
            target.add_metric([queue, vendor], share.percent / 100)
            calls.add_metric([queue, vendor], share.calls)
            taken.add_metric([queue, vendor], share.taken)
        yield target
        yield calls
        yield taken


class Metrics:
    """Every metric ccswitch exports, on its own registry."""

    def __init__(self, *, short_abandon_thresholds: Iterable[float] = ()) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        buckets = buckets_with(short_abandon_thresholds)
        self.queue_wait = Histogram(
            "ccswitch_queue_wait_seconds",
            "Time callers waited in queue (speed of answer for answered calls); route is "
            "inhouse or vendor, vendor is the vendor's name or empty.",
            ["queue", "outcome", "route", "vendor"], buckets=buckets, registry=self.registry,
        )
        self.vendor_wait = Histogram(
            "ccswitch_vendor_wait_seconds",
            "Vendor speed of answer: first offer to the vendor to its answer (or to the end "
            "if unanswered), for calls on the vendor route.",
            ["queue", "vendor", "outcome"], buckets=buckets, registry=self.registry,
        )
        self.agent_ring = Histogram(
            "ccswitch_agent_ring_seconds",
            "Time an agent's phone rang per offer, whatever the offer's result.",
            ["queue", "group"], buckets=buckets, registry=self.registry,
        )
        self.call_talk = Histogram(
            "ccswitch_call_talk_seconds",
            "Talk time of answered calls, agent (or vendor) answer to hang-up less holds.",
            ["queue", "group", "route", "vendor"], buckets=buckets, registry=self.registry,
        )
        self.call_hold = Histogram(
            "ccswitch_hold_seconds",
            "Time on hold per answered call (all its holds; 0 for a call never held).",
            ["queue", "route", "vendor"], buckets=buckets, registry=self.registry,
        )
        self.holds = Counter(
            "ccswitch_holds", "Holds of answered calls, by the party that held (caller, "
            "agent or vendor).",
            ["queue", "route", "vendor", "party"], registry=self.registry,
        )
        self.calls = Counter(
            "ccswitch_calls", "Calls ended, by queue, outcome, route and vendor.",
            ["queue", "outcome", "route", "vendor"], registry=self.registry,
        )
        self.overflow = Counter(
            "ccswitch_overflow",
            "Calls overflowed, once per call, by their first overflow reason (the CDR's "
            "overflow_reason) and the vendor they were first sent to.",
            ["queue", "reason", "vendor"], registry=self.registry,
        )
        self.vendor_sends = Counter(
            "ccswitch_vendor_sends",
            "Every send of a call to a vendor (a call failing over to the rule's next vendor "
            "counts again), by queue, the rule that sent it and vendor.",
            ["queue", "reason", "vendor"], registry=self.registry,
        )
        self.overflow_failed = Counter(
            "ccswitch_overflow_failed",
            "Overflows a vendor could not take, by cause: full, down, closed, failed.",
            ["queue", "vendor", "cause"], registry=self.registry,
        )
        self.sip_rejected = Counter(
            "ccswitch_sip_rejected",
            "Requests refused with an answer (malformed ones answered by the transport, "
            "new calls, other out-of-dialog requests and re-INVITEs ccswitch cannot take), "
            "by status code.",
            ["status"], registry=self.registry,
        )
        self.offer_failures = Counter(
            "ccswitch_offer_failures",
            "Offers to an agent or a vendor that failed (not those we cancelled), by the far "
            "end's final status (486, 488, 603, ...) or ours: 408 no answer, 488 unusable "
            "SDP answer, 502 unusable dialog, 503 no free RTP port.",
            ["queue", "kind", "status"], registry=self.registry,
        )
        self.sip_dropped = Counter(
            "ccswitch_sip_dropped",
            "Requests dropped unanswered by the source guard: scanner, rate_limited, banned.",
            ["reason"], registry=self.registry,
        )
        self.sip_banned_sources = Gauge(
            "ccswitch_sip_banned_sources", "Sources (IPs, IPv6 /64s) serving a flood ban now.",
            registry=self.registry,
        )
        self.overload_refused = Counter(
            "ccswitch_overload_refused",
            "New calls answered 503 + Retry-After by the overload limits: calls (sip.max_calls) "
            "or rate (sip.max_call_rate).", ["limit"], registry=self.registry,
        )
        self.recording_errors = Counter(
            "ccswitch_recording_errors",
            "Recordings that could not be written or finalised.",
            registry=self.registry,
        )
        self.cdr_write_errors = Counter(
            "ccswitch_cdr_write_errors",
            "Call records that could not be written to a CDR sink (logged in full instead).",
            registry=self.registry,
        )
        self.cdr_backend_up = Gauge(
            "ccswitch_cdr_backend_up",
            "1 while the CDR database takes call records; 0 while they are spooled locally "
            "because it cannot be reached.",
            registry=self.registry,
        )
        self.cdr_spooled_records = Gauge(
            "ccswitch_cdr_spooled_records",
            "Call records in the local CDR spool, waiting for the database to answer.",
            registry=self.registry,
        )
        self.state_backend_up = Gauge(
            "ccswitch_state_backend_up",
            "1 while the shared state store is reachable (the embedded store always is).",
            registry=self.registry,
        )
        self.config_reloads = Counter(
            "ccswitch_config_reloads", "Config reloads (SIGHUP), by result (ok, failed).",
            ["result"], registry=self.registry,
        )
        self.config_reloaded_at = Gauge(
            "ccswitch_config_last_reload_success_timestamp_seconds",
            "When the config in force was loaded (start or last good reload), Unix time.",
            registry=self.registry,
        )
        for result in RELOAD_RESULTS:
            self.config_reloads.labels(result=result)
        for limit in OVERLOAD_LIMITS:
            self.overload_refused.labels(limit=limit)
        for verdict in Verdict:
            if verdict is not Verdict.ALLOW:
                self.sip_dropped.labels(reason=str(verdict))
        for status in REJECTED_STATUSES:
            self.sip_rejected.labels(status=str(status))

    def zero_dialplan_series(self, dialplan: Dialplan) -> None:
        """Export at 0 every per-queue series the dialplan can produce (its calls by
        outcome and route, their timings, overflows and overflow failures per vendor).

        Called at start and after each reload (a new queue or vendor); a series that
        already counts is left as it is.
        """
        for queue in dialplan.queues.values():
            q, group = queue.name, queue.group
            self.agent_ring.labels(queue=q, group=group)
            inhouse = {"queue": q, "route": str(Route.INHOUSE), "vendor": ""}
            for outcome in INHOUSE_OUTCOMES:
                self.calls.labels(outcome=str(outcome), **inhouse)
                if outcome is not Outcome.REJECTED:
                    self.queue_wait.labels(outcome=str(outcome), **inhouse)
            self.call_talk.labels(group=group, **inhouse)
            self.call_hold.labels(**inhouse)
            for party in ("caller", "agent"):
                self.holds.labels(party=party, **inhouse)
            overflows = [(str(rule.condition), vendor) for rule in queue.overflow
                         for vendor in rule.vendors]
            if queue.max_wait is not None:
                overflows += [(MAX_WAIT_REASON, vendor) for vendor in queue.max_wait.vendors]
            for reason, vendor in overflows:
                self.overflow.labels(queue=q, reason=reason, vendor=vendor)
                self.vendor_sends.labels(queue=q, reason=reason, vendor=vendor)
            for vendor in sorted({vendor for _, vendor in overflows}):
                route = {"queue": q, "route": str(Route.VENDOR), "vendor": vendor}
                for outcome in VENDOR_OUTCOMES:
                    self.calls.labels(outcome=str(outcome), **route)
                    self.queue_wait.labels(outcome=str(outcome), **route)
                    self.vendor_wait.labels(queue=q, vendor=vendor, outcome=str(outcome))
                self.call_talk.labels(group=group, **route)
                self.call_hold.labels(**route)
                for party in ("caller", "vendor"):
                    self.holds.labels(party=party, **route)
                for cause in OVERFLOW_FAILURE_CAUSES:
                    self.overflow_failed.labels(queue=q, vendor=vendor, cause=cause)

    def watch(self, collector: Collector) -> None:
        """Register a collector of live state (see LiveStateCollector)."""
        self.registry.register(collector)
