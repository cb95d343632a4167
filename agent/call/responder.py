"""The seam between the call session and whatever decides what the agent says.

The session turns what happens on the call into events and carries out the actions a responder
yields. A responder does no I/O of its own on the call: it may await a model or a calendar, but
it never touches the socket, so it can be driven by text in tests. The flow engine is one
responder; the scripted one below is the smallest useful one.

Events are past tense (``CallerSaid``); actions are imperative (``Say``, ``Listen``, ``Hangup``).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from slotline.agent.call.turns import Patience, patience_for
from slotline.providers.base import SpeechHints


@dataclass(frozen=True, slots=True)
class CallStarted:
    call_sid: str
    custom_parameters: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CallerSaid:
    text: str


@dataclass(frozen=True, slots=True)
class DtmfPressed:
    digit: str


@dataclass(frozen=True, slots=True)
class ReplyInterrupted:
    """The caller interrupted; only ``heard_text`` reached them."""

    heard_text: str
    unheard_text: str


CallEvent = CallStarted | CallerSaid | DtmfPressed | ReplyInterrupted


@dataclass(frozen=True, slots=True)
class Say:
    text: str


@dataclass(frozen=True, slots=True)
class Listen:
    """What to expect in the caller's next utterance: recogniser hints, and how long a pause
    ends it (``patience``: "short" after a yes/no question, "long" while the caller spells an
    e-mail or reads out a phone number; see ``agent.call.turns``)."""

    hints: SpeechHints
    patience: Patience = "normal"

    def expecting(self, kind: str) -> Listen:
        """This Listen with the patience an answer of extractor ``kind`` needs."""
        return Listen(self.hints, patience_for(kind))


@dataclass(frozen=True, slots=True)
class Hangup:
    reason: str = "completed"


Action = Say | Listen | Hangup


class Responder(Protocol):
    def handle(self, event: CallEvent) -> AsyncIterator[Action]:
        """Actions for one event, in order. Cancelled (and never resumed) on barge-in."""

    @property
    def flow(self) -> str:
        """The flow this call runs (its name), for the call log."""

    @property
    def node(self) -> str:
        """Where the conversation is (a flow node id), for the call log."""

    @property
    def variables(self) -> Mapping[str, str]:
        """What has been collected so far, for the call log."""

    async def aclose(self) -> None:
        """The call is over: finish or cancel anything still running."""


# Optional capabilities: the session looks for them with ``isinstance`` (a responder without
# a model or a calendar need not pretend to have one).


@runtime_checkable
class ReportsModelUse(Protocol):
    """A responder that may ask a language model, for the call log."""

    def model_use(self) -> Mapping[str, int]:
        """Counts by name (``agent.flow.llm.LlmStats.as_dict``); empty when no model is
        configured, so an offline call's log carries no block of zeros."""


@runtime_checkable
class ReportsBookings(Protocol):
    """A responder that books, for the call log."""

    def bookings_made(self) -> Sequence[str]:
        """Ids of every booking this call wrote, in order: all of a collective booking's
        (one per calendar), not only the ``booking_id`` the flow holds."""


@runtime_checkable
class ReportsPath(Protocol):
    """A responder that walks a flow's graph, for the call log (the console draws the path)."""

    @property
    def path(self) -> Sequence[str]:
        """Every node entered, in order; a node entered twice is listed twice."""


FIRST_NAMES = (
    "john jane james mary robert patricia michael linda william elizabeth david barbara "
    "richard susan joseph jessica thomas sarah charles karen daniel nancy matthew lisa "
    "anthony betty mark sandra paul ashley steven emily andrew donna joshua michelle kevin "
    "carol brian amanda george melissa edward deborah"
).split()
LAST_NAMES = (
    "smith doe johnson williams brown jones garcia miller davis rodriguez martinez wilson "
    "anderson taylor thomas moore jackson martin lee thompson white harris clark lewis "
    "robinson walker young allen king wright scott green baker adams nelson hill campbell"
).split()
WEEKDAYS = "monday tuesday wednesday thursday friday saturday sunday".split()

NAME_GRAMMAR = (
    "#JSGF V1.0;\ngrammar name;\n"
    f"<first> = {' | '.join(FIRST_NAMES)};\n"
    f"<last> = {' | '.join(LAST_NAMES)};\n"
    "<name> = <first> [<last>];\n"
    "public <utterance> = [my name is | this is | it's | it is | i'm | i am] <name>;\n"
)
DAY_PHRASES = tuple(
    [f"{prefix}{day}" for prefix in ("", "next ", "this ", "on ") for day in WEEKDAYS]
    + ["today", "tomorrow", "the day after tomorrow"]
)

_NAME_PREFIX = re.compile(r"^(?:my name is|this is|it's|it is|i'm|i am)\s+", re.IGNORECASE)


def _name_from(text: str) -> str:
    return _NAME_PREFIX.sub("", text.strip()).title()


class ScriptedResponder:
    """Greeting, one question, one answer, goodbye — enough to exercise a whole call.

    Asks for the caller's name, then the day they would like to come in, then says goodbye.
    An empty transcript gets one reprompt; a second silence ends the call politely.
    """

    GREETING = "Hello, thanks for calling. This is the booking line. May I have your name?"
    REPROMPT = "Sorry, I didn't catch that. Could you say it again?"

    _NODES = ("ask_name", "ask_day", "goodbye")

    def __init__(self) -> None:
        self._step = 0
        self._misses = 0
        self.name = ""
        self.day = ""

    @property
    def flow(self) -> str:
        return "scripted"

    @property
    def node(self) -> str:
        return self._NODES[self._step]

    async def aclose(self) -> None:
        return None

    @property
    def variables(self) -> Mapping[str, str]:
        found = {"user_name": self.name, "preferred_date": self.day}
        return {k: v for k, v in found.items() if v}

    async def handle(self, event: CallEvent) -> AsyncIterator[Action]:
        if isinstance(event, CallStarted):
            yield Say(self.GREETING)
            yield Listen(SpeechHints(grammar=NAME_GRAMMAR))
        elif isinstance(event, DtmfPressed):
            yield Say(f"You pressed {event.digit}.")
        elif isinstance(event, CallerSaid):
            async for action in self._answer(event.text.strip()):
                yield action

    async def _answer(self, text: str) -> AsyncIterator[Action]:
        if not text:
            self._misses += 1
            if self._misses > 1:
                yield Say("I'm having trouble hearing you. Please call back. Goodbye.")
                yield Hangup("no-input")
                return
            yield Say(self.REPROMPT)
            return
        self._misses = 0
        if self._step == 0:
            self._step = 1
            self.name = _name_from(text)
            yield Say(f"Nice to meet you, {self.name}. What day would you like to come in?")
            yield Listen(SpeechHints(phrases=DAY_PHRASES))
        else:
            self._step = 2
            self.day = text
            yield Say(f"Great, {text} it is. Thank you for calling, goodbye!")
            yield Hangup()
