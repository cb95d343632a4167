"""Simulated callees for outbound calls: who picks up when the Twilio emulator rings a number.

The emulator (``providers.emulators.twilio_outbound``) plays Twilio's side and asks a
``Callee`` to play the person or the machine on each media stream; these are those callees,
speaking recorded audio through ``agent.sim.caller.run_caller``:

- ``books``: says yes to the lead call, "next tuesday", "three p m", yes to the offered time;
- ``declines``: "no thanks";
- ``opts_out``: "please take me off your list";
- ``machine``: an answering machine — a spoken greeting, a beep, then silence, recording what
  it hears (the voicemail) on the stream it is redirected to.

``Persona.party(...)`` gives the emulator's ``Party`` (with the AMD verdict a real detector
would reach: ``human`` for people, ``machine_end_beep`` just after the beep for the machine).
Every stream's ``CallerReport`` is kept in ``Callees.reports`` for tests and the benchmark.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final, Literal
from zoneinfo import ZoneInfo

import numpy as np

from slotline.agent.sim.caller import CallerReport, Speak, Step, run_caller
from slotline.agent.sim.demo import caller_wav
from slotline.audio.framing import SAMPLE_RATE_HZ
from slotline.audio.mulaw import encode_array
from slotline.providers.emulators.twilio_outbound import Party, StreamTarget

PersonaName = Literal["books", "declines", "opts_out", "machine"]
# the lead_qualify flow, answered as a person who wants a demo: yes, a day, a time (bookers
# vary it), yes to the offer — and, if that time went to another caller meanwhile, the first
# of the alternatives the agent offers (said after a booking, it is never heard: the agent
# has said goodbye and hung up)
_BOOKERS: Final = (
    ("yes", "day_tuesday", "time_3pm", "yes", "first_one", "yes"),
    ("yes", "day_tuesday", "time_1030", "yes", "first_one", "yes"),
    # "the afternoon" is answered with a choice of times
    ("yes", "day_tuesday", "afternoon", "first_one", "yes", "first_one", "yes"),
)
_BEEP_HZ: Final = 1000.0
_BEEP_MS: Final = 500
# Twilio's DetectMessageEnd answers a little after the beep ends
_AMD_AFTER_BEEP_MS: Final = 300


def beep(duration_ms: int = _BEEP_MS, frequency_hz: float = _BEEP_HZ) -> bytes:
    """A voicemail beep, 8 kHz mu-law."""
    n = SAMPLE_RATE_HZ * duration_ms // 1000
    t = np.arange(n) / SAMPLE_RATE_HZ
    tone = 0.5 * np.sin(2 * math.pi * frequency_hz * t)
    return encode_array((tone * 32767).astype(np.int16))


@dataclass
class Callees:
    """The personas of one test or benchmark run; ``reports`` keeps every stream's report."""

    machine_greeting: bytes = b""  # mu-law; default: the caller's own recordings strung together
    reports: list[tuple[str, int, CallerReport]] = field(default_factory=list)
    reply_timeout_s: float = 20.0

    def party(self, persona: PersonaName, *, amd_human_after_ms: int = 2500, variant: int = 0
              ) -> Party:
        if persona == "machine":
            greeting = self._greeting()
            greeting_ms = len(greeting) // 8 + _BEEP_MS
            return Party(answered_by="machine_end_beep",
                         amd_after_ms=greeting_ms + _AMD_AFTER_BEEP_MS,
                         callee=_Callee(self, persona, (greeting + beep(),)))
        return Party(answered_by="human", amd_after_ms=amd_human_after_ms,
                     callee=_Callee(self, persona, (), variant))

    def script(self, persona: PersonaName, variant: int = 0) -> Sequence[Step]:
        if persona == "books":
            return [caller_wav(stem) for stem in _BOOKERS[variant % len(_BOOKERS)]]
        if persona == "declines":
            return [caller_wav("no")]
        if persona == "opts_out":
            return [caller_wav("opt_out")]
        return []

    def _greeting(self) -> bytes:
        if self.machine_greeting:
            return self.machine_greeting
        # a greeting long enough that the agent's greeting would be talked over
        return b"".join(caller_wav(stem).audio for stem in ("name_john", "goodbye"))


@dataclass(frozen=True)
class _Callee:
    owner: Callees
    persona: PersonaName
    machine_audio: tuple[bytes, ...]
    variant: int = 0

    async def __call__(self, stream: StreamTarget) -> None:
        script: Sequence[Step]
        if self.persona == "machine":
            # first stream: greeting + beep, said whatever the agent does; after the redirect
            # the machine records in silence until the agent hangs up
            script = ([Speak(self.machine_audio[0], pause_ms=0, wait_for_agent=False)]
                      if stream.index == 0 else [])
        else:
            script = self.owner.script(self.persona, self.variant)
        report = await run_caller(
            stream.url, script, custom_parameters=stream.parameters,
            headers=stream.headers, call_sid=stream.call_sid, account_sid=stream.account_sid,
            hangup=stream.hangup, reply_timeout_s=self.owner.reply_timeout_s, timeout_s=180,
        )
        self.owner.reports.append((stream.call_sid, stream.index, report))


# Simulated contacts live in ``office_hours_zone()``, wherever that is today, and they ask for
# "next tuesday" at "three p m" on their own clock (the caller's zone follows the contact's
# ``timezone`` column). A server for simulated campaigns opens every hour of every day, so that
# time is bookable whatever the zone: ``slotline serve --config`` a file with this text.
ANY_HOUR_CONFIG = """\
booking_actions:
  demo:
    calendars: [main]
    business_hours:
""" + "".join(f"      {day}: [\"00:00-24:00\"]\n"
              for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun"))


def office_hours_zone() -> str:
    """A zone where it is now between 10:00 and 18:00: simulated campaigns give their contacts
    this zone, so a 08:00-21:00 calling window is open whenever a test or benchmark runs."""
    now = datetime.now(UTC)
    for offset in range(-12, 15):
        name = f"Etc/GMT{'-' if offset > 0 else '+'}{abs(offset)}" if offset else "UTC"
        if 10 <= now.astimezone(ZoneInfo(name)).hour < 18:
            return name
    raise RuntimeError("no zone has office hours now")  # cannot happen: offsets span 26 h


def parties(numbers: Mapping[str, Party], default: Party | None = None
            ) -> PartyBook:
    return PartyBook(dict(numbers), default or Party(kind="no-answer"))


@dataclass(frozen=True)
class PartyBook:
    """``To`` number → who is there (the emulator's ``parties`` callable)."""

    numbers: Mapping[str, Party]
    default: Party

    def __call__(self, number: str) -> Party:
        return self.numbers.get(number, self.default)
