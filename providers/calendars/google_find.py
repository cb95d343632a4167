"""Google Calendar bookings by attendee (``BookingFinder``): the query and the reading.

``events.list`` (``singleEvents``, ``orderBy=startTime``, ``timeMin``/``timeMax``) with ``q``
set to the e-mail when only an e-mail is known (Google searches summary, description, location
and attendees); a phone number is not a search term Google matches across spellings ("+1 555
…" vs "(555) …"), so with one the window is listed and each event's description is read for the
number. An event is the caller's when an attendee's e-mail, or a number or address written in
its description ("Phone: …", "Email: …" as Slotline writes them, or staff's own notes), is the
caller's. Pure: no I/O here.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from slotline.providers.calendars.base import Attendee, VendorBooking
from slotline.providers.calendars.matching import belongs, emails_in, phones_in


def find_params(start: datetime, end: datetime, *, phone: str, email: str) -> dict[str, str]:
    params = {"timeMin": _utc(start), "timeMax": _utc(end), "singleEvents": "true",
              "orderBy": "startTime", "maxResults": "250"}
    if email and not phone:
        params["q"] = email
    return params


def matching(
    events: list[Mapping[str, Any]], start: datetime, *, phone: str, email: str
) -> list[VendorBooking]:
    found = []
    for event in events:
        booking = _booking(event, start, phone, email)
        if booking is not None:
            found.append(booking)
    return found


def _booking(
    event: Mapping[str, Any], start: datetime, phone: str, email: str
) -> VendorBooking | None:
    if event.get("status") == "cancelled":
        return None
    try:
        began, ended = (datetime.fromisoformat(event[k]["dateTime"]).astimezone(UTC)
                        for k in ("start", "end"))
    except (KeyError, TypeError, ValueError):
        return None  # an all-day event is no appointment
    if began < start:
        return None
    guests = [a for a in event.get("attendees") or [] if isinstance(a, dict)]
    notes = str(event.get("description") or "")
    emails = (*(str(a.get("email") or "") for a in guests), *emails_in(notes))
    phones = phones_in(notes)
    if not belongs(phone, email, phones, emails):
        return None
    name = next((str(a["displayName"]) for a in guests if a.get("displayName")), "")
    attendee = Attendee(name=name, email=next((e for e in emails if e), ""),
                        phone=next(iter(phones), ""))
    return VendorBooking(str(event["id"]), began, ended, attendee, str(event.get("summary", "")))


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
