"""``GET /api/calls/{call_sid}`` reads a live inbound call from memory alone: a console or a
script polling it every 100 ms costs the store nothing. Ended calls and placed calls still get
their recording and their outbound attempt from the store."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from slotline.agent.call.calllog import CallLog, CallRecord
from slotline.agent.server.call_api import call_json


class Store:
    """Counts the queries ``call_json`` makes (what a real store answers is beside the point)."""

    def __init__(self) -> None:
        self.asked: list[str] = []
        self.attempts = SimpleNamespace(by_sid=self._by_sid)
        self.calls = SimpleNamespace(get=self._get)

    async def _by_sid(self, call_sid: str) -> None:
        self.asked.append(f"attempt {call_sid}")

    async def _get(self, call_sid: str) -> None:
        self.asked.append(f"call {call_sid}")


class Recordings:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def path_of(self, call_sid: str) -> Path | None:
        self._store.asked.append(f"recording {call_sid}")
        return Path("/tmp/x.wav")


def deps(*records: CallRecord) -> tuple[Any, Store]:
    log = CallLog()
    for record in records:
        log.add(record)
    store = Store()
    return SimpleNamespace(call_log=log, store=store, recordings=Recordings(store)), store


async def test_a_live_inbound_call_is_read_from_memory_alone() -> None:
    d, store = deps(CallRecord("CAlive", "MZ1", "demo"))
    body = await call_json(d, "CAlive")
    assert body is not None and body["call_sid"] == "CAlive" and "recording" not in body
    assert store.asked == []


async def test_an_ended_or_placed_call_asks_the_store_for_its_recording_and_attempt() -> None:
    ended = CallRecord("CAend", "MZ2", "demo", ended_at="2026-12-07T01:00:00Z")
    placed = CallRecord("CAout", "MZ3", "demo", direction="outbound")
    d, store = deps(ended, placed)
    body = await call_json(d, "CAend")
    assert body is not None and body["recording"] == "/api/calls/CAend/recording"
    assert store.asked == ["recording CAend"]
    store.asked.clear()
    await call_json(d, "CAout")
    assert store.asked == ["attempt CAout"]  # live: no recording yet
    store.asked.clear()
    assert await call_json(d, "CAnone") is None
    assert store.asked == ["call CAnone", "attempt CAnone"]
