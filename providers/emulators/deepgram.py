"""A local server speaking Deepgram's live-listen protocol, with real transcripts.

``wss://api.deepgram.com/v1/listen`` as documented (../shared/PROTOCOLS.md, the asyncapi spec in
../shared/specs/deepgram/) on ``ws://127.0.0.1:PORT/v1/listen``:

* Handshake: ``Authorization: Token <key>`` (HTTP 401 otherwise); the query is checked against
  the spec's parameter table (``QUERY_PARAMETERS``, kept equal to the spec by a test): unknown
  names, values outside an enum, repeats of single-valued names → HTTP 400. Failed upgrades carry
  Deepgram's JSON error body and ``dg-error`` / ``dg-request-id`` headers. This emulator decodes
  only 8 kHz mono ``encoding=mulaw`` or ``linear16`` (anything else is a 400 saying so).
* Binary frames are audio. WebRTC VAD segments it; each utterance is decoded by the offline
  recogniser (``LocalSpeechToText``, no hints → its domain LM). ``SpeechStarted`` on onset
  (``vad_events``), interim ``Results`` every ``interim_every_ms`` of audio while speech goes
  on and once ``interim_pause_ms`` of silence follow new words (re-decoding the partial
  utterance; a periodic one is skipped while an interim decode runs), a final with
  ``speech_final`` after ``endpointing`` ms of silence, ``UtteranceEnd`` after
  ``utterance_end_ms`` without words (when spans are cut: ``deepgram_segmenter``).
  Word timings are spread evenly over the voiced span (pocketsphinx gives none here); the
  formatting options (punctuate, smart_format, ...) are accepted and not applied.
* Text frames: ``KeepAlive``; ``Finalize`` → a final with ``from_finalize: true`` now (an empty
  one when nothing is pending); ``CloseStream`` (or a legacy empty binary frame) → final
  results, ``Metadata``, close 1000. Anything else → close 1008 ``DATA-0000`` (Deepgram's
  documented code for client data it cannot use; what it does with bad *text* is unverified).
  No frame for ``idle_timeout_s`` → close 1011 ``NET-0001``.

Knobs: ``finalize_delay_ms`` (Finalize → its result), ``result_delay_ms`` (audio → finals),
``interim_delay_ms`` (audio → interims: how far the interim transcript trails the caller;
default the same as finals), ``jitter_ms`` (uniform, added to all), and :class:`Faults` for
tests. A result is sent once its decode is done and its delay (counted from the end of its
audio) has passed, whichever is later. ``cloud()`` gives the realistic profile the bench uses.

This module is the server (handshake, lifecycle, knobs); the pieces live beside it:
``deepgram_query`` (the spec's query table), ``deepgram_segmenter`` (audio → utterance spans,
sans-I/O) and ``deepgram_session`` (one connection: control frames, results, faults, stats).
"""

from __future__ import annotations

import logging
import random
import uuid
from http import HTTPStatus
from typing import Any

import orjson
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from slotline.audio.framing import FRAME_MS
from slotline.providers.base import ResourceContext
from slotline.providers.emulators.deepgram_query import (
    QUERY_PARAMETERS,
    BadRequest,
    ListenParams,
    parse_listen_query,
)
from slotline.providers.emulators.deepgram_session import EmulatorStats, Faults, ListenSession
from slotline.providers.stt.deepgram import RedactAuthorization
from slotline.providers.stt.local import LocalSpeechToText

__all__ = [
    "FRAME_MS",
    "QUERY_PARAMETERS",
    "BadRequest",
    "DeepgramEmulator",
    "EmulatorStats",
    "Faults",
    "ListenParams",
    "parse_listen_query",
]

logger = logging.getLogger(__name__)
_ws_logger = logging.getLogger(f"{__name__}.websocket")  # logs handshakes at DEBUG
_ws_logger.addFilter(RedactAuthorization())


class DeepgramEmulator(ResourceContext):
    """``async with DeepgramEmulator() as dg: connect to dg.url`` (ws://127.0.0.1:PORT)."""

    def __init__(
        self,
        *,
        api_key: str | None = "emulator-key",  # None: any non-empty key is accepted
        recognizer: LocalSpeechToText | None = None,  # shared; else the emulator owns one
        finalize_delay_ms: float = 0.0,
        result_delay_ms: float = 0.0,
        interim_delay_ms: float | None = None,  # None: result_delay_ms
        jitter_ms: float = 0.0,
        interim_every_ms: int = 1000,  # Deepgram's documented cadence: about one a second
        interim_pause_ms: int | None = 100,  # an interim this long into a pause; None: off
        idle_timeout_s: float = 10.0,
        keyterm_limit: int = 500,  # tokens per keyterm list (Deepgram's; lower: a stricter count)
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
        self.interim_delay_s = (
            self.result_delay_s if interim_delay_ms is None else interim_delay_ms / 1000
        )
        self.jitter_s = jitter_ms / 1000
        self.interim_every_ms = interim_every_ms
        self.interim_pause_ms = interim_pause_ms
        self.idle_timeout_s = idle_timeout_s
        self.keyterm_limit = keyterm_limit
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
        await ListenSession(self, ws, params, faults).run()
