"""One call's Twilio media WebSocket: typed messages in (media as its bare 20 ms of mu-law, no
object per frame), paced audio out.

Inbound, bad messages (binary frames, malformed JSON, unknown events, oversized messages, media
whose timestamps jump or that comes faster than real time) are reported to ``on_error`` and
skipped: the call goes on — until its ``ErrorBudget`` is spent. A genuine Twilio stream sends
no bad messages, so a client past the budget is misbehaving: its socket is closed (policy
violation) and ``on_error`` hears ``too_many_errors``. Only that call ends; the others never
notice, because nothing it sends reaches them and what it may cost is bounded.

Outbound, agent audio leaves in media messages of at most 100 ms, paced by
``audio.pacing.OutboundPacer`` so Twilio holds only ``lead_ms`` of it — that bound is what a
``clear`` has to throw away, and what makes barge-in feel immediate. A send on a socket that
has gone raises ``SocketClosed``.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections import deque
from collections.abc import Callable

from aiohttp import WSCloseCode, WSMsgType, web

from slotline.agent.call.recording import CallTimeline
from slotline.audio.pacing import OutboundPacer
from slotline.providers.errors import ProtocolError
from slotline.providers.telephony import twilio_media as tw

log = logging.getLogger(__name__)

# Twilio sends `connected` and `start` right after the upgrade; a socket that has not started a
# stream by then is not a Twilio media stream.
START_TIMEOUT_S = 10.0
# Outbound media messages carry at most this much audio (100 ms): big enough to keep the message
# rate low, small enough that pacing and `clear` stay fine-grained.
MAX_MEDIA_BYTES = 800
# Bad messages a call may send within the window before it is cut off. Twilio sends none; the
# slack is for a message type it might add one day. Below the call record's MAX_ERRORS, so the
# cut-off itself is still logged in the record.
ERROR_BUDGET = 40
ERROR_WINDOW_S = 60.0


class ErrorBudget:
    """``limit`` errors per sliding ``window_s`` (sans-I/O: the time is passed in)."""

    __slots__ = ("_at", "limit", "window_s")

    def __init__(self, limit: int = ERROR_BUDGET, window_s: float = ERROR_WINDOW_S) -> None:
        self.limit = limit
        self.window_s = window_s
        self._at: deque[float] = deque(maxlen=limit + 1)  # the latest error times

    def spend(self, now_s: float) -> bool:
        """Count one error at ``now_s``; True once more than ``limit`` fell within the window."""
        at = self._at
        at.append(now_s)
        return len(at) > self.limit and now_s - at[0] < self.window_s


class SocketClosed(Exception):
    """The media socket went away while we were sending."""


class MediaSocket:
    def __init__(
        self,
        ws: web.WebSocketResponse,
        *,
        lead_ms: int,
        on_error: Callable[[ProtocolError], None],
        budget: ErrorBudget | None = None,
    ) -> None:
        self._ws = ws
        self._stream = tw.InboundStream()
        self._pacer = OutboundPacer(lead_ms=lead_ms)
        self._on_error = on_error
        self._budget = budget if budget is not None else ErrorBudget()
        self._loop = asyncio.get_running_loop()
        self.stream_sid = ""
        self.closed = False  # by us, by the peer, or by an error
        self.cut_off = False  # the error budget is spent: the next receive closes the socket
        self.tap: CallTimeline | None = None  # records both sides (agent.call.recording)
        # media handled where parsed, and the receiver's context it runs in
        self._direct: tuple[Callable[[bytes], None], contextvars.Context] | None = None
        self._failure: Exception | None = None  # what ``_on_media`` raised, for ``receive``

    # ---- inbound ---------------------------------------------------------------------------

    async def await_start(self) -> tw.Start | None:
        """The stream's ``start`` (None: the socket closed or never started a stream)."""
        try:
            async with asyncio.timeout(START_TIMEOUT_S):
                while True:
                    message = await self.receive()
                    if message is None:
                        return None
                    if isinstance(message, tw.Start):
                        self.stream_sid = message.stream_sid
                        return message
        except TimeoutError:
            log.warning("no start message within %.0f s; closing", START_TIMEOUT_S)
            await self.close()
            return None

    async def receive(self) -> bytes | tw.InboundMessage | None:
        """The next valid Twilio message, media as its 20 ms of mu-law alone (``bytes``: no
        object per frame); None when the socket is done (or was cut off)."""
        loop = self._loop
        while not self.cut_off:
            msg = await self._ws.receive()
            if self._failure is not None:  # raised by the media handler, where parsed
                failure, self._failure = self._failure, None
                raise failure
            if msg.type is WSMsgType.TEXT:
                data: str | bytes = msg.data
            elif msg.type is WSMsgType.BINARY:
                self.reject(ProtocolError("binary_frame", "Twilio sends text frames"))
                continue
            else:
                if msg.type is WSMsgType.ERROR:  # aiohttp has closed the socket already
                    too_big = getattr(msg.data, "code", None) == WSCloseCode.MESSAGE_TOO_BIG
                    code = "message_too_big" if too_big else "socket_error"
                    self._on_error(ProtocolError(code, str(msg.data)))
                self.closed = True
                return None
            try:
                message = self._stream.receive_audio(data, int(loop.time() * 1000))
                if self.tap is not None and type(message) is bytes:
                    self.tap.caller_frame(loop.time(), self._stream.last_timestamp_ms, message)
                return message
            except ProtocolError as exc:
                self.reject(exc)
        await self._ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"too many bad messages")
        self.closed = True
        return None

    def media_direct(self, on_media: Callable[[bytes], None] | None) -> bool:
        """Hand the stream's well-formed media frames to ``on_media`` as the socket parses them,
        not through ``receive`` (None: stop). Everything else — other messages, bad or unusual
        media — still comes from ``receive``, in order. False where the socket cannot
        (``agent.server.direct_ws``): ``receive`` then returns media as before.

        ``on_media`` runs in a copy of the caller's context, as it would in the receiving task
        (the call's error sink and trace live there: ``agent.call.errors``), not in the
        transport's. What it raises is raised by the next ``receive``, as if it had been called
        after it."""
        direct = getattr(self._ws, "direct", None)
        self._direct = None if on_media is None else (on_media, contextvars.copy_context())
        return direct is not None and bool(direct(self._offered if on_media else None))

    def _offered(self, text: str) -> bool:
        """A text message, straight from the parser: handled (True) if it is a media frame the
        stream accepts, else left for ``receive``."""
        handler = self._direct
        if handler is None or self.cut_off or self._failure is not None:
            return False
        on_media, context = handler
        now = self._loop.time()
        stream = self._stream
        ulaw = stream.accept_media(text, int(now * 1000))
        if ulaw is None:
            return False
        if self.tap is not None:
            self.tap.caller_frame(now, stream.last_timestamp_ms, ulaw)
        try:
            context.run(on_media, ulaw)
        except Exception as exc:  # the session's to handle: queue this message to wake it
            self._failure = exc
            return False
        return True

    def reject(self, exc: ProtocolError) -> None:
        """Report a bad message (the session's own rejections too, e.g. a flood of keypresses)
        and spend the budget; past it, the call is cut off at the next ``receive``."""
        self._on_error(exc)
        if self.cut_off or not self._budget.spend(self._loop.time()):
            return
        self.cut_off = True
        start = self._stream.start
        log.warning("cutting off call_sid=%s: more than %d bad messages within %.0f s",
                    start.call_sid if start is not None else "-", self._budget.limit,
                    self._budget.window_s)
        self._on_error(ProtocolError(
            "too_many_errors",
            f"more than {self._budget.limit} bad messages within {self._budget.window_s:.0f} s;"
            " the socket was closed",
        ))

    # ---- outbound --------------------------------------------------------------------------

    async def send(self, text: str) -> None:
        if self.closed or self._ws.closed:
            raise SocketClosed
        try:
            await self._ws.send_str(text)
        except ConnectionError as exc:
            self.closed = True
            raise SocketClosed from exc

    async def send_quietly(self, text: str) -> None:
        """Send if the socket is still there (a ``clear`` racing the end of the call)."""
        with contextlib.suppress(SocketClosed):
            await self.send(text)

    async def send_mark(self, name: str) -> None:
        await self.send(tw.encode_mark(self.stream_sid, name))

    async def send_paced(
        self, audio: bytes | bytearray, offset: int, may_send: Callable[[], bool]
    ) -> int:
        """Send ``audio[offset:]`` in paced media messages while ``may_send()``; returns the
        offset reached."""
        pacer, loop = self._pacer, self._loop
        while offset < len(audio):
            delay = pacer.delay_s(loop.time())
            if delay > 0:
                await asyncio.sleep(delay)
            if not may_send():
                return offset
            piece = bytes(audio[offset : offset + MAX_MEDIA_BYTES])
            if self.tap is not None:  # before the send: a clear meanwhile cuts it too
                self.tap.agent_audio(loop.time(), piece)
            await self.send(tw.encode_media(self.stream_sid, piece))
            pacer.sent(loop.time(), len(piece))
            offset += len(piece)
        return offset

    def clear(self) -> str:
        """Forget the pacing of audio Twilio is about to drop; the ``clear`` message to send."""
        self._pacer.reset()
        if self.tap is not None:
            self.tap.cleared(self._loop.time())
        return tw.encode_clear(self.stream_sid)

    def queued_ms(self) -> float:
        """Audio sent that Twilio has not played yet, by the pacing clock."""
        return self._pacer.queued_ms(self._loop.time())

    async def close(self) -> None:
        self.closed = True
        await self._ws.close()

    @property
    def gone(self) -> bool:
        """Closed, or closed by the peer (nothing more can be sent)."""
        return self.closed or self._ws.closed
