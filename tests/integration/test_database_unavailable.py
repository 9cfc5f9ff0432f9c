"""A database that refuses, hangs or goes away mid-session: the web answers 503 with
Retry-After (JSON for the API, the newsroom's page for a browser), within the connect timeout,
never a 500 with a traceback per request and never a request held for ever."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from core.accounts import Role
from core.adapters import migrate
from core.adapters.accounts_sql import SqlAccounts
from core.adapters.pg_sessions import CONNECT_DEFAULTS
from core.adapters.sql import make_engine
from service.app import create_app
from service.openapi import document
from tests.support.newsroom import csrf_of
from tests.support.services import (
    create_pg_database,
    drop_pg_database,
    make_env,
    new_vapid_pem,
    settings_from,
    silent_listener,
)

REFUSED = "postgresql+psycopg://news:s3cret-pw@127.0.0.1:9/newsflash"  # nothing listens on 9
METRICS_TOKEN = "metrics-" + "x" * 32
PASSWORD = "correct horse battery staple"
READER = {
    "endpoint": "https://fcm.googleapis.com/fcm/send/abc",
    "keys": {
        "p256dh": "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM",
        "auth": "tBHItJI5svbpez7KI4CCXg",
    },
    "topics": ["breaking"],
}


def _app(tmp_path: Path, database_url: str, redis_url: str) -> Flask:
    env = make_env(
        tmp_path / "var", database_url, redis_url, new_vapid_pem(), METRICS_TOKEN=METRICS_TOKEN
    )
    return create_app(settings_from(env))


def _unavailable(answer: object, json_expected: bool) -> None:
    assert answer.status_code == 503, answer.text  # type: ignore[attr-defined]
    headers = answer.headers  # type: ignore[attr-defined]
    # 5 s on every route, limited or not (the rate limiter once put its window's reset, up to
    # 60 s, over it on limited routes).
    assert headers["Retry-After"] == "5"
    if json_expected:
        error = answer.json["error"]  # type: ignore[attr-defined]
        assert error == {
            "code": "unavailable",
            "field": None,
            "message": "the database is not answering; try again in 5 s",
        }


@pytest.fixture
def silent_server() -> Iterator[int]:
    with silent_listener() as port:
        yield port


def test_every_route_answers_503_not_500_while_the_database_refuses(
    tmp_path: Path, clean_redis: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Every route of the app, as an outsider calls it. Before: the reader's subscribe, its
    preference and story routes and the click/display reports answered 500
    "internal_server_error", each logging a traceback that named the database's host."""
    app = _app(tmp_path, REFUSED, clean_redis)
    client = app.test_client()
    statuses: dict[int, list[str]] = {}
    with caplog.at_level(logging.WARNING):
        for rule in app.url_map.iter_rules():
            for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
                path = re.sub(r"<(?:\w+:)?\w+>", "1", rule.rule)
                body = READER if path == "/api/v1/subscriptions" else {}
                answer = client.open(path, method=method, json=None if method == "GET" else body)
                statuses.setdefault(answer.status_code, []).append(f"{method} {path}")
                if answer.status_code == 503 and path != "/readyz":
                    _unavailable(answer, path.startswith("/api/"))
    assert not [s for s in statuses if s >= 500 and s != 503], statuses
    # Each API 503 is in the OpenAPI document for its operation.
    documented = {
        (method.upper(), re.sub(r"\{\w+\}", "1", path))
        for path, operations in document()["paths"].items()
        for method, operation in operations.items()
        if "503" in operation["responses"]
    }
    undocumented = [
        call
        for call in statuses[503]
        if call.split()[1].startswith("/api/") and tuple(call.split()) not in documented
    ]
    assert undocumented == []
    assert "POST /api/v1/subscriptions" in statuses[503]
    assert len(statuses[503]) >= 10, statuses[503]
    assert "Traceback" not in caplog.text and "s3cret-pw" not in caplog.text
    assert "127.0.0.1:9" not in caplog.text and "port 9" not in caplog.text
    lines = [r for r in caplog.records if r.getMessage() == "database unavailable"]
    assert len(lines) == len(statuses[503]) - 1  # /readyz reports it in its answer instead


def test_a_database_that_never_answers_is_given_up_on_after_the_connect_timeout(
    tmp_path: Path, clean_redis: str, silent_server: int
) -> None:
    """A server that accepts and never answers (hung, a half-open proxy). Before: /readyz and
    every request that needed the database waited for ever (libpq's default), holding a server
    thread each. The URL's connect_timeout (2 s here, 10 s by default) bounds it."""
    url = f"postgresql+psycopg://news@127.0.0.1:{silent_server}/newsflash?connect_timeout=2"
    client = _app(tmp_path, url, clean_redis).test_client()
    started = time.monotonic()
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json["checks"]["database"] == "unreachable: OperationalError"
    subscribe = client.post("/api/v1/subscriptions", json=READER)
    _unavailable(subscribe, json_expected=True)
    assert time.monotonic() - started < 10  # two connect timeouts and change


def test_connections_get_timeouts_and_keepalives_unless_the_url_sets_them(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PGCONNECT_TIMEOUT", raising=False)
    for url, timeout in ((postgres_url, "10"), (postgres_url + "?connect_timeout=3", "3")):
        engine = make_engine(url)
        with engine.connect() as conn:
            dbapi_conn = conn.connection.dbapi_connection
            assert dbapi_conn is not None
            given = dbapi_conn.info.get_parameters()  # type: ignore[attr-defined]
        engine.dispose()
        assert given["connect_timeout"] == timeout
        assert given["tcp_user_timeout"] == str(CONNECT_DEFAULTS["tcp_user_timeout"])
        assert given["keepalives_idle"] == str(CONNECT_DEFAULTS["keepalives_idle"])


def test_a_signed_in_editor_whose_database_goes_away_sees_a_page_not_a_crash(
    tmp_path: Path, clean_redis: str, postgres_available: bool
) -> None:
    """The newsroom open on a phone when the database goes (dropped here, which ends every
    session): the next page is the newsroom's "Briefly unavailable" with a way to try again,
    drawn without asking the database who is signed in; the API answers the same in JSON."""
    url = create_pg_database()
    try:
        engine = make_engine(url)
        migrate.upgrade(engine)
        accounts = SqlAccounts(engine)
        accounts.create_user("editor@news.example", PASSWORD, Role.EDITOR)
        token = accounts.create_token("cms", Role.EDITOR)
        engine.dispose()
        app = _app(tmp_path, url, clean_redis)
        client = app.test_client()
        page = client.get("/editor/login")
        signed_in = client.post(
            "/editor/login",
            data={
                "email": "editor@news.example",
                "password": PASSWORD,
                "csrf_token": csrf_of(page.text),
            },
        )
        assert signed_in.status_code == 302, signed_in.text
        assert client.get("/editor/").status_code == 200
    finally:
        drop_pg_database(url)
    history = client.get("/editor/")
    _unavailable(history, json_expected=False)
    assert "Briefly unavailable" in history.text
    assert "cannot reach its database" in history.text
    assert 'href="/editor/?"' in history.text or 'href="/editor/"' in history.text  # try again
    assert "+ New alert" not in history.text  # no navigation that needs a signed-in user
    listing = client.get("/api/v1/alerts", headers={"Authorization": f"Bearer {token}"})
    _unavailable(listing, json_expected=True)
