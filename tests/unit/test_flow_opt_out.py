"""A do-not-call request, heard at any node of any flow: the engine ends the call with
``OptOut``, a goodbye and ``Hangup("do_not_call")``; a flow's own intent takes the words only
when it claims all of them; ``FlowResponder`` puts the number on the list before the goodbye
and never leaves the call hanging when it cannot."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import pytest

from slotline.agent.call.responder import Action, CallerSaid, CallStarted, Hangup, Listen, Say
from slotline.agent.flow import (
    AvailabilityReady,
    FlowEngine,
    FlowResponder,
    Phase,
    SlotOffer,
    load_flow,
    parse_flow,
)
from slotline.agent.flow.messages import OptOut
from slotline.agent.flow.state import DO_NOT_CALL, OPT_OUT_GOODBYE
from slotline.providers.errors import ProviderError
from slotline.providers.llm.rules.vocab import OPT_OUT, OPT_OUT_HINTS
from slotline.providers.stt._domain_corpus import domain_sentences
from tests.unit.test_flow_examples import ACTIONS, FLOWS, NOW, CalendarRunner, Webhooks

ENDING = [OptOut(), Say(OPT_OUT_GOODBYE), Hangup(DO_NOT_CALL)]
PHONE = "+15551234567"
AT_10 = SlotOffer("2026-12-01T10:00:00-05:00", "Tuesday, December 1st", "10 am")
AT_14 = SlotOffer("2026-12-01T14:00:00-05:00", "Tuesday, December 1st", "2 pm")


def started(name: str, **parameters: str) -> FlowEngine:
    engine = FlowEngine(load_flow(FLOWS / f"{name}.yaml"), now=lambda: NOW)
    engine.handle(CallStarted("CA1", parameters))
    return engine


def made(nodes: Mapping[str, Any], **header: Any) -> FlowEngine:
    flow = parse_flow({"name": "t", "start": next(iter(nodes)), **header, "nodes": dict(nodes)})
    engine = FlowEngine(flow, now=lambda: NOW)
    engine.handle(CallStarted("CA1"))
    return engine


def assert_opted_out(engine: FlowEngine, actions: list[Any]) -> None:
    assert actions == ENDING
    assert engine.ended and engine.variables["opted_out"] == "yes"


ASK = {"type": "conversation", "say": "Your name?", "collect": "user_name", "extractor": "name",
       "next": "bye"}
BYE = {"type": "end_call", "say": "Bye."}
LEAVE = {"type": "end_call", "say": "Sorry to bother you.", "reason": "declined"}


# ---- the engine --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(ACTIONS))
def test_every_bundled_flow_hears_it_at_its_first_question(name: str) -> None:
    engine = started(name, user_phone=PHONE)
    assert engine.phase is Phase.ANSWER
    at = engine.node_id
    assert_opted_out(engine, engine.handle(CallerSaid("please take me off your list")))
    assert engine.node_id == at  # nothing else ran: no node, no booking, no webhook


@pytest.mark.parametrize("name", sorted(ACTIONS))
def test_every_bundled_flow_listens_for_it(name: str) -> None:
    actions = started_actions(name)
    listens = [a for a in actions if isinstance(a, Listen)]
    assert listens and all(set(OPT_OUT_HINTS) <= set(a.hints.phrases) for a in listens)


def started_actions(name: str) -> list[Any]:
    engine = FlowEngine(load_flow(FLOWS / f"{name}.yaml"), now=lambda: NOW)
    return list(engine.handle(CallStarted("CA1")))


@pytest.mark.parametrize("said", [
    "don't call me again",
    "Please, DON'T call me again!",
    "do not call me",
    "stop calling me",
    "can you just stop calling me please",
    "take me off your list",
    "remove me from your list",
    "put me on your do not call list",
    "unsubscribe",
    "never call me again",
    "quit calling me",
    "take my number off your calling list",
])
def test_the_usual_ways_of_saying_it(said: str) -> None:
    engine = made({"ask": ASK, "bye": BYE})
    assert_opted_out(engine, engine.handle(CallerSaid(said)))


@pytest.mark.parametrize("said", [
    "no thanks",
    "stop please",  # over the agent: a barge-in, not a request never to be called
    "don't call me before noon",  # a preference, not a request to stop
    "call me back tomorrow",
    "my name is john smith",
    "listen to me",
    "i want to cancel my appointment",
])
def test_other_answers_are_left_to_the_node(said: str) -> None:
    engine = made({"ask": ASK, "bye": BYE})
    actions = engine.handle(CallerSaid(said))
    assert not any(isinstance(a, OptOut) for a in actions)
    assert "opted_out" not in engine.variables


def booking_engine(answer: AvailabilityReady) -> FlowEngine:
    """demo_booking asked "shall I book it?" (CONFIRM) or which offer (CHOOSE)."""
    engine = started("demo_booking")
    for said in ("my name is john smith", "no thanks", "next tuesday"):
        engine.handle(CallerSaid(said))
    engine.handle(CallerSaid("ten a m"))
    assert engine.phase is Phase.CHECKING
    engine.handle(answer)
    return engine


def test_heard_when_the_booking_asks_to_confirm() -> None:
    engine = booking_engine(AvailabilityReady("book", AT_10))
    assert engine.phase is Phase.CONFIRM
    assert_opted_out(engine, engine.handle(CallerSaid("no, don't call me again")))


def test_heard_when_the_booking_offers_times() -> None:
    engine = booking_engine(AvailabilityReady("book", None, (AT_10, AT_14)))
    assert engine.phase is Phase.CHOOSE
    assert_opted_out(engine, engine.handle(CallerSaid("stop calling me")))


def test_heard_before_a_model_is_asked() -> None:
    flow = load_flow(FLOWS / "demo_booking.yaml")
    engine = FlowEngine(flow, now=lambda: NOW, use_llm=True)
    engine.handle(CallStarted("CA1"))
    assert_opted_out(engine, engine.handle(CallerSaid("unsubscribe")))  # no AskModel


def test_after_the_end_nothing_more_happens() -> None:
    engine = made({"ask": ASK, "bye": BYE})
    engine.handle(CallerSaid("take me off your list"))
    assert engine.handle(CallerSaid("take me off your list")) == []


# ---- precedence over the flow's intents ---------------------------------------------------------


def test_a_shorter_flow_phrase_does_not_swallow_it() -> None:
    # the built-in intent hears "stop calling me" in a flow with intents of its own
    engine = started("sales_demo")
    assert_opted_out(engine, engine.handle(CallerSaid("stop calling me")))


def test_the_flow_intent_still_hears_its_other_words() -> None:
    engine = started("sales_demo")
    actions = engine.handle(CallerSaid("sorry i'm not interested"))
    assert Hangup("declined") in actions and OptOut() not in actions
    assert engine.node_id == "polite_exit"


def test_a_flow_intent_elsewhere_in_the_utterance_loses() -> None:
    engine = made({"ask": ASK, "bye": BYE, "cancelling": LEAVE},
                  intents=[{"name": "cancel", "keywords": ["cancel"], "goto": "cancelling"}])
    assert_opted_out(engine, engine.handle(CallerSaid("cancel that and stop calling me")))


def test_a_flow_intent_claiming_the_very_words_wins() -> None:
    # the flow handles the request itself (say, a webhook to its own CRM first)
    intents = [{"name": "list", "phrases": ["take me off your list"], "goto": "leave"}]
    engine = made({"ask": ASK, "bye": BYE, "leave": LEAVE}, intents=intents)
    actions = engine.handle(CallerSaid("please take me off your list"))
    assert actions == [Say("Sorry to bother you."), Hangup("declined")]
    assert "opted_out" not in engine.variables


def test_a_keyword_intent_claiming_the_very_words_wins() -> None:
    intents = [{"name": "unsub", "keywords": ["unsubscribe"], "goto": "leave"}]
    engine = made({"ask": ASK, "bye": BYE, "leave": LEAVE}, intents=intents)
    assert engine.handle(CallerSaid("unsubscribe"))[-1] == Hangup("declined")


# ---- what the recogniser is told --------------------------------------------------------------


def test_every_phrase_is_in_the_offline_recognisers_corpus() -> None:
    padded = [f" {sentence} " for sentence in domain_sentences()]
    unsaid = [p for p in OPT_OUT if not any(f" {p} " in sentence for sentence in padded)]
    assert unsaid == []


def test_the_hints_are_requests_the_engine_hears() -> None:
    for phrase in OPT_OUT_HINTS:
        engine = made({"ask": ASK, "bye": BYE})
        assert engine.handle(CallerSaid(phrase))[0] == OptOut(), phrase


# ---- FlowResponder ---------------------------------------------------------------------------


class MemoryOptOutList:
    """The OptOutList protocol in memory; ``failure`` makes ``add`` raise it, ``gate`` makes
    it wait. ``order`` is shared with the test so it can say what happened first."""

    def __init__(self, order: list[str], *, failure: Exception | None = None,
                 gate: asyncio.Event | None = None) -> None:
        self.order = order
        self.failure = failure
        self.gate = gate
        self.started = asyncio.Event()
        self.numbers: dict[str, str] = {}  # phone -> call sid

    async def add(self, phone: str, *, call_sid: str) -> None:
        self.started.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.failure is not None:
            raise self.failure
        self.numbers[phone] = call_sid
        self.order.append("added")


class Call:
    """One call through FlowResponder, by text; ``order`` gets each action as it comes out."""

    def __init__(self, name: str, opt_out: MemoryOptOutList | None,
                 order: list[str] | None = None, **kw: Any) -> None:
        self.errors: list[ProviderError] = []
        self.order = [] if order is None else order
        engine = FlowEngine(load_flow(FLOWS / f"{name}.yaml"), now=lambda: NOW)
        self.responder = FlowResponder(engine, booking=CalendarRunner(), webhooks=Webhooks(),
                                       opt_out=opt_out, on_provider_error=self.errors.append,
                                       **kw)

    async def send(self, event: CallStarted | CallerSaid) -> list[Action]:
        actions = []
        async for action in self.responder.handle(event):
            actions.append(action)
            self.order.append(type(action).__name__)
        return actions


async def test_the_number_is_on_the_list_before_the_goodbye_is_spoken() -> None:
    order: list[str] = []
    stored = MemoryOptOutList(order)
    call = Call("demo_booking", stored, order)
    await call.send(CallStarted("CA7", {"user_phone": PHONE}))  # demo_booking declares none
    order.clear()
    actions = await call.send(CallerSaid("don't call me again"))
    assert actions == [Say(OPT_OUT_GOODBYE), Hangup(DO_NOT_CALL)]
    assert order == ["added", "Say", "Hangup"]
    assert stored.numbers == {PHONE: "CA7"} and call.errors == []
    assert call.responder.variables["opted_out"] == "yes"


async def test_without_a_call_parameter_the_number_the_caller_gave_is_used() -> None:
    stored = MemoryOptOutList([])
    call = Call("support_callback", stored)
    await call.send(CallStarted("CA8"))
    for said in ("my name is david lee", "my router keeps dropping",
                 "five five five one two three four five six seven"):
        await call.send(CallerSaid(said))
    await call.send(CallerSaid("actually just stop calling me"))
    assert stored.numbers == {PHONE: "CA8"}


@pytest.mark.parametrize("failure", [
    ProviderError("store", "database is locked"), RuntimeError("disk I/O error"),
])
async def test_a_failing_list_still_says_goodbye_and_hangs_up(
    failure: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    call = Call("demo_booking", MemoryOptOutList([], failure=failure))
    await call.send(CallStarted("CA9", {"user_phone": PHONE}))
    with caplog.at_level(logging.INFO, logger="slotline.agent.flow.responder"):
        actions = await call.send(CallerSaid("take me off your list"))
    assert actions == [Say(OPT_OUT_GOODBYE), Hangup(DO_NOT_CALL)]
    [error] = call.errors
    assert error.provider == ("store" if isinstance(failure, ProviderError) else "opt-out")
    assert "***67" in caplog.text and PHONE not in caplog.text  # masked


async def test_a_list_that_never_answers_is_given_up_on() -> None:
    stuck = MemoryOptOutList([], gate=asyncio.Event())
    call = Call("demo_booking", stuck, service_timeout_s=0.05)
    await call.send(CallStarted("CA1", {"user_phone": PHONE}))
    actions = await call.send(CallerSaid("stop calling me"))
    assert actions == [Say(OPT_OUT_GOODBYE), Hangup(DO_NOT_CALL)]
    assert [e.provider for e in call.errors] == ["opt-out"]


@pytest.mark.parametrize(("opt_out", "parameters"), [
    (None, {"user_phone": PHONE}),  # no list configured
    (MemoryOptOutList([]), {}),  # an anonymous caller: no number to put on it
])
async def test_nothing_to_record_is_reported_and_the_call_still_ends(
    opt_out: MemoryOptOutList | None, parameters: dict[str, str]
) -> None:
    call = Call("demo_booking", opt_out)
    await call.send(CallStarted("CA1", parameters))
    actions = await call.send(CallerSaid("unsubscribe"))
    assert actions == [Say(OPT_OUT_GOODBYE), Hangup(DO_NOT_CALL)]
    assert [e.provider for e in call.errors] == ["opt-out"]
    assert opt_out is None or opt_out.numbers == {}


async def test_a_barge_in_while_recording_does_not_lose_it() -> None:
    gate = asyncio.Event()
    stored = MemoryOptOutList([], gate=gate)
    call = Call("demo_booking", stored)
    await call.send(CallStarted("CA3", {"user_phone": PHONE}))
    reply = asyncio.create_task(call.send(CallerSaid("do not call me")))
    await stored.started.wait()
    reply.cancel()  # the session cancels the reply (a barge-in)
    with pytest.raises(asyncio.CancelledError):
        await reply
    gate.set()
    await call.responder.aclose()  # the end of the call waits for the list
    assert stored.numbers == {PHONE: "CA3"}
