"""Issue 17, defect 9: a call's record is in the store while the call goes on, and a worker
killed with SIGKILL leaves its calls ``failed`` with a reason once the worker is replaced.

The kill runs ``slotline serve --workers 2`` as a subprocess (``bench.races.serve_process``) on
a SQLite file this test also opens: the supervisor restarts the dead worker, and the new worker's
start-up sweep (``agent.call.persist``) closes the dead worker's call. The worker to kill is
the one the stored row names as its writer.
"""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

from bench.races import serve_process
from slotline.agent.call.persist import STOPPED
from slotline.agent.sim.caller import run_caller
from slotline.agent.sim.demo import DEMO_SCRIPT, caller_wav
from slotline.agent.store import Store, StoredCall, open_store
from tests.e2e.conftest import running_server
from tests.until import until

CONFIG = Path(__file__).resolve().parents[2] / "config" / "slotline.yaml"


async def _stored(store: Store, call_sid: str) -> StoredCall | None:
    return await store.calls.get(call_sid)


async def test_a_live_call_is_in_the_store_and_its_final_write_wins() -> None:
    runner, server = await running_server()
    assert server.deps.store is not None
    store = server.deps.store
    try:
        script = [caller_wav(u.stem) for u in DEMO_SCRIPT]
        call = asyncio.create_task(run_caller(server.media_url, script, call_sid="CA-live-1"))

        async def mid_call() -> bool:
            row = await _stored(store, "CA-live-1")
            return row is not None and row.status == "in-progress" and len(row.turns) >= 2

        await until(mid_call, timeout_s=30)  # written while the call goes on
        assert not call.done()
        await call
        row = await _stored(store, "CA-live-1")
        assert row is not None and row.status == "completed" and row.ended_at is not None
        assert row.node == "goodbye" and row.writer.split(":")[1] == str(os.getpid())
    finally:
        await runner.cleanup()


async def test_a_call_of_a_killed_worker_is_failed_when_the_worker_is_replaced(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path}/killed.db"
    async with open_store(url) as store, serve_process(0, 2, CONFIG, url, tmp_path) as server:
        await server.worker_pids()
        media = server.url.replace("http://", "ws://") + "/twilio/media"
        script = [caller_wav(u.stem) for u in DEMO_SCRIPT]
        call = asyncio.create_task(run_caller(media, script, call_sid="CA-killed-1"))

        async def first_turn_stored() -> bool:
            row = await _stored(store, "CA-killed-1")
            return row is not None and len(row.turns) >= 2

        await until(first_turn_stored, timeout_s=30)
        live = await _stored(store, "CA-killed-1")
        assert live is not None and live.status == "in-progress"
        os.kill(int(live.writer.split(":")[1]), signal.SIGKILL)
        await asyncio.gather(call, return_exceptions=True)  # the caller's line went dead

        async def failed() -> bool:
            row = await _stored(store, "CA-killed-1")
            return row is not None and row.status == "failed"

        await until(failed, timeout_s=30)  # the replacement worker's start-up sweep
        row = await _stored(store, "CA-killed-1")
        assert row is not None and row.ended_at is not None
        assert row.errors[-1]["message"] == STOPPED
        assert row.turns[0]["role"] == "agent"  # what happened before the kill is kept
