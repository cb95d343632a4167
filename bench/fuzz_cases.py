"""Seeded mutators of valid Twilio traffic: what ``bench/fuzz.py`` throws at a server.

Pure functions, no I/O: a ``random.Random`` in, frames (``str`` = a WebSocket text frame,
``bytes`` = a binary frame, ``RawText`` = a text frame whose bytes need not be UTF-8) and webhook
requests out, so a seed names one exact run and a failure can be replayed message by message.

Media streams start from what Twilio really sends (the encoders of
``providers/telephony/twilio_media_encode.py``) and are bent the ways a buggy proxy, a replay or
an attacker would bend them: truncated or doubled JSON, numbers where Twilio sends strings,
missing fields, payloads of every size around ``server.max_message_bytes``, binary frames,
invalid UTF-8, base64 garbage, timestamps and sequence numbers that jump, DTMF floods with bad
digits, a second ``start``, messages after ``stop``.
"""

from __future__ import annotations

import base64
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import orjson

from slotline.providers.telephony import twilio_media_encode as tw

# A real call sends one 160-byte frame per 20 ms; fuzz sessions are short calls of this many
# messages so that starts, stops and socket closes (the rare paths) come up often.
SESSION_MESSAGES_MIN = 20
SESSION_MESSAGES_MAX = 400
# Share of messages bent by a mutator; the rest stay valid so the stream gets deep into a call.
MUTATION_RATE = 0.2
FRAME_BYTES = 160
SILENCE = b"\xff" * FRAME_BYTES


@dataclass(frozen=True, slots=True)
class RawText:
    """A text frame sent as these exact bytes (invalid UTF-8 cannot travel in a ``str``)."""

    data: bytes


Frame = str | bytes | RawText


@dataclass(frozen=True, slots=True)
class Ids:
    stream_sid: str
    call_sid: str
    account_sid: str

    @classmethod
    def draw(cls, rng: random.Random) -> Ids:
        def sid(prefix: str) -> str:
            return prefix + rng.getrandbits(128).to_bytes(16, "big").hex()

        return cls(sid("MZ"), sid("CA"), sid("AC"))


@dataclass(frozen=True, slots=True)
class Webhook:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    forged: bool = False  # carries an X-Twilio-Signature that cannot be valid


def _audio(rng: random.Random) -> bytes:
    """Mostly silence (as on a phone line), sometimes noise the VAD may take for speech."""
    if rng.random() < 0.8:
        return SILENCE
    return rng.randbytes(FRAME_BYTES)


def valid_stream(rng: random.Random, ids: Ids, flow: str, messages: int) -> list[str]:
    """What Twilio sends for one short call: connected, start, media (with DTMF and mark
    echoes sprinkled in), stop."""
    out = [
        tw.encode_connected(),
        tw.encode_start(ids.stream_sid, ids.account_sid, ids.call_sid,
                        custom_parameters={"flow": flow}),
    ]
    seq = 2
    for chunk in range(1, max(messages - 3, 1) + 1):
        roll = rng.random()
        if roll < 0.02:
            out.append(tw.encode_dtmf(ids.stream_sid, seq, rng.choice("0123456789*#")))
        elif roll < 0.03:
            out.append(tw.encode_mark_echo(ids.stream_sid, seq, f"m{rng.randrange(100)}"))
        else:
            out.append(tw.encode_inbound_media(ids.stream_sid, seq, chunk, chunk * 20,
                                               _audio(rng)))
        seq += 1
    out.append(tw.encode_stop(ids.stream_sid, seq, ids.account_sid, ids.call_sid))
    return out


# ---- mutators: one valid message in, frames out -------------------------------------------


def _loads(text: str) -> Any:
    return orjson.loads(text)


# JSON that orjson will not write (integers past 64 bits, floats past double range) goes in as
# a placeholder string and is spliced in as raw text.
_RAW_NUMBERS = {"\u0001big": "123456789012345678901234567890", "\u0001inf": "1e400"}


def _dumps(value: Any) -> str:
    text = orjson.dumps(value).decode()
    for placeholder, raw in _RAW_NUMBERS.items():
        text = text.replace(orjson.dumps(placeholder).decode(), raw)
    return text


def _paths(value: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every key path in a JSON object (the mutators pick one to bend)."""
    found: list[tuple[str, ...]] = []
    if isinstance(value, dict):
        for key, child in value.items():
            found.append((*prefix, key))
            found.extend(_paths(child, (*prefix, key)))
    return found


def _odd_value(rng: random.Random) -> Any:
    return rng.choice([5, -1, *_RAW_NUMBERS, 1.5e308, None, True, [], {}, "", "x" * 300, ["5"],
                       {"$": 1}, "\u0000", "٣", "NaN", "1e9999", "-0"])


def _set(obj: Any, path: tuple[str, ...], value: Any, *, delete: bool = False) -> None:
    for key in path[:-1]:
        obj = obj[key]
    if delete:
        del obj[path[-1]]
    else:
        obj[path[-1]] = value


def wrong_type(rng: random.Random, text: str, ids: Ids) -> list[Frame]:
    """``"sequenceNumber": 5`` where Twilio sends ``"5"``, a list where an object goes, ..."""
    obj = _loads(text)
    _set(obj, rng.choice(_paths(obj)), _odd_value(rng))
    return [_dumps(obj)]


def drop_field(rng: random.Random, text: str, ids: Ids) -> list[Frame]:
    obj = _loads(text)
    _set(obj, rng.choice(_paths(obj)), None, delete=True)
    return [_dumps(obj)]


def truncate(rng: random.Random, text: str, ids: Ids) -> list[Frame]:
    return [text[: rng.randrange(len(text))]]


def duplicate(rng: random.Random, text: str, ids: Ids) -> list[Frame]:
    return [text, text] if rng.random() < 0.5 else [text + text]


def binary(rng: random.Random, text: str, ids: Ids) -> list[Frame]:
    return [text.encode() if rng.random() < 0.5 else rng.randbytes(rng.randrange(1, 2048))]


def bad_encoding(rng: random.Random, text: str, ids: Ids) -> list[Frame]:
    """Invalid UTF-8 in a text frame, a lone surrogate escape, a byte-order mark, NULs."""
    roll = rng.random()
    if roll < 0.3:
        raw = bytearray(text.encode())
        raw.insert(rng.randrange(len(raw)), rng.choice([0xFF, 0xC0, 0x80, 0xED]))
        return [RawText(bytes(raw))]
    if roll < 0.6:
        return [text.replace('"inbound"', '"\\ud800"').replace('"MZ', '"\\udfffMZ', 1)]
    if roll < 0.8:
        return ["\ufeff" + text]
    return [text.replace('"', '"\u0000', 2)]


def base64_garbage(rng: random.Random, text: str, ids: Ids) -> list[Frame]:
    obj = _loads(text)
    payload = rng.choice([
        "!!!not base64!!!", "", "=", "QQ", "A" * 161, base64.b64encode(SILENCE).decode()[:-3],
        base64.b64encode(rng.randbytes(rng.choice([1, 159, 161, 320, 4000]))).decode(),
        base64.b64encode(SILENCE).decode() + "\n", "ÿÿÿÿ",
    ])
    obj["media"] = {**(obj.get("media") or {}), "payload": payload}
    obj["event"] = "media"
    return [_dumps(obj)]


def huge(rng: random.Random, text: str, ids: Ids) -> list[Frame]:
    """Payloads just inside and (rarely) beyond a 64 KiB message limit; deep nesting."""
    roll = rng.random()
    if roll < 0.1:  # beyond: the server closes this socket (message_too_big)
        size = rng.choice([70_000, 300_000])
        return [tw.encode_inbound_media(ids.stream_sid, 9, 9, 180, SILENCE * (size // 160))]
    if roll < 0.4:
        return ["[" * 5000 + "]" * 5000]
    size = rng.choice([1_000, 8_000, 40_000, 48_000])  # base64 of 48 kB ≈ 64 kB on the wire
    return [tw.encode_inbound_media(ids.stream_sid, 9, 9, 180, SILENCE * (size // 160))]


def timestamp_jump(rng: random.Random, text: str, ids: Ids) -> list[Frame]:
    obj = _loads(text)
    media = obj.setdefault("media", {}) if isinstance(obj, dict) else {}
    if not isinstance(media, dict):
        return [text]
    media["timestamp"] = rng.choice(["0", "-20", str(2**63), "99999999999999999999", "1e3",
                                     str(rng.randrange(10**9)), "abc"])
    obj["sequenceNumber"] = rng.choice(["1", "0", "-1", str(2**64), "2"])
    media["chunk"] = rng.choice(["0", "-5", str(2**40)])
    return [_dumps(obj)]


_DIGITS: tuple[object, ...] = (
    "1", "#", "*", "D", "", "12", "x", "\u0000", "١", "🙂", None, 1, [], "1" * 5000,
)


def dtmf_flood(rng: random.Random, text: str, ids: Ids) -> list[Frame]:
    """A burst of DTMF, good and bad digits, far faster than a keypad can press them."""
    return [
        _dumps({"event": "dtmf", "streamSid": ids.stream_sid, "sequenceNumber": str(n),
                "dtmf": {"track": "inbound_track", "digit": rng.choice(_DIGITS)}})
        for n in range(rng.randrange(20, 200))
    ]


def protocol_order(rng: random.Random, text: str, ids: Ids) -> list[Frame]:
    """A second start, a connected mid-stream, a stop early then more media, another stream."""
    other = Ids.draw(rng)
    return [rng.choice([
        tw.encode_start(ids.stream_sid, ids.account_sid, ids.call_sid),
        tw.encode_start(other.stream_sid, other.account_sid, other.call_sid,
                        custom_parameters={"flow": rng.choice(["../../etc/passwd", "nope", ""])}),
        tw.encode_start(ids.stream_sid, ids.account_sid, ids.call_sid,
                        encoding="audio/x-alaw", sample_rate_hz=16000, channels=2),
        tw.encode_connected(protocol="Other", version="9"),
        tw.encode_stop(ids.stream_sid, 3, ids.account_sid, ids.call_sid),
        tw.encode_inbound_media(other.stream_sid, 4, 1, 20, SILENCE),
        tw.encode_mark_echo(ids.stream_sid, 5, "never-sent" * rng.randrange(1, 100)),
        _dumps({"event": rng.choice(["bogus", "", "MEDIA", None, 7])}),
        _dumps([1, 2, 3]), "null", '"media"', "{}",
    ]), text]


Mutator = Callable[[random.Random, str, Ids], list[Frame]]

MUTATORS: dict[str, Mutator] = {
    "wrong_type": wrong_type,
    "drop_field": drop_field,
    "truncate": truncate,
    "duplicate": duplicate,
    "binary": binary,
    "bad_encoding": bad_encoding,
    "base64_garbage": base64_garbage,
    "huge": huge,
    "timestamp_jump": timestamp_jump,
    "dtmf_flood": dtmf_flood,
    "protocol_order": protocol_order,
}
# Weights: the socket-closing ones (huge, bad_encoding's invalid UTF-8) end a session early.
_WEIGHTS = {"huge": 0.3, "dtmf_flood": 0.3, "bad_encoding": 0.6}


def fuzz_session(rng: random.Random, flow: str) -> tuple[list[Frame], list[str]]:
    """One connection's frames and the names of the mutators used, in order."""
    ids = Ids.draw(rng)
    base = valid_stream(rng, ids, flow, rng.randrange(SESSION_MESSAGES_MIN, SESSION_MESSAGES_MAX))
    names = list(MUTATORS)
    weights = [_WEIGHTS.get(name, 1.0) for name in names]
    frames: list[Frame] = []
    used: list[str] = []
    for text in base:
        if rng.random() < MUTATION_RATE:
            name = rng.choices(names, weights)[0]
            frames.extend(MUTATORS[name](rng, text, ids))
            used.append(name)
        else:
            frames.append(text)
    if rng.random() < 0.3:  # messages after stop
        frames.extend(tw.encode_inbound_media(ids.stream_sid, 9999 + n, n, n * 20, SILENCE)
                      for n in range(rng.randrange(1, 10)))
        used.append("after_stop")
    return frames, used


# ---- webhooks ------------------------------------------------------------------------------

TWILIO_PATHS = ("/twilio/voice", "/twilio/status", "/twilio/amd", "/twilio/stream-status")
API_ROUTES = (
    ("GET", "/api/calls"), ("GET", "/api/calls/{sid}"), ("GET", "/api/bookings"),
    ("GET", "/api/bookings/{sid}"), ("POST", "/api/calls"), ("POST", "/api/campaigns"),
    ("GET", "/api/campaigns"), ("GET", "/api/campaigns/{sid}"), ("POST", "/api/dnc"),
    ("GET", "/api/campaigns/{sid}/results.csv"), ("DELETE", "/api/dnc/{sid}"),
)
_FORM = "application/x-www-form-urlencoded"
_CONTENT_TYPES = (_FORM, _FORM + "; charset=latin-1", _FORM + "; charset=utf-16",
                  _FORM + "; charset=bogus", "application/json", "text/plain",
                  "multipart/form-data; boundary=x", "multipart/form-data", "", "x/y; q=\"")


def _twilio_form(rng: random.Random) -> dict[str, str]:
    ids = Ids.draw(rng)
    return {
        "CallSid": ids.call_sid, "AccountSid": ids.account_sid, "From": "+15005550006",
        "To": "+15005550001", "Direction": rng.choice(["inbound", "outbound-api", "x"]),
        "CallStatus": rng.choice(["ringing", "completed", "busy", "failed", "canceled", ""]),
        "AnsweredBy": rng.choice(["human", "machine_start", "fax", "unknown", ""]),
        "StreamEvent": rng.choice(["stream-started", "stream-stopped", "stream-error"]),
    }


def _bad_body(rng: random.Random, form: dict[str, str]) -> bytes:
    valid = urlencode(form).encode()
    return rng.choice([
        valid,
        valid + b"&From=%FF%FE%80",  # percent-encoded invalid UTF-8
        valid.replace(b"inbound", b"\xff\xfe\xc0"),  # raw invalid UTF-8
        "CallSid=CA1&From=¡¢£".encode("latin-1"),
        "CallSid=CA1".encode("utf-16"),
        orjson.dumps(form), b"", b"&&&===&", b"%", b"%zz=%" + b"\x00" * 10,
        b"CallSid=" + b"A" * rng.choice([10_000, 2_000_000]),  # huge: around the 1 MiB cap
        b"--x\r\nContent-Disposition: form-data; name=\"CallSid\"\r\n\r\nCA1\r\n--x--\r\n",
        b"--x\r\nbroken",
        rng.randbytes(rng.randrange(1, 4096)),
    ])


def webhook_case(rng: random.Random, *, forge: bool = False) -> Webhook:
    """One webhook or API request with a mutated body, content type, query or path."""
    if forge or rng.random() < 0.6:
        path = rng.choice(TWILIO_PATHS)
        method = "POST" if rng.random() < 0.9 else rng.choice(["GET", "PUT"])
        if rng.random() < 0.1:
            path += rng.choice(["?attempt=x", "?attempt=" + "9" * 500, "?%ff=1", "?attempt"])
    else:
        method, path = rng.choice(API_ROUTES)
        sid = rng.choice(["CA1", "%ff%fe", "..%2f..", "x" * 3000, "'%20or%201=1%20--", "%00"])
        path = path.replace("{sid}", sid)
        if rng.random() < 0.3:
            path += rng.choice(["?limit=abc", "?limit=-1&offset=1e9", "?limit=99999999999999999"])
    headers = {"Content-Type": rng.choice(_CONTENT_TYPES)}
    if forge:
        headers["X-Twilio-Signature"] = rng.choice(
            ["", "x", base64.b64encode(rng.randbytes(20)).decode(), "é" * 30, "A" * 5000])
    elif rng.random() < 0.2:
        headers["Authorization"] = rng.choice(["Bearer x", "Basic Og==", "Bearer " + "A" * 4000])
    body = _bad_body(rng, _twilio_form(rng))
    return Webhook(method, path, headers, body, forged=forge)
