"""Call attempts: what Twilio and the media session said of each dialled call, and settling it.

Every outbound call has an attempt row, written before the dial (``CampaignRepo.claim`` or
``single``). Twilio's status callbacks, its AMD verdict and the end of the media session each
update the row; ``settle`` decides the outcome once (``agent.dialer.outcomes``), under the
row's lock, so two processes hearing the last two signals at once settle it exactly once, and
moves the contact on (retry later, or its final outcome).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from slotline.agent.dialer.outcomes import (
    FINAL_STATUSES,
    AttemptFacts,
    Outcome,
    classify,
    next_try,
    ready,
)
from slotline.agent.store.campaigns import attempt_row, insert_attempt
from slotline.agent.store.db import Database
from slotline.agent.store.dialer_records import AttemptRow, Settled
from slotline.agent.store.schema import (
    bookings,
    call_attempts,
    campaign_contacts,
    campaigns,
    do_not_call,
)

# Twilio's progress order: a late callback never moves an attempt backwards
_RANK = {"dialing": 0, "queued": 1, "initiated": 1, "ringing": 2, "in-progress": 3}
MAX_EVENTS = 20  # status callbacks kept per attempt


class AttemptRepo:
    def __init__(self, db: Database, clock: Callable[[], datetime]) -> None:
        self._db = db
        self._clock = clock

    async def single(
        self, *, phone: str, flow: str, variables: Mapping[str, str], worker: str
    ) -> AttemptRow:
        """The attempt of one call placed by hand (``POST /api/calls``, ``slotline call``)."""
        async with self._db.write() as conn:
            return await insert_attempt(conn, now=self._clock(), worker=worker, phone=phone,
                                        flow=flow, variables=variables)

    async def get(self, attempt_id: str) -> AttemptRow | None:
        return await self._one(call_attempts.c.id == attempt_id)

    async def by_sid(self, call_sid: str) -> AttemptRow | None:
        return await self._one(call_attempts.c.call_sid == call_sid)

    async def of_campaign(self, campaign_id: str) -> list[AttemptRow]:
        statement = (select(call_attempts).where(call_attempts.c.campaign_id == campaign_id)
                     .order_by(call_attempts.c.started_at, call_attempts.c.id))
        async with self._db.read() as conn:
            return [attempt_row(row) for row in await conn.execute(statement)]

    async def unsettled(self, *, idle_s: float) -> list[AttemptRow]:
        """Attempts not settled whose row has not changed for ``idle_s`` (reconciling)."""
        since = self._clock() - timedelta(seconds=idle_s)
        statement = select(call_attempts).where(
            call_attempts.c.settled_at.is_(None), call_attempts.c.updated_at <= since
        )
        async with self._db.read() as conn:
            return [attempt_row(row) for row in await conn.execute(statement)]

    async def dialed(self, attempt_id: str, call_sid: str) -> None:
        """Twilio took the create: the attempt has its sid (unless a webhook bound it first)."""
        await self._update(call_attempts.c.id == attempt_id, call_sid=call_sid,
                           status="queued", only_status="dialing")
        await self._update(call_attempts.c.id == attempt_id, call_sid=call_sid)

    async def record_status(
        self, call_sid: str, status: str, *, event: Mapping[str, str], duration_s: int | None
    ) -> AttemptRow | None:
        """A status callback (or a fetched status): keep it, move forward, never back."""
        now = self._clock()
        async with self._db.write() as conn:
            row = (await conn.execute(select(call_attempts)
                                      .where(call_attempts.c.call_sid == call_sid)
                                      .with_for_update())).first()
            if row is None:
                return None
            current = attempt_row(row)
            values: dict[str, Any] = {"updated_at": now}
            if len(current.events) < MAX_EVENTS:
                values["events"] = [*map(dict, current.events), dict(event)]
            if current.final_at is None:
                if status in FINAL_STATUSES:
                    values.update(status=status, final_at=now)
                elif _RANK.get(status, -1) > _RANK.get(current.status, -1):
                    values["status"] = status
                if status == "in-progress" and current.answered_at is None:
                    values["answered_at"] = now
                if status == "completed" and current.answered_at is None:
                    values["answered_at"] = now  # completed means it was answered
            if duration_s is not None:
                values["duration_s"] = duration_s
            await conn.execute(update(call_attempts)
                               .where(call_attempts.c.id == current.id).values(values))
        return await self.get(current.id)

    async def record_answered_by(self, call_sid: str, answered_by: str) -> AttemptRow | None:
        await self._update(call_attempts.c.call_sid == call_sid, answered_by=answered_by)
        return await self.by_sid(call_sid)

    async def record_machine_action(self, attempt_id: str, action: str) -> None:
        await self._update(call_attempts.c.id == attempt_id, machine_action=action)

    async def bind_sid(self, attempt_id: str, call_sid: str) -> bool:
        """The voice webhook of an attempt: the sid is this call's (it may come before the
        create's answer). False when the attempt is bound to another call."""
        attempt = await self.get(attempt_id)
        if attempt is None:
            return False
        if attempt.call_sid is None:
            await self._update(call_attempts.c.id == attempt_id, call_sid=call_sid)
            attempt = await self.get(attempt_id)
        return attempt is not None and attempt.call_sid == call_sid

    async def session_ended(self, attempt_id: str, session_status: str) -> None:
        """The call's media session is over (``completed`` or ``failed``). A voicemail stream
        after a redirect ends the call's session again: the last one counts."""
        await self._update(call_attempts.c.id == attempt_id, session_status=session_status,
                           session_ended_at=self._clock())

    async def settle(
        self, attempt_id: str, *, dial_error: str = "", force: bool = False
    ) -> Settled | None:
        """Decide the attempt's outcome if it is ready (or ``force``, or ``dial_error``), once;
        move its contact on. None: not ready yet, or settled already."""
        now = self._clock()
        async with self._db.write() as conn:
            row = (await conn.execute(select(call_attempts)
                                      .where(call_attempts.c.id == attempt_id)
                                      .with_for_update())).first()
            if row is None or row.settled_at is not None:
                return None
            attempt = attempt_row(row)
            last_signal = max(filter(None, (attempt.final_at, attempt.session_ended_at)),
                              default=attempt.started_at)
            if not (dial_error or force or ready(
                final=attempt.final_at is not None, answered=attempt.answered_at is not None,
                session_ended=attempt.session_ended_at is not None,
                waited_s=(now - last_signal).total_seconds(),
            )):
                return None
            facts = AttemptFacts(
                call_status=attempt.status if attempt.final_at is not None else "",
                answered=attempt.answered_at is not None, answered_by=attempt.answered_by,
                machine_action=attempt.machine_action,
                booking_id=await _booking_of(conn, attempt.call_sid),
                opted_out=await _opted_out(conn, attempt),
                session_status=attempt.session_status, dial_error=dial_error,
            )
            outcome, reason = classify(facts)
            await conn.execute(update(call_attempts).where(call_attempts.c.id == attempt.id)
                               .values(outcome=outcome, reason=reason, settled_at=now,
                                       booking_id=facts.booking_id, updated_at=now,
                                       status="failed" if dial_error else attempt.status))
            retry_at = None
            if attempt.contact_id:
                retry_at = await _move_contact_on(conn, attempt, outcome, reason, facts, now)
        settled = await self.get(attempt_id)
        assert settled is not None
        return Settled(settled, outcome, reason, retry_at)

    async def _one(self, condition: Any) -> AttemptRow | None:
        async with self._db.read() as conn:
            row = (await conn.execute(select(call_attempts).where(condition))).first()
        return None if row is None else attempt_row(row)

    async def _update(self, condition: Any, *, only_status: str = "", **values: Any) -> None:
        statement = update(call_attempts).where(condition)
        if only_status:
            statement = statement.where(call_attempts.c.status == only_status)
        if "call_sid" in values:  # never rebind an attempt to another call
            statement = statement.where(or_(call_attempts.c.call_sid.is_(None),
                                            call_attempts.c.call_sid == values["call_sid"]))
        async with self._db.write() as conn:
            await conn.execute(statement.values(updated_at=self._clock(), **values))


async def _booking_of(conn: AsyncConnection, call_sid: str | None) -> str | None:
    if not call_sid:
        return None
    return (await conn.execute(
        select(bookings.c.id)
        .where(bookings.c.call_sid == call_sid, bookings.c.status == "confirmed")
        .order_by(bookings.c.created_at).limit(1)
    )).scalar_one_or_none()


async def _opted_out(conn: AsyncConnection, attempt: AttemptRow) -> bool:
    if not attempt.call_sid:
        return False
    found = (await conn.execute(select(do_not_call.c.phone).where(
        do_not_call.c.phone == attempt.phone, do_not_call.c.call_sid == attempt.call_sid
    ))).first()
    return found is not None


async def _move_contact_on(
    conn: AsyncConnection, attempt: AttemptRow, outcome: Outcome, reason: str,
    facts: AttemptFacts, now: datetime,
) -> datetime | None:
    contact = (await conn.execute(select(campaign_contacts)
                                  .where(campaign_contacts.c.id == attempt.contact_id))).first()
    campaign = (await conn.execute(select(campaigns)
                                   .where(campaigns.c.id == attempt.campaign_id))).first()
    if contact is None or campaign is None:
        return None
    settings = campaign.settings
    retry_at = next_try(outcome, contact.attempts, max_attempts=int(settings["max_attempts"]),
                        retry_after_s=float(settings["retry_after_s"]), now=now)
    if retry_at is not None:
        values: dict[str, Any] = {
            "state": "pending", "outcome": "pending", "next_at": retry_at,
            "reason": f"attempt {contact.attempts}: {outcome}" + (f" ({reason})" if reason else ""),
        }
    else:
        values = {"state": "done", "outcome": outcome, "reason": reason,
                  "booking_id": facts.booking_id}
    await conn.execute(update(campaign_contacts).where(campaign_contacts.c.id == contact.id)
                       .values(updated_at=now, **values))
    return retry_at
