"""pause() and events() over real sockets: the Deepgram adapter against the Deepgram emulator
on 127.0.0.1 (the local recogniser's pause() does nothing: providers/stt/local.py). A pause
finishes the words heard so far (Heard(final=True)); a finalize with no speech since returns
them without a second round trip; speech after a pause joins the same turn; nothing is lost or
repeated."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from slotline.providers.base import (
    AudioChunk,
    Heard,
    PlainSttStream,
    SpeechEnded,
    SttEvent,
    SttStream,
    Transcript,
    with_events,
)
from slotline.providers.emulators.deepgram import DeepgramEmulator
from slotline.providers.stt.deepgram import DeepgramSpeechToText
from slotline.providers.stt.local import LocalSpeechToText
from tests.unit.test_stt_local import SILENCE, TEXTS, caller_frames
from tests.until import until

pytestmark = pytest.mark.asyncio(loop_scope="module")  # shares the module's recogniser

KEY = "pause-key"
QUIET = [AudioChunk(SILENCE, b"\x00\x00" * 160, voiced=False)] * 10  # 200 ms, unvoiced


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def recognizer() -> AsyncIterator[LocalSpeechToText]:
    async with LocalSpeechToText() as provider:
        yield provider


@pytest_asyncio.fixture(loop_scope="module")
async def dg(recognizer: LocalSpeechToText) -> AsyncIterator[DeepgramEmulator]:
    async with DeepgramEmulator(api_key=KEY, recognizer=recognizer) as emulator:
        yield emulator


class Events:
    """Everything ``stream.events()`` yields, read in a task until the stream closes."""

    def __init__(self, stream: SttStream) -> None:
        self.seen: list[SttEvent] = []
        self._task = asyncio.create_task(self._read(stream))

    async def _read(self, stream: SttStream) -> None:
        async for event in stream.events():
            self.seen.append(event)

    async def started(self) -> Events:
        await asyncio.sleep(0)  # the reader has subscribed
        return self

    def finals(self) -> list[str]:
        return [e.text for e in self.seen if isinstance(e, Heard) and e.final]

    async def ended(self) -> None:
        await asyncio.wait_for(self._task, 10.0)  # ends when the stream closes


def deepgram(dg: DeepgramEmulator) -> SttStream:
    # The emulator decodes with pocketsphinx: on a loaded machine an answer can take longer
    # than the default 2 s, and a timed-out turn is not what these tests are about.
    stt = DeepgramSpeechToText(KEY, base_url=dg.url, finalize_timeout_s=15.0)
    return stt.open_stream(call_sid="CApause")


def push(stream: SttStream, chunks: list[AudioChunk]) -> None:
    for chunk in chunks:
        stream.push_audio(chunk)


# ---- Deepgram ----------------------------------------------------------------------------------


async def test_deepgram_pause_answers_early_and_finalize_needs_no_second_finalize(
    dg: DeepgramEmulator,
) -> None:
    stream = deepgram(dg)
    events = await Events(stream).started()
    # the recording ends in 160 ms of silence: short of Deepgram's 300 ms endpoint
    push(stream, caller_frames("name_john", tail_ms=0))
    stream.pause()
    await until(lambda: events.finals() == [TEXTS["name_john"]])
    push(stream, QUIET)  # the silence goes on until the turn ends
    transcript = await stream.finalize()
    await stream.aclose()
    await events.ended()
    assert transcript.text == TEXTS["name_john"] and transcript.is_final
    assert dg.stats.finalizes == 1 and dg.stats.from_finalize == 1  # one round trip in all


async def test_deepgram_speech_after_a_pause_joins_the_turn(dg: DeepgramEmulator) -> None:
    stream = deepgram(dg)
    events = await Events(stream).started()
    push(stream, caller_frames("name_john", tail_ms=0))
    stream.pause()
    await until(lambda: events.finals() == [TEXTS["name_john"]])
    push(stream, caller_frames("book", lead_ms=0, tail_ms=100))
    transcript = await stream.finalize()
    after = await stream.finalize()  # the next turn starts empty: nothing carried over
    await stream.aclose()
    assert transcript.text == f"{TEXTS['name_john']} {TEXTS['book']}"
    assert after.text == ""
    assert dg.stats.finalizes == 3


async def test_deepgram_pause_twice_over_one_silence_and_a_pause_with_no_words(
    dg: DeepgramEmulator,
) -> None:
    stream = deepgram(dg)
    events = await Events(stream).started()
    voiced_silence = [AudioChunk(c.ulaw, c.pcm16, voiced=True) for c in QUIET]  # a VAD false alarm
    push(stream, QUIET + voiced_silence + QUIET)
    stream.pause()
    stream.pause()  # nothing voiced since the first
    await until(lambda: events.finals() == [""])
    assert (await stream.finalize()).text == ""
    await stream.aclose()
    assert dg.stats.finalizes == 1


async def test_deepgram_endpoint_is_speech_ended(dg: DeepgramEmulator) -> None:
    stream = deepgram(dg)
    events = await Events(stream).started()
    push(stream, caller_frames("yes", tail_ms=800))  # Deepgram endpoints at 300 ms
    await until(lambda: SpeechEnded() in events.seen)
    heard = [e for e in events.seen if isinstance(e, Heard)]
    assert heard[-1] == Heard(TEXTS["yes"], final=True)
    assert events.seen.index(heard[-1]) < events.seen.index(SpeechEnded())
    await stream.finalize()
    await stream.aclose()


async def test_deepgram_stream_closed_mid_pause(dg: DeepgramEmulator) -> None:
    stream = deepgram(dg)
    events = await Events(stream).started()
    push(stream, caller_frames("name_john", tail_ms=0))
    stream.pause()
    await stream.aclose()  # CloseStream flushes; the answer may come, nothing waits for it
    await events.ended()
    stream.pause()  # after close: nothing happens
    assert await stream.finalize() == Transcript("", True)


# ---- plug-ins written before pause() and events() ----------------------------------------------


class OldPlugin:
    """A recogniser stream with only the methods SttStream had before pauses."""

    def __init__(self) -> None:
        self.pushed = 0
        self._words: asyncio.Queue[Transcript | None] = asyncio.Queue()

    def push_audio(self, chunk: AudioChunk) -> None:
        self.pushed += 1
        if self.pushed == 2:
            self._words.put_nowait(Transcript("hello", is_final=False))

    def set_hints(self, hints: object) -> None:
        return None

    async def finalize(self) -> Transcript:
        self._words.put_nowait(Transcript("hello there", is_final=True))
        return Transcript("hello there", is_final=True)

    async def interim(self) -> AsyncIterator[Transcript]:
        while (transcript := await self._words.get()) is not None:
            yield transcript

    async def aclose(self) -> None:
        self._words.put_nowait(None)


async def test_with_events_gives_an_old_plugin_safe_pause_and_events() -> None:
    plugin = OldPlugin()
    stream = with_events(plugin)
    assert isinstance(plugin, PlainSttStream) and not isinstance(plugin, SttStream)
    assert isinstance(stream, SttStream)  # wrapped: pause() and events() exist
    events = await Events(stream).started()
    push(stream, QUIET[:3])
    stream.pause()  # does nothing, raises nothing
    assert (await stream.finalize()).text == "hello there"
    await stream.aclose()
    await events.ended()
    assert events.seen == [Heard("hello", final=False)]  # the final is finalize()'s answer
    assert plugin.pushed == 3


async def test_with_events_keeps_a_full_stream_as_it_is(dg: DeepgramEmulator) -> None:
    stream = deepgram(dg)
    assert with_events(stream) is stream
    await stream.aclose()
