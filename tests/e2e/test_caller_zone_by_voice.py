"""An out-of-zone caller hears and books times in their own zone: whole calls over the Twilio
media protocol to a real server (offline recogniser, the default demo_booking flow, a local
calendar in New York open 9 am to 5 pm), checked in what the caller heard and in the store.

The caller's voice is flite's rms slowed by a quarter and pitched down to 90 Hz, settings no
other test speaks with, and the phrasings are in no other test nor in the grammars' example
sentences. Measured with flite 2.2 and the offline recogniser at the questions they answer,
each of these lines is read exactly.

- A London number (``user_phone`` +44 20…, as Twilio's ``<Parameter>`` passes the From number):
  "four in the afternoon" is 4 pm in London, said back with New York's clock beside it, and the
  booking starts at 4 pm London time (16:00 UTC in winter).
- No number, and "I'm in California" when asked for a time: the agent says "Got it, Pacific
  time.", asks again, and "eleven in the morning" books 11 am Pacific.
- No number, a time in New York, then "what time is that in London?" at "shall I go ahead?":
  the same time is said on London's clock, and "yes please" books it with the caller's zone.
- The London caller again with the demo calendar on the Cal.com emulator: the slots are asked
  for in London's zone and the Cal.com booking's attendee carries ``timeZone`` Europe/London
  (Cal.com's invitation then shows the caller's clock).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AsyncExitStack
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from slotline.providers.emulators.calcom import CalcomEmulator
from tests.e2e.conftest import Server, running_server
from tests.e2e.providers import CALDAV_USERS, Vendors, booking_env, merged
from tests.e2e.voices import Voice, booked_call, spoken
from tests.radicale_server import RadicaleServer, running_radicale

VOICE = Voice("rms", {"duration_stretch": 1.25, "int_f0_target_mean": 90})
NAME, NO_EMAIL, DAY = "the name is emma brown", "no thank you", "this coming wednesday"
NEW_YORK = ZoneInfo("America/New_York")
LONDON_LINE = "+442079460000"


@pytest.fixture(scope="module")
def radicale(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RadicaleServer]:
    with running_radicale(tmp_path_factory.mktemp("radicale"), users=CALDAV_USERS) as server:
        yield server


def clock(at: datetime) -> str:
    """A wall-clock reading as the agent says it ("11 am", "noon", "1 pm")."""
    if at.hour == 12 and at.minute == 0:
        return "noon"
    return f"{at.hour % 12 or 12} {'am' if at.hour < 12 else 'pm'}"


def wednesday(log: dict[str, Any]) -> date:
    day = date.fromisoformat(log["variables"]["preferred_date"])
    assert day.weekday() == 2  # "this coming wednesday" was read as a Wednesday
    return day


async def test_a_london_number_hears_and_books_london_times(
    server: Server, tmp_path: Path
) -> None:
    script = await spoken(tmp_path, VOICE, [NAME, NO_EMAIL, DAY, "four in the afternoon",
                                            "yes please"])
    log, agent, booking = await booked_call(server, script, {"user_phone": LONDON_LINE})
    assert log["variables"]["user_timezone"] == "Europe/London"
    start = datetime.combine(wednesday(log), time(16), ZoneInfo("Europe/London"))
    in_new_york = clock(start.astimezone(NEW_YORK))  # 11 am, or noon when DST dates differ
    question = next(text for text in agent if text.startswith("I can book "))
    assert question.endswith(
        f" at 4 pm your time, that's {in_new_york} Eastern time. Shall I go ahead?"), agent
    assert any(text.startswith("You're all set for ") and text.endswith(" at 4 pm your time.")
               for text in agent), agent
    # the store has the instant the caller meant, and the caller's zone on the attendee
    assert booking.start == start.astimezone(UTC)
    assert booking.attendee.timezone == "Europe/London"
    assert booking.attendee.phone == LONDON_LINE


async def test_saying_i_am_in_california_books_pacific_times(
    server: Server, tmp_path: Path
) -> None:
    script = await spoken(tmp_path, VOICE, [NAME, NO_EMAIL, DAY, "i'm in california",
                                            "eleven in the morning", "yes please"])
    log, agent, booking = await booked_call(server, script)
    assert "Got it, Pacific time." in agent, agent
    pacific = ZoneInfo("America/Los_Angeles")
    start = datetime.combine(wednesday(log), time(11), pacific)
    question = next(text for text in agent if text.startswith("I can book "))
    assert question.endswith(" at 11 am your time, that's 2 pm Eastern time. Shall I go ahead?")
    assert booking.start == start.astimezone(UTC)  # 19:00 UTC in winter
    assert booking.attendee.timezone == "America/Los_Angeles"
    assert log["variables"]["user_timezone"] == "America/Los_Angeles"


async def test_asking_what_time_that_is_in_london_says_it_on_london_s_clock(
    server: Server, tmp_path: Path
) -> None:
    script = await spoken(tmp_path, VOICE, [NAME, NO_EMAIL, DAY, "two in the afternoon",
                                            "what time is that in london", "yes please"])
    log, agent, booking = await booked_call(server, script)
    start = datetime.combine(wednesday(log), time(14), NEW_YORK)
    in_london = clock(start.astimezone(ZoneInfo("Europe/London")))  # 7 pm, or 6 pm
    questions = [text for text in agent if text.startswith("I can book ")]
    assert questions[0].endswith(" at 2 pm. Shall I go ahead?"), agent
    assert questions[1].endswith(
        f" at {in_london} your time, that's 2 pm Eastern time. Shall I go ahead?"), agent
    assert booking.start == start.astimezone(UTC)  # the same instant
    assert booking.attendee.timezone == "Europe/London"


async def test_a_london_caller_s_cal_com_booking_carries_their_zone(
    radicale: RadicaleServer, tmp_path: Path
) -> None:
    async with AsyncExitStack() as stack:
        calcom = await Vendors(stack, radicale, tmp_path).start("calcom")
        env, secrets = merged(calcom)
        runner, server = await running_server({**env, **booking_env(("main",))}, secrets)
        try:
            script = await spoken(tmp_path, VOICE, [NAME, NO_EMAIL, DAY,
                                                    "four in the afternoon", "yes please"])
            log, _, booking = await booked_call(server, script, {"user_phone": LONDON_LINE})
        finally:
            await runner.cleanup()
        start = datetime.combine(wednesday(log), time(16), ZoneInfo("Europe/London"))
        assert booking.start == start.astimezone(UTC) and booking.provider == "calcom"
        assert isinstance(calcom.emulator, CalcomEmulator)
        [at_calcom] = calcom.emulator.live_bookings()
        assert at_calcom["attendees"][0]["timeZone"] == "Europe/London"
        assert datetime.fromisoformat(at_calcom["start"]) == start
