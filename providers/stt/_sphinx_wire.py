"""The messages between ``LocalSpeechToText`` and its decoder processes, and their framing.

Sans-I/O: bytes in, typed messages out, and back. A frame is an 8-byte header (two
little-endian uint32: JSON length, payload length), a JSON object whose ``t`` names the
message, then the payload (the utterance's 16-bit PCM for a request, empty otherwise).

    parent -> worker   DecodeRequest
    worker -> parent   WorkerReady (once, after loading), then DecodeResult | DecodeFailed
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Literal

import orjson

HEADER = struct.Struct("<II")
MAX_JSON_BYTES = 1 << 20  # hints are a few KB; anything near this is a broken stream
MAX_PAYLOAD_BYTES = 1 << 26  # 64 MiB = over an hour of 8 kHz audio


@dataclass(frozen=True, slots=True)
class DecodeRequest:
    """Recognise one utterance of 8 kHz 16-bit mono PCM, expecting ``phrases``/``grammar``."""

    request_id: int
    pcm16: bytes
    phrases: tuple[str, ...] = ()
    grammar: str | None = None
    consent: bool = False  # ``SpeechHints.consent``


@dataclass(frozen=True, slots=True)
class DecodeResult:
    """``source`` says which model produced ``text``: the hints' grammar or a language model."""

    request_id: int
    text: str
    confidence: float | None
    source: Literal["grammar", "lm", "none"]
    decode_ms: float


@dataclass(frozen=True, slots=True)
class DecodeFailed:
    request_id: int
    message: str


@dataclass(frozen=True, slots=True)
class WorkerReady:
    init_ms: float


Message = DecodeRequest | DecodeResult | DecodeFailed | WorkerReady


class WireError(ValueError):
    """A frame that does not decode to a known message."""


def encode(message: Message) -> bytes:
    """One complete frame for ``message``."""
    payload = b""
    match message:
        case DecodeRequest(request_id, pcm16, phrases, grammar, consent):
            body: dict[str, object] = {
                "t": "request", "id": request_id, "phrases": list(phrases), "grammar": grammar,
                "consent": consent,
            }
            payload = pcm16
        case DecodeResult(request_id, text, confidence, source, decode_ms):
            body = {
                "t": "result", "id": request_id, "text": text, "confidence": confidence,
                "source": source, "decode_ms": decode_ms,
            }
        case DecodeFailed(request_id, text):
            body = {"t": "failed", "id": request_id, "message": text}
        case WorkerReady(init_ms):
            body = {"t": "ready", "init_ms": init_ms}
    data = orjson.dumps(body)
    return HEADER.pack(len(data), len(payload)) + data + payload


def parse_header(header: bytes) -> tuple[int, int]:
    """``(json_length, payload_length)`` of the frame that starts with ``header``."""
    if len(header) != HEADER.size:
        raise WireError(f"frame header must be {HEADER.size} bytes, got {len(header)}")
    json_length, payload_length = HEADER.unpack(header)
    if json_length > MAX_JSON_BYTES or payload_length > MAX_PAYLOAD_BYTES:
        raise WireError(f"frame too large: {json_length} + {payload_length} bytes")
    return json_length, payload_length


def decode(body: bytes, payload: bytes) -> Message:
    """The message of one frame, from its JSON ``body`` and ``payload``."""
    try:
        fields = orjson.loads(body)
        kind = fields["t"]
        if kind == "request":
            grammar = fields["grammar"]
            return DecodeRequest(
                request_id=int(fields["id"]),
                pcm16=payload,
                phrases=tuple(str(phrase) for phrase in fields["phrases"]),
                grammar=None if grammar is None else str(grammar),
                consent=fields.get("consent") is True,
            )
        if kind == "result":
            source = fields["source"]
            if source not in ("grammar", "lm", "none"):
                raise WireError(f"unknown result source {source!r}")
            confidence = fields["confidence"]
            return DecodeResult(
                request_id=int(fields["id"]),
                text=str(fields["text"]),
                confidence=None if confidence is None else float(confidence),
                source=source,
                decode_ms=float(fields["decode_ms"]),
            )
        if kind == "failed":
            return DecodeFailed(request_id=int(fields["id"]), message=str(fields["message"]))
        if kind == "ready":
            return WorkerReady(init_ms=float(fields["init_ms"]))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, WireError):
            raise
        raise WireError(f"malformed frame: {exc}") from exc
    raise WireError(f"unknown message type {kind!r}")
