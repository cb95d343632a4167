"""The per-frame inbound path, shared by the call session and the frame-cost benchmark.

Every 20 ms of every call: decode mu-law, ask the VAD, hand the frame to the recogniser, feed the
turn detector. Synchronous and allocation-light on purpose: it runs on the event loop.

Recognisers with an endpointer of their own (Deepgram) also say when an utterance has ended;
``watch_endpoints`` turns those messages into ``TurnDetector.stt_final()`` calls, so the turn
ends on VAD silence or STT finality, whichever comes first (rules in ``agent.call.turns``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Protocol, runtime_checkable

from slotline.agent.call.turns import TurnDetector, TurnEvent
from slotline.audio.mulaw import ulaw_to_pcm16
from slotline.audio.vad import Vad
from slotline.providers.base import AudioChunk, SttStream
from slotline.providers.stt import deepgram_wire


class FramePipeline:
    # The three per-frame calls are bound once: attribute look-ups add up at 50 frames a
    # second per call.
    __slots__ = ("_is_speech", "_push", "_turn_frame", "turns")

    def __init__(self, vad: Vad, stt: SttStream, turns: TurnDetector) -> None:
        self._is_speech = vad.is_speech
        self._push = stt.push_audio
        self._turn_frame = turns.frame
        self.turns = turns

    def process(self, ulaw: bytes, t_ms: int) -> tuple[bool, TurnEvent | None]:
        """One inbound frame that arrived at ``t_ms`` on the server's monotonic clock (never the
        client's timestamp: ``agent.call.turns``): (voiced, turn event or None)."""
        pcm16 = ulaw_to_pcm16(ulaw)
        voiced = self._is_speech(pcm16)
        self._push(AudioChunk(ulaw, pcm16, voiced))
        return voiced, self._turn_frame(voiced, t_ms)


@runtime_checkable
class EndpointingStream(Protocol):
    """A recognition stream that also yields its vendor's own messages (``DeepgramSttStream``)."""

    def events(self) -> AsyncIterator[object]: ...


def utterance_ended(message: object) -> bool:
    """Whether a recogniser message says the caller's utterance is over: Deepgram's
    ``speech_final`` on a result with words (its endpointer saw the pause after them), or
    ``UtteranceEnd`` (no new word for ``utterance_end_ms``)."""
    if isinstance(message, deepgram_wire.Results):
        return message.speech_final and bool(message.transcript.strip())
    return isinstance(message, deepgram_wire.UtteranceEnd)


async def watch_endpoints(stream: EndpointingStream, on_final: Callable[[], object]) -> None:
    """Call ``on_final`` for every end of utterance ``stream`` reports, until it closes."""
    async for message in stream.events():
        if utterance_ended(message):
            on_final()
