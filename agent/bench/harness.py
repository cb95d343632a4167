"""The harness's own cost, and whether it — not the server — limited a run.

The bench's callers and the vendor emulators share the machine with the server they measure.
A run only says something about the server when the harness kept up: its processes had CPU to
spare and their event loops woke on time. Each harness process runs a ``LoopLagMonitor`` (a
timer every ``LAG_INTERVAL_S``; lag = how late it fired). ``harness_section`` turns the
processes' CPU (``sysstat``) and loop lag into the report's ``harness`` section: CPU ms per
call-second for the callers, the emulators and both, the worst loop lag, and ``valid: false``
with the reasons when the harness was the bottleneck:

* a harness process's loop lag p99 above ``MAX_LOOP_LAG_P99_MS`` (its timers, so its frames and
  its vendor delays, ran late);
* a harness process above ``MAX_CPU_PERCENT`` of a core while the calls were at their peak
  (one asyncio loop is one core: it was saturated);
* the callers' own frames leaving more than ``MAX_SEND_LATENESS_P99_MS`` late (p99).

Real speech decodes the Deepgram emulator fell back to are not the server's doing either: they
are warnings — every one (``stt_decodes``: spans its transcript memo did not know; a warm memo
and the built-in conversations need none), and loudest those of audio it had transcribed before
under another cut (``stt_redecodes``).
"""

from __future__ import annotations

import asyncio
from array import array
from collections.abc import Mapping
from typing import Any

import numpy as np

LAG_INTERVAL_S = 0.05  # fine enough to see a stalled 20 ms frame, 20 wake-ups a second
MAX_LOOP_LAG_P99_MS = 20.0  # one frame period: later than this, frames and delays slip
MAX_CPU_PERCENT = 90.0  # of one core: an asyncio process this busy is saturated
MAX_SEND_LATENESS_P99_MS = 20.0  # the callers' frames a whole frame late
ROLES = {"bench": "callers", "vendors": "emulators"}  # load-N processes are callers too


def role(process: str) -> str | None:
    """``callers``, ``emulators`` or None (not the harness: the server)."""
    if process.startswith("load-"):
        return "callers"
    return ROLES.get(process)


class LoopLagMonitor:
    """How late a repeating timer fires on the running loop; ``run()`` until cancelled."""

    def __init__(self, interval_s: float = LAG_INTERVAL_S) -> None:
        self._interval_s = interval_s
        self.samples_ms: array[float] = array("d")

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + self._interval_s
            await asyncio.sleep(self._interval_s)
            self.samples_ms.append(max(0.0, (loop.time() - due) * 1000))

    def summary(self) -> dict[str, float | int | None]:
        return lag_summary(self.samples_ms)


def lag_summary(samples_ms: array[float] | list[float]) -> dict[str, float | int | None]:
    if not samples_ms:
        return {"count": 0, "p50": None, "p99": None, "max": None}
    data = np.asarray(samples_ms, dtype=np.float64)
    p50, p99 = np.percentile(data, [50, 99])
    return {"count": int(data.size), "p50": round(float(p50), 2), "p99": round(float(p99), 2),
            "max": round(float(data.max()), 2)}


def _busy_percent(process: Mapping[str, Any]) -> float:
    at_peak = process.get("cpu_percent_at_peak_calls")
    return float(at_peak if at_peak is not None else process.get("cpu_percent_mean", 0.0))


def harness_section(
    processes: Mapping[str, Mapping[str, Any]],
    loop_lag_ms: Mapping[str, Mapping[str, Any]],
    *,
    call_seconds: float,
    send_lateness_p99_ms: float | None,
    shared_process: bool,
    stt_redecodes: int = 0,
    stt_decodes: int = 0,
) -> dict[str, Any]:
    """The report's ``harness`` section from sysstat's per-process summary and each harness
    process's loop lag."""
    per_role: dict[str, float] = {"callers": 0.0, "emulators": 0.0}
    seen: dict[str, bool] = {"callers": False, "emulators": False}
    reasons: list[str] = []
    entries: dict[str, Any] = {}
    for name in sorted(set(processes) | set(loop_lag_ms)):
        kind = role(name)
        if kind is None:
            continue
        process = processes.get(name, {})
        lag = loop_lag_ms.get(name)
        entries[name] = {"role": kind, "cpu_s": process.get("cpu_s"),
                         "cpu_percent_at_peak_calls": process.get("cpu_percent_at_peak_calls"),
                         "cpu_ms_per_call_second": process.get("cpu_ms_per_call_second"),
                         "loop_lag_ms": lag}
        if "cpu_s" in process:
            per_role[kind] += float(process["cpu_s"])
            seen[kind] = True
            busy = _busy_percent(process)
            if busy >= MAX_CPU_PERCENT:
                reasons.append(f"the {name} process ({kind}) used {busy:.0f}% of a core at the "
                               f"peak: saturated")
        p99 = None if lag is None else lag.get("p99")
        if p99 is not None and p99 > MAX_LOOP_LAG_P99_MS:
            reasons.append(f"the {name} process's event loop ({kind}) lagged p99 {p99:.1f} ms "
                           f"(> {MAX_LOOP_LAG_P99_MS:g} ms)")
    if send_lateness_p99_ms is not None and send_lateness_p99_ms > MAX_SEND_LATENESS_P99_MS:
        reasons.append(f"callers' own frames left p99 {send_lateness_p99_ms:.1f} ms late "
                       f"(> {MAX_SEND_LATENESS_P99_MS:g} ms)")
    per_second: dict[str, float | None] = {
        kind: round(1000 * cpu_s / call_seconds, 3) if call_seconds > 0 and seen[kind] else None
        for kind, cpu_s in per_role.items()}
    known = [v for v in per_second.values() if v is not None]
    per_second["total"] = round(sum(known), 3) if known else None
    lags = [lag["p99"] for lag in loop_lag_ms.values() if lag.get("p99") is not None]
    warnings = []
    if stt_decodes > stt_redecodes:
        warnings.append(f"the Deepgram emulator decoded {stt_decodes - stt_redecodes} spans "
                        "for real that its transcript memo did not know (pocketsphinx in the "
                        "emulators' process tree, counted in their CPU; a warm memo needs none)")
    if stt_redecodes:
        warnings.append(f"the Deepgram emulator decoded {stt_redecodes} spans for real that it "
                        "had transcribed before under another cut: STT results were late by a "
                        "real decode and cost the emulators' CPU")
    if shared_process:
        warnings.append("the server ran inside the bench process: the callers' CPU includes it")
    return {
        "valid": not reasons,
        "invalid_reasons": reasons,
        "warnings": warnings,
        "cpu_ms_per_call_second": per_second,
        "loop_lag_ms_p99": max(lags) if lags else None,
        "processes": entries,
    }


def summary_lines(harness: Mapping[str, Any] | None) -> list[str]:
    """The table's harness lines: its cost, its lag, and loudly whether the run counts."""
    if not harness:
        return []
    cost = harness["cpu_ms_per_call_second"]
    lags = ", ".join(f"{name} {_ms(entry['loop_lag_ms'])}"
                     for name, entry in harness["processes"].items()
                     if entry.get("loop_lag_ms") is not None)
    lines = [f"harness {_n(cost.get('callers'))} callers + {_n(cost.get('emulators'))} emulators"
             f" = {_n(cost.get('total'))} ms CPU per call-second; loop lag p99 "
             f"{lags or '-'}"]
    if not harness["valid"]:
        lines.append("harness INVALID RUN — the harness, not the server, limited it: "
                     + "; ".join(harness["invalid_reasons"]))
    lines += [f"harness WARNING: {text}" for text in harness.get("warnings", [])]
    return lines


def _n(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _ms(lag: Mapping[str, Any]) -> str:
    p99 = lag.get("p99")
    return "-" if p99 is None else f"{p99:.1f} ms"
