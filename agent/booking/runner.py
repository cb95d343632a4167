"""The flow engine's booking protocol, carried out by the booking service for one call.

``agent.flow.messages`` speaks in offers the caller hears (ISO start in the caller's zone plus
the spoken date and time); ``BookingService`` speaks in pooled slots. This adapter translates,
remembers the last availability it fetched so "the second one" books exactly what was offered,
and turns every failure into a result the flow can follow (its failure edge), never an
exception into the call.

Every failure is also reported (``on_error``: the call's log and the provider-errors metric,
``agent.call.errors``) and named by what failed, so the flow can say what fits: ``taken`` (the
time went meanwhile), ``unavailable``/``no_slots`` (nothing to offer), ``calendar_error`` (a
calendar answered an error or nothing) and ``database_error`` (Slotline's own store failed). A
collective booking whose undo failed (``BookingIncomplete``) leaves bookings confirmed: their
ids join the call's bookings, so the call log shows what needs a hand.

A booking the caller means may be one Slotline never made (booked on the vendor's own page,
by staff, through another channel): ``bookings`` (``agent.booking.caller_bookings``) finds the
caller's bookings in the store and at every vendor calendar, and a reference it handed the flow
is adopted into the store before it is moved or cancelled, so the vendor's write happens by the
usual path.

A booking's attendee phone is the number the caller phoned from unless the flow collected
another. A name or an e-mail address the caller gives after booking (a flow that asks once
booked) is put on this call's bookings by ``call_ended``: the stored record and the vendor's
booking where the vendor allows it (``agent.booking.attendees``); a new address also gets the
confirmations.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import date, datetime, time

from sqlalchemy.exc import SQLAlchemyError

from slotline.agent.booking.caller_bookings import CallerBookings
from slotline.agent.booking.pool import PooledSlot
from slotline.agent.booking.service import BookingService
from slotline.agent.booking.service_types import (
    Availability,
    Booked,
    BookingDetails,
    Preference,
    SlotUnavailable,
)
from slotline.agent.booking.speech import spoken_start
from slotline.agent.booking.zones import load_zone
from slotline.agent.flow.messages import (
    AvailabilityReady,
    BookingFinished,
    CancelFinished,
    CheckAvailability,
    Preferences,
    RunBooking,
    RunCancel,
    RunReschedule,
    SlotOffer,
)
from slotline.agent.notify.setup import BookingNotices
from slotline.agent.store import BookingRecord
from slotline.agent.weak import weak_method
from slotline.providers.calendars.base import Attendee
from slotline.providers.errors import BookingIncomplete, ProviderError, SlotTaken

log = logging.getLogger(__name__)

# what a booking step can fail with: a vendor, the store, or several at once (a TaskGroup)
_FAILURES = (ProviderError, SQLAlchemyError, ExceptionGroup)
CALENDAR_ERROR = "calendar_error"
DATABASE_ERROR = "database_error"


class ServiceBookingRunner:
    """``agent.flow.responder.BookingRunner`` over ``BookingService``, for one call."""

    def __init__(
        self, service: BookingService, *, call_sid: str, caller_tz: str,
        clock: Callable[[], datetime], notices: BookingNotices | None = None,
        caller_phone: str = "",
        on_error: Callable[[ProviderError], None] | None = None,
    ) -> None:
        self._service = service
        self._notices = notices
        self._call_sid = call_sid
        self._caller_tz = caller_tz
        self._zone = caller_tz  # the zone of the request at hand: the caller may state theirs
        self._clock = clock
        self._caller_phone = caller_phone  # the number the call came from ("" = unknown)
        self._last: Availability | None = None
        self._booked: dict[str, tuple[str, str]] = {}  # booking id → (action, e-mail given)
        # every booking this call wrote → (name, e-mail) it was written with
        self._given: dict[str, tuple[str, str]] = {}
        self._made: list[str] = []  # every booking written for this call, for the call log
        self._on_error = on_error
        # the caller's bookings found in this call, wherever made (agent.booking.caller_bookings)
        self.bookings = CallerBookings(service, caller_phone=caller_phone,
                                       speak=weak_method(self._offer), on_error=on_error)

    @property
    def booking_ids(self) -> tuple[str, ...]:
        """The bookings this call made, in order: every calendar's of a collective booking
        (the flow hears only the first). The bookings table agrees: these rows name this call.
        A booking moved in place is not one: it stays the call's that made it."""
        return tuple(self._made)

    async def check(self, request: CheckAvailability) -> AvailabilityReady:
        self._follow(request.preferences)
        action = request.action
        ignore: BookingRecord | None = None
        if request.lookup is not None:
            try:
                ignore = await self._find(request.lookup.booking_reference, request.lookup.phone)
            except _FAILURES as exc:
                return AvailabilityReady(request.node_id, None, reason=self._failed("lookup", exc))
            if ignore is None:
                return AvailabilityReady(request.node_id, None, reason="not_found")
            action = action or ignore.action
        try:
            found = await self._availability(action, request.preferences, ignore)
        except _FAILURES as exc:
            reason = self._failed("availability", exc)
            return AvailabilityReady(request.node_id, None, reason=reason)
        exact = self._exact(found, request.preferences)
        offers = tuple(self._offer(p.slot.start) for p in found.proposals if p != exact)
        requested = self._offer(exact.slot.start) if exact is not None else None
        return AvailabilityReady(request.node_id, requested, offers[:3],
                                 reason="" if requested or offers else "no_slots")

    async def run(self, request: RunBooking) -> BookingFinished:
        self._follow(request.preferences)
        attendee = request.attendee
        details = BookingDetails(
            Attendee(attendee.name, attendee.email, attendee.phone or self._caller_phone,
                     attendee.timezone or self._zone),
            call_sid=self._call_sid,
            fields=dict(request.fields),
        )
        try:
            choice = await self._choose(request.action, request.preferences, request.slot_start)
            if not isinstance(choice, PooledSlot):
                return self._not_booked(request.node_id, choice)
            outcome = await self._service.book(
                request.action, choice, details, preference=self._preference(request.preferences)
            )
        except BookingIncomplete as exc:
            self._made.extend(i for i in exc.still_confirmed if i not in self._made)
            return BookingFinished(request.node_id, False, reason=self._failed("booking", exc))
        except _FAILURES as exc:
            return BookingFinished(request.node_id, False, reason=self._failed("booking", exc))
        if isinstance(outcome, Booked):
            self._note_made(outcome)
            self._booked[outcome.booking_id] = (request.action, attendee.email)
            for record in outcome.bookings:
                self._given[record.id] = (record.attendee.name, record.attendee.email)
            if self._notices is not None:
                self._notices.booked(outcome.booking_id, request.action)
        return self._finished(request.node_id, outcome)

    async def reschedule(self, request: RunReschedule) -> BookingFinished:
        self._follow(request.preferences)
        old = await self._guarded(self._find(request.lookup.booking_reference,
                                             request.lookup.phone))
        if isinstance(old, str):
            return BookingFinished(request.node_id, False, reason=old)
        if old is None:
            return BookingFinished(request.node_id, False, reason="not_found")
        try:
            choice = await self._choose(old.action, request.preferences, request.slot_start, old)
            if not isinstance(choice, PooledSlot):
                return self._not_booked(request.node_id, choice)
            outcome = await self._service.reschedule(
                old.id, choice, call_sid=self._call_sid,
                preference=self._preference(request.preferences),
            )
        except BookingIncomplete as exc:
            self._made.extend(i for i in exc.still_confirmed if i not in self._made)
            return BookingFinished(request.node_id, False, reason=self._failed("reschedule", exc))
        except _FAILURES as exc:
            return BookingFinished(request.node_id, False, reason=self._failed("reschedule", exc))
        except ValueError as exc:  # the booking cannot move there (e.g. not the same kind)
            log.warning("reschedule failed call_sid=%s: %s", self._call_sid, exc)
            return BookingFinished(request.node_id, False, reason="unavailable")
        if isinstance(outcome, Booked) and outcome.booking_id != old.id:
            self._note_made(outcome)  # booked anew under this call
        if isinstance(outcome, Booked) and self._notices is not None:
            if outcome.booking_id == old.id:  # moved in one write
                self._notices.rescheduled(old.id, old.action)
            else:  # booked anew, the old one cancelled
                self._notices.booked(outcome.booking_id, old.action)
                self._notices.cancelled(old.id)
        return self._finished(request.node_id, outcome)

    async def cancel(self, request: RunCancel) -> CancelFinished:
        found = await self._guarded(self._find(request.lookup.booking_reference,
                                               request.lookup.phone))
        if isinstance(found, str):
            return CancelFinished(request.node_id, False, reason=found)
        if found is None:
            return CancelFinished(request.node_id, False, reason="not_found")
        try:
            cancelled = await self._service.cancel(found.id, "cancelled by the caller")
        except _FAILURES as exc:
            return CancelFinished(request.node_id, False, reason=self._failed("cancel", exc))
        if cancelled is None:
            return CancelFinished(request.node_id, False, reason="not_found")
        self._booked.pop(cancelled.id, None)
        if self._notices is not None:
            self._notices.cancelled(cancelled.id)
        # said on the clock it was booked on (the caller's zone then)
        spoken = self._offer(cancelled.start, cancelled.attendee.timezone)
        return CancelFinished(request.node_id, True, spoken,
                              booking_id=cancelled.id)

    async def call_ended(self, variables: Mapping[str, str]) -> None:
        """The call is over: a name or e-mail address collected after this call's bookings
        were made goes onto them (store and vendor; a failure is reported, never raised), and
        the confirmations go out to a new address."""
        name, email = variables.get("user_name", ""), variables.get("user_email", "")
        for booking_id, (given_name, given_email) in self._given.items():
            later_name = name if name != given_name else ""
            later_email = email if email != given_email else ""
            if not (later_name or later_email):
                continue
            try:
                await self._service.update_attendee(booking_id, name=later_name,
                                                    email=later_email)
            except _FAILURES as exc:
                self._failed("attendee update", exc)
        if not email or self._notices is None:
            return
        for booking_id, (action, given) in self._booked.items():
            if email != given:
                self._notices.contact_added(booking_id, action, email)

    # ---- helpers -------------------------------------------------------------------------------

    def _failed(self, what: str, failure: Exception) -> str:
        """Report a failure (log, call log, metric) and name it for the flow; a group (the
        service asks calendars and the store concurrently) by its first failure. Anything
        else is re-raised: a bug, for the flow responder's last-resort handler."""
        exc = failure
        while isinstance(exc, ExceptionGroup):
            exc = exc.exceptions[0]
        if not isinstance(exc, ProviderError | SQLAlchemyError):
            raise failure
        if isinstance(exc, SlotTaken):  # not a failure: the time went meanwhile
            log.info("%s: slot taken call_sid=%s: %s", what, self._call_sid, exc)
            return "taken"
        if isinstance(exc, ProviderError):
            error, reason = exc, CALENDAR_ERROR
        else:  # the driver's text may quote SQL: only the exception's kind goes on record
            error = ProviderError("database", f"{what} failed: {type(exc).__name__}")
            reason = DATABASE_ERROR
        log.warning("%s failed call_sid=%s: %s", what, self._call_sid, error)
        if self._on_error is not None:
            self._on_error(error)
        return reason

    async def _guarded(self, lookup: Awaitable[BookingRecord | None]) -> BookingRecord | None | str:
        """A booking looked up, or the failure's reason when the store failed."""
        try:
            return await lookup
        except _FAILURES as exc:
            return self._failed("lookup", exc)

    def _note_made(self, outcome: Booked) -> None:
        for record in outcome.bookings:
            if record.id not in self._made:  # a retried write returns the same bookings
                self._made.append(record.id)

    async def _availability(
        self, action: str, prefs: Preferences, ignore: BookingRecord | None = None
    ) -> Availability:
        found = await self._service.availability(
            action, self._preference(prefs), call_sid=self._call_sid, ignore=ignore
        )
        self._last = found
        return found

    async def _choose(
        self, action: str, prefs: Preferences, slot_start: str,
        ignore: BookingRecord | None = None,
    ) -> PooledSlot | Availability:
        """The exact slot to book, or the availability to offer instead."""
        if slot_start:
            start = datetime.fromisoformat(slot_start)
            if self._last is not None and (chosen := self._last.at(start)) is not None:
                return chosen
            found = await self._availability(action, prefs, ignore)
            return found.at(start) or found
        found = await self._availability(action, prefs, ignore)
        return self._exact(found, prefs) or found

    def _exact(self, found: Availability, prefs: Preferences) -> PooledSlot | None:
        """The offered slot at the caller's preferred date and clock time, if it is free."""
        if not prefs.date or not prefs.time or "-" in prefs.time:
            return None
        zone = load_zone(found.timezone or self._zone)
        start = datetime.combine(date.fromisoformat(prefs.date), time.fromisoformat(prefs.time),
                                 zone)
        return found.at(start)

    def _finished(self, node_id: str, outcome: Booked | SlotUnavailable) -> BookingFinished:
        """A write's outcome: booked, or taken meanwhile with the next alternatives."""
        if isinstance(outcome, Booked):
            return BookingFinished(node_id, True, self._offer(outcome.slot.start),
                                   booking_id=outcome.booking_id)
        self._last = outcome.alternatives
        return self._not_booked(node_id, outcome.alternatives, reason="taken")

    def _not_booked(
        self, node_id: str, found: Availability, reason: str = "unavailable"
    ) -> BookingFinished:
        offers = tuple(self._offer(p.slot.start) for p in found.proposals)[:3]
        return BookingFinished(node_id, False, alternatives=offers,
                               reason=reason if offers else "no_slots")

    def _offer(self, start: datetime, timezone: str = "") -> SlotOffer:
        """A time as the caller hears it, in their zone (``timezone``, else the request's)."""
        zone = timezone or self._zone
        local = start.astimezone(load_zone(zone))
        return SlotOffer(local.isoformat(), *spoken_start(start, zone, self._clock()))

    def _follow(self, prefs: Preferences) -> None:
        """Search and speak in the zone the flow heard the caller in (``""``: the call's)."""
        self._zone = prefs.timezone or self._caller_tz

    def _preference(self, prefs: Preferences) -> Preference:
        clock = prefs.time.split("-")[0] if prefs.time else ""
        return Preference(
            preferred_date=date.fromisoformat(prefs.date) if prefs.date else None,
            preferred_time=time.fromisoformat(clock) if clock else None,
            time_of_day=prefs.time_of_day or None,  # type: ignore[arg-type]
            timezone=self._zone,
        )

    async def _find(self, reference: str, phone: str) -> BookingRecord | None:
        if reference:
            chosen = self.bookings.chosen(reference)  # found in this call, maybe vendor-only
            if chosen is not None:
                return await self._service.adopt(chosen)
            return await self._service.get_booking(reference)
        if phone:
            upcoming = await self._service.upcoming_for_phone(phone)
            return upcoming[0] if upcoming else None
        return None


__all__ = ["ServiceBookingRunner"]
