"""The prompt audio cache: which sentences are static, LRU by bytes, warm-up with the real
offline voice, and a call's voice falling back."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

from slotline.agent.call.prompt_cache import (
    MAX_AHEAD,
    CallVoice,
    PromptCache,
    prompts_of,
    split_sentences,
    static_sentences,
)
from slotline.agent.flow.engine import FlowEngine
from slotline.agent.flow.responder import FlowResponder
from slotline.agent.flow.validate import load_flow
from slotline.providers.errors import ProviderError
from slotline.providers.tts.local import LocalTts
from tests.unit.test_flow_responder import GatedCalendar, NoWebhooks

FLOWS = Path(__file__).resolve().parents[2] / "config" / "flows"
NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


def test_static_sentences_leave_out_the_ones_with_variables() -> None:
    template = "Thanks, {user_name}. What day would you like the demo? Say {{help}} anytime."
    assert split_sentences(template) == [
        "Thanks, {user_name}.", "What day would you like the demo?", "Say {{help}} anytime."]
    assert static_sentences(template) == [
        "What day would you like the demo?", "Say {help} anytime."]


def test_the_prompts_of_the_demo_flow_as_its_responder_lists_them() -> None:
    engine = FlowEngine(load_flow(FLOWS / "demo_booking.yaml"), now=lambda: NOW)
    prompts = prompts_of(FlowResponder(engine, booking=GatedCalendar(), webhooks=NoWebhooks()))
    assert "May I have your name?" in prompts
    assert "Let me check the calendar." in prompts
    assert "Sorry, I didn't catch that." in prompts  # the default reprompt's prefix
    assert "Sure, take your time." in prompts  # said to "hold on" at any question
    # the booking steps' fixed words: a lost race's reply starts from the cache
    assert "Sorry, that time was just taken." in prompts and "Which works best for you?" in prompts
    assert "Or say no thanks." in prompts
    assert not any("{" in p for p in prompts)
    assert len(prompts) == len(set(prompts))
    assert prompts_of(object()) == ()  # a responder that cannot tell: nothing is warmed


def test_only_registered_sentences_are_stored_and_the_least_recent_go_first() -> None:
    cache = PromptCache(max_bytes=10)
    assert not cache.put("v", "Hello John.", b"12345")  # not registered: never stored
    cache.register(["A.", "B.", "C."])
    assert cache.put("v", "A.", b"aaaa") and cache.put("v", "B.", b"bbbb")
    assert cache.get("v", "A.") == b"aaaa"  # A is now the most recent
    assert cache.put("v", "C.", b"cccc")  # 12 bytes > 10: B goes
    assert cache.get("v", "B.") is None and ("v", "A.") in cache and ("v", "C.") in cache
    assert cache.size_bytes == 8 and cache.evictions == 1
    assert cache.get("other voice", "A.") is None  # audio is per voice
    assert not cache.put("v", "A.", b"x" * 11)  # bigger than the whole cache


async def test_warm_synthesizes_what_is_missing_once() -> None:
    tts = LocalTts()
    cache = PromptCache()
    voice = CallVoice(cache, tts, None, lambda exc: None).voice
    cache.register(["One moment.", "Hello there."])
    assert await cache.warm(voice, tts, ["One moment.", "Hello there.", "Not registered."]) == 2
    assert await cache.warm(voice, tts, ["One moment.", "Hello there."]) == 0
    live = b"".join([audio async for audio in tts.synthesize("One moment.")])
    cached = cache.get(voice, "One moment.")
    assert cached is not None and abs(len(cached) - len(live)) <= 80  # espeak varies by bytes
    assert cache.warmed == 2


class BrokenTts:
    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        raise ProviderError("tts", "down")
        yield b""  # an async generator that fails on first use


async def test_call_voice_caches_and_falls_back() -> None:
    cache = PromptCache()
    cache.register(["Hello there."])
    failures: list[ProviderError] = []
    voice = CallVoice(cache, BrokenTts(), LocalTts(), failures.append)
    first = b"".join([a async for a in voice.synthesize("Hello there.")])
    assert first and voice.failed and not voice.from_cache
    assert [f.message for f in failures] == ["down"]
    second = b"".join([a async for a in voice.synthesize("Hello there.")])
    assert second == first and voice.from_cache  # the fallback voice's audio, cached
    assert b"".join([a async for a in voice.synthesize("Hi John.")]) and not voice.from_cache
    assert len(cache) == 1


class CountingTts:
    """The offline voice, counting its requests; ``gate`` holds each until it is set."""

    def __init__(self) -> None:
        self.voice = LocalTts()
        self.asked: list[str] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        self.asked.append(text)
        await self.gate.wait()
        async for audio in self.voice.synthesize(text):
            yield audio


LINE = "You're all set for Tuesday, December 8th at 10 am."


async def test_a_sentence_prepared_ahead_is_said_without_asking_the_tts_again() -> None:
    tts, heard = CountingTts(), Counter[str]()
    voice = CallVoice(PromptCache(), tts, None, lambda exc: None,
                      on_ahead=lambda outcome: heard.update((outcome,)))
    await voice.prepare(LINE)
    assert tts.asked == [LINE] and heard == {"made": 1}
    said = b"".join([a async for a in voice.synthesize(LINE)])
    assert said and tts.asked == [LINE] and heard == {"made": 1, "used": 1}
    again = b"".join([a async for a in voice.synthesize(LINE)])  # used once: asked anew
    assert abs(len(again) - len(said)) <= 80 and tts.asked == [LINE, LINE]


async def _said_while_prepared() -> tuple[CountingTts, asyncio.Task[None], asyncio.Task[bytes]]:
    """LINE being prepared (held at the TTS) and being said."""
    tts = CountingTts()
    tts.gate.clear()
    voice = CallVoice(PromptCache(), tts, None, lambda exc: None)
    ahead = asyncio.create_task(voice.prepare(LINE))
    await asyncio.sleep(0)
    said = asyncio.create_task(_said(voice, LINE))
    await asyncio.sleep(0.01)
    return tts, ahead, said


async def test_a_sentence_said_while_it_is_prepared_waits_for_it() -> None:
    tts, ahead, said = await _said_while_prepared()
    assert not said.done()
    tts.gate.set()
    await ahead
    assert await said and tts.asked == [LINE]  # one synthesis, used by the sentence


async def test_a_prepared_sentence_never_said_is_dropped_and_others_are_unaffected() -> None:
    tts = CountingTts()
    voice = CallVoice(PromptCache(), tts, None, lambda exc: None)
    for n in range(MAX_AHEAD + 1):
        await voice.prepare(f"Line {n}.")
    assert await _said(voice, "Something else.")
    assert await _said(voice, "Line 0.")  # the oldest gave way: synthesized again
    assert tts.asked.count("Line 0.") == 2 and tts.asked.count(f"Line {MAX_AHEAD}.") == 1
    assert await _said(voice, f"Line {MAX_AHEAD}.") and tts.asked.count(f"Line {MAX_AHEAD}.") == 1


async def test_a_failed_synthesis_ahead_leaves_the_sentence_to_the_fallback() -> None:
    failures: list[ProviderError] = []
    voice = CallVoice(PromptCache(), BrokenTts(), LocalTts(), failures.append)
    await voice.prepare(LINE)  # logged only: the call reports it if it says the line
    assert failures == []
    assert await _said(voice, LINE) and voice.failed and len(failures) == 1


async def test_a_cancelled_synthesis_ahead_leaves_the_sentence_to_the_tts() -> None:
    tts, ahead, said = await _said_while_prepared()
    ahead.cancel()  # the call's end cancels its tasks
    tts.gate.set()
    assert await said and tts.asked == [LINE, LINE]


async def _said(voice: CallVoice, text: str) -> bytes:
    return b"".join([a async for a in voice.synthesize(text)])


class ChunkedTts:
    """Two chunks, the second held until ``gate`` is set."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.asked = 0

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        self.asked += 1
        yield b"first"
        await self.gate.wait()
        yield b"second"


async def test_a_sentence_prepared_ahead_plays_as_it_comes() -> None:
    tts, heard = ChunkedTts(), Counter[str]()
    voice = CallVoice(PromptCache(), tts, None, lambda exc: None,
                      on_ahead=lambda outcome: heard.update((outcome,)))
    ahead = asyncio.create_task(voice.prepare(LINE))
    await asyncio.sleep(0)
    said = aiter(voice.synthesize(LINE))
    assert await anext(said) == b"first"  # before the synthesis has finished
    tts.gate.set()
    assert [part async for part in said] == [b"second"]
    await ahead
    assert tts.asked == 1 and heard == {"made": 1, "used": 1}


class FailingLateTts:
    """One chunk, then the vendor fails."""

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        yield b"first"
        await asyncio.sleep(0.01)
        raise ProviderError("tts", "dropped")


async def test_a_synthesis_ahead_failing_mid_sentence_fails_over_as_a_live_one_would() -> None:
    failures: list[ProviderError] = []
    voice = CallVoice(PromptCache(), FailingLateTts(), LocalTts(), failures.append)
    ahead = asyncio.create_task(voice.prepare(LINE))
    await asyncio.sleep(0)
    said = [part async for part in voice.synthesize(LINE)]
    await ahead
    # what was said stands; the fallback says the sentence again in full
    assert said[0] == b"first" and len(said) > 2 and voice.failed
    assert [f.message for f in failures] == ["dropped"]
