"""agent.booking.local_calendar: the ``local`` CalendarProvider on the store, on both databases."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from slotline.agent.booking.local_calendar import LocalCalendar
from slotline.agent.store import Store, open_store
from slotline.providers.calendars.base import (
    Attendee,
    BookingRequest,
    BusyInterval,
    CalendarProvider,
)
from slotline.providers.errors import ProviderError, SlotTaken

T0 = datetime(2026, 6, 2, 14, 0, tzinfo=UTC)
HALF_HOUR = timedelta(minutes=30)


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    async with open_store(store_url) as opened:
        yield opened


def request_at(start: datetime, key: str) -> BookingRequest:
    return BookingRequest(start, start + HALF_HOUR, Attendee("Ana", phone="555 010 2030"), key,
                          title="demo", fields={"note": "first visit"})  # fmt: skip


async def test_busy_is_the_calendars_confirmed_bookings_in_the_window(store: Store) -> None:
    main: CalendarProvider = LocalCalendar(store, "main")
    other: CalendarProvider = LocalCalendar(store, "other")
    first = await main.create(request_at(T0, "a"))
    await main.create(request_at(T0 + timedelta(hours=2), "b"))
    await other.create(request_at(T0, "c"))
    cancelled = await main.create(request_at(T0 + timedelta(hours=4), "d"))
    await main.cancel(cancelled.provider_booking_id, "changed plans")
    busy = await main.busy(T0 - timedelta(hours=1), T0 + timedelta(hours=5))
    assert busy == [
        BusyInterval(T0, T0 + HALF_HOUR),
        BusyInterval(T0 + timedelta(hours=2), T0 + timedelta(hours=2, minutes=30)),
    ]
    assert await main.busy(T0 + HALF_HOUR, T0 + timedelta(hours=2)) == []  # touching ends
    got = await main.get(first.provider_booking_id)
    assert got == first and got.status == "confirmed"
    assert await other.get(first.provider_booking_id) is None  # another calendar's booking


async def test_create_is_write_once_and_refuses_overlaps(store: Store) -> None:
    main = LocalCalendar(store, "main")
    results = await asyncio.gather(
        *(main.create(request_at(T0 + timedelta(minutes=n), f"k{n}")) for n in range(10)),
        return_exceptions=True,
    )
    assert sum(not isinstance(result, BaseException) for result in results) == 1
    assert all(isinstance(r, SlotTaken) for r in results if isinstance(r, BaseException))
    again = await main.create(request_at(T0 + timedelta(days=1), "retry"))
    assert await main.create(request_at(T0 + timedelta(days=1), "retry")) == again
    record = await store.bookings.get(again.provider_booking_id)
    assert record is not None and record.fields == {"note": "first visit"}
    with pytest.raises(ProviderError, match="already used"):  # a key is one booking
        await LocalCalendar(store, "other").create(request_at(T0 + timedelta(days=1), "retry"))


async def test_cancel_and_move_only_touch_this_calendars_bookings(store: Store) -> None:
    main = LocalCalendar(store, "main")
    made = await main.create(request_at(T0, "a"))
    with pytest.raises(ProviderError, match="no booking"):
        await LocalCalendar(store, "other").cancel(made.provider_booking_id)
    moved = await main.move(made.provider_booking_id, T0 + timedelta(hours=1),
                            T0 + timedelta(hours=1, minutes=30))  # fmt: skip
    assert (moved.provider_booking_id, moved.start) == (made.provider_booking_id,
                                                        T0 + timedelta(hours=1))  # fmt: skip
    blocker = await main.create(request_at(T0, "b"))
    with pytest.raises(SlotTaken):
        await main.move(made.provider_booking_id, blocker.start, blocker.end)
    cancelled = await main.cancel(made.provider_booking_id)
    assert cancelled.status == "cancelled"
    with pytest.raises(ProviderError, match="no booking"):
        await main.cancel("NOSUCHID")
