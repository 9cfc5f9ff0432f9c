"""A process that starts while the database is down (a container restarted during the outage)
still reports it: /metrics says newsflash_up{dependency="database"} 0, so the Prometheus rule
fires instead of the scrape failing, and beat's alarm round raises database_unreachable."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from core.bootstrap import Container
from service.app import create_app
from tests.support.services import make_env, settings_from
from workers.monitoring import run_alarm_round

# A loopback port where nothing listens: refused at once.
DOWN = "postgresql+psycopg://newsflash:s3cret-pw@127.0.0.1:9/newsflash"
METRICS_TOKEN = "metrics-" + "x" * 32


def _env(tmp_path: Path, redis_url: str, vapid_pem: str) -> dict[str, str]:
    return make_env(
        tmp_path / "var",
        DOWN,
        redis_url,
        vapid_pem,
        METRICS_TOKEN=METRICS_TOKEN,
        ALARM_FOR_S="0",
        INSPECT_TIMEOUT_S="0.2",
    )


def test_metrics_report_a_database_that_was_down_when_the_process_started(
    tmp_path: Path, clean_redis: str, vapid_pem: str
) -> None:
    app = create_app(settings_from(_env(tmp_path, clean_redis, vapid_pem)))
    answer = app.test_client().get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    body = answer.get_data(as_text=True)
    assert answer.status_code == 200, body[:500]
    up = {
        s.labels["dependency"]: s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
        if s.name == "newsflash_up"
    }
    assert up == {"database": 0.0, "broker": 1.0, "redis": 1.0}
    assert "s3cret-pw" not in body


def test_an_alarm_round_started_during_the_outage_raises_database_unreachable(
    tmp_path: Path, clean_redis: str, vapid_pem: str
) -> None:
    container = Container(settings_from(_env(tmp_path, clean_redis, vapid_pem)))
    try:
        kit = container.ops
        snapshot = run_alarm_round(kit, "test")
        assert snapshot["database"]["ok"] is False
        assert "database_unreachable" in kit.alarm_store.alarms()
    finally:
        container.engine.dispose()


@pytest.mark.parametrize("section", ["alerts_in_flight", "alerts_by_status", "subscribers"])
def test_the_database_sections_are_empty_not_fatal(
    tmp_path: Path, clean_redis: str, vapid_pem: str, section: str
) -> None:
    container = Container(settings_from(_env(tmp_path, clean_redis, vapid_pem)))
    try:
        from core import ops

        snapshot = ops.collect(container.ops.sources, 1_000_000.0)
        assert snapshot[section] is None
        assert snapshot["errors"]["database"].startswith("unreachable")
    finally:
        container.engine.dispose()
