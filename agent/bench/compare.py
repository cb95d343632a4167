"""``slotline bench compare A.json B.json``: the headline numbers of two runs, with ratios.

Rows are read from the result documents (schema slotline-bench/1) by path; a number missing
in either run shows as ``-``. ``B/A`` below 1 means B is lower; for every row here but the
capacity one, lower is better, and the last column says which run won.
"""

from __future__ import annotations

from typing import Any

Row = tuple[str, tuple[str, ...], bool]  # label, path into the result, higher is better

_PCTS = ("p50", "p95", "p99")


def rows(a: dict[str, Any], b: dict[str, Any]) -> list[Row]:
    out: list[Row] = []
    for name in ("turn_latency_ms", "bargein_ms"):
        out += [(f"caller {name} {p}", ("latency", "caller", name, p), False) for p in _PCTS]
    stages = list(a["latency"]["server"]) + [s for s in b["latency"]["server"]
                                             if s not in a["latency"]["server"]]
    for stage in stages:
        out += [(f"server {stage} {p}", ("latency", "server", stage, p), False) for p in _PCTS]
    out += [
        ("caller - server turn p50", ("latency", "agreement_ms", "p50"), False),
        ("caller send lateness p99", ("audio", "send_lateness_ms", "p99"), False),
        ("audio underruns", ("audio", "outbound_gaps", "count"), False),
        ("underruns per call-minute", ("audio", "outbound_gaps", "per_call_minute"), False),
        ("sentence pause p50", ("audio", "sentence_pauses", "ms", "p50"), False),
    ]
    for proc in ("server", "bench", "vendors"):
        out += [
            (f"{proc} cpu % mean", ("resources", "processes", proc, "cpu_percent_mean"), False),
            (f"{proc} cpu ms per call-second",
             ("resources", "processes", proc, "cpu_ms_per_call_second"), False),
            (f"{proc} rss MB per call", ("resources", "processes", proc, "rss_mb_per_call"),
             False),
        ]
    out += [
        ("turns answered", ("turns", "answered"), True),
        ("barge-ins cleared", ("turns", "bargein_cleared"), True),
        ("calls the caller spoke first", ("calls", "spoke_first"), False),  # no greeting came
        ("failed calls", ("calls", "failed"), False),
        ("dropped calls", ("calls", "dropped"), False),
        ("errors", ("errors", "count"), False),
        ("unanswered turns", ("turns", "unanswered"), False),
        ("capacity: last good calls", ("capacity", "last_good_calls"), True),
    ]
    return out


def lookup(result: dict[str, Any], path: tuple[str, ...]) -> float | None:
    node: Any = result
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return float(node) if isinstance(node, int | float) and not isinstance(node, bool) else None


def compare(a: dict[str, Any], b: dict[str, Any]) -> list[dict[str, Any]]:
    """One entry per row present in either run: label, a, b, ratio (b/a), better (a|b|=)."""
    table = []
    for label, path, higher_better in rows(a, b):
        va, vb = lookup(a, path), lookup(b, path)
        if va is None and vb is None:
            continue
        ratio = vb / va if va not in (None, 0) and vb is not None else None
        better = "-"
        if va is not None and vb is not None:
            better = "=" if va == vb else ("b" if (vb > va) == higher_better else "a")
        table.append({"metric": label, "a": va, "b": vb, "ratio": ratio, "better": better})
    return table


def _cell(value: float | None, width: int) -> str:
    if value is None:
        return f"{'-':>{width}}"
    return f"{value:>{width}.{0 if abs(value) >= 100 else 2}f}"


def compare_text(a: dict[str, Any], b: dict[str, Any], name_a: str = "A",
                 name_b: str = "B") -> str:
    def describe(r: dict[str, Any]) -> str:
        c = r["config"]
        return (f"{c['calls']} calls, {c['duration_s']:g} s, profile {c['profile']['name']}, "
                f"{c['conversation']}, {c['target']['kind']}, {r['created_at']}")

    lines = [f"A = {name_a}: {describe(a)}", f"B = {name_b}: {describe(b)}", "",
             f"  {'metric':<34}{'A':>10}{'B':>10}{'B/A':>8}  better"]
    for row in compare(a, b):
        ratio = "-" if row["ratio"] is None else f"{row['ratio']:.2f}"
        lines.append(f"  {row['metric']:<34}{_cell(row['a'], 10)}{_cell(row['b'], 10)}"
                     f"{ratio:>8}  {row['better']}")
    return "\n".join(lines)
