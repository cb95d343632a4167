"""Garbage-collection pauses: timed by the server (``/metrics``), read back by the bench, and
the serving process's heap frozen while it serves."""

from __future__ import annotations

import asyncio
import gc

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from slotline.agent.bench.server_gc import gc_pauses, summary_line
from slotline.agent.server.heap import GcPauses, settled_heap
from slotline.agent.server.metrics import Metrics


def test_each_collection_is_timed_by_generation() -> None:
    pauses = GcPauses()
    pauses.install()
    try:
        gc.collect(0)
        gc.collect(2)
    finally:
        pauses.uninstall()
    gc.collect(1)  # not timed: uninstalled
    timed = pauses.drain()
    assert [generation for generation, _ in timed] == [0, 2]
    assert all(seconds >= 0 for _, seconds in timed)
    assert pauses.drain() == []


def test_a_process_nobody_scrapes_keeps_a_bounded_list() -> None:
    pauses = GcPauses()
    pauses.install()
    try:
        for _ in range(GcPauses.MAX_KEPT + 5):
            gc.collect(0)
    finally:
        pauses.uninstall()
    assert len(pauses.drain()) == GcPauses.MAX_KEPT
    assert pauses.dropped >= 5


async def test_the_bench_reads_the_runs_pauses_from_two_scrapes() -> None:
    metrics = Metrics()
    await metrics.start()
    try:
        gc.collect(0)
        before = metrics.render()
        for _ in range(3):
            gc.collect(0)
        gc.collect(2)
        after = metrics.render()
    finally:
        await metrics.aclose()
    run = gc_pauses(before, after)
    assert run is not None
    assert run["0"]["pauses"] >= 3 and run["2"]["pauses"] >= 1  # other collections may add
    assert run["2"]["total_ms"] > 0 and run["2"]["longest_ms"] is not None
    assert run["1"]["longest_ms"] is None or run["1"]["pauses"] > 0
    line = summary_line(run)
    assert line is not None and "full scans" in line


def test_a_slow_full_scan_is_counted_and_bounded() -> None:
    def scrape(count: int, slow: int) -> str:
        lines = []
        for bound in ("0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "+Inf"):
            n = count - slow if float(bound) <= 0.025 else count
            lines.append(f'slotline_gc_pause_seconds_bucket{{generation="2",le="{bound}"}} {n}')
        lines += [f'slotline_gc_pause_seconds_count{{generation="2"}} {count}',
                  f'slotline_gc_pause_seconds_sum{{generation="2"}} {0.004 * count + 0.04 * slow}']
        return "\n".join(lines)

    run = gc_pauses(scrape(3, 1), scrape(5, 2))  # start-up had 3 (one slow); the run 2 more
    assert run is not None
    assert run["2"] == {"pauses": 2, "total_ms": 48.0, "over_10_ms": 1, "longest_ms": 50.0}
    assert run["0"]["pauses"] == 0 and run["0"]["longest_ms"] is None


def test_a_server_without_the_histogram_has_no_gc_line() -> None:
    assert gc_pauses("", "# HELP other\nother 1\n") is None
    assert gc_pauses(None, None) is None
    assert summary_line(None) is None


async def test_a_serving_process_freezes_its_start_up_heap_until_shutdown() -> None:
    frozen_before = gc.get_freeze_count()
    seen: list[int] = []
    trimming: list[asyncio.Task[object]] = []  # the task returning free memory (agent.server.heap)

    async def frozen(_: web.Request) -> web.Response:
        seen.append(gc.get_freeze_count())
        trimming.extend(t for t in asyncio.all_tasks() if t.get_name() == "trim")
        return web.Response(text="ok")

    app = web.Application()
    app.cleanup_ctx.append(settled_heap)
    app.router.add_get("/", frozen)
    async with TestClient(TestServer(app)) as client:
        assert (await client.get("/")).status == 200
    assert seen and seen[0] > frozen_before  # what start-up left alive is frozen
    assert gc.get_freeze_count() == frozen_before  # and unfrozen at shutdown
    assert trimming and all(t.done() for t in trimming)  # trimmed while serving, not after
