"""CalcomCalendar against the Cal.com emulator over 127.0.0.1: Cal.com's own slots (zones, a DST
day), write-once create (holds, lookups after lost answers, concurrency), get/cancel, reschedule
to a new uid, error mapping and retries — and the emulator's own checks (versions, bodies)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from slotline.providers.calendars.base import (
    Attendee,
    AttendeeUpdater,
    BookingRequest,
    Rescheduler,
    SlotSource,
)
from slotline.providers.calendars.calcom import CalcomCalendar
from slotline.providers.emulators.calcom import TAKEN, TAKEN_TEAM, CalcomEmulator
from slotline.providers.emulators.calcom_rules import WEEKDAYS, EventType
from slotline.providers.errors import ProviderAuthError, ProviderError, SlotTaken
from slotline.providers.http import RetryPolicy

KEY = "cal_live_test_0123456789"
NY = "America/New_York"
SOLO, DAILY, TEAM, STRICT, BUFFERED, APPROVAL = 101, 202, 303, 404, 505, 606
EVERY_DAY = {day: (("09:00", "17:00"),) for day in WEEKDAYS}
FAST = RetryPolicy(base_delay_s=0.001, max_delay_s=0.01, request_timeout_s=1.0, deadline_s=2.0)
DEC1_10AM = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)  # Tuesday 10:00 in New York
BOOKINGS, RESERVE = "POST /v2/bookings", "POST /v2/slots/reservations"
LOOKUP = "GET /v2/bookings"


@dataclass
class Clock:
    now: datetime = datetime(2026, 10, 28, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def event_types() -> list[EventType]:
    return [
        EventType(SOLO, 30, NY, slug="consult"),
        EventType(DAILY, 60, NY, weekly_hours=EVERY_DAY),
        EventType(TEAM, 30, NY, hosts=2),
        EventType(STRICT, 30, NY, min_notice_min=120, max_days_ahead=30),
        EventType(BUFFERED, 30, NY, buffer_after_min=15),
        EventType(APPROVAL, 30, NY, requires_confirmation=True),
    ]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def emu(clock: Clock) -> AsyncIterator[CalcomEmulator]:
    async with CalcomEmulator(KEY, event_types(), clock=clock) as emulator:
        yield emulator


@pytest.fixture
async def cal(emu: CalcomEmulator) -> AsyncIterator[CalcomCalendar]:
    async with CalcomCalendar(emu.base_url, KEY, SOLO, retry=FAST) as calendar:
        await calendar.prepare()  # as the server's start-up does: the event type, read once
        yield calendar


def adapter(emu: CalcomEmulator, event_type: int = SOLO, key: str = KEY) -> CalcomCalendar:
    return CalcomCalendar(emu.base_url, key, event_type, retry=FAST)


def ask(start: datetime = DEC1_10AM, key: str = "call-1", email: str = "ann@example.com",
        minutes: int = 30) -> BookingRequest:
    return BookingRequest(
        start, start + timedelta(minutes=minutes),
        Attendee("Ann Lee", email, "+15551234567", NY), key, "Consultation", {"notes": "first"},
    )


async def raw(emu: CalcomEmulator, method: str, path: str, *, version: str | None,
              body: Any = None, params: dict[str, str] | None = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {KEY}"}
    if version is not None:
        headers["cal-api-version"] = version
    async with aiohttp.ClientSession() as http:
        async with http.request(method, emu.base_url + path, json=body, params=params,
                                headers=headers) as response:
            return response.status, await response.json()


def booking_body(start: datetime, email: str) -> dict[str, Any]:
    return {"start": start.isoformat().replace("+00:00", "Z"), "eventTypeId": SOLO,
            "attendee": {"name": "Bo", "email": email, "timeZone": NY}}


# ---- slots ---------------------------------------------------------------------------------


async def test_slots_come_from_calcom_in_the_asked_zone(
    emu: CalcomEmulator, cal: CalcomCalendar
) -> None:
    start, end = datetime(2026, 12, 1, 5, tzinfo=UTC), datetime(2026, 12, 2, tzinfo=UTC)
    params = {"eventTypeId": str(SOLO), "start": "2026-12-01T05:00:00Z",
              "end": "2026-12-02T00:00:00Z", "timeZone": NY, "format": "range"}
    status, body = await raw(emu, "GET", "/v2/slots", version="2024-09-04", params=params)
    assert status == 200 and body["status"] == "success"
    first = body["data"]["2026-12-01"][0]
    assert first == {"start": "2026-12-01T09:00:00.000-05:00",
                     "end": "2026-12-01T09:30:00.000-05:00"}
    assert "2026-12-02" in body["data"]  # Cal.com widens an end at 00:00:00 to 23:59:59

    slots = await cal.free_slots(start, end, 30, NY)
    assert isinstance(cal, SlotSource) and isinstance(cal, Rescheduler)
    assert len(slots) == 16  # 09:00–17:00 by 30 min, and nothing of Dec 2 leaks in
    assert slots[0].start == datetime(2026, 12, 1, 14, tzinfo=UTC)
    assert slots[-1].end == datetime(2026, 12, 1, 22, tzinfo=UTC)
    assert await cal.busy(start, end) == []


async def test_slots_on_the_dst_day_keep_local_hours(emu: CalcomEmulator) -> None:
    params = {"eventTypeId": str(DAILY), "start": "2026-10-31T04:00:00Z",
              "end": "2026-11-02T04:59:00Z", "timeZone": NY, "format": "range"}
    status, body = await raw(emu, "GET", "/v2/slots", version="2024-09-04", params=params)
    assert status == 200
    days = body["data"]
    assert days["2026-10-31"][0]["start"] == "2026-10-31T09:00:00.000-04:00"
    assert days["2026-11-01"][0]["start"] == "2026-11-01T09:00:00.000-05:00"
    assert days["2026-11-01"][-1]["end"] == "2026-11-01T17:00:00.000-05:00"
    async with adapter(emu, DAILY) as cal:
        slots = await cal.free_slots(
            datetime(2026, 10, 31, 4, tzinfo=UTC), datetime(2026, 11, 2, 4, 59, tzinfo=UTC), 60, NY
        )
    firsts = [s.start for s in slots if s.start.hour in (13, 14) and s.start.minute == 0]
    assert datetime(2026, 10, 31, 13, tzinfo=UTC) in firsts  # 09:00 EDT
    assert datetime(2026, 11, 1, 14, tzinfo=UTC) in firsts  # 09:00 EST, after the change
    assert datetime(2026, 11, 1, 13, tzinfo=UTC) not in [s.start for s in slots]
    assert len(slots) == 16  # 8 hourly slots on each of the two days


async def test_slots_are_grouped_by_the_callers_date(emu: CalcomEmulator) -> None:
    params = {"eventTypeId": str(SOLO), "start": "2026-12-01T13:00:00Z",
              "end": "2026-12-01T16:00:00Z", "timeZone": "Asia/Tokyo"}
    status, body = await raw(emu, "GET", "/v2/slots", version="2024-09-04", params=params)
    assert status == 200
    assert body["data"]["2026-12-01"][0] == {"start": "2026-12-01T23:00:00.000+09:00"}
    assert body["data"]["2026-12-02"][0] == {"start": "2026-12-02T00:00:00.000+09:00"}


async def test_bookings_holds_and_buffers_leave_the_slots(emu: CalcomEmulator) -> None:
    window = (datetime(2026, 12, 1, 14, tzinfo=UTC), datetime(2026, 12, 1, 17, tzinfo=UTC))
    async with adapter(emu, BUFFERED) as cal:
        await cal.create(ask())
        status, _ = await raw(emu, "POST", "/v2/slots/reservations", version="2024-09-04",
                              body={"eventTypeId": BUFFERED, "slotStart": "2026-12-01T16:00:00Z"})
        assert status == 201
        starts = [s.start.strftime("%H:%M") for s in await cal.free_slots(*window, 30, NY)]
    # 15:00 booked; 14:30's own after-buffer and 15:30 (inside 15:00's) collide with it;
    # 16:00 held by someone
    assert starts == ["14:00", "16:30"]


# ---- write once ----------------------------------------------------------------------------


async def test_create_get_cancel(emu: CalcomEmulator, cal: CalcomCalendar) -> None:
    sent = cal.requests
    made = await cal.create(ask())
    assert cal.requests - sent == 2  # reservation + booking: the cost of one booking
    assert emu.counts[RESERVE] == 1 and emu.counts[BOOKINGS] == 1
    assert (made.start, made.end, made.status) == (DEC1_10AM, DEC1_10AM + timedelta(minutes=30),
                                                   "confirmed")
    [stored] = emu.live_bookings()
    assert stored["uid"] == made.provider_booking_id
    assert stored["metadata"] == {"slotline_key": "call-1", "notes": "first"}
    assert stored["attendees"][0]["phoneNumber"] == "+15551234567"
    assert not emu.live_holds()  # the booking consumed its hold

    assert await cal.get(made.provider_booking_id) == made
    gone = await cal.cancel(made.provider_booking_id, "caller cancelled")
    assert gone.status == "cancelled"
    assert (await cal.cancel(made.provider_booking_id)).status == "cancelled"  # repeat is fine
    assert emu.live_bookings() == []
    assert await cal.get("no-such-uid") is None


async def test_reschedule_returns_the_new_booking(emu: CalcomEmulator, cal: CalcomCalendar) -> None:
    old = await cal.create(ask())
    later = DEC1_10AM + timedelta(hours=2)
    new = await cal.reschedule(old.provider_booking_id, ask(later), "caller asked")
    assert new.provider_booking_id != old.provider_booking_id
    assert (new.start, new.status) == (later, "confirmed")
    assert (await cal.get(old.provider_booking_id)).status == "cancelled"  # type: ignore[union-attr]
    [live] = emu.live_bookings()
    assert live["rescheduledFromUid"] == old.provider_booking_id
    assert live["metadata"]["slotline_key"] == "call-1"


async def test_reschedule_onto_a_taken_time_is_slot_taken(emu: CalcomEmulator,
                                                          cal: CalcomCalendar) -> None:
    mine = await cal.create(ask())
    await cal.create(ask(DEC1_10AM + timedelta(hours=1), key="call-2", email="bo@example.com"))
    with pytest.raises(SlotTaken):
        await cal.reschedule(mine.provider_booking_id, ask(DEC1_10AM + timedelta(hours=1)))
    assert len(emu.live_bookings()) == 2


async def test_a_time_booked_by_someone_else_is_slot_taken(emu: CalcomEmulator,
                                                           cal: CalcomCalendar) -> None:
    async with adapter(emu) as other:
        await other.create(ask(key="other-call", email="bo@example.com"))
    sent = cal.requests
    with pytest.raises(SlotTaken):
        await cal.create(ask())
    assert cal.requests - sent == 3  # reservation refused, lookup (not ours), booking refused
    assert len(emu.live_bookings()) == 1


async def test_a_time_held_by_someone_else_is_slot_taken_until_the_hold_lapses(
    emu: CalcomEmulator, cal: CalcomCalendar, clock: Clock
) -> None:
    status, _ = await raw(emu, "POST", "/v2/slots/reservations", version="2024-09-04",
                          body={"eventTypeId": SOLO, "slotStart": "2026-12-01T15:00:00Z"})
    assert status == 201
    with pytest.raises(SlotTaken):
        await cal.create(ask())
    clock.now += timedelta(minutes=6)  # Cal.com's default hold is 5 minutes
    assert (await cal.create(ask())).status == "confirmed"


async def test_two_adapters_racing_for_one_slot_make_one_booking(emu: CalcomEmulator) -> None:
    async with adapter(emu) as a, adapter(emu) as b:
        results = await asyncio.gather(
            a.create(ask(key="call-a")), b.create(ask(key="call-b", email="bo@example.com")),
            return_exceptions=True,
        )
    assert sorted(type(r).__name__ for r in results) == ["ProviderBooking", "SlotTaken"]
    assert len(emu.live_bookings()) == 1


async def test_emulator_gives_one_201_to_two_concurrent_bookings(emu: CalcomEmulator) -> None:
    answers = await asyncio.gather(*(
        raw(emu, "POST", "/v2/bookings", version="2024-08-13",
            body=booking_body(DEC1_10AM, f"{who}@example.com"))
        for who in ("ann", "bo")
    ))
    assert sorted(status for status, _ in answers) == [201, 400]
    refused = next(body for status, body in answers if status == 400)
    assert refused["status"] == "error"
    assert refused["error"] == {"code": "BadRequestException", "message": TAKEN,
                                "details": refused["error"]["details"]}


async def test_a_lost_booking_answer_is_found_again(
    emu: CalcomEmulator, cal: CalcomCalendar
) -> None:
    emu.drop_next_on(BOOKINGS)  # Cal.com books, the answer never arrives
    made = await cal.create(ask())
    assert emu.counts[LOOKUP] == 1
    again = await cal.create(ask())  # the engine retrying anyway: still the same booking
    assert again.provider_booking_id == made.provider_booking_id
    assert [b["uid"] for b in emu.live_bookings()] == [made.provider_booking_id]
    assert emu.counts[BOOKINGS] == 1  # the booking POST itself was never repeated


async def test_a_retried_create_after_a_lost_answer_and_lookup_is_one_booking(
    emu: CalcomEmulator, cal: CalcomCalendar
) -> None:
    emu.drop_next_on(BOOKINGS)
    emu.fail_next_on(LOOKUP, 503, count=FAST.attempts)
    with pytest.raises(ProviderError) as lost:
        await cal.create(ask())
    assert lost.value.retryable and not isinstance(lost.value, SlotTaken)
    made = await cal.create(ask())  # reuses its hold, Cal.com refuses, the lookup finds ours
    assert [b["uid"] for b in emu.live_bookings()] == [made.provider_booking_id]
    assert emu.counts[RESERVE] == 1


async def test_a_dropped_first_request_still_books_once(emu: CalcomEmulator,
                                                        cal: CalcomCalendar) -> None:
    emu.drop_next()  # the reservation's answer is lost: booking goes on without a hold
    made = await cal.create(ask())
    assert (await cal.create(ask())).provider_booking_id == made.provider_booking_id
    assert len(emu.live_bookings()) == 1


async def test_5xx_on_the_booking_post_is_not_retried_blindly(emu: CalcomEmulator,
                                                              cal: CalcomCalendar) -> None:
    emu.fail_next_on(BOOKINGS, 503)
    with pytest.raises(ProviderError) as failed:
        await cal.create(ask())
    assert failed.value.retryable and not isinstance(failed.value, SlotTaken)
    assert (emu.counts[BOOKINGS], emu.counts[LOOKUP]) == (1, 1)  # one try, then a look
    assert emu.live_bookings() == []
    made = await cal.create(ask())  # a later try reuses the hold it still has
    assert emu.counts[RESERVE] == 1 and made.status == "confirmed"
    emu.fail_next(503)  # a 5xx on the reservation only costs the hold
    await cal.create(ask(DEC1_10AM + timedelta(hours=1), key="call-2"))
    assert len(emu.live_bookings()) == 2


async def test_round_robin_team_books_each_host_once(emu: CalcomEmulator) -> None:
    async with adapter(emu, TEAM) as cal:
        await cal.create(ask(key="a"))
        await cal.create(ask(key="b", email="bo@example.com"))  # 2nd host, despite the 422
        with pytest.raises(SlotTaken) as taken:
            await cal.create(ask(key="c", email="cy@example.com"))
    assert TAKEN_TEAM in str(taken.value)
    assert sorted(b["hosts"][0]["id"] for b in emu.live_bookings()) == [1, 2]


async def test_pending_bookings_count_as_confirmed(emu: CalcomEmulator) -> None:
    async with adapter(emu, APPROVAL) as cal:
        made = await cal.create(ask())
    assert made.status == "confirmed"
    assert emu.live_bookings()[0]["status"] == "pending"


# ---- errors --------------------------------------------------------------------------------


async def test_too_soon_too_far_and_past_are_not_slot_taken(emu: CalcomEmulator,
                                                            clock: Clock) -> None:
    async with adapter(emu, STRICT) as cal:
        soon = datetime(2026, 10, 28, 13, 30, tzinfo=UTC)  # Wed 09:30 NY, 90 min from now
        with pytest.raises(ProviderError, match="too soon or too far") as early:
            await cal.create(ask(soon))
        far = datetime(2026, 12, 1, 15, tzinfo=UTC)  # 34 days ahead, window is 30
        with pytest.raises(ProviderError, match="too soon or too far") as late:
            await cal.create(ask(far))
        clock.now = datetime(2026, 12, 2, tzinfo=UTC)
        with pytest.raises(ProviderError, match="in the past") as past:
            await cal.create(ask(DEC1_10AM))
    for raised in (early, late, past):
        assert not isinstance(raised.value, SlotTaken) and not raised.value.retryable


async def test_unknown_event_type_names_the_id(emu: CalcomEmulator) -> None:
    async with adapter(emu, 999) as cal:
        with pytest.raises(ProviderError, match="event type 999 not found"):
            await cal.free_slots(DEC1_10AM, DEC1_10AM + timedelta(hours=3), 30, NY)
        with pytest.raises(ProviderError, match="event type 999 not found"):
            await cal.create(ask())


async def test_a_wrong_key_is_an_auth_error(emu: CalcomEmulator) -> None:
    async with adapter(emu, key="cal_wrong") as cal:
        with pytest.raises(ProviderAuthError):
            await cal.free_slots(DEC1_10AM, DEC1_10AM + timedelta(hours=3), 30, NY)
        with pytest.raises(ProviderAuthError):
            await cal.create(ask())
    assert emu.live_bookings() == []


async def test_429_on_a_read_is_retried(emu: CalcomEmulator, cal: CalcomCalendar) -> None:
    made = await cal.create(ask())
    emu.fail_next(429)
    assert await cal.get(made.provider_booking_id) == made
    assert emu.counts["GET /v2/bookings/{uid}"] == 2


async def test_base_url_may_carry_v2(emu: CalcomEmulator) -> None:
    async with CalcomCalendar(emu.base_url + "/v2/", KEY, SOLO, retry=FAST) as cal:
        assert (await cal.create(ask())).status == "confirmed"


# ---- the emulator's own checks -------------------------------------------------------------


@pytest.mark.parametrize("version", [None, "2024-04-15"])
async def test_emulator_refuses_a_missing_or_wrong_version(emu: CalcomEmulator,
                                                           version: str | None) -> None:
    status, body = await raw(emu, "POST", "/v2/bookings", version=version,
                             body=booking_body(DEC1_10AM, "ann@example.com"))
    assert status == 400 and body["error"]["code"] == "BadRequestException"
    assert "cal-api-version" in body["error"]["message"]
    status, _ = await raw(emu, "GET", "/v2/slots", version=version or "2024-08-13",
                          params={"eventTypeId": str(SOLO), "start": "2026-12-01",
                                  "end": "2026-12-01"})
    assert status == 400
    assert emu.live_bookings() == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"colour": "blue"}, "property colour should not exist"),
        ({"attendee": {"name": "Bo", "timeZone": NY}}, "At least one contact method"),
        ({"attendee": {"name": "Bo", "email": "bo@example.com", "timeZone": "Mars/Base"}},
         "attendee.timeZone must be a valid IANA time-zone"),
        ({"start": "tomorrow"}, "start must be a valid ISO 8601 date string"),
    ],
)
async def test_emulator_validates_booking_bodies(emu: CalcomEmulator, change: dict[str, Any],
                                                 message: str) -> None:
    status, body = await raw(emu, "POST", "/v2/bookings", version="2024-08-13",
                             body={**booking_body(DEC1_10AM, "ann@example.com"), **change})
    assert status == 400 and message in body["error"]["message"]
    missing = booking_body(DEC1_10AM, "ann@example.com")
    del missing["eventTypeId"]
    status, body = await raw(emu, "POST", "/v2/bookings", version="2024-08-13", body=missing)
    assert status == 400 and "eventTypeId" in body["error"]["message"]


# ---- an e-mail given after booking ------------------------------------------------------------


async def test_an_email_given_after_booking_joins_the_booking_as_a_guest(
    emu: CalcomEmulator, cal: CalcomCalendar
) -> None:
    """The v2 API cannot change the booker; it adds guests, whom Cal.com then invites."""
    assert isinstance(cal, AttendeeUpdater)
    made = await cal.create(ask(email=""))  # booked with the phone number only
    later = Attendee("Ann Lee", "ann.lee@example.org", "+15551234567", NY)
    await cal.update_attendee(made.provider_booking_id, later)
    [booking] = emu.live_bookings()
    assert booking["guests"] == ["ann.lee@example.org"]
    assert [(a["name"], a["email"]) for a in booking["attendees"]] == [
        ("Ann Lee", ""), ("Ann Lee", "ann.lee@example.org")]
    await cal.update_attendee(made.provider_booking_id, later)  # already there: no second guest
    assert emu.live_bookings()[0]["guests"] == ["ann.lee@example.org"]
    assert emu.counts["POST /v2/bookings/{uid}/guests"] == 1


async def test_an_email_cannot_join_a_cancelled_cal_com_booking(cal: CalcomCalendar) -> None:
    made = await cal.create(ask())
    await cal.cancel(made.provider_booking_id, "caller asked")
    with pytest.raises(ProviderError, match="no live booking"):
        await cal.update_attendee(made.provider_booking_id, Attendee("Ann", "ann@example.org"))
