"""The question's vocabulary as Deepgram keyterms, updated mid-stream: sans-I/O.

Nova-3 boosts the recall of up to 100 keyterms (names, services, jargon). They can be given
when the socket opens (the ``keyterm`` query parameter) or replaced on the open stream with a
``Configure`` message, which Deepgram answers with exactly one ``ConfigureSuccess`` (the
keyterms now in effect) or ``ConfigureFailure`` (a ``code``). So each question can load its own
vocabulary — the names at "May I have your name?", the services at "Which service?" — as the
offline recogniser gets its hints. Facts from Deepgram's Configure and Keyterm Prompting pages
and ``deepgram-sdk`` 7.17's ``ListenV1Configure*`` types:

- each ``keyterms`` array replaces the whole list (``[]`` clears it); plain terms, no weights;
- the 500-token keyterm limit applies to each update (``CONFIGURE_KEYTERM_LIMIT_EXCEEDED``);
- only Nova-3 models take them (``CONFIGURE_KEYTERMS_NOT_SUPPORTED`` on others);
- one ``Configure`` at a time: another sent before the answer is ``CONFIGURE_ALREADY_PENDING``.

:func:`keyterms_for` picks the terms from ``SpeechHints.phrases`` as Deepgram's guidance asks
(terms that matter and that everyday English lacks, not common words): each phrase without the
words that introduce an answer ("my name is", "it's", "this is": ``CARRIERS``), kept when a word
of it is not an everyday one — everyday being what the yes/no, date and time questions listen
for, which Deepgram hears well anyway. So the name question loads the names ("john smith",
"jane"), a choice its options ("estate planning", "a will"), a date question nothing. In the
hints' order, at most ``MAX_WORDS`` words a term and ``MAX_TERMS`` terms, within an estimate of
the token limit that errs high (``TOKEN_BUDGET`` of Deepgram's 500: the tokenizer is not
public).
:class:`KeytermSync` is the one-in-flight rule: the call says what it wants at every question;
it answers what to send and when, coalescing wants made while a ``Configure`` is unanswered
(only the latest goes) and giving up on a stream whose model or limit refused them.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

from slotline.providers.base import SpeechHints

MAX_TERMS = 100  # Deepgram: "up to 100" keyterms
MAX_WORDS = 3
TOKEN_BUDGET = 400  # of Deepgram's 500-token limit, by an estimate that errs high
NOT_SUPPORTED = "CONFIGURE_KEYTERMS_NOT_SUPPORTED"
LIMIT_EXCEEDED = "CONFIGURE_KEYTERM_LIMIT_EXCEEDED"
ALREADY_PENDING = "CONFIGURE_ALREADY_PENDING"
_FINAL_CODES = frozenset((NOT_SUPPORTED, LIMIT_EXCEEDED))  # asking again cannot help


def supports_keyterms(model: str) -> bool:
    """Whether ``model`` takes keyterms (the Nova-3 family: ``nova-3``, ``nova-3-medical``)."""
    return model == "nova-3" or model.startswith("nova-3-")


def estimated_tokens(term: str) -> int:
    """Tokens ``term`` may cost: a word of up to four letters is one, longer words one per
    four letters begun (sub-word pieces), and one for the term's boundary."""
    return 1 + sum(max(1, -(-len(word) // 4)) for word in term.split())


def keyterms_for(hints: SpeechHints) -> tuple[str, ...]:
    """The keyterms for a question listening with ``hints`` (possibly none)."""
    return _pick(_term(phrase) for phrase in hints.phrases)


# Words that introduce an answer rather than being one (the name extractor's prefixes).
CARRIERS = frozenset(("my", "name", "name's", "is", "it's", "this", "i'm", "i", "am", "call",
                      "me", "that's", "here"))


@functools.cache
def _everyday() -> frozenset[str]:
    """The words the yes/no, date and time questions listen for."""
    from slotline.providers.llm import rules  # the extractors' hints, read once

    return frozenset(word for kind in ("yes_no", "date", "time")
                     for phrase in rules.hints(kind).phrases for word in phrase.split())


def _term(phrase: str) -> str:
    """``phrase`` as a keyterm: without its carrier words; "" when nothing in it is rare."""
    words = phrase.split()
    while words and words[0] in CARRIERS:
        del words[0]
    if len(words) > MAX_WORDS or all(word in _everyday() for word in words):
        return ""
    return " ".join(words)


def _pick(terms: Iterable[str]) -> tuple[str, ...]:
    picked: list[str] = []
    seen: set[str] = set()
    budget = TOKEN_BUDGET
    for term in terms:
        if not term or term in seen:
            continue
        cost = estimated_tokens(term)
        if cost > budget:
            break
        picked.append(term)
        seen.add(term)
        budget -= cost
        if len(picked) == MAX_TERMS:
            break
    return tuple(picked)


class KeytermSync:
    """What the connection has, what the call wants, and when a ``Configure`` may go.

    ``want(terms)`` at every question; ``due()`` is what to send now (None: nothing, or a
    ``Configure`` is unanswered); ``sent(terms)`` when it went; ``answered(...)`` with the
    ``ConfigureSuccess`` or ``ConfigureFailure``; ``reconnected()`` on a new socket (it opens
    with no keyterms: the wanted ones go again)."""

    __slots__ = ("_applied", "_failed", "_in_flight", "_wanted", "off")

    def __init__(self) -> None:
        self._wanted: tuple[str, ...] = ()
        self._applied: tuple[str, ...] = ()  # in effect on this connection
        self._in_flight: tuple[str, ...] | None = None
        self._failed: tuple[str, ...] | None = None  # refused once: not asked again as is
        self.off = False  # the stream's model or limit refused keyterms: none are sent

    def want(self, terms: tuple[str, ...]) -> bool:
        """The call's next question listens for ``terms``; True if a send is now due."""
        self._wanted = terms
        return self.due() is not None

    def due(self) -> tuple[str, ...] | None:
        if self.off or self._in_flight is not None:
            return None
        wanted = self._wanted
        if wanted == self._applied or wanted == self._failed:
            return None
        return wanted

    def sent(self, terms: tuple[str, ...]) -> None:
        self._in_flight = terms

    def answered(self, *, ok: bool, code: str = "") -> None:
        """The ``Configure`` in flight was answered (``due`` then says whether the call moved
        on to another question meanwhile)."""
        terms, self._in_flight = self._in_flight, None
        if terms is None:
            return  # not ours (a reconnect forgot it): nothing to settle
        if ok:
            self._applied, self._failed = terms, None
        elif code in _FINAL_CODES:
            self.off = True
        elif code != ALREADY_PENDING:
            self._failed = terms

    def reconnected(self) -> None:
        self._applied, self._in_flight, self._failed = (), None, None

    @property
    def applied(self) -> tuple[str, ...]:
        return self._applied
