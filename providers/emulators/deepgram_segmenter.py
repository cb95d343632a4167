"""How the Deepgram emulator cuts audio into results, sans-I/O: 20 ms frames in, events out.

``Segmenter.push(pcm16, voiced)`` takes one frame with its VAD decision and returns what it
caused: ``SpeechBegan`` (onset: ``_ONSET_FRAMES`` voiced frames in a row, the ``_PREROLL_FRAMES``
before it kept in the utterance), a ``Span`` to decode, and ``GapElapsed`` after
``utterance_end_ms`` without a voiced frame. ``flush`` closes the current final span (Finalize,
CloseStream). Times are ms of audio since the connection began.

When spans are cut, following Deepgram's documentation (interim results, endpointing):

* interims (``interim_results=true``) are cumulative from the start of the open final segment
  (the docs' example: 0-1.1 s, 0-2.1 s, 0-3.1 s, ...): one per ``interim_every_ms`` of audio
  (the documented ~1 s) while speech goes on, and one as soon as ``interim_pause_ms`` of
  silence follow words no interim has covered yet. The second is our reading of "transcripts
  trail the audio by the recogniser's latency": at a pause the service has the last words
  within its latency, not a second later at the next tick. ``None`` turns it off.
* a final (``is_final``) with ``speech_final`` after ``endpointing`` ms of silence; plain
  finals through a long silence or a monologue; ``flush`` for Finalize and CloseStream.

How late each span's result is sent (its lag behind the audio) is the session's business.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from slotline.audio.framing import FRAME_MS
from slotline.providers.emulators.deepgram_query import ListenParams

_ONSET_FRAMES = 2  # voiced frames in a row that start an utterance (one click is not speech)
_PREROLL_FRAMES = 10  # 200 ms before the onset go into the utterance: the VAD decides late
_IDLE_FINAL_MS = 3000  # Deepgram sends empty finals through long silences; so do we
_MAX_UTTERANCE_MS = 20_000  # a monologue is cut into finals this long


@dataclass(frozen=True, slots=True)
class SpeechBegan:
    at_ms: int


@dataclass(frozen=True, slots=True)
class Span:
    """Audio ``start_ms..end_ms`` (connection time) with speech in ``speech_*``; ``pcm16`` is
    the utterance to decode (None: no speech in the span). ``at_pause``: an interim cut
    because the caller paused (the session never drops one of those)."""

    pcm16: bytes | None
    start_ms: int
    end_ms: int
    speech_start_ms: int
    speech_end_ms: int
    is_final: bool
    speech_final: bool
    at_pause: bool = False


@dataclass(frozen=True, slots=True)
class GapElapsed:
    last_voiced_end_ms: int


SegmentEvent = SpeechBegan | Span | GapElapsed


class Segmenter:
    """Sans-I/O: 20 ms frames with a VAD decision in, segmentation events out."""

    def __init__(
        self, params: ListenParams, interim_every_ms: int, interim_pause_ms: int | None = None
    ) -> None:
        self.now_ms = 0
        self._endpointing_ms = (
            None if params.endpointing_ms is None else max(FRAME_MS, params.endpointing_ms)
        )
        self._interim_every_ms = interim_every_ms if params.interim_results else None
        self._interim_pause_ms = (
            None if interim_pause_ms is None or not params.interim_results
            else max(FRAME_MS, interim_pause_ms)
        )
        self._utterance_end_ms = params.utterance_end_ms if params.interim_results else None
        self._final_start_ms = 0
        self._preroll: deque[bytes] = deque(maxlen=_PREROLL_FRAMES)
        self._utterance: bytearray | None = None
        self._voiced_run = 0
        self._speech_start_ms = 0
        self._last_voiced_end_ms = 0
        self._since_interim_ms = 0
        self._voiced_since_interim = False
        self._gap_armed = False

    def push(self, pcm16: bytes, voiced: bool) -> list[SegmentEvent]:
        self.now_ms += FRAME_MS
        events: list[SegmentEvent] = []
        utterance = self._utterance
        if utterance is None:
            self._preroll.append(pcm16)
            self._voiced_run = self._voiced_run + 1 if voiced else 0
            if self._voiced_run >= _ONSET_FRAMES:
                self._utterance = bytearray(b"".join(self._preroll))
                self._preroll.clear()
                self._speech_start_ms = self.now_ms - _ONSET_FRAMES * FRAME_MS
                self._last_voiced_end_ms = self.now_ms
                self._since_interim_ms = 0
                self._gap_armed = True
                events.append(SpeechBegan(self._speech_start_ms))
            elif self.now_ms - self._final_start_ms >= _IDLE_FINAL_MS:
                events.append(self.flush(speech_final=False))
        else:
            utterance += pcm16
            if voiced:
                self._last_voiced_end_ms = self.now_ms
                self._voiced_since_interim = True
            silent_ms = self.now_ms - self._last_voiced_end_ms
            self._since_interim_ms += FRAME_MS
            if self._endpointing_ms is not None and silent_ms >= self._endpointing_ms:
                events.append(self.flush(speech_final=True))
            elif self.now_ms - self._speech_start_ms >= _MAX_UTTERANCE_MS:
                events.append(self.flush(speech_final=False))
            elif self._voiced_since_interim and self._interim_every_ms is not None:
                at_pause = (self._interim_pause_ms is not None
                            and silent_ms >= self._interim_pause_ms)
                if at_pause or self._since_interim_ms >= self._interim_every_ms:
                    self._since_interim_ms, self._voiced_since_interim = 0, False
                    events.append(self._span(bytes(utterance), is_final=False,
                                             speech_final=False, at_pause=at_pause))
        if (
            self._gap_armed
            and self._utterance_end_ms is not None
            and self.now_ms - self._last_voiced_end_ms >= self._utterance_end_ms
        ):
            self._gap_armed = False
            events.append(GapElapsed(self._last_voiced_end_ms))
        return events

    @property
    def unfinalized_ms(self) -> int:
        return self.now_ms - self._final_start_ms

    def flush(self, *, speech_final: bool) -> Span:
        """Close the current final span (endpoint, Finalize, CloseStream or a long silence)."""
        pcm16 = None if self._utterance is None else bytes(self._utterance)
        span = self._span(pcm16, is_final=True, speech_final=speech_final)
        self._final_start_ms = self.now_ms
        self._utterance = None
        self._voiced_run = 0
        self._preroll.clear()
        return span

    def _span(
        self, pcm16: bytes | None, *, is_final: bool, speech_final: bool, at_pause: bool = False
    ) -> Span:
        return Span(pcm16, self._final_start_ms, self.now_ms, self._speech_start_ms,
                    self._last_voiced_end_ms, is_final, speech_final, at_pause)
