"""Bookable slots of one calendar: business hours minus busy time, under the booking rules.

Pure computation, no I/O: the caller fetches busy time and booking counts and passes them in.

How slots are made (all times are compared as UTC instants):

1. For each local date of the calendar's zone touched by the window, take its opening ranges (the
   date override if there is one, else the weekday's hours). Each range becomes an instant span by
   the wall-clock rule of ``agent.booking.zones`` (first occurrence of a repeated time; the jump
   instant for a skipped one), so on DST days 09:00-17:00 is still 09:00-17:00 local.
2. Slots start at the range's start and step by ``slot_interval_min`` of elapsed time; a slot must
   end by the range's end. On a spring-forward day a 01:00-03:00 range is one real hour long and
   holds 01:00 and 01:30 (no slot at the nonexistent 02:00/02:30); on a fall-back day it is three
   real hours long and holds six half-hour slots (01:00 and 01:30 occur twice, in daylight and in
   standard time).
3. A slot is kept when it lies fully inside ``[window_start, window_end)``, starts no earlier than
   ``now + min_notice_min`` and no later than ``now + max_days_ahead`` days (a rolling window), and
   ``[start - buffer_before, end + buffer_after)`` overlaps no busy interval.
4. Dates whose existing booking count (keyed by the calendar's local date) reached
   ``daily_limit`` yield no slots.

Cost: busy time is merged once (sort, O(b log b)), then slots and busy spans are swept together
with one forward pointer (O(days + slots + b)), on integer seconds. A day's candidate slots depend
only on the date, its hours, the zone, the duration and the step, so they are built once and
memoised: the calendars of one pool and a call's repeated look-ups share them.
"""

from __future__ import annotations

import functools
from bisect import bisect_left, bisect_right
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from types import MappingProxyType
from zoneinfo import ZoneInfo

from slotline.agent.booking.intervals import (
    Interval,
    Slot,
    merge_spans,
    to_epoch_s,
    to_epoch_s_ceil,
)
from slotline.agent.booking.rules import BookingRules, MinuteRange
from slotline.agent.booking.zones import day_ranges_to_epoch_s

_SECONDS_PER_MINUTE = 60
_SECONDS_PER_DAY = 86_400
_NO_COUNTS: Mapping[date, int] = MappingProxyType({})


def available_slots(
    rules: BookingRules,
    *,
    window_start: datetime,
    window_end: datetime,
    now: datetime,
    busy: Sequence[Interval],
    existing_bookings_per_day: Mapping[date, int] = _NO_COUNTS,
) -> list[Slot]:
    """Free slots of one calendar in ``[window_start, window_end)``, sorted, in UTC.

    ``busy`` intervals are half-open and may arrive unsorted and overlapping; they should cover
    the window widened by the buffers, or slots at its edges are checked against less busy time.
    """
    for name, value in (("window_start", window_start), ("window_end", window_end), ("now", now)):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"{name} must be timezone-aware, got naive {value.isoformat()}")
    zone = rules.zone
    duration_s = rules.duration_min * _SECONDS_PER_MINUTE
    step_s = rules.step_min * _SECONDS_PER_MINUTE
    before_s = rules.buffer_before_min * _SECONDS_PER_MINUTE
    after_s = rules.buffer_after_min * _SECONDS_PER_MINUTE

    now_s = to_epoch_s_ceil(now)
    first_start_s = max(
        to_epoch_s_ceil(window_start), now_s + rules.min_notice_min * _SECONDS_PER_MINUTE
    )
    last_start_s = min(
        to_epoch_s(window_end) - duration_s, now_s + rules.max_days_ahead * _SECONDS_PER_DAY
    )
    if last_start_s < first_start_s:
        return []

    # Buffers widen the slot; widening each busy span instead is the same test and lets the sweep
    # compare a bare slot: [s - before, e + after) meets [bs, be)  <=>  [s, e) meets
    # [bs - after, be + before).
    blocked = merge_spans(
        [(to_epoch_s(item.start) - after_s, to_epoch_s_ceil(item.end) + before_s) for item in busy]
    )
    blocked_starts = [span[0] for span in blocked]
    blocked_ends = [span[1] for span in blocked]
    blocked_count = len(blocked)
    cursor = 0

    daily_limit = rules.daily_limit
    free: list[Slot] = []
    day = datetime.fromtimestamp(first_start_s, zone).date()
    last_day = datetime.fromtimestamp(last_start_s, zone).date()
    while day <= last_day:
        if daily_limit is None or existing_bookings_per_day.get(day, 0) < daily_limit:
            starts, grid = _day_grid(day, rules.open_minutes(day), zone, duration_s, step_s)
            index = bisect_left(starts, first_start_s)
            stop = bisect_right(starts, last_start_s)
            while index < stop:
                start_s = starts[index]
                while cursor < blocked_count and blocked_ends[cursor] <= start_s:
                    cursor += 1
                if cursor == blocked_count or blocked_starts[cursor] >= start_s + duration_s:
                    free.append(grid[index])
                    index += 1
                else:  # every start before the blocked span's end still meets it
                    index = bisect_left(starts, blocked_ends[cursor], index + 1, stop)
        day += timedelta(days=1)
    return free


def clear_slot_cache() -> None:
    """Forget the memoised per-day candidate slots (for cold-start measurements)."""
    _day_grid.cache_clear()


@functools.lru_cache(maxsize=4096)  # ~90 days x a few rule sets; a few hundred KB at most
def _day_grid(
    day: date, ranges: tuple[MinuteRange, ...], zone: ZoneInfo, duration_s: int, step_s: int
) -> tuple[tuple[int, ...], tuple[Slot, ...]]:
    """The day's candidate slots (start seconds, Slot), in order: every ``step_s`` from each
    range's start while the slot still ends inside the range."""
    starts: list[int] = []
    slots: list[Slot] = []
    for start_s, range_end_s in day_ranges_to_epoch_s(day, ranges, zone):
        while start_s + duration_s <= range_end_s:
            starts.append(start_s)
            slots.append(
                Slot(
                    datetime.fromtimestamp(start_s, UTC),
                    datetime.fromtimestamp(start_s + duration_s, UTC),
                )
            )
            start_s += step_s
    return tuple(starts), tuple(slots)
