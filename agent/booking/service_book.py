"""Writing bookings for the booking service: hold, write once, record, compensate.

Per calendar of the chosen group (one calendar, or all of them for ``collective``):

1. hold the time in the store (another caller's live hold = taken);
2. create at the calendar with idempotency key ``hash(call, slot start, action):calendar``
   (``local``: the store's guarded insert; a vendor: its own de-duplication where it has one);
3. record it in the bookings table under the same key (for ``local`` the row exists and gets
   the action and call filled in; for a vendor the row is new and guarded like any other).

``SlotTaken`` at any step undoes what this attempt booked (a collective group is all or nothing)
and tries the next group; the holds are released either way. A confirmed booking is only ever
cancelled by ``cancel``, or by the compensation of the very attempt that made it.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable, Mapping
from datetime import datetime

from agent.booking.intervals import Slot
from agent.booking.pool import PooledSlot
from agent.booking.service_types import ActionConfig, Booked, BookingDetails, CalendarHandle
from agent.metrics import Metrics
from agent.store import BookingRecord, NewBooking, Store
from providers.calendars.base import BookingRequest, Rescheduler
from providers.errors import ProviderError, ProviderTimeout, SlotTaken

logger = logging.getLogger(__name__)


def idempotency_key(call_sid: str, start: datetime, action: str) -> str:
    """Stable per (call, slot, action): a retried booking request finds the first one."""
    digest = hashlib.sha256(f"{call_sid}|{start.isoformat()}|{action}".encode())
    return digest.hexdigest()[:32]


class Booker:
    def __init__(
        self,
        store: Store,
        calendars: Mapping[str, CalendarHandle],
        clock: Callable[[], datetime],
        metrics: Metrics | None,
    ) -> None:
        self._store = store
        self._calendars = calendars
        self._clock = clock
        self._metrics = metrics

    async def hold(self, config: ActionConfig, pooled: PooledSlot, call_sid: str) -> bool:
        key = idempotency_key(call_sid, pooled.slot.start, config.name)
        placed: list[str] = []
        for calendar in pooled.calendars:
            if not await self._store.holds.place(
                f"{key}:{calendar}", calendar, pooled.slot.start, pooled.slot.end,
                owner=call_sid, ttl_s=config.hold_ttl_s,
            ):  # fmt: skip
                for held in placed:
                    await self._store.holds.release(held)
                return False
            placed.append(f"{key}:{calendar}")
        return True

    async def book(
        self, config: ActionConfig, pooled: PooledSlot, details: BookingDetails, caller_tz: str
    ) -> Booked | None:
        """The booking, or None when every candidate calendar turned out to be taken."""
        base = idempotency_key(details.call_sid, pooled.slot.start, config.name)
        if config.strategy == "collective":
            groups = [pooled.calendars]
        else:
            groups = [(calendar,) for calendar in pooled.calendars + pooled.alternates]
        keys = {calendar: f"{base}:{calendar}" for group in groups for calendar in group}
        already = {
            record.calendar: record
            for record in await self._store.bookings.by_keys(list(keys.values()))
            if record.status == "confirmed"
        }
        for group in groups:
            if already and all(calendar in already for calendar in group):
                return Booked(tuple(already[calendar] for calendar in group), caller_tz)
        for group in groups:
            made = await self._book_group(config, pooled.slot, group, keys, details)
            if made is not None:
                if self._metrics is not None:
                    self._metrics.bookings.inc("booked")
                return Booked(made, caller_tz)
        return None

    async def _book_group(
        self,
        config: ActionConfig,
        slot: Slot,
        group: tuple[str, ...],
        keys: Mapping[str, str],
        details: BookingDetails,
    ) -> tuple[BookingRecord, ...] | None:
        held: list[str] = []
        made: list[BookingRecord] = []
        try:
            for calendar in group:
                if not await self._store.holds.place(
                    keys[calendar], calendar, slot.start, slot.end,
                    owner=details.call_sid, ttl_s=config.hold_ttl_s,
                ):  # fmt: skip
                    logger.info("%s: %s is held by another caller", calendar, slot.start)
                    return None
                held.append(keys[calendar])
            for calendar in group:
                made.append(await self._write(config, calendar, slot, keys[calendar], details))
        except SlotTaken as taken:
            logger.info("%s taken at write time (%s)", slot.start.isoformat(), taken)
            for record in made:  # this attempt's own bookings: a collective is all or nothing
                await self.cancel(record.id, "collective booking incomplete")
            return None
        finally:
            for key in held:
                await self._store.holds.release(key)
        if config.strategy == "round_robin":
            for record in made:
                await self._store.round_robin.bump(config.name, record.calendar)
        return tuple(made)

    async def _write(
        self,
        config: ActionConfig,
        calendar: str,
        slot: Slot,
        key: str,
        details: BookingDetails,
    ) -> BookingRecord:
        handle = self._calendars[calendar]
        request = BookingRequest(
            start=slot.start,
            end=slot.end,
            attendee=details.attendee,
            idempotency_key=key,
            title=config.title or config.name,
            fields=details.fields,
        )
        try:
            async with asyncio.timeout(config.write_timeout_s):
                created = await handle.provider.create(request)
        except TimeoutError:
            raise ProviderTimeout(
                handle.kind, f"calendar {calendar}: no confirmation in {config.write_timeout_s} s"
            ) from None
        if created.status != "confirmed":
            raise ProviderError(handle.kind, f"calendar {calendar} returned a cancelled booking")
        new = NewBooking(
            calendar=calendar,
            provider=handle.kind,
            start=created.start,
            end=created.end,
            attendee=details.attendee,
            idempotency_key=key,
            action=config.name,
            call_sid=details.call_sid,
            provider_booking_id=created.provider_booking_id,
            fields=details.fields,
        )
        try:
            return await self._store.bookings.record(new)
        except SlotTaken:
            # The vendor accepted a time Slotline has already recorded for someone else (another
            # process booked it without the vendor noticing): give the vendor's booking back.
            await self._cancel_at(
                handle,
                created.provider_booking_id,
                "double booking refused",
                config.write_timeout_s,
            )
            raise

    async def move(
        self,
        config: ActionConfig,
        old: BookingRecord,
        handle: CalendarHandle,
        slot: Slot,
        call_sid: str,
        caller_tz: str,
    ) -> Booked | None:
        """Move ``old`` on its own calendar in one write; None when the new time is taken.
        The vendor may give the moved booking a new id (Cal.com does); the record follows it."""
        assert isinstance(handle.provider, Rescheduler)
        key = f"{idempotency_key(call_sid, slot.start, config.name)}:{old.calendar}"
        request = BookingRequest(
            start=slot.start,
            end=slot.end,
            attendee=old.attendee,
            idempotency_key=key,
            title=config.title or config.name,
            fields=old.fields,
        )
        if not await self._store.holds.place(
            key, old.calendar, slot.start, slot.end, owner=call_sid, ttl_s=config.hold_ttl_s
        ):
            return None
        try:
            async with asyncio.timeout(config.write_timeout_s):
                now = await handle.provider.reschedule(
                    old.provider_booking_id, request, "rescheduled by the caller"
                )
            moved = await self._store.bookings.move(
                old.id, now.start, now.end, provider_booking_id=now.provider_booking_id
            )
        except SlotTaken:
            return None
        except TimeoutError:
            raise ProviderTimeout(
                handle.kind, f"calendar {old.calendar}: move not confirmed in time"
            ) from None
        finally:
            await self._store.holds.release(key)
        if moved is None:
            raise ProviderError(handle.kind, f"booking {old.id} vanished while moving")
        await self._store.reminders.drop_unsent(old.id)  # due times changed; reschedule them
        if self._metrics is not None:
            self._metrics.bookings.inc("rescheduled")
        return Booked((moved,), caller_tz)

    async def cancel(self, booking_id: str, reason: str) -> BookingRecord | None:
        record = await self._store.bookings.get(booking_id)
        if record is None or record.status != "confirmed":
            return record
        handle = self._calendars.get(record.calendar)
        if handle is None:
            logger.warning(
                "booking %s: calendar %s is no longer configured; cancelled here only",
                booking_id,
                record.calendar,
            )
        else:
            await self._cancel_at(handle, record.provider_booking_id, reason, 10.0)
        cancelled = await self._store.bookings.cancel(booking_id)
        await self._store.reminders.drop_unsent(booking_id)
        if self._metrics is not None:
            self._metrics.bookings.inc("cancelled")
        return cancelled

    async def _cancel_at(
        self, handle: CalendarHandle, provider_booking_id: str, reason: str, timeout_s: float
    ) -> None:
        try:
            async with asyncio.timeout(timeout_s):
                await handle.provider.cancel(provider_booking_id, reason)
        except TimeoutError:
            raise ProviderTimeout(
                handle.kind, f"calendar {handle.name}: cancel not confirmed in {timeout_s} s"
            ) from None
