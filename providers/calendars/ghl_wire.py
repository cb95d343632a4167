"""GoHighLevel (LeadConnector v2) wire shapes for calendars: pure building and parsing, no I/O.

What the adapter sends and how it reads the answers, kept apart so each rule is testable alone:
- times go out as epoch milliseconds (free-slots ``startDate``/``endDate``, events
  ``startTime``/``endTime``) and as ISO-8601 with an offset (appointment ``startTime``);
- a free-slots answer is ``{"YYYY-MM-DD": {"slots": [iso, ...]}, "traceId": ...}``: only date keys
  count, each slot keeps its original string (GHL wants ``startTime`` back exactly as offered);
- GHL has no idempotency key, so the Slotline key rides in the appointment ``description``
  (``Slotline ref: <key>``) and a lost answer is recovered by finding that line again;
- error bodies are NestJS-shaped: ``{"statusCode": 400, "message": "..." | ["...", ...]}``;
- an appointment's meeting location is its ``address`` (``AppointmentSchemaResponse`` and
  ``CalendarEventDTO``: "Zoom", a street address, a phone number, or a link such as
  ``https://meet.google.com/...``); only an http(s) link becomes the booking's ``meeting_url``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from slotline.providers.calendars.base import Attendee, BookingStatus, ProviderBooking
from slotline.providers.errors import ProviderError

PROVIDER = "ghl"
CALENDARS_VERSION = "2021-04-15"  # the ``Version`` header the calendars API requires
CONTACTS_VERSION = "2021-07-28"  # … and the contacts API
MAX_WINDOW = timedelta(days=31)  # free-slots refuses longer ranges
SLOT_TAKEN_TEXT = "no longer available"  # "The slot you have selected is no longer available."
KEY_MARKER = "Slotline ref: "
_DATE_KEY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_CANCELLED = frozenset({"cancelled", "invalid"})


def millis(moment: datetime) -> str:
    """Epoch milliseconds, as GHL's query parameters take them."""
    return str(int(moment.timestamp() * 1000))


def zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name) if name else None
    except (ZoneInfoNotFoundError, ValueError):
        return None


def iso_in(moment: datetime, timezone: str) -> str:
    """``2026-12-01T10:00:00-05:00``: the time in ``timezone`` (UTC when unknown), with offset."""
    local = moment.astimezone(zone(timezone) or ZoneInfo("UTC"))
    return local.isoformat(timespec="seconds")


def windows(start: datetime, end: datetime, span: timedelta = MAX_WINDOW) -> Iterator[
    tuple[datetime, datetime]
]:
    """``[start, end)`` cut into consecutive pieces no longer than ``span`` of real time (in
    UTC: adding days to a zoned datetime adds wall-clock days, an hour off across DST)."""
    cursor, end = start.astimezone(UTC), end.astimezone(UTC)
    while cursor < end:
        stop = min(end, cursor + span)
        yield cursor, stop
        cursor = stop


def free_slots_params(start: datetime, end: datetime, timezone: str) -> dict[str, str]:
    """One free-slots query for ``[start, end)`` (GHL's ``endDate`` is inclusive: end - 1 ms)."""
    params = {"startDate": millis(start), "endDate": millis(end - timedelta(milliseconds=1))}
    if timezone:
        params["timezone"] = timezone
    return params


def parse_time(text: object) -> datetime | None:
    """An aware datetime from GHL's ISO strings (``Z`` or an offset), else None."""
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def parse_free_slots(body: object) -> list[tuple[datetime, str]]:
    """Every offered slot as (instant, the string GHL sent); non-date keys are skipped."""
    if not isinstance(body, dict):
        raise ProviderError(PROVIDER, "free-slots: the answer is not a JSON object")
    offered: list[tuple[datetime, str]] = []
    for key, day in body.items():
        if not _DATE_KEY.match(key) or not isinstance(day, dict):
            continue  # "traceId" and friends
        for text in day.get("slots") or []:
            moment = parse_time(text)
            if moment is None:
                raise ProviderError(PROVIDER, f"free-slots: {text!r} is not a time with an offset")
            offered.append((moment, str(text)))
    return offered


def contact_body(location_id: str, attendee: Attendee) -> dict[str, str]:
    """``POST /contacts/upsert``: only the fields we know (GHL validates email and phone)."""
    body = {"locationId": location_id, "name": attendee.name}
    for key, value in (
        ("email", attendee.email),
        ("phone", attendee.phone),
        ("timezone", attendee.timezone),
    ):
        if value:
            body[key] = value
    return body


def contact_id_of(body: object) -> str:
    contact = body.get("contact") if isinstance(body, dict) else None
    found = contact.get("id") if isinstance(contact, dict) else None
    if not isinstance(found, str) or not found:
        raise ProviderError(PROVIDER, "contacts/upsert: the answer has no contact id")
    return found


def description(fields: Mapping[str, str], key: str) -> str:
    """The appointment notes: the booking's fields, then the line that makes writes findable."""
    lines = [f"{name}: {value}" for name, value in fields.items() if value]
    return "\n".join([*lines, f"{KEY_MARKER}{key}"])


def find_keyed(body: object, key: str, contact_id: str) -> Mapping[str, Any] | None:
    """The live event of ``GET /calendars/events`` that carries our key for this contact."""
    events = body.get("events") if isinstance(body, dict) else None
    marker = f"{KEY_MARKER}{key}"
    for event in events if isinstance(events, list) else []:
        if not isinstance(event, dict) or event.get("contactId") != contact_id:
            continue
        text = event.get("description") or event.get("notes") or ""
        lines = text.splitlines() if isinstance(text, str) else []
        if marker in lines and event.get("appointmentStatus") not in _CANCELLED:
            return event
    return None


def status_of(value: object) -> BookingStatus:
    return "cancelled" if value in _CANCELLED else "confirmed"


def booking_of(
    appointment: object, start: datetime | None = None, end: datetime | None = None
) -> ProviderBooking:
    """A ``ProviderBooking`` from an appointment / calendar event (the request's times fill in
    what the answer leaves out)."""
    if not isinstance(appointment, dict) or not isinstance(appointment.get("id"), str):
        raise ProviderError(PROVIDER, "the appointment in the answer has no id")
    began = parse_time(appointment.get("startTime")) or start
    ended = parse_time(appointment.get("endTime")) or end
    if began is None or ended is None:
        raise ProviderError(PROVIDER, f"appointment {appointment['id']} has no usable times")
    return ProviderBooking(
        appointment["id"], began, ended, status_of(appointment.get("appointmentStatus")),
        meeting_link(appointment.get("address")),
    )


def meeting_link(address: object) -> str:
    """The appointment's ``address`` when it is a web link (a video meeting), else ""."""
    text = address.strip() if isinstance(address, str) else ""
    return text if text.lower().startswith(("https://", "http://")) and " " not in text else ""


def busy_of(body: object) -> list[tuple[datetime, datetime]]:
    """The live events of a ``GET /calendars/events`` answer as (start, end)."""
    events = body.get("events") if isinstance(body, dict) else None
    busy: list[tuple[datetime, datetime]] = []
    for event in events if isinstance(events, list) else []:
        if not isinstance(event, dict) or event.get("appointmentStatus") in _CANCELLED:
            continue
        began, ended = parse_time(event.get("startTime")), parse_time(event.get("endTime"))
        if began is None or ended is None or ended <= began:
            raise ProviderError(PROVIDER, f"calendar event {event.get('id')!r} has bad times")
        busy.append((began, ended))
    return sorted(busy)


def error_text(body: object, text: str) -> str:
    """GHL's ``message`` (a string or a list of strings), kept short."""
    if isinstance(body, dict):
        message = body.get("message")
        if isinstance(message, list):
            message = "; ".join(str(item) for item in message)
        if isinstance(message, str) and message:
            return message[:300]
    return text.strip()[:300]


def is_slot_taken(status: int, body: object, text: str) -> bool:
    return status in (400, 409, 422) and SLOT_TAKEN_TEXT in error_text(body, text).lower()


def is_not_found(status: int, body: object, text: str) -> bool:
    return status == 404 or (status == 400 and "not found" in error_text(body, text).lower())
