"""What the emulated Twilio says to the app during a call, and how it reads the TwiML back.

- ``WebhookSender.send``: one signed request (``X-Twilio-Signature`` over the exact URL, query
  string included, plus the sorted form parameters; a GET carries them in the query string and
  is signed over that URL). A failure — refused, timed out, non-2xx — is logged and recorded on
  the call (``EmulatedCall.webhooks``), never raised: the app may be slow or down, and Twilio
  does not retry call webhooks by default.
- ``StatusCallbacks``: one call's status callbacks, posted in order by one task, with
  Twilio's parameters (``SequenceNumber`` 0, 1, 2 … per call; ``Timestamp`` in RFC 2822;
  ``CallDuration`` in seconds and ``Duration`` in billed minutes on the final one).
- ``plan_twiml``: pure; what the emulator does with a TwiML document (see ``TwimlPlan``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from types import MappingProxyType
from typing import Final, Literal
from urllib.parse import urlencode
from xml.etree import ElementTree

import aiohttp

from slotline.providers.emulators.twilio_call_state import EmulatedCall, WebhookAttempt
from slotline.providers.telephony.twilio_webhook import sign

logger = logging.getLogger(__name__)

API_VERSION: Final = "2010-04-01"
EVENTS: Final = ("initiated", "ringing", "answered", "completed")
# CallStatus of each event's callback; ``completed`` carries the call's final status instead
_EVENT_STATUS: Final = {"initiated": "initiated", "ringing": "ringing", "answered": "in-progress"}


class WebhookSender:
    """Signed requests to the app over one shared session (``OutboundCalls`` owns both)."""

    def __init__(self, session: aiohttp.ClientSession, auth_token: str) -> None:
        self._session, self._auth_token = session, auth_token

    async def send(
        self,
        call: EmulatedCall,
        kind: Literal["status", "amd", "twiml"],
        url: str,
        params: Mapping[str, str],
        method: str = "POST",
    ) -> str | None:
        """The answer's body on 2xx, else None (the failure is logged and recorded)."""
        get = method.upper() == "GET"
        target = url + ("&" if "?" in url else "?") + urlencode(params) if get else url
        signed: Mapping[str, str] = {} if get else params
        headers = {"X-Twilio-Signature": sign(self._auth_token, target, signed)}
        status: int | None = None
        body, error = "", None
        try:
            async with self._session.request(
                "GET" if get else "POST", target, data=None if get else dict(params),
                headers=headers,
            ) as response:  # fmt: skip
                status, body = response.status, await response.text()
        except (aiohttp.ClientError, TimeoutError) as exc:
            error = f"{type(exc).__name__}: {exc}"
        if status is not None and not 200 <= status < 300:
            error = f"HTTP {status}"
        call.webhooks.append(
            WebhookAttempt(kind, url, MappingProxyType(dict(params)), status, error)
        )
        if error is not None:
            logger.warning("%s webhook failed call_sid=%s: %s", kind, call.sid, error)
            return None
        return body


def _subscribed(call: EmulatedCall) -> frozenset[str]:
    """The ``StatusCallbackEvent``s (repeated, or space-separated as TwiML nouns take them);
    Twilio's default is ``completed`` alone."""
    raw = call.params.get("StatusCallbackEvent") or []
    values = [raw] if isinstance(raw, str) else [str(v) for v in raw]
    events = frozenset(word for value in values for word in value.split())
    return events or frozenset({"completed"})


class StatusCallbacks:
    """One call's status callbacks: ``emit`` now, posted in order by ``drain``."""

    def __init__(self, call: EmulatedCall, account_sid: str, sender: WebhookSender) -> None:
        self._call, self._account_sid, self._sender = call, account_sid, sender
        url = call.params.get("StatusCallback")
        self._url = str(url) if url else None
        self._events = _subscribed(call)
        self._method = str(call.params.get("StatusCallbackMethod", "POST"))
        self._queue: asyncio.Queue[dict[str, str] | None] = asyncio.Queue()
        self._sequence = 0

    def emit(self, event: str) -> None:
        """The call reached ``event`` (one of ``EVENTS``): queue its callback if asked for."""
        if self._url is None or event not in self._events:
            return
        call = self._call
        params = {
            "AccountSid": self._account_sid, "ApiVersion": API_VERSION, "CallSid": call.sid,
            "CallStatus": _EVENT_STATUS.get(event, call.status), "Called": call.to,
            "Caller": call.from_, "CallbackSource": "call-progress-events",
            "Direction": call.direction, "From": call.from_,
            "SequenceNumber": str(self._sequence), "Timestamp": format_datetime(datetime.now(UTC)),
            "To": call.to,
        }  # fmt: skip
        if event == "completed":
            params["CallDuration"] = str(call.duration_s or 0)
            params["Duration"] = str(call.billed_minutes)
        self._sequence += 1
        self._queue.put_nowait(params)

    def close(self) -> None:
        """No more events: ``drain`` returns once the queued ones are sent."""
        self._queue.put_nowait(None)

    async def drain(self) -> None:
        while (params := await self._queue.get()) is not None:
            assert self._url is not None  # only queued with a url
            await self._sender.send(self._call, "status", self._url, params, self._method)


# ---- TwiML ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StreamVerb:
    """A ``<Connect><Stream url>`` with its ``<Parameter>``s."""

    url: str
    parameters: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class TwimlPlan:
    """What one document does here. ``stream`` None: the call completes after it."""

    stream: StreamVerb | None
    unemulated: tuple[str, ...] = ()  # verbs the emulator does not play (the call completes)
    error: str | None = None  # the document is broken (Twilio's 12100), or its Stream url


def plan_twiml(document: str) -> TwimlPlan:
    """``<Connect><Stream>`` first → that stream (verbs after it run only once the app closes
    the socket; they are listed as not emulated). ``<Hangup/>`` first or no verb → complete.
    Any other first verb (``<Say>``, ``<Dial>``, ``<Pause>``, …) is not emulated."""
    try:
        root = ElementTree.fromstring(document)
    except ElementTree.ParseError as exc:
        return TwimlPlan(None, error=f"12100 Document parse failure: {exc}")
    if root.tag != "Response":
        return TwimlPlan(None, error=f"12100 Document parse failure: root is <{root.tag}>")
    verbs = list(root)
    if not verbs or verbs[0].tag == "Hangup":
        return TwimlPlan(None)
    first, rest = verbs[0], tuple(verb.tag for verb in verbs[1:])
    stream = first.find("Stream") if first.tag == "Connect" else None
    if stream is None:
        nouns = "".join(f"<{child.tag}>" for child in first)
        return TwimlPlan(None, unemulated=(f"<{first.tag}>{nouns}", *rest))
    url = stream.get("url", "")
    if not url.startswith(("ws://", "wss://")) or "?" in url:
        return TwimlPlan(None, error=f"<Stream> url must be ws(s):// without a query: {url!r}")
    parameters = {
        p.get("name", ""): p.get("value", "") for p in stream.iter("Parameter") if p.get("name")
    }
    return TwimlPlan(StreamVerb(url, MappingProxyType(parameters)), unemulated=rest)
