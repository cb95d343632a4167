"""Google OAuth access tokens for the Calendar adapter: a service account or a refresh token.

Both classes are ``AuthSource``s (``providers.http``): ``header()`` returns ``Bearer <token>``,
fetched from the token endpoint on first use and cached until shortly before it expires;
``invalidate()`` (the API answered 401) drops it so the next ``header()`` fetches a fresh one.
Concurrent callers share one fetch.

- ``ServiceAccountAuth``: the JWT-bearer grant (RFC 7523; Google's "OAuth 2.0 for server to
  server applications"). The assertion is signed here with ``google.auth.crypt`` and posted with
  aiohttp, so nothing blocks the event loop (``google.oauth2.service_account.Credentials.refresh``
  would make a blocking HTTP call) and the token endpoint is configurable (an emulator in tests).
  ``subject`` is domain-wide delegation: act as that Workspace user. Google refuses to let a
  service account invite attendees without it (403 ``forbiddenForServiceAccounts``).
- ``RefreshTokenAuth``: the OAuth refresh-token grant of an installed or web app.

The token endpoint's 400/401 (``invalid_grant``, ``invalid_client``, ...) become
``ProviderAuthError``: wrong or revoked credentials are a configuration problem. 5xx and
connection failures are retried by ``JsonHttpClient``. Secrets (private key, client secret,
refresh token, access tokens) never appear in messages or logs.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import aiohttp
from google.auth import crypt, jwt
from yarl import URL

from providers.errors import ConfigError, ProviderAuthError, ProviderError
from providers.http import JsonHttpClient, RetryPolicy, vendor_message

PROVIDER = "google"
GOOGLE_TOKEN_URL = "https://oauth2.googleapis.com/token"
# Least privilege for Slotline: create/read/move/delete events, and free/busy queries.
CALENDAR_SCOPES: tuple[str, ...] = (
    "https://www.googleapis.com/auth/calendar.events",
    "https://www.googleapis.com/auth/calendar.freebusy",
)
JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
# Refresh a minute early (clock skew; a request sent just before expiry must not 401), or at
# half-life for tokens shorter than two minutes.
_EXPIRY_MARGIN_S = 60.0
_ASSERTION_LIFETIME_S = 3600  # Google's maximum for a JWT-bearer assertion
DEFAULT_RETRY = RetryPolicy()


class _CachedToken:
    """Fetch-once, cache-until-expiry, drop-on-401; the subclass says how to ask for a token."""

    def __init__(
        self, token_url: str, session: aiohttp.ClientSession | None, retry: RetryPolicy,
        clock: Callable[[], float],
    ) -> None:
        self.token_url = token_url
        url = URL(token_url)
        self._path = url.path_qs  # messages then read "POST /token → 400: ..."
        self._client = JsonHttpClient(PROVIDER, str(url.origin()), retry=retry, session=session)
        self._lock = asyncio.Lock()
        self._token = ""
        self._clock = clock  # monotonic seconds
        self._refresh_at = 0.0  # clock time from which the cached token is not used
        self.fetches = 0  # token requests made (for tests and benches)

    def _grant(self) -> dict[str, str]:
        raise NotImplementedError

    async def header(self) -> str:
        async with self._lock:
            if not self._token or self._clock() >= self._refresh_at:
                await self._fetch()
            return f"Bearer {self._token}"

    def invalidate(self) -> None:
        self._token = ""

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _fetch(self) -> None:
        self.fetches += 1
        response = await self._client.request("POST", self._path, form=self._grant())
        body: Any = response.body
        if response.status == 400 or (  # 401 invalid_client: JsonHttpClient raised already
            response.status == 200 and isinstance(body, dict) and "error" in body
        ):
            raise ProviderAuthError(
                PROVIDER,
                f"token endpoint refused the credentials: "
                f"{_oauth_message(body, response.text)} (check the credentials)",
            )
        token = body.get("access_token") if isinstance(body, dict) else None
        if response.status != 200 or not isinstance(token, str) or not token:
            raise ProviderError(
                PROVIDER,
                f"token endpoint → {response.status}: {vendor_message(body, response.text)}",
            )
        self._token = token
        lifetime_s = _lifetime_s(body.get("expires_in"))
        self._refresh_at = self._clock() + lifetime_s - min(_EXPIRY_MARGIN_S, lifetime_s / 2)


def _lifetime_s(expires_in: object) -> float:
    """``expires_in`` seconds (a number, sometimes a numeric string); one hour when absent."""
    try:
        return float(expires_in) if isinstance(expires_in, int | float | str) else 3600.0
    except ValueError:
        return 3600.0


def _oauth_message(body: Any, text: str) -> str:
    """RFC 6749 error bodies: ``{"error": "invalid_grant", "error_description": "..."}``."""
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        description = body.get("error_description")
        return f"{body['error']}: {description}" if description else str(body["error"])
    return vendor_message(body, text)


class ServiceAccountAuth(_CachedToken):
    """Tokens for a service account from its JSON key file (see the module doc)."""

    def __init__(
        self,
        credentials_file: str | Path,
        token_url: str | None = None,
        scopes: Sequence[str] = CALENDAR_SCOPES,
        *,
        subject: str | None = None,
        session: aiohttp.ClientSession | None = None,
        retry: RetryPolicy = DEFAULT_RETRY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        info = _load_service_account(Path(credentials_file))
        try:
            self._signer = crypt.RSASigner.from_service_account_info(info)  # type: ignore[no-untyped-call]
        except ValueError as exc:
            raise ConfigError(
                str(credentials_file), "private_key", f"not a usable RSA key ({exc})"
            ) from None
        self.client_email = str(info["client_email"])
        self._scopes = " ".join(scopes)
        self._subject = subject
        token_url = token_url or str(info.get("token_uri") or GOOGLE_TOKEN_URL)
        super().__init__(token_url, session, retry, clock)

    def _grant(self) -> dict[str, str]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.client_email,
            "scope": self._scopes,
            "aud": self.token_url,
            "iat": now,
            "exp": now + _ASSERTION_LIFETIME_S,
        }
        if self._subject:
            claims["sub"] = self._subject
        assertion: bytes = jwt.encode(self._signer, claims)  # type: ignore[no-untyped-call]
        return {"grant_type": JWT_BEARER_GRANT, "assertion": assertion.decode("ascii")}


def _load_service_account(path: Path) -> Mapping[str, Any]:
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(str(path), "credentials_file", f"unreadable: {exc.strerror}") from None
    except ValueError:
        raise ConfigError(str(path), "credentials_file", "not JSON") from None
    if not isinstance(info, dict) or info.get("type") != "service_account":
        raise ConfigError(str(path), "type", 'expected a "service_account" key file')
    for key in ("client_email", "private_key"):
        if not isinstance(info.get(key), str) or not info[key]:
            raise ConfigError(str(path), key, "missing")
    return info


class RefreshTokenAuth(_CachedToken):
    """Tokens from an OAuth client's refresh token (see the module doc)."""

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        refresh_token: str,
        token_url: str = GOOGLE_TOKEN_URL,
        *,
        session: aiohttp.ClientSession | None = None,
        retry: RetryPolicy = DEFAULT_RETRY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(token_url, session, retry, clock)
        self._form = {
            "grant_type": "refresh_token",
            "client_id": client_id,
            "client_secret": client_secret,
            "refresh_token": refresh_token,
        }

    def _grant(self) -> dict[str, str]:
        return dict(self._form)
