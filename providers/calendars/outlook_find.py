"""Outlook (Microsoft Graph) bookings by attendee (``BookingFinder``): reading the events.

Graph has no attendee filter on ``calendarView`` (``$filter`` on ``attendees`` is not among the
properties it filters events by), so the window is listed (``$top``/``$skip`` pages, times in
UTC) and each event is read: it is the caller's when an attendee's address, or a number or
address written in its body ("Phone: …" as Slotline writes it, or staff's own notes), is the
caller's. Pure: no I/O here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from slotline.providers.calendars.base import Attendee, VendorBooking
from slotline.providers.calendars.matching import belongs, emails_in, phones_in

PAGE_SIZE = 100
MAX_PAGES = 10


def matching(
    items: list[Any], start: datetime, parse_time: Callable[[object], datetime], *,
    phone: str, email: str,
) -> list[VendorBooking]:
    """The caller's live events starting at or after ``start`` (``parse_time``: Graph's
    dateTimeTimeZone → aware datetime)."""
    found = []
    for item in items:
        if not isinstance(item, Mapping) or item.get("isCancelled") is True:
            continue
        booking = _booking(item, parse_time, phone, email)
        if booking is not None and booking.start >= start:
            found.append(booking)
    return found


def _booking(
    item: Mapping[str, Any], parse_time: Callable[[object], datetime], phone: str, email: str
) -> VendorBooking | None:
    people: list[Mapping[str, Any]] = [
        a["emailAddress"] for a in item.get("attendees") or []
        if isinstance(a, dict) and isinstance(a.get("emailAddress"), dict)
    ]
    body = item.get("body")
    notes = str(body.get("content") or "") if isinstance(body, Mapping) else ""
    emails = (*(str(p.get("address") or "") for p in people), *emails_in(notes))
    phones = phones_in(notes)
    if not belongs(phone, email, phones, emails) or not isinstance(item.get("id"), str):
        return None
    name = next((str(p["name"]) for p in people if p.get("name")), "")
    attendee = Attendee(name=name, email=next((e for e in emails if e), ""),
                        phone=next(iter(phones), ""))
    return VendorBooking(item["id"], parse_time(item.get("start")), parse_time(item.get("end")),
                         attendee, str(item.get("subject") or ""))
