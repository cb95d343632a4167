"""A SQLite store bounds every pooled connection's page cache (issue 17, the soak).

SQLite's default cache (2,000 KiB) on each of the pool's connections would let a server hold
~20 MB of pages as its calls table grows; each connection now keeps at most ``SQLITE_CACHE_KIB``.
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.pool import QueuePool

from slotline.agent.store.db import SQLITE_CACHE_KIB, SQLITE_POOL_MAX, Database

POOL = 3


async def test_every_pooled_sqlite_connection_has_the_bounded_page_cache(tmp_path: Path) -> None:
    db = Database.connect(f"sqlite:///{tmp_path}/cache.db", pool_size=POOL)
    try:
        await db.prepare()
        async with AsyncExitStack() as held:  # the whole pool at once: each its own connection
            connections = [await held.enter_async_context(db.read()) for _ in range(POOL)]
            sizes = await asyncio.gather(*(
                conn.execute(text("PRAGMA cache_size")) for conn in connections))
            assert [r.scalar_one() for r in sizes] == [-SQLITE_CACHE_KIB] * POOL
    finally:
        await db.close()


async def test_a_sqlite_pool_holds_at_most_a_few_connections(tmp_path: Path) -> None:
    """Each connection is a thread with its own cache (``SQLITE_POOL_MAX``): a server's pool of
    10 is capped; a smaller one is kept."""
    for asked, kept in ((10, SQLITE_POOL_MAX), (2, 2)):
        db = Database.connect(f"sqlite:///{tmp_path}/pool{asked}.db", pool_size=asked)
        try:
            pool = db.engine.sync_engine.pool
            assert isinstance(pool, QueuePool)
            assert pool.size() == kept and pool.overflow() <= 0
        finally:
            await db.close()
