"""Beat's watchdog: while the alarm task is not running (no worker on the maintenance lane, the
broker down) beat runs a round every interval itself, and says so once; it hands back only
when a round it did not run shows up. Its own rounds must not look like the task's return."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from core.bootstrap import Container
from tests.support.services import make_env, settings_from
from workers.monitoring import BeatWatchdog

# The database is irrelevant here; a loopback port where nothing listens answers at once.
DOWN = "postgresql+psycopg://newsflash@127.0.0.1:9/newsflash"


def _said(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "newsflash.monitoring"]


def test_beat_keeps_covering_every_interval_until_the_task_runs_again(
    tmp_path: Path, clean_redis: str, vapid_pem: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="newsflash.monitoring")
    env = make_env(
        tmp_path / "var",
        DOWN,
        clean_redis,
        vapid_pem,
        ALARM_INTERVAL_S="5",
        INSPECT_TIMEOUT_S="0.2",
    )
    container = Container(settings_from(env))
    try:
        watchdog = BeatWatchdog(container.ops)
        t0 = time.time()
        # Nobody has evaluated: beat takes over, and runs a round at every interval after that
        # (its own round of 5 s ago is no sign of the task).
        ran = [watchdog.step(t0 + 5 * i) for i in range(6)]
        assert ran == [True] * 6, "beat must run a round every interval while it covers"
        assert watchdog.covering
        assert _said(caplog) == ["alarm task is not running; beat evaluates alarms itself"]

        # The task runs a round of its own: beat stops covering, and says so once.
        container.ops.telemetry.mark_evaluated(t0 + 31)
        assert watchdog.step(t0 + 32) is False
        assert not watchdog.covering
        assert _said(caplog) == [
            "alarm task is not running; beat evaluates alarms itself",
            "alarm task is running again",
        ]
        assert watchdog.step(t0 + 37) is False  # evaluated 6 s ago: within three intervals
    finally:
        container.engine.dispose()
