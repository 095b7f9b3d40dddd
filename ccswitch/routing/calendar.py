"""Business-hours calendars: when a queue is open, in its own time zone.

A pure core: no I/O beyond reading the system/tzdata time zone database once per
zone. The config loader builds a :class:`Calendar` from dialplan YAML
(:func:`ccswitch.config.calendars.parse_calendar`); the routing engine asks
:meth:`Calendar.is_open` on every decision.

Local wall-clock time decides: an instant is converted to the calendar's zone
with :mod:`zoneinfo`, so DST change days need no special handling (a range that
falls in the skipped hour never opens; one in the repeated hour is open twice).
"""

from __future__ import annotations

import datetime
import functools
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs

__all__ = ["DAY_NAMES", "MINUTES_PER_DAY", "Calendar", "TimeRange", "load_zone", "range_text"]

MINUTES_PER_DAY: Final = 24 * 60

DAY_NAMES: Final = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday",
                    "Saturday", "Sunday")


# -- values -----------------------------------------------------------------------


def _minute(instance: Any, attribute: "attrs.Attribute[Any]", value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{attribute.name} must be an int (minutes), got {value!r}")
    if not 0 <= value <= MINUTES_PER_DAY:
        raise ValueError(f"{attribute.name} must be 0..{MINUTES_PER_DAY}, got {value!r}")


@attrs.frozen(kw_only=True)
class TimeRange:
    """Minutes of the local day, start inclusive, end exclusive: 0 <= start < end <= 1440."""

    start: int = attrs.field(validator=_minute)
    end: int = attrs.field(validator=_minute)

    def __attrs_post_init__(self) -> None:
        if self.start >= self.end:
            raise ValueError(f"start must be before end, got {self.start}..{self.end}")


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def range_text(r: TimeRange) -> str:
    """The range as messages show it: ``'08:00-18:00'``, quotes included."""
    return f"'{_hhmm(r.start)}-{_hhmm(r.end)}'"


@functools.lru_cache(maxsize=None)
def load_zone(name: str) -> ZoneInfo:
    """The zone called ``name``; ValueError when there is no such IANA zone."""
    if name == "localtime":  # the host's zone, a file in some TZPATHs: not a name
        raise ValueError(name)
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as e:
        # unknown key, a path-like or empty key, a directory or a non-TZif file
        raise ValueError(name) from e


def _zone_of(calendar: Calendar) -> ZoneInfo:
    if not isinstance(calendar.timezone, str):
        raise TypeError(f"timezone must be a string, got {calendar.timezone!r}")
    try:
        return load_zone(calendar.timezone)
    except ValueError:
        raise ValueError(f"unknown time zone {calendar.timezone!r}") from None


def _week(instance: Any, attribute: "attrs.Attribute[Any]", value: Any) -> None:
    if not isinstance(value, tuple) or len(value) != 7:
        raise ValueError(f"hours must be a tuple of 7 days (Monday first), got {value!r}")
    for day, ranges in zip(DAY_NAMES, value):
        if not isinstance(ranges, tuple) or not all(isinstance(r, TimeRange) for r in ranges):
            raise TypeError(f"hours for {day} must be a tuple of TimeRange, got {ranges!r}")
        for before, after in zip(ranges, ranges[1:]):
            if after.start < before.end:
                raise ValueError(f"hours for {day} must be sorted and not overlap, "
                                 f"got {range_text(before)} then {range_text(after)}")


def _dates(instance: Any, attribute: "attrs.Attribute[Any]", value: Any) -> None:
    if not isinstance(value, frozenset) or not all(
            isinstance(d, datetime.date) and not isinstance(d, datetime.datetime)
            for d in value):
        raise TypeError(f"holidays must be a frozenset of datetime.date, got {value!r}")


@attrs.frozen(kw_only=True)
class Calendar:
    """Opening hours per weekday in one time zone, minus whole-day holidays."""

    name: str
    timezone: str  # the IANA name as written
    hours: tuple[tuple[TimeRange, ...], ...] = attrs.field(validator=_week)
    holidays: frozenset[datetime.date] = attrs.field(validator=_dates)
    _zone: ZoneInfo = attrs.field(init=False, eq=False, repr=False,
                                  default=attrs.Factory(_zone_of, takes_self=True))

    def is_open(self, when: float) -> bool:
        """Whether the calendar is open at ``when`` (Unix epoch seconds)."""
        local = datetime.datetime.fromtimestamp(when, self._zone)
        minute = local.hour * 60 + local.minute
        for r in self.hours[local.weekday()]:
            if minute < r.start:
                return False  # sorted: no later range can hold it
            if minute < r.end:
                return not self.holidays or local.date() not in self.holidays
        return False
