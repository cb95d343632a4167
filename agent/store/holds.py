"""Slot holds: a short reservation of a time on a calendar while one caller books it.

A hold keeps the time out of other callers' proposals and makes two Slotline processes booking
the same external calendar (which may not refuse doubles itself) take turns. Holds expire on
their own (``expires_at``), so a crashed process never blocks a slot for long. Two live holds
of different keys never overlap on one calendar: the database refuses it (PostgreSQL exclusion
constraint, SQLite trigger), and ``place`` answers False.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, delete, insert, or_, select
from sqlalchemy.exc import IntegrityError

from slotline.agent.store.db import Database
from slotline.agent.store.migrations import SLOT_TAKEN_MESSAGE
from slotline.agent.store.records import SlotHold
from slotline.agent.store.schema import holds

logger = logging.getLogger(__name__)

_PG_EXCLUSION_VIOLATION = "23P01"


class HoldRepo:
    def __init__(self, db: Database, clock: Callable[[], datetime]) -> None:
        self._db = db
        self._clock = clock

    async def place(
        self, key: str, calendar: str, start: datetime, end: datetime, *, owner: str, ttl_s: float
    ) -> bool:
        """Hold ``[start, end)`` on ``calendar`` for ``ttl_s`` seconds; False when another live
        hold overlaps it. Placing again under the same key moves or refreshes the hold; a new
        hold replaces the owner's other holds on that calendar (a caller holds one time)."""
        now = self._clock()
        replaced = [holds.c.expires_at <= now, holds.c.key == key]
        if owner:
            replaced.append(holds.c.owner == owner)
        values = {
            "key": key,
            "calendar": calendar,
            "start_utc": start,
            "end_utc": end,
            "expires_at": now + timedelta(seconds=ttl_s),
            "owner": owner,
        }
        try:
            async with self._db.write() as conn:
                await self._db.lock_calendar(conn, calendar)
                await conn.execute(
                    delete(holds).where(holds.c.calendar == calendar, or_(*replaced))
                )
                if self._db.dialect == "sqlite":
                    clash = select(holds.c.key).where(
                        holds.c.calendar == calendar,
                        holds.c.start_utc < end,
                        holds.c.end_utc > start,
                    )
                    if (await conn.execute(clash.limit(1))).first() is not None:
                        return False
                await conn.execute(insert(holds).values(values))
        except IntegrityError as error:
            if getattr(error.orig, "sqlstate", None) == _PG_EXCLUSION_VIOLATION:
                return False
            if SLOT_TAKEN_MESSAGE in str(error.orig):
                return False
            raise
        return True

    async def release(self, key: str) -> None:
        async with self._db.write() as conn:
            await conn.execute(delete(holds).where(holds.c.key == key))

    async def live(
        self, calendar: str, start: datetime, end: datetime, *, exclude_owner: str = ""
    ) -> list[SlotHold]:
        """Unexpired holds on ``calendar`` overlapping ``[start, end)``, except the owner's."""
        return await self.live_on([calendar], start, end, exclude_owner=exclude_owner)

    async def live_on(
        self,
        calendars: Sequence[str],
        start: datetime,
        end: datetime,
        *,
        exclude_owner: str = "",
    ) -> list[SlotHold]:
        """``live`` for several calendars in one query, by start."""
        statement = (
            select(holds)
            .where(
                holds.c.calendar.in_(list(calendars)),
                holds.c.expires_at > self._clock(),
                holds.c.start_utc < end,
                holds.c.end_utc > start,
                holds.c.owner != exclude_owner,
            )
            .order_by(holds.c.start_utc, holds.c.calendar)
        )
        async with self._db.read() as conn:
            return [_to_hold(row) for row in await conn.execute(statement)]


def _to_hold(row: Row[Any]) -> SlotHold:
    return SlotHold(
        key=row.key,
        calendar=row.calendar,
        start=row.start_utc,
        end=row.end_utc,
        expires_at=row.expires_at,
        owner=row.owner,
    )
