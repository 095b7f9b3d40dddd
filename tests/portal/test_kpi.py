"""Vendor vs in-house KPIs per day and week from call rows."""

from __future__ import annotations

from typing import Any, Sequence

from ccswitch.cdr.store import CdrRow
from ccswitch.portal.kpi import Scores, compare

DAY = 86_400_000
MONDAY = 1_764_547_200_000  # 2025-12-01T00:00Z, a Monday


def row(call_id: str, at: int, *, vendor: str | None = None, wait: int | None = 5000,
        talk: int | None = 60000, outcome: str | None = None, caller: str = "100",
        ) -> CdrRow:
    answered = outcome is None
    return CdrRow(
        call_id=call_id, sip_call_id=None, node=None, caller=caller, dialed="500",
        queue="sales", group="g", route="vendor" if vendor else "inhouse", vendor=vendor,
        agent_id=None, outcome=outcome or ("answered_vendor" if vendor else "answered_inhouse"),
        overflow_reason=None, arrived_ms=at, announced_ms=None, queued_ms=at,
        answered_ms=at + (wait or 0) if answered else None, ended_ms=at + 100000,
        wait_ms=wait if answered else None, ring_ms=None, talk_ms=talk if answered else None,
        hold_ms=None, total_ms=100000, short_abandon=outcome == "short_abandon",
        qa_notice_played=False, recording_path=None, recording_error=None, offers=())


def test_lines_per_day_and_route() -> None:
    """In-house and each vendor get a line per day with ASA, AHT and SL."""
    rows = [row("a", MONDAY + 1000, wait=10000, caller="1"),
            row("b", MONDAY + 2000, wait=30000, caller="2"),
            row("c", MONDAY + 3000, vendor="acme", wait=4000, caller="3"),
            row("d", MONDAY + DAY, caller="4")]
    kpis = {(k.period, k.route): k for k in compare(rows, sl_threshold=20)}
    inhouse = kpis[("2025-12-01", "inhouse")]
    assert inhouse.offered == 2 and inhouse.asa == 20.0 and inhouse.aht == 60.0
    assert inhouse.service_level == 0.5
    assert kpis[("2025-12-01", "acme")].asa == 4.0
    assert kpis[("2025-12-02", "inhouse")].offered == 1


def test_week_groups_monday_to_sunday() -> None:
    """By week, Monday and Sunday calls share a line; the next Monday starts another."""
    rows = [row("a", MONDAY, caller="1"), row("b", MONDAY + 6 * DAY, caller="2"),
            row("c", MONDAY + 7 * DAY, caller="3")]
    kpis = compare(rows, period="week")
    assert [(k.period, k.offered) for k in kpis] == [("2025-12-01", 2), ("2025-12-08", 1)]


def test_abandonment_leaves_short_abandons_out() -> None:
    """Abandon rate counts real abandons over offered minus short abandons."""
    rows = [row("a", MONDAY, caller="1"), row("b", MONDAY + 1, outcome="abandoned_queue",
                                                caller="2"),
            row("c", MONDAY + 2, outcome="short_abandon", caller="3")]
    [k] = compare(rows)
    assert k.abandon_rate == 0.5


def test_fcr_proxy_is_one_minus_repeat_rate() -> None:
    """A caller who calls again within 24 h makes the second call a repeat."""
    rows = [row("a", MONDAY, caller="7"), row("b", MONDAY + 3600_000, caller="7")]
    [k] = compare(rows)
    assert k.fcr == 0.5


def test_scores_are_na_until_a_source_gives_them() -> None:
    """CSAT and QA are None by default and come from the injected score source."""
    rows = [row("a", MONDAY)]
    [k] = compare(rows)
    assert k.csat is None and k.qa is None

    def scores(route: str, calls: Sequence[str]) -> Scores:
        return Scores(csat=4.5, qa=88.0) if route == "inhouse" else Scores()

    [k] = compare(rows, scores=scores)
    assert (k.csat, k.qa) == (4.5, 88.0)


def test_rows_before_since_are_history_only() -> None:
    """Rows before since_ms make no line but still count as repeat history."""
    rows: list[Any] = [row("a", MONDAY, caller="7"), row("b", MONDAY + 3600_000, caller="7")]
    [k] = compare(rows, since_ms=MONDAY + 1)
    assert k.offered == 1 and k.fcr == 0.0
