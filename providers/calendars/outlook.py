"""Outlook / Microsoft 365 calendars through Microsoft Graph v1.0 (app-only, one mailbox).

Config: ``base_url`` is Graph's root (default ``https://graph.microsoft.com``; this adapter
appends ``/v1.0``), ``user`` the mailbox booked (id or userPrincipalName); the token comes from
``ms_auth.ClientCredentialsAuth``. Times go on the wire as UTC (``timeZone: "UTC"`` is always
accepted and is unambiguous across DST) and come back in UTC because every read sends
``Prefer: outlook.timezone="UTC"``; ``timezone`` (the calendar's IANA zone) only words the
local time in the event body for the mailbox owner.

- busy: ``POST /users/{user}/calendar/getSchedule``. ``scheduleItems`` with status ``busy``,
  ``tentative``, ``oof`` (and ``unknown``, to be safe) are busy; ``free`` and
  ``workingElsewhere`` are not (the person is working, just not at the office). Without
  ``scheduleItems`` the ``availabilityView`` digits are used (1-3 busy, 0 and 4 free). A
  per-schedule ``error`` is a ``ProviderError``. Windows over 31 days are asked in pieces
  (Graph refuses 62 days or more; older docs said 42).
- create: Graph ALLOWS overlapping events, so the write is guarded here. A getSchedule check
  first (busy → ``SlotTaken``), then ``POST /users/{user}/events`` with a ``transactionId``
  derived from the idempotency key (Graph de-duplicates retried creates, so this POST may be
  retried), then ``GET /users/{user}/calendarView`` for the slot, settled by ``race.settle``:
  Graph's rank is ``createdDateTime`` (server-stamped; ties: the smaller id; missing: last).
  The loser deletes its own event and raises ``SlotTaken``; two processes racing for one slot
  end with one event.
  A retried create whose first try did write finds its own event by ``transactionId``.
  Happy path: 3 Graph requests (+1 token request per hour).
- get: ``GET /users/{user}/events/{id}`` (404 → None; ``isCancelled`` → "cancelled").
- cancel: ``POST /users/{user}/events/{id}/cancel {"Comment": reason}``: the organizer's cancel,
  which sends attendees the reason (the mailbox organised the event, so it may cancel it).
- update_attendee: ``PATCH /users/{user}/events/{id} {"attendees": [...]}`` with the caller
  added (or their entry replaced): Graph sends the new attendee the invitation.
- reschedule / move: a calendarView free check (our own event excluded), ``PATCH`` the new
  start/end, then the same post-write check. A mover always yields to any overlap (it PATCHes
  its old times back and raises ``SlotTaken``): its event's ``createdDateTime`` says nothing
  about when it entered the slot, so it takes part in the race with an unknown rank (which
  loses to any rival).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import aiohttp

from slotline.providers.calendars import outlook_find, race
from slotline.providers.calendars.base import (
    Attendee,
    BookingRequest,
    BusyInterval,
    ProviderBooking,
    VendorBooking,
)
from slotline.providers.errors import ProviderError, SlotTaken
from slotline.providers.http import (
    AuthSource,
    HttpAdapter,
    HttpResponse,
    JsonHttpClient,
    RetryPolicy,
    vendor_message,
)

logger = logging.getLogger(__name__)

PROVIDER = "outlook"
DEFAULT_BASE_URL = "https://graph.microsoft.com"
PREFER_UTC = {"Prefer": 'outlook.timezone="UTC"'}
_BUSY_STATUSES = frozenset({"busy", "tentative", "oof", "unknown"})
_VIEW_FREE_DIGITS = frozenset("04")  # availabilityView: 0 free, 4 working elsewhere
_VIEW_INTERVAL_MIN = 30  # Graph's default slot length; only used without scheduleItems
_SCHEDULE_SPAN = timedelta(days=31)  # under getSchedule's limit (62 days; 42 in older docs)
_DEFAULT_RETRY = RetryPolicy()
_VIEW_PAGE = 100  # calendarView's page size is 10 by default; one slot never holds 100 events
_UTC_NAMES = frozenset({"utc", "etc/utc", "gmt", "etc/gmt", "tzone://microsoft/utc"})
# transactionIds are GUIDs in Graph's examples: a name-based UUID keeps the key's stability.
_TRANSACTION_NAMESPACE = uuid.UUID("9b0f6a1e-5d3c-4c8e-9a57-0d6f3c2b7e41")


# ---- wire codec (no I/O) ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GraphEvent:
    """The parts of a Graph ``event`` the booking guard needs."""

    id: str
    start: datetime
    end: datetime
    created: datetime | None  # None: Graph did not say
    show_as: str
    cancelled: bool
    transaction_id: str

    def blocks(self, start: datetime, end: datetime) -> bool:
        """Does this event make [start, end) busy?"""
        return (
            not self.cancelled
            and self.show_as in _BUSY_STATUSES
            and self.start < end
            and start < self.end
        )

    def claim(self, start: datetime, end: datetime, *, moved: bool = False) -> race.Claim:
        """Graph's ranking: ``createdDateTime``; an event just moved here has no known rank."""
        return race.Claim(self.id, None if moved else self.created, self.blocks(start, end))

    def booking(self) -> ProviderBooking:
        return ProviderBooking(
            self.id, self.start, self.end, "cancelled" if self.cancelled else "confirmed"
        )


def transaction_id(idempotency_key: str) -> str:
    return str(uuid.uuid5(_TRANSACTION_NAMESPACE, idempotency_key))


def wire_time(moment: datetime) -> dict[str, str]:
    """A ``dateTimeTimeZone`` in UTC."""
    return {"dateTime": moment.astimezone(UTC).replace(tzinfo=None).isoformat(), "timeZone": "UTC"}


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _zone(name: str) -> ZoneInfo | None:
    if name.lower() in _UTC_NAMES:
        return None
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError, OSError):  # ZoneInfoNotFoundError is a KeyError
        # A Windows zone name: the Prefer header asking for UTC was not honoured.
        raise ProviderError(PROVIDER, f"unexpected time zone {name!r} in a Graph answer") from None


def parse_time(value: object) -> datetime:
    """A ``dateTimeTimeZone`` (or an ISO timestamp) as an aware UTC datetime."""
    zone_name = "UTC"
    if isinstance(value, Mapping):
        zone_name = str(value.get("timeZone") or "UTC")
        value = value.get("dateTime")
    if not isinstance(value, str):
        raise ProviderError(PROVIDER, f"expected a date-time, got {value!r}")
    try:
        moment = datetime.fromisoformat(value)  # 3.11+: Graph's 7 fractional digits are fine
    except ValueError:
        raise ProviderError(PROVIDER, f"unreadable date-time {value!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=_zone(zone_name) or UTC)
    return moment.astimezone(UTC)


def parse_event(body: object) -> GraphEvent:
    if not isinstance(body, Mapping) or not isinstance(body.get("id"), str):
        raise ProviderError(PROVIDER, "an event without an id in a Graph answer")
    created = body.get("createdDateTime")
    return GraphEvent(
        id=body["id"],
        start=parse_time(body.get("start")),
        end=parse_time(body.get("end")),
        # No createdDateTime: ranks last (race.py), so a guard never keeps an event it cannot order.
        created=parse_time(created) if created else None,
        show_as=str(body.get("showAs") or "busy").lower(),
        cancelled=body.get("isCancelled") is True,
        transaction_id=str(body.get("transactionId") or ""),
    )


def busy_from_schedule(
    info: Mapping[str, Any], window_start: datetime, interval_min: int = _VIEW_INTERVAL_MIN
) -> list[BusyInterval]:
    """Busy intervals of one ``scheduleInformation`` (see the module doc for the statuses)."""
    error = info.get("error")
    if isinstance(error, Mapping):
        code = error.get("responseCode") or "error"
        raise ProviderError(PROVIDER, f"getSchedule: {code}: {vendor_message(error, '')}")
    items = info.get("scheduleItems")
    if isinstance(items, list):
        return [
            BusyInterval(parse_time(item.get("start")), parse_time(item.get("end")))
            for item in items
            if isinstance(item, Mapping)
            and str(item.get("status") or "unknown").lower() in _BUSY_STATUSES
        ]
    view = info.get("availabilityView")
    busy: list[BusyInterval] = []
    if isinstance(view, str):
        step = timedelta(minutes=interval_min)
        for index, digit in enumerate(view):
            if digit in _VIEW_FREE_DIGITS:
                continue
            start = window_start + index * step
            if busy and busy[-1].end == start:
                busy[-1] = BusyInterval(busy[-1].start, start + step)
            else:
                busy.append(BusyInterval(start, start + step))
    return busy


def event_body(request: BookingRequest, timezone: str) -> dict[str, Any]:
    """The ``POST /events`` body for a booking."""
    attendee = request.attendee
    title = request.title or "Appointment"
    local = request.start.astimezone(ZoneInfo(timezone)).strftime("%a %d %b %Y %H:%M")
    lines = [f"Booked by phone with Slotline for {local} ({timezone})."]
    lines += [f"Phone: {attendee.phone}"] if attendee.phone else []
    lines += [f"{key}: {value}" for key, value in request.fields.items()]
    body: dict[str, Any] = {
        "subject": f"{title} with {attendee.name}" if attendee.name else title,
        "body": {"contentType": "text", "content": "\n".join(lines)},
        "start": wire_time(request.start),
        "end": wire_time(request.end),
        "showAs": "busy",
        "transactionId": transaction_id(request.idempotency_key),
    }
    if attendee.email:
        body["attendees"] = [graph_attendee(attendee)]
    return body


def graph_attendee(attendee: Attendee) -> dict[str, Any]:
    address = {"address": attendee.email, "name": attendee.name or attendee.email}
    return {"emailAddress": address, "type": "required"}


# ---- the adapter ------------------------------------------------------------------------------


class OutlookCalendar(HttpAdapter):
    """``CalendarProvider`` + ``Rescheduler`` for one Graph mailbox; see the module doc."""

    def __init__(
        self,
        base_url: str,
        user: str,
        auth: AuthSource,
        timezone: str,
        *,
        session: aiohttp.ClientSession | None = None,
        retry: RetryPolicy = _DEFAULT_RETRY,
    ) -> None:
        root = (base_url or DEFAULT_BASE_URL).rstrip("/")
        if not root.endswith("/v1.0"):
            root += "/v1.0"
        ZoneInfo(timezone)  # fail at start-up, not at the first booking
        self.user = user
        self.timezone = timezone
        self._http = JsonHttpClient(PROVIDER, root, auth=auth, retry=retry, session=session)
        self._mailbox = f"/users/{quote(user, safe='@')}"

    # ---- CalendarProvider ---------------------------------------------------------------------

    async def busy(self, start: datetime, end: datetime) -> Sequence[BusyInterval]:
        windows: list[tuple[datetime, datetime]] = []
        cursor = start
        while cursor < end:
            windows.append((cursor, min(end, cursor + _SCHEDULE_SPAN)))
            cursor = windows[-1][1]
        parts = await asyncio.gather(*(self._schedule(a, b) for a, b in windows))
        return sorted((item for part in parts for item in part), key=lambda b: (b.start, b.end))

    async def create(self, request: BookingRequest) -> ProviderBooking:
        start, end = request.start, request.end
        busy = await self.busy(start, end)
        if any(item.start < end and start < item.end for item in busy):
            # Busy; unless it is our own event from a try whose answer was lost.
            view = await self._view(start, end)
            tx = transaction_id(request.idempotency_key)
            mine = next((e for e in view if e.transaction_id == tx and not e.cancelled), None)
            if mine is None:
                raise SlotTaken(PROVIDER, f"{_stamp(start)} is busy on the calendar")
        else:
            response = await self._http.request(
                "POST", f"{self._mailbox}/events", json=event_body(request, self.timezone),
                headers=PREFER_UTC,  # retried safely: transactionId de-duplicates it
            )  # fmt: skip
            mine = parse_event(_expect(response, (200, 201), "create event"))
            view = await self._view(start, end)
        claims = [event.claim(start, end) for event in view]
        verdict = race.settle(mine.id, claims, written=mine.claim(start, end))
        if verdict is not race.Verdict.WON:
            logger.info("outlook: lost the race for %s; deleting event %s", _stamp(start), mine.id)
            await self._delete(mine.id)
            raise SlotTaken(PROVIDER, f"{_stamp(start)} was booked by someone else first")
        if rivals := race.rivals(mine.id, claims):
            logger.info("outlook: won the race for %s (%d later rivals)", _stamp(start),
                        len(rivals))  # fmt: skip
        return mine.booking()

    async def get(self, provider_booking_id: str) -> ProviderBooking | None:
        event = await self._event(provider_booking_id)
        return None if event is None else event.booking()

    async def cancel(self, provider_booking_id: str, reason: str = "") -> ProviderBooking:
        event = await self._own(provider_booking_id)
        if not event.cancelled:
            response = await self._http.request(
                "POST", f"{self._event_path(event.id)}/cancel", json={"Comment": reason}
            )
            if response.status != 404:  # 404: gone already (a retried cancel's first try)
                _expect(response, (200, 202, 204), "cancel event")
        return ProviderBooking(event.id, event.start, event.end, "cancelled")

    # ---- AttendeeUpdater ----------------------------------------------------------------------

    async def update_attendee(self, provider_booking_id: str, attendee: Attendee) -> None:
        """The caller as a required attendee (Graph invites them); the event's other attendees
        kept. Graph's attendees need an address: a name alone changes nothing here."""
        response = await self._http.request(
            "GET", self._event_path(provider_booking_id), headers=PREFER_UTC
        )
        if response.status == 404:
            raise ProviderError(PROVIDER, f"no event {provider_booking_id!r} in the mailbox")
        event = _expect(response, (200,), "get event")
        if not isinstance(event, Mapping) or event.get("isCancelled"):
            raise ProviderError(PROVIDER, f"event {provider_booking_id} is cancelled")
        if not attendee.email:
            return
        wanted = attendee.email.lower()
        others = [
            item for item in event.get("attendees") or []
            if isinstance(item, Mapping)
            and str((item.get("emailAddress") or {}).get("address", "")).lower() != wanted
        ]
        body = {"attendees": [*others, graph_attendee(attendee)]}
        patched = await self._http.request(
            "PATCH", self._event_path(provider_booking_id), json=body, headers=PREFER_UTC
        )
        _expect(patched, (200,), "update event attendees")

    # ---- Rescheduler --------------------------------------------------------------------------

    async def reschedule(
        self, provider_booking_id: str, request: BookingRequest, reason: str = ""
    ) -> ProviderBooking:
        """Move the event to ``request``'s times (Graph keeps the id; ``reason`` is not sent:
        an event update has no field for it)."""
        return await self.move(provider_booking_id, request.start, request.end)

    async def move(
        self, provider_booking_id: str, start: datetime, end: datetime
    ) -> ProviderBooking:
        old = await self._own(provider_booking_id)
        if old.cancelled:
            raise ProviderError(PROVIDER, f"event {old.id} is cancelled; it cannot be moved")
        view = await self._view(start, end)
        if race.rivals(old.id, (event.claim(start, end) for event in view)):
            raise SlotTaken(PROVIDER, f"{_stamp(start)} is busy on the calendar")
        moved = await self._patch(old.id, start, end)
        claims = [e.claim(start, end, moved=e.id == old.id) for e in await self._view(start, end)]
        written = moved.claim(start, end, moved=True)
        if race.settle(old.id, claims, written=written) is not race.Verdict.WON:
            logger.info("outlook: %s was taken while moving %s; moving it back", start, old.id)
            await self._patch(old.id, old.start, old.end)
            raise SlotTaken(PROVIDER, f"{_stamp(start)} was booked by someone else first")
        return moved.booking()

    # ---- requests -----------------------------------------------------------------------------

    async def _schedule(self, start: datetime, end: datetime) -> list[BusyInterval]:
        body = {
            "schedules": [self.user],
            "startTime": wire_time(start),
            "endTime": wire_time(end),
            "availabilityViewInterval": _VIEW_INTERVAL_MIN,
        }
        response = await self._http.request(
            "POST", f"{self._mailbox}/calendar/getSchedule", json=body, headers=PREFER_UTC
        )
        answer = _expect(response, (200,), "getSchedule")
        infos = answer.get("value") if isinstance(answer, Mapping) else None
        if not isinstance(infos, list) or not infos:
            raise ProviderError(PROVIDER, "getSchedule answered without a schedule")
        wanted = self.user.lower()
        info = next(
            (i for i in infos if str(i.get("scheduleId", "")).lower() == wanted), infos[0]
        )
        return busy_from_schedule(info, start)

    # ---- BookingFinder: a caller's events, whoever made them (outlook_find) -------------------

    async def find_bookings(
        self, start: datetime, end: datetime, *, phone: str = "", email: str = ""
    ) -> list[VendorBooking]:
        if not (phone or email):
            return []
        found: list[VendorBooking] = []
        for page in range(outlook_find.MAX_PAGES):
            value, more = await self._calendar_view(
                start, end, outlook_find.PAGE_SIZE, skip=page * outlook_find.PAGE_SIZE
            )
            found += outlook_find.matching(value, start, parse_time, phone=phone, email=email)
            if not more:
                break
        return sorted(found, key=lambda booking: booking.start)

    async def _view(self, start: datetime, end: datetime) -> list[GraphEvent]:
        value, _ = await self._calendar_view(start, end, _VIEW_PAGE)
        return [parse_event(item) for item in value]

    async def _calendar_view(
        self, start: datetime, end: datetime, top: int, *, skip: int | None = None
    ) -> tuple[list[Any], bool]:
        """One page of the mailbox's ``calendarView`` (times in UTC): its raw events, and
        whether another page follows."""
        params = {"startDateTime": _stamp(start), "endDateTime": _stamp(end), "$top": str(top)}
        if skip is not None:
            params["$skip"] = str(skip)
        response = await self._http.request(
            "GET", f"{self._mailbox}/calendarView", params=params, headers=PREFER_UTC
        )
        answer = _expect(response, (200,), "calendarView")
        value = answer.get("value") if isinstance(answer, Mapping) else None
        if not isinstance(value, list):
            raise ProviderError(PROVIDER, "calendarView answered without a value list")
        return value, "@odata.nextLink" in answer

    async def _event(self, event_id: str) -> GraphEvent | None:
        response = await self._http.request(
            "GET", self._event_path(event_id), headers=PREFER_UTC
        )
        if response.status == 404:
            return None
        return parse_event(_expect(response, (200,), "get event"))

    async def _own(self, event_id: str) -> GraphEvent:
        event = await self._event(event_id)
        if event is None:
            raise ProviderError(PROVIDER, f"no event {event_id!r} in the mailbox")
        return event

    async def _patch(self, event_id: str, start: datetime, end: datetime) -> GraphEvent:
        body = {"start": wire_time(start), "end": wire_time(end)}
        response = await self._http.request(
            "PATCH", self._event_path(event_id), json=body, headers=PREFER_UTC
        )
        return parse_event(_expect(response, (200,), "update event"))

    async def _delete(self, event_id: str) -> None:
        response = await self._http.request("DELETE", self._event_path(event_id))
        if response.status != 404:
            _expect(response, (200, 202, 204), "delete event")

    def _event_path(self, event_id: str) -> str:
        return f"{self._mailbox}/events/{quote(event_id, safe='')}"


def _expect(response: HttpResponse, ok: tuple[int, ...], what: str) -> Any:
    if response.status not in ok:
        raise ProviderError(
            PROVIDER, f"{what} → {response.status}: {vendor_message(response.body, response.text)}"
        )
    return response.body
