"""When to start the reply's model request before the caller's turn has ended.

A turn ends after ``end_silence_ms`` of silence (or the recogniser's endpoint), and only then
is the final transcript asked for; a model request started after that adds its whole time to
first token to the caller's wait. Most pauses of ``after_ms`` are the end of the turn, and by
then the interim transcript holds the words, so the request can start on those
(``Anticipating.anticipate``). Safety is the responder's: it uses the early request only if the
final words ask exactly the same (``agent.flow.anticipate``).

Rules, per caller turn (only while the caller holds the floor — frames over the agent's voice
are barge-in's business):
- after speech, ``after_ms`` of silence with words heard: anticipate those words;
- words changing later in the same pause (a late interim): anticipate the new words;
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
    __slots__ = ("_after", "_anticipate", "_forget", "_silent", "_spoke", "_started", "words")

    def __init__(
        self, after_ms: int, anticipate: Callable[[str], bool], forget: Callable[[], None]
    ) -> None:
        self._after = max(1, -(-after_ms // FRAME_MS))  # frames of silence, rounded up
        self._anticipate = anticipate
        self._forget = forget
        self._silent = 0
        self._spoke = False  # this turn has had speech
        self._started = ""  # the words anticipated in this pause ("" for none)
        self.words = ""  # the interim transcript of this turn so far

    def frame(self, voiced: bool) -> None:
        if voiced:
            if not self._spoke:
                self._spoke, self.words = True, ""  # a late interim of the last turn is stale
            self._silent = 0
            if self._started:
                self._started = ""
                self._forget()
            return
        if not self._spoke:
            return
        self._silent += 1
        if self._silent == self._after:
            self._start()

    def heard(self, words: str) -> None:
        """The recogniser's interim transcript of this turn so far."""
        self.words = words
        if self._spoke and self._silent >= self._after and words != self._started:
            self._start()

    def turn_ended(self) -> None:
        self._spoke, self._silent, self._started = False, 0, ""

    def _start(self) -> None:
        words = self.words.strip()
        if words and self._anticipate(words):
            self._started = self.words
