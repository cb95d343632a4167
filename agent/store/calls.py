"""The persistent call log (``GET /api/calls``): one row per call, rewritten as it progresses.

A live call's row names its writer and last write (``writer``, ``written_at``);
``agent.call.persist`` decides from them which in-progress rows lost their process and closes
them here with ``fail_abandoned`` — a compare-and-set on ``written_at``, so a call whose writer
is in fact alive and just wrote is never touched, and two processes starting together close a
row once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Row, select, update

from slotline.agent.store.db import Database
from slotline.agent.store.records import StoredCall
from slotline.agent.store.schema import bookings, calls
from slotline.agent.store.upsert import replace_row

IN_PROGRESS = "in-progress"


@dataclass(frozen=True, slots=True)
class LiveRow:
    """An in-progress row as the start-up sweep sees it."""

    call_sid: str
    writer: str
    written_at: datetime | None  # None: written before writers were recorded
    started_at: datetime


def _row(call: StoredCall, written_at: datetime) -> dict[str, Any]:
    return {
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
        "phone": call.phone,
        "started_at": call.started_at,
        "ended_at": call.ended_at,
        "writer": call.writer,
        "written_at": written_at,
        "outcome": call.outcome,
        "summary": call.summary,
        "path": list(call.path),
        "dropped": dict(call.dropped),
    }


class CallRepo:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def save(self, call: StoredCall) -> None:
        """Insert or replace the call's row (``bookings`` is derived, not stored here);
        ``written_at`` is now."""
        await self.save_many([call])

    async def save_many(self, many: Sequence[StoredCall]) -> None:
        """``save`` for several calls in one transaction (all or none)."""
        if not many:
            return
        now = datetime.now(UTC)
        rows = [_row(call, now) for call in many]
        async with self._db.write() as conn:
            await conn.execute(replace_row(self._db.dialect, calls, ("call_sid",)), rows)

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

    async def in_progress(self) -> list[LiveRow]:
        """Every row still marked in progress (live calls, and calls whose process died)."""
        statement = select(
            calls.c.call_sid, calls.c.writer, calls.c.written_at, calls.c.started_at
        ).where(calls.c.status == IN_PROGRESS)
        async with self._db.read() as conn:
            return [LiveRow(r.call_sid, r.writer, r.written_at, r.started_at)
                    for r in await conn.execute(statement)]

    async def fail_abandoned(self, row: LiveRow, error: dict[str, str], ended_at: datetime) -> bool:
        """Mark ``row``'s call failed with ``error`` appended, unless it was written since it
        was read (its writer is alive after all). True when this call closed it."""
        same_write = (calls.c.written_at.is_(None) if row.written_at is None
                      else calls.c.written_at == row.written_at)
        async with self._db.write() as conn:
            found = (await conn.execute(
                select(calls.c.errors).where(calls.c.call_sid == row.call_sid,
                                             calls.c.status == IN_PROGRESS, same_write)
            )).first()
            if found is None:
                return False
            done = await conn.execute(
                update(calls)
                .where(calls.c.call_sid == row.call_sid, calls.c.status == IN_PROGRESS,
                       same_write)
                .values(status="failed", ended_at=ended_at, errors=[*found.errors, error],
                        written_at=ended_at)
            )
            return bool(done.rowcount)


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
        phone=row.phone,
        writer=row.writer,
        written_at=row.written_at,
        outcome=row.outcome,
        summary=row.summary,
        path=tuple(str(node) for node in row.path),
        dropped={str(key): int(value) for key, value in row.dropped.items()},
    )
