"""The bench report's steady section: CPU per delivery between two marks of the same run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from bench.fanout import STEADY_FROM, STEADY_TO, Monitor, _steady
from tests.support.stack import wait_until


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


def test_a_database_process_that_exits_keeps_the_cpu_it_used(tmp_path: Path) -> None:
    """The database's CPU is the sum over its processes: one that exits between two marks
    (another client's connection closing, on a shared server) took its seconds out of the
    sum, and the bench once reported PostgreSQL's share as less than nothing."""
    burner = tmp_path / "postgres-burner"  # the name a PostgreSQL backend has
    burner.symlink_to(sys.executable)
    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass\n"
    proc = subprocess.Popen([str(burner), "-c", burn + "time.sleep(60)"])
    try:
        monitor = Monitor([])
        wait_until(lambda: sum(psutil.Process(proc.pid).cpu_times()[:2]) >= 0.3, 20, "the burn")
        before = monitor.roles()["postgres"]
    finally:
        proc.kill()
        proc.wait()
    assert monitor.roles()["postgres"] >= before - 0.01
