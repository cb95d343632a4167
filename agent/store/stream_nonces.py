"""Stream-token nonces admitted by any process sharing this store (``agent.server.stream_token``).

A token is admitted once across every worker and server: the nonce's row is inserted by the
first ``start`` that brings it, and a second insert of the same primary key finds it there.
Rows are deleted once their token has expired (a replay after that is refused as expired).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import delete

from slotline.agent.store.db import Database
from slotline.agent.store.schema import stream_nonces
from slotline.agent.store.upsert import upsert


class StreamNonceRepo:
    def __init__(self, db: Database, clock: Callable[[], datetime]) -> None:
        self._db = db
        self._clock = clock

    async def claim(self, nonce: str, expiry_s: float) -> bool:
        """True when no process has admitted ``nonce`` before (it is admitted from now on)."""
        expires_at = datetime.fromtimestamp(expiry_s, UTC)
        async with self._db.write() as conn:
            await conn.execute(delete(stream_nonces)
                               .where(stream_nonces.c.expires_at < self._clock()))
            result = await conn.execute(upsert(
                self._db.dialect, stream_nonces, {"nonce": nonce, "expires_at": expires_at},
                ["nonce"]))
            return bool(result.rowcount == 1)
