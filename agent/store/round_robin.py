"""Round-robin assignment counts per (action, calendar), persisted so restarts keep the balance."""

from __future__ import annotations

from sqlalchemy import select

from slotline.agent.store.db import Database
from slotline.agent.store.schema import round_robin
from slotline.agent.store.upsert import upsert


class RoundRobinRepo:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def counts(self, action: str) -> dict[str, int]:
        statement = select(round_robin.c.calendar, round_robin.c.count).where(
            round_robin.c.action == action
        )
        async with self._db.read() as conn:
            return {calendar: count for calendar, count in await conn.execute(statement)}

    async def bump(self, action: str, calendar: str) -> None:
        """One more booking assigned to ``calendar`` (atomic on both databases)."""
        values = {"action": action, "calendar": calendar, "count": 1}
        increment = {"count": round_robin.c.count + 1}
        async with self._db.write() as conn:
            await conn.execute(
                upsert(self._db.dialect, round_robin, values, ["action", "calendar"], increment)
            )
