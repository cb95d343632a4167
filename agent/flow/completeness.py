"""Whether the words heard so far already hold the answer a question waits for.

The turn detector (``agent.call.turns``) ends a caller's turn after a fixed silence. A question
knows more: after "what day suits you?", "next tuesday" is a whole answer and 200 ms of silence
is enough; "next tuesday at" is plainly unfinished and deserves the long wait. ``classify``
reads the recogniser's words for the extractor kind the question expects
(``agent.flow.model.ExtractorKind``) and says one of:

- ``"complete"``: the words hold a whole answer of that kind, read by the same extractors the
  flow uses (``providers.llm.rules``), so a turn ended early is one the flow can read: a date or
  a time said explicitly ("next tuesday", "three p m"; "three" may yet get its "p m"), a yes or
  no, a first and last name, an e-mail address with its domain, a whole phone number; or, for
  any kind, a plain refusal ("no thanks", "i'd rather not") or a request to hold on said
  alone ("sorry, one moment": ``providers.llm.rules.hold``).
- ``"incomplete"``: the caller stopped mid-phrase: the last word cannot end a sentence ("dot",
  "at", "the", "and", "uh", "my e-mail is"), an e-mail address without its domain, a phone
  number short of its digits (at the name question too, once a group of digits is read).
- ``"unanswered"``: a question that waits for a typed value (a date, a time, a name, a yes or
  no, a phone number), and the words hold no value any of the flow's extractors reads, no
  number and no refusal ("i'd like to book", "what do you mean"), or no words at all (an "um"
  the recogniser made nothing of). The caller has not answered yet and most likely pauses to go
  on, so the turn detector waits ``unanswered_silence_ms`` (longer than the question's
  patience). A caller who asks something instead ("what times do you have?") waits that much
  longer for the reply; so does one whose answer the extractors cannot read, which the flow
  would have to ask again anyway.
- ``"partial"``: a value the extractors read only by filling something in, which the caller
  most likely goes on to say: a first name alone ("my name is kate" before "garcia"), a time
  without its a.m. or p.m. ("at three" before "p m"), a day of the month without its month.
  The turn detector waits ``partial_silence_ms``: a caller who meant "kate" alone waits that
  much longer, one who goes on is not cut off with half an answer.
- ``"unknown"``: anything else (an open question, an answer the extractors do not read, a
  number that may go on: "twenty" before "five"); the turn detector keeps its usual silence.

Pure: no I/O, no clock, no shared state. Cheap checks (the last words) run first; the extractor
runs only when they settle nothing (tens of microseconds; the detector asks once per new
transcript, never per audio frame).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Literal

from slotline.providers.llm import rules
from slotline.providers.llm.rules.extraction import Extraction
from slotline.providers.llm.rules.hold import is_hold_request
from slotline.providers.llm.rules.normalize import FILLERS, TENS, UNITS, tokens

Completeness = Literal["complete", "incomplete", "unanswered", "partial", "unknown"]
# The phrases a question listens for (its hints: its own answers, the flow's intents such as
# "cancel my appointment"), as token tuples by their first token (``expected``).
Expected = Mapping[str, tuple[tuple[str, ...], ...]]
_NOTHING_EXPECTED: Expected = {}

# Words a sentence does not end on: articles, prepositions, conjunctions, hesitations, and the
# symbols of a spelled address or number. "so", "like" and "well" (FILLERS) can end a sentence.
_UNFINISHED_LAST = frozenset((
    "a", "an", "the", "my", "your", "our", "his", "her", "their",
    "at", "on", "in", "to", "for", "of", "with", "from", "by", "about", "around", "after",
    "before", "until", "till", "between", "past",
    "and", "or", "but", "because", "if", "than", "nor",
    "uh", "um", "er", "erm", "ah", "hmm", "hm", "mm", "uhm",
    "dot", "period", "point", "underscore", "dash", "hyphen", "plus", "double", "triple",
    "i", "i'm", "it's", "that's", "its", "is", "was", "are", "am",
))
# A verb's particle ends a sentence ("wait, hold on"; "please go on"), unlike the same word as
# a preposition ("on the", "in"). Without this, an interruption such as "wait sorry hold on"
# read as unfinished and waited the long, spelling-length silence.
_PHRASAL = frozenset((
    ("hold", "on"), ("hang", "on"), ("go", "on"), ("come", "on"), ("carry", "on"),
    ("move", "on"), ("keep", "on"), ("right", "on"), ("sign", "in"), ("log", "in"),
    ("come", "in"), ("count", "in"), ("stand", "by"), ("come", "by"), ("drop", "by"),
    ("stop", "by"), ("turn", "around"), ("come", "around"), ("look", "around"),
    ("ask", "around"), ("get", "on"), ("going", "on"), ("holding", "on"), ("for", "it"),
))
# "is" ends "yes it is" as well as "my e-mail is": only a lead-in word before it (below) says an
# answer is still coming.
_IS_WORDS = frozenset(("is", "was", "are", "am"))
_LEAD_INS = frozenset((
    "email", "mail", "address", "number", "phone", "cell", "mobile", "name", "surname", "date",
    "day", "time", "one", "zone", "it", "that", "this", "answer", "best", "there",
))
# An utterance starting with one of these and ending "it is" confirms: whole.
_CONFIRMING = frozenset(("yes", "yeah", "yep", "yup", "no", "nope", "correct", "right"))
# Words after which a number may go on: "twenty" [five], "two hundred" [and fifty], "three oh"
# [five]. An answer ending on one is not called complete.
_MAY_GO_ON = frozenset((*TENS, "hundred", "thousand", "oh", "o"))
# Refusals and closings, said alone (after fillers, before thanks): a whole answer to any
# question, even one that waits for an e-mail address or a phone number.
_REFUSALS = frozenset(
    tuple(phrase.split())
    for phrase in (
        "no", "nope", "nah", "no no", "no i don't", "no i do not", "no i'm good", "i'm good",
        "i'm fine", "no i'm fine", "not really", "not now", "no not now", "rather not",
        "i'd rather not", "i would rather not", "no i'd rather not", "skip", "skip it",
        "skip that", "never mind", "nevermind", "i don't have one", "i don't have an email",
        "i don't have an e mail", "i don't have a phone", "i don't have a cell",
        "i don't have one sorry", "none", "nothing", "nothing else", "that's all",
        "that's it", "no that's all", "no that's it", "no that's everything", "that's everything",
        "bye", "goodbye", "bye bye", "no bye",
    )
)
_COURTESY = frozenset(("thanks", "thank", "you", "please", "sorry", "though", "anyway"))
_OPEN_KINDS = frozenset(("", "text"))
_EXPLICIT = 0.9  # providers.llm.rules.Extraction: the caller said the value explicitly
_DIGIT_WORDS = frozenset((*UNITS, "oh", "o", "double", "triple"))
_MAX_PHONE_DIGITS = 15  # E.164's longest; fewer that no country dials: the caller reads on
_PHONE_GROUP_DIGITS = 3  # the shortest group a phone number is read in

# The extractors read dates against a clock; completeness asks only whether a date was said,
# so any fixed instant does.
_NOW = datetime(2026, 1, 5, 12, 0)
_ZONE = "UTC"


def said_value(kind: str, text: str, *, region: str = "") -> Extraction | None:
    """What extractor ``kind`` reads in ``text`` where only whether (and how surely) a value
    was said matters, not which day it is: dates are read against a fixed instant."""
    return rules.extract(kind, text, now=_NOW, timezone=_ZONE, region=region)


@functools.lru_cache(maxsize=64)
def expected(phrases: tuple[str, ...]) -> Expected:
    """``phrases`` (a ``Listen``'s hints) indexed for ``classify``; built once per hint set."""
    index: dict[str, list[tuple[str, ...]]] = {}
    for phrase in phrases:
        toks = tuple(tokens(phrase))
        if toks:
            index.setdefault(toks[0], []).append(toks)
    return {first: tuple(found) for first, found in index.items()}


def classify(kind: str, text: str, *, region: str = "US",
             listening_for: Expected = _NOTHING_EXPECTED) -> Completeness:
    """How complete ``text`` (the caller's words so far) is as an answer of extractor ``kind``
    ("" or "text": an open question). ``region`` is the ISO country a phone number is read in;
    ``listening_for`` the question's expected phrases (``expected``): words that say one of
    them (an intent such as "cancel my appointment") are never "unanswered"."""
    toks = tokens(text)
    if not toks:  # a sound without words ("um", a cough): no answer yet at a typed question
        return "unknown" if kind in _OPEN_KINDS else "unanswered"
    if _unfinished(toks):  # "uh" alone too: the caller is about to answer
        return "incomplete"
    while toks[0] in FILLERS:  # "well, no thanks"; the last word is not a hesitation (above)
        toks = toks[1:]
        if not toks:
            return "unknown"
    if _refusal(toks) or is_hold_request(text):  # "no thanks"; "sorry, one moment"
        return "complete"
    if kind in _OPEN_KINDS:
        return "unknown"
    if kind == "email":
        return _email(text)
    if kind == "phone":
        return _phone(toks, text, region, listening_for)
    if toks[-1] in _MAY_GO_ON and kind != "yes_no":
        return "unknown"
    if kind == "choice":
        return "unknown"  # the options are the flow's; the short patience already applies
    found = said_value(kind, text, region=region)
    if found is None and kind == "name" and _group_read(toks):
        # a phone number read in groups at the name question ("my number is five five five"
        # ... "one two three four"): it gets the phone question's patience, not the name's
        return _phone(toks, text, region, listening_for)
    if found is None:  # a name the extractor cannot read is asked again anyway
        return _unanswered_or_unknown(toks, text, listening_for, kind)
    if kind == "name":  # a first name alone: the surname may follow
        return "complete" if len(found.value.split()) >= 2 else "partial"
    # Below "said explicitly" a heuristic filled something in ("three" without a m or p m, "the
    # fifth" without its month): the caller may be about to say it.
    return "complete" if found.confidence >= _EXPLICIT else "partial"


# What "holds nothing" looks for beside the question's own kind: a caller answering another
# question than the one asked ("no, wednesday" at a read-back) has answered.
_ANY_VALUE = ("date", "time", "time_of_day", "yes_no", "name", "email", "timezone")
# ... except at the name question, where a day, a time or a yes answers nothing ("my name okay",
# "monday": a recogniser's garble of "my name is", the name still to come)
_NO_ANSWER_TO: dict[str, frozenset[str]] = {
    "name": frozenset(("date", "time", "time_of_day", "yes_no")),
}


def _unanswered_or_unknown(toks: Sequence[str], text: str, listening_for: Expected,
                           kind: str) -> Completeness:
    """Words that hold no value of the question's kind (``kind``): "unanswered" when they hold
    nothing else either (no value that answers, no number, no expected phrase), else
    "unknown"."""
    if _holds_nothing(toks, text, kind) and not _says_one(toks, listening_for):
        return "unanswered"
    return "unknown"


def _holds_nothing(toks: Sequence[str], text: str, asked: str) -> bool:
    """No number (a time, a date, a phone number may be on its way) and no value of any kind
    that answers the question ``asked``."""
    if any(_digits_in(t) for t in toks):
        return False
    skip = _NO_ANSWER_TO.get(asked, frozenset())
    return all(said_value(kind, text) is None for kind in _ANY_VALUE if kind not in skip)


def _says_one(toks: Sequence[str], listening_for: Expected) -> bool:
    """Whether ``toks`` hold one of the expected phrases, word for word."""
    for i, tok in enumerate(toks):
        for phrase in listening_for.get(tok, ()):
            if tuple(toks[i:i + len(phrase)]) == phrase:
                return True
    return False


def _unfinished(toks: Sequence[str]) -> bool:
    last = toks[-1]
    if last not in _UNFINISHED_LAST:
        return False
    if len(toks) >= 2 and (toks[-2], last) in _PHRASAL:  # "hold on": the particle of a verb
        return False
    if last not in _IS_WORDS:
        return True
    # "my e-mail is", "the number is": a lead-in, then "is". But "yes it is", "no that is":
    # a confirmation, whole.
    before = toks[-2] if len(toks) >= 2 else ""
    first = next((t for t in toks if t not in FILLERS), "")
    return before in _LEAD_INS and first not in _CONFIRMING


def _refusal(toks: Sequence[str]) -> bool:
    end = len(toks)
    while end > 1 and toks[end - 1] in _COURTESY:
        end -= 1
    return tuple(toks[:end]) in _REFUSALS


def _email(text: str) -> Completeness:
    if said_value("email", text) is not None:
        return "complete"
    # No address yet: the caller is spelling the part before "at", or the domain before its
    # "dot com". Either way more is coming.
    return "incomplete"


def _phone(toks: Sequence[str], text: str, region: str, listening_for: Expected) -> Completeness:
    digits = sum(_digits_in(t) for t in toks)
    if digits == 0:
        return _unanswered_or_unknown(toks, text, listening_for, "phone")
    found = said_value("phone", text, region=region)
    if found is None:  # too few digits to dial (or too many: not a number we can read)
        return "incomplete" if digits < _MAX_PHONE_DIGITS else "unknown"
    # E.164 (confidence 0.8 or more): a number dialable as said. The digits alone (0.6): a
    # local number without its area code, or an area code and more: it may go on.
    return "complete" if found.confidence >= 0.8 else "unknown"


def _group_read(toks: Sequence[str]) -> bool:
    """At least a group of digits (an area code, "five five five"), not one number word ("at
    three": more likely a garble than the start of a phone number)."""
    return sum(_digits_in(t) for t in toks) >= _PHONE_GROUP_DIGITS


def _digits_in(token: str) -> int:
    """Roughly how many digits ``token`` says ("555-1234" seven, "five" one, "fifty" one)."""
    if token[0].isdigit():
        return sum(ch.isdigit() for ch in token)
    return 1 if token in _DIGIT_WORDS or token in TENS else 0
