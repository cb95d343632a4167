"""Bookings: written once per idempotency key, never two confirmed ones over the same time.

The guarantee is the database's (see ``agent.store.migrations``): PostgreSQL's exclusion
constraint, SQLite's triggers. On SQLite the write also checks for an overlap first, inside the
``BEGIN IMMEDIATE`` transaction, so nothing can slip in between the check and the insert. Either
way a conflicting write surfaces as ``SlotTaken``. A write that loses a race on the same
idempotency key (a retried request running alongside the first) returns the winner's booking.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, and_, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from slotline.agent.store.db import Database
from slotline.agent.store.migrations import SLOT_TAKEN_MESSAGE
from slotline.agent.store.records import (
    BookingRecord,
    NewBooking,
    attendee_from_json,
    attendee_json,
    email_key,
    phone_key,
)
from slotline.agent.store.schema import bookings
from slotline.providers.calendars.base import Attendee
from slotline.providers.errors import SlotTaken

logger = logging.getLogger(__name__)

_ID_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: easy to read out by phone
_ID_LENGTH = 8  # 32**8 ~ 1e12 ids
_PG_EXCLUSION_VIOLATION = "23P01"
_PG_UNIQUE_VIOLATION = "23505"


def new_booking_id() -> str:
    """A short booking reference a caller can read out ("7KQ2M9XD")."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(_ID_LENGTH))


class BookingRepo:
    def __init__(self, db: Database, clock: Callable[[], datetime]) -> None:
        self._db = db
        self._clock = clock

    async def create(self, new: NewBooking) -> BookingRecord:
        """Write ``new`` once: an existing booking with its idempotency key is returned unchanged;
        a confirmed booking overlapping it on the calendar raises ``SlotTaken``."""
        return await self._write(new, annotate=False)

    async def record(self, new: NewBooking) -> BookingRecord:
        """Like ``create``, but a booking already written under the key (by the ``local``
        calendar) gets ``new``'s action, call, provider ids, attendee and fields filled in."""
        return await self._write(new, annotate=True)

    async def _write(self, new: NewBooking, *, annotate: bool) -> BookingRecord:
        try:
            async with self._db.write() as conn:
                await self._db.lock_calendar(conn, new.calendar)
                existing = await _one(conn, bookings.c.idempotency_key == new.idempotency_key)
                if existing is not None:
                    return await self._annotate(conn, existing, new) if annotate else existing
                if self._db.dialect == "sqlite" and await _overlapping(conn, new):
                    raise _slot_taken(new)
                return await self._insert(conn, new)
        except IntegrityError as error:
            if not _is_conflict(error):
                raise
        # Lost a race: the same key committed first (a concurrent retry), or the slot is gone.
        if await self.by_key(new.idempotency_key) is not None:
            return await self._write(new, annotate=annotate)
        raise _slot_taken(new)

    async def _insert(self, conn: AsyncConnection, new: NewBooking) -> BookingRecord:
        now = self._clock()
        booking_id = new_booking_id()
        values = {
            "id": booking_id,
            "action": new.action,
            "calendar": new.calendar,
            "provider": new.provider,
            "provider_booking_id": new.provider_booking_id or booking_id,
            "start_utc": new.start,
            "end_utc": new.end,
            "status": "confirmed",
            "attendee": attendee_json(new.attendee),
            "phone_key": phone_key(new.attendee.phone),
            "email_key": email_key(new.attendee.email),
            "call_sid": new.call_sid,
            "fields": dict(new.fields),
            "idempotency_key": new.idempotency_key,
            "created_at": now,
            "updated_at": now,
        }
        row = (await conn.execute(insert(bookings).values(values).returning(bookings))).one()
        logger.info(
            "booking %s confirmed on %s at %s", booking_id, new.calendar, new.start.isoformat()
        )
        return _to_record(row)

    async def _annotate(
        self, conn: AsyncConnection, existing: BookingRecord, new: NewBooking
    ) -> BookingRecord:
        attendee = new.attendee if new.attendee.name else existing.attendee
        values = {
            "action": new.action or existing.action,
            "call_sid": new.call_sid or existing.call_sid,
            "provider": new.provider,
            "provider_booking_id": new.provider_booking_id or existing.provider_booking_id,
            "attendee": attendee_json(attendee),
            "phone_key": phone_key(attendee.phone),
            "email_key": email_key(attendee.email),
            "fields": {**existing.fields, **new.fields},
            "updated_at": self._clock(),
        }
        statement = (
            update(bookings).where(bookings.c.id == existing.id).values(values).returning(bookings)
        )
        return _to_record((await conn.execute(statement)).one())

    async def set_attendee(self, booking_id: str, attendee: Attendee) -> BookingRecord | None:
        """Replace a confirmed booking's attendee details (an e-mail given after booking);
        None when there is no such confirmed booking (cancelled meanwhile: left alone)."""
        statement = (
            update(bookings)
            .where(bookings.c.id == booking_id, bookings.c.status == "confirmed")
            .values(
                attendee=attendee_json(attendee),
                phone_key=phone_key(attendee.phone),
                email_key=email_key(attendee.email),
                updated_at=self._clock(),
            )
            .returning(bookings)
        )
        async with self._db.write() as conn:
            row = (await conn.execute(statement)).one_or_none()
        return None if row is None else _to_record(row)

    async def cancel(self, booking_id: str) -> BookingRecord | None:
        """Mark cancelled (cancelling twice is harmless); None when there is no such booking.

        A cancelled booking releases its idempotency key (it gets ``:cancelled:<id>`` appended),
        so the same caller may book the same time again later in the call."""
        statement = (
            update(bookings)
            .where(bookings.c.id == booking_id, bookings.c.status == "confirmed")
            .values(
                status="cancelled",
                idempotency_key=bookings.c.idempotency_key + f":cancelled:{booking_id}",
                updated_at=self._clock(),
            )
            .returning(bookings)
        )
        async with self._db.write() as conn:
            row = (await conn.execute(statement)).one_or_none()
            if row is None:
                return await _one(conn, bookings.c.id == booking_id)
        logger.info("booking %s cancelled", booking_id)
        return _to_record(row)

    async def move(
        self,
        booking_id: str,
        start: datetime,
        end: datetime,
        *,
        provider_booking_id: str | None = None,
    ) -> BookingRecord | None:
        """Move a confirmed booking in one write: it is never lost, and the new time is guarded
        like a new booking (``SlotTaken``). None when there is no such booking.
        ``provider_booking_id``: the vendor's id after its own move, when it changed."""
        if end <= start:
            raise ValueError(f"booking must end after it starts: {start.isoformat()}")
        async with self._db.write() as conn:
            current = await _one(conn, bookings.c.id == booking_id)
            if current is None:
                return None
            if current.status != "confirmed":
                raise ValueError(f"booking {booking_id} is {current.status}; it cannot move")
            probe = NewBooking(
                current.calendar, current.provider, start, end, current.attendee, booking_id
            )
            await self._db.lock_calendar(conn, current.calendar)
            if self._db.dialect == "sqlite" and await _overlapping(conn, probe, booking_id):
                raise _slot_taken(probe)
            statement = (
                update(bookings)
                .where(bookings.c.id == booking_id, bookings.c.status == "confirmed")
                .values(
                    start_utc=start,
                    end_utc=end,
                    updated_at=self._clock(),
                    provider_booking_id=provider_booking_id or current.provider_booking_id,
                )
                .returning(bookings)
            )
            try:
                row = (await conn.execute(statement)).one_or_none()
            except IntegrityError as error:
                if not _is_conflict(error):
                    raise
                raise _slot_taken(probe) from None
            if row is None:  # cancelled while we queued for the calendar
                raise ValueError(f"booking {booking_id} was cancelled; it cannot move")
        logger.info("booking %s moved to %s", booking_id, start.isoformat())
        return _to_record(row)

    async def get(self, booking_id: str) -> BookingRecord | None:
        async with self._db.read() as conn:
            return await _one(conn, bookings.c.id == booking_id)

    async def by_key(self, idempotency_key: str) -> BookingRecord | None:
        async with self._db.read() as conn:
            return await _one(conn, bookings.c.idempotency_key == idempotency_key)

    async def by_provider_id(
        self, calendar: str, provider_booking_id: str
    ) -> BookingRecord | None:
        """The booking of ``calendar`` the vendor knows as ``provider_booking_id`` (a confirmed
        one first, when a cancelled one shares the id)."""
        found = await self._many(bookings.c.calendar == calendar,
                                 bookings.c.provider_booking_id == provider_booking_id)
        return min(found, key=lambda r: r.status != "confirmed", default=None)

    async def by_keys(self, idempotency_keys: Sequence[str]) -> list[BookingRecord]:
        return await self._many(bookings.c.idempotency_key.in_(list(idempotency_keys)))

    async def confirmed(self, calendar: str, start: datetime, end: datetime) -> list[BookingRecord]:
        """Confirmed bookings of ``calendar`` overlapping ``[start, end)``, by start."""
        return await self.confirmed_on([calendar], start, end)

    async def confirmed_on(
        self, calendars: Sequence[str], start: datetime, end: datetime
    ) -> list[BookingRecord]:
        """``confirmed`` for several calendars in one query, by start."""
        return await self._many(
            bookings.c.calendar.in_(list(calendars)),
            bookings.c.status == "confirmed",
            bookings.c.start_utc < end,
            bookings.c.end_utc > start,
        )

    async def for_phone(self, phone: str, *, ending_after: datetime) -> list[BookingRecord]:
        """Confirmed bookings of the attendee with this phone still to come, soonest first."""
        key = phone_key(phone)
        if not key:
            return []
        return await self._many(
            bookings.c.phone_key == key,
            bookings.c.status == "confirmed",
            bookings.c.end_utc > ending_after,
        )

    async def for_email(self, email: str, *, ending_after: datetime) -> list[BookingRecord]:
        """Confirmed bookings of the attendee with this e-mail (any case, spaces around it
        ignored) still to come, soonest first."""
        key = email_key(email)
        if not key:
            return []
        return await self._many(
            bookings.c.email_key == key,
            bookings.c.status == "confirmed",
            bookings.c.end_utc > ending_after,
        )

    async def for_call(self, call_sid: str) -> list[BookingRecord]:
        return await self._many(bookings.c.call_sid == call_sid)

    async def recent(self, limit: int = 100, offset: int = 0) -> list[BookingRecord]:
        """Newest first (by creation)."""
        statement = (
            select(bookings)
            .order_by(bookings.c.created_at.desc(), bookings.c.id)
            .limit(limit)
            .offset(offset)
        )
        async with self._db.read() as conn:
            return [_to_record(row) for row in await conn.execute(statement)]

    async def _many(self, *conditions: Any) -> list[BookingRecord]:
        statement = (
            select(bookings).where(and_(*conditions)).order_by(bookings.c.start_utc, bookings.c.id)
        )
        async with self._db.read() as conn:
            return [_to_record(row) for row in await conn.execute(statement)]


async def _one(conn: AsyncConnection, condition: Any) -> BookingRecord | None:
    row = (await conn.execute(select(bookings).where(condition))).one_or_none()
    return None if row is None else _to_record(row)


async def _overlapping(conn: AsyncConnection, new: NewBooking, except_id: str = "") -> bool:
    statement = (
        select(bookings.c.id)
        .where(
            bookings.c.calendar == new.calendar,
            bookings.c.status == "confirmed",
            bookings.c.start_utc < new.end,
            bookings.c.end_utc > new.start,
            bookings.c.id != except_id,
        )
        .limit(1)
    )
    return (await conn.execute(statement)).first() is not None


def _is_conflict(error: IntegrityError) -> bool:
    """An overlap refused by the database, or a lost race on the idempotency key."""
    sqlstate = getattr(error.orig, "sqlstate", None)
    if sqlstate is not None:
        return sqlstate in (_PG_EXCLUSION_VIOLATION, _PG_UNIQUE_VIOLATION)
    text = str(error.orig)
    return SLOT_TAKEN_MESSAGE in text or "bookings.idempotency_key" in text


def _slot_taken(new: NewBooking) -> SlotTaken:
    return SlotTaken(new.provider, f"{new.calendar} is booked at {new.start.isoformat()}")


def _to_record(row: Row[Any]) -> BookingRecord:
    return BookingRecord(
        id=row.id,
        action=row.action,
        calendar=row.calendar,
        provider=row.provider,
        provider_booking_id=row.provider_booking_id,
        start=row.start_utc,
        end=row.end_utc,
        status=row.status,
        attendee=attendee_from_json(row.attendee),
        call_sid=row.call_sid,
        fields=dict(row.fields),
        idempotency_key=row.idempotency_key,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )
