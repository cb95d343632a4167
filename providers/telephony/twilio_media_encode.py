"""Twilio Media Streams wire codec, the encoding half: every message as the text frame to send.

Server -> Twilio (``encode_media``, ``encode_mark``, ``encode_clear``) for the server, and
Twilio -> server (``encode_connected``, ``encode_start``, ``encode_inbound_media``, ...) for the
simulated caller. Pure functions, no I/O; ``providers/telephony/twilio_media.py`` parses the
same messages and re-exports everything here. Media frames are the hot path: a cached
per-stream prefix + base64 + a constant suffix (under 0.5 µs for a 160-byte frame, see
bench/twilio_codec_cost.py).
"""

from __future__ import annotations

import binascii
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any, Final

import orjson

from slotline.audio.framing import SAMPLE_RATE_HZ

MULAW_ENCODING: Final = "audio/x-mulaw"
CHANNELS: Final = 1


# --- encoding: server -> Twilio ---------------------------------------------------------------


# Streams whose prefix is kept: far above the calls one process carries at once, so every live
# stream hits; each kept stream costs ~470 bytes (both caches), so 512 is ~240 KB, full after
# 512 calls (4096 took ~1.9 MB and an hour of a 50-call soak to fill: issue 17).
STREAMS_CACHED: Final = 512


@lru_cache(maxsize=STREAMS_CACHED)
def _sid_json(stream_sid: str) -> str:
    return orjson.dumps(stream_sid).decode()


@lru_cache(maxsize=STREAMS_CACHED)
def _media_prefix(stream_sid: str) -> str:
    return '{"event":"media","streamSid":' + _sid_json(stream_sid) + ',"media":{"payload":"'


_MEDIA_SUFFIX: Final = '"}}'


def encode_media(stream_sid: str, payload: bytes) -> str:
    """Server audio for Twilio to play: raw 8 kHz mu-law of any length."""
    b64 = binascii.b2a_base64(payload, newline=False).decode("ascii")
    return _media_prefix(stream_sid) + b64 + _MEDIA_SUFFIX


def _dumps(obj: dict[str, Any]) -> str:
    return orjson.dumps(obj).decode()


def encode_mark(stream_sid: str, name: str) -> str:
    return _dumps({"event": "mark", "streamSid": stream_sid, "mark": {"name": name}})


def encode_clear(stream_sid: str) -> str:
    return '{"event":"clear","streamSid":' + _sid_json(stream_sid) + "}"



# --- encoding: Twilio -> server (the simulated caller's side) ---------------------------------


def encode_connected(protocol: str = "Call", version: str = "1.0.0") -> str:
    return _dumps({"event": "connected", "protocol": protocol, "version": version})


def _caller_event(event: str, stream_sid: str, sequence_number: int, body: object) -> str:
    seq = str(sequence_number)
    return _dumps({"event": event, "sequenceNumber": seq, "streamSid": stream_sid, event: body})


def encode_start(
    stream_sid: str,
    account_sid: str,
    call_sid: str,
    *,
    sequence_number: int = 1,
    tracks: Iterable[str] = ("inbound",),
    custom_parameters: Mapping[str, str] | None = None,
    encoding: str = MULAW_ENCODING,
    sample_rate_hz: int = SAMPLE_RATE_HZ,
    channels: int = CHANNELS,
) -> str:
    body = {
        "accountSid": account_sid,
        "streamSid": stream_sid,
        "callSid": call_sid,
        "tracks": list(tracks),
        "mediaFormat": {"encoding": encoding, "sampleRate": sample_rate_hz, "channels": channels},
        "customParameters": dict(custom_parameters or {}),
    }
    return _caller_event("start", stream_sid, sequence_number, body)


def encode_inbound_media(
    stream_sid: str,
    sequence_number: int,
    chunk: int,
    timestamp_ms: int,
    payload: bytes,
    track: str = "inbound",
) -> str:
    """One caller frame, in the field order of Twilio's documented example."""
    b64 = binascii.b2a_base64(payload, newline=False).decode("ascii")
    return (
        f'{{"event":"media","sequenceNumber":"{sequence_number}","streamSid":'
        f'{_sid_json(stream_sid)},"media":{{"track":{_sid_json(track)},"chunk":"{chunk}",'
        f'"timestamp":"{timestamp_ms}","payload":"{b64}"}}}}'
    )


def encode_dtmf(
    stream_sid: str, sequence_number: int, digit: str, track: str = "inbound_track"
) -> str:
    return _caller_event("dtmf", stream_sid, sequence_number, {"track": track, "digit": digit})


def encode_mark_echo(stream_sid: str, sequence_number: int, name: str) -> str:
    return _caller_event("mark", stream_sid, sequence_number, {"name": name})


def encode_stop(stream_sid: str, sequence_number: int, account_sid: str, call_sid: str) -> str:
    body = {"accountSid": account_sid, "callSid": call_sid}
    return _caller_event("stop", stream_sid, sequence_number, body)
