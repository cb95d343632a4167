"""Cal.com API v2 on the wire, without I/O: request bodies and query strings out, typed answers in.

Facts (shared/PROTOCOLS.md, Cal.com's own 2024-08-13 / 2024-09-04 input and output types):
- every answer is ``{"status": "success", "data": ...}``; errors are
  ``{"status": "error", "error": {"code": "BadRequestException", "message": ...}}``;
- bookings speak ``cal-api-version: 2024-08-13``, slots and reservations ``2024-09-04``;
- ``GET /v2/slots?format=range`` answers ``{"YYYY-MM-DD": [{"start", "end"}]}`` in ``timeZone``;
  an ``end`` at exactly 00:00:00 is widened by Cal.com to 23:59:59 of that day, so the slots are
  filtered to the asked window here;
- a variable-length event type (``lengthInMinutesOptions``) takes the chosen length as
  ``duration`` on ``GET /v2/slots``, ``slotDuration`` on a reservation and ``lengthInMinutes`` on
  ``POST /v2/bookings``; a fixed-length one refuses all three (400), so they are sent only when
  a length is chosen (``length_min``, None otherwise);
- a booking's ``uid`` is its public id; ``metadata`` (≤ 50 keys of ≤ 40 chars, string values
  ≤ 500 chars) carries our idempotency key back to us on ``GET /v2/bookings``.

The adapter (``calcom.py``) decides what a refusal means from ``classify`` and never reads the
raw JSON itself.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from slotline.providers.calendars.base import (
    Attendee,
    BookingRequest,
    BookingStatus,
    BusyInterval,
    ProviderBooking,
)
from slotline.providers.errors import ProviderError

PROVIDER = "calcom"
VERSION_HEADER = "cal-api-version"
BOOKINGS_VERSION = "2024-08-13"
SLOTS_VERSION = "2024-09-04"
KEY_FIELD = "slotline_key"  # our idempotency key inside a booking's metadata

_METADATA_KEYS = 50
_METADATA_KEY_CHARS = 40
_METADATA_VALUE_CHARS = 500
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")  # Cal.com refuses phone numbers not in this form
# A booking's status → ours: "pending" (awaiting the host's confirmation) still holds the time,
# so it counts as confirmed; "rejected" frees it like "cancelled". Unknown statuses (Cal.com adds
# some, e.g. "awaitingHost") hold the time too.
_CANCELLED = frozenset({"cancelled", "rejected"})
_HOLD_MIN = 5  # Cal.com's default reservation length, when an answer does not say


class Refusal(enum.Enum):
    """What a 4xx answer from Cal.com means to Slotline."""

    SLOT_TAKEN = "slot taken"  # 400 "... already has booking at this time or is not available"
    HELD = "held by someone else"  # 422 reservation refused / 409 not first in line
    BOOKED = "already booked"  # 422 "Can't reserve a slot if the event is already booked."
    OUT_OF_BOUNDS = "outside the booking window"  # too soon / too far ahead
    IN_PAST = "in the past"
    NOT_FOUND = "not found"
    OTHER = "refused"


def classify(status: int, message: str) -> Refusal:
    text = message.lower()
    if status == 404:
        return Refusal.NOT_FOUND
    if "already has booking" in text or "no more seats" in text:
        return Refusal.SLOT_TAKEN
    if "already reserved" in text or "reserved this booking time slot" in text:
        return Refusal.HELD
    if "already booked" in text:
        return Refusal.BOOKED
    if 'booked at the "start" time' in text or "booking_time_out_of_bounds" in text:
        return Refusal.OUT_OF_BOUNDS
    if "in the past" in text:
        return Refusal.IN_PAST
    return Refusal.OTHER


@dataclass(frozen=True, slots=True)
class CalcomBooking:
    uid: str
    booking_id: int
    status: str  # accepted | pending | cancelled | rejected (as Cal.com says it)
    start: datetime
    end: datetime
    metadata: Mapping[str, str]
    attendee_emails: tuple[str, ...]
    rescheduled_to_uid: str = ""
    rescheduled_from_uid: str = ""
    meeting_url: str = ""  # ``meetingUrl`` (or a ``location`` that is a link)

    @property
    def mapped_status(self) -> BookingStatus:
        return "cancelled" if self.status in _CANCELLED else "confirmed"

    def to_provider(self) -> ProviderBooking:
        return ProviderBooking(
            self.uid, self.start, self.end, self.mapped_status, self.meeting_url
        )


@dataclass(frozen=True, slots=True)
class Reservation:
    uid: str
    held_s: float  # how long Cal.com holds it from now (judged locally: clocks differ)


def _bad(what: str) -> ProviderError:
    return ProviderError(PROVIDER, f"unexpected answer: {what}")


def utc_iso(moment: datetime) -> str:
    """``2026-12-01T14:00:00.000Z`` — the form Cal.com's docs use for UTC times."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + (
        f"{moment.microsecond // 1000:03d}Z"
    )


def parse_time(value: object) -> datetime:
    if not isinstance(value, str):
        raise _bad(f"time {value!r}")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise _bad(f"time {value!r}") from None
    if moment.tzinfo is None:  # Cal.com always sends an offset; a bare time is UTC
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _data(body: Any) -> Any:
    if not isinstance(body, dict) or body.get("status") != "success" or "data" not in body:
        raise _bad("no {status: success, data} envelope")
    return body["data"]


# ---- slots -----------------------------------------------------------------------------------


def slots_params(
    event_type_id: int, start: datetime, end: datetime, timezone: str,
    length_min: int | None = None,
) -> dict[str, str]:
    params = {
        "eventTypeId": str(event_type_id),
        "start": utc_iso(start),
        "end": utc_iso(end),
        "timeZone": timezone or "UTC",
        "format": "range",
    }
    if length_min is not None:
        params["duration"] = str(length_min)
    return params


def parse_slots(body: Any, start: datetime, end: datetime) -> list[BusyInterval]:
    """The range slots starting in [start, end), in UTC, sorted, without duplicates."""
    days = _data(body)
    if not isinstance(days, dict):
        raise _bad("slots data is not an object of days")
    found: dict[datetime, datetime] = {}
    for day, slots in days.items():
        if not isinstance(slots, list):
            raise _bad(f"slots of {day!r} are not a list")
        for slot in slots:
            if not isinstance(slot, dict):
                raise _bad(f"slot {slot!r}")
            begins = parse_time(slot.get("start"))
            ends = parse_time(slot["end"]) if "end" in slot else None
            if ends is None or ends <= begins:
                raise _bad(f"slot without a usable end: {slot!r}")
            if start <= begins < end:
                found[begins] = ends
    return [BusyInterval(s, found[s]) for s in sorted(found)]


# ---- reservations ----------------------------------------------------------------------------


def reservation_body(
    event_type_id: int, start: datetime, length_min: int | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"eventTypeId": event_type_id, "slotStart": utc_iso(start)}
    if length_min is not None:
        body["slotDuration"] = length_min
    return body


def parse_reservation(body: Any) -> Reservation:
    data = _data(body)
    if not isinstance(data, dict) or not isinstance(data.get("reservationUid"), str):
        raise _bad("reservation without reservationUid")
    minutes = data.get("reservationDuration")
    held_min = minutes if isinstance(minutes, int | float) and minutes > 0 else _HOLD_MIN
    return Reservation(data["reservationUid"], float(held_min) * 60)


# ---- bookings --------------------------------------------------------------------------------


def booking_metadata(request: BookingRequest) -> dict[str, str]:
    """Our key plus the flow's fields, within Cal.com's metadata limits (others are dropped)."""
    metadata = {KEY_FIELD: request.idempotency_key}
    for name, value in request.fields.items():
        if len(metadata) >= _METADATA_KEYS:
            break
        if name and len(name) <= _METADATA_KEY_CHARS and name not in metadata:
            metadata[name] = str(value)[:_METADATA_VALUE_CHARS]
    return metadata


def booking_body(
    event_type_id: int,
    request: BookingRequest,
    reservation_uid: str | None,
    *,
    responses: Mapping[str, Any] | None = None,
    guests: Sequence[str] = (),
    length_min: int | None = None,
) -> dict[str, Any]:
    """``responses`` answer the event type's custom questions (``bookingFieldsResponses``);
    ``guests`` are extra attendees' addresses (``calcom_fields``); ``length_min`` is the chosen
    length of a variable-length event type (``lengthInMinutes``)."""
    who = request.attendee
    attendee: dict[str, str] = {
        "name": who.name or "Caller",
        "timeZone": who.timezone or "UTC",
        "language": "en",
    }
    if who.email:
        attendee["email"] = who.email
    if _E164.match(who.phone):
        attendee["phoneNumber"] = who.phone
    body: dict[str, Any] = {
        "start": utc_iso(request.start),
        "eventTypeId": event_type_id,
        "attendee": attendee,
        "metadata": booking_metadata(request),
    }
    if responses:
        body["bookingFieldsResponses"] = dict(responses)
    if guests:
        body["guests"] = list(guests)
    if length_min is not None:
        body["lengthInMinutes"] = length_min
    if reservation_uid:
        # Cal.com then refuses the booking if someone else reserved the time first (409).
        body["reservedSlotUid"] = reservation_uid
    return body


def lookup_params(event_type_id: int, start: datetime) -> dict[str, str]:
    """Bookings of our event type starting at ``start`` (a day wide: the end is Cal.com's)."""
    return {
        "eventTypeId": str(event_type_id),
        "afterStart": utc_iso(start - timedelta(minutes=1)),
        "beforeEnd": utc_iso(start + timedelta(days=1)),
        "take": "100",
    }


def reschedule_body(start: datetime, reason: str) -> dict[str, Any]:
    return {"start": utc_iso(start), "reschedulingReason": reason or "Rescheduled by phone"}


def guests_body(who: Attendee) -> dict[str, Any]:
    """``POST /v2/bookings/{uid}/guests``: one guest, the caller's address (and name)."""
    guest = {"email": who.email}
    if who.name:
        guest["name"] = who.name
    return {"guests": [guest]}


def cancel_body(reason: str) -> dict[str, Any]:
    # Cal.com wants a reason when the host (our API key) cancels.
    return {"cancellationReason": reason or "Cancelled by phone"}


def _booking(data: Any) -> CalcomBooking:
    if not isinstance(data, dict):
        raise _bad("booking is not an object")
    uid, number, status = data.get("uid"), data.get("id"), data.get("status")
    if not isinstance(uid, str) or not uid or not isinstance(status, str):
        raise _bad("booking without uid or status")
    raw_meta = data.get("metadata")
    metadata = (
        {str(k): str(v) for k, v in raw_meta.items()} if isinstance(raw_meta, dict) else {}
    )
    attendees = data.get("attendees")
    emails = tuple(
        str(a["email"]).lower()
        for a in (attendees if isinstance(attendees, list) else [])
        if isinstance(a, dict) and a.get("email")
    )
    return CalcomBooking(
        uid=uid,
        booking_id=number if isinstance(number, int) else 0,
        status=status,
        start=parse_time(data.get("start")),
        end=parse_time(data.get("end")),
        metadata=metadata,
        attendee_emails=emails,
        rescheduled_to_uid=str(data.get("rescheduledToUid") or ""),
        rescheduled_from_uid=str(data.get("rescheduledFromUid") or ""),
        meeting_url=_link(data.get("meetingUrl")) or _link(data.get("location")),
    )


def _link(value: object) -> str:
    return value if isinstance(value, str) and value.startswith(("https://", "http://")) else ""


def parse_booking(body: Any) -> CalcomBooking:
    data = _data(body)
    if isinstance(data, list):  # a recurring booking answers with its occurrences
        if not data:
            raise _bad("empty booking list")
        data = data[0]
    return _booking(data)


def parse_bookings(body: Any) -> list[CalcomBooking]:
    data = _data(body)
    if not isinstance(data, list):
        raise _bad("bookings data is not a list")
    return [_booking(item) for item in data]


def find_ours(bookings: Sequence[CalcomBooking], request: BookingRequest) -> CalcomBooking | None:
    """The live booking this request already made: same start and our key in its metadata.
    Where Cal.com returns no metadata at all (older deployments), the attendee's email decides."""
    email = request.attendee.email.lower()
    for booking in bookings:
        if booking.start != request.start or booking.mapped_status == "cancelled":
            continue
        key = booking.metadata.get(KEY_FIELD)
        if key == request.idempotency_key:
            return booking
        if key is None and not booking.metadata and email and email in booking.attendee_emails:
            return booking
    return None
