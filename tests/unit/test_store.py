"""agent.store bookings on SQLite AND PostgreSQL: write-once, no double booking by the database.

Every test runs on both databases (a fresh SQLite file / a fresh PostgreSQL database each).
PostgreSQL is the one at ``SLOTLINE_TEST_POSTGRES_URL`` (default: the local ``test`` database).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from slotline.agent.store import NewBooking, Store, open_store
from slotline.agent.store.migrations import MIGRATIONS
from slotline.agent.store.schema import bookings
from slotline.agent.store.url import async_url
from slotline.providers.calendars.base import Attendee
from slotline.providers.errors import ConfigError, SlotTaken

T0 = datetime(2026, 6, 2, 14, 0, tzinfo=UTC)
ANA = Attendee("Ana Diaz", "ana@example.com", "+1 (555) 010-2030", "America/New_York")


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    async with open_store(store_url) as opened:
        yield opened


def booking(
    key: str,
    start: datetime = T0,
    minutes: int = 30,
    calendar: str = "main",
    attendee: Attendee = ANA,
) -> NewBooking:
    return NewBooking(
        calendar=calendar,
        provider="local",
        start=start,
        end=start + timedelta(minutes=minutes),
        attendee=attendee,
        idempotency_key=key,
        action="demo",
        call_sid="CA1",
        fields={"company": "Acme"},
    )


# -- migrations --------------------------------------------------------------------------------


async def test_migrations_apply_once_even_when_processes_start_together(store_url: str) -> None:
    opened = await asyncio.gather(*(Store.open(store_url) for _ in range(4)))
    try:
        assert {store.schema_version for store in opened} == {MIGRATIONS[-1].version}
        engine = create_async_engine(async_url(store_url)[1], poolclass=NullPool)
        async with engine.connect() as conn:
            rows = (await conn.exec_driver_sql("SELECT version FROM schema_version")).all()
        await engine.dispose()
        assert [row[0] for row in rows] == [m.version for m in MIGRATIONS]
    finally:
        for store in opened:
            await store.close()
    async with open_store(store_url) as again:  # a restart finds nothing to do
        assert again.schema_version == MIGRATIONS[-1].version
        await again.ping()


# -- write once ---------------------------------------------------------------------------------


async def test_a_booking_reads_back_in_utc_with_its_attendee_and_fields(store: Store) -> None:
    local_start = datetime(2026, 6, 2, 10, 0, tzinfo=ZoneInfo("America/New_York"))
    made = await store.bookings.create(booking("k1", start=local_start))
    assert made.start == T0 and made.start.tzinfo == UTC
    assert made.status == "confirmed" and made.provider_booking_id == made.id
    got = await store.bookings.get(made.id)
    assert got == made
    assert got.attendee == ANA and got.fields == {"company": "Acme"}
    as_json = got.as_json()
    assert as_json["start"] == "2026-06-02T14:00:00+00:00"
    assert as_json["attendee"]["phone"] == ANA.phone
    assert as_json["status"] == "confirmed" and as_json["call_sid"] == "CA1"


async def test_overlap_on_the_same_calendar_is_slot_taken(store: Store) -> None:
    first = await store.bookings.create(booking("k1"))
    with pytest.raises(SlotTaken):
        await store.bookings.create(booking("k2", start=T0 + timedelta(minutes=15)))
    with pytest.raises(SlotTaken):  # a longer booking swallowing it
        await store.bookings.create(booking("k3", start=T0 - timedelta(hours=1), minutes=120))
    # Back to back is fine ([start, end) intervals), and so is another calendar.
    await store.bookings.create(booking("k4", start=T0 + timedelta(minutes=30)))
    await store.bookings.create(booking("k5", calendar="other"))
    # A cancelled booking frees its time.
    await store.bookings.cancel(first.id)
    again = await store.bookings.create(booking("k6"))
    assert again.status == "confirmed"
    confirmed = await store.bookings.confirmed("main", T0, T0 + timedelta(hours=1))
    assert [item.idempotency_key for item in confirmed] == ["k6", "k4"]


async def test_fifty_concurrent_attempts_at_one_slot_exactly_one_wins(store_url: str) -> None:
    # Five stores on one database stand for five processes: on SQLite they do not share the
    # in-process write lock, so only the database's own locking keeps them apart.
    stores = await asyncio.gather(*(Store.open(store_url) for _ in range(5)))
    try:
        attempts = [
            stores[n % 5].bookings.create(
                booking(f"caller-{n}", start=T0 + timedelta(minutes=n % 3 * 10))
            )
            for n in range(50)
        ]
        results = await asyncio.gather(*attempts, return_exceptions=True)
        winners = [result for result in results if not isinstance(result, BaseException)]
        losers = [result for result in results if isinstance(result, BaseException)]
        assert len(winners) == 1
        assert len(losers) == 49 and all(isinstance(error, SlotTaken) for error in losers)
        window_end = T0 + timedelta(hours=2)
        confirmed = await stores[0].bookings.confirmed("main", T0 - timedelta(hours=1), window_end)
        assert [item.id for item in confirmed] == [winners[0].id]
    finally:
        for store in stores:
            await store.close()


async def test_a_retried_create_with_the_same_key_returns_the_one_booking(store: Store) -> None:
    first = await store.bookings.create(booking("call-1:slot"))
    assert await store.bookings.create(booking("call-1:slot")) == first
    # Ten retries racing each other and a fresh key: one booking per key, no SlotTaken.
    results = await asyncio.gather(
        *(
            store.bookings.create(booking("call-2:slot", start=T0 + timedelta(hours=1)))
            for _ in range(10)
        )
    )
    assert len({result.id for result in results}) == 1
    assert len(await store.bookings.by_keys(["call-1:slot", "call-2:slot"])) == 2


async def test_the_database_itself_refuses_an_overlap_written_around_the_store(
    store: Store, store_url: str
) -> None:
    await store.bookings.create(booking("k1"))
    engine = create_async_engine(async_url(store_url)[1], poolclass=NullPool)
    row = {
        "id": "RAWWRITE", "action": "demo", "calendar": "main", "provider": "local",
        "provider_booking_id": "RAWWRITE", "start_utc": T0 + timedelta(minutes=10),
        "end_utc": T0 + timedelta(minutes=40), "status": "confirmed", "attendee": {},
        "phone_key": "", "call_sid": "", "fields": {}, "idempotency_key": "raw",
        "created_at": T0, "updated_at": T0,
    }  # fmt: skip
    try:
        with pytest.raises(IntegrityError):
            async with engine.begin() as conn:
                await conn.execute(insert(bookings).values(row))
        async with engine.begin() as conn:  # the same row, cancelled, is allowed
            await conn.execute(insert(bookings).values({**row, "status": "cancelled"}))
    finally:
        await engine.dispose()


async def test_record_fills_in_a_booking_the_local_calendar_wrote(store: Store) -> None:
    bare = NewBooking("main", "local", T0, T0 + timedelta(minutes=30), Attendee("Ana"), "k1")
    written = await store.bookings.create(bare)
    assert written.action == "" and written.call_sid == ""
    recorded = await store.bookings.record(booking("k1"))
    assert recorded.id == written.id
    assert (recorded.action, recorded.call_sid, recorded.attendee) == ("demo", "CA1", ANA)
    assert recorded.fields == {"company": "Acme"}
    # An external provider's booking is recorded (and guarded) the same way.
    external = NewBooking(
        "team", "calcom", T0, T0 + timedelta(minutes=30), ANA, "k2", provider_booking_id="uid-9"
    )
    made = await store.bookings.record(external)
    assert made.provider == "calcom" and made.provider_booking_id == "uid-9"


# -- cancel, move, find --------------------------------------------------------------------------


async def test_cancel_is_idempotent_and_unknown_ids_are_none(store: Store) -> None:
    made = await store.bookings.create(booking("k1"))
    cancelled = await store.bookings.cancel(made.id)
    assert cancelled is not None and cancelled.status == "cancelled"
    again = await store.bookings.cancel(made.id)
    assert again is not None and again.status == "cancelled"
    assert await store.bookings.cancel("NOSUCHID") is None
    # A cancelled booking gives its key back: the same call may book that time again.
    rebooked = await store.bookings.create(booking("k1"))
    assert rebooked.id != made.id and rebooked.status == "confirmed"


async def test_move_is_guarded_and_never_loses_the_booking(store: Store) -> None:
    made = await store.bookings.create(booking("k1"))
    other = await store.bookings.create(booking("k2", start=T0 + timedelta(hours=2)))
    # Overlapping its own old time is fine (a 15-minute shift).
    later = T0 + timedelta(minutes=15)
    shifted = await store.bookings.move(made.id, later, later + timedelta(minutes=30))
    assert shifted is not None and shifted.start == T0 + timedelta(minutes=15)
    with pytest.raises(SlotTaken):
        await store.bookings.move(made.id, other.start, other.end)
    unchanged = await store.bookings.get(made.id)
    assert unchanged is not None
    assert (unchanged.start, unchanged.status) == (T0 + timedelta(minutes=15), "confirmed")
    assert await store.bookings.move("NOSUCHID", T0, T0 + timedelta(minutes=30)) is None
    await store.bookings.cancel(other.id)
    with pytest.raises(ValueError, match="cancelled"):
        await store.bookings.move(other.id, T0 + timedelta(days=1), T0 + timedelta(days=1, hours=1))


async def test_bookings_are_found_by_phone_in_any_format(store: Store) -> None:
    past = await store.bookings.create(booking("k0", start=T0 - timedelta(days=3)))
    soon = await store.bookings.create(booking("k1", start=T0 + timedelta(days=1)))
    later = await store.bookings.create(booking("k2", start=T0 + timedelta(days=2)))
    bob = Attendee("Bob", phone="+44 20 7946 0000")
    await store.bookings.create(booking("k3", start=T0 + timedelta(days=4), attendee=bob))
    found = await store.bookings.for_phone("555 010 2030", ending_after=T0)
    assert [item.id for item in found] == [soon.id, later.id]
    assert past.id not in {item.id for item in found}
    assert await store.bookings.for_phone("", ending_after=T0) == []
    await store.bookings.cancel(soon.id)
    found = await store.bookings.for_phone("15550102030", ending_after=T0)
    assert [item.id for item in found] == [later.id]
    bobs = await store.bookings.by_key("k3")
    assert bobs is not None
    by_call = await store.bookings.for_call("CA1")
    assert [item.id for item in by_call] == [past.id, soon.id, later.id, bobs.id]
    assert len(await store.bookings.recent(limit=2)) == 2


# -- URLs ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "driver", "database"),
    [
        ("sqlite:///slotline.db", "sqlite+aiosqlite", "slotline.db"),
        ("sqlite:////var/lib/slotline/s.db", "sqlite+aiosqlite", "/var/lib/slotline/s.db"),
        ("postgresql://app@db.internal/slotline", "postgresql+asyncpg", "slotline"),
        ("postgres://app:pw@db:6432/slotline?ssl=require", "postgresql+asyncpg", "slotline"),
    ],
)
def test_store_urls_map_to_the_async_drivers(url: str, driver: str, database: str) -> None:
    _, parsed = async_url(url)
    assert (parsed.drivername, parsed.database) == (driver, database)


@pytest.mark.parametrize(
    "url", ["mysql://x@y/z", "sqlite://", "sqlite:///:memory:", "postgresql://app@host"]
)
def test_bad_store_urls_name_the_key(url: str) -> None:
    with pytest.raises(ConfigError, match="store: url"):
        async_url(url)


async def test_set_attendee_changes_a_confirmed_booking_only(store: Store) -> None:
    made = await store.bookings.create(
        NewBooking("main", "local", T0, T0 + timedelta(minutes=30), Attendee("Ann"), "k-att")
    )
    updated = await store.bookings.set_attendee(made.id, Attendee("Ann", email="a@example.com"))
    assert updated is not None and updated.attendee.email == "a@example.com"
    again = await store.bookings.get(made.id)
    assert again is not None and again.attendee.email == "a@example.com"
    await store.bookings.cancel(made.id)
    assert await store.bookings.set_attendee(made.id, Attendee("Bob")) is None
