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
enters the next node, and repeats until a node waits. More rules sit in front of the table,
for a caller utterance heard while the agent waits for an answer (at a question, a "shall I
book it?", a choice of offers):

- a do-not-call request (``providers.llm.rules.vocab.OPT_OUT``: "take me off your list",
  "stop calling me", …) ends the call in every flow, with no flow configuration:
  ``OptOut``, a goodbye, ``Hangup("do_not_call")``, and ``opted_out`` = "yes";
- a global intent of the flow jumps to the intent's node;
- a request to hold on, said alone ("wait", "sorry, one moment", ``providers.llm.rules.hold``),
  is acknowledged (``HOLD_ACK``) and the agent goes on waiting where it was, its question,
  attempts and offers unchanged.

When both match, the do-not-call request wins unless the flow's intent claims every word the
request was heard in, i.e. the flow declared those very words (an intent with the phrase
"take me off your list" handles the request itself). So a ``cancel`` keyword intent or a
"stop calling" phrase does not swallow "cancel that and stop calling me": the request is
honoured however a flow is written, except where its author said these words on purpose.
``ReplyInterrupted`` is only recorded (what the caller heard).

The caller's time zone is the ``user_timezone`` variable: set when the call starts
(:func:`agent.flow.caller_zone.detect_zone`: a call parameter, else the caller's number, else
the flow's zone) and whenever the caller states theirs at a question
(:mod:`agent.flow.zone_steps`, heard after the rules above). Dates and times are read, and
offers found and spoken, in it; the engine's ``timezone`` stays the business's, named beside
the caller's when their clocks differ.
"""

from __future__ import annotations

import copy
import logging
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any

from slotline.agent.booking.zones import load_zone
from slotline.agent.flow import booking_steps, steps, zone_steps
from slotline.agent.flow.caller_zone import detect_zone
from slotline.agent.flow.messages import (
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
from slotline.agent.flow.model import Flow, Intent, Node
from slotline.agent.flow.state import (
    GIVE_UP,
    HOLD_ACK,
    INTERNAL_ERROR,
    LISTENING,
    Ctx,
    Extractor,
    LlmSetup,
    Phase,
    Step,
)
from slotline.agent.flow.table import edge_target
from slotline.providers.errors import ProtocolError
from slotline.providers.llm import rules
from slotline.providers.llm.rules.hold import is_hold_request
from slotline.providers.llm.rules.timezones import hint_phrases as zone_hint_phrases
from slotline.providers.llm.rules.timezones import zone_stated
from slotline.providers.llm.rules.vocab import OPT_OUT, OPT_OUT_HINTS

log = logging.getLogger(__name__)

UNABLE = "I'm sorry, I can't help with that right now. Please call back later. Goodbye."
DEFAULT_MAX_STEPS = 50  # nodes entered for one event; a sound flow needs a handful


def started(ctx: Ctx, flow: Flow, event: CallStarted) -> Step:
    """The call began: call parameters named like a declared variable set it, the caller's
    zone is detected (see the module docstring); go to start."""
    given = {k: v for k, v in event.custom_parameters.items() if k in flow.variables and v}
    detected = detect_zone(event.custom_parameters, ctx.timezone, at=ctx.now)
    log.info("call_sid=%s caller's time zone %s (from the %s)", event.call_sid, detected.zone,
             detected.source)
    return Step(variables={**given, zone_steps.ZONE_VARIABLE: detected.zone}, goto=flow.start)


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
    (Phase.VERIFY, CallerSaid): steps.verify_answer,
    (Phase.CONFIRM, CallerSaid): booking_steps.confirm_answer,
    (Phase.CHOOSE, CallerSaid): booking_steps.choose_answer,
    (Phase.AMEND, CallerSaid): booking_steps.amend_answer,
    (Phase.CHANGE, CallerSaid): booking_steps.change_answer,
    (Phase.EMAIL, CallerSaid): booking_steps.email_answer,
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


def _phrase_at(words: list[str], phrase: str) -> frozenset[int]:
    """The positions of ``words`` that ``phrase`` matches (every occurrence; empty: none)."""
    wanted = _words(phrase)
    n = len(wanted)
    if n == 0:
        return frozenset()
    return frozenset(
        i + k for i in range(len(words) - n + 1) if words[i : i + n] == wanted for k in range(n)
    )


def _claimed(words: list[str], intent: Intent) -> frozenset[int]:
    """The positions of ``words`` a flow intent matched; empty when it did not match."""
    found = frozenset().union(*(_phrase_at(words, phrase) for phrase in intent.phrases))
    keywords = [keyword.lower() for keyword in intent.keywords]
    if keywords and all(keyword in words for keyword in keywords):
        found |= {i for i, word in enumerate(words) if word in keywords}
    return found


def _opt_out_words(words: list[str]) -> frozenset[int]:
    """The positions of ``words`` a do-not-call request was heard in (empty: none)."""
    return frozenset().union(*(_phrase_at(words, phrase) for phrase in OPT_OUT))


class FlowEngine:
    """One call's conversation over ``flow``. ``timezone`` (IANA) is the business's zone, and
    the caller's until detected or said otherwise (see the module docstring): None means the
    flow's ``timezone``, else UTC. ``extract`` reads answers (the rules
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
        region: str = "",
    ) -> None:
        self._flow = flow
        self._now = now
        self._timezone = timezone or flow.timezone or "UTC"
        # the flow's own region wins over the server-wide setting; "" = the zone's country
        self._region = flow.region or region
        self._extract = extract
        self._max_steps = max_steps
        self._llm = LlmSetup(flow.persona, flow.instructions) if use_llm else None
        # listened for at every node: the flow's intents, then the do-not-call requests
        self._intent_phrases = tuple(
            dict.fromkeys((*(p for i in flow.intents for p in i.phrases), *OPT_OUT_HINTS,
                           *zone_hint_phrases()))
        )
        self._variables = flow.initial_variables()
        self._node_id = ""
        self._phase = Phase.IDLE
        self._attempts = 0
        self._questions = 0
        self._offers: tuple[SlotOffer, ...] = ()
        self._candidate: SlotOffer | None = None
        self._asked_about = ("", "")
        self._unread: frozenset[str] = frozenset()
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

    @property
    def candidate(self) -> SlotOffer | None:
        """The time read back ("Shall I go ahead?"), or being booked; None otherwise."""
        return self._candidate

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
        step = self._heard_anywhere(event) or self._zone_stated(event)
        if step is None:
            node = self._flow if self._phase is Phase.IDLE else self._node()
            step = handler(self._ctx(), node, event)
        actions: list[FlowAction] = []
        self._apply(step, actions)
        return actions

    def _heard_anywhere(self, event: FlowEvent) -> Step | None:
        """What an utterance does wherever the agent listens: a do-not-call request or a global
        intent (the precedence is in the module docstring); None: the node decides."""
        if self._phase not in LISTENING or not isinstance(event, CallerSaid):
            return None
        words = _words(event.text)
        opting_out = _opt_out_words(words)
        intent = self._intent(words, covering=opting_out)
        if intent is not None:
            log.info("call_sid=%s intent %r -> %s", self._call_sid, intent.name, intent.goto)
            return Step(goto=intent.goto)
        if opting_out:
            log.info("call_sid=%s do-not-call request at node %s", self._call_sid,
                     self._node_id)
            return steps.opt_out(self._ctx())
        if is_hold_request(event.text):
            log.info("call_sid=%s caller asked to hold at node %s", self._call_sid,
                     self._node_id)
            return Step((Say(HOLD_ACK),))  # and go on waiting for the answer, as it was
        return None

    def _zone_stated(self, event: FlowEvent) -> Step | None:
        """The caller stated their time zone while the agent listened (``zone_steps``)."""
        if self._phase not in LISTENING or not isinstance(event, CallerSaid):
            return None
        heard = zone_stated(event.text)
        if heard is None:
            return None
        step = zone_steps.zone_heard(self._ctx(), self._node(), self._phase, heard)
        if step is not None:
            log.info("call_sid=%s caller's time zone %s (said at %s)", self._call_sid,
                     heard.zone, self._node_id)
        return step

    def _caller_zone(self) -> str:
        """``user_timezone`` when it names a zone, else the business's."""
        zone = self._variables.get(zone_steps.ZONE_VARIABLE, "")
        if zone and zone != self._timezone:
            try:
                load_zone(zone)
            except ValueError:
                return self._timezone
            return zone
        return self._timezone

    def _intent(self, words: list[str], *, covering: frozenset[int]) -> Intent | None:
        """The first flow intent the words match that claims every position in ``covering``."""
        for intent in self._flow.intents:
            if intent.goto == self._node_id:
                continue
            claimed = _claimed(words, intent)
            if claimed and covering <= claimed:
                return intent
        return None

    # ---- the one place state changes ---------------------------------------------------------

    def _apply(self, step: Step, actions: list[FlowAction]) -> None:
        entered = 0
        while True:
            actions.extend(step.actions)
            self._variables.update(step.variables)
            self._unread = (self._unread | step.heard) - step.confirmed
            if step.phase is not None:
                self._phase = step.phase
                self._attempts = step.attempts
                self._questions = step.questions
                self._offers = step.offers
                self._candidate = step.candidate
                self._asked_about = step.asked_about
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
            self._questions, self._asked_about = 0, ("", "")
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
            timezone=self._caller_zone(),
            extract=self._extract,
            intent_phrases=self._intent_phrases,
            attempts=self._attempts,
            offers=self._offers,
            candidate=self._candidate,
            llm=self._llm,
            questions=self._questions,
            region=self._region,
            home_timezone=self._timezone,
            unread=self._unread,
            asked_about=self._asked_about,
        )
