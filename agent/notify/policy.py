"""What a booking action sends: channels, reminder offsets and the message templates.

Templates are ``str.format`` text over a fixed set of ``{variable}`` names (``VARIABLES``); a
template naming anything else is refused when the policy is built, so a typo fails at start-up
rather than in the first confirmation. Times are written in the attendee's zone (the policy's
``timezone`` when the attendee gave none), relative to the moment the message is sent:
"tomorrow at 2 pm EDT", "Tuesday, June 2nd at 10:30 am EDT".
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from slotline.agent.booking.speech import speak_clock, speak_date
from slotline.agent.booking.zones import load_zone
from slotline.agent.store import BookingRecord

Purpose = Literal["confirmation", "reminder"]

VARIABLES = frozenset(
    {"name", "date", "time", "zone", "when", "business", "agent_name", "reference"}
)
CONFIRMATION = "confirmation"  # the job kind of a confirmation; reminders take their own names
_KIND_NAME = re.compile(r"^[A-Za-z0-9_-]+$")  # ":" and "@" separate the parts of a job's kind
_OFFSET = re.compile(r"^([1-9]\d*)([mhd])$")
_OFFSET_UNITS = {"m": "minutes", "h": "hours", "d": "days"}
_NO_NAME = "there"  # "Hi there," when the caller never gave a name


@dataclass(frozen=True, slots=True)
class Reminder:
    """One reminder: ``kind`` names it (unique per policy), ``before`` is how long before the
    appointment it goes out."""

    kind: str
    before: timedelta

    def __post_init__(self) -> None:
        if not _KIND_NAME.match(self.kind) or self.kind == CONFIRMATION:
            raise ValueError(f"reminder name {self.kind!r}: use letters, digits, '-' or '_'")
        if self.before <= timedelta(0):
            raise ValueError(f"reminder {self.kind!r}: the offset must be positive")

    @classmethod
    def parse(cls, text: str) -> Reminder:
        """``"24h"`` / ``"30m"`` / ``"2d"`` (the config's spelling) → a reminder of that name."""
        match = _OFFSET.match(text)
        if match is None:
            raise ValueError(f"{text!r} is not an offset like '24h', '1h' or '30m'")
        amount, unit = match.groups()
        return cls(text, timedelta(**{_OFFSET_UNITS[unit]: int(amount)}))


DEFAULT_REMINDERS = (Reminder.parse("24h"), Reminder.parse("1h"))


@dataclass(frozen=True, slots=True)
class NotificationPolicy:
    """A booking action's confirmations and reminders. ``timezone`` is the zone times are
    written in when the attendee has none (the action's calendar zone)."""

    sms: bool = True
    email: bool = True
    reminders: tuple[Reminder, ...] = DEFAULT_REMINDERS
    timezone: str = "UTC"
    business: str = "us"  # "your appointment with {business}"
    agent_name: str = ""
    confirmation_sms: str = (
        "Hi {name}, your appointment with {business} is confirmed for {when}. "
        "Reference: {reference}."
    )
    confirmation_subject: str = "Your appointment on {date} at {time} {zone}"
    confirmation_email: str = (
        "Hi {name},\n\n"
        "your appointment with {business} is confirmed for {when}.\n"
        "Your booking reference is {reference}.\n\n"
        "See you then!\n"
    )
    reminder_sms: str = (
        "Reminder: your appointment with {business} is {when}. Reference: {reference}."
    )
    reminder_subject: str = "Reminder: your appointment {when}"
    reminder_email: str = (
        "Hi {name},\n\n"
        "a reminder that your appointment with {business} is {when}.\n"
        "Your booking reference is {reference}.\n"
    )

    def __post_init__(self) -> None:
        kinds = [reminder.kind for reminder in self.reminders]
        if len(set(kinds)) != len(kinds):
            raise ValueError(f"notification policy: a reminder is listed twice in {kinds}")
        load_zone(self.timezone)  # ValueError naming it when unknown
        for name in (
            "confirmation_sms",
            "confirmation_subject",
            "confirmation_email",
            "reminder_sms",
            "reminder_subject",
            "reminder_email",
        ):
            _check_template(name, getattr(self, name))

    def reminder(self, kind: str) -> Reminder | None:
        return next((item for item in self.reminders if item.kind == kind), None)

    def sms_text(self, purpose: Purpose, values: dict[str, str]) -> str:
        template = self.confirmation_sms if purpose == CONFIRMATION else self.reminder_sms
        return template.format_map(values)

    def email_text(self, purpose: Purpose, values: dict[str, str]) -> tuple[str, str]:
        """(subject, body)."""
        if purpose == CONFIRMATION:
            subject, body = self.confirmation_subject, self.confirmation_email
        else:
            subject, body = self.reminder_subject, self.reminder_email
        return subject.format_map(values), body.format_map(values)


def template_values(
    booking: BookingRecord, policy: NotificationPolicy, now: datetime
) -> dict[str, str]:
    """Every variable of ``VARIABLES`` for ``booking``, as of ``now``."""
    zone = load_zone(booking.attendee.timezone or policy.timezone)
    local = booking.start.astimezone(zone)
    clock = speak_clock(local)
    zone_name = local.tzname() or ""
    day = speak_date(local.date(), now.astimezone(zone).date())
    return {
        "name": booking.attendee.name or _NO_NAME,
        "date": speak_date(local.date()),
        "time": clock,
        "zone": zone_name,
        "when": f"{day} at {clock} {zone_name}".rstrip(),
        "business": policy.business,
        "agent_name": policy.agent_name,
        "reference": booking.id,
    }


def _check_template(name: str, template: str) -> None:
    try:
        fields = [
            field for _, field, _, _ in string.Formatter().parse(template) if field is not None
        ]
    except ValueError as error:
        raise ValueError(f"notification template {name}: {error}") from None
    for field in fields:
        if field not in VARIABLES:
            known = ", ".join(sorted(VARIABLES))
            raise ValueError(
                f"notification template {name}: unknown placeholder {{{field}}}; use {known}"
            )
    try:  # a format spec or conversion that cannot apply to text fails here, not when sending
        template.format_map(dict.fromkeys(VARIABLES, ""))
    except (ValueError, KeyError, IndexError) as error:
        raise ValueError(f"notification template {name}: {error}") from None
