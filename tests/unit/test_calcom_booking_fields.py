"""A Cal.com event type's own settings, over 127.0.0.1 against the Cal.com emulator: its custom
booking questions answered in ``bookingFieldsResponses`` from flow variables (by slug, or mapped),
extra attendees as ``guests``, its own length on slots and bookings, and a required question left
unanswered refused by Cal.com (the emulator) with the vendor's reason."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from slotline.providers.calendars.base import Attendee, BookingRequest
from slotline.providers.calendars.calcom import CalcomCalendar
from slotline.providers.calendars.vendor import VendorSettingsReader
from slotline.providers.emulators.calcom import CalcomEmulator
from slotline.providers.emulators.calcom_rules import EventType
from slotline.providers.errors import ProviderError
from slotline.providers.http import RetryPolicy

KEY = "cal_live_fields_0123456789"
NY = "America/New_York"
INTAKE, LONG = 710, 720
FAST = RetryPolicy(base_delay_s=0.001, max_delay_s=0.01, request_timeout_s=1.0, deadline_s=2.0)
DEC1_10AM = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)  # Tuesday 10:00 in New York
QUESTIONS = (
    {"type": "text", "slug": "company", "label": "Company", "required": True},
    {"type": "number", "slug": "seats", "label": "How many people?", "required": False},
    {"type": "boolean", "slug": "returning", "label": "Been here before?", "required": False},
)


def now() -> datetime:
    return datetime(2026, 10, 28, 12, 0, tzinfo=UTC)


@pytest.fixture
async def emu() -> AsyncIterator[CalcomEmulator]:
    events = [
        EventType(INTAKE, 30, NY, slug="intake", booking_fields=QUESTIONS,
                  meeting_link="https://meet.example.com/intake"),
        EventType(LONG, 45, NY, slug="long-consult"),
    ]
    async with CalcomEmulator(KEY, events, clock=now) as emulator:
        yield emulator


def ask(fields: dict[str, str], start: datetime = DEC1_10AM, minutes: int = 30) -> BookingRequest:
    return BookingRequest(
        start, start + timedelta(minutes=minutes),
        Attendee("Ann Lee", "ann@example.com", "+15551234567", NY), f"call-{start:%H%M}",
        "Intake", fields,
    )


async def test_the_event_type_is_read_once_and_names_its_required_question(
    emu: CalcomEmulator,
) -> None:
    async with CalcomCalendar(emu.base_url, KEY, INTAKE, retry=FAST) as cal:
        assert isinstance(cal, VendorSettingsReader)
        assert cal.required_variables() == {}  # nothing known before start-up reads it
        facts = await cal.prepare()
        await cal.prepare()
        assert emu.counts["GET /v2/event-types/{id}"] == 1
        assert (facts.length_min, cal.length_min) == (30, 30)
        assert [f.slug for f in facts.custom_fields] == ["company", "seats", "returning"]
        assert facts.meeting_link == "https://meet.example.com/intake"
        assert cal.required_variables() == {"company": "company"}
    async with CalcomCalendar(emu.base_url, KEY, INTAKE, retry=FAST,
                              fields={"company": "business_name"}) as mapped:
        await mapped.prepare()
        assert mapped.required_variables() == {"company": "business_name"}


async def test_flow_variables_answer_the_questions_and_guests_are_invited(
    emu: CalcomEmulator,
) -> None:
    async with CalcomCalendar(emu.base_url, KEY, INTAKE, retry=FAST,
                              fields={"company": "business_name"}) as cal:
        await cal.prepare()
        made = await cal.create(ask({
            "business_name": "Lee Bakery", "seats": "3", "returning": "yes", "notes": "first",
            "guests": "bo@example.com, ann@example.com; not-an-address cy@example.org",
        }))
    [stored] = emu.live_bookings()
    assert stored["uid"] == made.provider_booking_id
    responses = stored["bookingFieldsResponses"]
    assert (responses["company"], responses["seats"], responses["returning"]) == (
        "Lee Bakery", 3, True)
    assert stored["guests"] == ["bo@example.com", "cy@example.org"]  # the booker not twice
    assert [a["email"] for a in stored["attendees"]] == [
        "ann@example.com", "bo@example.com", "cy@example.org"]
    assert stored["meetingUrl"] == "https://meet.example.com/intake"


async def test_a_required_question_left_unanswered_is_refused_with_cal_coms_reason(
    emu: CalcomEmulator,
) -> None:
    async with CalcomCalendar(emu.base_url, KEY, INTAKE, retry=FAST) as cal:
        with pytest.raises(ProviderError, match="company"):
            await cal.create(ask({"seats": "2"}))
    assert emu.live_bookings() == []


async def test_slots_and_bookings_are_the_event_types_length_not_the_actions(
    emu: CalcomEmulator,
) -> None:
    async with CalcomCalendar(emu.base_url, KEY, LONG, retry=FAST) as cal:
        await cal.prepare()
        assert cal.length_min == 45
        day = datetime(2026, 12, 1, 14, tzinfo=UTC), datetime(2026, 12, 1, 22, tzinfo=UTC)
        slots = await cal.free_slots(*day, 30, NY)  # the action said 30; the event type says 45
        assert {s.end - s.start for s in slots} == {timedelta(minutes=45)}
        made = await cal.create(ask({}, slots[0].start, minutes=45))
    assert made.end - made.start == timedelta(minutes=45)
    assert emu.live_bookings()[0]["duration"] == 45


async def test_an_unknown_event_type_stops_prepare_naming_it(emu: CalcomEmulator) -> None:
    async with CalcomCalendar(emu.base_url, KEY, 999, retry=FAST) as cal:
        with pytest.raises(ProviderError, match="event type 999 not found"):
            await cal.prepare()


async def test_a_team_event_type_books_with_the_mapped_fields_alone() -> None:
    team = EventType(730, 30, NY, slug="team-intake", booking_fields=QUESTIONS, team_id=5)
    async with CalcomEmulator(KEY, [team], clock=now) as emu:
        async with CalcomCalendar(emu.base_url, KEY, 730, retry=FAST,
                                  fields={"company": "business_name"}) as cal:
            assert await cal.prepare() is None  # unreadable with this key: logged, not fatal
            assert cal.required_variables() == {} and cal.length_min is None
            await cal.create(ask({"business_name": "Lee Bakery", "seats": "4"}))
        [stored] = emu.live_bookings()
    assert stored["bookingFieldsResponses"]["company"] == "Lee Bakery"
    assert "seats" not in stored["bookingFieldsResponses"]  # not mapped: not sent


async def test_calendars_list_shows_the_event_types_and_their_questions(
    emu: CalcomEmulator,
) -> None:
    command = [sys.executable, "-m", "slotline.agent.cli", "calendars", "list", "--provider",
               "calcom", "--base-url", emu.base_url]
    done = await asyncio.create_subprocess_exec(
        *command, env={**os.environ, "CALCOM_API_KEY": KEY}, cwd=Path(__file__).parent,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await done.communicate()
    assert done.returncode == 0, err.decode()
    assert out.decode().splitlines() == [
        "Cal.com: 2 event type(s)",
        f"  {INTAKE}  Intake  30 min  asks: company",
        f"  {LONG}  Long Consult  45 min",
    ]
