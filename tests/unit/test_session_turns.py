"""Turn-taking through the real server: the app on 127.0.0.1, the simulated caller over the
Twilio protocol in real time, the offline recogniser and voice (and Deepgram's emulator for STT
finality). The responder is scripted per test — the seam the session talks to.

What is checked is behaviour (which profile ended a turn and why, what was said, what the
caller heard, counters), never how fast: the timing knobs are shrunk only to keep calls short.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from slotline.agent.call.calllog import CallLog
from slotline.agent.call.prompt_cache import PromptCache
from slotline.agent.call.responder import (
    Action,
    CallerSaid,
    CallEvent,
    CallStarted,
    Hangup,
    Listen,
    Say,
)
from slotline.agent.call.turns import Patience
from slotline.agent.server.metrics import Metrics
from slotline.agent.sim.caller import Speak, load_wav_ulaw
from slotline.providers.base import SpeechHints
from slotline.providers.emulators.deepgram import DeepgramEmulator
from slotline.providers.stt.deepgram import DeepgramSpeechToText
from slotline.providers.stt.local import LocalSpeechToText
from tests.unit.conftest import warm
from tests.unit.session_rig import (
    FILLER,
    TURN,
    Scripted,
    call,
    deps_for,
    noise,
    now_say,
    talk_over_the_greeting,
    tone,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")  # shares the module's recogniser

ASSETS = "agent/assets/caller"


async def test_each_listen_sets_the_patience_of_the_next_turn(
    recognizer: LocalSpeechToText,
) -> None:
    def listen(patience: Patience) -> Listen:
        return Listen(SpeechHints(), patience)

    answers = 0

    async def handler(event: CallEvent) -> AsyncIterator[Action]:
        nonlocal answers
        if isinstance(event, CallStarted):
            yield listen("short")  # "Shall I book it?"
        elif isinstance(event, CallerSaid):
            answers += 1
            if answers == 1:
                yield Say("Ok.")
                yield listen("long")  # "What's your e-mail address?"
            else:
                yield Say("Bye.")
                yield Hangup()

    deps = deps_for(recognizer, Scripted(handler))

    script = [now_say(tone(200)), Speak(tone(200), pause_ms=100)]
    report, record = await call(deps, script, agent_quiet_ms=100)
    caller_turns = [t for t in record.turns if t.role == "caller"]
    assert [(t.patience, t.ended_by) for t in caller_turns] == [("short", "silence"),
                                                               ("long", "silence")]
    short, long = (t.latency for t in record.turns if t.role == "agent" and t.latency)
    assert short.endpoint_ms < long.endpoint_ms  # 150 ms of silence ended one, 400 the other
    assert deps.metrics.turn_ends.values == {"silence": 2}
    assert record.status == "completed" and record.errors == [] and report.errors == ()


async def test_stt_finality_ends_the_turn_before_the_vad_silence() -> None:
    async def handler(event: CallEvent) -> AsyncIterator[Action]:
        if isinstance(event, CallerSaid):
            yield Say("Bye.")
            yield Hangup()

    async with (
        LocalSpeechToText() as recognizer,  # its own: see tests.unit.conftest.warm
        DeepgramEmulator(api_key="dg-key", recognizer=recognizer) as deepgram,
    ):
        await warm(recognizer)
        stt = DeepgramSpeechToText("dg-key", base_url=deepgram.url)
        deps = deps_for(stt, Scripted(handler))
        patient = replace(TURN, end_silence_ms=2000)  # the VAD alone would wait 2 s
        script = [now_say(load_wav_ulaw(f"{ASSETS}/yes.wav"))]
        report, record = await call(deps, script, turn=patient)
    (caller_turn,) = [t for t in record.turns if t.role == "caller"]
    assert caller_turn.text == "yes"
    assert caller_turn.ended_by == "stt_final"  # Deepgram's speech_final, past the 200 ms floor
    assert caller_turn.latency is None
    (answer,) = [t for t in record.turns if t.role == "agent"]
    assert answer.latency is not None and answer.latency.endpoint_ms < 2000
    assert deps.metrics.turn_ends.values == {"stt_final": 1}
    assert report.closed_by == "server"


async def test_noise_over_the_agent_does_not_stop_it(recognizer: LocalSpeechToText) -> None:
    """A burst of noise is loud and passes the VAD, but has no voice's pitch: no barge-in, the
    greeting plays on to its end (``agent.call.turns._BARGEIN_PITCHED_MS``)."""
    greeting = "One two three four. Five."
    # a 300 ms burst of noise as soon as the greeting starts playing
    deps, report, record = await talk_over_the_greeting(recognizer, greeting, noise(300))
    assert report.clears == 0 and deps.metrics.bargein.count == 0
    assert deps.metrics.false_interruptions.value == 0
    # the caller's log splits the agent's audio where the caller spoke, nothing was cut
    assert not any(t.interrupted for t in report.agent_turns)
    assert sum(len(t.marks_heard) for t in report.agent_turns) == 2  # both sentences, once
    (turn,) = record.turns  # the noise is not a caller turn
    assert turn.role == "agent" and turn.text == greeting and turn.heard_text is None


async def test_a_slow_reply_gets_one_filler_from_the_cache(
    recognizer: LocalSpeechToText,
) -> None:
    async def handler(event: CallEvent) -> AsyncIterator[Action]:
        if isinstance(event, CallerSaid):
            await asyncio.sleep(0.8)  # a slow availability lookup: the filler plays meanwhile
            yield Listen(SpeechHints())
            await asyncio.sleep(0.2)  # still slow, but a second filler in a row is never said
            yield Say("Done.")
            yield Hangup()

    deps = deps_for(recognizer, Scripted(handler))
    report, record = await call(deps, [now_say(tone(200))], agent_quiet_ms=1500)
    said = [(t.text, t.filler, t.cached_audio) for t in record.turns if t.role == "agent"]
    assert said == [(FILLER, True, True), ("Done.", False, False)]
    assert deps.metrics.fillers.value == 1 and deps.metrics.cached_audio_turns.value == 1
    # the turn's latency is the real answer's: the filler does not hide a slow reply
    answer = record.turns[-1]
    assert answer.latency is not None and answer.latency.llm_ttft_ms >= 800
    assert report.closed_by == "server"


async def test_a_fast_reply_gets_no_filler(recognizer: LocalSpeechToText) -> None:
    async def handler(event: CallEvent) -> AsyncIterator[Action]:
        if isinstance(event, CallerSaid):
            yield Say("Done.")
            yield Hangup()

    deps = deps_for(recognizer, Scripted(handler))
    report, record = await call(deps, [now_say(tone(200))])
    assert [t.text for t in record.turns if t.role == "agent"] == ["Done."]
    assert deps.metrics.fillers.value == 0


async def test_static_prompts_play_from_the_cache_on_later_calls(
    recognizer: LocalSpeechToText,
) -> None:
    async def handler(event: CallEvent) -> AsyncIterator[Action]:
        if isinstance(event, CallStarted):
            yield Say("Hello there.")
            yield Say("Hello John.")  # rendered from a template: never cached
            yield Hangup()

    cache = PromptCache()
    responder = Scripted(handler, prompts=["Hello there.", "Hello {user_name}."])
    first_deps = deps_for(recognizer, responder, cache)
    _, first = await call(first_deps, [])
    second_deps = replace(first_deps, call_log=CallLog(), metrics=Metrics())
    report, second = await call(second_deps, [])
    assert [t.cached_audio for t in first.turns] == [False, False]
    assert [t.cached_audio for t in second.turns] == [True, False]
    assert second.as_dict()["turns"][0]["cached_audio"] is True
    assert second_deps.metrics.cached_audio_turns.value == 1
    assert cache.cacheable("Hello there.") and not cache.cacheable("Hello John.")
    assert all(t.heard_ms > 0 for t in report.agent_turns)
