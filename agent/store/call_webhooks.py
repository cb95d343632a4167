"""The webhook outbox: events POSTed to ``call_webhook.url``, one row each, sent until a 2xx.

Two events use it, told apart by ``event``: ``call.ended``, one per call (the row's id is the
call's sid), and ``waitlist.added``, one per waitlist entry (the row's id is the entry's id,
inserted with the entry: ``agent.store.waitlist``). The id is the ``Idempotency-Key``.

``record_outcome`` writes the call's summary and outcome onto its ``calls`` row and, when a
webhook is configured, inserts the job — in one transaction, so a call that has an outcome has
its job, and a second call end for the same sid (a replayed stream) adds no second job.

A sender claims due jobs (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so several processes split
the work; SQLite's write lock serialises the claim). A claim is a lease: a sender that dies
mid-POST leaves the job claimable again after ``lease_s``. Every claim counts in ``attempts``.
After a failed POST the job waits (``retry_later``: claimable again from ``next_at``) or, at the
last attempt, is given up (``give_up``: ``failed_at`` and ``last_error`` set, kept for an
operator to see). A 2xx sets ``delivered_at``; a delivered job is never claimed again. The only
way a receiver hears a call twice is a crash between its 2xx and ``mark_delivered`` — which is
why every attempt carries the same ``Idempotency-Key``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, func, select, update

from slotline.agent.store.db import Database
from slotline.agent.store.leases import claim_leased
from slotline.agent.store.schema import call_webhook_jobs, calls
from slotline.agent.store.upsert import upsert

CALL_ENDED = "call.ended"


def job_values(job_id: str, event: str, payload: str, now: datetime) -> dict[str, Any]:
    """A new job's row: due at once, never tried."""
    return {"id": job_id, "event": event, "payload": payload, "attempts": 0, "next_at": now,
            "created_at": now, "last_error": ""}


@dataclass(frozen=True, slots=True)
class CallWebhookJob:
    id: str  # the call's sid (call.ended) or the waitlist entry's id; the Idempotency-Key
    event: str  # call.ended | waitlist.added: the X-Slotline-Event header
    payload: str  # the JSON text POSTed, the same bytes on every attempt
    attempts: int  # claims so far, this one included
    next_at: datetime
    created_at: datetime
    delivered_at: datetime | None = None
    failed_at: datetime | None = None
    last_error: str = ""
    claimed_by: str | None = None


class CallWebhookRepo:
    def __init__(self, db: Database, clock: Callable[[], datetime]) -> None:
        self._db = db
        self._clock = clock
        self._listeners: list[Callable[[], None]] = []

    def on_queued(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Have ``listener`` (a sender's wake) called when this process queues a job through
        ``queued``; returns the call that stops it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def queued(self) -> None:
        """A job was queued in this process (a waitlist entry's event): wake the listeners
        rather than leave the job to their next poll."""
        for listener in tuple(self._listeners):
            listener()

    async def record_outcome(
        self, call_sid: str, *, outcome: str, summary: str, payload: str | None
    ) -> bool:
        """Set the call's outcome and summary; with a ``payload``, enqueue its webhook, due
        now. True when a job was added (False: none asked for, or the call already has one)."""
        now = self._clock()
        async with self._db.write() as conn:
            await conn.execute(
                update(calls).where(calls.c.call_sid == call_sid)
                .values(outcome=outcome, summary=summary)
            )
            if payload is None:
                return False
            values = job_values(call_sid, CALL_ENDED, payload, now)
            added = await conn.execute(upsert(self._db.dialect, call_webhook_jobs, values, ["id"]))
            return added.rowcount == 1

    async def claim_due(
        self, worker: str, *, limit: int, lease_s: float
    ) -> list[CallWebhookJob]:
        """Claim up to ``limit`` due, undelivered jobs for ``worker`` (oldest due first)."""
        now = self._clock()
        jobs = call_webhook_jobs.c
        claimed = await claim_leased(
            self._db, call_webhook_jobs, worker=worker, now=now, lease_s=lease_s, limit=limit,
            conditions=(jobs.delivered_at.is_(None), jobs.failed_at.is_(None),
                        jobs.next_at <= now),
            order_by=(jobs.next_at, jobs.id),
        )
        return sorted((_to_job(row) for row in claimed), key=lambda j: (j.next_at, j.id))

    async def mark_delivered(self, job_id: str, worker: str) -> bool:
        """The receiver answered 2xx; False if the claim was lost."""
        return await self._settle(job_id, worker, delivered_at=self._clock(), last_error="")

    async def retry_later(self, job_id: str, worker: str, *, at: datetime, error: str) -> bool:
        """Give the claimed job back, claimable again from ``at``; False if the claim was lost."""
        return await self._settle(
            job_id, worker, claimed_by=None, claimed_at=None, next_at=at, last_error=error
        )

    async def give_up(self, job_id: str, worker: str, error: str) -> bool:
        """Never send this job again (its attempts are spent); it stays, with ``error``."""
        return await self._settle(job_id, worker, failed_at=self._clock(), last_error=error)

    async def release(self, job_id: str, worker: str) -> bool:
        """Give a claimed job back untried (shutting down mid-send): due at once, and the
        claim does not count as an attempt."""
        jobs = call_webhook_jobs.c
        return await self._settle(
            job_id, worker, claimed_by=None, claimed_at=None, attempts=jobs.attempts - 1
        )

    async def _settle(self, job_id: str, worker: str, **values: Any) -> bool:
        jobs = call_webhook_jobs.c
        statement = (
            update(call_webhook_jobs)
            .where(jobs.id == job_id, jobs.claimed_by == worker,
                   jobs.delivered_at.is_(None), jobs.failed_at.is_(None))
            .values(**values)
        )
        async with self._db.write() as conn:
            return (await conn.execute(statement)).rowcount == 1

    async def next_due_at(self) -> datetime | None:
        """When the earliest unclaimed waiting job falls due (None: nothing waits). A job
        claimed elsewhere is not counted: its sender settles it, or its lease runs out and a
        poll finds it."""
        jobs = call_webhook_jobs.c
        statement = select(func.min(jobs.next_at)).where(
            jobs.delivered_at.is_(None), jobs.failed_at.is_(None), jobs.claimed_by.is_(None)
        )
        async with self._db.read() as conn:
            found: datetime | None = (await conn.execute(statement)).scalar()
            return found

    async def get(self, job_id: str) -> CallWebhookJob | None:
        statement = select(call_webhook_jobs).where(call_webhook_jobs.c.id == job_id)
        async with self._db.read() as conn:
            row = (await conn.execute(statement)).first()
            return None if row is None else _to_job(row)


def _to_job(row: Row[Any]) -> CallWebhookJob:
    return CallWebhookJob(
        id=row.id,
        event=row.event,
        payload=row.payload,
        attempts=row.attempts,
        next_at=row.next_at,
        created_at=row.created_at,
        delivered_at=row.delivered_at,
        failed_at=row.failed_at,
        last_error=row.last_error,
        claimed_by=row.claimed_by,
    )
