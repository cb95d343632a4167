"""A do-not-call request by voice: the simulated caller (or callee of an outbound call) says it
over the Twilio protocol to a real server with the offline recogniser, and the call log shows
the goodbye spoken and the call hung up by the server.

The recorded requests (opt_out.wav, dont_call.wav) are flite's kal voice, like every other
recording; to check that the recogniser hears the request and not just that voice, the same
words are also synthesised here with flite's other voices. What is not checked here: the number
landing in the store's do-not-call list (the wiring's ``StoreOptOut``; its tests own that).
"""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from slotline.agent.flow.state import OPT_OUT_GOODBYE
from slotline.agent.sim.caller import Speak, run_caller
from slotline.agent.sim.demo import caller_wav
from tests.e2e.conftest import Server, call_tasks, running_server
from tests.e2e.voices import FLITE, Voice, spoken

EXAMPLES = Path(__file__).resolve().parents[2] / "config" / "examples.yaml"
CALLEE = {"flow": "lead_qualify", "user_name": "Jane", "company": "Acme Dental",
          "user_phone": "+15551234567"}


@pytest.fixture
async def examples() -> AsyncIterator[Server]:
    runner, server = await running_server(config=EXAMPLES)
    try:
        yield server
    finally:
        await runner.cleanup()


async def opted_out(server: Server, script: list[Speak], parameters: Mapping[str, str]) -> Any:
    """Play ``script``; check the call ended with the do-not-call goodbye; the call log."""
    report = await run_caller(server.media_url, script, custom_parameters=dict(parameters))
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{server.url}/api/calls/{report.call_sid}") as response:
            log = await response.json()
    assert report.errors == (), report.errors
    assert report.closed_by == "server"  # the agent hung up
    assert log["status"] == "completed" and log["errors"] == []
    agent_said = [t["text"] for t in log["turns"] if t["role"] == "agent"]
    assert agent_said[-1] == OPT_OUT_GOODBYE
    assert log["variables"]["opted_out"] == "yes"
    assert call_tasks() == []
    return log


async def test_outbound_callee_asks_to_be_taken_off_the_list(examples: Server) -> None:
    log = await opted_out(examples, [caller_wav("opt_out")], CALLEE)
    assert log["flow"] == "lead_qualify" and log["node"] == "ask_interest"
    caller_said = [t["text"] for t in log["turns"] if t["role"] == "caller"]
    assert caller_said == ["please take me off your list"]
    assert log["turns"][0]["text"].startswith("Hi Jane, this is Ava from Slotline")


async def test_inbound_caller_says_it_in_the_middle_of_a_booking(examples: Server) -> None:
    log = await opted_out(examples, [caller_wav("name_john"), caller_wav("dont_call")],
                          {"flow": "demo_booking", "user_phone": "+15005550006"})
    assert log["node"] == "ask_email" and log["variables"]["user_name"] == "John Smith"
    caller_said = [t["text"] for t in log["turns"] if t["role"] == "caller"]
    assert caller_said == ["my name is john smith", "don't call me again"]


def flite_voices() -> set[str]:
    if FLITE is None:
        return set()
    listed = subprocess.run([FLITE, "-lv"], capture_output=True, text=True, check=False).stdout
    return set(listed.partition(":")[2].split())


# Measured with this flite (2.2): slt's "unsubscribe" alone is heard as "at nine" at every
# question (a single word in a voice unlike kal); the longer requests are heard in every voice.
SPOKEN = [
    ("slt", "stop calling me"),
    ("awb", "stop calling me"),
    ("rms", "stop calling me"),
    ("slt", "remove me from your list"),
    ("awb", "unsubscribe"),
]
# Not in the list: slt saying a lone "unsubscribe" is heard as "at nine" by the offline
# recogniser (the other voices' "unsubscribe" and every voice's longer requests are understood).


@pytest.mark.parametrize(("voice", "words"), SPOKEN)
async def test_other_voices_are_understood(
    examples: Server, tmp_path: Path, voice: str, words: str
) -> None:
    # `make test` installs Debian's flite, which has these voices built in
    assert voice in flite_voices(), f"flite's {voice} voice is missing (apt-get install flite)"
    [request] = await spoken(tmp_path, Voice(voice), [words])  # 8 kHz mu-law, as on a phone
    # at the first question (a yes/no), then at the next one (a date): two kinds of grammar
    log = await opted_out(examples, [request], CALLEE)
    assert log["node"] == "ask_interest"
    log = await opted_out(examples, [caller_wav("yes"), request], CALLEE)
    assert log["node"] == "ask_date"
