"""Google Calendar adapter against the Calendar v3 emulator, over real loopback sockets.

Covers free/busy (half-open), create/get/cancel/reschedule, write-once under a dropped response
and under a race between two adapters, tokens (service account and refresh token: caching,
expiry, bad credentials), retries, and the emulator's checks against the discovery document.
Requests per booking (happy path): freeBusy + insert + list = 3, plus one token per lifetime.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from slotline.providers.calendars.base import (
    Attendee,
    AttendeeUpdater,
    BookingRequest,
    BusyInterval,
    CalendarProvider,
    Rescheduler,
)
from slotline.providers.calendars.google import GoogleCalendar, event_id_for
from slotline.providers.calendars.google_auth import RefreshTokenAuth, ServiceAccountAuth
from slotline.providers.emulators._google_discovery import load_methods
from slotline.providers.emulators.google_calendar import GoogleCalendarEmulator
from slotline.providers.errors import ConfigError, ProviderAuthError, ProviderError, SlotTaken
from slotline.providers.http import RetryPolicy

SA_EMAIL = "slotline@project.iam.gserviceaccount.com"
OWNER = "owner@example.com"
ZONE = "America/New_York"
T0 = datetime(2026, 12, 1, 14, 0, tzinfo=UTC)  # 09:00 in New York
EVENTS = "/calendar/v3/calendars/{calendarId}/events"
EVENT = EVENTS + "/{eventId}"
FREEBUSY = "/calendar/v3/freeBusy"


def write_service_account(path: Path, key_id: str = "k1") -> str:
    """A throwaway service-account key file; returns the public key (PEM) to register."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    path.write_text(json.dumps({
        "type": "service_account", "project_id": "p", "private_key_id": key_id,
        "private_key": private_pem, "client_email": SA_EMAIL, "client_id": "1",
        "token_uri": "https://oauth2.googleapis.com/token",
    }))
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


@pytest.fixture(scope="module")
def key_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("google")


@pytest.fixture(scope="module")
def sa_file(key_dir: Path) -> tuple[Path, str]:
    path = key_dir / "sa.json"
    return path, write_service_account(path)


@pytest.fixture
async def emulator(sa_file: tuple[Path, str]) -> AsyncIterator[GoogleCalendarEmulator]:
    async with GoogleCalendarEmulator(calendars=("primary", "team@example.com")) as emu:
        emu.add_service_account(SA_EMAIL, sa_file[1], key_id="k1")
        yield emu


def sa_auth(emu: GoogleCalendarEmulator, path: Path, **kwargs: Any) -> ServiceAccountAuth:
    return ServiceAccountAuth(path, token_url=emu.token_url, subject=OWNER, **kwargs)


@pytest.fixture
async def auth(
    emulator: GoogleCalendarEmulator, sa_file: tuple[Path, str]
) -> AsyncIterator[ServiceAccountAuth]:
    source = sa_auth(emulator, sa_file[0])
    yield source
    await source.aclose()


@pytest.fixture
async def calendar(
    emulator: GoogleCalendarEmulator, auth: ServiceAccountAuth
) -> AsyncIterator[GoogleCalendar]:
    async with GoogleCalendar(emulator.base_url, "primary", auth, ZONE) as cal:
        yield cal


def booking(start: datetime, minutes: int = 30, key: str = "call-1") -> BookingRequest:
    return BookingRequest(
        start=start, end=start + timedelta(minutes=minutes),
        attendee=Attendee(name="Ada Lovelace", email="ada@example.com", phone="+15550100"),
        idempotency_key=f"{key}/{start.isoformat()}", title="Consultation",
        fields={"reason": "checkup"},
    )


def api_counts(emu: GoogleCalendarEmulator) -> dict[str, int]:
    return {k: v for k, v in emu.counts.items() if "/calendar/v3" in k}


# ---- free/busy ---------------------------------------------------------------------------------


async def test_busy_is_half_open_clipped_and_merged(
    emulator: GoogleCalendarEmulator, calendar: GoogleCalendar
) -> None:
    emulator.add_event("primary", T0, T0 + timedelta(minutes=30))
    emulator.add_event("primary", T0 + timedelta(minutes=30), T0 + timedelta(hours=1))  # adjacent
    emulator.add_event("primary", T0 + timedelta(hours=2), T0 + timedelta(hours=3),
                       transparency="transparent")  # shown as free
    hour = timedelta(hours=1)
    assert await calendar.busy(T0 - hour, T0) == []  # ends where the event starts
    assert await calendar.busy(T0 + hour, T0 + 2 * hour) == []  # starts where it ends
    assert await calendar.busy(T0 - hour, T0 + 4 * hour) == [BusyInterval(T0, T0 + hour)]
    assert await calendar.busy(T0 + timedelta(minutes=15), T0 + 2 * hour) == [
        BusyInterval(T0 + timedelta(minutes=15), T0 + hour)
    ]


async def test_busy_surfaces_per_calendar_errors(
    emulator: GoogleCalendarEmulator, auth: ServiceAccountAuth
) -> None:
    async with GoogleCalendar(emulator.base_url, "nobody@example.com", auth, ZONE) as cal:
        with pytest.raises(ProviderError, match="notFound") as caught:
            await cal.busy(T0, T0 + timedelta(hours=1))
    assert not caught.value.retryable


# ---- create / get / cancel / reschedule ------------------------------------------------------


async def test_create_get_cancel(
    emulator: GoogleCalendarEmulator, calendar: GoogleCalendar
) -> None:
    assert isinstance(calendar, Rescheduler)
    provider: CalendarProvider = calendar
    request = booking(T0)
    made = await provider.create(request)
    assert made.provider_booking_id == event_id_for(request.idempotency_key)
    assert (made.start, made.end, made.status) == (T0, request.end, "confirmed")
    # Requests per booking: freeBusy, insert, overlap list (+ the first token).
    assert api_counts(emulator) == {f"POST {FREEBUSY}": 1, f"POST {EVENTS}": 1, f"GET {EVENTS}": 1}
    [event] = emulator.events()
    assert event["start"] == {"dateTime": "2026-12-01T09:00:00-05:00", "timeZone": ZONE}
    assert event["attendees"][0]["email"] == "ada@example.com"
    assert "reason: checkup" in event["description"]
    assert [(n.kind, n.emails) for n in emulator.notifications] == [
        ("invite", ("ada@example.com",))]

    assert await provider.get(made.provider_booking_id) == made
    assert await provider.get("nosuchevent0") is None
    cancelled = await provider.cancel(made.provider_booking_id, "caller asked")
    assert (cancelled.status, cancelled.start) == ("cancelled", T0)
    assert emulator.events() == []
    assert (await provider.get(made.provider_booking_id)) == cancelled
    assert await provider.cancel(made.provider_booking_id) == cancelled  # idempotent
    assert emulator.counts[f"DELETE {EVENT}"] == 1
    assert emulator.notifications[-1].kind == "cancel"


async def test_reschedule_moves_the_event_when_free(
    emulator: GoogleCalendarEmulator, calendar: GoogleCalendar
) -> None:
    made = await calendar.create(booking(T0))
    later = booking(T0 + timedelta(minutes=15))  # overlaps its own old time: that is fine
    moved = await calendar.reschedule(made.provider_booking_id, later, "running late")
    assert (moved.provider_booking_id, moved.start, moved.end) == (
        made.provider_booking_id, later.start, later.end)
    [event] = emulator.events()
    assert event["sequence"] == 1 and "Rescheduled: running late" in event["description"]
    assert await calendar.busy(T0, T0 + timedelta(minutes=15)) == []

    emulator.add_event("primary", T0 + timedelta(hours=3), T0 + timedelta(hours=4))
    with pytest.raises(SlotTaken):
        await calendar.reschedule(made.provider_booking_id, booking(T0 + timedelta(hours=3)))
    assert (await calendar.get(made.provider_booking_id)) == moved


async def test_busy_slot_raises_slot_taken_without_writing(
    emulator: GoogleCalendarEmulator, calendar: GoogleCalendar
) -> None:
    emulator.add_event("primary", T0 + timedelta(minutes=20), T0 + timedelta(minutes=50))
    with pytest.raises(SlotTaken):
        await calendar.create(booking(T0))
    assert emulator.counts[f"POST {EVENTS}"] == 0
    assert len(emulator.events()) == 1


# ---- write-once ---------------------------------------------------------------------------------


async def test_insert_retried_after_dropped_response_makes_one_event(
    emulator: GoogleCalendarEmulator, calendar: GoogleCalendar
) -> None:
    emulator.drop_next(method="calendar.events.insert")
    made = await calendar.create(booking(T0))
    assert emulator.counts[f"POST {EVENTS}"] == 2  # the retry got 409, then read the event
    assert [r.status for r in emulator.requests if r.route == EVENTS and r.method == "POST"] == [
        200, 409]
    assert [e["id"] for e in emulator.events()] == [made.provider_booking_id]
    # The caller retrying the whole create (same key) gets the same booking back.
    assert await calendar.create(booking(T0)) == made
    assert len(emulator.events()) == 1


async def test_two_adapters_racing_for_one_slot_leave_one_event(
    emulator: GoogleCalendarEmulator, sa_file: tuple[Path, str]
) -> None:
    emulator.latency_ms = 20  # both free/busy checks answer before either insert lands
    auths = [sa_auth(emulator, sa_file[0]) for _ in range(2)]
    try:
        async with (
            GoogleCalendar(emulator.base_url, "primary", auths[0], ZONE) as a,
            GoogleCalendar(emulator.base_url, "primary", auths[1], ZONE) as b,
        ):
            await asyncio.gather(*(x.header() for x in auths))
            results = await asyncio.gather(
                a.create(booking(T0, key="call-a")), b.create(booking(T0, key="call-b")),
                return_exceptions=True,
            )
    finally:
        await asyncio.gather(*(x.aclose() for x in auths))
    taken = [r for r in results if isinstance(r, SlotTaken)]
    kept = [r for r in results if not isinstance(r, BaseException)]
    assert len(taken) == 1 and len(kept) == 1, results
    assert emulator.counts[f"POST {EVENTS}"] == 2  # both passed free/busy: the settle step decided
    assert [e["id"] for e in emulator.events()] == [kept[0].provider_booking_id]
    assert emulator.counts[f"DELETE {EVENT}"] == 1


async def test_same_key_twice_concurrently_is_one_booking(
    emulator: GoogleCalendarEmulator, calendar: GoogleCalendar
) -> None:
    first, second = await asyncio.gather(calendar.create(booking(T0)), calendar.create(booking(T0)))
    assert first == second
    assert len(emulator.events()) == 1


# ---- auth --------------------------------------------------------------------------------------


async def test_token_is_cached_then_refreshed_after_expiry(
    emulator: GoogleCalendarEmulator, auth: ServiceAccountAuth, calendar: GoogleCalendar
) -> None:
    await calendar.busy(T0, T0 + timedelta(hours=1))
    await calendar.busy(T0, T0 + timedelta(hours=1))
    assert (emulator.tokens_issued, auth.fetches) == (1, 1)
    emulator.expire_tokens()
    assert await calendar.busy(T0, T0 + timedelta(hours=1)) == []  # 401, new token, retried
    assert (emulator.tokens_issued, auth.fetches) == (2, 2)
    assert [r.status for r in emulator.requests if r.route == FREEBUSY] == [200, 200, 401, 200]


async def test_token_is_reused_until_a_minute_before_expiry(
    emulator: GoogleCalendarEmulator, sa_file: tuple[Path, str]
) -> None:
    now = [1000.0]
    auth = sa_auth(emulator, sa_file[0], clock=lambda: now[0])
    try:
        first = await auth.header()
        now[0] += 3600 - 61
        assert await auth.header() == first
        now[0] += 2  # 59 s left
        assert await auth.header() != first
        assert auth.fetches == 2
        emulator.oauth.ttl_s = 30  # a short-lived token is renewed at half-life
        auth.invalidate()
        short = await auth.header()
        now[0] += 14
        assert await auth.header() == short
        now[0] += 2
        assert await auth.header() != short
    finally:
        await auth.aclose()


async def test_bad_service_account_key_is_an_auth_error(
    emulator: GoogleCalendarEmulator, key_dir: Path
) -> None:
    path = key_dir / "stranger.json"
    write_service_account(path)  # same account name, a key Google never saw
    auth = sa_auth(emulator, path)
    try:
        async with GoogleCalendar(emulator.base_url, "primary", auth, ZONE) as cal:
            with pytest.raises(ProviderAuthError, match="invalid_grant"):
                await cal.busy(T0, T0 + timedelta(hours=1))
    finally:
        await auth.aclose()
    assert emulator.counts[f"POST {FREEBUSY}"] == 0


async def test_unreadable_service_account_file_is_a_config_error(key_dir: Path) -> None:
    path = key_dir / "not-a-key.json"
    path.write_text(json.dumps({"type": "authorized_user"}))
    with pytest.raises(ConfigError, match="service_account"):
        ServiceAccountAuth(path)


async def test_refresh_token_auth(emulator: GoogleCalendarEmulator) -> None:
    emulator.add_refresh_token("cid", "secret", "1//refresh")
    good = RefreshTokenAuth("cid", "secret", "1//refresh", emulator.token_url)
    revoked = RefreshTokenAuth("cid", "secret", "1//old", emulator.token_url)
    wrong_client = RefreshTokenAuth("cid", "wrong", "1//refresh", emulator.token_url)
    try:
        async with GoogleCalendar(emulator.base_url, "primary", good, ZONE) as cal:
            assert (await cal.create(booking(T0))).status == "confirmed"
        for auth, reason in ((revoked, "invalid_grant"), (wrong_client, "client was not found")):
            async with GoogleCalendar(emulator.base_url, "primary", auth, ZONE) as cal:
                with pytest.raises(ProviderAuthError, match=reason):
                    await cal.busy(T0, T0 + timedelta(hours=1))
    finally:
        await asyncio.gather(good.aclose(), revoked.aclose(), wrong_client.aclose())


async def test_service_account_without_delegation_books_without_inviting(
    emulator: GoogleCalendarEmulator, sa_file: tuple[Path, str]
) -> None:
    auth = ServiceAccountAuth(sa_file[0], token_url=emulator.token_url)  # no subject
    try:
        async with GoogleCalendar(emulator.base_url, "primary", auth, ZONE) as cal:
            with pytest.raises(ProviderAuthError, match="Domain-Wide Delegation"):
                await cal.create(booking(T0))
        async with GoogleCalendar(
            emulator.base_url, "primary", auth, ZONE, invite_attendees=False
        ) as cal:
            await cal.create(booking(T0))
    finally:
        await auth.aclose()
    [event] = emulator.events()
    assert "attendees" not in event and "Email: ada@example.com" in event["description"]


# ---- retries -----------------------------------------------------------------------------------


async def test_503_is_retried_then_reported(
    emulator: GoogleCalendarEmulator, calendar: GoogleCalendar
) -> None:
    await calendar.busy(T0, T0 + timedelta(hours=1))  # token in hand
    emulator.fail_next(503)
    assert await calendar.busy(T0, T0 + timedelta(hours=1)) == []
    assert emulator.counts[f"POST {FREEBUSY}"] == 3
    emulator.fail_next(503, count=RetryPolicy().attempts)
    with pytest.raises(ProviderError, match="503") as caught:
        await calendar.busy(T0, T0 + timedelta(hours=1))
    assert caught.value.retryable


# ---- the emulator checks requests against the discovery document -----------------------------


@pytest.fixture
async def raw(
    emulator: GoogleCalendarEmulator, auth: ServiceAccountAuth
) -> AsyncIterator[tuple[aiohttp.ClientSession, dict[str, str]]]:
    async with aiohttp.ClientSession() as session:
        yield session, {"Authorization": await auth.header()}


GOOD_EVENT = {"summary": "x", "start": {"dateTime": "2026-12-01T09:00:00-05:00"},
              "end": {"dateTime": "2026-12-01T09:30:00-05:00"}}


@pytest.mark.parametrize(("method", "path", "body", "status", "needle"), [
    ("POST", "/calendars/primary/events", {**GOOD_EVENT, "colour": "red"}, 400, "colour"),
    ("POST", "/calendars/primary/events", {"summary": "x", "start": GOOD_EVENT["start"]}, 400,
     "end"),
    ("POST", "/calendars/primary/events", {**GOOD_EVENT, "summary": 5}, 400, "summary"),
    ("POST", "/calendars/primary/events", {**GOOD_EVENT, "id": "UPPER_case"}, 400, "id value"),
    ("POST", "/calendars/primary/events?sendUpdates=everyone", GOOD_EVENT, 400, "sendUpdates"),
    ("POST", "/calendars/primary/events?notifyAll=true", GOOD_EVENT, 400, "notifyAll"),
    ("GET", "/calendars/primary/events?timeMin=2026-12-01T09:00:00", None, 400, "timeMin"),
    ("GET", "/calendars/primary/events?maxResults=0", None, 400, "maxResults"),
    ("POST", "/freeBusy", {"timeMin": "tomorrow", "items": []}, 400, "timeMin"),
    ("PUT", "/freeBusy", {}, 404, "Not Found"),
])
async def test_emulator_rejects_non_conforming_requests(
    emulator: GoogleCalendarEmulator, raw: tuple[aiohttp.ClientSession, dict[str, str]],
    method: str, path: str, body: Any, status: int, needle: str,
) -> None:
    session, headers = raw
    url = f"{emulator.base_url}/calendar/v3{path}"
    async with session.request(method, url, json=body, headers=headers) as response:
        answer = await response.json()
    assert response.status == status, answer
    assert answer["error"]["code"] == status and needle in answer["error"]["message"]
    assert emulator.events() == []


async def test_emulator_rejects_missing_expired_and_underscoped_tokens(
    emulator: GoogleCalendarEmulator, raw: tuple[aiohttp.ClientSession, dict[str, str]]
) -> None:
    session, headers = raw
    url = f"{emulator.base_url}/calendar/v3/calendars/primary/events"
    async with session.get(url) as response:
        assert response.status == 401
        assert (await response.json())["error"]["status"] == "UNAUTHENTICATED"
    emulator.expire_tokens()
    async with session.get(url, headers=headers) as response:
        error = (await response.json())["error"]
    assert (response.status, error["status"], error["errors"][0]["reason"]) == (
        401, "UNAUTHENTICATED", "authError")
    readonly = "https://www.googleapis.com/auth/calendar.readonly"
    emulator.add_refresh_token("cid", "secret", "1//ro", scopes=(readonly,))
    auth = RefreshTokenAuth("cid", "secret", "1//ro", emulator.token_url)
    try:
        headers = {"Authorization": await auth.header()}
    finally:
        await auth.aclose()
    async with session.get(url, headers=headers) as response:
        assert response.status == 200  # list allows calendar.readonly
    async with session.post(url, json=GOOD_EVENT, headers=headers) as response:
        assert response.status == 403  # insert does not


def test_discovery_methods_are_read_from_googles_document() -> None:
    methods = load_methods()
    insert = methods["calendar.events.insert"]
    assert (insert.http_method, insert.route) == ("POST", EVENTS)
    assert insert.body is not None and insert.body_problem(GOOD_EVENT) is None
    assert insert.body_problem({"summary": "no times"}) is not None
    patch = methods["calendar.events.patch"]
    assert patch.body is not None and patch.body_problem({"summary": "no times"}) is None


# ---- a name and an e-mail given after booking -------------------------------------------------


async def test_a_late_email_is_patched_onto_the_event_and_invited(
    emulator: GoogleCalendarEmulator, calendar: GoogleCalendar
) -> None:
    assert isinstance(calendar, AttendeeUpdater)
    request = booking(T0)
    made = await calendar.create(BookingRequest(
        request.start, request.end, Attendee("", phone="+15550100"), request.idempotency_key,
        request.title))
    [event] = emulator.events()
    assert "attendees" not in event  # no address yet: nobody to invite
    later = Attendee("Ada Lovelace", "ada.l@example.org")
    await calendar.update_attendee(made.provider_booking_id, later)
    await calendar.update_attendee(made.provider_booking_id, later)  # twice: one guest
    [event] = emulator.events()
    assert event["attendees"] == [{"email": "ada.l@example.org", "displayName": "Ada Lovelace"}]
    assert emulator.counts[f"PATCH {EVENT}"] == 2
    assert emulator.notifications[-1].kind == "update"


async def test_without_invitations_a_late_email_goes_into_the_description(
    emulator: GoogleCalendarEmulator, auth: ServiceAccountAuth
) -> None:
    async with GoogleCalendar(emulator.base_url, "primary", auth, ZONE,
                              invite_attendees=False) as calendar:
        made = await calendar.create(booking(T0))
        await calendar.update_attendee(made.provider_booking_id,
                                       Attendee("Ada", "ada.second@example.org"))
    [event] = emulator.events()
    assert "attendees" not in event
    assert "Email: ada.second@example.org" in event["description"]
