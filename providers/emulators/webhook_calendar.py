"""The reference server of the webhook calendar contract (docs/webhook-calendar.md).

A business implementing the contract can read this as the worked example; Slotline's tests,
benches and ``slotline emulate`` run it on loopback. One route, ``POST {path}``:
- verifies ``X-Slotline-Signature`` over the raw body (``providers.signing``; missing, forged
  or older than 5 minutes → 401 ``bad_signature``) before reading anything;
- dispatches on the body's ``action``: ``availability``, ``create``, ``get``, ``cancel``,
  ``reschedule``; keeps the bookings in memory;
- refuses overlaps with confirmed bookings and with other events of the business (``block``)
  with 409 ``slot_taken``; de-duplicates creates by ``idempotency_key`` (201 the first time,
  200 with the same booking after; 422 ``idempotency_key_reused`` for another time).
Handlers never await between checking a slot and taking it, so concurrent requests on the one
event loop cannot both win. Latency and faults come from ``HttpEmulator``; ``actions`` counts
requests per action (the route counts only see the one path).
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web

from slotline.providers import signing
from slotline.providers.calendars.webhook import aware_time
from slotline.providers.emulators._http import HttpEmulator, json_response

DEFAULT_PATH = "/slotline/calendar"


@dataclass(frozen=True, slots=True)
class StoredBooking:
    id: str
    idempotency_key: str
    start: datetime
    end: datetime
    status: str  # confirmed | cancelled
    attendee: Mapping[str, Any] = field(default_factory=dict)
    title: str = ""
    fields: Mapping[str, Any] = field(default_factory=dict)
    reason: str = ""  # the last cancel/reschedule reason

    def to_json(self) -> dict[str, str]:
        return {
            "id": self.id,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "status": self.status,
        }


class _Refusal(Exception):
    """An answer other than success: the status and the contract's error body."""

    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message


class WebhookCalendarEmulator(HttpEmulator):
    """See the module doc. ``secret`` is the shared ``SLOTLINE_WEBHOOK_SECRET``."""

    def __init__(self, secret: str, *, path: str = DEFAULT_PATH, **options: Any) -> None:
        super().__init__(**options)
        self._secret = secret
        self._path = path
        self.bookings: dict[str, StoredBooking] = {}
        self._by_key: dict[str, str] = {}
        self._blocked: list[tuple[datetime, datetime]] = []
        self._ids = itertools.count(1)
        self.actions: Counter[str] = Counter()
        self._handlers: dict[str, Callable[[Mapping[str, Any]], tuple[int, object]]] = {
            "availability": self._availability,
            "create": self._create,
            "get": self._get,
            "cancel": self._cancel,
            "reschedule": self._reschedule,
        }

    @property
    def base_url(self) -> str:
        return self.origin + self._path

    def block(self, start: datetime, end: datetime) -> None:
        """Another event in the business's calendar: busy, and refused to bookings."""
        self._blocked.append((start.astimezone(UTC), end.astimezone(UTC)))

    def _routes(self, app: web.Application) -> None:
        app.router.add_post(self._path, self._handle)

    def _error_body(self, status: int) -> object:
        return {"error": "injected_failure", "message": f"injected failure {status}"}

    # ---- the one route ----------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        if not signing.verify(self._secret, request.headers.get(signing.HEADER, ""), raw):
            return _error(401, "bad_signature", f"missing, forged or stale {signing.HEADER}")
        try:
            payload = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return _error(400, "invalid_request", "the body is not JSON")
        if not isinstance(payload, dict):
            return _error(400, "invalid_request", "the body must be a JSON object")
        action = payload.get("action")
        handler = self._handlers.get(action) if isinstance(action, str) else None
        if handler is None:
            return _error(400, "unknown_action", f"unknown action {action!r}")
        self.actions[str(action)] += 1
        try:
            status, body = handler(payload)
        except _Refusal as refusal:
            return _error(refusal.status, refusal.error, refusal.message)
        return json_response(body, status)

    # ---- actions (no awaits inside: check and write are one step) ---------------------------

    def _availability(self, payload: Mapping[str, Any]) -> tuple[int, object]:
        start, end = _window(payload)
        busy = sorted(self._busy_between(start, end, exclude=""))
        return 200, {"busy": [{"start": s.isoformat(), "end": e.isoformat()} for s, e in busy]}

    def _create(self, payload: Mapping[str, Any]) -> tuple[int, object]:
        key = payload.get("idempotency_key")
        if not isinstance(key, str) or not key:
            raise _Refusal(400, "invalid_request", "idempotency_key must be a non-empty string")
        start, end = _window(payload)
        known = self._by_key.get(key)
        if known is not None:
            booking = self.bookings[known]
            if (booking.start, booking.end) != (start, end):
                raise _Refusal(
                    422, "idempotency_key_reused", "this key already booked another time"
                )
            return 200, booking.to_json()
        self._refuse_overlap(start, end, exclude="")
        booking = StoredBooking(
            id=f"bk_{next(self._ids)}",
            idempotency_key=key,
            start=start,
            end=end,
            status="confirmed",
            attendee=_object(payload, "attendee"),
            title=str(payload.get("title") or ""),
            fields=_object(payload, "fields"),
        )
        self.bookings[booking.id] = booking
        self._by_key[key] = booking.id
        return 201, booking.to_json()

    def _get(self, payload: Mapping[str, Any]) -> tuple[int, object]:
        return 200, self._booking(payload).to_json()

    def _cancel(self, payload: Mapping[str, Any]) -> tuple[int, object]:
        booking = self._booking(payload)
        if booking.status != "cancelled":
            booking = replace(booking, status="cancelled", reason=str(payload.get("reason") or ""))
            self.bookings[booking.id] = booking
        return 200, booking.to_json()

    def _reschedule(self, payload: Mapping[str, Any]) -> tuple[int, object]:
        booking = self._booking(payload)
        start, end = _window(payload)
        if booking.status == "cancelled":
            raise _Refusal(422, "booking_cancelled", f"booking {booking.id} is cancelled")
        if (booking.start, booking.end) != (start, end):
            self._refuse_overlap(start, end, exclude=booking.id)
            reason = str(payload.get("reason") or "")
            booking = replace(booking, start=start, end=end, reason=reason)
            self.bookings[booking.id] = booking
        return 200, booking.to_json()

    # ---- state ------------------------------------------------------------------------------

    def _booking(self, payload: Mapping[str, Any]) -> StoredBooking:
        booking_id = payload.get("id")
        booking = self.bookings.get(booking_id) if isinstance(booking_id, str) else None
        if booking is None:
            raise _Refusal(404, "not_found", f"no booking {booking_id!r}")
        return booking

    def _busy_between(
        self, start: datetime, end: datetime, *, exclude: str
    ) -> list[tuple[datetime, datetime]]:
        taken = list(self._blocked) + [
            (b.start, b.end)
            for b in self.bookings.values()
            if b.status == "confirmed" and b.id != exclude
        ]
        return [(s, e) for s, e in taken if s < end and e > start]

    def _refuse_overlap(self, start: datetime, end: datetime, *, exclude: str) -> None:
        if self._busy_between(start, end, exclude=exclude):
            raise _Refusal(409, "slot_taken", f"{start.isoformat()} is no longer free")


def _window(payload: Mapping[str, Any]) -> tuple[datetime, datetime]:
    start, end = _time(payload, "start"), _time(payload, "end")
    if not start < end:
        raise _Refusal(400, "invalid_request", "start must be before end")
    return start, end


def _time(payload: Mapping[str, Any], name: str) -> datetime:
    moment = aware_time(payload.get(name))
    if moment is None:
        raise _Refusal(400, "invalid_request", f"{name} must be an ISO-8601 time with an offset")
    return moment


def _object(payload: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = payload.get(name)
    return value if isinstance(value, dict) else {}


def _error(status: int, error: str, message: str) -> web.Response:
    return json_response({"error": error, "message": message}, status)
