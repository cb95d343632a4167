"""Chat-completion stream assembly from fixtures (no socket).

The OpenAI-shaped fixtures are checked against the official spec's
CreateChatCompletionStreamResponse first, so the codec is tested on what the spec allows;
the compatible-server fixtures reproduce what vLLM, Ollama and llama.cpp actually send.
"""

from __future__ import annotations

import json
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
from slotline.providers.emulators.openai import spec_validator
from slotline.providers.errors import ProtocolError
from slotline.providers.llm.openai_wire import ChatStreamDecoder, encode_messages, encode_tools

ENVELOPE = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m"}


def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
    choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
    return {**ENVELOPE, "choices": [choice], **extra}


def usage_chunk(prompt: int, completion: int) -> dict[str, Any]:
    usage = {"prompt_tokens": prompt, "completion_tokens": completion}
    return {**ENVELOPE, "choices": [], "usage": {**usage, "total_tokens": prompt + completion}}


def frag(index: int, arguments: str, **first: Any) -> dict[str, Any]:
    """One tool-call fragment; ``first`` carries id/name/type on a call's first fragment."""
    fragment: dict[str, Any] = {"index": index, "function": {"arguments": arguments}}
    if "name" in first:
        fragment["function"]["name"] = first.pop("name")
    return {**fragment, **first}


def sse(chunks: list[dict[str, Any]], done: bool = True) -> bytes:
    body = b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks)
    return body + (b"data: [DONE]\n\n" if done else b"")


def decode(body: bytes, piece: int = 7) -> list[ChatEvent]:
    decoder = ChatStreamDecoder()
    events: list[ChatEvent] = []
    for i in range(0, len(body), piece):
        events.extend(decoder.feed(body[i : i + piece]))
    events.extend(decoder.end())
    return events


def assert_spec_shaped(chunks: list[dict[str, Any]]) -> None:
    validator = spec_validator("CreateChatCompletionStreamResponse")
    for c in chunks:
        validator.validate(c)


OPENAI_TEXT = [
    chunk({"role": "assistant", "content": "", "refusal": None}, usage=None),
    chunk({"content": "Hello"}, usage=None),
    chunk({"content": " there."}, usage=None),
    chunk({}, "stop", usage=None),
    usage_chunk(12, 2),
]

OPENAI_TWO_TOOL_CALLS = [
    chunk({"role": "assistant", "content": None}),
    chunk({"tool_calls": [frag(0, "", id="call_a", type="function", name="find_slots")]}),
    chunk({"tool_calls": [frag(0, '{"da')]}),
    chunk({"tool_calls": [frag(0, 'te": "2026-')]}),
    chunk({"tool_calls": [frag(0, '12-01"}')]}),
    chunk({"tool_calls": [frag(1, '{"na', id="call_b", type="function", name="set_name")]}),
    chunk({"tool_calls": [frag(1, 'me": "Ann"')]}),
    chunk({"tool_calls": [frag(1, "}")]}),
    chunk({}, "tool_calls"),
    usage_chunk(40, 21),
]
TWO_CALLS = ToolCallsReady(
    (
        ToolCall("call_a", "find_slots", '{"date": "2026-12-01"}'),
        ToolCall("call_b", "set_name", '{"name": "Ann"}'),
    )
)


@pytest.mark.parametrize("piece", [1, 7, 100_000])
def test_text_stream_with_usage_last_chunk(piece: int) -> None:
    assert_spec_shaped(OPENAI_TEXT)
    assert decode(sse(OPENAI_TEXT), piece) == [
        TextDelta("Hello"),
        TextDelta(" there."),
        ChatFinished("stop", prompt_tokens=12, completion_tokens=2),
    ]


@pytest.mark.parametrize("piece", [1, 7, 100_000])
def test_two_parallel_tool_calls_assembled_by_index(piece: int) -> None:
    assert_spec_shaped(OPENAI_TWO_TOOL_CALLS)
    assert decode(sse(OPENAI_TWO_TOOL_CALLS), piece) == [
        TWO_CALLS,
        ChatFinished("tool_calls", prompt_tokens=40, completion_tokens=21),
    ]


def test_interleaved_fragments_of_two_calls_in_one_delta() -> None:
    chunks = [
        chunk(
            {
                "tool_calls": [
                    frag(1, "", id="call_b", name="set_name"),
                    frag(0, '{"da', id="call_a", name="find_slots"),
                ]
            }
        ),
        chunk({"tool_calls": [frag(0, 'te": "2026-'), frag(1, '{"name": ')]}),
        chunk({"tool_calls": [frag(1, '"Ann"}'), frag(0, '12-01"}')]}),
        chunk({}, "tool_calls"),
    ]
    assert_spec_shaped(chunks)
    assert decode(sse(chunks)) == [TWO_CALLS, ChatFinished("tool_calls")]


def test_first_token_tracking() -> None:
    decoder = ChatStreamDecoder()
    decoder.feed(sse(OPENAI_TEXT[:1], done=False))
    assert not decoder.started  # a role-only chunk is not output yet
    decoder.feed(sse(OPENAI_TEXT[1:2], done=False))
    assert decoder.started and not decoder.finished
    decoder.feed(sse(OPENAI_TEXT[2:]))
    assert decoder.finished


def test_text_then_tool_call_in_one_generation() -> None:
    chunks = [
        chunk({"role": "assistant", "content": "Let me check."}),
        chunk({"tool_calls": [frag(0, "{}", id="call_x", type="function", name="lookup")]}),
        chunk({}, "tool_calls"),
    ]
    assert decode(sse(chunks)) == [
        TextDelta("Let me check."),
        ToolCallsReady((ToolCall("call_x", "lookup", "{}"),)),
        ChatFinished("tool_calls"),
    ]


# ---- what the compatible servers send ---------------------------------------------------------


def test_vllm_style_fragments_without_type_and_no_usage() -> None:
    chunks = [
        chunk({"role": "assistant", "content": None}),
        chunk(
            {
                "tool_calls": [
                    {"index": 0, "id": "chatcmpl-tool-1", "function": {"name": "set_name"}}
                ]
            }
        ),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"name": '}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Bo"}'}}]}),
        chunk({"content": None}, "tool_calls"),
    ]
    assert decode(sse(chunks)) == [
        ToolCallsReady((ToolCall("chatcmpl-tool-1", "set_name", '{"name": "Bo"}'),)),
        ChatFinished("tool_calls"),
    ]


def test_ollama_style_whole_call_in_one_chunk_finishing_with_stop() -> None:
    whole = {
        "id": "call_o",
        "index": 0,
        "type": "function",
        "function": {"name": "set_email", "arguments": '{"email":"a@b.co"}'},
    }
    chunks = [chunk({"role": "assistant", "content": "", "tool_calls": [whole]}), chunk({}, "stop")]
    assert decode(sse(chunks)) == [
        ToolCallsReady((ToolCall("call_o", "set_email", '{"email":"a@b.co"}'),)),
        ChatFinished("stop"),
    ]


def test_llamacpp_style_missing_index_repeated_name_and_usage_without_choices() -> None:
    chunks = [
        chunk({"tool_calls": [{"id": "c1", "function": {"name": "set_name", "arguments": "{"}}]}),
        chunk({"tool_calls": [{"function": {"name": "set_name", "arguments": '"name":"Al"}'}}]}),
        chunk({"tool_calls": [{"id": "c2", "function": {"name": "no_args", "arguments": ""}}]}),
        chunk({}, "tool_calls"),
        {**ENVELOPE, "usage": {"prompt_tokens": 5, "completion_tokens": 9, "total_tokens": 14}},
    ]
    assert decode(sse(chunks)) == [
        ToolCallsReady(
            (ToolCall("c1", "set_name", '{"name":"Al"}'), ToolCall("c2", "no_args", "{}"))
        ),
        ChatFinished("tool_calls", prompt_tokens=5, completion_tokens=9),
    ]


def test_clean_end_without_done_after_a_finish_reason_is_accepted() -> None:
    assert decode(sse(OPENAI_TEXT, done=False))[-1] == ChatFinished("stop", 12, 2)


def test_other_choices_and_unknown_fields_are_ignored() -> None:
    other = {"index": 1, "delta": {"content": "B"}, "finish_reason": None}
    chunks = [
        {**chunk({"content": "A", "reasoning_content": "hmm"}), "timings": {"predicted_ms": 3}},
        {**ENVELOPE, "choices": [other]},
        chunk({}, "stop"),
    ]
    assert decode(sse(chunks)) == [TextDelta("A"), ChatFinished("stop")]


# ---- generations that must not produce tool calls --------------------------------------------


def test_a_cut_generation_never_yields_its_tool_calls() -> None:
    decoder = ChatStreamDecoder()
    events = decoder.feed(sse(OPENAI_TWO_TOOL_CALLS[:6], done=False))
    assert events == []
    with pytest.raises(ProtocolError) as err:
        decoder.end()
    assert err.value.code == "stream_truncated"


def test_length_finish_drops_the_partial_tool_call() -> None:
    chunks = [*OPENAI_TWO_TOOL_CALLS[:3], chunk({}, "length")]
    assert decode(sse(chunks)) == [ChatFinished("length")]


def test_incomplete_arguments_are_rejected_even_with_tool_calls_finish() -> None:
    chunks = [*OPENAI_TWO_TOOL_CALLS[:3], chunk({}, "tool_calls")]
    with pytest.raises(ProtocolError) as err:
        decode(sse(chunks))
    assert err.value.code == "tool_call_invalid"


# ---- malformed input --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b'data: {"id": "x", "choices": [\n\n', "chunk_not_json"),
        (b"data: [1, 2]\n\n", "chunk_malformed"),
        (b'data: {"choices": {"index": 0}}\n\n', "chunk_malformed"),
        (b'data: {"choices": [{"index": 0, "delta": {"content": 5}}]}\n\n', "chunk_malformed"),
        (b'data: {"choices": [{"index": 0, "delta": {"tool_calls": {}}}]}\n\n', "chunk_malformed"),
        (b'data: {"choices": [{"index": "0", "delta": {}}]}\n\n', "chunk_malformed"),
        (b'data: {"choices": [], "usage": {"prompt_tokens": true}}\n\n', "chunk_malformed"),
        (b'data: {"error": {"message": "boom", "type": "server_error"}}\n\n', "stream_error"),
    ],
)
def test_malformed_chunks_raise_protocol_error(data: bytes, code: str) -> None:
    with pytest.raises(ProtocolError) as err:
        ChatStreamDecoder().feed(data)
    assert err.value.code == code


# ---- request encoding -------------------------------------------------------------------------


def test_encoded_request_conforms_to_the_spec() -> None:
    call = ToolCall("call_1", "set_name", '{"name": "Ann"}')
    messages = (
        ChatMessage("system", "You book appointments."),
        ChatMessage("user", "I'm Ann."),
        ChatMessage("assistant", "", tool_calls=(call,)),
        ChatMessage("tool", '{"ok": true}', tool_call_id="call_1"),
        ChatMessage("assistant", "Thanks, Ann."),
    )
    schema = json.dumps({"type": "object", "properties": {"name": {"type": "string"}}})
    tools = (ToolSpec("set_name", "Record the caller's name.", schema),)
    request: dict[str, Any] = {
        "model": "m",
        "messages": encode_messages(messages),
        "tools": encode_tools(tools),
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    spec_validator("CreateChatCompletionRequest").validate(request)
    assert request["messages"][2] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "set_name", "arguments": '{"name": "Ann"}'},
            }
        ],
    }
    assert request["tools"][0]["function"]["parameters"]["properties"] == {
        "name": {"type": "string"}
    }
