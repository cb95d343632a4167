"""E-mail confirmations and reminders over SMTP (``EmailSender`` with ``aiosmtplib``).

One connection per message: confirmations are rare next to calls, and a fresh connection
cannot have been dropped by the server's idle timeout. Transport security is ``use_ssl``
(implicit TLS, port 465) or ``starttls`` (``True`` requires it, ``None`` upgrades when the server
offers it, ``False`` never); a username enables AUTH.

Failures become ``ProviderError`` here, ``retryable`` as SMTP means it: 4xx replies are
transient (greylisting, mailbox busy, server shutting down) and worth a later try; 5xx are
permanent (no such user, relay denied, message refused) and are not. A server that cannot be
reached or drops the connection is retryable; no answer within ``timeout_s`` is
``ProviderTimeout``; a refused login is ``ProviderAuthError``. The recipient's address is
taken out of the server's text before it goes into an error message.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Final

import aiosmtplib

from slotline.providers.errors import ConfigError, ProviderAuthError, ProviderError, ProviderTimeout
from slotline.providers.notify import ics
from slotline.providers.notify.ics import Invitation

PROVIDER: Final = "smtp"


class SmtpEmail:
    """``EmailSender`` over one SMTP server; see the module doc."""

    def __init__(
        self,
        host: str,
        port: int,
        from_address: str,
        *,
        username: str | None = None,
        password: str | None = None,
        starttls: bool | None = None,
        use_ssl: bool = False,
        validate_certs: bool = True,
        timeout_s: float = 10.0,  # each SMTP step (connect, a command, the data)
    ) -> None:
        if "@" not in from_address:
            raise ConfigError("settings", "email.from_address", "is not an e-mail address")
        if use_ssl and starttls:
            raise ConfigError(
                "settings", "email.starttls", "cannot be combined with ssl (implicit TLS)"
            )
        if bool(username) != bool(password):
            raise ConfigError(
                "settings", "email.username", "and the SMTP password go together (set both)"
            )
        self._host, self._port = host, port
        self._from = from_address
        self._domain = from_address.rsplit("@", 1)[1]
        self._username, self._password = username or None, password or None
        self._starttls = False if use_ssl else starttls
        self._use_ssl = use_ssl
        self._validate_certs = validate_certs
        self._timeout_s = timeout_s

    async def send_email(self, to: str, subject: str, body: str) -> str:
        """Hand one plain-text message to the server; returns its ``Message-ID``."""
        return await self._send(to, subject, body, None)

    async def send_invitation(
        self, to: str, subject: str, body: str, invitation: Invitation
    ) -> str:
        """The text plus the invitation (``InvitationSender``): a ``text/calendar;
        method=REQUEST`` alternative that mail clients show as an invitation, and the same as
        ``invite.ics``. The organizer is this sender's address."""
        return await self._send(to, subject, body, ics.render(invitation, self._from))

    async def _send(self, to: str, subject: str, body: str, calendar: str | None) -> str:
        message_id = make_msgid(domain=self._domain)  # the domain given: no DNS lookup here
        try:
            message = EmailMessage()
            message["From"] = self._from
            message["To"] = to
            message["Subject"] = subject
            message["Date"] = format_datetime(datetime.now(UTC))
            message["Message-ID"] = message_id
            message.set_content(body)
            if calendar is not None:
                message.add_alternative(calendar, subtype="calendar",
                                        params={"method": "REQUEST"})
                message.make_mixed()
                message.add_attachment(calendar.encode("utf-8"), maintype="application",
                                       subtype="ics", filename="invite.ics")
        except (ValueError, TypeError) as exc:  # a line break in a header, a malformed address
            raise ProviderError(
                PROVIDER, f"cannot build the message: {exc}", retryable=False
            ) from None
        if "@" not in to:
            raise ProviderError(PROVIDER, "the recipient is not an e-mail address", retryable=False)
        try:
            await aiosmtplib.send(
                message,
                hostname=self._host,
                port=self._port,
                username=self._username,
                password=self._password,
                use_tls=self._use_ssl,
                start_tls=self._starttls,
                validate_certs=self._validate_certs,
                timeout=self._timeout_s,
            )
        except aiosmtplib.SMTPException as exc:
            raise _mapped(exc, to) from None
        except OSError as exc:  # below aiosmtplib: DNS, TLS handshake, socket errors
            raise ProviderError(
                PROVIDER, f"{self._where}: {type(exc).__name__}: {exc}", retryable=True
            ) from None
        return message_id

    @property
    def _where(self) -> str:
        return f"{self._host}:{self._port}"


def _mapped(exc: aiosmtplib.SMTPException, to: str) -> ProviderError:
    """One aiosmtplib exception as the Slotline error it means (see the module doc)."""
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        return ProviderAuthError(
            PROVIDER, f"login refused: {exc.code} {exc.message} (check the SMTP credentials)"
        )
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        first = exc.recipients[0] if exc.recipients else None
        code = first.code if first is not None else 550
        text = first.message if first is not None else "recipient refused"
        return _by_code("recipient refused", code, text, to)
    if isinstance(exc, aiosmtplib.SMTPResponseException):  # sender, data, HELO, greeting
        return _by_code(type(exc).__name__, exc.code, exc.message, to)
    if isinstance(exc, aiosmtplib.SMTPTimeoutError):
        return ProviderTimeout(PROVIDER, f"no answer in time: {exc}")
    if isinstance(exc, aiosmtplib.SMTPConnectError | aiosmtplib.SMTPServerDisconnected):
        return ProviderError(PROVIDER, f"connection failed: {exc}", retryable=True)
    # What is left is the server lacking what the settings ask for (STARTTLS required but not
    # offered, no AUTH mechanism in common): a configuration problem a retry will not fix.
    return ProviderError(PROVIDER, f"{type(exc).__name__}: {exc}", retryable=False)


def _by_code(what: str, code: int, text: str, to: str) -> ProviderError:
    """SMTP reply classes: 5xx permanent, anything else (4xx, or no code) worth a retry."""
    clean = text.replace(to, "<recipient>") if to else text
    return ProviderError(PROVIDER, f"{what}: {code} {clean}", retryable=not 500 <= code < 600)
