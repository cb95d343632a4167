"""Capacity search: doubling, then bisecting, against steps whose outcome depends on N."""

from __future__ import annotations

import asyncio
from typing import Any

from slotline.agent.bench.capacity import Search, judge, search, summary
from slotline.agent.bench.harness import harness_section
from slotline.agent.bench.report import validate
from tests.unit.bench_runs import result_of


def step_result(calls: int, p95_ms: float, *, lateness_ms: float = 1.0) -> dict[str, Any]:
    result: dict[str, Any] = result_of([p95_ms], lateness_ms=lateness_ms)
    result["config"]["calls"] = calls
    return result


async def test_doubles_then_bisects_to_the_last_good_number_of_calls() -> None:
    tried: list[int] = []

    async def step(calls: int) -> dict[str, Any]:
        tried.append(calls)
        return step_result(calls, 1000.0 if calls <= 52 else 1100.0)

    result = await search(step, Search(start_calls=10, max_calls=400), asyncio.Event())
    assert tried == [10, 20, 40, 80, 60, 50, 55]
    verdict = result["capacity"]
    assert verdict["last_good_calls"] == 50 and verdict["first_bad_calls"] == 55
    assert verdict["budget"]["budget_p95_ms"] == 1050.0  # the first step's p95 + 50
    assert verdict["calls_per_core"] == 50 and "p95 turn_latency_ms 1100" in verdict["limited_by"]
    assert [s["ok"] for s in result["steps"]] == [True, True, True, False, False, True, False]
    assert result["config"]["calls"] == 50  # the report is the last good step's
    assert validate(result) == []
    assert "last good 50 calls" in summary(result)


async def test_stops_when_the_bench_itself_is_the_limit() -> None:
    async def step(calls: int) -> dict[str, Any]:
        return step_result(calls, 1000.0, lateness_ms=40.0 if calls >= 20 else 1.0)

    result = await search(step, Search(start_calls=10), asyncio.Event())
    assert [s["calls"] for s in result["steps"]] == [10, 20]
    assert result["capacity"]["last_good_calls"] == 10
    assert result["capacity"]["limited_by"].startswith("callers' own frames")


async def test_max_calls_ends_a_search_that_never_fails() -> None:
    async def step(calls: int) -> dict[str, Any]:
        return step_result(calls, 1000.0)

    result = await search(step, Search(start_calls=10, max_calls=30), asyncio.Event())
    assert [s["calls"] for s in result["steps"]] == [10, 20, 30]
    assert result["capacity"]["limited_by"] == "max_calls (30) reached"


def test_judge_names_every_broken_budget() -> None:
    result = step_result(10, 1200.0)
    result["calls"]["dropped"] = 1
    result["audio"]["outbound_gaps"]["per_call_minute"] = 0.5
    good, reasons, client = judge(result, 1000.0, Search())
    assert not good and not client
    assert len(reasons) == 3 and "dropped" in reasons[0] and "underruns" in reasons[2]


async def test_stops_when_the_emulated_vendors_fall_behind_their_profile() -> None:
    async def step(calls: int) -> dict[str, Any]:
        result = step_result(calls, 1000.0)
        result["config"]["profile"] = {"name": "cloud", "emulated": True,
                                       "stt": {"finalize_ms": 150.0, "jitter_ms": 30.0},
                                       "llm": {}, "tts": {"first_byte_ms": 5.0}}
        if calls >= 20:
            result["latency"]["server"]["stt_final_ms"]["p95"] = 2000.0
        return result

    result = await search(step, Search(start_calls=10), asyncio.Event())
    assert [s["ok"] for s in result["steps"]] == [True, False]
    assert result["capacity"]["last_good_calls"] == 10
    assert "stt_final_ms p95 2000 ms" in result["capacity"]["limited_by"]


async def test_stops_when_the_harness_marked_the_run_invalid() -> None:
    async def step(calls: int) -> dict[str, Any]:
        result = step_result(calls, 1000.0)
        lag = {"count": 10, "p50": 1.0, "p99": 45.0 if calls >= 20 else 2.0, "max": 60.0}
        result["harness"] = harness_section({}, {"vendors": lag}, call_seconds=100.0,
                                            send_lateness_p99_ms=1.0, shared_process=False)
        return result

    result = await search(step, Search(start_calls=10), asyncio.Event())
    assert [s["calls"] for s in result["steps"]] == [10, 20]
    assert result["capacity"]["last_good_calls"] == 10
    assert "vendors process's event loop (emulators) lagged p99 45.0 ms" in \
        result["capacity"]["limited_by"]
