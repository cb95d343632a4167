"""The notification seam: what confirmations and reminders need from a channel.

Both raise ``providers.errors.ProviderError`` (``retryable`` set) when the message could not be
handed over; a returned id means the vendor accepted it.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from slotline.providers.notify.ics import Invitation


class SmsSender(Protocol):
    async def send_sms(self, to: str, body: str) -> str:
        """Send one text message; returns the vendor's message id (Twilio ``SM…`` sid)."""
        ...


class EmailSender(Protocol):
    async def send_email(self, to: str, subject: str, body: str) -> str:
        """Send one plain-text e-mail; returns its ``Message-ID``."""
        ...


@runtime_checkable
class InvitationSender(Protocol):
    """An e-mail channel that can carry a calendar invitation (``providers.notify.ics``)."""

    async def send_invitation(
        self, to: str, subject: str, body: str, invitation: Invitation
    ) -> str:
        """Send the text with the invitation as its ``text/calendar; method=REQUEST`` part
        (and as ``invite.ics``); returns its ``Message-ID``."""
        ...
