"""Call control over the Twilio REST API for one live call: the flow's ``send_sms`` and
``transfer`` nodes (``agent.flow.responder.CallControl``).

A transfer redirects the live call to ``<Dial>NUMBER</Dial>`` TwiML: Twilio leaves the media
stream and rings the number (the caller hears ringing, then the person). An SMS without a
``to`` goes to the caller, whose number the inbound webhook passed as the ``user_phone``
stream parameter.
"""

from __future__ import annotations

import logging

from slotline.agent.flow.messages import SendSms, Transfer
from slotline.agent.logs import mask
from slotline.providers.errors import ProviderError
from slotline.providers.telephony.twilio_rest import TwilioRest
from slotline.providers.telephony.twilio_webhook import dial_twiml

log = logging.getLogger(__name__)


class TwilioCallControl:
    def __init__(
        self, rest: TwilioRest, *, call_sid: str, from_number: str, caller_number: str
    ) -> None:
        self._rest = rest
        self._call_sid = call_sid
        self._from = from_number
        self._caller = caller_number

    async def send_sms(self, request: SendSms) -> None:
        to = request.to or self._caller
        if not to:
            raise ProviderError("twilio", "no number to text: the caller's number is unknown")
        sid = await self._rest.send_sms(to, self._from, request.text)
        log.info("call_sid=%s SMS %s sent to %s", self._call_sid, sid, mask(to))

    async def transfer(self, request: Transfer) -> None:
        await self._rest.redirect(self._call_sid, dial_twiml(request.number))
        log.info("call_sid=%s transferred to %s", self._call_sid, mask(request.number))
