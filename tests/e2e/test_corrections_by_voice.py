"""A correction at the read-back, by voice: whole calls over the Twilio media protocol to a real
server (offline recogniser, the default demo_booking flow, the local calendar in New York open
9 am to 5 pm). At "I can book Wednesday, … at 10 am. Shall I go ahead?" the caller changes the
day, then the name, or asks for a later time; the call goes on from there (no question asked
again but the read-back) and the store's booking has what the caller said last.

The caller is flite's slt voice (the bundled recordings are kal), in phrasings no other test
uses. A bare day at the read-back ("friday": maybe a misheard yes) is asked about first.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from tests.e2e.conftest import Server
from tests.e2e.voices import Voice, booked_call, said_day, spoken

VOICE = Voice("slt")
NEW_YORK = ZoneInfo("America/New_York")
START = ["my name is john smith", "no thank you", "this coming wednesday", "ten in the morning"]


def read_backs(agent: list[str]) -> list[str]:
    return [text for text in agent if "Shall I go ahead?" in text]


def coming(weekday: int) -> date:
    today = datetime.now(NEW_YORK).date()
    return today + timedelta(days=(weekday - today.weekday()) % 7 or 7)


async def test_another_day_then_another_name_at_the_read_back(
    server: Server, tmp_path: Path
) -> None:
    script = await spoken(tmp_path, VOICE, [*START, "no, thursday",
                                            "actually my name is jane doe", "yes please"])
    _, agent, booking = await booked_call(server, script)
    first, second, third = read_backs(agent)
    wednesday, thursday = coming(2), coming(2) + timedelta(days=1)  # the Thursday after it
    assert first.startswith(f"I can book {said_day(wednesday)} at 10 am."), agent
    assert second.startswith(f"I can book {said_day(thursday)} at 10 am."), agent
    assert third == second  # asked again after the name, about the same slot
    assert "Thank you, Jane." in agent
    assert not any(text.startswith("Sorry") for text in agent), agent  # nothing re-asked
    assert booking.start == datetime.combine(thursday, time(10), NEW_YORK)
    assert booking.attendee.name == "Jane Doe", agent


async def test_later_at_the_read_back_books_a_later_time_that_day(
    server: Server, tmp_path: Path
) -> None:
    script = await spoken(tmp_path, VOICE, [*START, "no, later", "yes please"])
    _, agent, booking = await booked_call(server, script)
    first, second = read_backs(agent)
    wednesday = f"I can book {said_day(coming(2))} at "
    assert first.startswith(wednesday) and " at 10 am." in first, agent
    assert second.startswith(wednesday) and " at 10 am." not in second, agent
    start = booking.start.astimezone(NEW_YORK)
    assert start.date() == coming(2) and start.time() > time(10), start
    assert booking.attendee.name == "John Smith"


async def test_a_bare_day_at_the_read_back_is_asked_about_before_it_is_searched(
    server: Server, tmp_path: Path
) -> None:
    script = await spoken(tmp_path, VOICE, [*START, "friday", "yes", "yes please"])
    _, agent, booking = await booked_call(server, script)
    friday = coming(2) + timedelta(days=2)  # the Friday after that Wednesday
    asked = [text for text in agent if text.startswith("Did you want")]
    assert asked == [f"Did you want Friday, {friday:%B} {_ordinal(friday.day)} instead?"], agent
    first, second = read_backs(agent)
    assert first.startswith(f"I can book {said_day(coming(2))} at ")
    assert second.startswith(f"I can book {said_day(friday)} at ")
    assert booking.start == datetime.combine(friday, time(10), NEW_YORK)


def _ordinal(day: int) -> str:
    suffix = "th" if 10 <= day % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix}"
