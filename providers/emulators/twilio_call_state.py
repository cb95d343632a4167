"""One emulated Twilio call's state: what the REST surface shows and the call task moves.

Kept apart from ``twilio.py`` (the REST surface) and ``twilio_outbound.py`` (the task that
moves an outbound call) because both read and write it. Times come twice: the resource's
RFC 2822 datetimes (whole seconds, as Twilio shows them) and ``time.monotonic()`` readings
(``*_at_s``) that tests use to check CPS pacing and durations without clock jumps.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, Literal

if TYPE_CHECKING:
    from slotline.providers.emulators.twilio_outbound import StreamTarget

ENDED: Final = frozenset({"completed", "busy", "failed", "no-answer", "canceled"})


def utc_now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


@dataclass(frozen=True, slots=True)
class WebhookAttempt:
    """One request the emulator made to the app for a call, and how it went."""

    kind: Literal["status", "amd", "twiml"]
    url: str
    params: Mapping[str, str]
    status: int | None  # the app's HTTP status; None when it never answered
    error: str | None  # why it counts as failed (refused, timed out, non-2xx), else None


@dataclass(slots=True)
class EmulatedCall:
    sid: str
    to: str
    from_: str
    status: str = "queued"
    direction: str = "outbound-api"
    url: str | None = None
    twiml: str | None = None  # the TwiML the call runs now (initial or redirected)
    redirects: list[str] = field(default_factory=list)  # every Twiml/Url update, in order
    params: dict[str, Any] = field(default_factory=dict)
    date_created: datetime = field(default_factory=utc_now)
    date_updated: datetime = field(default_factory=utc_now)
    start_time: datetime | None = None
    end_time: datetime | None = None
    # set when the call ends: the caller side (a simulated caller's media stream) hears it,
    # as Twilio stops a call's stream when the call is ended through the API
    ended: asyncio.Event = field(default_factory=asyncio.Event, repr=False, compare=False)
    method: str = "POST"  # how ``url`` is requested (the create's or the redirect's Method)
    answered_by: str | None = None  # the AMD verdict once known (AMD asked for)
    created_at_s: float = field(default_factory=time.monotonic)  # monotonic, as all *_at_s
    dispatched_at_s: float | None = None  # left the CPS queue
    answered_at_s: float | None = None
    ended_at_s: float | None = None
    streams: list[StreamTarget] = field(default_factory=list)  # every media stream opened
    twiml_run: list[str] = field(default_factory=list)  # every TwiML document run, in order
    unemulated: list[str] = field(default_factory=list)  # documents with verbs not played
    errors: list[str] = field(default_factory=list)  # Twilio-side failures (11200, streams)
    webhooks: list[WebhookAttempt] = field(default_factory=list)  # every request to the app
    # the live stream's hangup while one runs (a redirect sets it)
    stream_hangup: asyncio.Event | None = field(default=None, repr=False, compare=False)

    @property
    def duration_s(self) -> int | None:
        """Whole seconds from answer to end; None until then or when never answered
        (Twilio leaves ``duration`` empty for busy, failed and unanswered calls)."""
        if self.answered_at_s is None or self.ended_at_s is None:
            return None
        return int(self.ended_at_s - self.answered_at_s)

    @property
    def queue_time_ms(self) -> int:
        """How long the call waited in the CPS queue (0 until it left, or if it never did)."""
        if self.dispatched_at_s is None:
            return 0
        return int((self.dispatched_at_s - self.created_at_s) * 1000)

    @property
    def billed_minutes(self) -> int:
        """The status callback's ``Duration``: Twilio bills an answered call by the started
        minute (at least one); an unanswered call costs nothing."""
        duration = self.duration_s
        return 0 if duration is None else max(1, math.ceil(duration / 60))


def record_status(call: EmulatedCall, status: str) -> None:
    """Set ``status`` with its times; an ending status sets ``ended``. No table here: the REST
    side and tests move calls as the network may (``twilio_outbound.advance`` checks moves)."""
    now_s = time.monotonic()
    call.status, call.date_updated = status, utc_now()
    if status == "in-progress" and call.start_time is None:
        call.start_time, call.answered_at_s = call.date_updated, now_s
    if status in ENDED and call.end_time is None:
        call.end_time, call.ended_at_s = call.date_updated, now_s
        call.ended.set()


async def ended_within(call: EmulatedCall, seconds: float) -> bool:
    """Wait up to ``seconds``; True as soon as the call has ended (at once if it had)."""
    if call.ended.is_set() or seconds <= 0:
        return call.ended.is_set()
    try:
        await asyncio.wait_for(call.ended.wait(), seconds)
    except TimeoutError:
        return False
    return True
