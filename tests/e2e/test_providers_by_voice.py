"""The seed's booking call, by voice, on every vendor calendar and on a pool mixing three.

Each test starts the vendor(s) on loopback (``tests.e2e.providers``: the emulators, a real
Radicale for CalDAV), points the demo action's calendar(s) at them with the environment a user
would set (``SLOTLINE_CALENDARS__MAIN__PROVIDER=calcom`` ...), starts a real server and lets the
simulated caller speak ``DEMO_SCRIPT`` ("next tuesday", "three p m", "yes"). The booking must
then be in Slotline's store (``/api/bookings``) AND in the vendor's own state, at 3 pm New York
time on the next Tuesday. Each call takes ~25 s of real time: 6 vendors + 2 pools = 8 calls.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import AsyncExitStack
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from slotline.agent.sim.caller import run_caller
from slotline.agent.sim.demo import DEMO_SCRIPT, caller_wav, fetch_stream
from tests.e2e.conftest import Server, call_tasks, running_server
from tests.e2e.providers import (
    CALDAV_USERS,
    PROVIDERS,
    VendorCalendar,
    Vendors,
    booking_env,
    merged,
    next_tuesday,
)
from tests.radicale_server import RadicaleServer, running_radicale


@pytest.fixture(scope="module")
def radicale(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RadicaleServer]:
    with running_radicale(tmp_path_factory.mktemp("radicale"), users=CALDAV_USERS) as server:
        yield server


@pytest.fixture(scope="module")
def key_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("google-key")


@pytest.fixture
async def vendors(radicale: RadicaleServer, key_dir: Path) -> AsyncIterator[Vendors]:
    async with AsyncExitStack() as stack:
        yield Vendors(stack, radicale, key_dir)


async def demo_call(
    env: Mapping[str, str], secret_env: Mapping[str, str]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The demo conversation on a fresh server: (its call log, every booking in the store)."""
    runner, server = await running_server(env, secret_env)
    try:
        return await _call(server)
    finally:
        await runner.cleanup()


async def _call(server: Server) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    async with aiohttp.ClientSession() as http:
        url, params = await fetch_stream(http, server.url)
        script = [caller_wav(u.stem) for u in DEMO_SCRIPT]
        report = await run_caller(url, script, custom_parameters=params, session=http)
        async with http.get(f"{server.url}/api/calls/{report.call_sid}") as response:
            assert response.status == 200
            log = await response.json()
        async with http.get(f"{server.url}/api/bookings") as response:
            assert response.status == 200
            bookings = (await response.json())["bookings"]
    assert report.errors == (), report.errors
    assert report.closed_by == "server"  # goodbye said, the agent hung up
    assert log["status"] == "completed" and log["errors"] == [], log["errors"]
    assert log["node"] == "goodbye", [t["text"] for t in log["turns"]]
    assert log["variables"]["booking_success"] == "yes"
    assert [t["text"] for t in log["turns"] if t["role"] == "caller"] == [
        u.text for u in DEMO_SCRIPT
    ]
    # every booking in the store is this call's, and the log names them all (collective: one
    # per calendar)
    assert all(b["call_sid"] == report.call_sid for b in bookings)
    assert log["bookings"] and sorted(log["bookings"]) == sorted(b["id"] for b in bookings)
    assert call_tasks() == []
    return log, bookings


def _at(booking: Mapping[str, Any]) -> tuple[datetime, datetime]:
    return datetime.fromisoformat(booking["start"]), datetime.fromisoformat(booking["end"])


async def _holds_only(vendor: VendorCalendar, booking: Mapping[str, Any] | None) -> None:
    """The vendor holds exactly ``booking`` (same id and time), or nothing at all."""
    live = await vendor.live()
    if booking is None:
        assert live == [], (vendor.provider, live)
        return
    assert [(e.id, e.start, e.end) for e in live] == [
        (booking["provider_booking_id"], *_at(booking))
    ], (vendor.provider, live, booking)


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_the_demo_call_books_on_each_vendor_calendar(
    provider: str, vendors: Vendors
) -> None:
    vendor = await vendors.start(provider, "main")
    env, secrets = merged(vendor)
    three_pm = next_tuesday()

    log, bookings = await demo_call({**env, **booking_env(("main",))}, secrets)

    assert len(bookings) == 1, bookings
    booking = bookings[0]
    assert (booking["action"], booking["calendar"], booking["provider"]) == (
        "demo", "main", provider,
    )  # fmt: skip
    assert booking["status"] == "confirmed" and booking["call_sid"] == log["call_sid"]
    assert booking["attendee"]["name"] == "John Smith"
    assert _at(booking) == (three_pm, three_pm + timedelta(minutes=30))
    await _holds_only(vendor, booking)


@pytest.mark.parametrize("strategy", ["round_robin", "collective"])
async def test_a_pool_mixing_three_vendors_books_by_voice(strategy: str, vendors: Vendors) -> None:
    pool = {
        "alice": await vendors.start("calcom", "alice"),
        "bob": await vendors.start("google", "bob"),
        "carol": await vendors.start("caldav", "carol"),
    }
    env, secrets = merged(*pool.values())
    three_pm = next_tuesday()

    _, bookings = await demo_call({**env, **booking_env(tuple(pool), strategy)}, secrets)

    assert all(_at(b) == (three_pm, three_pm + timedelta(minutes=30)) for b in bookings)
    assert all(b["status"] == "confirmed" and b["action"] == "demo" for b in bookings)
    by_calendar = {b["calendar"]: b for b in bookings}
    assert len(by_calendar) == len(bookings)
    if strategy == "collective":  # everyone attends: one booking per calendar, each at its vendor
        assert sorted(by_calendar) == ["alice", "bob", "carol"]
    else:  # one host, chosen among the free ones
        assert len(bookings) == 1 and bookings[0]["calendar"] in pool
    for name, vendor in pool.items():
        booking = by_calendar.get(name)
        assert booking is None or booking["provider"] == vendor.provider
        await _holds_only(vendor, booking)
