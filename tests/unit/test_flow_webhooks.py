"""Custom actions over HTTP: a real action server on loopback, signed requests, every failure
mode ending in the node's failure edge with a reason."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from slotline.agent.config_models import WebhookSettings
from slotline.agent.flow.messages import CallWebhook
from slotline.agent.flow.webhooks import HttpWebhooks
from slotline.providers import signing

SECRET = "whsec_test"


@dataclass
class ActionServer:
    """A business's deposit endpoint: verifies the signature, charges once per idempotency key."""

    answers: list[tuple[int, Any]] = field(default_factory=list)  # queued (status, body)
    delay_s: float = 0.0
    seen: list[dict[str, Any]] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    charges: dict[str, str] = field(default_factory=dict)
    url: str = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        if not signing.verify(SECRET, request.headers.get(signing.HEADER, ""), raw):
            return web.json_response({"error": "bad signature"}, status=401)
        self.seen.append(orjson.loads(raw))
        key = request.headers["Idempotency-Key"]
        self.keys.append(key)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.answers:
            status, body = self.answers.pop(0)
            if isinstance(body, bytes):
                return web.Response(body=body, status=status)
            return web.json_response(body, status=status)
        payment = self.charges.setdefault(key, f"pay_{len(self.charges) + 1}")
        return web.json_response({"success": True, "variables": {"payment_id": payment}})


@pytest.fixture
async def server() -> AsyncIterator[ActionServer]:
    state = ActionServer()
    app = web.Application()
    app.router.add_post("/deposit", state.handle)
    runner = web.AppRunner(app, handler_cancellation=True)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    state.url = f"http://127.0.0.1:{runner.addresses[0][1]}/deposit"
    yield state
    await runner.cleanup()


async def run(server: ActionServer, *, secret: str | None = SECRET, timeout_s: float = 2.0,
              name: str = "payment_deposit") -> Any:
    actions = {"payment_deposit": WebhookSettings(url=server.url, timeout_s=timeout_s)}
    async with aiohttp.ClientSession() as session:
        runner = HttpWebhooks(actions, call_sid="CA1", secret=secret, session=session)
        return await runner.call(CallWebhook("deposit", name, {"user_email": "a@example.com"}))


async def test_success_returns_the_actions_variables(server: ActionServer) -> None:
    result = await run(server)
    assert result.success and result.variables == {"payment_id": "pay_1"}
    assert server.seen == [{"call_sid": "CA1", "node": "deposit", "action": "payment_deposit",
                            "variables": {"user_email": "a@example.com"}}]


async def test_a_5xx_is_retried_with_the_same_key_and_charges_once(server: ActionServer) -> None:
    server.answers.append((503, {"error": "busy"}))
    result = await run(server)
    assert result.success and result.variables == {"payment_id": "pay_1"}
    assert len(server.keys) == 2 and len(set(server.keys)) == 1
    assert len(server.charges) == 1


async def test_a_declined_action_takes_the_failure_edge_with_its_reason(
    server: ActionServer,
) -> None:
    server.answers.append((200, {"success": False, "reason": "card declined"}))
    result = await run(server)
    assert not result.success and result.reason == "card declined"


@pytest.mark.parametrize(
    ("status", "body", "reason"),
    [(400, {"error": "bad"}, "HTTP 400"), (200, b"not json", "HTTP 200"),
     (200, {"success": True, "variables": ["x"]}, "variables is not an object")],
)
async def test_bad_answers_fail_with_a_reason(
    server: ActionServer, status: int, body: Any, reason: str
) -> None:
    server.answers.append((status, body))
    result = await run(server)
    assert not result.success and result.reason == reason


async def test_a_forged_request_is_refused_by_the_receiver(server: ActionServer) -> None:
    result = await run(server, secret="wrong")
    assert not result.success and "401" in result.reason and not server.seen


async def test_no_answer_in_time_is_a_timeout(server: ActionServer) -> None:
    server.delay_s = 1.0
    result = await run(server, timeout_s=0.2)
    assert not result.success and result.reason == "timeout"


async def test_an_unconfigured_action_fails_without_a_request(server: ActionServer) -> None:
    result = await run(server, name="crm_lead")
    assert not result.success and "not configured" in result.reason and not server.seen


def test_signatures_verify_and_expire() -> None:
    header = signing.signature(SECRET, b"{}", timestamp=1_000)
    assert signing.verify(SECRET, header, b"{}", now=1_100)
    assert not signing.verify(SECRET, header, b"{ }", now=1_100)
    assert not signing.verify(SECRET, header, b"{}", now=1_000 + signing.TOLERANCE_S + 1)
    assert not signing.verify(SECRET, "t=abc,v1=00", b"{}", now=1_000)
