"""ElevenLabs text-to-speech: the multi-context WebSocket, REST streaming as its fallback.

Sockets are pooled per server process (this object is an ``AsyncResource``), not per call:
``synthesize`` has no notion of a call, a warm socket takes the TLS and WebSocket handshakes
(one or two round trips to the vendor) off the first reply of every call, and the vendor caps
a socket at 5 live contexts, so the pool opens another socket when the open ones are full.
One reply = one context (``context_id`` unique per socket):

    {"text": " ", "context_id": c, "voice_settings": ..}       open (first message)
    {"text": "<piece> ", "context_id": c, "flush": true}        per piece, ending in a space
    {"context_id": c, "close_context": true}                    after the last piece
    <- {"audio": b64, "normalizedAlignment": {..}, "contextId": c} ... {"isFinal": true, ..}

The service speaks what a closed context holds before its ``isFinal`` (a bare flush never
yields one), so the close goes right after the last piece. On barge-in the consumer stops
iterating: the close is sent if it was not yet, later audio for the context is dropped, the
socket stays. A context counts against the cap until its ``isFinal`` (or ``close_grace_s``
after the close), as the service counts it.

Failures raise ``ProviderError`` (``ProviderAuthError`` for a refused key, ``ProviderTimeout``
when audio stalls) or ``ProtocolError`` for a malformed vendor message; a dropped socket
fails the replies on it and the next reply opens a new one (a pooled socket that fails as a
reply opens it gets one more try at once, on another socket). When no socket can be opened
the reply goes over ``POST /v1/text-to-speech/{voice_id}/stream`` (no alignment there), and
WebSockets are not tried again for the ``reconnect`` policy's delay (``providers/reconnect.py``,
``ELEVENLABS``: 10 s). The API key is never logged.

Why not the ``elevenlabs`` SDK (v2; tests/contract/test_elevenlabs_sdk.py runs it against our
emulator): it has no asyncio client for either WebSocket route (multi-stream-input has message
models only; stream-input's ``convert_realtime`` is synchronous, a thread per reply, always
``wss``), and its asyncio HTTP streaming carries no alignment (``words_heard`` needs it on
barge-in) and no context to close on barge-in. Measured with ``python -m bench.sdk_client_cost``
(30 replies of a 10-word sentence from the emulator in another process, December 2026): the
SDK's HTTP streaming costs twice our client CPU per reply (1.49 vs 0.74 ms, our alignment
parsing included), with first audio within a millisecond of ours (6.1 vs 6.8 ms, mostly the
emulator's speech synthesis).

This module is the pool and the REST fallback; one socket and one reply on it are
``elevenlabs_socket`` (``ContextSocket``, ``ReplyContext``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
from collections.abc import AsyncGenerator, AsyncIterable, Iterable
from contextlib import aclosing
from urllib.parse import quote, urlencode

import aiohttp

from slotline.providers import tracing
from slotline.providers.errors import ProviderAuthError, ProviderError, ProviderTimeout
from slotline.providers.reconnect import ELEVENLABS, ReconnectPolicy, retryable_status
from slotline.providers.tts.elevenlabs_socket import (
    BYTES_PER_MS,
    INACTIVITY_TIMEOUT_S,
    MAX_CONTEXTS_PER_SOCKET,
    PROVIDER,
    ContextSocket,
    ReplyContext,
    SpeechChunk,
)
from slotline.providers.tts.elevenlabs_wire import Alignment, ClientMessage, VoiceSettings

__all__ = [
    "BYTES_PER_MS",
    "DEFAULT_BASE_URL",
    "DEFAULT_MODEL_ID",
    "INACTIVITY_TIMEOUT_S",
    "MAX_CONTEXTS_PER_SOCKET",
    "OUTPUT_FORMAT",
    "PROVIDER",
    "ElevenLabsTts",
    "SpeechChunk",
    "words_heard",
]

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "wss://api.elevenlabs.io"
DEFAULT_MODEL_ID = "eleven_flash_v2_5"
OUTPUT_FORMAT = "ulaw_8000"  # what Twilio plays: passed through untouched


def words_heard(alignments: Iterable[Alignment], heard_ms: float) -> str:
    """The words of a reply the caller heard when playback stopped at ``heard_ms`` (reply
    time, as ``SpeechChunk`` carries it): a word counts once its middle has been played."""
    words: list[str] = []
    current: list[str] = []
    word_start_ms = word_end_ms = 0
    for alignment in alignments:
        starts, durations = alignment.char_start_times_ms, alignment.char_durations_ms
        for char, start_ms, duration_ms in zip(alignment.chars, starts, durations, strict=True):
            if char.isspace():
                if current:
                    if (word_start_ms + word_end_ms) / 2 > heard_ms:
                        return " ".join(words)
                    words.append("".join(current))
                    current = []
                continue
            if not current:
                word_start_ms = start_ms
            current.append(char)
            word_end_ms = start_ms + duration_ms
    if current and (word_start_ms + word_end_ms) / 2 <= heard_ms:
        words.append("".join(current))
    return " ".join(words)


class ElevenLabsTts:
    """``TextToSpeech`` + ``AsyncResource`` for ElevenLabs (``start`` before use)."""

    def __init__(
        self,
        api_key: str,
        *,
        voice_id: str,
        base_url: str = DEFAULT_BASE_URL,
        model_id: str = DEFAULT_MODEL_ID,
        voice_settings: VoiceSettings | None = None,
        chunk_length_schedule: tuple[int, ...] | None = None,
        http_session: aiohttp.ClientSession | None = None,
        connect_timeout_s: float = 3.0,
        first_audio_timeout_s: float = 5.0,
        stall_timeout_s: float = 3.0,
        close_grace_s: float = 2.0,
        reconnect: ReconnectPolicy = ELEVENLABS,
        seed: int | None = None,
        max_sockets: int = 32,
    ) -> None:
        self._api_key = api_key
        self._voice_id = voice_id
        self._model_id = model_id
        self._voice_settings = voice_settings
        self._schedule = chunk_length_schedule
        self._session = http_session
        self._owns_session = http_session is None
        self._connect_timeout_s = connect_timeout_s
        self._first_audio_timeout_s = first_audio_timeout_s
        self._stall_timeout_s = stall_timeout_s
        self._close_grace_s = close_grace_s
        self._reconnect = reconnect
        self._random = random.Random(seed).random  # the reconnect policy's jitter
        self._max_sockets = max_sockets
        root = base_url.rstrip("/")
        path = f"/v1/text-to-speech/{quote(voice_id, safe='')}"
        query = {"model_id": model_id, "output_format": OUTPUT_FORMAT}
        ws_query = {**query, "inactivity_timeout": str(INACTIVITY_TIMEOUT_S)}
        ws_query["sync_alignment"] = "true"
        self._ws_url = f"{root}{path}/multi-stream-input?{urlencode(ws_query)}"
        http_root = "http" + root.removeprefix("ws") if root.startswith("ws") else root
        self._rest_url = f"{http_root}{path}/stream?{urlencode({'output_format': OUTPUT_FORMAT})}"
        self._sockets: list[ContextSocket] = []
        self._connect_lock = asyncio.Lock()
        self._ws_down_until = 0.0
        self._connect_failures = 0  # handshakes failed in a row

    async def start(self) -> None:
        """Open the HTTP session (unless one was passed in) and a warm socket. A refused key
        raises ProviderAuthError; an unreachable socket only logs (REST is the fallback)."""
        if self._session is None:
            self._session = aiohttp.ClientSession()
        try:
            await self._grow()
        except ProviderAuthError:
            raise
        except ProviderError as exc:
            log.warning("elevenlabs socket not opened at start: %s", exc.message)

    async def aclose(self) -> None:
        sockets, self._sockets = self._sockets, []
        for socket in sockets:
            await socket.aclose()
        if self._owns_session and self._session is not None:
            await self._session.close()
        self._session = None

    async def synthesize(self, text: str) -> AsyncGenerator[bytes, None]:
        async with aclosing(self.synthesize_with_alignment(text)) as chunks:
            async for chunk in chunks:
                yield chunk.audio

    async def synthesize_with_alignment(self, text: str) -> AsyncGenerator[SpeechChunk, None]:
        async with aclosing(self.synthesize_stream(_single(text))) as chunks:
            async for chunk in chunks:
                yield chunk

    def synthesize_stream(self, pieces: AsyncIterable[str]) -> AsyncGenerator[SpeechChunk, None]:
        """One reply from text arriving in pieces (clauses or sentences from the LLM; each
        must end on a word boundary). Each piece is flushed as it arrives."""
        return tracing.traced_stream("elevenlabs", "tts synthesize", self._reply(pieces))

    async def _reply(self, pieces: AsyncIterable[str]) -> AsyncGenerator[SpeechChunk, None]:
        try:
            socket, context_id = await self._lease()
        except ProviderAuthError:
            raise
        except ProviderError as exc:
            log.warning("elevenlabs socket unavailable (%s): streaming over REST", exc.message)
            async with aclosing(self._rest_reply(pieces)) as chunks:
                async for chunk in chunks:
                    yield chunk
            return
        reply = ReplyContext(
            socket,
            context_id,
            first_audio_timeout_s=self._first_audio_timeout_s,
            stall_timeout_s=self._stall_timeout_s,
        )
        async with aclosing(reply.run(pieces)) as chunks:
            async for chunk in chunks:
                yield chunk

    # ---- sockets ------------------------------------------------------------------------------

    async def _lease(self) -> tuple[ContextSocket, str]:
        """A context on a socket with room (opened with its first message)."""
        if asyncio.get_running_loop().time() < self._ws_down_until:
            raise ProviderError(PROVIDER, "WebSocket recently unreachable", retryable=True)
        failures = 0  # a pooled socket may have died unnoticed: it counts as one that worked
        while True:
            socket = self._pick() or await self._grow()
            context_id = ""
            try:
                context_id = socket.open_context()
                await socket.send(
                    ClientMessage(
                        text=" ",
                        context_id=context_id,
                        voice_settings=self._voice_settings,
                        chunk_length_schedule=self._schedule,
                    )
                )
            except ProviderError as exc:
                socket.retired = True
                socket.stop_listening(context_id)
                if not self._reconnect.retries(exc, failures):
                    raise
                delay_s = self._reconnect.delay_s(failures, self._random)
                if delay_s:  # the first retry goes at once (ELEVENLABS allows no second)
                    await asyncio.sleep(delay_s)
                failures += 1  # the next socket has not proven itself yet
                continue
            except BaseException:  # cancelled mid-send: free the slot
                socket.stop_listening(context_id)
                raise
            return socket, context_id

    def _pick(self) -> ContextSocket | None:
        for socket in self._sockets:
            if socket.usable and socket.live_contexts < MAX_CONTEXTS_PER_SOCKET:
                return socket
        return None

    async def _grow(self) -> ContextSocket:
        async with self._connect_lock:
            await self._prune()
            socket = self._pick()
            if socket is not None:
                return socket
            if len(self._sockets) >= self._max_sockets:
                raise ProviderError(PROVIDER, f"all {self._max_sockets} sockets are full")
            try:
                socket = await self._connect()
            except ProviderAuthError:
                raise
            except ProviderError:
                self._connect_failures += 1
                delay_s = self._reconnect.delay_s(self._connect_failures, self._random)
                self._ws_down_until = asyncio.get_running_loop().time() + delay_s
                raise
            self._connect_failures = 0
            self._sockets.append(socket)
            return socket

    async def _prune(self) -> None:
        """Close sockets that are dead, retired and empty, or idle for too long."""
        keep: list[ContextSocket] = []
        for socket in self._sockets:
            if socket.usable or (socket.live_contexts and not socket.closed):
                keep.append(socket)
            else:
                await socket.aclose()
        self._sockets = keep

    async def _connect(self) -> ContextSocket:
        if self._session is None:
            raise RuntimeError("ElevenLabsTts.start() was not called")
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                ws = await self._session.ws_connect(
                    self._ws_url, headers={"xi-api-key": self._api_key}, autoping=True
                )
        except aiohttp.WSServerHandshakeError as exc:
            raise _status_error(exc.status, "WebSocket handshake") from None
        except TimeoutError:
            raise ProviderTimeout(PROVIDER, "WebSocket handshake timed out") from None
        except (aiohttp.ClientError, OSError) as exc:
            message = f"cannot open the WebSocket: {type(exc).__name__}"
            raise ProviderError(PROVIDER, message, retryable=True) from None
        log.info("elevenlabs socket opened (%d in the pool)", len(self._sockets) + 1)
        socket = ContextSocket(ws, close_grace_s=self._close_grace_s)
        socket.start()
        return socket

    # ---- REST fallback ------------------------------------------------------------------------

    async def _rest_reply(self, pieces: AsyncIterable[str]) -> AsyncGenerator[SpeechChunk, None]:
        received_bytes = 0
        previous = ""
        async for piece in pieces:
            text = " ".join(piece.split())
            if not text:
                continue
            body: dict[str, object] = {"text": text, "model_id": self._model_id}
            if self._voice_settings is not None:
                body["voice_settings"] = dataclasses.asdict(self._voice_settings)
            if previous:
                body["previous_text"] = previous
            async with aclosing(self._rest_post(body)) as stream:
                async for audio in stream:
                    yield SpeechChunk(audio, received_bytes // BYTES_PER_MS, None)
                    received_bytes += len(audio)
            previous = text

    async def _rest_post(self, body: dict[str, object]) -> AsyncGenerator[bytes, None]:
        if self._session is None:
            raise RuntimeError("ElevenLabsTts.start() was not called")
        timeout = aiohttp.ClientTimeout(
            sock_connect=self._connect_timeout_s, sock_read=self._first_audio_timeout_s
        )
        headers = {"xi-api-key": self._api_key, "Accept": "audio/basic"}
        try:
            async with self._session.post(
                self._rest_url, json=body, headers=headers, timeout=timeout
            ) as response:
                if response.status != 200:
                    raise _status_error(response.status, "REST stream")
                async for audio in response.content.iter_any():
                    yield audio
        except TimeoutError:
            raise ProviderTimeout(PROVIDER, "REST stream timed out") from None
        except aiohttp.ClientError as exc:
            message = f"REST stream failed: {type(exc).__name__}"
            raise ProviderError(PROVIDER, message, retryable=True) from None


async def _single(text: str) -> AsyncGenerator[str, None]:
    yield text


def _status_error(status: int, what: str) -> ProviderError:
    if status in (401, 403):
        return ProviderAuthError(PROVIDER, f"{what}: the API key was refused (HTTP {status})")
    return ProviderError(PROVIDER, f"{what}: HTTP {status}", retryable=retryable_status(status))
