"""The ``webhook`` calendar: any business system that implements one signed JSON endpoint.

The contract is docs/webhook-calendar.md; ``providers.emulators.webhook_calendar`` is its
reference server. In short: every call is ``POST {base_url}`` with a JSON body that names its
``action`` (``availability``, ``create``, ``get``, ``cancel``, ``reschedule``) and everything
the action needs, signed with ``X-Slotline-Signature`` (``providers.signing``: HMAC-SHA256 of
``"<t>.<raw body>"`` with ``SLOTLINE_WEBHOOK_SECRET``). As the body carries the whole request
(not the URL path), the signature covers all of it: a captured request cannot be replayed as
another action or against another booking.

Every action is safe to repeat: a create is de-duplicated by its ``idempotency_key`` (a repeat
answers 200 with the booking already made), cancel and reschedule are idempotent by state, the
rest only read. So every call takes the shared client's retries (429/5xx, lost connections),
and a create whose answer was lost is simply sent again.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import orjson

from slotline.providers import signing
from slotline.providers.calendars.base import (
    BookingRequest,
    BookingStatus,
    BusyInterval,
    ProviderBooking,
)
from slotline.providers.errors import ConfigError, ProviderError, SlotTaken
from slotline.providers.http import (
    HttpAdapter,
    HttpResponse,
    JsonHttpClient,
    RetryPolicy,
    vendor_message,
)

PROVIDER = "webhook"
_DEFAULT_RETRY = RetryPolicy()
_STATUSES: tuple[BookingStatus, ...] = ("confirmed", "cancelled")


class WebhookCalendar(HttpAdapter):
    """``CalendarProvider`` + ``Rescheduler`` over the webhook contract (see the module doc)."""

    def __init__(
        self,
        base_url: str,
        secret: str,
        *,
        session: aiohttp.ClientSession | None = None,
        retry: RetryPolicy = _DEFAULT_RETRY,
    ) -> None:
        if not secret:
            raise ConfigError(
                "environment", "SLOTLINE_WEBHOOK_SECRET", "the webhook calendar signs every "
                "request with it; set the secret shared with the calendar server",
            )
        self._secret = secret
        # the client's messages then name the endpoint: "POST /hooks/calendar → 503"
        url = urlsplit(base_url)
        self._endpoint = urlunsplit(("", "", url.path or "/", url.query, ""))
        origin = urlunsplit((url.scheme, url.netloc, "", "", ""))
        self._http = JsonHttpClient(PROVIDER, origin, retry=retry, session=session)

    # ---- CalendarProvider -------------------------------------------------------------------

    async def busy(self, start: datetime, end: datetime) -> list[BusyInterval]:
        response = await self._call("availability", {"start": _iso(start), "end": _iso(end)})
        if response.status != 200:
            raise _refused("availability", response)
        return parse_busy(response.body)

    async def create(self, request: BookingRequest) -> ProviderBooking:
        attendee = request.attendee
        response = await self._call(
            "create",
            {
                "idempotency_key": request.idempotency_key,
                "start": _iso(request.start),
                "end": _iso(request.end),
                "attendee": {
                    "name": attendee.name,
                    "email": attendee.email,
                    "phone": attendee.phone,
                    "timezone": attendee.timezone,
                },
                "title": request.title,
                "fields": dict(request.fields),
            },
        )
        if response.status in (200, 201):  # 201 made now, 200 made by an earlier attempt
            return parse_booking(response.body)
        raise _refused("create", response, when=request.start)

    async def get(self, provider_booking_id: str) -> ProviderBooking | None:
        response = await self._call("get", {"id": provider_booking_id})
        if response.status == 404:
            return None
        if response.status != 200:
            raise _refused("get", response)
        return parse_booking(response.body)

    async def cancel(self, provider_booking_id: str, reason: str = "") -> ProviderBooking:
        response = await self._call("cancel", {"id": provider_booking_id, "reason": reason})
        if response.status != 200:
            raise _refused("cancel", response)
        return parse_booking(response.body)

    # ---- Rescheduler ------------------------------------------------------------------------

    async def reschedule(
        self, provider_booking_id: str, request: BookingRequest, reason: str = ""
    ) -> ProviderBooking:
        response = await self._call(
            "reschedule",
            {
                "id": provider_booking_id,
                "start": _iso(request.start),
                "end": _iso(request.end),
                "reason": reason,
            },
        )
        if response.status != 200:
            raise _refused("reschedule", response, when=request.start)
        return parse_booking(response.body)

    # ---- the wire ---------------------------------------------------------------------------

    async def _call(self, action: str, fields: Mapping[str, object]) -> HttpResponse:
        body = orjson.dumps({"action": action, **fields})
        headers = {
            "Content-Type": "application/json",
            signing.HEADER: signing.signature(self._secret, body),
        }
        return await self._http.request("POST", self._endpoint, data=body, headers=headers)


def parse_booking(body: Any) -> ProviderBooking:
    """A booking object of the contract → ``ProviderBooking`` (``ProviderError`` if malformed)."""
    if not isinstance(body, dict) or not isinstance(body.get("id"), str) or not body["id"]:
        raise _malformed("a booking needs a non-empty string id", body)
    status = next((known for known in _STATUSES if known == body.get("status")), None)
    if status is None:
        raise _malformed(f"booking status must be one of {', '.join(_STATUSES)}", body)
    return ProviderBooking(body["id"], _time(body, "start"), _time(body, "end"), status)


def parse_busy(body: Any) -> list[BusyInterval]:
    """``{"busy": [{"start", "end"}, ...]}`` → busy intervals in UTC, sorted."""
    items = body.get("busy") if isinstance(body, dict) else None
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise _malformed('an availability answer needs "busy": a list of {start, end}', body)
    intervals = [BusyInterval(_time(item, "start"), _time(item, "end")) for item in items]
    return sorted(intervals, key=lambda interval: interval.start)


def _refused(action: str, response: HttpResponse, *, when: datetime | None = None) -> ProviderError:
    """What a non-success answer means: ``SlotTaken`` for 409 slot_taken, else the message."""
    message = vendor_message(response.body, response.text)
    error = response.body.get("error") if isinstance(response.body, dict) else None
    if when is not None and response.status == 409 and error == "slot_taken":
        return SlotTaken(PROVIDER, f"{_iso(when)} is taken: {message}")
    if response.status == 404:
        return ProviderError(PROVIDER, f"{action} → 404: no such booking ({message})")
    code = f" {error}" if isinstance(error, str) else ""
    return ProviderError(PROVIDER, f"{action} → {response.status}{code}: {message}")


def _time(item: Mapping[str, Any], name: str) -> datetime:
    moment = aware_time(item.get(name))
    if moment is None:
        raise _malformed(f"{name} must be an ISO-8601 time with an offset", item)
    return moment


def aware_time(value: object) -> datetime | None:
    """An ISO-8601 string with an offset → that instant in UTC; None for anything else."""
    try:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None
    return None if moment is None or moment.tzinfo is None else moment.astimezone(UTC)


def _malformed(problem: str, body: Any) -> ProviderError:
    return ProviderError(PROVIDER, f"malformed answer: {problem} (got {str(body)[:200]})")


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()
