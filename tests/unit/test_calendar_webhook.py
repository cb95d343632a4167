"""The webhook calendar against its reference server (``WebhookCalendarEmulator``) on loopback.

The same matrix as the CalDAV tests (busy, create/get/cancel/reschedule, one booking per key,
racing writers, taken slots, unreachable server), plus the contract's own guarantees: the
server refuses unsigned, forged, tampered and stale requests; a wrong secret is an auth error;
a create whose answer was lost is sent again and still makes one booking.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import aiohttp
import orjson
import pytest

from slotline.providers import signing
from slotline.providers.calendars.base import Attendee, BookingRequest, ProviderBooking, Rescheduler
from slotline.providers.calendars.webhook import WebhookCalendar
from slotline.providers.emulators.webhook_calendar import WebhookCalendarEmulator
from slotline.providers.errors import ConfigError, ProviderAuthError, ProviderError, SlotTaken
from slotline.providers.http import RetryPolicy

SECRET = "whsec_test_0123456789"
NINE = datetime(2026, 12, 1, 14, 0, tzinfo=UTC)
HALF_HOUR = timedelta(minutes=30)
ANN = Attendee("Ann Lee", "ann@example.com", "+15550001111", "America/New_York")
FAST_RETRY = RetryPolicy(base_delay_s=0.01, max_delay_s=0.05, request_timeout_s=2.0)


def _request(key: str, start: datetime = NINE) -> BookingRequest:
    return BookingRequest(start, start + HALF_HOUR, ANN, key, "Checkup", {"reason": "teeth"})


@pytest.fixture
async def server() -> AsyncIterator[WebhookCalendarEmulator]:
    async with WebhookCalendarEmulator(SECRET) as emulator:
        yield emulator


@pytest.fixture
async def calendar(server: WebhookCalendarEmulator) -> AsyncIterator[WebhookCalendar]:
    async with WebhookCalendar(server.base_url, SECRET, retry=FAST_RETRY) as adapter:
        yield adapter


async def _post(url: str, body: bytes, signature: str | None) -> tuple[int, object]:
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers[signing.HEADER] = signature
    async with aiohttp.ClientSession() as session:
        async with session.post(url, data=body, headers=headers) as response:
            return response.status, await response.json()


# ---- busy -------------------------------------------------------------------------------------


async def test_busy_lists_other_events_and_confirmed_bookings(
    calendar: WebhookCalendar, server: WebhookCalendarEmulator
) -> None:
    server.block(NINE + 4 * HALF_HOUR, NINE + 6 * HALF_HOUR)
    server.block(NINE + timedelta(days=2), NINE + timedelta(days=2, hours=1))  # outside
    booked = await calendar.create(_request("call-1:0900"))
    cancelled = await calendar.create(_request("call-2:0930", NINE + HALF_HOUR))
    await calendar.cancel(cancelled.provider_booking_id)

    busy = await calendar.busy(NINE - timedelta(hours=1), NINE + timedelta(hours=5))

    assert [(b.start, b.end) for b in busy] == [
        (booked.start, booked.end),
        (NINE + 4 * HALF_HOUR, NINE + 6 * HALF_HOUR),
    ]
    assert server.actions["availability"] == 1


# ---- create / get / cancel / reschedule --------------------------------------------------------


async def test_create_get_cancel(
    calendar: WebhookCalendar, server: WebhookCalendarEmulator
) -> None:
    booking = await calendar.create(_request("call-1:0900"))

    assert booking == ProviderBooking("bk_1", NINE, NINE + HALF_HOUR, "confirmed")
    stored = server.bookings["bk_1"]
    assert stored.attendee["email"] == "ann@example.com"
    assert (stored.title, dict(stored.fields)) == ("Checkup", {"reason": "teeth"})
    assert await calendar.get("bk_1") == booking

    cancelled = await calendar.cancel("bk_1", "caller asked")

    assert cancelled == ProviderBooking("bk_1", NINE, NINE + HALF_HOUR, "cancelled")
    assert server.bookings["bk_1"].reason == "caller asked"
    assert await calendar.cancel("bk_1") == cancelled  # idempotent
    assert await calendar.get("bk_1") == cancelled
    # the slot is free again
    assert (await calendar.create(_request("call-2:0900"))).status == "confirmed"


async def test_unknown_bookings(calendar: WebhookCalendar) -> None:
    assert await calendar.get("bk_404") is None
    with pytest.raises(ProviderError, match="no such booking"):
        await calendar.cancel("bk_404")
    with pytest.raises(ProviderError, match="no such booking"):
        await calendar.reschedule("bk_404", _request("x"))


async def test_repeated_create_with_the_same_key_is_one_booking(
    calendar: WebhookCalendar, server: WebhookCalendarEmulator
) -> None:
    first = await calendar.create(_request("call-1:0900"))
    second = await calendar.create(_request("call-1:0900"))

    assert second == first
    assert list(server.bookings) == ["bk_1"]
    assert [seen.status for seen in server.requests] == [201, 200]


async def test_the_same_key_for_another_time_is_refused(calendar: WebhookCalendar) -> None:
    await calendar.create(_request("call-1:0900"))

    with pytest.raises(ProviderError, match="idempotency_key_reused") as raised:
        await calendar.create(_request("call-1:0900", NINE + HALF_HOUR))

    assert not isinstance(raised.value, SlotTaken) and not raised.value.retryable


async def test_reschedule_moves_the_booking_after_a_free_check(
    calendar: WebhookCalendar, server: WebhookCalendarEmulator
) -> None:
    assert isinstance(calendar, Rescheduler)
    booking = await calendar.create(_request("call-1:0900"))
    server.block(NINE + 2 * HALF_HOUR, NINE + 4 * HALF_HOUR)

    with pytest.raises(SlotTaken):
        await calendar.reschedule(booking.provider_booking_id, _request("x", NINE + 3 * HALF_HOUR))
    assert await calendar.get(booking.provider_booking_id) == booking

    later = NINE + timedelta(minutes=15)  # overlapping its own old time is fine
    moved = await calendar.reschedule(booking.provider_booking_id, _request("x", later), "late")

    assert moved == ProviderBooking(
        booking.provider_booking_id, later, later + HALF_HOUR, "confirmed"
    )
    assert await calendar.get(booking.provider_booking_id) == moved
    assert server.bookings[booking.provider_booking_id].reason == "late"


# ---- taken slots -------------------------------------------------------------------------------


async def test_a_slot_with_another_event_is_taken(
    calendar: WebhookCalendar, server: WebhookCalendarEmulator
) -> None:
    server.block(NINE + timedelta(minutes=15), NINE + timedelta(minutes=45))

    with pytest.raises(SlotTaken):
        await calendar.create(_request("call-1:0900"))

    assert server.bookings == {}


async def test_two_adapters_racing_end_with_one_booking(server: WebhookCalendarEmulator) -> None:
    async with (
        WebhookCalendar(server.base_url, SECRET) as one,
        WebhookCalendar(server.base_url, SECRET) as two,
    ):
        results = await asyncio.gather(
            one.create(_request("call-1:0900")),
            two.create(_request("call-2:0915", NINE + timedelta(minutes=15))),
            return_exceptions=True,
        )

    made = [r for r in results if isinstance(r, ProviderBooking)]
    refused = [r for r in results if isinstance(r, SlotTaken)]
    assert len(made) == 1 and len(refused) == 1, results
    assert list(server.bookings) == [made[0].provider_booking_id]


# ---- retries -----------------------------------------------------------------------------------


async def test_a_create_whose_answer_was_lost_is_sent_again_and_books_once(
    calendar: WebhookCalendar, server: WebhookCalendarEmulator
) -> None:
    server.drop_next()

    booking = await calendar.create(_request("call-1:0900"))

    assert booking.provider_booking_id == "bk_1"
    assert list(server.bookings) == ["bk_1"]
    assert [seen.status for seen in server.requests] == [201, 200]  # the 201 never arrived


async def test_server_errors_are_retried(
    calendar: WebhookCalendar, server: WebhookCalendarEmulator
) -> None:
    server.fail_next(503)

    assert (await calendar.create(_request("call-1:0900"))).status == "confirmed"
    assert [seen.status for seen in server.requests] == [503, 201]


async def test_a_malformed_answer_is_a_provider_error(
    calendar: WebhookCalendar, server: WebhookCalendarEmulator
) -> None:
    server.fail_next(200, body={"id": "bk_1", "start": "2026-12-01T14:00:00", "status": "ok"})

    with pytest.raises(ProviderError, match="malformed answer"):
        await calendar.create(_request("call-1:0900"))


async def test_an_unreachable_server_is_a_retryable_provider_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with WebhookCalendar(f"http://127.0.0.1:{port}/hook", SECRET, retry=FAST_RETRY) as cal:
        with pytest.raises(ProviderError, match="POST /hook") as raised:
            await cal.busy(NINE, NINE + HALF_HOUR)

    assert type(raised.value) is ProviderError and raised.value.retryable


# ---- signatures --------------------------------------------------------------------------------


async def test_a_wrong_secret_is_an_auth_error_and_not_retried(
    server: WebhookCalendarEmulator,
) -> None:
    async with WebhookCalendar(server.base_url, "not-the-secret", retry=FAST_RETRY) as cal:
        with pytest.raises(ProviderAuthError, match="X-Slotline-Signature") as raised:
            await cal.create(_request("call-1:0900"))

    assert "not-the-secret" not in str(raised.value)
    assert [seen.status for seen in server.requests] == [401]
    assert server.bookings == {}


async def test_the_server_accepts_only_fresh_untampered_signatures(
    server: WebhookCalendarEmulator,
) -> None:
    body = orjson.dumps({"action": "availability", "start": "2026-12-01T14:00:00+00:00",
                         "end": "2026-12-01T15:00:00+00:00"})
    now = int(time.time())
    good = signing.signature(SECRET, body, now)

    assert await _post(server.base_url, body, good) == (200, {"busy": []})
    refused = [
        await _post(server.base_url, body, None),  # unsigned
        await _post(server.base_url, body, signing.signature("forged", body, now)),
        await _post(server.base_url, body.replace(b"15:00", b"16:00"), good),  # tampered
        await _post(server.base_url, body, signing.signature(SECRET, body, now - 301)),  # stale
        await _post(server.base_url, body, good.replace("v1=", "v1=0")),  # garbled
    ]

    assert [status for status, _ in refused] == [401] * 5
    assert all(isinstance(b, dict) and b["error"] == "bad_signature" for _, b in refused)
    assert server.actions["availability"] == 1


async def test_the_server_refuses_unknown_actions_and_bad_times(
    server: WebhookCalendarEmulator,
) -> None:
    async def post(payload: dict[str, object]) -> tuple[int, object]:
        body = orjson.dumps(payload)
        return await _post(server.base_url, body, signing.signature(SECRET, body))

    unknown = await post({"action": "delete_everything"})
    naive = await post({"action": "availability", "start": "2026-12-01T14:00:00",
                        "end": "2026-12-01T15:00:00"})

    assert unknown[0] == 400 and naive[0] == 400
    assert isinstance(naive[1], dict) and "offset" in str(naive[1]["message"])


def test_an_empty_secret_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="SLOTLINE_WEBHOOK_SECRET"):
        WebhookCalendar("http://127.0.0.1:9/hook", "")
