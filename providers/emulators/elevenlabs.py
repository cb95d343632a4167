"""A local server speaking ElevenLabs' text-to-speech protocols on one port (aiohttp).

Routes (the vendor's paths; header ``xi-api-key`` required, else 401 before any upgrade):
- ``GET /v1/text-to-speech/{voice_id}/multi-stream-input`` WebSocket, one context per
  ``context_id``, at most ``max_contexts_per_socket`` live (a context stays live until its
  ``isFinal`` has been sent, so a closed context that is still draining counts).
- ``GET /v1/text-to-speech/{voice_id}/stream-input`` WebSocket, one implicit context;
  ``{"text": ""}`` ends it and the socket.
- ``POST /v1/text-to-speech/{voice_id}/stream`` chunked audio body.
Only ``output_format=ulaw_8000`` is served, and ``pcm_8000`` on the WebSockets (the same speech
decoded to 16-bit PCM; Pipecat's ElevenLabs service asks for it); no MP3 encoder.

Text is buffered per context until ``flush``, the ``chunk_length_schedule`` threshold (the
vendor's default ``[120, 160, 250, 290]`` characters) or, with ``auto_mode=true``, a sentence
end. ``close_context`` behaves as the service does (observed live, e.g. bolna-ai/bolna#790,
pipecat-ai/pipecat#4433): held text is still spoken, then ``isFinal`` is sent; a client that
is interrupted simply drops the rest. ``close_socket`` drains every context, then closes.
Contexts and sockets idle for ``inactivity_timeout`` seconds (query parameter, default 20)
are closed.

Audio is real speech from the offline espeak TTS (already 8 kHz mu-law). The alignment is an
EMULATION: the audio's duration is spread evenly over the characters, not measured.
"""

from __future__ import annotations

import asyncio
import bisect
import enum
import logging
import random
import re
import ssl
from collections import Counter
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from aiohttp import WSMsgType, web

from slotline.audio.mulaw import ulaw_to_pcm16
from slotline.providers.errors import ProtocolError
from slotline.providers.tts.elevenlabs_wire import (
    Alignment,
    ClientMessage,
    encode_audio,
    encode_error,
    encode_final,
    parse_client_message,
)
from slotline.providers.tts.local import LocalTts

log = logging.getLogger(__name__)

BYTES_PER_MS = 8  # ulaw_8000: one byte per sample
DEFAULT_SCHEDULE = (120, 160, 250, 290)  # the vendor's documented default
MAX_INACTIVITY_S = 180.0  # the vendor's documented ceiling for inactivity_timeout
_SENTENCE_END = re.compile(r"[.!?][\"')\]]*\s")
_POLICY_VIOLATION = 1008


@dataclass(frozen=True, slots=True)
class Latency:
    """Delays the emulated service adds. Each delay gets +/- ``jitter_ms`` (uniform)."""

    first_byte_delay_ms: float = 0.0  # text triggered (flush/threshold) -> its first audio
    chunk_interval_ms: float = 0.0  # between audio messages of one generation
    jitter_ms: float = 0.0
    chunk_ms: int = 250  # audio per message


LATENCY_PROFILES = {
    "none": Latency(),
    # Flash v2.5 over the internet: ~150 ms to first byte, then audio faster than real time.
    "cloud": Latency(first_byte_delay_ms=150.0, chunk_interval_ms=60.0, jitter_ms=20.0),
}


class Fault(enum.Enum):
    DROP_SOCKET = "drop_socket"  # cut the TCP connection after a context's first audio
    STALL = "stall"  # send a context's first audio, then nothing (the socket stays open)
    MALFORMED = "malformed"  # a context's first audio message is not JSON
    WS_UNAVAILABLE = "ws_unavailable"  # answer a WebSocket handshake with 503
    REST_429 = "rest_429"
    REST_500 = "rest_500"


_CONTEXT_FAULTS = (Fault.DROP_SOCKET, Fault.STALL, Fault.MALFORMED)


@dataclass(slots=True)
class EmulatorCounters:
    connections: int = 0  # WebSocket connections accepted
    contexts_opened: int = 0
    contexts_closed: int = 0  # isFinal sent (closed, drained or expired)
    chars_received: int = 0
    rest_requests: int = 0


class ElevenLabsEmulator:
    """``async with ElevenLabsEmulator() as eleven:`` then point a client at ``base_url``."""

    def __init__(
        self,
        *,
        api_key: str = "emulator-key",
        latency: Latency = LATENCY_PROFILES["none"],
        host: str = "127.0.0.1",
        port: int = 0,
        voice: str = "en-us",
        max_contexts_per_socket: int = 5,
        inactivity_timeout_s: float = 20.0,
        seed: int = 0,
        ssl_context: ssl.SSLContext | None = None,  # serve wss:// and https:// (the SDK's
        # stream-input client forces wss)
    ) -> None:
        self.latency = latency
        self.counters = EmulatorCounters()
        self.max_contexts_per_socket = max_contexts_per_socket
        self.inactivity_timeout_s = inactivity_timeout_s
        self._api_key = api_key
        self._host = host
        self._port = port
        self._voice = voice
        self._random = random.Random(seed)
        self._faults: Counter[Fault] = Counter()
        self._sockets: set[_Socket] = set()
        self._runner: web.AppRunner | None = None
        self._tts: LocalTts | None = None
        self._ssl_context = ssl_context

    @property
    def base_url(self) -> str:
        scheme = "ws" if self._ssl_context is None else "wss"
        return f"{scheme}://{self._host}:{self._port}"

    @property
    def http_base_url(self) -> str:
        scheme = "http" if self._ssl_context is None else "https"
        return f"{scheme}://{self._host}:{self._port}"

    def inject(self, fault: Fault, *, times: int = 1) -> None:
        """Make the next ``times`` occasions of ``fault`` happen (contexts, handshakes, posts)."""
        self._faults[fault] += times

    async def __aenter__(self) -> Self:
        self._tts = await asyncio.to_thread(LocalTts, self._voice)  # probes the voice (blocks)
        app = web.Application()
        base = "/v1/text-to-speech/{voice_id}"
        app.router.add_get(base + "/multi-stream-input", self._multi_route)
        app.router.add_get(base + "/stream-input", self._single_route)
        app.router.add_post(base + "/stream", self._rest_route)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port, ssl_context=self._ssl_context)
        await site.start()
        self._port = int(self._runner.addresses[0][1])
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for socket in list(self._sockets):
            await socket.shut_down()
        if self._runner is not None:
            await self._runner.cleanup()

    # ---- helpers the sockets use --------------------------------------------------------------

    def take_fault(self, *faults: Fault) -> Fault | None:
        for fault in faults:
            if self._faults[fault] > 0:
                self._faults[fault] -= 1
                return fault
        return None

    def delay_s(self, base_ms: float) -> float:
        jitter = self._random.uniform(-self.latency.jitter_ms, self.latency.jitter_ms)
        return max(0.0, base_ms + jitter) / 1000.0

    async def speak(self, text: str) -> bytes:
        assert self._tts is not None, "use the emulator as an async context manager"
        return b"".join([chunk async for chunk in self._tts.synthesize(text)])

    # ---- routes -------------------------------------------------------------------------------

    def _refusal(self, request: web.Request,
                 formats: tuple[str, ...] = ("ulaw_8000",)) -> web.Response | None:
        if request.headers.get("xi-api-key") != self._api_key:
            detail = {"status": "invalid_api_key", "message": "Invalid API key"}
            return web.json_response({"detail": detail}, status=401)
        output_format = request.query.get("output_format", "mp3_44100")
        if output_format not in formats:
            detail = {"status": "invalid_output_format",
                      "message": f"emulator serves {' or '.join(formats)}"}
            return web.json_response({"detail": detail}, status=422)
        return None

    async def _multi_route(self, request: web.Request) -> web.StreamResponse:
        return await self._websocket(request, multi=True)

    async def _single_route(self, request: web.Request) -> web.StreamResponse:
        return await self._websocket(request, multi=False)

    async def _websocket(self, request: web.Request, *, multi: bool) -> web.StreamResponse:
        refusal = self._refusal(request, ("ulaw_8000", "pcm_8000"))
        if refusal is not None:
            return refusal
        if self.take_fault(Fault.WS_UNAVAILABLE):
            return web.json_response({"detail": {"status": "unavailable"}}, status=503)
        try:
            inactivity_s = float(request.query.get("inactivity_timeout", ""))
        except ValueError:
            inactivity_s = self.inactivity_timeout_s
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self.counters.connections += 1
        inactivity_s = min(inactivity_s, MAX_INACTIVITY_S)
        socket = _Socket(self, request, ws, multi=multi, inactivity_s=inactivity_s)
        socket.auto_mode = request.query.get("auto_mode", "false").lower() == "true"
        self._sockets.add(socket)
        try:
            await socket.run()
        finally:
            self._sockets.discard(socket)
        return ws

    async def _rest_route(self, request: web.Request) -> web.StreamResponse:
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        fault = self.take_fault(Fault.REST_429, Fault.REST_500)
        if fault is Fault.REST_429:
            detail = {"status": "too_many_concurrent_requests", "message": "Too many requests"}
            return web.json_response({"detail": detail}, status=429)
        if fault is Fault.REST_500:
            return web.json_response({"detail": {"status": "internal_error"}}, status=500)
        try:
            body = await request.json()
        except ValueError:
            body = None
        text = body.get("text") if isinstance(body, dict) else None
        if not isinstance(text, str) or not text.strip():
            detail = {"status": "invalid_text", "message": "text must be a non-empty string"}
            return web.json_response({"detail": detail}, status=422)
        self.counters.rest_requests += 1
        self.counters.chars_received += len(text)
        due = asyncio.get_running_loop().time() + self.delay_s(self.latency.first_byte_delay_ms)
        audio = await self.speak(text)
        response = web.StreamResponse(headers={"Content-Type": "audio/basic"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        await asyncio.sleep(max(0.0, due - asyncio.get_running_loop().time()))
        step = self.latency.chunk_ms * BYTES_PER_MS
        for offset in range(0, len(audio), step):
            if offset:
                await asyncio.sleep(self.delay_s(self.latency.chunk_interval_ms))
            await response.write(audio[offset : offset + step])
        await response.write_eof()
        return response


class _SocketGone(Exception):
    """The WebSocket closed under a context's worker."""


@dataclass(frozen=True, slots=True)
class _Piece:
    text: str
    due_at: float  # loop time when its first audio may leave (triggered + first byte delay)


class _Context:
    def __init__(self, socket: _Socket, context_id: str | None, schedule: tuple[int, ...]) -> None:
        self.id = context_id
        self.last_message_at = asyncio.get_running_loop().time()
        self._socket = socket
        self._schedule = schedule
        self._buffer = ""
        self._generations = 0
        self._pending = 0  # pieces queued or being spoken
        self._queue: asyncio.Queue[_Piece | None] = asyncio.Queue()
        self._first_audio_sent = False
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name=f"eleven-emulator-context-{self.id}")

    @property
    def busy(self) -> bool:
        return self._pending > 0

    def add_text(self, text: str) -> None:
        self._buffer += text
        threshold = self._schedule[min(self._generations, len(self._schedule) - 1)]
        if len(self._buffer) >= threshold:
            cut = max(self._buffer.rfind(" "), self._buffer.rfind("\n"))  # whole words only
            self._trigger(cut + 1 if cut > 0 else len(self._buffer))
        elif self._socket.auto_mode:
            ends = [match.end() for match in _SENTENCE_END.finditer(self._buffer)]
            if ends:
                self._trigger(ends[-1])

    def flush(self) -> None:
        self._trigger(len(self._buffer))

    def close(self) -> None:
        """Speak what is held, then send isFinal (the service's close_context)."""
        self.flush()
        self._queue.put_nowait(None)

    def _trigger(self, end: int) -> None:
        text, self._buffer = self._buffer[:end], self._buffer[end:]
        if not text.strip():
            return
        self._generations += 1
        self._pending += 1
        delay_s = self._socket.emulator.delay_s(self._socket.emulator.latency.first_byte_delay_ms)
        due_at = asyncio.get_running_loop().time() + delay_s
        self._queue.put_nowait(_Piece(" ".join(text.split()), due_at))

    async def _run(self) -> None:
        try:
            while (piece := await self._queue.get()) is not None:
                await self._speak(piece)
                self._pending -= 1
            await self._socket.send(encode_final(self._socket.tag(self.id)))
            self._socket.emulator.counters.contexts_closed += 1
        except _SocketGone:
            pass
        finally:
            self._socket.forget(self)

    async def _speak(self, piece: _Piece) -> None:
        emulator = self._socket.emulator
        audio = await emulator.speak(piece.text)
        aligned = piece.text + " "  # the service's alignment keeps the space between pieces
        starts, durations = _spread(len(aligned), len(audio) // BYTES_PER_MS)
        loop = asyncio.get_running_loop()
        await asyncio.sleep(max(0.0, piece.due_at - loop.time()))
        step = emulator.latency.chunk_ms * BYTES_PER_MS
        for offset in range(0, len(audio), step):
            if offset:
                await asyncio.sleep(emulator.delay_s(emulator.latency.chunk_interval_ms))
            begin_ms, end_ms = offset // BYTES_PER_MS, (offset + step) // BYTES_PER_MS
            first = bisect.bisect_left(starts, begin_ms)
            last = bisect.bisect_left(starts, end_ms) if offset + step < len(audio) else len(starts)
            alignment = Alignment(
                tuple(aligned[first:last]),
                tuple(start - begin_ms for start in starts[first:last]),
                tuple(durations[first:last]),
            )
            chunk = audio[offset : offset + step]
            if self._socket.pcm16:
                chunk = ulaw_to_pcm16(chunk)
            message = encode_audio(self._socket.tag(self.id), chunk, alignment)
            fault = None
            if not self._first_audio_sent:
                self._first_audio_sent = True
                fault = emulator.take_fault(*_CONTEXT_FAULTS)
            await self._socket.send(message[:20] if fault is Fault.MALFORMED else message)
            if fault is Fault.DROP_SOCKET:
                self._socket.abort()
                raise _SocketGone
            if fault is Fault.STALL:
                await asyncio.Event().wait()  # until the socket goes away


def _spread(char_count: int, duration_ms: int) -> tuple[list[int], list[int]]:
    """EMULATED alignment: each character gets an equal share of the audio's duration."""
    bounds = [index * duration_ms // max(char_count, 1) for index in range(char_count + 1)]
    return bounds[:-1], [end - start for start, end in zip(bounds, bounds[1:], strict=False)]


class _Socket:
    """One accepted WebSocket: reads client messages and owns its contexts."""

    def __init__(
        self,
        emulator: ElevenLabsEmulator,
        request: web.Request,
        ws: web.WebSocketResponse,
        *,
        multi: bool,
        inactivity_s: float,
    ) -> None:
        self.emulator = emulator
        self.auto_mode = False
        self.pcm16 = request.query.get("output_format") == "pcm_8000"
        self._request = request
        self._ws = ws
        self._multi = multi
        self._inactivity_s = max(inactivity_s, 0.01)
        self._open: dict[str | None, _Context] = {}  # accepting text, by id
        self._live: set[_Context] = set()  # open or draining, until isFinal is sent
        self._send_lock = asyncio.Lock()

    def tag(self, context_id: str | None) -> str | None:
        """The contextId to put on server messages (none on the single-context route)."""
        return context_id if self._multi else None

    async def send(self, text: str) -> None:
        async with self._send_lock:
            if self._ws.closed:
                raise _SocketGone
            try:
                await self._ws.send_str(text)
            except ConnectionError:
                raise _SocketGone from None

    def abort(self) -> None:
        if self._request.transport is not None:
            self._request.transport.abort()

    def forget(self, context: _Context) -> None:
        self._live.discard(context)
        if self._open.get(context.id) is context:
            del self._open[context.id]

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        last_message_at = loop.time()
        try:
            while not self._ws.closed:
                now = loop.time()
                for context in [c for c in self._open.values() if not c.busy]:
                    if now - context.last_message_at >= self._inactivity_s:
                        self._close_context(context)
                idle_s = now - last_message_at
                if idle_s >= self._inactivity_s and not any(c.busy for c in self._live):
                    await self._refuse("inactivity_timeout", "no text within the timeout")
                    return
                try:
                    message = await self._ws.receive(timeout=self._inactivity_s / 4)
                except TimeoutError:
                    continue
                if message.type is not WSMsgType.TEXT:
                    return
                last_message_at = loop.time()
                try:
                    parsed = parse_client_message(message.data)
                except ProtocolError as exc:
                    await self._refuse("invalid_message", exc.detail)
                    return
                if not await self._handle(parsed):
                    return
        finally:
            await self.shut_down()

    async def shut_down(self) -> None:
        tasks = self._tasks()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if not self._ws.closed:
            await self._ws.close(code=1001)

    def _tasks(self) -> list[asyncio.Task[None]]:
        return [context.task for context in self._live if context.task is not None]

    async def _handle(self, message: ClientMessage) -> bool:
        """Apply one client message; False when the socket is to close."""
        if message.close_socket or (not self._multi and message.text == "" and self._open):
            for each in list(self._open.values()):
                self._close_context(each)
            await asyncio.gather(*self._tasks(), return_exceptions=True)
            await self._ws.close()
            return False
        context_id = message.context_id if self._multi else None
        context = self._open.get(context_id)
        if message.close_context:
            if context is not None:
                self._close_context(context)
            return True
        if context is None:
            if len(self._live) >= self.emulator.max_contexts_per_socket:
                limit = self.emulator.max_contexts_per_socket
                await self._refuse(
                    "max_active_conversations",
                    f"Maximum simultaneous contexts per WebSocket connection exceeded ({limit}).",
                )
                return False
            schedule = message.chunk_length_schedule or DEFAULT_SCHEDULE
            context = _Context(self, context_id, schedule)
            context.start()
            self._open[context_id] = context
            self._live.add(context)
            self.emulator.counters.contexts_opened += 1
        context.last_message_at = asyncio.get_running_loop().time()
        if message.text:
            self.emulator.counters.chars_received += len(message.text)
            context.add_text(message.text)
        if message.flush:
            context.flush()
        return True

    def _close_context(self, context: _Context) -> None:
        if self._open.get(context.id) is context:
            del self._open[context.id]  # the id may be reused for a new, unrelated context
        context.close()

    async def _refuse(self, error: str, detail: str) -> None:
        log.info("elevenlabs emulator closes a socket: %s", error)
        try:
            await self.send(encode_error(detail, error, _POLICY_VIOLATION))
        except _SocketGone:
            return
        await self._ws.close(code=_POLICY_VIOLATION, message=error.encode())
