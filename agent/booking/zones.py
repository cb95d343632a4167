"""IANA zone loading and the one rule that turns a wall-clock reading into an instant.

A business that "opens at 09:00" opens at the first instant its wall clock reads 09:00:

- an ordinary time has exactly one instant;
- an ambiguous time (the repeated hour when clocks go back, e.g. 01:30 on 2026-11-01 in New York)
  resolves to its FIRST occurrence (daylight time, ``fold=0``);
- a time that does not exist (skipped when clocks go forward, e.g. 02:30 on 2026-03-08 in New
  York) resolves to the instant of the jump (03:00 daylight time): that is when the clock "passes"
  02:30. So a 02:30-04:00 range that day is open 03:00-04:00.

``day_ranges_to_epoch_s`` is the fast path for whole days: one offset lookup per day when the
offset is the same at both of the day's midnights (every day but the DST days).

The rule is monotonic (a later reading never maps to an earlier instant), so the slots of one day
and of consecutive days come out in order, which the availability sweep relies on.
"""

from __future__ import annotations

import functools
import zoneinfo
from datetime import UTC, date, datetime, time, timedelta

_ONE_SECOND = timedelta(seconds=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_ORDINAL = _EPOCH.date().toordinal()
_SECONDS_PER_DAY = 86_400
MINUTES_PER_DAY = 24 * 60


@functools.lru_cache(maxsize=64)
def load_zone(name: str) -> zoneinfo.ZoneInfo:
    """The IANA zone ``name``; ValueError (naming it) when it is unknown or malformed."""
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(
            f"unknown time zone {name!r}: use an IANA name such as 'America/New_York'"
        ) from None


def wall_clock_to_epoch_s(day: date, minute_of_day: int, zone: zoneinfo.ZoneInfo) -> int:
    """POSIX seconds of the first instant the clock in ``zone`` reads ``day`` + ``minute_of_day``
    (0..1440; 1440 is the next day's midnight). See the module docstring for DST days."""
    if minute_of_day == MINUTES_PER_DAY:
        day, minute_of_day = day + timedelta(days=1), 0
    wall = datetime.combine(day, time(minute_of_day // 60, minute_of_day % 60), zone)
    first = (wall - _EPOCH) // _ONE_SECOND  # fold=0: the earlier offset's reading
    second = (wall.replace(fold=1) - _EPOCH) // _ONE_SECOND
    if first <= second:
        return int(first)  # ordinary (equal) or ambiguous (fold=0 is the first occurrence)
    # In a gap: fold=0 uses the offset before the jump and lands after it, fold=1 the offset after
    # the jump and lands before it. The jump itself is the first instant carrying the new offset.
    after_offset = wall.replace(fold=1).utcoffset()
    low, high = int(second), int(first)  # offset(low) is the old one, offset(high) the new one
    while high - low > 1:
        middle = (low + high) // 2
        if (_EPOCH + timedelta(seconds=middle)).astimezone(zone).utcoffset() == after_offset:
            high = middle
        else:
            low = middle
    return high


def day_ranges_to_epoch_s(
    day: date, ranges: tuple[tuple[int, int], ...], zone: zoneinfo.ZoneInfo
) -> tuple[tuple[int, int], ...]:
    """``day``'s ``(start, end)`` wall-clock ranges (minutes after local midnight) as POSIX-second
    spans, by the same rule as ``wall_clock_to_epoch_s``."""
    offset_s = _midnight_offset_s(day, zone)
    if offset_s != _midnight_offset_s(day + timedelta(days=1), zone):  # a transition in the day
        return tuple(
            (wall_clock_to_epoch_s(day, start, zone), wall_clock_to_epoch_s(day, end, zone))
            for start, end in ranges
        )
    midnight_s = (day.toordinal() - _EPOCH_ORDINAL) * _SECONDS_PER_DAY - offset_s
    return tuple((midnight_s + start * 60, midnight_s + end * 60) for start, end in ranges)


def _midnight_offset_s(day: date, zone: zoneinfo.ZoneInfo) -> int:
    offset = datetime.combine(day, time(0), zone).utcoffset()
    assert offset is not None  # a ZoneInfo always has an offset
    return offset // _ONE_SECOND
