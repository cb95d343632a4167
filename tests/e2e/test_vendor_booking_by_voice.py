"""A booking Slotline never made, moved by voice: the caller booked on Cal.com directly (the
emulator's own ``POST /v2/bookings``, as Cal.com's booking page would), then phones the
reschedule_cancel flow over the Twilio media protocol (a real server, offline recogniser). The
flow finds the booking at Cal.com by the caller's number, reads it back ("I see your
appointment on Tuesday, ... at 3 pm. Is that the one?"), and moves it at Cal.com; the test
then reads the emulator: the old booking cancelled and rescheduled to the new one, the new one
live at the time the caller asked for, with the same attendee.

The voice is flite's awb, slowed and lowered (``duration_stretch`` 1.15, mean pitch 125 Hz): no
other test speaks with it, and the phrasings are in no other test. The caller asks to be found
"by my phone number": the number the call comes from is looked up first, without asking (the
flow asks for a number only when the call has none or nothing is booked under it).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from slotline.providers.emulators.calcom import CalcomEmulator
from tests.e2e.conftest import running_server
from tests.e2e.providers import (
    CALCOM_EVENT_TYPE,
    CALCOM_KEY,
    CALDAV_USERS,
    NY,
    VendorCalendar,
    Vendors,
    booking_env,
    merged,
    next_tuesday,
)
from tests.e2e.voices import Voice, logged_call, spoken
from tests.radicale_server import running_radicale

VOICE = Voice("awb", {"duration_stretch": 1.15, "int_f0_target_mean": 125})
CALLER = "+15005550006"  # what Twilio's <Parameter> passes for the From number
SCRIPT = [
    "hi i would like to move my appointment please",
    "just use my phone number",  # the number calling: looked up without asking
    "yes that's the one",
    "next thursday",
    "ten in the morning",
    "yes go ahead",
]


@pytest.fixture
async def calcom(tmp_path: Path) -> AsyncIterator[VendorCalendar]:
    with running_radicale(tmp_path / "radicale", users=CALDAV_USERS) as radicale:
        async with AsyncExitStack() as stack:
            yield await Vendors(stack, radicale, tmp_path).start("calcom")


async def book_at_calcom(vendor: VendorCalendar, start: datetime) -> dict[str, Any]:
    """A booking made on Cal.com itself (its booking page), not through Slotline."""
    body = {"start": start.astimezone(NY).isoformat(), "eventTypeId": CALCOM_EVENT_TYPE,
            "attendee": {"name": "Dana Whitfield", "email": "dana.whitfield@example.org",
                         "timeZone": "America/New_York", "phoneNumber": CALLER}}
    headers = {"Authorization": f"Bearer {CALCOM_KEY}", "cal-api-version": "2024-08-13"}
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{vendor.url}/v2/bookings", json=body, headers=headers) as answer:
            assert answer.status == 201, await answer.text()
            made: dict[str, Any] = (await answer.json())["data"]
    return made


def next_thursday(at: time, today: date | None = None) -> datetime:
    day = today or datetime.now(NY).date()
    ahead = (3 - day.weekday()) % 7 or 7
    return datetime.combine(day + timedelta(days=ahead), at, NY)


async def test_a_booking_made_on_cal_com_is_found_by_phone_and_moved_there(
    calcom: VendorCalendar, tmp_path: Path
) -> None:
    assert isinstance(calcom.emulator, CalcomEmulator)
    made = await book_at_calcom(calcom, next_tuesday())
    env, secrets = merged(calcom)
    runner, server = await running_server({**env, **booking_env(("main",))}, secrets)
    try:
        script = await spoken(tmp_path, VOICE, SCRIPT)
        _, log = await logged_call(server, script,
                                   {"flow": "reschedule_cancel", "user_phone": CALLER})
        store = server.deps.store
        assert store is not None
        heard = [turn["text"] for turn in log["turns"]]
        assert "confirm_found" in log["path"] and log["node"] == "moved", heard
        assert log["variables"]["found_count"] == "1"
        # at Cal.com: the booking made there is cancelled and rescheduled to the caller's time
        old = calcom.emulator.bookings[made["uid"]]
        assert old.status == "cancelled" and old.rescheduled_to
        new = calcom.emulator.bookings[old.rescheduled_to]
        assert new.live and new.start == next_thursday(time(10))
        assert new.attendee["phoneNumber"] == CALLER and new.attendee["name"] == "Dana Whitfield"
        assert [b["uid"] for b in calcom.emulator.live_bookings()] == [new.uid]
        # Slotline now knows it too (adopted, then moved): one booking, the new uid
        [stored] = [b for b in await store.bookings.recent() if b.provider == "calcom"]
        assert stored.provider_booking_id == new.uid and stored.status == "confirmed"
        assert stored.start == new.start
    finally:
        await runner.cleanup()
