"""Microsoft identity platform app-only tokens (OAuth 2.0 client credentials) for Graph.

``ClientCredentialsAuth`` is an ``OAuthTokenCache`` (providers/oauth.py: cached tokens, shared
fetches, refreshed after a 401): it form-POSTs ``grant_type=client_credentials`` with the app's
id, secret and scope to the tenant's v2.0 token endpoint.

The token endpoint answers errors in the AAD shape ``{"error": "invalid_client",
"error_description": "AADSTS7000215: Invalid client secret provided. ..."}`` (401 for a bad
secret, 400 for an unknown tenant/app or a bad scope): both become ``ProviderAuthError`` quoting
that description. The secret itself is never put in a message or a log line.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import aiohttp

from slotline.providers.http import RetryPolicy
from slotline.providers.oauth import OAuthTokenCache

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


class ClientCredentialsAuth(OAuthTokenCache):
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
        super().__init__(
            PROVIDER, token_url, session=session, retry=retry, clock=clock,
            refresh_early_s=_REFRESH_EARLY_S,
            hint="check tenant_id, client_id and MS_CLIENT_SECRET",
        )
        self._form = {
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": client_secret,
            "scope": scope,
        }

    def _grant(self) -> dict[str, str]:
        return dict(self._form)
