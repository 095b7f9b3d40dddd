"""Calendars in dialplan YAML (ccswitch.config.calendars): every problem named by key and reason."""

from __future__ import annotations

import datetime

import pytest
import yaml

from ccswitch.config.calendars import CalendarError, parse_calendar
from ccswitch.errors import CCSwitchError


def error(raw: object) -> CalendarError:
    with pytest.raises(CalendarError) as info:
        parse_calendar("support", raw)
    return info.value


def hours_error(hours: object) -> CalendarError:
    return error({"timezone": "UTC", "hours": hours})


# -- the error itself -------------------------------------------------------------


def test_error_carries_id_key_and_reason() -> None:
    """CalendarError is a CCSwitchError with a stable id, key, reason and 'key: reason' text."""
    e = error({"timezone": "Mars/Olympus", "hours": {}})
    assert isinstance(e, CCSwitchError)
    assert e.error_id == "config.calendar"
    assert e.key == "timezone"
    assert str(e) == f"timezone: {e.reason}"


def test_first_problem_is_reported() -> None:
    """With a bad time zone and bad hours, the time zone is reported."""
    assert error({"timezone": "Nowhere", "hours": {"funday": []}}).key == "timezone"


# -- top-level errors -------------------------------------------------------------


@pytest.mark.parametrize("raw", [None, "UTC", ["timezone", "UTC"], 5])
def test_calendar_must_be_a_mapping(raw: object) -> None:
    """A calendar that is not a mapping is rejected as a whole (key '')."""
    e = error(raw)
    assert e.key == ""
    assert "must be a mapping" in e.reason


def test_unknown_top_level_key() -> None:
    """An unknown key at the top level is named."""
    e = error({"timezone": "UTC", "hours": {}, "opening": {}})
    assert e.key == "opening"
    assert "unknown key" in e.reason


def test_timezone_is_required() -> None:
    """A calendar without a timezone is rejected."""
    e = error({"hours": {}})
    assert e.key == "timezone"
    assert "required" in e.reason


def test_timezone_must_be_a_string() -> None:
    """timezone: 1 is rejected."""
    e = error({"timezone": 1, "hours": {}})
    assert e.key == "timezone"
    assert "must be an IANA time zone name" in e.reason


@pytest.mark.parametrize("name", [
    "Mars/Olympus", "europe/berlin", "Europe", "", "../etc/passwd", "/etc/localtime",
    "localtime", "zone.tab"])
def test_unknown_time_zone(name: str) -> None:
    """A name that is not an IANA zone reads "unknown time zone 'X'"."""
    e = error({"timezone": name, "hours": {}})
    assert e.key == "timezone"
    assert f"unknown time zone {name!r}" in e.reason


def test_timezone_is_kept_as_written() -> None:
    """The calendar keeps the zone name exactly as configured."""
    calendar = parse_calendar("support", {"timezone": "America/New_York", "hours": {}})
    assert calendar.timezone == "America/New_York"


def test_hours_are_required() -> None:
    """A calendar without hours is rejected."""
    e = error({"timezone": "UTC"})
    assert e.key == "hours"
    assert "required" in e.reason


@pytest.mark.parametrize("hours", [None, ["08:00-18:00"], "mon-fri 08:00-18:00"])
def test_hours_must_be_a_mapping(hours: object) -> None:
    """hours that is not a mapping is rejected."""
    e = hours_error(hours)
    assert e.key == "hours"
    assert "must be a mapping" in e.reason


# -- day keys ---------------------------------------------------------------------


@pytest.mark.parametrize("day", ["funday", "Mon", "monday", "mon-", "mon-xyz", "weekdays"])
def test_unknown_day_name(day: str) -> None:
    """A day key that is not mon..sun, a range or 'daily' is named."""
    e = hours_error({day: ["08:00-18:00"]})
    assert e.key == f"hours.{day}"
    assert f"unknown day {day!r}" in e.reason
    assert "mon-fri" in e.reason


def test_day_key_must_be_a_string() -> None:
    """A numeric day key (YAML '1:') is an unknown day."""
    e = hours_error({1: ["08:00-18:00"]})
    assert e.key == "hours.1"
    assert "unknown day 1" in e.reason


def test_day_range_on_one_day_is_rejected() -> None:
    """'fri-fri' is ambiguous and rejected with a hint."""
    e = hours_error({"fri-fri": ["08:00-18:00"]})
    assert e.key == "hours.fri-fri"
    assert "starts and ends on the same day" in e.reason


# -- hours values -----------------------------------------------------------------


@pytest.mark.parametrize("value", [None, "08:00-18:00", {"from": "08:00"}])
def test_hours_value_must_be_a_list(value: object) -> None:
    """A day's value must be a list (even a single range)."""
    e = hours_error({"mon": value})
    assert e.key == "hours.mon"
    assert "must be a list of time ranges" in e.reason


@pytest.mark.parametrize("value", [750, None, ["08:00", "18:00"], True])
def test_hours_item_must_be_a_string(value: object) -> None:
    """A non-string entry (e.g. YAML's sexagesimal 12:30 -> 750) is named by index."""
    e = hours_error({"mon-fri": ["08:00-12:00", value]})
    assert e.key == "hours.mon-fri[1]"
    assert "must be a time range 'HH:MM-HH:MM'" in e.reason


@pytest.mark.parametrize("value", [
    "8:00-18:00", "08:00 - 18:00", "0800-1800", "08:00", "", "08.00-18.00", "08:00-18:00:00"])
def test_bad_range_format_names_the_accepted_format(value: str) -> None:
    """A string that is not HH:MM-HH:MM is rejected with the accepted format."""
    e = hours_error({"mon": [value]})
    assert e.key == "hours.mon[0]"
    assert f"{value!r} is not a time range" in e.reason
    assert "'HH:MM-HH:MM'" in e.reason


@pytest.mark.parametrize("value, bad", [
    ("25:00-26:00", "25:00"), ("08:60-18:00", "08:60"), ("08:00-24:30", "24:30"),
    ("08:00-99:00", "99:00")])
def test_invalid_time_of_day(value: str, bad: str) -> None:
    """Hours above 24, minutes above 59 and 24:MM other than 24:00 are rejected."""
    e = hours_error({"tue": [value]})
    assert e.key == "hours.tue[0]"
    assert f"{bad!r} is not a time of day" in e.reason


def test_24_00_cannot_start_a_range() -> None:
    """'24:00-24:00' is rejected: 24:00 only ends a range."""
    e = hours_error({"tue": ["24:00-24:00"]})
    assert e.key == "hours.tue[0]"
    assert "24:00 can only end a range" in e.reason


def test_empty_range_is_rejected() -> None:
    """'08:00-08:00' has no duration."""
    e = hours_error({"wed": ["08:00-08:00"]})
    assert e.key == "hours.wed[0]"
    assert "start must be before the end" in e.reason


def test_overnight_range_is_rejected_with_a_split_hint() -> None:
    """'22:00-06:00' must be split over two days, and the reason says so."""
    e = hours_error({"mon-fri": ["08:00-12:00", "22:00-06:00"]})
    assert e.key == "hours.mon-fri[1]"
    assert "start must be before the end" in e.reason
    assert "split an overnight shift over two days" in e.reason


# -- overlaps ---------------------------------------------------------------------


def test_overlap_within_one_key_is_rejected() -> None:
    """Two overlapping ranges listed under the same key name the day and both ranges."""
    e = hours_error({"sat": ["09:00-13:00", "12:00-16:00"]})
    assert e.key == "hours.sat[1]"
    assert "on Saturday '12:00-16:00' overlaps '09:00-13:00' (from hours.sat[0])" in e.reason


def test_overlap_across_keys_is_rejected() -> None:
    """'mon-fri' 08:00-18:00 and 'mon' 17:00-19:00 overlap on Monday."""
    e = hours_error({"mon-fri": ["08:00-18:00"], "mon": ["17:00-19:00"]})
    assert e.key == "hours.mon[0]"
    assert "on Monday '17:00-19:00' overlaps '08:00-18:00' (from hours.mon-fri[0])" in e.reason


def test_overlap_between_wrapping_range_and_daily_is_rejected() -> None:
    """'daily' and 'sat-sun' both cover Saturday, the first day they share."""
    e = hours_error({"daily": ["10:00-11:00"], "sat-sun": ["09:00-10:30"]})
    assert e.key == "hours.sat-sun[0]"
    assert "on Saturday '09:00-10:30' overlaps '10:00-11:00' (from hours.daily[0])" in e.reason


def test_duplicate_range_is_an_overlap() -> None:
    """The same range listed twice for a day is rejected."""
    e = hours_error({"thu": ["08:00-18:00"], "mon-fri": ["08:00-18:00"]})
    assert e.key == "hours.mon-fri[0]"
    assert "on Thursday '08:00-18:00' overlaps '08:00-18:00'" in e.reason


# -- holiday errors ---------------------------------------------------------------


@pytest.mark.parametrize("value", [None, "2026-12-25", {"xmas": "2026-12-25"}])
def test_holidays_must_be_a_list(value: object) -> None:
    """holidays that is not a list is rejected."""
    e = error({"timezone": "UTC", "hours": {}, "holidays": value})
    assert e.key == "holidays"
    assert "must be a list of dates 'YYYY-MM-DD'" in e.reason


@pytest.mark.parametrize("value", [20261225, None, True, ["2026-12-25"]])
def test_holiday_must_be_a_date_or_string(value: object) -> None:
    """A holiday that is neither a date nor a string is named by index."""
    e = error({"timezone": "UTC", "hours": {}, "holidays": ["2026-12-24", value]})
    assert e.key == "holidays[1]"
    assert "must be a date 'YYYY-MM-DD'" in e.reason


@pytest.mark.parametrize("value", ["25.12.2026", "20261225", "2026-12-25 ", "Dec 25", ""])
def test_holiday_in_the_wrong_format(value: str) -> None:
    """A holiday string that is not YYYY-MM-DD names the accepted format."""
    e = error({"timezone": "UTC", "hours": {}, "holidays": [value]})
    assert e.key == "holidays[0]"
    assert f"{value!r} is not a date; write 'YYYY-MM-DD'" in e.reason


@pytest.mark.parametrize("value", ["2026-02-30", "2026-13-01", "2026-00-10"])
def test_invalid_holiday_date(value: str) -> None:
    """A well-formed but impossible date is rejected."""
    e = error({"timezone": "UTC", "hours": {}, "holidays": ["2026-12-25", value]})
    assert e.key == "holidays[1]"
    assert f"{value!r} is not a valid date" in e.reason


def test_holiday_with_a_time_of_day_is_rejected() -> None:
    """A YAML timestamp (datetime) is not a whole-day holiday."""
    raw = yaml.safe_load("timezone: UTC\nhours: {}\nholidays: [2026-12-25 10:00:00]")
    e = error(raw)
    assert e.key == "holidays[0]"
    assert "without a time of day" in e.reason


def test_duplicate_holiday_is_rejected() -> None:
    """The same date listed twice (as a string and a YAML date) names both entries."""
    e = error({"timezone": "UTC", "hours": {},
               "holidays": ["2026-12-25", "2026-12-26", datetime.date(2026, 12, 25)]})
    assert e.key == "holidays[2]"
    assert "2026-12-25 is listed twice (also holidays[0])" in e.reason
