"""The do-not-call list: E.164 numbers never dialled again, whoever added them.

Checked inside every dial's claim (``CampaignRepo.claim``) and before a single call; added to
by file, by the API and by voice (a callee who says "take me off your list": ``source`` voice,
with the call's sid, which is how that attempt's outcome becomes ``do_not_call``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select

from slotline.agent.store.db import Database
from slotline.agent.store.schema import do_not_call
from slotline.agent.store.upsert import upsert


@dataclass(frozen=True, slots=True)
class DncEntry:
    phone: str
    source: str  # file | api | voice
    call_sid: str
    added_at: datetime

    def as_json(self) -> dict[str, str]:
        return {"phone": self.phone, "source": self.source, "call_sid": self.call_sid,
                "added_at": self.added_at.isoformat()}


class DncRepo:
    def __init__(self, db: Database, clock: Callable[[], datetime]) -> None:
        self._db = db
        self._clock = clock

    async def add(self, phones: Sequence[str], *, source: str, call_sid: str = "") -> int:
        """Add numbers (already E.164); one already listed keeps its first entry. Returns how
        many were new."""
        added = 0
        now = self._clock()
        async with self._db.write() as conn:
            for phone in dict.fromkeys(phones):
                values = {"phone": phone, "source": source, "call_sid": call_sid,
                          "added_at": now}
                result = await conn.execute(upsert(self._db.dialect, do_not_call, values,
                                                   ["phone"]))
                added += result.rowcount
        return added

    async def contains(self, phone: str) -> bool:
        async with self._db.read() as conn:
            found = await conn.execute(
                select(do_not_call.c.phone).where(do_not_call.c.phone == phone))
            return found.first() is not None

    async def remove(self, phone: str) -> bool:
        async with self._db.write() as conn:
            result = await conn.execute(delete(do_not_call).where(do_not_call.c.phone == phone))
            return result.rowcount == 1

    async def entries(self, limit: int = 1000, offset: int = 0) -> list[DncEntry]:
        statement = (select(do_not_call).order_by(do_not_call.c.added_at, do_not_call.c.phone)
                     .limit(limit).offset(offset))
        async with self._db.read() as conn:
            return [DncEntry(r.phone, r.source, r.call_sid, r.added_at)
                    for r in await conn.execute(statement)]
