"""Chat model for any OpenAI-compatible server (OpenAI, vLLM, Ollama, llama.cpp's server).

The official ``openai`` SDK carries the request (base URL, auth header, HTTP status → exception)
through ``chat.completions.with_streaming_response.create(stream=True, ...)``; the response
body goes through our own sans-I/O decoder (``openai_wire``), which is lenient about what the
compatible servers leave out, so the SDK's typed chunk models never see a non-OpenAI stream.

Behaviour a call relies on:
- Closing the iterator early (barge-in) closes the HTTP stream at once; tool calls only come
  out of a generation that finished (see ``openai_wire``), so a cancelled one never runs any.
- ``first_token_timeout_s`` bounds the wait for the model's first output and
  ``timeout_s`` the whole time spent waiting on the server for one ``stream`` call, retries
  included (time the consumer takes between events is not counted). Either raises
  ``ProviderTimeout``.
- Retries are decided in ``_should_retry`` only: a retryable failure (HTTP 429/5xx, a broken
  connection, an in-band server error) is retried up to ``max_retries`` times, and only while
  nothing has been yielded; a timeout is not retried (the budget is already spent).
- Every vendor exception becomes a ``ProviderError`` in ``_provider_error``; 401/403 become
  ``ProviderAuthError``. The API key never appears in a log line, a repr or an error message.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable
from contextlib import AsyncExitStack, aclosing
from typing import Any, TypeVar

from slotline.providers import tracing
from slotline.providers.base import ChatEvent, ChatMessage, ResourceContext, ToolSpec
from slotline.providers.errors import (
    ProtocolError,
    ProviderAuthError,
    ProviderError,
    ProviderTimeout,
)
from slotline.providers.extras import missing
from slotline.providers.llm.openai_wire import ChatStreamDecoder, encode_messages, encode_tools

try:
    import anyio  # the SDK's HTTP stack runs on it
    import httpx2
    import openai
except ModuleNotFoundError as exc:
    raise missing(exc, "cloud", "llm.provider: openai") from None

logger = logging.getLogger(__name__)

_T = TypeVar("_T")
PROVIDER = "openai"
# Pause before retrying a 429/5xx: enough for a momentary overload to pass, short next to
# the first-token budget the retry has to fit in.
_RETRY_DELAY_S = 0.2
# After [DONE] the end of the chunked body is normally already in flight; reading it lets the
# HTTP/1.1 connection return to the pool (a new TCP+TLS handshake costs far more than this).
_DRAIN_TIMEOUT_S = 0.05


class OpenAIChatModel(ResourceContext):
    """``ChatModel`` over ``POST {base_url}/chat/completions`` with streamed tool calls."""

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str,
        model: str,
        timeout_s: float = 10.0,
        first_token_timeout_s: float = 3.0,
        max_retries: int = 1,
    ) -> None:
        # The SDK's own retries are off: retrying is decided here, once, before the first token.
        self._client = openai.AsyncOpenAI(
            api_key=api_key, base_url=base_url, max_retries=0, timeout=timeout_s
        )
        self._base_url = base_url
        self._model = model
        self._timeout_s = timeout_s
        self._first_token_timeout_s = first_token_timeout_s
        self._max_retries = max_retries

    def __repr__(self) -> str:
        return f"OpenAIChatModel(base_url={self._base_url!r}, model={self._model!r})"

    async def start(self) -> None:
        """Nothing to open (the connection pool fills on the first request), but what the SDK
        and its HTTP stack import on first use is imported now, at start-up: the SDK's chat
        resources and anyio's asyncio back-end (httpcore's first lock or event) were imported
        on the event loop by the process's first model request, in the middle of live calls
        (~110 ms of a 100-call ``slotline bench`` profile on one core)."""
        self._client.chat.completions.with_streaming_response  # noqa: B018 (a lazy import)
        anyio.Event()  # its back-end, looked up on first use, is imported here

    async def aclose(self) -> None:
        await self._client.close()

    async def stream(
        self, messages: tuple[ChatMessage, ...], *, tools: tuple[ToolSpec, ...] = ()
    ) -> AsyncGenerator[ChatEvent, None]:
        request: dict[str, Any] = {
            "model": self._model,
            "messages": encode_messages(messages),
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if tools:  # some servers reject an empty list
            request["tools"] = encode_tools(tools)
        budget = _Budget(self._timeout_s, self._first_token_timeout_s)
        attempt = 0
        while True:
            delivered = False
            try:
                generation = tracing.traced_stream(  # a span per attempt
                    "openai", "llm chat", self._generate(request, budget),
                    {"gen_ai.request.model": self._model},
                )
                async with aclosing(generation) as events:
                    async for event in events:
                        delivered = True
                        yield event
                return
            except ProviderError as err:
                if not _should_retry(err, attempt, self._max_retries, delivered):
                    raise
                attempt += 1
                logger.warning("%s failed before the first token, retrying: %s", self, err)
            await budget.wait(asyncio.sleep(_RETRY_DELAY_S), started=False)

    async def _generate(
        self, request: dict[str, Any], budget: _Budget
    ) -> AsyncGenerator[ChatEvent, None]:
        decoder = ChatStreamDecoder()
        try:
            async with AsyncExitStack() as stack:
                opening = self._client.chat.completions.with_streaming_response.create(**request)
                response = await budget.wait(stack.enter_async_context(opening), started=False)
                body = await stack.enter_async_context(aclosing(response.iter_bytes()))
                while not decoder.finished:
                    data = await budget.wait(anext(body, None), started=decoder.started)
                    events = decoder.feed(data) if data is not None else decoder.end()
                    if decoder.finished and data is not None:
                        await _drain(body)
                    for event in events:
                        yield event
        except (openai.OpenAIError, httpx2.HTTPError, ProtocolError) as exc:
            raise _provider_error(exc) from exc


class _Budget:
    """The time one ``stream`` call may spend waiting on the server."""

    __slots__ = ("_first_token_left_s", "_left_s")

    def __init__(self, timeout_s: float, first_token_timeout_s: float) -> None:
        self._left_s = timeout_s
        self._first_token_left_s = first_token_timeout_s

    async def wait(self, awaitable: Awaitable[_T], *, started: bool) -> _T:
        limit_s = self._left_s if started else min(self._left_s, self._first_token_left_s)
        loop = asyncio.get_running_loop()
        began = loop.time()
        try:
            async with asyncio.timeout(limit_s):
                return await awaitable
        except TimeoutError:
            what = "the generation" if started else "the first token"
            raise ProviderTimeout(PROVIDER, f"no answer within the budget for {what}") from None
        finally:
            spent_s = loop.time() - began
            self._left_s -= spent_s
            if not started:
                self._first_token_left_s -= spent_s


async def _drain(body: AsyncIterator[bytes]) -> None:
    try:
        async with asyncio.timeout(_DRAIN_TIMEOUT_S):
            async for _ in body:
                pass
    except (TimeoutError, httpx2.HTTPError) as exc:
        # Harmless: the connection is simply not reused.
        logger.debug("response body not drained after [DONE]: %s", type(exc).__name__)


def _should_retry(err: ProviderError, attempt: int, max_retries: int, delivered: bool) -> bool:
    """The one retry rule: retryable, not a timeout, nothing yielded yet, attempts left."""
    if delivered or attempt >= max_retries or isinstance(err, ProviderTimeout):
        return False
    return err.retryable


def _provider_error(exc: Exception) -> ProviderError:
    """Map every vendor exception (SDK, transport, malformed stream) to our error tree."""
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        if status in (401, 403):
            # Never the vendor's message here: some echo part of the key back.
            return ProviderAuthError(PROVIDER, f"HTTP {status}: check the API key and base_url")
        kind = exc.code or exc.type or "error"
        detail = f"HTTP {status} ({kind}): {exc.message[:200]}"
        return ProviderError(PROVIDER, detail, retryable=status in (408, 429) or status >= 500)
    if isinstance(exc, openai.APITimeoutError | httpx2.TimeoutException):
        return ProviderTimeout(PROVIDER, "the HTTP request timed out")
    if isinstance(exc, openai.APIConnectionError | httpx2.TransportError):
        return ProviderError(PROVIDER, f"connection failed: {type(exc).__name__}", retryable=True)
    if isinstance(exc, ProtocolError):
        # A server error reported in-band or a body cut short may pass; garbage will not.
        retryable = exc.code in ("stream_error", "stream_truncated")
        return ProviderError(PROVIDER, f"bad stream: {exc}", retryable=retryable)
    return ProviderError(PROVIDER, f"{type(exc).__name__}: {str(exc)[:200]}")
