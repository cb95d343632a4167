"""Throwaway databases for tests and benchmarks: created empty, dropped after.

``scratch_store_url("postgresql", ...)`` makes a fresh database next to the admin URL's (CREATE
DATABASE is ~0.1 s here, so each test can have its own); ``"sqlite"`` a file in ``directory``.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from slotline.agent.store.url import Dialect, async_url


@asynccontextmanager
async def scratch_store_url(
    dialect: Dialect, *, directory: Path, postgres_admin_url: str
) -> AsyncIterator[str]:
    """A store URL for an empty database of ``dialect``, removed afterwards."""
    if dialect == "sqlite":
        path = directory / f"scratch-{secrets.token_hex(4)}.db"
        try:
            yield f"sqlite:///{path}"
        finally:
            for leftover in (
                path,
                path.with_name(path.name + "-wal"),
                path.with_name(path.name + "-shm"),
            ):
                leftover.unlink(missing_ok=True)
        return
    async with scratch_postgres(postgres_admin_url) as url:
        yield url


@asynccontextmanager
async def scratch_postgres(admin_url: str) -> AsyncIterator[str]:
    """Create an empty database next to ``admin_url``'s; yield its store URL; drop it after.

    ``admin_url`` is a ``postgresql://`` store URL whose user may CREATE DATABASE.
    """
    dialect, driver_url = async_url(admin_url)
    if dialect != "postgresql":
        raise ValueError(f"scratch_postgres needs a postgresql:// URL, got {dialect}")
    name = f"slotline_scratch_{secrets.token_hex(6)}"
    admin = create_async_engine(driver_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        try:
            scratch = driver_url.set(drivername="postgresql", database=name)
            yield scratch.render_as_string(hide_password=False)
        finally:
            async with admin.connect() as conn:
                await conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.dispose()
