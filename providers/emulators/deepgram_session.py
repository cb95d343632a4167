"""One live-listen connection of the Deepgram emulator: control frames, results, faults.

``ListenSession.run()`` owns a WebSocket for its life: the receive loop feeds audio to the
``Segmenter`` through WebRTC VAD and answers ``KeepAlive``/``Finalize``/``CloseStream`` and
``Configure`` (keyterms: ``ConfigureSuccess`` or ``ConfigureFailure``, as the module's
``_configure`` says; the keyterms are kept, not used by the recogniser); one
sender task emits the queued messages in order, each once its decode (the shared offline
recogniser) is done and its delay (``result_delay_ms``, ``finalize_delay_ms``, jitter) has
passed. ``Faults`` injects misbehaviour after a number of results; ``EmulatorStats`` counts what
every session did. See ``providers/emulators/deepgram.py`` for the protocol as a whole.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from slotline.audio.mulaw import ulaw_to_pcm16
from slotline.audio.vad import WebRtcVad
from slotline.providers.base import SpeechHints
from slotline.providers.emulators.deepgram_query import ListenParams
from slotline.providers.emulators.deepgram_segmenter import (
    GapElapsed,
    Segmenter,
    SegmentEvent,
    Span,
    SpeechBegan,
)
from slotline.providers.errors import ProviderError
from slotline.providers.stt import deepgram_wire as wire
from slotline.providers.stt._sphinx_wire import DecodeResult
from slotline.providers.stt.deepgram_keyterms import (
    ALREADY_PENDING,
    LIMIT_EXCEEDED,
    NOT_SUPPORTED,
    estimated_tokens,
    supports_keyterms,
)

if TYPE_CHECKING:
    from slotline.providers.emulators.deepgram import DeepgramEmulator

logger = logging.getLogger(__name__)

_FRAME_BYTES = 160  # 20 ms of 8 kHz mu-law
_NO_HINTS = SpeechHints()
_GONE = (1006, "")  # the client went away: nothing to send
_MORE = (0, "")  # a frame handled, keep reading (compared by identity, like _GONE)
_SILENT_PCM16 = bytes(2 * _FRAME_BYTES)  # 20 ms of digital silence (mu-law 0xFF/0x7F decoded)
_SILENT_ULAW = (b"\xff" * _FRAME_BYTES, b"\x7f" * _FRAME_BYTES)
# WebRTC VAD says no to digital silence once its hang-over has run out, and stays there: after
# this many such frames in a row a silent frame skips the decode and the VAD (most frames of a
# call while the agent talks). Checked over the caller recordings: the same decisions.
_SETTLED_SILENT_FRAMES = 2


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
    configures: int = 0
    configure_failures: dict[str, int] = field(default_factory=dict)  # code -> count
    close_streams: int = 0
    closes: dict[int, int] = field(default_factory=dict)  # close code sent -> count
    faults_fired: int = 0


@dataclass(slots=True)
class _Outgoing:
    """One server message: sent once its decode (if any) is done and ``ready_at`` (loop
    time) has passed; ``build`` turns the decode result into the text frame (None: skip)."""

    ready_at: float
    decode: asyncio.Future[DecodeResult] | None
    build: Callable[[DecodeResult | None], str | None]
    is_result: bool = False


class ListenSession:
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
        self._segmenter = Segmenter(params, owner.interim_every_ms, owner.interim_pause_ms)
        self._vad = WebRtcVad(aggressiveness=2)
        self._partial = bytearray()  # audio bytes short of a whole frame
        self._silent_run = 0  # digital-silence frames in a row the VAD said no to
        self._sha256 = hashlib.sha256()
        self._outbox: asyncio.Queue[_Outgoing | None] = asyncio.Queue()
        self._interim_decode: asyncio.Future[DecodeResult] | None = None
        self._request_id = str(uuid.uuid4())
        self._model_uuid = str(uuid.uuid5(uuid.NAMESPACE_URL, params.model))
        self._results_sent = 0
        self._words_since_utterance_end = False
        self.keyterms: tuple[str, ...] = params.keyterms  # in effect (the query's at first)
        self._configure_pending = False

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
        """Returns the close frame to send, or None after a CloseStream.

        One idle timer per ``idle_timeout_s``, not one per message (a Slotline call sends ~5
        a second: 200 ms batches, and KeepAlives): when it fires, the session is idle only if
        no frame came since it was set; otherwise the wait starts again from the last frame.
        ``recv()`` is cancellation-safe (websockets' asyncio API), so a timer that fires as a
        frame arrives loses nothing.
        """
        idle_s, loop = self._owner.idle_timeout_s, self._loop
        last_frame_at = loop.time()
        while True:
            try:
                async with asyncio.timeout_at(last_frame_at + idle_s):
                    while True:
                        message = await self._ws.recv()
                        last_frame_at = loop.time()
                        outcome = self._on_message(message)
                        if outcome is not _MORE:
                            return outcome
            except TimeoutError:
                if loop.time() - last_frame_at >= idle_s:
                    return 1011, "NET-0001: no audio or text frame received within the timeout"
            except ConnectionClosed:
                return _GONE

    def _on_message(self, message: str | bytes) -> tuple[int, str] | None:
        """One client frame; ``_MORE`` to keep reading, else what ``_receive_loop`` returns."""
        if isinstance(message, bytes):
            if not message:  # the legacy way of closing a stream
                self._close_stream()
                return None
            self._audio(message)
            return _MORE
        kind, control = _control(message)
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
        elif kind == "Configure":
            return self._configure(control)
        else:
            return 1008, "DATA-0000: the text frame is not a known control message"
        return _MORE

    def _configure(self, message: dict[str, Any]) -> tuple[int, str] | None:
        """A ``Configure``: answered with exactly one ``ConfigureSuccess`` or
        ``ConfigureFailure`` (deepgram-sdk 7.17's ListenV1Configure* types: keyterms only on
        Nova-3, within the token limit (``keyterm_limit``, counted by the client's estimate),
        one ``Configure`` awaiting its answer at a time). A body
        that is not one (keyterms not a list of strings, features not names to booleans) is a
        protocol error, as an unknown text frame is."""
        keyterms, features = message.get("keyterms"), message.get("features")
        if keyterms is not None and not wire.is_string_list(keyterms):
            return 1008, "DATA-0000: Configure keyterms must be an array of strings"
        if features is not None and not (
            isinstance(features, dict) and all(isinstance(v, bool) for v in features.values())
        ):
            return 1008, "DATA-0000: Configure features must map names to booleans"
        self._stats.configures += 1
        code = ""
        if self._configure_pending:
            code = ALREADY_PENDING
        elif keyterms is not None and not supports_keyterms(self._params.model):
            code = NOT_SUPPORTED
        elif keyterms is not None and (
            sum(map(estimated_tokens, keyterms)) > self._owner.keyterm_limit
        ):
            code = LIMIT_EXCEEDED
        if code:
            self._stats.configure_failures[code] = self._stats.configure_failures.get(code, 0) + 1
            text = _json({"type": "ConfigureFailure", "request_id": self._request_id,
                          "code": code, "description": _CONFIGURE_FAILURES[code]})
            self._outbox.put_nowait(_Outgoing(self._loop.time(), None, lambda _: text))
            return _MORE
        self._configure_pending = True
        answer: dict[str, Any] = {"type": "ConfigureSuccess", "request_id": self._request_id}
        if keyterms is not None:
            answer["keyterms"] = keyterms

        def applied(_: DecodeResult | None) -> str:
            self._configure_pending = False
            if keyterms is not None:
                self.keyterms = tuple(keyterms)
            return _json(answer)

        self._outbox.put_nowait(_Outgoing(self._loop.time(), None, applied))
        return _MORE

    def _close_stream(self) -> None:
        self._stats.close_streams += 1
        if self._segmenter.unfinalized_ms > 0:
            self._queue_result(self._segmenter.flush(speech_final=False), from_finalize=False)

    def _audio(self, data: bytes) -> None:
        self._stats.audio_bytes += len(data)
        self._sha256.update(data)
        buffer = self._partial
        buffer += data
        linear16 = self._params.linear16
        frame_bytes = 2 * _FRAME_BYTES if linear16 else _FRAME_BYTES
        whole = len(buffer) - len(buffer) % frame_bytes
        for offset in range(0, whole, frame_bytes):
            frame = bytes(buffer[offset : offset + frame_bytes])
            silent = frame == _SILENT_PCM16 if linear16 else frame in _SILENT_ULAW
            if silent and self._silent_run >= _SETTLED_SILENT_FRAMES:
                pcm16, voiced = _SILENT_PCM16, False
            else:
                pcm16 = frame if linear16 else ulaw_to_pcm16(frame)
                voiced = self._vad.is_speech(pcm16)
                self._silent_run = self._silent_run + 1 if silent and not voiced else 0
            for event in self._segmenter.push(pcm16, voiced):
                self._on_event(event)
        del buffer[:whole]

    def _on_event(self, event: SegmentEvent) -> None:
        if isinstance(event, SpeechBegan):
            if self._params.vad_events:
                self._stats.speech_started += 1
                text = _json({"type": "SpeechStarted", "channel": [0, 1],
                              "timestamp": event.at_ms / 1000})
                self._outbox.put_nowait(_Outgoing(self._loop.time(), None, lambda _: text))
        elif isinstance(event, GapElapsed):
            self._outbox.put_nowait(_Outgoing(
                self._loop.time() + self._owner.result_delay_s, None,
                lambda _: self._utterance_end(event.last_voiced_end_ms),
            ))
        elif event.is_final or event.at_pause:
            self._queue_result(event, from_finalize=False)
        elif self._interim_decode is None or self._interim_decode.done():
            # Interims re-decode the whole partial utterance; skip a periodic one while a
            # decode runs (the one at a pause always goes: it carries the latest words).
            self._queue_result(event, from_finalize=False)

    def _queue_result(
        self, span: Span, *, from_finalize: bool, delay_s: float | None = None
    ) -> None:
        decode = None if span.pcm16 is None else self._submit(span.pcm16)
        if delay_s is None:
            delay_s = self._owner.result_delay_s
        if not span.is_final:
            self._interim_decode = decode
            delay_s = self._owner.interim_delay_s
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

    def _results(self, span: Span, result: DecodeResult | None, from_finalize: bool) -> str:
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


def _control(text: str) -> tuple[str | None, dict[str, Any]]:
    """The control message's type (None: not one this emulator knows) and its body."""
    try:
        message = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None, {}
    if not isinstance(message, dict):
        return None, {}
    kind = message.get("type")
    return (kind if kind in _CONTROL_TYPES else None), message


_CONTROL_TYPES = frozenset(("KeepAlive", "Finalize", "CloseStream", "Configure"))
_CONFIGURE_FAILURES = {
    NOT_SUPPORTED: "keyterms can only be updated on Nova-3 models",
    LIMIT_EXCEEDED: "keyterms exceed the keyterm token limit",
    ALREADY_PENDING: "another Configure is awaiting its response",
}


def _json(message: dict[str, Any]) -> str:
    return orjson.dumps(message).decode()
