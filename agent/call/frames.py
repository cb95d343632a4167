"""The per-frame inbound path, shared by the call session and the frame-cost benchmark.

Every 20 ms of every call: decode mu-law, ask the VAD, hand the frame to the recogniser, tell
whether a voiced frame is loud (``audio.loudness``), feed the turn detector. Synchronous and
allocation-light on purpose: it runs on the event loop.

    Twilio frame ─▶ mu-law → PCM ─▶ VAD ─▶ recogniser.push_audio
                                     └──▶ loud? ─▶ TurnDetector.frame ─▶ event for the session
                                                       │ Paused
                                                       ├──▶ recogniser.pause()  (finish early,
                                                       │     where the early words are read)
                                                       └──▶ the turn's audio ─▶ TurnEndModel
    recogniser.events() ─▶ watch(): Heard ─▶ completeness ─▶ TurnDetector.heard
                                    SpeechEnded ─────────▶ TurnDetector.stt_final
    TurnEndModel verdict (watch's task) ─────────────────▶ TurnDetector.model_said

``listen(action)`` sets, for the caller's next turn, the recogniser's hints, the detector's
patience and the kind of answer the words are judged against (``agent.flow.completeness``).

``watch()`` (one task of the call) follows the recogniser's vendor-neutral events
(``providers.base.SttEvent``): the words so far (``Heard``) are judged and handed to the
detector, the vendor's own end of utterance (``SpeechEnded``) becomes
``TurnDetector.stt_final()``, so the turn ends on silence, STT finality, a complete answer or the
model, whichever comes first (rules in ``agent.call.turns``).

The recogniser is asked to finish early at every pause, whatever the question: its early words
are judged (a whole answer, a refusal, "hold on" end the turn after a short silence) and, when
the turn ends on silence instead, they are its transcript at once. A vendor's endpointer no
longer says the utterance ended once its audio has been flushed (a Deepgram ``Finalize``
answers before its ``speech_final``), which costs little: the endpointer's ``speech_final``
comes ~300 ms after the words plus the vendor's delay, about when the silence ends the turn,
and that turn then waited for one more Finalize (``slotline bench``'s open-question turn:
600 ms of silence + ~170 ms for the transcript before, 600 ms after).

The end-of-turn model (``TurnEndModel``, for open questions): the pipeline keeps the last
``MODEL_AUDIO_MS`` of the caller's audio in a ring allocated once; at a pause it copies the
turn's part out and hands it to ``watch``'s task, which awaits the model and tells the detector.
Nothing of that runs in the frame path but the 320-byte copy into the ring.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Protocol, runtime_checkable

from slotline.agent.call.responder import Listen
from slotline.agent.call.turns import (
    Paused,
    SpeechDropped,
    SpeechStarted,
    TurnDetector,
    TurnEnded,
    TurnEvent,
)
from slotline.agent.flow.backchannel import is_backchannel
from slotline.agent.flow.completeness import Completeness, Expected, classify, expected
from slotline.audio.framing import FRAME_MS
from slotline.audio.loudness import LoudFrames
from slotline.audio.mulaw import ulaw_to_pcm16
from slotline.audio.pitch import pitched as pitched_frame
from slotline.audio.vad import Vad
from slotline.providers.base import (
    AudioChunk,
    Heard,
    PlainSttStream,
    SpeechEnded,
    SttEvent,
    with_events,
)

log = logging.getLogger(__name__)

MODEL_AUDIO_MS = 8_000  # what an end-of-turn model sees at most: the turn's last 8 s
_PCM_BYTES_PER_MS = 16  # 8 kHz, 16-bit mono
_RING_BYTES = MODEL_AUDIO_MS * _PCM_BYTES_PER_MS
# Questions whose answer no extractor reads: the words cannot say the caller is done, the
# end-of-turn model may.
_OPEN_KINDS = frozenset(("", "text"))


class TurnEndModel(Protocol):
    """An audio end-of-turn model (Smart Turn): whether the caller sounds finished."""

    async def complete(self, pcm16_8k: bytes) -> float:
        """The probability that the caller has finished their turn, given the turn's audio so
        far (16-bit little-endian PCM at 8 kHz, at most the last ``MODEL_AUDIO_MS``). Must not
        block the event loop (run inference elsewhere)."""
        ...


class FramePipeline:
    # The per-frame calls are bound once: attribute look-ups add up at 50 frames a second per
    # call.
    __slots__ = (
        "_backchannel",
        "_expected",
        "_is_loud",
        "_is_speech",
        "_kind",
        "_loudness",
        "_model",
        "_pause",
        "_pending",
        "_push",
        "_region",
        "_ring",
        "_ring_filled",
        "_ring_pos",
        "_stt",
        "_text",
        "_turn_frame",
        "_wake",
        "_words",
        "turns",
    )

    def __init__(
        self,
        vad: Vad,
        stt: PlainSttStream,
        turns: TurnDetector,
        turn_model: TurnEndModel | None = None,
    ) -> None:
        """``stt``: the call's recognition stream; one written before ``pause()`` and
        ``events()`` is wrapped (``providers.base.with_events``): it never pauses, and its
        interims are its words."""
        stt = with_events(stt)
        self._is_speech = vad.is_speech
        self._push = stt.push_audio
        self._turn_frame = turns.frame
        self._loudness = LoudFrames()
        self._is_loud = self._loudness.loud_pcm16
        self._stt = stt
        self._pause = stt.pause
        self.turns = turns
        self._kind = ""
        self._region = "US"
        self._expected: Expected = {}  # the question's hint phrases (completeness.expected)
        self._text: str | None = None  # the words last judged, and how complete they were
        self._words: Completeness = "unknown"
        self._backchannel: bool | None = None  # whether ``_text`` is one (None: not judged)
        self._model = turn_model
        self._ring = bytearray(_RING_BYTES if turn_model is not None else 0)
        self._ring_pos = 0
        self._ring_filled = 0  # bytes of the current turn in the ring
        self._pending: tuple[Paused, bytes] | None = None  # a pause for the model to judge
        self._wake = asyncio.Event()

    def process(self, ulaw: bytes, t_ms: int) -> tuple[bool, TurnEvent | None]:
        """One inbound frame that arrived at ``t_ms`` on the server's monotonic clock (never the
        client's timestamp: ``agent.call.turns``): (voiced, turn event or None)."""
        pcm16 = ulaw_to_pcm16(ulaw)
        voiced = self._is_speech(pcm16)
        self._push(AudioChunk(ulaw, pcm16, voiced))
        loud = voiced and self._is_loud(pcm16)
        if self._model is not None:
            self._record(pcm16)
        # the pitch decides only a barge-in: measured on loud frames over the agent (~20 µs),
        # until the barge-in is sent
        turns = self.turns
        pitched = (not turns.agent_speaking or turns.interrupting
                   or (loud and pitched_frame(pcm16)))
        event = self._turn_frame(voiced, t_ms, loud, pitched)
        if event is not None:
            self._on_event(event, t_ms)
        return voiced, event

    def listen(self, action: Listen) -> None:
        """What the caller's next turn is expected to hold (the module docstring)."""
        self._stt.set_hints(action.hints)
        self.turns.patience = action.patience
        self.turns.open_question = action.kind in _OPEN_KINDS
        self._kind = action.kind
        self._region = action.region or "US"
        self._expected = expected(action.hints.phrases)
        self._text = None

    @property
    def answer_kind(self) -> str:
        """The extractor kind the caller's turn is judged against ("" for an open question)."""
        return self._kind

    @property
    def answer_region(self) -> str:
        """Where a phone number in the caller's turn is read (ISO country)."""
        return self._region

    def heard(self, text: str, final: bool) -> None:
        """The recogniser's words of the current turn so far (``providers.base.Heard``)."""
        if text != self._text:  # interims repeat themselves; judging costs tens of µs
            self._text = text
            self._words = classify(self._kind, text, region=self._region,
                                   listening_for=self._expected)
            self._backchannel = None  # judged only over the agent, when asked
        words = self._words
        if self.turns.interrupting and (not text or self._only_backchannel(text)):
            # "uh-huh" over the agent (or what the recogniser made of it: "the", "m m a
            # trim"), or no words at all (a cough): a whole turn, soon over, so the floor
            # resumes the reply after the short silence of a complete answer, not the
            # question's long one
            words = "complete"
        elif not text and words == "unknown":
            final = False  # no words at an open question answer nothing: the silence decides
        self.turns.heard(words, final)

    def _only_backchannel(self, text: str) -> bool:
        """Whether ``text`` (the words last judged, ``_text``) is only a backchannel."""
        if self._backchannel is None:
            self._backchannel = is_backchannel(text, kind=self._kind, region=self._region)
        return self._backchannel

    async def watch(self) -> None:
        """Follow the recogniser's events, and judge pauses with the end-of-turn model, until
        the stream ends or this task is cancelled (the session runs it for the whole call)."""
        # Not a TaskGroup: on Python 3.11 a TaskGroup left by cancellation (as this task is at
        # every call's end) keeps the CancelledError, its traceback and its own frame in a
        # reference cycle, and the call's objects with it until a full garbage scan.
        judging = None
        if self._model is not None:
            judging = asyncio.get_running_loop().create_task(self.judge_pauses(), name="turn-model")
            judging.add_done_callback(_judging_ended)
        try:
            async for event in self._stt.events():
                if isinstance(event, Heard):
                    self.heard(event.text, event.final)
                elif isinstance(event, SpeechEnded):
                    self.turns.stt_final()
        finally:
            if judging is not None:
                judging.cancel()
                await asyncio.wait([judging])

    async def judge_pauses(self) -> None:
        """Run the end-of-turn model on each pause of an open question, until cancelled; a
        verdict that comes after the caller went on is ignored (``TurnDetector.model_said``)."""
        model = self._model
        if model is None:
            return
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._pending is None:
                continue
            paused, pcm = self._pending
            self._pending = None
            try:
                probability = await model.complete(pcm)
            except Exception as exc:  # a broken model costs speed, not the call: silence ends it
                log.warning("end-of-turn model failed, the silence decides: %r", exc)
                continue
            self.turns.model_said(probability, paused)

    def _on_event(self, event: TurnEvent, t_ms: int) -> None:
        if isinstance(event, Paused):
            self._pause()  # the recogniser finishes early: the words are there at the end
            if self._kind in _OPEN_KINDS and self._model is not None:
                self._pending = (event, self._turn_audio())
                self._wake.set()
        elif isinstance(event, TurnEnded | SpeechDropped):
            self._loudness.reset()  # a new utterance: loud against its own loudest frame
            self._ring_filled = 0
            self._pending = None
            self._text = None
            self._words = "unknown"
        elif isinstance(event, SpeechStarted):  # the turn's audio began at its first voiced frame
            turn_bytes = (t_ms - event.first_voiced_ms + FRAME_MS) * _PCM_BYTES_PER_MS
            self._ring_filled = min(self._ring_filled, max(turn_bytes, 0))

    def _record(self, pcm16: bytes) -> None:
        """Copy one frame into the ring (no allocation: slice assignment of equal length)."""
        ring, pos, size = self._ring, self._ring_pos, len(pcm16)
        end = pos + size
        if end <= _RING_BYTES:
            ring[pos:end] = pcm16
        else:  # wraps
            head = _RING_BYTES - pos
            ring[pos:] = pcm16[:head]
            ring[: size - head] = pcm16[head:]
            end -= _RING_BYTES
        self._ring_pos = end % _RING_BYTES
        self._ring_filled = min(self._ring_filled + size, _RING_BYTES)

    def _turn_audio(self) -> bytes:
        """The current turn's audio in the ring, oldest first (allocated once per pause)."""
        filled, pos = self._ring_filled, self._ring_pos
        start = pos - filled
        if start >= 0:
            return bytes(self._ring[start:pos])
        return bytes(self._ring[start:]) + bytes(self._ring[:pos])


# ---- the names the session used before ``watch()`` (kept until it calls ``watch()``) ------


@runtime_checkable
class EndpointingStream(Protocol):
    """A recognition stream with vendor-neutral events (every ``SttStream`` now)."""

    def events(self) -> AsyncIterator[SttEvent]: ...


def _judging_ended(task: asyncio.Task[None]) -> None:
    """Say at once when the end-of-turn model's task failed: the silence decides from then."""
    if not task.cancelled() and (error := task.exception()) is not None:
        log.error("the end-of-turn model stopped; the silence ends turns", exc_info=error)


async def watch_endpoints(stream: EndpointingStream, on_final: Callable[[], object]) -> None:
    """Call ``on_final`` for every end of utterance ``stream`` reports, until it closes.
    Superseded by ``FramePipeline.watch``, which also follows the words."""
    async for event in stream.events():
        if isinstance(event, SpeechEnded):
            on_final()
