"""Business-hours calendars: opening ranges, weekdays, holidays, DST, direct construction."""

from __future__ import annotations

import datetime

import pytest
import yaml

from ccswitch.config.calendars import parse_calendar
from ccswitch.routing.calendar import Calendar, TimeRange

# 2026-01-05 is a Monday; the week runs to Sunday 2026-01-11.
WEEK = {"mon": "2026-01-05", "tue": "2026-01-06", "wed": "2026-01-07", "thu": "2026-01-08",
        "fri": "2026-01-09", "sat": "2026-01-10", "sun": "2026-01-11"}


def at(utc: str) -> float:
    """Epoch seconds of an ISO date-time written in UTC ('2026-01-05T08:00:00')."""
    return datetime.datetime.fromisoformat(utc).replace(tzinfo=datetime.timezone.utc).timestamp()


def cal(hours: object, timezone: str = "UTC", holidays: object = None) -> Calendar:
    raw: dict[str, object] = {"timezone": timezone, "hours": hours}
    if holidays is not None:
        raw["holidays"] = holidays
    return parse_calendar("support", raw)


OFFICE = {"mon-fri": ["08:00-18:00"], "sat": ["09:00-12:30", "13:00-16:00"], "sun": []}


# -- open and closed --------------------------------------------------------------


def test_open_inside_a_range() -> None:
    """Monday 10:00 is inside 08:00-18:00."""
    assert cal(OFFICE).is_open(at("2026-01-05T10:00:00"))


def test_closed_before_the_first_range() -> None:
    """Monday 07:59:59 is before opening."""
    assert not cal(OFFICE).is_open(at("2026-01-05T07:59:59"))


def test_start_is_inclusive() -> None:
    """Monday 08:00:00 exactly is open."""
    assert cal(OFFICE).is_open(at("2026-01-05T08:00:00"))


def test_end_is_exclusive() -> None:
    """Monday 18:00:00 exactly is closed."""
    assert not cal(OFFICE).is_open(at("2026-01-05T18:00:00"))


def test_last_second_before_the_end_is_open() -> None:
    """Monday 17:59:59 is still open."""
    assert cal(OFFICE).is_open(at("2026-01-05T17:59:59"))


def test_closed_in_the_gap_between_two_ranges() -> None:
    """Saturday 12:45 falls between 09:00-12:30 and 13:00-16:00."""
    calendar = cal(OFFICE)
    assert calendar.is_open(at("2026-01-10T12:29:59"))
    assert not calendar.is_open(at("2026-01-10T12:45:00"))
    assert calendar.is_open(at("2026-01-10T13:00:00"))


def test_explicit_empty_list_is_closed_all_day() -> None:
    """Sunday is listed as [] and never opens."""
    calendar = cal(OFFICE)
    assert not any(calendar.is_open(at(f"2026-01-11T{h:02d}:30:00")) for h in range(24))


def test_unlisted_day_is_closed_all_day() -> None:
    """A day missing from hours is closed."""
    calendar = cal({"mon": ["00:00-24:00"]})
    assert not any(calendar.is_open(at(f"2026-01-06T{h:02d}:30:00")) for h in range(24))


def test_end_24_00_keeps_the_last_minute_open() -> None:
    """'20:00-24:00' is open at 23:59:59 and closed at the next day's 00:00."""
    calendar = cal({"mon": ["20:00-24:00"]})
    assert calendar.is_open(at("2026-01-05T23:59:59"))
    assert not calendar.is_open(at("2026-01-06T00:00:00"))


def test_whole_day_range_is_open_at_midnight() -> None:
    """'00:00-24:00' is open at the day's first second."""
    assert cal({"tue": ["00:00-24:00"]}).is_open(at("2026-01-06T00:00:00"))


def test_empty_hours_mapping_is_always_closed() -> None:
    """hours: {} is a valid calendar that never opens."""
    calendar = cal({})
    assert not any(calendar.is_open(at(f"{d}T12:00:00")) for d in WEEK.values())


# -- weekdays ---------------------------------------------------------------------


@pytest.mark.parametrize("day, expected", [
    ("mon", True), ("tue", True), ("wed", True), ("thu", True), ("fri", True),
    ("sat", False), ("sun", False)])
def test_mon_fri_covers_the_working_week(day: str, expected: bool) -> None:
    """'mon-fri' opens Monday to Friday only."""
    assert cal({"mon-fri": ["08:00-18:00"]}).is_open(at(f"{WEEK[day]}T12:00:00")) is expected


@pytest.mark.parametrize("day, expected", [
    ("mon", True), ("tue", False), ("wed", False), ("thu", False), ("fri", True),
    ("sat", True), ("sun", True)])
def test_wrapping_range_fri_mon(day: str, expected: bool) -> None:
    """'fri-mon' wraps over the weekend: Friday, Saturday, Sunday and Monday."""
    assert cal({"fri-mon": ["08:00-18:00"]}).is_open(at(f"{WEEK[day]}T12:00:00")) is expected


@pytest.mark.parametrize("day", sorted(WEEK))
def test_daily_covers_every_day(day: str) -> None:
    """'daily' opens on all seven days."""
    assert cal({"daily": ["08:00-18:00"]}).is_open(at(f"{WEEK[day]}T12:00:00"))


def test_weekday_is_decided_in_local_time() -> None:
    """Sunday 23:30 UTC is Monday 00:30 in Berlin, so Monday's hours apply."""
    calendar = cal({"mon": ["00:00-01:00"]}, timezone="Europe/Berlin")
    assert calendar.is_open(at("2026-01-11T23:30:00"))
    assert not cal({"mon": ["00:00-01:00"]}).is_open(at("2026-01-11T23:30:00"))


def test_same_day_under_several_keys_is_merged() -> None:
    """'mon-fri' and 'mon' both apply on Monday, sorted by start."""
    calendar = cal({"mon-fri": ["08:00-12:00"], "mon": ["18:00-20:00", "14:00-16:00"]})
    assert calendar.hours[0] == (TimeRange(start=480, end=720), TimeRange(start=840, end=960),
                                 TimeRange(start=1080, end=1200))
    assert calendar.hours[1] == (TimeRange(start=480, end=720),)
    assert calendar.is_open(at("2026-01-05T19:00:00"))
    assert not calendar.is_open(at("2026-01-06T19:00:00"))


def test_touching_ranges_are_accepted_and_stay_open() -> None:
    """08:00-12:00 and 12:00-18:00 touch: valid, and open across 12:00."""
    calendar = cal({"mon-fri": ["08:00-12:00"], "mon": ["12:00-18:00"]})
    assert calendar.is_open(at("2026-01-05T11:59:59"))
    assert calendar.is_open(at("2026-01-05T12:00:00"))


def test_parses_the_documented_yaml() -> None:
    """The YAML example from the docs loads, with YAML dates and quoted dates."""
    raw = yaml.safe_load("""
timezone: Europe/Berlin
hours:
  mon-fri: ["08:00-18:00"]
  sat: ["09:00-12:30", "13:00-16:00"]
  sun: []
holidays: [2026-12-25, "2026-12-26"]
""")
    calendar = parse_calendar("support", raw)
    assert calendar.name == "support"
    assert calendar.timezone == "Europe/Berlin"
    assert calendar.holidays == frozenset({datetime.date(2026, 12, 25),
                                           datetime.date(2026, 12, 26)})
    assert calendar.hours[5] == (TimeRange(start=540, end=750), TimeRange(start=780, end=960))
    assert calendar.hours[6] == ()


def test_holidays_are_optional() -> None:
    """Without a holidays key the calendar has no holidays."""
    assert cal(OFFICE).holidays == frozenset()


def test_equal_input_gives_equal_hashable_calendars() -> None:
    """Two loads of the same calendar compare and hash equal (the cached zone is ignored)."""
    first, second = cal(OFFICE, timezone="Europe/Berlin"), cal(OFFICE, timezone="Europe/Berlin")
    assert first == second
    assert hash(first) == hash(second)


# -- holidays ---------------------------------------------------------------------


def test_holiday_closes_the_local_day_already_begun_in_tokyo() -> None:
    """2026-12-24 20:00 UTC is Dec 25 05:00 in Tokyo: closed for the Dec 25 holiday."""
    calendar = cal({"daily": ["00:00-24:00"]}, timezone="Asia/Tokyo", holidays=["2026-12-25"])
    assert not calendar.is_open(at("2026-12-24T20:00:00"))


def test_holiday_does_not_close_the_local_day_before() -> None:
    """2026-12-24 14:00 UTC is Dec 24 23:00 in Tokyo: still open."""
    calendar = cal({"daily": ["00:00-24:00"]}, timezone="Asia/Tokyo", holidays=["2026-12-25"])
    assert calendar.is_open(at("2026-12-24T14:00:00"))


def test_holiday_ends_at_local_midnight_not_utc_midnight() -> None:
    """2026-12-25 16:00 UTC is Dec 26 01:00 in Tokyo: open again."""
    calendar = cal({"daily": ["00:00-24:00"]}, timezone="Asia/Tokyo", holidays=["2026-12-25"])
    assert calendar.is_open(at("2026-12-25T16:00:00"))


def test_same_holiday_in_utc_is_still_open_on_dec_24() -> None:
    """The same instant in a UTC calendar is Dec 24: open."""
    calendar = cal({"daily": ["00:00-24:00"]}, holidays=["2026-12-25"])
    assert calendar.is_open(at("2026-12-24T20:00:00"))


def test_holiday_given_as_yaml_date() -> None:
    """An unquoted YAML date (datetime.date) closes that day."""
    raw = yaml.safe_load("timezone: UTC\nhours: {daily: ['08:00-18:00']}\nholidays: [2026-01-06]")
    calendar = parse_calendar("support", raw)
    assert not calendar.is_open(at("2026-01-06T12:00:00"))
    assert calendar.is_open(at("2026-01-07T12:00:00"))


# -- daylight saving time ---------------------------------------------------------


def test_berlin_spring_forward_opens_at_local_eight() -> None:
    """On 2026-03-29 (CEST from 02:00) 08:00 local is 06:00 UTC."""
    calendar = cal({"daily": ["08:00-18:00"]}, timezone="Europe/Berlin")
    assert not calendar.is_open(at("2026-03-29T05:59:59"))
    assert calendar.is_open(at("2026-03-29T06:00:00"))


def test_berlin_day_before_spring_forward_uses_winter_offset() -> None:
    """On 2026-03-28 (CET) 08:00 local is 07:00 UTC, so 06:30 UTC is closed."""
    calendar = cal({"daily": ["08:00-18:00"]}, timezone="Europe/Berlin")
    assert not calendar.is_open(at("2026-03-28T06:30:00"))
    assert calendar.is_open(at("2026-03-28T07:00:00"))


def test_berlin_fall_back_repeated_hour_is_open_twice() -> None:
    """On 2026-10-25 local 02:00-03:00 happens in CEST and again in CET: open both times."""
    calendar = cal({"sun": ["02:00-03:00"]}, timezone="Europe/Berlin")
    assert not calendar.is_open(at("2026-10-24T23:59:59"))  # 01:59:59 CEST
    assert calendar.is_open(at("2026-10-25T00:30:00"))      # 02:30 CEST
    assert calendar.is_open(at("2026-10-25T01:30:00"))      # 02:30 CET
    assert not calendar.is_open(at("2026-10-25T02:00:00"))  # 03:00 CET


def test_new_york_spring_forward_skipped_hour_never_opens() -> None:
    """On 2026-03-08 local 02:00-03:00 does not exist: the range never opens that day."""
    calendar = cal({"sun": ["02:00-03:00"]}, timezone="America/New_York")
    start = at("2026-03-08T05:00:00")  # 00:00 EST
    assert not any(calendar.is_open(start + minute * 60) for minute in range(24 * 60 - 4 * 60))


def test_new_york_spring_forward_opens_at_local_three() -> None:
    """On 2026-03-08 '03:00-04:00' opens at 07:00 UTC, right after 01:59:59 EST."""
    calendar = cal({"sun": ["03:00-04:00"]}, timezone="America/New_York")
    assert not calendar.is_open(at("2026-03-08T06:59:59"))
    assert calendar.is_open(at("2026-03-08T07:00:00"))


def test_new_york_fall_back_repeated_hour_is_open_twice() -> None:
    """On 2026-11-01 local 01:00-02:00 happens in EDT and again in EST: open both times."""
    calendar = cal({"sun": ["01:00-02:00"]}, timezone="America/New_York")
    assert not calendar.is_open(at("2026-11-01T04:59:59"))  # 00:59:59 EDT
    assert calendar.is_open(at("2026-11-01T05:30:00"))      # 01:30 EDT
    assert calendar.is_open(at("2026-11-01T06:30:00"))      # 01:30 EST
    assert not calendar.is_open(at("2026-11-01T07:00:00"))  # 02:00 EST


# -- direct construction ----------------------------------------------------------


@pytest.mark.parametrize("start, end", [(600, 600), (700, 600), (-1, 60), (0, 1441)])
def test_time_range_rejects_bad_bounds(start: int, end: int) -> None:
    """TimeRange needs 0 <= start < end <= 1440."""
    with pytest.raises(ValueError):
        TimeRange(start=start, end=end)


def test_time_range_rejects_non_integers() -> None:
    """TimeRange minutes must be ints, not bools or floats."""
    with pytest.raises(TypeError):
        TimeRange(start=True, end=60)
    with pytest.raises(TypeError):
        TimeRange(start=0, end=60.0)  # type: ignore[arg-type]


def test_calendar_needs_seven_days() -> None:
    """hours with six days is rejected."""
    with pytest.raises(ValueError):
        Calendar(name="c", timezone="UTC", hours=((),) * 6, holidays=frozenset())


def test_calendar_rejects_overlapping_ranges() -> None:
    """Direct construction with overlapping ranges on a day is rejected."""
    day = (TimeRange(start=0, end=600), TimeRange(start=500, end=700))
    with pytest.raises(ValueError):
        Calendar(name="c", timezone="UTC", hours=(day,) + ((),) * 6, holidays=frozenset())


def test_calendar_rejects_unknown_zone_when_built_directly() -> None:
    """Direct construction with an unknown zone is rejected."""
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus'"):
        Calendar(name="c", timezone="Mars/Olympus", hours=((),) * 7, holidays=frozenset())
