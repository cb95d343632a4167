"""What the console shows, read from the in-memory call log (live calls) and the store (all).

Calls are read in their JSON shapes (``CallRecord.as_dict`` / ``StoredCall.as_json``, the API
contract): fields may be added there at any time (a recording, say) and the console tolerates
their presence and their absence.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from slotline.agent.call.session import SessionDeps
from slotline.agent.store.records import BookingRecord

RECENT_CALLS = 200  # the calls page shows the newest this many
RECENT_BOOKINGS = 500
_NOT_DIGITS = re.compile(r"\D")
STATUSES = ("in-progress", "completed", "failed")
DIRECTIONS = ("inbound", "outbound")


@dataclass(frozen=True, slots=True)
class CallFilter:
    status: str = ""
    direction: str = ""
    query: str = ""  # part of a number, a name, a sid

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> CallFilter:
        status = query.get("status", "")
        direction = query.get("direction", "")
        return cls(status if status in STATUSES else "",
                   direction if direction in DIRECTIONS else "",
                   query.get("q", "").strip()[:100])


@dataclass(frozen=True, slots=True)
class CallRow:
    sid: str
    direction: str
    flow: str
    status: str
    node: str
    started_at: datetime
    ended_at: datetime | None
    phone: str
    name: str
    bookings: tuple[str, ...]
    turns: int
    errors: int

    def duration_s(self, now: datetime) -> float:
        return max(0.0, ((self.ended_at or now) - self.started_at).total_seconds())

    def matches(self, wanted: CallFilter) -> bool:
        if wanted.status and self.status != wanted.status:
            return False
        if wanted.direction and self.direction != wanted.direction:
            return False
        if not wanted.query:
            return True
        needle = wanted.query.lower()
        if any(needle in text.lower() for text in (self.sid, self.name, self.phone, self.flow)):
            return True
        digits = _NOT_DIGITS.sub("", wanted.query)
        return len(digits) >= 3 and digits in _NOT_DIGITS.sub("", self.phone)


def parse_time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _first(variables: Mapping[str, Any], *keys: str) -> str:
    return next((str(variables[k]) for k in keys if variables.get(k)), "")


def row_from_json(call: Mapping[str, Any], bookings: tuple[str, ...]) -> CallRow:
    variables = call.get("variables") or {}
    turns, errors = call.get("turns", 0), call.get("errors", 0)
    return CallRow(
        sid=str(call.get("call_sid", "")),
        direction=str(call.get("direction", "inbound")),
        flow=str(call.get("flow", "")),
        status=str(call.get("status", "")),
        node=str(call.get("node", "")),
        started_at=parse_time(call.get("started_at")) or datetime.now(UTC),
        ended_at=parse_time(call.get("ended_at")),
        phone=str(call.get("phone") or "") or _first(variables, "user_phone", "phone",
                                                      "caller_phone"),
        name=_first(variables, "user_name", "name", "contact_name"),
        bookings=tuple(dict.fromkeys((*call.get("bookings", ()), *bookings))),
        turns=len(turns) if isinstance(turns, list) else int(turns),
        errors=len(errors) if isinstance(errors, list) else int(errors),
    )


async def call_rows(deps: SessionDeps, wanted: CallFilter) -> list[CallRow]:
    """Newest first: the store's recent calls, with this process's live records over them."""
    found: dict[str, Mapping[str, Any]] = {}
    booked: dict[str, list[str]] = {}
    if deps.store is not None:
        for stored in await deps.store.calls.recent(RECENT_CALLS):
            found[stored.call_sid] = stored.as_json()
        for booking in await deps.store.bookings.recent(RECENT_BOOKINGS):
            if booking.call_sid:
                booked.setdefault(booking.call_sid, []).append(booking.id)
    for record in deps.call_log.all()[-RECENT_CALLS:]:
        found[record.call_sid] = record.as_dict()
    rows = [row_from_json(call, tuple(booked.get(sid, ()))) for sid, call in found.items()]
    rows.sort(key=lambda row: (row.started_at, row.sid), reverse=True)
    return [row for row in rows[:RECENT_CALLS] if row.matches(wanted)]


@dataclass(frozen=True, slots=True)
class CallDetail:
    call: Mapping[str, Any]  # the API's JSON shape of the call
    bookings: tuple[BookingRecord, ...]
    recorded: bool  # a recording of it is kept (``GET /api/calls/{sid}/recording`` serves it)


async def call_detail(deps: SessionDeps, sid: str) -> CallDetail | None:
    record = deps.call_log.get(sid)
    call: Mapping[str, Any] | None = record.as_dict() if record is not None else None
    bookings: tuple[BookingRecord, ...] = ()
    if deps.store is not None:
        if call is None:
            stored = await deps.store.calls.get(sid)
            call = stored.as_json() if stored is not None else None
        bookings = tuple(await deps.store.bookings.for_call(sid))
    if call is None:
        return None
    # asked where the API asks (``agent.server.app._get_call``): neither the call log nor the calls
    # table knows of recordings, which are written after the call ends
    recorded = deps.recordings is not None and await deps.recordings.path_of(sid) is not None
    return CallDetail(call, bookings, recorded or bool(call.get("recording")))
