"""The bench report's steady section: CPU per delivery between two marks of the same run."""

from __future__ import annotations

import psutil
import pytest

from bench.fanout import STEADY_FROM, STEADY_TO, _steady


def cpu_times(busy: float, idle: float) -> object:
    """The machine's CPU times as psutil gives them, `busy` seconds of user time."""
    fields = psutil.cpu_times()._fields
    return type(psutil.cpu_times())(
        *[busy if f == "user" else idle if f == "idle" else 0.0 for f in fields]
    )


def test_the_steady_window_divides_each_process_cpu_by_the_deliveries_between_the_marks() -> None:
    before = ({"worker0-child": 10.0, "sink": 2.0, "postgres": 1.0}, cpu_times(50.0, 10.0), 10_000)
    after = ({"worker0-child": 16.0, "sink": 2.5, "postgres": 1.6}, cpu_times(57.6, 10.4), 40_000)
    steady = _steady([(*before, 100.0), (*after, 104.0)])

    assert steady is not None
    assert (steady["from_share"], steady["to_share"]) == (STEADY_FROM, STEADY_TO)
    assert steady["deliveries"] == 30_000 and steady["seconds"] == 4.0
    assert steady["deliveries_per_s"] == 7_500
    assert steady["cpu_us_per_delivery_by_role"] == {
        "postgres": 20.0,
        "sink": pytest.approx(16.7),
        "worker0-child": 200.0,
    }
    assert steady["machine_cpu_us_per_delivery"] == pytest.approx(253.3)
    assert steady["machine_cpu_busy"] == pytest.approx(0.95)


def test_a_run_too_short_for_both_marks_has_no_steady_section() -> None:
    assert _steady([]) is None
    assert _steady([({"sink": 1.0}, cpu_times(1.0, 1.0), 500, 1.0)]) is None
