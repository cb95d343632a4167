"""agent.booking.service availability: calendars asked concurrently, each under its own timeout.

Real local calendars on the store (SQLite and PostgreSQL) plus fake vendor calendars: classes
implementing ``CalendarProvider`` that wait at a barrier, sleep, or fail.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from slotline.agent.booking.local_calendar import LocalCalendar
from slotline.agent.booking.service import BookingService
from slotline.agent.booking.service_types import ActionConfig, CalendarHandle, Preference
from slotline.agent.booking.speech import speak_slots, spoken_start
from slotline.agent.config_models import Settings
from slotline.agent.store import NewBooking, Store, open_store
from slotline.providers.calendars.base import (
    Attendee,
    BookingRequest,
    BusyInterval,
    CalendarProvider,
    ProviderBooking,
)
from slotline.providers.errors import ConfigError, ProviderError, ProviderTimeout

NEW_YORK = "America/New_York"
NY = ZoneInfo(NEW_YORK)
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)  # Monday 08:00 in New York
TUESDAY = date(2026, 6, 2)


def ny(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), NY)


class VendorCalendar:
    """A fake vendor calendar: optional barrier, delay or failure before answering."""

    def __init__(
        self,
        busy: Sequence[BusyInterval] = (),
        *,
        delay_s: float = 0.0,
        barrier: asyncio.Barrier | None = None,
        error: ProviderError | None = None,
    ) -> None:
        self._busy = list(busy)
        self._delay_s = delay_s
        self._barrier = barrier
        self._error = error
        self.calls = 0

    async def busy(self, start: datetime, end: datetime) -> Sequence[BusyInterval]:
        self.calls += 1
        if self._barrier is not None:
            await self._barrier.wait()  # returns only once every pooled calendar is asking
        await asyncio.sleep(self._delay_s)
        if self._error is not None:
            raise self._error
        return [item for item in self._busy if item.start < end and item.end > start]

    async def create(self, request: BookingRequest) -> ProviderBooking:
        raise ProviderError("vendor", "this fake only answers busy-time queries")

    async def get(self, provider_booking_id: str) -> ProviderBooking | None:
        return None

    async def cancel(self, provider_booking_id: str, reason: str = "") -> ProviderBooking:
        raise ProviderError("vendor", "this fake only answers busy-time queries")


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    async with open_store(store_url, clock=lambda: NOW) as opened:
        yield opened


def service(
    store: Store,
    calendars: dict[str, CalendarProvider | None],
    **rules: object,
) -> BookingService:
    """Calendars by name (None = a local calendar on the store), pooled by action "demo"."""
    handles = {
        name: CalendarHandle(
            name,
            LocalCalendar(store, name) if provider is None else provider,
            "local" if provider is None else "vendor",
            NEW_YORK,
        )
        for name, provider in calendars.items()
    }
    action = ActionConfig("demo", tuple(calendars), **rules)  # type: ignore[arg-type]
    return BookingService(store, handles, {"demo": action}, clock=lambda: NOW)


async def book_directly(store: Store, calendar: str, start: datetime, key: str) -> None:
    await store.bookings.create(
        NewBooking(calendar, "local", start, start + timedelta(minutes=30), Attendee("X"), key)
    )


async def test_proposals_are_nearest_the_preference_and_skip_booked_time(store: Store) -> None:
    await book_directly(store, "main", ny(TUESDAY, 10), "taken")
    result = await service(store, {"main": None}).availability(
        "demo", Preference(TUESDAY, time(10, 0), timezone=NEW_YORK)
    )
    assert [p.slot.start for p in result.proposals] == [
        ny(TUESDAY, 9, 30), ny(TUESDAY, 10, 30), ny(TUESDAY, 9),
    ]  # fmt: skip
    said = speak_slots([p.slot for p in result.proposals], result.timezone, NOW)
    assert said == "I have 9 am, 9:30 am and 10:30 am tomorrow"
    assert all(p.calendars == ("main",) for p in result.proposals)
    assert result.failures == ()
    assert result.at(ny(TUESDAY, 16, 30)) is not None
    assert result.at(ny(TUESDAY, 10)) is None  # booked
    assert result.at(ny(TUESDAY, 17)) is None  # closed


async def test_rules_defaults_hours_notice_and_horizon(store: Store) -> None:
    result = await service(store, {"main": None}).availability("demo")
    starts = [item.slot.start for item in result.offered]
    # Monday 08:00 now + 60 min notice: the first slot is 09:00 today, the last within 30 days.
    assert starts[0] == ny(date(2026, 6, 1), 9)
    assert all(start.astimezone(NY).weekday() < 5 for start in starts)
    assert all(time(9) <= start.astimezone(NY).time() < time(17) for start in starts)
    assert max(starts) <= NOW + timedelta(days=14)  # lookahead_days without a preferred date
    london = await service(store, {"main": None}).availability(
        "demo", Preference(time_of_day="afternoon", timezone="Europe/London")
    )
    # Judged and spoken in the caller's zone: New York opens at 9 am, 2 pm in London.
    assert london.timezone == "Europe/London"
    assert london.proposals[0].slot.start == ny(date(2026, 6, 1), 9)
    assert spoken_start(london.proposals[0].slot.start, london.timezone, NOW) == ("today", "2 pm")


async def test_calendars_are_asked_at_the_same_time(store: Store) -> None:
    # Each fake answers only when all three are waiting at the barrier: asked one after the
    # other, the first would wait until its timeout and the look-up would report failures.
    barrier = asyncio.Barrier(3)
    fakes = {name: VendorCalendar(barrier=barrier) for name in ("ana", "ben", "cy")}
    result = await service(store, dict(fakes), calendar_timeout_s=30.0).availability("demo")
    assert result.failures == ()
    assert [fake.calls for fake in fakes.values()] == [1, 1, 1]
    assert result.proposals


async def test_a_slow_calendar_costs_its_timeout_and_is_reported(store: Store) -> None:
    slow = VendorCalendar(delay_s=3600.0)
    vendor_busy = [BusyInterval(ny(TUESDAY, 9), ny(TUESDAY, 17))]
    result = await service(
        store,
        {"main": None, "vendor": VendorCalendar(vendor_busy), "slow": slow},
        calendar_timeout_s=0.2,
        strategy="first_available",
    ).availability("demo", Preference(TUESDAY, timezone=NEW_YORK))
    assert [(f.calendar, type(f.error)) for f in result.failures] == [("slow", ProviderTimeout)]
    assert 150.0 <= result.failures[0].elapsed_ms < 3_600_000.0  # cut at its timeout
    assert result.proposals and all(p.calendars == ("main",) for p in result.proposals)
    assert all(p.alternates == () for p in result.proposals)  # vendor is busy all day


async def test_failing_calendars_are_skipped_or_fail_the_lookup_by_setting(store: Store) -> None:
    broken = VendorCalendar(error=ProviderError("vendor", "HTTP 500"))
    skipping = service(store, {"main": None, "broken": broken})
    result = await skipping.availability("demo")
    assert [f.calendar for f in result.failures] == ["broken"]
    assert result.proposals
    strict = service(store, {"main": None, "broken": broken}, skip_failed_calendars=False)
    with pytest.raises(ProviderError, match="HTTP 500"):
        await strict.availability("demo")
    # Collective needs every calendar, so a failure always fails it; so does losing them all.
    collective = service(store, {"main": None, "broken": broken}, strategy="collective")
    with pytest.raises(ProviderError):
        await collective.availability("demo")
    only_broken = service(store, {"broken": broken})
    with pytest.raises(ProviderError):
        await only_broken.availability("demo")


async def test_other_callers_holds_hide_a_slot_but_not_from_the_holder(store: Store) -> None:
    booking = service(store, {"main": None})
    first = await booking.availability("demo", Preference(TUESDAY, time(10), timezone=NEW_YORK))
    assert await booking.hold("demo", first.proposals[0], call_sid="CA-1")
    held = first.proposals[0].slot
    for_other = await booking.availability(
        "demo", Preference(TUESDAY, time(10), timezone=NEW_YORK), call_sid="CA-2"
    )
    assert held not in [p.slot for p in for_other.proposals]
    assert not await booking.hold("demo", first.proposals[0], call_sid="CA-2")
    for_holder = await booking.availability(
        "demo", Preference(TUESDAY, time(10), timezone=NEW_YORK), call_sid="CA-1"
    )
    assert for_holder.proposals[0].slot == held


async def test_daily_limit_and_buffers(store: Store) -> None:
    await book_directly(store, "main", ny(TUESDAY, 12), "one")
    limited = service(store, {"main": None}, daily_limit=1)
    result = await limited.availability("demo", Preference(TUESDAY, timezone=NEW_YORK))
    assert all(item.slot.start.astimezone(NY).date() != TUESDAY for item in result.offered)
    buffered = service(store, {"main": None}, buffer_before_min=30, buffer_after_min=30)
    result = await buffered.availability("demo", Preference(TUESDAY, timezone=NEW_YORK))
    tuesday = {item.slot.start for item in result.offered}
    assert ny(TUESDAY, 11) in tuesday and ny(TUESDAY, 13) in tuesday
    assert ny(TUESDAY, 11, 30) not in tuesday and ny(TUESDAY, 12, 30) not in tuesday


async def test_service_from_settings_uses_local_calendars(store: Store) -> None:
    built = BookingService.from_settings(Settings(), store, clock=lambda: NOW)
    assert built.action("demo").min_notice_min == 60
    assert (await built.availability("demo")).proposals
    vendor_settings = Settings.model_validate(
        {"calendars": {"main": {"provider": "calcom", "timezone": NEW_YORK, "event_type_id": 1}}}
    )
    with pytest.raises(ConfigError, match=r"calendars\.main\.provider"):
        BookingService.from_settings(vendor_settings, store)
    with pytest.raises(ValueError, match="no booking action"):
        await built.availability("nope")
