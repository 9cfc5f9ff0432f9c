"""Publishing while the broker is down, refusing or hung: the alert is stored as queued and the
newsroom gets its answer in seconds (the reconciler sends the plan task once the broker is
back: tests/reliability/test_broker_faults.py)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from core.accounts import Role
from core.adapters import migrate
from core.adapters.accounts_sql import SqlAccounts
from core.adapters.celery_queue import BROKER_SOCKET_TIMEOUT_S, celery_config
from core.adapters.sql import make_engine
from service.app import create_app
from tests.support.services import make_env, new_vapid_pem, service_down, settings_from


@pytest.mark.timeout(120)
@pytest.mark.parametrize("kind", ["redis refusing", "redis hung", "amqp hung"])
def test_publishing_while_the_broker_is_down_answers_in_seconds_and_keeps_the_alert(
    kind: str, tmp_path: Path, clean_redis: str
) -> None:
    """Before: with a Redis broker that accepts connections and never answers, POST
    /api/v1/alerts waited for ever (kombu's first PING, no socket timeout): the editor's
    phone spun, and every retry held another server thread."""
    database = f"sqlite:///{tmp_path}/newsflash.db"
    engine = make_engine(database)
    migrate.upgrade(engine)
    token = SqlAccounts(engine).create_token("cms", Role.EDITOR)
    with service_down(kind) as broker_url:
        env = make_env(
            tmp_path / "var", database, clean_redis, new_vapid_pem(), BROKER_URL=broker_url
        )
        client = create_app(settings_from(env)).test_client()
        started = time.monotonic()
        answer = client.post(
            "/api/v1/alerts",
            json={
                "title": "Evacuation ordered in Tana River",
                "body": "Residents of the lower delta are told to move to higher ground.",
                "url": "http://127.0.0.1:8000/news/tana-river",
                "topics": ["breaking"],
            },
            headers={"Authorization": f"Bearer {token}"},
        )
        took_s = time.monotonic() - started
    assert answer.status_code == 202, answer.json
    assert answer.json["status"] == "queued"
    assert took_s < 2 * BROKER_SOCKET_TIMEOUT_S + 2, f"the publish took {took_s:.1f} s"
    with engine.connect() as conn:  # stored, waiting for the reconciler
        status = conn.exec_driver_sql("SELECT status FROM alerts").scalars().all()
    assert status == ["queued"]
    engine.dispose()


def test_only_a_redis_broker_gets_socket_timeouts(tmp_path: Path) -> None:
    """kombu's pyamqp transport has its own connect timeout and heartbeats."""
    for url, expected in (
        ("redis://127.0.0.1:6379/0", True),
        ("rediss://cache.example:6380/0", True),
        ("amqp://guest:guest@127.0.0.1:5672//", False),
    ):
        env = make_env(
            tmp_path / "var", "sqlite://", "redis://127.0.0.1:6379/0", "", BROKER_URL=url
        )
        options = celery_config(settings_from(env))["broker_transport_options"]
        assert isinstance(options, dict)
        assert ("socket_timeout" in options) is expected, url
        assert options["max_retries"] is None  # workers reconnect for ever, as before
