"""A booking action's scheduling rules, validated once at construction.

Business hours are wall-clock ranges in the calendar's IANA zone, several per weekday (a lunch
break is two ranges), written ``"HH:MM"``; ``"24:00"`` may end a range (midnight at the end of the
day). Weekdays are ``date.weekday()`` numbers: 0 = Monday ... 6 = Sunday. A date override replaces
that date's weekday hours; an empty tuple closes the date.
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, time
from types import MappingProxyType

from slotline.agent.booking.zones import MINUTES_PER_DAY, load_zone

WEEKDAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

ClockTime = str | time
HoursRange = tuple[ClockTime, ClockTime]
DayHours = Sequence[HoursRange] | Sequence[Sequence[ClockTime]]  # tuples, or lists from YAML
MinuteRange = tuple[int, int]  # [start, end) in minutes after local midnight

_CLOCK_PATTERN = re.compile(r"(\d{1,2}):(\d{2})")


def _office_hours() -> Mapping[int, DayHours]:
    return {weekday: (("09:00", "17:00"),) for weekday in range(5)}


@dataclass(frozen=True, slots=True)
class BookingRules:
    """When a calendar can be booked. Every ``*_min`` is minutes; ``max_days_ahead`` is days.

    ``slot_interval_min`` is the step between slot starts (``None`` = the duration).
    ``daily_limit`` caps bookings per local day (``None`` = unlimited).
    """

    timezone: str
    duration_min: int = 30
    slot_interval_min: int | None = None
    buffer_before_min: int = 0
    buffer_after_min: int = 0
    min_notice_min: int = 0
    max_days_ahead: int = 60
    daily_limit: int | None = None
    weekly_hours: Mapping[int, DayHours] = field(default_factory=_office_hours, compare=False)
    date_overrides: Mapping[date, DayHours] = field(default_factory=dict, compare=False)
    # Parsed forms, filled by __post_init__; equality and hashing use these, so the same hours
    # written differently ("09:00" or time(9), ranges in any order) make equal rules.
    zone: zoneinfo.ZoneInfo = field(init=False, repr=False, compare=False)
    _weekly_minutes: tuple[tuple[MinuteRange, ...], ...] = field(init=False, repr=False)
    _override_minutes: Mapping[date, tuple[MinuteRange, ...]] = field(
        init=False, repr=False, hash=False
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "zone", load_zone(self.timezone))
        for name in ("duration_min", "max_days_ahead"):
            _require_int(name, getattr(self, name), minimum=1)
        for name in ("buffer_before_min", "buffer_after_min", "min_notice_min"):
            _require_int(name, getattr(self, name), minimum=0)
        if self.slot_interval_min is not None:
            _require_int("slot_interval_min", self.slot_interval_min, minimum=1)
        if self.daily_limit is not None:
            _require_int("daily_limit", self.daily_limit, minimum=1)

        weekly: list[tuple[MinuteRange, ...]] = [()] * 7
        for weekday, ranges in self.weekly_hours.items():
            if not isinstance(weekday, int) or isinstance(weekday, bool) or not 0 <= weekday <= 6:
                raise ValueError(
                    f"weekly_hours: weekday {weekday!r} must be 0 (Monday) .. 6 (Sunday)"
                )
            weekly[weekday] = _parse_ranges(
                f"weekly_hours[{weekday}] ({WEEKDAY_NAMES[weekday]})", ranges
            )
        overrides: dict[date, tuple[MinuteRange, ...]] = {}
        for day, ranges in self.date_overrides.items():
            if not isinstance(day, date):
                raise ValueError(f"date_overrides: key {day!r} must be a datetime.date")
            overrides[day] = _parse_ranges(f"date_overrides[{day.isoformat()}]", ranges)
        object.__setattr__(self, "weekly_hours", MappingProxyType(dict(self.weekly_hours)))
        object.__setattr__(self, "date_overrides", MappingProxyType(dict(self.date_overrides)))
        object.__setattr__(self, "_weekly_minutes", tuple(weekly))
        object.__setattr__(self, "_override_minutes", MappingProxyType(overrides))

    @property
    def step_min(self) -> int:
        """Minutes between consecutive slot starts within a range."""
        return self.duration_min if self.slot_interval_min is None else self.slot_interval_min

    def open_minutes(self, day: date) -> tuple[MinuteRange, ...]:
        """``day``'s opening ranges as sorted ``(start, end)`` minutes after local midnight."""
        override = self._override_minutes.get(day)
        if override is not None:
            return override
        return self._weekly_minutes[day.weekday()]


def _require_int(name: str, value: object, *, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{name} must be a whole number, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")


def _parse_ranges(where: str, ranges: object) -> tuple[MinuteRange, ...]:
    if isinstance(ranges, str) or not isinstance(ranges, tuple | list):
        raise ValueError(f'{where}: expected a tuple of ("HH:MM", "HH:MM") ranges, got {ranges!r}')
    parsed: list[MinuteRange] = []
    for entry in ranges:
        if isinstance(entry, str) or not isinstance(entry, tuple | list) or len(entry) != 2:
            raise ValueError(f'{where}: range {entry!r} must be a ("HH:MM", "HH:MM") pair')
        start = _parse_clock(where, entry[0], allow_midnight_end=False)
        end = _parse_clock(where, entry[1], allow_midnight_end=True)
        if end <= start:
            raise ValueError(f"{where}: range {_show(start)}-{_show(end)} must end after it starts")
        parsed.append((start, end))
    parsed.sort()
    for (start_a, end_a), (start_b, end_b) in zip(parsed, parsed[1:], strict=False):
        if start_b < end_a:
            raise ValueError(
                f"{where}: ranges {_show(start_a)}-{_show(end_a)} and "
                f"{_show(start_b)}-{_show(end_b)} overlap"
            )
    return tuple(parsed)


def _parse_clock(where: str, value: object, *, allow_midnight_end: bool) -> int:
    if isinstance(value, time):
        return value.hour * 60 + value.minute
    match = _CLOCK_PATTERN.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f'{where}: {value!r} is not a clock time like "09:00"')
    hours, minutes = int(match[1]), int(match[2])
    if allow_midnight_end and (hours, minutes) == (24, 0):
        return MINUTES_PER_DAY
    if hours > 23 or minutes > 59:
        limit = '"00:00".."24:00"' if allow_midnight_end else '"00:00".."23:59"'
        raise ValueError(f"{where}: {value!r} is outside {limit}")
    return hours * 60 + minutes


def _show(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"
