"""A live stack for the newsroom tests: app, worker, beat, push stand-in, newsroom accounts."""

from __future__ import annotations

import contextlib
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis as redis_lib
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine

from config.settings import Settings
from core.accounts import Role
from core.adapters.accounts_sql import SqlAccounts
from standin.server import PushStandin
from tests.support.live_stack import LiveStack, live_stack
from tests.support.services import (
    TEST_REDIS_DB,
    free_port,
    new_vapid_pem,
    port_open,
    require_service,
)
from tests.support.stack import Process, wait_until

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
    """A live_stack (app, worker, beat, push stand-in) with the newsroom's accounts."""

    live: LiveStack
    token: str
    users: dict[str, int] = field(default_factory=dict)

    @property
    def settings(self) -> Settings:
        return self.live.settings

    @property
    def env(self) -> dict[str, str]:
        return self.live.env

    @property
    def app(self) -> Flask:
        return self.live.app

    @property
    def standin(self) -> PushStandin:
        return self.live.standin

    @property
    def engine(self) -> Engine:
        return self.live.engine

    @property
    def tmp(self) -> Path:
        return self.live.logs.parent

    @property
    def worker(self) -> Process:
        return self.live.worker

    @property
    def beat(self) -> Process:
        assert self.live.beat is not None, "beat is stopped"
        return self.live.beat

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
        self.live.stop_processes()

    def start_workers(self) -> None:
        """Worker and beat start side by side (a cold start is ~5 s on this machine)."""
        self.live.start_processes([(f"worker-{time.time_ns()}", None, 2)], beat=True)


def topics_env(*extra: str) -> str:
    return ",".join(["breaking:Breaking news:default", "politics", "business", "sport", *extra])


@contextlib.contextmanager
def newsroom_stack(
    database_url: str,
    tmp: Path,
    origins: list[str],
    topics: str,
    port: int | None = None,
    **extra: str,
) -> Iterator[NewsroomStack]:
    """The newsroom's stack, served on a real port when port is given."""
    redis_url = f"redis://127.0.0.1:6379/{TEST_REDIS_DB}"
    redis_lib.Redis.from_url(redis_url).flushdb()
    settings_extra: dict[str, Any] = {
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
    served = port is not None
    with live_stack(
        tmp, database_url, redis_url, new_vapid_pem(), serve=served, port=port, **settings_extra
    ) as live:
        users = {
            EDITOR: live.create_user(EDITOR, PASSWORD, Role.EDITOR),
            EDITOR2: live.create_user(EDITOR2, PASSWORD, Role.EDITOR),
            OPS: live.create_user(OPS, PASSWORD, Role.OPS),
            ADMIN: live.create_user(ADMIN, PASSWORD, Role.ADMIN),
        }
        token = live.token("newsroom-tests-" + uuid.uuid4().hex[:6], Role.EDITOR)
        yield NewsroomStack(live, token, users)


def start_newsroom_stack(
    database_url: str, tmp: Path, origins: list[str], topics: str, **extra: str
) -> Iterator[NewsroomStack]:
    """The newsroom's stack for a module fixture to `yield from`."""
    with newsroom_stack(database_url, tmp, origins, topics, None, **extra) as stack:
        yield stack


def served_newsroom(tmp: Path, topics: str, **extra: str) -> Iterator[tuple[NewsroomStack, str]]:
    """A newsroom stack on SQLite served over real HTTP on a free loopback port, for a browser:
    (the stack, its base URL). Module fixtures `yield from` it."""
    require_service("Redis", port_open("127.0.0.1", 6379), "127.0.0.1:6379")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    database_url = f"sqlite:///{tmp}/newsflash.db"
    with newsroom_stack(database_url, tmp, [base], topics, port, **extra) as stack:
        assert stack.live.base_url == base
        yield stack, base
