"""The HTML report: one self-contained file (inline CSS and SVG, no scripts, no fetches).

Drawn from the result document only: the summary table, then the plots — latency CDF per
stage, a per-turn waterfall of the server's stages, latency against concurrency, CPU per call
and memory — then errors and the run's configuration.
"""

from __future__ import annotations

import json
from collections import defaultdict
from html import escape
from pathlib import Path
from typing import Any

from slotline.agent.bench import capacity
from slotline.agent.bench.report import summary_table
from slotline.agent.bench.svg import PALETTE, Bar, Segment, Series, chart, waterfall

_WATERFALL_TURNS = 40
_STAGE_ORDER = ("endpoint_ms", "stt_final_ms", "llm_ttft_ms", "tts_ttfb_ms")
_STYLE = """body{font-family:sans-serif;margin:24px;max-width:1400px;color:#222}
h1{font-size:20px}h2{font-size:16px;margin-top:28px}pre{background:#f6f6f6;padding:12px;
overflow-x:auto;font-size:12px}.grid{display:flex;flex-wrap:wrap;gap:16px}
.grid svg{border:1px solid #ddd}p.note{color:#555;font-size:13px;max-width:900px}"""


def _cdf(values: list[float]) -> list[tuple[float, float]]:
    ordered = sorted(values)
    n = len(ordered)
    return [(ordered[0], 0.0), *((v, (i + 1) / n) for i, v in enumerate(ordered))] if n else []


def latency_cdf(result: dict[str, Any]) -> str:
    turns = result["per_turn"]
    series = [Series("caller turn_latency_ms", _cdf(
        [t["caller"]["turn_latency_ms"] for t in turns
         if t["caller"]["turn_latency_ms"] is not None]), "step")]
    series.append(Series("caller bargein_ms", _cdf(
        [t["caller"]["bargein_ms"] for t in turns if t["caller"]["bargein_ms"] is not None]),
        "step"))
    stages: dict[str, list[float]] = defaultdict(list)
    for t in turns:
        for name, value in (t["server"] or {}).items():
            stages[name].append(value)
    for name in sorted(stages, key=lambda n: (n != "turn_latency_ms", n)):
        series.append(Series(f"server {name}", _cdf(stages[name]), "step"))
    return chart(series, title="Latency CDF per stage", x_label="ms",
                 y_label="fraction of turns", y_min=0.0)


def turn_waterfall(result: dict[str, Any]) -> str:
    turns = [t for t in result["per_turn"] if t["caller"]["turn_latency_ms"] is not None]
    with_server = [t for t in turns if t["server"]]
    picked = (with_server or turns)[:_WATERFALL_TURNS]
    colors = dict(zip((*_STAGE_ORDER, "server_overhead_ms", "turn_latency_ms"), PALETTE,
                      strict=False))
    bars = []
    for t in picked:
        server = t["server"]
        label = f"#{t['call']} step {t['step']}" + (" (barge-in)" if t["barge_in"] else "")
        if server:
            segments = [Segment(server.get(name, 0.0), name, colors[name])
                        for name in _STAGE_ORDER]
            segments.append(Segment(server.get("server_overhead_ms", 0.0),
                                    "server_overhead_ms", colors["server_overhead_ms"]))
            bars.append(Bar(label, segments, t["caller"]["turn_latency_ms"]))
        else:
            bars.append(Bar(label, [Segment(t["caller"]["turn_latency_ms"],
                                            "caller turn_latency_ms", colors["turn_latency_ms"])]))
    return waterfall(bars, title=f"Per-turn waterfall (first {len(bars)} turns)",
                     x_label="ms after the caller's last voiced frame")


def latency_vs_concurrency(result: dict[str, Any]) -> str:
    steps = result.get("steps") or []
    if steps:
        series = [
            Series("p50 turn_latency_ms", [(s["calls"], s["turn_latency_p50_ms"]) for s in steps
                                           if s["turn_latency_p50_ms"] is not None]),
            Series("p95 turn_latency_ms", [(s["calls"], s["turn_latency_p95_ms"]) for s in steps
                                           if s["turn_latency_p95_ms"] is not None]),
            Series("p99 server_overhead_ms", [(s["calls"], s["server_overhead_p99_ms"])
                                              for s in steps
                                              if s["server_overhead_p99_ms"] is not None]),
        ]
        title = "Latency vs concurrent calls (capacity steps)"
    else:
        points = [(t["concurrency"], t["caller"]["turn_latency_ms"]) for t in result["per_turn"]
                  if t["caller"]["turn_latency_ms"] is not None]
        series = [Series("caller turn_latency_ms (each turn)", points, "scatter")]
        overhead = [(t["concurrency"], t["server"]["server_overhead_ms"])
                    for t in result["per_turn"]
                    if t["server"] and "server_overhead_ms" in t["server"]]
        series.append(Series("server_overhead_ms (each turn)", overhead, "scatter"))
        title = "Latency vs calls up at that moment"
    return chart(series, title=title, x_label="concurrent calls", y_label="ms", y_min=0.0)


def cpu_per_call(result: dict[str, Any]) -> str:
    steps = result.get("steps") or []
    if steps:
        series = [Series("server CPU ms per call-second",
                         [(s["calls"], s["cpu_ms_per_call_second"]) for s in steps
                          if s["cpu_ms_per_call_second"] is not None])]
        return chart(series, title="CPU per call (capacity steps)", x_label="concurrent calls",
                     y_label="CPU ms per call-second", y_min=0.0)
    series = []
    names = sorted({n for s in result["series"]["samples"] for n in s["cpu_percent"]})
    for name in names:
        # % of a core = 10 ms of CPU per second; per call up at that moment
        points = [(s["t_s"], s["cpu_percent"][name] * 10 / s["active_calls"])
                  for s in result["series"]["samples"]
                  if name in s["cpu_percent"] and s["active_calls"]]
        series.append(Series(f"{name}", points))
    return chart(series, title="CPU per call over time", x_label="seconds into the run",
                 y_label="CPU ms per call-second", y_min=0.0)


def load_over_time(result: dict[str, Any]) -> str:
    samples = result["series"]["samples"]
    series = [Series("calls up", [(t, n) for t, n in result["series"]["concurrency"]], "step")]
    for name in sorted({n for s in samples for n in s["cpu_percent"]}):
        series.append(Series(f"{name} CPU %", [(s["t_s"], s["cpu_percent"][name])
                                                for s in samples if name in s["cpu_percent"]]))
    for name in sorted({n for s in samples for n in s["rss_mb"]}):
        series.append(Series(f"{name} RSS MB", [(s["t_s"], s["rss_mb"][name])
                                                 for s in samples if name in s["rss_mb"]]))
    return chart(series, title="Calls, CPU and memory over time", x_label="seconds into the run",
                 y_label="calls / % of a core / MB", y_min=0.0)


def render(result: dict[str, Any]) -> str:
    cfg = result["config"]
    title = (f"slotline bench: {cfg['calls']} calls, profile {cfg['profile']['name']}, "
             f"{cfg['target']['kind']}")
    summary = summary_table(result)
    if result.get("capacity"):
        summary += "\n" + capacity.summary(result)
    notes = []
    if result["resources"]["shared_process"]:
        notes.append("The server ran inside the bench process: its CPU and memory figures "
                     "include the simulated callers.")
    if not result["turns"]["matched_in_call_log"]:
        notes.append("No server call log: only caller-side measures are shown.")
    errors = result["errors"]["examples"]
    parts = [
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">",
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        f"<p class=\"note\">{escape(result['created_at'])} on {result['machine']['cpus']} CPUs "
        f"({escape(result['machine']['cpu_model'] or 'unknown CPU')}); "
        f"command: <code>{escape(' '.join(result['command']))}</code></p>",
        *(f"<p class=\"note\">{escape(n)}</p>" for n in notes),
        f"<h2>Summary</h2><pre>{escape(summary)}</pre>",
        "<h2>Plots</h2><div class=\"grid\">",
        latency_cdf(result), turn_waterfall(result), latency_vs_concurrency(result),
        cpu_per_call(result), load_over_time(result),
        "</div>",
        "<h2>Errors</h2>",
        f"<pre>{escape(chr(10).join(errors) or 'none')}</pre>",
        "<h2>Configuration</h2>",
        f"<pre>{escape(json.dumps(result['config'], indent=1))}</pre>",
        f"<pre>{escape(json.dumps({'vendors': result['vendors']}, indent=1))}</pre>",
        "</body></html>",
    ]
    return "\n".join(parts)


def write_report(result: dict[str, Any], out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "report.html"
    path.write_text(render(result), encoding="utf-8")
    return path
