"""Claiming due jobs with a lease: the one query the reminder and call-webhook queues share.

Several processes split the work without waiting on each other (``FOR UPDATE SKIP LOCKED`` on
PostgreSQL; SQLite's write lock serialises the claim). A claim is a lease: a job whose claimer
died is claimable again once ``lease_s`` has passed. Every claim counts in ``attempts``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Row, Table, or_, select, update

from slotline.agent.store.db import Database


async def claim_leased(
    db: Database,
    table: Table,
    *,
    worker: str,
    now: datetime,
    lease_s: float,
    limit: int,
    conditions: Sequence[ColumnElement[bool]],
    order_by: Sequence[Any],
) -> list[Row[Any]]:
    """Claim up to ``limit`` rows of ``table`` meeting ``conditions`` (due, not done) whose
    lease is free or has run out, in ``order_by`` order; returns the claimed rows."""
    c = table.c
    due = (
        select(c.id)
        .where(
            *conditions,
            or_(c.claimed_by.is_(None), c.claimed_at <= now - timedelta(seconds=lease_s)),
        )
        .order_by(*order_by)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    async with db.write() as conn:
        ids = list((await conn.execute(due)).scalars())
        if not ids:
            return []
        claimed = await conn.execute(
            update(table)
            .where(c.id.in_(ids))
            .values(claimed_by=worker, claimed_at=now, attempts=c.attempts + 1)
            .returning(table)
        )
        return list(claimed)
