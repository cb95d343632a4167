"""A local Twilio REST (API 2010-04-01) server: Messages and Calls, checked against the spec.

What it serves (paths exactly as in the official OpenAPI document, ``twilio_api_v2010.json``):

    POST /2010-04-01/Accounts/{AccountSid}/Messages.json      CreateMessage → 201, status queued
    GET  /2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json FetchMessage (then status sent)
    POST /2010-04-01/Accounts/{AccountSid}/Calls.json         CreateCall → 201, status queued
    POST /2010-04-01/Accounts/{AccountSid}/Calls/{Sid}.json   UpdateCall (Status=completed|canceled,
                                                               or a redirect to Twiml/Url)
    GET  /2010-04-01/Accounts/{AccountSid}/Calls/{Sid}.json   FetchCall

Every request needs HTTP Basic ``AccountSid:AuthToken`` (else 401, Twilio code 20003). Every
form body is checked against its operation's ``application/x-www-form-urlencoded`` schema in the
spec, values coerced to the declared types first (``OpenApiOperation.check_form``). Errors
come in Twilio's shape ``{"code", "message", "more_info", "status"}`` with Twilio's codes where
Twilio documents one: 21604/21603/21602 (message To/From/Body missing), 21201/21213/21205 (call
To/From/Url missing), 21211 (To not a phone number), 21617 (body over 1600 characters), 21220
(redirecting an ended call), 20404 (unknown sid). Two checks are stricter than Twilio on
purpose, to catch adapter bugs: undeclared parameters (the real API ignores them) and values of
the wrong type are refused with 70002, Twilio's "request does not match the expected schema" code.

The emulator also stands in for Twilio's side of a live call: ``register_call`` makes an
inbound call known (a simulated caller's ``callSid``), and when the API ends it, its
``EmulatedCall.ended`` event is set, which the simulated caller (``agent.sim.caller.run_caller``'s
``hangup``) answers as Twilio does: ``stop`` on the media stream, then the socket closes.
A created (outbound) call is placed as Twilio places it — CPS queue, ringing, answer, TwiML,
media streams to the app, status and AMD callbacks — by ``twilio_outbound.OutboundCalls``;
``parties`` says who is at each number, ``cps`` is the account's calls per second.

Answers carry every property of the spec's ``api.v2010.account.message`` / ``.call`` schemas,
dates in RFC 2822 as Twilio writes them. Latency and faults come from ``HttpEmulator``.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any, Final

from aiohttp import web
from jsonschema import Draft202012Validator

from slotline.providers.emulators._http import HttpEmulator, json_response
from slotline.providers.emulators._openapi import OpenApiOperation, openapi_document
from slotline.providers.emulators.twilio_call_state import ENDED, record_status, utc_now
from slotline.providers.emulators.twilio_call_state import (
    EmulatedCall as EmulatedCall,  # re-exported
)
from slotline.providers.emulators.twilio_outbound import OutboundCalls
from slotline.providers.emulators.twilio_outbound import Party as Party  # re-exported

# The excerpt of the official document this emulator reads, shipped in the package
# (scripts/spec_excerpts.py cuts it from the whole spec, which tests may pass instead).
DEFAULT_SPEC_PATH = Path(__file__).with_name("specs") / "twilio/twilio_api_v2010.json"
DEFAULT_ACCOUNT_SID: Final = "AC" + "0" * 32
DEFAULT_AUTH_TOKEN: Final = "emulator-auth-token"
SCHEMA_ERROR_CODE: Final = 70002
ACCOUNT: Final = "/2010-04-01/Accounts/{AccountSid}"
MESSAGES: Final = ACCOUNT + "/Messages.json"
MESSAGE: Final = ACCOUNT + "/Messages/{Sid}.json"
CALLS: Final = ACCOUNT + "/Calls.json"
CALL: Final = ACCOUNT + "/Calls/{Sid}.json"
_MAX_BODY_CHARS: Final = 1600

# Per operation: (any one of these parameters, non-empty) else (code, message) — Twilio's
# checks, including the either/or ones the spec's ``required`` list cannot express.
_PRESENCE: Final[Mapping[str, tuple[tuple[tuple[str, ...], int, str], ...]]] = {
    "CreateMessage": (
        (("To",), 21604, "A 'To' phone number is required."),
        (("From", "MessagingServiceSid"), 21603, "A 'From' phone number is required."),
        (("Body", "MediaUrl", "ContentSid"), 21602, "Message body is required."),
    ),
    "CreateCall": (
        (("To",), 21201, "No 'To' number is specified"),
        (("From",), 21213, "No 'From' number is specified"),
        (("Url", "Twiml", "ApplicationSid"), 21205, "Url parameter is required."),
    ),
    "UpdateCall": (),
}


_Operation = Callable[["web.Request", dict[str, Any]], Awaitable["web.Response"]]
_Handler = Callable[["web.Request"], Awaitable["web.Response"]]


class TwilioFault(Exception):
    """A request the emulator refuses, answered in Twilio's error shape."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def error_body(status: int, code: int, message: str) -> dict[str, Any]:
    more_info = f"https://www.twilio.com/docs/errors/{code}"
    return {"code": code, "message": message, "more_info": more_info, "status": status}


# ---- the official spec ------------------------------------------------------------------------


def _operation(template: str, spec_path: Path) -> OpenApiOperation:
    """The ``POST template`` operation of the spec (its form schema, closed to extra fields)."""
    return openapi_document(spec_path).operation("POST", template)


def parse_form(operation: OpenApiOperation, form: Mapping[str, list[str]]) -> dict[str, Any]:
    """The form as the JSON the schema describes; ``TwilioFault`` if it does not conform."""
    for names, code, message in _PRESENCE[operation.operation_id]:
        if not any(v for name in names for v in form.get(name, [])):
            raise TwilioFault(400, code, message)
    typed, problems = operation.check_form(form)
    if problems:
        detail = f"Invalid parameters for {operation.operation_id}: {'; '.join(problems)}"
        raise TwilioFault(400, SCHEMA_ERROR_CODE, detail)
    return typed


def response_validator(
    schema_name: str, spec_path: Path = DEFAULT_SPEC_PATH
) -> Draft202012Validator:
    """A validator for ``#/components/schemas/<schema_name>`` (``nullable`` made JSON Schema)."""
    return openapi_document(spec_path).schema_validator(schema_name)


# ---- state ------------------------------------------------------------------------------------


def _rfc2822(moment: datetime | None) -> str | None:
    return format_datetime(moment) if moment is not None else None


@dataclass(slots=True)
class EmulatedMessage:
    sid: str
    to: str
    from_: str | None
    body: str
    messaging_service_sid: str | None
    status: str = "queued"
    params: dict[str, Any] = field(default_factory=dict)  # the validated form, as sent
    date_created: datetime = field(default_factory=utc_now)
    date_sent: datetime | None = None


def _is_number(value: str) -> bool:
    if ":" in value:  # client:alice, sip:…, whatsapp:+1…
        return True
    digits = value[1:]
    return value.startswith("+") and digits.isdigit() and 7 <= len(digits) <= 15


def _formatted(number: str) -> str:
    if number.startswith("+1") and len(number) == 12 and number[1:].isdigit():
        return f"({number[2:5]}) {number[5:8]}-{number[8:]}"
    return number


# ---- the server -------------------------------------------------------------------------------


class TwilioEmulator(HttpEmulator):
    """``async with TwilioEmulator() as emu:`` then ``TwilioRest(emu.account_sid,
    emu.auth_token, base_url=emu.base_url)``. See the module doc."""

    def __init__(
        self,
        account_sid: str = DEFAULT_ACCOUNT_SID,
        auth_token: str = DEFAULT_AUTH_TOKEN,
        *,
        spec_path: Path = DEFAULT_SPEC_PATH,
        host: str = "127.0.0.1",
        port: int = 0,
        latency_ms: float = 0.0,
        jitter_ms: float = 0.0,
        seed: int = 0,
        cps: float = 1.0,
        parties: Callable[[str], Party] | None = None,
    ) -> None:
        """``cps``: the account's calls per second (Twilio queues the excess); ``parties``:
        who is at a ``To`` number (None: everyone answers and stays silent)."""
        super().__init__(
            host=host, port=port, latency_ms=latency_ms, jitter_ms=jitter_ms, seed=seed
        )
        self.account_sid = account_sid
        self.auth_token = auth_token
        self._spec_path = spec_path
        self._messages: dict[str, EmulatedMessage] = {}
        self._calls: dict[str, EmulatedCall] = {}
        self._outbound = OutboundCalls(account_sid, auth_token, cps=cps, parties=parties)

    async def start(self) -> None:
        await super().start()
        await self._outbound.start()

    async def aclose(self) -> None:
        await self._outbound.aclose()  # calls first: their streams and callbacks stop
        await super().aclose()

    @property
    def max_concurrent(self) -> int:
        """The most outbound calls live at once so far (dispatched: dialing, ringing or in
        progress)."""
        return self._outbound.max_concurrent

    @property
    def messages(self) -> list[EmulatedMessage]:
        return list(self._messages.values())

    @property
    def calls(self) -> list[EmulatedCall]:
        return list(self._calls.values())

    def call(self, sid: str) -> EmulatedCall:
        return self._calls[sid]

    def register_call(
        self, *, to: str, from_: str, status: str = "in-progress", direction: str = "inbound",
        sid: str | None = None,
    ) -> str:
        """A call Twilio knows of without a REST create (an inbound call); returns its sid.
        ``sid``: the call's sid when another party chose it (a simulated caller's ``callSid``)."""
        call = EmulatedCall(sid or f"CA{uuid.uuid4().hex}", to, from_, status, direction)
        if status == "in-progress":
            call.start_time, call.answered_at_s = call.date_created, call.created_at_s
        self._calls[call.sid] = call
        return call.sid

    def set_call_status(self, sid: str, status: str) -> None:
        """Move a call as the network would (ringing, in-progress, busy, …)."""
        record_status(self._calls[sid], status)

    def _error_body(self, status: int) -> object:
        code = {429: 20429, 503: 20503}.get(status, 20500 if status >= 500 else status)
        return error_body(status, code, f"injected failure {status}")

    def _routes(self, app: web.Application) -> None:
        for template in (MESSAGES, CALLS, CALL):  # an unreadable spec fails here, at start
            _operation(template, self._spec_path)
        app.router.add_post(MESSAGES, self._guard(self._create_message, MESSAGES))
        app.router.add_get(MESSAGE, self._guard(self._fetch_message))
        app.router.add_post(CALLS, self._guard(self._create_call, CALLS))
        app.router.add_post(CALL, self._guard(self._update_call, CALL))
        app.router.add_get(CALL, self._guard(self._fetch_call))

    def _guard(self, handler: _Operation, form_of: str | None = None) -> _Handler:
        """Auth, the account in the path, the form against the spec; faults as Twilio errors."""

        async def guarded(request: web.Request) -> web.Response:
            try:
                self._authenticate(request)
                form: dict[str, Any] = {}
                if form_of is not None:
                    posted = await request.post()
                    raw = {key: [str(v) for v in posted.getall(key)] for key in posted}
                    form = parse_form(_operation(form_of, self._spec_path), raw)
                return await handler(request, form)
            except TwilioFault as fault:
                body = error_body(fault.status, fault.code, fault.message)
                response = json_response(body, fault.status)
                if fault.status == 401:
                    response.headers["WWW-Authenticate"] = 'Basic realm="Twilio API"'
                return response

        return guarded

    def _authenticate(self, request: web.Request) -> None:
        header = request.headers.get("Authorization", "")
        scheme, _, encoded = header.partition(" ")
        try:
            user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            user = password = ""
        ok = scheme.lower() == "basic" and hmac.compare_digest(
            f"{user}:{password}".encode(), f"{self.account_sid}:{self.auth_token}".encode()
        )
        if not ok or request.match_info["AccountSid"] != self.account_sid:
            raise TwilioFault(401, 20003, "Authenticate")

    def _not_found(self, request: web.Request) -> TwilioFault:
        return TwilioFault(404, 20404, f"The requested resource {request.path} was not found")

    # ---- messages ---------------------------------------------------------------------------

    async def _create_message(self, request: web.Request, form: dict[str, Any]) -> web.Response:
        to = form["To"]
        if not _is_number(to):
            raise TwilioFault(400, 21211, f"Invalid 'To' Phone Number: {to}")
        body = str(form.get("Body", ""))
        if len(body) > _MAX_BODY_CHARS:
            raise TwilioFault(
                400, 21617, "The concatenated message body exceeds the 1600 character limit."
            )
        message = EmulatedMessage(
            f"SM{uuid.uuid4().hex}", to, form.get("From"), body, form.get("MessagingServiceSid"),
            params=form,
        )
        self._messages[message.sid] = message
        response = json_response(self._message_json(message), 201)
        message.status, message.date_sent = "sent", utc_now()  # handed to the carrier at once
        return response

    async def _fetch_message(self, request: web.Request, form: dict[str, Any]) -> web.Response:
        message = self._messages.get(request.match_info["Sid"])
        if message is None:
            raise self._not_found(request)
        return json_response(self._message_json(message))

    def _message_json(self, m: EmulatedMessage) -> dict[str, Any]:
        uri = f"/2010-04-01/Accounts/{self.account_sid}/Messages/{m.sid}"
        return {
            "account_sid": self.account_sid, "api_version": "2010-04-01", "body": m.body,
            "date_created": _rfc2822(m.date_created), "date_sent": _rfc2822(m.date_sent),
            "date_updated": _rfc2822(m.date_sent or m.date_created), "direction": "outbound-api",
            "error_code": None, "error_message": None, "from": m.from_,
            "messaging_service_sid": m.messaging_service_sid, "num_media": "0",
            "num_segments": str(max(1, -(-len(m.body) // 160))), "price": None, "price_unit": "USD",
            "sid": m.sid, "status": m.status, "subresource_uris": {"media": f"{uri}/Media.json"},
            "to": m.to, "uri": f"{uri}.json",
        }

    # ---- calls ------------------------------------------------------------------------------

    async def _create_call(self, request: web.Request, form: dict[str, Any]) -> web.Response:
        if not _is_number(form["To"]):
            to = form["To"]
            raise TwilioFault(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        call = EmulatedCall(
            f"CA{uuid.uuid4().hex}", form["To"], form["From"], url=form.get("Url"),
            twiml=form.get("Twiml"), params=form, method=form.get("Method", "POST"),
        )
        self._calls[call.sid] = call
        response = json_response(self._call_json(call), 201)  # queued, before any progress
        self._outbound.place(call)
        return response

    async def _update_call(self, request: web.Request, form: dict[str, Any]) -> web.Response:
        call = self._calls.get(request.match_info["Sid"])
        if call is None:
            raise self._not_found(request)
        status = form.get("Status")
        if status == "completed" and call.status not in ENDED:
            self.set_call_status(call.sid, "completed")
        elif status == "canceled" and call.status in ("queued", "ringing"):
            self.set_call_status(call.sid, "canceled")  # no effect on a call in progress
        elif status is None and ("Twiml" in form or "Url" in form):
            if call.status in ENDED:
                raise TwilioFault(400, 21220, "Call is not in-progress. Cannot redirect.")
            call.twiml, call.url = form.get("Twiml"), form.get("Url")
            call.method = form.get("Method", "POST")
            call.redirects.append(str(form.get("Twiml") or form.get("Url")))
            call.date_updated = utc_now()
            self._outbound.redirected(call)  # a live stream hangs up; the new TwiML runs
        return json_response(self._call_json(call))

    async def _fetch_call(self, request: web.Request, form: dict[str, Any]) -> web.Response:
        call = self._calls.get(request.match_info["Sid"])
        if call is None:
            raise self._not_found(request)
        return json_response(self._call_json(call))

    def _call_json(self, c: EmulatedCall) -> dict[str, Any]:
        uri = f"/2010-04-01/Accounts/{self.account_sid}/Calls/{c.sid}"
        duration = None if c.duration_s is None else str(c.duration_s)
        subresources = ("notifications", "recordings", "payments", "events", "streams")
        return {
            "account_sid": self.account_sid, "answered_by": c.answered_by,
            "api_version": "2010-04-01", "caller_name": None,
            "date_created": _rfc2822(c.date_created),
            "date_updated": _rfc2822(c.date_updated), "direction": c.direction,
            "duration": duration, "end_time": _rfc2822(c.end_time), "forwarded_from": None,
            "from": c.from_, "from_formatted": _formatted(c.from_), "group_sid": None,
            "parent_call_sid": None, "phone_number_sid": None, "price": None, "price_unit": "USD",
            "queue_time": str(c.queue_time_ms), "sid": c.sid, "start_time": _rfc2822(c.start_time),
            "status": c.status,
            "subresource_uris": {name: f"{uri}/{name.capitalize()}.json" for name in subresources},
            "to": c.to, "to_formatted": _formatted(c.to), "trunk_sid": None, "uri": f"{uri}.json",
        }
