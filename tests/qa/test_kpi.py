"""QA KPIs per route and period: the QA score average and count, the repeat-caller rate."""

from __future__ import annotations

import pytest

from ccswitch.cdr.store import CdrRow
from ccswitch.qa.kpi import load_qa_kpis, qa_kpis
from ccswitch.qa.store import QaStore
from tests.qa.test_store import FORM, MONDAY, call

H = 3600 * 1000
M = MONDAY * 1000


def row(call_id: str, at_ms: int, *, caller: str = "5550001", vendor: str | None = None
        ) -> CdrRow:
    return CdrRow(call_id=call_id, sip_call_id=None, node=None, caller=caller, dialed="100",
                  queue="support", group="g", route="vendor" if vendor else "inhouse",
                  vendor=vendor, agent_id=None, outcome="answered", overflow_reason=None,
                  arrived_ms=at_ms, announced_ms=None, queued_ms=None, answered_ms=None,
                  ended_ms=at_ms, wait_ms=None, ring_ms=None, talk_ms=None, hold_ms=None,
                  total_ms=0, short_abandon=False, qa_notice_played=False,
                  recording_path=None, recording_error=None, offers=())


def test_scores_average_per_route_and_week() -> None:
    """In-house and each vendor get their own line with the mean score and its count."""
    rows = [row("a", M, caller="1"), row("b", M + H, caller="2"),
            row("v", M + 2 * H, caller="3", vendor="acme")]
    lines = qa_kpis(rows, {"a": [80.0, 60.0], "b": [100.0], "v": [50.0]}, period="week")
    assert [(k.period_start, k.route, k.calls, k.qa_score, k.qa_count) for k in lines] == [
        ("2026-11-23", "inhouse", 2, 80.0, 3), ("2026-11-23", "vendor:acme", 1, 50.0, 1)]


def test_the_repeat_rate_counts_callers_back_within_24_hours() -> None:
    """A caller calling again within 24 h makes that call a repeat; after 24 h it does not."""
    rows = [row("1", M), row("2", M + 23 * H), row("3", M + 48 * H), row("x", M, caller="9")]
    [line] = qa_kpis(rows, {}, period="week")
    assert (line.calls, line.repeat_rate, line.qa_score) == (4, 0.25, None)


def test_daily_periods_split_at_utc_midnight() -> None:
    """period=day gives one line per UTC day."""
    lines = qa_kpis([row("1", M + H, caller="1"), row("2", M + 25 * H, caller="2")], {},
                    period="day")
    assert [k.period_start for k in lines] == ["2026-11-23", "2026-11-24"]


def test_history_before_since_counts_for_repeats_only() -> None:
    """A call before ``since_ms`` makes a later one a repeat but gets no line itself."""
    lines = qa_kpis([row("old", M - H), row("new", M + H)], {}, period="day", since_ms=M)
    assert [(k.period_start, k.calls, k.repeat_rate) for k in lines] == [("2026-11-23", 1, 1.0)]


def test_anonymous_callers_are_left_out_of_the_repeat_rate() -> None:
    """No caller id: not counted either way; a period of only those has no rate."""
    [line] = qa_kpis([row("1", M, caller="anonymous"), row("2", M + H, caller="anonymous")],
                     {}, period="week")
    assert line.repeat_rate is None


def test_an_unknown_period_is_refused() -> None:
    """Only day and week."""
    with pytest.raises(ValueError, match="period"):
        qa_kpis([], {}, period="month")


def test_kpis_from_the_store_use_its_evaluations(qa: QaStore) -> None:
    """load_qa_kpis reads calls and scores from the database."""
    qa.add(call("c1"))
    qa.evaluate(call_id="c1", reviewer="rita", form=FORM,
                answers={"greet": "yes", "verify": "yes", "solved": 5}, now_ms=1)
    [line] = load_qa_kpis(qa, since_ms=M, until_ms=M + 7 * 24 * H)
    assert (line.route, line.qa_score, line.qa_count) == ("inhouse", 100.0, 1)
