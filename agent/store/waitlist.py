"""The waitlist: callers who wanted a time none of the calendars had (``agent.waitlist``).

One entry per call and booking action (a retried flow step finds the entry it made); entries
from the API carry no call. ``webhook_status`` says what became of the ``waitlist.added`` event.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from slotline.agent.store.db import Database
from slotline.agent.store.schema import waitlist


@dataclass(frozen=True, slots=True)
class NewWaitlistEntry:
    action: str
    name: str = ""
    phone: str = ""
    email: str = ""
    timezone: str = ""
    preference: str = ""
    notes: str = ""
    source: str = "api"  # voice | api
    call_sid: str = ""


@dataclass(frozen=True, slots=True)
class WaitlistEntry:
    id: str
    action: str
    name: str
    phone: str
    email: str
    timezone: str
    preference: str
    notes: str
    source: str
    call_sid: str
    created_at: datetime
    webhook_status: str

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "action": self.action, "name": self.name, "phone": self.phone,
            "email": self.email, "timezone": self.timezone, "preference": self.preference,
            "notes": self.notes, "source": self.source, "call_sid": self.call_sid,
            "created_at": self.created_at.isoformat(), "webhook_status": self.webhook_status,
        }


def _entry(row: Any) -> WaitlistEntry:
    return WaitlistEntry(
        row.id, row.action, row.name, row.phone, row.email, row.timezone, row.preference,
        row.notes, row.source, row.call_sid, row.created_at, row.webhook_status,
    )


class WaitlistRepo:
    def __init__(self, db: Database, clock: Callable[[], datetime]) -> None:
        self._db = db
        self._clock = clock

    async def add(self, new: NewWaitlistEntry) -> tuple[WaitlistEntry, bool]:
        """The entry and whether it is new (False: this call already added it)."""
        if new.call_sid:
            found = await self._of_call(new.call_sid, new.action)
            if found is not None:
                return found, False
        entry_id = f"w_{uuid.uuid4().hex[:16]}"
        values = {
            "id": entry_id, "action": new.action, "name": new.name,
            "phone": new.phone, "email": new.email, "timezone": new.timezone,
            "preference": new.preference, "notes": new.notes, "source": new.source,
            "call_sid": new.call_sid, "created_at": self._clock(), "webhook_status": "",
        }
        try:
            async with self._db.write() as conn:
                await conn.execute(waitlist.insert().values(values))
        except IntegrityError:  # the same call and action, added at the same moment elsewhere
            found = await self._of_call(new.call_sid, new.action)
            if found is None:
                raise
            return found, False
        entry = await self.get(entry_id)
        assert entry is not None
        return entry, True

    async def _of_call(self, call_sid: str, action: str) -> WaitlistEntry | None:
        statement = select(waitlist).where(
            waitlist.c.call_sid == call_sid, waitlist.c.action == action
        )
        async with self._db.read() as conn:
            row = (await conn.execute(statement)).first()
        return _entry(row) if row is not None else None

    async def get(self, entry_id: str) -> WaitlistEntry | None:
        async with self._db.read() as conn:
            row = (await conn.execute(select(waitlist).where(waitlist.c.id == entry_id))).first()
        return _entry(row) if row is not None else None

    async def entries(
        self, *, action: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[WaitlistEntry]:
        """Oldest first (first come, first served)."""
        statement = select(waitlist).order_by(waitlist.c.created_at, waitlist.c.id)
        if action is not None:
            statement = statement.where(waitlist.c.action == action)
        async with self._db.read() as conn:
            rows = await conn.execute(statement.limit(limit).offset(offset))
            return [_entry(row) for row in rows]

    async def remove(self, entry_id: str) -> bool:
        async with self._db.write() as conn:
            result = await conn.execute(delete(waitlist).where(waitlist.c.id == entry_id))
            return result.rowcount == 1

    async def set_webhook_status(self, entry_id: str, status: str) -> None:
        async with self._db.write() as conn:
            await conn.execute(
                update(waitlist).where(waitlist.c.id == entry_id).values(webhook_status=status)
            )
