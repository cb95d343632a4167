"""A local Cal.com API v2 server: event types with real booking rules, real bookings and holds.

Serves what Slotline's Cal.com adapter uses, in Cal.com's documented shapes and texts
(``{"status": "success", "data": ...}``; errors
``{"status": "error", "error": {"code", "message"}}``):
- ``GET /v2/slots`` (``cal-api-version: 2024-09-04``): slots from the event type's rules
  (``calcom_rules``) minus live bookings and live reservations; ``format=range|time``, grouped
  by date in ``timeZone`` (default UTC); an ``end`` at 00:00:00 means the end of that day.
  ``duration`` picks one length of a variable-length event type (``lengthInMinutesOptions``):
  the slots are that long and step by it (unless a slot interval is set); a length it does not
  offer → 400 (as does a ``duration`` other than the length of a fixed-length one).
- ``POST /v2/slots/reservations`` (2024-09-04): a hold (default 5 min) → 201; 422 when the time is
  booked or someone holds it already. ``slotDuration`` holds one of a variable-length type's
  lengths; on a fixed-length type, or a length not offered → 400 with Cal.com's texts.
- ``POST /v2/bookings``, ``GET /v2/bookings`` (filters eventTypeId, afterStart ≤ start,
  end ≤ beforeEnd, status, attendeeEmail/Name, bookingUid, sortStart, take/skip),
  ``GET /v2/bookings/{uid}``, ``POST .../cancel``, ``POST .../reschedule`` (2024-08-13).
  Creating checks the past, minimum notice / booking window, hours and free hosts at once (no
  await between check and write, so of two concurrent creates on one slot exactly one gets 201,
  the other 400 "User either already has booking at this time or is not available").
  ``reservedSlotUid`` makes a create respect holds (409 when someone reserved first) and consumes
  the hold; without it holds are ignored, as on Cal.com. ``lengthInMinutes`` books one of a
  variable-length type's lengths; Cal.com's ``validateBookingLengthInMinutes`` refuses it (400,
  its texts) on a fixed-length type — even when equal to the length — and when not an option. A
  reschedule keeps the booking's length. A reschedule makes a new booking
  (``rescheduledFromUid``) and cancels the old one (``rescheduledToUid``).
- ``GET /v2/event-types`` and ``GET /v2/event-types/{id}`` (``cal-api-version: 2024-06-14``):
  the event types, each with its length,
  locations and booking fields (Cal.com's built-in ones, then the host's own questions). A
  booking that leaves a required question of the host's unanswered in
  ``bookingFieldsResponses`` is refused (400), as Cal.com's ``hasRequiredBookingFieldsResponses``
  does; answers and ``guests`` are kept and shown on the booking. A team's event type
  (``team_id``) is not served there (404), as on Cal.com, where teams have their own routes.

Requests are checked like Cal.com's whitelisting validation: bodies and query strings against
JSON Schemas (``calcom_schemas``) from Cal.com's input types; an unknown or missing field → 400
BadRequestException. A missing or wrong ``cal-api-version`` → 400 naming the version the route
wants (the real API would route to an older version with different shapes; refusing keeps a
forgotten header from passing silently). Auth: ``Authorization: Bearer <api_key>``; a wrong key
→ 401 everywhere, no key → 401 except on the public slot routes. Each event type is its own
host pool. Seats are not emulated.

Faults: the base class's ``fail_next``/``drop_next``/``stall_next``/latency, plus per-route
``fail_next_on("POST /v2/bookings", 503)`` and ``drop_next_on("POST /v2/bookings")``.
"""

from __future__ import annotations

import uuid
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from slotline.providers.emulators import calcom_schemas as schemas
from slotline.providers.emulators._http import Handler, HttpEmulator, json_response
from slotline.providers.emulators.calcom_rules import (
    EventType,
    Span,
    free_starts,
    in_bounds,
    local_iso,
    overlapping,
    overlapping_bookings,
    within_hours,
)
from slotline.providers.emulators.calcom_schemas import ApiError, error_json

Clock = Callable[[], datetime]
Reply = tuple[int, Any]  # (HTTP status, the ``data`` of the success envelope)
BOOKINGS = "2024-08-13"
EVENT_TYPES = "2024-06-14"
SLOTS = "2024-09-04"
_HOLD_MIN = 5  # Cal.com's default reservation length
TAKEN = "User either already has booking at this time or is not available"
TAKEN_TEAM = "One of the hosts either already has booking at this time or is not available"
OUT_OF_BOUNDS = (
    "The event type can't be booked at the \"start\" time provided. This could be because it's "
    "too soon (violating the minimum booking notice) or too far in the future (outside the "
    "event's scheduling window). Try fetching available slots first using the GET /v2/slots "
    "endpoint and then make a booking with \"start\" time equal to one of the available slots: "
    "https://cal.com/docs/api-reference/v2/slots"
)
_LIVE = ("accepted", "pending")
_MAX_GUESTS = 30  # per booking, as Cal.com documents for POST /v2/bookings/{uid}/guests
SINGLE_LENGTH = (
    "Can't specify 'lengthInMinutes' because event type does not have multiple possible lengths. "
    "Please, remove the 'lengthInMinutes' field from the request."
)


@dataclass(frozen=True, slots=True)
class Paged:
    """A list answer: ``data`` plus Cal.com's ``pagination`` beside it."""

    items: list[dict[str, Any]]
    pagination: dict[str, Any]


def _iso(moment: datetime) -> str:
    return local_iso(moment, "UTC")


class Booking:
    """One emulated booking; ``json()`` is BookingOutput_2024_08_13."""

    def __init__(self, number: int, event: EventType, start: datetime, body: dict[str, Any],
                 status: str, now: datetime, host: int) -> None:
        self.id, self.uid, self.event = number, uuid.uuid4().hex[:22], event
        self.length_min: int = body.get("lengthInMinutes") or event.length_min
        self.start, self.status, self.host = start, status, host
        self.end = start + timedelta(minutes=self.length_min)
        self.attendee: dict[str, Any] = dict(body["attendee"])
        self.metadata: dict[str, str] = dict(body.get("metadata") or {})
        self.fields: dict[str, Any] = dict(body.get("bookingFieldsResponses") or {})
        self.created_at = self.updated_at = now
        self.rescheduled_from = self.rescheduled_to = ""
        self.cancellation_reason = self.rescheduling_reason = ""
        self.guests: list[dict[str, Any]] = [{"email": e} for e in body.get("guests") or []]

    @property
    def live(self) -> bool:
        return self.status in _LIVE

    def span(self) -> Span:
        return Span(self.start, self.end)

    def json(self) -> dict[str, Any]:
        a = self.attendee
        attendee = {"name": a["name"], "email": a.get("email", ""),
                    "displayEmail": a.get("email", ""), "timeZone": a["timeZone"],
                    "language": a.get("language", "en"), "absent": False}
        if a.get("phoneNumber"):
            attendee["phoneNumber"] = a["phoneNumber"]
        n = self.host + 1
        out: dict[str, Any] = {
            "id": self.id, "uid": self.uid,
            "title": f"{self.event.slug} between Host {n} and {a['name']}", "description": "",
            "hosts": [{"id": n, "name": f"Host {n}", "email": f"host{n}@example.com",
                       "displayEmail": f"host{n}@example.com", "username": f"host{n}",
                       "timeZone": self.event.timezone}],
            "status": self.status, "start": _iso(self.start), "end": _iso(self.end),
            "duration": self.length_min, "eventTypeId": self.event.id,
            "eventType": {"id": self.event.id, "slug": self.event.slug},
            "location": self.event.meeting_link, "meetingUrl": self.event.meeting_link,
            "absentHost": False, "createdAt": _iso(self.created_at),
            "updatedAt": _iso(self.updated_at), "metadata": self.metadata,
            "attendees": [attendee, *(_guest_attendee(g, a) for g in self.guests)],
            "guests": [g["email"] for g in self.guests],
            "bookingFieldsResponses": {"name": a["name"], "email": a.get("email", ""),
                                       **self.fields},
        }
        for key, value in (("cancellationReason", self.cancellation_reason),
                           ("reschedulingReason", self.rescheduling_reason),
                           ("rescheduledFromUid", self.rescheduled_from),
                           ("rescheduledToUid", self.rescheduled_to)):
            if value:
                out[key] = value
        return out


class Hold:
    def __init__(self, event: EventType, start: datetime, until: datetime, seq: int,
                 length_min: int) -> None:
        self.uid, self.event, self.start = str(uuid.uuid4()), event, start
        self.end, self.until, self.seq = start + timedelta(minutes=length_min), until, seq


class CalcomEmulator(HttpEmulator):
    """See the module doc. ``clock`` returns an aware UTC now (tests pin it)."""

    def __init__(self, api_key: str, event_types: Iterable[EventType], *,
                 clock: Clock | None = None, **server: Any) -> None:
        super().__init__(**server)
        self.api_key = api_key
        self.event_types = {event.id: event for event in event_types}
        self.clock: Clock = clock or (lambda: datetime.now(UTC))
        self.bookings: dict[str, Booking] = {}  # by uid, in creation order
        self.holds: dict[str, Hold] = {}
        self._seq = 0
        self._route_failures: dict[str, deque[tuple[int, object]]] = {}
        self._route_drops: Counter[str] = Counter()

    # ---- faults per route ---------------------------------------------------------------------

    def fail_next_on(self, route: str, status: int, count: int = 1,
                     body: object | None = None) -> None:
        """Answer the next ``count`` requests to ``route`` ("POST /v2/bookings") with ``status``
        without handling them."""
        queue = self._route_failures.setdefault(route, deque())
        queue.extend([(status, body if body is not None else self._error_body(status))] * count)

    def drop_next_on(self, route: str, count: int = 1) -> None:
        """Handle the next ``count`` requests to ``route``, then drop their connections."""
        self._route_drops[route] += count

    def _error_body(self, status: int) -> object:
        return error_json(status, f"injected failure {status}", "")

    # ---- state for tests ----------------------------------------------------------------------

    def live_bookings(self) -> list[dict[str, Any]]:
        return [b.json() for b in self.bookings.values() if b.live]

    def live_holds(self) -> list[Hold]:
        now = self.clock()
        return [h for h in self.holds.values() if h.until > now]

    # ---- routing ------------------------------------------------------------------------------

    def _routes(self, app: web.Application) -> None:
        add = app.router.add_route
        add("GET", "/v2/slots", self._endpoint(SLOTS, self._slots, public=True))
        add("POST", "/v2/slots/reservations", self._endpoint(SLOTS, self._reserve, public=True))
        add("POST", "/v2/bookings", self._endpoint(BOOKINGS, self._create))
        add("GET", "/v2/bookings", self._endpoint(BOOKINGS, self._list))
        add("GET", "/v2/bookings/{uid}", self._endpoint(BOOKINGS, self._get))
        add("POST", "/v2/bookings/{uid}/cancel", self._endpoint(BOOKINGS, self._cancel))
        add("POST", "/v2/bookings/{uid}/reschedule", self._endpoint(BOOKINGS, self._reschedule))
        add("POST", "/v2/bookings/{uid}/guests", self._endpoint(BOOKINGS, self._add_guests))
        add("GET", "/v2/event-types/{id}", self._endpoint(EVENT_TYPES, self._event_type))
        add("GET", "/v2/event-types", self._endpoint(EVENT_TYPES, self._event_type_list))

    def _endpoint(self, version: str, handler: Callable[[web.Request], Awaitable[Reply]], *,
                  public: bool = False) -> Handler:
        async def run(request: web.Request) -> web.StreamResponse:
            resource = request.match_info.route.resource
            route = f"{request.method} {resource.canonical if resource else request.path}"
            failures = self._route_failures.get(route)
            if failures:
                status, body = failures.popleft()
                return json_response(body, status)
            try:
                self._check_auth(request, public)
                if request.headers.get("cal-api-version") != version:
                    raise ApiError(400, f"cal-api-version header must be {version} for "
                                        f"{route} (got {request.headers.get('cal-api-version')!r})")
                status, data = await handler(request)
                envelope = {"status": "success", "data": data}
                if isinstance(data, Paged):
                    envelope.update(data=data.items, pagination=data.pagination)
                response = json_response(envelope, status)
            except ApiError as refused:
                response = json_response(
                    error_json(refused.status, refused.message, request.path), refused.status
                )
            if self._route_drops[route] > 0:
                self._route_drops[route] -= 1
                self.drop_next()  # the base drops this very response after we return it
            return response

        return run

    def _check_auth(self, request: web.Request, public: bool) -> None:
        given = request.headers.get("Authorization")
        if given is None and public:
            return
        if given != f"Bearer {self.api_key}":
            raise ApiError(401, "Invalid API Key" if given else "No Authorization header")

    def _event(self, number: int, message: str) -> EventType:
        event = self.event_types.get(number)
        if event is None:
            raise ApiError(404, message)
        return event

    def _booking(self, request: web.Request) -> Booking:
        uid = request.match_info["uid"]
        booking = self.bookings.get(uid)
        if booking is None:
            raise ApiError(404, f"Booking with uid={uid} not found")
        return booking

    # ---- slots --------------------------------------------------------------------------------

    async def _slots(self, request: web.Request) -> Reply:
        query = schemas.check_query(schemas.SLOTS_QUERY, request.query)
        event = self._event(int(query["eventTypeId"]), "Event Type not found")
        zone = query.get("timeZone", "UTC")
        start = schemas.time_of(query, "start")
        end = schemas.time_of(query, "end")
        if end.time() == datetime.min.time():  # Cal.com: a bare day (or 00:00:00) ends at 23:59:59
            end += timedelta(hours=23, minutes=59, seconds=59)
        if end < start:
            raise ApiError(400, "Invalid time range given - check the 'start' and 'end' query "
                                "parameters.")
        asked = int(query.get("duration", event.length_min))
        if event.length_options_min and asked not in event.length_options_min:
            raise ApiError(400, "Provided 'duration' is not one of the possible lengths for the "
                                f"event type. The possible lengths are: {_listed(event)}")
        if not event.length_options_min and asked != event.length_min:
            raise ApiError(400, "duration is not one of the event type's lengths")
        sized = event.sized(asked)
        bookings = [b.span() for b in self.bookings.values() if b.live and b.event is event]
        holds = [Span(h.start, h.end) for h in self.live_holds() if h.event is event]
        days: dict[str, list[dict[str, str]]] = {}
        for moment in free_starts(sized, start, end, self.clock(), bookings, holds):
            text = local_iso(moment, zone)
            slot = {"start": text}
            if query.get("format", "time").lower() == "range":
                slot["end"] = local_iso(moment + sized.length, zone)
            days.setdefault(text[:10], []).append(slot)
        return 200, days

    async def _reserve(self, request: web.Request) -> Reply:
        body = await schemas.check_body(schemas.RESERVATION, request)
        number = body["eventTypeId"]
        event = self._event(number, f"Event Type with ID={number} not found")
        start = schemas.time_of(body, "slotStart")
        length_min = body.get("slotDuration") or event.length_min
        if "slotDuration" in body and not event.length_options_min:
            raise ApiError(400, "You passed 'slotDuration' but this event type is not a variable "
                                "length event type.")
        if length_min not in (event.length_options_min or (event.length_min,)):
            raise ApiError(400, "Provided 'slotDuration' is not one of the possible lengths for "
                                "the event type. The possible lengths for this variable length "
                                f"event type are: {_listed(event)}")
        end = start + timedelta(minutes=length_min)
        if overlapping(start, end, (b.span() for b in self.bookings.values()
                                    if b.live and b.event is event)):
            raise ApiError(422, "Can't reserve a slot if the event is already booked.")
        if overlapping(start, end, (Span(h.start, h.end) for h in self.live_holds()
                                    if h.event is event)):
            raise ApiError(422, "This time slot is already reserved by another user. "
                                "Please choose a different time.")
        minutes = body.get("reservationDuration", _HOLD_MIN)
        self._seq += 1
        hold = Hold(event, start, self.clock() + timedelta(minutes=minutes), self._seq,
                    length_min)
        self.holds[hold.uid] = hold
        return 201, {"eventTypeId": number, "slotStart": _iso(start), "slotEnd": _iso(end),
                     "slotDuration": length_min, "reservationUid": hold.uid,
                     "reservationDuration": minutes, "reservationUntil": _iso(hold.until)}

    # ---- bookings -----------------------------------------------------------------------------

    def _admit(self, event: EventType, start: datetime, body: dict[str, Any],
               moving: Booking | None = None, length_min: int | None = None) -> int:
        """Every check a new booking passes (no await inside); returns the free host's index."""
        now = self.clock()
        if start < now:
            raise ApiError(400, "Attempting to book a meeting in the past.")
        if not in_bounds(event, start, now):
            raise ApiError(400, OUT_OF_BOUNDS)
        taken_message = TAKEN_TEAM if event.hosts > 1 else TAKEN
        sized = event.sized(length_min or event.length_min)
        if not within_hours(sized, start):
            raise ApiError(400, taken_message)
        self._respect_holds(event, start, body.get("reservedSlotUid"), now)
        others = [b for b in self.bookings.values()
                  if b.live and b.event is event and b is not moving]
        clashing = [b for b in others if overlapping_bookings(sized, start, [b.span()])]
        if len(clashing) >= event.hosts:
            raise ApiError(400, taken_message)
        busy_hosts = {b.host for b in clashing}
        return min(set(range(event.hosts)) - busy_hosts)

    def _respect_holds(self, event: EventType, start: datetime, uid: object,
                       now: datetime) -> None:
        mine = self.holds.get(uid) if isinstance(uid, str) else None
        if mine is None or mine.until <= now or mine.event is not event or mine.start != start:
            return  # no hold, or an unknown/expired one: holds do not matter (as on Cal.com)
        rivals = [h for h in self.live_holds() if h.event is event and h.start == start]
        first = min(rivals, key=lambda h: (h.until, h.seq))
        if first is not mine:
            seconds = max(0, int((first.until - now).total_seconds() + 0.999))
            raise ApiError(409, "Someone else reserved this booking time slot before you. This "
                                f"time slot will be freed up in {seconds} seconds.")
        del self.holds[mine.uid]  # consumed by this booking

    def _store(self, event: EventType, start: datetime, body: dict[str, Any], host: int) -> Booking:
        status = "pending" if event.requires_confirmation else "accepted"
        booking = Booking(len(self.bookings) + 1, event, start, body, status, self.clock(), host)
        self.bookings[booking.uid] = booking
        return booking

    async def _create(self, request: web.Request) -> Reply:
        body = await schemas.check_body(schemas.BOOKING, request)
        number = body["eventTypeId"]
        event = self._event(number, f"Event type with id {number} not found.")
        length_min = body.get("lengthInMinutes")
        if length_min and not event.length_options_min:
            raise ApiError(400, SINGLE_LENGTH)
        if length_min and length_min not in event.length_options_min:
            raise ApiError(400, "Provided 'lengthInMinutes' is not one of the possible lengths "
                                f"for the event type. The possible lengths are: {_listed(event)}")
        _check_responses(event, body.get("bookingFieldsResponses") or {})
        start = schemas.time_of(body, "start")
        host = self._admit(event, start, body, length_min=length_min)
        return 201, self._store(event, start, body, host).json()

    async def _event_type_list(self, request: web.Request) -> Reply:
        """The key owner's event types (a team's are listed under the team's routes)."""
        return 200, [_event_type_json(e) for e in self.event_types.values() if e.team_id is None]

    async def _event_type(self, request: web.Request) -> Reply:
        raw = request.match_info["id"]
        event = self._event(int(raw) if raw.isdigit() else -1, f"Event type with id={raw} not "
                            "found")
        if event.team_id is not None:  # served under /v2/teams/{teamId}/event-types only
            raise ApiError(404, f"Event type with id={raw} not found")
        return 200, _event_type_json(event)

    async def _list(self, request: web.Request) -> Reply:
        query = schemas.check_query(schemas.BOOKINGS_QUERY, request.query)
        now = self.clock()
        chosen = [b for b in self.bookings.values() if _matches(b, query, now)]
        chosen.sort(key=lambda b: b.start, reverse=query.get("sortStart") == "desc")
        take, skip = int(query.get("take", 100)), int(query.get("skip", 0))
        page = chosen[skip:skip + take]
        remaining = max(0, len(chosen) - skip - len(page))
        return 200, Paged([b.json() for b in page], {
            "totalItems": len(chosen), "remainingItems": remaining, "returnedItems": len(page),
            "itemsPerPage": take, "currentPage": skip // take + 1,
            "totalPages": max(1, -(-len(chosen) // take)), "hasNextPage": remaining > 0,
            "hasPreviousPage": skip > 0,
        })

    async def _get(self, request: web.Request) -> Reply:
        return 200, self._booking(request).json()

    async def _cancel(self, request: web.Request) -> Reply:
        body = await schemas.check_body(schemas.CANCEL, request, empty_ok=True)
        booking = self._booking(request)
        if not booking.live:
            raise ApiError(400, "This booking has already been cancelled.")
        booking.status = "cancelled"
        booking.cancellation_reason = body.get("cancellationReason", "")
        booking.updated_at = self.clock()
        return 200, booking.json()

    async def _reschedule(self, request: web.Request) -> Reply:
        body = await schemas.check_body(schemas.RESCHEDULE, request)
        old = self._booking(request)
        if not old.live:
            raise ApiError(400, f"Booking with uid={old.uid} is cancelled and can't be "
                                "rescheduled.")
        start = schemas.time_of(body, "start")
        host = self._admit(old.event, start, body, moving=old, length_min=old.length_min)
        new = self._store(old.event, start, {"attendee": old.attendee, "metadata": old.metadata,
                                             "bookingFieldsResponses": old.fields,
                                             "lengthInMinutes": old.length_min}, host)
        new.guests = list(old.guests)
        new.rescheduled_from = old.uid
        new.rescheduling_reason = body.get("reschedulingReason", "")
        old.status, old.rescheduled_to, old.updated_at = "cancelled", new.uid, self.clock()
        return 201, new.json()

    async def _add_guests(self, request: web.Request) -> Reply:
        """Guests join the booking's attendees (Cal.com e-mails each one the invitation)."""
        body = await schemas.check_body(schemas.ADD_GUESTS, request)
        booking = self._booking(request)
        if not booking.live:
            raise ApiError(400, f"Booking with uid={booking.uid} is cancelled.")
        if len(booking.guests) + len(body["guests"]) > _MAX_GUESTS:
            raise ApiError(400, f"A booking can have at most {_MAX_GUESTS} guests.")
        booking.guests.extend(body["guests"])
        booking.updated_at = self.clock()
        return 200, booking.json()


_SYSTEM_FIELDS = (  # Cal.com's built-in booking fields, as its event type output lists them
    {"type": "name", "slug": "name", "required": True, "isDefault": True, "hidden": False},
    {"type": "email", "slug": "email", "required": True, "isDefault": True, "hidden": False},
    {"type": "radioInput", "slug": "location", "required": False, "isDefault": True,
     "hidden": False},
    {"type": "textarea", "slug": "notes", "required": False, "isDefault": True, "hidden": False},
    {"type": "multiemail", "slug": "guests", "required": False, "isDefault": True,
     "hidden": False},
)


def _event_type_json(event: EventType) -> dict[str, Any]:
    """EventTypeOutput_2024_06_14, the parts an API client reads."""
    custom = [{"label": f.get("slug", ""), "hidden": False, "required": False, **f,
               "isDefault": False} for f in event.booking_fields]
    locations = ([{"type": "link", "link": event.meeting_link, "public": True}]
                 if event.meeting_link else [{"type": "integration", "integration": "cal-video"}])
    return {
        "id": event.id, "slug": event.slug, "title": event.slug.replace("-", " ").title(),
        "lengthInMinutes": event.length_min, "description": "", "locations": locations,
        **({"lengthInMinutesOptions": list(event.length_options_min)}
           if event.length_options_min else {}),
        "bookingFields": [*_SYSTEM_FIELDS, *custom],
        "minimumBookingNotice": event.min_notice_min,
        "beforeEventBuffer": event.buffer_before_min, "afterEventBuffer": event.buffer_after_min,
        "slotInterval": event.slot_interval_min, "ownerId": 1, "hidden": False,
        "schedulingType": "roundRobin" if event.hosts > 1 else None,
    }


def _listed(event: EventType) -> str:
    return ", ".join(str(minutes) for minutes in event.length_options_min or (event.length_min,))


def _check_responses(event: EventType, responses: dict[str, Any]) -> None:
    """Cal.com's check: every required question of the host's is answered (not empty)."""
    required = [str(f["slug"]) for f in event.booking_fields if f.get("required")]
    missing = [slug for slug in required if responses.get(slug) in (None, "", [])]
    if missing:
        raise ApiError(400, f"Missing required booking field responses: {', '.join(missing)}. "
                            f"Required booking fields are: {', '.join(required)}")


def _guest_attendee(guest: dict[str, Any], booker: dict[str, Any]) -> dict[str, Any]:
    return {"name": guest.get("name", ""), "email": guest["email"],
            "displayEmail": guest["email"], "timeZone": guest.get("timeZone", booker["timeZone"]),
            "language": guest.get("language", "en"), "absent": False}


def _matches(booking: Booking, query: dict[str, str], now: datetime) -> bool:
    if "eventTypeId" in query and booking.event.id != int(query["eventTypeId"]):
        return False
    if "afterStart" in query and booking.start < schemas.time_of(query, "afterStart"):
        return False
    if "beforeEnd" in query and booking.end > schemas.time_of(query, "beforeEnd"):
        return False
    if query.get("bookingUid", booking.uid) != booking.uid:
        return False
    email = query.get("attendeeEmail", "").lower()
    if email and booking.attendee.get("email", "").lower() != email:
        return False
    if query.get("attendeeName", booking.attendee["name"]) != booking.attendee["name"]:
        return False
    if "status" in query:
        states = {
            "upcoming": booking.live and booking.end >= now,
            "unconfirmed": booking.status == "pending" and booking.end >= now,
            "past": booking.live and booking.end < now,
            "cancelled": not booking.live,
            "recurring": False,
        }
        return any(states[s.strip()] for s in query["status"].split(","))
    return True
