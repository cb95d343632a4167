"""The TwiML of an outbound call: the same ``<Connect><Stream>`` an inbound call gets, with the
attempt's flow and the contact's variables as ``<Parameter>``s (so an answered outbound call is
the same call session and flow as an inbound one, with the callee in the caller's seat), and
the voicemail stream a call is redirected to when AMD hears a machine. Both carry the call's
stream token (``agent.server.stream_token``) when one is given: without it, a server that checks
tokens refuses the stream.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from slotline.agent.flow.templates import render
from slotline.agent.store.dialer_records import AttemptRow
from slotline.providers.telephony.twilio_webhook import stream_twiml

# Parameters the call path itself reads; a contact column of the same name cannot set them.
RESERVED: Final = frozenset({
    "flow", "direction", "attempt", "campaign", "contact", "user_phone", "mode",
    "voicemail_message", "token",
})
# Twilio takes a redirect's inline TwiML up to 4000 characters, and a <Parameter> set of a
# fetched TwiML is best kept small too: a contact's variables beyond this are left out.
_MAX_VARIABLE_CHARS: Final = 2400
_MAX_VALUE_CHARS: Final = 500


def stream_parameters(attempt: AttemptRow) -> dict[str, str]:
    """What the media session of this attempt is told (``start.customParameters``)."""
    parameters = {
        "flow": attempt.flow,
        "direction": "outbound",
        "attempt": attempt.id,
        "campaign": attempt.campaign_id,
        "contact": attempt.contact_id,
        "user_phone": attempt.phone,
    }
    used = 0
    for name, value in sorted(attempt.variables.items()):
        if name in RESERVED or not value:
            continue
        value = value[:_MAX_VALUE_CHARS]
        used += len(name) + len(value)
        if used > _MAX_VARIABLE_CHARS:
            break
        parameters[name] = value
    return {k: v for k, v in parameters.items() if v}


def outbound_twiml(
    stream_url: str, attempt: AttemptRow, status_callback: str | None, *, token: str = ""
) -> str:
    parameters = stream_parameters(attempt)
    if token:
        parameters["token"] = token
    return stream_twiml(stream_url, parameters, status_callback=status_callback)


def voicemail_text(template: str, variables: Mapping[str, str]) -> str:
    """The campaign's voicemail message with the contact's variables filled in."""
    return render(template, variables).strip()


def voicemail_twiml(
    stream_url: str, attempt: AttemptRow, message: str, *, token: str = ""
) -> str:
    """Where a call goes when AMD heard the machine's beep: a stream that only leaves the
    message (``mode`` voicemail), then hangs up."""
    parameters = {
        "direction": "outbound",
        "attempt": attempt.id,
        "campaign": attempt.campaign_id,
        "contact": attempt.contact_id,
        "user_phone": attempt.phone,
        "mode": "voicemail",
        "voicemail_message": message,
        "token": token,
    }
    return stream_twiml(stream_url, {k: v for k, v in parameters.items() if v})
