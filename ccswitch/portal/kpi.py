"""Vendor vs in-house KPIs per day or week, from call detail records (pure).

The definitions are the KPI report's (``ccswitch.cdr.report``): ASA from queue entry
(a vendor's own clock for a vendor's calls), AHT talk + hold, abandonment and service
level without short abandons and rejected calls in the denominator. Here the line is
per route (``inhouse`` or a vendor) across all queues. **FCR** is the proxy
1 - repeat-caller rate (the caller did not call again within 24 h *before* a call).
CSAT and QA score come from an injected :data:`Scores` function; without one they are
None ("n/a" on the page).
"""

from __future__ import annotations

import datetime
from collections import defaultdict
from typing import Callable, Iterable, Sequence
from zoneinfo import ZoneInfo

import attrs

from ccswitch.cdr.report import _speed_of_answer, repeat_callers
from ccswitch.cdr.store import CdrRow

PERIODS = ("day", "week")


@attrs.frozen(kw_only=True)
class Scores:
    """CSAT (0-5) and QA score (0-100) of a route's calls; None when unknown."""

    csat: float | None = None
    qa: float | None = None


#: route, call ids of a line -> its scores. Replaced by the QA data once it exists.
ScoreSource = Callable[[str, Sequence[str]], Scores]


def no_scores(route: str, call_ids: Sequence[str]) -> Scores:
    """No CSAT or QA data yet: both n/a."""
    return Scores()


@attrs.frozen(kw_only=True)
class RouteKpi:
    """One route's KPIs in one period; rates are fractions, times seconds."""

    period: str  # ISO date of the period's first day
    route: str  # "inhouse" or the vendor (or what ``by`` returned)
    offered: int
    answered: int
    asa: float | None
    aht: float | None
    abandon_rate: float | None
    service_level: float | None
    fcr: float | None
    csat: float | None
    qa: float | None


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def period_of(ms: int, period: str, zone: ZoneInfo) -> str:
    """The ISO date starting the day or (Monday) week in which ``ms`` falls."""
    day = datetime.datetime.fromtimestamp(ms / 1000, zone).date()
    if period == "week":
        day -= datetime.timedelta(days=day.weekday())
    return day.isoformat()


def compare(rows: Iterable[CdrRow], *, period: str = "day", tz: str = "UTC",
            sl_threshold: float = 20.0, since_ms: int | None = None,
            scores: ScoreSource = no_scores,
            by: Callable[[CdrRow], str] = lambda row: row.vendor or "inhouse",
            ) -> list[RouteKpi]:
    """Per period x route KPIs, ordered by period then route (``by`` picks another line
    key, such as the queue). Rows before ``since_ms`` serve only as repeat-caller history
    (give 24 h more than the range)."""
    if period not in PERIODS:
        raise ValueError(f"period must be one of {', '.join(PERIODS)}, got {period!r}")
    zone = ZoneInfo(tz)
    ordered = sorted(rows, key=lambda r: (r.arrived_ms, r.call_id))
    repeat = repeat_callers(ordered)
    groups: dict[tuple[str, str], list[CdrRow]] = defaultdict(list)
    for row in ordered:
        if since_ms is not None and row.arrived_ms < since_ms:
            continue
        groups[(period_of(row.arrived_ms, period, zone), by(row))].append(row)
    out = []
    for (start, route), calls in sorted(groups.items()):
        answered = [c for c in calls if c.answered_ms is not None]
        abandoned = [c for c in calls if c.answered_ms is None and (
            c.outcome.startswith("abandon") or c.outcome == "short_abandon")]
        short = sum(1 for c in abandoned if c.short_abandon)
        counted = len(calls) - short - sum(1 for c in calls if c.outcome == "rejected")
        waits = [w for w in (_speed_of_answer(c) for c in answered) if w is not None]
        known = [repeat[c.call_id] for c in calls if c.call_id in repeat]
        repeat_rate = _ratio(sum(known), len(known))
        got = scores(route, [c.call_id for c in calls])
        out.append(RouteKpi(
            period=start, route=route, offered=len(calls), answered=len(answered),
            asa=_mean([w / 1000 for w in waits]),
            aht=_mean([(c.talk_ms + (c.hold_ms or 0)) / 1000
                       for c in answered if c.talk_ms is not None]),
            abandon_rate=_ratio(len(abandoned) - short, counted),
            service_level=_ratio(sum(1 for w in waits if w <= sl_threshold * 1000), counted),
            fcr=None if repeat_rate is None else 1 - repeat_rate,
            csat=got.csat, qa=got.qa))
    return out
