"""Calls by voice, shared by the ``*_by_voice`` tests: a script synthesised in one of flite's
voices (as a phone line carries it), and a call played to a real server whose call log is read
back once the call's end is done."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp

from slotline.agent.booking.speech import speak_date, spoken_start
from slotline.agent.sim.caller import CallerReport, Speak, load_wav_ulaw, run_caller
from slotline.agent.store import BookingRecord
from tests.e2e.conftest import Server, call_tasks
from tests.until import until

FLITE = shutil.which("flite")


@dataclass(frozen=True)
class Voice:
    """One of flite's voices, with ``--setf`` feature settings (``duration_stretch``,
    ``int_f0_target_mean`` in Hz, ...) that make it unlike the voices other tests speak with."""

    name: str
    features: Mapping[str, float] = field(default_factory=dict)

    def flite_args(self) -> list[str]:
        args = ["-voice", self.name]
        for feature, value in self.features.items():
            args += ["--setf", f"{feature}={value:g}"]
        return args


async def spoken(folder: Path, voice: Voice, lines: Sequence[str]) -> list[Speak]:
    """``lines`` in ``voice``, as 8 kHz mu-law (what a phone line carries)."""
    assert FLITE is not None, "flite is needed (make test installs it: apt-get install flite)"
    said = []
    for index, words in enumerate(lines):
        wav = folder / f"{voice.name}-{index}.wav"
        flite = await asyncio.create_subprocess_exec(
            FLITE, *voice.flite_args(), "-t", words, "-o", str(wav)
        )
        assert await flite.wait() == 0
        said.append(Speak(load_wav_ulaw(wav)))
    return said


async def logged_call(
    server: Server, script: list[Speak], parameters: Mapping[str, str] | None = None
) -> tuple[CallerReport, Any]:
    """Play ``script`` to ``server``; the caller's report and the call log's JSON, once the
    call is in the store (its end, and what the end does, is done). The call must have ended
    cleanly: hung up by the agent, no errors, no call task left."""
    report = await run_caller(server.media_url, script, custom_parameters=dict(parameters or {}))
    record = server.deps.call_log.get(report.call_sid)
    said = [(turn.role, turn.text) for turn in record.turns] if record is not None else []
    assert report.errors == () and report.closed_by == "server", (report.errors, said)
    store = server.deps.store
    assert store is not None

    async def logged() -> bool:
        return await store.calls.get(report.call_sid) is not None

    await until(logged, timeout_s=20)
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{server.url}/api/calls/{report.call_sid}") as response:
            log = await response.json()
    assert log["status"] == "completed" and log["errors"] == [], log["errors"]
    assert call_tasks() == []
    return report, log


DEMO_ZONE = "America/New_York"  # the demo flow's zone


def said_day(start: datetime | date) -> str:
    """The day of ``start`` (a time, or a day in the demo's zone) as the agent says it now
    ("tomorrow" on the day before, else "Tuesday, December 8th"): a caller's "next tuesday"
    is tomorrow on a Monday."""
    if isinstance(start, datetime):
        return spoken_start(start, DEMO_ZONE, datetime.now(UTC))[0]
    return speak_date(start, datetime.now(ZoneInfo(DEMO_ZONE)).date())


async def booked_call(
    server: Server, script: list[Speak], parameters: Mapping[str, str] | None = None
) -> tuple[dict[str, Any], list[str], BookingRecord]:
    """One call that books once: its log, what the agent said, and the booking it made."""
    report, log = await logged_call(server, script, parameters)
    agent = [turn["text"] for turn in log["turns"] if turn["role"] == "agent"]
    assert server.deps.store is not None
    bookings = await server.deps.store.bookings.for_call(report.call_sid)
    assert len(bookings) == 1, (log["turns"], log["variables"])
    return log, agent, bookings[0]
