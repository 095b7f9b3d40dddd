"""KPI report from call detail records: pure functions from rows to tables.

One line per queue x route (``inhouse`` or the vendor's name) x period (hour or
day, in a chosen time zone). Definitions, the ones contact-centre contracts use:

- offered: calls that arrived; answered / abandoned by outcome.
- short abandons: abandoned calls shorter (arrival to hang-up) than the queue's
  ``short_abandon``. They are **excluded** from the service-level and
  abandonment denominators (a caller who hangs up within seconds never had a
  chance to be served).
- ASA (average speed of answer): mean queue wait of answered calls, seconds.
- AHT (average handle time): mean talk + hold of answered calls, seconds.
  ccswitch does not measure wrap-up yet, so AHT here excludes it.
- service level: answered within T seconds of queueing / (offered - short abandons).
- abandonment rate: (abandoned - short abandons) / (offered - short abandons).
- overflow rate by reason: calls with that overflow reason / offered.
- repeat-caller rate: share of calls whose caller had called (any queue) in the
  24 hours before; a first-contact-resolution proxy. Callers with no usable id
  (empty, "anonymous", "unknown") are left out of it.
"""

from __future__ import annotations

import csv
import datetime
import io
import json
from collections import defaultdict
from typing import Any, Iterable, Sequence
from zoneinfo import ZoneInfo

import attrs

from ccswitch.cdr.store import CdrRow

PERIODS = ("hour", "day")
ANONYMOUS = frozenset({"", "anonymous", "unknown", "restricted"})
REPEAT_WINDOW_MS = 24 * 3600 * 1000


@attrs.frozen(kw_only=True)
class KpiLine:
    period_start: str
    queue: str
    route: str
    offered: int
    answered: int
    abandoned: int
    short_abandons: int
    asa: float | None
    aht: float | None
    service_level: float | None
    abandon_rate: float | None
    repeat_rate: float | None
    overflow: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


@attrs.frozen(kw_only=True)
class Report:
    period: str
    tz: str
    sl_threshold: float
    lines: tuple[KpiLine, ...]


def _mean(values: Sequence[float]) -> float | None:
    return round(sum(values) / len(values), 2) if values else None


def _ratio(num: int, den: int) -> float | None:
    return round(num / den, 4) if den > 0 else None


def _bucket(ms: int, period: str, zone: ZoneInfo) -> str:
    local = datetime.datetime.fromtimestamp(ms / 1000, tz=zone)
    if period == "hour":
        start = local.replace(minute=0, second=0, microsecond=0)
    else:
        start = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return start.isoformat(timespec="minutes")


def build_report(rows: Iterable[CdrRow], *, period: str = "hour", sl_threshold: float = 20.0,
                 tz: str = "UTC") -> Report:
    """KPIs per period x queue x route; ``rows`` in any order."""
    if period not in PERIODS:
        raise ValueError(f"period must be one of {', '.join(PERIODS)}, got {period!r}")
    zone = ZoneInfo(tz)
    ordered = sorted(rows, key=lambda r: (r.arrived_ms, r.call_id))
    last_call: dict[str, int] = {}
    repeat: dict[str, bool] = {}
    for row in ordered:
        caller = row.caller.strip().lower()
        if caller in ANONYMOUS:
            continue
        previous = last_call.get(caller)
        repeat[row.call_id] = previous is not None and row.arrived_ms - previous <= REPEAT_WINDOW_MS
        last_call[caller] = row.arrived_ms
    groups: dict[tuple[str, str, str], list[CdrRow]] = defaultdict(list)
    for row in ordered:
        route = row.vendor or row.route
        groups[(_bucket(row.arrived_ms, period, zone), row.queue, route)].append(row)
    lines = []
    for (start, queue, route), calls in sorted(groups.items()):
        answered = [c for c in calls if c.answered_ms is not None]
        abandoned = [c for c in calls if c.outcome.startswith("abandon")
                     or c.outcome == "short_abandon"]
        short = sum(1 for c in abandoned if c.short_abandon)
        counted = len(calls) - short
        in_time = sum(1 for c in answered
                      if c.wait_ms is not None and c.wait_ms <= sl_threshold * 1000)
        reasons: dict[str, int] = defaultdict(int)
        for c in calls:
            if c.overflow_reason:
                reasons[c.overflow_reason] += 1
        known = [c for c in calls if c.call_id in repeat]
        lines.append(KpiLine(
            period_start=start, queue=queue, route=route, offered=len(calls),
            answered=len(answered), abandoned=len(abandoned), short_abandons=short,
            asa=_mean([c.wait_ms / 1000 for c in answered if c.wait_ms is not None]),
            aht=_mean([((c.talk_ms or 0) + (c.hold_ms or 0)) / 1000 for c in answered]),
            service_level=_ratio(in_time, counted),
            abandon_rate=_ratio(len(abandoned) - short, counted),
            repeat_rate=_ratio(sum(1 for c in known if repeat[c.call_id]), len(known)),
            overflow={r: round(n / len(calls), 4) for r, n in sorted(reasons.items())},
        ))
    return Report(period=period, tz=tz, sl_threshold=sl_threshold, lines=tuple(lines))


_HEADERS = ("period", "queue", "route", "offered", "answered", "abandoned", "short_ab",
            "ASA_s", "AHT_s", "SL", "abandon", "repeat", "overflow")


def _cells(line: KpiLine) -> list[str]:
    def pct(v: float | None) -> str:
        return "-" if v is None else f"{100 * v:.1f}%"

    def num(v: float | None) -> str:
        return "-" if v is None else f"{v:.1f}"

    overflow = ", ".join(f"{r} {100 * v:.1f}%" for r, v in line.overflow.items()) or "-"
    return [line.period_start, line.queue, line.route, str(line.offered), str(line.answered),
            str(line.abandoned), str(line.short_abandons), num(line.asa), num(line.aht),
            pct(line.service_level), pct(line.abandon_rate), pct(line.repeat_rate), overflow]


def format_text(report: Report) -> str:
    """An aligned table with a header saying how SL is computed."""
    head = (f"KPI per {report.period} ({report.tz}); SL = answered within "
            f"{report.sl_threshold:g} s / (offered - short abandons)\n")
    if not report.lines:
        return head + "no calls in range\n"
    table = [list(_HEADERS)] + [_cells(line) for line in report.lines]
    widths = [max(len(row[i]) for row in table) for i in range(len(_HEADERS))]
    out = [head]
    for n, row in enumerate(table):
        out.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() + "\n")
        if n == 0:
            out.append("  ".join("-" * w for w in widths) + "\n")
    return "".join(out)


def format_csv(report: Report) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["period_start", "queue", "route", "offered", "answered", "abandoned",
                     "short_abandons", "asa_s", "aht_s", "service_level", "abandon_rate",
                     "repeat_rate", "overflow"])
    for line in report.lines:
        writer.writerow([line.period_start, line.queue, line.route, line.offered, line.answered,
                         line.abandoned, line.short_abandons, line.asa, line.aht,
                         line.service_level, line.abandon_rate, line.repeat_rate,
                         json.dumps(line.overflow, sort_keys=True)])
    return buf.getvalue()


def format_json(report: Report) -> str:
    return json.dumps({"period": report.period, "tz": report.tz,
                       "sl_threshold": report.sl_threshold,
                       "lines": [line.to_dict() for line in report.lines]}, indent=2)


FORMATS = {"text": format_text, "csv": format_csv, "json": format_json}
