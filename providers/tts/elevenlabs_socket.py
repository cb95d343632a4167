"""The ElevenLabs multi-context WebSocket: one pooled socket, and one reply (context) on it.

``ContextSocket`` wraps one ``multi-stream-input`` socket: a reader task routes the server's
messages to the contexts listening on it and counts the contexts the service still counts
against its cap of ``MAX_CONTEXTS_PER_SOCKET`` (until their ``isFinal``, or ``close_grace_s``
after a close). ``ReplyContext`` is one reply: a feeder task sends the text pieces as they
arrive (each flushed, then the context closed) while ``run`` yields ``SpeechChunk``s, with a
first-audio and a stall timeout (a stalled socket is retired: it gets no new replies). Vendor
errors, a closed socket and malformed messages fail the replies on that socket. The pool, the
REST fallback and the module's contract are in ``providers/tts/elevenlabs.py``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
from collections.abc import AsyncGenerator, AsyncIterable
from dataclasses import dataclass

import aiohttp

from slotline.providers.errors import ProtocolError, ProviderError, ProviderTimeout
from slotline.providers.tts.elevenlabs_wire import (
    Alignment,
    AudioReceived,
    ClientMessage,
    ContextFinished,
    ErrorReported,
    encode_client_message,
    parse_server_message,
)

log = logging.getLogger(__name__)

PROVIDER = "tts.elevenlabs"
BYTES_PER_MS = 8  # ulaw_8000: one byte per sample
MAX_CONTEXTS_PER_SOCKET = 5  # the vendor's limit; a sixth context gets the socket closed (1008)
# The vendor's ceiling for inactivity_timeout: a pooled socket may sit idle between calls.
INACTIVITY_TIMEOUT_S = 180
# Stop handing out a socket this long before the vendor's idle timeout could close it.
_IDLE_MARGIN_S = 5.0
_RETRYABLE_ERRORS = frozenset({"max_active_conversations", "rate_limited", "internal_error"})


@dataclass(frozen=True, slots=True)
class SpeechChunk:
    """Audio of one reply with its alignment; ``start_ms`` and the alignment's times are
    measured from the start of the reply (the first byte of its first chunk)."""

    audio: bytes
    start_ms: int
    alignment: Alignment | None



class _Wake:
    """Queued by the feeder so the reader of a reply re-evaluates its timer."""


_WAKE = _Wake()
_Item = AudioReceived | ContextFinished | Exception | _Wake


class ContextSocket:
    """One multi-context WebSocket: a reader task routes server messages to replies."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, *, close_grace_s: float) -> None:
        self.retired = False  # no new contexts (it stalled, or a send failed)
        self._ws = ws
        self._close_grace_s = close_grace_s
        self._loop = asyncio.get_running_loop()
        self._last_used_at = self._loop.time()
        self._prefix = secrets.token_hex(3)
        self._ids = itertools.count(1)
        self._queues: dict[str, asyncio.Queue[_Item]] = {}  # contexts someone listens to
        self._live: dict[str, asyncio.TimerHandle | None] = {}  # contexts the service counts
        self._reader: asyncio.Task[None] | None = None
        self._failed = False  # the reader has failed every reply on this socket

    def start(self) -> None:
        self._reader = asyncio.create_task(self._read(), name="elevenlabs-socket-reader")

    @property
    def closed(self) -> bool:
        return self._failed or self._ws.closed

    @property
    def usable(self) -> bool:
        idle_s = self._loop.time() - self._last_used_at
        return not (self.closed or self.retired) and idle_s < INACTIVITY_TIMEOUT_S - _IDLE_MARGIN_S

    @property
    def live_contexts(self) -> int:
        return len(self._live)

    def open_context(self) -> str:
        if self.closed:
            raise ProviderError(PROVIDER, "the socket is closed", retryable=True)
        context_id = f"{self._prefix}-{next(self._ids)}"
        self._live[context_id] = None
        self._queues[context_id] = asyncio.Queue()
        return context_id

    def queue(self, context_id: str) -> asyncio.Queue[_Item]:
        return self._queues[context_id]

    async def send(self, message: ClientMessage) -> None:
        self._last_used_at = self._loop.time()
        try:
            await self._ws.send_str(encode_client_message(message))
        except (ConnectionError, aiohttp.ClientError, RuntimeError):
            message_text = "the socket closed while sending"
            raise ProviderError(PROVIDER, message_text, retryable=True) from None

    def stop_listening(self, context_id: str) -> None:
        """Drop the rest of a context's audio; its slot frees at isFinal or after the grace."""
        self._queues.pop(context_id, None)
        if context_id in self._live and self._live[context_id] is None:
            release = self._loop.call_later(self._close_grace_s, self._release, context_id)
            self._live[context_id] = release

    async def aclose(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        await self._ws.close()  # not close_socket: that would wait for every context to drain
        self._fail_all(ProviderError(PROVIDER, "the socket was closed", retryable=True))

    def _release(self, context_id: str) -> None:
        handle = self._live.pop(context_id, None)
        if handle is not None:
            handle.cancel()

    async def _read(self) -> None:
        error: Exception
        try:
            while True:
                message = await self._ws.receive()
                if message.type is aiohttp.WSMsgType.TEXT:
                    for event in parse_server_message(message.data):
                        self._dispatch(event)
                elif message.type is aiohttp.WSMsgType.BINARY:
                    raise ProtocolError("elevenlabs.binary", "unexpected binary message")
                else:
                    code = self._ws.close_code
                    detail = f"the service closed the socket (code {code})"
                    error = ProviderError(PROVIDER, detail, retryable=True)
                    break
        except ProtocolError as exc:
            log.warning("elevenlabs sent a malformed message: %s", exc.code)
            error = exc
        except ProviderError as exc:
            error = exc
        self._fail_all(error)
        await self._ws.close()

    def _dispatch(self, event: AudioReceived | ContextFinished | ErrorReported) -> None:
        if isinstance(event, ErrorReported):
            log.warning("elevenlabs reported %s: %s", event.error, event.message)
            detail = f"{event.error or 'error'}: {event.message}"
            retryable = event.error in _RETRYABLE_ERRORS
            raise ProviderError(PROVIDER, detail, retryable=retryable)
        if event.context_id is None:
            raise ProtocolError("elevenlabs.no_context", "a message without contextId")
        queue = self._queues.get(event.context_id)
        if isinstance(event, ContextFinished):
            self._release(event.context_id)
        if queue is not None:
            queue.put_nowait(event)

    def _fail_all(self, error: Exception) -> None:
        self._failed = True
        for queue in self._queues.values():
            queue.put_nowait(error)
        self._queues.clear()
        for handle in self._live.values():
            if handle is not None:
                handle.cancel()
        self._live.clear()


class ReplyContext:
    """One context: a feeder task sends the text while ``run`` yields the audio."""

    def __init__(
        self,
        socket: ContextSocket,
        context_id: str,
        *,
        first_audio_timeout_s: float,
        stall_timeout_s: float,
    ) -> None:
        self._first_audio_timeout_s = first_audio_timeout_s
        self._stall_timeout_s = stall_timeout_s
        self._socket = socket
        self._id = context_id
        self._queue = socket.queue(context_id)
        self._loop = asyncio.get_running_loop()
        self._waiting_for_input = False
        self._audio_since_send = False
        self._last_activity_at = self._loop.time()
        self._close_sent = False

    async def run(self, pieces: AsyncIterable[str]) -> AsyncGenerator[SpeechChunk, None]:
        feeder = asyncio.create_task(self._feed(pieces), name=f"elevenlabs-feed-{self._id}")
        received_bytes = 0
        finished = False
        try:
            while True:
                item = await self._next()
                if isinstance(item, _Wake):
                    continue
                if isinstance(item, Exception):
                    raise item
                if isinstance(item, ContextFinished):
                    finished = True
                    return
                self._audio_since_send = True
                self._last_activity_at = self._loop.time()
                start_ms = received_bytes // BYTES_PER_MS
                received_bytes += len(item.audio)
                alignment = item.alignment.shifted(start_ms) if item.alignment else None
                yield SpeechChunk(item.audio, start_ms, alignment)
        finally:
            feeder.cancel()
            await asyncio.gather(feeder, return_exceptions=True)
            if not finished:
                await self._close_context()
            self._socket.stop_listening(self._id)

    async def _next(self) -> _Item:
        while True:
            if not self._queue.empty():
                return self._queue.get_nowait()
            limit_s = (
                self._stall_timeout_s if self._audio_since_send else self._first_audio_timeout_s
            )
            budget_s: float | None = None
            if not self._waiting_for_input:
                budget_s = max(0.0, limit_s - (self._loop.time() - self._last_activity_at))
            try:
                async with asyncio.timeout(budget_s):
                    return await self._queue.get()
            except TimeoutError:
                self._socket.retired = True  # a stalled socket gets no new replies
                what = "more audio" if self._audio_since_send else "first audio"
                raise ProviderTimeout(PROVIDER, f"no {what} within {limit_s} s") from None

    async def _feed(self, pieces: AsyncIterable[str]) -> None:
        try:
            iterator = aiter(pieces)
            while True:
                self._waiting_for_input = True
                self._queue.put_nowait(_WAKE)
                try:
                    piece = await anext(iterator)
                except StopAsyncIteration:
                    break
                finally:
                    self._waiting_for_input = False
                text = " ".join(piece.split())
                if text:  # the vendor wants every chunk to end with a space
                    chunk = ClientMessage(text=text + " ", context_id=self._id, flush=True)
                    await self._send(chunk)
            await self._close_context()
            self._queue.put_nowait(_WAKE)  # input is over: the reply's timer runs again
        except Exception as exc:  # the text source failed, or the socket: the reply fails
            self._queue.put_nowait(exc)

    async def _send(self, message: ClientMessage) -> None:
        await self._socket.send(message)
        self._audio_since_send = False
        self._last_activity_at = self._loop.time()
        self._queue.put_nowait(_WAKE)

    async def _close_context(self) -> None:
        if self._close_sent or self._socket.closed:
            return
        self._close_sent = True
        try:
            await self._send(ClientMessage(context_id=self._id, close_context=True))
        except ProviderError:
            self._socket.retired = True
