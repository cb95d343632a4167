"""A name or an e-mail the caller gives after booking reaches the booking: the store's record and
the vendor's booking, on every calendar provider (emulators and a real Radicale on loopback).

The service is built the way the server builds it (``tests.unit.test_booking_service_vendors``'
``deploy``); the vendor's own state is read back: Cal.com's guests, GHL's contact, Google's and
Graph's attendees, the CalDAV event's ATTENDEE. A webhook calendar has no way to take the
change: the store gets it, and the call carries on.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AsyncExitStack
from datetime import time
from pathlib import Path
from typing import Any

import aiohttp
import icalendar
import pytest

from slotline.agent.booking.runner import ServiceBookingRunner
from slotline.agent.booking.service_types import Booked, BookingDetails, Preference
from slotline.agent.flow.messages import Attendee as FlowAttendee
from slotline.agent.flow.messages import Preferences, RunBooking
from slotline.agent.store import Store, open_store, utc_now
from slotline.providers.calendars.base import Attendee
from slotline.providers.emulators.calcom import CalcomEmulator
from slotline.providers.emulators.ghl import GhlEmulator
from slotline.providers.emulators.google_calendar import GoogleCalendarEmulator
from slotline.providers.emulators.graph import GraphEmulator
from slotline.providers.errors import ProviderError
from tests.e2e.providers import (
    CALDAV_PASSWORD,
    CALDAV_USER,
    GOOGLE_CALENDAR,
    ZONE,
    VendorCalendar,
    Vendors,
    next_tuesday,
)
from tests.radicale_server import RadicaleServer
from tests.unit.test_booking_service_vendors import deploy, offer

THREE_PM = next_tuesday(time(15))
AT_THREE = Preference(THREE_PM.date(), time(15), timezone=ZONE)
BY_PHONE = Attendee("", "", "+15550102030", ZONE)  # what the call knew when it booked
LATE_NAME, LATE_EMAIL = "Ana Díaz", "ana.díaz@example.org"


@pytest.fixture
def vendors(stack: AsyncExitStack, radicale: RadicaleServer, tmp_path: Path) -> Vendors:
    return Vendors(stack, radicale, tmp_path)


@pytest.fixture
async def store(stack: AsyncExitStack, store_url: str) -> Store:
    return await stack.enter_async_context(open_store(store_url))


async def caldav_attendees(url: str, uid: str) -> list[tuple[str, str]]:
    auth = {"Authorization": aiohttp.encode_basic_auth(CALDAV_USER, CALDAV_PASSWORD)}
    async with aiohttp.ClientSession(headers=auth) as http, http.get(f"{url}{uid}.ics") as answer:
        assert answer.status == 200
        text = await answer.text()
    [event] = icalendar.Calendar.from_ical(text).walk("VEVENT")
    found = event.get("ATTENDEE", [])
    return [(str(a), str(a.params.get("CN", "")))
            for a in (found if isinstance(found, list) else [found])]


def _emulator(vendor: VendorCalendar) -> Any:
    assert vendor.emulator is not None
    return vendor.emulator


async def at_vendor(vendor: VendorCalendar, provider_booking_id: str) -> list[tuple[str, str]]:
    """(e-mail, name) pairs the vendor's booking names besides the host."""
    if vendor.provider == "caldav":
        return [(address.removeprefix("mailto:"), name)
                for address, name in await caldav_attendees(vendor.url, provider_booking_id)]
    emulator = _emulator(vendor)
    readers: dict[str, Callable[[], list[tuple[str, str]]]] = {
        "calcom": lambda: [(a["email"], a["name"]) for a in _calcom(emulator)["attendees"]
                           if a["email"]],
        "ghl": lambda: [(c.email, c.name) for c in _ghl(emulator).contacts.values()],
        "google": lambda: [(a["email"], a.get("displayName", ""))
                           for a in _google(emulator).events(GOOGLE_CALENDAR)[0].get(
                               "attendees", [])],
        "outlook": lambda: [(a["emailAddress"]["address"], a["emailAddress"]["name"])
                            for a in _graph(emulator).live_events()[0]["attendees"]],
    }
    return readers[vendor.provider]()


def _calcom(emulator: Any) -> dict[str, Any]:
    assert isinstance(emulator, CalcomEmulator)
    [booking] = emulator.live_bookings()
    return booking


def _ghl(emulator: Any) -> GhlEmulator:
    assert isinstance(emulator, GhlEmulator)
    return emulator


def _google(emulator: Any) -> GoogleCalendarEmulator:
    assert isinstance(emulator, GoogleCalendarEmulator)
    return emulator


def _graph(emulator: Any) -> GraphEmulator:
    assert isinstance(emulator, GraphEmulator)
    return emulator


# What each vendor shows once the late name and e-mail arrived (see the module docs of the
# adapters): Cal.com cannot rename its booker, so the address joins as a guest under the name
# given with it; GHL's contact takes both; Google, Graph and CalDAV list the caller.
EXPECTED = {
    "calcom": [(LATE_EMAIL, LATE_NAME)],
    "ghl": [(LATE_EMAIL, LATE_NAME)],
    "google": [(LATE_EMAIL, LATE_NAME)],
    "outlook": [(LATE_EMAIL, LATE_NAME)],
    "caldav": [(LATE_EMAIL, LATE_NAME)],
}


@pytest.mark.parametrize("provider", sorted(EXPECTED))
async def test_a_late_name_and_email_reach_the_store_and_the_vendor(
    provider: str, vendors: Vendors, stack: AsyncExitStack, store: Store
) -> None:
    vendor = await vendors.start(provider)
    service = await deploy(stack, store, vendor)
    booked = await service.book("demo", await offer(service), BookingDetails(BY_PHONE, "CA-1", {}),
                                preference=AT_THREE)
    assert isinstance(booked, Booked)
    [record] = booked.bookings
    before = await at_vendor(vendor, record.provider_booking_id)
    assert LATE_EMAIL not in [email for email, _ in before]

    updated = await service.update_attendee(record.id, name=LATE_NAME, email=LATE_EMAIL)

    assert updated is not None
    assert (updated.attendee.name, updated.attendee.email) == (LATE_NAME, LATE_EMAIL)
    assert updated.attendee.phone == BY_PHONE.phone  # what was not said again is kept
    stored = await store.bookings.get(record.id)
    assert stored is not None and stored.attendee == updated.attendee
    assert await at_vendor(vendor, record.provider_booking_id) == EXPECTED[provider]
    # the same again changes nothing anywhere
    assert await service.update_attendee(record.id, email=LATE_EMAIL) == updated
    assert await at_vendor(vendor, record.provider_booking_id) == EXPECTED[provider]


async def test_a_calendar_without_the_capability_keeps_the_change_in_the_store(
    vendors: Vendors, stack: AsyncExitStack, store: Store
) -> None:
    service = await deploy(stack, store, await vendors.start("webhook"))
    booked = await service.book("demo", await offer(service), BookingDetails(BY_PHONE, "CA-1", {}),
                                preference=AT_THREE)
    assert isinstance(booked, Booked)
    updated = await service.update_attendee(booked.booking_id, email=LATE_EMAIL)
    assert updated is not None and updated.attendee.email == LATE_EMAIL


async def test_a_cancelled_booking_is_left_alone(
    vendors: Vendors, stack: AsyncExitStack, store: Store
) -> None:
    service = await deploy(stack, store, await vendors.start("calcom"))
    booked = await service.book("demo", await offer(service), BookingDetails(BY_PHONE, "CA-1", {}),
                                preference=AT_THREE)
    assert isinstance(booked, Booked)
    await service.cancel(booked.booking_id, "caller asked")
    assert await service.update_attendee(booked.booking_id, email=LATE_EMAIL) is None
    assert await service.update_attendee("no-such-booking", email=LATE_EMAIL) is None


async def test_the_call_puts_what_it_heard_after_booking_on_its_booking(
    vendors: Vendors, stack: AsyncExitStack, store: Store
) -> None:
    """The runner of a call whose flow asks the e-mail once booked: at the call's end the
    address goes onto the stored booking and Cal.com's; a vendor refusal is reported, not
    raised (the call is over either way)."""
    vendor = await vendors.start("calcom")
    service = await deploy(stack, store, vendor)
    errors: list[ProviderError] = []
    runner = ServiceBookingRunner(service, call_sid="CA-7", caller_tz=ZONE, clock=utc_now,
                                  caller_phone=BY_PHONE.phone, on_error=errors.append)
    finished = await runner.run(RunBooking(
        "book", "demo", Preferences(THREE_PM.date().isoformat(), "15:00"),
        FlowAttendee("Ana", "", "", ZONE), slot_start=THREE_PM.isoformat()))
    assert finished.success

    await runner.call_ended({"user_name": "Ana", "user_email": LATE_EMAIL})

    [record] = await store.bookings.for_call("CA-7")
    assert (record.attendee.name, record.attendee.email) == ("Ana", LATE_EMAIL)
    assert [email for email, _ in await at_vendor(vendor, record.provider_booking_id)] == [
        LATE_EMAIL]
    assert errors == []

    _emulator(vendor).fail_next_on("POST /v2/bookings/{uid}/guests", 500)
    await runner.call_ended({"user_name": "Ana", "user_email": "second@example.org"})
    [record] = await store.bookings.for_call("CA-7")
    assert record.attendee.email == "second@example.org"  # the store keeps it
    assert [e.provider for e in errors] == ["calcom"]  # the vendor's refusal, reported
