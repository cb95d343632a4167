"""The end-of-call webhook over real sockets: a receiver on 127.0.0.1 checks every request the
way README tells receivers to, and counts what it was told."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import tempfile
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from slotline.agent.sim.caller import run_caller
from slotline.agent.sim.demo import DEMO_SCRIPT, caller_wav, fetch_stream
from slotline.agent.store import Store
from slotline.providers import signing
from tests.e2e.conftest import running_server
from tests.until import until

SECRET = "whsec-test-0123456789"
TOLERANCE_S = 300


def verify(secret: str, headers: Mapping[str, str], body: bytes, *,
           now: float | None = None) -> bool:
    """README's receiver check, as a receiver writes it (standard library only): recompute the
    HMAC over "<t>." + the raw body, compare in constant time, refuse an old or future ``t``."""
    fields = dict(part.split("=", 1) for part in
                  headers.get("X-Slotline-Signature", "").split(",") if "=" in part)
    stamp, given = fields.get("t", ""), fields.get("v1", "")
    if not stamp.isdigit() or not given:
        return False
    if abs((time.time() if now is None else now) - int(stamp)) > TOLERANCE_S:
        return False
    expected = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256)
    return hmac.compare_digest(expected.hexdigest(), given)


@dataclass
class Delivery:
    key: str
    attempt: str
    body: bytes
    answered: int

    @property
    def payload(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed


@dataclass
class Receiver:
    """A CRM's webhook endpoint: 401 to anything unsigned or forged, else the next scripted
    status (200 once the script is spent)."""

    statuses: list[int] = field(default_factory=list)
    seen: list[Delivery] = field(default_factory=list)
    rejected: int = 0
    port: int = 0
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/slotline"

    @property
    def acknowledged(self) -> list[Delivery]:
        return [d for d in self.seen if 200 <= d.answered < 300]

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if not verify(SECRET, request.headers, body):
            self.rejected += 1
            return web.Response(status=401, text="bad signature")
        status = self.statuses.pop(0) if self.statuses else 200
        self.seen.append(Delivery(request.headers.get("Idempotency-Key", ""),
                                  request.headers.get("X-Slotline-Attempt", ""), body, status))
        return web.Response(status=status, text="ok" if status == 200 else "try again")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hooks/slotline", self.handle)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    found = Receiver()
    await found.start()
    try:
        yield found
    finally:
        await found.stop()


def webhook_env(receiver: Receiver, store_url: str = "") -> dict[str, str]:
    env = {"SLOTLINE_CALL_WEBHOOK__URL": receiver.url,
           "SLOTLINE_CALL_WEBHOOK__FIRST_RETRY_S": "0.3"}
    if store_url:
        env["SLOTLINE_STORE__URL"] = store_url
    return env


async def short_call(media_url: str) -> str:
    """A caller who hears the greeting and hangs up; its call sid."""
    report = await run_caller(media_url, [])
    return report.call_sid


async def test_a_booking_call_is_posted_once_signed_with_outcome_and_summary(
    receiver: Receiver,
) -> None:
    runner, server = await running_server(webhook_env(receiver),
                                          {"SLOTLINE_WEBHOOK_SECRET": SECRET})
    try:
        async with aiohttp.ClientSession() as http:
            url, params = await fetch_stream(http, server.url)
            script = [caller_wav(u.stem) for u in DEMO_SCRIPT]
            report = await run_caller(url, script, custom_parameters=params, session=http)
            await until(lambda: len(receiver.seen) == 1)
            async with http.get(f"{server.url}/api/calls/{report.call_sid}") as response:
                call = await response.json()
        await asyncio.sleep(0.5)  # nothing more comes
        assert server.deps.store is not None
        stored = await server.deps.store.calls.get(report.call_sid)
        job = await server.deps.store.call_webhooks.get(report.call_sid)
    finally:
        await runner.cleanup()
    assert len(receiver.seen) == 1 and receiver.rejected == 0
    delivery = receiver.seen[0]
    assert (delivery.key, delivery.attempt) == (report.call_sid, "1")
    payload = delivery.payload
    assert payload["event"] == "call.ended" and payload["call_sid"] == report.call_sid
    assert (payload["direction"], payload["flow"], payload["status"]) == (
        "inbound", "demo_booking", "completed")
    assert payload["outcome"] == "booked" and payload["summary_by"] == "rules"
    summary = payload["summary"]
    assert summary.startswith("John Smith booked a demo for ") and " at 3 pm" in summary
    assert payload["variables"]["user_name"] == "John Smith"
    said = [t["text"] for t in payload["transcript"] if t["role"] == "caller"]
    assert said == [u.text for u in DEMO_SCRIPT]
    assert all(set(t) >= {"role", "text", "interrupted"} for t in payload["transcript"])
    (booking,) = payload["bookings"]
    assert booking["id"] == call["bookings"][0] and booking["status"] == "confirmed"
    assert booking["attendee"]["name"] == "John Smith"
    latency = payload["latency"]
    assert latency["turns"] == len(DEMO_SCRIPT)
    assert 0 < latency["turn_latency_ms_p50"] <= latency["turn_latency_ms_max"]
    assert payload["duration_s"] > 0 and payload["recording_url"] is None
    # the call record carries them too: the API (memory) and the store
    assert (call["outcome"], call["summary"]) == ("booked", summary)
    assert stored is not None and (stored.outcome, stored.summary) == ("booked", summary)
    assert job is not None and job.delivered_at is not None and job.attempts == 1


async def test_a_receiver_answering_500_gets_the_same_key_again_until_it_says_200(
    receiver: Receiver,
) -> None:
    receiver.statuses = [500, 500]
    recorded = {"SLOTLINE_RECORDING__ENABLED": "true",
                "SLOTLINE_RECORDING__FOLDER": tempfile.mkdtemp(prefix="slotline-rec-")}
    runner, server = await running_server({**webhook_env(receiver), **recorded},
                                          {"SLOTLINE_WEBHOOK_SECRET": SECRET})
    try:
        call_sid = await short_call(server.media_url)
        await until(lambda: len(receiver.acknowledged) == 1)
        await asyncio.sleep(1.5)  # > the back-off so far: a further attempt would have come
        assert server.deps.store is not None
        job = await server.deps.store.call_webhooks.get(call_sid)
        recording_url = receiver.seen[0].payload["recording_url"]
        async with aiohttp.ClientSession() as http:
            async with http.get(server.url + recording_url) as response:
                assert (response.status, response.content_type) == (200, "audio/wav")
    finally:
        await runner.cleanup()
    assert recording_url == f"/api/calls/{call_sid}/recording"
    assert [d.answered for d in receiver.seen] == [500, 500, 200]
    assert {d.key for d in receiver.seen} == {call_sid}
    assert [d.attempt for d in receiver.seen] == ["1", "2", "3"]
    assert len({d.body for d in receiver.seen}) == 1  # the same request every time
    assert receiver.seen[0].payload["outcome"] == "no_answer_given"
    assert job is not None and job.attempts == 3 and job.delivered_at is not None


async def test_a_webhook_waiting_at_shutdown_is_delivered_once_after_restart(
    receiver: Receiver,
) -> None:
    store_url = f"sqlite:///{tempfile.mkdtemp(prefix='slotline-e2e-')}/restart.db"
    env = webhook_env(receiver, store_url)
    secrets = {"SLOTLINE_WEBHOOK_SECRET": SECRET}
    await receiver.stop()  # the CRM is down while the call ends and the server stops
    runner, server = await running_server(env, secrets)
    store = server.deps.store
    assert store is not None
    try:
        call_sid = await short_call(server.media_url)

        async def tried_once() -> bool:
            job = await store.call_webhooks.get(call_sid)
            return job is not None and job.attempts >= 1 and job.claimed_by is None

        await until(tried_once)
    finally:
        await runner.cleanup()
    await receiver.start()  # back, on the same port
    runner, server = await running_server(env, secrets)
    try:
        await until(lambda: len(receiver.seen) == 1)
        await asyncio.sleep(1.0)
        assert server.deps.store is not None
        job = await server.deps.store.call_webhooks.get(call_sid)
    finally:
        await runner.cleanup()
    assert [(d.key, d.answered) for d in receiver.seen] == [(call_sid, 200)]
    assert receiver.seen[0].payload["call_sid"] == call_sid
    assert job is not None and job.delivered_at is not None
    assert job.last_error == "" and job.attempts >= 2  # the refused attempt(s), then this one
    reopened = await Store.open(store_url)  # the server is gone; the store still says so
    try:
        again = await reopened.call_webhooks.get(call_sid)
    finally:
        await reopened.close()
    assert again is not None and again.delivered_at is not None


async def test_forged_unsigned_tampered_or_stale_requests_fail_the_documented_check(
    receiver: Receiver,
) -> None:
    body = json.dumps({"event": "call.ended", "call_sid": "CA" + "0" * 32}).encode()
    now = time.time()
    signed = {"X-Slotline-Signature": signing.signature(SECRET, body, int(now))}
    assert verify(SECRET, signed, body, now=now)
    forged = {"X-Slotline-Signature": signing.signature("not-the-secret", body, int(now))}
    stale = {"X-Slotline-Signature": signing.signature(SECRET, body, int(now) - 301)}
    no_mac = {"X-Slotline-Signature": f"t={int(now)}"}
    assert not verify(SECRET, forged, body, now=now)
    assert not verify(SECRET, {}, body, now=now)
    assert not verify(SECRET, signed, body.replace(b"CA", b"CB"), now=now)
    assert not verify(SECRET, stale, body, now=now)
    assert not verify(SECRET, no_mac, body, now=now)
    # our own verifier agrees with the documented check on every variant
    for headers in (signed, forged, stale, no_mac):
        header = headers["X-Slotline-Signature"]
        assert signing.verify(SECRET, header, body, now=now) == verify(
            SECRET, headers, body, now=now)
    # and the receiver, over a socket, refuses the forged and the unsigned
    async with aiohttp.ClientSession() as http:
        for headers in (forged, {}):
            async with http.post(receiver.url, data=body, headers=headers) as response:
                assert response.status == 401
        async with http.post(receiver.url, data=body, headers=signed) as response:
            assert response.status == 200
    assert receiver.rejected == 2 and len(receiver.seen) == 1
