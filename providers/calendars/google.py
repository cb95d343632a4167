"""Google Calendar v3 as a Slotline calendar: free/busy, write-once bookings, move and cancel.

``base_url`` is the API *root* (default ``https://www.googleapis.com``, or an emulator's
origin); the adapter appends ``/calendar/v3`` (a ``base_url`` already ending in
``/calendar/v3`` is taken as it is). Credentials come from an ``AuthSource``
(``google_auth.ServiceAccountAuth`` or ``RefreshTokenAuth``); a 401 refreshes the token once.
Google's rate limits (403 ``rateLimitExceeded``/``userRateLimitExceeded``) are retried like a
429 (``is_rate_limited``).

Google ALLOWS overlapping events, so a booking is guarded here, in three steps:
1. ``POST /freeBusy`` for the slot: busy → ``SlotTaken`` (unless the busy time is this very
   booking, written by an earlier try with the same idempotency key: then that is returned).
2. ``POST .../events?sendUpdates=all`` with a client-chosen ``id`` derived from the idempotency
   key (base32hex of its SHA-256). Google answers a second insert of that id with 409, so the
   insert is safely retried (a dropped response, a 503): on 409 we GET the id — the same booking.
3. Settle: list the events overlapping the slot and let ``race.settle`` decide (earliest
   rank wins, ties by id; transparent and cancelled events ignored). Lost → ours is deleted
   and ``SlotTaken`` raised. Google's rank is ``updated``, server-stamped: the moment an event
   came to occupy the slot (its insert, or its move for a rescheduled event; ``created`` would
   let an old event moved in late win). A missing ``updated`` ranks last.

Requests (happy path, plus one token request per token lifetime): busy 1; create 3 (freeBusy,
insert, list); get 1; cancel 2 (GET for the times — Google only guarantees the id of a deleted
event — then DELETE); reschedule 4 (GET, list, PATCH, list). Cancel is a DELETE with
``sendUpdates=all``, Google's own way to cancel (the event becomes ``status: cancelled``;
attendees get the cancellation); Google's delete carries no reason, so ``reason`` is not sent.
A reschedule appends its reason to the description.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import aiohttp

from slotline.providers.calendars import google_find, race
from slotline.providers.calendars.base import (
    Attendee,
    BookingRequest,
    BookingStatus,
    BusyInterval,
    ProviderBooking,
    VendorBooking,
)
from slotline.providers.errors import ConfigError, ProviderError, SlotTaken
from slotline.providers.http import (
    AuthSource,
    HttpAdapter,
    HttpResponse,
    JsonHttpClient,
    RetryPolicy,
    vendor_message,
)

PROVIDER = "google"
DEFAULT_BASE_URL = "https://www.googleapis.com"
API_PATH = "/calendar/v3"
DEFAULT_RETRY = RetryPolicy()
_PAGE_SIZE = "250"  # events overlapping one slot: one page in practice
_RETRYABLE_REASONS = frozenset({"backendError", "internalError"})  # freeBusy per-calendar errors
# Google answers rate limits with 403 (or 429) and one of these reasons; other 403s (no access,
# forbiddenForServiceAccounts, the daily quotaExceeded) are configuration problems.
_RATE_LIMIT_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded"})

Event = Mapping[str, Any]


def event_id_for(idempotency_key: str) -> str:
    """The event id for a key: base32hex (a-v, 0-9), 52 characters, the same in every process."""
    digest = hashlib.sha256(idempotency_key.encode("utf-8")).digest()
    return base64.b32hexencode(digest).decode("ascii").rstrip("=").lower()


class GoogleCalendar(HttpAdapter):
    """One Google calendar (``calendar_id``: ``primary`` or an address); see the module doc.

    ``timezone`` (IANA) is written on the events Slotline creates. ``invite_attendees=False``
    keeps the attendee out of the guest list (their address goes in the description): a
    service account without domain-wide delegation may not invite guests.
    """

    def __init__(
        self,
        base_url: str,
        calendar_id: str,
        auth: AuthSource,
        timezone: str,
        *,
        session: aiohttp.ClientSession | None = None,
        retry: RetryPolicy = DEFAULT_RETRY,
        invite_attendees: bool = True,
    ) -> None:
        root = (base_url or DEFAULT_BASE_URL).rstrip("/")
        if not root.endswith(API_PATH):
            root += API_PATH
        try:
            self._zone = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError("calendars", "timezone", f"unknown IANA zone {timezone!r}") from None
        self.calendar_id = calendar_id
        self.timezone = timezone
        self._invite = invite_attendees
        self._events = f"/calendars/{quote(calendar_id, safe='')}/events"
        self._http = JsonHttpClient(
            PROVIDER, root, auth=auth, retry=retry, session=session,
            is_rate_limited=is_rate_limited,
        )

    # ---- CalendarProvider ---------------------------------------------------------------------

    async def busy(self, start: datetime, end: datetime) -> Sequence[BusyInterval]:
        body = {"timeMin": _utc(start), "timeMax": _utc(end), "timeZone": "UTC",
                "items": [{"id": self.calendar_id}]}
        response = await self._http.request("POST", "/freeBusy", json=body)
        if response.status != 200:
            raise _failure(response, "POST /freeBusy")
        calendars = response.body.get("calendars", {}) if isinstance(response.body, dict) else {}
        entry = calendars.get(self.calendar_id)
        if not isinstance(entry, dict):
            raise ProviderError(PROVIDER, f"freeBusy has no answer for {self.calendar_id!r}")
        errors = entry.get("errors") or []
        if errors:
            reasons = sorted({str(e.get("reason", "unknown")) for e in errors})
            raise ProviderError(
                PROVIDER,
                f"freeBusy for {self.calendar_id!r}: {', '.join(reasons)} "
                "(is the calendar shared with these credentials?)",
                retryable=set(reasons) <= _RETRYABLE_REASONS,
            )
        return [BusyInterval(_parse(b["start"]), _parse(b["end"])) for b in entry.get("busy", [])]

    async def create(self, request: BookingRequest) -> ProviderBooking:
        event_id = event_id_for(request.idempotency_key)
        if await self.busy(request.start, request.end):
            event = await self._fetch(event_id)  # our own booking from an earlier try?
            if event is None or event.get("status") == "cancelled":
                raise SlotTaken(PROVIDER, f"{_utc(request.start)} is busy on {self.calendar_id}")
        else:
            event = await self._insert(event_id, request)
        if await self._lost(event, request.start, request.end):
            await self._delete(event_id)
            raise SlotTaken(PROVIDER, f"{_utc(request.start)} was taken by a concurrent booking")
        return _booking(event)

    async def get(self, provider_booking_id: str) -> ProviderBooking | None:
        event = await self._fetch(provider_booking_id)
        return None if event is None else _booking(event)

    async def cancel(self, provider_booking_id: str, reason: str = "") -> ProviderBooking:
        event = await self._require(provider_booking_id)
        if event.get("status") != "cancelled":
            await self._delete(provider_booking_id)
        start, end = _span(event)
        return ProviderBooking(provider_booking_id, start, end, "cancelled")

    # ---- Rescheduler --------------------------------------------------------------------------

    async def reschedule(
        self, provider_booking_id: str, request: BookingRequest, reason: str = ""
    ) -> ProviderBooking:
        event = await self._require(provider_booking_id)
        if event.get("status") == "cancelled":
            raise ProviderError(PROVIDER, f"event {provider_booking_id} is cancelled")
        if _span(event) == (request.start, request.end):
            return _booking(event)  # already there (a retried reschedule)
        others = await self._overlapping(request.start, request.end)
        if race.rivals(provider_booking_id, map(_claim, others)):
            raise SlotTaken(PROVIDER, f"{_utc(request.start)} is busy on {self.calendar_id}")
        original = {k: event[k] for k in ("start", "end", "description") if k in event}
        changes: dict[str, Any] = {"start": self._when(request.start),
                                   "end": self._when(request.end)}
        if reason:
            changes["description"] = f"{event.get('description', '')}\n\nRescheduled: {reason}"
        moved = await self._patch(provider_booking_id, changes)
        if await self._lost(moved, request.start, request.end):
            await self._patch(provider_booking_id, original)
            raise SlotTaken(PROVIDER, f"{_utc(request.start)} was taken by a concurrent booking")
        return _booking(moved)

    # ---- AttendeeUpdater ----------------------------------------------------------------------

    async def update_attendee(self, provider_booking_id: str, attendee: Attendee) -> None:
        """PATCH the event's attendees, the name as the guest's ``displayName`` (Google e-mails
        the new guest: ``sendUpdates=all``); a calendar that does not invite writes the address
        into the description instead."""
        event = await self._require(provider_booking_id)
        if event.get("status") == "cancelled":
            raise ProviderError(PROVIDER, f"event {provider_booking_id} is cancelled")
        changes: dict[str, Any] = {}
        if attendee.email and self._invite:
            guests = [g for g in event.get("attendees") or [] if isinstance(g, dict)
                      and str(g.get("email", "")).lower() != attendee.email.lower()]
            changes["attendees"] = [*guests, _guest(attendee)]
        elif attendee.email:
            description = str(event.get("description", ""))
            if f"Email: {attendee.email}" not in description:
                changes["description"] = f"{description}\nEmail: {attendee.email}"
        if changes:
            await self._patch(provider_booking_id, changes)

    # ---- the requests -------------------------------------------------------------------------

    async def _insert(self, event_id: str, request: BookingRequest) -> Event:
        body = self._event_body(event_id, request)
        response = await self._http.request(
            "POST", self._events, params={"sendUpdates": "all"}, json=body
        )  # retried safely: the id de-duplicates (409)
        if response.status == 409:
            event = await self._fetch(event_id)
            if event is None or event.get("status") == "cancelled":
                raise SlotTaken(PROVIDER, "an earlier booking with this key was cancelled")
            return event
        if response.status != 200 or not isinstance(response.body, dict):
            raise _failure(response, "POST events")
        return response.body

    async def _fetch(self, event_id: str) -> Event | None:
        response = await self._http.request("GET", f"{self._events}/{event_id}")
        if response.status in (404, 410):
            return None
        if response.status != 200 or not isinstance(response.body, dict):
            raise _failure(response, "GET event")
        return response.body

    async def _require(self, event_id: str) -> Event:
        event = await self._fetch(event_id)
        if event is None:
            raise ProviderError(PROVIDER, f"no event {event_id} on {self.calendar_id}")
        return event

    async def _delete(self, event_id: str) -> None:
        response = await self._http.request(
            "DELETE", f"{self._events}/{event_id}", params={"sendUpdates": "all"}
        )  # 410 = already deleted (a retried delete): done
        if response.status not in (200, 204, 410):
            raise _failure(response, "DELETE event")

    async def _patch(self, event_id: str, changes: Mapping[str, Any]) -> Event:
        response = await self._http.request(
            "PATCH", f"{self._events}/{event_id}", params={"sendUpdates": "all"}, json=changes
        )
        if response.status != 200 or not isinstance(response.body, dict):
            raise _failure(response, "PATCH event")
        return response.body

    # ---- BookingFinder: a caller's events, whoever made them (google_find) --------------------

    async def find_bookings(
        self, start: datetime, end: datetime, *, phone: str = "", email: str = ""
    ) -> list[VendorBooking]:
        if not (phone or email):
            return []
        events = await self._listed(google_find.find_params(start, end, phone=phone,
                                                            email=email))
        found = google_find.matching(events, start, phone=phone, email=email)
        return sorted(found, key=lambda booking: booking.start)

    async def _overlapping(self, start: datetime, end: datetime) -> list[Event]:
        """Events with end > start and start < end (Google's timeMin/timeMax semantics)."""
        return await self._listed({"timeMin": _utc(start), "timeMax": _utc(end),
                                   "singleEvents": "true", "maxResults": _PAGE_SIZE})

    async def _listed(self, params: dict[str, str]) -> list[Event]:
        """Every page of an ``events.list``."""
        events: list[Event] = []
        while True:
            response = await self._http.request("GET", self._events, params=params)
            if response.status != 200 or not isinstance(response.body, dict):
                raise _failure(response, "GET events")
            events.extend(response.body.get("items", []))
            token = response.body.get("nextPageToken")
            if not token:
                return events
            params = {**params, "pageToken": str(token)}

    async def _lost(self, ours: Event, start: datetime, end: datetime) -> bool:
        """Did another event take [start, end) before ours? (the settle step, module doc)"""
        events = await self._overlapping(start, end)
        verdict = race.settle(str(ours["id"]), map(_claim, events), written=_claim(ours))
        return verdict is not race.Verdict.WON

    # ---- shapes -------------------------------------------------------------------------------

    def _when(self, moment: datetime) -> dict[str, str]:
        return {"dateTime": moment.astimezone(self._zone).isoformat(), "timeZone": self.timezone}

    def _event_body(self, event_id: str, request: BookingRequest) -> dict[str, Any]:
        attendee = request.attendee
        lines = [f"{k}: {v}" for k, v in request.fields.items()]
        if attendee.phone:
            lines.insert(0, f"Phone: {attendee.phone}")
        if attendee.email and not self._invite:
            lines.insert(0, f"Email: {attendee.email}")
        body: dict[str, Any] = {
            "id": event_id,
            "summary": request.title or (f"Appointment with {attendee.name}"
                                         if attendee.name else "Appointment"),
            "description": "\n".join(["Booked by Slotline.", *lines]),
            "start": self._when(request.start),
            "end": self._when(request.end),
        }
        if attendee.email and self._invite:
            body["attendees"] = [_guest(attendee)]
        return body


def _guest(attendee: Attendee) -> dict[str, str]:
    guest = {"email": attendee.email}
    if attendee.name:
        guest["displayName"] = attendee.name
    return guest


def _blocks(event: Event) -> bool:
    """Does this event make its time busy? (as freeBusy counts it)"""
    return event.get("status") != "cancelled" and event.get("transparency") != "transparent"


def _claim(event: Event) -> race.Claim:
    """Google's ranking: ``updated`` is when the event came to occupy its time (module doc)."""
    updated = event.get("updated")
    since = _parse(updated) if isinstance(updated, str) else None
    return race.Claim(str(event.get("id", "")), since, _blocks(event))


def _booking(event: Event) -> ProviderBooking:
    start, end = _span(event)
    status: BookingStatus = "cancelled" if event.get("status") == "cancelled" else "confirmed"
    return ProviderBooking(str(event["id"]), start, end, status)


def _span(event: Event) -> tuple[datetime, datetime]:
    try:
        start, end = (_parse(event[k]["dateTime"]) for k in ("start", "end"))
    except (KeyError, TypeError, ValueError):
        raise ProviderError(
            PROVIDER, f"event {event.get('id')} has no start/end date-time (all-day or deleted)"
        ) from None
    return start, end


def _parse(value: str) -> datetime:
    """An RFC 3339 time from Google, as UTC."""
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError(f"no offset in {value!r}")
    return moment.astimezone(UTC)


def _utc(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("calendar times must be timezone-aware")
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def is_rate_limited(response: HttpResponse) -> bool:
    """Google's "slow down": ``error.errors[].reason`` ``rateLimitExceeded`` or
    ``userRateLimitExceeded``, or ``error.status`` ``RESOURCE_EXHAUSTED``, whatever the status
    (403 for most of them). ``JsonHttpClient`` then retries it like a 429."""
    error = response.body.get("error") if isinstance(response.body, dict) else None
    if not isinstance(error, dict):
        return False
    if error.get("status") == "RESOURCE_EXHAUSTED":
        return True
    items = error.get("errors")
    return isinstance(items, list) and any(
        isinstance(item, dict) and item.get("reason") in _RATE_LIMIT_REASONS for item in items
    )


def _failure(response: HttpResponse, what: str) -> ProviderError:
    message = vendor_message(response.body, response.text)
    if response.status == 404:
        message += " (is the calendar id right and shared with these credentials?)"
    return ProviderError(PROVIDER, f"{what} → {response.status}: {message}")
