"""CPU cost of forwarding caller audio to Deepgram: what every call pays every 20 ms for STT.

``--calls`` recognition streams (``DeepgramSttStream``) each get one real 20 ms mu-law frame
every 20 ms, in real time, on one event loop, as the call sessions push them. A plain
WebSocket sink in a child process plays Deepgram (it reads and drops the audio), so its CPU is
not counted. Reports the event loop thread's CPU per forwarded frame, the driver's own cost
(the same loop pushing into a stream that forwards nothing) subtracted, and the WebSocket
messages sent per call-second. Not a test: run it and read the numbers.

    .venv/bin/python bench/stt_forward_cost.py [--calls 50] [--seconds 10] [--batch-ms 60]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import multiprocessing.queues
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.null_stt import NullStream  # noqa: E402
from slotline.providers.base import AudioChunk, SttStream  # noqa: E402
from slotline.providers.stt.deepgram import DeepgramSpeechToText  # noqa: E402

FRAME = 160
FRAME_S = 0.02


def _sink(ready: multiprocessing.queues.Queue[int]) -> None:
    """A Deepgram stand-in that accepts every upgrade and drops what it is sent."""
    from websockets.asyncio.server import ServerConnection, serve

    async def handler(ws: ServerConnection) -> None:
        async for message in ws:
            if isinstance(message, str) and "CloseStream" in message:
                await ws.close()  # what Deepgram does after its last results

    async def main() -> None:
        async with serve(handler, "127.0.0.1", 0) as server:
            ready.put(server.sockets[0].getsockname()[1])
            await asyncio.get_running_loop().create_future()

    asyncio.run(main())


def _frames() -> list[bytes]:
    """Speech-like mu-law frames (a few distinct ones, so nothing is a cached constant)."""
    import numpy as np

    from slotline.audio.mulaw import encode_array

    t = np.arange(50 * FRAME) / 8000
    pcm = (6000 * np.sin(2 * np.pi * 180 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)))
    ulaw = encode_array(pcm.astype(np.int16))
    return [ulaw[i : i + FRAME] for i in range(0, len(ulaw), FRAME)]


async def _drive(streams: Sequence[SttStream], seconds: float) -> tuple[float, int]:
    """Push one frame to every stream every 20 ms; returns (thread CPU s, frames pushed)."""
    frames = _frames()
    loop = asyncio.get_running_loop()
    ticks = int(seconds / FRAME_S)
    started_cpu = time.thread_time()
    next_at = loop.time()
    for tick in range(ticks):
        ulaw = frames[tick % len(frames)]
        chunk = AudioChunk(ulaw, b"", True)
        for stream in streams:
            stream.push_audio(chunk)
        next_at += FRAME_S
        await asyncio.sleep(max(0.0, next_at - loop.time()))
    return time.thread_time() - started_cpu, ticks * len(streams)


async def _measure(args: argparse.Namespace, port: int) -> None:
    stt = DeepgramSpeechToText("bench", base_url=f"ws://127.0.0.1:{port}",
                               batch_ms=args.batch_ms)
    null_cpu, null_frames = await _drive([NullStream() for _ in range(args.calls)],
                                         args.seconds)
    streams = [stt.open_stream(call_sid=f"CA{i}") for i in range(args.calls)]
    await _drive(streams, 1.0)  # connect and warm up
    sends_before = sum(s.audio_sends for s in streams)
    cpu, frames = await _drive(streams, args.seconds)
    sends = sum(s.audio_sends for s in streams) - sends_before
    for stream in streams:
        await stream.aclose()
    per_frame_us = (cpu / frames - null_cpu / null_frames) * 1e6
    call_seconds = args.calls * args.seconds
    print(f"{args.calls} streams, {args.seconds:g} s, batch {args.batch_ms} ms, pid {os.getpid()}")
    print(f"driver alone                     {null_cpu / null_frames * 1e6:7.1f} µs per frame")
    print(f"forwarding to Deepgram           {per_frame_us:7.1f} µs per frame "
          f"({per_frame_us * 50 / 1000:.2f} ms CPU per call-second)")
    print(f"audio messages sent              {sends / call_seconds:7.1f} per call-second")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--batch-ms", type=int, default=60)
    args = parser.parse_args()
    context = multiprocessing.get_context("spawn")
    ready: multiprocessing.queues.Queue[int] = context.Queue()
    sink = context.Process(target=_sink, args=(ready,), daemon=True)
    sink.start()
    try:
        asyncio.run(_measure(args, ready.get(timeout=30)))
    finally:
        sink.terminate()
        sink.join()


if __name__ == "__main__":
    main()
