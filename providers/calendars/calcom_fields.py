"""A Cal.com event type's own settings, without I/O: its length and its booking fields.

``GET /v2/event-types/{id}`` (``cal-api-version: 2024-06-14``) answers the event type with
``lengthInMinutes`` (and ``lengthInMinutesOptions`` for a variable-length one) and
``bookingFields``: the questions Cal.com's own booking page asks. The built-in ones (name,
e-mail, phone, location, notes, guests, ...) carry ``isDefault: true`` or a system slug; the rest
are the host's custom questions, answered in a booking's ``bookingFieldsResponses`` under their
``slug``. A required custom question left unanswered makes Cal.com refuse the booking, so the
flow variable that answers each one is known before any call (``agent.booking.vendor_fields``).

A flow variable answers the question of the same slug, unless the calendar's ``fields`` setting
maps the slug to another variable. ``guests`` (several addresses, split on commas, semicolons
or spaces) become the booking's extra attendees.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from slotline.providers.errors import ProviderError

PROVIDER = "calcom"
EVENT_TYPES_VERSION = "2024-06-14"
GUESTS_VARIABLE = "guests"
# Cal.com's built-in booking fields: answered from the attendee, never from flow variables.
SYSTEM_SLUGS = frozenset({
    "name", "email", "attendeePhoneNumber", "location", "title", "notes", "guests",
    "rescheduleReason", "smsReminderNumber", "attendeeFirstName", "attendeeLastName",
})  # fmt: skip
_GUEST_SPLIT = re.compile(r"[,;\s]+")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass(frozen=True, slots=True)
class BookingField:
    slug: str
    required: bool
    kind: str  # Cal.com's ``type``: text, textarea, number, select, boolean, phone, ...
    label: str = ""


@dataclass(frozen=True, slots=True)
class EventTypeFacts:
    """What Slotline reads from an event type before booking on it."""

    event_type_id: int
    length_min: int
    length_options_min: tuple[int, ...]
    custom_fields: tuple[BookingField, ...]
    meeting_link: str = ""  # a fixed ``link`` location, when the event type has one
    title: str = ""

    @property
    def required_slugs(self) -> tuple[str, ...]:
        return tuple(item.slug for item in self.custom_fields if item.required)


def _bad(what: str) -> ProviderError:
    return ProviderError(PROVIDER, f"unexpected event type answer: {what}")


def parse_event_types(body: Any) -> list[EventTypeFacts]:
    """``GET /v2/event-types``: the API key owner's event types."""
    data = body.get("data") if isinstance(body, dict) and body.get("status") == "success" else None
    if not isinstance(data, list):
        raise _bad("event types data is not a list")
    return [parse_event_type({"status": "success", "data": item}) for item in data]


def event_type_path(event_type_id: int) -> str:
    return f"/v2/event-types/{event_type_id}"


def parse_event_type(body: Any) -> EventTypeFacts:
    data = body.get("data") if isinstance(body, dict) and body.get("status") == "success" else None
    if not isinstance(data, dict):
        raise _bad("no {status: success, data} envelope")
    number, length = data.get("id"), data.get("lengthInMinutes")
    if not isinstance(number, int) or not isinstance(length, int) or length < 1:
        raise _bad("no id or lengthInMinutes")
    options = data.get("lengthInMinutesOptions")
    lengths = tuple(
        item for item in (options if isinstance(options, list) else [])
        if isinstance(item, int) and item > 0
    )
    fields: list[BookingField] = []
    for raw in data.get("bookingFields") or []:
        if not isinstance(raw, dict):
            raise _bad(f"booking field {raw!r}")
        slug = raw.get("slug")
        if not isinstance(slug, str) or not slug:
            continue  # a system field written by its type alone ({"type": "name"})
        if raw.get("isDefault") is True or slug in SYSTEM_SLUGS or raw.get("hidden") is True:
            continue
        fields.append(BookingField(
            slug, raw.get("required") is True, str(raw.get("type") or "text"),
            str(raw.get("label") or ""),
        ))  # fmt: skip
    return EventTypeFacts(number, length, lengths, tuple(fields), _link(data.get("locations")),
                          str(data.get("title") or data.get("slug") or ""))


def _link(locations: object) -> str:
    for item in locations if isinstance(locations, list) else []:
        if isinstance(item, dict) and item.get("type") == "link":
            link = item.get("link")
            if isinstance(link, str) and link.startswith(("https://", "http://")):
                return link
    return ""


def variable_for(slug: str, mapping: Mapping[str, str]) -> str:
    """The flow variable answering booking field ``slug``."""
    return mapping.get(slug, slug)


def field_responses(
    facts: EventTypeFacts, values: Mapping[str, str], mapping: Mapping[str, str]
) -> dict[str, Any]:
    """``bookingFieldsResponses``: each custom question the flow has an answer for."""
    answers: dict[str, Any] = {}
    for item in facts.custom_fields:
        value = values.get(variable_for(item.slug, mapping), "").strip()
        if not value:
            continue
        if item.kind == "number":
            try:
                answers[item.slug] = int(value) if value.lstrip("-").isdigit() else float(value)
            except ValueError:
                answers[item.slug] = value  # Cal.com says what it dislikes
        elif item.kind in ("boolean", "checkbox"):
            answers[item.slug] = value.lower() in ("yes", "true", "1", "y")
        elif item.kind in ("multiselect", "checkbox-group"):
            answers[item.slug] = [part.strip() for part in value.split(",") if part.strip()]
        else:
            answers[item.slug] = value
    return answers


def mapped_responses(values: Mapping[str, str], mapping: Mapping[str, str]) -> dict[str, Any]:
    """``bookingFieldsResponses`` when the event type could not be read: the mapped fields."""
    return {
        slug: values[variable].strip()
        for slug, variable in mapping.items()
        if values.get(variable, "").strip()
    }


def guest_emails(values: Mapping[str, str], booker_email: str) -> list[str]:
    """The ``guests`` variable's addresses, without the booker's own and without repeats."""
    seen = {booker_email.lower()} if booker_email else set()
    found: list[str] = []
    for part in _GUEST_SPLIT.split(values.get(GUESTS_VARIABLE, "")):
        if _EMAIL.match(part) and part.lower() not in seen:
            seen.add(part.lower())
            found.append(part)
    return found
