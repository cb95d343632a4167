"""Deepgram live-listen (``/v1/listen``) wire format: sans-I/O, tested without sockets.

Server text frames in, typed messages out (:func:`parse_server_message`); the client's control
frames and the listen URL out. Shapes follow ../shared/specs/deepgram/asyncapi.yml (there
``publish`` = server messages):

    Results       {type, channel_index, start, duration, is_final?, speech_final?, from_finalize?,
                   channel.alternatives[0]{transcript, confidence, words[{word, start, end,
                   confidence, punctuated_word?}]}, metadata{request_id, ...}}
    SpeechStarted {type, channel, timestamp}
    UtteranceEnd  {type, channel, last_word_end}
    Metadata      {type, request_id, sha256, created, duration, channels, transaction_key}
    ConfigureSuccess {type, request_id, keyterms?}      (the answer to a client ``Configure``,
    ConfigureFailure {type, request_id, code, description}   deepgram-sdk 7.17 ListenV1*)

A frame that is not JSON, or a known type with a missing or mistyped field, raises
:class:`ProtocolError`. A well-formed object of a type this module does not know becomes
:class:`UnknownMessage` (vendors add message types; that is not an error).

Times are seconds from the start of the connection's audio, as Deepgram sends them; they
restart at zero on every new connection.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypeGuard
from urllib.parse import urlencode

import orjson

from slotline.providers.errors import ProtocolError

LISTEN_PATH = "/v1/listen"

KEEPALIVE = '{"type":"KeepAlive"}'
FINALIZE = '{"type":"Finalize"}'
CLOSE_STREAM = '{"type":"CloseStream"}'


def encode_configure(keyterms: Sequence[str]) -> str:
    """A ``Configure`` replacing the stream's keyterms (``[]`` clears them)."""
    return orjson.dumps({"type": "Configure", "keyterms": list(keyterms)}).decode()


@dataclass(frozen=True, slots=True)
class Word:
    word: str
    start_s: float
    end_s: float
    confidence: float
    punctuated_word: str | None = None


@dataclass(frozen=True, slots=True)
class Results:
    """One transcript of one span of audio; ``is_final`` spans are contiguous and never change."""

    channel_index: tuple[int, ...]
    start_s: float
    duration_s: float
    is_final: bool
    speech_final: bool
    from_finalize: bool
    transcript: str
    confidence: float
    words: tuple[Word, ...]
    request_id: str | None

    @property
    def end_s(self) -> float:
        return self.start_s + self.duration_s


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    channel: tuple[int, ...]
    timestamp_s: float


@dataclass(frozen=True, slots=True)
class UtteranceEnd:
    channel: tuple[int, ...]
    last_word_end_s: float


@dataclass(frozen=True, slots=True)
class Metadata:
    request_id: str
    duration_s: float
    channels: int


@dataclass(frozen=True, slots=True)
class ConfigureSuccess:
    request_id: str
    keyterms: tuple[str, ...] | None  # in effect now; None when the Configure left them be


@dataclass(frozen=True, slots=True)
class ConfigureFailure:
    request_id: str
    code: str  # CONFIGURE_KEYTERMS_NOT_SUPPORTED, CONFIGURE_KEYTERM_LIMIT_EXCEEDED, ...
    description: str


@dataclass(frozen=True, slots=True)
class UnknownMessage:
    type: str


ServerMessage = (Results | SpeechStarted | UtteranceEnd | Metadata | ConfigureSuccess
                 | ConfigureFailure | UnknownMessage)


@dataclass(frozen=True, slots=True)
class ListenOptions:
    """The query of a live-listen request (names as Deepgram spells them, values typed)."""

    model: str = "nova-3"
    encoding: str = "mulaw"
    sample_rate_hz: int = 8000
    channels: int = 1
    interim_results: bool = True
    endpointing_ms: int | None = 300  # None = endpointing=false
    utterance_end_ms: int | None = 1000
    vad_events: bool = True
    smart_format: bool = True
    punctuate: bool = True
    language: str | None = None


def listen_url(base_url: str, options: ListenOptions) -> str:
    """``base_url`` is the vendor root (``wss://api.deepgram.com``); the path is appended."""
    query: dict[str, str] = {
        "model": options.model,
        "encoding": options.encoding,
        "sample_rate": str(options.sample_rate_hz),
        "channels": str(options.channels),
        "interim_results": _flag(options.interim_results),
        "endpointing": "false" if options.endpointing_ms is None else str(options.endpointing_ms),
        "vad_events": _flag(options.vad_events),
        "smart_format": _flag(options.smart_format),
        "punctuate": _flag(options.punctuate),
    }
    if options.utterance_end_ms is not None:
        query["utterance_end_ms"] = str(options.utterance_end_ms)
    if options.language is not None:
        query["language"] = options.language
    return f"{base_url.rstrip('/')}{LISTEN_PATH}?{urlencode(query)}"


def describe_close(code: int, reason: str) -> str:
    """A loggable summary of a close frame; Deepgram puts ``NET-0001``-style codes first."""
    return f"{code} {reason}".strip() if reason else str(code)


def parse_server_message(data: str | bytes) -> ServerMessage:
    if isinstance(data, bytes) and not data.lstrip().startswith(b"{"):
        raise ProtocolError("deepgram.binary", f"unexpected binary frame of {len(data)} bytes")
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ProtocolError("deepgram.json", f"not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise ProtocolError("deepgram.json", f"expected an object, got {type(obj).__name__}")
    kind = obj.get("type")
    if not isinstance(kind, str):
        raise ProtocolError("deepgram.type", "message without a string 'type'")
    if kind == "Results":
        return _results(obj)
    if kind == "SpeechStarted":
        return SpeechStarted(_ints(obj, "channel", kind), _number(obj, "timestamp", kind))
    if kind == "UtteranceEnd":
        return UtteranceEnd(_ints(obj, "channel", kind), _number(obj, "last_word_end", kind))
    if kind == "Metadata":
        channels = obj.get("channels")
        if not isinstance(channels, int) or isinstance(channels, bool):
            raise ProtocolError("deepgram.Metadata", "'channels' is not an integer")
        return Metadata(_string(obj, "request_id", kind), _number(obj, "duration", kind), channels)
    if kind == "ConfigureSuccess":
        terms = obj.get("keyterms")
        if terms is not None and not is_string_list(terms):
            raise ProtocolError("deepgram.ConfigureSuccess", "'keyterms' is not a list of strings")
        return ConfigureSuccess(_string(obj, "request_id", kind),
                                None if terms is None else tuple(terms))
    if kind == "ConfigureFailure":
        return ConfigureFailure(_string(obj, "request_id", kind), _string(obj, "code", kind),
                                _string(obj, "description", kind))
    return UnknownMessage(kind)


def _results(obj: Mapping[str, object]) -> Results:
    channel = obj.get("channel")
    if not isinstance(channel, dict):
        raise ProtocolError("deepgram.Results", "'channel' is not an object")
    alternatives = channel.get("alternatives")
    if not isinstance(alternatives, list):
        raise ProtocolError("deepgram.Results", "'channel.alternatives' is not a list")
    transcript, confidence = "", 0.0
    words: tuple[Word, ...] = ()
    if alternatives:  # an empty list is a result with no hypothesis
        best = alternatives[0]
        if not isinstance(best, dict):
            raise ProtocolError("deepgram.Results", "an alternative is not an object")
        transcript = _string(best, "transcript", "Results")
        confidence = _number(best, "confidence", "Results")
        raw_words = best.get("words")
        if not isinstance(raw_words, list):
            raise ProtocolError("deepgram.Results", "'words' is not a list")
        words = tuple(_word(item) for item in raw_words)
    metadata = obj.get("metadata")
    request_id = metadata.get("request_id") if isinstance(metadata, dict) else None
    return Results(
        channel_index=_ints(obj, "channel_index", "Results"),
        start_s=_number(obj, "start", "Results"),
        duration_s=_number(obj, "duration", "Results"),
        is_final=_bool(obj, "is_final", "Results"),
        speech_final=_bool(obj, "speech_final", "Results"),
        from_finalize=_bool(obj, "from_finalize", "Results"),
        transcript=transcript,
        confidence=confidence,
        words=words,
        request_id=request_id if isinstance(request_id, str) else None,
    )


def _word(item: object) -> Word:
    if not isinstance(item, dict):
        raise ProtocolError("deepgram.Results", "a word is not an object")
    punctuated = item.get("punctuated_word")
    return Word(
        word=_string(item, "word", "Results"),
        start_s=_number(item, "start", "Results"),
        end_s=_number(item, "end", "Results"),
        confidence=_number(item, "confidence", "Results"),
        punctuated_word=punctuated if isinstance(punctuated, str) else None,
    )


def is_string_list(value: object) -> TypeGuard[list[str]]:
    """Whether ``value`` is a JSON array of strings (``keyterms``, both ways)."""
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _flag(value: bool) -> str:
    return "true" if value else "false"


def _number(obj: Mapping[str, object], key: str, kind: str) -> float:
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ProtocolError(f"deepgram.{kind}", f"'{key}' is not a number")
    return float(value)


def _string(obj: Mapping[str, object], key: str, kind: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise ProtocolError(f"deepgram.{kind}", f"'{key}' is not a string")
    return value


def _bool(obj: Mapping[str, object], key: str, kind: str) -> bool:
    value = obj.get(key, False)  # optional in the spec: absent means false
    if not isinstance(value, bool):
        raise ProtocolError(f"deepgram.{kind}", f"'{key}' is not a boolean")
    return value


def _ints(obj: Mapping[str, object], key: str, kind: str) -> tuple[int, ...]:
    value = obj.get(key)
    if not isinstance(value, list) or not all(
        isinstance(item, int) and not isinstance(item, bool) for item in value
    ):
        raise ProtocolError(f"deepgram.{kind}", f"'{key}' is not a list of integers")
    return tuple(value)
