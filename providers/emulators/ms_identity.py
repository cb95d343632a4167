"""The Microsoft identity platform's token endpoint, as the Graph emulator serves it.

``POST /{tenant}/oauth2/v2.0/token`` with the client-credentials grant (form fields
``grant_type``, ``client_id``, ``client_secret``, ``scope``): checks the tenant, the app id, the
secret and a ``/.default`` scope, and issues opaque bearer tokens that expire after
``lifetime_s`` (``{"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599,
"access_token": ...}``). Refusals use the AAD shape ``{"error": "invalid_client",
"error_description": "AADSTS7000215: Invalid client secret provided. ...", "error_codes": [...],
"trace_id": ..., "timestamp": ...}``: 401 for client authentication failures (RFC 6749
``invalid_client``), 400 for the rest. ``token_problem(header)`` is what the resource server
(Graph) asks of a bearer token.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from datetime import UTC, datetime

from aiohttp import web

from slotline.providers.emulators._http import json_response

TOKEN_ROUTE = "/{tenant}/oauth2/v2.0/token"

_Refusal = tuple[int, str, int, str]  # status, error, AADSTS code, description


class TokenIssuer:
    """One tenant with one confidential app; see the module doc."""

    def __init__(
        self, tenant_id: str, client_id: str, client_secret: str, lifetime_s: float
    ) -> None:
        self.tenant_id, self.client_id, self._secret = tenant_id, client_id, client_secret
        self.lifetime_s = lifetime_s
        self._tokens: dict[str, float] = {}  # token → time.monotonic() expiry

    def expire_all(self) -> None:
        """Every token issued so far is now expired (the clock moved past their lifetime)."""
        self._tokens = dict.fromkeys(self._tokens, 0.0)

    def token_problem(self, authorization: str) -> str | None:
        """Why Graph refuses this ``Authorization`` header (None: the token is live)."""
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return "Access token is empty."
        expires_at = self._tokens.get(token)
        if expires_at is None:
            return "Access token validation failure."
        if time.monotonic() >= expires_at:
            return "Access token has expired or is not yet valid."
        return None

    async def handle(self, request: web.Request) -> web.Response:
        form = {key: str(value) for key, value in (await request.post()).items()}
        refusal = self._refusal(request.match_info["tenant"], form)
        if refusal is not None:
            status, error, code, text = refusal
            body = {"error": error, "error_description": f"AADSTS{code}: {text}",
                    "error_codes": [code], "trace_id": secrets.token_hex(16),
                    "timestamp": f"{datetime.now(UTC):%Y-%m-%d %H:%M:%SZ}"}  # fmt: skip
            return json_response(body, status)
        token = f"emu.{secrets.token_urlsafe(24)}"
        self._tokens[token] = time.monotonic() + self.lifetime_s
        lifetime = round(self.lifetime_s)
        return json_response({"token_type": "Bearer", "expires_in": lifetime,
                              "ext_expires_in": lifetime, "access_token": token})  # fmt: skip

    def _refusal(self, tenant: str, form: Mapping[str, str]) -> _Refusal | None:
        if tenant != self.tenant_id:
            return 400, "invalid_request", 90002, f"Tenant '{tenant}' not found."
        for name in ("grant_type", "client_id", "client_secret", "scope"):
            if not form.get(name):
                text = f"The request body must contain the following parameter: '{name}'."
                if name == "client_secret":
                    return 401, "invalid_client", 7000218, text
                return 400, "invalid_request", 900144, text
        grant, client_id, scope = form["grant_type"], form["client_id"], form["scope"]
        if grant != "client_credentials":
            text = f"The app requested an unsupported grant type '{grant}'."
            return 400, "unsupported_grant_type", 70003, text
        if client_id != self.client_id:
            text = f"Application with identifier '{client_id}' was not found in the directory."
            return 400, "unauthorized_client", 700016, text
        if form["client_secret"] != self._secret:
            text = ("Invalid client secret provided. Ensure the secret being sent in the request "
                    f"is the client secret value, not the client secret ID, for app "
                    f"'{client_id}'.")  # fmt: skip
            return 401, "invalid_client", 7000215, text
        if not scope.endswith("/.default"):
            text = (f"The provided value for scope {scope} is not valid. Client credential "
                    "flows must have a scope value with /.default suffixed to the resource "
                    "identifier.")  # fmt: skip
            return 400, "invalid_scope", 1002012, text
        return None
