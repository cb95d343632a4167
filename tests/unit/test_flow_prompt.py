"""Nodes whose line the model writes (`prompt:`): validation, what the engine asks, and the line
streamed clause by clause by the real OpenAI adapter from the OpenAI emulator over 127.0.0.1 —
offline fallback, failures mid-stream, barge-in."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest

from slotline.agent.call.responder import Action, CallerSaid, CallStarted, Hangup, Listen, Say
from slotline.agent.flow import (
    Flow,
    FlowEngine,
    FlowInvalid,
    FlowResponder,
    llm_warnings,
    parse_flow,
)
from slotline.agent.flow.graph import mermaid
from slotline.agent.flow.llm import LlmPerformer, Written
from slotline.agent.flow.messages import WriteLine
from slotline.agent.flow.model import PROMPT_NEEDS_SAY
from slotline.providers.emulators.openai import Latency, OpenAIEmulator, Reply, default_script
from slotline.providers.errors import ProviderError
from slotline.providers.llm.openai import OpenAIChatModel
from tests.unit.test_flow_examples import NOW
from tests.unit.test_flow_responder import GatedCalendar, NoWebhooks

KEY = "sk-prompt-test"
GREETING = ("Hi, thanks for calling the clinic, this is Ava speaking. "
            "I can book your visit today; it only takes a minute!")
NODES: dict[str, Any] = {
    "hello": {"type": "greeting", "prompt": "Greet the caller and offer to book a visit.",
              "say": "Hi, this is {agent_name} at the clinic.", "next": "ask_name"},
    "ask_name": {"type": "conversation", "prompt": "Ask for the caller's name.",
                 "say": "May I have your name?", "collect": "user_name", "extractor": "name",
                 "next": "bye"},
    "bye": {"type": "end_call", "prompt": "Thank {user_name} and say goodbye.",
            "say": "Goodbye, {user_name}."},
}


def flow_of(nodes: Mapping[str, Any] = NODES) -> Flow:
    return parse_flow({"name": "t", "agent_name": "Ava", "persona": "A calm receptionist.",
                       "instructions": "The clinic opens at nine.", "start": "hello",
                       "nodes": dict(nodes)}, source="test")


def responder(model: Any = None, **kw: Any) -> FlowResponder:
    """The test flow's responder; the model's first-token budget is generous (a loaded CI box
    is slow to open the first connection), the tests that need a short one say so."""
    engine = FlowEngine(flow_of(), now=lambda: NOW, use_llm=model is not None)
    kw.setdefault("llm_timeout_s", 30.0)
    return FlowResponder(engine, booking=GatedCalendar(), webhooks=NoWebhooks(), llm=model, **kw)


async def run(r: FlowResponder, event: Any) -> list[Action]:
    return [action async for action in r.handle(event)]


def texts(actions: list[Action]) -> list[str]:
    return [a.text for a in actions if isinstance(a, Say)]


def problems(nodes: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    with pytest.raises(FlowInvalid) as caught:
        flow_of(nodes)
    return [(p.node_id, p.field, p.message) for p in caught.value.problems]


def scripted(request: Mapping[str, Any]) -> Reply:
    """Every line request (no tools) is written as the greeting; anything else says nothing."""
    return Reply(text=GREETING) if not request.get("tools") else Reply()


@pytest.fixture
async def emulator() -> AsyncIterator[OpenAIEmulator]:
    async with OpenAIEmulator(api_key=KEY, script=scripted) as emu:
        yield emu


@pytest.fixture
async def model(emulator: OpenAIEmulator) -> AsyncIterator[OpenAIChatModel]:
    async with OpenAIChatModel(KEY, base_url=emulator.base_url, model="emulated-chat") as chat:
        yield chat


# ---- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize("node_id", ["hello", "ask_name", "bye"])
def test_a_prompt_without_say_fails_validation_naming_the_node(node_id: str) -> None:
    nodes = {**NODES, node_id: {k: v for k, v in NODES[node_id].items() if k != "say"}}
    assert problems(nodes) == [(node_id, "say", PROMPT_NEEDS_SAY)]


def test_prompts_are_templates_over_known_variables() -> None:
    nodes = {**NODES, "hello": {**NODES["hello"], "prompt": "Greet {caller_title}."}}
    ((node_id, field, message),) = problems(nodes)
    assert (node_id, field) == ("hello", "prompt") and "caller_title" in message
    assert [(w.node_id, w.field) for w in llm_warnings(flow_of())] == [
        ("hello", "prompt"), ("ask_name", "prompt"), ("bye", "prompt")]


# ---- the engine ------------------------------------------------------------------------------


def test_without_a_model_the_engine_says_the_fallback() -> None:
    engine = FlowEngine(flow_of(), now=lambda: NOW)
    actions = engine.handle(CallStarted("CA1"))
    assert [a for a in actions if isinstance(a, Say)] == [
        Say("Hi, this is Ava at the clinic."), Say("May I have your name?")]


def test_with_a_model_the_engine_asks_for_lines() -> None:
    engine = FlowEngine(flow_of(), now=lambda: NOW, use_llm=True)
    engine.handle(CallStarted("CA1"))
    actions = engine.handle(CallerSaid("my name is jane doe"))
    (line,) = [a for a in actions if isinstance(a, WriteLine)]
    assert line.node_id == "bye" and line.prompt == "Thank Jane Doe and say goodbye."
    assert line.fallback == "Goodbye, Jane Doe." and line.variables["user_name"] == "Jane Doe"
    assert line.persona == "A calm receptionist." and "nine" in line.instructions
    assert isinstance(actions[-1], Hangup)


# ---- the line, streamed ----------------------------------------------------------------------


async def test_a_line_is_spoken_clause_by_clause_while_it_streams(
    emulator: OpenAIEmulator, model: OpenAIChatModel
) -> None:
    emulator.latency = Latency(first_token_delay_ms=0, token_interval_ms=30)
    r = responder(model)
    reply = r.handle(CallStarted("CA1"))
    first = await anext(reply)
    # the first clause is out while the model is still writing the rest of the line
    assert first == Say("Hi,")  # a line's opener leaves alone (agent.flow.clauses)
    assert emulator.stats.streams_completed == 0
    rest = [action async for action in reply]
    assert texts([first, *rest]) == [
        "Hi,", "thanks for calling the clinic,", "this is Ava speaking.",
        "I can book your visit today;", "it only takes a minute!",
        *texts(rest)[4:]]
    assert isinstance(rest[-1], Listen) and r.llm_stats.lines == 2
    # the line request: the prompt, the flow's variables and the example; then the greeting
    # is the history of the question's request
    greet, ask = emulator.received
    system = greet["messages"][0]["content"]
    assert "Greet the caller and offer to book a visit." in system
    assert "- agent_name: Ava" in system and "A calm receptionist." in system
    assert 'Example line: "Hi, this is Ava at the clinic."' in system
    assert "tools" not in greet and len(greet["messages"]) == 1
    assert ask["messages"][1] == {"role": "assistant", "content": GREETING}


async def test_the_emulator_follows_the_example_line_by_default(
    emulator: OpenAIEmulator, model: OpenAIChatModel
) -> None:
    emulator.script = default_script
    r = responder(model)
    assert texts(await run(r, CallStarted("CA1"))) == ["Hi,", "this is Ava at the clinic.",
                                                       "May I have your name?"]
    assert texts(await run(r, CallerSaid("my name is jane doe"))) == ["Goodbye,", "Jane Doe."]


async def test_a_line_cut_mid_stream_keeps_what_was_said_and_ends_with_the_fallback(
    emulator: OpenAIEmulator, model: OpenAIChatModel
) -> None:
    errors: list[ProviderError] = []
    # role chunk + "Hi," … "clinic," + " this": two clauses are out, then the stream fails
    emulator.break_next_stream("error", after_chunks=8)
    r = responder(model, on_provider_error=errors.append)
    said = texts(await run(r, CallStarted("CA1")))
    assert said[:3] == ["Hi,", "thanks for calling the clinic,", "Hi, this is Ava at the clinic."]
    assert [e.provider for e in errors] == ["openai"] and r.llm_stats.failures == 1
    # the call goes on: the next node's line is written by the model again
    assert said[3:] == ["Hi,", "thanks for calling the clinic,", "this is Ava speaking.",
                        "I can book your visit today;", "it only takes a minute!"]


async def test_a_line_that_stalls_mid_stream_is_given_up_after_the_stall_bound(
    emulator: OpenAIEmulator, model: OpenAIChatModel
) -> None:
    errors: list[ProviderError] = []
    emulator.break_next_stream("stall", after_chunks=8)
    performer = LlmPerformer(model, timeout_s=30.0, line_stall_s=0.3, on_error=errors.append)
    spoken: list[str] = []
    line = WriteLine("hello", "Greet the caller.", "Hi.", "", "")
    loop = asyncio.get_running_loop()
    stalled_at: list[float] = []

    def speak(clause: str) -> None:
        spoken.append(clause)
        stalled_at.append(loop.time())

    written = await performer.write(line, (), speak)
    gave_up_after_s = loop.time() - stalled_at[-1]
    assert written == Written("Hi, thanks for calling the clinic,", finished=False)
    assert spoken == ["Hi,", "thanks for calling the clinic,"]
    assert 0.25 <= gave_up_after_s < 5.0  # the stall bound, not the first-token budget
    assert [e.provider for e in errors] == ["llm"] and performer.stats.failures == 1
    await emulator.wait_until(lambda stats: stats.streams_cancelled == 1)


async def test_a_model_that_never_answers_says_the_fallback(
    emulator: OpenAIEmulator, model: OpenAIChatModel
) -> None:
    emulator.fail_next(500, count=2)  # the first try and its one retry
    r = responder(model)
    reply = r.handle(CallStarted("CA1"))
    assert await anext(reply) == Say("Hi, this is Ava at the clinic.")
    await reply.aclose()


async def test_barge_in_closes_the_line_being_written(
    emulator: OpenAIEmulator, model: OpenAIChatModel
) -> None:
    emulator.latency = Latency(token_interval_ms=50)
    r = responder(model)
    reply = r.handle(CallStarted("CA1"))
    assert await anext(reply) == Say("Hi,")
    # the session cancels the reply while the clause plays; the next event stops the line
    await emulator.wait_until(lambda stats: stats.streams_started == 1)
    heard = texts(await run(r, CallerSaid("my name is jane doe")))
    await emulator.wait_until(lambda stats: stats.streams_cancelled == 1)
    assert heard[0] == "Hi," and r.variables["user_name"] == \
        "Jane Doe"
    assert r.llm_stats.cancelled == 1
    await reply.aclose()


async def test_offline_the_responder_speaks_the_fallback() -> None:
    r = responder()
    assert texts(await run(r, CallStarted("CA1"))) == ["Hi, this is Ava at the clinic.",
                                                       "May I have your name?"]
    assert texts(await run(r, CallerSaid("my name is jane doe"))) == ["Goodbye, Jane Doe."]


async def test_with_a_model_the_fallback_lines_are_not_cached_ahead(
    model: OpenAIChatModel,
) -> None:
    assert "May I have your name?" in responder().static_prompts()  # offline: it is the line
    cached = responder(model).static_prompts()
    assert "May I have your name?" not in cached and "Sorry, I didn't catch that." in cached


async def test_a_line_is_started_on_the_interim_words_and_used_when_they_stay(
    emulator: OpenAIEmulator, model: OpenAIChatModel
) -> None:
    r = responder(model)
    await run(r, CallStarted("CA1"))
    assert emulator.stats.requests == 2
    assert r.anticipate("my name is jane doe")  # the caller pauses: the goodbye is written
    await emulator.wait_until(lambda stats: stats.streams_completed == 3)
    said = texts(await run(r, CallerSaid("my name is jane doe")))
    assert said[0] == "Hi," and emulator.stats.requests == 3
    assert (r.llm_stats.early_started, r.llm_stats.early_used, r.llm_stats.lines) == (1, 1, 3)
    assert "Jane Doe" in emulator.received[2]["messages"][0]["content"]


async def test_a_line_started_on_words_the_caller_then_changed_is_dropped(
    emulator: OpenAIEmulator, model: OpenAIChatModel
) -> None:
    emulator.latency = Latency(token_interval_ms=50)
    r = responder(model)
    await run(r, CallStarted("CA1"))
    assert r.anticipate("my name is jane")
    await emulator.wait_until(lambda stats: stats.streams_started == 3)
    said = texts(await run(r, CallerSaid("my name is jane doe")))
    await emulator.wait_until(lambda stats: stats.streams_cancelled == 1)
    assert said[0] == "Hi," and emulator.stats.requests == 4
    assert "Jane Doe" in emulator.received[3]["messages"][0]["content"]
    assert (r.llm_stats.early_used, r.llm_stats.lines) == (0, 3)


def test_the_graph_shows_which_lines_the_model_writes() -> None:
    drawn = mermaid(flow_of())
    assert "hello<br/>greeting, line by the model" in drawn
    assert "ask_name<br/>collect user_name (name), line by the model" in drawn
