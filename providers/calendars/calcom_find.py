"""Cal.com bookings by attendee (``BookingFinder``): the request and the reading of the answer.

``GET /v2/bookings`` (cal-api-version 2024-08-13) filters by ``attendeeEmail`` and
``attendeeName`` but not by phone, so: an e-mail alone is asked with ``attendeeEmail``; a phone
number (or both) lists the event type's upcoming and unconfirmed bookings in the window, page by
page, and keeps those whose attendee has the number (``attendees[].phoneNumber``, or the booking
form's ``attendeePhoneNumber`` answer) or the address. Pure: no I/O here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from slotline.providers.calendars.base import Attendee, VendorBooking
from slotline.providers.calendars.calcom_wire import parse_time, utc_iso
from slotline.providers.calendars.matching import belongs

PAGE_SIZE = 100
MAX_PAGES = 10  # 1,000 bookings of one event type in the window: more is not a caller's
_LIVE = frozenset({"accepted", "pending"})


def find_params(
    event_type_id: int, start: datetime, end: datetime, *, phone: str, email: str, page: int
) -> dict[str, str]:
    params = {
        "eventTypeId": str(event_type_id),
        "status": "upcoming,unconfirmed",
        "afterStart": utc_iso(start),
        "beforeEnd": utc_iso(end),
        "sortStart": "asc",
        "take": str(PAGE_SIZE),
        "skip": str(page * PAGE_SIZE),
    }
    if email and not phone:
        params["attendeeEmail"] = email
    return params


def has_next_page(body: Any) -> bool:
    pagination = body.get("pagination") if isinstance(body, dict) else None
    return isinstance(pagination, dict) and pagination.get("hasNextPage") is True


def matching(body: Any, *, phone: str, email: str) -> list[VendorBooking]:
    """The live bookings of one page whose attendee is the caller."""
    data = body.get("data") if isinstance(body, dict) else None
    found = []
    for item in data if isinstance(data, list) else []:
        booking = _vendor_booking(item, phone, email)
        if booking is not None:
            found.append(booking)
    return found


def _vendor_booking(item: Any, phone: str, email: str) -> VendorBooking | None:
    if not isinstance(item, dict) or item.get("status") not in _LIVE:
        return None
    uid = item.get("uid")
    if not isinstance(uid, str) or not uid:
        return None
    attendees = [a for a in item.get("attendees") or [] if isinstance(a, dict)]
    answers = item.get("bookingFieldsResponses")
    answers = answers if isinstance(answers, dict) else {}
    phones = tuple(str(a.get("phoneNumber") or "") for a in attendees)
    phones += (str(answers.get("attendeePhoneNumber") or ""),)
    emails = tuple(str(a.get("email") or "") for a in attendees)
    if not belongs(phone, email, phones, emails):
        return None
    booker = attendees[0] if attendees else {}
    attendee = Attendee(
        name=str(booker.get("name") or ""), email=str(booker.get("email") or ""),
        phone=next((p for p in phones if p), ""), timezone=str(booker.get("timeZone") or ""),
    )
    return VendorBooking(uid, parse_time(item.get("start")), parse_time(item.get("end")),
                         attendee, str(item.get("title") or ""))
