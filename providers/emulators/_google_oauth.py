"""Google's OAuth 2.0 token endpoint, emulated: what a Google API emulator checks tokens with.

Two grants, answered as ``oauth2.googleapis.com/token`` answers them:
- JWT bearer (service accounts, RFC 7523): the assertion's RS256 signature is verified against
  the registered account's public key (and key id), ``aud`` must be this endpoint's URL as the
  client called it, the lifetime at most one hour, the scopes known ones; ``sub`` (domain-wide
  delegation) is remembered with the token;
- refresh token: client id + secret + refresh token must match a registered triple.
Errors are RFC 6749 bodies (``{"error": "invalid_grant", "error_description": ...}``): 400, or
401 ``invalid_client``. Tokens are random, expire after ``ttl_s`` or on ``expire_all()``.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace

from aiohttp import web
from google.auth import exceptions as google_exceptions
from google.auth import jwt

from slotline.providers.emulators._http import json_response

JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
_MAX_ASSERTION_LIFETIME_S = 3600


@dataclass(frozen=True, slots=True)
class Grant:
    """What an access token allows."""

    scopes: frozenset[str]
    service_account: bool
    subject: str  # the delegated user of a service account ("" = none)
    expires_at: float  # time.monotonic()


@dataclass(frozen=True, slots=True)
class _Account:
    public_key_pem: str
    key_id: str | None


class TokenIssuer:
    """The token endpoint's state and handler (mount ``handle`` on ``POST /token``)."""

    def __init__(self, known_scopes: frozenset[str], ttl_s: float = 3600.0) -> None:
        self.known_scopes = known_scopes
        self.ttl_s = ttl_s
        self.issued = 0
        self._accounts: dict[str, _Account] = {}
        self._refresh_tokens: dict[tuple[str, str, str], frozenset[str]] = {}
        self._tokens: dict[str, Grant] = {}

    def add_service_account(
        self, client_email: str, public_key_pem: str, key_id: str | None = None
    ) -> None:
        self._accounts[client_email] = _Account(public_key_pem, key_id)

    def add_refresh_token(
        self, client_id: str, client_secret: str, refresh_token: str, scopes: Iterable[str]
    ) -> None:
        self._refresh_tokens[(client_id, client_secret, refresh_token)] = frozenset(scopes)

    def expire_all(self) -> None:
        self._tokens = {t: replace(g, expires_at=0.0) for t, g in self._tokens.items()}

    def grant(self, token: str) -> Grant | None:
        """The live grant of an access token; None when unknown or expired."""
        grant = self._tokens.get(token)
        return grant if grant is not None and grant.expires_at > time.monotonic() else None

    async def handle(self, request: web.Request) -> web.Response:
        form = await request.post()
        grant_type = str(form.get("grant_type", ""))
        if grant_type == JWT_BEARER_GRANT:
            audience = f"{request.scheme}://{request.host}{request.path}"
            return self._jwt_grant(str(form.get("assertion", "")), audience)
        if grant_type == "refresh_token":
            client = (str(form.get("client_id", "")), str(form.get("client_secret", "")))
            if not any(key[:2] == client for key in self._refresh_tokens):
                return _error(401, "invalid_client", "The OAuth client was not found.")
            scopes = self._refresh_tokens.get((*client, str(form.get("refresh_token", ""))))
            if scopes is None:
                return _error(400, "invalid_grant", "Token has been expired or revoked.")
            return self._issue(scopes, service_account=False, subject="")
        return _error(400, "unsupported_grant_type", f"Invalid grant_type: {grant_type}")

    def _jwt_grant(self, assertion: str, audience: str) -> web.Response:
        try:
            unverified = jwt.decode(assertion, verify=False)  # type: ignore[no-untyped-call]
            account = self._accounts.get(str(unverified.get("iss", "")))
            if account is None:
                return _error(400, "invalid_grant", "Invalid grant: account not found")
            certs: str | dict[str, str] = account.public_key_pem
            if account.key_id is not None:
                certs = {account.key_id: account.public_key_pem}
            claims = jwt.decode(  # type: ignore[no-untyped-call]
                assertion, certs=certs, audience=audience
            )
        except (ValueError, google_exceptions.GoogleAuthError) as exc:
            return _error(400, "invalid_grant", f"Invalid JWT: {exc}")
        if claims["exp"] - claims["iat"] > _MAX_ASSERTION_LIFETIME_S:
            return _error(400, "invalid_grant", "Invalid JWT: Token must be a short-lived token "
                          "(60 minutes) and in a reasonable timeframe.")
        scopes = frozenset(str(claims.get("scope", "")).split())
        if not scopes or not scopes <= self.known_scopes:
            return _error(400, "invalid_scope", "Invalid OAuth scope or ID token audience.")
        return self._issue(scopes, service_account=True, subject=str(claims.get("sub", "")))

    def _issue(
        self, scopes: frozenset[str], *, service_account: bool, subject: str
    ) -> web.Response:
        token = "ya29.emu-" + secrets.token_urlsafe(24)
        expires_at = time.monotonic() + self.ttl_s
        self._tokens[token] = Grant(scopes, service_account, subject, expires_at)
        self.issued += 1
        return json_response(
            {"access_token": token, "expires_in": int(self.ttl_s), "token_type": "Bearer"}
        )


def _error(status: int, error: str, description: str) -> web.Response:
    return json_response({"error": error, "error_description": description}, status)
