"""The rate limits while their Redis is away: kept in each web process's memory, at once and
without waiting, until Redis answers again (service/extensions.py)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from core.adapters import migrate
from core.adapters.sql import make_engine
from service.app import create_app
from tests.support.services import make_env, new_vapid_pem, service_down, settings_from

KEYS = {
    "p256dh": "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM",
    "auth": "tBHItJI5svbpez7KI4CCXg",
}


@pytest.mark.parametrize("kind", ["redis refusing", "redis hung"])
def test_a_redis_outage_keeps_the_limits_in_memory_and_costs_no_wait(
    kind: str, tmp_path: Path
) -> None:
    """Before: the limits failed open (eight subscriptions from one address against a limit of
    five all went through) and, with Redis hung, each limited request first waited the
    limiter's 2 s timeout (16.2 s for the eight); then the first and each recheck of Redis
    still waited 2 s (6.1 s for the eight; the case passed unnoticed when it ran after the
    refusing one, whose "Redis is away" the next app inherited)."""
    database = f"sqlite:///{tmp_path}/newsflash.db"
    migrate.upgrade(make_engine(database))
    with service_down(kind) as redis_url:
        env = make_env(
            tmp_path / "var",
            database,
            redis_url,
            new_vapid_pem(),
            RATE_LIMIT_SUBSCRIBE="5 per minute",
        )
        client = create_app(settings_from(env)).test_client()
        started = time.monotonic()
        codes = [
            client.post(
                "/api/v1/subscriptions",
                json={
                    "endpoint": f"https://fcm.googleapis.com/fcm/send/reader-{n}",
                    "keys": KEYS,
                    "topics": ["breaking"],
                },
            ).status_code
            for n in range(8)
        ]
        took_s = time.monotonic() - started
    assert codes == [201] * 5 + [429] * 3
    # At most the limiter's one try of the hung Redis (0.5 s; 2 s before) and the requests.
    assert took_s < 1.5, f"eight subscriptions took {took_s:.1f} s"
