"""Confirmations and call control, end to end: a real server, the Twilio REST emulator, a real
SMTP server (``aiosmtpd``) and the simulated caller speaking recorded audio.

Each call comes in the way Twilio brings one: a signed ``POST /twilio/voice`` (its ``From``
becomes the flow's ``user_phone``), then the signed media WebSocket the TwiML names. The same
Twilio credentials that sign those requests let the server text the caller and redirect the call
over REST, to the emulator.
"""

from __future__ import annotations

import asyncio
import email
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from email.message import Message
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from aiohttp.payload import Payload
from aiosmtpd.smtp import SMTP

from slotline.agent.sim.caller import CallerReport, run_caller
from slotline.agent.sim.demo import DEMO_SCRIPT, caller_wav, fetch_stream
from slotline.agent.store import ReminderJob
from slotline.providers.emulators.twilio import TwilioEmulator
from slotline.providers.telephony.twilio_webhook import sign
from tests.e2e.conftest import Server, call_tasks, running_server
from tests.until import until

EXAMPLES = Path(__file__).resolve().parents[2] / "config" / "examples.yaml"
CALLER_NUMBER = "+15005550006"  # the ``From`` that agent.sim.demo.fetch_stream posts
BUSINESS_NUMBER = "+15005550001"
SENDER = "bookings@slotline.example"
ON_CALL = "+15005550007"  # support_callback's transfer number


@dataclass
class Mailbox:
    """An aiosmtpd handler keeping every message it accepts."""

    received: list[Message] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Any, envelope: Any) -> str:  # noqa: N802
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        self.received.append(email.message_from_bytes(envelope.content))
        return "250 Message accepted for delivery"


def twilio_signer(auth_token: str) -> aiohttp.ClientMiddlewareType:
    """A client middleware that signs form POSTs with ``X-Twilio-Signature``, as Twilio does."""

    async def middleware(
        request: aiohttp.ClientRequest,
        handler: Callable[[aiohttp.ClientRequest], Awaitable[aiohttp.ClientResponse]],
    ) -> aiohttp.ClientResponse:
        if request.method == "POST" and isinstance(request.body, Payload):
            raw = await request.body.as_bytes()
            params = dict(parse_qsl(raw.decode(), keep_blank_values=True))
            request.headers["X-Twilio-Signature"] = sign(auth_token, str(request.url), params)
        return await handler(request)

    return middleware


@pytest.fixture
async def twilio() -> AsyncIterator[TwilioEmulator]:
    async with TwilioEmulator() as emulator:
        yield emulator


@pytest.fixture
async def mailbox() -> AsyncIterator[tuple[Mailbox, int]]:
    box = Mailbox()
    loop = asyncio.get_running_loop()
    smtp = await loop.create_server(lambda: SMTP(box, hostname="mx.test"), "127.0.0.1", 0)
    try:
        yield box, int(smtp.sockets[0].getsockname()[1])
    finally:
        smtp.close()
        await smtp.wait_closed()


async def serve(
    twilio: TwilioEmulator, env: Mapping[str, str], config: Path
) -> tuple[aiohttp.web.AppRunner, Server]:
    """A server whose Twilio account is the emulator's (REST calls and webhook signatures)."""
    settings = {
        "SLOTLINE_TWILIO__BASE_URL": twilio.base_url,
        "SLOTLINE_TWILIO__FROM_NUMBER": BUSINESS_NUMBER,
        **env,
    }
    secrets = {"TWILIO_ACCOUNT_SID": twilio.account_sid, "TWILIO_AUTH_TOKEN": twilio.auth_token}
    return await running_server(settings, secrets, config=config)


async def phone_in(server: Server, twilio: TwilioEmulator, stems: list[str]) -> CallerReport:
    """An inbound call as Twilio places it: the signed webhook, then the signed media stream.
    The emulator knows the live call (its ``callSid``), as Twilio knows every call, so REST
    updates of it are accepted; ending it through the API stops the caller's stream."""
    signer = twilio_signer(twilio.auth_token)
    async with aiohttp.ClientSession(middlewares=[signer]) as http:
        sid = twilio.register_call(to=BUSINESS_NUMBER, from_=CALLER_NUMBER)
        url, parameters = await fetch_stream(http, server.url, call_sid=sid)
        assert parameters["user_phone"] == CALLER_NUMBER
        signed = {"X-Twilio-Signature": sign(twilio.auth_token, url, {})}
        script = [caller_wav(stem) for stem in stems]
        return await run_caller(url, script, custom_parameters=parameters, headers=signed,
                                session=http, call_sid=sid, hangup=twilio.call(sid).ended)


async def test_a_booking_by_voice_is_confirmed_by_sms_and_email_with_reminders(
    twilio: TwilioEmulator, mailbox: tuple[Mailbox, int], tmp_path: Path
) -> None:
    box, smtp_port = mailbox
    # A list cannot be one environment variable: the reminders come from a file.
    config = tmp_path / "slotline.yaml"
    config.write_text("booking_actions:\n  demo:\n    confirmations: {reminders: [24h, 1h]}\n")
    env = {
        "SLOTLINE_BOOKING_ACTIONS__DEMO__CONFIRMATIONS__SMS": "true",
        "SLOTLINE_BOOKING_ACTIONS__DEMO__CONFIRMATIONS__EMAIL": "true",
        "SLOTLINE_EMAIL__SMTP_HOST": "127.0.0.1",
        "SLOTLINE_EMAIL__SMTP_PORT": str(smtp_port),
        "SLOTLINE_EMAIL__SECURITY": "none",
        "SLOTLINE_EMAIL__FROM_ADDRESS": SENDER,
    }
    runner, server = await serve(twilio, env, config)
    try:
        # the demo call, the e-mail question answered with an address instead of "no thanks"
        stems = [u.stem if u.stem != "no" else "email_john" for u in DEMO_SCRIPT]
        report = await phone_in(server, twilio, stems)
        assert report.errors == ()
        # the goodbye heard, the server ended the call through Twilio, which stopped the stream
        assert report.hung_up_early and twilio.call(report.call_sid).status == "completed"
        goodbye = report.agent_turns[-1]
        assert not goodbye.interrupted and goodbye.heard_ms == goodbye.audio_ms  # all heard
        hangup = f"/2010-04-01/Accounts/{twilio.account_sid}/Calls/{report.call_sid}.json"
        assert [r.path for r in twilio.requests if r.path == hangup] == [hangup]  # once
        record = server.deps.call_log.get(report.call_sid)
        assert record is not None and record.errors == [] and record.node == "goodbye"
        assert record.variables["user_email"] == "john.smith@example.com"
        store = server.deps.store
        assert store is not None
        [booking] = await store.bookings.for_call(report.call_sid)
        assert booking.status == "confirmed" and booking.action == "demo"
        assert booking.start.astimezone(ZoneInfo("America/New_York")).hour == 15
        assert booking.attendee.phone == CALLER_NUMBER  # the From of the inbound webhook
        assert booking.attendee.email == "john.smith@example.com"  # asked before booking

        async def jobs_by_kind() -> dict[str, ReminderJob]:
            found = await store.reminders.for_booking(booking.id)
            return {job.kind.partition("@")[0]: job for job in found}  # "24h:sms", ...

        async def confirmations_sent() -> bool:
            jobs = await jobs_by_kind()
            return all(
                kind in jobs and jobs[kind].sent_at is not None
                for kind in ("confirmation:sms", "confirmation:email")
            )

        await until(confirmations_sent)
        [sms] = twilio.messages
        assert (sms.to, sms.from_) == (CALLER_NUMBER, BUSINESS_NUMBER)
        assert "at 3 pm" in sms.body and booking.id in sms.body, sms.body
        assert box.envelopes == [(SENDER, ["john.smith@example.com"])]
        [message] = box.received
        # text, an invitation (text/calendar) and invite.ics: the text part says it
        [text] = [part for part in message.walk() if part.get_content_type() == "text/plain"]
        body = text.get_payload(decode=True)
        assert isinstance(body, bytes) and b"at 3 pm" in body and booking.id.encode() in body

        jobs = await jobs_by_kind()
        offsets = {"24h": timedelta(hours=24), "1h": timedelta(hours=1)}
        ahead = [name for name, before in offsets.items()
                 if booking.start - before > booking.created_at]
        assert "1h" in ahead  # the demo books days ahead
        reminders = {kind: job for kind, job in jobs.items()
                     if not kind.startswith("confirmation")}
        assert set(reminders) == {f"{name}:{ch}" for name in ahead for ch in ("sms", "email")}
        for kind, job in reminders.items():
            assert job.sent_at is None
            assert job.due_at == booking.start - offsets[kind.partition(":")[0]]
        assert len(twilio.messages) == 1 and len(box.received) == 1  # nothing sent twice
        assert call_tasks() == []
    finally:
        await runner.cleanup()


async def test_an_urgent_caller_is_transferred_by_redirecting_the_live_call(
    twilio: TwilioEmulator,
) -> None:
    runner, server = await serve(twilio, {"SLOTLINE_FLOW": "support_callback"}, EXAMPLES)
    try:
        report = await phone_in(server, twilio, ["urgent"])
        assert report.errors == ()
        record = server.deps.call_log.get(report.call_sid)
        assert record is not None and record.flow == "support_callback"
        assert [t.text for t in record.turns if t.role == "caller"] == ["this is urgent"]
        assert record.node == "to_on_call" and record.errors == []
        call = twilio.call(report.call_sid)
        assert call.redirects == [f"<Response><Dial>{ON_CALL}</Dial></Response>"]
        assert call.twiml is not None and f"<Dial>{ON_CALL}</Dial>" in call.twiml
        path = f"/2010-04-01/Accounts/{twilio.account_sid}/Calls/{report.call_sid}.json"
        assert [(r.method, r.path, r.status) for r in twilio.requests] == [("POST", path, 200)]
        assert twilio.messages == [] and record.bookings == []
        assert call_tasks() == []
    finally:
        await runner.cleanup()


async def test_when_twilio_refuses_the_transfer_and_the_hang_up_the_server_closes_the_stream(
    twilio: TwilioEmulator,
) -> None:
    runner, server = await serve(twilio, {"SLOTLINE_FLOW": "support_callback"}, EXAMPLES)
    try:
        twilio.fail_next(401, count=2)  # e.g. a rotated auth token: the redirect, the hang-up
        report = await phone_in(server, twilio, ["urgent"])
        assert report.errors == () and report.closed_by == "server"  # the fallback ended it
        record = server.deps.call_log.get(report.call_sid)
        assert record is not None and record.status == "failed"
        assert [e["provider"] for e in record.errors] == ["twilio", "twilio"]
        assert server.deps.metrics.provider_errors.values["twilio"] == 2
        assert twilio.call(report.call_sid).status == "in-progress"  # nothing reached Twilio
        assert call_tasks() == []
    finally:
        await runner.cleanup()
