"""A serving process hands the C allocator's free memory back to the system (``agent.server.
heap``): glibc's ``malloc_trim`` on a worker thread, never on the event loop."""

from __future__ import annotations

import asyncio
import threading

from slotline.agent.server.heap import malloc_trim, return_free_memory


def test_glibc_trim_is_found_and_answers() -> None:
    trim = malloc_trim()
    assert trim is not None  # this machine's Python runs on glibc
    assert trim() in (0, 1)  # 1: memory went back to the system


async def test_the_trim_runs_on_a_worker_thread_every_interval() -> None:
    loop_thread = threading.get_ident()
    threads: list[int] = []

    def trim() -> int:
        threads.append(threading.get_ident())
        return 0

    task = asyncio.create_task(return_free_memory(trim, every_s=0.01))
    await asyncio.sleep(0.2)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert len(threads) >= 3
    assert loop_thread not in threads
    count = len(threads)
    await asyncio.sleep(0.05)
    assert len(threads) == count  # cancelled: no trim after it

