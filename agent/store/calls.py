"""The persistent call log (``GET /api/calls``): one row per call, rewritten as it progresses."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row, select

from agent.store.db import Database
from agent.store.records import StoredCall
from agent.store.schema import bookings, calls
from agent.store.upsert import upsert


class CallRepo:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def save(self, call: StoredCall) -> None:
        """Insert or replace the call's row (``bookings`` is derived, not stored here)."""
        values = {
            "call_sid": call.call_sid,
            "stream_sid": call.stream_sid,
            "status": call.status,
            "flow": call.flow,
            "node": call.node,
            "variables": dict(call.variables),
            "turns": [dict(turn) for turn in call.turns],
            "errors": [dict(error) for error in call.errors],
            "dtmf": list(call.dtmf),
            "llm": dict(call.llm),
            "direction": call.direction,
            "campaign_id": call.campaign_id,
            "contact_id": call.contact_id,
            "started_at": call.started_at,
            "ended_at": call.ended_at,
        }
        changed = {key: value for key, value in values.items() if key != "call_sid"}
        async with self._db.write() as conn:
            await conn.execute(upsert(self._db.dialect, calls, values, ["call_sid"], changed))

    async def get(self, call_sid: str) -> StoredCall | None:
        """The call with the ids of the bookings it made (from the bookings table)."""
        async with self._db.read() as conn:
            row = (await conn.execute(select(calls).where(calls.c.call_sid == call_sid))).first()
            if row is None:
                return None
            booked = await conn.execute(
                select(bookings.c.id)
                .where(bookings.c.call_sid == call_sid)
                .order_by(bookings.c.created_at, bookings.c.id)
            )
            return _to_call(row, tuple(booked.scalars()))

    async def recent(self, limit: int = 100, offset: int = 0) -> list[StoredCall]:
        """Newest first (by start); ``bookings`` is left empty in these summaries."""
        statement = (
            select(calls)
            .order_by(calls.c.started_at.desc(), calls.c.call_sid)
            .limit(limit)
            .offset(offset)
        )
        async with self._db.read() as conn:
            return [_to_call(row, ()) for row in await conn.execute(statement)]


def _to_call(row: Row[Any], booking_ids: tuple[str, ...]) -> StoredCall:
    return StoredCall(
        call_sid=row.call_sid,
        stream_sid=row.stream_sid,
        flow=row.flow,
        status=row.status,
        node=row.node,
        started_at=row.started_at,
        ended_at=row.ended_at,
        variables={str(key): str(value) for key, value in row.variables.items()},
        turns=tuple(row.turns),
        errors=tuple(row.errors),
        dtmf=tuple(row.dtmf),
        bookings=booking_ids,
        llm={str(key): int(value) for key, value in row.llm.items()},
        direction=row.direction,
        campaign_id=row.campaign_id,
        contact_id=row.contact_id,
    )
