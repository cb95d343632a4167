"""The waitlist over real sockets: the server's ``/api/waitlist`` (GET, POST, DELETE) under the
``/api`` bearer token, each new entry POSTed as the signed ``waitlist.added`` event to the
call webhook's receiver (a real aiohttp server on 127.0.0.1), and a flow whose booking finds no
time putting the caller on the list through the built-in ``waitlist`` action — the real
FlowResponder, booking service and store, driven by the caller's words.

The event is durable (queued with the entry, sent by the call webhook's sender): a receiver that
refuses it gets it again with back-off, across a server restart, on SQLite and PostgreSQL; it
is given up after ``max_attempts``; several senders on one database send each event once."""

from __future__ import annotations

import asyncio
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
from slotline.agent.call.webhook import CallWebhookSender
from slotline.agent.config_models import CallWebhookSettings, Settings
from slotline.agent.flow import FlowEngine, FlowResponder
from slotline.agent.flow.messages import CallerSaid, CallStarted, Hangup, Say
from slotline.agent.flow.validate import parse_flow
from slotline.agent.flow.webhooks import HttpWebhooks
from slotline.agent.store import open_store
from slotline.agent.store.waitlist import NewWaitlistEntry
from slotline.agent.waitlist import Waitlist, WaitlistAction, WaitlistEvents
from slotline.providers import signing
from tests.e2e.conftest import running_server
from tests.until import until

API_TOKEN = "waitlist-api-token"
SECRET = "waitlist-webhook-secret"
NOW = datetime(2026, 11, 30, 14, 0, tzinfo=UTC)  # a Monday
BEARER = {"Authorization": f"Bearer {API_TOKEN}"}
SECRETS = {"SLOTLINE_API_TOKEN": API_TOKEN, "SLOTLINE_WEBHOOK_SECRET": SECRET}


@dataclass
class Request:
    key: str
    attempt: str
    body: bytes
    answered: int


@dataclass
class Receiver:
    """The business's webhook receiver: 401 to an unsigned or forged request; else 503 while
    ``refusing``, then the next of ``statuses`` (204 once they are spent). Keeps every signed
    request and the events it acknowledged."""

    events: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    seen: list[Request] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    refusing: bool = False
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if not signing.verify(SECRET, request.headers.get(signing.HEADER, ""), body):
            return web.Response(status=401)
        status = 503 if self.refusing else self.statuses.pop(0) if self.statuses else 204
        self.seen.append(Request(request.headers.get("Idempotency-Key", ""),
                                 request.headers.get("X-Slotline-Attempt", ""), body, status))
        if status < 300:
            self.events.append(orjson.loads(body))
            self.headers.append(dict(request.headers))
        return web.Response(status=status)

    def acknowledged(self, key: str) -> int:
        return sum(1 for r in self.seen if r.key == key and r.answered < 300)


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


async def listed(http: aiohttp.ClientSession, url: str) -> list[dict[str, Any]]:
    async with http.get(url + "/api/waitlist", headers=BEARER) as response:
        assert response.status == 200
        entries: list[dict[str, Any]] = (await response.json())["waitlist"]
        return entries


async def test_the_api_adds_lists_and_removes_behind_the_token(receiver: Receiver) -> None:
    runner, server = await running_server(
        env={"SLOTLINE_CALL_WEBHOOK__URL": receiver.url}, secret_env=SECRETS,
    )
    bearer = BEARER
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
            assert added["webhook_status"] in ("pending", "sent")  # queued with the entry
            await until(lambda: receiver.acknowledged(added["id"]) == 1)

            async def marked_sent() -> bool:  # once the receiver's answer is back
                async with http.get(api, headers=bearer, params={"action": "demo"}) as response:
                    listing = (await response.json())["waitlist"]
                return [e["webhook_status"] for e in listing] == ["sent"]

            await until(marked_sent)
            for bad in ({"name": "No Way To Reach"}, {"phone": "555 0102"}, {"colour": "red"}):
                async with http.post(api, json=bad, headers=bearer) as response:
                    assert response.status == 400, bad
            async with http.get(api, headers=bearer, params={"action": "demo"}) as response:
                [listed] = (await response.json())["waitlist"]
            assert listed["id"] == added["id"] and listed["source"] == "api"
            assert listed["webhook_status"] == "sent"
            assert listed["webhook"]["state"] == "sent" and listed["webhook"]["attempts"] == 1
            assert listed["webhook"]["next_attempt_at"] is None
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
    assert receiver.headers[0]["X-Slotline-Attempt"] == "1"
    assert set(event["entry"]) == {"id", "action", "name", "phone", "email", "timezone",
                                   "preference", "notes", "source", "call_sid", "created_at"}


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
    webhook = CallWebhookSettings.model_validate({"url": receiver.url})
    async with open_store(f"sqlite:///{tmp_path}/w.db") as store, \
            aiohttp.ClientSession() as http, \
            CallWebhookSender(store, webhook, secret=SECRET, session=lambda: http):
        service = BookingService.from_settings(settings, store, clock=lambda: NOW)
        sid = "CA" + "7" * 32
        runner = ServiceBookingRunner(service, call_sid=sid, caller_tz="America/New_York",
                                      clock=lambda: NOW, caller_phone="+15550109999")
        waitlist = Waitlist(store, WaitlistEvents(receiver.url))
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
        await until(lambda: len(receiver.events) == 1)  # the sender, woken by the add

        async def delivered() -> bool:  # marked once the receiver's answer is back
            return [e.webhook_status for e in await store.waitlist.entries()] == ["sent"]

        await until(delivered)
        [entry] = await store.waitlist.entries()
    assert (entry.name, entry.phone, entry.source, entry.call_sid) == (
        "Maria Lopez", "+15550109999", "voice", sid)
    assert entry.webhook_status == "sent"
    assert responder.variables["waitlist_id"] == entry.id
    [event] = receiver.events
    assert event["entry"]["id"] == entry.id and event["entry"]["name"] == "Maria Lopez"


async def test_a_refused_event_is_retried_and_delivered_once_after_a_restart(
    receiver: Receiver, store_url: str
) -> None:
    """The receiver refuses while the first server runs: the event is tried again with back-off
    and still pending when that server stops; the next server on the same database (SQLite file
    or PostgreSQL) finds it at start-up and delivers it, once."""
    env = {"SLOTLINE_CALL_WEBHOOK__URL": receiver.url, "SLOTLINE_STORE__URL": store_url,
           "SLOTLINE_CALL_WEBHOOK__FIRST_RETRY_S": "0.2",
           "SLOTLINE_CALL_WEBHOOK__MAX_ATTEMPTS": "30"}
    receiver.refusing = True
    runner, server = await running_server(env, SECRETS)
    try:
        async with aiohttp.ClientSession() as http:
            entry = {"action": "demo", "name": "Ana Díaz", "phone": "+15550102030"}
            async with http.post(server.url + "/api/waitlist", json=entry,
                                 headers=BEARER) as response:
                assert response.status == 201
                added = await response.json()
            key = added["id"]
            await until(lambda: len(receiver.seen) >= 2)  # refused, then tried again
            [pending] = await listed(http, server.url)
    finally:
        await runner.cleanup()
    refused = len(receiver.seen)
    assert pending["webhook_status"] == "pending"
    delivery = pending["webhook"]
    assert delivery["state"] == "pending" and delivery["attempts"] >= 2
    assert delivery["last_error"] == "HTTP 503" and delivery["next_attempt_at"] is not None

    receiver.refusing = False  # the receiver is back; so is the server
    runner, server = await running_server(env, SECRETS)
    try:
        await until(lambda: receiver.acknowledged(key) == 1)
        await asyncio.sleep(0.6)  # longer than the back-off so far: a further try would come
        async with aiohttp.ClientSession() as http:
            [sent] = await listed(http, server.url)
    finally:
        await runner.cleanup()
    assert refused >= 2 and [r.answered for r in receiver.seen] == [503] * refused + [204]
    assert {r.key for r in receiver.seen} == {key}
    assert len({r.body for r in receiver.seen}) == 1  # the same bytes on every attempt
    assert [r.attempt for r in receiver.seen] == [str(n) for n in range(1, refused + 2)]
    assert sent["webhook_status"] == "sent"
    assert sent["webhook"]["attempts"] == refused + 1 and sent["webhook"]["last_error"] == ""
    assert sent["webhook"]["delivered_at"] is not None
    assert receiver.events[0]["entry"]["id"] == key


async def test_an_event_refused_max_attempts_times_is_given_up_with_its_reason(
    receiver: Receiver, store_url: str
) -> None:
    receiver.statuses = [500, 500, 500]
    webhook = CallWebhookSettings.model_validate(
        {"url": receiver.url, "max_attempts": 2, "first_retry_s": 0.05})
    async with open_store(store_url) as store, aiohttp.ClientSession() as http, \
            CallWebhookSender(store, webhook, secret=SECRET, session=lambda: http):
        waitlist = Waitlist(store, WaitlistEvents(receiver.url))
        entry, created = await waitlist.add(NewWaitlistEntry(action="demo", phone="+15550102030"))
        assert created

        async def given_up() -> bool:
            found = await store.waitlist.get(entry.id)
            return found is not None and found.webhook_status.startswith("failed")

        await until(given_up)
        await asyncio.sleep(0.3)  # no third try
        found = await store.waitlist.get(entry.id)
    assert found is not None and found.webhook_status == "failed: HTTP 500"
    delivery = found.as_json()["webhook"]
    assert (delivery["state"], delivery["attempts"], delivery["next_attempt_at"]) == (
        "failed", 2, None)
    assert delivery["failed_at"] is not None
    assert [r.answered for r in receiver.seen] == [500, 500]


async def test_senders_sharing_one_database_send_each_event_once(
    receiver: Receiver, store_url: str
) -> None:
    """Three processes' senders (each its own store and connection pool) claim at the same
    moments; every entry's event reaches the receiver exactly once."""
    webhook = CallWebhookSettings.model_validate({"url": receiver.url})
    async with open_store(store_url) as first, open_store(store_url) as second, \
            open_store(store_url) as third, aiohttp.ClientSession() as http:
        waitlist = Waitlist(first, WaitlistEvents(receiver.url))
        ids = []
        for n in range(20):
            entry, _ = await waitlist.add(NewWaitlistEntry(action="demo",
                                                           phone=f"+1555010{n:04d}"))
            ids.append(entry.id)
        senders = [CallWebhookSender(store, webhook, secret=SECRET, session=lambda: http,
                                     worker_id=f"sender-{n}")
                   for n, store in enumerate((first, second, third))]
        for _ in range(10):
            claimed = await asyncio.gather(*(sender.run_once() for sender in senders))
            if not any(claimed):
                break
        entries = await first.waitlist.entries(limit=100)
    assert sorted(r.key for r in receiver.seen) == sorted(ids)  # each once, none left out
    assert all(r.answered == 204 and r.attempt == "1" for r in receiver.seen)
    assert {e.id: e.webhook_status for e in entries} == dict.fromkeys(ids, "sent")


async def test_the_store_queues_the_event_with_the_entry_and_forgets_it_with_the_entry(
    store_url: str,
) -> None:
    async with open_store(store_url, clock=lambda: NOW) as store:
        on = Waitlist(store, WaitlistEvents("http://127.0.0.1:9/hooks"))
        new = NewWaitlistEntry(action="demo", phone="+15550102030", call_sid="CA" + "1" * 32)
        entry, created = await on.add(new)
        again, created_again = await on.add(new)  # a retried flow step: no second event
        assert created and not created_again and again.id == entry.id
        assert entry.webhook_status == "pending" and entry.delivery is not None
        assert entry.as_json()["webhook"] == {
            "state": "pending", "attempts": 0, "next_attempt_at": NOW.isoformat(),
            "last_error": "", "delivered_at": None, "failed_at": None}
        job = await store.call_webhooks.get(entry.id)
        assert job is not None and job.event == "waitlist.added"
        assert orjson.loads(job.payload) == {"event": "waitlist.added",
                                             "entry": entry.details()}
        off = Waitlist(store, WaitlistEvents(""))
        quiet, _ = await off.add(NewWaitlistEntry(action="demo", email="ana@example.com"))
        assert quiet.webhook_status == "off" and quiet.as_json()["webhook"] is None
        assert await store.call_webhooks.get(quiet.id) is None
        assert await store.waitlist.remove(entry.id)
        assert await store.call_webhooks.get(entry.id) is None  # its unsent event too
        assert await store.call_webhooks.claim_due("w", limit=5, lease_s=60) == []
