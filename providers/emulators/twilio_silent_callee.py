"""The callee of a number nobody scripted: a line that stays silent until the app hangs up.

Plays Twilio's side of a media stream with a quiet person on the call: ``connected``, then
``start`` (with the ``<Parameter>``s as ``customParameters``), then one 160-byte frame of mu-law
silence every 20 ms, as Twilio streams a live line. The app's marks are echoed once the audio
sent before them would have played (8 bytes per ms); ``clear`` echoes every pending mark at
once — enough for an app that waits on marks to move on. It sends ``stop`` and closes when
the call ends or is redirected (``StreamTarget.hangup``, at the next frame) or after ``cap_s``
(the person gives up); when the app closes the socket it just returns.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import deque
from typing import TYPE_CHECKING, Final

import aiohttp

from slotline.audio.framing import FRAME_MS, ULAW_FRAME_BYTES, ULAW_SILENCE
from slotline.providers.errors import ProtocolError
from slotline.providers.telephony import twilio_media as tw

if TYPE_CHECKING:
    from slotline.providers.emulators.twilio_outbound import StreamTarget

logger = logging.getLogger(__name__)

DEFAULT_CAP_S: Final = 60.0  # a silent line nobody hangs up would otherwise last forever
_SILENCE: Final = bytes([ULAW_SILENCE]) * ULAW_FRAME_BYTES
_BYTES_PER_S: Final = 8000  # 8 kHz mu-law plays one byte per sample


class SilentCallee:
    """A ``Callee``: ``await SilentCallee(session)(stream)``."""

    def __init__(self, session: aiohttp.ClientSession, *, cap_s: float = DEFAULT_CAP_S) -> None:
        self._session, self._cap_s = session, cap_s

    async def __call__(self, stream: StreamTarget) -> None:
        timeout = aiohttp.ClientWSTimeout(ws_receive=None, ws_close=5.0)
        async with self._session.ws_connect(
            stream.url, headers=dict(stream.headers), timeout=timeout
        ) as ws:
            await _Line(ws, stream).run(self._cap_s)


class _Line:
    """One stream: the send loop paces frames; the receive task keeps the playout clock."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, stream: StreamTarget) -> None:
        self._ws, self._stream = ws, stream
        self._stream_sid = f"MZ{uuid.uuid4().hex}"
        self._sequence = 0
        self._played_until_s = time.monotonic()
        self._marks: deque[tuple[float, str]] = deque()  # (due when played, name), in order

    def _next(self) -> int:
        self._sequence += 1
        return self._sequence

    async def run(self, cap_s: float) -> None:
        receiving = asyncio.create_task(
            self._receive(), name=f"silent-callee-receive-{self._stream.call_sid}"
        )
        try:
            await self._send(cap_s, receiving)
        except ConnectionError:  # the app went away mid-send
            logger.debug("stream closed under the silent callee call_sid=%s", self._stream.call_sid)
        finally:
            receiving.cancel()
            await asyncio.gather(receiving, return_exceptions=True)

    async def _send(self, cap_s: float, receiving: asyncio.Task[None]) -> None:
        stream, ws, sid = self._stream, self._ws, self._stream_sid
        await ws.send_str(tw.encode_connected())
        await ws.send_str(
            tw.encode_start(
                sid, stream.account_sid, stream.call_sid, sequence_number=self._next(),
                custom_parameters=stream.parameters,
            )
        )  # fmt: skip
        t0_s, n = time.monotonic(), 0
        while not receiving.done():
            now_s = time.monotonic()
            if stream.hangup.is_set() or now_s - t0_s >= cap_s:
                await ws.send_str(
                    tw.encode_stop(sid, self._next(), stream.account_sid, stream.call_sid)
                )
                await ws.close()
                return
            while self._marks and self._marks[0][0] <= now_s:
                await ws.send_str(tw.encode_mark_echo(sid, self._next(), self._marks.popleft()[1]))
            frame = tw.encode_inbound_media(sid, self._next(), n + 1, n * FRAME_MS, _SILENCE)
            await ws.send_str(frame)
            n += 1
            await asyncio.sleep(max(0.0, t0_s + n * FRAME_MS / 1000 - time.monotonic()))

    async def _receive(self) -> None:
        async for message in self._ws:
            if message.type is aiohttp.WSMsgType.TEXT:
                self._on_text(message.data)

    def _on_text(self, data: str) -> None:
        try:
            message = tw.parse_outbound(data)
        except ProtocolError as exc:
            logger.debug("ignored a bad frame call_sid=%s: %s", self._stream.call_sid, exc)
            return
        now_s = time.monotonic()
        if isinstance(message, tw.OutboundMedia):
            start_s = max(now_s, self._played_until_s)
            self._played_until_s = start_s + len(message.payload) / _BYTES_PER_S
        elif isinstance(message, tw.OutboundMark):
            self._marks.append((self._played_until_s, message.name))
        else:  # clear: what was buffered is dropped, every pending mark comes back now
            self._played_until_s = now_s
            self._marks = deque((0.0, name) for _, name in self._marks)
