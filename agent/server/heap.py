"""The garbage collector of a serving process: its pauses must not stop live calls' audio.

CPython's cyclic collector stops the event loop while it scans. A full (generation 2) scan
walks every container object in the process — the modules, the flow, the vendor SDKs, every
live call — and at 200 calls on one core it took 75-208 ms (``slotline bench --calls 200``,
measured with ``gc.callbacks``; up to 500 ms by ``slotline_gc_pause_seconds``): every call's
audio and turn-taking waited that long, the agent's audio ran dry mid-sentence, and the server
overhead's p99 passed 10 ms. About 500 collections ran a minute, the young ones ~0.5 ms each.

``settled_heap`` is the serving process's cleanup context, appended last so that every resource
has started and imported what it needs. Everything alive then (modules, settings, flows,
caches, vendor clients) lives as long as the process, so it is collected once and frozen
(``gc.freeze``): later collections never scan it again, and a full scan walks only what the
live calls hold (~0.3 µs per object, ~650 objects per call). At 200 calls the full scans
during a run then took 16-58 ms, and no call heard an underrun (the README's capacity section
has the runs and their commands). Collecting the young generation less often (a threshold of
10,000 instead of 700) was tried too and made it worse: each young scan took up to 20 ms.

At shutdown the freeze is undone (the process may go on, as tests and the demo do).

While it serves, ``settled_heap`` also hands the C allocator's free memory back to the system
once a minute (glibc's ``malloc_trim(0)``, on a worker thread: ctypes releases the GIL, so the
loop runs on; only an allocation that needs the arena being trimmed waits, and a whole trim took
0.2-1.4 ms; none where the C library has no such call). In a 50-call soak the
server's RSS grew ~0.4 MiB a minute with no growth in Python objects or in SQLite's own memory:
glibc's arenas (the main one and one per database thread) kept more and more free chunks.
With this trim the growth from minute 4.5 to minute 11.7 was 1.4 MiB instead of 2.1 (a pool of 4
SQLite connections in both; 3.2 MiB with the old pool of 10 and no trim); it is slower, not
gone (2026-12-07, ``python -m bench.soak --calls 50 --minutes 12 --stack cloud``, with
``mallinfo2``/``malloc_info`` read in the serving process).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator

from aiohttp import web

log = logging.getLogger(__name__)

GENERATIONS = ("0", "1", "2")  # the collector's generations, as metric labels (2: a full scan)
TRIM_EVERY_S = 60.0  # how often a serving process returns the allocator's free memory


@contextlib.contextmanager
def frozen_heap() -> Iterator[None]:
    """Collect once and freeze what is alive now (start-up is over); unfreeze on leaving. The
    benchmark's own processes use it too: a full scan of theirs makes every simulated caller's
    frames late together."""
    gc.collect()
    gc.freeze()
    log.debug("heap settled: %d objects frozen", gc.get_freeze_count())
    try:
        yield
    finally:
        gc.unfreeze()


def malloc_trim() -> Callable[[], int] | None:
    """glibc's ``malloc_trim(0)`` (1 when it returned memory to the system), or None where the C
    library has none (musl, macOS). Looked up among the symbols the process has loaded: no
    ``ctypes.util.find_library``, which runs ``ldconfig`` in a subprocess."""
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return lambda: int(trim(0))


async def return_free_memory(trim: Callable[[], int], every_s: float = TRIM_EVERY_S) -> None:
    """Run ``trim`` every ``every_s`` on a worker thread, until cancelled."""
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(every_s)
        await loop.run_in_executor(None, trim)


async def settled_heap(app: web.Application) -> AsyncIterator[None]:
    """The serving process's cleanup context: ``frozen_heap`` while it serves, and the
    allocator's free memory returned every ``TRIM_EVERY_S``."""
    trim = malloc_trim()
    trimming = (asyncio.get_running_loop().create_task(return_free_memory(trim), name="trim")
                if trim is not None else None)
    with frozen_heap():
        try:
            yield
        finally:
            if trimming is not None:
                trimming.cancel()
                await asyncio.gather(trimming, return_exceptions=True)


class GcPauses:
    """How long each collection stopped the process, kept until ``drain``.

    ``gc.callbacks`` run inside the collector, where taking a lock that the interrupted code may
    hold would deadlock (a metric's ``observe`` takes one), so the callback only appends to a
    list; the owner moves the pauses into its metrics outside (``drain``). At most ``MAX_KEPT``
    wait: a process that is never scraped keeps a bounded list. Per collection the cost is two
    clock reads and an append (~500 collections a minute at 200 calls).
    """

    MAX_KEPT = 10_000

    __slots__ = ("_began", "_kept", "dropped")

    def __init__(self) -> None:
        self._began = 0.0
        self._kept: list[tuple[int, float]] = []  # (generation, seconds)
        self.dropped = 0  # pauses not kept because nobody drained them

    def install(self) -> None:
        if self._callback not in gc.callbacks:
            gc.callbacks.append(self._callback)

    def uninstall(self) -> None:
        with contextlib.suppress(ValueError):
            gc.callbacks.remove(self._callback)

    def drain(self) -> list[tuple[int, float]]:
        """The pauses since the last drain, oldest first: (generation, seconds)."""
        kept, self._kept = self._kept, []
        return kept

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._began = time.perf_counter()
        elif len(self._kept) < self.MAX_KEPT:
            self._kept.append((info["generation"], time.perf_counter() - self._began))
        else:
            self.dropped += 1
