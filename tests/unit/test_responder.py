from __future__ import annotations

from slotline.agent.call.responder import (
    Action,
    CallerSaid,
    CallEvent,
    CallStarted,
    DtmfPressed,
    Hangup,
    Listen,
    Say,
    ScriptedResponder,
)


async def run(r: ScriptedResponder, event: CallEvent) -> list[Action]:
    return [a async for a in r.handle(event)]


async def test_scripted_conversation_by_text() -> None:
    r = ScriptedResponder()
    greeting = await run(r, CallStarted("CA1"))
    assert isinstance(greeting[0], Say) and "name" in greeting[0].text
    assert isinstance(greeting[1], Listen) and greeting[1].hints.grammar
    answer = await run(r, CallerSaid("my name is john smith"))
    assert isinstance(answer[0], Say) and "John Smith" in answer[0].text
    assert isinstance(answer[1], Listen) and "next tuesday" in answer[1].hints.phrases
    assert r.node == "ask_day" and r.variables == {"user_name": "John Smith"}
    bye = await run(r, CallerSaid("next tuesday"))
    assert isinstance(bye[0], Say) and "goodbye" in bye[0].text
    assert isinstance(bye[-1], Hangup)


async def test_silence_reprompts_once_then_ends_politely() -> None:
    r = ScriptedResponder()
    await run(r, CallStarted("CA1"))
    first = await run(r, CallerSaid(""))
    assert first == [Say(ScriptedResponder.REPROMPT)]
    second = await run(r, CallerSaid("  "))
    assert isinstance(second[-1], Hangup) and second[-1].reason == "no-input"


async def test_dtmf_reaches_the_responder() -> None:
    r = ScriptedResponder()
    assert await run(r, DtmfPressed("7")) == [Say("You pressed 7.")]
