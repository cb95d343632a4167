"""The CalDAV calendar against a real Radicale server (one per module, checking passwords).

Every test gets a fresh calendar collection. Events "from other clients" are written with
plain HTTP PUTs. Races are forced with ``HoldingProxy``, a loopback HTTP proxy in front of
Radicale that can hold PUTs until both writers have checked the slot, or let a rival event
appear just before a writer's PUT.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from xml.etree import ElementTree

import aiohttp
import icalendar
import pytest
from aiohttp import web

from slotline.providers.calendars.base import (
    Attendee,
    AttendeeUpdater,
    BookingRequest,
    ProviderBooking,
    Rescheduler,
)
from slotline.providers.calendars.caldav import CaldavCalendar, uid_for
from slotline.providers.errors import ConfigError, ProviderAuthError, ProviderError, SlotTaken
from tests.radicale_server import RadicaleServer, free_port, running_radicale

USER, PASSWORD = "slotline", "secret"
AUTH = {"Authorization": aiohttp.encode_basic_auth(USER, PASSWORD)}
ZONE = "America/New_York"
NINE = datetime(2026, 12, 1, 14, 0, tzinfo=UTC)  # 9:00 in New York
HALF_HOUR = timedelta(minutes=30)
ANN = Attendee("Ann Lee", "ann@example.com", "+15550001111", ZONE)


def _request(key: str, start: datetime = NINE, minutes: int = 30) -> BookingRequest:
    return BookingRequest(
        start, start + timedelta(minutes=minutes), ANN, key, fields={"reason": "checkup"}
    )


@pytest.fixture(scope="module")
def radicale(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RadicaleServer]:
    with running_radicale(tmp_path_factory.mktemp("radicale"), users={USER: PASSWORD}) as server:
        yield server


@pytest.fixture
def calendar_url(radicale: RadicaleServer) -> str:
    return radicale.make_calendar()


@pytest.fixture
async def calendar(calendar_url: str) -> AsyncIterator[CaldavCalendar]:
    async with CaldavCalendar(calendar_url, USER, PASSWORD, ZONE) as adapter:
        yield adapter


# ---- helpers: another client's events, what the collection holds ------------------------------


def _ics(uid: str, lines: str) -> str:
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\n"
        f"UID:{uid}\r\nDTSTAMP:20261101T120000Z\r\nSUMMARY:other\r\n{lines}"
        "END:VEVENT\r\nEND:VCALENDAR\r\n"
    )


async def _put(calendar_url: str, uid: str, lines: str) -> None:
    async with aiohttp.ClientSession(headers=AUTH) as session:
        async with session.put(
            f"{calendar_url}{uid}.ics",
            data=_ics(uid, lines),
            headers={"Content-Type": "text/calendar"},
        ) as response:
            assert response.status == 201, await response.text()


async def _stored(calendar_url: str) -> dict[str, str]:
    """UID → STATUS of every event in the collection (a Depth 1 PROPFIND, then GETs)."""
    origin = calendar_url.split("/")[:3]
    events: dict[str, str] = {}
    async with aiohttp.ClientSession(headers=AUTH) as session:
        async with session.request("PROPFIND", calendar_url, headers={"Depth": "1"}) as response:
            listing = ElementTree.fromstring(await response.read())
        for href in listing.iter("{DAV:}href"):
            path = href.text or ""
            if not path.endswith(".ics"):
                continue  # the collection itself
            async with session.get("/".join(origin) + path) as response:
                for event in icalendar.Calendar.from_ical(await response.text()).walk("VEVENT"):
                    events[str(event["UID"])] = str(event.get("STATUS", ""))
    return events


class HoldingProxy:
    """An HTTP proxy on 127.0.0.1 in front of Radicale that controls when PUTs go through.

    ``hold_puts=2``: each PUT waits until two PUTs have arrived (both writers have checked the
    slot by then). ``before_first_put``: awaited once, before the first PUT is forwarded.
    """

    def __init__(
        self,
        upstream: str,
        *,
        hold_puts: int = 0,
        before_first_put: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._upstream = upstream
        self._hold_puts = hold_puts
        self._before_first_put = before_first_put
        self._puts = 0
        self._all_arrived = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.origin = ""

    async def __aenter__(self) -> HoldingProxy:
        self._session = aiohttp.ClientSession(auto_decompress=False)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.origin = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._runner is not None and self._session is not None
        await self._runner.cleanup()
        await self._session.close()

    async def _forward(self, request: web.Request) -> web.Response:
        assert self._session is not None
        body = await request.read()
        if request.method == "PUT":
            self._puts += 1
            if self._puts == 1 and self._before_first_put is not None:
                await self._before_first_put()
            if self._hold_puts:
                if self._puts >= self._hold_puts:
                    self._all_arrived.set()
                await asyncio.wait_for(self._all_arrived.wait(), 3.0)
        headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
        async with self._session.request(
            request.method, self._upstream + request.path_qs, data=body, headers=headers
        ) as answer:
            payload = await answer.read()
            kept = {
                k: v
                for k, v in answer.headers.items()
                if k.lower() not in ("content-length", "transfer-encoding", "connection")
            }
            return web.Response(status=answer.status, body=payload, headers=kept)


# ---- busy -------------------------------------------------------------------------------------


async def test_busy_counts_opaque_events_and_expands_recurrences(
    calendar: CaldavCalendar, calendar_url: str
) -> None:
    await _put(calendar_url, "opaque", "DTSTART:20261201T140000Z\r\nDTEND:20261201T143000Z\r\n")
    await _put(
        calendar_url,
        "zoned",
        "DTSTART;TZID=America/New_York:20261201T110000\r\n"
        "DTEND;TZID=America/New_York:20261201T120000\r\n",
    )
    await _put(
        calendar_url,
        "transparent",
        "DTSTART:20261201T150000Z\r\nDTEND:20261201T153000Z\r\nTRANSP:TRANSPARENT\r\n",
    )
    await _put(
        calendar_url,
        "cancelled",
        "DTSTART:20261201T170000Z\r\nDTEND:20261201T173000Z\r\nSTATUS:CANCELLED\r\n",
    )
    await _put(calendar_url, "floating", "DTSTART:20261201T130000\r\nDTEND:20261201T133000\r\n")
    await _put(
        calendar_url,
        "daily",
        "DTSTART:20261130T200000Z\r\nDTEND:20261130T203000Z\r\nRRULE:FREQ=DAILY;COUNT=5\r\n",
    )

    busy = await calendar.busy(datetime(2026, 12, 1, tzinfo=UTC), datetime(2026, 12, 2, tzinfo=UTC))

    assert [(b.start.hour, b.start.minute, b.end.hour, b.end.minute) for b in busy] == [
        (14, 0, 14, 30),
        (16, 0, 17, 0),  # 11:00-12:00 New York
        (18, 0, 18, 30),  # floating 13:00 is the calendar's 13:00
        (20, 0, 20, 30),  # the recurring event's instance on that day
    ]
    assert all(b.start.tzinfo == UTC for b in busy)


# ---- create / get / cancel / reschedule --------------------------------------------------------


async def test_create_get_cancel_keeps_the_history(
    calendar: CaldavCalendar, calendar_url: str
) -> None:
    booking = await calendar.create(_request("call-1:0900"))

    assert booking == ProviderBooking(uid_for("call-1:0900"), NINE, NINE + HALF_HOUR, "confirmed")
    assert await calendar.get(booking.provider_booking_id) == booking
    busy = await calendar.busy(NINE - HALF_HOUR, NINE + 2 * HALF_HOUR)
    assert [(b.start, b.end) for b in busy] == [(NINE, NINE + HALF_HOUR)]

    cancelled = await calendar.cancel(booking.provider_booking_id, "caller asked")

    assert cancelled.status == "cancelled"
    assert await calendar.get(booking.provider_booking_id) == cancelled
    assert await calendar.cancel(booking.provider_booking_id) == cancelled  # idempotent
    assert await calendar.busy(NINE - HALF_HOUR, NINE + 2 * HALF_HOUR) == []
    assert await _stored(calendar_url) == {booking.provider_booking_id: "CANCELLED"}
    # the cancelled event no longer blocks the slot
    again = await calendar.create(_request("call-2:0900"))
    assert again.status == "confirmed"


async def test_get_of_an_unknown_booking_is_none(calendar: CaldavCalendar) -> None:
    assert await calendar.get("slotline-unknown") is None
    with pytest.raises(ProviderError, match="no booking"):
        await calendar.cancel("slotline-unknown")


async def test_repeated_create_with_the_same_key_makes_one_event(
    calendar: CaldavCalendar, calendar_url: str
) -> None:
    first = await calendar.create(_request("call-1:0900"))
    second = await calendar.create(_request("call-1:0900"))

    assert second == first
    assert await _stored(calendar_url) == {first.provider_booking_id: "CONFIRMED"}


async def test_reschedule_moves_the_event_after_a_free_check(
    calendar: CaldavCalendar, calendar_url: str
) -> None:
    assert isinstance(calendar, Rescheduler)
    booking = await calendar.create(_request("call-1:0900"))
    await _put(calendar_url, "ten", "DTSTART:20261201T150000Z\r\nDTEND:20261201T160000Z\r\n")

    with pytest.raises(SlotTaken):
        await calendar.reschedule(booking.provider_booking_id, _request("x", NINE + 2 * HALF_HOUR))
    assert await calendar.get(booking.provider_booking_id) == booking

    # overlapping its own old time is fine: it does not block itself
    moved = await calendar.reschedule(
        booking.provider_booking_id, _request("x", NINE + timedelta(minutes=15)), "running late"
    )

    assert moved == ProviderBooking(
        booking.provider_booking_id,
        NINE + timedelta(minutes=15),
        NINE + timedelta(minutes=45),
        "confirmed",
    )
    assert await calendar.get(booking.provider_booking_id) == moved


# ---- taken slots -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "lines",
    [
        "DTSTART:20261201T141500Z\r\nDTEND:20261201T144500Z\r\n",  # overlaps the second half
        "DTSTART;VALUE=DATE:20261201\r\nDTEND;VALUE=DATE:20261202\r\n",  # all day, calendar's zone
        "DTSTART:20261201T090000\r\nDTEND:20261201T091000\r\n",  # floating: 9:00 New York
    ],
    ids=["overlap", "all-day", "floating"],
)
async def test_a_slot_with_another_event_is_taken(
    calendar: CaldavCalendar, calendar_url: str, lines: str
) -> None:
    await _put(calendar_url, "other", lines)

    with pytest.raises(SlotTaken):
        await calendar.create(_request("call-1:0900"))

    assert await _stored(calendar_url) == {"other": ""}


async def test_a_floating_event_elsewhere_in_the_day_leaves_the_slot_free(
    calendar: CaldavCalendar, calendar_url: str
) -> None:
    # 14:00 floating is 14:00 in New York (19:00 UTC), not 14:00 UTC
    await _put(calendar_url, "other", "DTSTART:20261201T140000\r\nDTEND:20261201T150000\r\n")

    booking = await calendar.create(_request("call-1:0900"))

    assert booking.status == "confirmed"


@pytest.mark.parametrize("forced", [False, True], ids=["natural", "both-checked-first"])
async def test_two_adapters_racing_end_with_one_event(
    radicale: RadicaleServer, calendar_url: str, forced: bool
) -> None:
    async with HoldingProxy(radicale.origin, hold_puts=2 if forced else 0) as proxy:
        url = calendar_url.replace(radicale.origin, proxy.origin)
        async with (
            CaldavCalendar(url, USER, PASSWORD, ZONE) as one,
            CaldavCalendar(url, USER, PASSWORD, ZONE) as two,
        ):
            results = await asyncio.gather(
                one.create(_request("call-1:0900")),
                two.create(_request("call-2:0915", NINE + timedelta(minutes=15))),
                return_exceptions=True,
            )

    made = [r for r in results if isinstance(r, ProviderBooking)]
    refused = [r for r in results if isinstance(r, SlotTaken)]
    assert len(made) == 1 and len(refused) == 1, results
    assert await _stored(calendar_url) == {made[0].provider_booking_id: "CONFIRMED"}


async def test_the_same_key_written_concurrently_is_one_booking(
    radicale: RadicaleServer, calendar_url: str
) -> None:
    async with HoldingProxy(radicale.origin, hold_puts=2) as proxy:
        url = calendar_url.replace(radicale.origin, proxy.origin)
        async with (
            CaldavCalendar(url, USER, PASSWORD, ZONE) as one,
            CaldavCalendar(url, USER, PASSWORD, ZONE) as two,
        ):
            first, second = await asyncio.gather(
                one.create(_request("call-1:0900")), two.create(_request("call-1:0900"))
            )

    assert first == second
    assert await _stored(calendar_url) == {first.provider_booking_id: "CONFIRMED"}


@pytest.mark.parametrize(
    ("created", "grace_s"),
    [("20200101T000000Z", 5.0), ("20990101T000000Z", 0.2)],
    ids=["rival-ranked-first", "rival-confirmed-without-seeing-us"],
)
async def test_a_rival_appearing_during_the_write_wins(
    radicale: RadicaleServer, calendar_url: str, created: str, grace_s: float
) -> None:
    """An event appears between our check and our PUT. Ranked first, it wins at once; ranked
    after ours, it never withdraws (its writer confirmed without seeing ours): ours goes."""

    async def rival_appears() -> None:
        await _put(
            calendar_url,
            "rival",
            f"CREATED:{created}\r\nDTSTART:20261201T140000Z\r\nDTEND:20261201T150000Z\r\n",
        )

    async with HoldingProxy(radicale.origin, before_first_put=rival_appears) as proxy:
        url = calendar_url.replace(radicale.origin, proxy.origin)
        async with CaldavCalendar(url, USER, PASSWORD, ZONE, rival_grace_s=grace_s) as adapter:
            with pytest.raises(SlotTaken, match="meanwhile"):
                async with asyncio.timeout(5):  # fails a writer that would wait forever
                    await adapter.create(_request("call-1:0900"))

    assert await _stored(calendar_url) == {"rival": ""}


@pytest.mark.parametrize(
    "order",
    ["move-lands-after-the-create-settled", "create-lands-after-the-move-settled", "both-checked"],
)
async def test_a_create_racing_a_reschedule_onto_its_time_ends_with_one_event(
    radicale: RadicaleServer, calendar_url: str, order: str
) -> None:
    """A booking is moved from 10:00 to 9:00 while another caller books 9:00. The PUT of one is
    held until the other has finished (or, both-checked, until both have checked the slot):
    exactly one of them keeps 9:00; a mover that lost is back at 10:00."""
    ten = NINE + 2 * HALF_HOUR
    async with CaldavCalendar(calendar_url, USER, PASSWORD, ZONE) as setup:
        booked = await setup.create(_request("call-1:1000", ten))
    outcome: dict[str, ProviderBooking | SlotTaken] = {}
    grace_s = 1.0  # a loser withdraws in a few loopback requests

    async def create(adapter: CaldavCalendar) -> None:
        try:
            outcome["create"] = await adapter.create(_request("call-2:0900"))
        except SlotTaken as taken:
            outcome["create"] = taken

    async def move(adapter: CaldavCalendar) -> None:
        try:
            outcome["move"] = await adapter.reschedule(
                booked.provider_booking_id, _request("call-1:0900"), "earlier"
            )
        except SlotTaken as taken:
            outcome["move"] = taken

    direct = CaldavCalendar(calendar_url, USER, PASSWORD, ZONE, rival_grace_s=grace_s)
    if order == "both-checked":
        proxy = HoldingProxy(radicale.origin, hold_puts=2)
    else:
        inner = create if order.startswith("move") else move
        proxy = HoldingProxy(radicale.origin, before_first_put=lambda: inner(direct))
    async with proxy, direct:
        url = calendar_url.replace(radicale.origin, proxy.origin)
        async with (
            CaldavCalendar(url, USER, PASSWORD, ZONE, rival_grace_s=grace_s) as held,
            CaldavCalendar(url, USER, PASSWORD, ZONE, rival_grace_s=grace_s) as also_held,
        ):
            if order == "both-checked":
                await asyncio.gather(create(held), move(also_held))
            elif order.startswith("move"):
                await move(held)  # its PUT waits for the whole create
            else:
                await create(held)  # its PUT waits for the whole move

        winners = [name for name, result in outcome.items() if isinstance(result, ProviderBooking)]
        assert len(winners) == 1 and len(outcome) == 2, outcome
        if order != "both-checked":  # the one that finished first keeps the slot
            assert winners == ["create" if order.startswith("move") else "move"]
        busy = await direct.busy(NINE - HALF_HOUR, ten + 2 * HALF_HOUR)
        moved = await direct.get(booked.provider_booking_id)
    expected_move = (NINE, NINE + HALF_HOUR) if winners == ["move"] else (ten, ten + HALF_HOUR)
    assert moved is not None and (moved.start, moved.end) == expected_move
    assert sorted((b.start, b.end) for b in busy) == sorted(
        [(NINE, NINE + HALF_HOUR), *([(ten, ten + HALF_HOUR)] if winners == ["create"] else [])]
    )
    expected_uids = {booked.provider_booking_id}
    if winners == ["create"]:
        expected_uids.add(uid_for("call-2:0900"))
    assert await _stored(calendar_url) == dict.fromkeys(expected_uids, "CONFIRMED")


# ---- failures ----------------------------------------------------------------------------------


async def test_an_unreachable_server_is_a_retryable_provider_error() -> None:
    url = f"http://127.0.0.1:{free_port()}/{USER}/calendar/"
    async with CaldavCalendar(url, USER, PASSWORD, ZONE) as adapter:
        with pytest.raises(ProviderError) as busy_error:
            await adapter.busy(NINE, NINE + HALF_HOUR)
        with pytest.raises(ProviderError) as create_error:
            await adapter.create(_request("call-1:0900"))

    for error in (busy_error.value, create_error.value):
        assert type(error) is ProviderError and error.retryable
        assert error.provider == "caldav"


async def test_a_wrong_password_is_an_auth_error(calendar_url: str) -> None:
    async with CaldavCalendar(calendar_url, USER, "wrong", ZONE) as adapter:
        with pytest.raises(ProviderAuthError, match="CALDAV_PASSWORD") as raised:
            await adapter.busy(NINE, NINE + HALF_HOUR)

    assert "wrong" not in str(raised.value)
    assert not raised.value.retryable


async def test_a_missing_collection_names_the_url(radicale: RadicaleServer) -> None:
    url = f"{radicale.origin}/{USER}/no-such-calendar/"
    async with CaldavCalendar(url, USER, PASSWORD, ZONE) as adapter:
        with pytest.raises(ProviderError, match="no-such-calendar") as raised:
            await adapter.busy(NINE, NINE + HALF_HOUR)

    assert not raised.value.retryable


def test_uids_are_stable_per_key_and_url_safe() -> None:
    assert uid_for("call-1:0900") == uid_for("call-1:0900") != uid_for("call-1:0930")
    assert uid_for("a/b c?").replace("-", "").isalnum()


def test_an_unknown_zone_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="Mars/Olympus"):
        CaldavCalendar("http://127.0.0.1:9/cal/", None, None, "Mars/Olympus")


# ---- the caller as ATTENDEE, also when the e-mail comes after booking -------------------------


async def _event_of(calendar_url: str, uid: str) -> icalendar.Component:
    async with aiohttp.ClientSession(headers=AUTH) as session:
        async with session.get(f"{calendar_url}{uid}.ics") as response:
            assert response.status == 200
            text = await response.text()
    [event] = icalendar.Calendar.from_ical(text).walk("VEVENT")
    return event


def _attendees(event: icalendar.Component) -> list[tuple[str, str]]:
    found = event.get("ATTENDEE", [])
    return [(str(a), str(a.params.get("CN", ""))) for a in (found if isinstance(found, list)
                                                             else [found])]


async def test_the_caller_is_the_events_attendee(
    calendar: CaldavCalendar, calendar_url: str
) -> None:
    made = await calendar.create(_request("call-att:0900"))
    event = await _event_of(calendar_url, made.provider_booking_id)
    assert _attendees(event) == [("mailto:ann@example.com", "Ann Lee")]
    assert event["ATTENDEE"].params["ROLE"] == "REQ-PARTICIPANT"


async def test_a_late_name_and_email_rewrite_the_attendee(
    calendar: CaldavCalendar, calendar_url: str
) -> None:
    assert isinstance(calendar, AttendeeUpdater)
    request = _request("call-late:0900")
    made = await calendar.create(BookingRequest(
        request.start, request.end, Attendee("", phone="+15550001111"), request.idempotency_key))
    assert _attendees(await _event_of(calendar_url, made.provider_booking_id)) == []
    await calendar.update_attendee(made.provider_booking_id,
                                   Attendee("Søren Kierkegaard", "søren@example.dk"))
    await calendar.update_attendee(made.provider_booking_id,
                                   Attendee("Søren Kierkegaard", "søren@example.dk"))
    event = await _event_of(calendar_url, made.provider_booking_id)
    assert _attendees(event) == [("mailto:søren@example.dk", "Søren Kierkegaard")]
    description = str(event["DESCRIPTION"])
    assert description.startswith("Booked by Slotline for Søren Kierkegaard\nEmail: søren@")
    assert int(event["SEQUENCE"]) == 2  # each edit is a new version (RFC 5545 3.8.7.4)
    assert await calendar.get(made.provider_booking_id) == made  # same time, same booking
