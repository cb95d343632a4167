"""Runs for the bench's unit tests, built from the caller's real report types (no sockets):
what ``LoadRunner`` would have collected from callers with the given turn latencies."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from slotline.agent.bench.report import build_result
from slotline.agent.bench.runner import CallResult, LoadPlan, RunResult
from slotline.agent.bench.target import TargetInfo
from slotline.agent.sim.caller import CallerReport, CallerTurn, SendLateness
from slotline.agent.sim.playout import AgentTurn

T0_MONO, T0_WALL = 1000.0, 1_800_000_000.0  # the run started at these clock readings
TARGET = TargetInfo("slotline-inprocess", "ws://127.0.0.1:1/twilio/media", "http://127.0.0.1:1",
                    None, None, True, event_loop="asyncio")


def agent_turn(gaps_ms: tuple[float, ...] = ()) -> AgentTurn:
    return AgentTurn(b"\xff" * 800, 100.0, ("m",), (), False, gaps_ms)


def caller_report(
    call_sid: str, latencies_ms: list[float | None], *, start_s: float = 1.0,
    lateness_ms: float = 1.0, gaps_ms: tuple[float, ...] = (), cut: bool = False,
) -> CallerReport:
    """A call whose turn ``i`` ended (last voiced frame) ``start_s + 2 i`` s into the run."""
    turns = tuple(
        CallerTurn(i, "say", i == 0, latency, agent_turn() if latency is not None else None,
                   T0_MONO + start_s + 2 * i, 300.0 if i == 0 else None)
        for i, latency in enumerate(latencies_ms)
    )
    samples = np.full(100, lateness_ms, np.float32)
    return CallerReport(
        "MZ" + call_sid[2:], call_sid, "AC0", turns, (agent_turn(gaps_ms),), "caller",
        SendLateness(100, lateness_ms, lateness_ms, lateness_ms, samples), 2.0 * len(turns),
        (), T0_MONO + start_s, 1000, cut, 1,
    )


def server_log(report: CallerReport, offset_ms: float = 20.0) -> dict[str, object]:
    """The call log a server would keep: one agent turn per answered caller turn, whose first
    audio left when the caller heard it, with a turn latency ``offset_ms`` below the caller's."""
    turns: list[dict[str, object]] = []
    for turn in report.turns:
        if turn.turn_latency_ms is None or turn.ended_at_s is None:
            continue
        heard_wall = T0_WALL + (turn.ended_at_s - T0_MONO) + turn.turn_latency_ms / 1000
        ttfb = 50.0
        started = datetime.fromtimestamp(heard_wall - ttfb / 1000, UTC)
        server_turn = turn.turn_latency_ms - offset_ms
        latency = {"turn_latency_ms": server_turn, "endpoint_ms": server_turn - ttfb - 10,
                   "stt_final_ms": 5.0, "llm_ttft_ms": 5.0, "tts_ttfb_ms": ttfb,
                   "server_overhead_ms": 0.0}
        turns.append({"role": "caller", "text": "hi", "started_at": started.isoformat()})
        turns.append({"role": "agent", "text": "hello", "started_at": started.isoformat(),
                      "interrupted": False, "latency": latency})
    return {"call_sid": report.call_sid, "status": "completed", "turns": turns, "errors": []}


def run_of(latencies_ms: list[float], *, calls: int = 2, lateness_ms: float = 1.0,
           gaps_ms: tuple[float, ...] = ()) -> RunResult:
    run = RunResult(LoadPlan(calls, 10.0, 1.0), "short", T0_MONO, T0_WALL, T0_MONO + 10.0)
    run.concurrency = [(0.0, 0), (0.5, 1), (1.0, calls), (9.0, 0)]
    for slot in range(calls):
        report = caller_report(f"CA{slot:032x}", list(latencies_ms), lateness_ms=lateness_ms,
                               gaps_ms=gaps_ms)
        run.calls.append(CallResult(slot, 0.5, 9.0, "completed", [], report, server_log(report)))
    return run


def result_of(latencies_ms: list[float], **kwargs: object) -> dict[str, object]:
    run = run_of(latencies_ms, **kwargs)  # type: ignore[arg-type]
    return build_result(run, target=TARGET, profile={"name": "instant", "emulated": True,
                                                     "stt": {}, "llm": {}, "tts": {}},
                        sampler=None, vendor_stats={}, command=["slotline", "bench"])
