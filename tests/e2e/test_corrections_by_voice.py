"""A correction at the read-back, by voice: whole calls over the Twilio media protocol to a real
server (offline recogniser, the default demo_booking flow, the local calendar in New York open
9 am to 5 pm). At "I can book Wednesday, … at 10 am. Shall I go ahead?" the caller changes the
day, then the name, or asks for a later time; the call goes on from there (no question asked
again but the read-back) and the store's booking has what the caller said last.

The caller is flite's slt voice (the bundled recordings are kal), in phrasings no other test
uses.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Sequence
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest

from slotline.agent.caller import Say, load_wav_ulaw, run_caller
from slotline.agent.store import BookingRecord
from tests.e2e.conftest import Server, call_tasks, running_server
from tests.until import until

FLITE = shutil.which("flite")
VOICE = ("-voice", "slt")
NEW_YORK = ZoneInfo("America/New_York")
START = ["my name is john smith", "no thank you", "this coming wednesday", "ten in the morning"]


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    runner, srv = await running_server()
    try:
        yield srv
    finally:
        await runner.cleanup()


async def spoken(folder: Path, lines: Sequence[str]) -> list[Say]:
    """``lines`` in the test's voice, as 8 kHz mu-law (what a phone line carries)."""
    assert FLITE is not None, "flite is needed (make test installs it: apt-get install flite)"
    said = []
    for index, words in enumerate(lines):
        wav = folder / f"fix-{index}.wav"
        flite = await asyncio.create_subprocess_exec(FLITE, *VOICE, "-t", words, "-o", str(wav))
        assert await flite.wait() == 0
        said.append(Say(load_wav_ulaw(wav)))
    return said


async def call(server: Server, script: list[Say]) -> tuple[list[str], BookingRecord]:
    """One call: what the agent said, and the one booking it made."""
    report = await run_caller(server.media_url, script)
    assert report.errors == () and report.closed_by == "server", report.errors
    store = server.deps.store
    assert store is not None

    async def logged() -> bool:
        return await store.calls.get(report.call_sid) is not None

    await until(logged, timeout_s=20)
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{server.url}/api/calls/{report.call_sid}") as response:
            log: dict[str, Any] = await response.json()
    assert log["status"] == "completed" and log["errors"] == [], log["errors"]
    assert call_tasks() == []
    agent = [turn["text"] for turn in log["turns"] if turn["role"] == "agent"]
    bookings = await store.bookings.for_call(report.call_sid)
    assert len(bookings) == 1, (log["turns"], log["variables"])
    return agent, bookings[0]


def read_backs(agent: list[str]) -> list[str]:
    return [text for text in agent if "Shall I go ahead?" in text]


def coming(weekday: int) -> date:
    today = datetime.now(NEW_YORK).date()
    return today + timedelta(days=(weekday - today.weekday()) % 7 or 7)


async def test_another_day_then_another_name_at_the_read_back(
    server: Server, tmp_path: Path
) -> None:
    script = await spoken(tmp_path, [*START, "no, thursday", "actually my name is jane doe",
                                     "yes please"])
    agent, booking = await call(server, script)
    first, second, third = read_backs(agent)
    assert first.startswith("I can book Wednesday,") and " at 10 am." in first, agent
    assert second.startswith("I can book Thursday,") and " at 10 am." in second, agent
    assert third == second  # asked again after the name, about the same slot
    assert "Thank you, Jane." in agent
    assert not any(text.startswith("Sorry") for text in agent), agent  # nothing re-asked
    thursday = coming(2) + timedelta(days=1)  # the Thursday after that Wednesday
    assert booking.start == datetime.combine(thursday, time(10), NEW_YORK)
    assert booking.attendee.name == "Jane Doe", agent


async def test_later_at_the_read_back_books_a_later_time_that_day(
    server: Server, tmp_path: Path
) -> None:
    script = await spoken(tmp_path, [*START, "no, later", "yes please"])
    agent, booking = await call(server, script)
    first, second = read_backs(agent)
    assert " at 10 am." in first and first.startswith("I can book Wednesday,"), agent
    assert second.startswith("I can book Wednesday,") and " at 10 am." not in second, agent
    start = booking.start.astimezone(NEW_YORK)
    assert start.date() == coming(2) and start.time() > time(10), start
    assert booking.attendee.name == "John Smith"
