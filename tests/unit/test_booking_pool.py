"""agent.booking.pool: first_available, round_robin and collective over several calendars."""

from __future__ import annotations

import gc
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from slotline.agent.booking import STRATEGIES, PooledSlot, Slot, Strategy, pool
from slotline.agent.booking.pool import PackedSlots

BASE = datetime(2026, 12, 1, 14, 0, tzinfo=UTC)


def slot(index: int) -> Slot:
    """The index-th half-hour from 14:00 UTC."""
    start = BASE + timedelta(minutes=30 * index)
    return Slot(start, start + timedelta(minutes=30))


# Free slot indexes per calendar; dict order is the pool's (config) order.
TEAM = {"ana": [0, 1, 2], "ben": [1, 2, 3], "cy": [2, 3, 4]}


def run(
    strategy: Strategy, free: dict[str, list[int]], counts: dict[str, int] | None = None
) -> list[tuple[int, tuple[str, ...], tuple[str, ...]]]:
    pooled = pool(
        strategy,
        {name: [slot(i) for i in indexes] for name, indexes in free.items()},
        counts or {},
    )
    index_of = {slot(i): i for i in range(10)}
    return [(index_of[item.slot], item.calendars, item.alternates) for item in pooled]


@pytest.mark.parametrize(
    ("strategy", "free", "counts", "expected"),
    [
        (
            "first_available",
            TEAM,
            {},
            [
                (0, ("ana",), ()),
                (1, ("ana",), ("ben",)),
                (2, ("ana",), ("ben", "cy")),
                (3, ("ben",), ("cy",)),
                (4, ("cy",), ()),
            ],
        ),
        (  # the pool's order decides, not the names
            "first_available",
            {"cy": [2, 3, 4], "ana": [0, 1, 2], "ben": [1, 2, 3]},
            {"cy": 99},
            [
                (0, ("ana",), ()),
                (1, ("ana",), ("ben",)),
                (2, ("cy",), ("ana", "ben")),
                (3, ("cy",), ("ben",)),
                (4, ("cy",), ()),
            ],
        ),
        (
            "round_robin",
            TEAM,
            {"ana": 5, "ben": 2, "cy": 3},
            [
                (0, ("ana",), ()),  # the only free one, however busy
                (1, ("ben",), ("ana",)),
                (2, ("ben",), ("cy", "ana")),
                (3, ("ben",), ("cy",)),
                (4, ("cy",), ()),
            ],
        ),
        (  # ties on counts fall back to the pool's order; a missing count is 0
            "round_robin",
            TEAM,
            {"ana": 1, "ben": 1},
            [
                (0, ("ana",), ()),
                (1, ("ana",), ("ben",)),
                (2, ("cy",), ("ana", "ben")),
                (3, ("cy",), ("ben",)),
                (4, ("cy",), ()),
            ],
        ),
        (
            "collective",
            TEAM,
            {},
            [(2, ("ana", "ben", "cy"), ())],
        ),
        ("collective", {"ana": [0, 1], "ben": [2, 3]}, {}, []),
        ("collective", {"ana": [0, 1], "ben": []}, {}, []),  # a fully booked member blocks all
        ("collective", {"solo": [3, 1]}, {}, [(1, ("solo",), ()), (3, ("solo",), ())]),
        ("first_available", {}, {}, []),
        ("first_available", {"ana": [], "ben": []}, {}, []),
        (  # a slot listed twice by one calendar counts once
            "first_available",
            {"ana": [1, 1], "ben": [1]},
            {},
            [(1, ("ana",), ("ben",))],
        ),
    ],
)
def test_pool_strategies(
    strategy: Strategy,
    free: dict[str, list[int]],
    counts: dict[str, int],
    expected: list[tuple[int, tuple[str, ...], tuple[str, ...]]],
) -> None:
    assert run(strategy, free, counts) == expected


def test_result_is_sorted_by_start_whatever_the_input_order() -> None:
    pooled = pool("first_available", {"a": [slot(5), slot(1)], "b": [slot(3), slot(0)]}, {})
    assert [item.slot for item in pooled] == [slot(0), slot(1), slot(3), slot(5)]
    assert pooled[0] == PooledSlot(slot(0), ("b",))


def test_every_strategy_offers_only_slots_some_calendar_has() -> None:
    free = {name: [slot(i) for i in indexes] for name, indexes in TEAM.items()}
    for strategy in STRATEGIES:
        for item in pool(strategy, free, {}):
            for calendar in item.calendars + item.alternates:
                assert item.slot in free[calendar]


def test_unknown_strategy_is_rejected() -> None:
    bogus: Any = "least_busy"
    with pytest.raises(ValueError, match="unknown pool strategy 'least_busy'"):
        pool(bogus, {"ana": [slot(0)]}, {})


def test_packed_slots_read_back_as_the_pooled_slots_they_hold() -> None:
    items = pool("round_robin", {name: [slot(i) for i in free] for name, free in TEAM.items()}, {})
    packed = PackedSlots(items)
    assert list(packed) == items and len(packed) == len(items)
    assert packed[1] == items[1] and packed[-1] == items[-1]
    assert packed[1:3] == tuple(items[1:3])
    assert packed.starting_at(slot(3).start) == items[3]
    assert packed.starting_at(slot(9).start) is None
    assert packed == PackedSlots(items) and hash(packed) == hash(PackedSlots(items))
    assert packed != PackedSlots(items[1:])


def test_packed_slots_are_not_walked_by_the_garbage_collector() -> None:
    # a live call keeps its last look-up's slots; as plain tuples of datetimes and names the
    # collector stops tracking them after one pass, so they add nothing to its full scans
    items = [PooledSlot(slot(i), ("ana",), ("ben",)) for i in range(100)]
    packed = PackedSlots(items)
    del items
    gc.collect()
    gc.collect()
    assert not any(gc.is_tracked(row) for row in packed._rows)
    assert not gc.is_tracked(packed._rows)
