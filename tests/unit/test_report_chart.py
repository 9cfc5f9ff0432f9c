"""The report's chart as drawn: its axis text stays short enough to be read on a phone, where
the chart is scaled to about half its drawn width (the exact figures are in the legend)."""

from __future__ import annotations

import pytest

from core.newsroom import Milestone
from core.reports import Chart
from service.report_chart import LEFT, draw


def _drawn(total: int) -> list[str]:
    chart = Chart(
        2.0,
        60.0,
        total,
        {"delivered": [(0.0, 0), (60.0, total)]},
        [Milestone(50, total // 2, 12.0)],
    )
    return [label for _y, label in draw(chart).y_ticks]


def test_the_count_axis_is_short_at_any_audience() -> None:
    assert _drawn(104) == ["0", "52", "104"]
    assert _drawn(1_240) == ["0", "620", "1.2k"]
    assert _drawn(99_999) == ["0", "50k", "100k"]
    assert _drawn(1_240_000) == ["0", "620k", "1.2M"]
    assert _drawn(999_999) == ["0", "500k", "1M"]
    for total in (1, 7_777, 55_555, 999_499, 3_333_333, 250_000_000):
        # Drawn right-aligned in the plot's left margin, at a phone's 20-unit font a character
        # is about 11 units wide: four fit in the margin, "1,240,000" did not.
        assert all(len(label) <= 4 for label in _drawn(total)), _drawn(total)
    assert LEFT >= 4 * 12


@pytest.mark.parametrize("seconds", [0.42, 9.94, 12.34, 59.4, 61.0, 754.9, 3725.0])
def test_a_milestone_box_says_what_the_charts_mark_says(seconds: float) -> None:
    """The report's 50/90/100 % boxes (the nf_duration filter) wrote "12.3 s" and "12 min 34 s"
    where the chart's marks (core.pace.duration_text) wrote "12 s" and "1 h 2 min"."""
    from core.pace import duration_text
    from service.editor import _duration

    assert _duration(seconds) == duration_text(seconds)
    assert _duration(None) == "—"
