"""What the flow engine is told (events) and what it asks for (actions).

Caller events come from :mod:`agent.call.responder` (``CallStarted``, ``CallerSaid``,
``DtmfPressed``, ``ReplyInterrupted``) and so do the speech actions (``Say``, ``Listen``,
``Hangup``). The rest is the engine's side of I/O done by someone else: each
``Run…``/``Check…``/``Call…`` action is answered by exactly one result event carrying the same
``node_id``, which must be handed back to the engine before the next caller event.

A do-not-call request ("take me off your list") heard at any node of any flow ends the call
with ``OptOut``, a goodbye ``Say`` and ``Hangup("do_not_call")``; ``OptOut`` has no result
event (see ``agent.flow.engine`` for when a flow's own intent takes the words instead).

Booking protocol (engine <-> booking service, see ``agent.flow.responder.BookingRunner``)::

    entering a booking node, confirm: false
      RunBooking(slot_start="")        book the caller's preferred time if it is free
          -> BookingFinished(success=True, booked, booking_id)             -> `success` edge
          -> BookingFinished(success=False, alternatives=(up to 3 offers)) -> offer them
          -> BookingFinished(success=False, alternatives=())              -> `failure` edge
    entering a booking node, confirm: true
      CheckAvailability                find the preferred slot and nearby alternatives
          -> AvailabilityReady(requested=offer)      "…at 2 pm. Shall I book it?"
          -> AvailabilityReady(requested=None, alternatives=…)   offer them
    the caller picks an offer (and says yes, when confirm is true)
      RunBooking(slot_start=offer.start)   book exactly that slot (hold, write once)
          -> BookingFinished as above; a slot taken meanwhile comes back with alternatives

``reschedule`` nodes speak the same protocol with ``RunReschedule`` (and ``CheckAvailability``
with a ``lookup``); ``cancel`` nodes send ``RunCancel`` and get ``CancelFinished``; ``webhook``
nodes send ``CallWebhook`` and get ``WebhookFinished``. A service that fails (a calendar that
times out) answers with ``success=False`` and a ``reason``: the flow takes its failure edge.

Model protocol (engine <-> ``agent.flow.llm``, only when the engine was built with
``use_llm=True``)::

    conversation node, the rules read nothing in the answer
      AskModel(said, wanted, answer_questions)
          -> ModelAnswered(values)           each value re-read by the rules (or type-checked):
                                             a valid one is collected, else no match (reprompt)
          -> ModelAnswered(spoken="…")       a free answer was said: the question is asked again
          -> ModelAnswered(cancelled=True)   barge-in: back to listening, nothing said
    branch node with a described condition (`when`) the variable conditions before it miss
      JudgeConditions(conditions)
          -> ConditionsJudged(holding)       the first condition that holds, in order, wins

    a greeting, message, conversation or end_call node with a `prompt`
      WriteLine(prompt, fallback)        the model writes the node's line; no result event:
                                         the responder speaks it clause by clause as it
                                         streams, and the engine has already gone on

A failed or timed-out model call answers with nothing (``reason`` says why): no match, no free
answer, every described condition false.

Offers are spoken by the booking service, in the caller's zone: ``SlotOffer.start`` is ISO-8601
with the caller's UTC offset, so its wall-clock time is the one the caller hears.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from slotline.agent.call.responder import (
    CallerSaid,
    CallEvent,
    CallStarted,
    DtmfPressed,
    Hangup,
    Listen,
    ReplyInterrupted,
    Say,
)

__all__ = [
    "Attendee",
    "AskModel",
    "AvailabilityReady",
    "BookingFinished",
    "CallEvent",
    "CallStarted",
    "CallWebhook",
    "CallerSaid",
    "CancelFinished",
    "CheckAvailability",
    "ConditionsJudged",
    "DtmfPressed",
    "FlowAction",
    "FlowEvent",
    "Hangup",
    "JudgeConditions",
    "Listen",
    "Lookup",
    "ModelAnswered",
    "OptOut",
    "Preferences",
    "ReplyInterrupted",
    "RunBooking",
    "RunCancel",
    "RunReschedule",
    "Say",
    "SendSms",
    "SlotOffer",
    "Transfer",
    "Wanted",
    "WebhookFinished",
    "WriteLine",
]


def _no_fields() -> Mapping[str, str]:
    return {}


@dataclass(frozen=True, slots=True)
class SlotOffer:
    """One bookable time as the caller hears it."""

    start: str  # ISO-8601 in the caller's zone: "2026-12-01T14:00:00-05:00"
    date_spoken: str  # "Tuesday, December 1st", "today", "tomorrow"
    time_spoken: str  # "2 pm", "10:30 am", "noon"

    @property
    def local_start(self) -> datetime:
        return datetime.fromisoformat(self.start)

    @property
    def spoken(self) -> str:
        return f"{self.date_spoken} at {self.time_spoken}"


@dataclass(frozen=True, slots=True)
class Preferences:
    """What the caller asked for, as the extractors wrote it ("" = not said)."""

    date: str = ""  # preferred_date: "2026-12-01"
    time: str = ""  # preferred_time: "14:00", or a range "14:00-16:00"
    time_of_day: str = ""  # time_preference: "morning" | "afternoon" | "evening"
    timezone: str = ""  # IANA zone the caller meant (and hears offers in); "" = the runner's


@dataclass(frozen=True, slots=True)
class Attendee:
    name: str = ""
    email: str = ""
    phone: str = ""
    timezone: str = ""  # IANA; "" = the calendar's


@dataclass(frozen=True, slots=True)
class Lookup:
    """How to find an existing booking: its reference, else the phone number it was made with."""

    booking_reference: str = ""
    phone: str = ""


# ---- actions ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OptOut:
    """The caller asked never to be called again: put the number this call is on on the
    do-not-call list. Emitted before the goodbye (``Say``) and ``Hangup("do_not_call")`` so the
    request is recorded before the caller is told it was; see ``FlowResponder`` for what
    happens when recording fails (the caller still hears the goodbye)."""


@dataclass(frozen=True, slots=True)
class Transfer:
    number: str  # E.164


@dataclass(frozen=True, slots=True)
class SendSms:
    text: str
    to: str = ""  # "" = the caller


@dataclass(frozen=True, slots=True)
class CheckAvailability:
    node_id: str
    action: str  # "" for a reschedule: the action of the booking found by ``lookup``
    preferences: Preferences
    lookup: Lookup | None = None


@dataclass(frozen=True, slots=True)
class RunBooking:
    node_id: str
    action: str
    preferences: Preferences
    attendee: Attendee
    fields: Mapping[str, str] = field(default_factory=_no_fields)  # every flow variable
    slot_start: str = ""  # an offer's start: book exactly this; "" = the preferred time


@dataclass(frozen=True, slots=True)
class RunReschedule:
    node_id: str
    action: str
    lookup: Lookup
    preferences: Preferences
    slot_start: str = ""


@dataclass(frozen=True, slots=True)
class RunCancel:
    node_id: str
    lookup: Lookup


@dataclass(frozen=True, slots=True)
class CallWebhook:
    node_id: str
    webhook: str
    variables: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Wanted:
    """One variable the model may fill, read as ``kind`` (an extractor kind)."""

    variable: str
    kind: str
    choices: tuple[str, ...] = ()  # "value|synonym" options of a choice


@dataclass(frozen=True, slots=True)
class AskModel:
    """Read the caller's answer with the model (the rules found nothing in it); when
    ``answer_questions``, a question instead of an answer gets a short spoken answer."""

    node_id: str
    said: str  # the caller's words
    question: str  # what the node asked, as spoken
    wanted: tuple[Wanted, ...]
    answer_questions: bool
    persona: str
    instructions: str  # the flow's, then the node's
    today: str  # "Tuesday 2026-11-24 10:00 America/New_York": dates are read from here


@dataclass(frozen=True, slots=True)
class JudgeConditions:
    """Judge described branch conditions against the conversation."""

    node_id: str
    conditions: tuple[tuple[int, str], ...]  # (index in the branch, the `when` text)
    persona: str
    instructions: str


@dataclass(frozen=True, slots=True)
class WriteLine:
    """Have the model write the agent's line at a node with a ``prompt`` (emitted only when a
    model is configured; without one the engine says ``fallback``). Spoken clause by clause as
    it streams; on failure what was said is kept and ``fallback`` ends the line."""

    node_id: str
    prompt: str  # rendered: the flow's variables filled in
    fallback: str  # the node's `say`, rendered
    persona: str
    instructions: str  # the flow's
    variables: Mapping[str, str] = field(default_factory=_no_fields)  # known at this point


ModelRequest = AskModel | JudgeConditions

FlowAction = (
    Say | Listen | Hangup | OptOut | Transfer | SendSms | CheckAvailability | RunBooking
    | RunReschedule | RunCancel | CallWebhook | AskModel | JudgeConditions | WriteLine
)

# ---- results ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AvailabilityReady:
    node_id: str
    requested: SlotOffer | None  # the preferred time, when it names one slot and that is free
    alternatives: tuple[SlotOffer, ...] = ()  # best first, at most 3 are offered
    reason: str = ""  # why nothing is offered ("not_found", "timeout", …), for the call log


@dataclass(frozen=True, slots=True)
class BookingFinished:
    node_id: str
    success: bool
    booked: SlotOffer | None = None
    booking_id: str = ""
    alternatives: tuple[SlotOffer, ...] = ()  # when not booked: times that are free instead
    reason: str = ""  # "taken", "unavailable", "not_found", "timeout", …


@dataclass(frozen=True, slots=True)
class CancelFinished:
    node_id: str
    success: bool
    cancelled: SlotOffer | None = None
    booking_id: str = ""
    reason: str = ""


@dataclass(frozen=True, slots=True)
class WebhookFinished:
    node_id: str
    success: bool
    variables: Mapping[str, str] = field(default_factory=_no_fields)
    reason: str = ""


@dataclass(frozen=True, slots=True)
class ModelAnswered:
    """What the model made of an ``AskModel``: values as it wrote them (the engine checks
    them), the free answer the caller was told, or that the generation was cancelled."""

    node_id: str
    values: Mapping[str, str] = field(default_factory=_no_fields)
    spoken: str = ""
    cancelled: bool = False
    reason: str = ""  # "timeout", "error", "no_model": why there is nothing, for the log


@dataclass(frozen=True, slots=True)
class ConditionsJudged:
    node_id: str
    holding: frozenset[int] = frozenset()  # indices of the described conditions judged true
    reason: str = ""


ServiceResult = AvailabilityReady | BookingFinished | CancelFinished | WebhookFinished
ModelResult = ModelAnswered | ConditionsJudged
FlowEvent = CallEvent | ServiceResult | ModelResult
