"""The caller's bookings wherever they were made: Slotline's store and every vendor calendar.

A caller may have booked through Cal.com's own page, GoHighLevel, a receptionist or another
channel: only the vendor knows those. ``find_bookings`` asks the store and, at the same time,
every calendar that is a ``BookingFinder``, each by phone and e-mail (a caller calling from
another phone is found by the e-mail they give), the vendors each within ``timeout_s``; a vendor
that fails or is slow is reported and left out, never the whole answer. One booking counts once:
one the store finds by both phone and e-mail is listed once, and a vendor booking the store
already holds (same calendar and vendor id) is the store's.

A booking only the vendor has is *adopted* before it is moved or cancelled: written to the store
under its vendor id (key ``found:<calendar>:<vendor id>``, so adopting twice writes once) with
the first booking action that pools its calendar. From there the usual cancel and reschedule do
the vendor's write and keep the store, the reminders and the notices in step.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from slotline.agent.booking.service_types import ActionConfig, CalendarHandle
from slotline.agent.store import BookingRecord, NewBooking, Store
from slotline.providers.calendars.base import Attendee, BookingFinder, VendorBooking
from slotline.providers.errors import ProviderError, ProviderTimeout

log = logging.getLogger(__name__)

# How far ahead a caller's booking is looked for: a booking page may take bookings months out.
FIND_AHEAD = timedelta(days=180)


@dataclass(frozen=True, slots=True)
class FoundBooking:
    """One booking of the caller: the store's (``record``) or, if Slotline has none, the
    vendor's alone."""

    calendar: str
    provider: str  # the calendar's kind: "calcom", "ghl", ..., "local"
    provider_booking_id: str
    start: datetime
    end: datetime
    attendee: Attendee
    record: BookingRecord | None = None

    @property
    def reference(self) -> str:
        """How the flow names it: the store's booking id, else ``<calendar>:<vendor id>``."""
        return self.record.id if self.record else f"{self.calendar}:{self.provider_booking_id}"

    @classmethod
    def stored(cls, record: BookingRecord) -> FoundBooking:
        return cls(record.calendar, record.provider, record.provider_booking_id, record.start,
                   record.end, record.attendee, record)


async def find_bookings(
    store: Store,
    calendars: Mapping[str, CalendarHandle],
    now: datetime,
    *,
    phone: str,
    email: str,
    timeout_s: float,
    on_error: Callable[[ProviderError], None] | None = None,
) -> list[FoundBooking]:
    """The caller's live bookings to come, soonest first, each once."""
    finders = {name: handle for name, handle in calendars.items()
               if isinstance(handle.provider, BookingFinder)}
    async with asyncio.TaskGroup() as group:
        by_phone = group.create_task(store.bookings.for_phone(phone, ending_after=now),
                                     name="find-bookings-store-phone")
        by_email = group.create_task(store.bookings.for_email(email, ending_after=now),
                                     name="find-bookings-store-email")
        asked = {name: group.create_task(
                     _ask(name, handle, now, phone, email, timeout_s, on_error),
                     name=f"find-bookings-{name}")
                 for name, handle in finders.items()}
    stored = {r.id: r for r in [*by_phone.result(), *by_email.result()]}  # each once
    found = [FoundBooking.stored(r) for r in stored.values()]
    known = {(r.calendar, r.provider_booking_id) for r in found}
    for name, task in asked.items():
        for booking in task.result():
            if (name, booking.provider_booking_id) in known:
                continue
            known.add((name, booking.provider_booking_id))
            found.append(await _as_found(store, finders[name], booking))
    return sorted(found, key=lambda item: item.start)


async def adopt(
    store: Store, found: FoundBooking, actions: Sequence[ActionConfig]
) -> BookingRecord:
    """The store's record of ``found`` (written now if only the vendor had it)."""
    if found.record is not None:
        return found.record
    action = next((a.name for a in actions if found.calendar in a.calendars), "")
    return await store.bookings.create(NewBooking(
        calendar=found.calendar, provider=found.provider, start=found.start, end=found.end,
        attendee=found.attendee, idempotency_key=adoption_key(found), action=action,
        provider_booking_id=found.provider_booking_id,
    ))


def adoption_key(found: FoundBooking) -> str:
    return f"found:{found.calendar}:{found.provider_booking_id}"


async def _ask(
    name: str, handle: CalendarHandle, now: datetime, phone: str, email: str, timeout_s: float,
    on_error: Callable[[ProviderError], None] | None,
) -> Sequence[VendorBooking]:
    assert isinstance(handle.provider, BookingFinder)
    try:
        async with asyncio.timeout(timeout_s):
            return await handle.provider.find_bookings(now, now + FIND_AHEAD, phone=phone,
                                                       email=email)
    except (ProviderError, TimeoutError) as exc:
        error = exc if isinstance(exc, ProviderError) else ProviderTimeout(
            handle.kind, f"finding bookings on {name} took over {timeout_s:g} s")
        log.warning("finding bookings on calendar %s failed: %s", name, error)
        if on_error is not None:
            on_error(error)
        return ()


async def _as_found(store: Store, handle: CalendarHandle, booking: VendorBooking) -> FoundBooking:
    """A vendor's booking, as the store's when the store holds it (made or adopted here)."""
    record = await store.bookings.by_provider_id(handle.name, booking.provider_booking_id)
    if record is not None and record.status == "confirmed":
        return FoundBooking.stored(record)
    return FoundBooking(handle.name, handle.kind, booking.provider_booking_id, booking.start,
                        booking.end, booking.attendee)
