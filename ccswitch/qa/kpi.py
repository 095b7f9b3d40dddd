"""QA KPIs per route (in-house or each vendor) and day or week: the QA score and the
first-call-resolution proxy (the repeat-caller rate).

:func:`qa_kpis` is pure: it takes CDR rows and each call's evaluation scores.
:func:`load_qa_kpis` reads both from a :class:`~ccswitch.qa.store.QaStore`.

- ``qa_score``: the mean of the scores of the evaluations of the period's calls
  (evaluations without a score, all ``na``, are left out), ``qa_count`` how many;
- ``repeat_rate``: the share of calls whose caller had called (any queue, any route)
  within the 24 h before, as in ``ccswitch report``; anonymous callers are left out;
  None when no call has a usable caller id. A low rate means callers did not need to
  call back: the FCR proxy.

Periods are UTC days or ISO weeks (Monday 00:00 UTC); a row's route is ``inhouse``
or ``vendor:<name>``.
"""

from __future__ import annotations

import datetime
import statistics
from collections import defaultdict
from typing import Iterable, Mapping, Sequence

import attrs

from ccswitch.cdr.report import REPEAT_WINDOW_MS, repeat_callers
from ccswitch.cdr.store import CdrRow
from ccswitch.qa.store import QaStore, week_start_ms

__all__ = ["PERIODS", "QaKpi", "load_qa_kpis", "qa_kpis"]

PERIODS = ("day", "week")
_DAY_MS = 24 * 3600 * 1000


@attrs.frozen(kw_only=True)
class QaKpi:
    """One period x route line."""

    period_start_ms: int
    period_start: str  # ISO date of the period's first day (UTC)
    route: str
    calls: int
    repeat_rate: float | None
    qa_score: float | None
    qa_count: int


def _start(ms: int, period: str) -> int:
    return week_start_ms(ms) if period == "week" else ms - ms % _DAY_MS


def qa_kpis(rows: Iterable[CdrRow], scores: Mapping[str, Sequence[float]], *,
            period: str = "week", since_ms: int | None = None) -> list[QaKpi]:
    """The KPI lines from ``rows`` (any order) and ``scores`` (call id -> its evaluations'
    scores), oldest period first. Rows before ``since_ms`` only serve as repeat-caller
    history. Raises ValueError for an unknown period."""
    if period not in PERIODS:
        raise ValueError(f"period must be one of {', '.join(PERIODS)}, got {period!r}")
    ordered = sorted(rows, key=lambda r: (r.arrived_ms, r.call_id))
    repeat = repeat_callers(ordered)
    groups: dict[tuple[int, str], list[tuple[CdrRow, bool | None]]] = defaultdict(list)
    for row in ordered:
        if since_ms is not None and row.arrived_ms < since_ms:
            continue
        route = f"vendor:{row.vendor}" if row.vendor is not None else row.route
        groups[(_start(row.arrived_ms, period), route)].append((row, repeat.get(row.call_id)))
    lines = []
    for (start, route), members in sorted(groups.items()):
        known = [r for _, r in members if r is not None]
        marks = [s for row, _ in members for s in scores.get(row.call_id, ())]
        lines.append(QaKpi(
            period_start_ms=start,
            period_start=datetime.datetime.fromtimestamp(
                start / 1000, tz=datetime.timezone.utc).date().isoformat(),
            route=route, calls=len(members),
            repeat_rate=round(sum(known) / len(known), 4) if known else None,
            qa_score=round(statistics.fmean(marks), 2) if marks else None,
            qa_count=len(marks)))
    return lines


def load_qa_kpis(store: QaStore, *, since_ms: int | None = None, until_ms: int | None = None,
                 period: str = "week") -> list[QaKpi]:
    """:func:`qa_kpis` for the calls that arrived in [since_ms, until_ms)."""
    history = None if since_ms is None else since_ms - REPEAT_WINDOW_MS
    rows = list(store.rows(since_ms=history, until_ms=until_ms))
    return qa_kpis(rows, store.scores(since_ms=since_ms, until_ms=until_ms), period=period,
                   since_ms=since_ms)
