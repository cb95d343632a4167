"""When speech ended, by the rule the benchmark's caller uses: the last frame whose loudness is
within ``VOICED_WITHIN_DB`` of the utterance's loudest frame and above ``VOICED_FLOOR_RMS``.

The VAD says *whether* a frame is speech; it keeps saying so for a few frames after the words
(its hangover, ~100 ms), which is right for deciding the turn but wrong for timing it. The server
times a turn from the last loud frame instead, so its ``endpoint_ms`` and ``turn_latency_ms``
measure from the same instant as the caller's (``agent.sim.caller``).

Online, frame by frame: a frame is loud against the loudest frame *so far*. That picks the same
last frame as the offline rule over the whole utterance: a louder frame later raises the bar,
but is itself loud and later, so the last loud frame moves to it (or past it) anyway.
"""

from __future__ import annotations

import math

import numpy as np

from slotline.audio.mulaw import decode_array, ulaw_to_pcm16

VOICED_WITHIN_DB = 35.0  # frames this close to the loudest frame count as speech
VOICED_FLOOR_RMS = 32.8  # -60 dBFS: below this a frame is silence however quiet the rest is
_WITHIN = 10 ** (-VOICED_WITHIN_DB / 20)
_SQUARES = decode_array(bytes(range(256))).astype(np.float64) ** 2  # by mu-law byte


def rms(ulaw: bytes) -> float:
    """Root-mean-square of a mu-law frame, in 16-bit sample units."""
    return math.sqrt(float(_SQUARES[np.frombuffer(ulaw, np.uint8)].mean()))


def rms_pcm16(pcm16: bytes) -> float:
    """``rms`` of the same frame decoded (16-bit little-endian PCM), bit for bit: the squares
    and their sum are whole numbers far below 2**53, exact in any order. A third of ``rms``'s
    cost (one conversion and a dot product instead of a gather and a mean): the frame path
    has the decoded frame anyway."""
    samples = np.frombuffer(pcm16, "<i2").astype(np.float64)
    return math.sqrt(float(samples.dot(samples)) / samples.shape[0])


class LoudFrames:
    """Tells, frame by frame, whether a frame of the current utterance is loud (module doc)."""

    __slots__ = ("_loudest",)

    def __init__(self) -> None:
        self._loudest = 0.0

    def loud(self, ulaw: bytes) -> bool:
        return self.loud_pcm16(ulaw_to_pcm16(ulaw))

    def loud_pcm16(self, pcm16: bytes) -> bool:
        """``loud`` of the decoded frame (16-bit little-endian PCM)."""
        level = rms_pcm16(pcm16)
        if level > self._loudest:
            self._loudest = level
        return level >= VOICED_FLOOR_RMS and level >= self._loudest * _WITHIN

    def reset(self) -> None:
        """A new utterance begins."""
        self._loudest = 0.0
