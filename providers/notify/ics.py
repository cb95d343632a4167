"""An iCalendar invitation (RFC 5545, iTIP ``METHOD:REQUEST``, RFC 5546), built without I/O.

One ``VEVENT`` per booking: ``UID`` is stable per booking, so a calendar client that already
holds it replaces it when the booking moves (``SEQUENCE`` grows); times are UTC
(``DTSTART:20261201T150000Z``), which every client places right in the reader's own zone, so no
``VTIMEZONE`` is needed. ``ORGANIZER`` is the business (the sender's address), ``ATTENDEE`` the
caller; the meeting link, when the calendar gave one, is the ``LOCATION`` and ``URL``.

Text values are escaped (backslash, semicolon, comma, newline) and lines folded at 75 octets,
never inside a UTF-8 sequence; lines end with CRLF.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

PRODID = "-//Slotline//Booking invitation//EN"
_FOLD_OCTETS = 75


@dataclass(frozen=True, slots=True)
class Invitation:
    uid: str  # stable per booking ("<booking id>@<sender domain>")
    sequence: int  # grows with every change of the booking
    start: datetime
    end: datetime
    summary: str
    description: str
    attendee_email: str
    attendee_name: str = ""
    organizer_name: str = ""
    meeting_url: str = ""
    stamp: datetime | None = None  # DTSTAMP: when it was written (default: now)


def _utc(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("naive datetime")
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def _text(value: str) -> str:
    return (
        value.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,")
        .replace("\r\n", "\\n").replace("\n", "\\n").replace("\r", "\\n")
    )


def _param(value: str) -> str:
    """A parameter value (CN): quoted, without the characters a quoted value cannot hold."""
    cleaned = value.replace('"', "'").replace("\r", " ").replace("\n", " ")
    return f'"{cleaned}"'


def _fold(line: str) -> str:
    out: list[str] = []
    current = ""
    size = 0
    for char in line:
        width = len(char.encode("utf-8"))
        limit = _FOLD_OCTETS if not out else _FOLD_OCTETS - 1  # continuations start with " "
        if size + width > limit:
            out.append(current)
            current, size = "", 0
        current += char
        size += width
    out.append(current)
    return "\r\n ".join(out)


def render(invitation: Invitation, organizer_email: str) -> str:
    """The invitation as ``text/calendar`` content (``METHOD:REQUEST``)."""
    who = invitation
    stamp = who.stamp or datetime.now(UTC)
    organizer = "ORGANIZER" + (f";CN={_param(who.organizer_name)}" if who.organizer_name else "")
    attendee = "ATTENDEE" + (f";CN={_param(who.attendee_name)}" if who.attendee_name else "")
    lines = [
        "BEGIN:VCALENDAR",
        f"PRODID:{PRODID}",
        "VERSION:2.0",
        "CALSCALE:GREGORIAN",
        "METHOD:REQUEST",
        "BEGIN:VEVENT",
        f"UID:{_text(who.uid)}",
        f"SEQUENCE:{max(0, who.sequence)}",
        f"DTSTAMP:{_utc(stamp)}",
        f"DTSTART:{_utc(who.start)}",
        f"DTEND:{_utc(who.end)}",
        f"SUMMARY:{_text(who.summary)}",
        f"DESCRIPTION:{_text(who.description)}",
        f"{organizer}:mailto:{organizer_email}",
        f"{attendee};ROLE=REQ-PARTICIPANT;PARTSTAT=NEEDS-ACTION;RSVP=FALSE"
        f":mailto:{who.attendee_email}",
        "STATUS:CONFIRMED",
        "TRANSP:OPAQUE",
    ]
    if who.meeting_url:
        lines += [f"LOCATION:{_text(who.meeting_url)}", f"URL:{who.meeting_url}"]
    lines += ["END:VEVENT", "END:VCALENDAR"]
    return "".join(_fold(line) + "\r\n" for line in lines)
