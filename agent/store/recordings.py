"""Where each call's recording file is (``agent.server.recording_store`` writes them).

One row per call: the API finds a call's WAV here, and the retention sweep finds the files old
enough to delete by ``created_at`` (indexed). The file is written before its row, so a row
always names a file that was complete when it was added.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select

from slotline.agent.store.db import Database
from slotline.agent.store.schema import recordings
from slotline.agent.store.upsert import upsert


@dataclass(frozen=True, slots=True)
class StoredRecording:
    call_sid: str
    path: str  # the WAV file, absolute
    duration_s: float
    created_at: datetime


class RecordingRepo:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(self, recording: StoredRecording) -> None:
        """Keep ``recording``; a call recorded again (the same sid) keeps the newest."""
        values = {"call_sid": recording.call_sid, "path": recording.path,
                  "duration_s": recording.duration_s, "created_at": recording.created_at}
        update = {key: value for key, value in values.items() if key != "call_sid"}
        async with self._db.write() as conn:
            await conn.execute(upsert(self._db.dialect, recordings, values, ["call_sid"], update))

    async def get(self, call_sid: str) -> StoredRecording | None:
        async with self._db.read() as conn:
            row = (await conn.execute(
                select(recordings).where(recordings.c.call_sid == call_sid))).first()
        if row is None:
            return None
        return StoredRecording(row.call_sid, row.path, row.duration_s, row.created_at)

    async def created_before(self, cutoff: datetime, limit: int = 1000) -> list[StoredRecording]:
        """The oldest recordings made before ``cutoff``, at most ``limit``."""
        statement = (select(recordings).where(recordings.c.created_at < cutoff)
                     .order_by(recordings.c.created_at).limit(limit))
        async with self._db.read() as conn:
            return [StoredRecording(r.call_sid, r.path, r.duration_s, r.created_at)
                    for r in await conn.execute(statement)]

    async def delete(self, call_sids: Sequence[str]) -> int:
        """Forget these calls' recordings; returns how many rows went."""
        if not call_sids:
            return 0
        async with self._db.write() as conn:
            result = await conn.execute(
                delete(recordings).where(recordings.c.call_sid.in_(list(call_sids))))
            return result.rowcount
