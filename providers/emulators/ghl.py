"""A local GoHighLevel (LeadConnector v2) server: contacts, calendar slots and appointments.

It keeps real state and answers the operations Slotline's GHL adapter uses:
``POST /contacts/upsert`` (matches an existing contact by email, then phone), ``GET
/contacts/search/duplicate`` and ``GET /contacts/{contactId}/appointments`` (a caller's
appointments, whoever booked them), ``GET
/calendars/{calendarId}/free-slots`` (slots computed from each calendar's weekly hours, slot
length, interval and minimum notice, minus live appointments; ranges over 31 days refused),
``GET /calendars/events``, ``POST /calendars/events/appointments`` and ``GET``/``PUT
/calendars/events/appointments/{eventId}``; ``GET /calendars/?locationId=`` and ``GET
/calendars/{calendarId}`` (the calendars' settings: name, slot length and interval, and the
meeting link as a ``custom`` ``locationConfigurations`` entry); a contact's
``customFields`` (by id) and ``POST /contacts/{contactId}/tags`` (tags added, kept once each).

Every request is checked like GHL would: the bearer token (401 ``UnauthorizedDTO``), then path,
query, headers (``Version``) and JSON body against the operation in the official OpenAPI
documents under ``specs/ghl`` — a request that does not conform gets the operation's declared
error: 422 ``UnprocessableDTO`` (``message`` a list) where the operation declares 422, else 400
``BadRequestDTO`` (``message`` a string). ``rejections`` keeps every refusal for tests.

Booking a slot checks and inserts with no ``await`` between, so of concurrent creates on one
slot exactly one wins; the others get 400 "The slot you have selected is no longer available.".
An appointment's meeting location is its ``address`` (``AppointmentSchemaResponse``,
``CalendarEventDTO``): the request's ``address`` (``meetingLocationType`` then defaults to
``custom``, as documented), else the calendar's meeting link.
Latency and faults (``fail_next``, ``drop_next``, ``stall_next``) come from ``HttpEmulator``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from slotline.providers.emulators._http import HttpEmulator, json_response
from slotline.providers.emulators._openapi import OpenApiOperation, openapi_document
from slotline.providers.emulators.ghl_rules import (
    Appointment,
    Contact,
    GhlCalendarRules,
    Refused,
    from_ms,
    new_id,
    overlaps,
    parse_time,
    rule_slots,
    stamp,
    zone_named,
)

__all__ = ["DEFAULT_SPEC_DIR", "MAX_RANGE", "SLOT_TAKEN", "Appointment", "Contact",
           "GhlCalendarRules", "GhlEmulator"]  # fmt: skip

# The excerpts of the official documents this emulator reads, shipped in the package
# (scripts/spec_excerpts.py cuts them from the whole specs, which tests may pass instead).
DEFAULT_SPEC_DIR = Path(__file__).with_name("specs") / "ghl"
SLOT_TAKEN = "The slot you have selected is no longer available."
MAX_RANGE = timedelta(days=31)


@dataclass(frozen=True, slots=True)
class _Call:
    path: Mapping[str, str]
    query: Mapping[str, str]
    body: Any


_Handler = Callable[[_Call], Awaitable[tuple[object, int]]]


class GhlEmulator(HttpEmulator):
    """``async with GhlEmulator(token=..., location_id=..., calendars=[...]) as emu:``."""

    def __init__(
        self,
        *,
        token: str = "ghl-emulator-token",
        location_id: str = "loc-emulated",
        calendars: tuple[GhlCalendarRules, ...] = (GhlCalendarRules("cal-emulated"),),
        clock: Callable[[], datetime] | None = None,
        spec_dir: Path = DEFAULT_SPEC_DIR,
        host: str = "127.0.0.1",
        port: int = 0,
        latency_ms: float = 0.0,
        jitter_ms: float = 0.0,
        seed: int = 0,
    ) -> None:
        super().__init__(
            host=host, port=port, latency_ms=latency_ms, jitter_ms=jitter_ms, seed=seed
        )
        self.token = token
        self.location_id = location_id
        self.calendars = {calendar.id: calendar for calendar in calendars}
        self.clock = clock or (lambda: datetime.now(UTC))
        self.contacts: dict[str, Contact] = {}
        self.appointments: dict[str, Appointment] = {}
        self.bodies: list[tuple[str, Any]] = []  # ("POST /route", body) of accepted requests
        self.rejections: list[tuple[str, str]] = []  # ("METHOD /route", GHL's message)
        self._spec_dir = spec_dir
        self._route_faults: dict[str, list[tuple[int, object]]] = {}  # 0 = drop

    def fail_next(
        self, status: int, count: int = 1, body: object | None = None, route: str | None = None
    ) -> None:
        """As ``HttpEmulator.fail_next``; with ``route`` ("POST /calendars/events/appointments")
        only requests to that operation fail (after the earlier ones pass)."""
        if route is None:
            super().fail_next(status, count, body)
            return
        answer = body if body is not None else self._error_body(status)
        self._route_faults.setdefault(route, []).extend([(status, answer)] * count)

    def drop_next(self, count: int = 1, route: str | None = None) -> None:
        """As ``HttpEmulator.drop_next`` (handled, never answered); ``route`` as above."""
        if route is None:
            super().drop_next(count)
            return
        self._route_faults.setdefault(route, []).extend([(0, None)] * count)

    def _error_body(self, status: int) -> object:
        return {"statusCode": status, "message": f"injected failure {status}"}

    def _routes(self, app: web.Application) -> None:
        table: tuple[tuple[str, str, str, _Handler], ...] = (
            ("POST", "/contacts/upsert", "contacts", self._upsert),
            ("GET", "/contacts/search/duplicate", "contacts", self._duplicate),
            ("GET", "/contacts/{contactId}/appointments", "contacts", self._contact_events),
            ("PUT", "/contacts/{contactId}", "contacts", self._update_contact),
            ("POST", "/contacts/{contactId}/tags", "contacts", self._add_tags),
            ("GET", "/calendars/{calendarId}/free-slots", "calendars", self._free_slots),
            ("GET", "/calendars/events", "calendars", self._events),
            ("POST", "/calendars/events/appointments", "calendars", self._create),
            ("GET", "/calendars/events/appointments/{eventId}", "calendars", self._get),
            ("PUT", "/calendars/events/appointments/{eventId}", "calendars", self._edit),
            ("GET", "/calendars/", "calendars", self._list_calendars),
            ("GET", "/calendars/{calendarId}", "calendars", self._get_calendar),
        )
        for method, template, api, handler in table:
            operation = openapi_document(self._spec_dir / f"apps/{api}.json").operation(
                method, template
            )
            app.router.add_route(method, template, self._endpoint(operation, handler))

    def _endpoint(self, operation: OpenApiOperation, handler: _Handler) -> Any:
        route = f"{operation.method} {operation.template}"

        async def endpoint(request: web.Request) -> web.Response:
            if request.headers.get("Authorization") != f"Bearer {self.token}":
                self.rejections.append((route, "Invalid JWT"))
                body = {"statusCode": 401, "message": "Invalid JWT", "error": "Unauthorized"}
                return json_response(body, 401)
            raw = await request.read()
            try:
                payload = orjson.loads(raw) if raw else None
            except orjson.JSONDecodeError:
                return self._refuse(route, operation, ["body is not valid JSON"])
            query = {key: request.query.getall(key) for key in request.query}
            problems = operation.check(
                path_params=dict(request.match_info), query=query, headers=request.headers,
                body=payload, has_body=bool(raw),
            )
            if problems:
                return self._refuse(route, operation, problems)
            faults = self._route_faults.get(route)
            fault = faults.pop(0) if faults else None
            if fault is not None and fault[0]:
                return json_response(fault[1], fault[0])
            flat_query = {key: values[-1] for key, values in query.items()}
            try:
                answer, status = await handler(_Call(request.match_info, flat_query, payload))
            except Refused as refused:
                self.rejections.append((route, refused.message))
                status = refused.status
                answer = {"statusCode": status, "message": refused.message}
            else:
                self.bodies.append((route, payload))
            if fault is not None and request.transport is not None:
                request.transport.close()  # handled, never answered
            return json_response(answer, status)

        return endpoint

    def _refuse(self, route: str, operation: OpenApiOperation, problems: list[str]) -> web.Response:
        self.rejections.append((route, "; ".join(problems)))
        if 422 in operation.statuses:
            body: dict[str, object] = {"statusCode": 422, "message": problems,
                                       "error": "Unprocessable Entity"}
            return json_response(body, 422)
        body = {"statusCode": 400, "message": "; ".join(problems), "error": "Bad Request"}
        return json_response(body, 400)

    # ---- contacts ---------------------------------------------------------------------------

    async def _upsert(self, call: _Call) -> tuple[object, int]:
        body = call.body
        self._own_location(body["locationId"])
        email = (body.get("email") or "").strip()
        phone = (body.get("phone") or "").strip()
        contact = self._match_contact(email, phone)
        created = contact is None
        if contact is None:
            contact = Contact(new_id(), added=stamp(self.clock()))
            self.contacts[contact.id] = contact
        for key in ("name", "email", "phone", "timezone"):
            value = body.get(key)
            if isinstance(value, str) and value:
                setattr(contact, key, value)
        if isinstance(body.get("tags"), list):  # GHL: the upsert's tags replace the contact's
            contact.tags = list(dict.fromkeys(body["tags"]))
        for item in body.get("customFields") or []:
            contact.custom_fields[item["id"]] = str(item.get("field_value", ""))
        return {"new": created, "contact": self._contact(contact),
                "traceId": str(uuid.uuid4())}, 200

    def _contact(self, contact: Contact) -> dict[str, object]:
        return {
            "id": contact.id, "locationId": self.location_id, "name": contact.name,
            "email": contact.email, "phone": contact.phone, "timezone": contact.timezone,
            "dateAdded": contact.added, "tags": list(contact.tags),
            "customFields": [{"id": k, "value": v} for k, v in contact.custom_fields.items()],
        }

    async def _duplicate(self, call: _Call) -> tuple[object, int]:
        """``GET /contacts/search/duplicate``: the contact with this e-mail, else this number
        (GHL's order when duplicates are allowed); ``{"contact": null}`` when none."""
        self._own_location(call.query["locationId"])
        contact = self._match_contact(call.query.get("email", ""), call.query.get("number", ""))
        return {"contact": self._contact(contact) if contact is not None else None}, 200

    async def _contact_events(self, call: _Call) -> tuple[object, int]:
        """``GET /contacts/{contactId}/appointments``: every appointment of the contact, on
        any calendar of the location, cancelled ones included (GetEventsSuccessfulResponseDto)."""
        contact_id = call.path["contactId"]
        if contact_id not in self.contacts:
            raise Refused(400, "Contact not found")
        found = sorted((item for item in self.appointments.values()
                        if item.contact_id == contact_id), key=lambda item: item.start)
        return {"events": [self._event(item) for item in found]}, 200

    async def _add_tags(self, call: _Call) -> tuple[object, int]:
        """``POST /contacts/{contactId}/tags``: added to the contact's, each kept once."""
        contact = self.contacts.get(call.path["contactId"])
        if contact is None:
            raise Refused(400, "Contact not found")
        contact.tags = list(dict.fromkeys([*contact.tags, *call.body["tags"]]))
        return {"tags": list(contact.tags)}, 201

    async def _update_contact(self, call: _Call) -> tuple[object, int]:
        """``PUT /contacts/{contactId}``: the fields given replace the contact's."""
        contact = self.contacts.get(call.path["contactId"])
        if contact is None:
            raise Refused(400, "Contact not found")
        for key in ("name", "email", "phone", "timezone"):
            value = call.body.get(key)
            if isinstance(value, str) and value:
                setattr(contact, key, value)
        answer = {
            "id": contact.id, "locationId": self.location_id, "name": contact.name,
            "email": contact.email, "phone": contact.phone, "timezone": contact.timezone,
            "dateAdded": contact.added,
        }
        return {"succeded": True, "contact": answer}, 200  # sic: the spec's spelling

    def _match_contact(self, email: str, phone: str) -> Contact | None:
        number = _e164(phone)
        for contact in self.contacts.values():
            if email and contact.email.lower() == email.lower():
                return contact
        for contact in self.contacts.values():
            if number and _e164(contact.phone) == number:
                return contact
        return None

    # ---- slots ------------------------------------------------------------------------------

    async def _list_calendars(self, call: _Call) -> tuple[object, int]:
        self._own_location(call.query["locationId"])
        return {"calendars": [self._calendar_json(c) for c in self.calendars.values()]}, 200

    async def _get_calendar(self, call: _Call) -> tuple[object, int]:
        return {"calendar": self._calendar_json(self._calendar(call.path["calendarId"]))}, 200

    def _calendar_json(self, calendar: GhlCalendarRules) -> dict[str, object]:
        """``CalendarDTO``: the settings a client reads."""
        return {
            "id": calendar.id, "locationId": self.location_id,
            "name": calendar.name or calendar.id, "calendarType": "event", "isActive": True,
            "slotDuration": calendar.slot_duration_min, "slotDurationUnit": "mins",
            "slotInterval": calendar.slot_interval_min or calendar.slot_duration_min,
            "slotIntervalUnit": "mins", "allowBookingAfter": calendar.min_notice_min,
            "allowBookingAfterUnit": "mins", "autoConfirm": calendar.auto_confirm,
            "openHours": [],
            "locationConfigurations": [{"kind": "custom", "location": calendar.meeting_link}]
            if calendar.meeting_link else [],
        }

    async def _free_slots(self, call: _Call) -> tuple[object, int]:
        calendar = self._calendar(call.path["calendarId"])
        start = from_ms(call.query["startDate"])
        end = from_ms(call.query["endDate"])
        if end < start:
            raise Refused(400, "endDate must be after startDate")
        if end - start > MAX_RANGE:
            raise Refused(400, "Date range cannot be more than 31 days")
        zone = zone_named(call.query.get("timezone") or calendar.timezone)
        days: dict[str, object] = {}
        for slot in self.free(calendar.id, start, end):
            local = slot.astimezone(zone)
            day = days.setdefault(local.date().isoformat(), {"slots": []})
            assert isinstance(day, dict)
            day["slots"].append(local.isoformat(timespec="seconds"))
        days["traceId"] = str(uuid.uuid4())
        return days, 200

    def free(self, calendar_id: str, start: datetime, end: datetime) -> list[datetime]:
        """Bookable slot starts in [start, end] (both inclusive, as GHL's range is)."""
        calendar = self.calendars[calendar_id]
        length = timedelta(minutes=calendar.slot_duration_min)
        return [
            slot
            for slot in rule_slots(calendar, start, end, self._earliest(calendar))
            if not self._overlaps(calendar.id, slot, slot + length, None)
        ]

    def _earliest(self, calendar: GhlCalendarRules) -> datetime:
        return self.clock() + timedelta(minutes=calendar.min_notice_min)

    def _overlaps(self, calendar_id: str, start: datetime, end: datetime, skip: str | None) -> bool:
        return overlaps(self.appointments.values(), calendar_id, start, end, skip)

    def _check_bookable(
        self, calendar: GhlCalendarRules, start: datetime, end: datetime, skip: str | None
    ) -> None:
        allowed = start in set(rule_slots(calendar, start, start, self._earliest(calendar)))
        if not allowed or self._overlaps(calendar.id, start, end, skip):
            raise Refused(400, SLOT_TAKEN)

    # ---- appointments -----------------------------------------------------------------------

    async def _events(self, call: _Call) -> tuple[object, int]:
        self._own_location(call.query["locationId"])
        calendar_id = call.query.get("calendarId")
        if not calendar_id:
            raise Refused(400, "Either of calendarId, userId or groupId is required")
        self._calendar(calendar_id)
        start, end = from_ms(call.query["startTime"]), from_ms(call.query["endTime"])
        found = sorted(
            (
                item for item in self.appointments.values()
                if item.calendar_id == calendar_id and item.start < end and item.end > start
            ),
            key=lambda item: item.start,
        )
        return {"events": [self._event(item) for item in found]}, 200

    async def _create(self, call: _Call) -> tuple[object, int]:
        body = call.body
        self._own_location(body["locationId"])
        calendar = self._calendar(body["calendarId"])
        if body["contactId"] not in self.contacts:
            raise Refused(400, "Contact not found")
        start = parse_time(body["startTime"], "startTime")
        end = parse_time(body["endTime"], "endTime") if "endTime" in body else (
            start + timedelta(minutes=calendar.slot_duration_min)
        )
        if end <= start:
            raise Refused(400, "endTime must be after startTime")
        if not body.get("ignoreFreeSlotValidation"):
            self._check_bookable(calendar, start, end, None)
        # No await between the check above and this insert: one winner per slot.
        now = stamp(self.clock())
        address = body.get("address") or calendar.meeting_link
        item = Appointment(
            new_id(), calendar.id, body["contactId"], start, end, body.get("title", ""),
            body.get("description", ""), body.get("appointmentStatus", "new"), now, now,
            address, body.get("meetingLocationType") or ("custom" if address else "default"),
        )
        self.appointments[item.id] = item
        return self._appointment(item), 200

    async def _get(self, call: _Call) -> tuple[object, int]:
        return {"event": self._event(self._find(call.path["eventId"]))}, 200

    async def _edit(self, call: _Call) -> tuple[object, int]:
        item = self._find(call.path["eventId"])
        body = call.body
        calendar = self._calendar(body.get("calendarId", item.calendar_id))
        start = parse_time(body["startTime"], "startTime") if "startTime" in body else item.start
        end = parse_time(body["endTime"], "endTime") if "endTime" in body else (
            start + (item.end - item.start)
        )
        if end <= start:
            raise Refused(400, "endTime must be after startTime")
        status = body.get("appointmentStatus", item.status)
        moved = (start, end, calendar.id) != (item.start, item.end, item.calendar_id)
        if moved and status != "cancelled" and not body.get("ignoreFreeSlotValidation"):
            self._check_bookable(calendar, start, end, item.id)
        item.calendar_id, item.start, item.end, item.status = calendar.id, start, end, status
        item.title = body.get("title", item.title)
        item.description = body.get("description", item.description)
        if "address" in body:
            item.address = body["address"]
            item.location_type = body.get("meetingLocationType") or "custom"
        item.updated = stamp(self.clock())
        return self._appointment(item), 200

    # ---- shapes and look-ups ----------------------------------------------------------------

    def _appointment(self, item: Appointment) -> dict[str, object]:
        """``AppointmentSchemaResponse``."""
        zone = zone_named(self.calendars[item.calendar_id].timezone)
        return {
            "id": item.id, "calendarId": item.calendar_id, "locationId": self.location_id,
            "contactId": item.contact_id, "title": item.title,
            "startTime": item.start.astimezone(zone).isoformat(timespec="seconds"),
            "endTime": item.end.astimezone(zone).isoformat(timespec="seconds"),
            "appointmentStatus": item.status, "isRecurring": False,
            "address": item.address, "meetingLocationType": item.location_type,
        }

    def _event(self, item: Appointment) -> dict[str, object]:
        """``CalendarEventDTO`` (its ``address`` is the meeting location; no location type)."""
        shown = self._appointment(item)
        del shown["meetingLocationType"]
        return {
            **shown, "groupId": "", "assignedUserId": "", "users": [],
            "description": item.description, "notes": "", "dateAdded": item.added,
            "dateUpdated": item.updated,
        }

    def _find(self, event_id: str) -> Appointment:
        item = self.appointments.get(event_id)
        if item is None:
            raise Refused(400, "Appointment not found")
        return item

    def _calendar(self, calendar_id: str) -> GhlCalendarRules:
        calendar = self.calendars.get(calendar_id)
        if calendar is None:
            raise Refused(400, "Calendar not found")
        return calendar

    def _own_location(self, location_id: str) -> None:
        if location_id != self.location_id:
            raise Refused(403, "The token does not have access to this location.")


def _e164(phone: str) -> str:
    """A number as GHL keeps it: E.164, a national number read in the location's country (the
    US here), so "(555) 010-2030" and "+15550102030" are one contact."""
    digits = re.sub(r"\D", "", phone)
    if not digits:
        return ""
    return "+" + ("1" + digits if len(digits) == 10 and not phone.lstrip().startswith("+")
                  else digits)
