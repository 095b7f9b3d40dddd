"""KPI report definitions on hand-built rows with known answers."""

from __future__ import annotations

import csv
import io
import json
import re
from typing import Any

import attrs
import pytest

from ccswitch.cdr.report import (
    REPEAT_WINDOW_MS, KpiLine, ReportError, build_report, build_share_report, format_csv,
    format_json, format_shares_csv, format_shares_json, format_shares_text, format_text,
    share_targets,
)
from ccswitch.cdr.store import CdrError, CdrRow
from ccswitch.model import Condition, OverflowRule
from tests.routing.driver import make_dialplan, make_queue

S = 1000  # one second in ms
H = 3_600_000  # one hour in ms
T0 = 1_795_392_000_000  # 2026-11-23T00:00:00Z (a Monday)


def row(call_id: str, *, at: int = T0, outcome: str = "answered", wait: float | None = 10.0,
        talk: float = 60.0, hold: float | None = None, caller: str | None = None,
        queue: str = "support", short: bool = False, vendor: str | None = None,
        reason: str | None = None) -> CdrRow:
    """A call arriving at ``at`` (ms); answered calls get an agent, talk and answer time."""
    answered = outcome.startswith("answered")
    wait_ms = None if wait is None else round(wait * S)
    queued = at + 4 * S
    fields: dict[str, Any] = dict(
        call_id=call_id, sip_call_id=None, node=None,
        caller=f"caller-{call_id}" if caller is None else caller, dialed="100", queue=queue,
        group="inhouse", route="vendor" if vendor else "inhouse", vendor=vendor,
        agent_id="alice" if answered else None, outcome=outcome, overflow_reason=reason,
        arrived_ms=at, announced_ms=queued, queued_ms=queued,
        answered_ms=queued + (wait_ms or 0) if answered else None, ended_ms=at + 100 * S,
        wait_ms=wait_ms, ring_ms=None, talk_ms=round(talk * S) if answered else None,
        hold_ms=None if hold is None else round(hold * S), total_ms=100 * S,
        short_abandon=short, qa_notice_played=True, recording_path=None,
        recording_error=None, offers=())
    return CdrRow(**fields)


def only(rows: list[CdrRow], **kwargs: Any) -> KpiLine:
    [line] = build_report(rows, **kwargs).lines
    return line


# 4 answered (waits 5, 10, 20, 45 s; talk 60, 120, 60, 60 s, 30 s hold on one),
# 1 abandoned after 50 s, 1 short abandon: all in the same hour.
SIX = [row("a", wait=5), row("b", at=T0 + 1, wait=10, talk=120),
       row("c", at=T0 + 2, wait=20, hold=30), row("d", at=T0 + 3, wait=45),
       row("e", at=T0 + 4, outcome="abandoned", wait=50),
       row("f", at=T0 + 5, outcome="abandoned", wait=1, short=True)]


def test_counts_by_outcome() -> None:
    """offered, answered, abandoned and short abandons are counted per line."""
    line = only(SIX)
    assert (line.offered, line.answered, line.abandoned, line.short_abandons) == (6, 4, 2, 1)


def test_asa_is_the_mean_wait_of_answered_calls() -> None:
    """ASA = (5 + 10 + 20 + 45) / 4 = 20 s; the abandoned calls' waits are left out."""
    assert only(SIX).asa == pytest.approx(20.0)


def test_aht_is_talk_plus_hold_of_answered_calls() -> None:
    """AHT = (60 + 120 + (60 + 30) + 60) / 4 = 82.5 s (no wrap-up)."""
    assert only(SIX).aht == pytest.approx(82.5)


def test_service_level_excludes_short_abandons_from_the_denominator() -> None:
    """SL = answered within 20 s (5, 10, 20: the boundary counts) / (6 - 1) = 3/5."""
    line = only(SIX, sl_threshold=20)
    assert line.answered_in_sl == 3
    assert line.service_level == pytest.approx(3 / 5)


def test_the_service_level_threshold_is_configurable() -> None:
    """With T = 10 s only the 5 s and 10 s answers count: 2/5; with T = 60 s all four: 4/5."""
    assert only(SIX, sl_threshold=10).service_level == pytest.approx(2 / 5)
    assert only(SIX, sl_threshold=60).service_level == pytest.approx(4 / 5)


def test_abandonment_rate_leaves_short_abandons_out() -> None:
    """Abandonment = (2 - 1) / (6 - 1) = 1/5."""
    assert only(SIX).abandon_rate == pytest.approx(1 / 5)


def test_without_the_short_abandon_flag_the_call_counts_fully() -> None:
    """The same six calls with no short abandon: SL 3/6 and abandonment 2/6."""
    rows = [*SIX[:5], row("f", at=T0 + 5, outcome="abandoned", wait=1)]
    line = only(rows)
    assert line.short_abandons == 0
    assert line.service_level == pytest.approx(3 / 6)
    assert line.abandon_rate == pytest.approx(2 / 6)


def test_undefined_values_are_none_and_dashes_in_text() -> None:
    """Only a short abandon: no ASA/AHT, and SL/abandonment divide by zero, so None / '-'."""
    line = only([row("x", outcome="abandoned", short=True)])
    assert (line.asa, line.aht, line.service_level, line.abandon_rate) == (None, None, None, None)
    report = build_report([row("x", outcome="abandoned", short=True)])
    data_line = format_text(report).splitlines()[-1]
    assert data_line.split()[7:11] == ["-", "-", "-", "-"]


def test_interrupted_calls_count_as_answered_only_if_an_agent_answered() -> None:
    """An 'interrupted' call with an answer time is answered; without one only offered."""
    before = row("i1", outcome="interrupted", wait=None)
    after = row("i2", at=T0 + 1, outcome="answered", wait=8)
    after = CdrRow(**{**after.to_dict(), "offers": (), "outcome": "interrupted"})
    line = only([before, after])
    assert (line.offered, line.answered, line.abandoned) == (2, 1, 0)
    assert line.service_level == pytest.approx(1 / 2)


def test_new_outcomes_count_as_answered_abandoned_or_neither() -> None:
    """The outcome list: short_abandon and abandoned_* are abandons, overflow_failed and
    timeout only offered, rejected left out of the SL and abandon denominators."""
    line = only([row("a", outcome="answered_inhouse", wait=5),
                 row("b", at=T0 + 1, outcome="abandoned_ringing", wait=30),
                 row("c", at=T0 + 2, outcome="short_abandon", wait=1, short=True),
                 row("d", at=T0 + 3, outcome="timeout", wait=600),
                 row("e", at=T0 + 4, outcome="rejected", wait=None)])
    assert (line.offered, line.answered, line.abandoned, line.short_abandons) == (5, 1, 2, 1)
    assert line.service_level == pytest.approx(1 / 3)  # a of a, b, d
    assert line.abandon_rate == pytest.approx(1 / 3)


def test_calls_are_bucketed_per_hour_of_arrival_in_utc() -> None:
    """Hour lines start at the top of the UTC hour in which the calls arrived."""
    rows = [row("a", at=T0 + 30 * 60 * S), row("b", at=T0 + 59 * 60 * S),
            row("c", at=T0 + H), row("d", at=T0 + 23 * H + 1)]
    lines = build_report(rows, period="hour").lines
    assert [(x.period_start, x.offered) for x in lines] == [
        ("2026-11-23T00:00+00:00", 2), ("2026-11-23T01:00+00:00", 1),
        ("2026-11-23T23:00+00:00", 1)]
    assert [x.period_start_ms for x in lines] == [T0, T0 + H, T0 + 23 * H]


def test_day_buckets_follow_the_local_date_of_the_time_zone() -> None:
    """00:30Z and 01:00Z are the evening before in New York (UTC-5); 23:00Z is 18:00."""
    rows = [row("a", at=T0 + 30 * 60 * S), row("b", at=T0 + H + 1), row("c", at=T0 + 23 * H)]
    days = build_report(rows, period="day", tz="America/New_York").lines
    assert [(d.period_start, d.offered) for d in days] == [
        ("2026-11-22T00:00-05:00", 2), ("2026-11-23T00:00-05:00", 1)]
    assert [d.period_start for d in build_report(rows, period="day").lines] == [
        "2026-11-23T00:00+00:00"]


def test_hour_buckets_follow_local_hours_in_a_half_hour_zone() -> None:
    """In Kolkata (UTC+5:30) 00:20Z and 00:40Z are 05:50 and 06:10: two local hours."""
    rows = [row("a", at=T0 + 20 * 60 * S), row("b", at=T0 + 40 * 60 * S)]
    lines = build_report(rows, period="hour", tz="Asia/Kolkata").lines
    assert [x.period_start for x in lines] == ["2026-11-23T05:00+05:30",
                                               "2026-11-23T06:00+05:30"]
    assert lines[1].period_start_ms == T0 + 30 * 60 * S


def test_the_repeated_hour_at_the_end_of_summer_time_stays_two_lines() -> None:
    """New York's 01:00 happens twice on 2026-11-01 (EDT, then EST): two separate hours."""
    fall_back = 1_793_512_800_000  # 2026-11-01T06:00Z = 01:00 EST, the second 01:00
    rows = [row("a", at=fall_back - 50 * 60 * S), row("b", at=fall_back + 10 * 60 * S)]
    lines = build_report(rows, period="hour", tz="America/New_York").lines
    assert [x.period_start for x in lines] == ["2026-11-01T01:00-04:00",
                                               "2026-11-01T01:00-05:00"]


def test_routes_and_queues_get_their_own_lines_with_overflow_reasons() -> None:
    """In-house and each vendor side by side; overflow per reason is a share of offered."""
    rows = [row("a"), row("b", vendor="acme", reason="wait_exceeds"),
            row("c", vendor="acme", reason="no_agents_available"),
            row("d", vendor="acme", reason="wait_exceeds"),
            row("e", vendor="bpo2", reason="wait_exceeds"), row("f", queue="sales")]
    lines = {(x.queue, x.route): x for x in build_report(rows).lines}
    assert set(lines) == {("sales", "inhouse"), ("support", "inhouse"), ("support", "acme"),
                          ("support", "bpo2")}
    assert dict(lines[("support", "acme")].overflow) == pytest.approx(
        {"no_agents_available": 1 / 3, "wait_exceeds": 2 / 3})
    assert dict(lines[("support", "inhouse")].overflow) == {}


def test_lines_are_ordered_by_period_then_queue_then_route() -> None:
    """Output order is stable: time first, then queue and route names."""
    rows = [row("a", at=T0 + H, queue="b"), row("b", at=T0, queue="z"),
            row("c", at=T0, queue="a", vendor="v"), row("d", at=T0, queue="a")]
    assert [(x.period_start_ms, x.queue, x.route) for x in build_report(rows).lines] == [
        (T0, "a", "inhouse"), (T0, "a", "v"), (T0, "z", "inhouse"), (T0 + H, "b", "inhouse")]


def test_repeat_callers_within_24_hours_of_any_queue() -> None:
    """b repeats a (other queue, 2 h later); 666 and the first 555 are first calls: 1/3."""
    rows = [row("a", caller="555"), row("b", at=T0 + 2 * H, caller=" 555 ", queue="sales"),
            row("c", at=T0 + 3 * H, caller="666"), row("d", at=T0 + 4 * H, caller="anonymous"),
            row("e", at=T0 + 5 * H, caller="Anonymous"), row("f", at=T0 + 6 * H, caller="")]
    lines = build_report(rows, period="day").lines
    repeats = {x.queue: x.repeat_rate for x in lines}
    assert repeats["sales"] == pytest.approx(1.0)  # b alone, a repeat
    assert repeats["support"] == pytest.approx(0 / 2)  # a and c; d, e, f have no caller id


def test_the_repeat_window_is_24_hours_inclusive() -> None:
    """A call exactly 24 h after the last one repeats; one a millisecond later does not."""
    rows = [row("a", caller="555"), row("b", at=T0 + REPEAT_WINDOW_MS, caller="555"),
            row("c", at=T0 + 3 * REPEAT_WINDOW_MS + 1, caller="555"),
            row("d", at=T0 + 4 * REPEAT_WINDOW_MS + 2, caller="555")]
    rates = [x.repeat_rate for x in build_report(rows, period="day").lines]
    assert rates == [0.0, 1.0, 0.0, 0.0]


def test_rows_before_since_serve_only_as_repeat_history() -> None:
    """Yesterday's call is not reported, but makes today's call by the same caller a repeat."""
    rows = [row("old", at=T0 - 2 * H, caller="555"), row("new", at=T0 + H, caller="555")]
    [line] = build_report(rows, period="day", since_ms=T0).lines
    assert (line.offered, line.repeat_rate) == (1, 1.0)


def test_empty_input_says_so_in_every_format() -> None:
    """No calls: a clear text line and empty csv/json structures, no crash."""
    report = build_report([])
    assert report.lines == ()
    assert format_text(report).splitlines()[-1] == "no calls in range"
    assert list(csv.reader(io.StringIO(format_csv(report))))[1:] == []
    assert json.loads(format_json(report))["lines"] == []


def test_text_table_has_aligned_columns_and_the_conventions() -> None:
    """Every cell sits under its header's dashes; the header line states SL and AHT rules."""
    report = build_report([*SIX, row("g", at=T0 + H, queue="a-much-longer-queue")])
    text = format_text(report)
    intro, table = text.split("\n\n")
    assert "counted = offered - short abandons - rejected" in intro and "wrap-up not measured" in intro
    header, dashes, *data = table.splitlines()
    spans = [m.span() for m in re.finditer("-+", dashes)]

    def cells(line: str) -> list[str]:
        return [line[a:b].strip() for a, b in spans]

    assert cells(header)[:4] == ["period", "queue", "route", "offered"]
    first, second = (cells(line) for line in data)
    assert first[:4] == ["2026-11-23T00:00+00:00", "support", "inhouse", "6"]
    assert first[7:10] == ["20.0", "82.5", "60.0%"]  # ASA, AHT, SL 3/5
    assert second[1:4] == ["a-much-longer-queue", "inhouse", "1"]


def test_csv_parses_back_to_the_computed_numbers() -> None:
    """CSV: a header row, fractions and seconds as numbers, one column per overflow reason."""
    rows = [*SIX, row("v", at=T0 + 6, vendor="acme", reason="wait_exceeds")]
    records = {r["route"]: r for r in csv.DictReader(io.StringIO(format_csv(build_report(rows))))}
    inhouse = records["inhouse"]
    assert inhouse["offered"] == "6" and float(inhouse["service_level"]) == 0.6
    assert float(inhouse["asa_s"]) == 20.0 and float(inhouse["aht_s"]) == 82.5
    assert float(inhouse["overflow_wait_exceeds"]) == 0.0
    assert float(records["acme"]["overflow_wait_exceeds"]) == 1.0
    assert records["acme"]["abandon_rate"] == "0.0"


def test_json_parses_back_with_nulls_for_undefined_values() -> None:
    """JSON: the parameters, then one object per line; a missing mean is null."""
    report = build_report([*SIX, row("z", at=T0 + H, outcome="abandoned")], sl_threshold=15)
    data = json.loads(format_json(report))
    assert (data["period"], data["tz"], data["sl_threshold"]) == ("hour", "UTC", 15.0)
    first, second = data["lines"]
    assert first["asa"] == 20.0 and first["service_level"] == 0.4
    assert second["asa"] is None and second["abandon_rate"] == 1.0


@pytest.mark.parametrize("kwargs, reason", [
    ({"period": "week"}, "period"),
    ({"tz": "Mars/Olympus_Mons"}, "time zone"),
    ({"tz": "../../etc/passwd"}, "time zone"),
    ({"sl_threshold": 0}, "sl_threshold"),
    ({"sl_threshold": float("nan")}, "sl_threshold"),
])
def test_bad_parameters_are_report_errors(kwargs: dict[str, Any], reason: str) -> None:
    """A bad period, zone or threshold raises ReportError (a CdrError and a ValueError)."""
    with pytest.raises(ReportError, match=reason) as caught:
        build_report([row("a")], **kwargs)
    assert isinstance(caught.value, CdrError) and isinstance(caught.value, ValueError)


def test_vendor_lines_measure_from_the_offer_to_the_vendor() -> None:
    """A call that waited 40 s in-house and 5 s at the vendor: the vendor's ASA is 5 s and
    it is within the service level; the in-house line keeps the queue-entry clock."""
    vendor_call = attrs.evolve(
        row("v", outcome="answered_vendor", wait=45, vendor="acme", reason="wait_exceeds"),
        agent_id=None,
        offers=({"vendor": "acme", "offered_at": (T0 + 4 * S + 40 * S) / 1000,
                 "result": "answered"},))
    vendor, inhouse = build_report([row("i", wait=30), vendor_call]).lines  # by route name
    assert (vendor.route, vendor.asa, vendor.service_level) == ("acme", 5.0, 1.0)
    assert (inhouse.route, inhouse.asa, inhouse.service_level) == ("inhouse", 30.0, 0.0)


# -- contractual shares ------------------------------------------------------------------

TARGETS = {("support", "acme"): 0.2}


def share_call(call_id: str, at: int, *, vendor: str = "acme",
               outcome: str = "answered_vendor") -> CdrRow:
    return row(call_id, at=at, vendor=vendor, reason="share", outcome=outcome)


def test_shares_give_the_achieved_split_per_period_against_the_target() -> None:
    """Per hour: share calls acme answered / calls that reached the queue, with the target."""
    first = [share_call("s1", T0), share_call("s2", T0 + 1)] + [
        row(f"a{n}", at=T0 + 2 + n) for n in range(8)]
    second = [share_call("s3", T0 + H)] + [row(f"b{n}", at=T0 + H + 1 + n) for n in range(9)]
    lines = build_share_report(first + second, TARGETS)
    assert [(x.period_start_ms, x.queue, x.vendor, x.target, x.calls, x.vendor_calls,
             x.achieved) for x in lines] == [
        (T0, "support", "acme", 0.2, 10, 2, 0.2), (T0 + H, "support", "acme", 0.2, 10, 1, 0.1)]


def test_shares_count_only_share_calls_the_vendor_answered() -> None:
    """A share call acme did not answer, one globex answered after acme failed, and one
    wait_exceeds call to acme are not acme's share; a call gone before the queue is no call."""
    rows = [share_call("s1", T0), share_call("s2", T0, outcome="overflow_failed"),
            share_call("s3", T0, vendor="globex"),
            row("w1", at=T0, vendor="acme", reason="wait_exceeds", outcome="answered_vendor"),
            attrs.evolve(row("x1", at=T0, outcome="short_abandon"), queued_ms=None)]
    [line] = build_share_report(rows, TARGETS)
    assert (line.calls, line.vendor_calls) == (4, 1)


def test_shares_leave_out_queues_without_a_share_and_rows_before_since() -> None:
    """Only queues with a share rule get lines; rows before since_ms are left out."""
    rows = [share_call("s1", T0), row("o1", at=T0, queue="sales"), share_call("s0", T0 - H)]
    lines = build_share_report(rows, TARGETS, since_ms=T0)
    assert [(x.queue, x.calls) for x in lines] == [("support", 1)]


def test_share_targets_come_from_the_dialplans_share_rules() -> None:
    """Every share rule of the dialplan is a target, as a fraction; other rules are not."""
    rules = (OverflowRule(condition=Condition.SHARE, vendors=("acme",), percent=20.0),
             OverflowRule(condition=Condition.WAIT_EXCEEDS, vendors=("globex",), seconds=5.0),
             OverflowRule(condition=Condition.SHARE, vendors=("globex",), percent=7.5))
    plan = make_dialplan(queues=[make_queue(overflow=rules)])
    assert share_targets(plan) == {("support", "acme"): 0.2, ("support", "globex"): 0.075}


def test_share_report_formats_text_csv_and_json() -> None:
    """The same line in the three formats: percent in text, fractions in CSV and JSON."""
    lines = build_share_report([share_call("s1", T0)] + [row(f"a{n}", at=T0) for n in range(3)],
                               TARGETS)
    text = format_shares_text(lines, "hour", "UTC")
    assert re.search(r"2026-11-23T00:00\+00:00\s+support\s+acme\s+20\.0%\s+25\.0%\s+4\s+1",
                     text)
    [record] = list(csv.DictReader(io.StringIO(format_shares_csv(lines, "hour", "UTC"))))
    assert (record["target"], record["achieved"], record["calls"]) == ("0.2", "0.25", "4")
    data = json.loads(format_shares_json(lines, "hour", "UTC"))
    assert data["shares"][0]["achieved"] == 0.25 and data["period"] == "hour"


def test_share_report_refuses_a_bad_period() -> None:
    """A period other than hour or day is a ReportError."""
    with pytest.raises(ReportError, match="period must be one of"):
        build_share_report([], TARGETS, period="week")
