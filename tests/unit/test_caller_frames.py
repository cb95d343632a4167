"""The simulated caller's cheap frames: prepared payloads, the media template, shared timers."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable

import aiohttp
import pytest
from aiohttp import web

from slotline.agent.sim.frame_clock import FrameClock
from slotline.agent.sim.speech_frames import (
    SILENCE_FRAME,
    SILENCE_PAYLOAD,
    MediaText,
    prepare,
    voiced_span,
)
from slotline.agent.sim.ws_send import sync_sender
from slotline.providers.telephony.twilio_media import Media, encode_inbound_media, parse_inbound
from tests.unit.test_caller import UTTERANCE, tone


@pytest.mark.parametrize(("seq", "chunk", "ts"), [(1, 1, 0), (3, 2, 20), (123456, 99999, 1999980)])
def test_media_text_is_the_codecs_message_byte_for_byte(seq: int, chunk: int, ts: int) -> None:
    sid = "MZ" + "0123456789abcdef" * 2
    frame = bytes(range(160))
    text = MediaText(sid).frame(seq, chunk, ts, base64.b64encode(frame).decode())
    assert text == encode_inbound_media(sid, seq, chunk, ts, frame)
    parsed = parse_inbound(text)
    assert isinstance(parsed, Media)
    assert (parsed.sequence_number, parsed.chunk, parsed.timestamp_ms, parsed.payload) == (
        seq, chunk, ts, frame)


def test_prepared_speech_is_the_audio_in_frames_with_its_voiced_span() -> None:
    audio = SILENCE_FRAME * 2 + tone(210) + SILENCE_FRAME * 3  # 210 ms: the last frame padded
    speech = prepare(audio)
    decoded = b"".join(base64.b64decode(p) for p in speech.payloads)
    assert decoded == audio + SILENCE_FRAME[: -len(audio) % 160]
    assert speech.frames == len(decoded) // 160
    assert (speech.first_voiced, speech.last_voiced) == voiced_span(audio) == (2, 12)
    assert prepare(audio) is speech  # a recording is prepared once
    assert base64.b64decode(SILENCE_PAYLOAD) == SILENCE_FRAME
    silent = prepare(SILENCE_FRAME * 4)  # nothing voiced: the whole utterance counts
    assert (silent.first_voiced, silent.last_voiced) == (0, 3)
    assert prepare(UTTERANCE).last_voiced == 9


async def test_frame_clock_wakes_many_callers_with_one_timer_per_grid_point() -> None:
    clock = FrameClock(grid_ms=5)
    loop = asyncio.get_running_loop()
    t0 = clock.align(loop.time() + 0.05)
    assert round(t0 / 0.005, 6) == round(t0 / 0.005)  # on the grid
    woke: list[tuple[float, float]] = []

    async def caller(target: float) -> None:
        await clock.until(target)
        woke.append((target, loop.time()))

    targets = [t0 + 0.02 * (i % 2) for i in range(20)]  # two distinct wake-up times
    tasks = [asyncio.create_task(caller(t)) for t in targets]
    doomed = asyncio.create_task(clock.until(t0))  # a caller that hangs up while waiting
    await asyncio.sleep(0)
    doomed.cancel()
    await asyncio.gather(*tasks)
    assert clock.timers == 2
    assert sorted(t for t, _ in woke) == sorted(targets)
    assert all(at >= target for target, at in woke)
    assert doomed.cancelled()
    await clock.until(loop.time() - 1)  # a target in the past returns at once
    assert clock.timers == 2


async def test_frame_clock_ticks_every_period_from_the_grid_points_timer() -> None:
    clock = FrameClock(grid_ms=5)
    loop = asyncio.get_running_loop()
    t0 = clock.align(loop.time() + 0.03)
    called: list[tuple[int, float]] = []
    finished = loop.create_future()

    def caller(index: int) -> Callable[[], bool]:
        frames = 0

        def tick() -> bool:  # four frames each, as a caller's frames until it hangs up
            nonlocal frames
            called.append((frames, loop.time()))
            frames += 1
            if frames == 4 and index == 9 and not finished.done():
                finished.set_result(None)
            return frames < 4

        return tick

    for index in range(10):  # ten callers on one phase: one timer per frame for all of them
        clock.every(t0, caller(index))
    await finished
    await asyncio.sleep(0.05)
    assert sorted(n for n, _ in called) == [n for n in range(4) for _ in range(10)]
    assert clock.timers == 4  # none armed after the last tick said it was done
    assert all(at >= t0 + 0.02 * n - 1e-6 for n, at in called)  # counted from t0: no drift
    past: list[float] = []
    clock.every(loop.time() - 1, lambda: past.append(loop.time()))  # in the past: soon, once
    await asyncio.sleep(0.03)
    assert len(past) == 1
    with pytest.raises(ValueError, match="whole number of grid steps"):
        clock.every(t0, lambda: False, period_ms=12)


async def test_sync_sender_writes_frames_the_server_reads_in_order() -> None:
    received: list[str] = []

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for message in ws:
            received.append(message.data)
        return ws

    app = web.Application()
    app.router.add_get("/", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/"
    texts = ["a", "é" * 100, "x" * 70000]  # short, two-byte and 8-byte lengths, masked
    try:
        async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
            send = sync_sender(ws)
            assert send is not None
            for text in texts:
                send(text)
            await ws.close()
            with pytest.raises(ConnectionError):
                send("after close")
    finally:
        await runner.cleanup()
    assert received == texts


async def test_sync_sender_frames_are_read_by_another_websocket_implementation() -> None:
    """The frames are RFC 6455's, not just what aiohttp's own reader accepts: the
    ``websockets`` server (which refuses unmasked client frames) reads them too."""
    from websockets.asyncio.server import ServerConnection, serve

    received: list[str | bytes] = []
    done = asyncio.Event()

    async def handler(connection: ServerConnection) -> None:
        async for message in connection:
            received.append(message)
        done.set()

    texts = ["a", "é" * 100, "x" * 70000]
    async with serve(handler, "127.0.0.1", 0, max_size=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        async with aiohttp.ClientSession() as http, \
                http.ws_connect(f"ws://127.0.0.1:{port}/") as ws:
            send = sync_sender(ws)
            assert send is not None
            for text in texts:
                send(text)
            await ws.close()
        await asyncio.wait_for(done.wait(), 5)
    assert received == texts
