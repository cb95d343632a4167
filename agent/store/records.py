"""What the store takes and gives back: frozen, typed records (no raw rows past the store).

``as_json()`` gives the shapes ``/api/bookings`` and ``/api/calls`` answer (README, "HTTP
surface"; times ISO-8601 with offset; a call's times in the call log's one format,
``agent.call.calllog.iso``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from slotline.agent.call.calllog import CallRecord, iso
from slotline.providers.calendars.base import Attendee, BookingStatus

_NOT_DIGITS = re.compile(r"\D")
# a call's capped lists (``agent.call.calllog``): ``<name>_dropped`` in the JSON counts what was
# left out
DROPPABLE = ("errors", "dtmf", "turns", "path")
_PHONE_KEY_DIGITS = 10  # national number without country code for NANP; enough to be unique


def phone_key(phone: str) -> str:
    """The digits a booking is found by: "+1 (555) 123-4567" and "555 123 4567" match."""
    return _NOT_DIGITS.sub("", phone)[-_PHONE_KEY_DIGITS:]


def email_key(email: str) -> str:
    """The form a booking is found by its e-mail: " Ana@Example.com " and "ana@example.com"
    match (migration 14 back-fills older rows the same way in SQL)."""
    return email.strip().lower()


def _require_aware(name: str, value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {value.isoformat()}")


@dataclass(frozen=True, slots=True)
class NewBooking:
    """A booking to write. ``provider_booking_id`` empty = the store's own id (``local``)."""

    calendar: str
    provider: str
    start: datetime
    end: datetime
    attendee: Attendee
    idempotency_key: str
    action: str = ""
    call_sid: str = ""
    provider_booking_id: str = ""
    fields: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _require_aware("NewBooking.start", self.start)
        _require_aware("NewBooking.end", self.end)
        if self.end <= self.start:
            raise ValueError(f"booking must end after it starts: {self.start.isoformat()}")
        if not self.idempotency_key:
            raise ValueError("NewBooking.idempotency_key must not be empty")


@dataclass(frozen=True, slots=True)
class BookingRecord:
    id: str
    action: str
    calendar: str
    provider: str
    provider_booking_id: str
    start: datetime  # UTC
    end: datetime  # UTC
    status: BookingStatus
    attendee: Attendee
    call_sid: str
    fields: Mapping[str, str]
    idempotency_key: str
    created_at: datetime
    updated_at: datetime

    def as_json(self) -> dict[str, Any]:
        """One entry of ``GET /api/bookings``."""
        return {
            "id": self.id,
            "action": self.action,
            "calendar": self.calendar,
            "provider": self.provider,
            "provider_booking_id": self.provider_booking_id,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "status": self.status,
            "attendee": attendee_json(self.attendee),
            "call_sid": self.call_sid,
            "fields": dict(self.fields),
            "created_at": self.created_at.isoformat(),
        }


def attendee_json(attendee: Attendee) -> dict[str, str]:
    return {
        "name": attendee.name,
        "email": attendee.email,
        "phone": attendee.phone,
        "timezone": attendee.timezone,
    }


def attendee_from_json(data: Mapping[str, Any]) -> Attendee:
    return Attendee(
        name=str(data.get("name", "")),
        email=str(data.get("email", "")),
        phone=str(data.get("phone", "")),
        timezone=str(data.get("timezone", "")),
    )


@dataclass(frozen=True, slots=True)
class StoredCall:
    """One call-log entry. ``turns`` and ``errors`` are already in their JSON shapes (the call
    log builds them); ``bookings`` is filled from the bookings table on reads."""

    call_sid: str
    flow: str
    status: str
    started_at: datetime
    stream_sid: str = ""
    node: str = ""
    ended_at: datetime | None = None
    variables: Mapping[str, str] = field(default_factory=dict)
    turns: tuple[Mapping[str, Any], ...] = ()
    errors: tuple[Mapping[str, str], ...] = ()
    dtmf: tuple[str, ...] = ()
    bookings: tuple[str, ...] = ()
    llm: Mapping[str, int] = field(default_factory=dict)  # model use; empty = no model
    direction: str = "inbound"
    campaign_id: str = ""
    contact_id: str = ""
    phone: str = ""
    # the process writing the call while it is live (``agent.call.persist``: host:pid:boot) and
    # its last write; they let a restarted server tell a live call from one whose worker died
    writer: str = ""
    written_at: datetime | None = None
    outcome: str = ""  # after the call (``agent.call.summary``)
    summary: str = ""
    path: tuple[str, ...] = ()  # the flow nodes entered, in order (``CallRecord.path``)
    # what the per-call caps left out, by list: errors, dtmf, turns, path (absent = none)
    dropped: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def from_record(cls, record: CallRecord, *, writer: str = "") -> StoredCall:
        """The in-memory call log's record (``agent.call.calllog``), as stored."""
        return cls(
            call_sid=record.call_sid,
            flow=record.flow,
            status=record.status,
            started_at=datetime.fromisoformat(record.started_at),
            stream_sid=record.stream_sid,
            node=record.node,
            ended_at=None if record.ended_at is None else datetime.fromisoformat(record.ended_at),
            variables=dict(record.variables),
            turns=tuple(turn.as_dict() for turn in record.turns),
            errors=tuple(dict(error) for error in record.errors),
            dtmf=tuple(record.dtmf),
            bookings=tuple(record.bookings),
            llm=dict(record.llm),
            direction=record.direction,
            campaign_id=record.campaign_id,
            contact_id=record.contact_id,
            phone=record.phone,
            writer=writer,
            outcome=record.outcome,
            summary=record.call_summary,
            path=tuple(record.path),
            dropped={name: count for name, count in (
                ("errors", record.errors_dropped), ("dtmf", record.dtmf_dropped),
                ("turns", record.turns_dropped), ("path", record.path_dropped)) if count},
        )

    def summary_json(self) -> dict[str, Any]:
        """One entry of ``GET /api/calls``."""
        return {
            "call_sid": self.call_sid,
            "status": self.status,
            "flow": self.flow,
            "node": self.node,
            "started_at": iso(self.started_at),
            "ended_at": None if self.ended_at is None else iso(self.ended_at),
            "turns": len(self.turns),
            "errors": len(self.errors),
            "direction": self.direction,
            "campaign_id": self.campaign_id,
            "contact_id": self.contact_id,
            "phone": self.phone,
        }

    def as_json(self) -> dict[str, Any]:
        """``GET /api/calls/{call_sid}``."""
        return {
            **self.summary_json(),
            "stream_sid": self.stream_sid,
            "variables": dict(self.variables),
            "turns": [dict(turn) for turn in self.turns],
            "bookings": list(self.bookings),
            "errors": [dict(error) for error in self.errors],
            "dtmf": list(self.dtmf),
            "llm": dict(self.llm),
            "outcome": self.outcome,
            "summary": self.summary,
            "path": list(self.path),
            **{f"{name}_dropped": int(self.dropped.get(name, 0)) for name in DROPPABLE},
        }


@dataclass(frozen=True, slots=True)
class SlotHold:
    """A short reservation of a time on one calendar while a caller books it."""

    key: str
    calendar: str
    start: datetime
    end: datetime
    expires_at: datetime
    owner: str  # the call holding it


@dataclass(frozen=True, slots=True)
class ReminderJob:
    id: str
    booking_id: str
    kind: str  # e.g. "24h", "1h"
    due_at: datetime
    claimed_by: str | None
    sent_at: datetime | None
    attempts: int = 0  # claims so far, this one included
    retry_at: datetime | None = None  # not claimable before (a failed send backs off)
    failed_at: datetime | None = None  # given up on; ``last_error`` says why
    last_error: str = ""
