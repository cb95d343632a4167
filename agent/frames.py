"""The per-frame inbound path, shared by the call session and the frame-cost benchmark.

Every 20 ms of every call: decode mu-law, ask the VAD, hand the frame to the recogniser, feed the
turn detector. Synchronous and allocation-light on purpose: it runs on the event loop.
"""

from __future__ import annotations

from agent.turns import TurnDetector, TurnEvent
from audio.mulaw import ulaw_to_pcm16
from audio.vad import Vad
from providers.base import AudioChunk, SttStream


class FramePipeline:
    __slots__ = ("_stt", "_vad", "turns")

    def __init__(self, vad: Vad, stt: SttStream, turns: TurnDetector) -> None:
        self._vad = vad
        self._stt = stt
        self.turns = turns

    def process(self, ulaw: bytes, t_ms: int) -> tuple[bool, TurnEvent | None]:
        """One inbound frame starting at stream time ``t_ms``: (voiced, turn event or None)."""
        pcm16 = ulaw_to_pcm16(ulaw)
        voiced = self._vad.is_speech(pcm16)
        self._stt.push_audio(AudioChunk(ulaw, pcm16, voiced))
        return voiced, self.turns.frame(voiced, t_ms)
