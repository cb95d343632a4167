"""DeepgramSpeechToText against the Deepgram emulator over 127.0.0.1, with the committed caller
recordings: real transcripts (the emulator decodes with the offline recogniser), the Finalize
path, multi-segment turns, KeepAlive, drops with replay, malformed messages, stalls, auth."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from slotline.providers.base import AudioChunk, SpeechToText, SttStream, Transcript
from slotline.providers.emulators.deepgram import DeepgramEmulator, Faults
from slotline.providers.errors import ConfigError, ProviderAuthError, ProviderError, ProviderTimeout
from slotline.providers.stt.deepgram import DeepgramSpeechToText, DeepgramSttStream
from slotline.providers.stt.local import LocalSpeechToText
from tests.unit.test_stt_local import FRAME_BYTES, TEXTS, caller_frames
from tests.until import until

pytestmark = pytest.mark.asyncio(loop_scope="module")  # shares the module's recogniser

KEY = "test-key-5ecret"


def push(stream: DeepgramSttStream, chunks: list[AudioChunk]) -> None:
    for chunk in chunks:
        stream.push_audio(chunk)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def recognizer() -> AsyncIterator[LocalSpeechToText]:
    async with LocalSpeechToText() as provider:
        yield provider


@pytest_asyncio.fixture(loop_scope="module")
async def dg(recognizer: LocalSpeechToText) -> AsyncIterator[DeepgramEmulator]:
    async with DeepgramEmulator(api_key=KEY, recognizer=recognizer) as emulator:
        yield emulator


class Errors(list[ProviderError]):
    def __call__(self, error: ProviderError) -> None:
        self.append(error)


def provider(
    dg: DeepgramEmulator, errors: Errors | None = None, *, api_key: str = KEY, **kwargs: Any
) -> DeepgramSpeechToText:
    return DeepgramSpeechToText(api_key, base_url=dg.url, on_error=errors, **kwargs)


async def test_turn_is_what_the_local_recogniser_hears(dg: DeepgramEmulator) -> None:
    stt: SpeechToText = provider(dg)  # the Protocols, checked by mypy
    stream: SttStream = stt.open_stream(call_sid="CA1")
    for chunk in caller_frames("name_john"):  # 800 ms tail: Deepgram's endpoint fires first
        stream.push_audio(chunk)
    transcript = await stream.finalize()
    await stream.aclose()
    assert transcript.text == TEXTS["name_john"] == "my name is john smith"
    assert transcript.is_final
    assert transcript.confidence is not None
    assert dg.stats.from_finalize == 1
    assert dg.stats.close_streams == 1 and dg.stats.closes == {1000: 1}


async def test_finalize_flushes_speech_the_endpointer_has_not_closed(dg: DeepgramEmulator) -> None:
    stream = provider(dg).open_stream(call_sid="CA2")
    push(stream, caller_frames("book", tail_ms=100))  # our VAD ends the turn before Deepgram's
    transcript = await stream.finalize()
    await stream.aclose()
    assert transcript.text == TEXTS["book"]
    assert dg.stats.final_results == 1 and dg.stats.from_finalize == 1


async def test_several_final_segments_make_one_turn(dg: DeepgramEmulator) -> None:
    stream = provider(dg).open_stream(call_sid="CA3")
    push(stream, caller_frames("name_john", tail_ms=700))  # a pause Deepgram endpoints on
    push(stream, caller_frames("book", lead_ms=0, tail_ms=100))
    transcript = await stream.finalize()
    await stream.aclose()
    assert transcript.text == f"{TEXTS['name_john']} {TEXTS['book']}"
    assert dg.stats.final_results == 2  # one speech_final segment, one from Finalize


async def test_turns_are_separate_and_audio_after_finalize_is_the_next_turn(
    dg: DeepgramEmulator,
) -> None:
    stream = provider(dg).open_stream(call_sid="CA4")
    push(stream, caller_frames("yes", tail_ms=200))
    first = await stream.finalize()
    push(stream, caller_frames("name_john", tail_ms=200))
    second = await stream.finalize()
    empty = await stream.finalize()
    await stream.aclose()
    assert (first.text, second.text, empty.text) == (TEXTS["yes"], TEXTS["name_john"], "")
    assert dg.stats.connections == 1


async def test_interim_yields_the_turn_so_far_then_the_final(dg: DeepgramEmulator) -> None:
    stream = provider(dg).open_stream(call_sid="CA5")
    seen: list[Transcript] = []

    async def watch() -> None:
        async for transcript in stream.interim():
            seen.append(transcript)

    watcher = asyncio.create_task(watch())
    await asyncio.sleep(0)
    push(stream, caller_frames("name_john", tail_ms=100))
    final = await stream.finalize()
    await stream.aclose()
    await watcher  # aclose ends the iteration
    partials = [t for t in seen if not t.is_final]
    assert partials and partials[0].text and all(p.text for p in partials)
    assert seen[-1] == final and final.text == TEXTS["name_john"]


async def test_audio_goes_in_whole_batches_and_a_stalled_remainder_still_goes(
    dg: DeepgramEmulator,
) -> None:
    stream = provider(dg, batch_ms=60).open_stream(call_sid="CA5b")  # 3 frames a batch
    frames = caller_frames("yes")
    push(stream, frames[:3])
    await until(lambda: dg.stats.audio_bytes == 3 * FRAME_BYTES)
    push(stream, frames[3:5])  # two frames: not a batch yet, the sender waits
    push(stream, frames[5:7])  # the batch is full: all four go in one message
    await until(lambda: dg.stats.audio_bytes == 7 * FRAME_BYTES)
    push(stream, frames[7:8])  # then the caller's audio stalls mid-batch
    await until(lambda: dg.stats.audio_bytes == 8 * FRAME_BYTES, timeout_s=2.0)
    assert stream.audio_sends == 3
    await stream.aclose()


async def test_keepalive_holds_the_socket_open_past_the_idle_timeout(
    recognizer: LocalSpeechToText,
) -> None:
    async with DeepgramEmulator(api_key=KEY, recognizer=recognizer, idle_timeout_s=0.5) as dg:
        stream = provider(dg, keepalive_s=0.15).open_stream(call_sid="CA6")
        push(stream, caller_frames("yes", tail_ms=200)[:5])
        await asyncio.sleep(1.3)  # the session pushed nothing: KeepAlive only
        push(stream, caller_frames("yes", tail_ms=200))
        transcript = await stream.finalize()
        await stream.aclose()
    assert transcript.text == TEXTS["yes"]
    assert stream.keepalives_sent >= 4 and dg.stats.keepalives == stream.keepalives_sent
    assert dg.stats.connections == 1 and 1011 not in dg.stats.closes
    assert stream.reconnects == 0


async def test_without_keepalive_the_idle_close_reconnects(recognizer: LocalSpeechToText) -> None:
    errors = Errors()
    # The idle timeout must outlast a decode on a loaded machine: the emulator closes idle
    # sockets even while it decodes, as the service does after its (10 s) timeout.
    async with DeepgramEmulator(api_key=KEY, recognizer=recognizer, idle_timeout_s=1.0) as dg:
        stream = provider(dg, errors, keepalive_s=60.0).open_stream(call_sid="CA7")
        push(stream, caller_frames("yes")[:5])
        await until(lambda: stream.reconnects >= 1)
        push(stream, caller_frames("name_john", tail_ms=100))
        transcript = await stream.finalize()
        await stream.aclose()
    assert transcript.text == TEXTS["name_john"]
    assert dg.stats.closes.get(1011, 0) >= 1
    assert any("NET-0001" in error.message and error.retryable for error in errors)


async def test_socket_dropped_mid_turn_replays_the_callers_words(dg: DeepgramEmulator) -> None:
    errors = Errors()
    dg.inject(Faults(drop_after_results=1))  # the first interim, mid-sentence
    stream = provider(dg, errors).open_stream(call_sid="CA8")
    frames = caller_frames("name_john", tail_ms=100)
    # 400 ms of silence + 1.4 s of the sentence: past the emulator's first interim (a second
    # after its VAD's onset, 660 ms into the audio), before the sentence's end
    push(stream, frames[:90])
    await until(lambda: stream.reconnects == 1)
    push(stream, frames[90:])
    transcript = await stream.finalize()
    await stream.aclose()
    assert transcript.text == TEXTS["name_john"]
    assert dg.stats.faults_fired == 1 and dg.stats.connections == 2
    assert stream.replayed_bytes >= 90 * FRAME_BYTES
    assert [error.retryable for error in errors] == [True]


async def test_drop_with_finalize_in_flight_resends_it_at_its_place(dg: DeepgramEmulator) -> None:
    dg.inject(Faults(drop_on_finalize=True))
    stream = provider(dg).open_stream(call_sid="CA8b")
    push(stream, caller_frames("name_john", tail_ms=100))
    turn = asyncio.create_task(stream.finalize())
    await asyncio.sleep(0)  # the Finalize is placed after the audio pushed so far
    push(stream, caller_frames("yes", tail_ms=100))  # the next turn, pushed during the outage
    first = await turn
    second = await stream.finalize()
    await stream.aclose()
    assert (first.text, second.text) == (TEXTS["name_john"], TEXTS["yes"])
    assert dg.stats.faults_fired == 1 and dg.stats.connections == 2
    assert dg.stats.finalizes == 3  # the lost one, its replay, the second turn's


async def test_malformed_server_message_is_counted_and_the_stream_goes_on(
    dg: DeepgramEmulator,
) -> None:
    errors = Errors()
    dg.inject(Faults(malformed_after_results=1))
    stream = provider(dg, errors).open_stream(call_sid="CA9")
    push(stream, caller_frames("name_john", tail_ms=100))
    transcript = await stream.finalize()
    await stream.aclose()
    assert transcript.text == TEXTS["name_john"]
    assert stream.protocol_errors == 1 and len(errors) == 1
    assert dg.stats.connections == 1


async def test_stalled_finalize_returns_what_it_has_and_the_next_turn_works(
    dg: DeepgramEmulator,
) -> None:
    errors = Errors()
    dg.inject(Faults(stall_after_results=1))  # the first interim arrives, then nothing
    stream = provider(dg, errors, finalize_timeout_s=1.5).open_stream(call_sid="CA10")
    push(stream, caller_frames("name_john", tail_ms=100))
    partial = await stream.finalize()
    push(stream, caller_frames("book", tail_ms=100))
    after = await stream.finalize()
    await stream.aclose()
    assert partial.text and set(partial.text.split()) <= set(TEXTS["name_john"].split())
    assert stream.timeouts == 1 and isinstance(errors[0], ProviderTimeout)
    assert after.text == TEXTS["book"]
    assert dg.stats.connections == 2


async def test_stall_with_nothing_heard_raises_provider_timeout(dg: DeepgramEmulator) -> None:
    dg.inject(Faults(stall_after_results=0))  # silent from the start
    stream = provider(dg, finalize_timeout_s=0.3).open_stream(call_sid="CA11")
    push(stream, caller_frames("yes", tail_ms=100))
    with pytest.raises(ProviderTimeout):
        await stream.finalize()
    await stream.aclose()


async def test_wrong_key_is_an_auth_error_and_never_logged(
    dg: DeepgramEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    stream = provider(dg, api_key="wrong-5ecret-key").open_stream(call_sid="CA12")
    push(stream, caller_frames("yes"))
    with pytest.raises(ProviderAuthError):
        await stream.finalize()
    await stream.aclose()
    assert dg.stats.rejected == {401: 1}  # never retried
    assert "Token [redacted]" in caplog.text  # the handshake was logged, without the key
    assert "5ecret" not in caplog.text


async def test_rejected_parameters_are_a_non_retryable_provider_error(
    dg: DeepgramEmulator,
) -> None:
    stream = provider(dg, model="nova-99").open_stream(call_sid="CA13")
    push(stream, caller_frames("yes"))
    with pytest.raises(ProviderError) as raised:
        await stream.finalize()
    await stream.aclose()
    assert not raised.value.retryable and "HTTP 400" in raised.value.message
    assert dg.stats.rejected == {400: 1}


async def test_finalize_before_any_audio_is_empty_without_a_socket(dg: DeepgramEmulator) -> None:
    stream = provider(dg).open_stream(call_sid="CA14")
    assert await stream.finalize() == Transcript(text="", is_final=True)
    await stream.aclose()
    assert dg.stats.connections == 0


async def test_base_url_must_be_a_websocket_url() -> None:
    with pytest.raises(ConfigError, match="base_url"):
        DeepgramSpeechToText(KEY, base_url="https://api.deepgram.com")
