"""Notifications: e-mail through a real SMTP server (``aiosmtpd`` on 127.0.0.1, port 0) and SMS
through the Twilio emulator — delivered, refused (permanent vs transient), server down, login."""

from __future__ import annotations

import asyncio
import email
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from email.message import Message
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

from slotline.providers.emulators.twilio import TwilioEmulator
from slotline.providers.errors import ConfigError, ProviderAuthError, ProviderError, ProviderTimeout
from slotline.providers.notify.base import EmailSender, SmsSender
from slotline.providers.notify.email import SmtpEmail
from slotline.providers.notify.sms import TwilioSms
from slotline.providers.telephony.twilio_rest import TwilioRest

SENDER = "bookings@clinic.example"
RECIPIENT = "pat.doe@patients.example"
USER, PASSWORD = "slotline", "s3cret"


@dataclass
class Mailbox:
    """An aiosmtpd handler: records what it accepts; ``rcpt_reply`` refuses every recipient."""

    rcpt_reply: str | None = None
    received: list[Message] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)

    async def handle_RCPT(  # aiosmtpd's hook names
        self, server: SMTP, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if self.rcpt_reply is not None:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Any, envelope: Any) -> str:
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        self.received.append(email.message_from_bytes(envelope.content))
        return "250 Message accepted for delivery"


def _login(server: SMTP, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
        USER.encode(), PASSWORD.encode(),
    )
    return AuthResult(success=ok, handled=False)  # not handled: aiosmtpd answers 535 itself


async def serve(mailbox: Mailbox, **smtp: Any) -> asyncio.Server:
    """A real SMTP server on this test's loop, on a free port of 127.0.0.1."""
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: SMTP(mailbox, hostname="mx.test", **smtp), "127.0.0.1", 0
    )


def port_of(server: asyncio.Server) -> int:
    return int(server.sockets[0].getsockname()[1])


@pytest.fixture
async def mailbox() -> AsyncIterator[tuple[Mailbox, int]]:
    box = Mailbox()
    server = await serve(box)
    yield box, port_of(server)
    server.close()
    await server.wait_closed()


async def test_an_email_is_delivered_with_its_headers_and_message_id(
    mailbox: tuple[Mailbox, int],
) -> None:
    box, port = mailbox
    sender: EmailSender = SmtpEmail("127.0.0.1", port, SENDER, timeout_s=2)

    message_id = await sender.send_email(RECIPIENT, "Your appointment", "Tuesday 3 pm.\n")

    assert box.envelopes == [(SENDER, [RECIPIENT])]
    [message] = box.received
    assert (message["From"], message["To"], message["Subject"]) == (
        SENDER, RECIPIENT, "Your appointment",
    )
    assert message["Message-ID"] == message_id and message_id.endswith("@clinic.example>")
    payload = message.get_payload(decode=True)
    assert isinstance(payload, bytes) and payload.rstrip() == b"Tuesday 3 pm."


async def test_a_recipient_refused_with_550_is_not_retryable() -> None:
    server = await serve(Mailbox(rcpt_reply=f"550 5.1.1 <{RECIPIENT}>: user unknown"))
    try:
        with pytest.raises(ProviderError) as caught:
            await SmtpEmail("127.0.0.1", port_of(server), SENDER).send_email(RECIPIENT, "s", "b")
    finally:
        server.close()

    assert not caught.value.retryable and "550" in str(caught.value)
    assert RECIPIENT not in str(caught.value)  # the address is masked out of the message


async def test_a_recipient_deferred_with_451_is_retryable() -> None:
    server = await serve(Mailbox(rcpt_reply="451 4.7.1 greylisted, try again later"))
    try:
        with pytest.raises(ProviderError) as caught:
            await SmtpEmail("127.0.0.1", port_of(server), SENDER).send_email(RECIPIENT, "s", "b")
    finally:
        server.close()

    assert caught.value.retryable and "451" in str(caught.value)


async def test_a_server_that_is_down_is_a_retryable_error() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    with pytest.raises(ProviderError) as caught:
        await SmtpEmail("127.0.0.1", port, SENDER, timeout_s=2).send_email(RECIPIENT, "s", "b")

    assert caught.value.retryable and not isinstance(caught.value, ProviderTimeout)


async def test_login_with_the_right_password_delivers_and_a_wrong_one_is_an_auth_error() -> None:
    box = Mailbox()
    server = await serve(box, authenticator=_login, auth_require_tls=False)
    port = port_of(server)
    try:
        good = SmtpEmail("127.0.0.1", port, SENDER, username=USER, password=PASSWORD)
        await good.send_email(RECIPIENT, "s", "b")
        bad = SmtpEmail("127.0.0.1", port, SENDER, username=USER, password="guess")
        with pytest.raises(ProviderAuthError) as caught:
            await bad.send_email(RECIPIENT, "s", "b")
    finally:
        server.close()

    assert len(box.received) == 1 and "guess" not in str(caught.value)


async def test_required_starttls_on_a_server_without_it_fails_without_sending(
    mailbox: tuple[Mailbox, int],
) -> None:
    box, port = mailbox

    with pytest.raises(ProviderError) as caught:
        await SmtpEmail("127.0.0.1", port, SENDER, starttls=True).send_email(RECIPIENT, "s", "b")

    assert not caught.value.retryable and box.received == []


async def test_a_line_break_in_the_subject_is_refused_before_sending(
    mailbox: tuple[Mailbox, int],
) -> None:
    box, port = mailbox

    with pytest.raises(ProviderError) as caught:
        await SmtpEmail("127.0.0.1", port, SENDER).send_email(
            RECIPIENT, "Hi\r\nBcc: everyone@example.com", "b"
        )

    assert not caught.value.retryable and box.received == []


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"from_address": "bookings"}, "email.from_address"),
        ({"use_ssl": True, "starttls": True}, "email.starttls"),
        ({"username": USER}, "email.username"),
    ],
)
def test_contradictory_smtp_settings_fail_at_construction(kwargs: dict[str, Any], key: str) -> None:
    settings: dict[str, Any] = {"from_address": SENDER, **kwargs}

    with pytest.raises(ConfigError) as caught:
        SmtpEmail("127.0.0.1", 25, **settings)

    assert caught.value.key == key


async def test_twilio_sms_sends_through_the_emulator_and_needs_a_sender() -> None:
    async with TwilioEmulator() as emu:
        async with TwilioRest(emu.account_sid, emu.auth_token, base_url=emu.base_url) as rest:
            with pytest.raises(ConfigError):
                TwilioSms(rest, " ")
            sms: SmsSender = TwilioSms(rest, "+15005550006")
            sid = await sms.send_sms("+14155550123", "Booked: Tue 3 pm")

    assert [(m.sid, m.body) for m in emu.messages] == [(sid, "Booked: Tue 3 pm")]
