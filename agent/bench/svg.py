"""Just enough SVG charting for the bench report: line/step/scatter charts and a waterfall.

Hand-written so the report needs no plotting library and stays one self-contained file:
linear axes with round-number ticks, a legend, and every label escaped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from typing import Literal

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf")
_MARGIN_L, _MARGIN_R, _MARGIN_T, _MARGIN_B = 64, 16, 34, 46
_LEGEND_W = 210  # right of the plot
_MAX_POINTS = 600  # per series; more is thinned evenly (the shape stays)


@dataclass(frozen=True, slots=True)
class Series:
    label: str
    points: Sequence[tuple[float, float]]
    kind: Literal["line", "step", "scatter"] = "line"
    color: str | None = None


@dataclass(frozen=True, slots=True)
class Segment:
    length: float
    label: str
    color: str


@dataclass(frozen=True, slots=True)
class Bar:
    label: str
    segments: Sequence[Segment]
    marker: float | None = None  # e.g. what the caller measured, drawn as a tick


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round-number ticks covering lo..hi (1, 2 or 5 times a power of ten apart)."""
    if hi <= lo:
        hi = lo + 1
    raw = (hi - lo) / max(1, count)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    start = math.floor(lo / step) * step
    ticks, value = [], start
    while value <= hi + step * 1e-9:
        ticks.append(round(value, 10))
        value += step
    if ticks[-1] < hi:
        ticks.append(round(value, 10))
    return ticks


def _fmt(value: float) -> str:
    return f"{value:g}" if abs(value) < 1e5 else f"{value:.3g}"


def _thin(points: Sequence[tuple[float, float]]) -> Sequence[tuple[float, float]]:
    if len(points) <= _MAX_POINTS:
        return points
    stride = len(points) / _MAX_POINTS
    picked = [points[int(i * stride)] for i in range(_MAX_POINTS)]
    return [*picked, points[-1]]


def _frame(width: int, height: int, title: str) -> list[str]:
    return [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
            f'<rect width="{width}" height="{height}" fill="#fff"/>',
            f'<text x="{width / 2}" y="18" text-anchor="middle" font-size="13" '
            f'font-weight="bold">{escape(title)}</text>']


def _legend(labels: Sequence[tuple[str, str]], x: float, y: float) -> list[str]:
    out = []
    for i, (label, color) in enumerate(labels):
        yy = y + 14 * i
        out.append(f'<rect x="{x}" y="{yy - 8}" width="10" height="10" fill="{color}"/>'
                   f'<text x="{x + 14}" y="{yy + 1}">{escape(label)}</text>')
    return out


def chart(series: Sequence[Series], *, title: str, x_label: str, y_label: str,
          width: int = 760, height: int = 340, y_min: float | None = None) -> str:
    """A chart of ``series`` on shared linear axes; an empty chart says "no data"."""
    out = _frame(width, height, title)
    drawn = [s for s in series if s.points]
    if not drawn:
        out.append(f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" '
                   f'fill="#888">no data</text></svg>')
        return "".join(out)
    xs = [x for s in drawn for x, _ in s.points]
    ys = [y for s in drawn for _, y in s.points]
    x_ticks = nice_ticks(min(xs), max(xs))
    y_ticks = nice_ticks(min(ys) if y_min is None else min(y_min, min(ys)), max(ys))
    x0, x1, y0, y1 = x_ticks[0], x_ticks[-1], y_ticks[0], y_ticks[-1]
    left, right = _MARGIN_L, width - _MARGIN_R - _LEGEND_W
    top, bottom = _MARGIN_T, height - _MARGIN_B

    def px(x: float) -> float:
        return left + (x - x0) / (x1 - x0 or 1) * (right - left)

    def py(y: float) -> float:
        return bottom - (y - y0) / (y1 - y0 or 1) * (bottom - top)

    for t in x_ticks:
        out.append(f'<line x1="{px(t):.1f}" y1="{top}" x2="{px(t):.1f}" y2="{bottom}" '
                   f'stroke="#eee"/><text x="{px(t):.1f}" y="{bottom + 14}" '
                   f'text-anchor="middle">{_fmt(t)}</text>')
    for t in y_ticks:
        out.append(f'<line x1="{left}" y1="{py(t):.1f}" x2="{right}" y2="{py(t):.1f}" '
                   f'stroke="#eee"/><text x="{left - 6}" y="{py(t) + 4:.1f}" '
                   f'text-anchor="end">{_fmt(t)}</text>')
    out.append(f'<rect x="{left}" y="{top}" width="{right - left}" height="{bottom - top}" '
               f'fill="none" stroke="#999"/>')
    out.append(f'<text x="{(left + right) / 2}" y="{height - 8}" text-anchor="middle">'
               f'{escape(x_label)}</text>')
    out.append(f'<text x="14" y="{(top + bottom) / 2}" text-anchor="middle" '
               f'transform="rotate(-90 14 {(top + bottom) / 2})">{escape(y_label)}</text>')
    legend = []
    for i, s in enumerate(drawn):
        color = s.color or PALETTE[i % len(PALETTE)]
        legend.append((s.label, color))
        points = _thin(sorted(s.points) if s.kind != "scatter" else s.points)
        if s.kind == "scatter":
            out += [f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="2.5" fill="{color}" '
                    f'fill-opacity="0.6"/>' for x, y in points]
            continue
        path = []
        for j, (x, y) in enumerate(points):
            if s.kind == "step" and j:
                path.append(f"L{px(x):.1f},{py(points[j - 1][1]):.1f}")
            path.append(f"{'L' if j else 'M'}{px(x):.1f},{py(y):.1f}")
        out.append(f'<path d="{"".join(path)}" fill="none" stroke="{color}" '
                   f'stroke-width="1.8"/>')
    out += _legend(legend, right + 12, top + 10)
    out.append("</svg>")
    return "".join(out)


def waterfall(bars: Sequence[Bar], *, title: str, x_label: str, width: int = 760) -> str:
    """Horizontal stacked bars, one per row, each segment after the previous one."""
    row_h = 14
    height = _MARGIN_T + row_h * max(1, len(bars)) + _MARGIN_B + 10
    out = _frame(width, height, title)
    if not bars:
        out.append(f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" '
                   f'fill="#888">no data</text></svg>')
        return "".join(out)
    ends = [sum(s.length for s in b.segments) for b in bars]
    ends += [b.marker for b in bars if b.marker is not None]
    ticks = nice_ticks(0.0, max(ends))
    left, right = 150, width - _MARGIN_R - _LEGEND_W
    top = _MARGIN_T
    bottom = top + row_h * len(bars)

    def px(x: float) -> float:
        return left + x / (ticks[-1] or 1) * (right - left)

    for t in ticks:
        out.append(f'<line x1="{px(t):.1f}" y1="{top}" x2="{px(t):.1f}" y2="{bottom}" '
                   f'stroke="#eee"/><text x="{px(t):.1f}" y="{bottom + 14}" '
                   f'text-anchor="middle">{_fmt(t)}</text>')
    legend: dict[str, str] = {}
    for i, bar in enumerate(bars):
        y = top + i * row_h
        out.append(f'<text x="{left - 6}" y="{y + row_h - 4}" text-anchor="end">'
                   f'{escape(bar.label)}</text>')
        start = 0.0
        for seg in bar.segments:
            if seg.length > 0:
                out.append(f'<rect x="{px(start):.1f}" y="{y + 2}" '
                           f'width="{max(0.5, px(start + seg.length) - px(start)):.1f}" '
                           f'height="{row_h - 4}" fill="{seg.color}"><title>{escape(seg.label)} '
                           f'{seg.length:.0f} ms</title></rect>')
            legend.setdefault(seg.label, seg.color)
            start += seg.length
        if bar.marker is not None:
            out.append(f'<line x1="{px(bar.marker):.1f}" y1="{y}" x2="{px(bar.marker):.1f}" '
                       f'y2="{y + row_h}" stroke="#000" stroke-width="2"/>')
    if any(b.marker is not None for b in bars):
        legend["caller turn_latency_ms (tick)"] = "#000"
    out.append(f'<text x="{(left + right) / 2}" y="{height - 8}" text-anchor="middle">'
               f'{escape(x_label)}</text>')
    out += _legend(list(legend.items()), right + 12, top + 10)
    out.append("</svg>")
    return "".join(out)
