"""The vocabulary shared by the engine and its step functions: phases, context, steps.

A step function reads a :class:`Ctx` (a snapshot of the engine) and returns a :class:`Step`
saying what to do: actions to emit, variables to set, and where the conversation goes next. It
never changes anything itself; :meth:`agent.flow.engine.FlowEngine._apply` is the one place
that does.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Protocol

from slotline.agent.flow.messages import FlowAction, Listen, SlotOffer
from slotline.providers.base import SpeechHints
from slotline.providers.llm.rules import Choices, Extraction

NO_VARIABLES: Mapping[str, str] = MappingProxyType({})

# What the agent says when the flow itself has nothing to say (flows can override the common
# ones per node: `reprompt`, and a `fallback`/`failure` edge instead of GIVE_UP).
REPROMPT_PREFIX = "Sorry, I didn't catch that."
GIVE_UP = "I'm sorry, I'm having trouble understanding. Please call back later. Goodbye."
# A caller who asks the agent to hold on ("wait", "one moment") hears this, then the agent waits.
HOLD_ACK = "Sure, take your time."
INTERNAL_ERROR = "I'm sorry, something went wrong on our side. Please call back later. Goodbye."
# A do-not-call request ends every flow the same way: one sentence saying it is done (it is
# recorded before this is spoken), then the hang-up whose reason the call log keeps.
OPT_OUT_GOODBYE = (
    "Understood. I've taken your number off our list, and we won't call you again. Goodbye."
)
DO_NOT_CALL = "do_not_call"  # the Hangup reason
# Answers of these extractor kinds are often misheard (a probe read 2 of 12 spelled e-mails
# exactly): one heard from the caller is read back before it is used (``Ctx.unread``).
READ_BACK_KINDS = frozenset(("email",))
OPTED_OUT = "opted_out"  # the variable set to "yes", for the call log and the dialer


class Phase(enum.Enum):
    """Where the engine is inside the current node."""

    IDLE = "idle"  # before CallStarted
    ANSWER = "answer"  # conversation: waiting for the caller's answer
    VERIFY = "verify"  # conversation: read the answer back (``read_back``), is it right?
    CHECKING = "checking"  # booking: waiting for AvailabilityReady
    BOOKING = "booking"  # booking, reschedule: waiting for BookingFinished
    CONFIRM = "confirm"  # booking: asked "shall I book <candidate>?"
    CHOOSE = "choose"  # booking: offered `offers`, waiting for a pick
    AMEND = "amend"  # booking: "no" to a read-back with an e-mail: the time or the address?
    CHANGE = "change"  # booking: a day or time heard without a word of change: "did you want ..."
    EMAIL = "email"  # booking: the e-mail read back was wrong, asked for it again
    CANCELLING = "cancelling"  # cancel: waiting for CancelFinished
    WEBHOOK = "webhook"  # webhook: waiting for WebhookFinished
    THINKING = "thinking"  # conversation: waiting for ModelAnswered
    JUDGING = "judging"  # branch: waiting for ConditionsJudged
    ENDED = "ended"  # hung up or transferred


LISTENING = frozenset(
    (Phase.ANSWER, Phase.VERIFY, Phase.CONFIRM, Phase.CHOOSE, Phase.AMEND, Phase.EMAIL,
     Phase.CHANGE)
)
"""Phases where the caller is expected to speak (and a global intent may fire)."""


class Extractor(Protocol):
    """The ``providers.llm.rules.extract`` signature: read one kind of value from an utterance."""

    def __call__(
        self, kind: str, text: str, *, now: datetime, timezone: str, choices: Choices = (),
        region: str = "",
    ) -> Extraction | None: ...


@dataclass(frozen=True, slots=True)
class LlmSetup:
    """What every model request carries from the flow; a ``Ctx`` without one has no model."""

    persona: str = ""
    instructions: str = ""


@dataclass(frozen=True, slots=True)
class Ctx:
    """What a step function may read."""

    node_id: str
    variables: Mapping[str, str]
    now: datetime
    timezone: str
    extract: Extractor
    intent_phrases: tuple[str, ...] = ()
    attempts: int = 0  # answers not understood so far in this phase
    offers: tuple[SlotOffer, ...] = ()
    candidate: SlotOffer | None = None  # the slot asked about (CONFIRM) or being booked
    llm: LlmSetup | None = None  # None: no model configured (rules only)
    questions: int = 0  # free answers given so far at this conversation node
    region: str = ""  # ISO country numbers and numeric dates are read in ("" = the zone's)
    home_timezone: str = ""  # the business's zone ("" = ``timezone``): named beside the caller's
    # variables heard from the caller (``READ_BACK_KINDS``) that no read-back has confirmed yet
    unread: frozenset[str] = frozenset()
    asked_about: tuple[str, str] = ("", "")  # CHANGE: the (ISO date, "HH:MM") asked about

    def read(
        self, kind: str, text: str, choices: Choices = (), *, min_confidence: float = 0.0
    ) -> str | None:
        """The canonical value of ``kind`` in ``text``, or None (also when read less surely
        than ``min_confidence``)."""
        found = self.extract(kind, text, now=self.now, timezone=self.timezone, choices=choices,
                             region=self.region)
        return None if found is None or found.confidence < min_confidence else found.value

    def var(self, name: str | None) -> str:
        return "" if name is None else self.variables.get(name, "")

    def listen(self, *hints: SpeechHints) -> Listen:
        """Listen for ``hints`` (merged) and for the flow's intent phrases."""
        return Listen(merge_hints(*hints, SpeechHints(phrases=self.intent_phrases)))


@dataclass(frozen=True, slots=True)
class Step:
    """What a step function decided. At most one of ``edge``, ``goto`` and ``phase`` is set;
    none of them means the engine stays exactly where it is."""

    actions: tuple[FlowAction, ...] = ()
    variables: Mapping[str, str] = field(default_factory=lambda: NO_VARIABLES)
    edge: str | None = None  # leave the node by this edge (a key of agent.flow.table.edges)
    goto: str | None = None  # or enter this node directly (a global intent)
    phase: Phase | None = None  # or stay in the node, waiting in this phase, with:
    attempts: int = 0
    offers: tuple[SlotOffer, ...] = ()
    candidate: SlotOffer | None = None
    questions: int = 0
    heard: frozenset[str] = frozenset()  # variables set here that are to be read back
    confirmed: frozenset[str] = frozenset()  # variables the caller confirmed at a read-back
    asked_about: tuple[str, str] = ("", "")  # with ``phase`` CHANGE: the day and time asked


def merge_hints(*hints: SpeechHints) -> SpeechHints:
    """One set of hints: every phrase, and the first grammar (the main answer's; grammars are
    separate languages and cannot be merged, and a recogniser falls back to its general model
    for anything a grammar does not cover, helped by the phrases)."""
    grammar = next((h.grammar for h in hints if h.grammar), None)
    phrases = tuple(dict.fromkeys(p for h in hints for p in h.phrases))
    return SpeechHints(phrases=phrases, grammar=grammar, consent=any(h.consent for h in hints))
