"""Our Deepgram and ElevenLabs clients against the official SDKs, per call, same emulators.

The emulators (providers/emulators: Deepgram with the offline recogniser, ElevenLabs with
espeak) run in a child process, so this process's CPU (``time.process_time``, every thread)
is the client's alone, and the event loop's stalls are measured apart from the vendor's.

* Deepgram, one call = one socket streaming ``--seconds`` of caller speech in 20 ms mu-law
  frames, paced in real time, then ``Finalize`` (the turn ends) and ``CloseStream``. Ours is
  ``DeepgramSpeechToText`` (``push_audio`` per frame, 60 ms batches, parses every result); the
  SDK is ``AsyncDeepgramClient.listen.v1.connect`` (``await send_media`` per frame, a task
  iterating its parsed messages). Reports client CPU per call and per frame, the time a frame
  hand-off takes (what the call's 20 ms tick pays), and Finalize -> final latency.
* ElevenLabs, ``--replies`` replies of a typical sentence. Ours is ``ElevenLabsTts`` (warm
  multi-context WebSocket, alignment parsed); the SDK's only asyncio client is HTTP streaming
  (``AsyncElevenLabs.text_to_speech.stream``; its stream-input client is synchronous). Reports
  time to first audio, time to the end and client CPU per reply.

    cd /work/main && .venv/bin/python -m bench.sdk_client_cost [--calls 3] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import multiprocessing.queues
import os
import statistics
import time
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx

from slotline.providers.base import AudioChunk
from slotline.providers.stt.deepgram import DeepgramSpeechToText
from slotline.providers.tts.elevenlabs import ElevenLabsTts

KEY = "bench-key"
VOICE = "21m00Tcm4TlvDq8ikWAM"
SENTENCE = "Great, I have booked your appointment for Tuesday at three."
FRAME_S = 0.02
STEMS = ("name_john", "book", "yes", "day_tuesday", "time_3pm")


def _emulators(ready: multiprocessing.queues.Queue[tuple[str, str]]) -> None:
    from slotline.providers.emulators.deepgram import DeepgramEmulator
    from slotline.providers.emulators.elevenlabs import ElevenLabsEmulator

    async def main() -> None:
        async with DeepgramEmulator(api_key=KEY) as dg, ElevenLabsEmulator(api_key=KEY) as el:
            ready.put((dg.url, el.base_url))
            await asyncio.get_running_loop().create_future()

    asyncio.run(main())


def _speech(seconds: float) -> list[AudioChunk]:
    """Caller recordings back to back (pauses between them) up to ``seconds`` of 20 ms frames."""
    from tests.unit.test_stt_local import caller_frames

    frames: list[AudioChunk] = []
    while len(frames) * FRAME_S < seconds:
        for stem in STEMS:
            frames.extend(caller_frames(stem, lead_ms=300, tail_ms=500))
    return frames[: int(seconds / FRAME_S)]


@dataclass
class Call:
    cpu_ms: float = 0.0
    handoff_us: list[float] = field(default_factory=list)
    finalize_ms: float = 0.0
    transcript: str = ""
    messages: int = 0


async def _paced(
    frames: list[AudioChunk], hand_off: Callable[[AudioChunk], Awaitable[None] | None]
) -> list[float]:
    """Hand each frame over on a 20 ms tick; the time each hand-off takes, in µs."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    costs: list[float] = []
    for index, frame in enumerate(frames):
        started = time.perf_counter_ns()
        sending = hand_off(frame)
        if sending is not None:
            await sending
        costs.append((time.perf_counter_ns() - started) / 1000)
        await asyncio.sleep(max(0.0, start + (index + 1) * FRAME_S - loop.time()))
    return costs


async def ours_call(url: str, frames: list[AudioChunk]) -> Call:
    call = Call()
    cpu = time.process_time()
    stream = DeepgramSpeechToText(KEY, base_url=url).open_stream(call_sid="CAbench")
    call.handoff_us = await _paced(frames, stream.push_audio)
    started = time.perf_counter()
    transcript = await stream.finalize()
    call.finalize_ms = (time.perf_counter() - started) * 1000
    await stream.aclose()
    call.cpu_ms = (time.process_time() - cpu) * 1000
    call.transcript = transcript.text
    return call


async def sdk_call(url: str, frames: list[AudioChunk]) -> Call:
    from deepgram import AsyncDeepgramClient
    from deepgram.environment import DeepgramClientEnvironment
    from deepgram.listen.v1.types import ListenV1Results

    call = Call()
    cpu = time.process_time()
    environment = DeepgramClientEnvironment(
        base=url.replace("ws", "http", 1), production=url, agent=url,
        agent_rest=url.replace("ws", "http", 1),
    )
    client = AsyncDeepgramClient(api_key=KEY, environment=environment)
    finals: list[str] = []
    finalized = asyncio.Event()
    async with client.listen.v1.connect(
        model="nova-3", encoding="mulaw", sample_rate=8000, channels=1, interim_results=True,
        endpointing=300, utterance_end_ms=1000, vad_events=True, smart_format=True,
        punctuate=True,
    ) as socket:

        async def read() -> None:
            async for message in socket:
                call.messages += 1
                if isinstance(message, ListenV1Results) and message.is_final:
                    finals.append(message.channel.alternatives[0].transcript)
                    if message.from_finalize:
                        finalized.set()

        reader = asyncio.create_task(read(), name="sdk-reader")
        call.handoff_us = await _paced(frames, lambda frame: socket.send_media(frame.ulaw))
        started = time.perf_counter()
        await socket.send_finalize()
        await finalized.wait()
        call.finalize_ms = (time.perf_counter() - started) * 1000
        await socket.send_close_stream()
        await reader
    call.cpu_ms = (time.process_time() - cpu) * 1000
    call.transcript = " ".join(text for text in finals if text)
    return call


@dataclass
class Reply:
    first_ms: float
    total_ms: float
    cpu_ms: float
    audio_bytes: int


async def ours_replies(url: str, count: int) -> list[Reply]:
    replies = []
    tts = ElevenLabsTts(KEY, voice_id=VOICE, base_url=url)
    await tts.start()  # a warm socket, as the server keeps one
    try:
        for _ in range(count):
            cpu, started = time.process_time(), time.perf_counter()
            first, size = 0.0, 0
            async for chunk in tts.synthesize(SENTENCE):
                first = first or time.perf_counter() - started
                size += len(chunk)
            replies.append(Reply(first * 1000, (time.perf_counter() - started) * 1000,
                                 (time.process_time() - cpu) * 1000, size))
    finally:
        await tts.aclose()
    return replies


async def sdk_replies(url: str, count: int) -> list[Reply]:
    from elevenlabs.client import AsyncElevenLabs

    replies = []
    async with httpx.AsyncClient() as http:  # kept alive across replies, as a server would
        client = AsyncElevenLabs(api_key=KEY, base_url=url.replace("ws", "http", 1),
                                 httpx_client=http)
        for _ in range(count):
            cpu, started = time.process_time(), time.perf_counter()
            first, size = 0.0, 0
            async for chunk in client.text_to_speech.stream(
                VOICE, text=SENTENCE, output_format="ulaw_8000", model_id="eleven_flash_v2_5",
            ):
                first = first or time.perf_counter() - started
                size += len(chunk)
            replies.append(Reply(first * 1000, (time.perf_counter() - started) * 1000,
                                 (time.process_time() - cpu) * 1000, size))
    return replies


def _calls_line(label: str, calls: list[Call], frames: int, driver_ms: float) -> str:
    handoffs = sorted(cost for call in calls for cost in call.handoff_us)
    p99 = handoffs[max(0, int(len(handoffs) * 0.99) - 1)]
    cpu = statistics.median(call.cpu_ms for call in calls) - driver_ms
    return (f"  {label:<5} client CPU/call {cpu:6.1f} ms ({cpu * 1000 / frames:5.1f} µs/frame)  "
            f"hand-off median {statistics.median(handoffs):6.1f} µs p99 {p99:7.1f} µs  "
            f"Finalize->final {statistics.median(c.finalize_ms for c in calls):6.1f} ms")


def _replies_line(label: str, replies: list[Reply]) -> str:
    return (f"  {label:<5} first audio {statistics.median(r.first_ms for r in replies):6.1f} ms"
            f"  all {statistics.median(r.total_ms for r in replies):6.1f} ms"
            f"  CPU/reply {statistics.median(r.cpu_ms for r in replies):6.2f} ms"
            f"  ({replies[0].audio_bytes} bytes)")


async def measure(args: argparse.Namespace, dg_url: str, el_url: str) -> None:
    frames = _speech(args.seconds)
    print(f"Deepgram: {args.calls} calls of {len(frames)} frames ({args.seconds:g} s) each way")
    cpu = time.process_time()
    await _paced(frames, lambda frame: None)  # the driver alone: its 20 ms tick costs too
    driver_ms = (time.process_time() - cpu) * 1000
    print(f"  the driver alone (pacing, no client): {driver_ms:.1f} ms a call, "
          f"subtracted from the CPU figures below")
    await ours_call(dg_url, frames[:50])  # warm-up: imports and first-use costs
    await sdk_call(dg_url, frames[:50])
    ours: list[Call] = []
    sdk: list[Call] = []
    for _ in range(args.calls):  # alternate, so load on the machine hits both alike
        ours.append(await ours_call(dg_url, frames))
        sdk.append(await sdk_call(dg_url, frames))
    print(_calls_line("ours", ours, len(frames), driver_ms))
    print(_calls_line("SDK", sdk, len(frames), driver_ms))
    print(f"  transcripts agree: {ours[0].transcript == sdk[0].transcript} "
          f"({ours[0].transcript!r})")

    print(f"ElevenLabs: {args.replies} replies of {SENTENCE!r} each way")
    await ours_replies(el_url, 1)  # warm-up
    await sdk_replies(el_url, 1)
    print(_replies_line("ours", await ours_replies(el_url, args.replies)))
    print(_replies_line("SDK", await sdk_replies(el_url, args.replies)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--replies", type=int, default=10)
    args = parser.parse_args()
    # The Deepgram SDK's socket is websockets' legacy client (deprecated since websockets 14).
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    context = multiprocessing.get_context("spawn")
    ready: multiprocessing.queues.Queue[tuple[str, str]] = context.Queue()
    child = context.Process(target=_emulators, args=(ready,), daemon=True)
    child.start()
    try:
        dg_url, el_url = ready.get(timeout=60)
        print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
        asyncio.run(measure(args, dg_url, el_url))
    finally:
        child.terminate()
        child.join()


if __name__ == "__main__":
    main()
