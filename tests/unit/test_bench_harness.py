"""The harness's own cost and its verdict; merging the load processes' runs."""

from __future__ import annotations

import asyncio
import time

from slotline.agent.bench.harness import (
    MAX_LOOP_LAG_P99_MS,
    LoopLagMonitor,
    harness_section,
    summary_lines,
)
from slotline.agent.bench.load_procs import merge_concurrency, merge_runs, shares
from slotline.agent.bench.runner import CallResult, LoadPlan, RunResult

CALM = {"count": 100, "p50": 0.3, "p99": 2.0, "max": 4.0}


def proc(cpu_s: float, at_peak: float | None = 30.0) -> dict[str, object]:
    return {"cpu_s": cpu_s, "cpu_percent_mean": 25.0, "cpu_percent_at_peak_calls": at_peak,
            "cpu_ms_per_call_second": None}


def test_cost_per_call_second_by_role_and_a_valid_run() -> None:
    processes = {"server": proc(9.0), "bench": proc(1.0), "load-1": proc(2.0),
                 "vendors": proc(1.5)}
    lags = {"bench": CALM, "load-1": CALM, "vendors": {**CALM, "p99": 6.0}}
    harness = harness_section(processes, lags, call_seconds=2000.0, send_lateness_p99_ms=3.0,
                              shared_process=False)
    assert harness["valid"] and harness["invalid_reasons"] == []
    assert harness["cpu_ms_per_call_second"] == {"callers": 1.5, "emulators": 0.75,
                                                 "total": 2.25}
    assert harness["loop_lag_ms_p99"] == 6.0
    assert set(harness["processes"]) == {"bench", "load-1", "vendors"}  # not the server
    assert harness["processes"]["load-1"]["role"] == "callers"
    lines = summary_lines(harness)
    assert lines[0].startswith("harness 1.50 callers + 0.75 emulators = 2.25 ms CPU")
    assert not any("INVALID" in line for line in lines)


def test_a_lagging_loop_a_saturated_process_or_late_frames_make_the_run_invalid() -> None:
    late = {**CALM, "p99": MAX_LOOP_LAG_P99_MS + 5}
    harness = harness_section({"bench": proc(1.0, at_peak=97.0), "vendors": proc(1.0)},
                              {"bench": CALM, "vendors": late}, call_seconds=100.0,
                              send_lateness_p99_ms=31.0, shared_process=False,
                              stt_redecodes=3, stt_decodes=5)
    assert not harness["valid"]
    reasons = " | ".join(harness["invalid_reasons"])
    assert "bench process (callers) used 97% of a core" in reasons
    assert "vendors process's event loop (emulators) lagged p99 25.0 ms" in reasons
    assert "frames left p99 31.0 ms late" in reasons
    assert any("decoded 3 spans for real" in w for w in harness["warnings"])
    assert any("decoded 2 spans for real that its transcript memo did not know" in w
               for w in harness["warnings"])
    lines = summary_lines(harness)
    assert any(line.startswith("harness INVALID RUN") for line in lines)
    assert any(line.startswith("harness WARNING: the Deepgram emulator") for line in lines)


def test_without_samples_the_cost_is_unknown_not_zero() -> None:
    harness = harness_section({}, {}, call_seconds=0.0, send_lateness_p99_ms=None,
                              shared_process=True)
    assert harness["cpu_ms_per_call_second"] == {"callers": None, "emulators": None,
                                                 "total": None}
    assert harness["valid"] and harness["warnings"]  # the shared process is said


def block_the_loop(seconds: float) -> None:
    """What a harness too busy to keep up does to its loop."""
    time.sleep(seconds)


async def test_loop_lag_monitor_sees_a_blocked_loop() -> None:
    monitor = LoopLagMonitor(interval_s=0.01)
    task = asyncio.create_task(monitor.run())
    await asyncio.sleep(0.03)
    block_the_loop(0.08)  # the monitor's timer fires late
    await asyncio.sleep(0.03)
    task.cancel()
    summary = monitor.summary()
    assert summary["count"] and summary["max"] is not None and summary["max"] >= 50


def test_slots_interleave_over_the_processes() -> None:
    assert shares(5, 2) == [(0, 2, 4), (1, 3)]
    assert shares(2, 4) == [(0,), (1,)]  # no process without a call


def test_concurrency_timelines_add_up() -> None:
    a = [(0.0, 0), (1.0, 1), (3.0, 0)]
    b = [(0.0, 0), (2.0, 1), (2.5, 2), (4.0, 0)]
    merged = merge_concurrency([a, b])
    assert merged == [(0.0, 0), (1.0, 1), (2.0, 2), (2.5, 3), (3.0, 2), (4.0, 0)]


def test_runs_merge_in_start_order_on_the_common_origin() -> None:
    plan = LoadPlan(calls=2, duration_s=10.0)
    one, two = RunResult(plan, "short", 5.0, 100.0), RunResult(plan, "short", 5.0, 100.0)
    one.calls = [CallResult(0, 0.5, 4.0, "completed", [])]
    two.calls = [CallResult(1, 0.2, 4.5, "cut", [])]
    one.ended_mono_s, two.ended_mono_s, two.stopped_early = 14.0, 15.0, True
    merged = merge_runs(plan, "short", (5.0, 100.0), [one, two])
    assert [c.slot for c in merged.calls] == [1, 0]
    assert merged.wall_s == 10.0 and merged.stopped_early
