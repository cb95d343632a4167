"""Per-turn records from the callers' reports and the server's call log, and their summaries.

Caller side (any target): ``turn_latency_ms`` (last voiced frame sent → first reply audio
received) and ``bargein_ms`` (first voiced frame of an interruption sent → ``clear``
received). Server side (Slotline targets): every ``*_ms`` of the call log's per-turn
``latency`` (``agent.call.calllog.Latency``, named as in the README). A server turn is matched
to the caller turn whose reply audio arrived when the server sent it (server: turn
``started_at`` + ``tts_ttfb_ms``; caller: reply arrival, on the same wall clock), within
``MATCH_WINDOW_MS``.
``agreement_ms`` = caller ``turn_latency_ms`` − server ``turn_latency_ms`` for matched turns.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from slotline.agent.bench.runner import CallResult, RunResult
from slotline.agent.sim.caller import CallerReport

STAGES = ("turn_latency_ms", "endpoint_ms", "stt_final_ms", "llm_ttft_ms", "tts_ttfb_ms",
          "server_overhead_ms")
CALLER_MEASURES = ("turn_latency_ms", "bargein_ms")
MATCH_WINDOW_MS = 150.0  # a reply's first audio: server send vs caller arrival, same clock
LATE_FRAME_MS = 20.0  # a caller frame leaving a whole frame late


def percentiles(values: Iterable[float]) -> dict[str, float | int | None]:
    data = np.fromiter(values, dtype=np.float64)
    if data.size == 0:
        return {"count": 0, "mean": None, "min": None, "p50": None, "p90": None, "p95": None,
                "p99": None, "max": None}
    p50, p90, p95, p99 = np.percentile(data, [50, 90, 95, 99])
    return {"count": int(data.size), "mean": _r(data.mean()), "min": _r(data.min()),
            "p50": _r(p50), "p90": _r(p90), "p95": _r(p95), "p99": _r(p99), "max": _r(data.max())}


def _r(value: float | np.floating[Any]) -> float:
    return round(float(value), 2)


@dataclass(slots=True)
class TurnRecord:
    call: int  # index into the run's calls
    slot: int
    call_sid: str
    step: int
    kind: str  # say | dtmf
    barge_in: bool
    at_s: float  # the caller finished speaking (cut short: began), from the run's start
    concurrency: int  # calls up at that moment
    turn_latency_ms: float | None  # caller side
    bargein_ms: float | None
    server: dict[str, float] | None = None  # the call log's latency for this turn
    agreement_ms: float | None = None
    cut: bool = False  # the run ended while this turn waited for its reply

    def as_dict(self) -> dict[str, Any]:
        return {
            "call": self.call, "slot": self.slot, "call_sid": self.call_sid, "step": self.step,
            "kind": self.kind, "barge_in": self.barge_in, "at_s": round(self.at_s, 3),
            "concurrency": self.concurrency,
            "caller": {"turn_latency_ms": _opt(self.turn_latency_ms),
                       "bargein_ms": _opt(self.bargein_ms)},
            "server": self.server, "agreement_ms": _opt(self.agreement_ms), "cut": self.cut,
        }


def _opt(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def active_at(timeline: Sequence[tuple[float, int]], t_s: float) -> int:
    """Calls up at ``t_s`` from the (time, active) change list."""
    index = bisect_right([t for t, _ in timeline], t_s) - 1
    return timeline[index][1] if index >= 0 else 0


def call_seconds(timeline: Sequence[tuple[float, int]], end_s: float) -> float:
    total = 0.0
    for (t, active), (t_next, _) in zip(timeline, [*timeline[1:], (end_s, 0)], strict=True):
        total += active * max(0.0, t_next - t)
    return total


def _server_turns(call_log: dict[str, Any]) -> list[tuple[float, dict[str, float]]]:
    """(wall time the reply's first audio left, latency) of each answering agent turn."""
    out = []
    for turn in call_log.get("turns", []):
        latency = turn.get("latency")
        if turn.get("role") != "agent" or not isinstance(latency, dict):
            continue
        try:
            started = datetime.fromisoformat(turn["started_at"]).timestamp()
        except (KeyError, TypeError, ValueError):
            continue
        stages = {k: float(v) for k, v in latency.items()
                  if k.endswith("_ms") and isinstance(v, int | float)}
        out.append((started + stages.get("tts_ttfb_ms", 0.0) / 1000, stages))
    return out


def turn_records(run: RunResult) -> list[TurnRecord]:
    records: list[TurnRecord] = []
    to_wall = run.started_wall_s - run.started_mono_s
    for index, call in enumerate(run.calls):
        records += _call_turns(index, call, run, to_wall)
    records.sort(key=lambda r: r.at_s)
    return records


def _call_turns(index: int, call: CallResult, run: RunResult, to_wall: float) -> list[TurnRecord]:
    report = call.report
    if report is None:
        return []
    unmatched = _server_turns(call.call_log) if call.call_log is not None else []
    out = []
    for position, turn in enumerate(report.turns):
        # A turn cut off while it was still being said counts only for its barge-in.
        ended = turn.ended_at_s if turn.ended_at_s is not None else turn.first_voiced_at_s
        if ended is None or (turn.ended_at_s is None and turn.bargein_ms is None):
            continue
        at_s = ended - run.started_mono_s
        record = TurnRecord(
            index, call.slot, report.call_sid, turn.step_index, turn.kind, turn.barge_in, at_s,
            active_at(run.concurrency, at_s), turn.turn_latency_ms, turn.bargein_ms,
            cut=turn.turn_latency_ms is None and call.outcome == "cut"
            and position == len(report.turns) - 1,
        )
        if turn.turn_latency_ms is not None and turn.ended_at_s is not None and unmatched:
            arrived = ended + turn.turn_latency_ms / 1000 + to_wall
            best = min(range(len(unmatched)), key=lambda i: abs(unmatched[i][0] - arrived))
            sent, stages = unmatched[best]
            if abs(sent - arrived) * 1000 <= MATCH_WINDOW_MS:
                unmatched.pop(best)
                record.server = stages
                if "turn_latency_ms" in stages:
                    record.agreement_ms = turn.turn_latency_ms - stages["turn_latency_ms"]
        out.append(record)
    return out


@dataclass(slots=True)
class AudioSummary:
    send_lateness_ms: dict[str, float | int | None] = field(default_factory=dict)
    frames_sent: int = 0
    frames_late: int = 0  # left at least LATE_FRAME_MS late
    gaps: dict[str, Any] = field(default_factory=dict)  # underruns mid-sentence
    pauses: dict[str, Any] = field(default_factory=dict)  # silences between sentences


def _silences(reports: Sequence[CallerReport], pauses: bool, minutes: float) -> dict[str, Any]:
    found = [(r.call_sid, ms) for r in reports for t in r.agent_turns
             for ms in (t.pauses_ms if pauses else t.gaps_ms)]
    values = [ms for _, ms in found]
    return {
        "count": len(values),
        "calls_with_gaps" if not pauses else "calls_with_pauses": len({s for s, _ in found}),
        "calls": len(reports),
        "total_ms": round(sum(values), 1),
        "per_call_minute": round(len(values) / minutes, 3) if minutes > 0 else None,
        "ms": percentiles(values),
    }


def audio_summary(calls: Sequence[CallResult], call_seconds_total: float) -> AudioSummary:
    reports = [c.report for c in calls if c.report is not None]
    lateness = [r.send_lateness.samples_ms for r in reports if r.send_lateness.samples_ms.size]
    samples = np.concatenate(lateness) if lateness else np.zeros(0, np.float32)
    minutes = call_seconds_total / 60
    return AudioSummary(
        send_lateness_ms=percentiles(samples.tolist()),
        frames_sent=int(samples.size),
        frames_late=int((samples >= LATE_FRAME_MS).sum()),
        gaps=_silences(reports, False, minutes),
        pauses=_silences(reports, True, minutes),
    )


def latency_summary(records: Sequence[TurnRecord]) -> dict[str, Any]:
    answered = [r for r in records if r.turn_latency_ms is not None]
    caller = {
        "turn_latency_ms": percentiles(r.turn_latency_ms for r in answered
                                       if r.turn_latency_ms is not None),
        "bargein_ms": percentiles(r.bargein_ms for r in records if r.bargein_ms is not None),
    }
    with_server = [r.server for r in records if r.server is not None]
    names = sorted({k for s in with_server for k in s}, key=_stage_order)
    server = {name: percentiles(s[name] for s in with_server if name in s) for name in names}
    agreement = percentiles(r.agreement_ms for r in records if r.agreement_ms is not None)
    return {"caller": caller, "server": server, "agreement_ms": agreement}


def _stage_order(name: str) -> tuple[int, str]:
    return (STAGES.index(name) if name in STAGES else len(STAGES), name)


def turn_counts(records: Sequence[TurnRecord]) -> dict[str, int]:
    bargeins = [r for r in records if r.barge_in]
    return {
        "total": len(records),
        "answered": sum(r.turn_latency_ms is not None for r in records),
        "unanswered": sum(r.turn_latency_ms is None and not r.cut for r in records),
        "cut": sum(r.cut for r in records),
        "matched_in_call_log": sum(r.server is not None for r in records),
        "bargein": len(bargeins),
        "bargein_cleared": sum(r.bargein_ms is not None for r in bargeins),
    }


def prometheus_value(text: str | None, name: str) -> float | None:
    """One unlabelled sample from Prometheus text (e.g. ``slotline_bargein_seconds_sum``)."""
    if not text:
        return None
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == name:
            try:
                return float(parts[1])
            except ValueError:
                return None
    return None
