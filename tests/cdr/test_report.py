"""KPI report definitions on hand-built records with known answers."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest

from ccswitch.cdr.report import build_report, format_csv, format_json, format_text
from ccswitch.cdr.store import CdrRow

H = 3_600_000  # one hour in ms
T0 = 1_795_392_000_000  # 2026-11-23T00:00:00Z


def row(call_id: str, *, at: int, outcome: str = "answered", wait: float | None = 10.0,
        talk: float | None = 60.0, caller: str = "", queue: str = "support",
        short: bool = False, vendor: str | None = None,
        reason: str | None = None) -> CdrRow:
    answered = outcome == "answered"
    wait_ms = None if wait is None else int(wait * 1000)
    fields: dict[str, Any] = dict(
        call_id=call_id, sip_call_id=None, node=None, caller=caller or f"caller-{call_id}",
        dialed="100", queue=queue, group="inhouse", route="vendor" if vendor else "inhouse",
        vendor=vendor, agent_id="alice" if answered else None, outcome=outcome,
        overflow_reason=reason, arrived_ms=at, announced_ms=at + 4000, queued_ms=at + 4000,
        answered_ms=at + 4000 + (wait_ms or 0) if answered else None,
        ended_ms=at + 100_000, wait_ms=wait_ms, ring_ms=None,
        talk_ms=int(talk * 1000) if answered and talk is not None else None, hold_ms=None,
        total_ms=100_000, short_abandon=short, qa_notice_played=True, recording_path=None,
        recording_error=None, offers=())
    return CdrRow(**fields)


def test_asa_aht_service_level_and_abandonment_by_hand() -> None:
    """4 answered (waits 5, 10, 30, 45 s), 1 abandon, 1 short abandon, in one hour."""
    rows = [row("a", at=T0, wait=5), row("b", at=T0 + 1, wait=10, talk=120),
            row("c", at=T0 + 2, wait=30), row("d", at=T0 + 3, wait=45),
            row("e", at=T0 + 4, outcome="abandoned", wait=50),
            row("f", at=T0 + 5, outcome="abandoned", wait=1, short=True)]
    [line] = build_report(rows, sl_threshold=20).lines
    assert (line.offered, line.answered, line.abandoned, line.short_abandons) == (6, 4, 2, 1)
    assert line.asa == pytest.approx((5 + 10 + 30 + 45) / 4)
    assert line.aht == pytest.approx((60 + 120 + 60 + 60) / 4)
    assert line.service_level == pytest.approx(2 / 5)  # short abandon left out
    assert line.abandon_rate == pytest.approx(1 / 5)


def test_calls_are_bucketed_per_hour_and_per_day_in_the_given_time_zone() -> None:
    """Hour buckets follow arrival; day buckets follow the local date of the zone."""
    rows = [row("a", at=T0 + 30 * 60_000), row("b", at=T0 + H + 1), row("c", at=T0 + 23 * H)]
    hours = [line.period_start for line in build_report(rows, period="hour").lines]
    assert hours == ["2026-11-23T00:00+00:00", "2026-11-23T01:00+00:00",
                     "2026-11-23T23:00+00:00"]
    days = build_report(rows, period="day", tz="America/New_York").lines
    # 23:00Z is 18:00 in New York the same day; 00:30Z is the evening before there.
    assert [(d.period_start[:10], d.offered) for d in days] == [("2026-11-22", 2),
                                                                 ("2026-11-23", 1)]


def test_routes_and_queues_get_their_own_lines_with_overflow_reasons() -> None:
    """In-house and each vendor are compared side by side; overflow reasons are rated."""
    rows = [row("a", at=T0), row("b", at=T0 + 1, vendor="acme", reason="wait_exceeds"),
            row("c", at=T0 + 2, vendor="acme", reason="no_agents_available"),
            row("d", at=T0 + 3, queue="sales")]
    lines = {(x.queue, x.route): x for x in build_report(rows).lines}
    assert set(lines) == {("sales", "inhouse"), ("support", "inhouse"), ("support", "acme")}
    assert lines[("support", "acme")].overflow == {"no_agents_available": 0.5,
                                                   "wait_exceeds": 0.5}


def test_repeat_callers_within_24_hours() -> None:
    """A caller who called in the 24 h before counts as a repeat; anonymous callers do not."""
    rows = [row("a", at=T0, caller="555"), row("b", at=T0 + 2 * H, caller="555"),
            row("c", at=T0 + 3 * H, caller="666"), row("d", at=T0 + 4 * H, caller="anonymous"),
            row("e", at=T0 + 5 * H, caller="anonymous")]
    report = build_report(rows, period="day")
    [line] = report.lines
    assert line.repeat_rate == pytest.approx(1 / 3, abs=1e-4)  # b repeats a; d, e unknown


def test_empty_input_says_so_in_every_format() -> None:
    """No calls: a clear text line and empty csv/json structures, no crash."""
    report = build_report([])
    assert "no calls in range" in format_text(report)
    assert list(csv.reader(io.StringIO(format_csv(report))))[1:] == []
    assert json.loads(format_json(report))["lines"] == []


def test_csv_and_json_carry_the_same_numbers_as_the_table() -> None:
    """Machine formats parse back to the computed values; the text shows them."""
    report = build_report([row("a", at=T0, wait=5), row("b", at=T0, outcome="abandoned")])
    [record] = list(csv.DictReader(io.StringIO(format_csv(report))))
    assert record["offered"] == "2" and float(record["service_level"]) == 0.5
    assert json.loads(format_json(report))["lines"][0]["asa"] == 5.0
    text = format_text(report)
    assert "50.0%" in text and "support" in text


def test_unknown_period_is_refused() -> None:
    """Only hour and day are periods."""
    with pytest.raises(ValueError, match="period"):
        build_report([], period="week")
