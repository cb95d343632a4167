"""A caller's bookings found in the store by e-mail as by phone, on SQLite AND PostgreSQL.

The attendee's e-mail is kept as a key (trimmed, lower-cased) on every write that sets the
attendee; migration 14 back-fills it for bookings written before it existed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert, select

from slotline.agent.store import NewBooking, Store, email_key, open_store
from slotline.agent.store.db import Database
from slotline.agent.store.migrations import MIGRATIONS
from slotline.agent.store.schema import bookings, schema_version
from slotline.providers.calendars.base import Attendee

T0 = datetime(2026, 6, 2, 14, 0, tzinfo=UTC)
DANA = Attendee("Dana Whitfield", "Dana.Whitfield@Example.org", "+1 555 010 2030", "UTC")
OMAR = Attendee("Omar Haddad", "omar@example.net", "+1 555 010 9999", "UTC")


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    async with open_store(store_url) as opened:
        yield opened


def booking(key: str, start: datetime, attendee: Attendee) -> NewBooking:
    return NewBooking("main", "local", start, start + timedelta(minutes=30), attendee, key,
                      action="demo", call_sid="CA1")


def test_the_key_is_the_address_trimmed_and_lower_cased() -> None:
    assert email_key("  Dana.Whitfield@Example.ORG\t") == "dana.whitfield@example.org"
    assert email_key(" ") == ""


async def test_bookings_are_found_by_email_in_any_case_soonest_first(store: Store) -> None:
    past = await store.bookings.create(booking("k0", T0 - timedelta(days=3), DANA))
    later = await store.bookings.create(booking("k2", T0 + timedelta(days=2), DANA))
    soon = await store.bookings.create(booking("k1", T0 + timedelta(days=1), DANA))
    await store.bookings.create(booking("k3", T0 + timedelta(days=4), OMAR))
    found = await store.bookings.for_email(" dana.whitfield@EXAMPLE.org ", ending_after=T0)
    assert [item.id for item in found] == [soon.id, later.id]  # not the past one, not Omar's
    assert past.id not in {item.id for item in found}
    assert found[0].attendee.email == DANA.email  # the attendee keeps the address as given
    assert await store.bookings.for_email("", ending_after=T0) == []
    assert await store.bookings.for_email("dana@example.org", ending_after=T0) == []
    await store.bookings.cancel(soon.id)
    found = await store.bookings.for_email(DANA.email, ending_after=T0)
    assert [item.id for item in found] == [later.id]


async def test_the_key_follows_the_attendee_on_record_and_set_attendee(store: Store) -> None:
    by_phone = Attendee("", "", DANA.phone, "UTC")  # booked by phone, no e-mail yet
    made = await store.bookings.create(booking("k1", T0 + timedelta(days=1), by_phone))
    assert await store.bookings.for_email(DANA.email, ending_after=T0) == []
    # the e-mail given after booking (agent.booking.attendees): now found by it
    updated = await store.bookings.set_attendee(made.id, DANA)
    assert updated is not None
    [found] = await store.bookings.for_email("dana.whitfield@example.org", ending_after=T0)
    assert found.id == made.id
    # another attendee altogether: found by their e-mail and phone, no longer by Dana's
    await store.bookings.set_attendee(made.id, OMAR)
    assert await store.bookings.for_email(DANA.email, ending_after=T0) == []
    assert await store.bookings.for_phone(DANA.phone, ending_after=T0) == []
    assert [b.id for b in await store.bookings.for_email(OMAR.email, ending_after=T0)] == [made.id]
    assert [b.id for b in await store.bookings.for_phone(OMAR.phone, ending_after=T0)] == [made.id]

    # a booking the local calendar wrote bare, filled in by record(): found by its e-mail
    bare = await store.bookings.create(NewBooking(
        "main", "local", T0 + timedelta(days=2), T0 + timedelta(days=2, minutes=30),
        Attendee(""), "k2",
    ))  # fmt: skip
    recorded = await store.bookings.record(booking("k2", T0 + timedelta(days=2), DANA))
    assert recorded.id == bare.id
    [found] = await store.bookings.for_email(DANA.email, ending_after=T0)
    assert found.id == bare.id


# -- migration 14 ------------------------------------------------------------------------------


def _row(booking_id: str, start: datetime, attendee: dict[str, str],
         status: str = "confirmed") -> dict[str, Any]:
    """A bookings row as Slotline before migration 14 wrote it (no e-mail key)."""
    return {
        "id": booking_id, "action": "demo", "calendar": "main", "provider": "local",
        "provider_booking_id": booking_id, "start_utc": start,
        "end_utc": start + timedelta(minutes=30), "status": status, "attendee": attendee,
        "phone_key": "5550102030", "call_sid": "CA0", "fields": {},
        "idempotency_key": f"old:{booking_id}", "created_at": T0, "updated_at": T0,
    }  # fmt: skip


async def _database_at_version_13_with_bookings(store_url: str) -> None:
    db = Database.connect(store_url)
    try:
        await db.prepare()
        async with db.write() as conn:
            await conn.run_sync(lambda sync: schema_version.create(sync))
            for migration in MIGRATIONS[:13]:
                for sql in migration.statements(db.dialect):
                    await conn.exec_driver_sql(sql)
                await conn.execute(
                    insert(schema_version).values(version=migration.version, applied_at=T0)
                )
            day = timedelta(days=1)
            dana = {"name": "Dana", "email": " Dana.Whitfield@Example.ORG\t", "phone": ""}
            await conn.execute(insert(bookings), [
                _row("OLDDANA1", T0 + day, dana),
                _row("OLDDANA2", T0 + 2 * day, dana, status="cancelled"),
                _row("OLDDANA3", T0 - 2 * day, dana),  # over already
                _row("OLDOMAR1", T0 + 3 * day, {"name": "Omar", "email": "omar@example.net"}),
                _row("OLDNOONE", T0 + 4 * day, {"name": "No address"}),  # no "email" at all
            ])  # fmt: skip
    finally:
        await db.close()


async def test_migration_14_back_fills_the_key_of_bookings_written_before_it(
    store_url: str,
) -> None:
    assert MIGRATIONS[13].version == 14
    await _database_at_version_13_with_bookings(store_url)
    async with open_store(store_url) as store:
        assert store.schema_version == MIGRATIONS[-1].version >= 14
        found = await store.bookings.for_email("dana.whitfield@example.org", ending_after=T0)
        assert [item.id for item in found] == ["OLDDANA1"]
        assert found[0].attendee.email == " Dana.Whitfield@Example.ORG\t"  # left as it was
        omar = await store.bookings.for_email("Omar@Example.net", ending_after=T0)
        assert [item.id for item in omar] == ["OLDOMAR1"]
        # one written after the migration sits beside the old ones, found the same way
        new = await store.bookings.create(booking("new", T0 + timedelta(days=5), DANA))
        found = await store.bookings.for_email(DANA.email, ending_after=T0)
        assert [item.id for item in found] == ["OLDDANA1", new.id]
    db = Database.connect(store_url)
    try:
        async with db.read() as conn:
            keys = dict((await conn.execute(select(bookings.c.id, bookings.c.email_key))).all())
    finally:
        await db.close()
    assert keys == {
        "OLDDANA1": "dana.whitfield@example.org", "OLDDANA2": "dana.whitfield@example.org",
        "OLDDANA3": "dana.whitfield@example.org", "OLDOMAR1": "omar@example.net",
        "OLDNOONE": "", new.id: "dana.whitfield@example.org",
    }  # fmt: skip
