"""Live call rows written in batches (``agent.call.persist.CallRows``), on SQLite and PostgreSQL:
one transaction for the calls marked together, the final record last, the heartbeat, and a bad
row that costs no other call its write."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from slotline.agent.call.calllog import CallRecord, Turn
from slotline.agent.call.persist import CallPersister, CallRows
from slotline.agent.store import Store, StoredCall, open_store
from slotline.providers.errors import ProviderError
from tests.until import until

pytestmark = pytest.mark.asyncio

BATCH_S = 0.05


@pytest_asyncio.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    async with open_store(store_url) as opened:
        yield opened


def record(sid: str) -> CallRecord:
    return CallRecord(call_sid=sid, stream_sid="MZ" + sid, flow="demo")


async def stored(store: Store, sid: str) -> StoredCall:
    call = await store.calls.get(sid)
    assert call is not None, sid
    return call


async def test_calls_marked_together_are_written_in_one_transaction(store: Store) -> None:
    rows = CallRows(store, batch_s=BATCH_S)
    errors: list[ProviderError] = []
    persisters = [CallPersister(store, record(f"CA{i}"), errors.append, rows=rows)
                  for i in range(6)]
    for persister in persisters:
        persister.start()

    async def all_written() -> bool:
        return all(p.written_at > 0 for p in persisters)

    await until(all_written)
    written = {(await stored(store, f"CA{i}")).written_at for i in range(6)}
    assert len(written) == 1  # one save_many: one written_at for every row of the batch
    # a change to two of them: those two are written again, together, and only they
    for persister in persisters[:2]:
        persister.record.turns.append(Turn("caller", "next tuesday"))
        persister.changed()
    before = [p.written_at for p in persisters]

    async def two_written() -> bool:
        return all(p.written_at > before[i] for i, p in enumerate(persisters[:2]))

    await until(two_written)
    assert [p.written_at for p in persisters[2:]] == before[2:]
    first, second = await stored(store, "CA0"), await stored(store, "CA1")
    assert first.turns[-1]["text"] == second.turns[-1]["text"] == "next tuesday"
    assert first.written_at == second.written_at
    for persister in persisters:
        await persister.finish()
    assert errors == []


async def test_the_final_record_is_the_last_write(store: Store) -> None:
    rows = CallRows(store, batch_s=BATCH_S)
    call = record("CAfinal")
    persister = CallPersister(store, call, lambda _: None, rows=rows)
    persister.start()
    for n in range(5):  # changes right up to the end, some of them in a batch in flight
        call.turns.append(Turn("agent", f"line {n}"))
        persister.changed()
        await asyncio.sleep(BATCH_S / 2)
    call.status, call.ended_at = "completed", "2026-12-06T10:00:00Z"
    await persister.finish()
    await asyncio.sleep(3 * BATCH_S)  # a stale batch would land here
    final = await stored(store, "CAfinal")
    assert final.status == "completed"
    assert [turn["text"] for turn in final.turns] == [f"line {n}" for n in range(5)]


async def test_an_unchanged_live_call_is_rewritten_as_its_heartbeat(store: Store) -> None:
    rows = CallRows(store, batch_s=BATCH_S, heartbeat_s=0.4)
    persister = CallPersister(store, record("CAbeat"), lambda _: None, rows=rows)
    persister.start()

    async def written() -> bool:
        return persister.written_at > 0

    await until(written)
    first = await stored(store, "CAbeat")
    await asyncio.sleep(0.8)
    again = await stored(store, "CAbeat")
    assert first.written_at is not None and again.written_at is not None
    assert again.written_at > first.written_at
    await persister.finish()


async def test_a_row_that_cannot_be_stored_costs_no_other_call_its_write(store: Store) -> None:
    rows = CallRows(store, batch_s=BATCH_S)
    errors: dict[str, list[ProviderError]] = {"CAgood": [], "CAbad": []}
    good, bad = record("CAgood"), record("CAbad")
    bad.variables["weird"] = object()  # type: ignore[assignment]  # not JSON: its row fails
    persisters = [CallPersister(store, call, errors[call.call_sid].append, rows=rows)
                  for call in (good, bad)]
    for persister in persisters:
        persister.start()

    async def good_written() -> bool:
        return persisters[0].written_at > 0 and bool(errors["CAbad"])

    await until(good_written)
    assert (await stored(store, "CAgood")).status == "in-progress"
    assert await store.calls.get("CAbad") is None
    assert errors["CAgood"] == []
    assert [e.provider for e in errors["CAbad"]] == ["database"]
    bad.turns.append(Turn("caller", "hello"))  # still bad: reported once per outage
    persisters[1].changed()
    await asyncio.sleep(4 * BATCH_S)
    assert len(errors["CAbad"]) == 1
    del bad.variables["weird"]  # the row can be stored again
    await persisters[1].finish()
    assert (await stored(store, "CAbad")).turns[-1]["text"] == "hello"
    await persisters[0].finish()


async def test_the_batch_task_ends_with_the_last_live_call(store: Store) -> None:
    rows = CallRows(store, batch_s=BATCH_S)
    persister = CallPersister(store, record("CAend"), lambda _: None, rows=rows)
    persister.start()
    task = rows._task
    assert task is not None
    await persister.finish()
    await asyncio.wait_for(task, 1.0)
    assert await store.calls.get("CAend") is not None
