"""The calendar invitation a booking's confirmation e-mail carries (``providers.notify.ics``).

UID ``<booking id>@slotline``: the same for every message about one booking, so a client
replaces the event when the booking moves; SEQUENCE counts the seconds the record has been
changed since it was made (0 at first, at least 1 once it changed). The meeting link is the one
the calendar gave (``fields["meeting_url"]``, kept with the booking), when there is one.
"""

from __future__ import annotations

from datetime import datetime

from slotline.agent.notify.policy import NotificationPolicy
from slotline.agent.store import BookingRecord
from slotline.providers.notify.ics import Invitation

MEETING_URL_FIELD = "meeting_url"


def invitation_for(
    booking: BookingRecord, policy: NotificationPolicy, body: str, now: datetime
) -> Invitation:
    link = booking.fields.get(MEETING_URL_FIELD, "")
    description = body if not link or link in body else f"{body.rstrip()}\n\nJoin: {link}\n"
    return Invitation(
        uid=f"{booking.id}@slotline",
        sequence=_sequence(booking),
        start=booking.start,
        end=booking.end,
        summary=f"Appointment with {policy.business}",
        description=description,
        attendee_email=booking.attendee.email,
        attendee_name=booking.attendee.name,
        organizer_name=policy.business,
        meeting_url=link,
        stamp=now,
    )


def _sequence(booking: BookingRecord) -> int:
    changed_s = (booking.updated_at - booking.created_at).total_seconds()
    return 0 if changed_s <= 0 else max(1, int(changed_s))
