"""One call's turns on a Deepgram stream, sans-I/O: commands and results in, events out.

``DeepgramSttStream`` owns the socket; this class owns what the results mean for the turn.
Offsets are bytes of 8 kHz mu-law since the stream began (the stream converts Deepgram's
per-connection times); ``voiced_end`` is the offset just after the last frame the VAD called
voiced.

A turn is the audio between two ``finalize()`` calls. Its text is its ``is_final`` segments
with words, joined, plus the latest interim while one is open. ``Finalize`` (Deepgram's flush:
everything buffered becomes final, answered by a result marked ``from_finalize``) is sent for
two reasons, each placed after the audio pushed so far:

* ``pause()``: the caller is silent inside the turn. Only when a frame was voiced since the
  turn began or since the previous pause (a second pause over the same silence, or a pause
  with no speech at all, sends nothing). Its answer makes ``Heard(final=True)`` and is kept.
* ``finalize()``: the turn has ended. After a pause with no voiced frame since, nothing is
  sent: the turn's text is the kept one, returned at once when the pause has been answered,
  or with that answer when it is still in flight (results Deepgram sends later about audio
  before the turn's end are dropped: the VAD heard no speech there). Otherwise a Finalize
  goes out and the turn's text (kept words + the rest) comes with its answer.

Deepgram answers each Finalize with one ``from_finalize`` result (the emulator always does;
the vendor's docs say "may": an unanswered one is caught by the stream's finalize timeout).
Answers come in order, so the oldest unanswered Finalize is the one answered.

Events (``providers.base``): a ``Heard`` for every result that changes the turn's text or its
finality while no ``finalize()`` waits; ``SpeechEnded`` for Deepgram's own end of speech
(``speech_final`` on a result with words, not a flush's answer; ``UtteranceEnd``) when it
concerns audio of this turn: a late ``UtteranceEnd`` of the previous turn would otherwise end
the next one as soon as it began.
"""

from __future__ import annotations

import logging
from collections import deque

from slotline.providers.base import Heard, SpeechEnded, SttEvent, Transcript
from slotline.providers.stt import deepgram_wire as wire

logger = logging.getLogger(__name__)


class DeepgramTurn:
    """The current turn: its segments, the Finalizes it waits on, the events it causes."""

    __slots__ = ("_call_sid", "_ends_at", "_finals", "_heard", "_interim", "_paused_to",
                 "_pending", "_sent", "_start", "finalizing")

    def __init__(self, call_sid: str = "") -> None:
        self._call_sid = call_sid
        self._finals: list[wire.Results] = []  # this turn's is_final segments with words
        self._interim = ""
        self._pending: deque[int] = deque()  # offsets of unanswered Finalizes, oldest first
        self._sent = 0  # how many of them (oldest first) went out on the current connection
        self._start = 0  # where this turn's audio begins
        self._paused_to: int | None = None  # where this turn's latest pause put its Finalize
        self._heard: Heard | None = None  # the last Heard sent for this turn
        self._ends_at = 0  # where the turn being finalized ends (the next one begins)
        self.finalizing = False  # a finalize() waits for the turn's text

    # ---- commands ------------------------------------------------------------------------------

    def pause(self, end: int, voiced_end: int) -> bool:
        """The caller paused with ``end`` bytes pushed: True if a Finalize is now due there."""
        if self.finalizing:
            return False
        if voiced_end <= (self._start if self._paused_to is None else self._paused_to):
            return False  # nothing said since the turn began or since the last pause
        self._paused_to = end
        self._pending.append(end)
        self._heard = None  # its answer is news even when it says what was last said ("")
        return True

    def owes_words(self) -> bool:
        """A pause's Finalize not answered yet, while no ``finalize()`` waits."""
        return bool(self._pending) and not self.finalizing

    @property
    def ends_at(self) -> int:
        """Where the turn being finalized (or the last one) ends."""
        return self._ends_at

    def finalize(self, end: int, voiced_end: int) -> Transcript | None:
        """The turn ended with ``end`` bytes pushed: its transcript if it is known now, else
        None and ``on_results`` returns it once the pending Finalizes are answered."""
        self.finalizing, self._ends_at = True, end
        if self._paused_to is None or voiced_end > self._paused_to:
            self._pending.append(end)  # speech the recogniser has not flushed yet
        elif not self._pending:
            return self._end_turn()  # the pause's answer is the turn's text
        return None

    def due(self) -> int | None:
        """Where the next Finalize not yet sent on this connection goes (None: none owed)."""
        return self._pending[self._sent] if self._sent < len(self._pending) else None

    def sent(self) -> None:
        """The Finalize ``due()`` named went out."""
        self._sent += 1

    def reconnected(self) -> None:
        """A new connection: every unanswered Finalize goes again, at its place in the replay;
        an interim of the lost connection will never be finalized there."""
        self._sent = 0
        self._interim = ""

    def timed_out(self) -> Transcript:
        """No answer in time: the turn is what it has (interim included), Finalizes dropped."""
        transcript = self._end_turn(interim=self._interim)
        self._pending.clear()
        self._sent = 0
        return transcript

    # ---- results -------------------------------------------------------------------------------

    def on_results(
        self, message: wire.Results, end: int, voiced_end: int
    ) -> tuple[list[SttEvent], Transcript | None]:
        """``message`` covers audio up to offset ``end``: (events, the turn's transcript if
        this result ended a ``finalize()``)."""
        events: list[SttEvent] = []
        if end <= self._start and not message.from_finalize:
            # Audio of a turn that already ended: one finalize() returned at once after a
            # pause, and Deepgram went on with the (unvoiced) audio before the turn's end.
            return events, None
        if not message.is_final:
            self._interim = message.transcript
        else:
            self._interim = ""
            if message.transcript:
                self._finals.append(message)
            if message.from_finalize:
                if self._sent == 0:  # not ours: the words stay in the turn
                    logger.warning("unrequested from_finalize result call_sid=%s",
                                   self._call_sid)
                else:  # everything before the Finalize is flushed, whatever span the
                    # result names (an empty one may name none): its words cover that much
                    end = max(end, self._pending.popleft())
                    self._sent -= 1
                    if self.finalizing and not self._pending:
                        return events, self._end_turn()
            elif message.speech_final and message.transcript.strip() and end > self._start:
                events.append(SpeechEnded())
        if self.finalizing:
            return [], None
        final = message.is_final and not self._pending and voiced_end <= end
        heard = Heard(self.text(), final)
        if heard != self._heard:
            self._heard = heard
            events.insert(0, heard)
        return events, None

    def on_utterance_end(self, last_word_end: int) -> list[SttEvent]:
        """``UtteranceEnd`` whose last word ended at offset ``last_word_end``."""
        if self.finalizing or last_word_end <= self._start:
            return []
        return [SpeechEnded()]

    def text(self) -> str:
        """The turn so far: its final segments and the open interim."""
        if not self._finals:
            return self._interim
        return " ".join([*(final.transcript for final in self._finals), self._interim]).strip()

    def _end_turn(self, *, interim: str = "") -> Transcript:
        finals = self._finals
        confidence = sum(final.confidence for final in finals) / len(finals) if finals else None
        text = " ".join([*(final.transcript for final in finals), interim]).strip()
        self._finals, self._interim, self._heard = [], "", None
        self._start, self._paused_to, self.finalizing = self._ends_at, None, False
        return Transcript(text=text, is_final=True, confidence=confidence)
