"""The calendar-provider seam: what the booking engine needs from any calendar.

Busy time for a window, and write-once create / get / cancel. Times are aware datetimes (UTC
on the way out); intervals are half-open [start, end). A provider that computes bookable slots
itself (Cal.com, GoHighLevel) will add an optional capability in its own module; the booking
engine computes slots from busy time for the rest.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol

BookingStatus = Literal["confirmed", "cancelled"]


@dataclass(frozen=True, slots=True)
class BusyInterval:
    start: datetime
    end: datetime


@dataclass(frozen=True, slots=True)
class Attendee:
    name: str
    email: str = ""
    phone: str = ""
    timezone: str = ""


@dataclass(frozen=True, slots=True)
class BookingRequest:
    """One write. ``idempotency_key`` is stable per (call, slot): a retried create with the same
    key must return the booking already made, never a second one."""

    start: datetime
    end: datetime
    attendee: Attendee
    idempotency_key: str
    title: str = ""
    fields: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ProviderBooking:
    provider_booking_id: str
    start: datetime
    end: datetime
    status: BookingStatus


class CalendarProvider(Protocol):
    """One calendar. Raises ``providers.errors.SlotTaken`` when the time is no longer free,
    ``ProviderTimeout`` / ``ProviderAuthError`` / ``ProviderError`` for the rest."""

    async def busy(self, start: datetime, end: datetime) -> Sequence[BusyInterval]: ...

    async def create(self, request: BookingRequest) -> ProviderBooking: ...

    async def get(self, provider_booking_id: str) -> ProviderBooking | None: ...

    async def cancel(self, provider_booking_id: str, reason: str = "") -> ProviderBooking: ...
