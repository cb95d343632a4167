"""The GoHighLevel emulator's calendar model, as plain data and pure functions (no I/O).

A ``GhlCalendarRules`` calendar offers slots from its weekly hours (wall clock in its IANA zone,
so a DST day has the hours it really has), slot length, interval (0: the length) and minimum
notice; ``rule_slots`` lays them out in real elapsed minutes, and a slot is free while no live
(non-cancelled) ``Appointment`` of that calendar overlaps it (``overlaps``). ``Refused`` is a
request GHL answers with an error status; the parsers here raise it for GHL's own complaints
(a time not in milliseconds, an ISO time without an offset, an unknown zone).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_WEEKDAYS = {day: ((time(9), time(17)),) for day in range(5)}  # Mon–Fri 09:00–17:00


@dataclass(frozen=True, slots=True)
class GhlCalendarRules:
    """One emulated calendar. ``weekly_hours`` maps ``date.weekday()`` (0 = Monday) to open
    periods in the calendar's zone; ``slot_interval_min`` 0 means "the slot length"."""

    id: str
    timezone: str = "America/New_York"
    slot_duration_min: int = 30
    slot_interval_min: int = 0
    weekly_hours: Mapping[int, tuple[tuple[time, time], ...]] = field(
        default_factory=lambda: dict(_WEEKDAYS)
    )
    min_notice_min: int = 0
    name: str = ""
    auto_confirm: bool = True
    # The calendar's meeting location, a "custom" location configuration holding a video link:
    # each appointment booked on it carries it as its ``address`` ("" = none).
    meeting_link: str = ""


@dataclass(slots=True)
class Contact:
    id: str
    name: str = ""
    email: str = ""
    phone: str = ""
    timezone: str = ""
    added: str = ""
    tags: list[str] = field(default_factory=list)
    custom_fields: dict[str, str] = field(default_factory=dict)  # custom field id → value


@dataclass(slots=True)
class Appointment:
    id: str
    calendar_id: str
    contact_id: str
    start: datetime
    end: datetime
    title: str
    description: str
    status: str
    added: str
    updated: str
    address: str = ""  # the meeting location: a link, a street address or a phone number
    location_type: str = "default"  # meetingLocationType


class Refused(Exception):
    """A request GHL refuses: answered ``{"statusCode": status, "message": message}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def rule_slots(
    calendar: GhlCalendarRules, start: datetime, end: datetime, earliest: datetime
) -> Iterator[datetime]:
    """Slot starts the calendar's rules allow in [start, end] and not before ``earliest``,
    oldest first, in UTC. Periods are wall-clock in the calendar's zone; steps are real
    minutes (DST-safe)."""
    zone = ZoneInfo(calendar.timezone)
    length = timedelta(minutes=calendar.slot_duration_min)
    step = timedelta(minutes=calendar.slot_interval_min or calendar.slot_duration_min)
    day: date = start.astimezone(zone).date() - timedelta(days=1)
    while day <= end.astimezone(zone).date():
        for opens, closes in calendar.weekly_hours.get(day.weekday(), ()):
            slot = datetime.combine(day, opens, zone).astimezone(UTC)
            stop = datetime.combine(day, closes, zone).astimezone(UTC)
            while slot + length <= stop:
                if start <= slot <= end and slot >= earliest:
                    yield slot
                slot += step
        day += timedelta(days=1)


def overlaps(
    appointments: Iterable[Appointment], calendar_id: str, start: datetime, end: datetime,
    skip: str | None,
) -> bool:  # fmt: skip
    """Whether a live appointment of the calendar (other than ``skip``) overlaps [start, end)."""
    return any(
        item.calendar_id == calendar_id and item.status != "cancelled" and item.id != skip
        and item.start < end and item.end > start
        for item in appointments
    )


def new_id() -> str:
    return uuid.uuid4().hex[:20]


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def from_ms(text: str) -> datetime:
    try:
        return datetime.fromtimestamp(float(text) / 1000, UTC)
    except (ValueError, OverflowError):
        raise Refused(400, f"{text!r} is not a time in milliseconds") from None


def parse_time(text: str, name: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise Refused(400, f"{name} must be a valid ISO 8601 date string") from None
    if moment.tzinfo is None:
        raise Refused(400, f"{name} must carry a UTC offset")
    return moment.astimezone(UTC)


def zone_named(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise Refused(400, f"Invalid timezone {name!r}") from None
