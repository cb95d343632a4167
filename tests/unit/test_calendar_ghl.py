"""GoHighLevel calendar: the adapter against the GHL emulator on real sockets, the emulator's
spec checks (official OpenAPI documents in ../shared/specs/ghl), and the pure wire rules."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest

from slotline.providers.calendars import ghl_wire as wire
from slotline.providers.calendars.base import (
    Attendee,
    AttendeeUpdater,
    BookingRequest,
    Rescheduler,
    SlotSource,
)
from slotline.providers.calendars.ghl import GhlCalendar
from slotline.providers.emulators._openapi import openapi_document
from slotline.providers.emulators.ghl import DEFAULT_SPEC_DIR, GhlCalendarRules, GhlEmulator
from slotline.providers.errors import ProviderAuthError, ProviderError, SlotTaken
from slotline.providers.http import RetryPolicy

TOKEN = "pit-test-token"
LOCATION = "loc-test"
CAL = "cal-test"
NY = ZoneInfo("America/New_York")
NOW = datetime(2026, 10, 26, 12, 0, tzinfo=UTC)  # a Monday
EVERY_DAY = {day: ((time(9), time(17)),) for day in range(7)}
FAST = RetryPolicy(attempts=3, base_delay_s=0.001, max_delay_s=0.01, request_timeout_s=1.0,
                   deadline_s=3.0)
CREATE = "POST /calendars/events/appointments"
SLOTS = "GET /calendars/{calendarId}/free-slots"
ALICE = Attendee("Alice Doe", "alice@example.com", "+15550100001", "America/Chicago")
BOB = Attendee("Bob Roe", "bob@example.com", "+15550100002")


def ny(year: int, month: int, day: int, hour: int = 0) -> datetime:
    return datetime(year, month, day, hour, tzinfo=NY)


def booking(start: datetime, attendee: Attendee = ALICE, key: str = "k1") -> BookingRequest:
    return BookingRequest(start, start + timedelta(minutes=30), attendee, key, "Consult",
                          {"reason": "checkup"})


def spec(api: str, method: str, template: str) -> Any:
    return openapi_document(DEFAULT_SPEC_DIR / f"apps/{api}.json").operation(method, template)


@pytest.fixture
async def emu() -> AsyncIterator[GhlEmulator]:
    rules = GhlCalendarRules(CAL, "America/New_York", 30, weekly_hours=EVERY_DAY,
                             min_notice_min=60)
    async with GhlEmulator(token=TOKEN, location_id=LOCATION, calendars=(rules,),
                           clock=lambda: NOW) as emulator:
        yield emulator


@pytest.fixture
async def cal(emu: GhlEmulator) -> AsyncIterator[GhlCalendar]:
    calendar = GhlCalendar(emu.base_url, TOKEN, CAL, LOCATION, retry=FAST)
    await calendar.start()
    yield calendar
    await calendar.aclose()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def live(emu: GhlEmulator) -> list[Any]:
    return [item for item in emu.appointments.values() if item.status != "cancelled"]


# ---- availability ---------------------------------------------------------------------------


async def test_free_slots_on_the_dst_day_follow_the_offset(cal: GhlCalendar) -> None:
    assert isinstance(cal, SlotSource) and isinstance(cal, Rescheduler)
    slots = await cal.free_slots(ny(2026, 10, 31), ny(2026, 11, 2), 30, "America/New_York")
    by_day: dict[str, list[datetime]] = {}
    for slot in slots:
        by_day.setdefault(slot.start.astimezone(NY).date().isoformat(), []).append(slot.start)
        assert slot.end - slot.start == timedelta(minutes=30)
    assert sorted(by_day) == ["2026-10-31", "2026-11-01"]
    assert by_day["2026-10-31"][0] == datetime(2026, 10, 31, 13, 0, tzinfo=UTC)  # 09:00 EDT
    assert by_day["2026-11-01"][0] == datetime(2026, 11, 1, 14, 0, tzinfo=UTC)  # 09:00 EST
    assert [len(day) for day in by_day.values()] == [16, 16]


async def test_slots_across_the_repeated_hour_are_distinct_instants(
    emu: GhlEmulator, http: aiohttp.ClientSession
) -> None:
    night = GhlCalendarRules("cal-night", weekly_hours={6: ((time(0), time(4)),)})  # Sundays
    emu.calendars[night.id] = night
    calendar = GhlCalendar(emu.base_url, TOKEN, night.id, LOCATION, retry=FAST, session=http)
    slots = await calendar.free_slots(ny(2026, 11, 1), ny(2026, 11, 2), 30, "America/New_York")
    starts = [slot.start for slot in slots]
    assert len(starts) == 10  # 00:00–04:00 wall clock is five real hours that night
    assert starts == sorted(set(starts))
    second_one_am = datetime(2026, 11, 1, 6, tzinfo=UTC)  # 01:00 EST, after 01:00 EDT
    assert second_one_am in starts
    await calendar.create(booking(second_one_am))
    sent = next(body for route, body in emu.bodies if route == CREATE)
    assert sent["startTime"] == "2026-11-01T01:00:00-05:00"


async def test_a_window_longer_than_31_days_is_split_into_concurrent_requests(
    emu: GhlEmulator, cal: GhlCalendar
) -> None:
    start, end = datetime(2026, 11, 2, tzinfo=UTC), datetime(2027, 1, 16, tzinfo=UTC)  # 75 days
    slots = await cal.free_slots(start, end, 30, "America/New_York")
    assert emu.counts[SLOTS] == 3
    assert emu.rejections == []
    expected = emu.free(CAL, start, end - timedelta(milliseconds=1))
    assert [slot.start for slot in slots] == expected
    assert len(slots) == 75 * 16


async def test_the_emulator_refuses_ranges_over_31_days(emu: GhlEmulator,
                                                        http: aiohttp.ClientSession) -> None:
    start = datetime(2026, 11, 2, tzinfo=UTC)
    params = wire.free_slots_params(start, start + timedelta(days=32), "")
    headers = {"Authorization": f"Bearer {TOKEN}", "Version": wire.CALENDARS_VERSION}
    async with http.get(f"{emu.base_url}/calendars/{CAL}/free-slots", params=params,
                        headers=headers) as response:
        status, body = response.status, await response.json()
    assert status == 400 and "31 days" in body["message"]
    assert list(spec("calendars", "GET", "/calendars/{calendarId}/free-slots")
                .response_validator(400).iter_errors(body)) == []


async def test_busy_lists_live_appointments_only(emu: GhlEmulator, cal: GhlCalendar) -> None:
    first = await cal.create(booking(ny(2026, 10, 27, 10)))
    await cal.create(booking(ny(2026, 10, 27, 11), BOB, "k2"))
    await cal.cancel(first.provider_booking_id)
    busy = await cal.busy(ny(2026, 10, 27), ny(2026, 10, 28))
    assert [(b.start, b.end) for b in busy] == [
        (datetime(2026, 10, 27, 15, tzinfo=UTC), datetime(2026, 10, 27, 15, 30, tzinfo=UTC))
    ]


# ---- writes ---------------------------------------------------------------------------------


async def test_create_get_reschedule_cancel(emu: GhlEmulator, cal: GhlCalendar) -> None:
    window = (ny(2026, 10, 27), ny(2026, 10, 28))
    slots = await cal.free_slots(*window, 30, "America/Chicago")  # offered in the caller's zone
    before = cal.requests
    made = await cal.create(booking(slots[0].start))
    assert cal.requests - before == 2  # contact upsert + appointment
    assert made.status == "confirmed" and made.start == slots[0].start
    sent = next(body for route, body in emu.bodies if route == CREATE)
    assert sent["startTime"] == "2026-10-27T08:00:00-05:00"  # exactly as free-slots offered it
    assert "Slotline ref: k1" in sent["description"] and sent["appointmentStatus"] == "confirmed"
    assert await cal.get(made.provider_booking_id) == made
    assert slots[0].start not in {s.start for s in await cal.free_slots(*window, 30, "")}

    moved = await cal.reschedule(made.provider_booking_id, booking(slots[3].start), "later")
    assert (moved.provider_booking_id, moved.start) == (made.provider_booking_id, slots[3].start)
    assert slots[0].start in {s.start for s in await cal.free_slots(*window, 30, "")}

    gone = await cal.cancel(made.provider_booking_id, "caller cancelled")
    assert gone.status == "cancelled"
    fetched = await cal.get(made.provider_booking_id)
    assert fetched is not None and fetched.status == "cancelled"
    assert await cal.get("no-such-appointment") is None
    assert live(emu) == []


async def test_a_start_never_offered_is_sent_in_the_calendar_zone(emu: GhlEmulator) -> None:
    async with aiohttp.ClientSession() as session:
        calendar = GhlCalendar(emu.base_url, TOKEN, CAL, LOCATION, retry=FAST, session=session,
                               timezone="America/New_York")
        await calendar.create(booking(datetime(2026, 11, 2, 15, tzinfo=UTC)))
    sent = next(body for route, body in emu.bodies if route == CREATE)
    assert (sent["startTime"], sent["endTime"]) == (
        "2026-11-02T10:00:00-05:00", "2026-11-02T10:30:00-05:00"
    )


async def test_a_taken_slot_raises_slot_taken(emu: GhlEmulator, cal: GhlCalendar) -> None:
    start = ny(2026, 10, 28, 9)
    first = await cal.create(booking(start))
    with pytest.raises(SlotTaken):
        await cal.create(booking(start, BOB, "k-bob"))
    other = await cal.create(booking(start + timedelta(hours=1), BOB, "k-bob-2"))
    with pytest.raises(SlotTaken):
        await cal.reschedule(other.provider_booking_id, booking(start, BOB, "k-bob-3"))
    assert [item.id for item in live(emu) if item.start == start] == [first.provider_booking_id]


async def test_concurrent_creates_on_one_slot_make_one_appointment(
    emu: GhlEmulator, cal: GhlCalendar
) -> None:
    start = ny(2026, 10, 29, 14)
    results = await asyncio.gather(
        *(cal.create(booking(start, Attendee(f"Caller {i}", f"c{i}@example.com"), f"k{i}"))
          for i in range(4)),
        return_exceptions=True,
    )
    won = [r for r in results if not isinstance(r, BaseException)]
    assert len(won) == 1
    assert all(isinstance(r, SlotTaken) for r in results if isinstance(r, BaseException))
    assert [item.id for item in live(emu)] == [won[0].provider_booking_id]


async def test_a_lost_answer_is_recovered_without_a_second_appointment(
    emu: GhlEmulator, cal: GhlCalendar
) -> None:
    start = ny(2026, 10, 30, 11)
    emu.drop_next()  # the contact upsert: handled, unanswered, retried (GHL matches the email)
    emu.drop_next(route=CREATE)  # the appointment: written, unanswered
    made = await cal.create(booking(start))
    assert len(emu.contacts) == 1
    assert [item.id for item in live(emu)] == [made.provider_booking_id]
    assert emu.counts[CREATE] == 1  # found by its key, not written again
    again = await cal.create(booking(start))  # the engine retries the same key
    assert again.provider_booking_id == made.provider_booking_id
    assert len(live(emu)) == 1


async def test_a_429_on_the_write_is_retried_after_looking(emu: GhlEmulator,
                                                          cal: GhlCalendar) -> None:
    emu.fail_next(429)  # the upsert
    emu.fail_next(429, route=CREATE)
    made = await cal.create(booking(ny(2026, 10, 30, 15)))
    assert emu.counts["POST /contacts/upsert"] == 2 and emu.counts[CREATE] == 2
    assert [item.id for item in live(emu)] == [made.provider_booking_id]


async def test_429_on_reads_is_retried(emu: GhlEmulator, cal: GhlCalendar) -> None:
    emu.fail_next(429, count=2)
    slots = await cal.free_slots(ny(2026, 10, 27), ny(2026, 10, 28), 30, "America/New_York")
    assert len(slots) == 16 and emu.counts[SLOTS] == 3


async def test_persistent_5xx_on_the_write_gives_a_retryable_error(
    emu: GhlEmulator, cal: GhlCalendar
) -> None:
    emu.fail_next(503, count=3, route=CREATE)
    with pytest.raises(ProviderError) as failed:
        await cal.create(booking(ny(2026, 10, 30, 16)))
    assert failed.value.retryable and live(emu) == []


async def test_a_bad_token_is_an_auth_error(emu: GhlEmulator) -> None:
    async with aiohttp.ClientSession() as session:
        calendar = GhlCalendar(emu.base_url, "wrong", CAL, LOCATION, retry=FAST, session=session)
        with pytest.raises(ProviderAuthError):
            await calendar.free_slots(ny(2026, 10, 27), ny(2026, 10, 28), 30, "")
        with pytest.raises(ProviderAuthError):
            await calendar.create(booking(ny(2026, 10, 27, 10)))
    assert emu.appointments == {} and emu.contacts == {}


# ---- spec conformance -----------------------------------------------------------------------


async def test_every_adapter_request_conforms_to_the_official_spec(
    emu: GhlEmulator, cal: GhlCalendar
) -> None:
    slots = await cal.free_slots(ny(2026, 10, 27), ny(2026, 12, 10), 30, "America/New_York")
    await cal.busy(ny(2026, 10, 27), ny(2026, 10, 28))
    made = await cal.create(booking(slots[0].start))
    await cal.create(booking(slots[1].start, Attendee("No Contact Details"), "k-bare"))
    await cal.get(made.provider_booking_id)
    await cal.reschedule(made.provider_booking_id, booking(slots[2].start))
    await cal.cancel(made.provider_booking_id)
    emu.drop_next(route=CREATE)
    await cal.create(booking(slots[5].start, BOB, "k-drop"))  # the look-up path too
    assert emu.rejections == []
    assert {route for route, _ in emu.bodies} == {
        "POST /contacts/upsert", SLOTS, "GET /calendars/events", CREATE,
        "GET /calendars/events/appointments/{eventId}",
        "PUT /calendars/events/appointments/{eventId}",
    }


async def test_the_emulator_refuses_requests_the_spec_refuses(
    emu: GhlEmulator, http: aiohttp.ClientSession
) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    calendars = {**auth, "Version": wire.CALENDARS_VERSION}
    url = f"{emu.base_url}/calendars/events/appointments"
    bad = {"calendarId": 7, "locationId": LOCATION, "contactId": "c", "colour": "red"}
    cases: list[tuple[str, dict[str, str], object, int, str]] = [
        (url, calendars, bad, 400, "startTime"),
        (url, calendars, {**bad, "calendarId": CAL, "startTime": "x"}, 400, "colour"),
        (url, auth, {"calendarId": CAL}, 400, "Version"),
        (url, {**auth, "Version": wire.CONTACTS_VERSION}, {"calendarId": CAL}, 400, "Version"),
        (f"{emu.base_url}/contacts/upsert", {**auth, "Version": wire.CONTACTS_VERSION},
         {"name": "No Location"}, 422, "locationId"),
        (url, {"Authorization": "Bearer nope", "Version": wire.CALENDARS_VERSION}, {}, 401,
         "Invalid"),
    ]
    for target, headers, body, status, fragment in cases:
        async with http.post(target, json=body, headers=headers) as response:
            answer = await response.json()
            assert response.status == status, answer
        assert fragment in str(answer["message"])
        api = "contacts" if "contacts" in target else "calendars"
        template = target.removeprefix(emu.base_url)
        validator = spec(api, "POST", template).response_validator(status)
        assert list(validator.iter_errors(answer)) == []
    params = {"startDate": "soon", "endDate": "1"}
    async with http.get(f"{emu.base_url}/calendars/{CAL}/free-slots", params=params,
                        headers=calendars) as response:
        assert response.status == 400
        assert "startDate must be a number" in (await response.json())["message"]
    assert emu.appointments == {} and emu.contacts == {}


async def test_the_emulator_answers_in_the_spec_shapes(
    emu: GhlEmulator, http: aiohttp.ClientSession
) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    contacts = {**auth, "Version": wire.CONTACTS_VERSION}
    calendars = {**auth, "Version": wire.CALENDARS_VERSION}
    async with http.post(f"{emu.base_url}/contacts/upsert", headers=contacts,
                         json=wire.contact_body(LOCATION, ALICE)) as response:
        upserted = await response.json()
    assert list(spec("contacts", "POST", "/contacts/upsert").response_validator(200)
                .iter_errors(upserted)) == []
    body = {"calendarId": CAL, "locationId": LOCATION, "contactId": upserted["contact"]["id"],
            "startTime": "2026-10-27T10:00:00-04:00"}
    async with http.post(f"{emu.base_url}/calendars/events/appointments", headers=calendars,
                         json=body) as response:
        created = await response.json()
    assert created["endTime"] == "2026-10-27T10:30:00-04:00"  # the calendar's slot length
    assert list(spec("calendars", "POST", "/calendars/events/appointments")
                .response_validator(200).iter_errors(created)) == []


# ---- wire rules (no sockets) ----------------------------------------------------------------


def test_free_slots_parsing_skips_non_date_keys_and_keeps_strings() -> None:
    body = {"2026-12-01": {"slots": ["2026-12-01T10:00:00-05:00"]}, "traceId": "abc",
            "2026-12-02": {"slots": []}}
    assert wire.parse_free_slots(body) == [
        (datetime(2026, 12, 1, 15, tzinfo=UTC), "2026-12-01T10:00:00-05:00")
    ]
    with pytest.raises(ProviderError):
        wire.parse_free_slots({"2026-12-01": {"slots": ["10 am"]}})


def test_windows_and_params() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    pieces = list(wire.windows(start, start + timedelta(days=62)))
    assert [b - a for a, b in pieces] == [timedelta(days=31), timedelta(days=31)]
    params = wire.free_slots_params(start, start + timedelta(days=1), "UTC")
    assert params == {"startDate": "1767225600000", "endDate": "1767311999999",
                      "timezone": "UTC"}


def test_error_text_and_the_key_look_up() -> None:
    taken = {"statusCode": 422, "message": ["The slot you have selected is no longer available."]}
    assert wire.is_slot_taken(422, taken, "")
    assert not wire.is_slot_taken(400, {"message": "contactId must be a string"}, "")
    events = {"events": [
        {"id": "a", "contactId": "other", "description": "Slotline ref: k"},
        {"id": "b", "contactId": "c", "description": "Slotline ref: k", "appointmentStatus":
         "cancelled"},
        {"id": "c", "contactId": "c", "description": "Slotline ref: k2"},
        {"id": "d", "contactId": "c", "description": "x: y\nSlotline ref: k"},
    ]}
    found = wire.find_keyed(events, "k", "c")
    assert found is not None and found["id"] == "d"


def test_the_spec_documents_are_beside_the_checkout() -> None:
    assert (Path(__file__).resolve().parents[3] / "shared/specs/ghl/apps/calendars.json").is_file()


# ---- a name and an e-mail given after booking -------------------------------------------------


async def test_a_late_name_and_email_go_onto_the_appointments_contact(
    emu: GhlEmulator, cal: GhlCalendar
) -> None:
    assert isinstance(cal, AttendeeUpdater)
    [slot, *_] = await cal.free_slots(ny(2026, 10, 27), ny(2026, 10, 28), 30, "America/New_York")
    caller = Attendee("", "", "+15551234567", "America/New_York")  # only the number, so far
    made = await cal.create(booking(slot.start, caller))
    await cal.update_attendee(made.provider_booking_id,
                              Attendee("Zoë Brandt", "zoë@example.de", "+15551234567"))
    [contact] = emu.contacts.values()
    assert (contact.name, contact.email, contact.phone) == (
        "Zoë Brandt", "zoë@example.de", "+15551234567")
    [appointment] = live(emu)
    assert appointment.contact_id == contact.id
    updates = [body for route, body in emu.bodies if route == "PUT /contacts/{contactId}"]
    assert updates == [{"name": "Zoë Brandt", "email": "zoë@example.de"}]


async def test_a_late_email_for_an_unknown_appointment_is_an_error(cal: GhlCalendar) -> None:
    with pytest.raises(ProviderError):
        await cal.update_attendee("no-such-appointment", Attendee("Ann", "ann@example.com"))
