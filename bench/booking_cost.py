"""booking_ms of a pooled availability look-up: about the slowest calendar, never the sum.

One booking action pools 5 calendars over a real store (a fresh SQLite file; with
``--postgres`` also a scratch PostgreSQL database, dropped after) that already holds 1,000
confirmed bookings over the next 90 days, written through the store so they are real busy time.
The action searches the whole 90-day window (``lookahead_days``) for 30-minute slots. Measured,
as ``Availability.elapsed_ms`` (booking_ms), p50/p95 over ``--iterations`` look-ups:

(a) the 5 ``local`` calendars as they are;
(b) each calendar behind a ``DelayedCalendar`` that waits a different fixed time (20, 50, 100,
    150, 200 ms) before asking the local calendar, as a remote vendor would: the look-up should
    cost the slowest delay plus (a), not the sum of the delays;
(c) as (b), but one calendar never answers within the per-calendar timeout: the look-up should
    cost about the timeout, and that calendar is reported in ``Availability.failures`` (for
    ``collective`` the look-up fails instead, by design: it needs every calendar).

Then the requests one availability + one booking make to each calendar (counted by the wrapper).

    cd /work/main && /work/venv/bin/python -m bench.booking_cost [--iterations 20]
        [--strategy first_available|round_robin|collective]
        [--postgres postgresql://postgres@127.0.0.1/test]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from slotline.agent.booking.local_calendar import LocalCalendar
from slotline.agent.booking.pool import STRATEGIES, Strategy
from slotline.agent.booking.service import BookingService
from slotline.agent.booking.service_types import (
    ActionConfig,
    Availability,
    Booked,
    BookingDetails,
    CalendarHandle,
)
from slotline.agent.booking.zones import load_zone
from slotline.agent.store import NewBooking, Store, open_store
from slotline.agent.store.scratch import scratch_postgres
from slotline.providers.calendars.base import (
    Attendee,
    BookingRequest,
    BusyInterval,
    CalendarProvider,
    ProviderBooking,
)
from slotline.providers.errors import ProviderError, SlotTaken

logger = logging.getLogger(__name__)

ACTION = "consult"
CALENDARS = ("ana", "ben", "chloe", "dev", "eli")
DELAYS_S = (0.020, 0.050, 0.100, 0.150, 0.200)  # (b): one per calendar, in pool order
STALLED_DELAY_S = 30.0  # (c): the last calendar answers far beyond the timeout
CALENDAR_TIMEOUT_S = 0.5
WINDOW_DAYS = 90
EXISTING_BOOKINGS = 1_000
ZONE = "America/New_York"
NOW = datetime(2026, 12, 1, 13, 7, tzinfo=UTC)  # a fixed clock: the same window every run
HOURS = (("09:00", "12:00"), ("13:00", "17:00"))


class DelayedCalendar:
    """A ``CalendarProvider`` that answers ``delay_s`` late, as a remote calendar would, then
    asks ``inner``. ``requests`` counts the calls per method (what a vendor would bill)."""

    def __init__(self, inner: CalendarProvider, delay_s: float) -> None:
        self._inner = inner
        self.delay_s = delay_s
        self.requests: Counter[str] = Counter()

    async def _round_trip(self, method: str) -> None:
        self.requests[method] += 1
        await asyncio.sleep(self.delay_s)

    async def busy(self, start: datetime, end: datetime) -> Sequence[BusyInterval]:
        await self._round_trip("busy")
        return await self._inner.busy(start, end)

    async def create(self, request: BookingRequest) -> ProviderBooking:
        await self._round_trip("create")
        return await self._inner.create(request)

    async def get(self, provider_booking_id: str) -> ProviderBooking | None:
        await self._round_trip("get")
        return await self._inner.get(provider_booking_id)

    async def cancel(self, provider_booking_id: str, reason: str = "") -> ProviderBooking:
        await self._round_trip("cancel")
        return await self._inner.cancel(provider_booking_id, reason)


@dataclass(frozen=True, slots=True)
class Run:
    """One scenario's look-ups: booking_ms of each that answered, wall ms of every one."""

    booking_ms: list[float]
    wall_ms: list[float]
    last: Availability | None
    error: ProviderError | None


def _pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _action(strategy: Strategy) -> ActionConfig:
    return ActionConfig(
        name=ACTION,
        calendars=CALENDARS,
        strategy=strategy,
        duration_min=30,
        buffer_before_min=10,
        buffer_after_min=10,
        min_notice_min=120,
        max_days_ahead=WINDOW_DAYS,
        lookahead_days=WINDOW_DAYS,
        daily_limit=12,
        weekly_hours={weekday: HOURS for weekday in range(5)},
        calendar_timeout_s=CALENDAR_TIMEOUT_S,
    )


def _service(
    store: Store, strategy: Strategy, providers: Mapping[str, CalendarProvider]
) -> BookingService:
    handles = {
        name: CalendarHandle(name, provider, "local", ZONE) for name, provider in providers.items()
    }
    return BookingService(store, handles, {ACTION: _action(strategy)}, clock=lambda: NOW)


async def _seed_calendar(store: Store, calendar: str, count: int, seed: int) -> int:
    """``count`` confirmed bookings of 15-120 min at random quarter-hours of weekday business
    hours over the window; returns how many random picks overlapped an earlier one."""
    rng = random.Random(seed)
    zone = load_zone(ZONE)
    first_day = NOW.astimezone(zone).date()
    made = collisions = 0
    while made < count:
        day = first_day + timedelta(days=rng.randrange(WINDOW_DAYS))
        if day.weekday() >= 5:
            continue
        quarter = rng.randrange(8 * 4, 17 * 4)  # 08:00 .. 16:45 local
        start = datetime(
            day.year, day.month, day.day, quarter // 4, 15 * (quarter % 4), tzinfo=zone
        )
        end = start + timedelta(minutes=15 * rng.randint(1, 8))
        attendee = Attendee(f"Existing {calendar} {made}", phone=f"+1555{seed:03d}{made:04d}")
        new = NewBooking(
            calendar=calendar,
            provider="local",
            start=start.astimezone(UTC),
            end=end.astimezone(UTC),
            attendee=attendee,
            idempotency_key=f"seed:{calendar}:{made}",
            action=ACTION,
        )
        try:
            await store.bookings.create(new)
        except SlotTaken:
            collisions += 1
            continue
        made += 1
    return collisions


async def _seed(store: Store) -> tuple[float, int]:
    """Writes the existing bookings, calendars in parallel; seconds taken and collisions."""
    began = time.perf_counter()
    per_calendar = EXISTING_BOOKINGS // len(CALENDARS)
    async with asyncio.TaskGroup() as group:
        tasks = [
            group.create_task(_seed_calendar(store, name, per_calendar, seed))
            for seed, name in enumerate(CALENDARS)
        ]
    return time.perf_counter() - began, sum(task.result() for task in tasks)


async def _look_ups(service: BookingService, iterations: int) -> Run:
    booking_ms: list[float] = []
    wall_ms: list[float] = []
    last: Availability | None = None
    error: ProviderError | None = None
    for index in range(iterations):
        began = time.perf_counter()
        try:
            last = await service.availability(ACTION, call_sid=f"bench-{index}")
            booking_ms.append(last.elapsed_ms)
        except ProviderError as failed:
            error = failed
        wall_ms.append((time.perf_counter() - began) * 1000.0)
    return Run(booking_ms, wall_ms, last, error)


def _p50_p95(values: Sequence[float]) -> str:
    return f"p50 {_pct(values, 0.5):7.1f}  p95 {_pct(values, 0.95):7.1f}"


async def _bench_store(store: Store, label: str, strategy: Strategy, iterations: int) -> None:
    seed_s, collisions = await _seed(store)
    print(
        f"\n== {label}: {EXISTING_BOOKINGS:,} existing bookings on {len(CALENDARS)} calendars over "
        f"{WINDOW_DAYS} days, seeded in {seed_s:.1f} s ({collisions} overlapping picks refused); "
        f"strategy {strategy}; window {WINDOW_DAYS} days; per-calendar timeout "
        f"{CALENDAR_TIMEOUT_S * 1000:.0f} ms; {iterations} look-ups each"
    )
    local = {name: LocalCalendar(store, name) for name in CALENDARS}

    # (a) the local calendars as they are.
    service = _service(store, strategy, local)
    began = time.perf_counter()
    cold = await service.availability(ACTION, call_sid="bench-cold")
    cold_ms = (time.perf_counter() - began) * 1000.0
    plain = await _look_ups(service, iterations)
    offered = len(plain.last.offered) if plain.last is not None else 0
    print(
        f"(a) 5 local calendars        booking_ms {_p50_p95(plain.booking_ms)}   "
        f"(first, cold: {cold.elapsed_ms:.1f}; wall {cold_ms:.1f}); {offered} slots offered"
    )
    compute_ms = _pct(plain.booking_ms, 0.5)

    # (b) each behind a different fixed delay.
    delayed = {
        name: DelayedCalendar(local[name], delay)
        for name, delay in zip(CALENDARS, DELAYS_S, strict=True)
    }
    service = _service(store, strategy, delayed)
    await service.availability(ACTION, call_sid="bench-warm")
    slow = await _look_ups(service, iterations)
    slowest_ms, sum_ms = max(DELAYS_S) * 1000.0, sum(DELAYS_S) * 1000.0
    p50 = _pct(slow.booking_ms, 0.5)
    delays = "/".join(f"{delay * 1000:.0f}" for delay in DELAYS_S)
    print(f"(b) delays {delays} ms  booking_ms {_p50_p95(slow.booking_ms)}")
    print(
        f"    slowest {slowest_ms:.0f} ms, sum {sum_ms:.0f} ms, measured p50 {p50:.1f} ms = "
        f"slowest + {p50 - slowest_ms:.1f} ms (local look-up alone, (a) p50: {compute_ms:.1f} ms); "
        f"p50 / slowest = {p50 / slowest_ms:.2f}, p50 / sum = {p50 / sum_ms:.2f}"
    )

    # (c) the last calendar never answers in time.
    stalled = dict(delayed)
    stalled[CALENDARS[-1]] = DelayedCalendar(local[CALENDARS[-1]], STALLED_DELAY_S)
    service = _service(store, strategy, stalled)
    stuck = await _look_ups(service, iterations)
    timeout_ms = CALENDAR_TIMEOUT_S * 1000.0
    print(
        f"(c) {CALENDARS[-1]} answers after {STALLED_DELAY_S:.0f} s, timeout {timeout_ms:.0f} ms"
        f"  wall {_p50_p95(stuck.wall_ms)}"
        + (f"   booking_ms {_p50_p95(stuck.booking_ms)}" if stuck.booking_ms else "")
    )
    if stuck.last is not None and stuck.booking_ms:
        failures = "; ".join(
            f"{item.calendar}: {type(item.error).__name__} after {item.elapsed_ms:.1f} ms "
            f"({item.error})"
            for item in stuck.last.failures
        )
        print(
            f"    p50 / timeout = {_pct(stuck.booking_ms, 0.5) / timeout_ms:.2f}; "
            f"Availability.failures = [{failures}]; "
            f"{len(stuck.last.offered)} slots still offered from the other calendars"
        )
    if stuck.error is not None:
        print(f"    look-up failed as configured ({strategy}): {type(stuck.error).__name__}: "
              f"{stuck.error}")  # fmt: skip

    # Requests per booking: one availability + one booking through the delayed calendars.
    for calendar in delayed.values():
        calendar.requests.clear()
    service = _service(store, strategy, delayed)
    found = await service.availability(ACTION, call_sid="bench-book")
    began = time.perf_counter()
    outcome = await service.book(
        ACTION,
        found.proposals[0],
        BookingDetails(Attendee("Bench Caller", phone="+15550100199"), "bench-book"),
    )
    book_ms = (time.perf_counter() - began) * 1000.0
    if isinstance(outcome, Booked):
        result = f"booked {outcome.booking_id} on {', '.join(b.calendar for b in outcome.bookings)}"
    else:
        result = "slot taken meanwhile"
    print(
        f"requests for 1 availability ({found.elapsed_ms:.1f} ms) + 1 booking ({book_ms:.1f} ms, "
        f"{result}):"
    )
    print(f"    {'calendar':9s} {'delay ms':>8s} {'busy':>5s} {'create':>6s} {'get':>4s} "
          f"{'cancel':>6s} {'total':>5s}")  # fmt: skip
    for name, calendar in delayed.items():
        counts = calendar.requests
        print(
            f"    {name:9s} {calendar.delay_s * 1000:8.0f} {counts['busy']:5d} "
            f"{counts['create']:6d} {counts['get']:4d} {counts['cancel']:6d} {counts.total():5d}"
        )


@asynccontextmanager
async def _sqlite_store(directory: Path) -> AsyncIterator[Store]:
    async with open_store(f"sqlite:///{directory / 'bench.db'}", clock=lambda: NOW) as store:
        yield store


@asynccontextmanager
async def _postgres_store(admin_url: str) -> AsyncIterator[Store]:
    async with scratch_postgres(admin_url) as url, open_store(url, clock=lambda: NOW) as store:
        yield store


async def main(iterations: int, strategy: Strategy, postgres_url: str) -> None:
    with tempfile.TemporaryDirectory(prefix="slotline-bench-") as scratch:
        async with _sqlite_store(Path(scratch)) as store:
            await _bench_store(store, "SQLite", strategy, iterations)
    if postgres_url:
        async with _postgres_store(postgres_url) as store:
            await _bench_store(store, "PostgreSQL (scratch database)", strategy, iterations)


def _cli() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--iterations", type=int, default=20, help="look-ups per scenario")
    parser.add_argument("--strategy", choices=STRATEGIES, default="first_available")
    parser.add_argument("--postgres", default="", help="admin URL: also run on a scratch database")
    args = parser.parse_args()
    if args.iterations < 1:
        parser.error("--iterations must be at least 1")
    strategies: dict[str, Strategy] = {name: name for name in STRATEGIES}
    # The service warns for every calendar it leaves out; (c) does that on purpose each time.
    logging.basicConfig(level=logging.ERROR)
    asyncio.run(main(args.iterations, strategies[args.strategy], args.postgres))


if __name__ == "__main__":
    _cli()
