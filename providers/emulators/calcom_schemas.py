"""Request checks and error bodies of the Cal.com emulator (schemas from Cal.com's v2 inputs).

Cal.com validates with NestJS whitelisting: an unknown property or a missing required one is a
400 ``BadRequestException`` ("property foo should not exist"). These schemas do the same for the
bodies and query strings the emulator serves (``ReserveSlotInput_2024_09_04``,
``CreateBookingInput_2024_08_13``, ``RescheduleBookingInput_2024_08_13``,
``CancelBookingInput_2024_08_13``, ``GetAvailableSlotsInput_2024_09_04`` by event type id, and
the ``GetBookingsInput_2024_08_13`` filters the emulator implements — others are refused rather
than silently ignored). Times are ISO 8601 (a bare time is UTC); zones must be IANA names.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
from aiohttp import web
from jsonschema import Draft202012Validator, ValidationError
from jsonschema.exceptions import best_match


class ApiError(Exception):
    """A refusal in Cal.com's terms: the status and the message of its error body."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


_CODES = {400: "BadRequestException", 401: "UnauthorizedException", 404: "NotFoundException",
          409: "ConflictException", 422: "UnprocessableEntityException",
          429: "ThrottlerException", 500: "InternalServerErrorException"}
_TEXT = {"type": "string"}
_NUMBER_TEXT = {"type": "string", "pattern": r"^\d+$"}
_SORT = {"enum": ["asc", "desc"]}
_PHONE = {"type": "string", "pattern": r"^\+[1-9]\d{6,14}$"}
_EMAIL = {"type": "string", "pattern": r"^[^@\s]+@[^@\s]+\.[^@\s]+$"}


def _object(properties: dict[str, Any], *required: str, **extra: Any) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(required),
            "additionalProperties": False, **extra}


SLOTS_QUERY = _object(
    {"eventTypeId": _NUMBER_TEXT, "start": _TEXT, "end": _TEXT, "timeZone": _TEXT,
     "format": {"type": "string", "pattern": "^(?i:range|time)$"}, "duration": _NUMBER_TEXT,
     "bookingUidToReschedule": _TEXT},
    "eventTypeId", "start", "end",
)
BOOKINGS_QUERY = _object(
    {"status": {"type": "string",
                "pattern": r"^(upcoming|recurring|past|cancelled|unconfirmed)"
                           r"(,(upcoming|recurring|past|cancelled|unconfirmed))*$"},
     "attendeeEmail": _TEXT, "attendeeName": _TEXT, "bookingUid": _TEXT,
     "eventTypeId": _NUMBER_TEXT, "afterStart": _TEXT, "beforeEnd": _TEXT, "sortStart": _SORT,
     "take": {"type": "string", "pattern": r"^([1-9]\d?|1\d\d|2[0-4]\d|250)$"},
     "skip": _NUMBER_TEXT},
)
RESERVATION = _object(
    {"eventTypeId": {"type": "integer"}, "slotStart": _TEXT,
     "slotDuration": {"type": "integer", "minimum": 1},
     "reservationDuration": {"type": "integer", "minimum": 1}},
    "eventTypeId", "slotStart",
)
_ATTENDEE = _object(
    {"name": {"type": "string", "minLength": 1}, "email": _EMAIL, "timeZone": _TEXT,
     "phoneNumber": _PHONE, "language": {"type": "string", "pattern": "^[a-z]{2}(-[A-Za-z]+)?$"}},
    "name", "timeZone",
    anyOf=[{"required": ["email"]}, {"required": ["phoneNumber"]}],
)
_METADATA = {
    "type": "object", "maxProperties": 50, "propertyNames": {"maxLength": 40},
    "additionalProperties": {"anyOf": [{"type": "string", "maxLength": 500},
                                       {"type": ["number", "boolean"]}]},
}
BOOKING = _object(
    {"start": _TEXT, "eventTypeId": {"type": "integer"}, "attendee": _ATTENDEE,
     "guests": {"type": "array", "items": _EMAIL}, "meetingUrl": _TEXT,
     "location": {"type": ["object", "string"]}, "metadata": _METADATA,
     "bookingFieldsResponses": {"type": "object"},
     "lengthInMinutes": {"type": "integer", "minimum": 1},
     "reservedSlotUid": _TEXT, "emailVerificationCode": _TEXT},
    "start", "eventTypeId", "attendee",
)
RESCHEDULE = _object(
    {"start": _TEXT, "rescheduledBy": _EMAIL, "reschedulingReason": _TEXT,
     "reservedSlotUid": _TEXT, "emailVerificationCode": _TEXT},
    "start",
)
CANCEL = _object({"cancellationReason": _TEXT, "cancelSubsequentBookings": {"type": "boolean"}})
_GUEST = _object(
    {"email": _EMAIL, "name": _TEXT, "timeZone": _TEXT, "phoneNumber": _PHONE,
     "language": {"type": "string", "pattern": "^[a-z]{2}(-[A-Za-z]+)?$"}},
    "email",
)
ADD_GUESTS = _object(  # POST /v2/bookings/{uid}/guests: at most 10 at a time
    {"guests": {"type": "array", "items": _GUEST, "minItems": 1, "maxItems": 10}}, "guests"
)

_VALIDATORS: dict[int, Draft202012Validator] = {}


def _validator(schema: dict[str, Any]) -> Draft202012Validator:
    found = _VALIDATORS.get(id(schema))
    if found is None:
        found = _VALIDATORS[id(schema)] = Draft202012Validator(schema)
    return found


def _problem(error: ValidationError) -> str:
    where = ".".join(str(part) for part in error.absolute_path)
    schema = error.schema
    if error.validator == "additionalProperties" and isinstance(error.instance, dict) and (
        isinstance(schema, Mapping)
    ):
        extra = sorted(set(error.instance) - set(schema.get("properties", {})))
        name = f"{where}.{extra[0]}" if where else extra[0]
        return f"property {name} should not exist"
    if error.validator == "anyOf" and where == "attendee":
        return "At least one contact method (email or phone number) must be provided"
    return f"{where}: {error.message}" if where else error.message


def _check(schema: dict[str, Any], instance: object) -> None:
    error = best_match(_validator(schema).iter_errors(instance))
    if error is not None:
        raise ApiError(400, _problem(error))


def check_zone(name: str, field: str) -> None:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ApiError(400, f"{field} must be a valid IANA time-zone") from None


def check_query(schema: dict[str, Any], query: Mapping[str, str]) -> dict[str, str]:
    values = {key: query[key] for key in query}
    _check(schema, values)
    if "timeZone" in values:
        check_zone(values["timeZone"], "timeZone")
    return values


async def check_body(
    schema: dict[str, Any], request: web.Request, *, empty_ok: bool = False
) -> dict[str, Any]:
    raw = await request.read()
    if not raw.strip() and empty_ok:
        return {}
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ApiError(400, "the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object")
    _check(schema, body)
    attendee = body.get("attendee")
    if isinstance(attendee, dict):
        check_zone(attendee["timeZone"], "attendee.timeZone")
    return body


def time_of(values: Mapping[str, Any], key: str) -> datetime:
    """An ISO 8601 field as an aware UTC datetime (400 in Cal.com's words when it is not)."""
    try:
        moment = datetime.fromisoformat(str(values[key]))
    except ValueError:
        raise ApiError(400, f"{key} must be a valid ISO 8601 date string") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


def error_json(status: int, message: str, path: str) -> dict[str, Any]:
    """Cal.com's error envelope (its HttpExceptionFilter's shape)."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    stamp = datetime.now(UTC).isoformat(timespec="milliseconds")
    return {"status": "error", "timestamp": stamp, "path": path,
            "error": {"code": _CODES.get(status, phrase.replace(" ", "") + "Exception"),
                      "message": message,
                      "details": {"message": message, "error": phrase, "statusCode": status}}}
