"""Whether the caller's words over the agent were only a backchannel ("uh-huh", "okay").

A barge-in clears the agent at the first ~80 ms of the caller's voice (``agent.call.floor``);
their words decide afterwards whether it was an interruption. A fixed list of acknowledgements
is not enough: a recogniser hears "mm hmm" as "m m a trim", "uh huh" as "the", "okay" as
"lopez". So the test is what the words *hold*, not what they are:

- **a turn** when they take the floor — a request to hold or stop ("wait", "hold on"), a
  correction or refusal ("no", "actually", "not"), a question ("what", "can you ..."), a
  command ("cancel", "repeat", "talk to a person") — or when they answer: a yes or no said
  with more than an acknowledgement ("yes", "correct"), a number, a day or a time, or anything
  the extractor of the question being answered reads (a name at a name question), or a piece
  of an address at an e-mail question ("at yahoo dot com");
- **a backchannel** when they are short (at most ``MAX_WORDS``) and hold none of that: only
  acknowledgements ("uh huh", "yeah right"), or words nothing can use ("the", "m m a trim").

"okay", "yeah", "right" and "sure" are acknowledgements even at a yes/no question: said over
the agent they usually acknowledge what it is saying (a read-back) rather than answer a
question not yet finished; the agent goes on, finishes its question and the caller answers it.
"yes" and "no" are answers.

Pure: no I/O, no clock, no shared state; the extractors run only on short utterances (tens of
microseconds).
"""

from __future__ import annotations

from collections.abc import Sequence

from slotline.agent.flow.completeness import said_value
from slotline.providers.llm.rules.hold import is_hold_request
from slotline.providers.llm.rules.normalize import (
    FILLERS,
    NUMBER_WORDS,
    ORDINAL_TEENS,
    ORDINAL_TENS,
    ORDINAL_UNITS,
    tokens,
)

MAX_WORDS = 5
"""A backchannel is short; a recogniser's garbage for a long "mm hmm" runs to five words."""

# Said alone, these acknowledge the speaker without taking the floor.
_ACK_WORDS = frozenset((
    "uh", "huh", "uhhuh", "mhm", "mm", "mmhmm", "hmm", "hm", "um", "umm", "ah", "oh", "aha",
    "okay", "ok", "yeah", "yep", "yup", "right", "sure", "alright", "cool", "thanks",
))
_ACK_PHRASES = (("got", "it"), ("i", "see"), ("all", "right"), ("thank", "you"))
# Words that take the floor whatever else is said: holding, stopping, correcting, refusing,
# asking to hear it again, asking for something ("please").
_FLOOR_WORDS = frozenset((
    "wait", "stop", "hold", "hang", "pause", "no", "nope", "nah", "not", "don't", "never",
    "wrong", "actually", "sorry", "instead", "excuse", "pardon", "repeat", "again", "cancel",
    "change", "reschedule", "book", "transfer", "help", "talk", "speak", "person", "human",
    "operator", "representative", "bye", "goodbye", "please",
))
# A question opens with one of these ...
_WH = frozenset(("what", "when", "where", "why", "how", "who", "which", "whose"))
# ... or with an auxiliary and a subject ("can you", "is it", "do i").
_AUX = frozenset((
    "can", "could", "would", "will", "shall", "should", "may", "might", "do", "does", "did",
    "is", "are", "was", "were", "have", "has",
))
_SUBJECTS = frozenset(("i", "you", "we", "it", "he", "she", "they", "that", "this", "there"))
_NUMBERS = frozenset((*NUMBER_WORDS, *ORDINAL_UNITS, *ORDINAL_TEENS, *ORDINAL_TENS))
# Read for any question: a caller answering over the agent may answer the question it is
# asking, which the flow has not named yet (its Listen comes after the words).
_ANY_QUESTION = ("yes_no", "date", "time")
# Kinds whose extractor cannot be run here (a choice needs its options) or reads anything
# ("text"): only the checks above apply.
_UNREADABLE = frozenset(("", "text", "choice"))
# The spoken symbols of an address: at an e-mail question, words with one of these are (part
# of) an answer, whole or not ("at yahoo dot com" after a pause cut the caller off).
_ADDRESS_WORDS = frozenset(("dot", "underscore", "dash", "hyphen", "@"))
def is_backchannel(text: str, *, kind: str = "", region: str = "") -> bool:
    """``text``, said over the agent, was only a backchannel (the module docstring): short,
    taking no floor and answering nothing; ``kind`` is the extractor of the question the
    caller may be answering ("" when none is known), ``region`` the country phone numbers are
    read in."""
    toks = tokens(text)
    if not toks or len(toks) > MAX_WORDS:
        return False
    if _takes_the_floor(toks) or is_hold_request(text):
        return False
    rest = _content(toks)
    return not rest or not _answers(rest, kind, region)


def _content(toks: Sequence[str]) -> list[str]:
    """``toks`` without acknowledgements and hesitations."""
    rest: list[str] = []
    i = 0
    while i < len(toks):
        pair = tuple(toks[i:i + 2])
        if pair in _ACK_PHRASES:
            i += 2
            continue
        if toks[i] not in _ACK_WORDS and toks[i] not in FILLERS:
            rest.append(toks[i])
        i += 1
    return rest


def _takes_the_floor(toks: Sequence[str]) -> bool:
    if any(tok in _FLOOR_WORDS for tok in toks):
        return True
    words = [tok for tok in toks if tok not in FILLERS and tok not in _ACK_WORDS]
    if not words:  # the question's opener, after "oh", "okay", "huh"
        return False
    if words[0] in _WH:
        return True
    return len(words) >= 2 and words[0] in _AUX and words[1] in _SUBJECTS


def _answers(rest: Sequence[str], kind: str, region: str) -> bool:
    if any(tok in _NUMBERS or tok[0].isdigit() for tok in rest):
        return True
    if kind == "email" and any(tok in _ADDRESS_WORDS for tok in rest):
        return True
    text = " ".join(rest)
    kinds = _ANY_QUESTION if kind in _UNREADABLE or kind in _ANY_QUESTION \
        else (*_ANY_QUESTION, kind)
    return any(_reads(k, text, region) for k in kinds)


def _reads(kind: str, text: str, region: str) -> bool:
    try:
        return said_value(kind, text, region=region) is not None
    except ValueError:  # a kind this build does not know: nothing read
        return False
