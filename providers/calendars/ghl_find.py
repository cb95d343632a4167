"""GoHighLevel bookings by attendee (``BookingFinder``): reading the two answers.

GHL books appointments for contacts, so a caller's bookings are their contact's: ``GET
/contacts/search/duplicate`` (``number`` or ``email``; Version 2021-07-28) finds the contact,
``GET /contacts/{contactId}/appointments`` lists its appointments on every calendar of the
location; those of our calendar, not cancelled, starting in the window are the caller's. A
phone number and an e-mail are searched separately (they may be two contacts). Pure: no I/O.
"""

from __future__ import annotations

from datetime import datetime

from slotline.providers.calendars import ghl_wire as wire
from slotline.providers.calendars.base import Attendee, VendorBooking


def contact_of(body: object) -> dict[str, object] | None:
    """The contact of a duplicate search, or None (``{"contact": null}``)."""
    contact = body.get("contact") if isinstance(body, dict) else None
    return contact if isinstance(contact, dict) and isinstance(contact.get("id"), str) else None


def appointments_of(
    body: object, contact: dict[str, object], calendar_id: str, start: datetime, end: datetime
) -> list[VendorBooking]:
    """The contact's live appointments on ``calendar_id`` starting in [start, end)."""
    events = body.get("events") if isinstance(body, dict) else None
    attendee = Attendee(
        name=str(contact.get("name") or " ".join(
            str(contact.get(k) or "") for k in ("firstName", "lastName")).strip()),
        email=str(contact.get("email") or ""), phone=str(contact.get("phone") or ""),
        timezone=str(contact.get("timezone") or ""),
    )
    found = []
    for event in events if isinstance(events, list) else []:
        if not isinstance(event, dict) or event.get("calendarId") != calendar_id:
            continue
        booking = wire.booking_of(event)
        if booking.status == "confirmed" and start <= booking.start < end:
            found.append(VendorBooking(booking.provider_booking_id, booking.start, booking.end,
                                       attendee, str(event.get("title") or "")))
    return found
