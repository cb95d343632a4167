"""The seam between the call session and whatever decides what the agent says.

The session turns what happens on the call into events and carries out the actions a responder
yields. A responder does no I/O of its own on the call: it may await a model or a calendar, but
it never touches the socket, so it can be driven by text in tests. The flow engine's
(``agent.flow.responder.FlowResponder``) is the one the calls run.

Events are past tense (``CallerSaid``); actions are imperative (``Say``, ``Listen``, ``Hangup``,
``Prepare``).
"""

from __future__ import annotations

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
    """What to expect in the caller's next utterance: recogniser hints, how long a pause ends
    it (``patience``: "short" after a yes/no question, "long" while the caller spells an e-mail
    or reads out a phone number; see ``agent.call.turns``), and the extractor ``kind`` of the
    answer ("" for an open question), by which the words so far are judged complete
    (``agent.flow.completeness``; a phone number is read in ``region``, "" = the US)."""

    hints: SpeechHints
    patience: Patience = "normal"
    kind: str = ""
    region: str = ""

    def expecting(self, kind: str, *, region: str = "") -> Listen:
        """This Listen waiting for an answer of extractor ``kind``, with the patience it needs."""
        return Listen(self.hints, patience_for(kind), kind, region)


@dataclass(frozen=True, slots=True)
class Hangup:
    reason: str = "completed"


@dataclass(frozen=True, slots=True)
class Prepare:
    """A sentence the agent will likely say after the caller's next answer (a booking's
    confirmation while the caller answers its read-back): the call's voice may synthesize it
    now, so that saying it later costs no wait. Never spoken by itself; a ``Say`` of the very
    same sentence uses it, anything else leaves it unused."""

    text: str


Action = Say | Listen | Hangup | Prepare


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


@runtime_checkable
class ReportsQuestion(Protocol):
    """A responder that knows which question the words being spoken ask, before the reply
    yields that question's ``Listen`` (it comes after them). A barge-in's words are judged
    against it (``agent.flow.backchannel``): "john smith" over "May I have your name?" is an
    answer, the same words over "Hi, thanks for calling" are not yet."""

    @property
    def asking(self) -> Listen | None:
        """The ``Listen`` next in line behind the ``Say`` last yielded: the question the words
        being spoken ask; None when the reply has more to say first, or nothing to ask."""
