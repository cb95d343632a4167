"""The waitlist: callers who wanted a time none of the calendars had (``agent.waitlist``).

One entry per call and booking action (a retried flow step finds the entry it made); entries
from the API carry no call. An entry's ``waitlist.added`` event is a job of the webhook outbox
(``call_webhook_jobs``, the same id), inserted in the entry's own transaction: an entry that
exists has its event queued, and the sender (``agent.call.webhook``) retries it from there.
Each entry read carries where its event stands (``WebhookDelivery``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, delete, select
from sqlalchemy.exc import IntegrityError

from slotline.agent.store.call_webhooks import job_values
from slotline.agent.store.db import Database
from slotline.agent.store.schema import call_webhook_jobs, waitlist

OFF = "off"  # webhook_status of an entry added with no webhook URL


@dataclass(frozen=True, slots=True)
class NewWaitlistEntry:
    action: str
    name: str = ""
    phone: str = ""
    email: str = ""
    timezone: str = ""
    preference: str = ""
    notes: str = ""
    source: str = "api"  # voice | api
    call_sid: str = ""


@dataclass(frozen=True, slots=True)
class WebhookDelivery:
    """Where an entry's ``waitlist.added`` event stands (its outbox job)."""

    attempts: int  # POSTs tried so far
    next_at: datetime  # the next try, while pending
    delivered_at: datetime | None  # a 2xx came: never sent again
    failed_at: datetime | None  # given up after call_webhook.max_attempts
    last_error: str  # the last failed try's reason ("" once delivered)

    @property
    def state(self) -> str:
        if self.delivered_at is not None:
            return "sent"
        return "failed" if self.failed_at is not None else "pending"

    def as_json(self) -> dict[str, Any]:
        return {
            "state": self.state, "attempts": self.attempts,
            "next_attempt_at": self.next_at.isoformat() if self.state == "pending" else None,
            "last_error": self.last_error,
            "delivered_at": _iso(self.delivered_at), "failed_at": _iso(self.failed_at),
        }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


@dataclass(frozen=True, slots=True)
class WaitlistEntry:
    id: str
    action: str
    name: str
    phone: str
    email: str
    timezone: str
    preference: str
    notes: str
    source: str
    call_sid: str
    created_at: datetime
    stored_status: str = ""  # the waitlist row's webhook_status (schema)
    delivery: WebhookDelivery | None = None  # None: no event queued (off, or before 13)

    @property
    def webhook_status(self) -> str:
        """``pending``, ``sent``, ``failed: <reason>`` or ``off`` (no webhook URL)."""
        if self.delivery is None:
            return self.stored_status
        if self.delivery.state == "failed":
            return f"failed: {self.delivery.last_error}"
        return self.delivery.state

    def details(self) -> dict[str, Any]:
        """The entry itself, as the ``waitlist.added`` event carries it."""
        return {
            "id": self.id, "action": self.action, "name": self.name, "phone": self.phone,
            "email": self.email, "timezone": self.timezone, "preference": self.preference,
            "notes": self.notes, "source": self.source, "call_sid": self.call_sid,
            "created_at": self.created_at.isoformat(),
        }

    def as_json(self) -> dict[str, Any]:
        """The entry and its event's delivery, as the API lists it."""
        delivery = self.delivery.as_json() if self.delivery is not None else None
        return {**self.details(), "webhook_status": self.webhook_status, "webhook": delivery}


_JOB = call_webhook_jobs.c
_DELIVERY = (_JOB.id.label("job_id"), _JOB.attempts.label("job_attempts"),
             _JOB.next_at.label("job_next_at"), _JOB.delivered_at.label("job_delivered_at"),
             _JOB.failed_at.label("job_failed_at"), _JOB.last_error.label("job_last_error"))


def _select() -> Select[Any]:
    """Entries with their event's job, if any."""
    return select(waitlist, *_DELIVERY).select_from(
        waitlist.outerjoin(call_webhook_jobs, _JOB.id == waitlist.c.id)
    )


def _entry(row: Any) -> WaitlistEntry:
    delivery = None
    if row.job_id is not None:
        delivery = WebhookDelivery(row.job_attempts, row.job_next_at, row.job_delivered_at,
                                   row.job_failed_at, row.job_last_error)
    return WaitlistEntry(
        row.id, row.action, row.name, row.phone, row.email, row.timezone, row.preference,
        row.notes, row.source, row.call_sid, row.created_at, row.webhook_status, delivery,
    )


class WaitlistRepo:
    def __init__(self, db: Database, clock: Callable[[], datetime]) -> None:
        self._db = db
        self._clock = clock

    async def add(
        self, new: NewWaitlistEntry, *, event: tuple[str, Callable[[WaitlistEntry], str]] | None
    ) -> tuple[WaitlistEntry, bool]:
        """The entry and whether it is new (False: this call already added it). ``event``: the
        event's name and its payload's JSON text for the new entry, queued with it (None: no
        webhook, ``webhook_status`` off)."""
        if new.call_sid:
            found = await self._of_call(new.call_sid, new.action)
            if found is not None:
                return found, False
        now = self._clock()
        fresh = WaitlistEntry(
            f"w_{uuid.uuid4().hex[:16]}", new.action, new.name, new.phone, new.email,
            new.timezone, new.preference, new.notes, new.source, new.call_sid, now,
            "" if event is not None else OFF,
        )
        values = {name: getattr(fresh, name) for name in (
            "id", "action", "name", "phone", "email", "timezone", "preference", "notes",
            "source", "call_sid", "created_at")}
        values["webhook_status"] = fresh.stored_status
        entry_id = fresh.id
        try:
            async with self._db.write() as conn:
                await conn.execute(waitlist.insert().values(values))
                if event is not None:
                    name, payload_of = event
                    await conn.execute(call_webhook_jobs.insert().values(
                        job_values(entry_id, name, payload_of(fresh), now)))
        except IntegrityError:  # the same call and action, added at the same moment elsewhere
            found = await self._of_call(new.call_sid, new.action)
            if found is None:
                raise
            return found, False
        entry = await self.get(entry_id)
        assert entry is not None
        return entry, True

    async def _of_call(self, call_sid: str, action: str) -> WaitlistEntry | None:
        statement = _select().where(
            waitlist.c.call_sid == call_sid, waitlist.c.action == action
        )
        async with self._db.read() as conn:
            row = (await conn.execute(statement)).first()
        return _entry(row) if row is not None else None

    async def get(self, entry_id: str) -> WaitlistEntry | None:
        async with self._db.read() as conn:
            row = (await conn.execute(_select().where(waitlist.c.id == entry_id))).first()
        return _entry(row) if row is not None else None

    async def entries(
        self, *, action: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[WaitlistEntry]:
        """Oldest first (first come, first served)."""
        statement = _select().order_by(waitlist.c.created_at, waitlist.c.id)
        if action is not None:
            statement = statement.where(waitlist.c.action == action)
        async with self._db.read() as conn:
            rows = await conn.execute(statement.limit(limit).offset(offset))
            return [_entry(row) for row in rows]

    async def remove(self, entry_id: str) -> bool:
        """Forget the entry, and its event if still unsent (a sender mid-POST then finds its
        claim gone)."""
        async with self._db.write() as conn:
            result = await conn.execute(delete(waitlist).where(waitlist.c.id == entry_id))
            if result.rowcount == 1:
                await conn.execute(delete(call_webhook_jobs).where(_JOB.id == entry_id))
            return result.rowcount == 1
