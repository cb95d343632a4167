"""The Outlook (Microsoft Graph) calendar adapter and its token source, over real sockets against
the Graph emulator: busy time, the guarded write, idempotent retries, the race between two
bookers, token expiry and refusal, throttling; and the emulator's own request validation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from slotline.providers.calendars.base import (
    Attendee,
    AttendeeUpdater,
    BookingRequest,
    BusyInterval,
    Rescheduler,
)
from slotline.providers.calendars.ms_auth import ClientCredentialsAuth
from slotline.providers.calendars.outlook import OutlookCalendar, busy_from_schedule, transaction_id
from slotline.providers.emulators.graph import CLIENT_ID, CLIENT_SECRET, MAILBOX, GraphEmulator
from slotline.providers.errors import ProviderAuthError, ProviderError, SlotTaken
from slotline.providers.http import RetryPolicy

ZONE = "America/New_York"
SLOT = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)  # 10:00 in New York
FAST = RetryPolicy(base_delay_s=0.0, max_delay_s=0.02)
TOKEN = "POST /{tenant}/oauth2/v2.0/token"
SCHEDULE = "POST /v1.0/users/{user}/calendar/getSchedule"
CREATE = "POST /v1.0/users/{user}/events"
VIEW = "GET /v1.0/users/{user}/calendarView"


def booking(key: str = "call-1", start: datetime = SLOT, minutes: int = 30) -> BookingRequest:
    attendee = Attendee("Ada Lovelace", "ada@example.com", "+15551230000", ZONE)
    return BookingRequest(
        start, start + timedelta(minutes=minutes), attendee, key, "Consultation", {"topic": "tax"}
    )


def hours(n: float) -> timedelta:
    return timedelta(hours=n)


@pytest.fixture
async def emu() -> AsyncIterator[GraphEmulator]:
    async with GraphEmulator() as emulator:
        yield emulator


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as http:
        yield http


def connect(
    emu: GraphEmulator, session: aiohttp.ClientSession, *, secret: str = CLIENT_SECRET,
    retry: RetryPolicy = FAST,
) -> tuple[OutlookCalendar, ClientCredentialsAuth]:  # fmt: skip
    auth = ClientCredentialsAuth(emu.token_url, CLIENT_ID, secret, session=session, retry=retry)
    return OutlookCalendar(emu.origin, MAILBOX, auth, ZONE, session=session, retry=retry), auth


# ---- busy time ------------------------------------------------------------------------------


async def test_busy_counts_busy_tentative_and_oof_but_not_free_or_working_elsewhere(
    emu: GraphEmulator, session: aiohttp.ClientSession
) -> None:
    for offset, show_as in enumerate(["busy", "tentative", "oof", "free", "workingElsewhere"]):
        emu.add_event(MAILBOX, SLOT + hours(offset), SLOT + hours(offset + 0.5), show_as=show_as)
    emu.add_event(MAILBOX, SLOT - hours(3), SLOT - hours(2))  # outside the window
    calendar, _ = connect(emu, session)

    busy = await calendar.busy(SLOT, SLOT + hours(8))

    assert busy == [BusyInterval(SLOT + hours(n), SLOT + hours(n + 0.5)) for n in (0, 1, 2)]
    assert all(item.start.utcoffset() == timedelta(0) for item in busy)


def test_schedule_codec_reads_zoned_items_any_case_and_falls_back_to_the_view() -> None:
    zoned = {"scheduleItems": [{"status": "Tentative",
                                "start": {"dateTime": "2026-12-01T10:00:00.0000000",
                                          "timeZone": "America/New_York"},
                                "end": {"dateTime": "2026-12-01T10:30:00.0000000",
                                        "timeZone": "America/New_York"}}]}  # fmt: skip
    assert busy_from_schedule(zoned, SLOT) == [BusyInterval(SLOT, SLOT + hours(0.5))]
    # No scheduleItems (the mailbox shares free/busy only): 30-minute digits, 1-3 busy.
    view_only = {"availabilityView": "0220041"}
    assert busy_from_schedule(view_only, SLOT) == [
        BusyInterval(SLOT + hours(0.5), SLOT + hours(1.5)),
        BusyInterval(SLOT + hours(3), SLOT + hours(3.5)),
    ]


async def test_a_schedule_error_is_a_provider_error(
    emu: GraphEmulator, session: aiohttp.ClientSession
) -> None:
    emu.schedule_error(MAILBOX, "ErrorNoFreeBusyAccess", "No free/busy access.")
    calendar, _ = connect(emu, session)
    with pytest.raises(ProviderError, match="ErrorNoFreeBusyAccess") as caught:
        await calendar.busy(SLOT, SLOT + hours(1))
    assert not isinstance(caught.value, SlotTaken)


async def test_a_long_window_is_asked_in_pieces_graph_accepts(
    emu: GraphEmulator, session: aiohttp.ClientSession
) -> None:
    late = SLOT + timedelta(days=65)
    emu.add_event(MAILBOX, late, late + hours(1))
    calendar, _ = connect(emu, session)

    busy = await calendar.busy(SLOT, SLOT + timedelta(days=70))

    assert busy == [BusyInterval(late, late + hours(1))]
    assert emu.counts[SCHEDULE] == 3  # 31 + 31 + 8 days; Graph refuses 62 days at once


# ---- create / get / cancel / reschedule -----------------------------------------------------


async def test_create_get_cancel_round_trip(
    emu: GraphEmulator, session: aiohttp.ClientSession
) -> None:
    calendar, _ = connect(emu, session)

    made = await calendar.create(booking())

    assert (made.start, made.end, made.status) == (SLOT, SLOT + hours(0.5), "confirmed")
    [event] = emu.live_events()
    assert event["id"] == made.provider_booking_id
    assert event["start"] == {"dateTime": "2026-12-01T15:00:00.0000000", "timeZone": "UTC"}
    assert event["attendees"][0]["emailAddress"] == {
        "address": "ada@example.com", "name": "Ada Lovelace"
    }  # fmt: skip
    assert event["transactionId"] == transaction_id("call-1")
    assert event["subject"] == "Consultation with Ada Lovelace"
    assert "Tue 01 Dec 2026 10:00 (America/New_York)" in event["body"]["content"]
    assert await calendar.get(made.provider_booking_id) == made

    cancelled = await calendar.cancel(made.provider_booking_id, "caller asked")

    assert cancelled.status == "cancelled"
    assert emu.live_events() == []
    assert await calendar.busy(SLOT, SLOT + hours(1)) == []
    found = await calendar.get(made.provider_booking_id)
    assert found is not None and found.status == "cancelled"
    assert (await calendar.cancel(made.provider_booking_id)).status == "cancelled"  # again: fine
    assert await calendar.get("AAMkADunknown=") is None


async def test_a_busy_slot_is_refused_before_writing(
    emu: GraphEmulator, session: aiohttp.ClientSession
) -> None:
    emu.add_event(MAILBOX, SLOT + hours(0.25), SLOT + hours(1), show_as="tentative")
    emu.add_event(MAILBOX, SLOT - hours(1), SLOT + hours(2), show_as="free")
    calendar, _ = connect(emu, session)

    with pytest.raises(SlotTaken):
        await calendar.create(booking())
    assert emu.counts[CREATE] == 0

    made = await calendar.create(booking("call-2", SLOT + hours(1)))  # "free" does not block
    assert made.status == "confirmed"


async def test_a_dropped_create_answer_is_retried_and_deduplicated_by_transaction_id(
    emu: GraphEmulator, session: aiohttp.ClientSession
) -> None:
    emu.drop_next_on(CREATE)
    calendar, _ = connect(emu, session)

    made = await calendar.create(booking())

    assert emu.counts[CREATE] == 2
    assert [e["id"] for e in emu.live_events()] == [made.provider_booking_id]


async def test_a_retried_booking_returns_the_event_already_made(
    emu: GraphEmulator, session: aiohttp.ClientSession
) -> None:
    calendar, _ = connect(emu, session)
    first = await calendar.create(booking())

    again = await calendar.create(booking())

    assert again == first
    assert emu.counts[CREATE] == 1
    assert len(emu.live_events()) == 1


async def test_reschedule_moves_the_event_in_place(
    emu: GraphEmulator, session: aiohttp.ClientSession
) -> None:
    calendar, _ = connect(emu, session)
    assert isinstance(calendar, Rescheduler)
    made = await calendar.create(booking())

    moved_to = SLOT + hours(0.25)  # overlaps its own old time: only other events count

    later = await calendar.reschedule(made.provider_booking_id, booking(start=moved_to))

    assert (later.provider_booking_id, later.start) == (made.provider_booking_id, moved_to)
    [event] = emu.live_events()
    assert event["start"]["dateTime"] == "2026-12-01T15:15:00.0000000"


async def test_reschedule_onto_a_busy_slot_keeps_the_old_time(
    emu: GraphEmulator, session: aiohttp.ClientSession
) -> None:
    calendar, _ = connect(emu, session)
    made = await calendar.create(booking())
    emu.add_event(MAILBOX, SLOT + hours(2), SLOT + hours(3))

    with pytest.raises(SlotTaken):
        await calendar.reschedule(made.provider_booking_id, booking(start=SLOT + hours(2)))

    assert await calendar.get(made.provider_booking_id) == made
    assert emu.counts["PATCH /v1.0/users/{user}/events/{id}"] == 0


@pytest.mark.parametrize("same_instant", [False, True], ids=["created-apart", "created-tie"])
async def test_two_bookers_racing_for_one_slot_leave_exactly_one_event(same_instant: bool) -> None:
    instant = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    async with GraphEmulator(clock=(lambda: instant) if same_instant else None) as emu:
        emu.schedule_barrier(2)  # both free checks answer together: both see the slot free
        async with aiohttp.ClientSession() as one, aiohttp.ClientSession() as two:
            first, _ = connect(emu, one)
            second, _ = connect(emu, two)
            results = await asyncio.gather(
                first.create(booking("call-A")), second.create(booking("call-B")),
                return_exceptions=True,
            )  # fmt: skip

    taken = [r for r in results if isinstance(r, SlotTaken)]
    made = [r for r in results if not isinstance(r, BaseException)]
    assert len(taken) == 1 and len(made) == 1, results
    assert len(emu.created) == 2  # both wrote; the post-write check decided
    winner = min(emu.created)[1]  # earlier createdDateTime, then the smaller id
    assert [e["id"] for e in emu.live_events()] == [winner] == [made[0].provider_booking_id]
    assert emu.counts["DELETE /v1.0/users/{user}/events/{id}"] == 1


async def test_requests_per_booking(emu: GraphEmulator, session: aiohttp.ClientSession) -> None:
    calendar, _ = connect(emu, session)

    await calendar.create(booking())

    assert calendar.requests == 3
    assert {key: n for key, n in emu.counts.items() if n} == {
        TOKEN: 1, SCHEDULE: 1, CREATE: 1, VIEW: 1
    }  # fmt: skip


# ---- tokens and throttling ------------------------------------------------------------------


async def test_an_expired_token_is_refreshed_and_the_call_repeated(
    emu: GraphEmulator, session: aiohttp.ClientSession
) -> None:
    calendar, auth = connect(emu, session)
    await calendar.busy(SLOT, SLOT + hours(1))
    emu.expire_tokens()

    assert await calendar.busy(SLOT, SLOT + hours(1)) == []

    assert auth.fetches == 2
    assert [r.status for r in emu.requests if r.route.endswith("getSchedule")] == [200, 401, 200]


async def test_the_token_is_renewed_shortly_before_it_expires(
    emu: GraphEmulator, session: aiohttp.ClientSession
) -> None:
    now = [0.0]
    auth = ClientCredentialsAuth(
        emu.token_url, CLIENT_ID, CLIENT_SECRET, session=session, clock=lambda: now[0]
    )
    first = await auth.header()
    now[0] = 3599 - 301  # the emulator's tokens live 3599 s; renewal starts 300 s early
    assert await auth.header() == first
    now[0] += 2

    assert await auth.header() != first
    assert auth.fetches == 2


async def test_concurrent_callers_share_one_token_fetch(
    emu: GraphEmulator, session: aiohttp.ClientSession
) -> None:
    auth = ClientCredentialsAuth(emu.token_url, CLIENT_ID, CLIENT_SECRET, session=session)
    headers = await asyncio.gather(*(auth.header() for _ in range(8)))
    assert len(set(headers)) == 1 and headers[0].startswith("Bearer emu.")
    assert auth.fetches == 1 and emu.counts[TOKEN] == 1


@pytest.mark.parametrize(
    ("secret", "tenant", "expected"),
    [("hunter2-not-the-secret", None, "AADSTS7000215"), (CLIENT_SECRET, "other", "AADSTS90002")],
    ids=["wrong-secret", "unknown-tenant"],
)
async def test_refused_credentials_are_an_auth_error_without_the_secret(
    emu: GraphEmulator, session: aiohttp.ClientSession, secret: str, tenant: str | None,
    expected: str,
) -> None:  # fmt: skip
    token_url = emu.token_url.replace(emu.identity.tenant_id, tenant) if tenant else emu.token_url
    auth = ClientCredentialsAuth(token_url, CLIENT_ID, secret, session=session)
    calendar = OutlookCalendar(emu.origin, MAILBOX, auth, ZONE, session=session)

    with pytest.raises(ProviderAuthError, match=expected) as caught:
        await calendar.busy(SLOT, SLOT + hours(1))

    assert secret not in str(caught.value)
    assert emu.counts[SCHEDULE] == 0


async def test_a_throttled_call_is_retried_after_retry_after(
    emu: GraphEmulator, session: aiohttp.ClientSession
) -> None:
    emu.throttle_next(1, retry_after_s=1)  # capped to FAST.max_delay_s by the client
    calendar, _ = connect(emu, session)

    assert await calendar.busy(SLOT, SLOT + hours(1)) == []

    assert [r.status for r in emu.requests if r.route.endswith("getSchedule")] == [429, 200]


# ---- the emulator's request validation ------------------------------------------------------

WHEN = {"dateTime": "2026-12-01T15:00:00", "timeZone": "UTC"}
LATER = {"dateTime": "2026-12-01T15:30:00", "timeZone": "UTC"}
EVENTS = "/v1.0/users/bookings@contoso.example/events"
GET_SCHEDULE = "/v1.0/users/bookings@contoso.example/calendar/getSchedule"


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        (EVENTS, {"subject": "x", "start": WHEN, "end": LATER}, 201),
        (EVENTS, {"subject": "x", "start": WHEN}, 400),  # no end
        (EVENTS, {"start": "2026-12-01T15:00:00Z", "end": LATER}, 400),  # not dateTimeTimeZone
        (EVENTS, {"start": WHEN, "end": LATER, "colour": "red"}, 400),  # not an event property
        (EVENTS, {"start": WHEN, "end": LATER, "attendees": [{"type": "required"}]}, 400),
        (EVENTS, {"start": WHEN, "end": LATER, "showAs": "away"}, 400),
        (EVENTS, {"start": LATER, "end": WHEN}, 400),  # ends before it starts
        (EVENTS, {"start": {**WHEN, "timeZone": "Mars/Olympus"}, "end": LATER}, 400),
        (GET_SCHEDULE, {"Schedules": [MAILBOX], "StartTime": WHEN, "EndTime": LATER}, 200),
        (GET_SCHEDULE, {"schedules": MAILBOX, "startTime": WHEN, "endTime": LATER}, 400),
        (GET_SCHEDULE, {"schedules": [MAILBOX], "startTime": WHEN}, 400),
        (GET_SCHEDULE, {"schedules": [MAILBOX], "startTime": WHEN, "endTime": LATER,
                        "availabilityViewInterval": 3}, 400),  # fmt: skip
    ],
)
async def test_the_emulator_validates_request_bodies(
    emu: GraphEmulator, session: aiohttp.ClientSession, path: str, body: Any, status: int
) -> None:
    auth = ClientCredentialsAuth(emu.token_url, CLIENT_ID, CLIENT_SECRET, session=session)
    headers = {"Authorization": await auth.header()}
    async with session.post(emu.origin + path, json=body, headers=headers) as response:
        answer = await response.json()
    assert response.status == status, answer
    if status == 400:
        assert answer["error"]["code"] in ("BadRequest", "TimeZoneNotSupportedException")
        assert answer["error"]["message"]


async def test_the_emulator_answers_graph_401_without_a_token(
    emu: GraphEmulator, session: aiohttp.ClientSession
) -> None:
    async with session.post(emu.origin + EVENTS, json={"start": WHEN, "end": LATER}) as response:
        answer = await response.json()
    assert response.status == 401
    assert answer == {
        "error": {"code": "InvalidAuthenticationToken", "message": "Access token is empty."}
    }
    assert emu.live_events() == []


# ---- an e-mail given after booking ------------------------------------------------------------


async def test_a_late_email_becomes_a_required_attendee(
    emu: GraphEmulator, session: aiohttp.ClientSession
) -> None:
    calendar, _ = connect(emu, session)
    assert isinstance(calendar, AttendeeUpdater)
    request = booking()
    made = await calendar.create(BookingRequest(
        request.start, request.end, Attendee("", phone="+15551230000"), "call-late",
        "Consultation"))
    [event] = emu.live_events()
    assert event["attendees"] == []
    later = Attendee("Ada Lovelace", "ada.l@example.org")
    await calendar.update_attendee(made.provider_booking_id, later)
    await calendar.update_attendee(made.provider_booking_id, later)  # again: still one entry
    [event] = emu.live_events()
    assert [a["emailAddress"] for a in event["attendees"]] == [
        {"address": "ada.l@example.org", "name": "Ada Lovelace"}]
    assert event["attendees"][0]["type"] == "required"


async def test_a_late_email_for_a_cancelled_event_is_an_error(
    emu: GraphEmulator, session: aiohttp.ClientSession
) -> None:
    calendar, _ = connect(emu, session)
    made = await calendar.create(booking())
    await calendar.cancel(made.provider_booking_id, "caller asked")
    with pytest.raises(ProviderError, match="cancelled"):
        await calendar.update_attendee(made.provider_booking_id, Attendee("Ada", "a@example.org"))
