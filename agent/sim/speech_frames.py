"""The simulated caller's outgoing audio, prepared once per recording, not once per frame.

The bench's callers say the same few recordings thousands of times. ``prepare`` cuts an
utterance into 20 ms frames, base64-encodes each frame and finds its first and last voiced
frames (``voiced_span``) once per distinct recording (cached), so sending a frame costs one
string concatenation: ``MediaText.frame`` fills a per-stream template with the counters and the
prepared payload, equal byte for byte to ``twilio_media.encode_inbound_media``.

A frame is voiced when its RMS is within ``VOICED_WITHIN_DB`` of the utterance's loudest frame
and above ``VOICED_FLOOR_RMS`` (-60 dBFS).
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import orjson

from slotline.audio.framing import ULAW_FRAME_BYTES as FRAME_BYTES
from slotline.audio.framing import ULAW_SILENCE
from slotline.audio.loudness import VOICED_FLOOR_RMS, VOICED_WITHIN_DB
from slotline.audio.mulaw import decode_array

SILENCE_FRAME = bytes([ULAW_SILENCE]) * FRAME_BYTES
_RECORDINGS_CACHED = 256  # distinct utterances kept prepared (a few KB of text per second)


def b64(frame: bytes) -> str:
    return binascii.b2a_base64(frame, newline=False).decode("ascii")


SILENCE_PAYLOAD = b64(SILENCE_FRAME)


def whole_frames(ulaw: bytes) -> bytes:
    """``ulaw`` padded with silence to whole 20 ms frames."""
    return ulaw + SILENCE_FRAME[: -len(ulaw) % FRAME_BYTES]


def voiced_span(ulaw: bytes) -> tuple[int, int] | None:
    """Indexes of the utterance's first and last voiced 20 ms frames (rule in the module
    docstring); None when no frame is voiced."""
    frames = decode_array(whole_frames(ulaw)).astype(np.float64).reshape(-1, FRAME_BYTES)
    rms = np.sqrt(np.mean(frames * frames, axis=1))
    threshold = max(float(rms.max()) * 10 ** (-VOICED_WITHIN_DB / 20), VOICED_FLOOR_RMS)
    voiced = np.flatnonzero(rms >= threshold)
    return (int(voiced[0]), int(voiced[-1])) if voiced.size else None


@dataclass(frozen=True, slots=True)
class PreparedSpeech:
    """An utterance as the payloads of its 20 ms frames, with its voiced span."""

    payloads: tuple[str, ...]  # base64 of each frame, the last padded with silence
    first_voiced: int  # the frame whose sending starts a barge-in's wait for ``clear``
    last_voiced: int  # the frame whose sending starts the wait for the reply

    @property
    def frames(self) -> int:
        return len(self.payloads)


@lru_cache(maxsize=_RECORDINGS_CACHED)
def prepare(ulaw: bytes) -> PreparedSpeech:
    """``ulaw`` cut into frames and encoded (cached: the same bytes are prepared once)."""
    audio = whole_frames(ulaw)
    count = len(audio) // FRAME_BYTES
    payloads = tuple(b64(audio[i * FRAME_BYTES : (i + 1) * FRAME_BYTES]) for i in range(count))
    first, last = voiced_span(audio) or (0, count - 1)
    return PreparedSpeech(payloads, first, last)


class MediaText:
    """One stream's inbound media messages, from a template made once per stream."""

    __slots__ = ("_middle",)

    def __init__(self, stream_sid: str, track: str = "inbound") -> None:
        sid, track_json = orjson.dumps(stream_sid).decode(), orjson.dumps(track).decode()
        self._middle = f'","streamSid":{sid},"media":{{"track":{track_json},"chunk":"'

    def frame(self, sequence_number: int, chunk: int, timestamp_ms: int, payload: str) -> str:
        """A media message with ``payload`` (base64, as ``prepare`` gives it)."""
        return (f'{{"event":"media","sequenceNumber":"{sequence_number}{self._middle}{chunk}",'
                f'"timestamp":"{timestamp_ms}","payload":"{payload}"}}}}')
