"""JSON Schemas (draft 2020-12) for the Microsoft Graph v1.0 request bodies the emulator serves.

Graph's own description is an OData CSDL document, not available offline; these schemas are
written from the v1.0 reference pages (microsoft-graph-docs: calendar-getschedule, user-post-
events, event-update, event-cancel and the resource pages of event, attendee, emailAddress,
dateTimeTimeZone, itemBody, location). They cover every property those pages list for the
requests Slotline sends, so a body Graph would refuse (a missing or mistyped field, a property
the type does not define) is refused here too.

OData action parameters (getSchedule, cancel) are matched case-insensitively by Graph (its own
docs send ``"Schedules"`` and ``"Comment"``): the emulator folds their case with ``canonical``
before validating. Entity properties (event) keep their case.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_ODATA_ANNOTATIONS: dict[str, Any] = {"^@odata\\.": {}}  # "@odata.type" may annotate any object


def _object(
    properties: Mapping[str, Any], required: tuple[str, ...] = (), *, closed: bool = True
) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": dict(properties)}
    if required:
        schema["required"] = list(required)
    if closed:
        schema["patternProperties"] = _ODATA_ANNOTATIONS
        schema["additionalProperties"] = False
    return schema


_STRING = {"type": "string"}
_BOOLEAN = {"type": "boolean"}
_INT32 = {"type": "integer", "minimum": -(2**31), "maximum": 2**31 - 1}

# dateTimeTimeZone: a wall-clock time ("2019-03-15T09:00:00", up to 7 fractional digits) and a
# Windows or IANA zone name.
DATE_TIME_TIME_ZONE = _object(
    {
        "dateTime": {
            "type": "string",
            "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,7})?)?$",
        },
        "timeZone": {"type": "string", "minLength": 1},
    },
    ("dateTime", "timeZone"),
)

EMAIL_ADDRESS = _object(
    {"address": {"type": "string", "pattern": r"^[^@\s]+@[^@\s]+$"}, "name": _STRING},
    ("address",),
)

ATTENDEE = _object(
    {
        "emailAddress": EMAIL_ADDRESS,
        "type": {"enum": ["required", "optional", "resource"]},
        "status": _object(
            {"response": _STRING, "time": _STRING}
        ),  # read back from Graph; accepted, ignored
    },
    ("emailAddress",),
)

ITEM_BODY = _object(
    {"contentType": {"type": "string", "pattern": "(?i)^(text|html)$"}, "content": _STRING}
)

LOCATION = _object({"displayName": _STRING}, closed=False)  # address, coordinates, ...

FREE_BUSY_STATUS = {"enum": ["free", "tentative", "busy", "oof", "workingElsewhere", "unknown"]}

_EVENT_PROPERTIES: dict[str, Any] = {
    "subject": _STRING,
    "body": ITEM_BODY,
    "start": DATE_TIME_TIME_ZONE,
    "end": DATE_TIME_TIME_ZONE,
    "attendees": {"type": "array", "items": ATTENDEE, "maxItems": 500},
    "transactionId": {"type": "string", "minLength": 1},
    "showAs": FREE_BUSY_STATUS,
    "isAllDay": _BOOLEAN,
    "isReminderOn": _BOOLEAN,
    "reminderMinutesBeforeStart": _INT32,
    "responseRequested": _BOOLEAN,
    "allowNewTimeProposals": _BOOLEAN,
    "hideAttendees": _BOOLEAN,
    "isOnlineMeeting": _BOOLEAN,
    "onlineMeetingProvider": {
        "enum": ["unknown", "teamsForBusiness", "skypeForBusiness", "skypeForConsumer"]
    },
    "importance": {"enum": ["low", "normal", "high"]},
    "sensitivity": {"enum": ["normal", "personal", "private", "confidential"]},
    "categories": {"type": "array", "items": _STRING},
    "location": LOCATION,
    "locations": {"type": "array", "items": LOCATION},
}

# POST /users/{id}/events: an event needs its start and end.
CREATE_EVENT = _object(_EVENT_PROPERTIES, ("start", "end"))

# PATCH /users/{id}/events/{id}: any subset (transactionId cannot change: checked in code).
UPDATE_EVENT = _object(_EVENT_PROPERTIES)

# POST /users/{id}/calendar/getSchedule. availabilityViewInterval: 5..1440 minutes; Graph's own
# concept page sends it as a numeric string, so both forms are accepted (range checked in code).
GET_SCHEDULE = _object(
    {
        "schedules": {
            "type": "array",
            "items": {"type": "string", "minLength": 1},
            "minItems": 1,
            "maxItems": 20,
        },
        "startTime": DATE_TIME_TIME_ZONE,
        "endTime": DATE_TIME_TIME_ZONE,
        "availabilityViewInterval": {
            "oneOf": [
                {"type": "integer", "minimum": 5, "maximum": 1440},
                {"type": "string", "pattern": r"^\d{1,4}$"},
            ]
        },
    },
    ("schedules", "startTime", "endTime"),
)

# POST /users/{id}/events/{id}/cancel
CANCEL_EVENT = _object({"comment": _STRING})


def canonical(body: Mapping[str, Any], schema: Mapping[str, Any]) -> dict[str, Any]:
    """``body`` with its top-level names in the schema's spelling, matched case-insensitively
    (for OData action parameters). Names the schema does not know are kept as sent."""
    names = {name.lower(): name for name in schema.get("properties", {})}
    return {names.get(key.lower(), key): value for key, value in body.items()}
