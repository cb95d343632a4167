"""The OpenAI emulator itself: requests validated against the official spec, responses shaped
by it (checked here against the spec's own schemas), auth and injected faults."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import jsonschema
import openai
import pytest
from openai.types.chat import ChatCompletionToolParam

from slotline.providers.base import ToolCall
from slotline.providers.emulators.openai import (
    DEFAULT_REPLY,
    Latency,
    OpenAIEmulator,
    Reply,
    spec_validator,
)
from slotline.providers.llm.sse import SseParser

KEY = "sk-emu-test"
AUTH = {"Authorization": f"Bearer {KEY}"}
TOOL: ChatCompletionToolParam = {
    "type": "function",
    "function": {
        "name": "set_email",
        "description": "Record the caller's email.",
        "parameters": {"type": "object", "properties": {"user_email": {"type": "string"}}},
    },
}


def request(text: str = "Hello", **extra: Any) -> dict[str, Any]:
    return {"model": "emulated-chat", "messages": [{"role": "user", "content": text}], **extra}


@pytest.fixture
async def emulator() -> AsyncIterator[OpenAIEmulator]:
    async with OpenAIEmulator(api_key=KEY) as emu:
        yield emu


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def post(
    http: aiohttp.ClientSession, emu: OpenAIEmulator, body: object, headers: dict[str, str] = AUTH
) -> tuple[int, bytes]:
    url = f"{emu.base_url}/chat/completions"
    async with http.post(url, data=json.dumps(body), headers=headers) as response:
        return response.status, await response.read()


def chunks_of(body: bytes) -> list[dict[str, Any]]:
    events = SseParser().feed(body)
    assert events[-1].data == "[DONE]"
    return [json.loads(e.data) for e in events[:-1]]


async def test_streamed_text_conforms_to_the_spec(
    emulator: OpenAIEmulator, http: aiohttp.ClientSession
) -> None:
    body = request(stream=True, stream_options={"include_usage": True})
    status, raw = await post(http, emulator, body)
    assert status == 200
    chunks = chunks_of(raw)
    validator = spec_validator("CreateChatCompletionStreamResponse")
    for chunk in chunks:
        validator.validate(chunk)
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == DEFAULT_REPLY
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 6
    assert all(c["usage"] is None for c in chunks[:-1])
    assert emulator.stats.streams_completed == 1


async def test_streamed_tool_call_conforms_to_the_spec(
    emulator: OpenAIEmulator, http: aiohttp.ClientSession
) -> None:
    body = request("it's ann.lee@example.com", stream=True, tools=[TOOL])
    status, raw = await post(http, emulator, body)
    chunks = chunks_of(raw)
    validator = spec_validator("CreateChatCompletionStreamResponse")
    for chunk in chunks:
        validator.validate(chunk)
    fragments = [f for c in chunks for f in c["choices"][0]["delta"].get("tool_calls", [])]
    assert len(fragments) > 1 and {f["index"] for f in fragments} == {0}
    assert fragments[0]["function"]["name"] == "set_email" and "id" in fragments[0]
    arguments = "".join(f["function"].get("arguments", "") for f in fragments)
    assert json.loads(arguments) == {"user_email": "ann.lee@example.com"}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    assert all("usage" not in c for c in chunks)  # not asked for


def test_the_spec_validator_rejects_misshapen_chunks() -> None:
    validator = spec_validator("CreateChatCompletionStreamResponse")
    good = {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": {}, "finish_reason": None}],
    }
    validator.validate(good)
    bad_reason = {**good, "choices": [{"index": 0, "delta": {}, "finish_reason": "done"}]}
    missing_created = {k: v for k, v in good.items() if k != "created"}
    for bad in (bad_reason, missing_created):
        with pytest.raises(jsonschema.ValidationError):
            validator.validate(bad)


async def test_max_completion_tokens_cuts_the_reply_with_length(
    emulator: OpenAIEmulator, http: aiohttp.ClientSession
) -> None:
    status, raw = await post(http, emulator, request(stream=True, max_completion_tokens=2))
    chunks = chunks_of(raw)
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert (status, text) == (200, "Sure, I")
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "emulated-chat"}, None),  # no messages
        (request(stream=False), "stream"),  # valid, but this emulator only streams
        (request() | {"messages": []}, "messages"),
        (request() | {"messages": [{"role": "caller", "content": "hi"}]}, "messages.0"),
        (request(temperature="warm"), "temperature"),
        (
            request(tools=[{"type": "function", "function": {"description": "no name"}}]),
            "tools.0.function",
        ),
    ],
)
async def test_invalid_requests_get_400_in_the_spec_error_shape(
    emulator: OpenAIEmulator, http: aiohttp.ClientSession, body: dict[str, Any], param: str | None
) -> None:
    status, raw = await post(http, emulator, body)
    assert status == 400
    error = json.loads(raw)
    spec_validator("ErrorResponse").validate(error)
    assert error["error"]["type"] == "invalid_request_error"
    assert error["error"]["param"] == param
    assert emulator.received == [] and emulator.stats.rejected == 1


async def test_unparseable_body_is_a_400(emulator: OpenAIEmulator) -> None:
    async with aiohttp.ClientSession() as http:
        url = f"{emulator.base_url}/chat/completions"
        async with http.post(url, data=b"{not json", headers=AUTH) as response:
            assert response.status == 400
            spec_validator("ErrorResponse").validate(await response.json())


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer sk-other"}])
async def test_missing_or_wrong_key_is_a_401(
    emulator: OpenAIEmulator, http: aiohttp.ClientSession, headers: dict[str, str]
) -> None:
    status, raw = await post(http, emulator, request(), headers)
    assert status == 401
    error = json.loads(raw)
    spec_validator("ErrorResponse").validate(error)
    assert error["error"]["code"] == "invalid_api_key" and "sk-other" not in raw.decode()


async def test_injected_http_errors_then_recovery(
    emulator: OpenAIEmulator, http: aiohttp.ClientSession
) -> None:
    emulator.fail_next(429)
    emulator.fail_next(503)
    statuses = [(await post(http, emulator, request(stream=True)))[0] for _ in range(3)]
    assert statuses == [429, 503, 200]
    assert emulator.stats.requests == 3 and emulator.stats.rejected == 2


async def test_models_list(emulator: OpenAIEmulator, http: aiohttp.ClientSession) -> None:
    async with http.get(f"{emulator.base_url}/models", headers=AUTH) as response:
        listing = await response.json()
    spec_validator("ListModelsResponse").validate(listing)
    assert [m["id"] for m in listing["data"]] == ["emulated-chat"]


async def test_the_official_sdk_reads_the_scripted_stream(emulator: OpenAIEmulator) -> None:
    call = ToolCall("call_9", "set_email", '{"user_email": "x@y.org"}')
    emulator.script = lambda req: Reply(text="Noted.", tool_calls=(call,))
    client = openai.AsyncOpenAI(api_key=KEY, base_url=emulator.base_url, max_retries=0)
    async with client:
        stream = await client.chat.completions.create(
            model="emulated-chat",
            messages=[{"role": "user", "content": "hi"}],
            tools=[TOOL],
            stream=True,
        )
        text, arguments, reasons = "", "", []
        async for chunk in stream:
            delta = chunk.choices[0].delta
            text += delta.content or ""
            arguments += "".join(
                t.function.arguments or "" for t in delta.tool_calls or [] if t.function
            )
            reasons.append(chunk.choices[0].finish_reason)
    assert (text, arguments, reasons[-1]) == ("Noted.", call.arguments, "tool_calls")
    assert emulator.received[0]["tools"] == [TOOL]


async def test_a_line_request_streams_its_example_at_the_configured_cadence(
    http: aiohttp.ClientSession,
) -> None:
    """Slotline's request for an agent line (a system message, no tools) is one the spec
    accepts; the emulated model writes the line's example back, word by word, its first token
    after ``first_token_delay_ms`` and the others ``token_interval_ms`` apart."""
    line = "Hi, thanks for calling. How can I help you today?"
    system = f'Write the agent\'s next line.\nExample line: "{line}"'
    body = {"model": "emulated-chat", "stream": True,
            "messages": [{"role": "system", "content": system}]}
    latency = Latency(first_token_delay_ms=120.0, token_interval_ms=25.0)
    async with OpenAIEmulator(api_key=KEY, latency=latency) as emu:
        loop = asyncio.get_running_loop()
        asked = loop.time()
        arrivals: list[float] = []
        raw = b""
        async with http.post(f"{emu.base_url}/chat/completions", data=json.dumps(body),
                             headers=AUTH) as response:
            assert response.status == 200
            async for piece in response.content.iter_any():
                raw += piece
                arrivals.append(loop.time())
    chunks = chunks_of(raw)
    validator = spec_validator("CreateChatCompletionStreamResponse")
    for chunk in chunks:
        validator.validate(chunk)
    words = [c["choices"][0]["delta"]["content"] for c in chunks[1:-1]]
    assert "".join(words) == line and len(words) == len(line.split())
    # lower bounds only: a loaded machine may be slower, never faster than the profile
    assert arrivals[0] - asked >= 0.12
    assert arrivals[-1] - asked >= 0.12 + 0.025 * len(words)
