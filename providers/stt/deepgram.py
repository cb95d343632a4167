"""Deepgram live speech-to-text over a raw WebSocket (``stt.provider: deepgram``).

One connection per call to ``{base_url}/v1/listen`` (wire format: ``deepgram_wire``).

* Audio: ``AudioChunk.ulaw`` goes out as-is (mu-law 8 kHz). Every frame is sent, silence
  included: Deepgram's endpointer (``speech_final``), ``UtteranceEnd`` and the timestamps we
  use to acknowledge audio all run on audio time, and Twilio delivers inbound audio all call
  long (the agent speaking included), so silence costs nothing extra to decide. ``KeepAlive``
  goes out only when no audio has been sent for ``keepalive_s`` (the session stopped pushing:
  before the first media frame, on hold). Frames are sent in batches of ``batch_ms`` (200 ms,
  ten frames: each send is most of this path's CPU, and Deepgram asks for 20-250 ms a
  message); the batch is flushed at once at every pause and when a turn is finalized, so
  batching never delays a final, and a partial batch the session stopped adding to goes out
  within 0.2 s. From 60 to 200 ms (``slotline bench --profile cloud --calls 50 --server-cpus
  0``): server 7.19 -> 6.86 ms CPU per call-second, the emulated Deepgram 2.37 -> 1.72 (the
  harness's), turn latency p50/p95 402/537 -> 401/538 ms; ``bench/stt_forward_cost.py``:
  0.90 -> 0.39 ms per call-second. No permessage-deflate:
  mu-law barely compresses, and zlib cost more CPU per send than the rest of it
  (bench/stt_forward_cost.py).
* Turns: the session's VAD ends the turn and calls ``finalize()``: we send ``Finalize``
  behind the audio pushed so far and wait for the result marked ``from_finalize``. The
  ``is_final`` segments received since the previous turn, joined, are the turn's text.
  ``pause()`` (the caller silent ~200 ms inside the turn) sends that ``Finalize`` early, so
  a turn that ends without more speech has its text already (``finalize()`` returns it with
  no second round trip; rules in ``deepgram_turn``).
  Past ``finalize_timeout_s`` the turn returns what it has (finals + the latest interim,
  the ``ProviderTimeout`` reported to ``on_error``) or raises ``ProviderTimeout`` when it has
  nothing, and the connection is replaced (a stalled socket is not trusted again).
* Interims: ``events()`` yields ``Heard`` (the turn so far: finals + the current interim) and
  ``SpeechEnded`` (``speech_final`` on words, ``UtteranceEnd``), vendor-neutral, for the turn
  detector. ``interim()`` yields the turn so far as ``Transcript(is_final=False)`` on every
  result, and the turn's final transcript at ``finalize()``; ``messages()`` the typed server
  messages themselves.
* Drops: audio is kept until a final result covers it (``start + duration`` on that
  connection's clock) or the turn is finalized, at most ``max_replay_s``. A dropped socket
  (or a server close we did not ask for) reconnects at once, then with backoff, and replays
  the unacknowledged audio first, re-sending a pending ``Finalize`` at its place in the audio.
  When and how often is ``reconnect`` (``providers/reconnect.py``, ``DEEPGRAM`` by default);
  past its failures in a row the stream fails.
* Keyterms: on a Nova-3 model with ``keyterms`` (the server's ``stt.options.keyterms``,
  off by default), each question's rare words — the names at the name question, the options
  of a choice — replace the stream's keyterms with a ``Configure`` message, one at a time and
  with the next batch of audio (rules: ``deepgram_keyterms``). A ``ConfigureFailure`` is logged
  and the call goes on; one that says the model or the limit refuses keyterms stops them for
  the stream.
* Errors: HTTP 401/403 on the upgrade → ``ProviderAuthError`` (never retried); other
  upgrade failures → ``ProviderError`` (retryable for 429/5xx and network errors). Errors
  handled here (drops, malformed messages, timeouts answered with a partial turn) are
  counted on the stream and reported to ``on_error``; the API key is never logged.

Why not ``deepgram-sdk`` (v7, the design names it; tests/contract/test_deepgram_sdk.py runs it
against our emulator): measured with ``python -m bench.sdk_client_cost`` (10 s calls of caller
speech in real-time 20 ms frames, the emulator in another process, December 2026), the SDK's
client costs 3x the CPU of ours (97 vs 30 ms a call, 194 vs 60 us a frame) and its hand-off on
the call's 20 ms tick is an ``await`` of a socket send per frame (median 119 us, p99 2.9 ms)
where ``push_audio`` queues (median 16 us, p99 28 us); Finalize -> final is the same (97 vs
99 ms, the recogniser's time). It is asyncio-native, but it rides on websockets' legacy client
(deprecated since websockets 14), sends every frame on its own, and leaves reconnect, replay of
unacknowledged audio, KeepAlive timing and turn assembly to the caller, which is what this
module and ``deepgram_stream`` are. The wire codec (``deepgram_wire``) stays shared with the
emulator.

This module opens the connections; ``deepgram_stream.DeepgramSttStream`` is the stream.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable

from slotline.providers.errors import ConfigError, ProviderAuthError, ProviderError
from slotline.providers.extras import missing
from slotline.providers.reconnect import DEEPGRAM, ReconnectPolicy, retryable_status
from slotline.providers.stt import deepgram_wire as wire
from slotline.providers.stt.deepgram_keyterms import supports_keyterms

try:  # websockets, here and in deepgram_stream
    from websockets.asyncio.client import ClientConnection, connect
    from websockets.exceptions import InvalidHandshake, InvalidStatus, InvalidURI

    from slotline.providers.stt.deepgram_stream import BYTES_PER_S, PROVIDER, DeepgramSttStream
except ModuleNotFoundError as exc:
    raise missing(exc, "cloud", "stt.provider: deepgram") from None

__all__ = ["PROVIDER", "DeepgramSpeechToText", "DeepgramSttStream", "RedactAuthorization"]


class RedactAuthorization(logging.Filter):
    """websockets logs handshake headers at DEBUG; keep the key out of every log."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 2 and str(args[0]).lower() == "authorization":
            record.args = (args[0], "Token [redacted]")
        return True


_ws_logger = logging.getLogger(f"{__name__}.websocket")
_ws_logger.addFilter(RedactAuthorization())


class DeepgramSpeechToText:
    """The SpeechToText provider; holds no shared state (each call opens its own socket)."""

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str = "wss://api.deepgram.com",
        model: str = "nova-3",
        endpointing_ms: int = 300,
        utterance_end_ms: int = 1000,
        keepalive_s: float = 4.0,
        batch_ms: int = 200,
        finalize_timeout_s: float = 2.0,
        connect_timeout_s: float = 5.0,
        reconnect: ReconnectPolicy = DEEPGRAM,
        seed: int | None = None,
        max_replay_s: float = 30.0,
        smart_format: bool = True,
        punctuate: bool = True,
        language: str | None = None,
        keyterms: bool = True,
        on_error: Callable[[ProviderError], None] | None = None,
    ) -> None:
        if not base_url.startswith(("ws://", "wss://")):
            raise ConfigError("stt", "base_url", f"must start with ws:// or wss://: {base_url!r}")
        if not api_key:
            raise ConfigError("environment", "DEEPGRAM_API_KEY", "is empty")
        self._authorization = f"Token {api_key}"
        options = wire.ListenOptions(
            model=model, endpointing_ms=endpointing_ms, utterance_end_ms=utterance_end_ms,
            smart_format=smart_format, punctuate=punctuate, language=language,
        )
        self.url = wire.listen_url(base_url, options)
        self.keepalive_s = keepalive_s
        self.batch_bytes = max(1, batch_ms * BYTES_PER_S // 1000)
        self.finalize_timeout_s = finalize_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.reconnect = reconnect
        self.random = random.Random(seed).random  # the reconnect policy's jitter
        self.max_replay_bytes = int(max_replay_s * BYTES_PER_S)
        # each question's vocabulary as keyterms, mid-stream (``deepgram_keyterms``)
        self.keyterm_updates = keyterms and supports_keyterms(model)
        self.on_error = on_error

    def open_stream(self, *, call_sid: str) -> DeepgramSttStream:
        return DeepgramSttStream(self, call_sid)

    async def connect(self) -> ClientConnection:
        """Open one listen socket; failures mapped to the error tree."""
        try:
            return await connect(
                self.url,
                additional_headers={"Authorization": self._authorization},
                open_timeout=self.connect_timeout_s,
                close_timeout=1.0,
                max_size=1 << 20,
                compression=None,
                logger=_ws_logger,
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            detail = exc.response.headers.get("dg-error") or exc.response.reason_phrase
            if status in (401, 403):
                raise ProviderAuthError(PROVIDER, f"HTTP {status}: {detail}") from None
            raise ProviderError(
                PROVIDER, f"HTTP {status}: {detail}", retryable=retryable_status(status)
            ) from None
        except InvalidURI as exc:
            raise ProviderError(PROVIDER, f"bad base_url: {exc}", retryable=False) from None
        except (OSError, TimeoutError, InvalidHandshake) as exc:
            raise ProviderError(
                PROVIDER, f"cannot connect: {type(exc).__name__}: {exc}", retryable=True
            ) from None
