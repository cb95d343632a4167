"""A local Google Calendar v3 server: the API Slotline uses, checked against Google's own spec.

Serves, under ``/calendar/v3`` (so ``base_url`` is the root, like ``https://www.googleapis.com``):
``POST /freeBusy`` and events insert/get/list/patch/delete, plus an OAuth token endpoint
(``/token``). Routes, query parameters, request bodies and per-method scopes all come from the
discovery document inside google-api-python-client (``calendar.v3.json``): a request that does
not conform gets Google's 400, an unknown route 404, a token without a method scope 403.

What it models, as Google does it:
- state: calendars (``calendars=``) of events; deleted events stay as ``status: cancelled``
  (``get`` still returns them, ``delete`` again → 410, re-using their id → 409);
- overlapping events are ALLOWED; client-chosen ids (base32hex, 5–1024 chars) → 409 on reuse;
- freeBusy: merged busy periods of opaque, non-cancelled events clipped to [timeMin, timeMax);
  an unknown calendar gets a per-calendar ``errors: [{reason: notFound}]``;
- events.list: ``timeMin``/``timeMax`` select events with end > timeMin and start < timeMax;
  ``q`` keeps events with every term (case-insensitive) in the fields Google's doc lists:
  summary, description, location, attendees' and organizer's names and e-mails;
- tokens: the JWT-bearer grant (assertion signature checked against the service account's
  public key) or the refresh-token grant; tokens expire (``token_ttl_s``, ``expire_tokens()``);
  unknown/expired tokens → 401 ``UNAUTHENTICATED``; a service account without a ``sub``
  (domain-wide delegation) may not invite attendees (403 ``forbiddenForServiceAccounts``);
- ``sendUpdates=all`` records the e-mails Google would send in ``notifications``.
Not modelled: recurrence expansion, ACLs, quotas, ETag preconditions.
The discovery-document checks live in ``_google_discovery``, the token endpoint in
``_google_oauth``; ``drop_next(method="calendar.events.insert")`` drops one method's answer.
"""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from datetime import time as dtime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
from aiohttp import web

from slotline.providers.emulators._google_discovery import Method, load_methods
from slotline.providers.emulators._google_oauth import Grant, TokenIssuer
from slotline.providers.emulators._http import HttpEmulator, json_response

_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
           404: "NOT_FOUND", 409: "ALREADY_EXISTS", 503: "UNAVAILABLE"}
_SERVER_OWNED = frozenset({"kind", "etag", "id", "htmlLink", "created", "updated", "creator",
                           "organizer", "iCalUID"})
_ID_CHARS = frozenset("abcdefghijklmnopqrstuv0123456789")  # base32hex, lower case
Event = dict[str, Any]


class ApiError(Exception):
    """An answer in Google's error shape."""

    def __init__(self, code: int, reason: str, message: str, **where: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.where = code, reason, message, where

    def response(self) -> web.Response:
        return json_response(google_error(self.code, self.reason, self.message, **self.where),
                             self.code)


def google_error(code: int, reason: str, message: str, **where: str) -> dict[str, Any]:
    error: dict[str, Any] = {
        "code": code, "message": message,
        "errors": [{"message": message, "domain": "global", "reason": reason, **where}],
    }
    if code in _STATUS:
        error["status"] = _STATUS[code]
    return {"error": error}


@dataclass(frozen=True, slots=True)
class Notification:
    kind: str  # "invite" | "update" | "cancel"
    event_id: str
    emails: tuple[str, ...]


Handler = Callable[[web.Request, str, Any, Grant], Awaitable[web.Response]]


class GoogleCalendarEmulator(HttpEmulator):
    """See the module doc. ``calendars``: the calendar ids that exist (events live there)."""

    def __init__(
        self,
        *,
        calendars: Iterable[str] = ("primary",),
        token_ttl_s: float = 3600.0,
        discovery_path: Path | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._methods = load_methods(discovery_path)
        scopes = frozenset().union(*(m.scopes for m in self._methods.values()))
        self.oauth = TokenIssuer(scopes, token_ttl_s)
        self._calendars: dict[str, dict[str, Event]] = {c: {} for c in calendars}
        self.notifications: list[Notification] = []
        self._method_drops: Counter[str] = Counter()

    # ---- set-up and inspection for tests and offline development --------------------------

    @property
    def token_url(self) -> str:
        return f"{self.origin}/token"

    @property
    def tokens_issued(self) -> int:
        return self.oauth.issued

    def add_service_account(
        self, client_email: str, public_key_pem: str, key_id: str | None = None
    ) -> None:
        self.oauth.add_service_account(client_email, public_key_pem, key_id)

    def add_refresh_token(
        self, client_id: str, client_secret: str, refresh_token: str,
        scopes: Iterable[str] = ("https://www.googleapis.com/auth/calendar",),
    ) -> None:
        self.oauth.add_refresh_token(client_id, client_secret, refresh_token, scopes)

    def drop_next(self, count: int = 1, method: str | None = None) -> None:
        """As the base's, or only for one API method (``"calendar.events.insert"``): handled,
        the state changed, the response never delivered."""
        if method is None:
            super().drop_next(count)
        else:
            self._method_drops[method] += count

    def expire_tokens(self) -> None:
        """Every access token issued so far expires now (the next API call gets a 401)."""
        self.oauth.expire_all()

    def add_event(
        self, calendar_id: str, start: datetime, end: datetime, *,
        summary: str = "Busy", transparency: str = "opaque",
    ) -> Event:
        """An event someone else put on the calendar (no request, no validation)."""
        body = {"summary": summary, "transparency": transparency,
                "start": {"dateTime": start.isoformat()}, "end": {"dateTime": end.isoformat()}}
        return self._store(calendar_id, _new_id(), body)

    def events(
        self, calendar_id: str = "primary", *, include_cancelled: bool = False
    ) -> list[Event]:
        return [e for e in self._calendars[calendar_id].values()
                if include_cancelled or e["status"] != "cancelled"]

    # ---- routes -----------------------------------------------------------------------------

    def _routes(self, app: web.Application) -> None:
        handlers: dict[str, Handler] = {
            "calendar.freebusy.query": self._freebusy,
            "calendar.events.insert": self._insert,
            "calendar.events.get": self._get,
            "calendar.events.list": self._list,
            "calendar.events.patch": self._patch,
            "calendar.events.delete": self._delete,
        }
        for method_id, handler in handlers.items():
            method = self._methods[method_id]
            app.router.add_route(method.http_method, method.route, self._endpoint(method, handler))
        app.router.add_post("/token", self.oauth.handle)
        app.router.add_route("*", "/{tail:.*}", self._not_found)

    def _error_body(self, status: int) -> object:
        reason = "rateLimitExceeded" if status == 429 else "backendError"
        return google_error(status, reason, f"injected failure {status}")

    async def _not_found(self, request: web.Request) -> web.Response:
        return ApiError(404, "notFound", f"Not Found: {request.method} {request.path}").response()

    def _endpoint(self, method: Method, handler: Handler) -> Callable[..., Awaitable[web.Response]]:
        async def endpoint(request: web.Request) -> web.Response:
            try:
                grant = self._authorize(request, method)
                bad_parameter = method.query_problem(request.query)
                if bad_parameter:
                    name, message = bad_parameter
                    raise ApiError(400, "invalid", message, location=name,
                                   locationType="parameter")
                body: Any = None
                if method.body is not None:
                    body = await _json_body(request)
                    problem = method.body_problem(body)
                    if problem:
                        raise ApiError(400, "invalid", problem)
                response = await handler(request, request.match_info.get("calendarId", ""),
                                         body, grant)
            except ApiError as exc:
                return exc.response()
            if self._method_drops[method.id] and request.transport is not None:
                self._method_drops[method.id] -= 1
                request.transport.close()  # handled, never answered
            return response

        return endpoint

    def _authorize(self, request: web.Request, method: Method) -> Grant:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            raise ApiError(401, "required", "Request is missing required authentication "
                           "credential. Expected OAuth 2 access token.",
                           location="Authorization", locationType="header")
        grant = self.oauth.grant(header.removeprefix("Bearer "))
        if grant is None:
            raise ApiError(401, "authError", "Request had invalid authentication credentials. "
                           "Expected OAuth 2 access token.",
                           location="Authorization", locationType="header")
        if not grant.scopes & method.scopes:
            raise ApiError(403, "insufficientPermissions",
                           "Request had insufficient authentication scopes.")
        return grant

    # ---- the Calendar API ---------------------------------------------------------------------

    async def _freebusy(self, request: web.Request, _: str, body: Any,
                        grant: Grant) -> web.Response:
        time_min = _query_time(body.get("timeMin"), "timeMin")
        time_max = _query_time(body.get("timeMax"), "timeMax")
        if time_max <= time_min:
            raise ApiError(400, "timeRangeEmpty", "The specified time range is empty.")
        zone = _zone(body.get("timeZone") or "UTC")
        calendars: dict[str, Any] = {}
        for item in body.get("items", []):
            calendar_id = item.get("id", "")
            if calendar_id not in self._calendars:
                calendars[calendar_id] = {"busy": [], "errors": [
                    {"domain": "global", "reason": "notFound"}]}
                continue
            busy = _busy_periods(self._calendars[calendar_id].values(), time_min, time_max)
            calendars[calendar_id] = {"busy": [
                {"start": _rfc3339(s, zone), "end": _rfc3339(e, zone)} for s, e in busy]}
        return json_response({"kind": "calendar#freeBusy", "timeMin": body["timeMin"],
                              "timeMax": body["timeMax"], "calendars": calendars})

    async def _insert(self, request: web.Request, calendar_id: str, body: Any,
                      grant: Grant) -> web.Response:
        events = self._calendar(calendar_id)
        event_id = body.get("id") or _new_id()
        if not (5 <= len(event_id) <= 1024 and set(event_id) <= _ID_CHARS):
            raise ApiError(400, "invalid", "Invalid resource id value.")
        if event_id in events:
            raise ApiError(409, "duplicate", "The requested identifier already exists.")
        _check_attendees(body, grant)
        _span(body)
        event = self._store(calendar_id, event_id, body)
        self._notify(request, "invite", event)
        return json_response(event)

    async def _get(self, request: web.Request, calendar_id: str, _: Any,
                   grant: Grant) -> web.Response:
        return json_response(self._event(calendar_id, request.match_info["eventId"]))

    async def _list(self, request: web.Request, calendar_id: str, _: Any,
                    grant: Grant) -> web.Response:
        query = request.query
        events = list(self._calendar(calendar_id).values())
        if query.get("orderBy") == "startTime" and query.get("singleEvents") != "true":
            raise ApiError(400, "badRequest",
                           "The requested ordering is not available for the particular query.")
        if query.get("showDeleted") != "true":
            events = [e for e in events if e["status"] != "cancelled"]
        if "iCalUID" in query:
            events = [e for e in events if e["iCalUID"] == query["iCalUID"]]
        if query.get("q"):  # every term, in summary, description, location or attendees
            terms = query["q"].lower().split()
            events = [e for e in events if all(t in _searchable(e) for t in terms)]
        if "timeMin" in query:  # events ending after timeMin
            time_min = _query_time(query["timeMin"], "timeMin")
            events = [e for e in events if _span(e)[1] > time_min]
        if "timeMax" in query:  # events starting before timeMax
            time_max = _query_time(query["timeMax"], "timeMax")
            events = [e for e in events if _span(e)[0] < time_max]
        if query.get("orderBy") == "startTime":
            events.sort(key=lambda e: _span(e)[0])
        token = query.get("pageToken", "0")
        if not token.isdigit():
            raise ApiError(400, "invalid", "Invalid page token value.")
        offset = int(token)
        size = min(int(query.get("maxResults", "250")), 2500)
        page: dict[str, Any] = {
            "kind": "calendar#events", "etag": _etag(), "summary": calendar_id,
            "updated": _rfc3339(datetime.now(UTC)), "timeZone": "UTC", "accessRole": "owner",
            "defaultReminders": [], "items": events[offset:offset + size],
        }
        if offset + size < len(events):
            page["nextPageToken"] = str(offset + size)
        return json_response(page)

    async def _patch(self, request: web.Request, calendar_id: str, body: Any,
                     grant: Grant) -> web.Response:
        event = self._event(calendar_id, request.match_info["eventId"])
        merged = _merge(event, _writable(body))
        _check_attendees(body, grant)
        moved = _span(merged) != _span(event)
        merged.update(updated=_rfc3339(datetime.now(UTC)), etag=_etag(),
                      sequence=event["sequence"] + (1 if moved else 0))
        self._calendars[calendar_id][event["id"]] = merged
        self._notify(request, "update", merged)
        return json_response(merged)

    async def _delete(self, request: web.Request, calendar_id: str, _: Any,
                      grant: Grant) -> web.Response:
        event = self._event(calendar_id, request.match_info["eventId"])
        if event["status"] == "cancelled":
            raise ApiError(410, "deleted", "Resource has been deleted")
        event.update(status="cancelled", updated=_rfc3339(datetime.now(UTC)), etag=_etag())
        self._notify(request, "cancel", event)
        return web.Response(status=204)

    # ---- state ------------------------------------------------------------------------------

    def _calendar(self, calendar_id: str) -> dict[str, Event]:
        events = self._calendars.get(calendar_id)
        if events is None:
            raise ApiError(404, "notFound", "Not Found")
        return events

    def _event(self, calendar_id: str, event_id: str) -> Event:
        event = self._calendar(calendar_id).get(event_id)
        if event is None:
            raise ApiError(404, "notFound", "Not Found")
        return event

    def _store(self, calendar_id: str, event_id: str, body: Mapping[str, Any]) -> Event:
        now = _rfc3339(datetime.now(UTC))
        owner = {"email": calendar_id, "self": True}
        event: Event = {
            "status": "confirmed", "sequence": 0, "reminders": {"useDefault": True},
            "eventType": "default", **_writable(body),
            "kind": "calendar#event", "etag": _etag(), "id": event_id,
            "htmlLink": f"{self.origin}/calendar/event?eid={event_id}", "created": now,
            "updated": now, "creator": owner, "organizer": owner,
            "iCalUID": f"{event_id}@google.com",
        }
        if "attendees" in event:
            event["attendees"] = [
                {"responseStatus": "needsAction", **a} for a in event["attendees"]
            ]
        self._calendar(calendar_id)[event_id] = event
        return event

    def _notify(self, request: web.Request, kind: str, event: Event) -> None:
        query = request.query
        if query.get("sendUpdates") != "all" and query.get("sendNotifications") != "true":
            return
        emails = tuple(a["email"] for a in event.get("attendees", []) if a.get("email"))
        if emails:
            self.notifications.append(Notification(kind, event["id"], emails))


# ---- helpers ----------------------------------------------------------------------------------


async def _json_body(request: web.Request) -> Any:
    raw = await request.read()
    try:
        body = orjson.loads(raw) if raw else {}
    except orjson.JSONDecodeError:
        raise ApiError(400, "parseError", "Invalid JSON payload received.") from None
    if not isinstance(body, dict):
        raise ApiError(400, "parseError", "Invalid JSON payload received: expected an object.")
    return body


def _writable(body: Mapping[str, Any]) -> dict[str, Any]:
    """The body without the fields the server owns (Google ignores them on a write)."""
    return {k: v for k, v in body.items() if k not in _SERVER_OWNED}


def _check_attendees(body: Mapping[str, Any], grant: Grant) -> None:
    if body.get("attendees") and grant.service_account and not grant.subject:
        raise ApiError(403, "forbiddenForServiceAccounts", "Service accounts cannot invite "
                       "attendees without Domain-Wide Delegation of Authority.")


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ApiError(400, "invalid", f"Invalid time zone definition: {name}") from None


def _query_time(value: Any, name: str) -> datetime:
    """A request time bound: RFC 3339 with a mandatory offset."""
    if not value:
        raise ApiError(400, "required", f"Missing {name} parameter.")
    parsed = datetime.fromisoformat(str(value))  # the format was checked against the spec
    if parsed.tzinfo is None:
        raise ApiError(400, "invalid", f"Bad Request: {name} needs a time zone offset.")
    return parsed


def _span(event: Mapping[str, Any]) -> tuple[datetime, datetime]:
    start, end = (_event_time(event.get(k), k) for k in ("start", "end"))
    if end < start:
        raise ApiError(400, "timeRangeEmpty", "The specified time range is empty.")
    return start, end


def _event_time(value: Any, which: str) -> datetime:
    if not isinstance(value, Mapping) or not (value.get("dateTime") or value.get("date")):
        raise ApiError(400, "required", f"Missing {which} time.")
    zone_name = value.get("timeZone")
    zone = _zone(zone_name) if zone_name else None
    if value.get("dateTime"):
        parsed = datetime.fromisoformat(value["dateTime"])
        if parsed.tzinfo is None:
            if zone is None:
                raise ApiError(400, "required", f"Missing time zone definition for {which} time.")
            parsed = parsed.replace(tzinfo=zone)
        return parsed
    return datetime.combine(date.fromisoformat(value["date"]), dtime(), zone or UTC)


def _busy_periods(
    events: Iterable[Event], time_min: datetime, time_max: datetime
) -> list[tuple[datetime, datetime]]:
    spans = sorted(
        (max(s, time_min), min(e, time_max))
        for s, e in (_span(ev) for ev in events
                     if ev["status"] != "cancelled" and ev.get("transparency") != "transparent")
        if s < time_max and e > time_min
    )
    merged: list[tuple[datetime, datetime]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _merge(old: Mapping[str, Any], patch: Mapping[str, Any]) -> Event:
    """Patch semantics: objects merge field by field, everything else is replaced."""
    merged = dict(old)
    for key, value in patch.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _rfc3339(moment: datetime, zone: ZoneInfo | None = None) -> str:
    local = moment.astimezone(zone or UTC)
    text = local.isoformat(timespec="milliseconds" if zone is None else "seconds")
    return text.replace("+00:00", "Z")


def _new_id() -> str:
    alphabet = sorted(_ID_CHARS)
    return "".join(secrets.choice(alphabet) for _ in range(26))


def _etag() -> str:
    return f'"{secrets.randbelow(10**16)}"'



def _searchable(event: dict[str, Any]) -> str:
    """What ``events.list``'s ``q`` searches: summary, description, location, attendees' and
    organizer's names and e-mails (lower case)."""
    people = [*event.get("attendees", []), event.get("organizer", {})]
    parts = [event.get("summary", ""), event.get("description", ""), event.get("location", "")]
    parts += [f"{p.get('displayName', '')} {p.get('email', '')}" for p in people]
    return " ".join(str(part) for part in parts).lower()
