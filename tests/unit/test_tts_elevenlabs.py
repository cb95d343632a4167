"""ElevenLabsTts against the ElevenLabs emulator over 127.0.0.1: real sockets, real speech."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import numpy as np
import pytest

from slotline.audio.mulaw import decode_array
from slotline.providers.emulators.elevenlabs import ElevenLabsEmulator, Fault, Latency
from slotline.providers.errors import (
    ProtocolError,
    ProviderAuthError,
    ProviderError,
    ProviderTimeout,
)
from slotline.providers.tts.elevenlabs import ElevenLabsTts, SpeechChunk, words_heard
from slotline.providers.tts.elevenlabs_wire import Alignment
from slotline.providers.tts.local import LocalTts

KEY = "emulator-key"
SENTENCE = "Your appointment is confirmed for Tuesday at three."
LONG_REPLY = " ".join(["We have openings on Monday morning, Tuesday afternoon and Friday."] * 6)


@pytest.fixture
async def emulator() -> AsyncIterator[ElevenLabsEmulator]:
    async with ElevenLabsEmulator(api_key=KEY) as running:
        yield running


def make_tts(
    emulator: ElevenLabsEmulator,
    *,
    first_audio_timeout_s: float = 5.0,
    stall_timeout_s: float = 3.0,
    close_grace_s: float = 2.0,
) -> ElevenLabsTts:
    return ElevenLabsTts(
        KEY,
        voice_id="voice1",
        base_url=emulator.base_url,
        first_audio_timeout_s=first_audio_timeout_s,
        stall_timeout_s=stall_timeout_s,
        close_grace_s=close_grace_s,
    )


async def collect(tts: ElevenLabsTts, text: str) -> bytes:
    return b"".join([chunk async for chunk in tts.synthesize(text)])


def voiced_fraction(audio: bytes) -> float:
    frames = decode_array(audio[: len(audio) // 160 * 160]).astype(np.float64).reshape(-1, 160)
    return float(np.mean(np.sqrt(np.mean(frames**2, axis=1)) > 300))


async def test_reply_is_mulaw_speech_passed_through(emulator: ElevenLabsEmulator) -> None:
    tts = make_tts(emulator)
    await tts.start()
    try:
        audio = await collect(tts, SENTENCE)
    finally:
        await tts.aclose()
    # eight words at espeak's 175 wpm: about three seconds
    assert 1.5 < len(audio) / 8000 < 6.0
    assert voiced_fraction(audio) > 0.5
    reference = b"".join([chunk async for chunk in LocalTts().synthesize(SENTENCE)])
    assert abs(len(audio) - len(reference)) < 0.01 * len(reference)  # no transcoding on the way


async def test_alignment_is_in_reply_time_and_tells_the_words_heard(
    emulator: ElevenLabsEmulator,
) -> None:
    tts = make_tts(emulator)
    await tts.start()
    try:
        chunks = [chunk async for chunk in tts.synthesize_with_alignment(SENTENCE)]
    finally:
        await tts.aclose()
    alignments = [chunk.alignment for chunk in chunks if chunk.alignment is not None]
    assert "".join(alignment.text for alignment in alignments) == SENTENCE + " "
    starts = [start for alignment in alignments for start in alignment.char_start_times_ms]
    assert starts == sorted(starts)
    total_ms = sum(len(chunk.audio) for chunk in chunks) / 8
    assert chunks[-1].start_ms < total_ms and starts[-1] < total_ms
    assert all(
        a.start_ms + len(a.audio) // 8 == b.start_ms
        for a, b in zip(chunks, chunks[1:], strict=False)
    )
    heard = words_heard(alignments, total_ms / 2)
    assert SENTENCE.startswith(heard) and 2 <= len(heard.split()) <= 6
    assert words_heard(alignments, total_ms + 1) == SENTENCE
    assert words_heard(alignments, 0) == ""


def test_words_heard_counts_a_word_once_half_of_it_was_played() -> None:
    # "to  be" : "to" spans 0-200 ms, "be" spans 300-500 ms (over two chunks)
    first = Alignment(("t", "o", " "), (0, 100, 200), (100, 100, 100))
    second = Alignment(("b", "e"), (300, 400), (100, 100))
    assert words_heard([first, second], 99) == ""
    assert words_heard([first, second], 100) == "to"
    assert words_heard([first, second], 399) == "to"
    assert words_heard([first, second], 400) == "to be"


async def test_two_concurrent_replies_share_one_socket(emulator: ElevenLabsEmulator) -> None:
    tts = make_tts(emulator)
    await tts.start()
    texts = ("The first caller hears this.", "The second caller hears something else.")

    async def reply(text: str) -> list[SpeechChunk]:
        return [chunk async for chunk in tts.synthesize_with_alignment(text)]

    try:
        replies = await asyncio.gather(*(reply(text) for text in texts))
    finally:
        await tts.aclose()
    for text, chunks in zip(texts, replies, strict=True):
        assert (
            "".join(c.alignment.text for c in chunks if c.alignment) == text + " "
        )  # no cross-talk
        assert voiced_fraction(b"".join(chunk.audio for chunk in chunks)) > 0.4
    assert emulator.counters.connections == 1
    assert emulator.counters.contexts_opened == 2


async def test_barge_in_closes_the_context_and_keeps_the_socket(
    emulator: ElevenLabsEmulator,
) -> None:
    tts = make_tts(emulator)
    await tts.start()
    try:
        reference_bytes = len(await collect(tts, LONG_REPLY))
        received = 0
        async for audio in tts.synthesize(LONG_REPLY):
            received += len(audio)
            break  # the caller barged in
        assert 0 < received < reference_bytes
        after = [chunk async for chunk in tts.synthesize_with_alignment(SENTENCE)]
        # none of the interrupted reply's later audio leaks into the next one
        assert "".join(c.alignment.text for c in after if c.alignment) == SENTENCE + " "
        assert voiced_fraction(b"".join(chunk.audio for chunk in after)) > 0.5
        assert emulator.counters.connections == 1  # no reconnect
        assert emulator.counters.contexts_opened == 3
        for _ in range(100):  # the closed context drains on the service side
            if emulator.counters.contexts_closed == 3:
                break
            await asyncio.sleep(0.02)
        assert emulator.counters.contexts_closed == 3
    finally:
        await tts.aclose()


async def test_draining_contexts_count_against_the_limit_of_five() -> None:
    # slow audio: each interrupted reply keeps draining on its socket for a while
    latency = Latency(chunk_interval_ms=100.0)  # ~10 s to drain a long reply
    async with ElevenLabsEmulator(api_key=KEY, latency=latency) as emulator:
        tts = make_tts(emulator, close_grace_s=30.0)
        await tts.start()
        try:
            for _ in range(6):
                async for _audio in tts.synthesize(LONG_REPLY):
                    break
            # the sixth went to a second socket instead of breaking the first (vendor: 1008)
            assert emulator.counters.connections == 2
            assert voiced_fraction(await collect(tts, SENTENCE)) > 0.5
        finally:
            await tts.aclose()


async def test_dropped_socket_fails_the_reply_and_the_next_one_reconnects(
    emulator: ElevenLabsEmulator,
) -> None:
    tts = make_tts(emulator)
    await tts.start()
    try:
        emulator.inject(Fault.DROP_SOCKET)
        with pytest.raises(ProviderError) as failed:
            await collect(tts, LONG_REPLY)
        assert failed.value.retryable
        assert voiced_fraction(await collect(tts, SENTENCE)) > 0.5
        assert emulator.counters.connections == 2
    finally:
        await tts.aclose()


async def test_refused_key_is_an_auth_error(emulator: ElevenLabsEmulator) -> None:
    tts = ElevenLabsTts("wrong-key", voice_id="voice1", base_url=emulator.base_url)
    try:
        with pytest.raises(ProviderAuthError):
            await tts.start()
        with pytest.raises(ProviderAuthError):
            await collect(tts, SENTENCE)
    finally:
        await tts.aclose()
    assert emulator.counters.rest_requests == 0  # a refused key is not worked around


async def test_rest_streaming_when_the_socket_cannot_be_opened(
    emulator: ElevenLabsEmulator,
) -> None:
    emulator.inject(Fault.WS_UNAVAILABLE, times=2)
    tts = make_tts(emulator)
    await tts.start()  # the warm socket fails: logged, not raised
    try:
        chunks = [chunk async for chunk in tts.synthesize_with_alignment(SENTENCE)]
        audio = b"".join(chunk.audio for chunk in chunks)
        assert 1.5 < len(audio) / 8000 < 6.0 and voiced_fraction(audio) > 0.5
        assert all(chunk.alignment is None for chunk in chunks)
        assert emulator.counters.rest_requests == 1
        assert emulator.counters.connections == 0
        emulator.inject(Fault.REST_429)
        with pytest.raises(ProviderError) as failed:
            await collect(tts, SENTENCE)
        assert failed.value.retryable and not isinstance(failed.value, ProviderAuthError)
    finally:
        await tts.aclose()


async def test_malformed_server_message_is_a_protocol_error(
    emulator: ElevenLabsEmulator,
) -> None:
    tts = make_tts(emulator)
    await tts.start()
    try:
        emulator.inject(Fault.MALFORMED)
        with pytest.raises(ProtocolError):
            await collect(tts, SENTENCE)
        assert voiced_fraction(await collect(tts, SENTENCE)) > 0.5
    finally:
        await tts.aclose()


async def test_stalled_audio_times_out_and_the_socket_is_replaced(
    emulator: ElevenLabsEmulator,
) -> None:
    tts = make_tts(emulator, stall_timeout_s=0.2)
    await tts.start()
    try:
        emulator.inject(Fault.STALL)
        received = 0
        with pytest.raises(ProviderTimeout):
            async for audio in tts.synthesize(LONG_REPLY):
                received += len(audio)
        assert received > 0
        assert voiced_fraction(await collect(tts, SENTENCE)) > 0.5
        assert emulator.counters.connections == 2
    finally:
        await tts.aclose()


async def test_text_streamed_in_pieces_is_one_context(emulator: ElevenLabsEmulator) -> None:
    tts = make_tts(emulator, stall_timeout_s=0.25)
    await tts.start()

    async def pieces() -> AsyncIterator[str]:
        yield "Let me check that for you,"
        await asyncio.sleep(0.5)  # the LLM is slower than the stall timeout: not a stall
        yield "Tuesday at three works."

    try:
        chunks = [chunk async for chunk in tts.synthesize_stream(pieces())]
    finally:
        await tts.aclose()
    text = "".join(chunk.alignment.text for chunk in chunks if chunk.alignment)
    assert text == "Let me check that for you, Tuesday at three works. "
    assert emulator.counters.contexts_opened == 1
