"""The bench result: one versioned JSON document, and the summary table printed from it.

``build_result`` turns a run (the callers' reports, the call logs, the /proc samples) into a
plain dict following ``result.schema.json`` (``"schema": "slotline-bench/1"``; fields may be
added in /1, never renamed or removed — a change of meaning is /2). Everything else — the
table, the HTML report, ``bench compare`` — reads only that dict, so an old result.json can be
re-rendered or compared later.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from collections import Counter
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from slotline.agent.bench.harness import harness_section, summary_lines
from slotline.agent.bench.metrics import (
    audio_summary,
    call_seconds,
    latency_summary,
    prometheus_value,
    turn_counts,
    turn_records,
)
from slotline.agent.bench.runner import OUTCOMES, RunResult
from slotline.agent.bench.server_gc import gc_pauses, summary_line
from slotline.agent.bench.sysstat import SystemSampler
from slotline.agent.bench.target import TargetInfo
from slotline.providers.extras import missing

try:  # bench runs the emulators, which need the same
    from jsonschema import Draft202012Validator
except ModuleNotFoundError as exc:
    raise missing(exc, "emulators", "slotline bench") from None

SCHEMA = "slotline-bench/1"
_MAX_ERROR_EXAMPLES = 20


def result_schema() -> dict[str, Any]:
    text = resources.files("slotline.agent.bench").joinpath("result.schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def validate(result: dict[str, Any]) -> list[str]:
    """Problems with ``result`` against the schema (empty: valid)."""
    validator = Draft202012Validator(result_schema())
    return [f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}"
            for e in validator.iter_errors(result)]


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpus": os.cpu_count() or 1, "cpu_model": model, "platform": platform.platform(),
            "python": platform.python_version()}


def _errors(run: RunResult) -> dict[str, Any]:
    """Caller-side errors (kind: the text before its first colon) and the call logs' errors
    (kind: the provider), counted, with a few examples."""
    kinds: Counter[str] = Counter()
    examples: list[str] = []
    for call in run.calls:
        found = [(f"caller {e.split(':', 1)[0][:40]}", f"caller: {e}") for e in call.errors]
        if call.call_log is not None:
            found += [(f"server {e.get('provider', '?')}",
                       f"server {e.get('provider', '?')}: {e.get('message', '')}")
                      for e in call.call_log.get("errors", [])]
        for kind, text in found:
            kinds[kind] += 1
            if len(examples) < _MAX_ERROR_EXAMPLES:
                examples.append(f"{call.call_sid or f'slot {call.slot}'}: {text}")
    return {"count": sum(kinds.values()), "by_kind": dict(kinds.most_common()),
            "examples": examples}


def build_result(
    run: RunResult,
    *,
    target: TargetInfo,
    profile: dict[str, Any],
    sampler: SystemSampler | None,
    vendor_stats: dict[str, int],
    command: list[str],
    loop_lag_ms: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    records = turn_records(run)
    seconds = call_seconds(run.concurrency, run.wall_s)
    peak = max((n for _, n in run.concurrency), default=0)
    audio = audio_summary(run.calls, seconds)
    outcomes = Counter(c.outcome for c in run.calls)
    processes = sampler.summary(seconds, peak) if sampler is not None else {}
    bargein_sum = prometheus_value(run.server_metrics, "slotline_bargein_seconds_sum")
    bargein_count = prometheus_value(run.server_metrics, "slotline_bargein_seconds_count")
    latency = latency_summary(records)
    latency["server_metrics"] = {
        "bargein_count": int(bargein_count) if bargein_count is not None else None,
        "bargein_ms_mean": round(1000 * bargein_sum / bargein_count, 2)
        if bargein_sum is not None and bargein_count else None,
    }
    harness = harness_section(
        processes, loop_lag_ms or {}, call_seconds=seconds,
        send_lateness_p99_ms=audio.send_lateness_ms.get("p99"),
        shared_process=target.shared_process,
        stt_redecodes=vendor_stats.get("stt_redecodes", 0),
        stt_decodes=vendor_stats.get("stt_decodes", 0))
    return {
        "schema": SCHEMA,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": command,
        "machine": machine(),
        "config": {
            "calls": run.plan.calls, "duration_s": run.plan.duration_s,
            "ramp_s": run.plan.ramp_s, "conversation": run.conversation, "profile": profile,
            "target": target.as_dict(), "greeting_wait_s": run.greeting_wait_s,
        },
        "run": {"wall_s": round(run.wall_s, 3), "stopped_early": run.stopped_early,
                "peak_calls": peak, "call_seconds": round(seconds, 2)},
        "calls": {"started": len(run.calls), **{o: outcomes.get(o, 0) for o in OUTCOMES},
                  "spoke_first": sum(c.report is not None and c.report.spoke_first
                                     for c in run.calls)},
        "errors": _errors(run),
        "turns": turn_counts(records),
        "latency": latency,
        "audio": {
            "send_lateness_ms": audio.send_lateness_ms,
            "frames_sent": audio.frames_sent,
            "frames_late": audio.frames_late,
            "outbound_gaps": audio.gaps,
            "sentence_pauses": audio.pauses,
        },
        "resources": {
            "available": sampler is not None and sampler.available,
            "shared_process": target.shared_process,
            "processes": processes,
            # the server's garbage-collection pauses during the load (agent.bench.server_gc)
            "server_gc": gc_pauses(run.server_metrics_before, run.server_metrics),
        },
        "vendors": vendor_stats,
        "harness": harness,
        "series": {
            "concurrency": [[round(t, 3), n] for t, n in run.concurrency],
            "samples": [
                {"t_s": round(s.t_s, 3), "active_calls": s.active_calls,
                 "cpu_percent": {k: round(v, 2) for k, v in s.cpu_percent.items()},
                 "rss_mb": {k: round(v, 2) for k, v in s.rss_mb.items()}}
                for s in (sampler.samples if sampler is not None else [])
            ],
        },
        "per_turn": [r.as_dict() for r in records],
        "per_call": [_call_entry(run, i) for i in range(len(run.calls))],
        "steps": [],
        "capacity": None,
    }


def _call_entry(run: RunResult, index: int) -> dict[str, Any]:
    call = run.calls[index]
    report = call.report
    entry: dict[str, Any] = {
        "slot": call.slot, "call_sid": call.call_sid, "outcome": call.outcome,
        "started_at_s": round(call.started_at_s, 3), "ended_at_s": round(call.ended_at_s, 3),
        "errors": call.errors, "turns": 0, "gaps": 0, "send_lateness_p99_ms": None,
        "closed_by": None, "server_status": None,
    }
    if report is not None:
        entry |= {
            "turns": len(report.turns),
            "gaps": sum(len(t.gaps_ms) for t in report.agent_turns),
            "send_lateness_p99_ms": round(report.send_lateness.p99_ms, 2),
            "closed_by": report.closed_by,
        }
    if call.call_log is not None:
        entry["server_status"] = call.call_log.get("status")
    return entry


def write_result(result: dict[str, Any], out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "result.json"
    path.write_text(json.dumps(result, indent=1, sort_keys=False) + "\n", encoding="utf-8")
    return path


def load_result(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        found = data.get("schema") if isinstance(data, dict) else None
        raise ValueError(f"{path}: not a {SCHEMA} result (schema: {found!r})")
    return data


# ---- the table -----------------------------------------------------------------------------


def _fmt(value: object, digits: int = 0) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _stat_row(label: str, stats: dict[str, Any]) -> str:
    cells = [_fmt(stats.get(k)) for k in ("p50", "p90", "p95", "p99", "max")]
    return f"  {label:<28}{stats.get('count', 0):>6}" + "".join(f"{c:>8}" for c in cells)


def summary_table(result: dict[str, Any]) -> str:
    cfg, run, calls, turns = result["config"], result["run"], result["calls"], result["turns"]
    lines = [
        f"slotline bench: {cfg['calls']} calls, {cfg['duration_s']:g} s (ramp {cfg['ramp_s']:g} s),"
        f" profile {cfg['profile']['name']}, conversation {cfg['conversation']},"
        f" target {cfg['target']['kind']}"
        + (f" on {loop}" if (loop := cfg["target"].get("event_loop")) else "")
        + (f" pinned to CPU {','.join(map(str, pinned))}, harness on the others"
           if (pinned := cfg["target"].get("server_cpus")) else "")
        + ("  [stopped early]" if run["stopped_early"] else ""),
        f"calls  {calls['started']} started: {calls['completed']} completed, "
        f"{calls['ended_by_server']} ended by server, {calls['cut']} cut at the end, "
        f"{calls['failed']} failed, {calls['dropped']} dropped; peak {run['peak_calls']} at once"
        + (f"; in {calls['spoke_first']} no greeting came (the caller spoke first)"
           if calls.get("spoke_first") else ""),
        f"turns  {turns['answered']} answered, {turns['unanswered']} unanswered, "
        f"{turns['bargein']} barge-ins ({turns['bargein_cleared']} cleared), "
        f"{turns['matched_in_call_log']} matched in the call log",
        "",
        f"  {'latency (ms)':<28}{'n':>6}" + "".join(f"{h:>8}" for h in
                                                     ("p50", "p90", "p95", "p99", "max")),
    ]
    latency = result["latency"]
    for name, stats in latency["caller"].items():
        lines.append(_stat_row(f"caller {name}", stats))
    for name, stats in latency["server"].items():
        lines.append(_stat_row(f"server {name}", stats))
    if latency["agreement_ms"]["count"]:
        lines.append(_stat_row("caller - server turn", latency["agreement_ms"]))
    audio = result["audio"]
    late, gaps, pauses = (audio["send_lateness_ms"], audio["outbound_gaps"],
                          audio["sentence_pauses"])
    lines += [
        "",
        f"audio  caller send lateness p50 {_fmt(late['p50'], 2)} / p99 {_fmt(late['p99'], 2)} / "
        f"max {_fmt(late['max'], 1)} ms; {audio['frames_late']} of {audio['frames_sent']} "
        f"frames >= 20 ms late",
        f"       agent audio underruns (mid-sentence gaps) heard: {gaps['count']} in "
        f"{gaps['calls_with_gaps']} of {gaps['calls']} calls (max {_fmt(gaps['ms']['max'], 1)} ms)",
        f"       pauses between sentences: {pauses['count']}, p50 {_fmt(pauses['ms']['p50'])} / "
        f"max {_fmt(pauses['ms']['max'])} ms",
    ]
    resources_ = result["resources"]
    for name, proc in resources_["processes"].items():
        shared = " (shared with the callers)" if resources_["shared_process"] else ""
        lines.append(
            f"cpu    {name}{shared}: {proc['cpu_percent_mean']:.1f}% of a core mean, "
            f"max {proc['cpu_percent_max']:.1f}%; "
            f"{_fmt(proc.get('cpu_ms_per_call_second'), 2)} ms CPU per call-second; "
            f"RSS {proc['rss_mb_baseline']:.1f} -> {proc['rss_mb_peak']:.1f} MB "
            f"({_fmt(proc.get('rss_mb_per_call'), 3)} MB per call)")
    gc_line = summary_line(resources_.get("server_gc"))
    if gc_line is not None:
        lines.append(gc_line)
    lines += summary_lines(result.get("harness"))
    if result["errors"]["count"]:
        lines.append(f"errors {result['errors']['count']}: " + ", ".join(
            f"{k} x{n}" for k, n in list(result["errors"]["by_kind"].items())[:5]))
    return "\n".join(lines)


def command_line() -> list[str]:
    return ["slotline", *sys.argv[1:]] if sys.argv and sys.argv[0].endswith("slotline") \
        else list(sys.argv)
