"""Bookings Slotline did not make, found by their attendee at each vendor and moved or cancelled
there: the ``BookingFinder`` of every calendar adapter against its vendor on loopback (the
emulators; a real Radicale for CalDAV), then the booking service on top (found, adopted into the
store, rescheduled, cancelled — each checked at the vendor).

The bookings are written with the vendor's own API (the adapter's ``create``, never the booking
service), as the vendor's booking page, staff or another channel would: the store knows
nothing of them. The caller's number is written one way there and asked another way.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from datetime import datetime, time, timedelta
from pathlib import Path

import aiohttp
import pytest

from slotline.agent.booking.pool import PooledSlot
from slotline.agent.booking.service import BookingService
from slotline.agent.booking.service_types import Booked, Preference
from slotline.agent.config import load_secrets, load_settings
from slotline.agent.server.calendars import build_calendars
from slotline.agent.store import Store, open_store
from slotline.providers.calendars.base import (
    Attendee,
    BookingFinder,
    BookingRequest,
    CalendarProvider,
)
from slotline.providers.emulators.calcom import CalcomEmulator
from slotline.providers.errors import ProviderError
from tests.e2e.providers import (
    ZONE,
    VendorCalendar,
    Vendors,
    booking_env,
    merged,
    next_tuesday,
)
from tests.radicale_server import RadicaleServer

FINDERS = ("calcom", "ghl", "google", "outlook", "caldav")
THREE_PM, FOUR_PM = next_tuesday(time(15)), next_tuesday(time(16))
AT_FOUR = Preference(FOUR_PM.date(), time(16), timezone=ZONE)
HALF_HOUR = timedelta(minutes=30)
# written at the vendor in E.164 (Cal.com takes no other form); asked as a caller says it
DANA = Attendee("Dana Whitfield", "dana.whitfield@example.org", "+15550102030", ZONE)
DANA_SAYS = "(555) 010-2030"
OMAR = Attendee("Omar Haddad", "omar@example.net", "+15550109999", ZONE)


@pytest.fixture
async def store(stack: AsyncExitStack, tmp_path: Path) -> Store:
    return await stack.enter_async_context(open_store(f"sqlite:///{tmp_path}/find.db"))


async def deploy(
    stack: AsyncExitStack, store: Store, vendor: VendorCalendar
) -> tuple[BookingService, CalendarProvider]:
    """The booking service as the server wires it, and the calendar adapter under it."""
    env, secret_env = merged(vendor)
    settings = load_settings(None, {**env, **booking_env(("main",))})
    session = await stack.enter_async_context(aiohttp.ClientSession())
    adapters = build_calendars(settings, load_secrets(secret_env), session)
    stack.push_async_callback(adapters.aclose)
    return BookingService.from_settings(settings, store, adapters.by_name), adapters.by_name["main"]


async def booked_elsewhere(calendar: CalendarProvider, start: datetime, who: Attendee) -> str:
    made = await calendar.create(BookingRequest(start, start + HALF_HOUR, who,
                                                f"elsewhere-{who.name}-{start:%H%M}"))
    return made.provider_booking_id


def window() -> tuple[datetime, datetime]:
    now = datetime.now(THREE_PM.tzinfo)
    return now, now + timedelta(days=30)


@pytest.mark.parametrize("provider", FINDERS)
async def test_the_vendor_finds_a_callers_booking_by_phone_or_email_and_no_one_elses(
    provider: str, radicale: RadicaleServer, stack: AsyncExitStack, store: Store, tmp_path: Path,
) -> None:  # fmt: skip
    vendor = await Vendors(stack, radicale, tmp_path).start(provider)
    _, calendar = await deploy(stack, store, vendor)
    assert isinstance(calendar, BookingFinder)
    dana = await booked_elsewhere(calendar, THREE_PM, DANA)
    await booked_elsewhere(calendar, FOUR_PM, OMAR)
    start, end = window()

    by_phone = await calendar.find_bookings(start, end, phone=DANA_SAYS)
    by_email = await calendar.find_bookings(start, end, email="Dana.Whitfield@example.org")
    by_both = await calendar.find_bookings(start, end, phone="+15559990000",
                                           email=DANA.email)
    for found in (by_phone, by_email, by_both):
        assert [(f.provider_booking_id, f.start, f.end) for f in found] == [
            (dana, THREE_PM, THREE_PM + HALF_HOUR)], provider
    assert by_phone[0].attendee.email.lower() == DANA.email
    assert await calendar.find_bookings(start, end, phone="+1 555 010 7777") == []
    assert await calendar.find_bookings(start, end, email="nobody@example.org") == []
    assert await calendar.find_bookings(start, end) == []  # nothing known: nothing found


@pytest.mark.parametrize("provider", FINDERS)
async def test_a_booking_made_elsewhere_is_adopted_moved_and_cancelled_at_the_vendor(
    provider: str, radicale: RadicaleServer, stack: AsyncExitStack, store: Store, tmp_path: Path,
) -> None:  # fmt: skip
    vendor = await Vendors(stack, radicale, tmp_path).start(provider)
    service, calendar = await deploy(stack, store, vendor)
    assert isinstance(calendar, BookingFinder)
    dana = await booked_elsewhere(calendar, THREE_PM, DANA)

    [found] = await service.find_for_caller(phone=DANA_SAYS, email="")
    assert found.record is None and found.provider_booking_id == dana  # only the vendor has it
    assert found.reference == f"main:{dana}"
    record = await service.adopt(found)
    assert (record.provider_booking_id, record.start, record.provider) == (dana, THREE_PM,
                                                                           provider)
    assert await service.adopt(found) == record  # adopting again writes nothing new
    # the store now knows it: found once, as the store's (by phone and by e-mail alike)
    for phone, email in ((DANA_SAYS, ""), ("", DANA.email), (DANA_SAYS, DANA.email)):
        [again] = await service.find_for_caller(phone=phone, email=email)
        assert again.record is not None and again.record.id == record.id

    availability = await service.availability("demo", AT_FOUR, ignore=record)
    choice = availability.at(FOUR_PM)
    assert isinstance(choice, PooledSlot)
    moved = await service.reschedule(record.id, choice, call_sid="CA-move", preference=AT_FOUR)
    assert isinstance(moved, Booked)
    start, end = window()
    [at_vendor] = await calendar.find_bookings(start, end, phone=DANA_SAYS)
    assert at_vendor.start == FOUR_PM  # moved at the vendor (Cal.com: a new uid)
    [stored] = await service.find_for_caller(phone=DANA_SAYS, email="")
    assert stored.record is not None and stored.provider_booking_id == at_vendor.provider_booking_id

    cancelled = await service.cancel(stored.record.id, "cancelled by the caller")
    assert cancelled is not None and cancelled.status == "cancelled"
    assert await calendar.find_bookings(start, end, phone=DANA_SAYS) == []
    assert [e.id for e in await vendor.live()] == []
    assert await service.find_for_caller(phone=DANA_SAYS, email=DANA.email) == []



async def test_a_vendor_that_fails_is_reported_and_left_out_not_the_whole_answer(
    radicale: RadicaleServer, stack: AsyncExitStack, store: Store, tmp_path: Path
) -> None:
    vendor = await Vendors(stack, radicale, tmp_path).start("calcom")
    service, calendar = await deploy(stack, store, vendor)
    await booked_elsewhere(calendar, THREE_PM, DANA)
    [found] = await service.find_for_caller(phone=DANA_SAYS, email="")
    record = await service.adopt(found)
    assert isinstance(vendor.emulator, CalcomEmulator)
    vendor.emulator.fail_next_on("GET /v2/bookings", 500, count=20)  # Cal.com is down
    errors: list[ProviderError] = []
    [still] = await service.find_for_caller(phone=DANA_SAYS, email="", on_error=errors.append)
    assert still.record is not None and still.record.id == record.id  # the store's answer
    assert [error.provider for error in errors] == ["calcom"]
