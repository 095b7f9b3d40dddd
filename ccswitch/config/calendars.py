"""Business-hours calendars in dialplan YAML turned into routing's :class:`Calendar`.

:func:`parse_calendar` checks one calendar and raises :class:`CalendarError`
naming the key inside the calendar and the reason on the first problem; the
dialplan loader reports it under ``calendars.<name>``.

YAML shape of one calendar::

    timezone: Europe/Berlin                # required IANA name
    hours:                                 # required; a day not listed is closed
      mon-fri: ["08:00-18:00"]             # mon..sun, a range (may wrap: fri-mon), daily
      sat: ["09:00-12:30", "13:00-16:00"]
      sun: []                              # explicit empty list = closed
    holidays: ["2026-12-25", "2026-12-26"] # optional local dates, closed all day
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping
from typing import Any, Final, TypeGuard

from ccswitch.errors import CCSwitchError
from ccswitch.routing.calendar import (
    DAY_NAMES, MINUTES_PER_DAY, Calendar, TimeRange, load_zone, range_text,
)

__all__ = ["CalendarError", "parse_calendar"]

_DAY_KEYS: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DAY_INDEX: Final = {key: i for i, key in enumerate(_DAY_KEYS)}
_DAY_HELP: Final = ("use mon, tue, wed, thu, fri, sat, sun, a range such as 'mon-fri' "
                    "(may wrap, e.g. 'fri-mon'), or 'daily'")
_TOP_KEYS: Final = ("timezone", "hours", "holidays")

_RANGE_FORMAT: Final = "'HH:MM-HH:MM' (24-hour, e.g. '08:00-18:00'; the end may be '24:00')"
_RANGE_RE: Final = re.compile(r"([0-9]{2}):([0-9]{2})-([0-9]{2}):([0-9]{2})")
_DATE_RE: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


class CalendarError(CCSwitchError):
    """A calendar is invalid: ``key`` is the path inside the calendar, ``reason`` says why.

    ``key`` is e.g. ``"hours.mon-fri[1]"``, ``"timezone"``, ``"holidays[2]"``; it is
    ``""`` when the calendar as a whole is wrong (not a mapping).
    """

    error_id = "config.calendar"

    def __init__(self, key: str, reason: str) -> None:
        self.key = key
        self.reason = reason
        super().__init__(f"{key}: {reason}")


def parse_calendar(name: str, raw: object) -> Calendar:
    """Build the calendar ``name`` from its parsed YAML; CalendarError on the first problem."""
    if not isinstance(raw, Mapping):
        raise CalendarError("", "a calendar must be a mapping with timezone, hours "
                                f"and optionally holidays, got {_kind(raw)}")
    for key in raw:
        if key not in _TOP_KEYS:
            raise CalendarError(str(key), "unknown key; a calendar has timezone, hours "
                                          "and optionally holidays")
    timezone = _parse_timezone(raw)
    hours = _parse_hours(raw)
    holidays = _parse_holidays(raw.get("holidays", []))
    return Calendar(name=name, timezone=timezone, hours=hours, holidays=holidays)


def _kind(value: object) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return f"a number ({value!r})"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, datetime.datetime):
        return f"a date and time ({value.isoformat(sep=' ')})"
    if isinstance(value, datetime.date):
        return f"a date ({value.isoformat()})"
    return type(value).__name__


def _is_list(value: object) -> TypeGuard[list[Any] | tuple[Any, ...]]:
    return isinstance(value, (list, tuple))


def _parse_timezone(raw: Mapping[Any, Any]) -> str:
    if "timezone" not in raw:
        raise CalendarError("timezone", "required: an IANA time zone name such as "
                                        "'Europe/Berlin'")
    value = raw["timezone"]
    if not isinstance(value, str):
        raise CalendarError("timezone", "must be an IANA time zone name such as "
                                        f"'Europe/Berlin', got {_kind(value)}")
    try:
        load_zone(value)
    except ValueError:
        raise CalendarError("timezone", f"unknown time zone {value!r} (use an IANA name "
                                        "such as 'Europe/Berlin' or 'UTC')") from None
    return value


def _parse_days(key: object) -> tuple[int, ...] | None:
    """The weekday indexes (Monday = 0) a day key covers, or None if it is not one."""
    if not isinstance(key, str):
        return None
    if key == "daily":
        return tuple(range(7))
    if key in _DAY_INDEX:
        return (_DAY_INDEX[key],)
    first, dash, last = key.partition("-")
    if dash and first in _DAY_INDEX and last in _DAY_INDEX:
        start, stop = _DAY_INDEX[first], _DAY_INDEX[last]
        if start == stop:
            return None
        return tuple((start + i) % 7 for i in range((stop - start) % 7 + 1))
    return None


def _parse_range(key: str, value: object) -> TimeRange:
    if not isinstance(value, str):
        raise CalendarError(key, f"must be a time range {_RANGE_FORMAT}, got {_kind(value)}")
    match = _RANGE_RE.fullmatch(value)
    if match is None:
        raise CalendarError(key, f"{value!r} is not a time range; write {_RANGE_FORMAT}")
    sh, sm, eh, em = (int(g) for g in match.groups())
    for h, m, text in ((sh, sm, value[:5]), (eh, em, value[6:])):
        if h > 24 or m > 59 or (h == 24 and m != 0):
            raise CalendarError(key, f"{value!r}: {text!r} is not a time of day "
                                     "(00:00 to 23:59, or 24:00 as an end)")
    start, end = sh * 60 + sm, eh * 60 + em
    if start == MINUTES_PER_DAY:
        raise CalendarError(key, f"{value!r}: 24:00 can only end a range")
    if start == end:
        raise CalendarError(key, f"{value!r} is empty: the start must be before the end")
    if start > end:
        raise CalendarError(
            key, f"{value!r} ends before it starts: the start must be before the end; "
                 "split an overnight shift over two days (e.g. '22:00-24:00' on one day "
                 "and '00:00-06:00' on the next)")
    return TimeRange(start=start, end=end)


def _parse_hours(raw: Mapping[Any, Any]) -> tuple[tuple[TimeRange, ...], ...]:
    if "hours" not in raw:
        raise CalendarError("hours", "required: a mapping of days to lists of time ranges "
                                     "(e.g. mon-fri: ['08:00-18:00'])")
    hours = raw["hours"]
    if not isinstance(hours, Mapping):
        raise CalendarError("hours", "must be a mapping of days to lists of time ranges "
                                     f"(e.g. mon-fri: ['08:00-18:00']), got {_kind(hours)}")
    # per weekday: (range, key it came from), in the order they were listed
    week: list[list[tuple[TimeRange, str]]] = [[] for _ in range(7)]
    for day_key, ranges in hours.items():
        path = f"hours.{day_key}"
        days = _parse_days(day_key)
        if days is None and isinstance(day_key, str):
            first, dash, last = day_key.partition("-")
            if dash and first == last and first in _DAY_INDEX:
                raise CalendarError(path, f"the range {day_key!r} starts and ends on the "
                                          f"same day; write {first!r} for one day or "
                                          "'daily' for the whole week")
        if days is None:
            raise CalendarError(path, f"unknown day {day_key!r}; {_DAY_HELP}")
        if not _is_list(ranges):
            raise CalendarError(path, f"must be a list of time ranges {_RANGE_FORMAT} "
                                      f"(use [] for closed all day), got {_kind(ranges)}")
        for i, value in enumerate(ranges):
            item = f"{path}[{i}]"
            r = _parse_range(item, value)
            for day in days:
                for other, other_key in week[day]:
                    if r.start < other.end and other.start < r.end:
                        raise CalendarError(
                            item, f"on {DAY_NAMES[day]} {range_text(r)} overlaps "
                                  f"{range_text(other)} (from {other_key}); ranges on one "
                                  "day may touch but not overlap")
                week[day].append((r, item))
    return tuple(tuple(sorted((r for r, _ in day), key=lambda r: r.start))
                 for day in week)


def _parse_holidays(holidays: object) -> frozenset[datetime.date]:
    if not _is_list(holidays):
        raise CalendarError("holidays", "must be a list of dates 'YYYY-MM-DD' "
                                        f"(use [] for none), got {_kind(holidays)}")
    seen: dict[datetime.date, str] = {}
    for i, value in enumerate(holidays):
        key = f"holidays[{i}]"
        day = _parse_date(key, value)
        if day in seen:
            raise CalendarError(key, f"{day.isoformat()} is listed twice (also {seen[day]})")
        seen[day] = key
    return frozenset(seen)


def _parse_date(key: str, value: object) -> datetime.date:
    if isinstance(value, datetime.datetime):
        raise CalendarError(key, "must be a date 'YYYY-MM-DD' without a time of day, got "
                                 f"{_kind(value)}")
    if isinstance(value, datetime.date):
        return value
    if not isinstance(value, str):
        raise CalendarError(key, f"must be a date 'YYYY-MM-DD', got {_kind(value)}")
    if _DATE_RE.fullmatch(value) is None:
        raise CalendarError(key, f"{value!r} is not a date; write 'YYYY-MM-DD' "
                                 "(e.g. '2026-12-25')")
    try:
        return datetime.date.fromisoformat(value)
    except ValueError as e:
        raise CalendarError(key, f"{value!r} is not a valid date ({e})") from None
