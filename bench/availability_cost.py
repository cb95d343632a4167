"""CPU cost of the pure booking engine on a large request.

A booking action pooling 5 calendars asks for 90 days of 30-minute slots (Mon-Fri 09:00-12:00 and
13:00-17:00 in America/New_York, 10-minute buffers, 2 h notice) while each calendar already holds
``--events`` busy events (default 1,000 each, 5,000 in all). Measured: slot generation for all five
calendars, each pool strategy over the result, and the proposal + its spoken sentence. This is the
compute share of ``booking_ms``; the network fetches happen concurrently elsewhere.

    cd /work/main && /work/venv/bin/python -m bench.availability_cost [--events N] [--repeats N]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

from slotline.agent.booking import (
    STRATEGIES,
    BookingRules,
    Interval,
    Slot,
    Strategy,
    available_slots,
    pool,
    propose,
    speak_slots,
)
from slotline.agent.booking.availability import clear_slot_cache

CALENDARS = ("ana", "ben", "chloe", "dev", "eli")
WINDOW_DAYS = 90
NOW = datetime(2026, 12, 1, 13, 7, tzinfo=UTC)


def _busy_events(seed: int, count: int) -> list[Interval]:
    """``count`` meetings of 15-120 minutes at random quarter-hours over the window, unsorted."""
    rng = random.Random(seed)
    events = []
    for _ in range(count):
        start = NOW + timedelta(minutes=15 * rng.randrange(WINDOW_DAYS * 24 * 4))
        events.append(Interval(start, start + timedelta(minutes=15 * rng.randint(1, 8))))
    return events


def _cost_ms(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median and best wall time of ``fn`` in milliseconds."""
    runs = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        runs.append((time.perf_counter() - started) * 1e3)
    return statistics.median(runs), min(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000, help="busy events per calendar")
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()

    hours = (("09:00", "12:00"), ("13:00", "17:00"))
    rules = BookingRules(
        timezone="America/New_York",
        duration_min=30,
        buffer_before_min=10,
        buffer_after_min=10,
        min_notice_min=120,
        max_days_ahead=WINDOW_DAYS,
        daily_limit=12,
        weekly_hours={weekday: hours for weekday in range(5)},
        date_overrides={date(2026, 12, 24): (("09:00", "12:00"),), date(2026, 12, 25): ()},
    )
    busy = {name: _busy_events(seed, args.events) for seed, name in enumerate(CALENDARS)}
    booked_per_day = {date(2026, 12, 3): 12, date(2026, 12, 10): 5}
    window_end = NOW + timedelta(days=WINDOW_DAYS)

    def all_calendars() -> dict[str, list[Slot]]:
        return {
            name: available_slots(
                rules,
                window_start=NOW,
                window_end=window_end,
                now=NOW,
                busy=busy[name],
                existing_bookings_per_day=booked_per_day,
            )
            for name in CALENDARS
        }

    def all_calendars_cold() -> dict[str, list[Slot]]:
        clear_slot_cache()
        return all_calendars()

    def pool_with(strategy: Strategy) -> Callable[[], object]:
        return lambda: pool(strategy, free, counts)

    free = all_calendars()
    counts = {name: index for index, name in enumerate(CALENDARS)}
    rows = [
        ("available_slots x5, cold slot cache", _cost_ms(all_calendars_cold, args.repeats)),
        ("available_slots x5, warm slot cache", _cost_ms(all_calendars, args.repeats)),
    ]
    for strategy in STRATEGIES:
        rows.append((f"pool {strategy}", _cost_ms(pool_with(strategy), args.repeats)))
    pooled = [item.slot for item in pool("first_available", free, counts)]

    def offer() -> str:
        chosen = propose(
            pooled,
            preferred_date=date(2026, 12, 15),
            preferred_time=None,
            time_of_day="afternoon",
            tz="America/Los_Angeles",
        )
        return speak_slots(chosen, "America/Los_Angeles", NOW)

    rows.append(("propose + speak_slots", _cost_ms(offer, args.repeats)))
    end_to_end = _cost_ms(lambda: pool("round_robin", all_calendars(), counts), args.repeats)
    rows.append(("5 calendars + round_robin pool (warm)", end_to_end))

    slot_counts = ", ".join(f"{name}={len(slots)}" for name, slots in free.items())
    print(
        f"window {WINDOW_DAYS} days, {args.events} busy events per calendar; free slots: "
        f"{slot_counts}; pooled (any free) = {len(pooled)}"
    )
    print(f"sample offer: {offer()}")
    print(f"{'step':38s} {'median ms':>10s} {'best ms':>9s}")
    for label, (median_ms, best_ms) in rows:
        print(f"{label:38s} {median_ms:10.2f} {best_ms:9.2f}")


if __name__ == "__main__":
    main()
