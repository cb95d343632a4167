"""Early model requests (``FlowResponder.anticipate``): started on the caller's interim words,
used only when the final words ask exactly the same, dropped otherwise, and never anything but
a model request.

The model is the real OpenAI adapter against the OpenAI emulator on 127.0.0.1, scripted by
``tests.unit.test_flow_llm.receptionist``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from slotline.agent.call.responder import CallerSaid, CallStarted
from slotline.agent.flow import FlowEngine, FlowResponder, JudgeConditions
from slotline.agent.flow.anticipate import model_request_ahead
from slotline.agent.flow.llm import History
from slotline.providers.emulators.openai import Latency, OpenAIEmulator
from slotline.providers.llm.openai import OpenAIChatModel
from tests.unit.test_flow_examples import NOW
from tests.unit.test_flow_llm import (
    KEY,
    NODES,
    PARKING_CLAUSES,
    engine,
    flow_of,
    receptionist,
    responder,
    run,
    texts,
)
from tests.unit.test_flow_responder import GatedCalendar, NoWebhooks
from tests.until import until

SLOW = Latency(first_token_delay_ms=300.0)


@pytest.fixture
async def emulator() -> AsyncIterator[OpenAIEmulator]:
    async with OpenAIEmulator(api_key=KEY, script=receptionist) as emu:
        yield emu


@pytest.fixture
async def model(emulator: OpenAIEmulator) -> AsyncIterator[OpenAIChatModel]:
    async with OpenAIChatModel(KEY, base_url=emulator.base_url, model="emulated-chat") as chat:
        yield chat


async def test_an_early_request_for_the_same_words_is_used_not_asked_again(
    emulator: OpenAIEmulator, model: OpenAIChatModel
) -> None:
    emulator.latency = SLOW
    r = responder(model)
    await run(r, CallStarted("CA1"))
    assert r.anticipate("do you have parking")
    await until(lambda: emulator.stats.requests == 1)  # asked while the caller still pauses
    reply = await run(r, CallerSaid("do you have parking"))
    assert texts(reply) == [*PARKING_CLAUSES, "May I have your name?"]
    assert emulator.stats.requests == 1  # the final words did not ask again
    stats = r.llm_stats
    assert (stats.early_started, stats.early_used, stats.extractions, stats.free_answers) == (
        1, 1, 1, 1)
    assert stats.llm_turns == 1  # the time saved is measured by the bench, not asserted here


async def test_other_final_words_drop_the_early_request_and_its_answer(
    emulator: OpenAIEmulator, model: OpenAIChatModel
) -> None:
    emulator.latency = SLOW
    r = responder(model, start="ask_date")
    await run(r, CallStarted("CA1"))
    assert r.anticipate("whenever my sister")  # the caller pauses mid-sentence...
    await until(lambda: emulator.stats.requests == 1)
    reply = await run(r, CallerSaid("whenever my sister, no, next tuesday"))  # ...and goes on
    assert texts(reply) == ["Email?"]
    assert r.variables["preferred_date"] == "2026-12-01"  # the rules' reading, not the model's
    await until(lambda: emulator.stats.streams_cancelled + emulator.stats.streams_completed >= 1)
    stats = r.llm_stats
    assert (stats.early_started, stats.early_used) == (1, 0)
    assert stats.extractions == 0 and stats.llm_turns == 0  # a dropped request is not counted


async def test_the_caller_talking_on_cancels_the_early_request(
    emulator: OpenAIEmulator, model: OpenAIChatModel
) -> None:
    emulator.latency = Latency(first_token_delay_ms=2000.0)
    r = responder(model, start="ask_date")
    await run(r, CallStarted("CA1"))
    assert r.anticipate("whenever my sister gets back")
    await until(lambda: emulator.stats.streams_started == 1)
    r.forget_anticipation()
    await until(lambda: emulator.stats.streams_cancelled == 1)  # the HTTP stream was closed


async def test_words_the_rules_read_start_nothing(
    emulator: OpenAIEmulator, model: OpenAIChatModel
) -> None:
    r = responder(model)
    await run(r, CallStarted("CA1"))
    assert not r.anticipate("my name is john smith")
    assert not r.anticipate("   ")
    await run(r, CallerSaid("my name is john smith"))
    assert emulator.stats.requests == 0 and r.llm_stats.early_started == 0


async def test_a_branch_judgement_is_anticipated_too(
    emulator: OpenAIEmulator, model: OpenAIChatModel
) -> None:
    r = responder(model, start="ask_name")
    await run(r, CallStarted("CA1"))
    await run(r, CallerSaid("my name is john smith, i have been here before"))
    await run(r, CallerSaid("next tuesday"))
    assert r.anticipate("john at example dot com")
    reply = await run(r, CallerSaid("john at example dot com"))
    assert texts(reply) == ["Welcome back, John Smith."]
    assert len(emulator.received) == 1 and r.llm_stats.early_used == 1
    assert r.llm_stats.judgements == 1


def test_only_a_model_request_can_come_first() -> None:
    nodes = {
        "ask_name": {"type": "conversation", "say": "Your name?", "collect": "user_name",
                     "extractor": "name", "next": "crm"},
        "crm": {"type": "webhook", "webhook": "crm", "send": ["user_name"], "success": "bye",
                "failure": "bye"},
        "bye": {"type": "end_call", "say": "Bye."},
    }
    flow = flow_of(nodes, "ask_name")
    ahead_engine = FlowEngine(flow, now=lambda: NOW, use_llm=True)
    ahead_engine.handle(CallStarted("CA1"))
    # the rules read the name, then the webhook would run: nothing may start early
    assert model_request_ahead(ahead_engine, History(), "my name is john smith") is None
    assert ahead_engine.node_id == "ask_name" and ahead_engine.variables["user_name"] == ""


def test_the_fork_leaves_the_engine_as_it_was() -> None:
    e = engine(NODES, "ask_email")
    e.handle(CallStarted("CA1"))
    ahead = model_request_ahead(e, History(), "john at example dot com")
    assert ahead is not None and isinstance(ahead.request, JudgeConditions)
    assert [(m.role, m.content) for m in ahead.history] == [("user", "john at example dot com")]
    assert e.node_id == "ask_email" and e.path == ("ask_email",)
    assert "user_email" not in e.variables or e.variables["user_email"] == ""


async def test_without_a_model_nothing_is_anticipated() -> None:
    r = FlowResponder(engine(llm=False), booking=GatedCalendar(), webhooks=NoWebhooks())
    await run(r, CallStarted("CA1"))
    assert not r.anticipate("do you have parking")
