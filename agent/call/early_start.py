"""When to start the reply's model request before the caller's turn has ended.

A turn ends after ``end_silence_ms`` of silence (or once the final words hold a whole answer),
and only then does the reply ask the model; a request started then adds its whole time to
first token to the caller's wait. At every pause the recogniser is asked to finish early
(``turn.speculate_ms``), so a little after the pause begins its words are *settled*: no word
is a guess it may revise, and they cover every voiced frame (``providers.base.Heard.final``).
Most such pauses are the end of the turn, so the request can start on those words
(``Anticipating.anticipate``). Safety is the responder's: it uses the early request only if the
final words ask exactly the same (``agent.flow.anticipate``).

Interim words are not used: they trail the caller (Deepgram sends them about once a second of
audio), so a request on them was almost always dropped and paid for twice.

Rules, per caller turn (only while the caller holds the floor — frames over the agent's voice
are barge-in's business):
- after speech, at least ``after_ms`` of silence and settled words: anticipate those words;
- other settled words later in the same pause (a late result): anticipate the new words;
- speech again: forget the anticipation (the caller went on talking);
- the turn ended: start afresh (the final transcript's reply adopts or drops it).
Sans-I/O and allocation-free per frame: one counter and two comparisons.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

from slotline.audio.framing import FRAME_MS


@runtime_checkable
class Anticipating(Protocol):
    """A responder that can start a reply's model request on interim words."""

    @property
    def can_anticipate(self) -> bool:
        """Whether it ever would (a model is configured)."""

    def anticipate(self, text: str) -> bool:
        """Start what ``text`` would ask the model, if anything; True if started."""

    def forget_anticipation(self) -> None: ...


class EarlyStart:
    __slots__ = ("_after", "_anticipate", "_forget", "_settled", "_silent", "_spoke", "_started",
                 "words")

    def __init__(
        self, after_ms: int, anticipate: Callable[[str], bool], forget: Callable[[], None]
    ) -> None:
        self._after = max(1, -(-after_ms // FRAME_MS))  # frames of silence, rounded up
        self._anticipate = anticipate
        self._forget = forget
        self._silent = 0
        self._spoke = False  # this turn has had speech
        self._started = ""  # the words anticipated in this pause ("" for none)
        self._settled = False  # ``words`` cover every voiced frame and will not change
        self.words = ""  # the recogniser's words of this turn so far

    def frame(self, voiced: bool) -> None:
        if voiced:
            if not self._spoke:
                self._spoke, self.words = True, ""  # late words of the last turn are stale
            self._silent, self._settled = 0, False
            if self._started:
                self._started = ""
                self._forget()
            return
        if not self._spoke:
            return
        self._silent += 1
        if self._silent == self._after:
            self._start()

    def heard(self, words: str, settled: bool) -> None:
        """The recogniser's words of this turn so far; ``settled``: ``Heard.final``."""
        self.words, self._settled = words, settled
        if settled and self._spoke and self._silent >= self._after and words != self._started:
            self._start()

    def turn_ended(self) -> None:
        self._spoke, self._silent, self._started, self._settled = False, 0, "", False

    def _start(self) -> None:
        if not self._settled:
            return
        words = self.words.strip()
        if words and self._anticipate(words):
            self._started = self.words
