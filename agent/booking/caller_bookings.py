"""One call's search for the caller's existing bookings, and the one the caller means.

A flow finds them with two built-in actions, used like custom actions (``webhook`` nodes) but
answered in-process by ``BuiltInActions`` (every other action name still goes to its URL):

``find_booking``  sends ``user_phone``, ``user_email`` and/or ``booking_reference`` (a phone
                  number left empty is the number the call came from) and receives
                  ``found_count`` ("0", "1", ...), ``found_date`` and ``found_time`` (the soonest,
                  as spoken in the caller's zone), ``found_list`` (up to three, spoken: "Tuesday,
                  December 8th at 3 pm, or Thursday, December 10th at 10 am", then how many
                  more) and
                  ``booking_reference`` (the soonest's). Found are the store's bookings and every
                  vendor calendar's (``agent.booking.finding``), each once; "0" is a success (the
                  flow says so and may offer to book), a failure is a store that failed.
``pick_booking``  sends ``found_pick``: "first", "second", "third", "last" or a weekday ("the
                  Tuesday one"), and receives the chosen booking's ``booking_reference``,
                  ``found_date`` and ``found_time``; a pick that fits none (or two: two on
                  Tuesday) is the failure edge.

The flow's ``cancel`` and ``reschedule`` nodes then name the booking by ``booking_reference``;
the booking runner asks ``chosen`` for it, so a booking only the vendor had is adopted into the
store (``BookingService.adopt``) and moved or cancelled at the vendor by the usual path.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from sqlalchemy.exc import SQLAlchemyError

from slotline.agent.booking.finding import FoundBooking
from slotline.agent.booking.service import BookingService
from slotline.agent.flow.messages import CallWebhook, SlotOffer, WebhookFinished
from slotline.agent.flow.responder import WebhookRunner
from slotline.providers.errors import ProviderError

FIND = "find_booking"
PICK = "pick_booking"
LISTED = 3  # read out to the caller at most; more would not be remembered
_ORDINALS = {"first": 0, "second": 1, "third": 2, "last": -1}
_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


class CallerBookings:
    """The caller's bookings found in this call (``find``) and the one chosen (``pick``)."""

    def __init__(
        self, service: BookingService, *, caller_phone: str,
        speak: Callable[[datetime], SlotOffer],
        on_error: Callable[[ProviderError], None] | None = None,
    ) -> None:
        self._service = service
        self._caller_phone = caller_phone
        self._speak = speak
        self._on_error = on_error
        self.found: list[FoundBooking] = []

    async def find(self, *, phone: str, email: str, reference: str) -> list[FoundBooking]:
        if reference:
            record = await self._service.get_booking(reference)
            live = record is not None and record.status == "confirmed"
            self.found = [FoundBooking.stored(record)] if record is not None and live else []
        else:
            self.found = await self._service.find_for_caller(
                phone=phone or self._caller_phone, email=email, on_error=self._on_error
            )
        return self.found

    def pick(self, said: str) -> FoundBooking | None:
        """The booking the caller picked: by position or by weekday (unique)."""
        word = said.strip().lower()
        if word in _ORDINALS:
            index = _ORDINALS[word]
            listed = self.found[:LISTED]
            return listed[index] if -len(listed) <= index < len(listed) else None
        if word in _WEEKDAYS:
            day = _WEEKDAYS.index(word)
            on_day = [f for f in self.found if self._speak(f.start).local_start.weekday() == day]
            return on_day[0] if len(on_day) == 1 else None
        return None

    def chosen(self, reference: str) -> FoundBooking | None:
        """A booking found in this call, by the reference the flow carries."""
        return next((f for f in self.found if f.reference == reference), None)

    # ---- the built-in actions ------------------------------------------------------------------

    async def run(self, request: CallWebhook) -> WebhookFinished:
        sent = request.variables
        if request.webhook == PICK:
            picked = self.pick(sent.get("found_pick", ""))
            if picked is None:
                return WebhookFinished(request.node_id, False, reason="no booking fits the pick")
            return WebhookFinished(request.node_id, True, self._described(picked))
        try:
            found = await self.find(phone=sent.get("user_phone", ""),
                                    email=sent.get("user_email", ""),
                                    reference=sent.get("booking_reference", ""))
        except (ProviderError, SQLAlchemyError, ExceptionGroup) as exc:
            # the store failed (vendors' failures are reported and left out by find_for_caller)
            return WebhookFinished(request.node_id, False,
                                   reason=f"finding bookings failed: {type(exc).__name__}")
        spoken = [self._speak(f.start) for f in found[:LISTED]]
        variables = {
            "found_count": str(len(found)),
            "found_list": _listed(spoken, more=len(found) - len(spoken)),
            "found_date": "", "found_time": "", "booking_reference": "",
        }
        if found:
            variables.update(self._described(found[0]))
        return WebhookFinished(request.node_id, True, variables)

    def _described(self, found: FoundBooking) -> dict[str, str]:
        offer = self._speak(found.start)
        return {"booking_reference": found.reference, "found_date": offer.date_spoken,
                "found_time": offer.time_spoken}


class BuiltInActions:
    """The call's ``WebhookRunner``: ``find_booking`` and ``pick_booking`` answered here, every
    other action by ``others`` (the configured HTTP actions)."""

    def __init__(self, bookings: CallerBookings, others: WebhookRunner) -> None:
        self._bookings = bookings
        self._others = others

    async def call(self, request: CallWebhook) -> WebhookFinished:
        if request.webhook in (FIND, PICK):
            return await self._bookings.run(request)
        return await self._others.call(request)


def _listed(offers: Sequence[SlotOffer], more: int = 0) -> str:
    """ "Tuesday, December 8th at 3 pm, or Thursday, December 10th at 10 am" (+ how many
    more were found than read out)."""
    said = [offer.spoken for offer in offers]
    if not said:  # none found: nothing to read out (the flow says so)
        return ""
    listed = said[0] if len(said) < 2 else ", ".join(said[:-1]) + ", or " + said[-1]
    return listed + (f" (and {more} more after those)" if more > 0 else "")
