"""The call log in memory stays small, and a call has one JSON shape whether it is read from
memory or from the store (``agent.server.call_api``, ``StoredCall``)."""

from __future__ import annotations

import tracemalloc
from collections.abc import AsyncIterator

import pytest

from slotline.agent.call.calllog import (
    MAX_DTMF,
    RECENT_ENDED,
    CallLog,
    CallRecord,
    Latency,
    Turn,
    now_iso,
)
from slotline.agent.store import Store, StoredCall, open_store


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    async with open_store(store_url) as opened:
        yield opened


def _call(sid: str, turns: int = 20) -> CallRecord:
    record = CallRecord(call_sid=sid, stream_sid="MZ" + sid, flow="demo_booking",
                        phone="+15005550006")
    for n in range(turns):
        record.add_turn(Turn(role="caller" if n % 2 else "agent", text=f"words of turn {n} " * 8,
                             latency=Latency(turn_latency_ms=700.0)))
    return record


def test_the_call_log_keeps_live_calls_and_only_the_last_ended_ones() -> None:
    log = CallLog()
    live = [_call(f"CA-live-{n}") for n in range(30)]
    for record in live:
        log.add(record)
    for n in range(2000):
        record = _call(f"CA-{n}")
        log.add(record)
        record.ended_at = now_iso()  # the session's last act
    kept = log.all()
    assert len(kept) == len(live) + RECENT_ENDED
    assert all(log.get(record.call_sid) is record for record in live)  # never dropped
    assert [r.call_sid for r in kept[-RECENT_ENDED:]] == [
        f"CA-{n}" for n in range(2000 - RECENT_ENDED, 2000)]
    assert log.get("CA-0") is None


def test_the_call_log_does_not_grow_with_the_calls_it_has_seen() -> None:
    log = CallLog()

    def calls(first: int, count: int) -> None:
        for n in range(first, first + count):
            record = _call(f"CA-{n}")
            log.add(record)
            record.ended_at = now_iso()

    tracemalloc.start()
    try:
        calls(0, 500)
        warm, _ = tracemalloc.get_traced_memory()
        calls(500, 2000)
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # 2,000 more calls of ~10 KB each would hold ~20 MB more; the window holds the same 50
    assert after - warm < 100_000, after - warm


async def test_a_call_reads_the_same_from_memory_and_from_the_store(store: Store) -> None:
    record = _call("CA-shape", turns=3)
    record.variables["user_name"] = "Ana"
    record.add_error("stt", "slow final")
    for _ in range(MAX_DTMF + 4):
        record.add_dtmf("1")
    record.set_path(["greet", "ask_name"])
    record.status, record.ended_at = "completed", now_iso()
    memory = StoredCall.from_record(record)
    await store.calls.save(memory)
    stored = await store.calls.get("CA-shape")
    assert stored is not None
    assert stored.as_json() == memory.as_json()  # every key, every time string
    assert stored.as_json()["dtmf_dropped"] == 4 and stored.as_json()["turns_dropped"] == 0
    assert stored.as_json()["started_at"] == record.started_at  # one time format
    assert stored.as_json()["ended_at"] == record.ended_at
    [listed] = [c for c in await store.calls.recent() if c.call_sid == "CA-shape"]
    assert listed.summary_json() == memory.summary_json()
    summary, whole = listed.summary_json(), stored.as_json()
    assert {k: whole[k] for k in summary if k not in ("turns", "errors")} == {
        k: v for k, v in summary.items() if k not in ("turns", "errors")}
