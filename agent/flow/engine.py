"""The flow engine: a pure, table-driven state machine over a :class:`~agent.flow.model.Flow`.

``handle(event) -> list[FlowAction]`` and nothing else: no I/O, no clock reads but the ``now``
it is given, no tasks. The caller (``agent.flow.responder.FlowResponder``) performs the actions
and hands back the result of each ``Run…``/``Check…``/``Call…`` as an event.

Two tables say everything that moves the conversation:

- ``_ENTER``: node type -> what happens on arriving at a node of that type;
- ``_ON_EVENT``: (phase, event type) -> what an event does in that phase. A pair that is not in
  the table is a caller bug and raises ``ProtocolError``; once the call has ended every event
  is ignored.

Both return a :class:`~agent.flow.state.Step`, and :meth:`FlowEngine._apply` is the one place
that changes state: it records variables, then follows the step's edge through
:func:`agent.flow.table.edge_target` (the same table the validator checks and the graph draws),
enters the next node, and repeats until a node waits. Two more rules sit in front of the table:
a caller utterance that matches a global intent while the agent waits for an answer jumps to
the intent's node, and ``ReplyInterrupted`` is only recorded (what the caller heard).
"""

from __future__ import annotations

import copy
import logging
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any

from agent.flow import booking_steps, steps
from agent.flow.messages import (
    AvailabilityReady,
    BookingFinished,
    CallerSaid,
    CallStarted,
    CancelFinished,
    ConditionsJudged,
    DtmfPressed,
    FlowAction,
    FlowEvent,
    Hangup,
    ModelAnswered,
    ReplyInterrupted,
    Say,
    SlotOffer,
    WebhookFinished,
)
from agent.flow.model import Flow, Intent, Node
from agent.flow.state import (
    GIVE_UP,
    INTERNAL_ERROR,
    LISTENING,
    Ctx,
    Extractor,
    LlmSetup,
    Phase,
    Step,
)
from agent.flow.table import edge_target
from providers.errors import ProtocolError
from providers.llm import rules

log = logging.getLogger(__name__)

UNABLE = "I'm sorry, I can't help with that right now. Please call back later. Goodbye."
DEFAULT_MAX_STEPS = 50  # nodes entered for one event; a sound flow needs a handful


def started(ctx: Ctx, flow: Flow, event: CallStarted) -> Step:
    """The call began: call parameters named like a declared variable set it; go to start."""
    given = {k: v for k, v in event.custom_parameters.items() if k in flow.variables and v}
    return Step(variables=given, goto=flow.start)


_ENTER: Mapping[str, Callable[[Ctx, Any], Step]] = {
    "greeting": steps.enter_message,
    "message": steps.enter_message,
    "conversation": steps.enter_conversation,
    "branch": steps.enter_branch,
    "booking": booking_steps.enter_booking,
    "reschedule": booking_steps.enter_booking,
    "cancel": steps.enter_cancel,
    "jump": steps.enter_jump,
    "transfer": steps.enter_transfer,
    "send_sms": steps.enter_send_sms,
    "webhook": steps.enter_webhook,
    "end_call": steps.enter_end_call,
}

_ON_EVENT: Mapping[tuple[Phase, type[Any]], Callable[[Ctx, Any, Any], Step]] = {
    (Phase.IDLE, CallStarted): started,
    (Phase.ANSWER, CallerSaid): steps.answer,
    (Phase.CONFIRM, CallerSaid): booking_steps.confirm_answer,
    (Phase.CHOOSE, CallerSaid): booking_steps.choose_answer,
    (Phase.CHECKING, AvailabilityReady): booking_steps.availability_ready,
    (Phase.BOOKING, BookingFinished): booking_steps.booking_finished,
    (Phase.CANCELLING, CancelFinished): steps.cancel_finished,
    (Phase.WEBHOOK, WebhookFinished): steps.webhook_finished,
    (Phase.THINKING, ModelAnswered): steps.model_answered,
    (Phase.JUDGING, ConditionsJudged): steps.conditions_judged,
}


def transition_table() -> list[tuple[str, str, str]]:
    """(phase, event, handler) rows, for docs and diagrams."""
    return [(p.value, e.__name__, h.__name__) for (p, e), h in _ON_EVENT.items()]


_WORD = re.compile(r"[a-z0-9']+")


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _has_phrase(words: list[str], phrase: str) -> bool:
    wanted = _words(phrase)
    n = len(wanted)
    return n > 0 and any(words[i : i + n] == wanted for i in range(len(words) - n + 1))


class FlowEngine:
    """One call's conversation over ``flow``. ``timezone`` (IANA) is the zone dates are read in:
    None means the flow's ``timezone``, else UTC. ``extract`` reads answers (the rules
    extractors by default). ``use_llm``: a model is configured, so the engine may ask it
    (``AskModel``, ``JudgeConditions``; see :mod:`agent.flow.messages`); without it the engine
    behaves exactly as the rules alone decide."""

    def __init__(
        self,
        flow: Flow,
        *,
        now: Callable[[], datetime],
        timezone: str | None = None,
        extract: Extractor = rules.extract,
        max_steps: int = DEFAULT_MAX_STEPS,
        use_llm: bool = False,
    ) -> None:
        self._flow = flow
        self._now = now
        self._timezone = timezone or flow.timezone or "UTC"
        self._extract = extract
        self._max_steps = max_steps
        self._llm = LlmSetup(flow.persona, flow.instructions) if use_llm else None
        self._intent_phrases = tuple(p for intent in flow.intents for p in intent.phrases)
        self._variables = flow.initial_variables()
        self._node_id = ""
        self._phase = Phase.IDLE
        self._attempts = 0
        self._questions = 0
        self._offers: tuple[SlotOffer, ...] = ()
        self._candidate: SlotOffer | None = None
        self._path: list[str] = []
        self._interruptions: list[ReplyInterrupted] = []
        self._call_sid = ""

    # ---- what the call log reads -------------------------------------------------------------

    @property
    def flow(self) -> Flow:
        return self._flow

    @property
    def call_sid(self) -> str:
        return self._call_sid

    @property
    def node_id(self) -> str:
        """The current node ("" before the call started)."""
        return self._node_id

    @property
    def phase(self) -> Phase:
        return self._phase

    @property
    def uses_llm(self) -> bool:
        return self._llm is not None

    @property
    def ended(self) -> bool:
        return self._phase is Phase.ENDED

    @property
    def variables(self) -> Mapping[str, str]:
        return MappingProxyType(dict(self._variables))

    @property
    def path(self) -> tuple[str, ...]:
        """Every node entered, in order (a node entered twice appears twice)."""
        return tuple(self._path)

    @property
    def interruptions(self) -> tuple[ReplyInterrupted, ...]:
        return tuple(self._interruptions)

    def fork(self) -> FlowEngine:
        """A twin in this very state, to ask "what would this event do?" without doing it
        (``FlowResponder.anticipate``); events given to it leave this engine as it is."""
        twin = copy.copy(self)
        twin._variables = dict(self._variables)
        twin._path = list(self._path)
        twin._interruptions = list(self._interruptions)
        return twin

    # ---- events ------------------------------------------------------------------------------

    def handle(self, event: FlowEvent) -> list[FlowAction]:
        """The actions ``event`` leads to, in order."""
        if isinstance(event, ReplyInterrupted):
            self._interruptions.append(event)
            return []
        if self._phase is Phase.ENDED:
            log.debug("call_sid=%s ignoring %s after the call ended", self._call_sid,
                      type(event).__name__)
            return []
        if isinstance(event, DtmfPressed):
            event = CallerSaid(event.digit)  # keys are read like a spoken digit
        handler = _ON_EVENT.get((self._phase, type(event)))
        if handler is None:
            raise ProtocolError(
                "flow_unexpected_event",
                f"{type(event).__name__} while {self._phase.value} at node {self._node_id!r}",
            )
        result_node = getattr(event, "node_id", self._node_id)
        if result_node != self._node_id:
            raise ProtocolError(
                "flow_stale_result", f"result for {result_node!r} at node {self._node_id!r}"
            )
        if isinstance(event, CallStarted):
            self._call_sid = event.call_sid
        intent = self._intent(event)
        if intent is not None:
            log.info("call_sid=%s intent %r -> %s", self._call_sid, intent.name, intent.goto)
            step = Step(goto=intent.goto)
        elif self._phase is Phase.IDLE:
            step = handler(self._ctx(), self._flow, event)
        else:
            step = handler(self._ctx(), self._node(), event)
        actions: list[FlowAction] = []
        self._apply(step, actions)
        return actions

    def _intent(self, event: FlowEvent) -> Intent | None:
        if self._phase not in LISTENING or not isinstance(event, CallerSaid):
            return None
        words = _words(event.text)
        for intent in self._flow.intents:
            if intent.goto == self._node_id:
                continue
            said_phrase = any(_has_phrase(words, phrase) for phrase in intent.phrases)
            said_keywords = bool(intent.keywords) and all(
                keyword.lower() in words for keyword in intent.keywords
            )
            if said_phrase or said_keywords:
                return intent
        return None

    # ---- the one place state changes ---------------------------------------------------------

    def _apply(self, step: Step, actions: list[FlowAction]) -> None:
        entered = 0
        while True:
            actions.extend(step.actions)
            self._variables.update(step.variables)
            if step.phase is not None:
                self._phase = step.phase
                self._attempts = step.attempts
                self._questions = step.questions
                self._offers = step.offers
                self._candidate = step.candidate
                return
            target = step.goto
            if step.edge is not None:
                target = edge_target(self._node(), step.edge)
                if target is None:  # an optional edge (fallback, failure) the flow left out
                    no_match = step.edge == "fallback"
                    self._end(actions, GIVE_UP if no_match else UNABLE,
                              "no-match" if no_match else "failed")
                    return
            if target is None:
                return  # nothing moves
            entered += 1
            if entered > self._max_steps:
                log.error("call_sid=%s more than %d nodes for one event; last %r",
                          self._call_sid, self._max_steps, target)
                self._end(actions, INTERNAL_ERROR, "error")
                return
            self._node_id = target
            self._path.append(target)
            self._phase, self._attempts, self._offers, self._candidate = Phase.IDLE, 0, (), None
            self._questions = 0
            node = self._node()
            log.debug("call_sid=%s -> %s (%s)", self._call_sid, target, node.type)
            step = _ENTER[node.type](self._ctx(), node)

    def _end(self, actions: list[FlowAction], text: str, reason: str) -> None:
        actions.extend((Say(text), Hangup(reason)))
        self._phase = Phase.ENDED

    def _node(self) -> Node:
        return self._flow.nodes[self._node_id]

    def _ctx(self) -> Ctx:
        return Ctx(
            node_id=self._node_id,
            variables=MappingProxyType(self._variables),
            now=self._now(),
            timezone=self._timezone,
            extract=self._extract,
            intent_phrases=self._intent_phrases,
            attempts=self._attempts,
            offers=self._offers,
            candidate=self._candidate,
            llm=self._llm,
            questions=self._questions,
        )
