"""Campaigns as the API and the CLI see them: created from a contacts file, shown with their
progress, exported as CSV. The store keeps them; the ``Dialer`` runs them."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from slotline.agent.dialer.contacts import ContactList
from slotline.agent.dialer.outcomes import OUTCOMES
from slotline.agent.dialer.spec import CampaignSpec
from slotline.agent.store import Store
from slotline.agent.store.dialer_records import AttemptRow, CampaignRow, ContactRow, NewContact

_STATES = ("pending", "dialing")
# the recent window over which the dial rate (and so the ETA) is measured
_RATE_WINDOW_S = 120.0


def new_contacts(parsed: ContactList) -> list[NewContact]:
    """Good rows to dial and rejected rows kept as ``invalid`` (never dialled; in the results)."""
    rows = [
        NewContact(line=c.line, phone=c.phone, name=c.name, email=c.email,
                   timezones=tuple(c.timezones), variables=dict(c.variables))
        for c in parsed.contacts
    ]
    rows.extend(
        NewContact(line=r.line, phone=r.phone[:64], outcome="invalid", reason=r.reason)
        for r in parsed.rejected
    )
    return sorted(rows, key=lambda row: row.line)


async def create_campaign(store: Store, spec: CampaignSpec, parsed: ContactList) -> str:
    return await store.campaigns.create(
        name=spec.name, flow=spec.flow, settings=spec.model_dump(mode="json"),
        contacts=new_contacts(parsed),
    )


def counts_json(counts: dict[str, int]) -> dict[str, int]:
    keys = (*_STATES, *(o for o in OUTCOMES if o != "pending"))
    return {key: counts.get(key, 0) for key in keys}


def progress_json(
    campaign: CampaignRow, contacts: Sequence[ContactRow], attempts: Sequence[AttemptRow],
    now: datetime,
) -> dict[str, Any]:
    remaining = sum(1 for c in contacts if c.state in _STATES)
    recent = [a for a in attempts if (now - a.started_at).total_seconds() <= _RATE_WINDOW_S]
    window_s = min(_RATE_WINDOW_S, max((now - campaign.created_at).total_seconds(), 1.0))
    rate_per_s = len(recent) / window_s
    cps = float(campaign.settings.get("cps", 1.0))
    pace_per_s = rate_per_s if rate_per_s > 0 else cps
    eta = None if campaign.status in ("done", "cancelled") else remaining / pace_per_s
    return {
        "contacts": len(contacts),
        "dialed": len(attempts),
        "answered": sum(1 for a in attempts if a.answered_at is not None),
        "remaining": remaining,
        "dials_per_minute": round(rate_per_s * 60, 2),
        "eta_s": None if eta is None else round(eta, 1),
    }


async def campaign_json(store: Store, campaign: CampaignRow, *, full: bool,
                        now: datetime) -> dict[str, Any]:
    contacts = await store.campaigns.contacts(campaign.id)
    attempts = await store.attempts.of_campaign(campaign.id)
    counts: dict[str, int] = {}
    for contact in contacts:
        key = contact.outcome if contact.state == "done" else contact.state
        counts[key] = counts.get(key, 0) + 1
    body: dict[str, Any] = {
        "id": campaign.id, "name": campaign.name, "status": campaign.status,
        "flow": campaign.flow, "created_at": campaign.created_at.isoformat(),
        "counts": counts_json(counts),
        "progress": progress_json(campaign, contacts, attempts, now),
    }
    if full:
        by_contact: dict[str, list[dict[str, Any]]] = {}
        for attempt in attempts:
            by_contact.setdefault(attempt.contact_id, []).append(attempt.as_json())
        body["settings"] = dict(campaign.settings)
        body["contacts"] = [
            {
                "line": c.line, "phone": c.phone, "name": c.name,
                "outcome": c.outcome if c.state == "done" else "pending",
                "state": c.state, "reason": c.reason, "next_at": c.next_at.isoformat(),
                "attempts": by_contact.get(c.id, []), "booking_id": c.booking_id,
            }
            for c in contacts
        ]
    return body


RESULT_COLUMNS = ("line", "phone", "name", "email", "outcome", "reason", "attempts",
                  "booking_id", "last_call_sid", "last_status", "answered_by",
                  "last_duration_s")


async def results_csv(store: Store, campaign_id: str) -> str:
    contacts = await store.campaigns.contacts(campaign_id)
    last: dict[str, AttemptRow] = {}
    for attempt in await store.attempts.of_campaign(campaign_id):
        last[attempt.contact_id] = attempt  # in start order: the last one wins
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(RESULT_COLUMNS)
    for c in contacts:
        a = last.get(c.id)
        writer.writerow([
            c.line, c.phone, c.name, c.email, c.outcome if c.state == "done" else "pending",
            c.reason, c.attempts, c.booking_id or "", a.call_sid if a else "",
            a.status if a else "", a.answered_by if a else "",
            "" if a is None or a.duration_s is None else a.duration_s,
        ])
    return out.getvalue()
