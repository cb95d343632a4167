"""Person names: "my name is john smith", "it's jane doe", "this is sam", "i'm ...", or a bare
"john smith"; letters spelled out ("j o h n") are joined. Output is title-cased."""

from __future__ import annotations

from collections.abc import Sequence

from slotline.providers.base import SpeechHints

from .extraction import Context, Extraction
from .normalize import FILLERS, NUMBER_WORDS, ORDINAL_UNITS, find_phrase, tokens
from .vocab import FIRST_NAMES, LAST_NAMES, MONTHS, WEEKDAYS

MAX_NAME_WORDS = 4
_TITLES = frozenset(("dr", "doctor", "mr", "mister", "mrs", "ms", "miss", "missus"))
_PREFIXES = tuple(
    tuple(p.split())
    for p in (
        "my name is", "my name's", "the name is", "name is", "name's", "this is", "it's",
        "it is", "its", "i'm", "i am", "call me", "that's", "that is", "here is",
    )
)
_LEADING = frozenset((
    "hi", "hello", "hey", "yes", "yeah", "sure", "okay", "ok", "oh", "well", "so", "um", "uh",
    "er", "sorry", "yep", "alright",
))
_TRAILING = frozenset(("please", "thanks", "thank", "you", "here", "speaking", "calling"))
# What may follow an introduced name: the sentence going on ("... and i'd like to book",
# "... from acme"); any other word after it makes the name unreadable (see ``_name_words``).
_GOES_ON = frozenset(("and", "i", "i'm", "i'd", "i'll", "i've", "from", "with", "but",
                      "so", "just", "again"))
_NAME_MONTHS = frozenset(("april", "june", "august"))  # months that are also first names
_NOT_NAMES = frozenset((
    # answers, fillers, courtesy
    "yes", "yeah", "yep", "yup", "no", "nope", "nah", "not", "sure", "okay", "ok", "right",
    "correct", "fine", "good", "great", "perfect", "alright", "hi", "hello", "hey", "bye",
    "goodbye", "please", "thanks", "thank", "sorry", "excuse", "pardon", "huh", "what", "wait",
    "hold", "on", "maybe", "actually", "really", "just", "well", "oh", "um", "uh", "hmm",
    # pronouns, articles, prepositions, conjunctions, auxiliaries
    "i", "i'm", "i'd", "i'll", "i've", "me", "my", "mine", "you", "your", "we", "us", "our",
    "he", "she", "they", "them", "it", "it's", "its", "this", "that", "these", "those", "there",
    "here", "a", "an", "the", "and", "or", "but", "of", "to", "in", "at", "for", "with", "from",
    "by", "about", "as", "is", "am", "are", "was", "were", "be", "been", "do", "does", "did",
    "don't", "doesn't", "can", "can't", "could", "would", "will", "won't", "should", "may",
    "might", "must", "have", "has", "had", "who", "whom", "whose", "why", "how", "when", "where",
    "which", "if", "then", "so", "too", "also", "very", "some", "any", "all", "none", "nothing",
    "something", "anything", "everything", "someone", "anyone", "nobody", "somebody", "one",
    # verbs and nouns a booking call is made of
    "want", "wanted", "like", "need", "book", "booking", "cancel", "move", "change",
    "reschedule", "schedule", "know", "think", "call", "calling", "speak", "speaking", "talk",
    "looking", "get", "make", "check", "see", "tell", "say", "said", "repeat", "again", "help",
    "appointment", "meeting", "consultation", "visit", "time", "date", "day", "week", "month",
    "email", "phone", "number", "name", "address", "today", "tomorrow", "tonight", "morning",
    "afternoon", "evening", "noon", "later", "now", "soon", "next", "last", "first",
    "person", "someone", "human", "agent", "operator", "representative", "customer", "free",
    "busy", "available", "works", "work", "sounds", "mind", "problem", "wrong", "busy",
    *WEEKDAYS, *(m for m in MONTHS if m not in _NAME_MONTHS), *NUMBER_WORDS, *ORDINAL_UNITS,
    *FILLERS,
))


def extract_name(text: str, ctx: Context) -> Extraction | None:
    toks = _join_spelled(tokens(text))
    after_prefix = _after_first_prefix(toks)
    if after_prefix is not None:
        return _extraction(_name_words(toks, after_prefix), 0.9)
    words = list(toks)
    while words and (words[0] in _LEADING or words[0] in _TITLES):
        words.pop(0)
    while words and words[-1] in _TRAILING:
        words.pop()
    if not 1 <= len(words) <= MAX_NAME_WORDS or not all(_is_name_word(w) for w in words):
        return None
    return _extraction(words, 0.7)


def _after_first_prefix(toks: Sequence[str]) -> int | None:
    """The index after the earliest prefix ("my name is" beats "name is" at the same place)."""
    best: tuple[int, int] | None = None
    for prefix in _PREFIXES:
        at = find_phrase(toks, prefix)
        if at >= 0 and (best is None or (at, -len(prefix)) < (best[0], best[0] - best[1])):
            best = (at, at + len(prefix))
    return best[1] if best is not None else None


def _name_words(toks: Sequence[str], start: int) -> list[str]:
    i = start
    while i < len(toks) and (toks[i] in FILLERS or toks[i] in _TITLES):
        i += 1
    words: list[str] = []
    while i < len(toks) and len(words) < MAX_NAME_WORDS and _is_name_word(toks[i]):
        if not words or toks[i] != words[-1]:  # "smith s m i t h" spells the same word
            words.append(toks[i])
        i += 1
    if i < len(toks) and toks[i] not in _TRAILING and toks[i] not in _GOES_ON:
        # "my name is emma paul to", "it's olivia at first one": words no one says after a
        # name are what a recogniser makes of a name it does not know; the name is not read
        return []
    return words


def _is_name_word(word: str) -> bool:
    return len(word) >= 2 and word.replace("'", "").isalpha() and word not in _NOT_NAMES


def _join_spelled(toks: Sequence[str]) -> tuple[str, ...]:
    """Runs of two or more single letters ("j o h n") become one word."""
    out: list[str] = []
    run: list[str] = []
    for token in (*toks, ""):
        if len(token) == 1 and token.isalpha():
            run.append(token)
            continue
        if len(run) >= 2:
            out.append("".join(run))
        else:
            out.extend(run)
        run = []
        if token:
            out.append(token)
    return tuple(out)


def _extraction(words: Sequence[str], confidence: float) -> Extraction | None:
    if not words:
        return None
    return Extraction(value=" ".join(_title(w) for w in words), confidence=confidence)


def _title(word: str) -> str:
    """ "o'brien" -> "O'Brien", "smith" -> "Smith"."""
    return "'".join(part[:1].upper() + part[1:] for part in word.split("'"))


def hints() -> SpeechHints:
    pairs = tuple(zip(FIRST_NAMES, LAST_NAMES * 2, strict=False))
    phrases = (
        *(f"my name is {first} {last}" for first, last in pairs),
        *(f"it's {first} {last}" for first, last in pairs[:10]),
        *(f"this is {first}" for first in FIRST_NAMES[:10]),
        *FIRST_NAMES,
    )
    return SpeechHints(phrases=phrases)
