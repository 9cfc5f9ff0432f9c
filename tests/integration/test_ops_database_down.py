"""A process that starts while the database is down (a container restarted during the outage)
still reports it: /metrics says newsflash_up{dependency="database"} 0, so the Prometheus rule
fires instead of the scrape failing, and beat's alarm round raises database_unreachable."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from core.adapters import migrate
from core.adapters.sql import make_engine
from core.bootstrap import Container
from service.app import create_app
from tests.support.services import make_env, settings_from, silent_listener
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


@pytest.mark.parametrize("hung", ["database", "redis"])
def test_metrics_and_readiness_answer_within_a_scrape_while_a_dependency_hangs(
    tmp_path: Path, clean_redis: str, vapid_pem: str, hung: str
) -> None:
    """A database or Redis that accepts connections and never answers. Before: /metrics took
    41 s (hung database: each of four questions waited the connect timeout) or 21 s (hung
    Redis: every question its own socket timeout), past Prometheus's 10 s scrape timeout, so
    the scrape failed instead of reporting newsflash_up 0, and /readyz took 10 s and 7 s. Now
    what a round found unreachable is not asked again, and the probes give up in 3 s / 2 s."""
    with silent_listener() as port:
        if hung == "database":
            env = _env(tmp_path, clean_redis, vapid_pem)
            env["NEWSFLASH_DATABASE_URL"] = f"postgresql+psycopg://news@127.0.0.1:{port}/newsflash"
        else:
            database = f"sqlite:///{tmp_path}/newsflash.db"
            migrate.upgrade(make_engine(database))
            env = _env(tmp_path, f"redis://127.0.0.1:{port}/0", vapid_pem)
            env["NEWSFLASH_DATABASE_URL"] = database
            env["NEWSFLASH_BROKER_URL"] = f"redis://127.0.0.1:{port}/0"
        client = create_app(settings_from(env)).test_client()
        started = time.monotonic()
        answer = client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        scraped_s = time.monotonic() - started
        started = time.monotonic()
        ready = client.get("/readyz")
        ready_s = time.monotonic() - started
    assert answer.status_code == 200
    up = {
        s.labels["dependency"]: s.value
        for family in text_string_to_metric_families(answer.get_data(as_text=True))
        for s in family.samples
        if s.name == "newsflash_up"
    }
    assert up[hung] == 0.0
    assert scraped_s < 8, f"/metrics took {scraped_s:.1f} s"
    assert ready.status_code == 503
    assert ready.json["checks"][hung].startswith("unreachable")
    assert ready_s < 6, f"/readyz took {ready_s:.1f} s"
