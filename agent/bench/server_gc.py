"""The server's garbage-collection pauses during a run, from its ``/metrics`` before and after.

Slotline times every collection (``slotline_gc_pause_seconds``, by generation; see
``agent.server.heap``). A collection stops the event loop, and with it every call's audio and
turn-taking, so its pauses belong next to the server overhead and the underruns. The bench
reads the histogram when the load starts and when it ends; the difference is the run's (the
server's start-up is not counted). A histogram has no maximum: ``longest_ms`` is the upper
bound of the highest bucket that holds a pause ("at most 50 ms").
"""

from __future__ import annotations

import math
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from slotline.agent.server.heap import GENERATIONS

_NAME = "slotline_gc_pause_seconds"
_SLOW_S = 0.010  # a pause this long is heard as late audio on a call


def _histograms(text: str) -> dict[str, dict[str, float]]:
    """generation -> {"count", "sum", "le=<bound>": cumulative count, ...}."""
    found: dict[str, dict[str, float]] = {}
    try:
        families = list(text_string_to_metric_families(text))
    except ValueError:  # not Prometheus text: nothing published
        return found
    for family in families:  # a text without # TYPE lines makes a family of each sample name
        for sample in family.samples:
            part = sample.name.removeprefix(_NAME + "_")
            generation = sample.labels.get("generation", "")
            if part == sample.name or generation not in GENERATIONS:
                continue  # another metric (python_gc_* has generations too)
            series = found.setdefault(generation, {})
            if part in ("count", "sum"):
                series[part] = sample.value
            elif part == "bucket" and "le" in sample.labels:
                series["le=" + sample.labels["le"]] = sample.value
    return found


def gc_pauses(before: str | None, after: str | None) -> dict[str, Any] | None:
    """The run's pauses by generation (None when the server does not publish them)."""
    if not after or _NAME not in after:
        return None
    end, start = _histograms(after), _histograms(before or "")
    out: dict[str, Any] = {}
    for generation in GENERATIONS:
        now, then = end.get(generation, {}), start.get(generation, {})
        bounds = sorted((float(key[3:]), key) for key in now if key.startswith("le="))
        longest: float | None = None
        fast = below = 0.0  # pauses of the run within 10 ms; within the previous bound
        for bound, key in bounds:
            cumulative = now[key] - then.get(key, 0.0)
            if cumulative > below:
                longest = bound
            if bound <= _SLOW_S:
                fast = cumulative
            below = cumulative
        total = now.get("count", 0.0) - then.get("count", 0.0)
        out[generation] = {
            "pauses": int(total),
            "total_ms": round(1000 * (now.get("sum", 0.0) - then.get("sum", 0.0)), 1),
            "over_10_ms": int(total - fast),
            "longest_ms": None if longest is None else
            ("inf" if math.isinf(longest) else round(1000 * longest, 1)),
        }
    return out


def summary_line(gc: dict[str, Any] | None) -> str | None:
    if not gc:
        return None
    pauses = sum(g["pauses"] for g in gc.values())
    total = sum(g["total_ms"] for g in gc.values())
    slow = sum(g["over_10_ms"] for g in gc.values())
    full = gc["2"]
    return (f"gc     server: {pauses} collections, {total:.0f} ms in all; "
            f"{full['pauses']} full scans (longest <= {full['longest_ms'] or '-'} ms); "
            f"pauses over 10 ms: {slow}")
