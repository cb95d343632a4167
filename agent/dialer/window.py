"""When a campaign may ring someone: a daily window on the callee's own clock.

Calling rules (the US TCPA and its state cousins, most European codes of practice) speak of the
callee's local time, not the business's, so a window is a wall-clock range applied in each of the
contact's time zones. Pure computation, no I/O.

Three rules shape the answer:

- Hard limits. Whatever a business configures, no call starts before ``HARD_START`` (08:00) or at
  or after ``HARD_END`` (21:00) local time. A wider window is narrowed, not refused, and says so
  through ``clamped`` so the API can warn; a window with nothing left after narrowing is refused.
- Several zones. A number may map to several zones (area code 208 covers both Boise and Los
  Angeles) and we cannot know which clock the callee reads, so the window is open only when it is
  open in every zone: the latest-starting zone decides the opening, the earliest-ending zone the
  close. Nobody is called early or late; zones whose hours never overlap never open.
- DST. Each local date's window becomes an instant span by the wall-clock rule of
  ``agent.booking.zones`` (a repeated time means its first occurrence, a skipped time the instant
  of the jump), so 09:00-20:00 is 09:00-20:00 on the clock on change days too. The hard limits keep
  real windows clear of every zone's transitions, which happen at night; the rule still makes odd
  hand-built cases well defined.

``next_open`` is exact, not a scan: the set of open instants is an intersection of unions of
half-open spans, so its first instant after ``at`` is the start of some zone's span. It collects
those starts for the coming days, sorts them and returns the first one at which ``is_open`` holds.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Final
from zoneinfo import ZoneInfo

from slotline.agent.booking.zones import MINUTES_PER_DAY, load_zone, wall_clock_to_epoch_s

HARD_START: Final = time(8, 0)
HARD_END: Final = time(21, 0)
WEEKDAYS: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

# A week plus a day: every window with at least one day opens within a week in any one zone; the
# extra day covers the local date of ``at`` differing from its UTC date.
SEARCH_AHEAD_DAYS: Final = 8

_FULL_DAY_NAMES: Final = (
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
)
_ALL_DAYS: Final = frozenset(range(7))
_SPEC = re.compile(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*")


def _minute_of_day(clock: time) -> int:
    return clock.hour * 60 + clock.minute


def _clock(minute_of_day: int) -> time:
    return time(minute_of_day // 60, minute_of_day % 60)


_HARD_START_MIN: Final = _minute_of_day(HARD_START)
_HARD_END_MIN: Final = _minute_of_day(HARD_END)


@dataclass(frozen=True, slots=True)
class CallingWindow:
    """Daily calling hours ``[start, end)`` on the listed weekdays (0 = Monday), callee's time.

    ``end`` of 00:00 means the end of the day (written "24:00"), since a window cannot cross
    midnight. Times must be whole minutes without a zone.
    """

    start: time = time(9, 0)
    end: time = time(20, 0)
    days: frozenset[int] = _ALL_DAYS

    def __post_init__(self) -> None:
        for label, clock in (("start", self.start), ("end", self.end)):
            if clock.tzinfo is not None:
                raise ValueError(f"the window {label} is a wall-clock time: give it without a zone")
            if clock.second or clock.microsecond:
                raise ValueError(f"the window {label} must be a whole minute, got {clock}")
        if not self.days:
            raise ValueError("a calling window needs at least one day")
        if not self.days <= _ALL_DAYS:
            raise ValueError(f"days run from 0 (Monday) to 6 (Sunday), got {sorted(self.days)}")
        start_min, end_min = self._configured_minutes()
        if start_min >= end_min:
            raise ValueError(
                f"the window {self._label()} ends before it starts: windows cannot cross midnight"
            )
        effective_start_min, effective_end_min = self._effective_minutes()
        if effective_start_min >= effective_end_min:
            raise ValueError(
                f"the window {self._label()} lies outside the legal calling hours "
                f"{HARD_START:%H:%M}-{HARD_END:%H:%M}"
            )

    @classmethod
    def parse(cls, spec: str = "09:00-20:00", days: Sequence[str] | str = ()) -> CallingWindow:
        """A window from the settings' text: ``spec`` is "HH:MM-HH:MM" (the end may be "24:00");
        ``days`` names weekdays as in ``WEEKDAYS`` (or in full), singly, comma-separated or as
        ranges such as "mon-fri" or "fri-mon"; empty means every day. ValueError says what is
        wrong. A window wider than the hard limits is narrowed (see ``clamped``)."""
        match = _SPEC.fullmatch(spec)
        if match is None:
            raise ValueError(f"calling hours {spec!r} are not HH:MM-HH:MM, e.g. '09:00-20:00'")
        start = _parse_clock(match[1], match[2], spec, is_end=False)
        end = _parse_clock(match[3], match[4], spec, is_end=True)
        return cls(start=start, end=end, days=_parse_days(days))

    @property
    def clamped(self) -> bool:
        """True when the configured hours were narrowed to the hard limits."""
        return self._effective_minutes() != self._configured_minutes()

    def effective(self) -> tuple[time, time]:
        """The hours actually used, ``[start, end)``: the configured ones within the hard limits."""
        start_min, end_min = self._effective_minutes()
        return _clock(start_min), _clock(end_min)

    def is_open(self, zones: Sequence[str], at: datetime) -> bool:
        """Whether a call may start at the aware instant ``at`` for a callee in ``zones``: the
        window must be open on the local clock of every zone. Unknown zone → ValueError."""
        _require_aware(at)
        return all(self._open_in(zone, at) for zone in _load_zones(zones))

    def next_open(self, zones: Sequence[str], at: datetime) -> datetime:
        """``at`` itself when the window is open then, else the first later instant (aware, UTC)
        when it is open in every zone. ValueError when it does not open within
        ``SEARCH_AHEAD_DAYS`` days, i.e. the zones' hours and days never overlap."""
        _require_aware(at)
        loaded = _load_zones(zones)
        if all(self._open_in(zone, at) for zone in loaded):
            return at
        at_s = at.timestamp()
        starts_s: set[int] = set()
        for zone in loaded:
            first_day = at.astimezone(zone).date()
            for offset_days in range(SEARCH_AHEAD_DAYS + 1):
                day = first_day + timedelta(days=offset_days)
                if day.weekday() in self.days:
                    start_s, _ = self._span_s(day, zone)
                    if start_s > at_s:
                        starts_s.add(start_s)
        for start_s in sorted(starts_s):
            candidate = datetime.fromtimestamp(start_s, UTC)
            if all(self._open_in(zone, candidate) for zone in loaded):
                return candidate
        named = ", ".join(zones) if len(zones) <= 3 else f"{len(zones)} zones ({zones[0]}, …)"
        raise ValueError(
            f"the window {self._label()} does not open in all of {named} within "
            f"{SEARCH_AHEAD_DAYS} days: their calling hours never overlap"
        )

    def _open_in(self, zone: ZoneInfo, at: datetime) -> bool:
        day = at.astimezone(zone).date()
        if day.weekday() not in self.days:
            return False
        start_s, end_s = self._span_s(day, zone)
        return start_s <= at.timestamp() < end_s

    def _span_s(self, day: date, zone: ZoneInfo) -> tuple[int, int]:
        """POSIX seconds of the effective window on the local date ``day`` in ``zone``."""
        start_min, end_min = self._effective_minutes()
        return (
            wall_clock_to_epoch_s(day, start_min, zone),
            wall_clock_to_epoch_s(day, end_min, zone),
        )

    def _configured_minutes(self) -> tuple[int, int]:
        end_min = _minute_of_day(self.end) or MINUTES_PER_DAY  # 00:00 as an end is "24:00"
        return _minute_of_day(self.start), end_min

    def _effective_minutes(self) -> tuple[int, int]:
        start_min, end_min = self._configured_minutes()
        return max(start_min, _HARD_START_MIN), min(end_min, _HARD_END_MIN)

    def _label(self) -> str:
        start_min, end_min = self._configured_minutes()
        return f"{start_min // 60:02d}:{start_min % 60:02d}-{end_min // 60:02d}:{end_min % 60:02d}"


def _parse_clock(hours: str, minutes: str, spec: str, *, is_end: bool) -> time:
    hour, minute = int(hours), int(minutes)
    if is_end and hour == 24 and minute == 0:
        return time(0, 0)
    if hour > 23 or minute > 59:
        raise ValueError(f"calling hours {spec!r}: {hours}:{minutes} is not a time of day")
    return time(hour, minute)


def _parse_days(days: Sequence[str] | str) -> frozenset[int]:
    tokens = [
        token.strip()
        for item in ([days] if isinstance(days, str) else days)
        for token in item.split(",")
        if token.strip()
    ]
    if not tokens:
        return _ALL_DAYS
    chosen: set[int] = set()
    for token in tokens:
        first, dash, last = token.partition("-")
        if not dash:
            chosen.add(_day_index(token))
            continue
        first_index, last_index = _day_index(first), _day_index(last)
        span = (last_index - first_index) % 7  # "fri-mon" wraps over the weekend
        chosen.update((first_index + step) % 7 for step in range(span + 1))
    return frozenset(chosen)


def _day_index(name: str) -> int:
    key = name.strip().lower()
    if key in WEEKDAYS:
        return WEEKDAYS.index(key)
    if key in _FULL_DAY_NAMES:
        return _FULL_DAY_NAMES.index(key)
    raise ValueError(
        f"unknown day {name.strip()!r}: use {', '.join(WEEKDAYS)} or a range like mon-fri"
    )


def _load_zones(zones: Sequence[str]) -> list[ZoneInfo]:
    if isinstance(zones, str):  # a lone "America/New_York" would iterate as letters
        raise TypeError("zones is a sequence of zone names, not one string")
    if not zones:
        raise ValueError("a callee needs at least one time zone")
    return [load_zone(name) for name in zones]


def _require_aware(at: datetime) -> None:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("the instant must be timezone-aware (e.g. datetime.now(UTC))")
