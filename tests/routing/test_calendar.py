"""Business-hours calendars: opening ranges, weekdays, holidays, DST, and config errors."""

from __future__ import annotations

import datetime

import pytest
import yaml

from ccswitch.config.calendars import CalendarError, parse_calendar
from ccswitch.errors import CCSwitchError
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


def error(raw: object) -> CalendarError:
    with pytest.raises(CalendarError) as info:
        parse_calendar("support", raw)
    return info.value


def hours_error(hours: object) -> CalendarError:
    return error({"timezone": "UTC", "hours": hours})


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
    assert cal({}, timezone="America/New_York").timezone == "America/New_York"


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
