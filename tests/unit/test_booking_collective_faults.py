"""A collective booking is all or nothing, whatever stops it (issue 17, defect 1).

A pool of the local calendar ``main`` and a Cal.com event type (the emulator on loopback,
the real adapter): ``main`` is written first, then Cal.com fails — 500, no answer in time,
an answer lost on the way back, the call hanging up mid-write. Whatever happened, either both
calendars hold the booking exactly once or neither does, and the failure comes back as an error
(the caller is told the booking failed, never that the time was taken). Undoing is retried with
back-off; one that finally fails leaves the booking confirmed and says so (``BookingIncomplete``).

Two Cal.com event types stand in for a pool whose *first* calendar has to be undone at a vendor:
that is where a failing cancel can be injected. Their adapters do not retry on their own
(``RetryPolicy(attempts=1)``), so every cancel request the emulator counts is one of the
booking service's compensation attempts.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import time, timedelta

import aiohttp
import pytest

from slotline.agent.booking.local_calendar import LocalCalendar
from slotline.agent.booking.pool import PooledSlot
from slotline.agent.booking.runner import ServiceBookingRunner
from slotline.agent.booking.service import BookingService
from slotline.agent.booking.service_types import (
    ActionConfig,
    Booked,
    BookingDetails,
    CalendarHandle,
    Preference,
)
from slotline.agent.flow.messages import Attendee as FlowAttendee
from slotline.agent.flow.messages import Preferences, RunBooking
from slotline.agent.server.metrics import Metrics
from slotline.agent.store import Store, open_store, utc_now
from slotline.providers.calendars.base import Attendee
from slotline.providers.calendars.calcom import CalcomCalendar
from slotline.providers.emulators.calcom import CalcomEmulator
from slotline.providers.emulators.calcom_rules import EventType
from slotline.providers.errors import BookingIncomplete, ProviderError, ProviderTimeout
from slotline.providers.http import RetryPolicy
from tests.e2e.providers import ZONE, next_tuesday

THREE_PM = next_tuesday(time(15))
AT_THREE = Preference(THREE_PM.date(), time(15), timezone=ZONE)
ANA = Attendee("Ana Diaz", "ana@example.com", "+15550102030", ZONE)
KEY = "cal_live_faults"
CREATE = "POST /v2/bookings"
CANCEL = "POST /v2/bookings/{uid}/cancel"
VENDOR_RETRY = RetryPolicy()  # as the server builds the adapters
ONE_TRY = RetryPolicy(attempts=1)  # the adapter's own retries off: the service's are counted


@dataclass
class Pool:
    service: BookingService
    store: Store
    vendors: dict[str, CalcomEmulator]  # calendar name -> its Cal.com
    metrics: Metrics


@pytest.fixture
async def stack() -> AsyncIterator[AsyncExitStack]:
    async with AsyncExitStack() as opened:
        yield opened


@pytest.fixture
async def store(stack: AsyncExitStack, store_url: str) -> Store:
    return await stack.enter_async_context(open_store(store_url))


async def collective(
    stack: AsyncExitStack,
    store: Store,
    calendars: tuple[str, ...],
    *,
    retry: RetryPolicy = VENDOR_RETRY,
    write_timeout_s: float = 10.0,
    **undo: float,
) -> Pool:
    """A collective action over ``calendars``: "main" is local, any other name is a Cal.com
    event type on its own emulator. ``undo``: the action's compensation settings."""
    session = await stack.enter_async_context(aiohttp.ClientSession())
    handles: dict[str, CalendarHandle] = {}
    vendors: dict[str, CalcomEmulator] = {}
    for number, name in enumerate(calendars):
        if name == "main":
            handles[name] = CalendarHandle(name, LocalCalendar(store, name), "local", ZONE)
            continue
        event = EventType(4300 + number, length_min=30, timezone=ZONE, slug=name)
        emu = await stack.enter_async_context(CalcomEmulator(KEY, [event]))
        adapter = CalcomCalendar(emu.base_url, KEY, event.id, session=session, retry=retry)
        handles[name] = CalendarHandle(name, adapter, "calcom", ZONE)
        vendors[name] = emu
    action = ActionConfig(
        "demo", calendars, strategy="collective", min_notice_min=5,
        write_timeout_s=write_timeout_s, **undo,  # type: ignore[arg-type]
    )  # fmt: skip
    metrics = Metrics()
    service = BookingService(store, handles, {"demo": action}, metrics=metrics)
    return Pool(service, store, vendors, metrics)


async def offer(pool: Pool) -> PooledSlot:
    availability = await pool.service.availability("demo", AT_THREE)
    offered = availability.at(THREE_PM)
    assert offered is not None, availability.proposals
    return offered


def details(call_sid: str) -> BookingDetails:
    return BookingDetails(ANA, call_sid, {"service": "demo"})


async def confirmed(pool: Pool, call_sid: str) -> list[str]:
    """What the store still holds confirmed for this call, by calendar."""
    return [b.calendar for b in await pool.store.bookings.for_call(call_sid)
            if b.status == "confirmed"]  # fmt: skip


async def nothing_left(pool: Pool, call_sid: str) -> None:
    assert await confirmed(pool, call_sid) == []
    mains = await pool.store.bookings.confirmed("main", utc_now(), utc_now() + timedelta(days=9))
    assert mains == []
    for emu in pool.vendors.values():
        assert emu.live_bookings() == []


# ---- the vendor fails after the local calendar booked ---------------------------------------


async def test_a_vendor_500_undoes_the_local_booking_and_the_caller_hears_a_failure(
    stack: AsyncExitStack, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    pool = await collective(stack, store, ("main", "cal"))
    await offer(pool)
    pool.vendors["cal"].fail_next_on(CREATE, 500)
    runner = ServiceBookingRunner(pool.service, call_sid="CA-500", caller_tz=ZONE, clock=utc_now)
    request = RunBooking(
        "book", "demo", Preferences(THREE_PM.date().isoformat(), "15:00"),
        FlowAttendee(ANA.name, ANA.email, ANA.phone, ZONE),
        slot_start=THREE_PM.isoformat(),
    )  # fmt: skip

    with caplog.at_level(logging.WARNING, logger="slotline.agent.booking.service_book"):
        finished = await runner.run(request)

    assert (finished.success, finished.reason) == (False, "calendar_error")
    assert finished.alternatives == ()
    assert runner.booking_ids == ()  # the call record lists none: none is left
    await nothing_left(pool, "CA-500")
    [main] = await store.bookings.for_call("CA-500")
    assert main.calendar == "main" and main.status == "cancelled"
    assert main.id in caplog.text and "undone" in caplog.text
    assert pool.metrics.bookings.values["undone"] == 1
    assert pool.metrics.provider_errors.values["calcom"] >= 1
    assert pool.vendors["cal"].counts[CREATE] == 1


async def test_a_vendor_that_does_not_answer_in_time_undoes_the_local_booking(
    stack: AsyncExitStack, store: Store
) -> None:
    pool = await collective(stack, store, ("main", "cal"), write_timeout_s=0.5)
    choice = await offer(pool)
    pool.vendors["cal"].stall_next()  # the adapter's first request (its reservation) hangs

    with pytest.raises(ProviderTimeout):
        await pool.service.book("demo", choice, details("CA-slow"), preference=AT_THREE)

    await nothing_left(pool, "CA-slow")
    assert [b.status for b in await store.bookings.for_call("CA-slow")] == ["cancelled"]


async def test_a_lost_answer_from_the_vendor_books_both_calendars_exactly_once(
    stack: AsyncExitStack, store: Store
) -> None:
    pool = await collective(stack, store, ("main", "cal"))
    choice = await offer(pool)
    emu = pool.vendors["cal"]
    emu.drop_next_on(CREATE)  # handled, the answer never delivered: the adapter looks it up

    booked = await pool.service.book("demo", choice, details("CA-lost"), preference=AT_THREE)
    again = await pool.service.book("demo", choice, details("CA-lost"), preference=AT_THREE)

    assert isinstance(booked, Booked) and isinstance(again, Booked)
    assert [b.id for b in again.bookings] == [b.id for b in booked.bookings]
    assert sorted(await confirmed(pool, "CA-lost")) == ["cal", "main"]
    [live] = emu.live_bookings()
    assert live["uid"] == booked.bookings[1].provider_booking_id
    assert emu.counts[CREATE] == 1 and emu.counts["GET /v2/bookings"] >= 1


async def test_a_call_cancelled_mid_write_still_undoes_the_local_booking(
    stack: AsyncExitStack, store: Store
) -> None:
    pool = await collective(stack, store, ("main", "cal"))
    choice = await offer(pool)
    emu = pool.vendors["cal"]
    emu.stall_next()
    writing = asyncio.create_task(
        pool.service.book("demo", choice, details("CA-gone"), preference=AT_THREE)
    )
    for _ in range(200):  # until the vendor write is under way (main is booked by then)
        if emu.counts["POST /v2/slots/reservations"]:
            break
        await asyncio.sleep(0.01)
    assert await confirmed(pool, "CA-gone") == ["main"]

    writing.cancel()  # the caller hung up: the call's tasks are cancelled
    with pytest.raises(asyncio.CancelledError):
        await writing

    for _ in range(200):  # the compensation is shielded: it finishes on its own
        if not await confirmed(pool, "CA-gone"):
            break
        await asyncio.sleep(0.01)
    await nothing_left(pool, "CA-gone")


# ---- undoing at a vendor that fails too -----------------------------------------------------


async def test_an_undo_that_fails_twice_is_retried_until_it_takes(
    stack: AsyncExitStack, store: Store
) -> None:
    pool = await collective(
        stack, store, ("first", "second"), retry=ONE_TRY, undo_attempts=3, undo_backoff_s=0.05
    )
    choice = await offer(pool)
    first, second = pool.vendors["first"], pool.vendors["second"]
    second.fail_next_on(CREATE, 500)
    first.fail_next_on(CANCEL, 502, count=2)

    with pytest.raises(ProviderError) as raised:
        await pool.service.book("demo", choice, details("CA-retry"), preference=AT_THREE)

    assert not isinstance(raised.value, BookingIncomplete), raised.value
    assert first.counts[CANCEL] == 3  # two refused, the third took
    await nothing_left(pool, "CA-retry")
    bookings = pool.metrics.bookings.values
    assert (bookings["undo_retried"], bookings["undone"], bookings["undo_failed"]) == (2, 1, 0)


async def test_an_undo_that_never_takes_leaves_the_booking_confirmed_and_says_so(
    stack: AsyncExitStack, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    pool = await collective(
        stack, store, ("first", "second"), retry=ONE_TRY, undo_attempts=3, undo_backoff_s=0.05
    )
    choice = await offer(pool)
    first, second = pool.vendors["first"], pool.vendors["second"]
    second.fail_next_on(CREATE, 500)
    first.fail_next_on(CANCEL, 503, count=3)

    with caplog.at_level(logging.WARNING, logger="slotline.agent.booking.service_book"):
        with pytest.raises(BookingIncomplete) as raised:
            await pool.service.book("demo", choice, details("CA-stuck"), preference=AT_THREE)

    [kept] = await store.bookings.for_call("CA-stuck")  # the truth: it is still booked
    assert (kept.calendar, kept.status) == ("first", "confirmed")
    assert raised.value.still_confirmed == (kept.id,) and not raised.value.retryable
    assert kept.id in str(raised.value) and "503" not in str(raised.value.still_confirmed)
    assert [b["uid"] for b in first.live_bookings()] == [kept.provider_booking_id]
    assert second.live_bookings() == []
    assert first.counts[CANCEL] == 3
    assert f"NOT undone, still confirmed: {kept.id}" in caplog.text
    assert pool.metrics.bookings.values["undo_failed"] == 1
    # once the vendor answers again, the booking can be cancelled by hand
    cancelled = await pool.service.cancel(kept.id, "left over from a failed booking")
    assert cancelled is not None and cancelled.status == "cancelled"
    await nothing_left(pool, "CA-stuck")
