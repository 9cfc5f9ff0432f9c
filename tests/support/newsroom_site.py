"""The newsroom on a test client over a migrated database (SQLite or PostgreSQL): its accounts,
logins from fresh loopback addresses, and the CLI run with the same settings."""

from __future__ import annotations

import gc
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis as redis_lib
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine

import cli.main as cli
from core.accounts import Role
from core.adapters import migrate
from core.adapters.accounts_sql import SqlAccounts
from core.adapters.sql import make_engine
from service.app import create_app
from tests.support.newsroom import PASSWORD, csrf_of
from tests.support.services import TEST_REDIS_DB, engine_database, make_env, settings_from

LOGIN = "/editor/login"


def fresh_ip() -> str:
    """A loopback address of its own: a login from it starts with the whole login limit."""
    n = uuid.uuid4().int
    return f"127.{n % 250 + 1}.{(n >> 8) % 250}.{(n >> 16) % 250}"


def login(
    client: FlaskClient, email: str, password: str = PASSWORD, ip: str | None = None, **kw: Any
) -> Any:
    """The login form as a browser fills it in (CSRF token from the page), from `ip` or a
    fresh address; the answer to the POST."""
    environ = {"REMOTE_ADDR": ip or fresh_ip()}
    page = client.get(LOGIN, environ_base=environ, **kw)
    return client.post(
        LOGIN,
        data={"email": email, "password": password, "csrf_token": csrf_of(page.text)},
        environ_base=environ,
        **kw,
    )


def logged_in(app: Flask, email: str, password: str = PASSWORD) -> FlaskClient:
    client = app.test_client()
    answer = login(client, email, password)
    assert answer.status_code == 302, answer.text
    return client


@dataclass
class Site:
    app: Flask
    engine: Engine
    env: dict[str, str]
    tmp: Path

    @property
    def accounts(self) -> SqlAccounts:
        return SqlAccounts(self.engine)

    def user(self, role: Role = Role.EDITOR) -> str:
        email = f"{role.value}-{uuid.uuid4().hex[:8]}@news.example"
        self.accounts.create_user(email, PASSWORD, role)
        return email

    def app_with(self, **settings: str) -> Flask:
        """Another app on the same database and Redis, with NEWSFLASH_<name> settings changed
        (dispose of its engine when done)."""
        extra = {f"NEWSFLASH_{k}": v for k, v in settings.items()}
        return create_app(settings_from({**self.env, **extra}))

    def cli(self, monkeypatch: pytest.MonkeyPatch, *argv: str) -> int:
        for name, value in self.env.items():
            monkeypatch.setenv(name, value)
        monkeypatch.chdir(self.tmp)  # no stray .env from the checkout
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            code = cli.main(list(argv))
            gc.collect()
        return code


def site_per_engine(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    vapid_pem: str,
    name: str,
) -> Iterator[Site]:
    """The body of a module fixture parametrised over ["sqlite", "postgres"]: a fresh database
    migrated to head and the test Redis DB emptied."""
    request.getfixturevalue("redis_url")
    redis_lib.Redis.from_url(f"redis://127.0.0.1:6379/{TEST_REDIS_DB}").flushdb()
    tmp = tmp_path_factory.mktemp(f"{name}-{request.param}")
    with engine_database(request, tmp) as url:
        env = make_env(tmp / "var", url, f"redis://127.0.0.1:6379/{TEST_REDIS_DB}", vapid_pem)
        engine = make_engine(url)
        migrate.upgrade(engine)
        app = create_app(settings_from(env))
        try:
            yield Site(app, engine, env, tmp)
        finally:
            engine.dispose()
            app.extensions["newsflash"].container.engine.dispose()


def one_account_app(
    tmp: Path, vapid_pem: str, email: str, role: Role, **settings: str
) -> Iterator[Flask]:
    """The body of a module fixture: the app over a fresh SQLite database with one account, the
    test Redis DB emptied, logins not limited, NEWSFLASH_<name> settings as given (its
    password: PASSWORD)."""
    redis_lib.Redis.from_url(f"redis://127.0.0.1:6379/{TEST_REDIS_DB}").flushdb()
    url = f"sqlite:///{tmp}/newsflash.db"
    env = make_env(
        tmp / "var",
        url,
        f"redis://127.0.0.1:6379/{TEST_REDIS_DB}",
        vapid_pem,
        RATE_LIMIT_LOGIN="100000 per minute",
        **settings,
    )
    engine = make_engine(url)
    migrate.upgrade(engine)
    SqlAccounts(engine).create_user(email, PASSWORD, role)
    engine.dispose()
    app = create_app(settings_from(env))
    yield app
    app.extensions["newsflash"].container.engine.dispose()
