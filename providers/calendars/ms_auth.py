"""Microsoft identity platform app-only tokens (OAuth 2.0 client credentials) for Graph.

``ClientCredentialsAuth`` is an ``AuthSource`` (providers/http.py): it form-POSTs
``grant_type=client_credentials`` with the app's id, secret and scope to the tenant's v2.0 token
endpoint, caches the access token until shortly before its ``expires_in`` and fetches a new one
after ``invalidate()`` (the Graph client calls it on a 401). Concurrent callers share one
in-flight fetch: a lock, and a re-check of the cache once it is held.

The token endpoint answers errors in the AAD shape ``{"error": "invalid_client",
"error_description": "AADSTS7000215: Invalid client secret provided. ..."}`` (401 for a bad
secret, 400 for an unknown tenant/app or a bad scope): both become ``ProviderAuthError`` quoting
that description. The secret itself is never put in a message or a log line.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from types import TracebackType
from typing import Self
from urllib.parse import urlsplit

import aiohttp

from providers.errors import ProviderAuthError, ProviderError
from providers.http import JsonHttpClient, RetryPolicy, vendor_message

PROVIDER = "outlook"
GRAPH_SCOPE = "https://graph.microsoft.com/.default"
TOKEN_URL_TEMPLATE = "https://login.microsoftonline.com/{tenant_id}/oauth2/v2.0/token"
# Tokens live ~1 h; fetch a new one 5 min early so no request leaves with a token about to
# lapse (clock skew, a slow retry). Short-lived tokens (tests) are renewed at half-life.
_REFRESH_EARLY_S = 300.0
_DEFAULT_RETRY = RetryPolicy()


def default_token_url(tenant_id: str) -> str:
    """The tenant's v2.0 token endpoint on the public cloud (config key ``token_url``)."""
    return TOKEN_URL_TEMPLATE.format(tenant_id=tenant_id)


class ClientCredentialsAuth:
    """``Authorization: Bearer <app token>`` for Graph; see the module doc."""

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str,
        scope: str = GRAPH_SCOPE,
        session: aiohttp.ClientSession | None = None,
        *,
        retry: RetryPolicy = _DEFAULT_RETRY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        parts = urlsplit(token_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"token_url {token_url!r} is not an http(s) URL")
        self._path = parts.path + (f"?{parts.query}" if parts.query else "")
        self._client = JsonHttpClient(
            PROVIDER, f"{parts.scheme}://{parts.netloc}", retry=retry, session=session
        )
        self._form = {
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": client_secret,
            "scope": scope,
        }
        self._clock = clock
        self._lock = asyncio.Lock()
        self._token = ""
        self._refresh_at = 0.0  # clock() value after which the cached token is not used
        self.fetches = 0  # tokens fetched, for tests and benches

    async def header(self) -> str:
        if self._token and self._clock() < self._refresh_at:
            return f"Bearer {self._token}"
        async with self._lock:  # one fetch; the callers queued behind it reuse its token
            if not self._token or self._clock() >= self._refresh_at:
                await self._fetch()
            return f"Bearer {self._token}"

    def invalidate(self) -> None:
        self._token = ""

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _fetch(self) -> None:
        response = await self._client.request("POST", self._path, form=self._form)
        self.fetches += 1
        body = response.body
        if response.status == 400:  # a 401 (bad secret) was raised by the client, same text
            raise ProviderAuthError(
                PROVIDER,
                f"token request refused ({response.status}): "
                f"{vendor_message(body, response.text)} (check tenant_id, client_id and "
                "MS_CLIENT_SECRET)",
            )
        token = body.get("access_token") if isinstance(body, dict) else None
        lifetime = body.get("expires_in") if isinstance(body, dict) else None
        if isinstance(lifetime, str) and lifetime.isdigit():  # v1 endpoints send a string
            lifetime = int(lifetime)
        if response.status != 200 or not isinstance(token, str) or not token:
            raise ProviderError(
                PROVIDER,
                f"token endpoint answered {response.status} without an access token: "
                f"{vendor_message(body, response.text)}",
            )
        if not isinstance(lifetime, int | float) or lifetime <= 0:
            lifetime = 3600  # the platform's documented default lifetime
        self._token = token
        self._refresh_at = self._clock() + lifetime - min(_REFRESH_EARLY_S, lifetime / 2)
