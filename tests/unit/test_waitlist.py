"""The waitlist over real sockets: the server's ``/api/waitlist`` (GET, POST, DELETE) under the
``/api`` bearer token, each new entry POSTed as the signed ``waitlist.added`` event to the
call webhook's receiver (a real aiohttp server on 127.0.0.1), and a flow whose booking finds no
time putting the caller on the list through the built-in ``waitlist`` action — the real
FlowResponder, booking service and store, driven by the caller's words."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from slotline.agent.booking.runner import ServiceBookingRunner
from slotline.agent.booking.service import BookingService
from slotline.agent.config_models import Settings
from slotline.agent.flow import FlowEngine, FlowResponder
from slotline.agent.flow.messages import CallerSaid, CallStarted, Hangup, Say
from slotline.agent.flow.validate import parse_flow
from slotline.agent.flow.webhooks import HttpWebhooks
from slotline.agent.store import open_store
from slotline.agent.waitlist import Waitlist, WaitlistAction, WaitlistEvents
from slotline.providers import signing
from tests.e2e.conftest import running_server

API_TOKEN = "waitlist-api-token"
SECRET = "waitlist-webhook-secret"
NOW = datetime(2026, 11, 30, 14, 0, tzinfo=UTC)  # a Monday


@dataclass
class Receiver:
    """The business's webhook receiver: keeps each verified event."""

    events: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if not signing.verify(SECRET, request.headers.get(signing.HEADER, ""), body):
            return web.Response(status=401)
        self.events.append(orjson.loads(body))
        self.headers.append(dict(request.headers))
        return web.Response(status=204)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    found = Receiver()
    app = web.Application()
    app.router.add_post("/hooks", found.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    found.url = f"http://127.0.0.1:{port}/hooks"
    yield found
    await runner.cleanup()


async def test_the_api_adds_lists_and_removes_behind_the_token(receiver: Receiver) -> None:
    runner, server = await running_server(
        env={"SLOTLINE_CALL_WEBHOOK__URL": receiver.url},
        secret_env={"SLOTLINE_API_TOKEN": API_TOKEN, "SLOTLINE_WEBHOOK_SECRET": SECRET},
    )
    bearer = {"Authorization": f"Bearer {API_TOKEN}"}
    api = server.url + "/api/waitlist"
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(api) as response:
                assert response.status == 401  # the /api token, as on every /api route
            entry = {"action": "demo", "name": "Ana Díaz", "phone": "+15550102030",
                     "preference": "Tuesday afternoon"}
            async with http.post(api, json=entry, headers=bearer) as response:
                assert response.status == 201
                added = await response.json()
            for bad in ({"name": "No Way To Reach"}, {"phone": "555 0102"}, {"colour": "red"}):
                async with http.post(api, json=bad, headers=bearer) as response:
                    assert response.status == 400, bad
            async with http.get(api, headers=bearer, params={"action": "demo"}) as response:
                [listed] = (await response.json())["waitlist"]
            assert listed["id"] == added["id"] and listed["source"] == "api"
            assert listed["webhook_status"] == "sent"
            async with http.delete(f"{api}/{added['id']}", headers=bearer) as response:
                assert response.status == 204
            async with http.delete(f"{api}/{added['id']}", headers=bearer) as response:
                assert response.status == 404
            async with http.get(api, headers=bearer) as response:
                assert (await response.json())["waitlist"] == []
    finally:
        await runner.cleanup()
    [event] = receiver.events
    assert event["event"] == "waitlist.added" and event["entry"]["id"] == added["id"]
    assert event["entry"]["preference"] == "Tuesday afternoon"
    assert receiver.headers[0]["X-Slotline-Event"] == "waitlist.added"
    assert receiver.headers[0]["Idempotency-Key"] == added["id"]


FLOW = {
    "name": "waitlist_demo", "start": "ask_name", "timezone": "America/New_York",
    "nodes": {
        "ask_name": {"type": "conversation", "say": "May I have your name?",
                     "collect": "user_name", "extractor": "name", "next": "book"},
        "book": {"type": "booking", "action": "demo", "success": "booked",
                 "failure": "offer"},
        "offer": {"type": "conversation", "say": "Shall I put you on our waitlist?",
                  "collect": "join", "extractor": "yes_no", "next": "decide"},
        "decide": {"type": "branch", "conditions": [
            {"variable": "join", "equals": "yes", "goto": "add"}], "default": "bye"},
        "add": {"type": "webhook", "webhook": "waitlist",
                "send": ["user_name"], "receive": ["waitlist_id"],
                "success": "listed", "failure": "bye"},
        "listed": {"type": "end_call", "say": "You're on the list, {user_name}."},
        "booked": {"type": "end_call", "say": "Booked."},
        "bye": {"type": "end_call", "say": "Goodbye."},
    },
}


async def test_a_flow_with_no_time_free_puts_the_caller_on_the_waitlist(
    receiver: Receiver, tmp_path: Path
) -> None:
    settings = Settings.model_validate({  # the only calendar is closed every day
        "calendars": {"main": {"provider": "local", "timezone": "America/New_York"}},
        "booking_actions": {"demo": {"calendars": ["main"], "business_hours": {}}},
    })
    flow = parse_flow(FLOW, booking_actions=("demo",))
    async with open_store(f"sqlite:///{tmp_path}/w.db") as store, \
            aiohttp.ClientSession() as http:
        service = BookingService.from_settings(settings, store, clock=lambda: NOW)
        sid = "CA" + "7" * 32
        runner = ServiceBookingRunner(service, call_sid=sid, caller_tz="America/New_York",
                                      clock=lambda: NOW, caller_phone="+15550109999")
        waitlist = Waitlist(store, WaitlistEvents(receiver.url, SECRET))
        others = HttpWebhooks({}, call_sid=sid, secret=None, session=http)
        webhooks = WaitlistAction(waitlist, others, call_sid=sid, caller_phone="+15550109999")
        responder = FlowResponder(FlowEngine(flow, now=lambda: NOW), booking=runner,
                                  webhooks=webhooks)

        async def send(event: Any) -> tuple[str, bool]:
            actions = [action async for action in responder.handle(event)]
            said = " ".join(a.text for a in actions if isinstance(a, Say))
            return said, any(isinstance(a, Hangup) for a in actions)

        said, _ = await send(CallStarted(sid, {}))
        assert "name" in said
        said, _ = await send(CallerSaid("It's Maria Lopez."))
        assert "waitlist" in said
        said, ended = await send(CallerSaid("Yes please."))
        assert "You're on the list, Maria Lopez." in said and ended
        [entry] = await store.waitlist.entries()
    assert (entry.name, entry.phone, entry.source, entry.call_sid) == (
        "Maria Lopez", "+15550109999", "voice", sid)
    assert entry.webhook_status == "sent"
    assert responder.variables["waitlist_id"] == entry.id
    [event] = receiver.events
    assert event["entry"]["id"] == entry.id and event["entry"]["name"] == "Maria Lopez"
