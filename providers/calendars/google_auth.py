"""Google OAuth access tokens for the Calendar adapter: a service account or a refresh token.

Both classes are ``OAuthTokenCache``s (providers/oauth.py: cached until a minute before expiry,
shared fetches, refreshed after a 401, refusals as ``ProviderAuthError``); this module only
says how Google is asked for a token.

- ``ServiceAccountAuth``: the JWT-bearer grant (RFC 7523; Google's "OAuth 2.0 for server to
  server applications"). The assertion is signed here with ``google.auth.crypt`` and posted with
  aiohttp, so nothing blocks the event loop (``google.oauth2.service_account.Credentials.refresh``
  would make a blocking HTTP call) and the token endpoint is configurable (an emulator in tests).
  ``subject`` is domain-wide delegation: act as that Workspace user. Google refuses to let a
  service account invite attendees without it (403 ``forbiddenForServiceAccounts``).
- ``RefreshTokenAuth``: the OAuth refresh-token grant of an installed or web app.

Secrets (private key, client secret, refresh token, access tokens) never appear in messages or
logs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import aiohttp

from slotline.providers.errors import ConfigError
from slotline.providers.extras import missing
from slotline.providers.http import RetryPolicy
from slotline.providers.oauth import OAuthTokenCache

try:
    from google.auth import crypt, jwt
except ModuleNotFoundError as exc:
    raise missing(exc, "google", "calendar provider google") from None

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


class ServiceAccountAuth(OAuthTokenCache):
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
        super().__init__(
            PROVIDER, token_url or str(info.get("token_uri") or GOOGLE_TOKEN_URL),
            session=session, retry=retry, clock=clock, refresh_early_s=_EXPIRY_MARGIN_S,
        )

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


class RefreshTokenAuth(OAuthTokenCache):
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
        super().__init__(
            PROVIDER, token_url, session=session, retry=retry, clock=clock,
            refresh_early_s=_EXPIRY_MARGIN_S,
        )
        self._form = {
            "grant_type": "refresh_token",
            "client_id": client_id,
            "client_secret": client_secret,
            "refresh_token": refresh_token,
        }

    def _grant(self) -> dict[str, str]:
        return dict(self._form)
