"""What vendor calendars cost the booking engine: time for a pooled look-up, requests per write.

1. Pooled availability. Five calendars on five vendor emulators with different per-request
   latencies (Cal.com 20 ms, GoHighLevel 50, Google 80, Microsoft Graph 120, the webhook
   contract 200) are pooled by one booking action; each also has a single-calendar action. After
   a warm-up (tokens fetched, connections open) every look-up runs ``--repeats`` times and the
   medians are printed: ``booking_ms`` of the pool against each calendar alone. The calendars are
   asked concurrently, so the pool should cost about the slowest calendar, not the sum.
2. Requests per booking. For each of the six providers (CalDAV on a real Radicale, counted by a
   proxy in front of it) one look-up, one booking, one reschedule (its look-up, then the move)
   and one cancel, with the requests the vendor saw for each step, route by route. Token
   requests (Google, Graph) are counted apart: one per token lifetime, not per booking.

Everything is wired as the server wires it: settings and secrets from the environment
(``tests.e2e.providers`` writes them), ``agent.server.calendars.build_calendars``,
``BookingService.from_settings``, a scratch SQLite store. This is a benchmark, not a test.

    cd /work/main && .venv/bin/python -m bench.provider_requests [--repeats N]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
from collections import Counter
from collections.abc import Mapping
from contextlib import AsyncExitStack
from datetime import time
from pathlib import Path

import aiohttp

from slotline.agent.booking.service import BookingService
from slotline.agent.booking.service_types import Booked, BookingDetails, Preference
from slotline.agent.config import load_secrets, load_settings
from slotline.agent.server.calendars import build_calendars
from slotline.agent.store import Store, open_store
from slotline.providers.calendars.base import Attendee
from slotline.providers.emulators.webhook_calendar import WebhookCalendarEmulator
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
)
from tests.radicale_server import running_radicale

# (calendar, provider, emulated latency per request in ms): five vendors, five speeds.
POOL = (
    ("ana", "calcom", 20.0),
    ("ben", "ghl", 50.0),
    ("chloe", "google", 80.0),
    ("dev", "outlook", 120.0),
    ("eli", "webhook", 200.0),
)
THREE_PM = next_tuesday(time(15))
FOUR_PM = next_tuesday(time(16))
AT_THREE = Preference(THREE_PM.date(), time(15), timezone=ZONE)
AT_FOUR = Preference(FOUR_PM.date(), time(16), timezone=ZONE)
CALLER = BookingDetails(Attendee("Ana Diaz", "ana@example.com", "+15550102030", ZONE), "CA-bench")


async def _service(
    stack: AsyncExitStack, store: Store, vendors: list[VendorCalendar], env: Mapping[str, str]
) -> BookingService:
    vendor_env, secret_env = merged(*vendors)
    settings = load_settings(None, {**vendor_env, **env})
    session = await stack.enter_async_context(aiohttp.ClientSession())
    adapters = build_calendars(settings, load_secrets(secret_env), session)
    stack.push_async_callback(adapters.aclose)
    return BookingService.from_settings(settings, store, adapters.by_name)


# ---- 1. pooled availability -------------------------------------------------------------------


async def pooled_availability(vendors: Vendors, store: Store, repeats: int) -> None:
    stack = vendors.stack
    calendars = [await vendors.start(p, name, latency_ms=ms) for name, p, ms in POOL]
    names = tuple(name for name, _, _ in POOL)
    env = booking_env(names, action="pool")
    for name in names:
        env.update(booking_env((name,), action=f"solo_{name}"))
    service = await _service(stack, store, calendars, env)
    actions = ["pool", *(f"solo_{name}" for name in names)]
    for action in actions:  # warm-up: OAuth tokens fetched, connections open
        answer = await service.availability(action, AT_THREE)
        assert not answer.failures and answer.proposals, (action, answer.failures)
    runs: dict[str, list[float]] = {action: [] for action in actions}
    for _ in range(repeats):
        for action in actions:
            answer = await service.availability(action, AT_THREE)
            assert not answer.failures, answer.failures
            runs[action].append(answer.elapsed_ms)
    median = {action: statistics.median(values) for action, values in runs.items()}
    alone = [median[f"solo_{name}"] for name in names]
    slowest, total, pooled = max(alone), sum(alone), median["pool"]
    print(f"1. Pooled availability over {len(names)} calendars (median of {repeats} look-ups)")
    print(f"   {'calendar':<9}{'provider':<10}{'latency/request':>16}{'alone ms':>10}")
    for (name, provider, latency_ms), alone_ms in zip(POOL, alone, strict=True):
        print(f"   {name:<9}{provider:<10}{latency_ms:>13.0f} ms{alone_ms:>10.1f}")
    print(f"   booking_ms (pool) {pooled:.1f} | slowest {slowest:.1f} | sum {total:.1f} | "
          f"ratio pool/slowest {pooled / slowest:.2f} | pool/sum {pooled / total:.2f}")  # fmt: skip


# ---- 2. requests per booking ------------------------------------------------------------------


def _seen(vendor: VendorCalendar, proxy: DavProxy | None) -> Counter[str]:
    """Every request the vendor has seen so far, by route (webhook: by contract action)."""
    if proxy is not None:
        return Counter(proxy.counts)
    if isinstance(vendor.emulator, WebhookCalendarEmulator):
        return Counter({f"POST {a}": n for a, n in vendor.emulator.actions.items()})
    assert vendor.emulator is not None
    return Counter(vendor.emulator.counts)


async def requests_per_booking(vendors: Vendors, store: Store, provider: str) -> list[str]:
    stack = vendors.stack
    vendor = await vendors.start(provider, "main")
    proxy: DavProxy | None = None
    env = booking_env(("main",))
    if provider == "caldav":
        origin = "/".join(vendor.url.split("/")[:3])
        proxy = await stack.enter_async_context(DavProxy(origin))
        env["SLOTLINE_CALENDARS__MAIN__BASE_URL"] = vendor.url.replace(origin, proxy.origin)
    service = await _service(stack, store, [vendor], env)
    steps: list[tuple[str, Counter[str]]] = []
    before = _seen(vendor, proxy)

    def step(name: str) -> None:
        nonlocal before
        now = _seen(vendor, proxy)
        steps.append((name, now - before))
        before = now

    offered = (await service.availability("demo", AT_THREE)).at(THREE_PM)
    assert offered is not None
    step("look-up")
    booked = await service.book("demo", offered, CALLER, preference=AT_THREE)
    assert isinstance(booked, Booked)
    step("book")
    record = booked.bookings[0]
    later = (await service.availability("demo", AT_FOUR, ignore=record)).at(FOUR_PM)
    assert later is not None
    step("re-look-up")
    moved = await service.reschedule(record.id, later, call_sid="CA-bench-2", preference=AT_FOUR)
    assert isinstance(moved, Booked)
    step("move")
    cancelled = await service.cancel(record.id, "bench")
    assert cancelled is not None and cancelled.status == "cancelled"
    step("cancel")
    return _describe(provider, steps)


def _describe(provider: str, steps: list[tuple[str, Counter[str]]]) -> list[str]:
    def api(seen: Counter[str]) -> int:
        return sum(n for route, n in seen.items() if "token" not in route)

    tokens = sum(n for _, seen in steps for route, n in seen.items() if "token" in route)
    totals = {name: api(seen) for name, seen in steps}
    lines = [
        f"   {provider:<8}{totals['look-up']:>8}{totals['book']:>6}"
        f"{totals['re-look-up'] + totals['move']:>12}{totals['cancel']:>8}{tokens:>8}"
    ]
    for name, seen in steps:
        routes = ", ".join(f"{route} ×{n}" for route, n in sorted(seen.items()) if n)
        lines.append(f"      {name:<11}{routes}")
    return lines


async def main_async(repeats: int) -> None:
    with tempfile.TemporaryDirectory(prefix="slotline-bench-") as folder:
        root = Path(folder)
        with running_radicale(root / "radicale", users=CALDAV_USERS) as radicale:
            async with AsyncExitStack() as stack:
                store = await stack.enter_async_context(open_store(f"sqlite:///{root}/bench.db"))
                vendors = Vendors(stack, radicale, root)
                await pooled_availability(vendors, store, repeats)
                print("\n2. Requests per booking, per provider (API requests the vendor saw; "
                      "tokens apart)")  # fmt: skip
                print(f"   {'provider':<8}{'look-up':>8}{'book':>6}{'reschedule':>12}"
                      f"{'cancel':>8}{'tokens':>8}")  # fmt: skip
                for provider in PROVIDERS:
                    async with AsyncExitStack() as own:  # each provider on its own store rows
                        scoped = Vendors(own, radicale, root)
                        for line in await requests_per_booking(scoped, store, provider):
                            print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="look-ups per action (median)")
    args = parser.parse_args()
    asyncio.run(main_async(args.repeats))


if __name__ == "__main__":
    main()
