"""A local server speaking Deepgram's live-listen protocol, with real transcripts.

``wss://api.deepgram.com/v1/listen`` as documented (../shared/PROTOCOLS.md, the asyncapi spec in
../shared/specs/deepgram/) on ``ws://127.0.0.1:PORT/v1/listen``:

* Handshake: ``Authorization: Token <key>`` (HTTP 401 otherwise); the query is checked against
  the spec's parameter table (``QUERY_PARAMETERS``, kept equal to the spec by a test): unknown
  names, values outside an enum, repeats of single-valued names → HTTP 400. Failed upgrades carry
  Deepgram's JSON error body and ``dg-error`` / ``dg-request-id`` headers. This emulator decodes
  only ``encoding=mulaw&sample_rate=8000&channels=1`` (anything else is a 400 saying so).
* Binary frames are audio. WebRTC VAD segments it; each utterance is decoded by the offline
  recogniser (``LocalSpeechToText``, no hints → its domain LM). ``SpeechStarted`` on onset
  (``vad_events``), interim ``Results`` every ``interim_every_ms`` of speech (re-decoding the
  partial utterance, at most one decode in flight), a final with ``speech_final`` after
  ``endpointing`` ms of silence, ``UtteranceEnd`` after ``utterance_end_ms`` without words.
  Word timings are spread evenly over the voiced span (pocketsphinx gives none here); the
  formatting options (punctuate, smart_format, ...) are accepted and not applied.
* Text frames: ``KeepAlive``; ``Finalize`` → a final with ``from_finalize: true`` now (an empty
  one when nothing is pending); ``CloseStream`` (or a legacy empty binary frame) → final
  results, ``Metadata``, close 1000. Anything else → close 1008 ``DATA-0000`` (Deepgram's
  documented code for client data it cannot use; what it does with bad *text* is unverified).
  No frame for ``idle_timeout_s`` → close 1011 ``NET-0001``.

Knobs: ``finalize_delay_ms`` (Finalize → its result), ``result_delay_ms`` (audio → other
results), ``jitter_ms`` (uniform, added to both), and :class:`Faults` for tests. ``cloud()``
gives the realistic profile the bench uses.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs

import orjson
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from audio.mulaw import ulaw_to_pcm16
from audio.vad import WebRtcVad
from providers.base import SpeechHints
from providers.errors import ProviderError
from providers.stt._sphinx_wire import DecodeResult
from providers.stt.deepgram import RedactAuthorization
from providers.stt.local import LocalSpeechToText

logger = logging.getLogger(__name__)
_ws_logger = logging.getLogger(f"{__name__}.websocket")  # logs handshakes at DEBUG
_ws_logger.addFilter(RedactAuthorization())

FRAME_MS = 20
_FRAME_BYTES = 160  # 20 ms of 8 kHz mu-law
_ONSET_FRAMES = 2  # voiced frames in a row that start an utterance (one click is not speech)
_PREROLL_FRAMES = 10  # 200 ms before the onset go into the utterance: the VAD decides late
_IDLE_FINAL_MS = 3000  # Deepgram sends empty finals through long silences; so do we
_MAX_UTTERANCE_MS = 20_000  # a monologue is cut into finals this long
_NO_HINTS = SpeechHints()
_GONE = (1006, "")  # the client went away: nothing to send

_BOOL = ("true", "false")
_MODELS = (
    "nova-3", "nova-3-general", "nova-3-medical", "nova-2", "nova-2-general", "nova-2-meeting",
    "nova-2-finance", "nova-2-conversationalai", "nova-2-voicemail", "nova-2-video",
    "nova-2-medical", "nova-2-drivethru", "nova-2-automotive", "nova", "nova-general",
    "nova-phonecall", "nova-medical", "enhanced", "enhanced-general", "enhanced-meeting",
    "enhanced-phonecall", "enhanced-finance", "base", "meeting", "phonecall", "finance",
    "conversationalai", "voicemail", "video", "custom",
)
_ENCODINGS = ("linear16", "linear32", "flac", "alaw", "mulaw", "amr-nb", "amr-wb", "opus",
              "ogg-opus", "speex", "g729")
# The spec's /v1/listen query: name -> allowed values (None: the spec says "Any type").
QUERY_PARAMETERS: dict[str, tuple[str, ...] | None] = {
    "callback": None, "callback_method": ("POST", "GET", "PUT", "DELETE"), "channels": None,
    "detect_entities": _BOOL, "diarize": _BOOL, "diarize_model": ("latest", "v1"),
    "dictation": _BOOL, "encoding": _ENCODINGS, "endpointing": None, "extra": None,
    "interim_results": _BOOL, "keyterm": None, "keywords": None, "language": None,
    "mip_opt_out": None, "model": _MODELS, "multichannel": _BOOL, "numerals": _BOOL,
    "profanity_filter": _BOOL, "punctuate": _BOOL,
    "redact": ("true", "false", "pci", "numbers", "aggressive_numbers", "ssn"), "replace": None,
    "sample_rate": None, "search": None, "smart_format": _BOOL, "tag": None,
    "utterance_end_ms": None, "vad_events": _BOOL, "version": None,
}
_REPEATABLE = frozenset({"extra", "keyterm", "keywords", "redact", "replace", "search", "tag"})


@dataclass(frozen=True, slots=True)
class ListenParams:
    model: str
    interim_results: bool
    endpointing_ms: int | None  # None: endpointing=false
    utterance_end_ms: int | None
    vad_events: bool


class BadRequest(ValueError):
    """A handshake the real service answers with HTTP 400."""


def parse_listen_query(query: str) -> ListenParams:
    values = parse_qs(query, keep_blank_values=True, strict_parsing=False)
    for name, given in values.items():
        if name not in QUERY_PARAMETERS:
            raise BadRequest(f"unknown query parameter {name!r}")
        if len(given) > 1 and name not in _REPEATABLE:
            raise BadRequest(f"query parameter {name!r} given {len(given)} times")
        allowed = QUERY_PARAMETERS[name]
        if allowed is not None and any(value not in allowed for value in given):
            raise BadRequest(f"invalid value for {name!r}: {given[0]!r}")

    def one(name: str, default: str) -> str:
        return values.get(name, [default])[0]

    audio_format = (one("encoding", ""), one("sample_rate", ""), one("channels", "1"))
    if audio_format != ("mulaw", "8000", "1"):
        raise BadRequest("this emulator decodes only encoding=mulaw&sample_rate=8000&channels=1")
    endpointing = one("endpointing", "10")  # the spec's default
    utterance_end = one("utterance_end_ms", "")
    try:
        endpointing_ms = None if endpointing == "false" else max(0, int(endpointing))
        utterance_end_ms = int(utterance_end) if utterance_end else None
    except ValueError:
        raise BadRequest("endpointing and utterance_end_ms take milliseconds") from None
    return ListenParams(
        model=one("model", "base"),
        interim_results=one("interim_results", "false") == "true",
        endpointing_ms=endpointing_ms,
        utterance_end_ms=utterance_end_ms,
        vad_events=one("vad_events", "false") == "true",
    )


@dataclass(frozen=True, slots=True)
class Faults:
    """Injected misbehaviour for the next ``connections`` connections (counted in Results)."""

    drop_after_results: int | None = None  # abort the TCP connection, no close frame
    stall_after_results: int | None = None  # stop sending anything; the socket stays open
    malformed_after_results: int | None = None  # one truncated JSON text frame
    drop_on_finalize: bool = False  # abort when a Finalize arrives, before answering it
    connections: int = 1


@dataclass(slots=True)
class EmulatorStats:
    connections: int = 0
    rejected: dict[int, int] = field(default_factory=dict)  # HTTP status -> handshakes
    audio_bytes: int = 0
    interim_results: int = 0
    final_results: int = 0
    from_finalize: int = 0
    speech_started: int = 0
    utterance_ends: int = 0
    keepalives: int = 0
    finalizes: int = 0
    close_streams: int = 0
    closes: dict[int, int] = field(default_factory=dict)  # close code sent -> count
    faults_fired: int = 0


class DeepgramEmulator:
    """``async with DeepgramEmulator() as dg: connect to dg.url`` (ws://127.0.0.1:PORT)."""

    def __init__(
        self,
        *,
        api_key: str | None = "emulator-key",  # None: any non-empty key is accepted
        recognizer: LocalSpeechToText | None = None,  # shared; else the emulator owns one
        finalize_delay_ms: float = 0.0,
        result_delay_ms: float = 0.0,
        jitter_ms: float = 0.0,
        interim_every_ms: int = 500,
        idle_timeout_s: float = 10.0,
        record_messages: bool = False,
        seed: int = 0,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self._api_key = api_key
        self._owns_recognizer = recognizer is None
        self.recognizer = recognizer or LocalSpeechToText()
        self.finalize_delay_s = finalize_delay_ms / 1000
        self.result_delay_s = result_delay_ms / 1000
        self.jitter_s = jitter_ms / 1000
        self.interim_every_ms = interim_every_ms
        self.idle_timeout_s = idle_timeout_s
        self.random = random.Random(seed)
        self.stats = EmulatorStats()
        self.sent: list[str] | None = [] if record_messages else None  # every valid text frame
        self._faults: Faults | None = None
        self._faulty_connections = 0
        self._host, self._port = host, port
        self._server: Server | None = None

    @classmethod
    def cloud(cls, **kwargs: Any) -> DeepgramEmulator:
        """Realistic vendor delays (Finalize answered in ~150 ms, results ~250 ms behind)."""
        profile: dict[str, Any] = {
            "finalize_delay_ms": 150.0, "result_delay_ms": 250.0, "jitter_ms": 30.0,
        }
        return cls(**(profile | kwargs))

    @property
    def url(self) -> str:
        return f"ws://{self._host}:{self._port}"

    def inject(self, faults: Faults) -> None:
        self._faults, self._faulty_connections = faults, faults.connections

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def start(self) -> None:
        if self._owns_recognizer:
            await self.recognizer.start()
        self._server = await serve(
            self._handle, self._host, self._port, process_request=self._check_handshake,
            logger=_ws_logger,
        )
        self._port = self._server.sockets[0].getsockname()[1]
        logger.info("deepgram emulator listening on %s", self.url)

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        if self._owns_recognizer:
            await self.recognizer.aclose()

    def _check_handshake(self, connection: ServerConnection, request: Request) -> Response | None:
        path, _, query = request.path.partition("?")
        if path.rstrip("/") != "/v1/listen":
            return self._reject(connection, HTTPStatus.NOT_FOUND, "NOT_FOUND", f"no route {path}")
        scheme, _, key = (request.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() != "token" or not key or self._api_key not in (None, key.strip()):
            return self._reject(
                connection, HTTPStatus.UNAUTHORIZED, "INVALID_AUTH", "Invalid credentials."
            )
        try:
            parse_listen_query(query)
        except BadRequest as exc:
            return self._reject(connection, HTTPStatus.BAD_REQUEST, "Bad Request", str(exc))
        return None

    def _reject(
        self, connection: ServerConnection, status: HTTPStatus, code: str, message: str
    ) -> Response:
        self.stats.rejected[status] = self.stats.rejected.get(status, 0) + 1
        request_id = str(uuid.uuid4())
        body = {"err_code": code, "err_msg": message, "request_id": request_id}
        response = connection.respond(status, orjson.dumps(body).decode())
        del response.headers["Content-Type"]
        response.headers["Content-Type"] = "application/json"
        response.headers["dg-error"] = message
        response.headers["dg-request-id"] = request_id
        return response

    async def _handle(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        params = parse_listen_query(ws.request.path.partition("?")[2])
        self.stats.connections += 1
        faults = None
        if self._faulty_connections > 0:
            self._faulty_connections -= 1
            faults = self._faults
        await _ListenSession(self, ws, params, faults).run()


@dataclass(frozen=True, slots=True)
class _SpeechBegan:
    at_ms: int


@dataclass(frozen=True, slots=True)
class _Span:
    """Audio ``start_ms..end_ms`` (connection time) with speech in ``speech_*``; ``pcm16`` is
    the utterance to decode (None: no speech in the span)."""

    pcm16: bytes | None
    start_ms: int
    end_ms: int
    speech_start_ms: int
    speech_end_ms: int
    is_final: bool
    speech_final: bool


@dataclass(frozen=True, slots=True)
class _GapElapsed:
    last_voiced_end_ms: int


_Event = _SpeechBegan | _Span | _GapElapsed


class _Segmenter:
    """Sans-I/O: 20 ms frames with a VAD decision in, segmentation events out."""

    def __init__(self, params: ListenParams, interim_every_ms: int) -> None:
        self.now_ms = 0
        self._endpointing_ms = (
            None if params.endpointing_ms is None else max(FRAME_MS, params.endpointing_ms)
        )
        self._interim_every_ms = interim_every_ms if params.interim_results else None
        self._utterance_end_ms = params.utterance_end_ms if params.interim_results else None
        self._final_start_ms = 0
        self._preroll: deque[bytes] = deque(maxlen=_PREROLL_FRAMES)
        self._utterance: bytearray | None = None
        self._voiced_run = 0
        self._speech_start_ms = 0
        self._last_voiced_end_ms = 0
        self._since_interim_ms = 0
        self._voiced_since_interim = False
        self._gap_armed = False

    def push(self, pcm16: bytes, voiced: bool) -> list[_Event]:
        self.now_ms += FRAME_MS
        events: list[_Event] = []
        utterance = self._utterance
        if utterance is None:
            self._preroll.append(pcm16)
            self._voiced_run = self._voiced_run + 1 if voiced else 0
            if self._voiced_run >= _ONSET_FRAMES:
                self._utterance = bytearray(b"".join(self._preroll))
                self._preroll.clear()
                self._speech_start_ms = self.now_ms - _ONSET_FRAMES * FRAME_MS
                self._last_voiced_end_ms = self.now_ms
                self._since_interim_ms = 0
                self._gap_armed = True
                events.append(_SpeechBegan(self._speech_start_ms))
            elif self.now_ms - self._final_start_ms >= _IDLE_FINAL_MS:
                events.append(self.flush(speech_final=False))
        else:
            utterance += pcm16
            if voiced:
                self._last_voiced_end_ms = self.now_ms
                self._voiced_since_interim = True
            silent_ms = self.now_ms - self._last_voiced_end_ms
            self._since_interim_ms += FRAME_MS
            if self._endpointing_ms is not None and silent_ms >= self._endpointing_ms:
                events.append(self.flush(speech_final=True))
            elif self.now_ms - self._speech_start_ms >= _MAX_UTTERANCE_MS:
                events.append(self.flush(speech_final=False))
            elif (
                self._interim_every_ms is not None
                and self._since_interim_ms >= self._interim_every_ms
                and self._voiced_since_interim
            ):
                self._since_interim_ms, self._voiced_since_interim = 0, False
                events.append(self._span(bytes(utterance), is_final=False, speech_final=False))
        if (
            self._gap_armed
            and self._utterance_end_ms is not None
            and self.now_ms - self._last_voiced_end_ms >= self._utterance_end_ms
        ):
            self._gap_armed = False
            events.append(_GapElapsed(self._last_voiced_end_ms))
        return events

    @property
    def unfinalized_ms(self) -> int:
        return self.now_ms - self._final_start_ms

    def flush(self, *, speech_final: bool) -> _Span:
        """Close the current final span (endpoint, Finalize, CloseStream or a long silence)."""
        pcm16 = None if self._utterance is None else bytes(self._utterance)
        span = self._span(pcm16, is_final=True, speech_final=speech_final)
        self._final_start_ms = self.now_ms
        self._utterance = None
        self._voiced_run = 0
        self._preroll.clear()
        return span

    def _span(self, pcm16: bytes | None, *, is_final: bool, speech_final: bool) -> _Span:
        speech_end = self._last_voiced_end_ms if is_final else self.now_ms
        return _Span(pcm16, self._final_start_ms, self.now_ms, self._speech_start_ms,
                     speech_end, is_final, speech_final)


@dataclass(slots=True)
class _Outgoing:
    """One server message: sent once its decode (if any) is done and ``ready_at`` (loop
    time) has passed; ``build`` turns the decode result into the text frame (None: skip)."""

    ready_at: float
    decode: asyncio.Future[DecodeResult] | None
    build: Callable[[DecodeResult | None], str | None]
    is_result: bool = False


class _ListenSession:
    """One live-listen connection: the receive loop feeds the segmenter, one sender task
    emits the queued messages in order."""

    def __init__(
        self, owner: DeepgramEmulator, ws: ServerConnection, params: ListenParams,
        faults: Faults | None,
    ) -> None:
        self._owner = owner
        self._stats = owner.stats
        self._ws = ws
        self._params = params
        self._faults = faults
        self._loop = asyncio.get_running_loop()
        self._segmenter = _Segmenter(params, owner.interim_every_ms)
        self._vad = WebRtcVad(aggressiveness=2)
        self._partial = bytearray()  # audio bytes short of a whole frame
        self._sha256 = hashlib.sha256()
        self._outbox: asyncio.Queue[_Outgoing | None] = asyncio.Queue()
        self._interim_decode: asyncio.Future[DecodeResult] | None = None
        self._request_id = str(uuid.uuid4())
        self._model_uuid = str(uuid.uuid5(uuid.NAMESPACE_URL, params.model))
        self._results_sent = 0
        self._words_since_utterance_end = False

    async def run(self) -> None:
        sender = asyncio.create_task(self._send_loop(), name=f"dg-emulator-send-{self._request_id}")
        close: tuple[int, str] | None = _GONE
        try:
            close = await self._receive_loop()
            if close is None:  # CloseStream: let the sender finish, then Metadata and 1000
                self._outbox.put_nowait(None)
                await sender
        finally:
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)
            while not self._outbox.empty():
                item = self._outbox.get_nowait()
                if item is not None and item.decode is not None:
                    item.decode.cancel()
        if close is not None and close is not _GONE:
            self._stats.closes[close[0]] = self._stats.closes.get(close[0], 0) + 1
            await self._ws.close(*close)

    async def _receive_loop(self) -> tuple[int, str] | None:
        """Returns the close frame to send, or None after a CloseStream."""
        while True:
            try:
                async with asyncio.timeout(self._owner.idle_timeout_s):
                    message = await self._ws.recv()
            except TimeoutError:
                return 1011, "NET-0001: no audio or text frame received within the timeout"
            except ConnectionClosed:
                return _GONE
            if isinstance(message, bytes):
                if not message:  # the legacy way of closing a stream
                    self._close_stream()
                    return None
                self._audio(message)
                continue
            kind = _control_type(message)
            if kind == "KeepAlive":
                self._stats.keepalives += 1
            elif kind == "Finalize":
                self._stats.finalizes += 1
                if self._faults is not None and self._faults.drop_on_finalize:
                    self._stats.faults_fired += 1
                    self._ws.transport.abort()
                    return _GONE
                span = self._segmenter.flush(speech_final=False)
                self._queue_result(span, from_finalize=True, delay_s=self._owner.finalize_delay_s)
            elif kind == "CloseStream":
                self._close_stream()
                return None
            else:
                return 1008, "DATA-0000: the text frame is not a known control message"

    def _close_stream(self) -> None:
        self._stats.close_streams += 1
        if self._segmenter.unfinalized_ms > 0:
            self._queue_result(self._segmenter.flush(speech_final=False), from_finalize=False)

    def _audio(self, data: bytes) -> None:
        self._stats.audio_bytes += len(data)
        self._sha256.update(data)
        buffer = self._partial
        buffer += data
        whole = len(buffer) - len(buffer) % _FRAME_BYTES
        for offset in range(0, whole, _FRAME_BYTES):
            pcm16 = ulaw_to_pcm16(bytes(buffer[offset : offset + _FRAME_BYTES]))
            for event in self._segmenter.push(pcm16, self._vad.is_speech(pcm16)):
                self._on_event(event)
        del buffer[:whole]

    def _on_event(self, event: _Event) -> None:
        if isinstance(event, _SpeechBegan):
            if self._params.vad_events:
                self._stats.speech_started += 1
                text = _json({"type": "SpeechStarted", "channel": [0, 1],
                              "timestamp": event.at_ms / 1000})
                self._outbox.put_nowait(_Outgoing(self._loop.time(), None, lambda _: text))
        elif isinstance(event, _GapElapsed):
            self._outbox.put_nowait(_Outgoing(
                self._loop.time() + self._owner.result_delay_s, None,
                lambda _: self._utterance_end(event.last_voiced_end_ms),
            ))
        elif event.is_final:
            self._queue_result(event, from_finalize=False)
        elif self._interim_decode is None or self._interim_decode.done():
            # Interims re-decode the whole partial utterance; skip one while a decode runs.
            self._queue_result(event, from_finalize=False)

    def _queue_result(
        self, span: _Span, *, from_finalize: bool, delay_s: float | None = None
    ) -> None:
        decode = None if span.pcm16 is None else self._submit(span.pcm16)
        if not span.is_final:
            self._interim_decode = decode
        delay_s = self._owner.result_delay_s if delay_s is None else delay_s
        self._outbox.put_nowait(_Outgoing(
            self._loop.time() + delay_s, decode,
            lambda result: self._results(span, result, from_finalize), is_result=True,
        ))

    def _submit(self, pcm16: bytes) -> asyncio.Future[DecodeResult]:
        recognizer = self._owner.recognizer
        future = recognizer.submit(pcm16, _NO_HINTS)
        if future is None:  # no live worker: decode() restarts one
            future = asyncio.ensure_future(recognizer.decode(pcm16, _NO_HINTS))
        return future

    async def _send_loop(self) -> None:
        try:
            await self._send_queued()
        except ConnectionClosed:
            pass  # the receive loop sees it too and ends the session

    async def _send_queued(self) -> None:
        owner = self._owner
        while (item := await self._outbox.get()) is not None:
            result = None
            if item.decode is not None:
                try:
                    result = await owner.recognizer.result(item.decode)
                except ProviderError as exc:
                    logger.warning("emulator decode failed: %s", exc)
            wait_s = item.ready_at + owner.random.uniform(0.0, owner.jitter_s) - self._loop.time()
            if wait_s > 0:
                await asyncio.sleep(wait_s)
            text = item.build(result)
            if text is not None:
                await self._send(text, is_result=item.is_result)
        metadata = {
            "type": "Metadata", "transaction_key": "deprecated", "request_id": self._request_id,
            "sha256": self._sha256.hexdigest(),
            "created": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "duration": self._segmenter.now_ms / 1000, "channels": 1,
        }
        await self._send(_json(metadata), is_result=False)
        self._stats.closes[1000] = self._stats.closes.get(1000, 0) + 1
        await self._ws.close(1000)

    async def _send(self, text: str, *, is_result: bool) -> None:
        faults = self._faults
        if faults is not None and faults.stall_after_results is not None:
            if self._results_sent >= faults.stall_after_results:
                self._stats.faults_fired += 1
                await asyncio.Event().wait()  # until the connection ends and cancels us
        await self._ws.send(text)
        if self._owner.sent is not None:
            self._owner.sent.append(text)
        if not is_result or faults is None:
            return
        self._results_sent += 1
        if self._results_sent == faults.malformed_after_results:
            self._stats.faults_fired += 1
            await self._ws.send('{"type": "Results", "channel_index": [0, 1], "start": ')
        if self._results_sent == faults.drop_after_results:
            self._stats.faults_fired += 1
            self._ws.transport.abort()

    def _results(self, span: _Span, result: DecodeResult | None, from_finalize: bool) -> str:
        text = "" if result is None else result.text
        confidence = 0.0 if result is None or result.confidence is None else result.confidence
        confidence = min(1.0, max(0.0, confidence))
        words = text.split()
        step_ms = (span.speech_end_ms - span.speech_start_ms) / max(1, len(words))
        word_items = [
            {"word": word, "start": (span.speech_start_ms + i * step_ms) / 1000,
             "end": (span.speech_start_ms + (i + 1) * step_ms) / 1000,
             "confidence": confidence, "punctuated_word": word}
            for i, word in enumerate(words)
        ]
        if words:
            self._words_since_utterance_end = True
        stats = self._stats
        if not span.is_final:
            stats.interim_results += 1
        else:
            stats.final_results += 1
            stats.from_finalize += from_finalize
        return _json({
            "type": "Results", "channel_index": [0, 1],
            "duration": (span.end_ms - span.start_ms) / 1000, "start": span.start_ms / 1000,
            "is_final": span.is_final, "speech_final": span.speech_final,
            "from_finalize": from_finalize,
            "channel": {"alternatives": [
                {"transcript": text, "confidence": confidence, "words": word_items},
            ]},
            "metadata": {
                "request_id": self._request_id, "model_uuid": self._model_uuid,
                "model_info": {"name": self._params.model, "version": "emulated",
                               "arch": "pocketsphinx"},
            },
        })

    def _utterance_end(self, last_voiced_end_ms: int) -> str | None:
        if not self._words_since_utterance_end:  # Deepgram's gap is between words
            return None
        self._words_since_utterance_end = False
        self._stats.utterance_ends += 1
        return _json({"type": "UtteranceEnd", "channel": [0, 1],
                      "last_word_end": last_voiced_end_ms / 1000})


def _control_type(text: str) -> str | None:
    try:
        message = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    kind = message.get("type") if isinstance(message, dict) else None
    return kind if kind in ("KeepAlive", "Finalize", "CloseStream") else None


def _json(message: dict[str, Any]) -> str:
    return orjson.dumps(message).decode()
