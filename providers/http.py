"""One JSON-over-HTTP client for every REST vendor adapter (calendars, Twilio REST, webhooks).

The error policy lives here once, so each adapter only maps its vendor's meaningful answers:
- 401/403 → ``ProviderAuthError`` (a configuration problem; never retried). With an
  ``AuthSource`` that can refresh (OAuth), one 401 first invalidates the token and retries once.
- 429 and 5xx → retried with exponential backoff (``Retry-After`` honoured up to the cap) while
  attempts and the overall deadline allow, then ``ProviderError(retryable=True)``. A vendor that
  signals rate limits some other way (Google: 403 ``rateLimitExceeded``) passes an
  ``is_rate_limited(response)`` predicate; the answers it matches are retried like a 429.
- connection failures → retried the same way; no answer in time → ``ProviderTimeout``.
- any other status → returned to the adapter, which knows what its 400/404/409/412 mean.

Non-idempotent writes pass ``retry=False`` unless the vendor de-duplicates them (an idempotency
key, a client-chosen id): a retried write after a dropped response must never book twice.
Secrets never appear in messages: errors quote the method, the path and the vendor's message.
``HttpAdapter`` is the lifecycle every adapter built on one client shares (start, close,
``async with``, the ``requests`` count).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp
import orjson
import yarl

from slotline.providers import tracing
from slotline.providers.base import ResourceContext
from slotline.providers.errors import ProviderAuthError, ProviderError, ProviderTimeout


class AuthSource(Protocol):
    """Where the ``Authorization`` header comes from (a static key, or a refreshed token)."""

    async def header(self) -> str: ...

    def invalidate(self) -> None:
        """The server said 401: the next ``header()`` must fetch a fresh token."""


@dataclass(frozen=True, slots=True)
class StaticAuth:
    value: str  # the whole header value, e.g. "Bearer cal_..."

    async def header(self) -> str:
        return self.value

    def invalidate(self) -> None:
        return None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 3  # including the first
    base_delay_s: float = 0.05
    max_delay_s: float = 1.0
    request_timeout_s: float = 5.0  # one attempt
    deadline_s: float = 8.0  # all attempts together (keep it inside the turn budget)


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    body: Any  # parsed JSON, or None when the body is empty or not JSON
    text: str
    headers: Mapping[str, str] = field(default_factory=dict)


def vendor_message(body: Any, text: str) -> str:
    """The human part of a vendor error body, whatever its shape, kept short."""
    if isinstance(body, dict):
        for key in ("message", "error_description", "msg", "detail"):
            value = body.get(key)
            if isinstance(value, str) and value:
                return value[:300]
        error = body.get("error")
        if isinstance(error, dict):
            return vendor_message(error, "")
        if isinstance(error, str) and error:
            return error[:300]
    return text.strip()[:300]


class JsonHttpClient:
    """JSON requests to one vendor ``base_url`` with the policy above.

    ``session`` may be shared (the client then does not close it). Paths are appended to
    ``base_url`` as given (``base_url`` has no trailing slash).
    """

    def __init__(
        self,
        provider: str,
        base_url: str,
        *,
        auth: AuthSource | None = None,
        headers: Mapping[str, str] | None = None,
        retry: RetryPolicy = RetryPolicy(),
        session: aiohttp.ClientSession | None = None,
        seed: int | None = None,
        is_rate_limited: Callable[[HttpResponse], bool] | None = None,
    ) -> None:
        self.provider = provider
        self.base_url = base_url.rstrip("/")
        self._host = yarl.URL(self.base_url).host or ""
        self._auth = auth
        self._headers = dict(headers or {})
        self._retry = retry
        self._session = session
        self._owns_session = session is None
        self._random = random.Random(seed)
        self._is_rate_limited = is_rate_limited
        self.requests = 0  # attempts sent, for benches quoting requests per booking

    async def start(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession()

    async def aclose(self) -> None:
        if self._session is not None and self._owns_session:
            await self._session.close()
        self._session = None

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        form: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        retry: bool = True,
        data: bytes | None = None,
    ) -> HttpResponse:
        """Send one request (retried per the policy when ``retry``); see the module doc."""
        if self._session is None:
            await self.start()
        policy = self._retry
        attempts = policy.attempts if retry else 1
        refreshed = False
        loop = asyncio.get_running_loop()
        deadline = loop.time() + policy.deadline_s
        last: ProviderError | None = None
        attempt = 0
        while attempt < attempts:
            attempt += 1
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                response = await self._send(
                    method, path, json=json, form=form, params=params, headers=headers,
                    data=data, timeout_s=min(policy.request_timeout_s, remaining),
                )
            except ProviderError as exc:
                last = exc
            else:
                if response.status == 401 and self._auth is not None and not refreshed:
                    refreshed = True  # a refreshable token may have expired: one fresh try
                    self._auth.invalidate()
                    attempt -= 1
                    continue
                throttled = response.status == 429 or (
                    response.status >= 400
                    and self._is_rate_limited is not None
                    and self._is_rate_limited(response)
                )
                if response.status in (401, 403) and not throttled:
                    raise ProviderAuthError(
                        self.provider,
                        f"{method} {path} → {response.status}: "
                        f"{vendor_message(response.body, response.text)} (check the credentials)",
                    )
                if not throttled and response.status < 500:
                    return response
                last = ProviderError(
                    self.provider,
                    f"{method} {path} → {response.status}: "
                    f"{vendor_message(response.body, response.text)}",
                    retryable=True,
                )
                if attempt < attempts:
                    await asyncio.sleep(self._delay(attempt, response, deadline - loop.time()))
                continue
            if not last.retryable:
                raise last
            if attempt < attempts:
                await asyncio.sleep(self._delay(attempt, None, deadline - loop.time()))
        if last is None:
            last = ProviderTimeout(self.provider, f"{method} {path}: no time left to ask")
        raise last

    def _delay(self, attempt: int, response: HttpResponse | None, remaining: float) -> float:
        policy = self._retry
        delay = min(policy.max_delay_s, policy.base_delay_s * (2 ** (attempt - 1)))
        delay *= 0.5 + self._random.random() / 2  # jitter: callers do not retry in step
        if response is not None:
            after = response.headers.get("Retry-After", "")
            if after.replace(".", "", 1).isdigit():
                delay = min(policy.max_delay_s, float(after))
        return float(max(0.0, min(delay, remaining)))

    async def _send(
        self,
        method: str,
        path: str,
        *,
        json: Any,
        form: Mapping[str, str] | None,
        params: Mapping[str, str] | None,
        headers: Mapping[str, str] | None,
        data: bytes | None,
        timeout_s: float,
    ) -> HttpResponse:
        assert self._session is not None
        sent = dict(self._headers)
        if self._auth is not None:
            sent["Authorization"] = await self._auth.header()
        if headers:
            sent.update(headers)
        body: bytes | aiohttp.FormData | None = data
        if json is not None:
            body = orjson.dumps(json)
            sent.setdefault("Content-Type", "application/json")
        elif form is not None:
            body = aiohttp.FormData(dict(form))
        self.requests += 1
        # one span per attempt (retries are spans of their own); no path: it may name a person
        attributes = {"http.request.method": method, "server.address": self._host}
        try:
            with tracing.request(self.provider, f"{self.provider} {method}", attributes) as span:
                async with asyncio.timeout(timeout_s):
                    async with self._session.request(
                        method, self.base_url + path, data=body, params=params, headers=sent,
                    ) as response:
                        span.set_attribute("http.response.status_code", response.status)
                        raw = await response.read()
        except TimeoutError:
            raise ProviderTimeout(
                self.provider, f"{method} {path}: no answer within {timeout_s:.1f} s"
            ) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise ProviderError(
                self.provider, f"{method} {path}: {type(exc).__name__}: {exc}", retryable=True
            ) from None
        text = raw.decode("utf-8", "replace")
        parsed: Any = None
        if raw:
            try:
                parsed = orjson.loads(raw)
            except orjson.JSONDecodeError:
                parsed = None
        return HttpResponse(response.status, parsed, text, dict(response.headers))


class HttpAdapter(ResourceContext):
    """What an adapter built on one ``JsonHttpClient`` (kept in ``self._http``) shares: an
    ``AsyncResource`` lifecycle, ``async with``, and ``requests`` (attempts sent, retries
    included, for benches quoting requests per booking)."""

    _http: JsonHttpClient

    @property
    def requests(self) -> int:
        return self._http.requests

    async def start(self) -> None:
        await self._http.start()

    async def aclose(self) -> None:
        await self._http.aclose()
