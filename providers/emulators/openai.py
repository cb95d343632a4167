"""A local OpenAI-compatible chat completions server for tests, benches and offline development.

``POST /v1/chat/completions`` checks ``Authorization: Bearer``, validates every request body
against ``CreateChatCompletionRequest`` from the official OpenAPI document (400 in the API's
error shape when it does not conform) and answers with a deterministic "model": a test's
``script`` (request → ``Reply``), or by default a tool call when an offered tool has a parameter
the last user message fills (an email, a phone number, a name); a request offering no tool
whose system message holds a line ``Example line: "…"`` (Slotline's request for an agent line,
``agent.flow.llm.line_prompt``) gets that example back, as a model following it would; else a
short sentence. Text is streamed word by word as ``CreateChatCompletionStreamResponse`` chunks
(only ``stream: true`` is served, as that is all Slotline sends). ``GET /v1/models`` lists
models.

Latency knobs (``Latency``; the "cloud" profile waits 300 ms for the first token) and fault
injection (HTTP errors on the next requests; a stall, a malformed chunk, an in-band error or a
dropped connection mid-stream) let tests and the bench exercise every failure path.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from aiohttp import web
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from slotline.providers.base import ResourceContext, ToolCall
from slotline.providers.emulators._http import serve
from slotline.providers.emulators._openapi import nullable_to_json_schema
from slotline.providers.errors import ConfigError

logger = logging.getLogger(__name__)

# The excerpt of the official document this emulator reads, shipped in the package
# (scripts/spec_excerpts.py cuts it from the whole spec, which tests may pass instead).
DEFAULT_SPEC_PATH = Path(__file__).with_name("specs") / "openai/openapi.yaml"
_SPEC_URI = "urn:slotline:openai-openapi"
DEFAULT_REPLY = "Sure, I can help with that."
_STALL_S = 3600.0  # "forever": a stalled stream ends when the client gives up


@dataclass(frozen=True, slots=True)
class Reply:
    """What the emulated model answers: text, tool calls, or both (text first)."""

    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()


Script = Callable[[Mapping[str, Any]], Reply]


@dataclass(frozen=True, slots=True)
class Latency:
    first_token_delay_ms: float = 0.0  # response headers → first chunk
    token_interval_ms: float = 0.0  # between later chunks
    jitter_ms: float = 0.0  # uniform 0..jitter added to every delay (seeded)


LATENCY_PROFILES: Mapping[str, Latency] = {
    "instant": Latency(),
    # Typical hosted-model numbers: ~300 ms to first token, ~50 tokens/s after it.
    "cloud": Latency(first_token_delay_ms=300.0, token_interval_ms=20.0, jitter_ms=30.0),
}

StreamFault = Literal["stall", "malformed", "error", "drop"]


@dataclass(slots=True)
class EmulatorStats:
    requests: int = 0  # POST /chat/completions received
    rejected: int = 0  # answered with an error status (auth, validation or injected)
    streams_started: int = 0  # response headers sent, chunks about to flow
    streams_completed: int = 0
    streams_cancelled: int = 0  # the client went away before the end of the stream
    connections: int = 0  # distinct client connections (keep-alive reuse shows here)


# ---- the official spec ------------------------------------------------------------------------


@lru_cache(maxsize=2)
def _spec_registry(spec_path: Path) -> Registry[Any]:
    try:
        with spec_path.open("rb") as f:
            document = yaml.load(f, Loader=yaml.CSafeLoader)
    except OSError as exc:
        raise ConfigError(str(spec_path), "spec_path", f"unreadable: {exc}") from None
    resource = Resource.from_contents(nullable_to_json_schema(document), DRAFT202012)
    registry: Registry[Any] = Registry().with_resource(_SPEC_URI, resource)
    return registry


def spec_validator(schema_name: str, spec_path: Path = DEFAULT_SPEC_PATH) -> Draft202012Validator:
    """A validator for ``#/components/schemas/<schema_name>`` of the OpenAPI document."""
    ref = {"$ref": f"{_SPEC_URI}#/components/schemas/{schema_name}"}
    return Draft202012Validator(ref, registry=_spec_registry(spec_path))


# ---- the deterministic model ------------------------------------------------------------------

# (pattern, parameter-name fragment): a tool whose parameters include a property whose name
# contains the fragment is called with what the pattern captured in the last user message.
_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"), "email"),
    (re.compile(r"\+?\d[\d\s().-]{5,}\d"), "phone"),
    (re.compile(r"(?i:\b(?:my name is|this is|i'm)\s+)([A-Za-z]+(?:\s+[A-Z][a-z]+)?)"), "name"),
)


_EXAMPLE_LINE = re.compile(r'^Example line: "(.+)"$', re.MULTILINE)


def default_script(request: Mapping[str, Any]) -> Reply:
    if not request.get("tools"):
        for message in request.get("messages", []):
            example = _EXAMPLE_LINE.search(str(message.get("content") or "")) \
                if message.get("role") == "system" else None
            if example is not None:
                return Reply(text=example.group(1))
    said = _last_user_text(request.get("messages", []))
    for tool in request.get("tools") or []:
        function = tool.get("function") or {}
        properties = (function.get("parameters") or {}).get("properties") or {}
        for pattern, fragment in _RULES:
            match = pattern.search(said)
            prop = next((p for p in properties if fragment in p.lower()), None)
            if match and prop:
                value = match.group(match.lastindex or 0).strip()
                arguments = json.dumps({prop: value})
                return Reply(tool_calls=(ToolCall("call_emu_0", function["name"], arguments),))
    return Reply(text=DEFAULT_REPLY)


def _last_user_text(messages: list[Any]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):  # content parts
                return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
            return str(content or "")
    return ""


def _fragments(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def _error_body(message: str, kind: str, code: str | None, param: str | None = None) -> bytes:
    error = {"message": message, "type": kind, "param": param, "code": code}
    return json.dumps({"error": error}).encode()


# ---- the server -------------------------------------------------------------------------------


class OpenAIEmulator(ResourceContext):
    """``async with OpenAIEmulator() as emu:`` serves on ``emu.base_url`` (…/v1)."""

    def __init__(
        self,
        *,
        api_key: str = "sk-emulator",
        script: Script | None = None,
        latency: Latency = LATENCY_PROFILES["instant"],
        spec_path: Path | None = DEFAULT_SPEC_PATH,
        models: tuple[str, ...] = ("emulated-chat",),
        fragment_chars: int = 8,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int = 0,
    ) -> None:
        self.latency = latency
        self.script = script or default_script
        self.stats = EmulatorStats()
        self.received: list[dict[str, Any]] = []  # every request body that passed validation
        self._api_key = api_key
        self._spec_path = spec_path
        self._models = models
        self._fragment_chars = fragment_chars  # tool arguments are streamed in pieces this long
        self._host, self._port = host, port
        self._random = random.Random(seed)
        self._validator: Draft202012Validator | None = None
        self._statuses: deque[int] = deque()
        self._stream_faults: deque[tuple[StreamFault, int]] = deque()
        self._peers: set[object] = set()
        self._runner: web.AppRunner | None = None
        self._completions = 0
        self._changed = asyncio.Event()  # replaced after each set: wakes every waiter once

    @property
    def base_url(self) -> str:
        return f"http://{self._host}:{self._port}/v1"

    def fail_next(self, status: int, count: int = 1) -> None:
        """Answer the next ``count`` completion requests with this HTTP status (429, 500…)."""
        self._statuses.extend([status] * count)

    def break_next_stream(self, fault: StreamFault, *, after_chunks: int = 1) -> None:
        """Make the next stream misbehave after ``after_chunks`` good chunks (0: before any)."""
        self._stream_faults.append((fault, after_chunks))

    async def wait_until(
        self, predicate: Callable[[EmulatorStats], bool], *, timeout_s: float = 5.0
    ) -> None:
        """Wait until the counters satisfy ``predicate`` (e.g. the client went away)."""
        async with asyncio.timeout(timeout_s):
            while not predicate(self.stats):
                await self._changed.wait()

    def _counted(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def start(self) -> None:
        if self._spec_path is not None:
            self._validator = spec_validator("CreateChatCompletionRequest", self._spec_path)
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._completion)
        app.router.add_get("/v1/models", self._list_models)
        # A handler is cancelled when its client disconnects: that is how a stall ends and how
        # cancelled streams are counted.
        self._runner, self._port = await serve(app, self._host, self._port)

    async def aclose(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # ---- handlers ---------------------------------------------------------------------------

    async def _list_models(self, request: web.Request) -> web.StreamResponse:
        if (denied := self._check_auth(request)) is not None:
            return denied
        data = [
            {"id": m, "object": "model", "created": 0, "owned_by": "slotline"} for m in self._models
        ]
        return web.json_response({"object": "list", "data": data})

    async def _completion(self, request: web.Request) -> web.StreamResponse:
        try:
            return await self._answer(request)
        finally:
            self._counted()

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        self.stats.requests += 1
        peer = request.transport.get_extra_info("peername") if request.transport else None
        if peer not in self._peers:
            self._peers.add(peer)
            self.stats.connections += 1
        if (denied := self._check_auth(request)) is not None:
            return denied
        if self._statuses:
            status = self._statuses.popleft()
            kind, code = (
                ("requests", "rate_limit_exceeded") if status == 429 else ("server_error", None)
            )
            return self._reject(status, _error_body(f"Injected HTTP {status}.", kind, code))
        try:
            body = json.loads(await request.read())
        except ValueError:
            message = "We could not parse the JSON body of your request."
            return self._reject(400, _error_body(message, "invalid_request_error", None))
        error = best_match(self._validator.iter_errors(body)) if self._validator else None
        if error is not None:
            param = ".".join(str(p) for p in error.absolute_path) or None
            message = error.message[:500]
            return self._reject(400, _error_body(message, "invalid_request_error", None, param))
        if not body.get("stream"):  # Slotline only streams; so does this emulator
            message = "This emulator only serves stream: true."
            return self._reject(400, _error_body(message, "invalid_request_error", None, "stream"))
        self.received.append(body)
        self._completions += 1
        return await self._stream(
            request, f"chatcmpl-emu{self._completions}", body, self.script(body)
        )

    def _check_auth(self, request: web.Request) -> web.Response | None:
        if request.headers.get("Authorization") == f"Bearer {self._api_key}":
            return None
        message = "Incorrect API key provided."  # never echo the key back
        return self._reject(401, _error_body(message, "invalid_request_error", "invalid_api_key"))

    def _reject(self, status: int, body: bytes) -> web.Response:
        self.stats.rejected += 1
        return web.Response(status=status, body=body, content_type="application/json")

    # ---- streaming --------------------------------------------------------------------------

    async def _stream(
        self, request: web.Request, completion_id: str, body: Mapping[str, Any], reply: Reply
    ) -> web.StreamResponse:
        fault = self._stream_faults.popleft() if self._stream_faults else None
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        self.stats.streams_started += 1
        self._counted()
        envelope = {"id": completion_id, "object": "chat.completion.chunk",
                    "created": int(time.time()), "model": body["model"]}  # fmt: skip
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        if include_usage:
            envelope["usage"] = None
        try:
            for sent, chunk in enumerate(self._chunks(envelope, body, reply, include_usage)):
                latency = self.latency
                await self._pause(
                    latency.token_interval_ms if sent else latency.first_token_delay_ms
                )
                if fault is not None and sent == fault[1]:
                    await self._misbehave(fault[0], request, response, envelope)
                    return response
                await response.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
            await response.write(b"data: [DONE]\n\n")
            await response.write_eof()
        except asyncio.CancelledError:  # the client disconnected (handler_cancellation)
            self.stats.streams_cancelled += 1
            raise
        except ConnectionResetError:  # ... noticed by a write before the cancellation came
            self.stats.streams_cancelled += 1
            return response
        self.stats.streams_completed += 1
        return response

    def _chunks(
        self, envelope: dict[str, Any], body: Mapping[str, Any], reply: Reply, include_usage: bool
    ) -> Iterator[dict[str, Any]]:
        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            return {**envelope, "choices": [choice]}

        tokens = re.findall(r"\s*\S+", reply.text)  # words with their leading space
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        finish = "tool_calls" if reply.tool_calls else "stop"
        if limit is not None and len(tokens) > limit:
            tokens, finish = tokens[:limit], "length"
        yield chunk({"role": "assistant", "content": "" if tokens else None, "refusal": None})
        for token in tokens:
            yield chunk({"content": token})
        completion = len(tokens)
        for index, call in enumerate(reply.tool_calls):
            pieces = _fragments(call.arguments, self._fragment_chars)
            first = {"index": index, "id": call.id, "type": "function",
                     "function": {"name": call.name, "arguments": pieces[0]}}  # fmt: skip
            yield chunk({"tool_calls": [first]})
            for piece in pieces[1:]:
                yield chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
            completion += len(pieces)
        yield chunk({}, finish)
        if include_usage:
            prompt = sum(len(str(m.get("content") or "").split()) for m in body["messages"])
            usage = {"prompt_tokens": prompt, "completion_tokens": completion,
                     "total_tokens": prompt + completion}  # fmt: skip
            yield {**envelope, "choices": [], "usage": usage}

    async def _misbehave(
        self,
        fault: StreamFault,
        request: web.Request,
        response: web.StreamResponse,
        envelope: Mapping[str, Any],
    ) -> None:
        logger.info("injecting %s into %s", fault, envelope["id"])
        if fault == "stall":
            await asyncio.sleep(_STALL_S)
        elif fault == "malformed":
            await response.write(b'data: {"id": "chatcmpl-broken", "choices": [\n\n')
            await response.write_eof()
        elif fault == "error":
            message = "The server had an error while processing your request."
            await response.write(b"data: " + _error_body(message, "server_error", None) + b"\n\n")
            await response.write_eof()
        elif request.transport is not None:  # "drop": gone without finishing the chunked body
            request.transport.abort()

    async def _pause(self, delay_ms: float) -> None:
        if self.latency.jitter_ms:
            delay_ms += self._random.uniform(0.0, self.latency.jitter_ms)
        if delay_ms > 0:
            await asyncio.sleep(delay_ms / 1000.0)
