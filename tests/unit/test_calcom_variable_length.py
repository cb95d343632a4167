"""Cal.com variable-length event types ("multiple durations", ``lengthInMinutesOptions``) over
127.0.0.1 against the Cal.com emulator.

The emulator does what Cal.com documents: ``GET /v2/slots`` honours ``duration``, a booking's
``lengthInMinutes`` (and a reservation's ``slotDuration``) must be one of the options, and a
fixed-length event type refuses both. Slotline's booking action picks the length with its
``duration_min``: slots are searched, held and booked that long, a reschedule keeps it, and a
length the event type does not offer stops start-up naming the lengths it does."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, time, timedelta
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
from slotline.providers.calendars.base import Attendee, BookingRequest
from slotline.providers.calendars.calcom import CalcomCalendar
from slotline.providers.emulators.calcom import SINGLE_LENGTH, CalcomEmulator
from slotline.providers.emulators.calcom_rules import EventType
from slotline.providers.errors import ConfigError, ProviderError
from slotline.providers.http import RetryPolicy

KEY = "cal_live_lengths_0123456789"
NY = "America/New_York"
FLEX, FIXED = 930, 931  # 15/30/60 min, default 30; a fixed 30 min
NOW = datetime(2026, 11, 30, 14, 0, tzinfo=UTC)  # Monday 09:00 in New York
TUE_10AM = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
TUESDAY = (datetime(2026, 12, 1, 14, tzinfo=UTC), datetime(2026, 12, 1, 22, tzinfo=UTC))
FAST = RetryPolicy(base_delay_s=0.001, max_delay_s=0.01, request_timeout_s=2.0, deadline_s=4.0)
ANN = Attendee("Ann Lee", "ann@example.com", "+15551230000", NY)


def clock() -> datetime:
    return NOW


@pytest.fixture
async def emu() -> AsyncIterator[CalcomEmulator]:
    events = [EventType(FLEX, 30, NY, slug="consult", length_options_min=(15, 30, 60)),
              EventType(FIXED, 30, NY, slug="intro")]
    async with CalcomEmulator(KEY, events, clock=clock) as emulator:
        yield emulator


async def call(emu: CalcomEmulator, method: str, path: str, version: str, *,
               params: dict[str, str] | None = None,
               body: dict[str, Any] | None = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {KEY}", "cal-api-version": version}
    async with aiohttp.ClientSession() as http, http.request(
        method, emu.base_url + path, params=params, json=body, headers=headers
    ) as response:
        return response.status, await response.json()


def slots_query(event: int, **extra: str) -> dict[str, str]:
    return {"eventTypeId": str(event), "start": "2026-12-01T14:00:00Z",
            "end": "2026-12-01T22:00:00Z", "timeZone": NY, "format": "range", **extra}


def booking(event: int, **extra: Any) -> dict[str, Any]:
    return {"start": "2026-12-01T15:00:00Z", "eventTypeId": event,
            "attendee": {"name": "Ann Lee", "email": "ann@example.com", "timeZone": NY},
            **extra}


def minutes_of(slots: Any) -> set[float]:
    return {(datetime.fromisoformat(s["end"]) - datetime.fromisoformat(s["start"]))
            .total_seconds() / 60 for day in slots.values() for s in day}


# ---- the emulator, as Cal.com documents it -----------------------------------------------------


async def test_the_emulator_offers_and_books_the_lengths_of_a_variable_length_event_type(
    emu: CalcomEmulator,
) -> None:
    status, body = await call(emu, "GET", "/v2/event-types/930", "2024-06-14")
    assert (status, body["data"]["lengthInMinutesOptions"]) == (200, [15, 30, 60])
    _, default = await call(emu, "GET", "/v2/slots", "2024-09-04", params=slots_query(FLEX))
    _, hour = await call(emu, "GET", "/v2/slots", "2024-09-04",
                         params=slots_query(FLEX, duration="60"))
    assert minutes_of(default["data"]) == {30} and minutes_of(hour["data"]) == {60}
    assert len(hour["data"]["2026-12-01"]) == 8  # 09:00 … 16:00, stepping by the hour
    status, body = await call(emu, "GET", "/v2/slots", "2024-09-04",
                              params=slots_query(FLEX, duration="45"))
    assert status == 400 and "15, 30, 60" in body["error"]["message"]

    status, body = await call(emu, "POST", "/v2/slots/reservations", "2024-09-04",
                              body={"eventTypeId": FLEX, "slotStart": "2026-12-01T15:00:00Z",
                                    "slotDuration": 60})
    assert (status, body["data"]["slotEnd"]) == (201, "2026-12-01T16:00:00.000Z")
    status, body = await call(emu, "POST", "/v2/bookings", "2024-08-13",
                              body=booking(FLEX, lengthInMinutes=60))
    assert status == 201
    assert (body["data"]["duration"], body["data"]["end"]) == (60, "2026-12-01T16:00:00.000Z")
    _, after = await call(emu, "GET", "/v2/slots", "2024-09-04",
                          params=slots_query(FLEX, duration="30"))
    starts = [s["start"][11:16] for s in after["data"]["2026-12-01"]]
    assert "10:00" not in starts and "10:30" not in starts and "11:00" in starts

    status, body = await call(emu, "POST", "/v2/bookings", "2024-08-13",
                              body=booking(FLEX, lengthInMinutes=45, start="2026-12-01T18:00:00Z"))
    assert status == 400
    assert "'lengthInMinutes' is not one of the possible lengths" in body["error"]["message"]


async def test_a_fixed_length_event_type_refuses_a_length_even_its_own(
    emu: CalcomEmulator,
) -> None:
    status, body = await call(emu, "POST", "/v2/bookings", "2024-08-13",
                              body=booking(FIXED, lengthInMinutes=30))
    assert (status, body["error"]["message"]) == (400, SINGLE_LENGTH)
    status, body = await call(emu, "POST", "/v2/slots/reservations", "2024-09-04",
                              body={"eventTypeId": FIXED, "slotStart": "2026-12-01T15:00:00Z",
                                    "slotDuration": 30})
    assert status == 400 and "not a variable length event type" in body["error"]["message"]
    status, _ = await call(emu, "POST", "/v2/bookings", "2024-08-13", body=booking(FIXED))
    assert status == 201
    assert emu.live_bookings()[0]["duration"] == 30


# ---- the adapter -------------------------------------------------------------------------------


def ask(start: datetime, minutes: int) -> BookingRequest:
    return BookingRequest(start, start + timedelta(minutes=minutes), ANN, f"call-{minutes}",
                          "Consult")


async def test_the_adapter_searches_holds_books_and_moves_the_chosen_length(
    emu: CalcomEmulator,
) -> None:
    async with CalcomCalendar(emu.base_url, KEY, FLEX, retry=FAST) as cal:
        await cal.prepare()
        assert cal.length_options_min == (15, 30, 60)
        slots = await cal.free_slots(*TUESDAY, 60, NY)
        assert {s.end - s.start for s in slots} == {timedelta(minutes=60)}
        made = await cal.create(ask(slots[0].start, 60))
        assert made.end - made.start == timedelta(minutes=60)
        assert not emu.live_holds()  # the hour's hold was taken, then consumed by the booking
        moved = await cal.reschedule(made.provider_booking_id, ask(slots[3].start, 60))
        assert moved.end - moved.start == timedelta(minutes=60)
        with pytest.raises(ProviderError, match="offers 15, 30, 60 min, not 45"):
            await cal.free_slots(*TUESDAY, 45, NY)
        with pytest.raises(ProviderError, match="offers 15, 30, 60 min, not 45"):
            await cal.create(ask(TUE_10AM, 45))
    [live] = emu.live_bookings()
    assert (live["duration"], live["start"]) == (60, "2026-12-01T17:00:00.000Z")
    assert emu.counts["POST /v2/slots/reservations"] == 1


async def test_a_fixed_length_event_type_is_booked_without_a_length(
    emu: CalcomEmulator,
) -> None:
    async with CalcomCalendar(emu.base_url, KEY, FIXED, retry=FAST) as cal:
        await cal.prepare()
        assert cal.length_options_min == ()
        slots = await cal.free_slots(*TUESDAY, 60, NY)  # the event type's 30 min wins
        assert {s.end - s.start for s in slots} == {timedelta(minutes=30)}
        await cal.create(ask(slots[0].start, 30))
    assert emu.live_bookings()[0]["duration"] == 30


# ---- start-up and the booking service, as the server builds them -------------------------------


def settings(emu: CalcomEmulator, duration_min: int) -> Settings:
    return Settings.model_validate({
        "calendars": {"cal": {"provider": "calcom", "event_type_id": FLEX, "timezone": NY,
                              "base_url": emu.base_url}},
        "booking_actions": {"consult": {"calendars": ["cal"], "duration_min": duration_min,
                                        "min_notice_min": 0}},
    })


async def started(conf: Settings, http: aiohttp.ClientSession) -> CalendarAdapters:
    adapters = build_calendars(conf, Secrets(calcom_api_key=SecretStr(KEY)), http)
    await adapters.start()
    return adapters


async def test_the_booking_actions_length_is_offered_and_booked(
    emu: CalcomEmulator, tmp_path: Path
) -> None:
    conf = settings(emu, 60)
    async with aiohttp.ClientSession() as http, open_store(f"sqlite:///{tmp_path}/s.db") as store:
        adapters = await started(conf, http)
        service = BookingService.from_settings(conf, store, adapters.by_name, clock=clock)
        found = await service.availability(
            "consult", Preference(TUESDAY[0].date(), time(10), timezone=NY))
        assert {item.slot.end - item.slot.start for item in found.offered} == {
            timedelta(minutes=60)}
        chosen = next(item for item in found.offered if item.slot.start == TUE_10AM)
        booked = await service.book("consult", chosen, BookingDetails(ANN, "CA-lengths"))
        await adapters.aclose()
    assert isinstance(booked, Booked)
    [live] = emu.live_bookings()
    assert (live["duration"], live["end"]) == (60, "2026-12-01T16:00:00.000Z")
    local = datetime.fromisoformat(live["start"]).astimezone(ZoneInfo(NY))
    assert local.strftime("%a %H:%M") == "Tue 10:00"


async def test_a_length_the_event_type_does_not_offer_stops_start_up(
    emu: CalcomEmulator,
) -> None:
    async with aiohttp.ClientSession() as http:
        with pytest.raises(ConfigError) as stopped:
            await started(settings(emu, 45), http)
    message = str(stopped.value)
    assert "booking_actions.consult: duration_min is 45" in message
    assert "calendar 'cal' offers 15, 30, 60 min" in message
    assert emu.counts["GET /v2/slots"] == 0 and emu.counts["POST /v2/bookings"] == 0


async def test_calendars_list_shows_the_lengths_to_choose_from(emu: CalcomEmulator) -> None:
    command = [sys.executable, "-m", "slotline.agent.cli", "calendars", "list", "--provider",
               "calcom", "--base-url", emu.base_url]
    done = await asyncio.create_subprocess_exec(
        *command, env={**os.environ, "CALCOM_API_KEY": KEY}, cwd=Path(__file__).parent,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await done.communicate()
    assert done.returncode == 0, err.decode()
    assert out.decode().splitlines()[1:] == [
        f"  {FLEX}  Consult  30 min (lengths 15, 30, 60)",
        f"  {FIXED}  Intro  30 min",
    ]
