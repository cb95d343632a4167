"""Attendee details that arrive after the booking: a name or an e-mail the caller gave later.

Slotline's own record comes first (confirmations and ``GET /api/bookings`` read it), then the
vendor's booking where the vendor allows a change (``providers.calendars.base.AttendeeUpdater``:
Google and Graph patch the event's attendees, CalDAV rewrites its ATTENDEE, GHL updates the
appointment's contact, Cal.com adds the address as a guest). A ``local`` calendar is the store
itself. A vendor that refuses or does not answer in ``timeout_s`` leaves the store updated and
raises its ``ProviderError``: the caller of :func:`update_attendee` reports it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging

from slotline.agent import tracing
from slotline.agent.booking.service_types import CalendarHandle
from slotline.agent.store import BookingRecord, Store
from slotline.providers.calendars.base import Attendee, AttendeeUpdater
from slotline.providers.errors import ProviderTimeout

logger = logging.getLogger(__name__)


def merged(old: Attendee, *, name: str = "", email: str = "") -> Attendee:
    """``old`` with what the caller said later; what was not said is kept."""
    return dataclasses.replace(old, name=name or old.name, email=email or old.email)


async def update_attendee(
    store: Store,
    handle: CalendarHandle | None,
    record: BookingRecord,
    attendee: Attendee,
    timeout_s: float,
) -> BookingRecord | None:
    """Make the confirmed booking ``record`` carry ``attendee``, in the store and at the
    vendor. None when it is no longer confirmed (cancelled meanwhile: left alone)."""
    if record.status != "confirmed":
        return None
    if attendee == record.attendee:
        return record
    updated = await store.bookings.set_attendee(record.id, attendee)
    if updated is None:
        return None
    provider = handle.provider if handle is not None else None
    if handle is None or not isinstance(provider, AttendeeUpdater):
        logger.info("booking %s: attendee updated in the store (%s keeps its own copy)",
                    record.id, record.provider or "no calendar")  # fmt: skip
        return updated
    if not record.provider_booking_id:
        return updated
    try:
        async with asyncio.timeout(timeout_s):
            with tracing.calendar("update_attendee", handle.name, handle.kind):
                await provider.update_attendee(record.provider_booking_id, attendee)
    except TimeoutError:
        raise ProviderTimeout(
            handle.kind, f"calendar {handle.name}: attendee update not confirmed in {timeout_s} s"
        ) from None
    logger.info("booking %s: attendee updated in the store and at %s", record.id, handle.kind)
    return updated
