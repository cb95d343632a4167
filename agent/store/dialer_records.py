"""What the dialer's tables hold, as frozen records (no raw rows past the store)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


@dataclass(frozen=True, slots=True)
class CampaignRow:
    id: str
    name: str
    flow: str
    status: str  # running | paused | done | cancelled
    settings: Mapping[str, Any]  # agent.dialer.spec.CampaignSpec's JSON (parsed there)
    next_dial_at: datetime
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class NewContact:
    """A row of the contacts file as stored: a good one (``pending``) or a rejected one
    (``invalid``, with its reason; never dialled)."""

    line: int
    phone: str
    name: str = ""
    email: str = ""
    timezones: tuple[str, ...] = ()
    variables: Mapping[str, str] = field(default_factory=dict)
    outcome: str = "pending"
    reason: str = ""


@dataclass(frozen=True, slots=True)
class ContactRow:
    id: str
    campaign_id: str
    line: int
    phone: str
    name: str
    email: str
    timezones: tuple[str, ...]
    variables: Mapping[str, str]
    state: str  # pending | dialing | done
    outcome: str
    reason: str
    attempts: int
    next_at: datetime
    booking_id: str | None


@dataclass(frozen=True, slots=True)
class AttemptRow:
    id: str
    call_sid: str | None
    campaign_id: str  # "" = a single call
    contact_id: str
    number: int
    phone: str
    flow: str
    variables: Mapping[str, str]
    status: str
    answered_by: str
    machine_action: str
    events: tuple[Mapping[str, str], ...]
    duration_s: int | None
    session_status: str
    outcome: str
    reason: str
    booking_id: str | None
    worker: str
    started_at: datetime
    answered_at: datetime | None
    final_at: datetime | None
    session_ended_at: datetime | None
    settled_at: datetime | None

    def as_json(self) -> dict[str, Any]:
        """One entry of a contact's ``attempts`` in ``GET /api/campaigns/{id}``, plus what a
        dialer user asks."""
        return {
            "call_sid": self.call_sid,
            "number": self.number,
            "started_at": _iso(self.started_at),
            "status": self.status,
            # "" while the verdict may still come; "unknown" once settled without one
            "answered_by": self.answered_by or ("unknown" if self.settled_at else ""),
            "machine_action": self.machine_action,
            "duration_s": self.duration_s,
            "outcome": self.outcome or "pending",
            "reason": self.reason,
            "booking_id": self.booking_id,
            "events": [dict(event) for event in self.events],
            "settled_at": _iso(self.settled_at),
        }


@dataclass(frozen=True, slots=True)
class Claimed:
    """A contact taken for dialling now; its attempt is recorded (``status`` dialing)."""

    attempt: AttemptRow
    contact: ContactRow
    dial_at: datetime  # the pacing slot: not before (``CampaignRepo.claim``'s ``lead_s``)


@dataclass(frozen=True, slots=True)
class Wait:
    """Nothing to dial now; ``until``: when something may be (None: poll again soon)."""

    why: str
    until: datetime | None = None


@dataclass(frozen=True, slots=True)
class Settled:
    attempt: AttemptRow
    outcome: str
    reason: str
    retry_at: datetime | None  # the contact's next attempt, None: its outcome is final
