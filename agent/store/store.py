"""The one store: SQLite (embedded default) or PostgreSQL (scale-out), same code on both.

    async with open_store("sqlite:///slotline.db") as store:
        booking = await store.bookings.create(NewBooking(...))

Opening connects and applies pending migrations (under a lock, so N processes may start at once).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from sqlalchemy import text

from slotline.agent.store.attempts import AttemptRepo
from slotline.agent.store.bookings import BookingRepo
from slotline.agent.store.call_webhooks import CallWebhookRepo
from slotline.agent.store.calls import CallRepo
from slotline.agent.store.campaigns import CampaignRepo
from slotline.agent.store.db import Database
from slotline.agent.store.dnc import DncRepo
from slotline.agent.store.holds import HoldRepo
from slotline.agent.store.migrations import migrate
from slotline.agent.store.recordings import RecordingRepo
from slotline.agent.store.reminders import ReminderRepo
from slotline.agent.store.round_robin import RoundRobinRepo
from slotline.agent.store.stream_nonces import StreamNonceRepo
from slotline.agent.store.url import Dialect
from slotline.agent.store.waitlist import WaitlistRepo


def utc_now() -> datetime:
    return datetime.now(UTC)


class Store:
    """Repositories over one database. Build with ``open_store`` (or ``Store.open`` + ``close``)."""

    def __init__(self, db: Database, clock: Callable[[], datetime] = utc_now) -> None:
        self._db = db
        self.bookings = BookingRepo(db, clock)
        self.calls = CallRepo(db)
        self.holds = HoldRepo(db, clock)
        self.reminders = ReminderRepo(db, clock)
        self.round_robin = RoundRobinRepo(db)
        self.campaigns = CampaignRepo(db, clock)
        self.attempts = AttemptRepo(db, clock)
        self.dnc = DncRepo(db, clock)
        self.recordings = RecordingRepo(db)  # where call recordings are
        self.call_webhooks = CallWebhookRepo(db, clock)
        self.stream_nonces = StreamNonceRepo(db, clock)  # stream tokens admitted, anywhere
        self.waitlist = WaitlistRepo(db, clock)  # callers waiting for a time (agent.waitlist)
        self.schema_version = 0

    @property
    def dialect(self) -> Dialect:
        return self._db.dialect

    @classmethod
    async def open(
        cls, url: str, *, clock: Callable[[], datetime] = utc_now, pool_size: int = 10
    ) -> Store:
        db = Database.connect(url, pool_size=pool_size)
        try:
            await db.prepare()
            store = cls(db, clock)
            store.schema_version = await migrate(db)
        except BaseException:
            await db.close()
            raise
        return store

    async def close(self) -> None:
        await self._db.close()

    async def ping(self) -> None:
        """Raises when the database cannot be reached (readiness)."""
        async with self._db.read() as conn:
            await conn.execute(text("SELECT 1"))


@asynccontextmanager
async def open_store(
    url: str, *, clock: Callable[[], datetime] = utc_now, pool_size: int = 10
) -> AsyncIterator[Store]:
    store = await Store.open(url, clock=clock, pool_size=pool_size)
    try:
        yield store
    finally:
        await store.close()
