"""Twilio Media Streams wire codec: pure parse/encode of every message, both directions.

No I/O here. The server parses what Twilio sends (``parse_inbound``) and encodes what it sends
back (``encode_media``/``encode_mark``/``encode_clear``); the simulated caller does the
opposite (``parse_outbound`` and the ``encode_connected``... family). ``InboundStream`` adds
the order rules of one stream on top of ``parse_inbound``. The encoders live in
``twilio_media_encode`` and are re-exported here: import either from this module.

Malformed input never escapes as anything but ``ProtocolError(code, detail)``; the codes are
stable identifiers for logs and metrics:

    invalid_json, not_an_object, unknown_event, missing_field, bad_field_type, bad_base64,
    bad_payload_size, binary_frame, unsupported_media_format, bad_dtmf_digit   (one message)
    before_start, duplicate_start, after_stop, stream_mismatch, out_of_order,
    timestamp_backwards, timestamp_ahead, media_too_fast                      (InboundStream)

``sequenceNumber``, ``chunk`` and ``timestamp`` are strings on the wire; they are parsed to
``int`` (a plain JSON integer is tolerated too). The media path runs ~10,000 times a second
at 200 calls: once a stream has started, its media messages are matched against their known
compact layout (``_MediaLayout``: one regular expression, one ``binascii`` call), anything
unusual goes through the generic parse (``orjson.loads`` and a check per field, ~1 µs more;
bench/frame_path_cost.py); encoded server media is a cached per-stream prefix + base64 + a
constant suffix (under 0.5 µs for a 160-byte frame).
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final, TypeVar

import orjson

from slotline.audio.framing import FRAME_MS, SAMPLE_RATE_HZ, ULAW_FRAME_BYTES
from slotline.providers.errors import ProtocolError
from slotline.providers.telephony.twilio_media_encode import (
    CHANNELS,
    MULAW_ENCODING,
    encode_clear,
    encode_connected,
    encode_dtmf,
    encode_inbound_media,
    encode_mark,
    encode_mark_echo,
    encode_media,
    encode_start,
    encode_stop,
)

__all__ = [  # fmt: skip
    "CHANNELS", "DTMF_DIGITS", "MAX_AHEAD_MS", "MULAW_ENCODING", "Clear", "Connected", "Dtmf",
    "InboundMessage", "InboundStream", "MarkEcho", "Media", "OutboundMark", "OutboundMedia",
    "OutboundMessage", "Start", "Stop",
    "encode_clear", "encode_connected", "encode_dtmf", "encode_inbound_media", "encode_mark",
    "encode_mark_echo", "encode_media", "encode_start", "encode_stop", "parse_inbound",
    "parse_outbound",
]

_MAX_DIGITS: Final = 18  # fits in int64; also keeps int() clear of its 4300-digit limit
# Twilio's DTMF alphabet: one key of a 16-key keypad. Anything else is not a keypress (and a
# 64 KB "digit" must not reach the call record).
DTMF_DIGITS: Final = frozenset("0123456789*#ABCD")
# How far a stream may run ahead of the receiver's clock since its `start` arrived, in media
# timestamps or in audio received. Twilio never sends audio before it exists, so ahead means a
# client that lies; behind is normal (network stalls, then a burst). The slack covers the
# receiver processing `start` late while the first frames queued behind it.
MAX_AHEAD_MS: Final = 2_000


# --- Twilio -> server -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Connected:
    protocol: str
    version: str


@dataclass(frozen=True, slots=True)
class Start:
    sequence_number: int
    stream_sid: str
    account_sid: str
    call_sid: str
    tracks: tuple[str, ...]
    encoding: str
    sample_rate_hz: int
    channels: int
    custom_parameters: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Media:
    sequence_number: int
    stream_sid: str
    track: str
    chunk: int
    timestamp_ms: int
    payload: bytes  # decoded mu-law, always ULAW_FRAME_BYTES (20 ms) long


@dataclass(frozen=True, slots=True)
class Dtmf:
    sequence_number: int
    stream_sid: str
    track: str
    digit: str


@dataclass(frozen=True, slots=True)
class MarkEcho:
    """Twilio echoing a server mark: the audio sent before it has played (or was cleared)."""

    sequence_number: int
    stream_sid: str
    name: str


@dataclass(frozen=True, slots=True)
class Stop:
    sequence_number: int
    stream_sid: str
    account_sid: str
    call_sid: str


InboundMessage = Connected | Start | Media | Dtmf | MarkEcho | Stop


# --- server -> Twilio -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OutboundMedia:
    stream_sid: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class OutboundMark:
    stream_sid: str
    name: str


@dataclass(frozen=True, slots=True)
class Clear:
    stream_sid: str


OutboundMessage = OutboundMedia | OutboundMark | Clear


# --- field helpers ----------------------------------------------------------------------------


def _load(data: str | bytes) -> dict[str, Any]:
    try:
        msg = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        if not isinstance(data, str):
            try:
                bytes(data).decode("utf-8")
            except UnicodeDecodeError:
                raise ProtocolError("binary_frame", "binary data is not UTF-8 JSON") from None
        raise ProtocolError("invalid_json", str(exc)) from None
    if type(msg) is not dict:
        raise ProtocolError("not_an_object", f"top level is {type(msg).__name__}")
    return msg


def _field(obj: dict[str, Any], key: str, where: str) -> Any:
    try:
        return obj[key]
    except KeyError:
        raise ProtocolError("missing_field", f"{where}.{key}") from None


def _object(obj: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = _field(obj, key, where)
    if type(value) is not dict:
        raise ProtocolError("bad_field_type", f"{where}.{key} must be an object")
    return value


def _str(obj: dict[str, Any], key: str, where: str) -> str:
    value = _field(obj, key, where)
    if type(value) is not str:
        raise ProtocolError("bad_field_type", f"{where}.{key} must be a string")
    return value


def _int(obj: dict[str, Any], key: str, where: str) -> int:
    """A non-negative integer sent as a decimal string (Twilio's way) or a JSON integer."""
    value = _field(obj, key, where)
    if type(value) is str and value.isascii() and value.isdigit() and len(value) <= _MAX_DIGITS:
        return int(value)
    if type(value) is int and value >= 0:
        return value
    raise ProtocolError("bad_field_type", f"{where}.{key} must be a decimal string")


def _b64(value: object, where: str) -> bytes:
    if type(value) is not str:
        raise ProtocolError("bad_field_type", f"{where} must be a base64 string")
    try:
        return binascii.a2b_base64(value, strict_mode=True)
    except ValueError as exc:  # binascii.Error, or non-ASCII text
        raise ProtocolError("bad_base64", f"{where}: {exc}") from None


# --- parsing: Twilio -> server ----------------------------------------------------------------


def _parse_connected(msg: dict[str, Any]) -> Connected:
    return Connected(_str(msg, "protocol", "connected"), _str(msg, "version", "connected"))


def _parse_start(msg: dict[str, Any]) -> Start:
    stream_sid = _str(msg, "streamSid", "start")
    body = _object(msg, "start", "start")
    inner_sid = body.get("streamSid", stream_sid)
    if inner_sid != stream_sid:
        raise ProtocolError("stream_mismatch", "start.start.streamSid differs from streamSid")
    tracks = _field(body, "tracks", "start.start")
    if type(tracks) is not list or any(type(t) is not str for t in tracks):
        raise ProtocolError("bad_field_type", "start.start.tracks must be a list of strings")
    fmt = _object(body, "mediaFormat", "start.start")
    encoding = _str(fmt, "encoding", "start.start.mediaFormat")
    sample_rate_hz = _int(fmt, "sampleRate", "start.start.mediaFormat")
    channels = _int(fmt, "channels", "start.start.mediaFormat")
    if (encoding, sample_rate_hz, channels) != (MULAW_ENCODING, SAMPLE_RATE_HZ, CHANNELS):
        raise ProtocolError(
            "unsupported_media_format", f"{encoding} {sample_rate_hz} Hz x{channels}"
        )
    params = body.get("customParameters", {})  # absent when the TwiML has no <Parameter>
    if type(params) is not dict or any(type(v) is not str for v in params.values()):
        raise ProtocolError("bad_field_type", "start.start.customParameters must map to strings")
    return Start(
        sequence_number=_int(msg, "sequenceNumber", "start"),
        stream_sid=stream_sid,
        account_sid=_str(body, "accountSid", "start.start"),
        call_sid=_str(body, "callSid", "start.start"),
        tracks=tuple(tracks),
        encoding=encoding,
        sample_rate_hz=sample_rate_hz,
        channels=channels,
        custom_parameters=MappingProxyType(params),
    )


def _parse_media(msg: dict[str, Any]) -> Media:
    body = _object(msg, "media", "media")
    payload = _b64(_field(body, "payload", "media.media"), "media.media.payload")
    if len(payload) != ULAW_FRAME_BYTES:
        raise ProtocolError("bad_payload_size", f"{len(payload)} bytes, not {ULAW_FRAME_BYTES}")
    return Media(
        _int(msg, "sequenceNumber", "media"),
        _str(msg, "streamSid", "media"),
        _str(body, "track", "media.media"),
        _int(body, "chunk", "media.media"),
        _int(body, "timestamp", "media.media"),
        payload,
    )


def _parse_dtmf(msg: dict[str, Any]) -> Dtmf:
    body = _object(msg, "dtmf", "dtmf")
    digit = _str(body, "digit", "dtmf.dtmf")
    if digit not in DTMF_DIGITS:
        raise ProtocolError("bad_dtmf_digit", f"{digit[:8]!r} ({len(digit)} chars)")
    return Dtmf(
        _int(msg, "sequenceNumber", "dtmf"),
        _str(msg, "streamSid", "dtmf"),
        _str(body, "track", "dtmf.dtmf"),
        digit,
    )


def _parse_mark_echo(msg: dict[str, Any]) -> MarkEcho:
    body = _object(msg, "mark", "mark")
    return MarkEcho(
        _int(msg, "sequenceNumber", "mark"),
        _str(msg, "streamSid", "mark"),
        _str(body, "name", "mark.mark"),
    )


def _parse_stop(msg: dict[str, Any]) -> Stop:
    body = _object(msg, "stop", "stop")
    return Stop(
        _int(msg, "sequenceNumber", "stop"),
        _str(msg, "streamSid", "stop"),
        _str(body, "accountSid", "stop.stop"),
        _str(body, "callSid", "stop.stop"),
    )


_INBOUND_PARSERS: Final[dict[str, Callable[[dict[str, Any]], InboundMessage]]] = {
    "media": _parse_media,
    "connected": _parse_connected,
    "start": _parse_start,
    "dtmf": _parse_dtmf,
    "mark": _parse_mark_echo,
    "stop": _parse_stop,
}


_Message = TypeVar("_Message")


def _dispatch(
    msg: dict[str, Any], parsers: Mapping[str, Callable[[dict[str, Any]], _Message]]
) -> _Message:
    event = msg.get("event")
    parser = parsers.get(event) if type(event) is str else None
    if parser is None:
        _str(msg, "event", "message")  # missing or not a string: the precise error
        raise ProtocolError("unknown_event", repr(event)[:64])
    return parser(msg)


def parse_inbound(data: str | bytes) -> InboundMessage:
    """Parse one Twilio -> server frame. Raises ``ProtocolError``, never anything else.

    Bytes are accepted when they are UTF-8 JSON (the same text a text frame carries);
    other bytes raise ``binary_frame``.
    """
    return _dispatch(_load(data), _INBOUND_PARSERS)


# --- parsing: server -> Twilio (the simulated caller's side) ----------------------------------


def _parse_outbound_media(msg: dict[str, Any]) -> OutboundMedia:
    body = _object(msg, "media", "media")
    payload = _b64(_field(body, "payload", "media.media"), "media.media.payload")
    return OutboundMedia(_str(msg, "streamSid", "media"), payload)


def _parse_outbound_mark(msg: dict[str, Any]) -> OutboundMark:
    body = _object(msg, "mark", "mark")
    return OutboundMark(_str(msg, "streamSid", "mark"), _str(body, "name", "mark.mark"))


def _parse_clear(msg: dict[str, Any]) -> Clear:
    return Clear(_str(msg, "streamSid", "clear"))


_OUTBOUND_PARSERS: Final[dict[str, Callable[[dict[str, Any]], OutboundMessage]]] = {
    "media": _parse_outbound_media,
    "mark": _parse_outbound_mark,
    "clear": _parse_clear,
}


def parse_outbound(data: str | bytes) -> OutboundMessage:
    """Parse one server -> Twilio frame (what a simulated Twilio receives)."""
    return _dispatch(_load(data), _OUTBOUND_PARSERS)


# --- the media fast path ---------------------------------------------------------------------

# A media message's fields after its streamSid, compact: the known tracks, decimal strings of at
# most _MAX_DIGITS, a base64 payload (strictly checked by binascii afterwards).
_MEDIA_HEAD: Final = (  # up to the payload's first character
    r'"media":\{"track":"(?P<track>inbound|outbound)","chunk":"(?P<chunk>[0-9]{1,18})",'
    r'"timestamp":"(?P<timestamp>[0-9]{1,18})","payload":"'
)
_MEDIA_BODY: Final = _MEDIA_HEAD + r'(?P<payload>[A-Za-z0-9+/]*={0,2})"\}'
_MEDIA_SEQUENCE: Final = r'\{"event":"media","sequenceNumber":"(?P<sequence>[0-9]{1,18})",'
# The streamSid as a JSON string without escapes (one with escapes goes to the generic parser),
# compared with the stream's own after the match. Not a pattern per stream: ``re.compile`` keeps
# every pattern in its module cache, so each ended call left ~4.9 KB there (up to 512 patterns,
# pushing out every other module's).
_MEDIA_SID: Final = r'(?P<sid>"[^"\\]*")'
# PROTOCOLS.md's layout up to the payload's first character. The payload runs from there to the
# message's closing '"}}' and is left to ``a2b_base64(strict_mode=True)`` alone — the generic
# parser's own check, which refuses quotes, escapes and anything else not base64: matching its
# 216 characters with the pattern as well cost ~0.8 µs a frame.
_SID_FIRST_HEAD: Final = re.compile(f'{_MEDIA_SEQUENCE}"streamSid":{_MEDIA_SID},{_MEDIA_HEAD}')
_PAYLOAD_END: Final = '"}}'
_SID_LAST: Final = re.compile(f'{_MEDIA_SEQUENCE}{_MEDIA_BODY},"streamSid":{_MEDIA_SID}\\}}')


class _MediaLayout:
    """Media messages of one stream read by matching their known layout: 50 a second per call,
    and the generic parse spends more in checking a dict than ``orjson`` in building it.

    Two layouts are read, compact: PROTOCOLS.md's (``streamSid`` before ``media``) and Twilio's
    documented example (``streamSid`` last), with this stream's ``streamSid`` and a known track.
    Every other character is a literal and the variable parts are what the generic parser
    accepts, so a message read here is one ``parse_inbound`` returns the same ``Media`` for.
    Anything else (other key order, spaces, escapes, JSON integers, another stream, a payload
    that is not one frame of strict base64) returns None: the generic parser decides.
    """

    __slots__ = ("_sid_json", "_stream_sid", "match")

    def __init__(self, stream_sid: str) -> None:
        self._stream_sid = stream_sid
        self._sid_json = orjson.dumps(stream_sid).decode()  # as the wire has it, quoted
        self.match: re.Match[str] | None = None  # the fields of the last message read

    def payload(self, data: str) -> bytes | None:
        """The frame of a media message in this layout (None: the generic parser decides); its
        other fields are in ``match`` until the next call."""
        match = _SID_FIRST_HEAD.match(data)
        if match is not None and data.endswith(_PAYLOAD_END):
            encoded = data[match.end() : -len(_PAYLOAD_END)]
        else:
            match = _SID_LAST.fullmatch(data)
            if match is None:
                return None
            encoded = match["payload"]
        if match["sid"] != self._sid_json:
            return None
        try:
            payload = binascii.a2b_base64(encoded, strict_mode=True)
        except ValueError:
            return None
        if len(payload) != ULAW_FRAME_BYTES:
            return None
        self.match = match
        return payload

    def parse(self, data: str) -> Media | None:
        payload = self.payload(data)
        match = self.match
        if payload is None or match is None:
            return None
        return Media(int(match["sequence"]), self._stream_sid, match["track"],
                     int(match["chunk"]), int(match["timestamp"]), payload)


# --- stream order -----------------------------------------------------------------------------


class InboundStream:
    """Order rules of one stream: connected -> start -> (media | dtmf | mark)* -> stop.

    ``receive`` parses and checks one frame. A rejected frame raises ``ProtocolError`` and
    leaves the state as it was, so the caller drops it and carries on. Tolerated on purpose:
    a stream whose ``connected`` was never seen, and a ``stop`` before any ``start`` (a stream
    that failed to start still ends).

    Media timestamps never go backwards. Given ``now_ms`` (the receiver's monotonic clock; no
    clock is read here), media may not run more than ``MAX_AHEAD_MS`` ahead of the time since
    ``start`` arrived — neither its timestamps nor the audio received (20 ms a frame) — so a
    client cannot claim time that has not passed, nor make the server decode audio faster
    than real time.
    """

    __slots__ = ("_audio_ms", "_last_timestamp_ms", "_media", "_started_at_ms", "connected",
                 "start", "stopped")

    def __init__(self) -> None:
        self.connected: Connected | None = None
        self.start: Start | None = None
        self.stopped = False
        self._last_timestamp_ms = 0
        self._started_at_ms: int | None = None  # receiver's clock when `start` arrived
        self._audio_ms = 0  # audio accepted so far
        self._media: _MediaLayout | None = None  # once started: this stream's media layout

    def receive(self, data: str | bytes, now_ms: int | None = None) -> InboundMessage:
        if self.stopped:
            raise ProtocolError("after_stop", "the stream has stopped")
        layout = self._media
        if layout is not None and type(data) is str:
            media = layout.parse(data)
            if media is not None:
                self._check_time(media.timestamp_ms, now_ms)
                return media
        msg = parse_inbound(data)
        start = self.start
        if isinstance(msg, Media) or isinstance(msg, Dtmf | MarkEcho):  # media: 50 a second
            if start is None:
                raise ProtocolError("before_start", f"{type(msg).__name__} before start")
            if msg.stream_sid != start.stream_sid:
                raise ProtocolError("stream_mismatch", f"streamSid is not {start.stream_sid}")
            if isinstance(msg, Media):
                self._check_time(msg.timestamp_ms, now_ms)
        elif isinstance(msg, Start):
            if start is not None:
                raise ProtocolError("duplicate_start", "a second start on one stream")
            self.start = msg
            self._started_at_ms = now_ms
            self._media = _MediaLayout(msg.stream_sid)
        elif isinstance(msg, Stop):
            if start is not None and msg.stream_sid != start.stream_sid:
                raise ProtocolError("stream_mismatch", f"streamSid is not {start.stream_sid}")
            self.stopped = True
        elif self.connected is not None or start is not None:
            raise ProtocolError("out_of_order", "connected after the stream began")
        else:
            self.connected = msg
        return msg

    def receive_audio(self, data: str | bytes, now_ms: int | None = None) -> bytes | InboundMessage:
        """``receive``, but media comes back as its 20 ms of mu-law alone, its timestamp in
        ``last_timestamp_ms``: the server's per-frame path, which needs nothing else of it,
        builds no object per frame."""
        if self.stopped:
            raise ProtocolError("after_stop", "the stream has stopped")
        payload = self._compact_media(data, now_ms)
        if payload is not None:
            return payload
        message = self.receive(data, now_ms)
        return message.payload if isinstance(message, Media) else message

    def accept_media(self, data: str, now_ms: int) -> bytes | None:
        """The 20 ms of mu-law of a media message in this stream's compact layout, its time
        accepted as ``receive_audio`` would; None for anything else — another message, another
        layout, a frame whose time is refused — leaving the state as it was, for
        ``receive_audio`` to decide (and report)."""
        if self.stopped:
            return None
        try:
            return self._compact_media(data, now_ms)
        except ProtocolError:
            return None

    def _compact_media(self, data: str | bytes, now_ms: int | None) -> bytes | None:
        """The frame of a media message in this stream's compact layout, its time accepted
        (``ProtocolError`` if refused, the state unchanged); None for anything else."""
        layout = self._media
        if layout is None or type(data) is not str:
            return None
        payload = layout.payload(data)
        match = layout.match
        if payload is None or match is None:
            return None
        self._check_time(int(match["timestamp"]), now_ms)
        return payload

    @property
    def last_timestamp_ms(self) -> int:
        """The timestamp of the latest media accepted (0 before any)."""
        return self._last_timestamp_ms

    def _check_time(self, timestamp_ms: int, now_ms: int | None) -> None:
        """Accept one media frame's time, or raise (the state is then unchanged)."""
        if timestamp_ms < self._last_timestamp_ms:
            raise ProtocolError(
                "timestamp_backwards", f"{timestamp_ms} ms after {self._last_timestamp_ms} ms"
            )
        started_at_ms = self._started_at_ms
        if now_ms is not None and started_at_ms is not None:
            allowed_ms = now_ms - started_at_ms + MAX_AHEAD_MS
            if timestamp_ms > allowed_ms:
                raise ProtocolError(
                    "timestamp_ahead", f"{timestamp_ms} ms at {now_ms - started_at_ms} ms"
                )
            if self._audio_ms > allowed_ms:
                raise ProtocolError(
                    "media_too_fast",
                    f"{self._audio_ms} ms of audio at {now_ms - started_at_ms} ms",
                )
        self._last_timestamp_ms = timestamp_ms
        self._audio_ms += FRAME_MS
