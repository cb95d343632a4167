"""Streamed model text cut into clauses, so speech can start before the model has finished.

A model writes a line at ~50 tokens a second; a two-sentence line takes a second or more to
arrive. Waiting for the whole line before synthesis would add all of that to what the caller
waits. :class:`ClauseSplitter` instead hands out each clause as soon as its end is certain:

- a sentence end: ``.``, ``?`` or ``!`` (closing quotes or brackets may follow) and then
  whitespace — the whitespace is what makes it certain ("3.5" and "example.com" go on);
- a ``;``;
- a ``,`` followed by whitespace once the clause holds at least ``min_words`` words ("so, "
  mid-line would be a choppy TTS request; "I can book that for you, " is worth starting) —
  except in a line's first clause, which the caller is waiting for in silence: there
  ``first_min_words`` (1) is enough, so an opener ("Sure, ", "Thank you, ") is spoken while the
  rest is written, ~100 ms sooner than the whole first clause at 50 tokens a second. Later
  clauses are heard while the opener plays, so they can wait for their words.

A period after a title or an initial is no sentence end ("Dr. Smith", "J. Smith", "e.g. this",
"3 p.m. on Tuesday"). Sans-I/O: text in, clauses out; no clock, no tasks.
"""

from __future__ import annotations

import re

# How many words before a comma a clause needs to be spoken on its own (the first clause of a
# line: FIRST_MIN_WORDS).
DEFAULT_MIN_WORDS = 4
FIRST_MIN_WORDS = 1

_SENTENCE_END = re.compile(r"[.!?]+[\"')\]]*(?=\s)")
_SEMICOLON = re.compile(r";")
_COMMA = re.compile(r",(?=\s)")
_WORD = re.compile(r"[^\W_]+(?:['’.-][^\W_]+)*")
# Titles after which a period does not end a sentence (compared in lower case, without ".").
_TITLES = frozenset(("mr", "mrs", "ms", "dr", "st", "prof", "jr", "sr", "mt", "vs"))


def _no_sentence_end(text: str, dot: int) -> bool:
    """Whether the period at ``text[dot]`` closes a title or an initial, not a sentence."""
    start = dot
    while start > 0 and not text[start - 1].isspace():
        start -= 1
    word = text[start:dot]
    if not word:
        return False
    bare = word.lower()
    if bare in _TITLES:
        return True
    # one letter ("J.") or dotted letters ("e.g", "p.m", "U.S"): initials and abbreviations
    return re.fullmatch(r"(?:[^\W\d_]\.)*[^\W\d_]", word) is not None


def words_in(text: str) -> int:
    return len(_WORD.findall(text))


class ClauseSplitter:
    """``feed(delta) -> [clause, ...]`` as the text streams; ``flush()`` the rest at its end.
    Clauses are stripped and never empty; joined with spaces they are the text's words."""

    __slots__ = ("_buffer", "_later_min_words", "_min_words")

    def __init__(
        self, min_words: int = DEFAULT_MIN_WORDS, first_min_words: int | None = FIRST_MIN_WORDS
    ) -> None:
        """``first_min_words``: the first clause's (None: ``min_words`` for every clause)."""
        first = min_words if first_min_words is None else first_min_words
        if min(min_words, first) < 1:
            raise ValueError("min_words must be at least 1")
        self._min_words = first
        self._later_min_words = min_words
        self._buffer = ""  # a clause is short: rescanning it per token costs nothing

    @property
    def pending(self) -> str:
        """Text received that is not yet part of a clause."""
        return self._buffer

    def feed(self, text: str) -> list[str]:
        self._buffer += text
        found: list[str] = []
        while (end := self._boundary()) is not None:
            clause = self._buffer[:end].strip()
            self._buffer = self._buffer[end:].lstrip()
            if clause:
                found.append(clause)
                self._min_words = self._later_min_words
        return found

    def flush(self) -> list[str]:
        """The last clause (the text after the last boundary), if any."""
        rest, self._buffer = self._buffer.strip(), ""
        return [rest] if rest else []

    def _boundary(self) -> int | None:
        """The index just past the first certain clause end, or None."""
        text = self._buffer
        position = 0
        while True:
            ends = [m for m in (_SENTENCE_END.search(text, position),
                                _SEMICOLON.search(text, position),
                                _COMMA.search(text, position)) if m is not None]
            if not ends:
                return None
            first = min(ends, key=lambda m: m.start())
            if first.re is _COMMA and words_in(text[: first.start()]) < self._min_words:
                position = first.end()
                continue
            if first.re is _SENTENCE_END and text[first.start()] == "." \
                    and first.end() - first.start() == 1 and _no_sentence_end(text, first.start()):
                position = first.end()
                continue
            return first.end()
