"""Slotline's own rules on calendars whose vendor computes the slots, built as the server builds
them (settings → build_calendars → start → BookingService.from_settings) against the Cal.com and
GHL emulators over 127.0.0.1: business hours, date overrides, minimum notice and the daily limit
apply on top of the vendor's slots; buffers and a slot interval stop start-up with a message
saying where to set them instead; a differing duration gives way to the vendor's length."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from pydantic import SecretStr

from slotline.agent.booking.service import BookingService
from slotline.agent.booking.service_types import Booked, BookingDetails, Preference
from slotline.agent.config_models import Secrets, Settings
from slotline.agent.server.calendars import CalendarAdapters, build_calendars
from slotline.agent.store import open_store
from slotline.providers.calendars.base import Attendee
from slotline.providers.emulators.calcom import CalcomEmulator
from slotline.providers.emulators.calcom_rules import WEEKDAYS, EventType
from slotline.providers.emulators.ghl import GhlCalendarRules, GhlEmulator
from slotline.providers.errors import ConfigError

KEY, TOKEN, LOCATION = "cal_live_rules_0123456789", "pit-rules", "loc-rules"
NY = "America/New_York"
EVENT, GHL_CAL = 910, "cal-rules"
NOW = datetime(2026, 11, 30, 14, 0, tzinfo=UTC)  # Monday 09:00 in New York
EVERY_DAY = {day: (("09:00", "17:00"),) for day in WEEKDAYS}
ANN = Attendee("Ann Lee", "ann@example.com", "+15551230000", NY)


def clock() -> datetime:
    return NOW


@pytest.fixture
async def calcom() -> AsyncIterator[CalcomEmulator]:
    async with CalcomEmulator(KEY, [EventType(EVENT, 30, NY, weekly_hours=EVERY_DAY)],
                              clock=clock) as emulator:
        yield emulator


def settings(emu: CalcomEmulator | GhlEmulator, **action: Any) -> Settings:
    if isinstance(emu, CalcomEmulator):
        calendar = {"provider": "calcom", "event_type_id": EVENT}
    else:
        calendar = {"provider": "ghl", "calendar_id": GHL_CAL, "location_id": LOCATION}
    return Settings.model_validate({
        "calendars": {"vendor": {**calendar, "timezone": NY, "base_url": emu.base_url}},
        "booking_actions": {"visit": {"calendars": ["vendor"], **action}},
    })


SECRETS = Secrets(calcom_api_key=SecretStr(KEY), ghl_api_token=SecretStr(TOKEN))


async def started(conf: Settings, http: aiohttp.ClientSession) -> CalendarAdapters:
    adapters = build_calendars(conf, SECRETS, http)
    await adapters.start()
    return adapters


def local(slot_start: datetime) -> str:
    return slot_start.astimezone(ZoneInfo(NY)).strftime("%a %H:%M")


async def test_hours_overrides_notice_and_daily_limit_apply_on_top(
    calcom: CalcomEmulator, tmp_path: Path
) -> None:
    conf = settings(
        calcom,
        business_hours={"mon": ["09:00-17:00"], "tue": ["10:00-12:00"], "wed": ["09:00-17:00"]},
        date_overrides={"2026-12-02": []},  # Wednesday closed
        min_notice_min=120,
        daily_limit=1,
    )
    async with aiohttp.ClientSession() as http, open_store(f"sqlite:///{tmp_path}/s.db") as store:
        adapters = await started(conf, http)
        service = BookingService.from_settings(conf, store, adapters.by_name, clock=clock)
        first_days = Preference(NOW.date(), time(9), timezone=NY)
        found = await service.availability("visit", first_days)
        starts = [local(item.slot.start) for item in found.offered
                  if item.slot.start < datetime(2026, 12, 4, tzinfo=UTC)]
        monday = [f"Mon {h:02d}:{m:02d}" for h in range(11, 17) for m in (0, 30)]
        assert starts == [*monday, "Tue 10:00", "Tue 10:30", "Tue 11:00", "Tue 11:30"]
        tuesday = next(item for item in found.offered if local(item.slot.start) == "Tue 10:00")
        booked = await service.book("visit", tuesday, BookingDetails(ANN, "CA-rules"))
        assert isinstance(booked, Booked)
        again = await service.availability("visit", first_days)
        assert not [item for item in again.offered if local(item.slot.start).startswith("Tue")]
        await adapters.aclose()
    assert len(calcom.live_bookings()) == 1


@pytest.mark.parametrize(("rule", "value", "said"), [
    ("buffer_after_min", 10, "buffer_before_min/buffer_after_min cannot apply"),
    ("buffer_before_min", 5, "set the buffers on the vendor's event type or calendar"),
    ("slot_interval_min", 15, "slot_interval_min cannot apply"),
])
async def test_rules_a_vendor_calendar_cannot_honour_stop_start_up(
    calcom: CalcomEmulator, rule: str, value: int, said: str
) -> None:
    async with aiohttp.ClientSession() as http:
        with pytest.raises(ConfigError) as stopped:
            await started(settings(calcom, **{rule: value}), http)
    assert said in str(stopped.value) and "booking_actions.visit" in str(stopped.value)


async def test_on_ghl_too_and_the_vendors_length_wins(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    every_day = {day: ((time(9), time(17)),) for day in range(7)}
    rules = GhlCalendarRules(GHL_CAL, NY, 45, slot_interval_min=60, weekly_hours=every_day)
    async with GhlEmulator(token=TOKEN, location_id=LOCATION, calendars=(rules,),
                           clock=clock) as ghl:
        async with aiohttp.ClientSession() as http:
            with pytest.raises(ConfigError, match="buffer"):
                await started(settings(ghl, buffer_before_min=15), http)
            conf = settings(ghl, business_hours={"mon": ["13:00-15:00"]}, min_notice_min=0)
            adapters = await started(conf, http)
            assert "duration_min is 30 but calendar 'vendor' books 45 min" in caplog.text
            async with open_store(f"sqlite:///{tmp_path}/g.db") as store:
                service = BookingService.from_settings(conf, store, adapters.by_name,
                                                       clock=clock)
                found = await service.availability("visit", Preference(NOW.date(), time(13),
                                                                       timezone=NY))
            await adapters.aclose()
    monday = [item.slot for item in found.offered if item.slot.start < datetime(
        2026, 12, 1, tzinfo=UTC)]
    assert [local(s.start) for s in monday] == ["Mon 13:00", "Mon 14:00"]  # 15:00 ends at 15:45
    assert {(s.end - s.start).total_seconds() for s in monday} == {45 * 60}


async def test_hours_nobody_configured_leave_the_vendors_weekend_open(
    calcom: CalcomEmulator, tmp_path: Path
) -> None:
    """The office-hours default (Mon-Fri 9-17) is Slotline's when it computes slots; on a
    Cal.com event type open at weekends it must not hide Saturday. Set hours do apply."""
    saturday = datetime(2026, 12, 5).date()
    found = {}
    async with aiohttp.ClientSession() as http:
        for label, extra in (("default", {}),
                             ("weekdays", {"business_hours": {"mon": ["09:00-17:00"]}})):
            conf = settings(calcom, min_notice_min=0, **extra)
            adapters = await started(conf, http)
            async with open_store(f"sqlite:///{tmp_path}/{label}.db") as store:
                service = BookingService.from_settings(conf, store, adapters.by_name,
                                                       clock=clock)
                found[label] = await service.availability(
                    "visit", Preference(saturday, time(10), timezone=NY))
            await adapters.aclose()
    days = {label: {local(item.slot.start)[:3] for item in result.offered}
            for label, result in found.items()}
    assert "Sat" in days["default"]
    assert days["weekdays"] <= {"Mon"}
