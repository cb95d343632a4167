"""Writing bookings for the booking service: hold, write once, record, compensate.

Per calendar of the chosen group (one calendar, or all of them for ``collective``):

1. hold the time in the store (another caller's live hold = taken);
2. create at the calendar with idempotency key ``hash(call, slot start, action):calendar``
   (``local``: the store's guarded insert; a vendor: its own de-duplication where it has one);
3. record it in the bookings table under the same key (for ``local`` the row exists and gets
   the action and call filled in; for a vendor the row is new and guarded like any other).

A group is all or nothing whatever stops it: ``SlotTaken`` (then the next group is tried), any
other ``ProviderError``, a timeout, a bug, or the call's task being cancelled mid-write (then the
error goes on up: the caller is told the booking failed, never that the time was taken). What
this attempt already booked is cancelled again ("undone") in a task of its own that a cancelled
call cannot interrupt (``asyncio.shield``); each cancel is retried ``undo_attempts`` times with
doubling back-off. The outcome is logged at WARNING with the booking ids and counted
(``bookings{result="undone"|"undo_retried"|"undo_failed"}``, ``provider_errors`` per failed
try). A booking that could not be undone stays ``confirmed`` in the store — it is, at the
calendar — and ``BookingIncomplete`` names it, so the call can record and report it rather than
tell the caller nothing was booked. The holds are released either way. A confirmed booking is
only ever cancelled by ``cancel``, or by the compensation of the very attempt that made it.

Not undone: a write whose outcome is unknown (Slotline's own ``write_timeout_s`` ran out, or the
call was cancelled, while the vendor was still answering). The adapters look up a lost answer by
the idempotency key themselves (Cal.com, GHL, Google, Graph, CalDAV, webhook); past that, the
calendar protocol has no look-up by key, so the key is logged for whoever settles it by hand.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime

from slotline.agent import tracing
from slotline.agent.booking.intervals import Slot
from slotline.agent.booking.pool import PooledSlot
from slotline.agent.booking.service_types import (
    ActionConfig,
    Booked,
    BookingDetails,
    CalendarHandle,
)
from slotline.agent.server.metrics import Metrics
from slotline.agent.store import BookingRecord, NewBooking, Store
from slotline.providers.calendars.base import BookingRequest, Rescheduler
from slotline.providers.errors import BookingIncomplete, ProviderError, ProviderTimeout, SlotTaken

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
        self._undoing: set[asyncio.Task[tuple[str, ...]]] = set()  # may outlive their call

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
        writing = ""  # the calendar whose write is under way
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
                writing = calendar
                made.append(await self._write(config, calendar, slot, keys[calendar], details))
            writing = ""
        except BaseException as failure:  # all or nothing, whatever stopped the attempt
            taken = isinstance(failure, SlotTaken)
            if taken:
                logger.info("%s taken at write time (%s)", slot.start.isoformat(), failure)
            else:
                self._note_failure(writing, keys.get(writing, ""), failure)
            if made:
                await self._undo_shielded(config, tuple(made), failure)
            if taken:
                return None
            raise
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
                with tracing.calendar("create", calendar, handle.kind):
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
            # the vendor's meeting link travels with the booking (the e-mail invitation's)
            fields={**details.fields, "meeting_url": created.meeting_url}
            if created.meeting_url else details.fields,
        )
        try:
            return await self._store.bookings.record(new)
        except SlotTaken:
            # The vendor accepted a time Slotline has already recorded for someone else (another
            # process booked it without the vendor noticing): give the vendor's booking back.
            undone = await self._retrying(
                config, f"{calendar}/{created.provider_booking_id}",
                lambda: self._cancel_at(
                    handle, created.provider_booking_id, "double booking refused",
                    config.write_timeout_s,
                ),
            )  # fmt: skip
            if not undone:
                raise BookingIncomplete(
                    handle.kind,
                    f"calendar {calendar} booked a time already recorded here and would not "
                    f"cancel it: {created.provider_booking_id}",
                    (f"{calendar}/{created.provider_booking_id}",),
                ) from None
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
                with tracing.calendar("reschedule", old.calendar, handle.kind):
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
        cancelled = await self._cancel_record(record, reason, 10.0)
        if self._metrics is not None:
            self._metrics.bookings.inc("cancelled")
        return cancelled

    async def _cancel_record(
        self, record: BookingRecord, reason: str, timeout_s: float
    ) -> BookingRecord | None:
        handle = self._calendars.get(record.calendar)
        if handle is None:
            logger.warning(
                "booking %s: calendar %s is no longer configured; cancelled here only",
                record.id,
                record.calendar,
            )
        else:
            await self._cancel_at(handle, record.provider_booking_id, reason, timeout_s)
        cancelled = await self._store.bookings.cancel(record.id)
        await self._store.reminders.drop_unsent(record.id)
        return cancelled

    # -- undoing part of a booking ---------------------------------------------------------------

    def _note_failure(self, writing: str, key: str, failure: BaseException) -> None:
        if isinstance(failure, ProviderError) and self._metrics is not None:
            self._metrics.provider_errors.inc(failure.provider)
        unknown = isinstance(failure, asyncio.CancelledError) or (
            isinstance(failure, ProviderError) and failure.retryable
        )
        if writing and unknown:
            logger.warning(
                "calendar %s: the write's outcome is unknown (%s); a booking made there "
                "carries idempotency key %s",
                writing, type(failure).__name__, key,
            )  # fmt: skip

    async def _undo_shielded(
        self, config: ActionConfig, made: tuple[BookingRecord, ...], failure: BaseException
    ) -> None:
        """Undo ``made`` in a task of its own: the call being cancelled now (the caller hung
        up, maybe the very thing that stopped the write) must not leave half a booking."""
        task = asyncio.create_task(
            self._undo(config, made, failure), name=f"undo:{config.name}:{made[0].id}"
        )
        self._undoing.add(task)
        task.add_done_callback(self._undoing.discard)
        left = await asyncio.shield(task)
        if left and isinstance(failure, Exception):  # a cancellation goes on up as it is
            raise BookingIncomplete(
                made[0].provider,
                f"booking failed part-way ({failure}) and {', '.join(left)} could not be "
                "cancelled: still confirmed",
                left,
            ) from failure

    async def _undo(
        self, config: ActionConfig, made: tuple[BookingRecord, ...], failure: BaseException
    ) -> tuple[str, ...]:
        """Cancel this attempt's bookings, retried; the ids that are still confirmed."""
        reason = "the booking of the other calendars failed"
        undone = await asyncio.gather(*(
            self._retrying(
                config, record.id,
                functools.partial(self._undo_one, record.id, reason, config.write_timeout_s),
            )
            for record in made
        ))  # fmt: skip
        left = tuple(record.id for record, ok in zip(made, undone, strict=True) if not ok)
        ids = ", ".join(record.id for record in made)
        why = f"{type(failure).__name__}: {failure}"
        if left:
            logger.warning("booking %s failed part-way (%s); NOT undone, still confirmed: %s",
                           ids, why, ", ".join(left))  # fmt: skip
        else:
            logger.warning("booking %s failed part-way (%s); undone", ids, why)
        if self._metrics is not None:
            self._metrics.bookings.inc("undo_failed" if left else "undone")
        return left

    async def _undo_one(self, booking_id: str, reason: str, timeout_s: float) -> None:
        record = await self._store.bookings.get(booking_id)  # a retry finds it cancelled
        if record is not None and record.status == "confirmed":
            await self._cancel_record(record, reason, timeout_s)

    async def _retrying(
        self, config: ActionConfig, what: str, undo: Callable[[], Awaitable[object]]
    ) -> bool:
        """``undo()`` up to ``undo_attempts`` times, with doubling back-off; whether it took."""
        delay_s = config.undo_backoff_s
        for attempt in range(1, config.undo_attempts + 1):
            try:
                await undo()
                return True
            except ProviderError as error:
                if self._metrics is not None:
                    self._metrics.provider_errors.inc(error.provider)
                logger.warning("undoing %s: try %d of %d failed: %s",
                               what, attempt, config.undo_attempts, error)  # fmt: skip
            if attempt < config.undo_attempts:
                if self._metrics is not None:
                    self._metrics.bookings.inc("undo_retried")
                await asyncio.sleep(delay_s)
                delay_s *= 2
        return False

    async def _cancel_at(
        self, handle: CalendarHandle, provider_booking_id: str, reason: str, timeout_s: float
    ) -> None:
        try:
            async with asyncio.timeout(timeout_s):
                with tracing.calendar("cancel", handle.name, handle.kind):
                    await handle.provider.cancel(provider_booking_id, reason)
        except TimeoutError:
            raise ProviderTimeout(
                handle.kind, f"calendar {handle.name}: cancel not confirmed in {timeout_s} s"
            ) from None
