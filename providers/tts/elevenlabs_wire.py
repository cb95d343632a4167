"""Sans-I/O codec for ElevenLabs' text-to-speech WebSockets (``stream-input`` and
``multi-stream-input``), both directions, so the adapter and the emulator share one reading.

Client -> server: one JSON object whose fields combine freely (the vendor's schema is a single
object with optional flags): ``text``, ``context_id``, ``flush``, ``close_context``,
``close_socket``, and on a context's first message ``voice_settings`` and
``generation_config``. Server -> client: ``{"audio": b64, "normalizedAlignment": {...},
"contextId": ...}``, ``{"isFinal": true, "contextId": ...}`` (also spelled ``is_final``), and
an error report ``{"message": ..., "error": ..., "code": ...}`` before the server closes.

Alignment times on the wire are relative to the audio chunk they arrive with.
Nothing here touches a socket; anything malformed raises ``ProtocolError``.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeGuard

import orjson

from slotline.providers.errors import ProtocolError


@dataclass(frozen=True, slots=True)
class VoiceSettings:
    stability: float = 0.5
    similarity_boost: float = 0.75
    style: float = 0.0
    use_speaker_boost: bool = True
    speed: float = 1.0


@dataclass(frozen=True, slots=True)
class ClientMessage:
    """One client message. ``text=None`` means the field is absent (control messages)."""

    text: str | None = None
    context_id: str | None = None
    flush: bool = False
    close_context: bool = False
    close_socket: bool = False
    voice_settings: VoiceSettings | None = None
    chunk_length_schedule: tuple[int, ...] | None = None


@dataclass(frozen=True, slots=True)
class Alignment:
    """Characters with start times and durations in milliseconds."""

    chars: tuple[str, ...]
    char_start_times_ms: tuple[int, ...]
    char_durations_ms: tuple[int, ...]

    @property
    def text(self) -> str:
        return "".join(self.chars)

    def shifted(self, offset_ms: int) -> Alignment:
        """The same alignment with every start moved by ``offset_ms``."""
        starts = tuple(start + offset_ms for start in self.char_start_times_ms)
        return Alignment(self.chars, starts, self.char_durations_ms)


@dataclass(frozen=True, slots=True)
class AudioReceived:
    context_id: str | None
    audio: bytes
    alignment: Alignment | None  # times relative to this chunk


@dataclass(frozen=True, slots=True)
class ContextFinished:
    context_id: str | None


@dataclass(frozen=True, slots=True)
class ErrorReported:
    """The server reported an error (it closes the socket after it)."""

    message: str
    error: str | None
    code: int | None


ServerEvent = AudioReceived | ContextFinished | ErrorReported


# ---- client messages -----------------------------------------------------------------------


def encode_client_message(message: ClientMessage) -> str:
    body: dict[str, object] = {}
    if message.text is not None:
        body["text"] = message.text
    if message.context_id is not None:
        body["context_id"] = message.context_id
    if message.voice_settings is not None:
        settings = message.voice_settings
        body["voice_settings"] = {
            "stability": settings.stability,
            "similarity_boost": settings.similarity_boost,
            "style": settings.style,
            "use_speaker_boost": settings.use_speaker_boost,
            "speed": settings.speed,
        }
    if message.chunk_length_schedule is not None:
        body["generation_config"] = {"chunk_length_schedule": list(message.chunk_length_schedule)}
    for flag in ("flush", "close_context", "close_socket"):
        if getattr(message, flag):
            body[flag] = True
    return orjson.dumps(body).decode()


def parse_client_message(data: str | bytes) -> ClientMessage:
    body = _load_object(data, "client")
    text = body.get("text")
    if text is not None and not isinstance(text, str):
        raise ProtocolError("elevenlabs.bad_text", "text must be a string")
    context_id = _optional_str(body, "context_id") or _optional_str(body, "contextId")
    settings = body.get("voice_settings")
    config = body.get("generation_config")
    return ClientMessage(
        text=text,
        context_id=context_id,
        flush=_flag(body, "flush"),
        close_context=_flag(body, "close_context"),
        close_socket=_flag(body, "close_socket"),
        voice_settings=None if settings is None else _voice_settings(settings),
        chunk_length_schedule=None if config is None else _schedule(config),
    )


def _voice_settings(value: object) -> VoiceSettings:
    if not isinstance(value, Mapping):
        raise ProtocolError("elevenlabs.bad_voice_settings", "voice_settings must be an object")
    defaults = VoiceSettings()

    def number(name: str, default: float) -> float:
        raw = value.get(name, default)
        if not _is_number(raw):
            raise ProtocolError("elevenlabs.bad_voice_settings", f"{name} must be a number")
        return float(raw)

    boost = value.get("use_speaker_boost", defaults.use_speaker_boost)
    if not isinstance(boost, bool):
        raise ProtocolError("elevenlabs.bad_voice_settings", "use_speaker_boost must be boolean")
    return VoiceSettings(
        stability=number("stability", defaults.stability),
        similarity_boost=number("similarity_boost", defaults.similarity_boost),
        style=number("style", defaults.style),
        use_speaker_boost=boost,
        speed=number("speed", defaults.speed),
    )


def _schedule(value: object) -> tuple[int, ...] | None:
    if not isinstance(value, Mapping):
        raise ProtocolError("elevenlabs.bad_generation_config", "must be an object")
    raw = value.get("chunk_length_schedule")
    if raw is None:
        return None
    if not isinstance(raw, list) or not raw or not all(_is_number(item) for item in raw):
        raise ProtocolError("elevenlabs.bad_generation_config", "chunk_length_schedule")
    return tuple(int(item) for item in raw)


# ---- server messages -----------------------------------------------------------------------


def encode_audio(context_id: str | None, audio: bytes, alignment: Alignment | None) -> str:
    body: dict[str, object] = {"audio": base64.b64encode(audio).decode("ascii")}
    if alignment is not None:
        body["normalizedAlignment"] = {
            "chars": list(alignment.chars),
            "charStartTimesMs": list(alignment.char_start_times_ms),
            "charDurationsMs": list(alignment.char_durations_ms),  # the current spelling
        }
    if context_id is not None:
        body["contextId"] = context_id
    return orjson.dumps(body).decode()


def encode_final(context_id: str | None) -> str:
    body: dict[str, object] = {"isFinal": True}
    if context_id is not None:
        body["contextId"] = context_id
    return orjson.dumps(body).decode()


def encode_error(message: str, error: str, code: int) -> str:
    return orjson.dumps({"message": message, "error": error, "code": code}).decode()


def parse_server_message(data: str | bytes) -> tuple[ServerEvent, ...]:
    """Events in one server message, in order: audio first, then the end of its context.

    A message with neither audio nor a final flag (the service sends ``"audio": null`` with
    nothing else at times) gives no events."""
    body = _load_object(data, "server")
    context_id = _optional_str(body, "contextId") or _optional_str(body, "context_id")
    if "error" in body or ("message" in body and "audio" not in body):
        message = body.get("message")
        error = body.get("error")
        code = body.get("code")
        return (
            ErrorReported(
                message=str(message) if message is not None else "",
                error=error if isinstance(error, str) else None,
                code=code if isinstance(code, int) and not isinstance(code, bool) else None,
            ),
        )
    events: list[ServerEvent] = []
    audio_b64 = body.get("audio")
    if audio_b64 is not None:
        if not isinstance(audio_b64, str):
            raise ProtocolError("elevenlabs.bad_audio", "audio must be a base64 string")
        try:
            audio = base64.b64decode(audio_b64, validate=True)
        except (binascii.Error, ValueError):
            raise ProtocolError("elevenlabs.bad_audio", "audio is not valid base64") from None
        raw_alignment = body.get("normalizedAlignment") or body.get("alignment")
        alignment = None if raw_alignment is None else _alignment(raw_alignment)
        if audio:
            events.append(AudioReceived(context_id, audio, alignment))
    final = body.get("isFinal", body.get("is_final"))
    if final is not None and not isinstance(final, bool):
        raise ProtocolError("elevenlabs.bad_final", "isFinal must be boolean")
    if final:
        events.append(ContextFinished(context_id))
    return tuple(events)


# The durations' key is spelled three ways: ``charDurationsMs`` in the vendor's current AsyncAPI
# and SDK (elevenlabs 2.x, ``NormalizedAlignment``), ``charsDurationsMs`` in its older docs and on
# the wire as clients have observed it, ``chars_durations_ms`` in an older AsyncAPI. Read all.
_START_KEYS = ("charStartTimesMs", "char_start_times_ms", "charsStartTimesMs")
_DURATION_KEYS = ("charDurationsMs", "charsDurationsMs", "chars_durations_ms")


def _first(value: Mapping[str, object], keys: tuple[str, ...]) -> object:
    for key in keys:
        if key in value:
            return value[key]
    return None


def _alignment(value: object) -> Alignment:
    if not isinstance(value, Mapping):
        raise ProtocolError("elevenlabs.bad_alignment", "alignment must be an object")
    chars = value.get("chars")
    starts = _first(value, _START_KEYS)
    durations = _first(value, _DURATION_KEYS)
    if not (isinstance(chars, list) and isinstance(starts, list) and isinstance(durations, list)):
        raise ProtocolError("elevenlabs.bad_alignment", "chars and times must be lists")
    if not len(chars) == len(starts) == len(durations):
        raise ProtocolError("elevenlabs.bad_alignment", "chars and times differ in length")
    if not all(isinstance(char, str) for char in chars):
        raise ProtocolError("elevenlabs.bad_alignment", "chars must be strings")
    if not all(_is_number(item) for item in (*starts, *durations)):
        raise ProtocolError("elevenlabs.bad_alignment", "times must be numbers")
    return Alignment(
        tuple(chars), tuple(round(item) for item in starts), tuple(round(d) for d in durations)
    )


# ---- helpers -------------------------------------------------------------------------------


def _load_object(data: str | bytes, side: str) -> Mapping[str, object]:
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise ProtocolError("elevenlabs.not_json", f"{side} message is not JSON") from None
    if not isinstance(body, dict):
        raise ProtocolError("elevenlabs.not_object", f"{side} message is not a JSON object")
    return body


def _optional_str(body: Mapping[str, object], key: str) -> str | None:
    value = body.get(key)
    if value is None or isinstance(value, str):
        return value
    raise ProtocolError("elevenlabs.bad_context_id", f"{key} must be a string")


def _flag(body: Mapping[str, object], key: str) -> bool:
    value = body.get(key, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ProtocolError("elevenlabs.bad_flag", f"{key} must be boolean")
    return value


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)
