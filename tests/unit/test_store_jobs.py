"""agent.store holds, reminder jobs, round-robin counts and the call log, on both databases."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert

from slotline.agent.call.calllog import MAX_PATH, CallRecord, Latency, Turn
from slotline.agent.store import NewBooking, Store, StoredCall, open_store
from slotline.agent.store.db import Database
from slotline.agent.store.migrations import MIGRATIONS
from slotline.agent.store.schema import calls, schema_version
from slotline.providers.calendars.base import Attendee

T0 = datetime(2026, 6, 2, 14, 0, tzinfo=UTC)


class Clock:
    """The store's notion of now, moved by the test."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(T0 - timedelta(days=1))


@pytest.fixture
async def store(store_url: str, clock: Clock) -> AsyncIterator[Store]:
    async with open_store(store_url, clock=clock) as opened:
        yield opened


async def make_booking(store: Store, key: str = "k1") -> str:
    new = NewBooking("main", "local", T0, T0 + timedelta(minutes=30), Attendee("Ana"), key)
    return (await store.bookings.create(new)).id


# -- holds ---------------------------------------------------------------------------------------


async def test_a_live_hold_keeps_others_off_the_time_until_it_expires(
    store: Store, clock: Clock
) -> None:
    half_hour = T0 + timedelta(minutes=30)
    assert await store.holds.place("a", "main", T0, half_hour, owner="CA-a", ttl_s=120)
    overlapping = T0 + timedelta(minutes=15)
    assert not await store.holds.place(
        "b", "main", overlapping, overlapping + timedelta(minutes=30), owner="CA-b", ttl_s=120
    )
    assert await store.holds.place("b", "other", T0, half_hour, owner="CA-b", ttl_s=120)
    assert await store.holds.place(
        "c", "main", half_hour, T0 + timedelta(hours=1), owner="CA-c", ttl_s=120
    )  # back to back
    live = await store.holds.live("main", T0, T0 + timedelta(hours=2), exclude_owner="CA-b")
    assert [hold.key for hold in live] == ["a", "c"]
    assert await store.holds.live("main", T0, half_hour, exclude_owner="CA-a") == []

    clock.now += timedelta(seconds=121)  # "a" expired: its time is free again
    assert await store.holds.live("main", T0, half_hour) == []
    assert await store.holds.place("b", "main", T0, half_hour, owner="CA-b", ttl_s=120)


async def test_an_owner_holds_one_time_per_calendar_and_release_frees_it(store: Store) -> None:
    first_end = T0 + timedelta(minutes=30)
    assert await store.holds.place("a1", "main", T0, first_end, owner="CA-a", ttl_s=60)
    later = T0 + timedelta(hours=1)
    assert await store.holds.place(
        "a2", "main", later, later + timedelta(minutes=30), owner="CA-a", ttl_s=60
    )
    assert [h.key for h in await store.holds.live("main", T0, T0 + timedelta(hours=3))] == ["a2"]
    await store.holds.release("a2")
    assert await store.holds.live("main", T0, T0 + timedelta(hours=3)) == []


async def test_concurrent_holds_on_one_time_one_wins(store: Store) -> None:
    end = T0 + timedelta(minutes=30)
    results = await asyncio.gather(
        *(store.holds.place(f"k{n}", "main", T0, end, owner=f"CA{n}", ttl_s=60) for n in range(20))
    )
    assert results.count(True) == 1


# -- reminder jobs -------------------------------------------------------------------------------


async def test_reminders_are_scheduled_once_and_claimed_by_one_worker(
    store: Store, clock: Clock
) -> None:
    booking_id = await make_booking(store)
    due = {"24h": T0 - timedelta(hours=24), "1h": T0 - timedelta(hours=1)}
    await store.reminders.schedule(booking_id, due)
    await store.reminders.schedule(booking_id, due)  # a repeat schedules nothing new
    assert len(await store.reminders.for_booking(booking_id)) == 2

    clock.now = T0 - timedelta(hours=2)  # only the 24 h reminder is due
    claims = await asyncio.gather(*(store.reminders.claim_due(f"w{n}") for n in range(5)))
    claimed = [job for batch in claims for job in batch]
    assert [job.kind for job in claimed] == ["24h"]
    job = claimed[0]
    assert job.claimed_by is not None
    assert not await store.reminders.mark_sent(job.id, "someone-else")
    assert await store.reminders.mark_sent(job.id, job.claimed_by)
    assert not await store.reminders.mark_sent(job.id, job.claimed_by)  # never twice

    clock.now = T0
    assert [job.kind for job in await store.reminders.claim_due("w1")] == ["1h"]
    assert await store.reminders.claim_due("w2") == []  # claimed and its lease is running


async def test_a_claim_whose_worker_died_is_taken_over_after_the_lease(
    store_url: str, clock: Clock
) -> None:
    async with open_store(store_url, clock=clock) as first_run:
        booking_id = await make_booking(first_run)
        await first_run.reminders.schedule(booking_id, {"1h": T0 - timedelta(hours=1)})
        clock.now = T0 - timedelta(minutes=59)
        assert len(await first_run.reminders.claim_due("dead-worker", lease_s=300)) == 1
    async with open_store(store_url, clock=clock) as restarted:  # the process restarted
        assert await restarted.reminders.claim_due("new-worker", lease_s=300) == []
        clock.now += timedelta(seconds=301)
        (job,) = await restarted.reminders.claim_due("new-worker", lease_s=300)
        assert await restarted.reminders.mark_sent(job.id, "new-worker")
        assert not await restarted.reminders.mark_sent(job.id, "dead-worker")


async def test_released_and_dropped_reminders(store: Store, clock: Clock) -> None:
    booking_id = await make_booking(store)
    await store.reminders.schedule(booking_id, {"1h": T0 - timedelta(hours=1), "24h": T0})
    clock.now = T0 - timedelta(minutes=30)
    (job,) = await store.reminders.claim_due("w1")
    await store.reminders.release(job.id, "w1")  # the send failed: retry on the next claim
    assert [retry.id for retry in await store.reminders.claim_due("w2")] == [job.id]
    assert await store.reminders.drop_unsent(booking_id) == 2
    assert await store.reminders.for_booking(booking_id) == []


# -- round robin ---------------------------------------------------------------------------------


async def test_round_robin_counts_survive_concurrent_bumps(store: Store) -> None:
    assert await store.round_robin.counts("demo") == {}
    await asyncio.gather(*(store.round_robin.bump("demo", "ana") for _ in range(20)))
    await store.round_robin.bump("demo", "ben")
    await store.round_robin.bump("sales", "ana")
    assert await store.round_robin.counts("demo") == {"ana": 20, "ben": 1}


# -- call log ------------------------------------------------------------------------------------


async def test_a_call_is_saved_as_it_progresses_and_lists_its_bookings(store: Store) -> None:
    call = StoredCall(
        call_sid="CA1",
        flow="demo_booking",
        status="in-progress",
        started_at=T0,
        stream_sid="MZ1",
        node="greeting",
    )
    await store.calls.save(call)
    turn = {
        "role": "agent",
        "text": "Hi!",
        "started_at": T0.isoformat(),
        "interrupted": False,
        "latency": {"turn_latency_ms": 512.5},
    }
    done = StoredCall(
        call_sid="CA1",
        flow="demo_booking",
        status="completed",
        started_at=T0,
        stream_sid="MZ1",
        node="end",
        ended_at=T0 + timedelta(minutes=3),
        variables={"user_name": "Ana"},
        turns=(turn,),
        errors=({"at": T0.isoformat(), "provider": "stt", "message": "slow"},),
    )
    await store.calls.save(done)
    booking_id = await store.bookings.create(
        NewBooking(
            "main", "local", T0, T0 + timedelta(minutes=30), Attendee("Ana"), "k1", call_sid="CA1"
        )
    )
    await store.calls.save(
        StoredCall(
            call_sid="CA2", flow="support", status="in-progress", started_at=T0 + timedelta(hours=1)
        )
    )
    got = await store.calls.get("CA1")
    assert got is not None
    assert got.bookings == (booking_id.id,)
    body = got.as_json()
    assert body["status"] == "completed" and body["node"] == "end"
    assert body["variables"] == {"user_name": "Ana"}
    assert body["turns"] == [turn]
    assert body["errors"][0]["provider"] == "stt"
    assert body["ended_at"] == "2026-06-02T14:03:00.000+00:00"  # the call log's one format
    assert [c.call_sid for c in await store.calls.recent()] == ["CA2", "CA1"]
    assert await store.calls.get("CA404") is None


async def test_the_in_memory_call_record_round_trips(store: Store) -> None:
    record = CallRecord(call_sid="CA7", stream_sid="MZ7", flow="demo_booking", node="ask_date")
    record.variables["user_name"] = "Ana"
    record.turns.append(Turn("caller", "next tuesday", latency=Latency(turn_latency_ms=640.0)))
    record.add_error("tts", "slow first byte")
    record.dtmf.append("1")
    record.llm = {"caller_turns": 3, "llm_turns": 1, "extractions": 1, "turns_without_llm": 2}
    record.set_path(["greet", "ask_name", "ask_name", "ask_date"])
    await store.calls.save(StoredCall.from_record(record))
    got = await store.calls.get("CA7")
    assert got is not None
    body, expected = got.as_json(), record.as_dict()
    for key in ("call_sid", "stream_sid", "status", "flow", "node", "variables", "turns",
                "errors", "dtmf", "bookings", "ended_at", "llm", "path"):  # fmt: skip
        assert body[key] == expected[key], key
    assert body["llm"]["llm_turns"] == 1
    assert datetime.fromisoformat(body["started_at"]) == datetime.fromisoformat(
        expected["started_at"]
    )


async def test_a_collective_booking_lists_every_calendar_in_memory_and_stored(
    store: Store,
) -> None:
    # a collective booking writes one row per calendar, each naming the call
    ids = [
        (await store.bookings.create(NewBooking(
            calendar, "local", T0, T0 + timedelta(minutes=30), Attendee("Ana"), f"k:{calendar}",
            call_sid="CA8",
        ))).id
        for calendar in ("ana", "ben", "cy")
    ]  # fmt: skip
    record = CallRecord(call_sid="CA8", stream_sid="MZ8", flow="demo_booking")
    record.bookings.extend(ids)
    await store.calls.save(StoredCall.from_record(record))
    got = await store.calls.get("CA8")
    assert got is not None
    assert sorted(got.bookings) == sorted(record.as_dict()["bookings"]) == sorted(ids)
    assert got.as_json()["llm"] == {}  # no model: no block of zeros


async def _database_with_a_call_at_version(version: int, store_url: str) -> None:
    """A database as Slotline at schema ``version`` left it, with one stored call ``CA0``."""
    db = Database.connect(store_url)
    try:
        await db.prepare()
        async with db.write() as conn:
            await conn.run_sync(lambda sync: schema_version.create(sync))
            for migration in MIGRATIONS[:version]:
                for sql in migration.statements(db.dialect):
                    await conn.exec_driver_sql(sql)
                await conn.execute(
                    insert(schema_version).values(version=migration.version, applied_at=T0)
                )
            await conn.execute(insert(calls).values(
                call_sid="CA0", stream_sid="", status="completed", flow="demo_booking", node="",
                variables={}, turns=[], errors=[], dtmf=[], started_at=T0,
            ))  # fmt: skip
    finally:
        await db.close()


async def test_migration_3_gives_calls_stored_before_it_an_empty_model_use(
    store_url: str,
) -> None:
    await _database_with_a_call_at_version(2, store_url)
    async with open_store(store_url) as store:
        assert store.schema_version == MIGRATIONS[-1].version  # 3 and later
        old = await store.calls.get("CA0")
        assert old is not None and old.llm == {} and old.as_json()["llm"] == {}
        await store.calls.save(StoredCall("CA1", "demo_booking", "completed", T0,
                                          llm={"caller_turns": 2, "failures": 1}))
        new = await store.calls.get("CA1")
        assert new is not None and new.llm == {"caller_turns": 2, "failures": 1}


async def test_migration_8_gives_calls_stored_before_it_an_empty_path_and_keeps_new_ones(
    store_url: str,
) -> None:
    await _database_with_a_call_at_version(7, store_url)
    async with open_store(store_url) as store:
        assert store.schema_version == MIGRATIONS[-1].version >= 8
        old = await store.calls.get("CA0")
        assert old is not None and old.path == () and old.as_json()["path"] == []
        record = CallRecord(call_sid="CA1", stream_sid="MZ1", flow="demo_booking")
        record.set_path(["greet", "ask_name", "ask_date", "ask_name", 'odd "node" <b>'])
        await store.calls.save(StoredCall.from_record(record))
        new = await store.calls.get("CA1")
        assert new is not None
        assert new.path == ("greet", "ask_name", "ask_date", "ask_name", 'odd "node" <b>')
        assert [c.path for c in await store.calls.recent() if c.call_sid == "CA1"] == [new.path]


def test_a_call_record_keeps_the_first_nodes_of_a_long_path_and_counts_the_rest() -> None:
    record = CallRecord(call_sid="CA9", stream_sid="MZ9", flow="demo_booking")
    record.set_path(["ask_date"] * (MAX_PATH + 7))
    body = record.as_dict()
    assert len(body["path"]) == MAX_PATH and body["path_dropped"] == 7
    record.set_path(["greet", "ask_name"])  # the responder reports its whole path each time
    assert record.as_dict()["path"] == ["greet", "ask_name"] and record.path_dropped == 0
