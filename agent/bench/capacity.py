"""Capacity search: raise the number of concurrent calls until a budget breaks.

Each step is a fixed-load run against a fresh target (so memory and CPU per call are the
step's own). N doubles from ``start_calls`` until a step breaks the budget (or ``max_calls``),
then bisects between the last good and the first bad N to within ``resolution``.

A step is good when: no call failed or dropped and every finished turn was answered; p95
``turn_latency_ms`` is within the budget (default: the first step's p95 + ``slack_ms``, the
issue's "within 50 ms of its 10-call value"); callers heard at most
``max_gaps_per_call_minute`` underruns. If the callers' own frames left late (p99 over
``max_send_lateness_ms``), or the emulated vendors answered later than their profile allows
(p95 beyond delay + jitter + ``vendor_margin_ms``: they share the machine), the bench machine,
not the server, is the limit: the search stops and says so rather than blame the server. So
does a run the harness marked invalid (``harness.py``: a harness process lagged or saturated).

``calls_per_core``: a Slotline process runs its calls on one event loop, i.e. one core, so the
last good N of one process is its calls per core; ``cpu_bound_calls_per_core`` extrapolates
from the CPU it used there (what one fully busy core would carry at that cost per call).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

Step = Callable[[int], Awaitable[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class Search:
    start_calls: int = 10
    max_calls: int = 400
    budget_p95_ms: float | None = None
    max_send_lateness_ms: float = 20.0
    max_gaps_per_call_minute: float = 0.0
    slack_ms: float = 50.0
    vendor_margin_ms: float = 100.0  # emulated vendor slower than its profile by this: stop
    resolution: float = 0.1  # stop when the bad N is within 10 % of the good one


def _server(result: dict[str, Any]) -> dict[str, Any]:
    processes: dict[str, Any] = result["resources"]["processes"]
    return processes.get("server") or processes.get("bench") or {}


def judge(
    result: dict[str, Any], budget_ms: float | None, search: Search
) -> tuple[bool, list[str], bool]:
    """(good, reasons it is not, the bench client was the limit)."""
    reasons: list[str] = []
    calls, turns = result["calls"], result["turns"]
    if calls["failed"] or calls["dropped"]:
        reasons.append(f"{calls['failed']} failed, {calls['dropped']} dropped calls")
    if turns["unanswered"]:
        reasons.append(f"{turns['unanswered']} unanswered turns")
    p95 = result["latency"]["caller"]["turn_latency_ms"]["p95"]
    if p95 is None:
        reasons.append("no answered turn")
    elif budget_ms is not None and p95 > budget_ms:
        reasons.append(f"p95 turn_latency_ms {p95:.0f} > budget {budget_ms:.0f}")
    gaps = result["audio"]["outbound_gaps"]["per_call_minute"] or 0.0
    if gaps > search.max_gaps_per_call_minute:
        reasons.append(f"{gaps:.2f} audio underruns per call-minute > "
                       f"{search.max_gaps_per_call_minute:g}")
    lateness = result["audio"]["send_lateness_ms"]["p99"] or 0.0
    client_limited = lateness > search.max_send_lateness_ms
    if client_limited:
        reasons.append(f"callers' own frames p99 {lateness:.1f} ms late: the bench is the limit")
    harness = result.get("harness") or {}
    lagged = [r for r in harness.get("invalid_reasons", []) if "frames left" not in r]
    if lagged:  # the callers' lateness is said above; the rest only the harness knows
        reasons.append("harness: " + "; ".join(lagged) + ": the bench is the limit")
        client_limited = True
    slow = _slow_vendors(result, search.vendor_margin_ms)
    if slow:
        reasons.append(f"emulated vendors slower than their profile ({slow}): "
                       "this machine, not the server, is the limit")
    return not reasons, reasons, client_limited or bool(slow)


def _slow_vendors(result: dict[str, Any], margin_ms: float) -> str:
    """Emulated STT/TTS answering later than profile + jitter + margin (p95, server side)."""
    profile = result["config"]["profile"]
    if not profile.get("emulated"):
        return ""
    server = result["latency"]["server"]
    slow = []
    for stage, section, key in (("stt_final_ms", "stt", "finalize_ms"),
                                ("tts_ttfb_ms", "tts", "first_byte_ms")):
        p95 = server.get(stage, {}).get("p95")
        nominal = profile[section].get(key, 0.0) + profile[section].get("jitter_ms", 0.0)
        if p95 is not None and p95 > nominal + margin_ms:
            slow.append(f"{stage} p95 {p95:.0f} ms")
    return ", ".join(slow)


def step_entry(result: dict[str, Any], good: bool, reasons: list[str]) -> dict[str, Any]:
    caller = result["latency"]["caller"]["turn_latency_ms"]
    overhead = result["latency"]["server"].get("server_overhead_ms", {})
    server = _server(result)
    return {
        "calls": result["config"]["calls"],
        "ok": good,
        "reasons": reasons,
        "turn_latency_p50_ms": caller["p50"],
        "turn_latency_p95_ms": caller["p95"],
        "server_overhead_p99_ms": overhead.get("p99"),
        "send_lateness_p99_ms": result["audio"]["send_lateness_ms"]["p99"],
        "gaps": result["audio"]["outbound_gaps"]["count"],
        "errors": result["errors"]["count"],
        "dropped": result["calls"]["dropped"],
        "server_cpu_percent": server.get("cpu_percent_at_peak_calls"),
        "cpu_ms_per_call_second": server.get("cpu_ms_per_call_second"),
        "rss_mb_per_call": server.get("rss_mb_per_call"),
    }


async def search(step: Step, plan: Search, stop: asyncio.Event) -> dict[str, Any]:
    """Run steps until the answer is known (or ``stop`` is set): the last good step's result
    with every step in ``steps`` and the verdict in ``capacity``."""
    steps: list[dict[str, Any]] = []
    budget = plan.budget_p95_ms
    good: dict[str, Any] | None = None
    last: dict[str, Any] | None = None
    good_n, bad_n, limited_by = 0, 0, "stopped"
    n = plan.start_calls
    while not stop.is_set():
        last = await step(n)
        if stop.is_set():
            break  # a partial step proves nothing either way
        p95 = last["latency"]["caller"]["turn_latency_ms"]["p95"]
        if budget is None and p95 is not None:
            budget = p95 + plan.slack_ms
        ok, reasons, client_limited = judge(last, budget, plan)
        steps.append(step_entry(last, ok, reasons))
        if client_limited:
            limited_by = "; ".join(r for r in reasons if "is the limit" in r)
            break
        if ok:
            good, good_n = last, n
        else:
            bad_n, limited_by = n, "; ".join(reasons)
        if not bad_n:
            if n >= plan.max_calls:
                limited_by = f"max_calls ({plan.max_calls}) reached"
                break
            n = min(2 * n, plan.max_calls)
            continue
        if bad_n - good_n <= max(1, int(plan.resolution * bad_n)):
            break
        n = (good_n + bad_n) // 2
        limited_by = "; ".join(reasons) if not ok else limited_by
    base = good or last
    if base is None:
        raise RuntimeError("capacity search stopped before its first step")
    result = dict(base)
    server = _server(good) if good is not None else {}
    cpu = server.get("cpu_percent_at_peak_calls")
    result["steps"] = steps
    result["capacity"] = {
        "last_good_calls": good_n or None,
        "first_bad_calls": bad_n or None,
        "limited_by": limited_by,
        "budget": {**asdict(plan), "budget_p95_ms": budget},
        "server_processes": 1,
        "calls_per_core": good_n or None,
        "server_cpu_percent_at_last_good": cpu,
        "cpu_bound_calls_per_core": round(good_n * 100 / cpu, 1) if good_n and cpu else None,
    }
    return result


def summary(result: dict[str, Any]) -> str:
    verdict = result["capacity"]
    lines = ["", f"  {'calls':>6} {'ok':>4} {'p50':>7} {'p95':>7} {'ovh p99':>8} {'late p99':>9}"
                 f" {'gaps':>5} {'cpu %':>6} {'ms/call-s':>10} {'MB/call':>8}"]
    for s in result["steps"]:
        lines.append(
            f"  {s['calls']:>6} {'yes' if s['ok'] else 'no':>4} {_f(s['turn_latency_p50_ms'])}"
            f" {_f(s['turn_latency_p95_ms'])} {_f(s['server_overhead_p99_ms'], 8)}"
            f" {_f(s['send_lateness_p99_ms'], 9, 1)} {s['gaps']:>5}"
            f" {_f(s['server_cpu_percent'], 6)} {_f(s['cpu_ms_per_call_second'], 10, 2)}"
            f" {_f(s['rss_mb_per_call'], 8, 3)}")
    lines.append(f"capacity: last good {verdict['last_good_calls']} calls, first bad "
                 f"{verdict['first_bad_calls']}; limited by: {verdict['limited_by']}")
    lines.append(f"calls per core (one server process): {verdict['calls_per_core']}; "
                 f"CPU-bound estimate {verdict['cpu_bound_calls_per_core']}")
    return "\n".join(lines)


def _f(value: float | None, width: int = 7, digits: int = 0) -> str:
    return f"{'-':>{width}}" if value is None else f"{value:>{width}.{digits}f}"
