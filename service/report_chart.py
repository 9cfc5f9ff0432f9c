"""The report's charts as SVG coordinates for the template (server-rendered: no script, no CDN)."""

from __future__ import annotations

from dataclasses import dataclass

from core.pace import duration_text
from core.reports import Chart

WIDTH, HEIGHT = 600, 220
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 12, 28


@dataclass(frozen=True)
class Drawn:
    width: int
    height: int
    lines: dict[str, str]  # name → polyline points
    marks: list[dict[str, object]]  # 50/90/100 %: x, y, label
    x_ticks: list[tuple[float, str]]
    y_ticks: list[tuple[float, str]]
    last: dict[str, int]  # the final value of each line (the text under the chart)
    span_text: str


def _x(seconds: float, span_s: float) -> float:
    return round(LEFT + (WIDTH - LEFT - RIGHT) * min(1.0, seconds / span_s), 1)


def _y(n: float, total: int) -> float:
    return round(HEIGHT - BOTTOM - (HEIGHT - TOP - BOTTOM) * min(1.0, n / total), 1)


def axis_count(n: int) -> str:
    """A count short enough for the axis at a phone's width (1.2k, 500k, 2.5M); the legend
    under the chart has the exact figures."""
    for size, suffix in ((1_000_000, "M"), (1_000, "k")):
        if n >= size:
            value = n / size
            text = str(round(value)) if value >= 9.95 else f"{value:.1f}".removesuffix(".0")
            return "1M" if text == "1000" and suffix == "k" else text + suffix
    return str(n)


def draw(chart: Chart) -> Drawn:
    lines = {
        name: " ".join(f"{_x(t, chart.span_s)},{_y(n, chart.total)}" for t, n in points)
        for name, points in chart.lines.items()
    }
    # A mark's dot is where the line is at that time: the n-th delivery (core/reports.py
    # through_marks puts that point in the line), not n % of the axis, which the rounded-up
    # n-th delivery lies above.
    marks = [
        {
            "percent": m.percent,
            "x": _x(m.after_s, chart.span_s),
            "y": _y(m.deliveries, chart.total),
            "label": f"{m.percent} % at {duration_text(m.after_s)}",
        }
        for m in chart.marks
        if m.after_s is not None
    ]
    x_ticks = [
        (_x(chart.span_s * f, chart.span_s), duration_text(chart.span_s * f)) for f in (0.5, 1)
    ]
    x_ticks.insert(0, (float(LEFT), "0 s"))
    y_ticks = [
        (_y(chart.total * f, chart.total), axis_count(round(chart.total * f))) for f in (0, 0.5, 1)
    ]
    return Drawn(
        WIDTH,
        HEIGHT,
        lines,
        marks,
        x_ticks,
        y_ticks,
        {name: points[-1][1] for name, points in chart.lines.items()},
        duration_text(chart.span_s),
    )
