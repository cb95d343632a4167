"""The engine and the two ways in: ``read()`` and ``write()`` transactions.

SQLite: the driver's own transaction handling is switched off and Slotline emits ``BEGIN`` itself
(SQLAlchemy's documented recipe), so a write transaction can start with ``BEGIN IMMEDIATE``: it
takes the database's write lock up front, so a check-then-insert inside it cannot interleave with
another writer, in this process or another. Within one process writers also queue on an
``asyncio.Lock`` first, so they wait on the event loop rather than in SQLite's busy-retry loop.
WAL mode (set once by ``prepare``) lets readers run alongside a writer.

PostgreSQL: plain READ COMMITTED transactions; the constraints do the guarding.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiosqlite
from sqlalchemy import event, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from slotline.agent.store.url import Dialect, async_url
from slotline.providers.extras import require

logger = logging.getLogger(__name__)

_SQLITE_BUSY_TIMEOUT_MS = 10_000  # another process's write transaction; ours are milliseconds
# Page cache per pooled connection: SQLite's default (2,000 KiB) times the pool (10) allows
# ~20 MB per process once the file outgrows it (read-mostly use; in the soak, writes from the
# other connections keep the caches near empty). The hot pages (indexes, the newest rows) fit
# in this, and the OS page cache keeps the rest of the file.
SQLITE_CACHE_KIB = 512
# Connections to one SQLite file at most (each is a thread of aiosqlite's, with its own page
# cache and, in glibc, its own malloc arena). SQLite runs one writer at a time, and a statement
# here takes well under a millisecond, so more buy no throughput: in a 50-call soak a pool of 10
# held 3.3-4.3 MB in SQLite and ~1 MB of arena per thread; a pool of 4 (3 in use) held 1.7 MB and
# the server's RSS was 4 MB lower at ten minutes (2026-12-07, ``python -m bench.soak``).
SQLITE_POOL_MAX = 4
# Switching a new file to WAL needs a moment alone with it; processes starting together retry.
_WAL_ATTEMPTS = 50
_WAL_RETRY_S = 0.1
_BEGIN_OPTION = "slotline_begin"
# PostgreSQL advisory-lock namespace for "writes to one calendar": concurrent inserts that
# conflict through an exclusion constraint wait on each other's rows and can deadlock; taking
# this lock first makes them queue instead (the constraint stays the guarantee).
_CALENDAR_LOCK_NAMESPACE = 0x510F


class Database:
    """One engine for the life of the process. Create with ``Database.connect(url)``."""

    def __init__(self, engine: AsyncEngine, dialect: Dialect, sqlite_path: str = "") -> None:
        self.engine = engine
        self.dialect: Dialect = dialect
        self._sqlite_path = sqlite_path
        self._write_lock = asyncio.Lock() if dialect == "sqlite" else None

    @classmethod
    def connect(cls, url: str, *, pool_size: int = 10) -> Database:
        dialect, driver_url = async_url(url)
        # A statement's bound parameters are callers' names, numbers and words; SQLAlchemy puts
        # them into every error it raises (and into its own log lines), and errors get logged.
        if dialect == "sqlite":
            engine = create_async_engine(
                driver_url, pool_size=min(pool_size, SQLITE_POOL_MAX), max_overflow=0,
                hide_parameters=True,
            )
            _use_explicit_sqlite_transactions(engine)
            return cls(engine, dialect, driver_url.database or "")
        require("postgres", "store.url: postgresql", "asyncpg")
        engine = create_async_engine(
            driver_url,
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_pre_ping=True,
            hide_parameters=True,
        )
        return cls(engine, dialect)

    async def prepare(self) -> None:
        """Once per process before use: put a SQLite file in WAL mode (it stays so)."""
        if self.dialect != "sqlite":
            return
        for attempt in range(_WAL_ATTEMPTS):
            try:
                async with aiosqlite.connect(self._sqlite_path) as raw:
                    cursor = await raw.execute("PRAGMA journal_mode=WAL")
                    row = await cursor.fetchone()
                    if row is not None and str(row[0]).lower() == "wal":
                        return
                    raise RuntimeError(f"SQLite refused WAL mode for {self._sqlite_path}")
            except aiosqlite.OperationalError:
                if attempt == _WAL_ATTEMPTS - 1:
                    raise
                await asyncio.sleep(_WAL_RETRY_S)

    async def lock_calendar(self, conn: AsyncConnection, calendar: str) -> None:
        """Inside a write transaction: queue behind other writes to ``calendar`` (PostgreSQL;
        SQLite's write transaction already excludes every other writer)."""
        if self.dialect == "postgresql":
            await conn.execute(
                text("SELECT pg_advisory_xact_lock(:namespace, hashtext(:calendar))"),
                {"namespace": _CALENDAR_LOCK_NAMESPACE, "calendar": calendar},
            )

    async def close(self) -> None:
        await self.engine.dispose()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A transaction for reads (rolled back at the end)."""
        async with self.engine.connect() as conn:
            yield conn

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A transaction committed at the end (rolled back on error). On SQLite it holds the
        database's write lock from its first statement."""
        if self._write_lock is None:
            async with self.engine.begin() as conn:
                yield conn
            return
        async with self._write_lock, self.engine.connect() as conn:
            await conn.execution_options(**{_BEGIN_OPTION: "BEGIN IMMEDIATE"})
            async with conn.begin():
                yield conn


def _use_explicit_sqlite_transactions(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: object) -> None:
        dbapi_connection.isolation_level = None  # the driver must not BEGIN on its own
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={_SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")  # negative: KiB, not pages
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql(conn.get_execution_options().get(_BEGIN_OPTION, "BEGIN"))
