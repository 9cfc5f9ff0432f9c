"""One live Newsflash stack for end-to-end tests: the web app (in-process, optionally served on a
real port), Celery worker and beat subprocesses, and the push stand-ins they deliver to.

    with live_stack(tmp, database_url, redis_url, vapid_pem, hostile=True, BATCH_SIZE="20") as s:
        token = s.token("e2e", Role.EDITOR)
        s.client.post("/api/v1/alerts", ...)

Everything started is stopped on the way out (the worker and beat processes side by side, then
the stand-ins and the server), and the engines are disposed; the database belongs to the caller.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine
from werkzeug.serving import make_server

from config.settings import Settings
from core.accounts import Role
from core.adapters import migrate
from core.adapters.accounts_sql import SqlAccounts
from core.adapters.sql import make_engine
from service.app import create_app
from standin.server import PushStandin
from tests.support.ops import stop_all
from tests.support.services import free_port, make_env, settings_from
from tests.support.stack import Process, start_beat, start_worker

# (name, queues or None for all, concurrency)
WorkerSpec = tuple[str, str | None, int]
ALL_QUEUES: Sequence[WorkerSpec] = (("worker", None, 2),)


@dataclass
class LiveStack:
    settings: Settings
    env: dict[str, str]
    app: Flask
    client: FlaskClient
    engine: Engine  # a connection of the test's own, for looking into the tables
    logs: Path
    standin: PushStandin
    hostile: PushStandin | None  # a second push host (127.0.0.2) for host-wide faults
    base_url: str | None  # set when served on a real port
    processes: list[Process] = field(default_factory=list)
    beat: Process | None = None

    @property
    def worker(self) -> Process:
        return next(p for p in self.processes if p is not self.beat)

    def token(self, name: str, role: Role) -> str:
        return SqlAccounts(self.app.extensions["newsflash"].container.engine).create_token(
            name, role
        )

    def create_user(self, email: str, password: str, role: Role) -> None:
        SqlAccounts(self.app.extensions["newsflash"].container.engine).create_user(
            email, password, role
        )

    def start_worker(
        self, name: str = "worker", queues: str | None = None, concurrency: int = 2
    ) -> Process:
        """Another worker, stopped with the stack."""
        proc = start_worker(self.env, self.logs, name, queues, concurrency=concurrency)
        self.processes.append(proc)
        return proc


@contextlib.contextmanager
def live_stack(
    tmp: Path,
    database_url: str,
    redis_url: str,
    vapid_pem: str,
    *,
    workers: Sequence[WorkerSpec] = ALL_QUEUES,
    beat: bool = True,
    hostile: bool = False,
    serve: bool = False,
    migrate_url: str | None = None,
    **extra: str,
) -> Iterator[LiveStack]:
    """The stack over an existing database (migrated here, through migrate_url if given: the
    URL without a fault-injecting proxy in between); extra are NEWSFLASH_* settings."""
    env = make_env(tmp / "var", database_url, redis_url, vapid_pem, **extra)
    settings = settings_from(env)
    engine = make_engine(migrate_url or database_url)
    migrate.upgrade(engine)
    app = create_app(settings)
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(app.extensions["newsflash"].container.engine.dispose)
        cleanup.callback(engine.dispose)
        base_url = None
        if serve:
            server = make_server("127.0.0.1", free_port(), app, threaded=True)
            threading.Thread(target=server.serve_forever, daemon=True).start()
            cleanup.callback(server.shutdown)
            base_url = f"http://127.0.0.1:{server.server_port}"
        standin = PushStandin().start()
        cleanup.callback(standin.stop)
        second = None
        if hostile:
            second = PushStandin(host="127.0.0.2").start()
            cleanup.callback(second.stop)
        stack = LiveStack(
            settings, env, app, app.test_client(), engine, tmp / "logs", standin, second, base_url
        )
        cleanup.callback(stop_all, stack.processes)
        for name, queues, concurrency in workers:
            stack.start_worker(name, queues, concurrency)
        if beat:
            stack.beat = start_beat(env, stack.logs)
            stack.processes.append(stack.beat)
        yield stack
