"""CalDAV bookings by attendee (``BookingFinder``): the REPORT bodies and the reading.

One ``calendar-query`` REPORT (RFC 4791 §7.8) per thing known about the caller, each a VEVENT
``comp-filter`` with the window's ``time-range`` and a ``prop-filter`` whose ``text-match``
(collation ``i;ascii-casemap``, a substring match) the server applies:
- an e-mail: on ``ATTENDEE`` (``mailto:`` + the address);
- a phone number: on ``DESCRIPTION``, by its last four digits — any way a number is written
  ("+1 555 010 2030", "(555) 010-2030") keeps them together — so the server narrows and the
  client decides (``belongs``: the last ten digits).
The prop-filters of one comp-filter must all match, so "phone or e-mail" is two REPORTs; their
events are merged by UID. Cancelled events, and events starting before the window, are not
the caller's booking to move. Pure: no I/O here.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from xml.sax.saxutils import escape
from zoneinfo import ZoneInfo

import icalendar

from slotline.providers.calendars.base import Attendee, VendorBooking
from slotline.providers.calendars.matching import belongs, emails_in, phone_digits, phones_in

_ICAL_UTC = "%Y%m%dT%H%M%SZ"
_BODY = """<?xml version="1.0" encoding="utf-8"?>
<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
  <D:prop><D:getetag/><C:calendar-data/></D:prop>
  <C:filter>
    <C:comp-filter name="VCALENDAR">
      <C:comp-filter name="VEVENT">
        <C:time-range start="{start}" end="{end}"/>
        <C:prop-filter name="{prop}">
          <C:text-match collation="i;ascii-casemap">{text}</C:text-match>
        </C:prop-filter>
      </C:comp-filter>
    </C:comp-filter>
  </C:filter>
</C:calendar-query>"""


def query_bodies(start: datetime, end: datetime, *, phone: str, email: str) -> list[str]:
    """One REPORT body per thing known about the caller (none when nothing is)."""
    window = {"start": start.astimezone(UTC).strftime(_ICAL_UTC),
              "end": end.astimezone(UTC).strftime(_ICAL_UTC)}
    bodies = []
    if email:
        bodies.append(_BODY.format(prop="ATTENDEE", text=escape(email), **window))
    digits = phone_digits(phone)
    if len(digits) >= 7:
        bodies.append(_BODY.format(prop="DESCRIPTION", text=digits[-4:], **window))
    return bodies


def matching(
    calendar_data: str, start: datetime, zone: ZoneInfo, *, phone: str, email: str
) -> list[VendorBooking]:
    """The caller's live events of one resource starting at or after ``start``."""
    found = []
    for event in _vevents(calendar_data):
        if str(event.get("STATUS", "")).upper() == "CANCELLED" or "DTSTART" not in event:
            continue
        notes = str(event.get("DESCRIPTION", ""))
        guests = _attendees(event)
        emails = (*(str(g).removeprefix("mailto:").removeprefix("MAILTO:") for g in guests),
                  *emails_in(notes))
        phones = phones_in(notes)
        if not belongs(phone, email, phones, emails):
            continue
        began = _instant(event.get("DTSTART").dt, zone)
        if "DTEND" in event:
            ended = _instant(event.get("DTEND").dt, zone)
        else:
            ended = began + (event.get("DURATION").dt if "DURATION" in event else timedelta(0))
        if began < start:
            continue
        name = next((str(g.params["CN"]) for g in guests if "CN" in g.params), "")
        attendee = Attendee(name=name, email=next((e for e in emails if e), ""),
                            phone=next(iter(phones), ""))
        found.append(VendorBooking(str(event.get("UID", "")), began, ended, attendee,
                                   str(event.get("SUMMARY", ""))))
    return found


def _vevents(text: str) -> Iterator[icalendar.Component]:
    yield from icalendar.Calendar.from_ical(text).walk("VEVENT")


def _attendees(event: icalendar.Component) -> list[icalendar.vCalAddress]:
    found = event.get("ATTENDEE", [])
    return [a for a in (found if isinstance(found, list) else [found])
            if isinstance(a, icalendar.vCalAddress)]


def _instant(value: date | datetime, zone: ZoneInfo) -> datetime:
    """An iCalendar time in UTC: floating times and dates are the calendar's local time."""
    if not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone)
    return value.astimezone(UTC)
