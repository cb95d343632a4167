"""``slotline bench --target`` against a server shaped like Pipecat's Twilio example: a plain
``/ws`` path, no ``customParameters`` expected, and no greeting — it waits to be spoken to.

The server here answers each utterance with 600 ms of μ-law tone ``REPLY_DELAY_MS`` after the
utterance's last voiced frame arrived. The bench runs through its command line (in this thread;
the server runs on its own loop in another), so the default greeting wait of ``--target`` is the
one under test: callers must speak first, and every turn must come back with the server's known
delay.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from aiohttp import WSMsgType, web

from slotline.agent.bench.cli import FOREIGN_GREETING_WAIT_S
from slotline.agent.bench.report import validate
from slotline.agent.cli import main
from slotline.audio.framing import FRAME_MS
from slotline.audio.mulaw import encode_array
from slotline.providers.telephony.twilio_media import (
    InboundStream,
    Media,
    Start,
    Stop,
    encode_media,
)
from tests.e2e.test_bench_smoke import (
    END_SILENT_FRAMES,
    ONSET_RMS,
    frame_rms,
    last_voiced,
)

REPLY_DELAY_MS = 300  # after the utterance's last voiced frame arrived
REPLY_MS = 600


@dataclass
class WaitingServer:
    """Says nothing until spoken to; then answers each utterance."""

    starts: list[dict[str, object]] = field(default_factory=list)  # the raw ``start`` bodies
    first_voice_after_start_s: list[float] = field(default_factory=list)
    replies: list[float] = field(default_factory=list)  # sent - last voiced arrival, ms
    sent_before_spoken_to: int = 0

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        loop = asyncio.get_running_loop()
        stream, sid, started = InboundStream(), "", 0.0
        frames: list[tuple[float, float]] = []  # this utterance: (rms, arrival)
        quiet, spoken = 0, False
        async with asyncio.TaskGroup() as tasks:
            async for msg in ws:
                if msg.type is not WSMsgType.TEXT:
                    continue
                now = loop.time()
                event = stream.receive(msg.data)
                if isinstance(event, Start):
                    sid, started = event.stream_sid, now
                    self.starts.append(json.loads(msg.data)["start"])
                elif isinstance(event, Media):
                    rms = frame_rms(event.payload)
                    if rms >= ONSET_RMS and not spoken:
                        spoken = True
                        self.first_voice_after_start_s.append(now - started)
                    if rms >= ONSET_RMS or frames:
                        frames.append((rms, now))
                        quiet = 0 if rms >= ONSET_RMS else quiet + 1
                    if frames and quiet == END_SILENT_FRAMES:
                        tasks.create_task(self._reply(ws, sid, last_voiced(frames)))
                        frames, quiet = [], 0
                elif isinstance(event, Stop):
                    break
        return ws

    async def _reply(self, ws: web.WebSocketResponse, sid: str, last_voiced: float) -> None:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(last_voiced + REPLY_DELAY_MS / 1000 - loop.time())
        if ws.closed:
            return
        self.replies.append((loop.time() - last_voiced) * 1000)
        t = np.arange(REPLY_MS * 8) / 8000
        tone = (6000 * np.sin(2 * np.pi * 300 * t)).astype(np.int16)
        await ws.send_str(encode_media(sid, encode_array(tone)))


@contextlib.contextmanager
def serving_in_thread(server: WaitingServer) -> Iterator[str]:
    """The server on its own loop in a thread (the bench's command line runs its own loop);
    yields its ``ws://…/ws`` URL."""
    loop = asyncio.new_event_loop()
    app = web.Application()
    app.router.add_get("/ws", server.handle)
    runner = web.AppRunner(app)

    async def start() -> str:
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        host, port = runner.addresses[0][:2]
        return f"ws://{host}:{port}/ws"

    thread = threading.Thread(target=loop.run_forever, name="waiting-server", daemon=True)
    thread.start()
    try:
        yield asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=10)
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


def test_bench_target_speaks_first_to_a_server_that_waits(tmp_path: Path) -> None:
    server = WaitingServer()
    out = tmp_path / "run"
    with serving_in_thread(server) as url, contextlib.redirect_stdout(io.StringIO()) as stdout:
        status = main(["bench", "--target", url, "--calls", "2", "--duration", "12",
                       "--ramp", "0.5", "--conversation", "short", "--reply-timeout", "6",
                       "--out", str(out)])
    assert status == 0, stdout.getvalue()
    result = json.loads((out / "result.json").read_text())
    assert validate(result) == []
    assert result["config"]["target"]["media_url"].endswith("/ws")
    assert result["config"]["greeting_wait_s"] == FOREIGN_GREETING_WAIT_S

    # Twilio's start for a <Stream> without <Parameter>: customParameters is empty
    assert server.starts and all(s["customParameters"] == {} for s in server.starts)
    calls = result["calls"]
    assert calls["failed"] == calls["dropped"] == 0 and result["errors"]["count"] == 0
    assert calls["completed"] >= 2 and calls["spoke_first"] >= calls["completed"]
    assert "no greeting came (the caller spoke first)" in stdout.getvalue()
    # each caller spoke first: the wait, then the recording's quiet lead-in (< 0.3 s)
    for after_s in server.first_voice_after_start_s:
        assert FOREIGN_GREETING_WAIT_S <= after_s <= FOREIGN_GREETING_WAIT_S + 0.5

    latency = result["latency"]["caller"]["turn_latency_ms"]
    assert latency["count"] >= 2 and result["turns"]["answered"] >= 2
    answered = [t["caller"]["turn_latency_ms"] for t in result["per_turn"]
                if t["caller"]["turn_latency_ms"] is not None]
    for measured in answered:  # the server's known delay, within one frame
        assert abs(measured - REPLY_DELAY_MS) <= FRAME_MS, (answered, server.replies)
