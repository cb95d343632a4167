"""Campaigns and their contacts; claiming the next contact to dial, paced across processes.

``claim`` is the one place a dial is decided, and it is one write transaction:

1. lock the campaign's row (``SELECT … FOR UPDATE`` on PostgreSQL; SQLite's write lock), so
   every worker of every server sharing the database claims for a campaign one at a time;
2. pacing: no dial before ``next_dial_at``; a claim moves it to ``max(next_dial_at, now) +
   1/cps`` (a claim may come a little early, ``lead_s``, and is then dialled at the slot). The
   rate limit lives in the database the claims already serialise on, so it holds across
   ``serve --workers N`` and across servers without another moving part;
3. concurrency: the campaign's unsettled attempts must be fewer than its ``concurrency``;
4. the due contacts (``FOR UPDATE SKIP LOCKED``), oldest first: one outside its calling window
   is moved to its window's opening (``next_open``) and skipped; one on the do-not-call list
   is closed as ``do_not_call`` — checked here, right before the dial;
5. the chosen contact becomes ``dialing`` with ``attempts + 1`` and its attempt row is written
   before any request leaves, so a crash can never dial a contact more often than counted.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from slotline.agent.store.db import Database
from slotline.agent.store.dialer_records import (
    AttemptRow,
    CampaignRow,
    Claimed,
    ContactRow,
    NewContact,
    Wait,
)
from slotline.agent.store.schema import call_attempts, campaign_contacts, campaigns, do_not_call

# the contacts looked at per claim: those outside their window are moved on, so a file of
# closed windows costs one pass, not one per tick
_CANDIDATES = 25

NextOpen = Callable[[Sequence[str], datetime], datetime]
"""(contact's zones, now) -> now when its window is open, else when it opens."""


def new_id(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(8)}"


class CampaignRepo:
    def __init__(self, db: Database, clock: Callable[[], datetime]) -> None:
        self._db = db
        self._clock = clock

    async def create(
        self,
        *,
        name: str,
        flow: str,
        settings: Mapping[str, Any],
        contacts: Sequence[NewContact],
        campaign_id: str | None = None,
    ) -> str:
        """A running campaign with its contacts (rejected rows kept as ``invalid``)."""
        now = self._clock()
        cid = campaign_id or new_id("cmp_")
        rows = [
            {
                "id": new_id("ct_"), "campaign_id": cid, "line": c.line, "phone": c.phone,
                "name": c.name, "email": c.email, "timezones": list(c.timezones),
                "variables": dict(c.variables),
                "state": "pending" if c.outcome == "pending" else "done",
                "outcome": c.outcome, "reason": c.reason, "attempts": 0, "next_at": now,
                "booking_id": None, "updated_at": now,
            }
            for c in contacts
        ]
        status = "running" if any(r["state"] == "pending" for r in rows) else "done"
        async with self._db.write() as conn:
            await conn.execute(insert(campaigns).values(
                id=cid, name=name, flow=flow, status=status, settings=dict(settings),
                next_dial_at=now, created_at=now, updated_at=now,
            ))
            if rows:
                await conn.execute(insert(campaign_contacts), rows)
        return cid

    async def get(self, campaign_id: str) -> CampaignRow | None:
        async with self._db.read() as conn:
            row = (await conn.execute(
                select(campaigns).where(campaigns.c.id == campaign_id))).first()
        return None if row is None else _campaign(row)

    async def all(self, statuses: Sequence[str] = ()) -> list[CampaignRow]:
        statement = select(campaigns).order_by(campaigns.c.created_at.desc(), campaigns.c.id)
        if statuses:
            statement = statement.where(campaigns.c.status.in_(list(statuses)))
        async with self._db.read() as conn:
            return [_campaign(row) for row in await conn.execute(statement)]

    async def set_status(self, campaign_id: str, status: str, *, allowed_from: Sequence[str]
                         ) -> bool:
        """Move the campaign to ``status`` if it is in one of ``allowed_from``."""
        statement = (
            update(campaigns)
            .where(campaigns.c.id == campaign_id, campaigns.c.status.in_(list(allowed_from)))
            .values(status=status, updated_at=self._clock())
        )
        async with self._db.write() as conn:
            return (await conn.execute(statement)).rowcount == 1

    async def contacts(self, campaign_id: str) -> list[ContactRow]:
        statement = (
            select(campaign_contacts)
            .where(campaign_contacts.c.campaign_id == campaign_id)
            .order_by(campaign_contacts.c.line)
        )
        async with self._db.read() as conn:
            return [contact_row(row) for row in await conn.execute(statement)]

    async def counts(self, campaign_id: str) -> dict[str, int]:
        """Contacts by state (pending, dialing) and, once done, by outcome."""
        c = campaign_contacts.c
        label = func.coalesce(c.outcome, "")
        statement = (
            select(c.state, label, func.count())
            .where(c.campaign_id == campaign_id)
            .group_by(c.state, label)
        )
        found: dict[str, int] = {}
        async with self._db.read() as conn:
            for state, outcome, count in await conn.execute(statement):
                key = outcome if state == "done" else state
                found[key] = found.get(key, 0) + int(count)
        return found

    async def claim(
        self, campaign_id: str, *, worker: str, next_open: NextOpen, lead_s: float = 0.0
    ) -> Claimed | Wait:
        """The next contact to dial now, or why not and until when (see the module doc).

        ``lead_s``: a claim may be made this long before its pacing slot opens; it is then due
        at the slot (``Claimed.dial_at``), so the claim's own round trip is not added to every
        gap between dials.
        """
        now = self._clock()
        async with self._db.write() as conn:
            row = (await conn.execute(
                select(campaigns).where(campaigns.c.id == campaign_id).with_for_update()
            )).first()
            if row is None or row.status != "running":
                return Wait("not running")
            campaign = _campaign(row)
            if campaign.next_dial_at > now + timedelta(seconds=lead_s):
                return Wait("pacing", campaign.next_dial_at - timedelta(seconds=lead_s))
            dial_at = max(campaign.next_dial_at, now)
            settings = campaign.settings
            live = (await conn.execute(
                select(func.count()).select_from(call_attempts).where(
                    call_attempts.c.campaign_id == campaign_id,
                    call_attempts.c.settled_at.is_(None),
                )
            )).scalar_one()
            if live >= int(settings["concurrency"]):
                return Wait("concurrency")
            contact = await self._due_contact(conn, campaign_id, now, next_open)
            if isinstance(contact, Wait):
                return contact
            interval = timedelta(seconds=1.0 / float(settings["cps"]))
            await conn.execute(
                update(campaigns).where(campaigns.c.id == campaign_id)
                .values(next_dial_at=dial_at + interval, updated_at=now)
            )
            attempt = await insert_attempt(
                conn, now=dial_at, worker=worker, campaign_id=campaign_id, contact_id=contact.id,
                number=contact.attempts + 1, phone=contact.phone, flow=campaign.flow,
                variables=contact.variables,
            )
            await conn.execute(
                update(campaign_contacts).where(campaign_contacts.c.id == contact.id)
                .values(state="dialing", attempts=contact.attempts + 1, updated_at=now)
            )
        return Claimed(attempt, contact, dial_at)

    async def _due_contact(
        self, conn: AsyncConnection, campaign_id: str, now: datetime, next_open: NextOpen
    ) -> ContactRow | Wait:
        c = campaign_contacts.c
        while True:
            due = list(await conn.execute(
                select(campaign_contacts)
                .where(c.campaign_id == campaign_id, c.state == "pending", c.next_at <= now)
                .order_by(c.next_at, c.line)
                .limit(_CANDIDATES)
                .with_for_update(skip_locked=True)
            ))
            if not due:
                return await _wait_for_next(conn, campaign_id)
            for row in due:
                contact = contact_row(row)
                try:
                    opens = next_open(contact.timezones, now)
                except ValueError:  # its zones never share an open hour: never dialled
                    await conn.execute(update(campaign_contacts).where(c.id == contact.id).values(
                        state="done", outcome="invalid", updated_at=now,
                        reason="its time zones never share an hour of the calling window",
                    ))
                    continue
                if opens > now:
                    await conn.execute(update(campaign_contacts).where(c.id == contact.id)
                                       .values(next_at=opens, updated_at=now))
                    continue
                listed = (await conn.execute(
                    select(do_not_call.c.phone).where(do_not_call.c.phone == contact.phone)
                )).first()
                if listed is not None:
                    await conn.execute(update(campaign_contacts).where(c.id == contact.id).values(
                        state="done", outcome="do_not_call", reason="on the do-not-call list",
                        updated_at=now,
                    ))
                    continue
                return contact


async def _wait_for_next(conn: AsyncConnection, campaign_id: str) -> Wait:
    c = campaign_contacts.c
    earliest = (await conn.execute(
        select(func.min(c.next_at)).where(c.campaign_id == campaign_id, c.state == "pending")
    )).scalar_one_or_none()
    if earliest is not None:
        return Wait("no contact due", earliest)
    busy = (await conn.execute(
        select(func.count()).select_from(campaign_contacts)
        .where(c.campaign_id == campaign_id, c.state == "dialing")
    )).scalar_one()
    if busy:
        return Wait("calls in progress")
    await conn.execute(update(campaigns).where(
        campaigns.c.id == campaign_id, campaigns.c.status == "running"
    ).values(status="done"))
    return Wait("done")


async def insert_attempt(
    conn: AsyncConnection,
    *,
    now: datetime,
    worker: str,
    phone: str,
    flow: str,
    variables: Mapping[str, str],
    campaign_id: str = "",
    contact_id: str = "",
    number: int = 1,
) -> AttemptRow:
    values: dict[str, Any] = {
        "id": new_id("att_"), "call_sid": None, "campaign_id": campaign_id,
        "contact_id": contact_id, "number": number, "phone": phone, "flow": flow,
        "variables": dict(variables), "status": "dialing", "answered_by": "",
        "machine_action": "", "events": [], "duration_s": None, "session_status": "",
        "outcome": "", "reason": "", "booking_id": None, "worker": worker, "started_at": now,
        "answered_at": None, "final_at": None, "session_ended_at": None, "settled_at": None,
        "updated_at": now,
    }
    await conn.execute(insert(call_attempts).values(values))
    return attempt_row(values)


def _campaign(row: Row[Any]) -> CampaignRow:
    return CampaignRow(
        id=row.id, name=row.name, flow=row.flow, status=row.status,
        settings=dict(row.settings), next_dial_at=row.next_dial_at,
        created_at=row.created_at, updated_at=row.updated_at,
    )


def contact_row(row: Row[Any]) -> ContactRow:
    return ContactRow(
        id=row.id, campaign_id=row.campaign_id, line=row.line, phone=row.phone,
        name=row.name, email=row.email, timezones=tuple(row.timezones),
        variables={str(k): str(v) for k, v in row.variables.items()}, state=row.state,
        outcome=row.outcome, reason=row.reason, attempts=row.attempts, next_at=row.next_at,
        booking_id=row.booking_id,
    )


def attempt_row(row: Row[Any] | Mapping[str, Any]) -> AttemptRow:
    get = row.__getitem__ if isinstance(row, Mapping) else row._mapping.__getitem__
    return AttemptRow(
        id=get("id"), call_sid=get("call_sid"), campaign_id=get("campaign_id"),
        contact_id=get("contact_id"), number=get("number"), phone=get("phone"),
        flow=get("flow"), variables={str(k): str(v) for k, v in get("variables").items()},
        status=get("status"), answered_by=get("answered_by"),
        machine_action=get("machine_action"),
        events=tuple({str(k): str(v) for k, v in e.items()} for e in get("events")),
        duration_s=get("duration_s"), session_status=get("session_status"),
        outcome=get("outcome"), reason=get("reason"), booking_id=get("booking_id"),
        worker=get("worker"), started_at=get("started_at"), answered_at=get("answered_at"),
        final_at=get("final_at"), session_ended_at=get("session_ended_at"),
        settled_at=get("settled_at"),
    )
