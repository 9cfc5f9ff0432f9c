"""A live stack for the newsroom tests: app, worker, beat, push stand-in, newsroom accounts."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis as redis_lib
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from flask import Flask
from flask.testing import FlaskClient

from config.settings import Settings
from core.accounts import Role
from core.adapters import migrate
from core.adapters.accounts_sql import SqlAccounts
from core.adapters.sql import make_engine
from service.app import create_app
from standin.server import PushStandin
from tests.support.services import TEST_REDIS_DB, make_env, settings_from
from tests.support.stack import Process, start_beat, start_worker, wait_until

PASSWORD = "correct horse battery staple"
EDITOR = "editor@news.example"
EDITOR2 = "editor2@news.example"
OPS = "ops@news.example"
ADMIN = "admin@news.example"
SITE = "http://127.0.0.1:8000"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found, "no CSRF token in the page"
    return found.group(1)


@dataclass
class NewsroomStack:
    settings: Settings
    env: dict[str, str]
    app: Flask
    standin: PushStandin
    worker: Process
    beat: Process
    engine: Any
    tmp: Path
    token: str
    users: dict[str, int] = field(default_factory=dict)

    @property
    def accounts(self) -> SqlAccounts:
        return SqlAccounts(self.engine)

    def client(self) -> FlaskClient:
        return self.app.test_client()

    def login(self, email: str = EDITOR, client: FlaskClient | None = None) -> FlaskClient:
        client = client or self.client()
        page = client.get("/editor/login")
        answer = client.post(
            "/editor/login",
            data={"email": email, "password": PASSWORD, "csrf_token": csrf_of(page.text)},
        )
        assert answer.status_code == 302, answer.text
        return client

    def subscribe(self, sub: dict[str, Any], topics: list[str]) -> int:
        answer = self.client().post("/api/v1/subscriptions", json={**sub, "topics": topics})
        assert answer.status_code == 201, answer.json
        return int(answer.json["id"])

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        return self.client().open(path, method=method, headers=headers, **kwargs)

    def alert(self, alert_id: int | str) -> dict[str, Any]:
        answer = self.api("GET", f"/api/v1/alerts/{alert_id}")
        assert answer.status_code == 200, answer.json
        return dict(answer.json)

    def wait_status(
        self, alert_id: int | str, status: str, timeout_s: float = 30
    ) -> dict[str, Any]:
        return wait_until(
            lambda: (a := self.alert(alert_id))["status"] == status and a,
            timeout_s,
            f"alert {alert_id} to be {status}",
            interval_s=0.1,
        )

    def payloads(self, alert_id: int | str) -> list[dict[str, Any]]:
        return [
            r.payload
            for r in self.standin.received
            if r.payload is not None and r.payload.get("id") == str(alert_id)
        ]

    def received(self, alert_id: int | str) -> list[Any]:
        return [
            r
            for r in self.standin.received
            if r.payload is not None and r.payload.get("id") == str(alert_id)
        ]

    def stop_workers(self) -> None:
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda p: p.stop(), (self.beat, self.worker)))

    def start_workers(self) -> None:
        """Worker and beat start side by side (a cold start is ~5 s on this machine)."""
        with ThreadPoolExecutor(2) as pool:
            worker = pool.submit(
                start_worker, self.env, self.tmp / "logs", f"worker-{time.time_ns()}"
            )
            beat = pool.submit(start_beat, self.env, self.tmp / "logs")
            self.worker, self.beat = worker.result(), beat.result()


def vapid_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def topics_env(*extra: str) -> str:
    return ",".join(["breaking:Breaking news:default", "politics", "business", "sport", *extra])


def start_newsroom_stack(
    database_url: str, tmp: Path, origins: list[str], topics: str, **extra: str
) -> Iterator[NewsroomStack]:
    redis_url = f"redis://127.0.0.1:6379/{TEST_REDIS_DB}"
    redis_lib.Redis.from_url(redis_url).flushdb()
    settings_extra = {
        "PUBLIC_ORIGINS": ",".join(origins),
        "TOPICS": topics,
        "UNDO_WINDOW_S": "3",
        "RETRY_BASE_S": "0.3",
        "STALE_AFTER_S": "20",
        "BATCH_SIZE": "10",
        "CONCURRENCY": "4",
        "RATE_LIMIT_SUBSCRIBE": "100000 per minute",
        "RATE_LIMIT_LOGIN": "100000 per minute",
        **extra,
    }
    env = make_env(tmp / "var", database_url, redis_url, vapid_pem(), **settings_extra)
    settings = settings_from(env)
    engine = make_engine(database_url)
    migrate.upgrade(engine)
    app = create_app(settings)
    accounts = SqlAccounts(engine)
    users = {
        EDITOR: accounts.create_user(EDITOR, PASSWORD, Role.EDITOR),
        EDITOR2: accounts.create_user(EDITOR2, PASSWORD, Role.EDITOR),
        OPS: accounts.create_user(OPS, PASSWORD, Role.OPS),
        ADMIN: accounts.create_user(ADMIN, PASSWORD, Role.ADMIN),
    }
    token = accounts.create_token("newsroom-tests-" + uuid.uuid4().hex[:6], Role.EDITOR)
    standin = PushStandin().start()
    with ThreadPoolExecutor(2) as pool:  # side by side: a cold start is ~5 s each
        futures = [
            pool.submit(start_worker, env, tmp / "logs"),
            pool.submit(start_beat, env, tmp / "logs"),
        ]
    errors = [f.exception() for f in futures if f.exception() is not None]
    if errors:
        for f in futures:
            if f.exception() is None:
                f.result().stop()
        standin.stop()
        raise errors[0]
    worker, beat = futures[0].result(), futures[1].result()
    stack = NewsroomStack(settings, env, app, standin, worker, beat, engine, tmp, token, users)
    try:
        yield stack
    finally:
        stack.stop_workers()
        standin.stop()
        engine.dispose()
        app.extensions["newsflash"].container.engine.dispose()


def served_newsroom(tmp: Path, topics: str, **extra: str) -> Iterator[tuple[NewsroomStack, str]]:
    """A newsroom stack on SQLite served over real HTTP on a free loopback port, for a browser:
    (the stack, its base URL). Module fixtures `yield from` it."""
    from tests.support.live import serve
    from tests.support.services import free_port, port_open, require_service

    require_service("Redis", port_open("127.0.0.1", 6379), "127.0.0.1:6379")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    gen = start_newsroom_stack(f"sqlite:///{tmp}/newsflash.db", tmp, [base], topics, **extra)
    stack = next(gen)
    try:
        with serve(stack.app, port) as served:
            assert served == base
            yield stack, base
    finally:
        gen.close()
