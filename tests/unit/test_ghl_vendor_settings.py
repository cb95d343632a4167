"""A GoHighLevel calendar's own settings and the business's booking options, against the GHL
emulator over 127.0.0.1 (every request checked against GHL's OpenAPI documents): the
appointment's status (auto_confirm) and title template, the contact's tags (added to its own)
and custom fields from flow variables, the calendar's slot length read from GHL, and
``slotline calendars list`` listing a location's calendars (the real command, as a process)."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import aiohttp
import pytest

from slotline.providers.calendars.base import Attendee, BookingRequest
from slotline.providers.calendars.ghl import GhlCalendar
from slotline.providers.calendars.ghl_settings import BookingOptions, render
from slotline.providers.calendars.vendor import VendorSettingsReader
from slotline.providers.emulators.ghl import GhlCalendarRules, GhlEmulator
from slotline.providers.http import RetryPolicy

TOKEN = "pit-settings-token"
LOCATION = "loc-settings"
SHORT, LONG = "cal-short", "cal-long"
NOW = datetime(2026, 10, 26, 12, 0, tzinfo=UTC)  # a Monday
EVERY_DAY = {day: ((time(9), time(17)),) for day in range(7)}
FAST = RetryPolicy(attempts=3, base_delay_s=0.001, max_delay_s=0.01, request_timeout_s=1.0,
                   deadline_s=3.0)
START = datetime(2026, 10, 28, 14, 0, tzinfo=UTC)  # Wednesday 10:00 in New York
ANN = Attendee("Ann Lee", "ann@example.com", "+15550100001", "America/New_York")
OPTIONS = BookingOptions(
    auto_confirm=False, title="{service} for {user_name}", tags=("voice-booking", "{service}"),
    fields={"cf-company-id": "company", "cf-budget-id": "budget"},
)


@pytest.fixture
async def emu() -> AsyncIterator[GhlEmulator]:
    calendars = (
        GhlCalendarRules(SHORT, "America/New_York", 30, weekly_hours=EVERY_DAY, name="Intro"),
        GhlCalendarRules(LONG, "America/New_York", 45, slot_interval_min=60,
                         weekly_hours=EVERY_DAY, name="Deep dive"),
    )
    async with GhlEmulator(token=TOKEN, location_id=LOCATION, calendars=calendars,
                           clock=lambda: NOW) as emulator:
        yield emulator


def ask(fields: dict[str, str], minutes: int = 30) -> BookingRequest:
    return BookingRequest(START, START + timedelta(minutes=minutes), ANN, "call-9", "Booking",
                          fields)


async def test_status_title_tags_and_custom_fields_come_from_the_options(
    emu: GhlEmulator,
) -> None:
    values = {"service": "Haircut", "user_name": "Ann Lee", "company": "Lee Bakery",
              "budget": ""}
    async with GhlCalendar(emu.base_url, TOKEN, SHORT, LOCATION, retry=FAST,
                           booking=OPTIONS) as cal:
        async with aiohttp.ClientSession() as http:  # a returning contact, tagged by staff
            async with http.post(
                emu.base_url + "/contacts/upsert",
                json={"locationId": LOCATION, "name": ANN.name, "email": ANN.email,
                      "tags": ["vip"]},
                headers={"Authorization": f"Bearer {TOKEN}", "Version": "2021-07-28"},
            ) as response:
                assert response.status == 200
        made = await cal.create(ask(values))
        [contact] = emu.contacts.values()
    [appointment] = emu.appointments.values()
    assert appointment.id == made.provider_booking_id
    assert appointment.status == "new"  # auto_confirm off: staff confirm it
    assert made.status == "confirmed"  # a "new" appointment still holds the time
    assert appointment.title == "Haircut for Ann Lee"
    assert contact.tags == ["vip", "voice-booking", "Haircut"]  # added, the contact's own kept
    assert contact.custom_fields == {"cf-company-id": "Lee Bakery"}  # an empty one not sent
    assert not emu.rejections


async def test_defaults_confirm_and_keep_the_request_title(emu: GhlEmulator) -> None:
    async with GhlCalendar(emu.base_url, TOKEN, SHORT, LOCATION, retry=FAST) as cal:
        await cal.create(ask({"service": "Haircut"}))
    [appointment] = emu.appointments.values()
    assert (appointment.status, appointment.title) == ("confirmed", "Booking")
    [contact] = emu.contacts.values()
    assert contact.tags == [] and contact.custom_fields == {}
    assert emu.counts.get("POST /contacts/{contactId}/tags", 0) == 0


async def test_the_calendars_slot_length_is_read_and_offered(emu: GhlEmulator) -> None:
    async with GhlCalendar(emu.base_url, TOKEN, LONG, LOCATION, retry=FAST,
                           booking=OPTIONS) as cal:
        assert isinstance(cal, VendorSettingsReader)
        info = await cal.prepare()
        assert (info.name, info.length_min, cal.length_min) == ("Deep dive", 45, 45)
        day = START - timedelta(hours=1), START + timedelta(hours=8)
        slots = await cal.free_slots(*day, 30, "America/New_York")
        assert slots and {s.end - s.start for s in slots} == {timedelta(minutes=45)}
        assert cal.required_variables() == {
            "customFields.cf-company-id": "company", "customFields.cf-budget-id": "budget",
            "title.service": "service", "title.user_name": "user_name",
            "tags.service": "service",
        }


def test_templates_leave_unset_variables_empty() -> None:
    assert render("{service} for {user_name}", {"user_name": "Bo"}) == "for Bo"
    assert render("plain", {}) == "plain"


async def test_calendars_list_shows_the_locations_calendars(emu: GhlEmulator) -> None:
    command = [sys.executable, "-m", "slotline.agent.cli", "calendars", "list",
               "--location", LOCATION, "--base-url", emu.base_url]
    env = {**os.environ, "GHL_API_TOKEN": TOKEN}
    done = await asyncio.create_subprocess_exec(
        *command, env=env, cwd=Path(__file__).parent, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await done.communicate()
    assert done.returncode == 0, err.decode()
    lines = out.decode().splitlines()
    assert lines[0] == f"location {LOCATION}: 2 calendar(s)"
    assert lines[1].split("  ") == ["", SHORT, "Intro", "30 min", "event"]
    assert lines[2].split("  ") == ["", LONG, "Deep dive", "45 min", "event"]

    wrong = {**env, "GHL_API_TOKEN": "wrong"}
    refused = await asyncio.create_subprocess_exec(
        *command, env=wrong, cwd=Path(__file__).parent, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await refused.communicate()
    assert refused.returncode == 1 and f"location {LOCATION}" in err.decode()
