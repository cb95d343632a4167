"""The caller's e-mail address is read back before it is used, and corrected there, by voice:
whole calls over the Twilio media protocol to a real server (offline recogniser, the default
demo_booking flow, the local calendar in New York open 9 am to 5 pm).

demo_booking asks for the address before booking; the slot's read-back ("I can book Tuesday, …
at 3 pm, and send the details to s a r a h m i l l e r at outlook dot com. Shall I go ahead?")
names it, spelled as a person reads it on the phone, so a misheard address is caught before it
reaches the booking and its invitation. A caller who declines the address (the ``slotline
demo`` script) hears the read-back as before: no extra question.

The caller is flite's kal16, as in tests/e2e/test_email_by_voice.py, whose address, day and time
phrasings were measured there as read exactly in that voice.
"""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

from slotline.agent.sim.demo import caller_wav
from tests.e2e.conftest import Server
from tests.e2e.voices import DEMO_ZONE, Voice, booked_call, said_day, spoken

VOICE = Voice("kal16")
NAME = caller_wav("name_john")  # the bundled "my name is john smith"
EMAIL, HEARD = "sure it's sarah miller at outlook dot com", "sarahmiller@outlook.com"
SPELLED = "s a r a h m i l l e r at outlook dot com"
DAY, TIME = "how about next tuesday", "at three p m please"


def read_backs(agent: list[str]) -> list[str]:
    return [text for text in agent if "Shall I go ahead?" in text]


async def test_the_address_given_is_read_back_before_booking(
    server: Server, tmp_path: Path
) -> None:
    script = [NAME, *await spoken(tmp_path, VOICE, [EMAIL, DAY, TIME, "yes please"])]
    log, agent, booking = await booked_call(server, script)
    [read_back] = read_backs(agent)
    assert booking.start.astimezone(ZoneInfo(DEMO_ZONE)).strftime("%A %H:%M") == "Tuesday 15:00"
    assert read_back.startswith(f"I can book {said_day(booking.start)} at 3 pm, "), agent
    assert read_back.endswith(f"and send the details to {SPELLED}. Shall I go ahead?"), agent
    assert log["variables"]["user_email"] == HEARD
    assert booking.attendee.email == HEARD and booking.status == "confirmed"


async def test_an_address_called_wrong_is_asked_again_and_the_new_one_booked(
    server: Server, tmp_path: Path
) -> None:
    first = "it's john smith at gmail dot com"  # the address the caller then calls wrong
    script = [NAME, *await spoken(tmp_path, VOICE, [first, DAY, TIME, "no the email is wrong",
                                                    EMAIL, "yes please"])]
    log, agent, booking = await booked_call(server, script)
    wrong, right = read_backs(agent)
    # read back as heard (kal16's "gmail" may come out as "mail": the very mishearing at stake)
    assert ", and send the details to j o h n s m i t h at " in wrong, agent
    assert SPELLED not in wrong, agent
    assert "What's the right email address? Or say no thanks." in agent
    assert right.endswith(f"and send the details to {SPELLED}. Shall I go ahead?"), agent
    slot = wrong.split(", and send")[0]
    assert right.startswith(f"{slot}, and send"), agent  # the same slot, asked about again
    assert log["variables"]["user_email"] == HEARD
    assert booking.attendee.email == HEARD


async def test_another_address_said_at_the_read_back_is_read_back_in_its_place(
    server: Server, tmp_path: Path
) -> None:
    first = "it's john smith at gmail dot com"
    script = [NAME, *await spoken(tmp_path, VOICE, [first, DAY, TIME,
                                                    "no it's sarah miller at outlook dot com",
                                                    "yes please"])]
    log, agent, booking = await booked_call(server, script)
    wrong, right = read_backs(agent)
    assert SPELLED not in wrong and right.endswith(f"{SPELLED}. Shall I go ahead?"), agent
    assert booking.attendee.email == HEARD
