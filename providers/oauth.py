"""One OAuth 2.0 access-token cache for every REST adapter that needs a bearer token.

``OAuthTokenCache`` is an ``AuthSource`` (providers/http.py). A subclass only says how to ask
for a token (``_grant()``: the form of its grant: refresh token, JWT bearer, client
credentials); everything else lives here once:

- ``header()`` returns ``Bearer <token>``, fetched from the token endpoint on first use and
  cached until ``refresh_early_s`` before its ``expires_in`` — or at half-life for tokens too
  short for that margin. ``expires_in`` may be a number or a numeric string; one hour when it is
  absent or unusable (the lifetime both Google and Microsoft document).
- ``invalidate()`` (the API answered 401) drops the token; the next ``header()`` fetches anew.
- Concurrent callers share one in-flight fetch: a lock, and a re-check of the cache once held.
- The token endpoint's refusals (400, or 200 with an ``error``, in RFC 6749's shape
  ``{"error": "invalid_grant", "error_description": "..."}``; 401/403 via ``JsonHttpClient``)
  become ``ProviderAuthError``: wrong or revoked credentials are a configuration problem. 429,
  5xx and connection failures are retried by ``JsonHttpClient`` (then ``ProviderError``,
  retryable). No message carries a grant value (secret, refresh token, assertion): the
  endpoint's own text is scrubbed of them too, in case it echoes one back.
"""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from slotline.providers.errors import ProviderAuthError, ProviderError
from slotline.providers.http import HttpAdapter, JsonHttpClient, RetryPolicy, vendor_message

DEFAULT_LIFETIME_S = 3600.0  # when the endpoint does not say (RFC 6749 makes it optional)
_REDACTED = "[redacted]"
_SCRUB_MIN_CHARS = 6  # shorter values (test fixtures) would garble messages, not protect them
_GRANT_NAMES = frozenset({"grant_type", "client_id", "scope"})  # form fields that are no secret


class OAuthTokenCache(HttpAdapter, ABC):
    """Bearer tokens from ``token_url``, cached; see the module doc.

    ``clock`` is monotonic seconds (tests pass their own). ``hint`` ends every refusal message:
    what the user should check (``"check the credentials"``).
    """

    def __init__(
        self,
        provider: str,
        token_url: str,
        *,
        session: aiohttp.ClientSession | None,
        retry: RetryPolicy,
        clock: Callable[[], float] = time.monotonic,
        refresh_early_s: float = 60.0,
        hint: str = "check the credentials",
    ) -> None:
        parts = urlsplit(token_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"token_url {token_url!r} is not an http(s) URL")
        self.provider = provider
        self.token_url = token_url
        self._path = parts.path + (f"?{parts.query}" if parts.query else "")  # "POST /token → 400"
        self._http = JsonHttpClient(
            provider, f"{parts.scheme}://{parts.netloc}", retry=retry, session=session
        )
        self._clock = clock
        self._refresh_early_s = refresh_early_s
        self._hint = hint
        self._lock = asyncio.Lock()
        self._token = ""
        self._refresh_at = 0.0  # clock() value from which the cached token is not used
        self.fetches = 0  # token requests made (for tests and benches)

    @abstractmethod
    def _grant(self) -> Mapping[str, str]:
        """The form posted to the token endpoint (built afresh for every fetch)."""

    async def header(self) -> str:
        if self._fresh():
            return f"Bearer {self._token}"
        async with self._lock:  # one fetch; the callers queued behind it reuse its token
            if not self._fresh():
                await self._fetch()
            return f"Bearer {self._token}"

    def invalidate(self) -> None:
        self._token = ""

    def _fresh(self) -> bool:
        return bool(self._token) and self._clock() < self._refresh_at

    async def _fetch(self) -> None:
        form = self._grant()
        secrets = [value for name, value in form.items() if name not in _GRANT_NAMES]
        self.fetches += 1
        try:
            response = await self._http.request("POST", self._path, form=form)
        except ProviderError as exc:
            raise _scrubbed(exc, secrets) from None
        body: Any = response.body
        if response.status == 400 or (
            response.status == 200 and isinstance(body, dict) and "error" in body
        ):
            raise ProviderAuthError(
                self.provider,
                _scrub(
                    f"token endpoint refused the credentials ({response.status}): "
                    f"{oauth_message(body, response.text)} ({self._hint})",
                    secrets,
                ),
            )
        token = body.get("access_token") if isinstance(body, dict) else None
        if response.status != 200 or not isinstance(token, str) or not token:
            raise ProviderError(
                self.provider,
                _scrub(
                    f"token endpoint answered {response.status} without an access token: "
                    f"{vendor_message(body, response.text)}",
                    secrets,
                ),
            )
        lifetime_s = lifetime_of(body.get("expires_in"))
        self._token = token
        self._refresh_at = (
            self._clock() + lifetime_s - min(self._refresh_early_s, lifetime_s / 2)
        )


def lifetime_of(expires_in: object) -> float:
    """``expires_in`` in seconds (a number, or a numeric string from older endpoints)."""
    try:
        lifetime = float(expires_in) if isinstance(expires_in, int | float | str) else 0.0
    except ValueError:
        lifetime = 0.0
    return lifetime if lifetime > 0 else DEFAULT_LIFETIME_S


def oauth_message(body: Any, text: str) -> str:
    """RFC 6749 error bodies: ``{"error": "invalid_grant", "error_description": "..."}``."""
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        description = body.get("error_description")
        return f"{body['error']}: {description}" if description else str(body["error"])
    return vendor_message(body, text)


def _scrub(message: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if len(secret) >= _SCRUB_MIN_CHARS:
            message = message.replace(secret, _REDACTED)
    return message


def _scrubbed(error: ProviderError, secrets: Iterable[str]) -> ProviderError:
    message = _scrub(error.message, secrets)
    if message == error.message:
        return error
    return type(error)(error.provider, message, retryable=error.retryable)
