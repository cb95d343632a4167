"""Custom actions over HTTP: what a flow's ``webhook`` node calls (e.g. take a deposit).

The contract (also in README): ``POST <url>`` with JSON

    {"call_sid": "CA…", "node": "<node id>", "action": "<webhook name>",
     "variables": {"<name>": "<value>", …}}

headers ``Content-Type: application/json``, ``Idempotency-Key: <hex, stable per call + node>``
and ``X-Slotline-Signature`` (``providers.signing``) when ``SLOTLINE_WEBHOOK_SECRET`` is set.
The action answers 200 with ``{"success": true, "variables": {…}}`` (values become flow
variables; only the node's ``receive`` names are kept) or ``{"success": false, "reason": "…"}``.

Because a request carries an idempotency key, a connection failure or a 429/5xx is retried
within the action's ``timeout_s`` (the receiver must treat a repeated key as the same request:
one deposit, not two). Anything else — 4xx, a body that is not that shape, no answer in time —
is the node's failure edge with a reason for the call log; the call goes on.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping

import aiohttp
import orjson

from slotline.agent.config_models import WebhookSettings
from slotline.agent.flow.messages import CallWebhook, WebhookFinished
from slotline.providers import signing
from slotline.providers.errors import ProviderError, ProviderTimeout
from slotline.providers.http import JsonHttpClient, RetryPolicy

log = logging.getLogger(__name__)

PROVIDER = "webhook-action"


class HttpWebhooks:
    """The ``WebhookRunner`` for one call: the configured actions by name."""

    def __init__(
        self,
        actions: Mapping[str, WebhookSettings],
        *,
        call_sid: str,
        secret: str | None,
        session: aiohttp.ClientSession,
    ) -> None:
        self._actions = actions
        self._call_sid = call_sid
        self._secret = secret
        self._session = session

    async def call(self, request: CallWebhook) -> WebhookFinished:
        settings = self._actions.get(request.webhook)
        if settings is None:
            return WebhookFinished(
                request.node_id, False, reason=f"webhook {request.webhook!r} is not configured"
            )
        body = orjson.dumps({
            "call_sid": self._call_sid,
            "node": request.node_id,
            "action": request.webhook,
            "variables": dict(request.variables),
        })
        key = hashlib.sha256(f"{self._call_sid}|{request.node_id}".encode()).hexdigest()[:32]
        headers = {"Content-Type": "application/json", "Idempotency-Key": key}
        if self._secret:
            headers[signing.HEADER] = signing.signature(self._secret, body)
        client = JsonHttpClient(
            PROVIDER,
            settings.url,
            session=self._session,
            retry=RetryPolicy(
                attempts=3,
                request_timeout_s=settings.timeout_s,
                deadline_s=settings.timeout_s,
            ),
        )
        try:
            response = await client.request("POST", "", data=body, headers=headers)
        except ProviderTimeout:
            return self._failed(request, "timeout")
        except ProviderError as exc:
            return self._failed(request, exc.message)
        answer = response.body
        if response.status != 200 or not isinstance(answer, dict):
            return self._failed(request, f"HTTP {response.status}")
        if answer.get("success") is not True:
            reason = answer.get("reason")
            return self._failed(request, reason if isinstance(reason, str) else "declined")
        variables = answer.get("variables", {})
        if not isinstance(variables, dict):
            return self._failed(request, "variables is not an object")
        return WebhookFinished(
            request.node_id,
            True,
            {str(name): str(value) for name, value in variables.items() if value is not None},
        )

    def _failed(self, request: CallWebhook, reason: str) -> WebhookFinished:
        log.warning("call_sid=%s webhook %s at node %s failed: %s", self._call_sid,
                    request.webhook, request.node_id, reason)
        return WebhookFinished(request.node_id, False, reason=reason[:200])
