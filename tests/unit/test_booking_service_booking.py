"""agent.booking.service booking: once per (call, slot), never two, never lose one; pool strategies
end to end; cancel and reschedule. Local calendars on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from slotline.agent.booking.local_calendar import LocalCalendar
from slotline.agent.booking.pool import PooledSlot, Strategy
from slotline.agent.booking.service import BookingService
from slotline.agent.booking.service_types import (
    ActionConfig,
    Booked,
    BookingDetails,
    CalendarHandle,
    Preference,
    SlotUnavailable,
)
from slotline.agent.server.metrics import Metrics
from slotline.agent.store import NewBooking, Store, open_store
from slotline.providers.calendars.base import Attendee, BookingRequest, ProviderBooking
from slotline.providers.errors import ProviderError

NEW_YORK = "America/New_York"
NY = ZoneInfo(NEW_YORK)
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)  # Monday 08:00 in New York
TUESDAY = date(2026, 6, 2)
ANA = Attendee("Ana Diaz", "ana@example.com", "+1 555 010 2030", NEW_YORK)
AT_TEN = Preference(TUESDAY, time(10), timezone=NEW_YORK)


def ny(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), NY)


def details(call_sid: str, attendee: Attendee = ANA) -> BookingDetails:
    return BookingDetails(attendee, call_sid, {"service": "haircut"})


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    async with open_store(store_url, clock=lambda: NOW) as opened:
        yield opened


def local_service(
    store: Store,
    names: tuple[str, ...],
    strategy: Strategy = "first_available",
    metrics: Metrics | None = None,
) -> BookingService:
    handles = {name: CalendarHandle(name, LocalCalendar(store, name), "local", NEW_YORK)
               for name in names}  # fmt: skip
    action = ActionConfig("demo", names, strategy=strategy)
    return BookingService(store, handles, {"demo": action}, clock=lambda: NOW, metrics=metrics)


async def offer_at(service: BookingService, start: datetime) -> PooledSlot:
    offered = (await service.availability("demo", AT_TEN)).at(start)
    assert offered is not None, f"{start} is not offered"
    return offered


async def confirmed(store: Store, calendar: str) -> list[str]:
    found = await store.bookings.confirmed(calendar, NOW, NOW + timedelta(days=60))
    return [item.start.astimezone(NY).strftime("%a %H:%M") for item in found]


async def test_a_booking_is_recorded_with_attendee_fields(store: Store) -> None:
    metrics = Metrics()
    service = local_service(store, ("main",), metrics=metrics)
    proposal = (await service.availability("demo", AT_TEN)).proposals[0]
    outcome = await service.book("demo", proposal, details("CA1"), preference=AT_TEN)
    assert isinstance(outcome, Booked)
    assert outcome.slot.start == ny(TUESDAY, 10) and len(outcome.bookings) == 1
    record = await store.bookings.get(outcome.booking_id)
    assert record is not None
    assert (record.action, record.calendar, record.provider, record.call_sid) == (
        "demo", "main", "local", "CA1",
    )  # fmt: skip
    assert record.attendee == ANA and record.fields == {"service": "haircut"}
    assert record.provider_booking_id == record.id
    assert await store.holds.live("main", NOW, NOW + timedelta(days=30)) == []  # released
    assert 'slotline_bookings_total{result="booked"} 1' in metrics.render()


async def test_a_retried_booking_returns_the_first_and_books_nothing_more(store: Store) -> None:
    service = local_service(store, ("main",))
    choice = await offer_at(service, ny(TUESDAY, 10))
    first, second = await asyncio.gather(
        service.book("demo", choice, details("CA1")), service.book("demo", choice, details("CA1"))
    )
    third = await service.book("demo", choice, details("CA1"))
    assert isinstance(first, Booked) and isinstance(second, Booked) and isinstance(third, Booked)
    assert first.booking_id == second.booking_id == third.booking_id
    assert await confirmed(store, "main") == ["Tue 10:00"]


async def test_two_callers_one_slot_one_books_the_other_gets_alternatives(store: Store) -> None:
    service = local_service(store, ("main",))
    choice = await offer_at(service, ny(TUESDAY, 10))
    outcomes = await asyncio.gather(
        service.book("demo", choice, details("CA1"), preference=AT_TEN),
        service.book("demo", choice, details("CA2"), preference=AT_TEN),
    )
    booked = [o for o in outcomes if isinstance(o, Booked)]
    missed = [o for o in outcomes if isinstance(o, SlotUnavailable)]
    assert len(booked) == 1 and len(missed) == 1
    alternatives = missed[0].alternatives
    assert [p.slot.start for p in alternatives.proposals] == [
        ny(TUESDAY, 9, 30), ny(TUESDAY, 10, 30), ny(TUESDAY, 9),
    ]  # fmt: skip
    assert missed[0].slot.start == ny(TUESDAY, 10)
    assert await confirmed(store, "main") == ["Tue 10:00"]


async def test_first_available_falls_back_to_the_next_free_calendar(store: Store) -> None:
    service = local_service(store, ("ana", "ben"))
    choice = await offer_at(service, ny(TUESDAY, 10))
    assert (choice.calendars, choice.alternates) == (("ana",), ("ben",))
    outcomes = await asyncio.gather(
        service.book("demo", choice, details("CA1")), service.book("demo", choice, details("CA2"))
    )
    assert all(isinstance(outcome, Booked) for outcome in outcomes)
    assert await confirmed(store, "ana") == ["Tue 10:00"]
    assert await confirmed(store, "ben") == ["Tue 10:00"]
    third = await service.book("demo", choice, details("CA3"), preference=AT_TEN)
    assert isinstance(third, SlotUnavailable)
    assert ny(TUESDAY, 10) not in [item.slot.start for item in third.alternatives.offered]


async def test_round_robin_spreads_bookings_and_persists_the_counts(store: Store) -> None:
    service = local_service(store, ("ana", "ben", "cy"), strategy="round_robin")
    chosen = []
    for hour in (9, 10, 11, 12, 13, 14):
        choice = await offer_at(service, ny(TUESDAY, hour))
        outcome = await service.book("demo", choice, details(f"CA{hour}"))
        assert isinstance(outcome, Booked)
        chosen.append(outcome.bookings[0].calendar)
    assert chosen == ["ana", "ben", "cy", "ana", "ben", "cy"]
    assert await store.round_robin.counts("demo") == {"ana": 2, "ben": 2, "cy": 2}
    restarted = local_service(store, ("ana", "ben", "cy"), strategy="round_robin")
    await store.round_robin.bump("demo", "ana")  # ana has one more now: ben is next
    choice = await offer_at(restarted, ny(TUESDAY, 15))
    assert choice.calendars == ("ben",)


async def test_collective_books_everyone_or_no_one(store: Store) -> None:
    service = local_service(store, ("ana", "ben"), strategy="collective")
    await store.bookings.create(
        NewBooking("ben", "local", ny(TUESDAY, 9), ny(TUESDAY, 9, 30), ANA, "ben-busy")
    )
    offered = await service.availability("demo", AT_TEN)
    assert offered.at(ny(TUESDAY, 9)) is None  # ben is busy, so nobody is offered
    choice = await offer_at(service, ny(TUESDAY, 10))
    assert choice.calendars == ("ana", "ben")
    outcome = await service.book("demo", choice, details("CA1"))
    assert isinstance(outcome, Booked)
    assert sorted(record.calendar for record in outcome.bookings) == ["ana", "ben"]
    # Ben's 11:00 goes between the offer and the booking: ana's half is given back.
    choice = await offer_at(service, ny(TUESDAY, 11))
    await store.bookings.create(
        NewBooking("ben", "local", ny(TUESDAY, 11), ny(TUESDAY, 11, 30), ANA, "ben-late")
    )
    missed = await service.book("demo", choice, details("CA2"), preference=AT_TEN)
    assert isinstance(missed, SlotUnavailable)
    assert await confirmed(store, "ana") == ["Tue 10:00"]
    assert await confirmed(store, "ben") == ["Tue 09:00", "Tue 10:00", "Tue 11:00"]


async def test_cancel_by_id_and_by_phone(store: Store) -> None:
    service = local_service(store, ("main",))
    first = await service.book("demo", await offer_at(service, ny(TUESDAY, 10)), details("CA1"))
    second = await service.book("demo", await offer_at(service, ny(TUESDAY, 15)), details("CA2"))
    assert isinstance(first, Booked) and isinstance(second, Booked)
    await store.reminders.schedule(first.booking_id, {"1h": ny(TUESDAY, 9)})
    upcoming = await service.upcoming_for_phone("(555) 010-2030")
    assert [item.id for item in upcoming] == [first.booking_id, second.booking_id]
    cancelled = await service.cancel_by_phone("5550102030", reason="caller asked")
    assert cancelled is not None and cancelled.id == first.booking_id
    assert cancelled.status == "cancelled"
    assert await store.reminders.for_booking(first.booking_id) == []
    assert await confirmed(store, "main") == ["Tue 15:00"]
    again = await service.cancel(first.booking_id)
    assert again is not None and again.status == "cancelled"
    assert await service.cancel("NOSUCHID") is None
    assert await service.cancel_by_phone("+1 999 999 9999") is None
    # The freed time can be booked again, even by the same call.
    rebooked = await service.book("demo", await offer_at(service, ny(TUESDAY, 10)), details("CA1"))
    assert isinstance(rebooked, Booked) and rebooked.booking_id != first.booking_id


async def test_reschedule_moves_in_one_write_and_keeps_the_booking_if_taken(
    store: Store,
) -> None:
    service = local_service(store, ("main",))
    made = await service.book("demo", await offer_at(service, ny(TUESDAY, 10)), details("CA1"))
    other = await service.book("demo", await offer_at(service, ny(TUESDAY, 14)), details("CA2"))
    assert isinstance(made, Booked) and isinstance(other, Booked)
    old = made.bookings[0]
    offered = await service.availability("demo", AT_TEN, ignore=old)
    assert offered.at(ny(TUESDAY, 10)) is not None  # its own time is free to it
    target = offered.at(ny(TUESDAY, 11))
    assert target is not None
    moved = await service.reschedule(old.id, target, call_sid="CA3", preference=AT_TEN)
    assert isinstance(moved, Booked) and moved.booking_id == old.id  # same booking, new time
    assert await confirmed(store, "main") == ["Tue 11:00", "Tue 14:00"]
    # The target is taken meanwhile: nothing moves, alternatives come back.
    stale = PooledSlot(other.slot, ("main",))
    missed = await service.reschedule(old.id, stale, call_sid="CA3", preference=AT_TEN)
    assert isinstance(missed, SlotUnavailable)
    assert await confirmed(store, "main") == ["Tue 11:00", "Tue 14:00"]
    with pytest.raises(ValueError, match="no confirmed booking"):
        await service.reschedule("NOSUCHID", target, call_sid="CA3")


async def test_reschedule_across_calendars_books_new_before_cancelling_old(store: Store) -> None:
    service = local_service(store, ("ana", "ben"))
    made = await service.book("demo", await offer_at(service, ny(TUESDAY, 10)), details("CA1"))
    assert isinstance(made, Booked)
    await store.bookings.create(
        NewBooking("ana", "local", ny(TUESDAY, 12), ny(TUESDAY, 12, 30), ANA, "ana-noon")
    )
    target = await offer_at(service, ny(TUESDAY, 12))
    assert target.calendars == ("ben",)
    moved = await service.reschedule(made.booking_id, target, call_sid="CA9")
    assert isinstance(moved, Booked) and moved.booking_id != made.booking_id
    assert moved.bookings[0].fields["rescheduled_from"] == made.booking_id
    assert moved.bookings[0].attendee == ANA
    old = await store.bookings.get(made.booking_id)
    assert old is not None and old.status == "cancelled"


async def test_a_failed_calendar_write_leaves_nothing_behind(store: Store) -> None:
    class Refusing(LocalCalendar):
        """A calendar whose writes fail with a plain provider error (not SlotTaken)."""

        async def create(self, request: BookingRequest) -> ProviderBooking:
            raise ProviderError("vendor", "HTTP 503")

    handles = {"main": CalendarHandle("main", Refusing(store, "main"), "vendor", NEW_YORK)}
    service = BookingService(
        store, handles, {"demo": ActionConfig("demo", ("main",))}, clock=lambda: NOW
    )
    choice = await offer_at(service, ny(TUESDAY, 10))
    with pytest.raises(ProviderError, match="503"):
        await service.book("demo", choice, details("CA1"))
    assert await confirmed(store, "main") == []
    assert await store.holds.live("main", NOW, NOW + timedelta(days=30)) == []
