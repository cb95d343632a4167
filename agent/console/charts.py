"""The console's pictures as inline SVG, drawn on the server (no charting library offline):
a call's per-turn latency waterfall, the store-wide plots, and a flow's graph (with one call's
path through it on the call page)."""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from html import escape
from typing import Any

from slotline.agent.bench.svg import Bar, Segment, Series, chart, waterfall
from slotline.agent.flow.model import Flow
from slotline.agent.flow.table import edges

# the turn's latency block, in the order the time is spent (agent.call.session fills it)
LATENCY_PARTS = (("endpoint_ms", "endpoint (silence)", "#8c9bb5"),
                 ("stt_final_ms", "STT final", "#1f77b4"),
                 ("llm_ttft_ms", "model first token", "#ff7f0e"),
                 ("tts_ttfb_ms", "TTS first audio", "#2ca02c"),
                 ("server_overhead_ms", "server overhead", "#d62728"))


def turn_waterfall(turns: Sequence[Mapping[str, Any]]) -> str:
    """One bar per agent reply that has a latency block: where the caller's wait went."""
    bars = []
    for index, turn in enumerate(turns, start=1):
        latency = turn.get("latency")
        if turn.get("role") != "agent" or not isinstance(latency, Mapping):
            continue
        segments = [Segment(float(latency.get(key, 0.0)), label, color)
                    for key, label, color in LATENCY_PARTS]
        total = float(latency.get("turn_latency_ms", 0.0))
        bars.append(Bar(f"turn {index} ({total:.0f} ms)", segments))
    return waterfall(bars, title="Turn latency: end of speech to first audio",
                     x_label="milliseconds after the caller stopped speaking", width=820)


def _day_index(moment: datetime, first: datetime) -> float:
    return float((moment.date() - first.date()).days)


def stats_charts(calls: Sequence[Mapping[str, Any]], booked_calls: set[str],
                 now: datetime) -> list[str]:
    """Turn latency per day (p50, p90), calls per hour (last 48 h), booking rate per day."""
    started = [(c, datetime.fromisoformat(c["started_at"])) for c in calls if c.get("started_at")]
    if not started:
        empty = [Series("none", [])]
        return [chart(empty, title=t, x_label="", y_label="") for t in
                ("Turn latency per day", "Calls per hour", "Booking rate per day")]
    first = min(moment for _, moment in started)
    latency_by_day: dict[float, list[float]] = defaultdict(list)
    calls_by_day: Counter[float] = Counter()
    booked_by_day: Counter[float] = Counter()
    per_hour: Counter[float] = Counter()
    for call, moment in started:
        day = _day_index(moment, first)
        calls_by_day[day] += 1
        booked_by_day[day] += call["call_sid"] in booked_calls
        hours_ago = (now - moment) / timedelta(hours=1)
        if 0 <= hours_ago < 48:
            per_hour[-float(int(hours_ago))] += 1
        for turn in call.get("turns") or ():
            latency = turn.get("latency") if isinstance(turn, Mapping) else None
            if isinstance(latency, Mapping) and latency.get("turn_latency_ms"):
                latency_by_day[day].append(float(latency["turn_latency_ms"]))
    p50 = [(d, statistics.median(v)) for d, v in sorted(latency_by_day.items())]
    p90 = [(d, _percentile(v, 0.9)) for d, v in sorted(latency_by_day.items())]
    day_label = f"days since {first.date().isoformat()}"
    hours = [(-float(h), float(per_hour.get(-float(h), 0))) for h in range(47, -1, -1)]
    rate = [(d, 100.0 * booked_by_day[d] / n) for d, n in sorted(calls_by_day.items())]
    return [
        chart([Series("p50", p50), Series("p90", p90)], title="Turn latency per day",
              x_label=day_label, y_label="turn latency (ms)", y_min=0),
        chart([Series("calls", hours, kind="step")], title="Calls per hour (last 48 h)",
              x_label="hours from now", y_label="calls", y_min=0),
        chart([Series("booked", rate, kind="line")], title="Booking rate per day",
              x_label=day_label, y_label="calls with a booking (%)", y_min=0),
    ]


def _percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


_BOX_W, _BOX_H, _GAP_X, _GAP_Y = 170, 40, 24, 46
_PATH_COLOR, _VISITED_FILL = "#c25e00", "#fff1dc"  # one call's path, over the grey graph
_STEP_R = 8  # the radius of a step number's disc
Point = tuple[float, float]


def _layout(flow: Flow) -> tuple[dict[str, Point], float, float]:
    """Each node's top-left corner, in layers by distance from the start (unreached last)."""
    layer: dict[str, int] = {flow.start: 0}
    queue = [flow.start]
    while queue:
        node_id = queue.pop(0)
        for edge in edges(flow.nodes[node_id]) if node_id in flow.nodes else ():
            if edge.target not in layer:
                layer[edge.target] = layer[node_id] + 1
                queue.append(edge.target)
    deepest = max(layer.values(), default=0)
    for node_id in flow.nodes:
        layer.setdefault(node_id, deepest + 1)
    rows: dict[int, list[str]] = defaultdict(list)
    for node_id, depth in layer.items():
        rows[depth].append(node_id)
    widest = max(len(r) for r in rows.values())
    width = widest * (_BOX_W + _GAP_X) + _GAP_X
    height = len(rows) * (_BOX_H + _GAP_Y) + _GAP_Y
    where: dict[str, Point] = {}
    for depth, ids in rows.items():
        offset = (width - len(ids) * (_BOX_W + _GAP_X) + _GAP_X) / 2
        for i, node_id in enumerate(ids):
            where[node_id] = (offset + i * (_BOX_W + _GAP_X),
                              _GAP_Y / 2 + depth * (_BOX_H + _GAP_Y))
    return where, width, height


def _ends(source: Point, target: Point) -> tuple[float, float, float, float]:
    """A line between two boxes: bottom to top between layers, side to side within one."""
    (x, y), (tx, ty) = source, target
    if ty != y:
        down = ty > y
        return (x + _BOX_W / 2, y + (_BOX_H if down else 0),
                tx + _BOX_W / 2, ty + (0 if down else _BOX_H))
    right = tx > x
    return (x + (_BOX_W if right else 0), y + _BOX_H / 2,
            tx + (0 if right else _BOX_W), ty + _BOX_H / 2)


def _path_steps(path: Sequence[str], where: Mapping[str, Point]) -> list[str]:
    """The call's moves as thick arrows, each numbered with its step(s) in the path (a move
    made twice carries both numbers). A move need not be an edge of the graph: an intent may
    jump from anywhere. Nodes no longer in the flow are left out."""
    steps: dict[tuple[str, str], list[int]] = defaultdict(list)
    for number, (source, target) in enumerate(zip(path, path[1:], strict=False), start=1):
        if source in where and target in where:
            steps[source, target].append(number)
    out = []
    for (source, target), numbers in steps.items():
        label = ",".join(map(str, numbers))
        tip = f"step {label}: {escape(source)} → {escape(target)}"
        if source == target:  # entered again from itself: a loop on the box's right side
            x, y = where[source]
            x1, y1, y2 = x + _BOX_W, y + _BOX_H * 0.3, y + _BOX_H * 0.7
            out.append(f'<path class="step" d="M{x1:.0f},{y1:.0f} C{x1 + 30:.0f},{y1 - 12:.0f} '
                       f'{x1 + 30:.0f},{y2 + 12:.0f} {x1:.0f},{y2:.0f}" fill="none" '
                       f'stroke="{_PATH_COLOR}" stroke-width="2.5" '
                       f'marker-end="url(#arrow-path)"><title>{tip}</title></path>')
            mx, my = x1 + 24, y + _BOX_H / 2
        else:
            x1, y1, x2, y2 = _ends(where[source], where[target])
            if (target, source) in steps:  # both ways: keep the two arrows apart
                x1, x2 = x1 + 5, x2 + 5
                y1, y2 = y1 + 5, y2 + 5
            out.append(f'<line class="step" x1="{x1:.0f}" y1="{y1:.0f}" x2="{x2:.0f}" '
                       f'y2="{y2:.0f}" stroke="{_PATH_COLOR}" stroke-width="2.5" '
                       f'marker-end="url(#arrow-path)"><title>{tip}</title></line>')
            mx, my = (x1 + x2) / 2, (y1 + y2) / 2
        disc_w = max(2 * _STEP_R, 7 * len(label) + 8)
        out.append(f'<g class="step-number"><title>{tip}</title>'
                   f'<rect x="{mx - disc_w / 2:.0f}" y="{my - _STEP_R:.0f}" width="{disc_w}" '
                   f'height="{2 * _STEP_R}" rx="{_STEP_R}" fill="{_PATH_COLOR}"/>'
                   f'<text x="{mx:.0f}" y="{my + 4:.0f}" text-anchor="middle" fill="#fff" '
                   f'font-weight="bold">{label}</text></g>')
    return out


def flow_svg(flow: Flow, path: Sequence[str] = ()) -> str:
    """Nodes in layers by their distance from the start (unreached ones last), edges as lines
    with their labels in tooltips; readable for the few dozen nodes a flow has. With a call's
    ``path``, the nodes it entered are marked and its moves drawn over the graph, numbered."""
    where, width, height = _layout(flow)
    visited = set(path)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
           f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="sans-serif" font-size="11">',
           '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
           'markerHeight="7" orient="auto"><path d="M0,0L10,5L0,10z" fill="#777"/></marker>'
           '<marker id="arrow-path" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="5" '
           f'markerHeight="5" orient="auto"><path d="M0,0L10,5L0,10z" fill="{_PATH_COLOR}"/>'
           '</marker></defs>']
    for node_id, node in flow.nodes.items():
        for edge in edges(node):
            if edge.target not in where:
                continue
            x1, y1, x2, y2 = _ends(where[node_id], where[edge.target])
            out.append(f'<line x1="{x1:.0f}" y1="{y1:.0f}" x2="{x2:.0f}" y2="{y2:.0f}" '
                       f'stroke="#999" marker-end="url(#arrow)"><title>{escape(node_id)} → '
                       f'{escape(edge.target)}: {escape(edge.label)}</title></line>')
    for node_id, node in flow.nodes.items():
        x, y = where[node_id]
        fill = "#e3f4e8" if node_id == flow.start else "#eef3ff"
        stroke, stroke_w, kind = "#7a8aa8", 1.0, "node"
        if node_id in visited:
            fill, stroke, stroke_w, kind = _VISITED_FILL, _PATH_COLOR, 2.5, "node visited"
        out.append(f'<g class="{kind}" data-node="{escape(node_id)}">'
                   f'<title>{escape(node.type)}</title><rect x="{x:.0f}" y="{y:.0f}" '
                   f'width="{_BOX_W}" height="{_BOX_H}" rx="6" fill="{fill}" stroke="{stroke}" '
                   f'stroke-width="{stroke_w}"/>'
                   f'<text x="{x + _BOX_W / 2:.0f}" y="{y + 17:.0f}" text-anchor="middle" '
                   f'font-weight="bold">{escape(node_id[:26])}</text>'
                   f'<text x="{x + _BOX_W / 2:.0f}" y="{y + 31:.0f}" text-anchor="middle" '
                   f'fill="#555">{escape(node.type)}</text></g>')
    out.extend(_path_steps(path, where))  # last: over the boxes they join
    out.append("</svg>")
    return "".join(out)
