"""The booking rules of one emulated Cal.com event type, as pure functions (no I/O, no state).

What Cal.com documents and users expect: weekly hours per weekday in the event type's IANA zone
with date overrides, slot interval (defaults to the length), minimum notice, a rolling booking
window (days ahead), buffers before/after, and a round-robin host pool (a time stays bookable
while fewer than ``hosts`` bookings overlap it). Windows are laid out per LOCAL date and turned
into UTC instants, so a DST day has the hours it really has (2026-11-01 in New York: 09:00 is
14:00 UTC, the day before it is 13:00 UTC). Slots step through real elapsed time.

Conflict rule (Cal.com's): a booking is busy over [start - buffer_before, end + buffer_after];
a candidate needs [start - buffer_before, end + buffer_after] free of that, so two bookings of
one event type are at least ``buffer_after + buffer_before`` apart.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from slotline.providers.errors import ConfigError

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Hours = Sequence[tuple[str, str]]  # [("09:00", "12:00"), ("13:00", "17:00")]; "24:00" allowed
NINE_TO_FIVE: Mapping[str, Hours] = {day: (("09:00", "17:00"),) for day in WEEKDAYS[:5]}


@dataclass(frozen=True, slots=True)
class EventType:
    id: int
    length_min: int = 30
    timezone: str = "UTC"
    weekly_hours: Mapping[str, Hours] = field(default_factory=lambda: dict(NINE_TO_FIVE))
    date_overrides: Mapping[str, Hours] = field(default_factory=dict)  # "2026-12-24": () = closed
    min_notice_min: int = 0
    max_days_ahead: int | None = None  # rolling booking window; None = unlimited
    slot_interval_min: int | None = None  # None = the length
    buffer_before_min: int = 0
    buffer_after_min: int = 0
    hosts: int = 1  # round-robin pool size (team event types); 1 = a personal event type
    requires_confirmation: bool = False  # bookings start "pending"
    slug: str = "meeting"
    # The host's own booking questions, as Cal.com's event type output lists them:
    # {"type": "text", "slug": "company", "label": "Company", "required": true}
    booking_fields: tuple[Mapping[str, Any], ...] = ()
    meeting_link: str = ""  # a ``link`` location ("" = Cal Video, no fixed link)
    team_id: int | None = None  # a team's event type: GET /v2/event-types/{id} does not know it
    # A variable-length event type ("multiple durations"): the lengths a booker may pick, the
    # default ``length_min`` among them; () = one fixed length.
    length_options_min: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        source = f"calcom emulator event type {self.id}"
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(source, "timezone", f"unknown zone {self.timezone!r}") from None
        for day in self.weekly_hours:
            if day not in WEEKDAYS:
                raise ConfigError(source, "weekly_hours", f"{day!r} is not one of {WEEKDAYS}")
        for hours in (*self.weekly_hours.values(), *self.date_overrides.values()):
            for begins, ends in hours:
                if _clock(begins) >= _clock(ends):
                    raise ConfigError(source, "hours", f"{begins}-{ends} is empty")
        if self.length_min < 1 or self.hosts < 1 or (self.slot_interval_min or 1) < 1:
            raise ConfigError(source, "length_min/hosts/slot_interval_min", "must be ≥ 1")
        if self.length_options_min and self.length_min not in self.length_options_min:
            raise ConfigError(source, "length_options_min",
                              f"the default length {self.length_min} must be one of them")

    def sized(self, length_min: int) -> EventType:
        """The same event type booked ``length_min`` long (one of a variable-length type's
        options): its slots step by that length unless a slot interval is set, as on Cal.com."""
        return self if length_min == self.length_min else replace(self, length_min=length_min)

    @property
    def length(self) -> timedelta:
        return timedelta(minutes=self.length_min)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclass(frozen=True, slots=True)
class Span:
    """Something occupying time: a live booking or a live reservation."""

    start: datetime
    end: datetime


def _clock(text: str) -> timedelta:
    """"HH:MM" → time since local midnight ("24:00" = the end of the day)."""
    hours, _, minutes = text.partition(":")
    value = timedelta(hours=int(hours), minutes=int(minutes or 0))
    if not timedelta(0) <= value <= timedelta(hours=24):
        raise ConfigError("calcom emulator", "hours", f"{text!r} is not a time of day")
    return value


def _instant(day: date, since_midnight: timedelta, zone: ZoneInfo) -> datetime:
    whole = since_midnight.days == 1
    local = datetime.combine(day + timedelta(days=1) if whole else day, time(), zone)
    if not whole:
        local = local.replace(
            hour=since_midnight.seconds // 3600, minute=since_midnight.seconds // 60 % 60
        )
    return local.astimezone(UTC)


def windows_on(event: EventType, day: date) -> list[tuple[datetime, datetime]]:
    """The bookable windows of one local date, in UTC."""
    hours = event.date_overrides.get(day.isoformat())
    if hours is None:
        hours = event.weekly_hours.get(WEEKDAYS[day.weekday()], ())
    zone = event.zone
    return [(_instant(day, _clock(a), zone), _instant(day, _clock(b), zone)) for a, b in hours]


def candidates(event: EventType, start: datetime, end: datetime) -> Iterator[datetime]:
    """Grid starts in [start, end] (inclusive, as Cal.com treats ``end``), ignoring bookings."""
    zone = event.zone
    step = timedelta(minutes=event.slot_interval_min or event.length_min)
    day = start.astimezone(zone).date() - timedelta(days=1)
    last = end.astimezone(zone).date() + timedelta(days=1)
    while day <= last:
        for begins, ends in windows_on(event, day):
            moment = begins
            while moment + event.length <= ends:
                if start <= moment <= end:
                    yield moment
                moment += step
        day += timedelta(days=1)


def within_hours(event: EventType, start: datetime) -> bool:
    """[start, start + length] lies inside one window of its local date (grid or not)."""
    day = start.astimezone(event.zone).date()
    ends = start + event.length
    return any(
        a <= start and ends <= b
        for d in (day - timedelta(days=1), day)
        for a, b in windows_on(event, d)
    )


def in_bounds(event: EventType, start: datetime, now: datetime) -> bool:
    """Minimum notice and the rolling booking window."""
    if start < now + timedelta(minutes=event.min_notice_min):
        return False
    return event.max_days_ahead is None or start <= now + timedelta(days=event.max_days_ahead)


def overlapping_bookings(event: EventType, start: datetime, bookings: Iterable[Span]) -> int:
    """How many bookings collide with a booking at ``start`` once buffers are counted."""
    before = timedelta(minutes=event.buffer_before_min)
    after = timedelta(minutes=event.buffer_after_min)
    wants = (start - before, start + event.length + after)
    return sum(
        1 for b in bookings if b.start - before < wants[1] and wants[0] < b.end + after
    )


def overlapping(start: datetime, end: datetime, spans: Iterable[Span]) -> int:
    return sum(1 for s in spans if s.start < end and start < s.end)


def free_starts(
    event: EventType,
    start: datetime,
    end: datetime,
    now: datetime,
    bookings: Sequence[Span],
    holds: Sequence[Span],
) -> list[datetime]:
    """What ``GET /v2/slots`` offers: grid starts within hours and bounds with a free host."""
    free = []
    for moment in candidates(event, start, end):
        if not in_bounds(event, moment, now):
            continue
        taken = overlapping_bookings(event, moment, bookings)
        taken += overlapping(moment, moment + event.length, holds)
        if taken < event.hosts:
            free.append(moment)
    return free


def local_iso(moment: datetime, timezone: str) -> str:
    """Cal.com's (luxon's) ISO form: milliseconds; ``Z`` in UTC, else the zone's offset."""
    if timezone == "UTC":
        return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    local = moment.astimezone(ZoneInfo(timezone))
    return local.isoformat(timespec="milliseconds")
