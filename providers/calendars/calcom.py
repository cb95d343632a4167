"""Cal.com (API v2) as a Slotline calendar: vendor-computed slots, write-once bookings, one-write
reschedules.

Cal.com owns the booking rules (hours, minimum notice, booking window, buffers, limits, team
assignment), so this adapter is a ``SlotSource``: ``free_slots`` returns Cal.com's own slots
(``GET /v2/slots``) and ``busy`` returns nothing — Cal.com's slots are authoritative and a
busy list could only be a partial copy of its calendars. Slot length: a fixed-length event type
books its own length, and a ``duration_min`` that differs is logged once (Cal.com would book the
event type's length). A variable-length one (``lengthInMinutesOptions``, "multiple durations")
books the length the booking action asks for: slots are searched with ``duration``, held with
``slotDuration`` and booked with ``lengthInMinutes`` (the request's end minus its start); a
length it does not offer is refused before any write (``ProviderError`` naming the options —
start-up refuses such a booking action already, ``agent.booking.vendor_rules``).

Write once (``create``), per request ``idempotency_key``:
1. ``POST /v2/slots/reservations`` holds the time (5 min) so other bookers — Cal.com's own booking
   page reserves on selection too — see it taken. Refused because someone else holds it →
   ``SlotTaken``; because it is already booked → maybe by us (a retried create): look it up and
   return ours; if not ours, step 2 decides (a team event may still have a free host). A
   transient failure only costs the hold: booking goes on without one (the booking itself is the
   authority). A hold is remembered per key, so a retried create reuses it instead of colliding
   with itself.
2. ``POST /v2/bookings`` (never retried blindly) with the key in ``metadata`` and the hold's
   ``reservedSlotUid``. A 400 "already has booking" or an unknown outcome (5xx, dropped
   connection, timeout) → ``GET /v2/bookings`` around that start: a live booking carrying our
   key is returned (one booking, however often the create is retried); otherwise ``SlotTaken``
   (400) or the original retryable error (unknown outcome).
Too soon / too far ahead / in the past → a non-retryable ``ProviderError`` saying so; 404 → a
``ProviderError`` naming the event type id (configuration). 401/403 → ``ProviderAuthError``,
429/5xx on reads → retried, both by ``JsonHttpClient``.

Before the first booking (at start-up: ``prepare``), the event type is read once
(``GET /v2/event-types/{id}``, ``calcom_fields``): its length or lengths (see above) and its
custom booking questions. Each booking
answers them in ``bookingFieldsResponses`` from the flow's variables of the same slug (or as the
calendar's ``fields`` setting maps them), and a ``guests`` variable adds extra attendees
(``guests``). ``required_variables`` tells start-up which variables a flow must be able to set.

One booking costs 2 requests (reservation + booking) when all goes well; 3 when a lookup is
needed. The booking id Slotline keeps is Cal.com's ``uid``. Status: accepted and pending →
confirmed (a pending booking awaiting the host's approval still holds the time), cancelled and
rejected → cancelled. A reschedule makes a NEW booking (new uid); that one is returned.

After booking, the v2 API cannot change the booker's own name or e-mail (no attendee edit
endpoint); it can add guests (``POST /v2/bookings/{uid}/guests``, 2024-08-13), and Cal.com
sends a new guest the invitation. So an e-mail the caller gives after booking becomes a guest
of the booking (``update_attendee``); a name given later stays in Slotline's own record.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import aiohttp

from slotline.providers.calendars import calcom_fields as event_types
from slotline.providers.calendars import calcom_find
from slotline.providers.calendars import calcom_wire as wire
from slotline.providers.calendars.base import (
    Attendee,
    BookingRequest,
    BusyInterval,
    ProviderBooking,
    VendorBooking,
)
from slotline.providers.calendars.calcom_fields import EventTypeFacts
from slotline.providers.calendars.calcom_wire import CalcomBooking, Refusal, Reservation
from slotline.providers.errors import ProviderError, SlotTaken
from slotline.providers.http import (
    HttpAdapter,
    HttpResponse,
    JsonHttpClient,
    RetryPolicy,
    StaticAuth,
    vendor_message,
)

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.cal.com"
_DEFAULT_RETRY = RetryPolicy()
_HOLDS_KEPT = 256  # remembered reservations (one per booking in flight); oldest forgotten first
_HOLD_MARGIN_S = 10.0  # a hold about to lapse is not worth reusing


class CalcomCalendar(HttpAdapter):
    """One Cal.com event type. See the module doc for the write-once protocol."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        event_type_id: int,
        *,
        session: aiohttp.ClientSession | None = None,
        retry: RetryPolicy = _DEFAULT_RETRY,
        fields: Mapping[str, str] | None = None,
    ) -> None:
        root = (base_url or DEFAULT_BASE_URL).rstrip("/")
        if root.endswith("/v2"):  # the vendor root is wanted; tolerate the API's own URL
            root = root[: -len("/v2")]
        self.event_type_id = event_type_id
        self._http = JsonHttpClient(
            wire.PROVIDER, root, auth=StaticAuth(f"Bearer {api_key}"), retry=retry, session=session
        )
        self._holds: OrderedDict[str, tuple[Reservation, float]] = OrderedDict()  # → expiry
        self._warned_length = False
        self.fields = dict(fields or {})  # booking field slug → flow variable (else the slug)
        self._facts: EventTypeFacts | None = None
        self._unreadable = False  # a team event type: its settings are not the key owner's

    # ---- the event type's own settings ---------------------------------------------------------

    async def prepare(self) -> EventTypeFacts | None:
        """Read the event type (its length and booking questions); once, then remembered.

        ``GET /v2/event-types/{id}`` knows the API key owner's own event types only; a 404
        there for an event type that has slots (a team's) is logged and booking goes on with
        the ``fields`` mapping alone (None). An event type with no slots either is unknown:
        ``ProviderError`` naming it."""
        if self._facts is None and not self._unreadable:
            path = event_types.event_type_path(self.event_type_id)
            response = await self._call("GET", path, event_types.EVENT_TYPES_VERSION)
            if response.status == 404 and await self._has_slots():
                self._unreadable = True
                logger.warning(
                    "Cal.com event type %s: its settings cannot be read with this API key (a "
                    "team event type?); its booking questions are answered from "
                    "calendars.*.fields only, and not checked at start-up", self.event_type_id,
                )
                return None
            if response.status != 200:
                raise self._refused(f"GET {path}", response)
            self._facts = event_types.parse_event_type(response.body)
        return self._facts

    async def _has_slots(self) -> bool:
        """Whether ``GET /v2/slots`` knows the event type (it answers for team ones too)."""
        now = datetime.now(UTC)
        response = await self._call(
            "GET", "/v2/slots", wire.SLOTS_VERSION,
            params=wire.slots_params(self.event_type_id, now, now + timedelta(days=1), "UTC"),
        )
        return response.status == 200

    @property
    def length_min(self) -> int | None:
        """The event type's (default) length, once ``prepare`` has read it."""
        return self._facts.length_min if self._facts is not None else None

    @property
    def length_options_min(self) -> tuple[int, ...]:
        """The lengths a variable-length event type offers; () for a fixed-length one, or
        before ``prepare`` has read it."""
        return self._facts.length_options_min if self._facts is not None else ()

    def _chosen_length(self, minutes: int) -> int | None:
        """``minutes`` to send as the chosen length (variable-length types only), else None."""
        options = self.length_options_min
        if not options:
            return None
        if minutes not in options:
            listed = ", ".join(str(item) for item in options)
            raise ProviderError(
                wire.PROVIDER,
                f"event type {self.event_type_id} offers {listed} min, not {minutes}: set the "
                "booking action's duration_min to one of them",
            )
        return minutes

    def required_variables(self) -> dict[str, str]:
        """Each required custom booking question (slug) → the flow variable that answers it.
        Empty until ``prepare`` has read the event type."""
        if self._facts is None:
            return {}
        return {
            slug: event_types.variable_for(slug, self.fields)
            for slug in self._facts.required_slugs
        }

    # ---- availability ------------------------------------------------------------------------

    async def busy(self, start: datetime, end: datetime) -> list[BusyInterval]:
        """Always empty: Cal.com's own slots (``free_slots``) are the availability."""
        return []

    async def free_slots(
        self, start: datetime, end: datetime, duration_min: int, timezone: str
    ) -> list[BusyInterval]:
        length = self._chosen_length(duration_min)
        response = await self._call(
            "GET", "/v2/slots", wire.SLOTS_VERSION,
            params=wire.slots_params(self.event_type_id, start, end, timezone, length),
        )
        if response.status != 200:
            raise self._refused("GET /v2/slots", response)
        slots = wire.parse_slots(response.body, start, end)
        if slots and not self._warned_length:
            length_min = (slots[0].end - slots[0].start).total_seconds() / 60
            if length_min != duration_min:
                self._warned_length = True
                logger.warning(
                    "Cal.com event type %s books %g min, not the %d min asked: its length wins",
                    self.event_type_id, length_min, duration_min,
                )
        return slots

    # ---- write once --------------------------------------------------------------------------

    async def create(self, request: BookingRequest) -> ProviderBooking:
        facts = await self.prepare()  # read once; before any hold is taken
        length = self._chosen_length(round((request.end - request.start).total_seconds() / 60))
        key = request.idempotency_key
        looked_up = False
        hold = self._live_hold(key)
        if hold is None:
            hold, booked = await self._reserve(request, length)
            if booked:  # maybe by us (a retried create); else Cal.com's booking check decides
                looked_up = True
                ours = await self._find_ours(request)
                if ours is not None:
                    return ours.to_provider()
        body = wire.booking_body(
            self.event_type_id, request, hold.uid if hold else None,
            responses=event_types.field_responses(facts, request.fields, self.fields)
            if facts is not None else event_types.mapped_responses(request.fields, self.fields),
            guests=event_types.guest_emails(request.fields, request.attendee.email),
            length_min=length,
        )
        try:
            response = await self._call(
                "POST", "/v2/bookings", wire.BOOKINGS_VERSION, json=body, retry=False
            )
        except ProviderError as unknown:
            if not unknown.retryable:
                raise
            # 5xx, a dropped connection or a timeout: the booking may exist all the same.
            ours = await self._lookup_quietly(request)
            if ours is None:
                raise
            booking = ours
        else:
            if response.status in (200, 201):
                booking = wire.parse_booking(response.body)
            else:
                booking = await self._after_refusal(request, response, looked_up)
        self._holds.pop(key, None)
        return booking.to_provider()

    async def _after_refusal(
        self, request: BookingRequest, response: HttpResponse, looked_up: bool
    ) -> CalcomBooking:
        refusal = wire.classify(response.status, vendor_message(response.body, response.text))
        if refusal is Refusal.SLOT_TAKEN:
            ours = None if looked_up else await self._find_ours(request)
            if ours is not None:
                return ours
            raise self._taken(request, response)
        if refusal is Refusal.HELD:
            raise self._taken(request, response)
        raise self._refused("POST /v2/bookings", response)

    async def _reserve(
        self, request: BookingRequest, length_min: int | None
    ) -> tuple[Reservation | None, bool]:
        """(the hold or None, whether Cal.com says the time is already booked)."""
        try:
            response = await self._call(
                "POST", "/v2/slots/reservations", wire.SLOTS_VERSION,
                json=wire.reservation_body(self.event_type_id, request.start, length_min),
                retry=False,
            )
        except ProviderError as failed:
            if not failed.retryable:
                raise
            logger.info("Cal.com reservation failed (%s); booking without a hold", failed.message)
            return None, False
        if response.status in (200, 201):
            hold = wire.parse_reservation(response.body)
            expires = time.monotonic() + hold.held_s - _HOLD_MARGIN_S
            self._holds[request.idempotency_key] = (hold, expires)
            while len(self._holds) > _HOLDS_KEPT:
                self._holds.popitem(last=False)
            return hold, False
        refusal = wire.classify(response.status, vendor_message(response.body, response.text))
        if refusal is Refusal.BOOKED:
            return None, True
        if refusal in (Refusal.HELD, Refusal.SLOT_TAKEN):
            raise self._taken(request, response)
        raise self._refused("POST /v2/slots/reservations", response)

    def _live_hold(self, key: str) -> Reservation | None:
        kept = self._holds.get(key)
        if kept is None:
            return None
        hold, expires = kept
        if expires <= time.monotonic():
            del self._holds[key]
            return None
        return hold

    async def _find_ours(self, request: BookingRequest) -> CalcomBooking | None:
        response = await self._call(
            "GET", "/v2/bookings", wire.BOOKINGS_VERSION,
            params=wire.lookup_params(self.event_type_id, request.start),
        )
        if response.status != 200:
            raise self._refused("GET /v2/bookings", response)
        return wire.find_ours(wire.parse_bookings(response.body), request)

    async def _lookup_quietly(self, request: BookingRequest) -> CalcomBooking | None:
        try:
            return await self._find_ours(request)
        except ProviderError as failed:
            logger.warning("Cal.com lookup after an unknown create outcome failed: %s", failed)
            return None

    # ---- read, cancel, move ------------------------------------------------------------------

    async def get(self, provider_booking_id: str) -> ProviderBooking | None:
        booking = await self._get(provider_booking_id)
        return booking.to_provider() if booking is not None else None

    async def _get(self, uid: str) -> CalcomBooking | None:
        path = f"/v2/bookings/{quote(uid, safe='')}"
        response = await self._call("GET", path, wire.BOOKINGS_VERSION)
        if response.status == 404:
            return None
        if response.status != 200:
            raise self._refused(f"GET {path}", response)
        return wire.parse_booking(response.body)

    async def cancel(self, provider_booking_id: str, reason: str = "") -> ProviderBooking:
        path = f"/v2/bookings/{quote(provider_booking_id, safe='')}/cancel"
        # Retrying is safe: a repeated cancel is refused (400) and then read back below.
        response = await self._call(
            "POST", path, wire.BOOKINGS_VERSION, json=wire.cancel_body(reason)
        )
        if response.status in (200, 201):
            return wire.parse_booking(response.body).to_provider()
        if response.status == 400:
            current = await self._get(provider_booking_id)
            if current is not None and current.mapped_status == "cancelled":
                return current.to_provider()
        raise self._refused(f"POST {path}", response)

    async def reschedule(
        self, provider_booking_id: str, request: BookingRequest, reason: str = ""
    ) -> ProviderBooking:
        """Move a booking: Cal.com makes a NEW booking (new uid) and returns it; that is ours."""
        path = f"/v2/bookings/{quote(provider_booking_id, safe='')}/reschedule"
        try:
            response = await self._call(
                "POST", path, wire.BOOKINGS_VERSION,
                json=wire.reschedule_body(request.start, reason), retry=False,
            )
        except ProviderError as unknown:
            if not unknown.retryable:
                raise
            moved = await self._moved_quietly(provider_booking_id, request)
            if moved is None:
                raise
            return moved.to_provider()
        if response.status in (200, 201):
            return wire.parse_booking(response.body).to_provider()
        if response.status == 400:  # maybe a repeat of a move that already happened
            moved = await self._moved(provider_booking_id, request)
            if moved is not None:
                return moved.to_provider()
        message = vendor_message(response.body, response.text)
        if wire.classify(response.status, message) in (Refusal.SLOT_TAKEN, Refusal.HELD):
            raise self._taken(request, response)
        raise self._refused(f"POST {path}", response)

    async def _moved(self, uid: str, request: BookingRequest) -> CalcomBooking | None:
        """The booking ``uid`` was already moved to ``request.start``: the new booking."""
        old = await self._get(uid)
        if old is None or not old.rescheduled_to_uid:
            return None
        new = await self._get(old.rescheduled_to_uid)
        if new is None or new.start != request.start or new.mapped_status == "cancelled":
            return None
        return new

    async def _moved_quietly(self, uid: str, request: BookingRequest) -> CalcomBooking | None:
        try:
            return await self._moved(uid, request)
        except ProviderError as failed:
            logger.warning("Cal.com lookup after an unknown reschedule outcome failed: %s", failed)
            return None

    # ---- AttendeeUpdater (see the module doc) --------------------------------------------------

    async def update_attendee(self, provider_booking_id: str, attendee: Attendee) -> None:
        if not attendee.email:
            return  # a name alone: the v2 API has no way to change it
        booking = await self._get(provider_booking_id)
        if booking is None or booking.mapped_status == "cancelled":
            raise ProviderError(wire.PROVIDER, f"no live booking {provider_booking_id}")
        if attendee.email.lower() in booking.attendee_emails:
            return  # already there (the booker, or a guest from an earlier try)
        path = f"/v2/bookings/{quote(provider_booking_id, safe='')}/guests"
        # Not retried blindly: a repeat would add the guest twice; the look-up above makes a
        # later try safe.
        response = await self._call(
            "POST", path, wire.BOOKINGS_VERSION, json=wire.guests_body(attendee), retry=False
        )
        if response.status not in (200, 201):
            raise self._refused(f"POST {path}", response)

    # ---- BookingFinder: bookings made anywhere, by attendee (calcom_find) --------------------

    async def find_bookings(
        self, start: datetime, end: datetime, *, phone: str = "", email: str = ""
    ) -> list[VendorBooking]:
        if not (phone or email):
            return []
        found: list[VendorBooking] = []
        for page in range(calcom_find.MAX_PAGES):
            params = calcom_find.find_params(
                self.event_type_id, start, end, phone=phone, email=email, page=page
            )
            response = await self._call("GET", "/v2/bookings", wire.BOOKINGS_VERSION,
                                        params=params)
            if response.status != 200:
                raise self._refused("GET /v2/bookings", response)
            found += calcom_find.matching(response.body, phone=phone, email=email)
            if not calcom_find.has_next_page(response.body):
                break
        return sorted(found, key=lambda booking: booking.start)

    # ---- plumbing ----------------------------------------------------------------------------

    async def _call(
        self,
        method: str,
        path: str,
        version: str,
        *,
        json: Any = None,
        params: dict[str, str] | None = None,
        retry: bool = True,
    ) -> HttpResponse:
        return await self._http.request(
            method, path, json=json, params=params,
            headers={wire.VERSION_HEADER: version}, retry=retry,
        )

    def _taken(self, request: BookingRequest, response: HttpResponse) -> SlotTaken:
        message = vendor_message(response.body, response.text)
        return SlotTaken(wire.PROVIDER, f"{wire.utc_iso(request.start)} is taken: {message}")

    def _refused(self, what: str, response: HttpResponse) -> ProviderError:
        message = vendor_message(response.body, response.text)
        refusal = wire.classify(response.status, message)
        if refusal is Refusal.NOT_FOUND and "event type" in message.lower():
            return ProviderError(
                wire.PROVIDER,
                f"event type {self.event_type_id} not found (check calendars.*.event_type_id "
                f"and that the API key's user owns it): {what} → {message}",
            )
        if refusal is Refusal.OUT_OF_BOUNDS:
            message = (
                f"too soon or too far ahead for event type {self.event_type_id} "
                f"(minimum notice / booking window): {message}"
            )
        elif refusal is Refusal.IN_PAST:
            message = f"that time is in the past: {message}"
        return ProviderError(wire.PROVIDER, f"{what} → {response.status}: {message}")
