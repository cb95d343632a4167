"""Spoken-form normalisation shared by the extractors: tokens, and numbers said as words.

Speech-to-text output is lower-case words without punctuation, with numbers as words ("ten
thirty", "twenty third"); a cloud recogniser may instead write numerals ("10:30", "23rd",
"555-123-4567"). The tokeniser keeps both forms, so each extractor reads one token stream.
Everything here is pure and linear in the length of the (capped) input.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

MAX_INPUT_CHARS = 240
"""A caller's turn is a sentence or two. Longer text is cut so that no extractor, and above all
dateparser, ever sees a paragraph of recogniser garbage."""

_TOKEN_RE = re.compile(
    r"\d+(?:[/-]\d+)+"  # 12/1, 2026-12-01, 555-123-4567: kept whole, split by whoever needs to
    r"|\d+(?::\d+|\.\d+)?(?:st|nd|rd|th)?"  # 10:30, 2.5, 23rd, 5551234567
    r"|[a-z]+(?:'[a-z]+)*"  # words, it's, o'clock
    r"|[@+]"
)

UNITS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9,
}
TEENS = {
    "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
    "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
}
TENS = {
    "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
    "eighty": 80, "ninety": 90,
}
_SCALES = {"thousand": 1_000, "million": 1_000_000}
ORDINAL_UNITS = {
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7,
    "eighth": 8, "ninth": 9,
}
ORDINAL_TEENS = {
    "tenth": 10, "eleventh": 11, "twelfth": 12, "thirteenth": 13, "fourteenth": 14,
    "fifteenth": 15, "sixteenth": 16, "seventeenth": 17, "eighteenth": 18, "nineteenth": 19,
}
ORDINAL_TENS = {
    "twentieth": 20, "thirtieth": 30, "fortieth": 40, "fiftieth": 50, "sixtieth": 60,
    "seventieth": 70, "eightieth": 80, "ninetieth": 90,
}
NUMBER_WORDS = frozenset((*UNITS, *TEENS, *TENS, "hundred", *_SCALES))
FILLERS = frozenset(("uh", "um", "er", "erm", "hmm", "hm", "mm", "ah", "oh", "like", "so", "well"))
# Words that negate what follows ("not great", "not at one", "i can't do friday"); "no" is not
# one of them: "no, at three" asks for three.
NEGATORS = frozenset((
    "not", "don't", "dont", "doesn't", "isn't", "wasn't", "won't", "can't", "cannot", "never",
))


def negated(toks: Sequence[str], i: int, *, within: int = 2,
            by: frozenset[str] = NEGATORS) -> bool:
    """Whether one of ``by`` is among the ``within`` words before ``toks[i]``."""
    return not by.isdisjoint(toks[max(0, i - within) : i])

_ORDINAL_NUMERAL_RE = re.compile(r"(\d+)(?:st|nd|rd|th)")
_NUMBER_NAMES = {value: word for word, value in (*UNITS.items(), *TEENS.items(), *TENS.items())}
_ORDINAL_NAMES = {
    value: word
    for word, value in (*ORDINAL_UNITS.items(), *ORDINAL_TEENS.items(), *ORDINAL_TENS.items())
}


def tokens(text: str) -> tuple[str, ...]:
    """Lower-case word and numeral tokens of ``text`` (capped at :data:`MAX_INPUT_CHARS`)."""
    lowered = text[:MAX_INPUT_CHARS].lower().replace("\u2019", "'")
    return tuple(_TOKEN_RE.findall(lowered))


def parse_cardinal(toks: Sequence[str], start: int) -> tuple[int, int] | None:
    """The whole number said at ``toks[start]`` and the index after it, or None.

    Greedy but grammatical: "twenty five" is 25, "one hundred and five" 105, "nineteen
    hundred" 1900; "five five" stops after the first five and "ten thirty" after the ten, so a
    caller reading digits or a clock time gets one number per group.
    """
    n = len(toks)
    if start >= n:
        return None
    if toks[start].isdigit():
        return int(toks[start]), start + 1
    i = start
    total = 0
    group = 0
    last = ""  # kind of the previous number word: unit, teen, tens, hundred, scale
    if toks[i] == "a" and i + 1 < n and (toks[i + 1] == "hundred" or toks[i + 1] in _SCALES):
        group, last, i = 1, "unit", i + 1
    while i < n:
        word = toks[i]
        if word in UNITS:
            if last not in ("", "tens", "hundred", "scale") or (last == "tens" and word == "zero"):
                break
            group, last = group + UNITS[word], "unit"
        elif word in TEENS or word in TENS:
            if last not in ("", "hundred", "scale"):
                break
            group += TEENS.get(word) or TENS[word]
            last = "teen" if word in TEENS else "tens"
        elif word == "hundred":
            if last not in ("unit", "teen", "tens") or group >= 100:
                break
            group, last = group * 100, "hundred"
        elif word in _SCALES:
            if last in ("", "scale"):
                break
            total, group, last = total + group * _SCALES[word], 0, "scale"
        elif word == "and" and last in ("hundred", "scale"):
            following = toks[i + 1] if i + 1 < n else ""
            if following not in UNITS and following not in TEENS and following not in TENS:
                break
        else:
            break
        i += 1
    if not last:
        return None
    return total + group, i


def parse_ordinal(toks: Sequence[str], start: int) -> tuple[int, int] | None:
    """The ordinal said at ``toks[start]`` ("third", "twenty first", "23rd") and the next index."""
    if start >= len(toks):
        return None
    word = toks[start]
    numeral = _ORDINAL_NUMERAL_RE.fullmatch(word)
    if numeral:
        return int(numeral.group(1)), start + 1
    for table in (ORDINAL_UNITS, ORDINAL_TEENS, ORDINAL_TENS):
        if word in table:
            return table[word], start + 1
    if word in TENS and start + 1 < len(toks) and toks[start + 1] in ORDINAL_UNITS:
        return TENS[word] + ORDINAL_UNITS[toks[start + 1]], start + 2
    return None


def find_phrase(toks: Sequence[str], phrase: Sequence[str], start: int = 0) -> int:
    """Index of the first occurrence of the token sequence ``phrase`` at or after ``start``,
    or -1."""
    width = len(phrase)
    if width == 0:
        return -1
    first = phrase[0]
    for i in range(start, len(toks) - width + 1):
        if toks[i] == first and tuple(toks[i : i + width]) == tuple(phrase):
            return i
    return -1


def has_phrase(toks: Sequence[str], phrase: str) -> bool:
    return find_phrase(toks, phrase.split()) >= 0


def spoken_cardinal(value: int) -> str:
    """0-99 as words, the inverse of :func:`parse_cardinal` for grammar and phrase lists."""
    if value in _NUMBER_NAMES:
        return _NUMBER_NAMES[value]
    if not 0 < value < 100:
        raise ValueError(f"spoken_cardinal covers 0-99, not {value}")
    return f"{_NUMBER_NAMES[value - value % 10]} {_NUMBER_NAMES[value % 10]}"


def spoken_ordinal(value: int) -> str:
    """1-99 as an ordinal ("twenty first"), the inverse of :func:`parse_ordinal`."""
    if value in _ORDINAL_NAMES:
        return _ORDINAL_NAMES[value]
    if not 0 < value < 100:
        raise ValueError(f"spoken_ordinal covers 1-99, not {value}")
    return f"{_NUMBER_NAMES[value - value % 10]} {_ORDINAL_NAMES[value % 10]}"


_NUMERAL_RE = re.compile(r"(\d+)(?:(st|nd|rd|th)\b)?", re.IGNORECASE)  # "8", "8th"


def spell_numerals(text: str) -> str:
    """Digits in ``text`` as words ("10 am" -> "ten am", "December 8th" -> "December
    eighth"), for hint phrases built from configuration; numbers above 99 are left alone."""

    def words(match: re.Match[str]) -> str:
        value = int(match.group(1))
        if value >= 100:
            return match.group(0)
        return spoken_ordinal(value) if match.group(2) else spoken_cardinal(value)

    return _NUMERAL_RE.sub(words, text)

