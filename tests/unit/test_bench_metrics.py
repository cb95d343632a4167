"""Per-turn records and summaries: percentiles, concurrency, matching the server's call log."""

from __future__ import annotations

from dataclasses import replace

from slotline.agent.bench.metrics import (
    active_at,
    audio_summary,
    call_seconds,
    percentiles,
    prometheus_value,
    turn_counts,
    turn_records,
)
from slotline.agent.bench.runner import CallResult, classify
from tests.unit.bench_runs import caller_report, run_of, server_log


def test_percentiles_interpolate_and_empty_is_none() -> None:
    stats = percentiles(float(v) for v in range(1, 101))
    assert stats["count"] == 100 and stats["min"] == 1 and stats["max"] == 100
    assert stats["p50"] == 50.5 and stats["p95"] == 95.05 and stats["mean"] == 50.5
    assert percentiles([]) == {"count": 0, "mean": None, "min": None, "p50": None, "p90": None,
                               "p95": None, "p99": None, "max": None}


def test_concurrency_timeline() -> None:
    timeline = [(0.0, 0), (1.0, 1), (2.0, 2), (4.0, 1)]
    assert [active_at(timeline, t) for t in (0.5, 1.0, 3.9, 4.0, 9.0)] == [0, 1, 2, 1, 1]
    assert call_seconds(timeline, 6.0) == 1 * 1 + 2 * 2 + 1 * 2


def test_caller_turns_are_matched_to_the_server_turn_that_answered_them() -> None:
    run = run_of([700.0, 650.0, 800.0], calls=2)
    records = turn_records(run)
    assert len(records) == 6 and [r.at_s for r in records] == sorted(r.at_s for r in records)
    for record in records:
        assert record.server is not None
        assert record.turn_latency_ms is not None
        assert record.server["turn_latency_ms"] == record.turn_latency_ms - 20.0
        assert record.agreement_ms == 20.0
        assert record.concurrency == 2  # both calls were up
    assert turn_counts(records) == {"total": 6, "answered": 6, "unanswered": 0, "cut": 0,
                                    "matched_in_call_log": 6, "bargein": 2,
                                    "bargein_cleared": 2}


def test_a_server_turn_from_another_moment_is_not_matched() -> None:
    run = run_of([700.0], calls=1)
    report = run.calls[0].report
    assert report is not None
    late = server_log(caller_report(report.call_sid, [700.0], start_s=1.5))  # 500 ms later
    run.calls[0] = CallResult(0, 0.5, 9.0, "completed", [], report, late)
    (record,) = turn_records(run)
    assert record.server is None and record.agreement_ms is None


def test_unanswered_turns_and_the_turn_cut_by_the_end_of_the_run() -> None:
    run = run_of([], calls=1)
    cut = caller_report("CA" + "1" * 32, [700.0, None], cut=True)
    run.calls[0] = CallResult(0, 0.5, 9.0, "cut", [], cut, None)
    counts = turn_counts(turn_records(run))
    assert counts["cut"] == 1 and counts["unanswered"] == 0 and counts["answered"] == 1
    failed = caller_report("CA" + "2" * 32, [None, 700.0])
    run.calls[0] = CallResult(0, 0.5, 9.0, "failed", ["no agent reply"], failed, None)
    assert turn_counts(turn_records(run))["unanswered"] == 1


def test_audio_summary_counts_late_frames_and_underruns() -> None:
    run = run_of([700.0], calls=2, lateness_ms=25.0, gaps_ms=(40.0, 60.0))
    audio = audio_summary(run.calls, call_seconds_total=120.0)
    assert audio.frames_sent == 200 and audio.frames_late == 200
    assert audio.send_lateness_ms["p99"] == 25.0
    assert audio.gaps["count"] == 4 and audio.gaps["calls_with_gaps"] == 2
    assert audio.gaps["per_call_minute"] == 2.0 and audio.gaps["ms"]["max"] == 60.0
    assert audio.pauses["count"] == 0


def test_outcomes() -> None:
    base = caller_report("CA" + "3" * 32, [700.0, 700.0])
    assert classify(base, 2) == "completed"
    assert classify(replace(base, hung_up_early=True), 2) == "cut"
    assert classify(replace(base, errors=("no agent reply",)), 2) == "failed"
    assert classify(replace(base, close_code=1006), 2) == "dropped"
    assert classify(replace(base, closed_by="server"), 3) == "ended_by_server"
    assert classify(replace(base, closed_by="server"), 2) == "completed"


def test_prometheus_value() -> None:
    text = "# HELP x y\nslotline_bargein_seconds_sum 1.5\nslotline_bargein_seconds_count 3\n"
    assert prometheus_value(text, "slotline_bargein_seconds_sum") == 1.5
    assert prometheus_value(text, "missing") is None and prometheus_value(None, "x") is None
