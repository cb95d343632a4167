"""The ``local`` calendar: bookings kept in Slotline's own store.

Busy time is the calendar's confirmed bookings; a create is the store's guarded, write-once
insert (the database refuses an overlap: ``SlotTaken``); the provider's booking id is the store's
booking id. It also moves a booking in one guarded write (``move``; the ``Rescheduler``
capability), which the booking service prefers over create-then-cancel when rescheduling.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from slotline.agent.store import BookingRecord, NewBooking, Store
from slotline.providers.calendars.base import BookingRequest, BusyInterval, ProviderBooking
from slotline.providers.errors import ProviderError

logger = logging.getLogger(__name__)

PROVIDER = "local"


class LocalCalendar:
    """``CalendarProvider`` over the store, for the calendar named ``calendar`` in settings."""

    def __init__(self, store: Store, calendar: str) -> None:
        self._store = store
        self.calendar = calendar

    async def busy(self, start: datetime, end: datetime) -> Sequence[BusyInterval]:
        booked = await self._store.bookings.confirmed(self.calendar, start, end)
        return [BusyInterval(item.start, item.end) for item in booked]

    async def create(self, request: BookingRequest) -> ProviderBooking:
        record = await self._store.bookings.create(
            NewBooking(
                calendar=self.calendar,
                provider=PROVIDER,
                start=request.start,
                end=request.end,
                attendee=request.attendee,
                idempotency_key=request.idempotency_key,
                fields=request.fields,
            )
        )
        if record.calendar != self.calendar:
            raise ProviderError(
                PROVIDER, f"idempotency key already used on calendar {record.calendar!r}"
            )
        return _provider_booking(record)

    async def get(self, provider_booking_id: str) -> ProviderBooking | None:
        record = await self._store.bookings.get(provider_booking_id)
        if record is None or record.calendar != self.calendar:
            return None
        return _provider_booking(record)

    async def cancel(self, provider_booking_id: str, reason: str = "") -> ProviderBooking:
        await self._own(provider_booking_id)
        cancelled = await self._store.bookings.cancel(provider_booking_id)
        record = self._found(provider_booking_id, cancelled)
        logger.info(
            "local calendar %s: cancelled %s (%s)",
            self.calendar,
            record.id,
            reason or "no reason given",
        )
        return _provider_booking(record)

    async def move(
        self, provider_booking_id: str, start: datetime, end: datetime
    ) -> ProviderBooking:
        """Move a confirmed booking in one write (``SlotTaken`` if the new time is booked)."""
        await self._own(provider_booking_id)
        moved = await self._store.bookings.move(provider_booking_id, start, end)
        return _provider_booking(self._found(provider_booking_id, moved))

    async def reschedule(
        self, provider_booking_id: str, request: BookingRequest, reason: str = ""
    ) -> ProviderBooking:
        """``Rescheduler``: the same guarded one-write move."""
        return await self.move(provider_booking_id, request.start, request.end)

    async def _own(self, provider_booking_id: str) -> BookingRecord:
        record = await self._store.bookings.get(provider_booking_id)
        if record is None or record.calendar != self.calendar:
            record = None
        return self._found(provider_booking_id, record)

    def _found(self, provider_booking_id: str, record: BookingRecord | None) -> BookingRecord:
        if record is None:
            raise ProviderError(
                PROVIDER, f"no booking {provider_booking_id!r} on calendar {self.calendar!r}"
            )
        return record


def _provider_booking(record: BookingRecord) -> ProviderBooking:
    return ProviderBooking(record.id, record.start, record.end, record.status)
