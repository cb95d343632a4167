"""The booking service on vendor calendars: races, lost answers, moves, cancels, bad credentials.

``BookingService`` is built the way the server builds it (settings + secrets from the
environment → ``agent.server.calendars.build_calendars`` → ``BookingService.from_settings``) on a
scratch store, its calendar pointed at a vendor on loopback (``tests.e2e.providers``: the
emulators, a real Radicale for CalDAV). Every check reads the vendor's own state too.

- races: two callers book the same Tuesday 3 pm concurrently on Cal.com / Google / CalDAV,
  either through one store (the store's hold decides) or through two Slotline deployments with
  separate stores (only the vendor can decide): one booking, the other gets alternatives;
- a create whose answer is lost (handled, never delivered) still makes one booking, also when
  the caller retries it;
- reschedule and cancel on every provider show at the vendor;
- a calendar refusing its credentials is reported by the look-up, or fails it (``fail``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import AsyncExitStack
from datetime import datetime, time, timedelta
from pathlib import Path

import aiohttp
import pytest

from slotline.agent.booking.pool import PooledSlot
from slotline.agent.booking.service import BookingService
from slotline.agent.booking.service_types import Booked, BookingDetails, Preference, SlotUnavailable
from slotline.agent.config import load_secrets, load_settings
from slotline.agent.server.calendars import build_calendars
from slotline.agent.store import Store, open_store
from slotline.providers.calendars.base import Attendee
from slotline.providers.emulators.calcom import CalcomEmulator
from slotline.providers.emulators.ghl import GhlEmulator
from slotline.providers.emulators.google_calendar import GoogleCalendarEmulator
from slotline.providers.emulators.graph import GraphEmulator
from slotline.providers.emulators.webhook_calendar import WebhookCalendarEmulator
from slotline.providers.errors import ProviderAuthError, ProviderError
from tests.e2e.providers import (
    CALDAV_USERS,
    PROVIDERS,
    ZONE,
    DavProxy,
    VendorCalendar,
    Vendors,
    booking_env,
    merged,
    next_tuesday,
    write_service_account,
)
from tests.radicale_server import RadicaleServer, running_radicale

THREE_PM = next_tuesday(time(15))
FOUR_PM = next_tuesday(time(16))
AT_THREE = Preference(THREE_PM.date(), time(15), timezone=ZONE)
AT_FOUR = Preference(FOUR_PM.date(), time(16), timezone=ZONE)
HALF_HOUR = timedelta(minutes=30)
ANA = Attendee("Ana Diaz", "ana@example.com", "+15550102030", ZONE)
BEN = Attendee("Ben Okafor", "ben@example.com", "+15550104050", ZONE)


# ---- set-up -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def radicale(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RadicaleServer]:
    with running_radicale(tmp_path_factory.mktemp("radicale"), users=CALDAV_USERS) as server:
        yield server


@pytest.fixture(scope="module")
def key_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("google-key")


@pytest.fixture
async def stack() -> AsyncIterator[AsyncExitStack]:
    async with AsyncExitStack() as opened:
        yield opened


@pytest.fixture
def vendors(stack: AsyncExitStack, radicale: RadicaleServer, key_dir: Path) -> Vendors:
    return Vendors(stack, radicale, key_dir)


@pytest.fixture
async def store(stack: AsyncExitStack, store_url: str) -> Store:
    return await stack.enter_async_context(open_store(store_url))


async def deploy(
    stack: AsyncExitStack,
    store: Store,
    *vendors: VendorCalendar,
    calendars: tuple[str, ...] = ("main",),
    env: Mapping[str, str] | None = None,
    secret_env: Mapping[str, str] | None = None,
) -> BookingService:
    """A booking service as the server wires it: settings and secrets from the environment."""
    vendor_env, vendor_secrets = merged(*vendors)
    settings = load_settings(None, {**vendor_env, **booking_env(calendars), **(env or {})})
    secrets = load_secrets({**vendor_secrets, **(secret_env or {})})
    session = await stack.enter_async_context(aiohttp.ClientSession())
    adapters = build_calendars(settings, secrets, session)
    stack.push_async_callback(adapters.aclose)
    return BookingService.from_settings(settings, store, adapters.by_name)


async def offer(
    service: BookingService, start: datetime = THREE_PM, preference: Preference = AT_THREE
) -> PooledSlot:
    availability = await service.availability("demo", preference)
    assert availability.failures == ()
    offered = availability.at(start)
    assert offered is not None, f"{start} is not offered: {availability.proposals}"
    return offered


def details(call_sid: str, attendee: Attendee = ANA) -> BookingDetails:
    return BookingDetails(attendee, call_sid, {"service": "demo"})


async def at_vendor(vendor: VendorCalendar) -> list[tuple[str, datetime, datetime]]:
    return [(event.id, event.start, event.end) for event in await vendor.live()]


# ---- races --------------------------------------------------------------------------------------


@pytest.mark.parametrize("stores", ["one store", "two stores"])
@pytest.mark.parametrize("provider", ["calcom", "google", "caldav"])
async def test_two_callers_on_one_slot_one_books_the_other_gets_alternatives(
    provider: str, stores: str, vendors: Vendors, stack: AsyncExitStack, store: Store,
    tmp_path: Path,
) -> None:  # fmt: skip
    vendor = await vendors.start(provider)
    other_store = store
    if stores == "two stores":  # another Slotline deployment: only the vendor can decide
        other_store = await stack.enter_async_context(open_store(f"sqlite:///{tmp_path}/b.db"))
    first = await deploy(stack, store, vendor)
    second = await deploy(stack, other_store, vendor)
    choices = await asyncio.gather(offer(first), offer(second))  # both see 3 pm free

    outcomes = await asyncio.gather(
        first.book("demo", choices[0], details("CA-ana"), preference=AT_THREE),
        second.book("demo", choices[1], details("CA-ben", BEN), preference=AT_THREE),
    )

    booked = [o for o in outcomes if isinstance(o, Booked)]
    missed = [o for o in outcomes if isinstance(o, SlotUnavailable)]
    assert len(booked) == 1 and len(missed) == 1, outcomes
    record = booked[0].bookings[0]
    assert (record.provider, record.start, record.status) == (provider, THREE_PM, "confirmed")
    assert await at_vendor(vendor) == [(record.provider_booking_id, THREE_PM, THREE_PM + HALF_HOUR)]
    alternatives = missed[0].alternatives
    assert alternatives.proposals and alternatives.failures == ()
    assert THREE_PM not in [proposal.slot.start for proposal in alternatives.proposals]
    loser_store = other_store if outcomes[0] is booked[0] else store
    loser = "CA-ben" if outcomes[0] is booked[0] else "CA-ana"
    assert await loser_store.bookings.for_call(loser) == []


# ---- a lost answer ------------------------------------------------------------------------------


async def book_retrying(
    service: BookingService, choice: PooledSlot, call: BookingDetails
) -> tuple[Booked, int]:
    """Book; should a retryable failure come out, retry once (same call, same slot) as a
    caller of the service may. Returns the booking and how many attempts failed first."""
    failed = 0
    while True:
        try:
            outcome = await service.book("demo", choice, call, preference=AT_THREE)
        except ProviderError as error:
            assert error.retryable and failed == 0, error
            failed += 1
            continue
        assert isinstance(outcome, Booked), outcome
        return outcome, failed


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_create_whose_answer_is_lost_books_once_even_when_retried(
    provider: str, vendors: Vendors, stack: AsyncExitStack, store: Store
) -> None:
    vendor = await vendors.start(provider)
    proxy: DavProxy | None = None
    env = {}
    if provider == "caldav":
        origin = "/".join(vendor.url.split("/")[:3])
        proxy = await stack.enter_async_context(DavProxy(origin))
        env["SLOTLINE_CALENDARS__MAIN__BASE_URL"] = vendor.url.replace(origin, proxy.origin)
    service = await deploy(stack, store, vendor, env=env)
    choice = await offer(service)
    emu = vendor.emulator
    if isinstance(emu, CalcomEmulator):
        emu.drop_next_on("POST /v2/bookings")
    elif isinstance(emu, GhlEmulator):
        emu.drop_next(route="POST /calendars/events/appointments")
    elif isinstance(emu, GoogleCalendarEmulator):
        emu.drop_next(method="calendar.events.insert")
    elif isinstance(emu, GraphEmulator):
        emu.drop_next_on("POST /v1.0/users/{user}/events")
    elif isinstance(emu, WebhookCalendarEmulator):
        emu.drop_next()  # the next request is the create
    else:
        assert proxy is not None
        proxy.drop_next_put()

    booked, failed = await book_retrying(service, choice, details("CA-1"))
    again = await service.book("demo", choice, details("CA-1"), preference=AT_THREE)

    record = booked.bookings[0]
    assert isinstance(again, Booked) and again.booking_id == record.id
    assert await at_vendor(vendor) == [(record.provider_booking_id, THREE_PM, THREE_PM + HALF_HOUR)]
    assert [b.id for b in await store.bookings.for_call("CA-1")] == [record.id]
    # the answer really was lost, and the adapter (or the retry) found the booking it made
    if isinstance(emu, CalcomEmulator):
        assert emu.counts["POST /v2/bookings"] == 1 and emu.counts["GET /v2/bookings"] >= 1
    elif isinstance(emu, GhlEmulator):
        assert emu.counts["GET /calendars/events"] >= 1
    elif isinstance(emu, GoogleCalendarEmulator):
        assert emu.counts["POST /calendar/v3/calendars/{calendarId}/events"] == 2
    elif isinstance(emu, GraphEmulator):
        assert emu.counts["POST /v1.0/users/{user}/events"] == 2
    elif isinstance(emu, WebhookCalendarEmulator):
        assert emu.actions["create"] == 2
    else:
        assert proxy is not None and proxy.dropped == 1 and proxy.counts["GET"] >= 1
    assert failed == 0  # the adapter recovered inside the one create


# ---- reschedule and cancel ---------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_reschedule_then_cancel_show_at_the_vendor(
    provider: str, vendors: Vendors, stack: AsyncExitStack, store: Store
) -> None:
    vendor = await vendors.start(provider)
    service = await deploy(stack, store, vendor)
    booked = await service.book("demo", await offer(service), details("CA-1"), preference=AT_THREE)
    assert isinstance(booked, Booked)
    first = booked.bookings[0]

    later = await service.availability("demo", AT_FOUR, call_sid="CA-2", ignore=first)
    choice = later.at(FOUR_PM)
    assert choice is not None, later.proposals
    moved = await service.reschedule(first.id, choice, call_sid="CA-2", preference=AT_FOUR)

    assert isinstance(moved, Booked) and moved.booking_id == first.id  # the record follows
    now = moved.bookings[0]
    assert (now.start, now.end, now.status) == (FOUR_PM, FOUR_PM + HALF_HOUR, "confirmed")
    assert await at_vendor(vendor) == [(now.provider_booking_id, FOUR_PM, FOUR_PM + HALF_HOUR)]
    if provider == "calcom":  # Cal.com moves by making a new booking
        assert now.provider_booking_id != first.provider_booking_id
    else:
        assert now.provider_booking_id == first.provider_booking_id

    cancelled = await service.cancel(first.id, "the caller cancelled")

    assert cancelled is not None and cancelled.status == "cancelled"
    assert await at_vendor(vendor) == []
    assert await service.cancel(first.id) == cancelled  # twice is harmless
    # the freed time is offered again
    assert (await service.availability("demo", AT_THREE)).at(THREE_PM) is not None


# ---- bad credentials ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rogue_google_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A service-account key Google does not know."""
    path, _ = write_service_account(tmp_path_factory.mktemp("rogue") / "rogue.json", "rogue")
    return path


def wrong_secrets(provider: str, rogue_google_key: Path) -> dict[str, str]:
    return {
        "calcom": {"CALCOM_API_KEY": "cal_live_revoked"},
        "ghl": {"GHL_API_TOKEN": "pit-revoked"},
        "google": {"GOOGLE_APPLICATION_CREDENTIALS": str(rogue_google_key)},
        "outlook": {"MS_CLIENT_SECRET": "expired-client-secret"},
        "caldav": {"CALDAV_PASSWORD": "not-the-password"},
        "webhook": {"SLOTLINE_WEBHOOK_SECRET": "whsec_rotated"},
    }[provider]


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_calendar_refusing_its_credentials_is_reported_or_fails_the_lookup(
    provider: str, vendors: Vendors, stack: AsyncExitStack, store: Store, rogue_google_key: Path
) -> None:
    vendor = await vendors.start(provider, "vendor")
    pool = ("vendor", "main")  # main: the local calendar, still answering
    bad = wrong_secrets(provider, rogue_google_key)
    skipping = await deploy(stack, store, vendor, calendars=pool, secret_env=bad)
    failing = await deploy(
        stack, store, vendor, calendars=pool, secret_env=bad,
        env={"SLOTLINE_BOOKING_ACTIONS__DEMO__ON_CALENDAR_ERROR": "fail"},
    )  # fmt: skip

    reported = await skipping.availability("demo", AT_THREE)
    with pytest.raises(ProviderAuthError) as raised:
        await failing.availability("demo", AT_THREE)

    [failure] = reported.failures
    assert failure.calendar == "vendor" and isinstance(failure.error, ProviderAuthError)
    assert failure.error.provider == provider and not failure.error.retryable
    message = str(failure.error)  # names the vendor and what to check
    assert message.startswith(f"{provider}: ") and (
        "check the credentials" in message or "CALDAV_PASSWORD" in message
    ), message
    assert reported.proposals and {p.calendars for p in reported.proposals} == {("main",)}
    assert raised.value.provider == provider
    assert await vendor.live() == []
