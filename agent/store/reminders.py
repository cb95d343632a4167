"""Reminder jobs: scheduled once per (booking, kind), claimed by one worker, sent once.

A worker claims due jobs (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so several processes split
the work without waiting on each other; SQLite's write lock serialises the claim). A claim is a
lease: if the worker dies before ``mark_sent``, the job is claimable again after ``lease_s``. So
a restart never loses a reminder; a crash between sending and ``mark_sent`` is the only way one
goes out twice.

A failed send either waits (``retry_later``: claimable again from ``retry_at``) or is given up
(``give_up``: ``failed_at`` and ``last_error`` set, never claimed again). Every claim counts in
``attempts``, so a job that keeps killing its worker is bounded too.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, delete, or_, select, update

from slotline.agent.store.db import Database
from slotline.agent.store.leases import claim_leased
from slotline.agent.store.records import ReminderJob
from slotline.agent.store.schema import reminder_jobs
from slotline.agent.store.upsert import upsert


class ReminderRepo:
    def __init__(self, db: Database, clock: Callable[[], datetime]) -> None:
        self._db = db
        self._clock = clock

    async def schedule(self, booking_id: str, due_by_kind: Mapping[str, datetime]) -> None:
        """Schedule one job per kind (e.g. ``{"24h": ..., "1h": ...}``); existing kinds stay."""
        async with self._db.write() as conn:
            for kind, due_at in due_by_kind.items():
                values = {
                    "id": uuid.uuid4().hex,
                    "booking_id": booking_id,
                    "kind": kind,
                    "due_at": due_at,
                }
                await conn.execute(
                    upsert(self._db.dialect, reminder_jobs, values, ["booking_id", "kind"])
                )

    async def claim_due(
        self, worker: str, *, limit: int = 50, lease_s: float = 300.0
    ) -> list[ReminderJob]:
        """Claim up to ``limit`` due, unsent jobs for ``worker`` (oldest due first)."""
        return await self._claim(worker, (), limit=limit, lease_s=lease_s)

    async def claim_for_booking(
        self, booking_id: str, kinds: Sequence[str], worker: str, *, lease_s: float = 300.0
    ) -> list[ReminderJob]:
        """``claim_due`` restricted to these kinds of one booking (a confirmation sent at once)."""
        jobs = reminder_jobs.c
        conditions = (jobs.booking_id == booking_id, jobs.kind.in_(list(kinds)))
        return await self._claim(worker, conditions, limit=len(kinds), lease_s=lease_s)

    async def _claim(
        self, worker: str, conditions: tuple[Any, ...], *, limit: int, lease_s: float
    ) -> list[ReminderJob]:
        now = self._clock()
        jobs = reminder_jobs.c
        claimed = await claim_leased(
            self._db, reminder_jobs, worker=worker, now=now, lease_s=lease_s, limit=limit,
            conditions=(
                *conditions,
                jobs.sent_at.is_(None),
                jobs.failed_at.is_(None),
                jobs.due_at <= now,
                or_(jobs.retry_at.is_(None), jobs.retry_at <= now),
            ),
            order_by=(jobs.due_at, jobs.id),
        )
        return sorted((_to_job(row) for row in claimed), key=lambda job: (job.due_at, job.id))

    async def mark_sent(self, job_id: str, worker: str) -> bool:
        """Record the send; False if the claim was lost (another worker took the job over)."""
        statement = (
            update(reminder_jobs)
            .where(
                reminder_jobs.c.id == job_id,
                reminder_jobs.c.claimed_by == worker,
                reminder_jobs.c.sent_at.is_(None),
            )
            .values(sent_at=self._clock())
        )
        async with self._db.write() as conn:
            return (await conn.execute(statement)).rowcount == 1

    async def release(self, job_id: str, worker: str) -> None:
        """Give a claimed job back (a failed send) so the next claim retries it."""
        statement = (
            update(reminder_jobs)
            .where(reminder_jobs.c.id == job_id, reminder_jobs.c.claimed_by == worker)
            .values(claimed_by=None, claimed_at=None)
        )
        async with self._db.write() as conn:
            await conn.execute(statement)

    async def retry_later(self, job_id: str, worker: str, *, at: datetime, error: str) -> bool:
        """Give a claimed job back, claimable again from ``at``; False if the claim was lost."""
        return await self._settle(
            job_id, worker, claimed_by=None, claimed_at=None, retry_at=at, last_error=error
        )

    async def give_up(self, job_id: str, worker: str, reason: str) -> bool:
        """Never send this claimed job (a permanent failure, a cancelled booking...); ``reason``
        is kept in ``last_error``. False if the claim was lost."""
        return await self._settle(job_id, worker, failed_at=self._clock(), last_error=reason)

    async def _settle(self, job_id: str, worker: str, **values: Any) -> bool:
        statement = (
            update(reminder_jobs)
            .where(
                reminder_jobs.c.id == job_id,
                reminder_jobs.c.claimed_by == worker,
                reminder_jobs.c.sent_at.is_(None),
                reminder_jobs.c.failed_at.is_(None),
            )
            .values(**values)
        )
        async with self._db.write() as conn:
            return (await conn.execute(statement)).rowcount == 1

    async def drop_unsent_except(self, booking_id: str, keep: Collection[str]) -> int:
        """Forget a booking's pending jobs of kinds not in ``keep`` (they were for a time the
        booking has moved from); returns how many."""
        statement = delete(reminder_jobs).where(
            reminder_jobs.c.booking_id == booking_id,
            reminder_jobs.c.sent_at.is_(None),
            reminder_jobs.c.kind.not_in(list(keep)),
        )
        async with self._db.write() as conn:
            return (await conn.execute(statement)).rowcount

    async def drop_unsent(self, booking_id: str) -> int:
        """Forget a booking's pending reminders (it was cancelled); returns how many."""
        statement = delete(reminder_jobs).where(
            reminder_jobs.c.booking_id == booking_id, reminder_jobs.c.sent_at.is_(None)
        )
        async with self._db.write() as conn:
            return (await conn.execute(statement)).rowcount

    async def for_booking(self, booking_id: str) -> list[ReminderJob]:
        statement = (
            select(reminder_jobs)
            .where(reminder_jobs.c.booking_id == booking_id)
            .order_by(reminder_jobs.c.due_at)
        )
        async with self._db.read() as conn:
            return [_to_job(row) for row in await conn.execute(statement)]


def _to_job(row: Row[Any]) -> ReminderJob:
    return ReminderJob(
        id=row.id,
        booking_id=row.booking_id,
        kind=row.kind,
        due_at=row.due_at,
        claimed_by=row.claimed_by,
        sent_at=row.sent_at,
        attempts=row.attempts,
        retry_at=row.retry_at,
        failed_at=row.failed_at,
        last_error=row.last_error,
    )
