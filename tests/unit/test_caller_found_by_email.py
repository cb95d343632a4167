"""A caller calling from another phone is found by the e-mail they give: a booking on the
``local`` calendar (it lives in Slotline's store, no vendor knows it) is found by e-mail, and
cancelled or moved.

The shipped reschedule_cancel flow runs in ``FlowResponder`` by text, its actions carried out by
the pieces the server wires per call (``ServiceBookingRunner``, ``BuiltInActions``), on a booking
service over the store (SQLite and PostgreSQL) whose one calendar is ``local``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import aiohttp
import pytest

from slotline.agent.booking.caller_bookings import BuiltInActions
from slotline.agent.booking.runner import ServiceBookingRunner
from slotline.agent.booking.service import BookingService
from slotline.agent.booking.service_types import Booked, BookingDetails, Preference
from slotline.agent.call.responder import CallerSaid, CallEvent, CallStarted, Say
from slotline.agent.config import load_settings
from slotline.agent.flow import FlowEngine, FlowResponder, load_flow
from slotline.agent.flow.webhooks import HttpWebhooks
from slotline.agent.store import BookingRecord, Store, open_store
from slotline.providers.calendars.base import Attendee
from tests.e2e.providers import NY, ZONE, booking_env, next_tuesday

FLOW = Path(__file__).resolve().parents[2] / "config" / "flows" / "reschedule_cancel.yaml"
# booked with her own phone and e-mail (the address written as she typed it on the web form)
DANA = Attendee("Dana Whitfield", "Dana.Whitfield@Example.org", "+15550102030", ZONE)
OMAR = Attendee("Omar Haddad", "omar@example.net", "+15550109999", ZONE)
CALLING_FROM = "+15550107777"  # her office line: no booking under it
TUESDAY_3PM = next_tuesday(time(15))
THURSDAY_10AM = datetime.combine(TUESDAY_3PM.date() + timedelta(days=2), time(10), NY)


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    async with open_store(store_url) as opened:
        yield opened


@pytest.fixture
async def service(store: Store) -> BookingService:
    settings = load_settings(None, booking_env(("main",)))
    assert settings.calendars["main"].provider == "local"
    return BookingService.from_settings(settings, store)


async def booked(service: BookingService, start: datetime, who: Attendee) -> BookingRecord:
    """A booking made on an earlier call, as the booking node makes it."""
    preference = Preference(start.date(), start.astimezone(NY).time(), timezone=ZONE)
    choice = (await service.availability("demo", preference)).at(start)
    assert choice is not None
    outcome = await service.book("demo", choice, BookingDetails(who, f"CA-{who.name}", {}),
                                 preference=preference)
    assert isinstance(outcome, Booked)
    record = await service.get_booking(outcome.booking_id)
    assert record is not None
    return record


class Call:
    """One call of reschedule_cancel from ``CALLING_FROM``, wired as the server wires a call."""

    def __init__(self, service: BookingService, session: aiohttp.ClientSession) -> None:
        def clock() -> datetime:
            return datetime.now(UTC)

        flow = load_flow(FLOW, booking_actions=("demo",))
        self.runner = ServiceBookingRunner(service, call_sid="CA-mail", caller_tz=ZONE,
                                           clock=clock, caller_phone=CALLING_FROM)
        actions = BuiltInActions(self.runner.bookings,
                                 HttpWebhooks({}, call_sid="CA-mail", secret=None,
                                              session=session))
        self.responder = FlowResponder(FlowEngine(flow, now=clock, timezone=ZONE),
                                       booking=self.runner, webhooks=actions)

    async def event(self, event: CallEvent) -> str:
        return " ".join([a.text async for a in self.responder.handle(event) if isinstance(a, Say)])

    async def say(self, text: str) -> str:
        return await self.event(CallerSaid(text))

    async def start_by_email(self, request: str) -> str:
        """Through to what the flow answers once the caller's e-mail is read back and right."""
        await self.event(CallStarted("CA-mail", {"user_phone": CALLING_FROM}))
        await self.say(request)
        assert "email address" in await self.say("by email")
        heard = await self.say("dana dot whitfield at example dot org")
        if "Is that right?" in heard:  # the flow reads the address back first
            heard = await self.say("yes")
        return heard


async def test_a_local_booking_is_found_by_email_from_another_phone_and_cancelled(
    service: BookingService, store: Store
) -> None:
    dana = await booked(service, TUESDAY_3PM, DANA)
    omar = await booked(service, THURSDAY_10AM, OMAR)
    async with aiohttp.ClientSession() as session:
        call = Call(service, session)
        found = await call.start_by_email("i want to cancel")
        assert "I see your appointment on " in found and "at 3 pm" in found, found
        assert "Just to be sure" in await call.say("yes")
        done = await call.say("yes")
        assert "cancelled" in done, done
    cancelled, untouched = await store.bookings.get(dana.id), await store.bookings.get(omar.id)
    assert cancelled is not None and cancelled.status == "cancelled"
    assert untouched is not None and untouched.status == "confirmed"


async def test_found_by_phone_and_email_alike_a_booking_is_listed_once(
    service: BookingService,
) -> None:
    tuesday = await booked(service, TUESDAY_3PM, DANA)
    thursday = await booked(service, THURSDAY_10AM, DANA)
    await booked(service, THURSDAY_10AM + timedelta(hours=2), OMAR)
    asked = [("(555) 010-2030", ""), (CALLING_FROM, "dana.whitfield@example.org"),
             ("", " DANA.WHITFIELD@example.org"), (DANA.phone, DANA.email)]
    for phone, email in asked:
        found = await service.find_for_caller(phone=phone, email=email)
        assert [f.reference for f in found] == [tuesday.id, thursday.id], (phone, email)
        assert all(f.record is not None for f in found)
    assert await service.find_for_caller(phone=CALLING_FROM, email="dana@example.org") == []


async def test_found_by_email_the_caller_picks_one_and_it_is_moved(
    service: BookingService, store: Store
) -> None:
    tuesday = await booked(service, TUESDAY_3PM, DANA)
    thursday = await booked(service, THURSDAY_10AM, DANA)
    async with aiohttp.ClientSession() as session:
        call = Call(service, session)
        listed = await call.start_by_email("move it please")
        assert "I see 2 appointments: " in listed and "Which one?" in listed, listed
        picked = await call.say("the first one")
        assert "at 3 pm." in picked and "Which day would you like" in picked, picked
        wednesday = TUESDAY_3PM + timedelta(days=1)
        await call.say(f"{wednesday:%B} {wednesday.day}")
        offer = await call.say("two pm")
        assert "2 pm" in offer and "Shall I" in offer, offer
        moved = await call.say("yes")
        assert "now on Wednesday" in moved and "at 2 pm" in moved, moved
    now = await store.bookings.get(tuesday.id)
    assert now is not None and now.status == "confirmed"  # the local calendar moves in place
    assert now.start == datetime.combine(wednesday.date(), time(14), NY)
    other = await store.bookings.get(thursday.id)
    assert other is not None and other.start == THURSDAY_10AM  # the other one untouched


async def test_an_email_that_finds_nothing_is_told_so_and_offered_a_new_booking(
    service: BookingService,
) -> None:
    await booked(service, TUESDAY_3PM, OMAR)  # someone else's
    async with aiohttp.ClientSession() as session:
        call = Call(service, session)
        heard = await call.start_by_email("cancel please")
        assert "I couldn't find an appointment under those details" in heard, heard
        assert call.runner.bookings.found == []
