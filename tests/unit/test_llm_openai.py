"""OpenAIChatModel (official SDK) against the emulator over 127.0.0.1: streaming, tool calls,
cancellation, retries, timeouts and error mapping."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import aclosing
from typing import Any

import pytest

from slotline.providers.base import (
    ChatEvent,
    ChatFinished,
    ChatMessage,
    TextDelta,
    ToolCall,
    ToolCallsReady,
    ToolSpec,
)
from slotline.providers.emulators.openai import DEFAULT_REPLY, Latency, OpenAIEmulator, Reply
from slotline.providers.errors import (
    ProtocolError,
    ProviderAuthError,
    ProviderError,
    ProviderTimeout,
)
from slotline.providers.llm.openai import OpenAIChatModel

KEY = "sk-test-0123456789"
HELLO = (ChatMessage("system", "You are a receptionist."), ChatMessage("user", "Hello there"))
SLOTS_SCHEMA = {"type": "object", "properties": {"date": {"type": "string"}}, "required": ["date"]}
NAME_SCHEMA = {"type": "object", "properties": {"user_name": {"type": "string"}}}
TOOLS = (
    ToolSpec("find_slots", "Free times on a date.", json.dumps(SLOTS_SCHEMA)),
    ToolSpec("set_name", "Record the caller's name.", json.dumps(NAME_SCHEMA)),
)
TWO_CALLS = (
    ToolCall("call_1", "find_slots", '{"date": "2026-12-01", "part": "morning"}'),
    ToolCall("call_2", "set_name", '{"user_name": "Ann Lee"}'),
)


@pytest.fixture
async def emulator() -> AsyncIterator[OpenAIEmulator]:
    async with OpenAIEmulator(api_key=KEY, fragment_chars=3) as emu:
        yield emu


def model(emu: OpenAIEmulator, key: str = KEY, **timeouts: float) -> OpenAIChatModel:
    return OpenAIChatModel(key, base_url=emu.base_url, model="emulated-chat", **timeouts)  # type: ignore[arg-type]


async def collect(
    chat: OpenAIChatModel,
    messages: tuple[ChatMessage, ...] = HELLO,
    tools: tuple[ToolSpec, ...] = (),
) -> tuple[list[ChatEvent], BaseException | None]:
    events: list[ChatEvent] = []
    try:
        async with aclosing(chat.stream(messages, tools=tools)) as stream:
            async for event in stream:
                events.append(event)
    except ProviderError as exc:
        return events, exc
    return events, None


def scripted(reply: Reply) -> Callable[[Mapping[str, Any]], Reply]:
    return lambda request: reply


async def test_text_is_streamed_with_usage_from_the_last_chunk(emulator: OpenAIEmulator) -> None:
    async with model(emulator) as chat:
        events, error = await collect(chat)
    assert error is None
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == DEFAULT_REPLY
    assert sum(isinstance(e, TextDelta) for e in events) == len(DEFAULT_REPLY.split())
    assert events[-1] == ChatFinished("stop", prompt_tokens=6, completion_tokens=6)
    sent = emulator.received[0]
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
    assert "tools" not in sent


async def test_two_parallel_tool_calls_in_many_fragments(emulator: OpenAIEmulator) -> None:
    emulator.script = scripted(Reply(tool_calls=TWO_CALLS))
    async with model(emulator) as chat:
        events, error = await collect(chat, tools=TOOLS)
    assert error is None
    assert events == [ToolCallsReady(TWO_CALLS), ChatFinished("tool_calls", 6, 22)]
    sent_tools = emulator.received[0]["tools"]
    assert [t["function"]["name"] for t in sent_tools] == ["find_slots", "set_name"]
    assert sent_tools[0]["function"]["parameters"] == SLOTS_SCHEMA


async def test_default_rule_calls_the_tool_that_takes_a_name(emulator: OpenAIEmulator) -> None:
    said = (ChatMessage("user", "hi, my name is Ann"),)
    async with model(emulator) as chat:
        events, _ = await collect(chat, said, TOOLS)
    assert events[0] == ToolCallsReady(
        (ToolCall("call_emu_0", "set_name", '{"user_name": "Ann"}'),)
    )


async def test_a_whole_conversation_with_tool_results_is_a_valid_request(
    emulator: OpenAIEmulator,
) -> None:
    messages = (
        *HELLO,
        ChatMessage("assistant", "", tool_calls=TWO_CALLS),
        ChatMessage("tool", '{"slots": ["09:00"]}', tool_call_id="call_1"),
        ChatMessage("tool", '{"ok": true}', tool_call_id="call_2"),
        ChatMessage("assistant", "Nine o'clock is free."),
        ChatMessage("user", "Great."),
    )
    async with model(emulator) as chat:
        _, error = await collect(chat, messages, TOOLS)
    assert error is None and emulator.stats.rejected == 0
    assert emulator.received[0]["messages"][3]["tool_call_id"] == "call_1"


async def test_closing_mid_stream_closes_the_http_stream(emulator: OpenAIEmulator) -> None:
    emulator.latency = Latency(token_interval_ms=50.0)
    words = " ".join(f"word{i}" for i in range(40))
    emulator.script = scripted(Reply(text=words, tool_calls=TWO_CALLS))
    async with model(emulator) as chat:
        seen: list[ChatEvent] = []
        async with aclosing(chat.stream(HELLO, tools=TOOLS)) as stream:
            async for event in stream:
                seen.append(event)
                break  # barge-in after the first word
        await emulator.wait_until(lambda stats: stats.streams_cancelled == 1)
    assert seen == [TextDelta("word0")]
    assert emulator.stats.streams_completed == 0


async def test_cancelled_task_never_gets_the_tool_calls(emulator: OpenAIEmulator) -> None:
    emulator.latency = Latency(token_interval_ms=50.0)
    emulator.script = scripted(Reply(tool_calls=TWO_CALLS))
    async with model(emulator) as chat:
        task = asyncio.create_task(collect(chat, tools=TOOLS))
        await emulator.wait_until(lambda stats: stats.streams_started == 1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await emulator.wait_until(lambda stats: stats.streams_cancelled == 1)
    assert emulator.stats.streams_completed == 0


async def test_429_is_retried_once_then_succeeds(emulator: OpenAIEmulator) -> None:
    emulator.fail_next(429)
    async with model(emulator) as chat:
        events, error = await collect(chat)
    assert error is None and isinstance(events[-1], ChatFinished)
    assert emulator.stats.requests == 2


async def test_500_twice_gives_up_after_one_retry(emulator: OpenAIEmulator) -> None:
    emulator.fail_next(500, count=2)
    async with model(emulator) as chat:
        events, error = await collect(chat)
    assert events == []
    assert type(error) is ProviderError and error.retryable
    assert "500" in str(error)
    assert emulator.stats.requests == 2


async def test_server_error_after_the_first_token_is_not_retried(emulator: OpenAIEmulator) -> None:
    emulator.break_next_stream("error", after_chunks=2)
    async with model(emulator) as chat:
        events, error = await collect(chat)
    assert events == [TextDelta("Sure,")]
    assert isinstance(error, ProviderError)
    assert emulator.stats.requests == 1


async def test_server_error_before_the_first_token_is_retried(emulator: OpenAIEmulator) -> None:
    emulator.break_next_stream("error", after_chunks=1)  # after the role-only chunk
    async with model(emulator) as chat:
        events, error = await collect(chat)
    assert error is None and isinstance(events[-1], ChatFinished)
    assert emulator.stats.requests == 2


async def test_connection_dropped_mid_stream(emulator: OpenAIEmulator) -> None:
    emulator.break_next_stream("drop", after_chunks=3)
    async with model(emulator) as chat:
        events, error = await collect(chat)
    assert events == [TextDelta("Sure,"), TextDelta(" I")]
    assert isinstance(error, ProviderError) and not isinstance(error, ProviderTimeout)
    assert emulator.stats.requests == 1


async def test_stall_before_the_first_token_times_out(emulator: OpenAIEmulator) -> None:
    emulator.break_next_stream("stall", after_chunks=0)
    async with model(emulator, first_token_timeout_s=0.3) as chat:
        events, error = await collect(chat)
    assert events == [] and isinstance(error, ProviderTimeout)
    assert "first token" in str(error)
    assert emulator.stats.requests == 1  # a spent budget is not retried
    await emulator.wait_until(lambda stats: stats.streams_cancelled == 1)


async def test_stall_mid_stream_hits_the_overall_timeout(emulator: OpenAIEmulator) -> None:
    emulator.break_next_stream("stall", after_chunks=3)
    async with model(emulator, timeout_s=0.8, first_token_timeout_s=0.8) as chat:
        events, error = await collect(chat)
    assert events == [TextDelta("Sure,"), TextDelta(" I")]
    assert isinstance(error, ProviderTimeout) and "generation" in str(error)


async def test_malformed_chunk(emulator: OpenAIEmulator) -> None:
    emulator.break_next_stream("malformed", after_chunks=2)
    async with model(emulator) as chat:
        events, error = await collect(chat)
    assert events == [TextDelta("Sure,")]
    assert isinstance(error, ProviderError) and not error.retryable
    assert isinstance(error.__cause__, ProtocolError)
    assert error.__cause__.code == "chunk_not_json"


async def test_bad_api_key_is_an_auth_error_without_the_key(emulator: OpenAIEmulator) -> None:
    wrong = "sk-wrong-secret-987"
    async with model(emulator, key=wrong) as chat:
        events, error = await collect(chat)
        assert wrong not in repr(chat)
    assert events == [] and isinstance(error, ProviderAuthError)
    assert wrong not in str(error)
    assert emulator.stats.requests == 1  # never retried


async def test_unreachable_server_is_a_retryable_provider_error(emulator: OpenAIEmulator) -> None:
    async with model(emulator) as chat:
        await emulator.aclose()  # nothing listens on the port any more
        events, error = await collect(chat)
    assert events == [] and isinstance(error, ProviderError) and error.retryable


async def test_consecutive_generations_reuse_one_connection(emulator: OpenAIEmulator) -> None:
    async with model(emulator) as chat:
        for _ in range(3):
            _, error = await collect(chat)
            assert error is None
    assert emulator.stats.requests == 3
    assert emulator.stats.connections == 1
