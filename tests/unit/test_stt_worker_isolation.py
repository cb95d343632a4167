"""The local STT worker pool under restarts, huge requests and a stalled worker (issue 17,
defects 3 and 4). Real decoder processes, the committed caller recordings, the public API;
a stalled or crashed worker is made with signals to the real process.
"""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import time
import tracemalloc
import wave
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from slotline.providers.base import AudioChunk, SpeechHints
from slotline.providers.errors import ProviderError, ProviderTimeout
from slotline.providers.stt import _sphinx_wire as wire
from slotline.providers.stt._sphinx_queue import FairQueue, Job
from slotline.providers.stt.local import LocalSpeechToText, LocalSttStream

FRAME_BYTES = 320  # 20 ms of 8 kHz 16-bit PCM
TEXTS = dict(
    line.split("\t", 1)
    for line in resources.files("slotline.agent.assets.caller")
    .joinpath("utterances.txt")
    .read_text()
    .splitlines()
    if line.strip()
)


def recording(stem: str) -> bytes:
    with resources.as_file(resources.files("slotline.agent.assets.caller") / f"{stem}.wav") as path:
        with wave.open(str(path)) as wav:
            pcm16: bytes = wav.readframes(wav.getnframes())
            return pcm16


def frames(pcm16: bytes, *, lead_ms: int = 400, tail_ms: int = 800) -> list[AudioChunk]:
    """``pcm16`` as the server sees it: 20 ms frames, voiced where the energy is speech."""
    pcm16 = b"\x00" * (lead_ms * 16) + pcm16
    pcm16 += b"\x00" * (-len(pcm16) % FRAME_BYTES + tail_ms * 16)
    chunks = []
    for start in range(0, len(pcm16), FRAME_BYTES):
        frame = pcm16[start : start + FRAME_BYTES]
        samples = np.frombuffer(frame, dtype="<i2").astype(np.float64)
        chunks.append(AudioChunk(b"", frame, voiced=float(np.sqrt(np.mean(samples**2))) > 200))
    return chunks


async def say(stream: LocalSttStream, stem: str) -> str:
    for chunk in frames(recording(stem)):
        stream.push_audio(chunk)
    return (await stream.finalize()).text


def decoder_processes() -> set[int]:
    """This test process's pocketsphinx children, found the way ``ps`` finds them."""
    pids: set[int] = set()
    for children in Path("/proc/self/task").glob("*/children"):
        for pid in children.read_text().split():
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except FileNotFoundError:
                continue
            if b"_sphinx_worker" in cmdline:
                pids.add(int(pid))
    return pids


async def test_restarts_while_decodes_are_in_flight_fail_only_with_provider_errors() -> None:
    """aclose/start cycles and a crashed worker, while four calls keep talking: every turn
    ends with its transcript or a ProviderError (never an AssertionError), and afterwards
    the pool decodes again."""
    outcomes: list[str | ProviderError] = []
    stop = asyncio.Event()
    async with LocalSpeechToText(request_timeout_s=5.0) as provider:

        async def call(index: int) -> None:
            stream = provider.open_stream(call_sid=f"CArace{index}")
            while not stop.is_set():
                try:
                    outcomes.append(await say(stream, "goodbye"))
                except ProviderError as exc:
                    outcomes.append(exc)
                    await asyncio.sleep(0.01)  # closed: do not spin
                await asyncio.sleep(0.01 * index)
            await stream.aclose()

        async def direct() -> None:
            audio = recording("goodbye")
            while not stop.is_set():
                try:
                    outcomes.append((await provider.decode(audio, SpeechHints())).text)
                except ProviderError as exc:
                    outcomes.append(exc)
                    await asyncio.sleep(0.01)  # closed: do not spin
                await asyncio.sleep(0)

        async def restart() -> None:
            for delay_s in (0.05, 0.2, 0.0, 0.35, 0.1):
                await asyncio.sleep(delay_s)
                await provider.aclose()
                await asyncio.sleep(0.01)
                await provider.start()
            for pid in decoder_processes():  # a crash, too
                os.kill(pid, signal.SIGKILL)
            await asyncio.sleep(1.0)
            stop.set()

        async with asyncio.TaskGroup() as group:
            for index in range(4):
                group.create_task(call(index), name=f"call-{index}")
            group.create_task(direct(), name="direct")
            group.create_task(restart(), name="restart")
        stream = provider.open_stream(call_sid="CAafter")
        assert await say(stream, "goodbye") == TEXTS["goodbye"]
        await stream.aclose()
    errors = [o for o in outcomes if isinstance(o, ProviderError)]
    texts = [o for o in outcomes if isinstance(o, str)]
    print(f"{len(texts)} transcripts, {len(errors)} ProviderErrors")
    assert set(texts) == {TEXTS["goodbye"]}
    assert texts and len(outcomes) == len(texts) + len(errors)


async def test_an_enormous_utterance_fails_alone_and_other_calls_keep_their_latency() -> None:
    """One caller's 8-minute request, against another call's ordinary turns: the ordinary
    turns keep a latency near their own (p50 printed), and only the huge one fails."""
    enormous = b"".join(recording(stem) for stem in TEXTS) * 10  # ~7.6 min
    async with LocalSpeechToText(request_timeout_s=6.0) as provider:
        stream = provider.open_stream(call_sid="CAnormal")

        async def timed_turn() -> float:
            started = time.perf_counter()
            assert await say(stream, "goodbye") == TEXTS["goodbye"]
            return time.perf_counter() - started

        baseline_s = [await timed_turn() for _ in range(8)]
        big = asyncio.create_task(provider.decode(enormous, SpeechHints()), name="huge")
        await asyncio.sleep(0.05)
        contended_s = []
        while not big.done():
            contended_s.append(await timed_turn())
        with pytest.raises(ProviderError):
            await big
        after_s = [await timed_turn() for _ in range(4)]
        await stream.aclose()
    p50_ms = statistics.median(baseline_s) * 1000
    contended_p50_ms = statistics.median(contended_s) * 1000
    print(
        f"ordinary turn p50 alone {p50_ms:.0f} ms, beside the huge one "
        f"{contended_p50_ms:.0f} ms (max {max(contended_s) * 1000:.0f} ms, "
        f"{len(contended_s)} turns), after {statistics.median(after_s) * 1000:.0f} ms"
    )
    assert len(contended_s) >= 5
    # one 5 s piece of the huge request (~0.25 s of decode) is the most a turn waits for;
    # before the fix every ordinary turn queued behind the whole 8 minutes and timed out
    assert contended_p50_ms < p50_ms + 800
    assert max(contended_s) < 2.0


async def test_a_wedged_worker_is_replaced_and_only_its_piece_fails() -> None:
    """The worker stops answering (SIGSTOP) with one call's piece in flight and another's
    queued: after ``wedged_after_s`` it is killed and replaced; the piece in flight fails,
    the queued request is decoded by the replacement."""
    audio = recording("goodbye")
    async with LocalSpeechToText(wedged_after_s=1.5, request_timeout_s=10.0) as provider:
        (wedged,) = decoder_processes()
        os.kill(wedged, signal.SIGSTOP)
        first = asyncio.create_task(provider.decode(audio, SpeechHints(), call_key="CAa"))
        await asyncio.sleep(0.1)
        second = asyncio.create_task(provider.decode(audio, SpeechHints(), call_key="CAb"))
        with pytest.raises(ProviderTimeout):
            await first
        assert (await second).text == TEXTS["goodbye"]
        assert wedged not in decoder_processes()
        assert set(provider.worker_pids) == decoder_processes()


async def test_a_request_over_the_per_call_cap_fails_at_once() -> None:
    eleven_minutes = b"\x01\x00" * 8000 * 660
    async with LocalSpeechToText() as provider:
        started = time.perf_counter()
        with pytest.raises(ProviderError) as raised:
            await provider.decode(eleven_minutes, SpeechHints())
        assert not raised.value.retryable
        assert time.perf_counter() - started < 0.5
        stream = provider.open_stream(call_sid="CAok")
        assert await say(stream, "goodbye") == TEXTS["goodbye"]
        await stream.aclose()


async def test_a_stalled_worker_does_not_grow_the_parents_buffers() -> None:
    """The worker stops reading (SIGSTOP) while four calls talk with a pause every second:
    each pause sends a speculative decode, and speech resuming cancels it. The parent's
    memory must stay near what the calls' own utterances hold, not grow with every
    speculation; the per-frame path is timed meanwhile. Then the worker resumes and every
    call still gets its transcript."""
    speech = recording("goodbye")[: 50 * FRAME_BYTES]
    speech = (speech * 2)[: 50 * FRAME_BYTES]  # one second of speech
    pause = [AudioChunk(b"", b"\x00" * FRAME_BYTES, voiced=False)] * 14  # 280 ms
    turn = [
        AudioChunk(b"", speech[i : i + FRAME_BYTES], voiced=True)
        for i in range(0, len(speech), FRAME_BYTES)
    ] + pause
    async with LocalSpeechToText(max_utterance_s=10.0) as provider:
        streams = [provider.open_stream(call_sid=f"CAstall{i}") for i in range(4)]
        (pid,) = decoder_processes()
        os.kill(pid, signal.SIGSTOP)
        frame_s: list[float] = []
        tracemalloc.start()
        try:
            before, _ = tracemalloc.get_traced_memory()
            for _ in range(90):  # ~2 minutes of talk per call
                for stream in streams:
                    for chunk in turn:
                        started = time.perf_counter()
                        stream.push_audio(chunk)
                        frame_s.append(time.perf_counter() - started)
                await asyncio.sleep(0)  # the loop runs: the pipe fills, then stays full
            await asyncio.sleep(0.2)
            grown_mb = (tracemalloc.get_traced_memory()[0] - before) / 1e6
            print(f"parent memory grew {grown_mb:.1f} MB over {len(frame_s)} frames")
            # 4 calls x (a 10 s utterance + a queued speculation + a piece in the pipe) ~ 2 MB
            assert grown_mb < 6.0
        finally:
            tracemalloc.stop()
            os.kill(pid, signal.SIGCONT)
        texts = await asyncio.gather(*(stream.finalize() for stream in streams))
        for stream in streams:
            await stream.aclose()
    frame_us = sorted(s * 1e6 for s in frame_s)
    p50_us, p99_us = frame_us[len(frame_us) // 2], frame_us[len(frame_us) * 99 // 100]
    print(f"push_audio p50 {p50_us:.1f} us, p99 {p99_us:.1f} us, max {frame_us[-1]:.0f} us")
    assert all(t.is_final for t in texts)
    assert frame_us[-1] < 20_000


async def test_the_queue_takes_calls_in_turn_and_drops_cancelled_requests() -> None:
    """Sans-I/O: the order pieces go out in, and what a cancelled speculation still holds."""
    loop = asyncio.get_running_loop()
    queue = FairQueue(max_call_bytes=10_000, max_total_bytes=100_000)

    def job(call: str, size: int = 100) -> Job:
        return Job(call, b"\x00" * size, (), None, loop.create_future(), loop.time() + 60)

    a1, a2, a3, b1 = job("A"), job("A"), job("A"), job("B")
    for queued in (a1, a2, a3, b1):
        assert queue.push(queued) is None
    order = []
    while (taken := queue.pop(loop.time())) is not None:
        order.append(taken)
        taken.future.set_result(wire.DecodeResult(0, "", None, "none", 0.0))
        queue.finish(taken)
    assert order == [a1, b1, a2, a3]  # B does not wait behind all of A's requests
    stale = job("A", 4000)
    assert queue.push(stale) is None
    stale.future.cancel()  # speech resumed
    assert queue.push(job("A", 4000)) is None
    assert queue.total_bytes == 4000  # the cancelled one's audio is let go at once
    refused = queue.push(job("A", 8000))
    assert refused is not None and not refused.retryable  # over A's cap: A alone is refused
    assert queue.push(job("B", 8000)) is None
