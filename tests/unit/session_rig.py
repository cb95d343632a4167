"""Calls through the real server for the session tests (``test_session_turns``,
``test_session_bargein``): the app on 127.0.0.1 built like ``slotline serve`` builds it, the
simulated caller over the Twilio protocol in real time, the offline voice, and a responder the
test scripts. The recogniser is the module's (the ``recognizer`` fixture in conftest.py).

The timing knobs are shrunk only to keep calls short: these calls last a second or two.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import replace

import numpy as np
from aiohttp import web

from slotline.agent.call.calllog import CallLog, CallRecord
from slotline.agent.call.prompt_cache import PromptCache
from slotline.agent.call.responder import Action, CallEvent, CallStarted, Hangup, Say
from slotline.agent.call.session import SessionDeps
from slotline.agent.call.turns import TurnConfig
from slotline.agent.config import load_secrets, load_settings
from slotline.agent.server.app import CONTEXT, build_app
from slotline.agent.server.metrics import Metrics
from slotline.agent.sim.caller import CallerReport, Speak, run_caller
from slotline.agent.sim.playout import AgentTurn
from slotline.audio.mulaw import encode_array
from slotline.audio.vad import WebRtcVad
from slotline.providers.base import SpeechToText
from slotline.providers.tts.local import LocalTts

# Snappy turns: these calls last a second or two.
TURN = TurnConfig(min_speech_ms=60, end_silence_ms=250, bargein_min_speech_ms=100,
                  short_silence_ms=150, long_silence_ms=400)
FILLER = "Hm."


def tone(ms: int) -> bytes:
    """Voiced to the VAD, no words to the recogniser."""
    t = np.arange(ms * 8) / 8000
    return encode_array((8000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16))


def noise(ms: int) -> bytes:
    """A burst of line noise: voiced to the VAD, no words to the recogniser."""
    samples = np.random.default_rng(7).normal(0, 6000, ms * 8)
    return encode_array(samples.clip(-32000, 32000).astype(np.int16))


Handler = Callable[[CallEvent], AsyncIterator[Action]]


class Scripted:
    """A responder whose answers the test writes as an async generator of actions."""

    def __init__(self, handler: Handler, prompts: Iterable[str] = ()) -> None:
        self._handler = handler
        self._prompts = tuple(prompts)

    flow = "test"
    node = ""
    variables: Mapping[str, str] = {}

    def handle(self, event: CallEvent) -> AsyncIterator[Action]:
        return self._handler(event)

    def static_prompts(self) -> tuple[str, ...]:
        return self._prompts

    async def aclose(self) -> None:
        return None


def deps_for(
    stt: SpeechToText, responder: Scripted, cache: PromptCache | None = None
) -> SessionDeps:
    return SessionDeps(
        stt=stt,
        tts=LocalTts(rate_wpm=300),
        make_vad=lambda: WebRtcVad(2),
        make_responder=lambda start: responder,
        call_log=CallLog(),
        metrics=Metrics(),
        prompt_cache=PromptCache() if cache is None else cache,
    )


async def call(
    deps: SessionDeps, script: list[Speak], *, turn: TurnConfig = TURN, agent_quiet_ms: int = 800
) -> tuple[CallerReport, CallRecord]:
    """One call to a real server built like ``slotline serve`` builds it, with ``turn``."""
    app = build_app(load_settings(None, {}), load_secrets({}), deps)
    context = app[CONTEXT]
    config = replace(context.session_config, turn=turn, filler_after_ms=200, fillers=(FILLER,))
    app[CONTEXT] = replace(context, session_config=config)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        url = f"ws://{host}:{port}/twilio/media"
        report = await run_caller(url, script, agent_quiet_ms=agent_quiet_ms)
    finally:
        await runner.cleanup()
    record = deps.call_log.get(report.call_sid)
    assert record is not None
    return report, record


def now_say(audio: bytes, **options: int) -> Speak:
    return Speak(audio, pause_ms=0, wait_for_agent=False, **options)


async def talk_over_the_greeting(
    stt: SpeechToText, greeting: str, audio: bytes
) -> tuple[SessionDeps, CallerReport, CallRecord]:
    """A call in which the agent says ``greeting`` and hangs up, and the caller sends ``audio``
    as soon as the greeting starts playing (the responder hears nothing else)."""

    async def handler(event: CallEvent) -> AsyncIterator[Action]:
        if isinstance(event, CallStarted):
            yield Say(greeting)
            yield Hangup()
        else:
            raise AssertionError(f"the responder must not hear {event}")

    deps = deps_for(stt, Scripted(handler))
    report, record = await call(deps, [now_say(audio, interrupt_after_ms=0)])
    return deps, report, record


def assert_forgiven_and_resumed(
    deps: SessionDeps, report: CallerReport, record: CallRecord, greeting: str
) -> tuple[AgentTurn, AgentTurn]:
    """The caller's sound over the greeting cleared the agent's audio at once, was forgiven (a
    false interruption, no caller turn), and the agent said the greeting again from its first
    unheard sentence, to the end. Returns the caller's log of the cut and the resumed greeting."""
    assert report.clears == 1 and deps.metrics.bargein.count == 1  # cleared at once
    assert deps.metrics.false_interruptions.value == 1  # ... and forgiven
    cut, resumed = report.agent_turns
    assert cut.interrupted and not resumed.interrupted
    assert resumed.audio.startswith(cut.audio)  # from the first unheard sentence
    (turn,) = record.turns  # the caller's sound is not a caller turn
    assert turn.role == "agent" and turn.text == greeting
    assert not turn.interrupted and turn.resumed == 1
    assert report.closed_by == "server" and record.status == "completed"
    return cut, resumed
