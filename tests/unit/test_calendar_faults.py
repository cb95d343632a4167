"""Faults per calendar provider (issue 17): a booking books exactly once or fails cleanly, and a
look-up with one failing calendar degrades as configured.

Each vendor runs on loopback (the emulators; a real Radicale behind ``DavProxy`` for CalDAV),
configured from the environment and built by ``agent.server.calendars.build_calendars`` as the
server does, pooled with the local calendar ``main``. The booking action is built directly so the
write and look-up budgets can be short (half a second) and a stalled vendor costs little.

- Booking, for ``round_robin`` (the vendor is tried first) and ``collective`` (``main`` first,
  so a vendor failure has something to undo), under a 500 on the create, a stalled answer and
  a handled-but-lost answer: either ``Booked`` with every pooled calendar booked once (store
  and vendor agree), or a ``ProviderError`` with nothing confirmed anywhere. CalDAV has only
  the lost answer (Radicale has no fault knobs; the proxy drops a PUT's answer).
- Availability with the vendor answering 500 or not at all: ``on_calendar_error: skip`` reports
  it and offers ``main``'s times; ``fail`` raises; ``collective`` raises either way (it needs
  every calendar).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import time, timedelta
from pathlib import Path

import aiohttp
import pytest

from slotline.agent.booking.local_calendar import LocalCalendar
from slotline.agent.booking.pool import Strategy
from slotline.agent.booking.service import BookingService
from slotline.agent.booking.service_types import (
    ActionConfig,
    Booked,
    BookingDetails,
    CalendarHandle,
    Preference,
)
from slotline.agent.config import load_secrets, load_settings
from slotline.agent.server.calendars import build_calendars
from slotline.agent.store import Store, open_store, utc_now
from slotline.providers.calendars.base import Attendee
from slotline.providers.emulators.calcom import CalcomEmulator
from slotline.providers.emulators.ghl import GhlEmulator
from slotline.providers.emulators.google_calendar import GoogleCalendarEmulator
from slotline.providers.emulators.graph import GraphEmulator
from slotline.providers.emulators.webhook_calendar import WebhookCalendarEmulator
from slotline.providers.errors import BookingIncomplete, ProviderError
from tests.e2e.providers import (
    CALDAV_USERS,
    ZONE,
    DavProxy,
    VendorCalendar,
    Vendors,
    booking_env,
    merged,
    next_tuesday,
)
from tests.radicale_server import RadicaleServer, running_radicale

THREE_PM = next_tuesday(time(15))
AT_THREE = Preference(THREE_PM.date(), time(15), timezone=ZONE)
ANA = Attendee("Ana Diaz", "ana@example.com", "+15550102030", ZONE)
EMULATED = ("calcom", "ghl", "google", "outlook", "webhook")
FAULTS = ("500", "stall", "lost")
BUDGET_S = 0.5  # write and look-up budget: a stalled vendor costs this much, no more
# The look-up budget where no fault is injected into look-ups: it only has to outlast a busy
# machine (CI runs five test processes on two cores: a Cal.com look-up once took 0.7 s).
HEALTHY_LOOKUP_S = 5.0
CASES = [(p, f) for p in EMULATED for f in FAULTS] + [("caldav", "lost")]


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
async def store(stack: AsyncExitStack, tmp_path: Path) -> Store:
    return await stack.enter_async_context(open_store(f"sqlite:///{tmp_path}/faults.db"))


@dataclass
class Deployed:
    service: BookingService
    vendor: VendorCalendar
    proxy: DavProxy | None


async def deploy(
    stack: AsyncExitStack, store: Store, vendors: Vendors, provider: str,
    calendars: tuple[str, ...], strategy: Strategy, *, skip: bool = True,
    lookup_s: float = BUDGET_S,
) -> Deployed:  # fmt: skip
    """``vendor`` on ``provider`` plus the local ``main``, pooled as ``calendars``."""
    vendor = await vendors.start(provider, "vendor")
    proxy: DavProxy | None = None
    env = dict(vendor.env)
    if provider == "caldav":
        origin = "/".join(vendor.url.split("/")[:3])
        proxy = await stack.enter_async_context(DavProxy(origin))
        env["SLOTLINE_CALENDARS__VENDOR__BASE_URL"] = vendor.url.replace(origin, proxy.origin)
    _, secret_env = merged(vendor)
    settings = load_settings(None, {**env, **booking_env(calendars)})
    session = await stack.enter_async_context(aiohttp.ClientSession())
    adapters = build_calendars(settings, load_secrets(secret_env), session)
    stack.push_async_callback(adapters.aclose)
    handles = {
        "vendor": CalendarHandle("vendor", adapters.by_name["vendor"], provider, ZONE),
        "main": CalendarHandle("main", LocalCalendar(store, "main"), "local", ZONE),
    }
    action = ActionConfig(
        "demo", calendars, strategy=strategy, min_notice_min=5, write_timeout_s=BUDGET_S,
        calendar_timeout_s=lookup_s, skip_failed_calendars=skip, undo_backoff_s=0.05,
    )  # fmt: skip
    return Deployed(BookingService(store, handles, {"demo": action}), vendor, proxy)


def break_create(deployed: Deployed, fault: str) -> None:
    """The vendor's next create meets ``fault`` (the look-up already happened)."""
    emu = deployed.vendor.emulator
    if fault == "stall":  # the adapter's next request never answered
        assert emu is not None
        emu.stall_next()
    elif fault == "500":
        if isinstance(emu, CalcomEmulator):
            emu.fail_next_on("POST /v2/bookings", 500)
        elif isinstance(emu, GhlEmulator):
            emu.fail_next(500, route="POST /calendars/events/appointments")
        else:
            assert emu is not None
            emu.fail_next(500)  # the next request is the create
    elif isinstance(emu, CalcomEmulator):
        emu.drop_next_on("POST /v2/bookings")
    elif isinstance(emu, GhlEmulator):
        emu.drop_next(route="POST /calendars/events/appointments")
    elif isinstance(emu, GoogleCalendarEmulator):
        emu.drop_next(method="calendar.events.insert")
    elif isinstance(emu, GraphEmulator):
        emu.drop_next_on("POST /v1.0/users/{user}/events")
    elif isinstance(emu, WebhookCalendarEmulator):
        emu.drop_next()
    else:
        assert deployed.proxy is not None
        deployed.proxy.drop_next_put()


async def booked_once_or_nothing(
    deployed: Deployed, store: Store, call_sid: str, outcome: Booked | ProviderError
) -> str:
    """Check the invariant; "booked" or "failed"."""
    mine = {b.calendar: b for b in await store.bookings.for_call(call_sid)
            if b.status == "confirmed"}  # fmt: skip
    live = await deployed.vendor.live()
    if isinstance(outcome, ProviderError):
        assert not isinstance(outcome, BookingIncomplete), outcome
        assert mine == {} and live == [], (outcome, mine, live)
        mains = await store.bookings.confirmed("main", utc_now(), THREE_PM + timedelta(days=1))
        assert mains == []
        return "failed"
    assert sorted(mine) == sorted(b.calendar for b in outcome.bookings)
    if "vendor" in mine:
        assert [(e.id, e.start) for e in live] == [(mine["vendor"].provider_booking_id, THREE_PM)]
    else:
        assert live == []
    return "booked"


@pytest.mark.parametrize("strategy", ["round_robin", "collective"])
@pytest.mark.parametrize(("provider", "fault"), CASES)
async def test_a_booking_under_a_vendor_fault_books_once_or_leaves_nothing(
    provider: str, fault: str, strategy: Strategy, vendors: Vendors, stack: AsyncExitStack,
    store: Store,
) -> None:  # fmt: skip
    pool = ("vendor", "main") if strategy == "round_robin" else ("main", "vendor")
    deployed = await deploy(stack, store, vendors, provider, pool, strategy,
                            lookup_s=HEALTHY_LOOKUP_S)  # faults go to the create only
    availability = await deployed.service.availability("demo", AT_THREE)
    choice = availability.at(THREE_PM)
    assert choice is not None and "vendor" in choice.calendars, availability
    break_create(deployed, fault)

    outcome: Booked | ProviderError
    try:
        booked = await deployed.service.book("demo", choice, BookingDetails(ANA, "CA-f"),
                                             preference=AT_THREE)  # fmt: skip
        assert isinstance(booked, Booked), booked
        outcome = booked
    except ProviderError as error:
        outcome = error
    result = await booked_once_or_nothing(deployed, store, "CA-f", outcome)

    if fault == "lost":  # handled at the vendor: the adapter finds it, nothing is lost
        assert result == "booked"
    if fault == "stall":  # never handled: Slotline's budget ends it
        assert result == "failed"


@pytest.fixture
def vendors(stack: AsyncExitStack, radicale: RadicaleServer, key_dir: Path) -> Vendors:
    return Vendors(stack, radicale, key_dir)


@pytest.mark.parametrize("setting", ["skip", "fail", "collective"])
@pytest.mark.parametrize("fault", ["500", "stall"])
@pytest.mark.parametrize("provider", EMULATED)
async def test_availability_with_a_failing_vendor_degrades_as_configured(
    provider: str, fault: str, setting: str, vendors: Vendors, stack: AsyncExitStack,
    store: Store,
) -> None:  # fmt: skip
    strategy: Strategy = "collective" if setting == "collective" else "round_robin"
    deployed = await deploy(stack, store, vendors, provider, ("vendor", "main"), strategy,
                            skip=setting != "fail")  # fmt: skip
    emu = deployed.vendor.emulator
    assert emu is not None
    if fault == "stall":
        emu.stall_next()
    else:
        emu.fail_next(500, count=10)  # more than the adapter's read retries

    if setting != "skip":
        with pytest.raises(ProviderError) as raised:
            await deployed.service.availability("demo", AT_THREE)
        assert raised.value.provider == provider
        return
    found = await deployed.service.availability("demo", AT_THREE)
    [failure] = found.failures
    assert failure.calendar == "vendor" and failure.error.provider == provider
    assert failure.elapsed_ms < BUDGET_S * 1000 + 1500  # the budget, plus the read retries
    assert found.proposals and {p.calendars for p in found.proposals} == {("main",)}
