"""SMS confirmations and reminders through Twilio Messages (``SmsSender`` over ``TwilioRest``).

The sender is the configured ``twilio.from_number``: a Twilio number, or a Messaging Service
SID (``MG…``) that lets Twilio pick one. A send is a create, so it is never retried here (see
``providers.telephony.twilio_rest``); the failure goes back with ``retryable`` set for the
caller's job queue to decide.
"""

from __future__ import annotations

from slotline.providers.errors import ConfigError
from slotline.providers.telephony.twilio_rest import TwilioRest


class TwilioSms:
    """``SmsSender`` on a shared ``TwilioRest`` client (whose lifetime the caller owns)."""

    def __init__(
        self, rest: TwilioRest, from_number: str, *, status_callback: str | None = None
    ) -> None:
        if not from_number.strip():
            raise ConfigError(
                "settings", "twilio.from_number",
                "is empty; SMS needs a Twilio number or a Messaging Service SID to send from",
            )
        self._rest = rest
        self._from = from_number.strip()
        self._status_callback = status_callback

    async def send_sms(self, to: str, body: str) -> str:
        return await self._rest.send_sms(
            to, self._from, body, status_callback=self._status_callback
        )
