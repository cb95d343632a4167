"""Twilio REST (API 2010-04-01): send an SMS, hang up, redirect (transfer) and place calls.

Requests are form-encoded with HTTP Basic auth (Account SID : Auth Token) through the shared
``providers.http.JsonHttpClient``, not the ``twilio`` SDK: the SDK's async client can be pointed
at an emulator, but it brings a second retry/timeout/auth policy (``aiohttp_retry``), its own
session per client and its own exception type, where every other Slotline vendor shares one
session and one policy. These four calls are small enough to speak the wire directly.

Retries — decided here, per call:
- ``hangup`` and ``redirect`` are updates to a target state (``Status=completed``, "run this
  TwiML"): sending the same update again leaves the call where one update would, so 429, 5xx
  and connection failures are retried by the shared client.
- creating a Message or a Call is never retried: Twilio has no idempotency key for them, so a
  request whose answer was lost (a reset or a timeout after Twilio accepted it) would text or
  ring the person twice. The failure goes back with ``retryable`` set; the job that asked
  (confirmation, dialer) decides, knowing what it already sent.

Twilio's error JSON ``{"code": 21211, "message": …, "more_info": …, "status": 400}`` becomes
``TwilioApiError`` (a ``ProviderError`` carrying ``code`` and ``status``); 401/403 become
``ProviderAuthError`` in the shared client. Phone numbers are masked out of error messages.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote, urlencode

import aiohttp

from slotline.providers.errors import ProviderError
from slotline.providers.http import (
    HttpAdapter,
    HttpResponse,
    JsonHttpClient,
    RetryPolicy,
    vendor_message,
)

PROVIDER: Final = "twilio"
DEFAULT_BASE_URL: Final = "https://api.twilio.com"
API_VERSION: Final = "2010-04-01"
MAX_TWIML_CHARS: Final = 4000  # Twilio's limit on an inline ``Twiml`` parameter
_FORM: Final = {"Content-Type": "application/x-www-form-urlencoded"}


class TwilioApiError(ProviderError):
    """Twilio answered with its error JSON; ``code`` is Twilio's (e.g. 21211), or None."""

    def __init__(
        self, message: str, *, code: int | None, status: int, retryable: bool = False
    ) -> None:
        super().__init__(PROVIDER, message, retryable=retryable)
        self.code = code
        self.status = status


@dataclass(frozen=True, slots=True)
class CallState:
    """What ``GET Calls/{sid}.json`` says of a call."""

    sid: str
    status: str  # queued ringing in-progress completed busy failed no-answer canceled
    answered_by: str  # "" until AMD answered
    duration_s: int | None


class TwilioRest(HttpAdapter):
    """The Twilio REST calls Slotline makes; an async context manager around one HTTP client.

    ``session`` may be shared (it is then not closed here). ``base_url`` is Twilio's root
    (``https://api.twilio.com`` or an emulator's); the adapter appends ``/2010-04-01/...``.
    """

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        session: aiohttp.ClientSession | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        credentials = base64.b64encode(f"{account_sid}:{auth_token}".encode()).decode("ascii")
        # A static Authorization header rather than an AuthSource: Basic credentials cannot be
        # refreshed, so a 401 must fail at once instead of being sent a second time.
        self._http = JsonHttpClient(
            PROVIDER,
            base_url,
            headers={"Authorization": f"Basic {credentials}", "Accept": "application/json"},
            retry=retry or RetryPolicy(),
            session=session,
        )
        self._account_path = f"/{API_VERSION}/Accounts/{quote(account_sid, safe='')}"

    # ---- messages ---------------------------------------------------------------------------

    async def send_sms(
        self, to: str, from_: str, body: str, status_callback: str | None = None
    ) -> str:
        """Create one outbound message; returns its ``SM…`` sid. Never retried (see module doc).

        ``from_`` is a Twilio number, or a Messaging Service SID (``MG…``) that picks one.
        """
        sender = "MessagingServiceSid" if _is_sid(from_, "MG") else "From"
        params = [("To", to), (sender, from_), ("Body", body)]
        if status_callback:
            params.append(("StatusCallback", status_callback))
        response = await self._post("/Messages.json", params, retry=False, mask=(to,))
        return _sid_of(response, "Messages.json")

    # ---- calls ------------------------------------------------------------------------------

    async def hangup(self, call_sid: str) -> None:
        """End the call (``Status=completed``). Retried: ending an ended call changes nothing."""
        await self._post(_call_path(call_sid), [("Status", "completed")], retry=True)

    async def redirect(self, call_sid: str, twiml: str) -> None:
        """Make the live call run ``twiml`` now (a transfer is ``<Response><Dial>…``).

        Retried on 429/5xx/connection failures: the same TwiML applied twice leaves the call in
        the same place (a transfer at worst restarts its ringing), better than a lost transfer.
        """
        if len(twiml) > MAX_TWIML_CHARS:
            raise ProviderError(
                PROVIDER,
                f"TwiML is {len(twiml)} characters; Twilio takes at most {MAX_TWIML_CHARS}",
                retryable=False,
            )
        await self._post(_call_path(call_sid), [("Twiml", twiml)], retry=True)

    async def create_call(
        self,
        to: str,
        from_: str,
        url: str,
        status_callback: str | None = None,
        machine_detection: str | None = None,
        async_amd: bool | None = None,
        async_amd_status_callback: str | None = None,
        *,
        status_callback_events: Iterable[str] = (),
        timeout_s: int | None = None,
    ) -> str:
        """Place an outbound call that fetches its TwiML from ``url``; returns the ``CA…`` sid.

        ``machine_detection`` is ``Enable`` or ``DetectMessageEnd``; with ``async_amd`` the call
        connects at once and the verdict is posted to ``async_amd_status_callback``.
        ``status_callback_events`` defaults to Twilio's own default (``completed`` only);
        ``timeout_s`` is how long Twilio lets it ring (Twilio's default 60, at most 600).
        Never retried (see module doc): a lost answer must not ring the person twice.
        """
        params: list[tuple[str, str]] = [("To", to), ("From", from_), ("Url", url)]
        if status_callback:
            params.append(("StatusCallback", status_callback))
            params.extend(("StatusCallbackEvent", event) for event in status_callback_events)
        if timeout_s is not None:
            params.append(("Timeout", str(timeout_s)))
        if machine_detection:
            params.append(("MachineDetection", machine_detection))
        if async_amd is not None:
            params.append(("AsyncAmd", "true" if async_amd else "false"))
        if async_amd_status_callback:
            params.append(("AsyncAmdStatusCallback", async_amd_status_callback))
        response = await self._post("/Calls.json", params, retry=False, mask=(to,))
        return _sid_of(response, "Calls.json")

    async def fetch_call(self, call_sid: str) -> CallState:
        """The call as Twilio has it now (a restarted dialer reconciles its calls with this).
        A read: retried on 429/5xx/connection failures."""
        response = await self._http.request(
            "GET", self._account_path + _call_path(call_sid), retry=True
        )
        if not 200 <= response.status < 300:
            raise _api_error(f"GET {_call_path(call_sid)}", response, ())
        body: Any = response.body
        if not isinstance(body, dict) or not isinstance(body.get("status"), str):
            raise ProviderError(PROVIDER, "GET Calls/{sid}.json without a status",
                                retryable=False)
        duration = body.get("duration")
        return CallState(
            sid=str(body.get("sid", call_sid)),
            status=body["status"],
            answered_by=str(body.get("answered_by") or ""),
            duration_s=int(duration) if isinstance(duration, str) and duration.isdigit()
            else None,
        )

    # ---- the wire ---------------------------------------------------------------------------

    async def _post(
        self,
        path: str,
        params: list[tuple[str, str]],
        *,
        retry: bool,
        mask: tuple[str, ...] = (),
    ) -> HttpResponse:
        """POST a form to ``/2010-04-01/Accounts/{sid}{path}``; non-2xx → ``TwilioApiError``.

        The form is encoded here (not by the client) so a parameter may repeat, as
        ``StatusCallbackEvent`` does.
        """
        response = await self._http.request(
            "POST",
            self._account_path + path,
            data=urlencode(params).encode("ascii"),
            headers=_FORM,
            retry=retry,
        )
        if 200 <= response.status < 300:
            return response
        raise _api_error(f"POST {path}", response, mask)


def _call_path(call_sid: str) -> str:
    return f"/Calls/{quote(call_sid, safe='')}.json"


def _is_sid(value: str, prefix: str) -> bool:
    return (
        len(value) == 34
        and value.startswith(prefix)
        and all(c in "0123456789abcdefABCDEF" for c in value[2:])
    )


def _sid_of(response: HttpResponse, what: str) -> str:
    body: Any = response.body
    sid = body.get("sid") if isinstance(body, dict) else None
    if not isinstance(sid, str) or not sid:
        raise ProviderError(
            PROVIDER, f"POST {what} → {response.status} without a sid", retryable=False
        )
    return sid


def _api_error(what: str, response: HttpResponse, mask: tuple[str, ...]) -> TwilioApiError:
    """Twilio's error JSON (or whatever came instead) as one ``TwilioApiError``."""
    body: Any = response.body
    raw_code = body.get("code") if isinstance(body, dict) else None
    code = raw_code if isinstance(raw_code, int) and not isinstance(raw_code, bool) else None
    text = vendor_message(body, response.text) or "no error message"
    for value in mask:
        if value:
            text = text.replace(value, "<redacted>")
    label = f"Twilio {code}: " if code is not None else ""
    more = f" ({body['more_info']})" if isinstance(body, dict) and body.get("more_info") else ""
    return TwilioApiError(
        f"{what} → {response.status}: {label}{text}{more}", code=code, status=response.status
    )
