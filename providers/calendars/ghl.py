"""GoHighLevel (LeadConnector v2) calendar: GHL computes the slots, Slotline books them once.

GHL owns the calendar's rules (hours, slot length, notice, team availability), so this adapter
is a ``SlotSource``: ``free_slots`` asks ``GET /calendars/{id}/free-slots`` (at most 31 days per
request, so longer windows go out as concurrent pieces) and remembers each offered slot's exact
string, because ``POST /calendars/events/appointments`` wants ``startTime`` back as offered.

``busy`` answers the live appointments of this calendar in the window (``GET /calendars/events``).
It is the generic engine path only: free-slots stays authoritative (it also knows blocked
slots, the calendar's hours and other team members), and the engine uses it for a SlotSource.

A booking is two writes: ``POST /contacts/upsert`` (idempotent: GHL matches email/phone), then
the appointment. GHL has no idempotency key, so the Slotline key is written into the
appointment ``description``; when an answer is lost (dropped connection, timeout, 429/5xx) or
GHL says the slot is taken, the adapter first looks for an appointment carrying that key for
this contact at that time (``GET /calendars/events``) and returns it instead of booking twice.
Requests per booking: 2 (upsert + appointment); +1 look-up per lost answer or taken slot.

Cancel and reschedule are ``PUT /calendars/events/appointments/{id}`` (idempotent, retried).
GHL keeps no cancellation reason on an appointment, so ``reason`` is not sent.

The calendar's own slot length is read once (``prepare``, at start-up: ``GET
/calendars/{calendarId}``), and offered slots are that long. The business's options
(``ghl_settings.BookingOptions``) decide the appointment's status (``auto_confirm``: confirmed,
else new), its title (a template over the flow's variables) and the contact's tags and custom
fields, sent with the upsert.

An e-mail or name given after booking goes onto the appointment's contact: ``GET`` the
appointment for its ``contactId``, then ``PUT /contacts/{contactId}`` with the new fields.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp

from slotline.providers.calendars import ghl_find
from slotline.providers.calendars import ghl_settings as options
from slotline.providers.calendars import ghl_wire as wire
from slotline.providers.calendars.base import (
    Attendee,
    BookingRequest,
    BusyInterval,
    ProviderBooking,
    VendorBooking,
)
from slotline.providers.errors import ProviderError, SlotTaken
from slotline.providers.http import (
    HttpAdapter,
    HttpResponse,
    JsonHttpClient,
    RetryPolicy,
    StaticAuth,
)

_CALENDARS = {"Version": wire.CALENDARS_VERSION, "Accept": "application/json"}
_CONTACTS = {"Version": wire.CONTACTS_VERSION, "Accept": "application/json"}
_DEFAULT_RETRY = RetryPolicy()
_OFFERED_MAX = 4096  # remembered slot strings; a few weeks of slots for one calendar


class GhlCalendar(HttpAdapter):
    """One GHL calendar of one location (sub-account); see the module doc.

    ``timezone`` (the calendar's zone from the configuration) formats a start time GHL did not
    offer; without it the zone of the last ``free_slots`` call is used, then UTC.
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        calendar_id: str,
        location_id: str,
        *,
        session: aiohttp.ClientSession | None = None,
        retry: RetryPolicy = _DEFAULT_RETRY,
        timezone: str = "",
        booking: options.BookingOptions | None = None,
    ) -> None:
        self._http = JsonHttpClient(
            wire.PROVIDER, base_url, auth=StaticAuth(f"Bearer {token}"), retry=retry,
            session=session,
        )
        self._calendar_id = calendar_id
        self._location_id = location_id
        self._retry = retry
        self._timezone = timezone
        self._offered: dict[datetime, str] = {}  # UTC instant → the string GHL offered
        self.booking = booking or options.BookingOptions()
        self._info: options.GhlCalendarInfo | None = None

    # ---- the calendar's own settings (VendorSettingsReader) ------------------------------------

    async def prepare(self) -> options.GhlCalendarInfo:
        """Read the calendar (its slot length); once, then remembered."""
        if self._info is None:
            path = f"/calendars/{self._calendar_id}"
            response = await self._http.request("GET", path, headers=_CALENDARS)
            self._expect_ok(response, "GET", path)
            self._info = options.parse_calendar(response.body)
        return self._info

    @property
    def length_min(self) -> int | None:
        return self._info.length_min if self._info is not None else None

    def required_variables(self) -> dict[str, str]:
        return self.booking.required_variables()

    # ---- availability -----------------------------------------------------------------------

    async def free_slots(
        self, start: datetime, end: datetime, duration_min: int, timezone: str
    ) -> Sequence[BusyInterval]:
        """``SlotSource``: GHL's own slots starting in [start, end), each ``duration_min`` long."""
        zone = timezone or self._timezone
        if not self._timezone and wire.zone(zone) is not None:
            self._timezone = zone
        pieces = list(wire.windows(start, end))
        if len(pieces) == 1:
            answers = [await self._free_slots_piece(*pieces[0], zone)]
        else:
            try:
                async with asyncio.TaskGroup() as group:
                    tasks = [
                        group.create_task(self._free_slots_piece(a, b, zone), name=f"ghl-slots-{i}")
                        for i, (a, b) in enumerate(pieces)
                    ]
            except BaseExceptionGroup as failed:
                raise _first_provider_error(failed) from None
            answers = [task.result() for task in tasks]
        length = timedelta(minutes=self.length_min or duration_min)  # GHL's length wins
        slots: dict[datetime, BusyInterval] = {}
        for offered in answers:
            for moment, text in offered:
                instant = moment.astimezone(UTC)
                if start <= instant < end:
                    self._remember(instant, text)
                    slots[instant] = BusyInterval(instant, instant + length)
        return [slots[key] for key in sorted(slots)]

    async def _free_slots_piece(
        self, start: datetime, end: datetime, timezone: str
    ) -> list[tuple[datetime, str]]:
        path = f"/calendars/{self._calendar_id}/free-slots"
        params = wire.free_slots_params(start, end, timezone)
        response = await self._http.request("GET", path, params=params, headers=_CALENDARS)
        self._expect_ok(response, "GET", path)
        return wire.parse_free_slots(response.body)

    async def busy(self, start: datetime, end: datetime) -> Sequence[BusyInterval]:
        """This calendar's live appointments overlapping [start, end) (see the module doc)."""
        events = await self._events(start, end)
        return [
            BusyInterval(a.astimezone(UTC), b.astimezone(UTC))
            for a, b in wire.busy_of(events)
            if a < end and b > start
        ]

    # ---- writes -----------------------------------------------------------------------------

    async def create(self, request: BookingRequest) -> ProviderBooking:
        """Upsert the contact, then book once (see the module doc for the write-once rule)."""
        contact_id = await self._upsert_contact(request.attendee, request.fields)
        await self._tag(contact_id, options.tags_of(self.booking, request.fields))
        title = options.render(self.booking.title, request.fields) or request.title
        body: dict[str, Any] = {
            "calendarId": self._calendar_id,
            "locationId": self._location_id,
            "contactId": contact_id,
            "startTime": self._start_text(request.start),
            "endTime": wire.iso_in(request.end, self._timezone),
            "title": title or f"Appointment with {request.attendee.name}".strip(),
            "description": wire.description(request.fields, request.idempotency_key),
            "appointmentStatus": self.booking.status,
        }
        path = "/calendars/events/appointments"
        lost: ProviderError | None = None
        for attempt in range(max(1, self._retry.attempts)):
            if lost is not None:
                await asyncio.sleep(self._backoff_s(attempt))
                found = await self._find(request, contact_id)
                if found is not None:
                    return found
            try:
                response = await self._http.request(
                    "POST", path, json=body, headers=_CALENDARS, retry=False
                )
            except ProviderError as failed:
                if not failed.retryable:
                    raise
                lost = failed  # it may have been written: look before writing again
                continue
            if response.status in (200, 201):
                return wire.booking_of(response.body, request.start, request.end)
            if wire.is_slot_taken(response.status, response.body, response.text):
                # Taken by whom? Perhaps by this very key (an earlier attempt or call).
                found = await self._find(request, contact_id)
                if found is not None:
                    return found
                raise SlotTaken(wire.PROVIDER, self._describe(response, "POST", path))
            raise ProviderError(wire.PROVIDER, self._describe(response, "POST", path))
        found = await self._find(request, contact_id)
        if found is not None:
            return found
        assert lost is not None
        raise lost

    async def get(self, provider_booking_id: str) -> ProviderBooking | None:
        path = f"/calendars/events/appointments/{provider_booking_id}"
        response = await self._http.request("GET", path, headers=_CALENDARS)
        if wire.is_not_found(response.status, response.body, response.text):
            return None
        self._expect_ok(response, "GET", path)
        event = response.body.get("event") if isinstance(response.body, dict) else None
        return wire.booking_of(event)

    async def cancel(self, provider_booking_id: str, reason: str = "") -> ProviderBooking:
        """Mark the appointment cancelled (``reason`` has no field in GHL; see the module doc)."""
        return await self._edit(provider_booking_id, {"appointmentStatus": "cancelled"})

    async def reschedule(
        self, provider_booking_id: str, request: BookingRequest, reason: str = ""
    ) -> ProviderBooking:
        """``Rescheduler``: move the appointment in one PUT; ``SlotTaken`` if the time is gone."""
        body = {
            "startTime": self._start_text(request.start),
            "endTime": wire.iso_in(request.end, self._timezone),
        }
        return await self._edit(provider_booking_id, body, request.start, request.end)

    async def update_attendee(self, provider_booking_id: str, attendee: Attendee) -> None:
        """``AttendeeUpdater``: the appointment's contact gets the name and e-mail."""
        path = f"/calendars/events/appointments/{provider_booking_id}"
        response = await self._http.request("GET", path, headers=_CALENDARS)
        if wire.is_not_found(response.status, response.body, response.text):
            raise ProviderError(wire.PROVIDER, f"no appointment {provider_booking_id}")
        self._expect_ok(response, "GET", path)
        event = response.body.get("event") if isinstance(response.body, dict) else None
        contact_id = event.get("contactId") if isinstance(event, dict) else None
        if not isinstance(contact_id, str) or not contact_id:
            raise ProviderError(wire.PROVIDER, f"appointment {provider_booking_id} has no contact")
        body = {key: value for key, value in (("name", attendee.name), ("email", attendee.email))
                if value}
        if not body:
            return
        contact_path = f"/contacts/{contact_id}"
        # Idempotent: the same PUT twice leaves the same contact, so it is retried.
        answer = await self._http.request("PUT", contact_path, json=body, headers=_CONTACTS)
        self._expect_ok(answer, "PUT", contact_path)

    # ---- helpers ----------------------------------------------------------------------------

    async def _edit(
        self,
        provider_booking_id: str,
        body: dict[str, Any],
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> ProviderBooking:
        path = f"/calendars/events/appointments/{provider_booking_id}"
        # Idempotent: the same PUT twice leaves the same appointment, so it is retried.
        response = await self._http.request("PUT", path, json=body, headers=_CALENDARS)
        if wire.is_slot_taken(response.status, response.body, response.text):
            raise SlotTaken(wire.PROVIDER, self._describe(response, "PUT", path))
        self._expect_ok(response, "PUT", path)
        return wire.booking_of(response.body, start, end)

    async def _upsert_contact(
        self, attendee: Attendee, values: Mapping[str, str] | None = None
    ) -> str:
        path = "/contacts/upsert"
        # GHL de-duplicates on email/phone; with neither a retry could make a second contact.
        matched = bool(attendee.email or attendee.phone)
        body: dict[str, Any] = dict(wire.contact_body(self._location_id, attendee))
        custom = options.custom_fields_of(self.booking, values or {})
        if custom:
            body["customFields"] = custom
        response = await self._http.request(
            "POST", path, json=body, headers=_CONTACTS, retry=matched,
        )
        self._expect_ok(response, "POST", path)
        return wire.contact_id_of(response.body)

    async def _tag(self, contact_id: str, tags: list[str]) -> None:
        """Add tags to the contact (``POST /contacts/{id}/tags`` adds; the upsert's ``tags``
        would replace the contact's own). Adding a tag twice is harmless, so it is retried."""
        if not tags:
            return
        path = f"/contacts/{contact_id}/tags"
        response = await self._http.request(
            "POST", path, json={"tags": tags}, headers=_CONTACTS
        )
        self._expect_ok(response, "POST", path)

    # ---- BookingFinder: a caller's appointments, whoever booked them (ghl_find) ---------------

    async def find_bookings(
        self, start: datetime, end: datetime, *, phone: str = "", email: str = ""
    ) -> list[VendorBooking]:
        found: dict[str, VendorBooking] = {}
        for key, value in (("number", phone), ("email", email)):
            if not value:
                continue
            params = {"locationId": self._location_id, key: value}
            path = "/contacts/search/duplicate"
            response = await self._http.request("GET", path, params=params, headers=_CONTACTS)
            self._expect_ok(response, "GET", path)
            contact = ghl_find.contact_of(response.body)
            if contact is None:
                continue
            path = f"/contacts/{contact['id']}/appointments"
            response = await self._http.request("GET", path, headers=_CONTACTS)
            self._expect_ok(response, "GET", "/contacts/{contactId}/appointments")
            for booking in ghl_find.appointments_of(response.body, contact, self._calendar_id,
                                                    start, end):
                found[booking.provider_booking_id] = booking
        return sorted(found.values(), key=lambda booking: booking.start)

    async def _events(self, start: datetime, end: datetime) -> object:
        params = {
            "locationId": self._location_id,
            "calendarId": self._calendar_id,
            "startTime": wire.millis(start),
            "endTime": wire.millis(end),
        }
        response = await self._http.request(
            "GET", "/calendars/events", params=params, headers=_CALENDARS
        )
        self._expect_ok(response, "GET", "/calendars/events")
        return response.body

    async def _find(self, request: BookingRequest, contact_id: str) -> ProviderBooking | None:
        """The appointment an earlier attempt with this key already made, if any."""
        events = await self._events(request.start, request.end)
        found = wire.find_keyed(events, request.idempotency_key, contact_id)
        return None if found is None else wire.booking_of(found, request.start, request.end)

    def _start_text(self, start: datetime) -> str:
        offered = self._offered.get(start.astimezone(UTC))
        return offered if offered is not None else wire.iso_in(start, self._timezone)

    def _remember(self, instant: datetime, text: str) -> None:
        self._offered[instant] = text
        while len(self._offered) > _OFFERED_MAX:
            del self._offered[next(iter(self._offered))]  # the oldest first

    def _backoff_s(self, attempt: int) -> float:
        policy = self._retry
        return float(min(policy.max_delay_s, policy.base_delay_s * (2 ** (attempt - 1))))

    def _expect_ok(self, response: HttpResponse, method: str, path: str) -> None:
        if response.status not in (200, 201):
            raise ProviderError(wire.PROVIDER, self._describe(response, method, path))

    @staticmethod
    def _describe(response: HttpResponse, method: str, path: str) -> str:
        message = wire.error_text(response.body, response.text)
        return f"{method} {path} → {response.status}: {message}"


def _first_provider_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first vendor error of a failed fan-out (callers catch ``ProviderError``, not groups)."""
    for error in group.exceptions:
        if isinstance(error, BaseExceptionGroup):
            error = _first_provider_error(error)
        if isinstance(error, ProviderError):
            return error
    return group
