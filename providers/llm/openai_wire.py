"""Sans-I/O codec for OpenAI-compatible chat completions (``POST /chat/completions``).

Encoding turns our typed messages and tools into the request's JSON shapes. Decoding turns the
streamed response (SSE ``data: {chunk}`` … ``data: [DONE]``) into ChatEvents:

- ``delta.content`` → ``TextDelta`` as it arrives;
- ``delta.tool_calls`` fragments are assembled by ``index`` (id and name on the first fragment,
  ``arguments`` concatenated) and released as one ``ToolCallsReady`` only once the generation
  has finished with ``tool_calls`` or ``stop`` and every call's arguments parse as JSON, so a
  generation that is cut short never produces a call;
- ``finish_reason`` and the optional usage-only last chunk (``choices: []``, sent with
  ``stream_options.include_usage``) become one ``ChatFinished`` at ``[DONE]``.

It is deliberately tolerant of the compatible servers (vLLM, Ollama, llama.cpp): usage may be
absent or ride on any chunk, fragments may lack ``type`` (or even ``index``/``id``), a name may be
repeated on later fragments, ``finish_reason`` stays null until the end, and unknown fields are
ignored. What cannot be accepted raises ``ProtocolError`` with a stable code:
``chunk_not_json``, ``chunk_malformed``, ``stream_error`` (an in-band ``{"error": …}`` object),
``stream_truncated`` and ``tool_call_invalid``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TypeVar

import orjson

from slotline.providers.base import (
    ChatEvent,
    ChatFinished,
    ChatMessage,
    TextDelta,
    ToolCall,
    ToolCallsReady,
    ToolSpec,
)
from slotline.providers.errors import ProtocolError
from slotline.providers.llm.sse import SseEvent, SseParser

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

DONE = "[DONE]"
# Finish reasons after which the assembled tool calls are complete. Ollama (and older
# llama.cpp builds) report "stop" even when the turn ended in tool calls.
_TOOL_CALLS_COMPLETE = frozenset({"tool_calls", "stop"})
# Delta fields that show the model has started answering (reasoning models stream their
# thoughts first under one of the two reasoning names).
_OUTPUT_FIELDS = ("content", "tool_calls", "refusal", "reasoning_content", "reasoning")


# ---- encoding ---------------------------------------------------------------------------------


def encode_messages(messages: tuple[ChatMessage, ...]) -> list[dict[str, object]]:
    """Messages in the request's shape (``ChatCompletionRequestMessage``)."""
    return [_encode_message(message) for message in messages]


def _encode_message(message: ChatMessage) -> dict[str, object]:
    if message.role == "tool":
        call_id = message.tool_call_id or ""
        return {"role": "tool", "tool_call_id": call_id, "content": message.content}
    encoded: dict[str, object] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        encoded["content"] = message.content or None
        encoded["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in message.tool_calls
        ]
    return encoded


def encode_tools(tools: tuple[ToolSpec, ...]) -> list[dict[str, object]]:
    """Tools in the request's shape (``ChatCompletionTool``)."""
    return [_encode_tool(tool) for tool in tools]


@lru_cache(maxsize=256)
def _parameters(parameters_json: str) -> dict[str, object]:
    parsed = orjson.loads(parameters_json)
    if not isinstance(parsed, dict):
        raise ValueError("ToolSpec.parameters_json must be a JSON object")
    return parsed


def _encode_tool(tool: ToolSpec) -> dict[str, object]:
    function = {
        "name": tool.name,
        "description": tool.description,
        "parameters": _parameters(tool.parameters_json),
    }
    return {"type": "function", "function": function}


# ---- decoding ---------------------------------------------------------------------------------


@dataclass(slots=True)
class _PartialCall:
    id: str
    name: str
    arguments: list[str] = field(default_factory=list)


class ChunkAssembler:
    """Decoded chunk objects in, ChatEvents out; ``finish`` closes the generation."""

    __slots__ = ("_calls", "_finish_reason", "_prompt_tokens", "_completion_tokens", "started")

    def __init__(self) -> None:
        self._calls: dict[int, _PartialCall] = {}
        self._finish_reason: str | None = None
        self._prompt_tokens: int | None = None
        self._completion_tokens: int | None = None
        self.started = False  # the model produced output (text, tool call or reasoning)

    @property
    def finish_reason(self) -> str | None:
        return self._finish_reason

    def feed_chunk(self, chunk: object) -> list[ChatEvent]:
        if not isinstance(chunk, Mapping):
            raise ProtocolError("chunk_malformed", "a chunk must be a JSON object")
        error = chunk.get("error")
        if error is not None:
            raise ProtocolError("stream_error", _error_text(error))
        usage = chunk.get("usage")
        if usage is not None:
            self._take_usage(usage)
        choices = chunk.get("choices")
        if choices is None:
            return []  # only usage (llama.cpp may omit the empty list)
        if not isinstance(choices, list):
            raise ProtocolError("chunk_malformed", "choices must be an array")
        events: list[ChatEvent] = []
        for choice in choices:
            if not isinstance(choice, Mapping):
                raise ProtocolError("chunk_malformed", "a choice must be an object")
            if _optional(choice, "index", int) not in (None, 0):
                continue  # we always ask for n=1; ignore anything else
            text = self._take_delta(choice.get("delta"))
            if text:
                events.append(TextDelta(text))
            reason = _optional(choice, "finish_reason", str)
            if reason is not None:
                self._finish_reason = reason
        return events

    def finish(self) -> list[ChatEvent]:
        """The stream is complete (``[DONE]``, or a clean end after a finish reason)."""
        reason = self._finish_reason
        if reason is None:
            raise ProtocolError("stream_truncated", "the stream ended without a finish_reason")
        events: list[ChatEvent] = []
        if self._calls and reason in _TOOL_CALLS_COMPLETE:
            events.append(ToolCallsReady(self._complete_calls()))
        elif self._calls:
            logger.info(
                "dropping %d tool call(s) of a generation that ended in %r",
                len(self._calls),
                reason,
            )
        events.append(ChatFinished(reason, self._prompt_tokens, self._completion_tokens))
        return events

    def _take_delta(self, delta: object) -> str:
        if delta is None:
            return ""
        if not isinstance(delta, Mapping):
            raise ProtocolError("chunk_malformed", "delta must be an object")
        if not self.started and any(delta.get(name) for name in _OUTPUT_FIELDS):
            self.started = True
        fragments = delta.get("tool_calls")
        if fragments is not None:
            if not isinstance(fragments, list):
                raise ProtocolError("chunk_malformed", "delta.tool_calls must be an array")
            for fragment in fragments:
                self._take_fragment(fragment)
        return _optional(delta, "content", str) or ""

    def _take_fragment(self, fragment: object) -> None:
        if not isinstance(fragment, Mapping):
            raise ProtocolError("chunk_malformed", "a tool call fragment must be an object")
        index = _optional(fragment, "index", int)
        call_id = _optional(fragment, "id", str)
        function = fragment.get("function")
        if function is None:
            function = {}
        if not isinstance(function, Mapping):
            raise ProtocolError("chunk_malformed", "tool_calls[].function must be an object")
        call = self._call_for(index, call_id)
        if call_id and not call.id:
            call.id = call_id
        name = _optional(function, "name", str)
        if name and not call.name:
            call.name = name  # later repeats of the name (some servers send them) are ignored
        arguments = _optional(function, "arguments", str)
        if arguments:
            call.arguments.append(arguments)

    def _call_for(self, index: int | None, call_id: str | None) -> _PartialCall:
        if index is None:  # servers that omit the index: a new id opens a new call
            known = [i for i, c in self._calls.items() if call_id and c.id == call_id]
            if known:
                index = known[0]
            elif call_id or not self._calls:
                index = len(self._calls)
            else:
                index = max(self._calls)
        call = self._calls.get(index)
        if call is None:
            call = self._calls[index] = _PartialCall(id="", name="")
        return call

    def _complete_calls(self) -> tuple[ToolCall, ...]:
        calls: list[ToolCall] = []
        for index in sorted(self._calls):
            partial = self._calls[index]
            if not partial.name:
                raise ProtocolError("tool_call_invalid", f"tool call {index} has no name")
            arguments = "".join(partial.arguments) or "{}"  # a no-argument call may send nothing
            try:
                orjson.loads(arguments)
            except orjson.JSONDecodeError:
                detail = f"tool call {index} ({partial.name}): arguments are not JSON"
                raise ProtocolError("tool_call_invalid", detail) from None
            calls.append(ToolCall(partial.id or f"call_{index}", partial.name, arguments))
        return tuple(calls)

    def _take_usage(self, usage: object) -> None:
        if not isinstance(usage, Mapping):
            raise ProtocolError("chunk_malformed", "usage must be an object")
        self._prompt_tokens = _optional(usage, "prompt_tokens", int)
        self._completion_tokens = _optional(usage, "completion_tokens", int)


class ChatStreamDecoder:
    """Response body bytes in, ChatEvents out: SSE framing plus chunk assembly."""

    __slots__ = ("_assembler", "_sse", "finished")

    def __init__(self) -> None:
        self._sse = SseParser()
        self._assembler = ChunkAssembler()
        self.finished = False  # ``[DONE]`` seen: nothing more belongs to this generation

    @property
    def started(self) -> bool:
        """The first token (or tool call fragment) has arrived."""
        return self._assembler.started

    def feed(self, data: bytes) -> list[ChatEvent]:
        events: list[ChatEvent] = []
        for sse in self._sse.feed(data):
            if not self.finished:
                events.extend(self.feed_event(sse))
        return events

    def feed_event(self, sse: SseEvent) -> list[ChatEvent]:
        if sse.data == DONE:
            self.finished = True
            return self._assembler.finish()
        try:
            chunk = orjson.loads(sse.data)
        except orjson.JSONDecodeError:
            raise ProtocolError("chunk_not_json", f"unparseable chunk {sse.data[:80]!r}") from None
        return self._assembler.feed_chunk(chunk)

    def end(self) -> list[ChatEvent]:
        """The body ended. Without ``[DONE]`` a generation that reported its finish reason is
        accepted (lenient servers); one that did not is truncated."""
        self._sse.close()
        if self.finished:
            return []
        self.finished = True
        return self._assembler.finish()


def _optional(obj: Mapping[str, object], key: str, kind: type[_T]) -> _T | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ProtocolError("chunk_malformed", f"{key} must be {kind.__name__}, got {value!r:.40}")
    return value


def _error_text(error: object) -> str:
    if isinstance(error, Mapping):
        parts = [str(error.get(k)) for k in ("type", "code", "message") if error.get(k)]
        return ": ".join(parts) or "error without message"
    return str(error)[:200]
