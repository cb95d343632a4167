"""A local Microsoft Graph v1.0 calendar + identity-platform token endpoint, for tests and benches.

Serves, on one loopback origin (``base_url`` = Graph's root, ``token_url`` = the tenant's
endpoint):

- ``POST /{tenant}/oauth2/v2.0/token``: the client-credentials grant. Checks tenant, client id,
  secret and a ``/.default`` scope; issues opaque tokens that expire after
  ``token_lifetime_s``; refuses in the AAD shape ``{"error": "invalid_client",
  "error_description": "AADSTS7000215: ..."}`` (401 for a bad secret, 400 otherwise).
- under ``/v1.0/users/{user}``: ``calendar/getSchedule`` (``availabilityView`` + ``scheduleItems``
  + ``workingHours``, per-schedule ``error``), ``events`` (create, with ``transactionId``
  de-duplication: a repeated id returns the event it made), ``calendarView`` (``startDateTime``
  / ``endDateTime``, ``$top``/``$skip`` paging), ``events/{id}`` GET/PATCH/DELETE and
  ``events/{id}/cancel``. Every Graph call needs a live token (else 401
  ``InvalidAuthenticationToken``); bodies are validated against ``graph_schemas`` (400
  ``BadRequest`` naming the field). Like Graph, overlapping events are allowed. Times come back
  in the ``Prefer: outlook.timezone`` zone (UTC or IANA names here), UTC without it.

Test knobs besides the base ones (latency, ``fail_next``, ``drop_next``, ``stall_next``):
``expire_tokens()``, ``throttle_next(count, retry_after_s)`` (429 + ``Retry-After``),
``drop_next_on(route)`` (drop the answer of one route only), ``schedule_barrier(parties)`` (the
next getSchedule calls answer together: two bookers both see the slot free),
``schedule_error(address, code, message)``, ``add_event(...)``, and an injectable ``clock``.
"""

from __future__ import annotations

import asyncio
import base64
import re
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from aiohttp import web
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from slotline.providers.emulators import graph_schemas as schemas
from slotline.providers.emulators._http import Handler, HttpEmulator, json_response
from slotline.providers.emulators.ms_identity import TOKEN_ROUTE, TokenIssuer

TENANT_ID = "emulated-tenant"
CLIENT_ID = "00000000-0000-0000-0000-00000000c11d"
CLIENT_SECRET = "emulated-client-secret"
MAILBOX = "bookings@contoso.example"
_MAX_SCHEDULE_SPAN = timedelta(days=62)  # "The time period to look up must be less than 62 days"
_BARRIER_TIMEOUT_S = 5.0  # a barrier never fills (a test gone wrong): answer anyway
_VIEW_DIGITS = {"free": "0", "tentative": "1", "busy": "2", "oof": "3", "workingElsewhere": "4"}
_VIEW_STRENGTH = "04123"  # merging overlapping items: the stronger digit wins
_GRAPH_CODES = {400: "BadRequest", 401: "InvalidAuthenticationToken", 403: "ErrorAccessDenied",
                404: "ErrorItemNotFound", 429: "TooManyRequests", 500: "InternalServerError",
                503: "ServiceUnavailable", 504: "GatewayTimeout"}  # fmt: skip
_PREFER_ZONE = re.compile(r'outlook\.timezone\s*=\s*"([^"]+)"', re.IGNORECASE)
_VALIDATORS = {
    name: Draft202012Validator(getattr(schemas, name))
    for name in ("CREATE_EVENT", "UPDATE_EVENT", "GET_SCHEDULE", "CANCEL_EVENT")
}


class _Refused(Exception):
    """A Graph error answer, raised from a handler and rendered by the middleware."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass(slots=True)
class _Event:
    id: str
    start: datetime  # aware UTC
    end: datetime
    created: datetime
    fields: dict[str, Any] = field(default_factory=dict)  # the other properties as sent
    modified: datetime | None = None
    cancelled: bool = False
    version: int = 1


class GraphEmulator(HttpEmulator):
    """See the module doc."""

    def __init__(
        self,
        *,
        tenant_id: str = TENANT_ID,
        client_id: str = CLIENT_ID,
        client_secret: str = CLIENT_SECRET,
        mailboxes: Iterable[str] = (MAILBOX,),
        token_lifetime_s: float = 3599.0,
        clock: Callable[[], datetime] | None = None,
        **base: Any,
    ) -> None:
        super().__init__(**base)
        self.identity = TokenIssuer(tenant_id, client_id, client_secret, token_lifetime_s)
        self.mailboxes = {m.lower() for m in mailboxes}
        self._clock = clock or (lambda: datetime.now(UTC))
        self._events: dict[str, dict[str, _Event]] = {m: {} for m in self.mailboxes}
        self._transactions: dict[tuple[str, str], str] = {}  # (mailbox, transactionId) → id
        self._schedule_errors: dict[str, tuple[str, str]] = {}
        self._throttles: deque[float] = deque()
        self._route_drops: Counter[str] = Counter()
        self._barrier: asyncio.Barrier | None = None
        self._barrier_left = 0
        self.created: list[tuple[datetime, str]] = []  # every event ever made: (created, id)

    # ---- addresses and knobs ----------------------------------------------------------------

    @property
    def token_url(self) -> str:
        return f"{self.origin}/{self.identity.tenant_id}/oauth2/v2.0/token"

    def expire_tokens(self) -> None:
        self.identity.expire_all()

    def throttle_next(self, count: int = 1, retry_after_s: float = 1.0) -> None:
        self._throttles.extend([retry_after_s] * count)

    def drop_next_on(self, route: str, count: int = 1) -> None:
        """Like ``drop_next`` for one route only, e.g. ``"POST /v1.0/users/{user}/events"``."""
        self._route_drops[route] += count

    def schedule_barrier(self, parties: int) -> None:
        self._barrier, self._barrier_left = asyncio.Barrier(parties), parties

    def schedule_error(self, address: str, response_code: str, message: str) -> None:
        self._schedule_errors[address.lower()] = (response_code, message)

    def add_event(
        self, mailbox: str, start: datetime, end: datetime, *, show_as: str = "busy",
        subject: str = "Busy",
    ) -> str:  # fmt: skip
        """Put an event straight into a mailbox (someone else's meeting); returns its id."""
        fields = {"subject": subject, "showAs": show_as}
        return self._store(mailbox.lower(), start.astimezone(UTC), end.astimezone(UTC), fields).id

    def live_events(self, mailbox: str = MAILBOX) -> list[dict[str, Any]]:
        """The mailbox's events that are not cancelled, as Graph renders them (UTC)."""
        events = self._events[mailbox.lower()].values()
        return [self._render(e, mailbox.lower(), None) for e in events if not e.cancelled]

    # ---- the server -------------------------------------------------------------------------

    def _error_body(self, status: int) -> object:
        code = _GRAPH_CODES.get(status, "generalException")
        return {"error": {"code": code, "message": f"Injected failure {status}."}}

    def _routes(self, app: web.Application) -> None:
        app.middlewares.append(self._graph_middleware)
        app.router.add_post(TOKEN_ROUTE, self.identity.handle)
        users = "/v1.0/users/{user}"
        for name in ("getSchedule", "getschedule"):  # Graph's segments are case-insensitive
            app.router.add_post(f"{users}/calendar/{name}", self._get_schedule)
        for name in ("calendarView", "calendarview", "calendar/calendarView"):
            app.router.add_get(f"{users}/{name}", self._calendar_view)
        app.router.add_post(f"{users}/events", self._create)
        app.router.add_get(f"{users}/events/{{id}}", self._get)
        app.router.add_patch(f"{users}/events/{{id}}", self._update)
        app.router.add_delete(f"{users}/events/{{id}}", self._delete)
        app.router.add_post(f"{users}/events/{{id}}/cancel", self._cancel)

    @web.middleware
    async def _graph_middleware(
        self, request: web.Request, handler: Handler
    ) -> web.StreamResponse:
        response: web.StreamResponse
        if not request.path.startswith("/v1.0/"):
            response = await handler(request)
        elif self._throttles:
            message = "Too many requests. Retry after the time in the Retry-After header."
            error = {"code": "TooManyRequests", "message": message}
            response = json_response({"error": error}, 429)
            response.headers["Retry-After"] = f"{self._throttles.popleft():g}"
        else:
            try:
                problem = self.identity.token_problem(request.headers.get("Authorization", ""))
                if problem is not None:
                    raise _Refused(401, "InvalidAuthenticationToken", problem)
                response = await handler(request)
            except _Refused as refused:
                error = {"code": refused.code, "message": refused.message}
                response = json_response({"error": error}, refused.status)
        info = request.match_info.route.resource
        route = f"{request.method} {info.canonical if info is not None else request.path}"
        if self._route_drops[route] > 0 and request.transport is not None:
            self._route_drops[route] -= 1
            request.transport.close()  # handled, never answered
        return response

    # ---- calendar ---------------------------------------------------------------------------

    async def _get_schedule(self, request: web.Request) -> web.Response:
        self._mailbox(request)
        body = await _body(request, "GET_SCHEDULE", canonical=True)
        start, end = _instant(body["startTime"]), _instant(body["endTime"])
        interval = int(body.get("availabilityViewInterval", 30))
        if not 5 <= interval <= 1440:
            raise _Refused(400, "BadRequest", "availabilityViewInterval must be 5 to 1440.")
        if end <= start or end - start >= _MAX_SCHEDULE_SPAN:
            raise _Refused(400, "BadRequest", "The time period must be positive and < 62 days.")
        if self._barrier is not None and self._barrier_left > 0:
            self._barrier_left -= 1
            try:
                await asyncio.wait_for(self._barrier.wait(), _BARRIER_TIMEOUT_S)
            except (TimeoutError, asyncio.BrokenBarrierError):
                pass
        zone = _prefer_zone(request)
        value = [self._schedule(s, start, end, interval, zone) for s in body["schedules"]]
        return json_response({"value": value})

    def _schedule(
        self, address: str, start: datetime, end: datetime, interval: int, zone: ZoneInfo | None
    ) -> dict[str, Any]:
        key = address.lower()
        failure = self._schedule_errors.get(key)
        if failure is None and key not in self.mailboxes:
            failure = ("ErrorMailRecipientNotFound", f"The mailbox '{address}' was not found.")
        if failure is not None:
            error = {"responseCode": failure[0], "message": failure[1]}
            return {"scheduleId": address, "availabilityView": "", "error": error}
        items = self._overlapping(key, start, end)
        step = timedelta(minutes=interval)
        view = []
        for index in range(-(-(end - start) // step)):
            slot_start = start + index * step
            digits = [_VIEW_DIGITS.get(_show_as(e), "2") for e in items
                      if e.start < slot_start + step and slot_start < e.end]  # fmt: skip
            view.append(max(digits, key=_VIEW_STRENGTH.index, default="0"))
        schedule_items = [{"isPrivate": False, "status": _show_as(e),
                           "subject": e.fields.get("subject", ""), "location": "",
                           "start": _wire(e.start, zone), "end": _wire(e.end, zone)}
                          for e in items]  # fmt: skip
        hours = {"daysOfWeek": ["monday", "tuesday", "wednesday", "thursday", "friday"],
                 "startTime": "08:00:00.0000000", "endTime": "17:00:00.0000000",
                 "timeZone": {"name": "UTC"}}  # fmt: skip
        return {"scheduleId": address, "availabilityView": "".join(view),
                "scheduleItems": schedule_items, "workingHours": hours}  # fmt: skip

    async def _calendar_view(self, request: web.Request) -> web.Response:
        mailbox = self._mailbox(request)
        query = request.query
        if "startDateTime" not in query or "endDateTime" not in query:
            raise _Refused(400, "ErrorInvalidParameter", "This request requires a time window "
                           "specified by the query string parameters StartDateTime and "
                           "EndDateTime.")  # fmt: skip
        start, end = _query_instant(query["startDateTime"]), _query_instant(query["endDateTime"])
        top, skip = _count(query.get("$top", "10")), _count(query.get("$skip", "0"))
        found = sorted(self._overlapping(mailbox, start, end), key=lambda e: (e.start, e.created))
        zone = _prefer_zone(request)
        page = [self._render(e, mailbox, zone) for e in found[skip : skip + top]]
        answer: dict[str, Any] = {"value": page}
        if skip + top < len(found):
            answer["@odata.nextLink"] = str(request.url.update_query({"$skip": skip + top}))
        return json_response(answer)

    async def _create(self, request: web.Request) -> web.Response:
        mailbox = self._mailbox(request)
        body = await _body(request, "CREATE_EVENT")
        start, end = _instant(body.pop("start")), _instant(body.pop("end"))
        if end < start:
            raise _Refused(400, "BadRequest", "The event's end is before its start.")
        transaction = body.get("transactionId")
        existing = self._transactions.get((mailbox, transaction)) if transaction else None
        if existing is not None and existing in self._events[mailbox]:
            event = self._events[mailbox][existing]  # a retried create: the event it made
        else:
            event = self._store(mailbox, start, end, body)
        return json_response(self._render(event, mailbox, _prefer_zone(request)), 201)

    async def _get(self, request: web.Request) -> web.Response:
        mailbox, event = self._event(request)
        return json_response(self._render(event, mailbox, _prefer_zone(request)))

    async def _update(self, request: web.Request) -> web.Response:
        mailbox, event = self._event(request)
        body = await _body(request, "UPDATE_EVENT")
        sent = body.get("transactionId")
        if sent is not None and sent != event.fields.get("transactionId"):
            raise _Refused(400, "BadRequest", "transactionId cannot be changed after create.")
        start = _instant(body.pop("start")) if "start" in body else event.start
        end = _instant(body.pop("end")) if "end" in body else event.end
        if end < start:
            raise _Refused(400, "BadRequest", "The event's end is before its start.")
        event.start, event.end = start, end
        event.fields.update(body)
        self._touch(event)
        return json_response(self._render(event, mailbox, _prefer_zone(request)))

    async def _delete(self, request: web.Request) -> web.Response:
        mailbox, event = self._event(request)
        del self._events[mailbox][event.id]
        return web.Response(status=204)

    async def _cancel(self, request: web.Request) -> web.Response:
        _, event = self._event(request)
        await _body(request, "CANCEL_EVENT", canonical=True)
        if event.cancelled:  # it went to Deleted Items with the first cancel
            raise _Refused(404, "ErrorItemNotFound", "The specified object was not found.")
        event.cancelled = True
        self._touch(event)
        return web.Response(status=202)

    # ---- state ------------------------------------------------------------------------------

    def _mailbox(self, request: web.Request) -> str:
        user = request.match_info["user"]
        if user.lower() not in self.mailboxes:
            raise _Refused(404, "ErrorInvalidUser", f"The requested user '{user}' is invalid.")
        return user.lower()

    def _event(self, request: web.Request) -> tuple[str, _Event]:
        mailbox = self._mailbox(request)
        event = self._events[mailbox].get(request.match_info["id"])
        if event is None:
            raise _Refused(404, "ErrorItemNotFound", "The specified object was not found.")
        return mailbox, event

    def _store(
        self, mailbox: str, start: datetime, end: datetime, fields: dict[str, Any]
    ) -> _Event:
        # Exchange-style ids: base64url ending in "=", so clients must escape them in paths.
        raw = bytes(self._random.getrandbits(8) for _ in range(32))
        event_id = "AAMkAD" + base64.urlsafe_b64encode(raw).decode()
        event = _Event(event_id, start, end, self._clock(), fields)
        self._events[mailbox][event.id] = event
        if "transactionId" in fields:
            self._transactions[(mailbox, fields["transactionId"])] = event.id
        self.created.append((event.created, event.id))
        return event

    def _touch(self, event: _Event) -> None:
        event.modified, event.version = self._clock(), event.version + 1

    def _overlapping(self, mailbox: str, start: datetime, end: datetime) -> list[_Event]:
        events = self._events[mailbox].values()
        return [e for e in events if not e.cancelled and e.start < end and start < e.end]

    def _render(self, event: _Event, mailbox: str, zone: ZoneInfo | None) -> dict[str, Any]:
        fields = event.fields
        attendees = [{**a, "type": a.get("type", "required"),
                      "status": {"response": "none", "time": "0001-01-01T00:00:00Z"}}
                     for a in fields.get("attendees", [])]  # fmt: skip
        rendered = {
            "@odata.etag": f'W/"{event.version}"', "id": event.id,
            "createdDateTime": _stamp(event.created),
            "lastModifiedDateTime": _stamp(event.modified or event.created),
            "changeKey": str(event.version), "subject": fields.get("subject", ""),
            "body": fields.get("body", {"contentType": "text", "content": ""}),
            "start": _wire(event.start, zone), "end": _wire(event.end, zone),
            "showAs": _show_as(event), "isCancelled": event.cancelled, "isOrganizer": True,
            "isAllDay": fields.get("isAllDay", False), "type": "singleInstance",
            "attendees": attendees,
            "organizer": {"emailAddress": {"name": mailbox, "address": mailbox}},
        }  # fmt: skip
        if "transactionId" in fields:  # "only returned ... if an app has set it"
            rendered["transactionId"] = fields["transactionId"]
        return rendered


# ---- wire helpers -------------------------------------------------------------------------------


async def _body(request: web.Request, schema: str, *, canonical: bool = False) -> dict[str, Any]:
    try:
        body = orjson.loads(await request.read() or b"{}")
    except orjson.JSONDecodeError:
        raise _Refused(400, "BadRequest", "Unable to read JSON request payload.") from None
    validator = _VALIDATORS[schema]
    if canonical and isinstance(body, dict):
        body = schemas.canonical(body, getattr(schemas, schema))
    error = best_match(validator.iter_errors(body))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "body"
        raise _Refused(400, "BadRequest", f"Invalid request: {where}: {error.message[:300]}")
    assert isinstance(body, dict)
    return body


def _zone(name: str) -> ZoneInfo | None:
    if name.upper() in ("UTC", "ETC/UTC", "GMT"):
        return None
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError, OSError):
        text = f"A valid TimeZone value must be specified. '{name}' is not supported."
        raise _Refused(400, "TimeZoneNotSupportedException", text) from None


def _instant(value: Mapping[str, str]) -> datetime:
    """A validated ``dateTimeTimeZone`` as an aware UTC datetime."""
    wall = datetime.fromisoformat(value["dateTime"])
    return wall.replace(tzinfo=_zone(value["timeZone"]) or UTC).astimezone(UTC)


def _query_instant(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise _Refused(400, "ErrorInvalidParameter", f"Invalid date-time {text!r}.") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


def _count(text: str) -> int:
    if not text.isdigit():
        raise _Refused(400, "BadRequest", f"Invalid paging value {text!r}.")
    return int(text)


def _prefer_zone(request: web.Request) -> ZoneInfo | None:
    found = _PREFER_ZONE.search(request.headers.get("Prefer", ""))
    if found is None:
        return None
    try:
        return _zone(found.group(1))
    except _Refused:
        return None  # a Windows name this emulator cannot map: answer in UTC


def _wire(moment: datetime, zone: ZoneInfo | None) -> dict[str, str]:
    local = moment.astimezone(zone or UTC)
    return {"dateTime": f"{local:%Y-%m-%dT%H:%M:%S}.{local.microsecond:06d}0",
            "timeZone": zone.key if zone is not None else "UTC"}  # fmt: skip


def _stamp(moment: datetime) -> str:
    utc = moment.astimezone(UTC)
    return f"{utc:%Y-%m-%dT%H:%M:%S}.{utc.microsecond:06d}0Z"


def _show_as(event: _Event) -> str:
    return str(event.fields.get("showAs", "busy"))
