"""The LLM's jobs in a flow: extraction when the rules read nothing, free answers, described
branch conditions; barge-in, timeouts and failures.

The model is the real OpenAI adapter talking to the OpenAI emulator over 127.0.0.1 (scripts
decide what the "model" answers); the engine's side is also driven by its events directly, and
one test uses a small ChatModel of its own to hold a generation open.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from slotline.agent.call.responder import (
    Action,
    CallerSaid,
    CallEvent,
    CallStarted,
    Hangup,
    Listen,
    ReplyInterrupted,
    Say,
)
from slotline.agent.flow import (
    AskModel,
    ConditionsJudged,
    Flow,
    FlowEngine,
    FlowInvalid,
    FlowResponder,
    JudgeConditions,
    ModelAnswered,
    Phase,
    Wanted,
    llm_warnings,
    load_flow,
    parse_flow,
)
from slotline.agent.flow.cli import validate_command
from slotline.agent.flow.llm import History, parse_values
from slotline.agent.flow.llm_steps import MAX_FREE_ANSWERS, accept
from slotline.agent.flow.state import Ctx
from slotline.providers.base import (
    ChatEvent,
    ChatMessage,
    TextDelta,
    ToolCall,
    ToolCallsReady,
    ToolSpec,
)
from slotline.providers.emulators.openai import OpenAIEmulator, Reply
from slotline.providers.errors import ProviderError, ProviderTimeout
from slotline.providers.llm import rules
from slotline.providers.llm.openai import OpenAIChatModel
from tests.unit.test_flow_examples import FLOWS, NOW
from tests.unit.test_flow_responder import GatedCalendar, NoWebhooks

KEY = "sk-flow-test"
PARKING = "Yes, there is free parking behind the building. Just follow the signs."
# as it is spoken: the opener alone, then sentence by sentence (agent.flow.clauses)
PARKING_CLAUSES = ["Yes,", "there is free parking behind the building.", "Just follow the signs."]
HEADER: dict[str, Any] = {
    "name": "t", "timezone": "America/New_York", "persona": "A cheerful receptionist.",
    "instructions": "Free parking is behind the building.", "variables": {"user_name": ""},
}
NODES: dict[str, Any] = {
    "hello": {"type": "greeting", "say": "Hi, this is the clinic.", "next": "ask_name"},
    "ask_name": {"type": "conversation", "say": "May I have your name?", "collect": "user_name",
                 "extractor": "name", "answer_questions": True,
                 "instructions": "Answer questions about getting here.", "next": "ask_date"},
    "ask_date": {"type": "conversation", "say": "Which day?", "collect": "preferred_date",
                 "extractor": "date", "next": "ask_email"},
    "ask_email": {"type": "conversation", "say": "Email?", "collect": "user_email",
                  "extractor": "email", "next": "route", "fallback": "bye"},
    "route": {"type": "branch", "default": "new", "conditions": [
        {"variable": "user_name", "equals": "Nobody", "goto": "bye"},
        {"when": "the caller sounds like an existing customer", "goto": "existing"},
    ]},
    "existing": {"type": "end_call", "say": "Welcome back, {user_name}."},
    "new": {"type": "end_call", "say": "Welcome, {user_name}."},
    "bye": {"type": "end_call", "say": "Bye."},
}


# ---- helpers ---------------------------------------------------------------------------------


def flow_of(nodes: Mapping[str, Any] = NODES, start: str = "hello", **header: Any) -> Flow:
    """The flow from ``start`` on (the nodes are in flow order: the ones before are left out,
    as they would be unreachable)."""
    ids = list(nodes)
    kept = {node_id: nodes[node_id] for node_id in ids[ids.index(start):]}
    return parse_flow({**HEADER, **header, "start": start, "nodes": kept}, source="test")


def engine(nodes: Mapping[str, Any] = NODES, start: str = "hello", *, llm: bool = True
           ) -> FlowEngine:
    return FlowEngine(flow_of(nodes, start), now=lambda: NOW, use_llm=llm)


def responder(model: Any, nodes: Mapping[str, Any] = NODES, start: str = "hello", **kw: Any
              ) -> FlowResponder:
    return FlowResponder(engine(nodes, start), booking=GatedCalendar(), webhooks=NoWebhooks(),
                         llm=model, **kw)


async def run(r: FlowResponder, event: CallEvent) -> list[Action]:
    return [action async for action in r.handle(event)]


def texts(actions: list[Action]) -> list[str]:
    return [a.text for a in actions if isinstance(a, Say)]


def tool_of(request: Mapping[str, Any]) -> dict[str, Any]:
    (tool,) = request["tools"]
    function: dict[str, Any] = tool["function"]
    return function


def last_user(request: Mapping[str, Any]) -> str:
    return str([m for m in request["messages"] if m["role"] == "user"][-1]["content"])


def call(name: str, **arguments: Any) -> Reply:
    return Reply(tool_calls=(ToolCall("call_1", name, json.dumps(arguments)),))


def receptionist(request: Mapping[str, Any]) -> Reply:
    """A scripted model: answers the parking question, records what a caller says in a way
    the rules cannot read, and judges "been here before" callers as existing customers."""
    function = tool_of(request)
    said = last_user(request).lower()
    if function["name"] == "judge_conditions":
        history = " ".join(str(m["content"]) for m in request["messages"][1:]).lower()
        return call("judge_conditions", condition_1="been here before" in history)
    if "parking" in said:
        return Reply(text=PARKING)
    if "sister" in said:
        return call("record_answer", preferred_date="2026-12-03")
    if "work address" in said:
        return call("record_answer", user_email="not an email")
    return Reply()


@pytest.fixture
async def emulator() -> AsyncIterator[OpenAIEmulator]:
    async with OpenAIEmulator(api_key=KEY, script=receptionist) as emu:
        yield emu


@pytest.fixture
async def model(emulator: OpenAIEmulator) -> AsyncIterator[OpenAIChatModel]:
    async with OpenAIChatModel(KEY, base_url=emulator.base_url, model="emulated-chat") as chat:
        yield chat


# ---- extraction ------------------------------------------------------------------------------


async def test_rules_answers_skip_the_model(
    emulator: OpenAIEmulator, model: OpenAIChatModel
) -> None:
    r = responder(model)
    assert texts(await run(r, CallStarted("CA1"))) == ["Hi, this is the clinic.",
                                                       "May I have your name?"]
    assert texts(await run(r, CallerSaid("my name is john smith"))) == ["Which day?"]
    assert texts(await run(r, CallerSaid("next tuesday"))) == ["Email?"]
    assert emulator.stats.requests == 0
    assert r.llm_stats.caller_turns == 2 and r.llm_stats.turns_without_llm == 2


async def test_the_model_reads_what_the_rules_cannot_by_tool_call(
    emulator: OpenAIEmulator, model: OpenAIChatModel
) -> None:
    r = responder(model, start="ask_date")
    await run(r, CallStarted("CA1"))
    reply = await run(r, CallerSaid("whenever my sister gets back from her trip"))
    assert texts(reply) == ["Email?"] and r.variables["preferred_date"] == "2026-12-03"
    (request,) = emulator.received
    function = tool_of(request)
    assert function["name"] == "record_answer"
    assert function["parameters"]["properties"]["preferred_date"]["format"] == "date"
    assert function["parameters"]["required"] == ["preferred_date"]
    system = request["messages"][0]["content"]
    assert "Tuesday 2026-11-24 10:00 America/New_York" in system and '"Which day?"' in system
    assert r.llm_stats.llm_turns == 1 and r.llm_stats.turns_without_llm == 0


async def test_a_model_value_that_does_not_validate_is_no_match(
    emulator: OpenAIEmulator, model: OpenAIChatModel
) -> None:
    r = responder(model, start="ask_email")
    await run(r, CallStarted("CA1"))
    reply = await run(r, CallerSaid("it is the same as my work address"))
    assert texts(reply) == ["Sorry, I didn't catch that. Email?"]
    assert "user_email" not in r.variables
    assert texts(await run(r, CallerSaid("my work address again"))) == ["Bye."]  # fallback
    assert len(emulator.received) == 2


async def test_or_collect_variables_are_both_offered() -> None:
    nodes = {"ask": {"type": "conversation", "say": "What time?", "collect": "preferred_time",
                     "extractor": "time", "next": "done",
                     "or_collect": {"variable": "time_preference", "extractor": "time_of_day"}},
             "done": {"type": "end_call", "say": "Ok."}}
    e = engine(nodes, "ask")
    e.handle(CallStarted("CA1"))
    (ask,) = e.handle(CallerSaid("whenever the kids are at school"))
    assert isinstance(ask, AskModel) and e.phase is Phase.THINKING
    assert [w.variable for w in ask.wanted] == ["preferred_time", "time_preference"]
    assert not ask.answer_questions
    assert e.handle(ModelAnswered("ask", {"time_preference": "Morning"})) == [Say("Ok."),
                                                                               Hangup()]
    assert e.variables["time_preference"] == "morning"


WANT_DATE = Wanted("preferred_date", "date")


@pytest.mark.parametrize(("want", "proposed", "expected"), [
    (WANT_DATE, "2026-12-03", "2026-12-03"),
    (WANT_DATE, "December 3rd", "2026-12-03"),  # re-read by the rules
    (WANT_DATE, "2026-02-30", None),
    (WANT_DATE, "soon", None),
    (Wanted("t", "time"), "14:00-16:00", "14:00-16:00"),
    (Wanted("t", "time"), "16:00-14:00", None),
    (Wanted("t", "time"), "half past two", "14:30"),
    (Wanted("n", "name"), "Xiadani Ngata-Whyte", "Xiadani Ngata-Whyte"),
    (Wanted("n", "name"), "john smith", "John Smith"),
    (Wanted("n", "name"), "call me later 2", None),
    (Wanted("e", "email"), "J.Smith@Example.com", "j.smith@example.com"),
    (Wanted("p", "phone"), "(555) 123-4567", "+15551234567"),
    (Wanted("p", "phone"), "+447700900123", "+447700900123"),  # E.164 as the model wrote it
    (Wanted("p", "phone"), "+99912345678", None),  # no country has the code 999
    (Wanted("y", "yes_no"), "yes", "yes"),
    (Wanted("c", "choice", ("haircut|cut", "color|colour")), "colour", "color"),
    (Wanted("c", "choice", ("haircut|cut", "color|colour")), "perm", None),
    (Wanted("x", "number"), "2.5", "2.5"),
    (Wanted("x", "text"), "x" * 300, None),
])
def test_model_values_are_checked_like_the_rules(
    want: Wanted, proposed: str, expected: str | None
) -> None:
    ctx = Ctx(node_id="n", variables={}, now=NOW, timezone="America/New_York",
              extract=rules.extract)
    assert accept(ctx, want, proposed) == expected


def test_tool_arguments_become_text() -> None:
    wanted = (Wanted("ok", "yes_no"), Wanted("guests", "number"), Wanted("name", "name"))
    arguments = json.dumps({"ok": False, "guests": 3, "name": "  Ann ", "other": "x"})
    assert parse_values((ToolCall("c", "record_answer", arguments),), wanted) == {
        "ok": "no", "guests": "3", "name": "Ann"}
    assert parse_values((ToolCall("c", "record_answer", "{not json"),), wanted) == {}
    assert parse_values((ToolCall("c", "other_tool", arguments),), wanted) == {}


# ---- free answers ----------------------------------------------------------------------------


async def test_a_question_gets_a_free_answer_then_the_question_again(
    emulator: OpenAIEmulator, model: OpenAIChatModel
) -> None:
    r = responder(model)
    await run(r, CallStarted("CA1"))
    reply = await run(r, CallerSaid("do you have parking"))
    assert texts(reply) == [*PARKING_CLAUSES, "May I have your name?"]
    assert isinstance(reply[-1], Listen) and r.node == "ask_name"
    (request,) = emulator.received
    system = request["messages"][0]["content"]
    for context in (HEADER["persona"], HEADER["instructions"], "getting here",
                    "answer it in one or two short sentences"):
        assert context in system
    assert texts(await run(r, CallerSaid("my name is john smith"))) == ["Which day?"]
    assert len(emulator.received) == 1  # the answer itself needed no model


async def test_the_context_is_only_what_the_caller_heard(
    emulator: OpenAIEmulator, model: OpenAIChatModel
) -> None:
    r = responder(model)
    await run(r, CallStarted("CA1"))
    await run(r, ReplyInterrupted("May I have", "your name?"))
    await run(r, CallerSaid("sorry do you have parking"))
    messages = emulator.received[0]["messages"]
    assert [(m["role"], m["content"]) for m in messages[1:]] == [
        ("assistant", "Hi, this is the clinic. May I have"),
        ("user", "sorry do you have parking"),
    ]


def test_history_keeps_the_heard_part_of_the_last_agent_line() -> None:
    history = History(max_lines=4)
    history.agent("Hello.")
    history.caller("hi")
    history.agent("Shall I book 2 pm?")
    history.interrupted("")
    history.caller("wait")
    assert history.messages() == (ChatMessage("assistant", "Hello."),
                                  ChatMessage("user", "hi wait"))


def test_free_answers_per_node_are_capped() -> None:
    e = engine(start="ask_name")
    e.handle(CallStarted("CA1"))
    for _ in range(MAX_FREE_ANSWERS):
        (ask,) = e.handle(CallerSaid("do you have parking"))
        assert isinstance(ask, AskModel) and ask.answer_questions
        again = e.handle(ModelAnswered("ask_name", spoken=PARKING))
        assert again[0] == Say("May I have your name?") and e.phase is Phase.ANSWER
    (ask,) = e.handle(CallerSaid("and is it free"))
    assert isinstance(ask, AskModel) and not ask.answer_questions


def test_text_nodes_send_questions_to_the_model_and_take_answers_directly() -> None:
    nodes = {"ask": {"type": "conversation", "say": "What brings you in?", "collect": "reason",
                     "extractor": "text", "answer_questions": True, "next": "done"},
             "done": {"type": "end_call", "say": "Ok."}}
    e = engine(nodes, "ask")
    e.handle(CallStarted("CA1"))
    (ask,) = e.handle(CallerSaid("what are your opening hours"))
    assert isinstance(ask, AskModel)
    e.handle(ModelAnswered("ask", spoken="We open at nine."))
    assert e.handle(CallerSaid("a sore knee")) == [Say("Ok."), Hangup()]
    assert e.variables["reason"] == "a sore knee"


async def test_barge_in_cuts_the_free_answer_and_its_tool_calls_never_run(
    emulator: OpenAIEmulator, model: OpenAIChatModel
) -> None:
    emulator.script = lambda _: Reply(text=PARKING, tool_calls=(
        ToolCall("c1", "record_answer", json.dumps({"user_name": "Parking Lot"})),))
    # role chunk + "Yes," … "building." + " Just": the first sentence is out, then a stall
    emulator.break_next_stream("stall", after_chunks=10)
    r = responder(model)
    await run(r, CallStarted("CA1"))
    reply = r.handle(CallerSaid("do you have parking"))
    assert await anext(reply) == Say("Yes,")
    await reply.aclose()  # the caller talks over it
    await emulator.wait_until(lambda stats: stats.streams_cancelled == 1)
    assert texts(await run(r, CallerSaid("my name is jane doe"))) == ["Which day?"]
    assert r.variables["user_name"] == "Jane Doe" and r.llm_stats.cancelled == 1


class HeldModel:
    """A ChatModel that says one sentence and then holds the generation open."""

    def __init__(self) -> None:
        self.closed = asyncio.Event()

    async def stream(
        self, messages: tuple[ChatMessage, ...], *, tools: tuple[ToolSpec, ...] = ()
    ) -> AsyncGenerator[ChatEvent, None]:
        try:
            yield TextDelta("One moment. ")
            await asyncio.Event().wait()
            yield ToolCallsReady((ToolCall("c", "record_answer", '{"user_name": "Never"}'),))
        finally:
            self.closed.set()


async def test_a_reply_cancelled_while_the_model_streams_closes_the_generation() -> None:
    held = HeldModel()
    r = responder(held)
    await run(r, CallStarted("CA1"))
    heard: list[Action] = []
    spoken = asyncio.Event()

    async def reply() -> None:
        async for action in r.handle(CallerSaid("is the parking free")):
            heard.append(action)
            spoken.set()

    task = asyncio.create_task(reply())
    await spoken.wait()
    task.cancel()  # barge-in while the reply waits on the model
    await asyncio.gather(task, return_exceptions=True)
    await held.closed.wait()
    assert texts(heard) == ["One moment."]
    assert texts(await run(r, CallerSaid("my name is jane doe"))) == ["Which day?"]
    assert "Never" not in r.variables.values()


# ---- failures --------------------------------------------------------------------------------


async def test_a_model_that_runs_out_of_time_is_no_match_and_counted(
    emulator: OpenAIEmulator, model: OpenAIChatModel
) -> None:
    errors: list[ProviderError] = []
    emulator.break_next_stream("stall", after_chunks=0)
    r = responder(model, start="ask_email", llm_timeout_s=0.2, on_provider_error=errors.append)
    await run(r, CallStarted("CA1"))
    reply = await run(r, CallerSaid("it is the same as my work address"))
    assert texts(reply) == ["Sorry, I didn't catch that. Email?"]
    assert [type(e) for e in errors] == [ProviderTimeout] and errors[0].provider == "llm"
    assert r.llm_stats.failures == 1


async def test_a_failing_model_skips_the_free_answer_and_is_counted(
    emulator: OpenAIEmulator, model: OpenAIChatModel
) -> None:
    errors: list[ProviderError] = []
    emulator.fail_next(500, count=2)  # the first try and its one retry
    r = responder(model, on_provider_error=errors.append)
    await run(r, CallStarted("CA1"))
    reply = await run(r, CallerSaid("do you have parking"))
    assert texts(reply) == ["Sorry, I didn't catch that. May I have your name?"]
    assert [e.provider for e in errors] == ["openai"]


# ---- branch conditions described in words ----------------------------------------------------


async def test_a_described_condition_is_judged_by_the_model(
    emulator: OpenAIEmulator, model: OpenAIChatModel
) -> None:
    r = responder(model, start="ask_name")
    await run(r, CallStarted("CA1"))
    await run(r, CallerSaid("my name is john smith, i have been here before"))
    await run(r, CallerSaid("next tuesday"))
    reply = await run(r, CallerSaid("john at example dot com"))
    assert texts(reply) == ["Welcome back, John Smith."]
    (request,) = emulator.received
    function = tool_of(request)
    assert function["name"] == "judge_conditions"
    assert function["parameters"]["properties"] == {"condition_1": {
        "type": "boolean", "description": "the caller sounds like an existing customer"}}
    assert r.llm_stats.judgements == 1 and r.llm_stats.turns_without_llm == 2


async def test_a_judgement_that_fails_makes_the_condition_false(
    emulator: OpenAIEmulator, model: OpenAIChatModel
) -> None:
    errors: list[ProviderError] = []
    emulator.fail_next(503, count=2)
    r = responder(model, start="route", on_provider_error=errors.append)
    assert texts(await run(r, CallStarted("CA1"))) == ["Welcome, ."]
    assert len(errors) == 1 and r.llm_stats.failures == 1


def test_variable_conditions_before_a_described_one_need_no_model() -> None:
    e = engine(start="route")
    assert e.handle(CallStarted("CA1", {})) == [JudgeConditions(
        "route", ((1, "the caller sounds like an existing customer"),),
        HEADER["persona"], HEADER["instructions"])]
    assert e.phase is Phase.JUDGING
    assert e.handle(ConditionsJudged("route", frozenset({1}))) == [Say("Welcome back, ."),
                                                                    Hangup()]
    nodes = {**NODES, "route": {**NODES["route"], "conditions": [
        {"variable": "who", "equals": "Nobody", "goto": "bye"}, *NODES["route"]["conditions"]]}}
    flow = flow_of(nodes, "route", variables={"who": "nobody", "user_name": ""})
    e = FlowEngine(flow, now=lambda: NOW, use_llm=True)
    assert e.handle(CallStarted("CA1")) == [Say("Bye."), Hangup()]


def test_without_a_model_a_described_condition_is_false() -> None:
    e = engine(start="route", llm=False)
    assert e.handle(CallStarted("CA1")) == [Say("Welcome, ."), Hangup()]


def test_described_conditions_are_checked_and_warned_about(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    both = {"variable": "user_name", "is_set": True, "when": "sounds happy", "goto": "bye"}
    neither = {"goto": "bye"}
    for condition, field in ((both, "conditions.0.when"), (neither, "conditions.0.variable")):
        nodes = {**NODES, "route": {**NODES["route"], "conditions": [condition]}}
        with pytest.raises(FlowInvalid) as caught:
            flow_of(nodes)
        assert ("route", field) in [(p.node_id, p.field) for p in caught.value.problems]
    assert [(w.node_id, w.field) for w in llm_warnings(flow_of())] == [
        ("route", "conditions.1.when")]
    path = tmp_path / "f.yaml"
    path.write_text(json.dumps({**HEADER, "start": "hello", "nodes": NODES}))
    assert validate_command(path, set()) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].startswith(f"warning: {path}: node 'route', field 'conditions.1.when': "
                             "described in words")


# ---- the seam --------------------------------------------------------------------------------


def test_a_model_needs_an_engine_that_may_ask_it() -> None:
    with pytest.raises(ValueError, match="use_llm=True"):
        FlowResponder(engine(llm=False), booking=GatedCalendar(), webhooks=NoWebhooks(),
                      llm=HeldModel())


async def test_an_engine_asking_without_a_model_hears_no_match() -> None:
    r = FlowResponder(engine(start="ask_email"), booking=GatedCalendar(), webhooks=NoWebhooks())
    await run(r, CallStarted("CA1"))
    reply = await run(r, CallerSaid("the usual one"))
    assert texts(reply) == ["Sorry, I didn't catch that. Email?"]


async def test_the_demo_flow_answers_questions_only_with_a_model(
    emulator: OpenAIEmulator, model: OpenAIChatModel
) -> None:
    flow = load_flow(FLOWS / "demo_booking.yaml", booking_actions={"demo"})
    offline = FlowResponder(FlowEngine(flow, now=lambda: NOW), booking=GatedCalendar(),
                            webhooks=NoWebhooks())
    await run(offline, CallStarted("CA1"))
    assert texts(await run(offline, CallerSaid("do you have parking"))) == [
        "Sorry, I didn't catch your name. Could you say it again?"]
    online = FlowResponder(FlowEngine(flow, now=lambda: NOW, use_llm=True),
                           booking=GatedCalendar(), webhooks=NoWebhooks(), llm=model)
    await run(online, CallStarted("CA2"))
    assert texts(await run(online, CallerSaid("do you have parking"))) == [
        *PARKING_CLAUSES, "May I have your name?"]
    assert "30-minute video call" in emulator.received[0]["messages"][0]["content"]
