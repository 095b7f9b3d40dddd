"""KPI report from call detail records: pure functions from rows to tables.

One line per period (hour or day, in UTC or a named time zone) x queue x route,
where the route is ``inhouse`` or the vendor's name, so in-house and each vendor
sit side by side. A call belongs to the period in which it *arrived*.

Definitions (the ones contact-centre contracts usually use):

- **offered**: calls that arrived. **answered**: calls an agent or a vendor
  answered (``answered_ms`` set: ``answered_inhouse``, ``answered_vendor``).
  **abandoned**: ``abandoned_queue``, ``abandoned_ringing`` and
  ``short_abandon`` (and the pre-v3 ``abandoned``). Calls that are neither
  (``overflow_failed``, ``timeout``, ``rejected``) count only as offered: the
  caller was not served, but did not give up either. A call sent to a vendor is
  never an abandon: its line is the vendor's, as ``overflow_failed``.
- **short abandons**: outcome ``short_abandon`` (the caller left within the
  queue's ``short_abandon`` seconds of arrival). By convention they
  are **excluded from the denominators** of service level and abandonment rate:
  a caller who hangs up within seconds never had a chance to be served.
- **ASA** (average speed of answer): mean queue wait (queue entry, i.e. after the
  QA notice, to answer) of answered calls, seconds. On a vendor's line the clock starts
  when the call was first offered to that vendor (the vendor's own speed of answer, as
  Prometheus's ``ccswitch_vendor_wait_seconds``); service level uses the same clock.
- **AHT** (average handle time): mean talk + hold of answered calls, seconds: from
  the answer to the hang-up, since ccswitch's talk time leaves the holds out.
  ccswitch does not measure after-call work (wrap-up) yet, so AHT excludes it
  and reads low against an ACD's AHT that includes it.
- **service level**: answered with a wait <= T seconds / (offered - short
  abandons - rejected); T is ``sl_threshold`` (default 20 s). Rejected calls
  never reached a queue, so they are left out like short abandons (the
  Prometheus rules do the same).
- **abandonment rate**: (abandoned - short abandons) / (offered - short abandons
  - rejected).
- **overflow rate** per reason: calls with that ``overflow_reason`` / offered.
- **repeat-caller rate**: share of calls whose caller had called (any queue) in
  the 24 hours before the call; a first-contact-resolution proxy (a high rate
  means callers had to call back). Calls without a usable caller id (empty,
  ``anonymous``, ``unknown``, ``restricted``, ``private``, ``unavailable``; case
  ignored) are left out of numerator and denominator. Give ``since_ms`` and rows
  from 24 h earlier on, so calls early in the range see their history: rows that
  arrived before ``since_ms`` are used as history only.

``build_share_report`` gives, per period, each share rule's achieved split against
its target (see "contractual shares" below).

A ratio whose denominator is zero is ``None`` (``-`` in the text table, an empty
cell in CSV, ``null`` in JSON), as is a mean of nothing.
"""

from __future__ import annotations

import csv
import datetime
import io
import json
import math
from collections import defaultdict
from typing import Any, Callable, Iterable, Mapping, Sequence
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs

from ccswitch.cdr.store import CdrError, CdrRow
from ccswitch.model import Condition, Dialplan

PERIODS = ("hour", "day")
ANONYMOUS = frozenset({"", "anonymous", "unknown", "restricted", "private", "unavailable"})
REPEAT_WINDOW_MS = 24 * 3600 * 1000
_SLOT_MS = 15 * 60 * 1000  # every UTC offset is a multiple of 15 minutes


class ReportError(CdrError, ValueError):
    """A report parameter is invalid (period, time zone, threshold)."""

    error_id = "cdr.report"


@attrs.frozen(kw_only=True)
class KpiLine:
    """The KPIs of one period x queue x route; rates are fractions (0.25 = 25 %)."""

    period_start: str  # ISO 8601 local time with offset, e.g. 2026-11-23T09:00+01:00
    period_start_ms: int  # the same instant, epoch ms
    queue: str
    route: str  # "inhouse" or the vendor's name
    offered: int
    answered: int
    abandoned: int
    short_abandons: int
    answered_in_sl: int  # answered within the service-level threshold
    asa: float | None  # seconds
    aht: float | None  # seconds, talk + hold (no wrap-up)
    service_level: float | None
    abandon_rate: float | None
    repeat_rate: float | None
    overflow: Mapping[str, float]  # reason -> share of offered

    def to_dict(self) -> dict[str, Any]:
        out = attrs.asdict(self, recurse=False)
        out["overflow"] = dict(self.overflow)
        return out


@attrs.frozen(kw_only=True)
class Report:
    """A whole report: its parameters and the lines, by period, queue, route."""

    period: str
    tz: str
    sl_threshold: float
    lines: tuple[KpiLine, ...]


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _ratio(num: int, den: int) -> float | None:
    return num / den if den > 0 else None


def _zone(tz: str) -> ZoneInfo:
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ReportError(f"unknown time zone {tz!r} (use a name like UTC or "
                          f"Europe/Berlin)") from None


class _Buckets:
    """Period start (epoch ms, ISO text) of an arrival time, cached per 15-min slot."""

    def __init__(self, period: str, zone: ZoneInfo) -> None:
        self._day = period == "day"
        self._zone = zone
        self._cache: dict[int, tuple[int, str]] = {}

    def __call__(self, ms: int) -> tuple[int, str]:
        slot = ms // _SLOT_MS
        hit = self._cache.get(slot)
        if hit is None:
            local = datetime.datetime.fromtimestamp(ms / 1000, tz=self._zone)
            start = local.replace(minute=0, second=0, microsecond=0)
            if self._day:
                start = start.replace(hour=0)
            hit = (round(start.timestamp() * 1000), start.isoformat(timespec="minutes"))
            self._cache[slot] = hit
        return hit


def _caller_key(caller: str) -> str | None:
    key = caller.strip().lower()
    return None if key in ANONYMOUS else key


def repeat_callers(ordered: Iterable[CdrRow]) -> dict[str, bool]:
    """Call id -> whether its caller had called within ``REPEAT_WINDOW_MS`` before (the
    first-call-resolution proxy), for ``ordered`` rows in arrival order; calls without a
    usable caller id (anonymous) are left out."""
    last_call: dict[str, int] = {}
    repeat: dict[str, bool] = {}
    for row in ordered:
        key = _caller_key(row.caller)
        if key is not None:
            previous = last_call.get(key)
            repeat[row.call_id] = (previous is not None
                                   and row.arrived_ms - previous <= REPEAT_WINDOW_MS)
            last_call[key] = row.arrived_ms
    return repeat


def _speed_of_answer(row: CdrRow) -> int | None:
    """ms to answer: from queue entry, or for a vendor's call from the first offer to that
    vendor (the vendor's own clock, as ccswitch_vendor_wait_seconds); None if unknown."""
    if row.vendor is None or row.answered_ms is None:
        return row.wait_ms
    for offer in row.offers:
        offered = offer.get("offered_at")
        if offer.get("vendor") == row.vendor and isinstance(offered, (int, float)):
            return max(0, row.answered_ms - round(offered * 1000))
    return row.wait_ms


def build_report(rows: Iterable[CdrRow], *, period: str = "hour", sl_threshold: float = 20.0,
                 tz: str = "UTC", since_ms: int | None = None) -> Report:
    """KPIs per period x queue x route from ``rows`` (any order).

    Rows that arrived before ``since_ms`` only serve as repeat-caller history.
    Raises ReportError (a CdrError and a ValueError) for a bad period, time
    zone or threshold.
    """
    if period not in PERIODS:
        raise ReportError(f"period must be one of {', '.join(PERIODS)}, got {period!r}")
    if (isinstance(sl_threshold, bool) or not isinstance(sl_threshold, (int, float))
            or not math.isfinite(sl_threshold) or sl_threshold <= 0):
        raise ReportError(f"sl_threshold must be a positive number of seconds, "
                          f"got {sl_threshold!r}")
    bucket = _Buckets(period, _zone(tz))
    ordered = sorted(rows, key=lambda r: (r.arrived_ms, r.call_id))
    repeat = repeat_callers(ordered)
    groups: dict[tuple[int, str, str], list[CdrRow]] = defaultdict(list)
    starts: dict[int, str] = {}
    for row in ordered:
        if since_ms is not None and row.arrived_ms < since_ms:
            continue
        start_ms, start_iso = bucket(row.arrived_ms)
        starts[start_ms] = start_iso
        groups[(start_ms, row.queue, row.vendor or row.route)].append(row)
    threshold_ms = sl_threshold * 1000
    lines = []
    for (start_ms, queue, route), calls in sorted(groups.items()):
        answered = [c for c in calls if c.answered_ms is not None]
        abandoned = [c for c in calls if c.answered_ms is None and (
            c.outcome.startswith("abandon") or c.outcome == "short_abandon")]
        short = sum(1 for c in abandoned if c.short_abandon)
        counted = len(calls) - short - sum(1 for c in calls if c.outcome == "rejected")
        waits = {c.call_id: _speed_of_answer(c) for c in answered}
        in_sl = sum(1 for w in waits.values() if w is not None and w <= threshold_ms)
        reasons: dict[str, int] = defaultdict(int)
        for c in calls:
            if c.overflow_reason:
                reasons[c.overflow_reason] += 1
        known = [repeat[c.call_id] for c in calls if c.call_id in repeat]
        lines.append(KpiLine(
            period_start=starts[start_ms], period_start_ms=start_ms, queue=queue, route=route,
            offered=len(calls), answered=len(answered), abandoned=len(abandoned),
            short_abandons=short, answered_in_sl=in_sl,
            asa=_mean([w / 1000 for w in waits.values() if w is not None]),
            aht=_mean([(c.talk_ms + (c.hold_ms or 0)) / 1000
                       for c in answered if c.talk_ms is not None]),
            service_level=_ratio(in_sl, counted),
            abandon_rate=_ratio(len(abandoned) - short, counted),
            repeat_rate=_ratio(sum(known), len(known)),
            overflow={r: n / len(calls) for r, n in sorted(reasons.items())},
        ))
    return Report(period=period, tz=tz, sl_threshold=float(sl_threshold), lines=tuple(lines))


# -- output formats ---------------------------------------------------------------

def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _secs(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _text_cells(line: KpiLine) -> list[str]:
    overflow = ", ".join(f"{r} {_pct(v)}" for r, v in line.overflow.items()) or "-"
    return [line.period_start, line.queue, line.route, str(line.offered), str(line.answered),
            str(line.abandoned), str(line.short_abandons), _secs(line.asa), _secs(line.aht),
            _pct(line.service_level), _pct(line.abandon_rate), _pct(line.repeat_rate),
            overflow]


_NUMERIC = frozenset(range(3, 12))  # right-aligned columns of the text table


def format_text(report: Report) -> str:
    """An aligned table, with a header saying how the rates are computed."""
    t = f"{report.sl_threshold:g}"
    head = (f"KPIs per {report.period} ({report.tz}); a call counts in the {report.period} "
            f"it arrived\n"
            f"SL = answered within {t} s / counted; abandon = (abandoned - short abandons) / "
            f"counted; counted = offered - short abandons - rejected\n"
            f"route = inhouse or the vendor; a call sent to a vendor that nobody answered is "
            f"overflow_failed, never an abandon\n"
            f"ASA, AHT in seconds; AHT = talk + hold (wrap-up not measured); repeat = caller "
            f"also called in the 24 h before\n\n")
    if not report.lines:
        return head + "no calls in range\n"
    headers = ["period", "queue", "route", "offered", "answered", "abandoned", "short_ab",
               "ASA_s", "AHT_s", f"SL_{t}s", "abandon", "repeat",
               "overflow"]
    table = [headers] + [_text_cells(line) for line in report.lines]
    widths = [max(len(row[i]) for row in table) for i in range(len(headers))]
    out = [head]
    for n, row in enumerate(table):
        cells = [cell.rjust(w) if i in _NUMERIC else cell.ljust(w)
                 for i, (cell, w) in enumerate(zip(row, widths))]
        out.append("  ".join(cells).rstrip() + "\n")
        if n == 0:
            out.append("  ".join("-" * w for w in widths) + "\n")
    return "".join(out)


_CSV_COLUMNS = ("period_start", "queue", "route", "offered", "answered", "abandoned",
                "short_abandons", "answered_in_sl", "asa_s", "aht_s", "service_level",
                "abandon_rate", "repeat_rate")


def format_csv(report: Report) -> str:
    """CSV with a header row; one ``overflow_<reason>`` column per reason in the report.

    Rates are fractions (4 decimals), times seconds (3 decimals); an undefined
    value is an empty cell. No calls: just the header.
    """
    reasons = sorted({r for line in report.lines for r in line.overflow})
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([*_CSV_COLUMNS, *(f"overflow_{r}" for r in reasons)])

    def cell(value: float | None, digits: int) -> str:
        return "" if value is None else str(round(value, digits))

    for line in report.lines:
        writer.writerow([
            line.period_start, line.queue, line.route, line.offered, line.answered,
            line.abandoned, line.short_abandons, line.answered_in_sl, cell(line.asa, 3),
            cell(line.aht, 3), cell(line.service_level, 4), cell(line.abandon_rate, 4),
            cell(line.repeat_rate, 4), *(cell(line.overflow.get(r, 0.0), 4) for r in reasons)])
    return buf.getvalue()


def format_json(report: Report) -> str:
    """``{"period", "tz", "sl_threshold", "lines": [...]}``; undefined values are null."""
    lines = []
    for line in report.lines:
        data = line.to_dict()
        for key in ("asa", "aht"):
            data[key] = _round(data[key], 3)
        for key in ("service_level", "abandon_rate", "repeat_rate"):
            data[key] = _round(data[key], 4)
        data["overflow"] = {r: round(v, 4) for r, v in line.overflow.items()}
        lines.append(data)
    return json.dumps({"period": report.period, "tz": report.tz,
                       "sl_threshold": report.sl_threshold, "lines": lines},
                      indent=2, sort_keys=True) + "\n"


FORMATS: dict[str, Callable[[Report], str]] = {
    "text": format_text, "csv": format_csv, "json": format_json}


# -- contractual shares -------------------------------------------------------------
#
# The achieved split of each share rule per period: a call belongs to the period in
# which it arrived, as above. ``calls`` are the queue's calls that reached the queue
# (a queue entry, after the QA notice: the calls a share earns credit on);
# ``vendor_calls`` those the share sent to its vendor (overflow_reason ``share``)
# and that vendor answered. Targets come from the dialplan in force, so a share
# changed later is reported against its new percent.


@attrs.frozen(kw_only=True)
class ShareLine:
    """One share rule in one period; ``target`` and ``achieved`` are fractions."""

    period_start: str
    period_start_ms: int
    queue: str
    vendor: str
    target: float
    calls: int
    vendor_calls: int
    achieved: float | None

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self, recurse=False)


def share_targets(dialplan: Dialplan) -> dict[tuple[str, str], float]:
    """(queue, vendor) -> the share rule's percent / 100, for every share of ``dialplan``."""
    return {(queue.name, rule.vendors[0]): rule.percent / 100
            for queue in dialplan.queues.values() for rule in queue.overflow
            if rule.condition is Condition.SHARE and rule.percent is not None}


def build_share_report(rows: Iterable[CdrRow], targets: Mapping[tuple[str, str], float], *,
                       period: str = "hour", tz: str = "UTC",
                       since_ms: int | None = None) -> tuple[ShareLine, ...]:
    """Per period and share rule (from ``targets``), the achieved split of the rows that
    arrived from ``since_ms`` on, ordered by period, queue and vendor. Raises ReportError
    for a bad period or time zone."""
    if period not in PERIODS:
        raise ReportError(f"period must be one of {', '.join(PERIODS)}, got {period!r}")
    bucket = _Buckets(period, _zone(tz))
    vendors: dict[str, list[str]] = defaultdict(list)
    for queue, vendor in targets:
        vendors[queue].append(vendor)
    calls: dict[tuple[int, str], int] = defaultdict(int)
    taken: dict[tuple[int, str, str], int] = defaultdict(int)
    starts: dict[int, str] = {}
    for row in rows:
        if (row.queue not in vendors or row.queued_ms is None
                or (since_ms is not None and row.arrived_ms < since_ms)):
            continue
        start_ms, start_iso = bucket(row.arrived_ms)
        starts[start_ms] = start_iso
        calls[(start_ms, row.queue)] += 1
        if (row.overflow_reason == str(Condition.SHARE) and row.route == "vendor"
                and row.vendor is not None and row.answered_ms is not None):
            taken[(start_ms, row.queue, row.vendor)] += 1
    lines = []
    for (start_ms, queue), n in sorted(calls.items()):
        for vendor in sorted(vendors[queue]):
            got = taken[(start_ms, queue, vendor)]
            lines.append(ShareLine(
                period_start=starts[start_ms], period_start_ms=start_ms, queue=queue,
                vendor=vendor, target=targets[(queue, vendor)], calls=n, vendor_calls=got,
                achieved=_ratio(got, n)))
    return tuple(lines)


_SHARE_HEADERS = ("period_start", "queue", "vendor", "target", "achieved", "calls",
                  "vendor_calls")


def format_shares_text(lines: Sequence[ShareLine], period: str, tz: str) -> str:
    """An aligned table of the achieved split against the target, with a header."""
    head = (f"Shares per {period} ({tz}); a call counts in the {period} it arrived\n"
            f"achieved = share calls the vendor answered / calls that reached the queue\n\n")
    if not lines:
        return head + "no calls in range for a queue with a share rule\n"
    table = [list(_SHARE_HEADERS)] + [
        [x.period_start, x.queue, x.vendor, _pct(x.target), _pct(x.achieved), str(x.calls),
         str(x.vendor_calls)] for x in lines]
    widths = [max(len(row[i]) for row in table) for i in range(len(_SHARE_HEADERS))]
    out = [head]
    for n, row in enumerate(table):
        out.append("  ".join(cell.rjust(w) if i >= 3 else cell.ljust(w)
                             for i, (cell, w) in enumerate(zip(row, widths))).rstrip() + "\n")
        if n == 0:
            out.append("  ".join("-" * w for w in widths) + "\n")
    return "".join(out)


def format_shares_csv(lines: Sequence[ShareLine], period: str, tz: str) -> str:
    """CSV with a header row; target and achieved as fractions (4 decimals)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(_SHARE_HEADERS)
    for x in lines:
        writer.writerow([x.period_start, x.queue, x.vendor, round(x.target, 4),
                         "" if x.achieved is None else round(x.achieved, 4), x.calls,
                         x.vendor_calls])
    return buf.getvalue()


def format_shares_json(lines: Sequence[ShareLine], period: str, tz: str) -> str:
    """``{"period", "tz", "shares": [...]}``."""
    shares = [{**x.to_dict(), "achieved": _round(x.achieved, 4)} for x in lines]
    return json.dumps({"period": period, "tz": tz, "shares": shares}, indent=2,
                      sort_keys=True) + "\n"


SHARE_FORMATS: dict[str, Callable[[Sequence[ShareLine], str, str], str]] = {
    "text": format_shares_text, "csv": format_shares_csv, "json": format_shares_json}
