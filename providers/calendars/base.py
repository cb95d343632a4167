"""The calendar-provider seam: what the booking engine needs from any calendar.

Busy time for a window, and write-once create / get / cancel. Times are aware datetimes (UTC
on the way out); intervals are half-open [start, end).

Optional capabilities, found with ``isinstance`` (the Protocols are runtime-checkable):
- ``SlotSource``: the vendor computes bookable slots itself from its own rules (Cal.com event
  types, GoHighLevel calendars); the booking engine then offers those slots (still filtered by
  its own holds and bookings) instead of deriving them from busy time.
- ``Rescheduler``: the vendor moves a booking in one write (Cal.com, GHL, Google, Graph,
  CalDAV); without it the engine books the new time, then cancels the old one.
- ``AttendeeUpdater``: the vendor lets the attendee of a booking change after it was made (an
  e-mail or a name the caller gave later in the call): Google and Graph patch the event's
  attendees, CalDAV rewrites the event's ATTENDEE, GHL updates the appointment's contact, and
  Cal.com adds the address as a guest (its v2 API cannot change the booker's own details).
- ``BookingFinder``: the vendor finds the live bookings of an attendee by phone number or
  e-mail, whoever made them (the vendor's booking page, staff, another channel), so a caller
  can move or cancel a booking Slotline never wrote (``agent.booking.finding``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol, runtime_checkable

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
    meeting_url: str = ""  # the video link the vendor made for it (Cal.com), if any


class CalendarProvider(Protocol):
    """One calendar. Raises ``providers.errors.SlotTaken`` when the time is no longer free,
    ``ProviderTimeout`` / ``ProviderAuthError`` / ``ProviderError`` for the rest."""

    async def busy(self, start: datetime, end: datetime) -> Sequence[BusyInterval]: ...

    async def create(self, request: BookingRequest) -> ProviderBooking: ...

    async def get(self, provider_booking_id: str) -> ProviderBooking | None: ...

    async def cancel(self, provider_booking_id: str, reason: str = "") -> ProviderBooking: ...


@runtime_checkable
class SlotSource(Protocol):
    """A calendar whose vendor computes the bookable slots (see the module doc)."""

    async def free_slots(
        self, start: datetime, end: datetime, duration_min: int, timezone: str
    ) -> Sequence[BusyInterval]:
        """Free slots starting in [start, end), each ``duration_min`` long, sorted."""
        ...


@runtime_checkable
class Rescheduler(Protocol):
    """A calendar that moves a booking in one write. Returns the booking as it now is (its id
    may change: Cal.com makes a new booking). Raises ``SlotTaken`` if the new time is gone."""

    async def reschedule(
        self, provider_booking_id: str, request: BookingRequest, reason: str = ""
    ) -> ProviderBooking: ...


@runtime_checkable
class AttendeeUpdater(Protocol):
    """A calendar whose booking's attendee can be updated after the booking was made."""

    async def update_attendee(self, provider_booking_id: str, attendee: Attendee) -> None:
        """Make the booking carry ``attendee`` (its e-mail invited, its name shown). Raises
        ``ProviderError`` when the booking is gone or the vendor refuses."""
        ...


@dataclass(frozen=True, slots=True)
class VendorBooking:
    """A live booking as the vendor holds it, found by its attendee (``BookingFinder``)."""

    provider_booking_id: str
    start: datetime
    end: datetime
    attendee: Attendee
    title: str = ""


@runtime_checkable
class BookingFinder(Protocol):
    """A calendar that finds bookings by their attendee, whoever made them."""

    async def find_bookings(
        self, start: datetime, end: datetime, *, phone: str = "", email: str = ""
    ) -> Sequence[VendorBooking]:
        """Live bookings starting in [start, end) whose attendee has this phone number or this
        e-mail address (either one matches; an empty one matches nothing), soonest first."""
        ...
