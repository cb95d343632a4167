"""LocalTts: real espeak-ng synthesis, streamed as 8 kHz mu-law, through the one worker thread."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from slotline.audio.mulaw import decode_array
from slotline.providers.errors import ProviderError
from slotline.providers.tts.local import LocalTts, split_text

SENTENCE = "Thanks for calling, I can book your appointment for Tuesday afternoon."
BYTES_PER_S = 8000  # 8 kHz mu-law: one byte per sample
FRAME_BYTES = 160  # 20 ms
WORKER_NAME = "slotline-espeak"


async def collect(tts: LocalTts, text: str) -> bytes:
    return b"".join([chunk async for chunk in tts.synthesize(text)])


def duration_s(audio: bytes) -> float:
    return len(audio) / BYTES_PER_S


def voiced_fraction(audio: bytes) -> float:
    """Share of 20 ms frames whose RMS is well above line noise."""
    pcm = decode_array(audio[: len(audio) // FRAME_BYTES * FRAME_BYTES]).astype(np.float64)
    rms = np.sqrt(np.mean(pcm.reshape(-1, FRAME_BYTES) ** 2, axis=1))
    return float(np.mean(rms > 300))


def worker_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == WORKER_NAME]


async def test_sentence_is_speech_of_plausible_length() -> None:
    tts = LocalTts()
    audio = await collect(tts, SENTENCE)
    # eleven words at 175 wpm is close to four seconds
    assert 2.0 < duration_s(audio) < 6.0
    assert voiced_fraction(audio) > 0.5
    short = await collect(tts, "Hello there.")
    assert 0.3 < duration_s(short) < 2.5
    assert voiced_fraction(short) > 0.3


async def test_first_chunk_is_one_buffer_and_arrives_long_before_the_last() -> None:
    tts = LocalTts()
    loop = asyncio.get_running_loop()
    started = loop.time()
    arrivals: list[float] = []
    sizes: list[int] = []
    async for chunk in tts.synthesize(" ".join([SENTENCE] * 30)):
        arrivals.append(loop.time() - started)
        sizes.append(len(chunk))
    # the first piece is a single espeak buffer (~60 ms), not a sentence
    assert sizes[0] < 0.1 * BYTES_PER_S
    assert len(sizes) > 30
    assert arrivals[0] < arrivals[-1] / 2


async def test_breaking_out_mid_stream_then_speaking_again() -> None:
    tts = LocalTts()
    reference = await collect(tts, SENTENCE)
    received = 0
    async for chunk in tts.synthesize(" ".join([SENTENCE] * 40)):
        received += len(chunk)
        break
    assert 0 < received < len(reference)
    again = await collect(tts, SENTENCE)
    assert abs(len(again) - len(reference)) < 0.01 * len(reference)
    assert voiced_fraction(again) > 0.5


async def test_cancelling_the_consuming_task_then_speaking_again() -> None:
    tts = LocalTts()
    reference = await collect(tts, SENTENCE)
    first_chunk = asyncio.Event()

    async def reply() -> None:
        async for _ in tts.synthesize(" ".join([SENTENCE] * 40)):
            first_chunk.set()
            await asyncio.sleep(0.02)  # a consumer paced like playback

    task = asyncio.create_task(reply(), name="reply")
    await first_chunk.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    again = await collect(tts, SENTENCE)
    assert abs(len(again) - len(reference)) < 0.01 * len(reference)


def cpu_ticks(thread: threading.Thread) -> int:
    """User + system CPU time a thread has used, in clock ticks (Linux)."""
    with open(f"/proc/self/task/{thread.native_id}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime and stime, stat fields 14 and 15


async def test_cancelling_stops_the_work_not_just_the_delivery() -> None:
    tts = LocalTts()
    (worker,) = worker_threads()
    endless = " ".join([SENTENCE] * 3000)  # about three hours of speech: seconds of work
    async for _ in tts.synthesize(endless):
        break
    await collect(tts, "Done.")  # served after the abandoned job has been dropped
    before = cpu_ticks(worker)
    await asyncio.sleep(0.5)
    assert cpu_ticks(worker) - before <= 5  # an idle worker; a busy one would use ~50


async def test_concurrent_calls_each_get_their_own_audio() -> None:
    slow, fast = LocalTts(rate_wpm=130), LocalTts(rate_wpm=300)
    long_text = " ".join([SENTENCE] * 12)  # several segments each, interleaved by the worker
    slow_solo, fast_solo = await collect(slow, long_text), await collect(fast, long_text)
    slow_both, fast_both = await asyncio.gather(collect(slow, long_text), collect(fast, long_text))
    assert abs(len(slow_both) - len(slow_solo)) < 0.01 * len(slow_solo)
    assert abs(len(fast_both) - len(fast_solo)) < 0.01 * len(fast_solo)
    assert len(fast_both) < 0.7 * len(slow_both)
    assert voiced_fraction(slow_both) > 0.5 and voiced_fraction(fast_both) > 0.5


async def test_very_long_text_is_spoken_whole() -> None:
    tts = LocalTts()
    one = await collect(tts, SENTENCE)
    text = " ".join([SENTENCE] * 60)  # ~4,300 characters, many segments
    audio = await collect(tts, text)
    assert 0.9 * 60 * len(one) < len(audio) < 1.1 * 60 * len(one)


async def test_empty_text_yields_nothing() -> None:
    tts = LocalTts()
    assert await collect(tts, "") == b""
    assert await collect(tts, " \n\t ") == b""


async def test_unknown_voice_is_a_clear_provider_error() -> None:
    with pytest.raises(ProviderError, match="unknown voice 'xx-nope'") as caught:
        LocalTts("xx-nope")
    assert caught.value.provider == "tts.local"
    assert "en-US" in str(caught.value)  # it suggests voices that exist
    variant = LocalTts("en-us+f3", pitch=70)  # the worker recovers and takes a variant
    assert voiced_fraction(await collect(variant, "Goodbye.")) > 0.3


def test_rate_and_pitch_out_of_range_are_refused() -> None:
    with pytest.raises(ProviderError, match="rate_wpm"):
        LocalTts(rate_wpm=20)
    with pytest.raises(ProviderError, match="pitch"):
        LocalTts(pitch=150)


async def test_one_worker_thread_and_no_leaks() -> None:
    tts = LocalTts()
    await collect(tts, "Warm up.")
    threads_before = threading.active_count()
    for _ in range(5):
        async for _chunk in tts.synthesize(" ".join([SENTENCE] * 10)):
            break
        await asyncio.gather(collect(tts, SENTENCE), collect(LocalTts("en-gb-x-rp"), SENTENCE))
    assert len(worker_threads()) == 1
    assert worker_threads()[0].is_alive()
    assert threading.active_count() == threads_before


def test_split_text_prefers_sentence_then_clause_then_word_breaks() -> None:
    text = "First one here. Second, with a clause; and more words to go. Third!"
    segments = split_text(text, end_pause=False, max_chars=40)
    assert [s.text for s in segments] == [
        "First one here.",
        "Second, with a clause;",
        "and more words to go. Third!",
    ]
    assert [s.end_pause for s in segments] == [True, True, False]
    words = split_text("alpha beta gamma delta", end_pause=True, max_chars=11)
    assert [s.text for s in words] == ["alpha beta", "gamma delta"]
    assert [s.end_pause for s in words] == [False, True]
    unbroken = split_text("x" * 25, end_pause=True, max_chars=10)
    assert [len(s.text) for s in unbroken] == [10, 10, 5]
    assert split_text("  \n ", end_pause=True) == []


def test_split_text_keeps_every_word_in_order() -> None:
    text = " ".join(f"Word{i} goes here{',' if i % 3 else '.'}" for i in range(300))
    segments = split_text(text, end_pause=True)
    assert len(segments) > 5
    assert all(len(s.text) <= 200 for s in segments)
    assert " ".join(s.text for s in segments) == text
