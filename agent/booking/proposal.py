"""Choosing the few slots to offer a caller, nearest to what they asked for.

Everything is judged in the caller's zone. Parts of the day by start time: morning before 12:00,
afternoon 12:00-17:00, evening from 17:00.

The anchor date is ``preferred_date``; without one, the earliest date that has a slot matching the
preference (in the asked part of the day, or in the part containing ``preferred_time``), else the
earliest date with any slot. Other dates follow by distance from the anchor, a later date before
an earlier one at the same distance ("Wednesday" beats "Monday" when Tuesday is full).

- A specific ``preferred_time`` (it wins over ``time_of_day``): slots nearest to that time on the
  anchor date, then nearest to that time on the following dates (ties: the earlier slot).
- A vague preference (only ``time_of_day``, only a date, or nothing): the first pick is the
  earliest matching slot, the others are SPREAD over the matching slots of that date rather than
  being the next half-hours: targets are evenly spaced from the first to the last matching start
  and each takes the nearest unused slot ("9 am, 12:30 pm and 4:30 pm", not "9, 9:30 and 10").
  Fill order when a date runs short: the anchor date inside the part, then the anchor date outside
  it (nearest to the part first), then other dates inside the part, then other dates outside it.

The result is best first; ``speak_slots`` reorders chronologically when speaking.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, time
from typing import Literal

from slotline.agent.booking.intervals import Slot
from slotline.agent.booking.zones import load_zone

TimeOfDay = Literal["morning", "afternoon", "evening"]
PARTS_OF_DAY: dict[TimeOfDay, tuple[int, int]] = {  # [start, end) minutes after local midnight
    "morning": (0, 12 * 60),
    "afternoon": (12 * 60, 17 * 60),
    "evening": (17 * 60, 24 * 60),
}


@dataclass(frozen=True, slots=True)
class _Entry:
    minute: int  # local start, minutes after midnight in the caller's zone
    slot: Slot


def part_of_day(minute_of_day: int) -> TimeOfDay:
    """The part of the day a local start time (minutes after midnight) falls in."""
    for name, (start, end) in PARTS_OF_DAY.items():
        if start <= minute_of_day < end:
            return name
    raise ValueError(f"minute_of_day {minute_of_day} is outside 0..1439")


def propose(
    slots: Iterable[Slot],
    *,
    preferred_date: date | None,
    preferred_time: time | None,
    time_of_day: TimeOfDay | None,
    tz: str,
    limit: int = 3,
) -> list[Slot]:
    """Up to ``limit`` slots to offer, best first (rules in the module docstring)."""
    if limit < 0:
        raise ValueError(f"limit must be at least 0, got {limit}")
    if time_of_day is not None and time_of_day not in PARTS_OF_DAY:
        raise ValueError(f"time_of_day {time_of_day!r} must be one of {', '.join(PARTS_OF_DAY)}")
    zone = load_zone(tz)
    days: dict[date, list[_Entry]] = {}
    for slot in sorted(slots):
        local = slot.start.astimezone(zone)
        days.setdefault(local.date(), []).append(_Entry(local.hour * 60 + local.minute, slot))
    if not days or limit == 0:
        return []

    wanted_minute = None
    if preferred_time is not None:
        wanted_minute = preferred_time.hour * 60 + preferred_time.minute
    if wanted_minute is not None:
        part = PARTS_OF_DAY[part_of_day(wanted_minute)]
    elif time_of_day is not None:
        part = PARTS_OF_DAY[time_of_day]
    else:
        part = (0, 24 * 60)

    def inside(entry: _Entry) -> bool:
        return part[0] <= entry.minute < part[1]

    anchor = preferred_date
    if anchor is None:
        anchor = next(
            (day for day, entries in days.items() if any(map(inside, entries))), next(iter(days))
        )
    others = sorted(
        (day for day in days if day != anchor),
        key=lambda day: (abs((day - anchor).days), day < anchor),
    )
    anchor_entries = days.get(anchor, [])
    picks: list[Slot] = []

    def take(chosen: Iterable[_Entry]) -> None:
        for entry in chosen:
            if len(picks) == limit:
                return
            picks.append(entry.slot)

    if wanted_minute is not None:
        minute = wanted_minute
        for day_entries in [anchor_entries, *(days[day] for day in others)]:
            take(sorted(day_entries, key=lambda entry: abs(entry.minute - minute)))
        return picks

    def outside_nearest(entries: Sequence[_Entry]) -> list[_Entry]:
        outside = [entry for entry in entries if not inside(entry)]
        return sorted(outside, key=lambda e: max(part[0] - e.minute, e.minute - part[1]))

    take(_spread([entry for entry in anchor_entries if inside(entry)], limit))
    take(outside_nearest(anchor_entries))
    for day in others:
        take(_spread([entry for entry in days[day] if inside(entry)], limit - len(picks)))
    for day in others:
        take(outside_nearest(days[day]))
    return picks


def _spread(entries: Sequence[_Entry], count: int) -> list[_Entry]:
    """``count`` chronological entries spread from the first to the last of ``entries``."""
    if count <= 0:
        return []
    if len(entries) <= count:
        return list(entries)
    if count == 1:
        return [entries[0]]
    first_s = entries[0].slot.start.timestamp()
    span_s = entries[-1].slot.start.timestamp() - first_s
    chosen: list[int] = []
    for index in range(count):
        target_s = first_s + span_s * index / (count - 1)
        best = min(
            (i for i in range(len(entries)) if i not in chosen),
            key=lambda i: (abs(entries[i].slot.start.timestamp() - target_s), i),
        )
        chosen.append(best)
    return [entries[i] for i in sorted(chosen)]
