"""Several bookings found: the caller picks one ("the Thursday one", "the first one") and that
one — not the other — is cancelled or moved at the vendor.

The shipped reschedule_cancel flow runs in ``FlowResponder`` by text, its actions carried out by
the real pieces the server wires per call (``ServiceBookingRunner``, ``BuiltInActions`` over the
configured HTTP actions), on a booking service whose calendar is the Cal.com emulator on
loopback. The caller's two bookings were made at Cal.com directly (its own API), a third
belongs to someone else; the store knows none of them.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import aiohttp
import pytest

from slotline.agent.booking.caller_bookings import BuiltInActions
from slotline.agent.booking.runner import ServiceBookingRunner
from slotline.agent.booking.service import BookingService
from slotline.agent.call.responder import CallerSaid, CallEvent, CallStarted, Say
from slotline.agent.config import load_secrets, load_settings
from slotline.agent.flow import FlowEngine, FlowResponder, load_flow
from slotline.agent.flow.webhooks import HttpWebhooks
from slotline.agent.server.calendars import build_calendars
from slotline.agent.store import Store, open_store
from slotline.providers.calendars.base import Attendee, BookingRequest, CalendarProvider
from slotline.providers.emulators.calcom import CalcomEmulator
from tests.e2e.providers import (
    NY,
    ZONE,
    VendorCalendar,
    Vendors,
    booking_env,
    merged,
    next_tuesday,
)
from tests.radicale_server import RadicaleServer

FLOW = Path(__file__).resolve().parents[2] / "config" / "flows" / "reschedule_cancel.yaml"
CALLER = Attendee("Dana Whitfield", "dana.whitfield@example.org", "+15550102030", ZONE)
OTHER = Attendee("Omar Haddad", "omar@example.net", "+15550109999", ZONE)
TUESDAY_3PM = next_tuesday(time(15))
THURSDAY_10AM = datetime.combine(TUESDAY_3PM.date() + timedelta(days=2), time(10), NY)
WEDNESDAY_11AM = datetime.combine(TUESDAY_3PM.date() + timedelta(days=1), time(11), NY)


@pytest.fixture
async def calcom(stack: AsyncExitStack, radicale: RadicaleServer,
                 tmp_path: Path) -> VendorCalendar:
    return await Vendors(stack, radicale, tmp_path).start("calcom")


class Call:
    """One call of reschedule_cancel, wired as the server wires a call."""

    def __init__(self, service: BookingService, session: aiohttp.ClientSession) -> None:
        def clock() -> datetime:
            return datetime.now(UTC)

        flow = load_flow(FLOW, booking_actions=("demo",))
        self.runner = ServiceBookingRunner(service, call_sid="CA-pick", caller_tz=ZONE,
                                           clock=clock, caller_phone=CALLER.phone)
        actions = BuiltInActions(self.runner.bookings,
                                 HttpWebhooks({}, call_sid="CA-pick", secret=None,
                                              session=session))
        self.responder = FlowResponder(FlowEngine(flow, now=clock, timezone=ZONE),
                                       booking=self.runner, webhooks=actions)

    async def event(self, event: CallEvent) -> str:
        return " ".join([a.text async for a in self.responder.handle(event) if isinstance(a, Say)])

    async def say(self, text: str) -> str:
        return await self.event(CallerSaid(text))


async def deploy(
    stack: AsyncExitStack, store: Store, vendor: VendorCalendar
) -> tuple[BookingService, CalendarProvider, aiohttp.ClientSession]:
    env, secret_env = merged(vendor)
    settings = load_settings(None, {**env, **booking_env(("main",))})
    session = await stack.enter_async_context(aiohttp.ClientSession())
    adapters = build_calendars(settings, load_secrets(secret_env), session)
    stack.push_async_callback(adapters.aclose)
    service = BookingService.from_settings(settings, store, adapters.by_name)
    return service, adapters.by_name["main"], session


async def made_at_calcom(calendar: CalendarProvider, start: datetime, who: Attendee) -> str:
    made = await calendar.create(BookingRequest(start, start + timedelta(minutes=30), who,
                                                f"cal-page-{who.name}-{start:%d%H}"))
    return made.provider_booking_id


@pytest.fixture
async def store(stack: AsyncExitStack, tmp_path: Path) -> Store:
    return await stack.enter_async_context(open_store(f"sqlite:///{tmp_path}/pick.db"))


async def test_the_caller_picks_the_thursday_one_and_only_it_is_cancelled_at_cal_com(
    calcom: VendorCalendar, stack: AsyncExitStack, store: Store
) -> None:
    service, calendar, session = await deploy(stack, store, calcom)
    tuesday = await made_at_calcom(calendar, TUESDAY_3PM, CALLER)
    thursday = await made_at_calcom(calendar, THURSDAY_10AM, CALLER)
    others = await made_at_calcom(calendar, WEDNESDAY_11AM, OTHER)
    call = Call(service, session)
    await call.event(CallStarted("CA-pick", {}))  # a withheld number: the flow asks for it
    await call.say("i want to cancel")
    assert "What phone number" in await call.say("no, use my phone number")
    listed = await call.say("it's five five five, zero one zero, two zero three zero")
    assert "I see 2 appointments: " in listed and "Which one?" in listed, listed
    assert "at 3 pm, or " in listed and "at 10 am." in listed  # soonest first, not Omar's
    picked = await call.say("the thursday one")
    assert "Okay, the one on " in picked and "at 10 am." in picked, picked
    assert "shall I cancel the appointment?" in picked
    done = await call.say("yes")
    assert "at 10 am is cancelled" in done, done
    assert isinstance(calcom.emulator, CalcomEmulator)
    live = {b["uid"] for b in calcom.emulator.live_bookings()}
    assert live == {tuesday, others}  # only the one picked went
    assert calcom.emulator.bookings[thursday].status == "cancelled"
    [stored] = await store.bookings.recent()  # adopted, then cancelled: the store agrees
    assert (stored.provider_booking_id, stored.status) == (thursday, "cancelled")


async def test_the_first_one_is_moved_and_a_pick_that_fits_none_is_not_guessed(
    calcom: VendorCalendar, stack: AsyncExitStack, store: Store
) -> None:
    service, calendar, session = await deploy(stack, store, calcom)
    tuesday = await made_at_calcom(calendar, TUESDAY_3PM, CALLER)
    thursday = await made_at_calcom(calendar, THURSDAY_10AM, CALLER)
    call = Call(service, session)
    bookings = call.runner.bookings
    found = await bookings.find(phone="", email=CALLER.email, reference="")  # by e-mail
    assert [f.provider_booking_id for f in found] == [tuesday, thursday]
    assert bookings.pick("monday") is None and bookings.pick("third") is None  # none fits
    assert bookings.pick("last") == found[1] and bookings.pick("tuesday") == found[0]

    await call.event(CallStarted("CA-pick", {"user_phone": CALLER.phone}))
    await call.say("move it please")
    await call.say("by email")
    read_back = await call.say("dana dot whitfield at example dot org")
    assert "d a n a dot w h i t f i e l d at example dot org" in read_back, read_back
    listed = await call.say("yes")  # the address the look-up uses is read back first
    assert "I see 2 appointments" in listed, listed
    picked = await call.say("the first one")
    assert "at 3 pm." in picked and "Which day would you like to move it to?" in picked, picked
    await call.say(f"{WEDNESDAY_11AM:%B} {WEDNESDAY_11AM.day}")  # the day before Thursday's
    offer = await call.say("two pm")
    assert "2 pm" in offer and "Shall I" in offer, offer
    moved = await call.say("yes")
    assert "now on Wednesday" in moved and "at 2 pm" in moved, moved
    assert isinstance(calcom.emulator, CalcomEmulator)
    old = calcom.emulator.bookings[tuesday]
    assert old.status == "cancelled" and old.rescheduled_to
    new = calcom.emulator.bookings[old.rescheduled_to]
    assert new.start.astimezone(NY).hour == 14 and new.start.astimezone(NY).weekday() == 2
    assert calcom.emulator.bookings[thursday].live  # the other one untouched


async def test_four_found_three_are_read_out_and_the_rest_counted(
    calcom: VendorCalendar, stack: AsyncExitStack, store: Store
) -> None:
    service, calendar, session = await deploy(stack, store, calcom)
    starts = [TUESDAY_3PM, WEDNESDAY_11AM, THURSDAY_10AM, THURSDAY_10AM + timedelta(hours=4)]
    made = [await made_at_calcom(calendar, start, CALLER) for start in starts]
    call = Call(service, session)
    await call.event(CallStarted("CA-pick", {"user_phone": CALLER.phone}))
    await call.say("cancel please")
    listed = await call.say("use my number")
    assert "I see 4 appointments: " in listed and "(and 1 more after those)" in listed, listed
    assert listed.count(" at ") == 3
    assert call.runner.bookings.pick("last") == call.runner.bookings.found[2]  # of those read
    assert [f.provider_booking_id for f in call.runner.bookings.found] == made
