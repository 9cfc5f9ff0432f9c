"""The retention simulation runs end to end at a small size and its report adds up: the ledger
holds exactly the retention window's alerts once it is full, and the database levels off."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.retention import Options, save, simulate, summary
from tests.support.services import port_open, require_service

SUBSCRIBERS, DAYS, PER_DAY, KEPT = 200, 7, 3, 2


@pytest.mark.parametrize(
    "database", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_the_simulated_database_levels_off_after_the_retention_window(
    tmp_path: Path, database: str
) -> None:
    if database == "postgres":
        require_service("PostgreSQL", port_open("127.0.0.1", 5432), "127.0.0.1:5432")
    opts = Options(
        subscribers=SUBSCRIBERS,
        days=DAYS,
        alerts_per_day=PER_DAY,
        retention_days=KEPT,
        database=database,
        work_dir=tmp_path,
        quiet=True,
    )
    report = simulate(opts)
    days = report["days"]
    assert [d["day"] for d in days] == list(range(1, DAYS + 1))
    full = KEPT * PER_DAY * SUBSCRIBERS
    # Growing day by day until the window is full, then the window and no more.
    assert [d["ledger_rows"] for d in days[:KEPT]] == [
        (i + 1) * PER_DAY * SUBSCRIBERS for i in range(KEPT)
    ]
    assert all(d["ledger_rows"] == full for d in days[KEPT:])
    assert all(d["pruned_alerts"] == PER_DAY for d in days[KEPT:])
    assert report["levels_off"] and report["ratio_peak_to_first_window"] <= 2
    assert 20 < report["bytes_per_delivery"] < 2000
    path = save(report, tmp_path / "report.json")
    assert json.loads(path.read_text())["days"][-1]["bytes"] == days[-1]["bytes"]
    assert "levels off: True" in summary(report)
