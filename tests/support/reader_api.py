"""The reader subscription API on a test client over a migrated database, and the subscription a
browser posts to it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis as redis_lib
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, update

from core.adapters import migrate
from core.adapters import tables as t
from core.adapters.sql import make_engine
from core.base64url import b64url_encode
from service.app import create_app
from tests.support.services import TEST_REDIS_DB, engine_database, make_env, settings_from

FCM = "https://fcm.googleapis.com/fcm/send/"


def p256dh() -> str:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    return b64url_encode(
        key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    )


def browser_sub(endpoint: str | None = None, **extra: Any) -> dict[str, Any]:
    """What a browser's PushSubscription.toJSON() looks like, plus our topics."""
    return {
        "endpoint": endpoint or FCM + b64url_encode(os.urandom(24)),
        "expirationTime": None,
        "keys": {"p256dh": p256dh(), "auth": b64url_encode(os.urandom(16))},
        "topics": ["breaking"],
        **extra,
    }


@dataclass
class Api:
    app: Flask
    client: FlaskClient
    engine: Any

    def rows(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(t.subscriptions)).scalar_one())

    def row(self, endpoint: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            found = (
                conn.execute(select(t.subscriptions).where(t.subscriptions.c.endpoint == endpoint))
                .mappings()
                .first()
            )
            return None if found is None else dict(found)

    def set_alert_status(self, alert_id: int | str, status: str) -> None:
        """What the workers (and the undo window ending) leave behind; these apps run none."""
        with self.engine.begin() as conn:
            conn.execute(
                update(t.alerts).where(t.alerts.c.id == int(alert_id)).values(status=status)
            )

    def post(self, path: str, body: Any, ip: str = "198.51.100.7", **kw: Any) -> Any:
        return self.client.post(path, json=body, environ_base={"REMOTE_ADDR": ip}, **kw)


def build_api(tmp: Path, database_url: str, vapid_pem: str, **extra: str) -> Api:
    env = make_env(
        tmp,
        database_url,
        f"redis://127.0.0.1:6379/{TEST_REDIS_DB}",
        vapid_pem,
        **{
            "ALLOW_LOOPBACK_PUSH": "off",
            "TOPICS": "breaking:Breaking news:default,politics,business,sport",
            "RATE_LIMIT_SUBSCRIBE": "10000 per minute",
            **extra,
        },
    )
    engine = make_engine(database_url)
    migrate.upgrade(engine)
    app = create_app(settings_from(env))
    return Api(app, app.test_client(), engine)


def dispose_api(api: Api) -> None:
    api.engine.dispose()
    api.app.extensions["newsflash"].container.engine.dispose()


def api_per_engine(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    vapid_pem: str,
    name: str,
    **extra: str,
) -> Iterator[Api]:
    """The body of a module's `api` fixture parametrised over SQLite and PostgreSQL: a clean
    limiter database, the engine's database, the app, disposed afterwards."""
    request.getfixturevalue("redis_url")
    redis_lib.Redis.from_url(f"redis://127.0.0.1:6379/{TEST_REDIS_DB}").flushdb()
    tmp = tmp_path_factory.mktemp(f"{name}-{request.param}")
    with engine_database(request, tmp) as url:
        built = build_api(tmp / "var", url, vapid_pem, **extra)
        try:
            yield built
        finally:
            dispose_api(built)
