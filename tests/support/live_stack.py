"""One live Newsflash stack for end-to-end tests: the web app (in-process, optionally served on a
real port, from a thread or as a `newsflash web` subprocess), Celery worker and beat subprocesses,
and the push stand-ins they deliver to.

    with live_stack(tmp, database_url, redis_url, vapid_pem, hostile=True, BATCH_SIZE="20") as s:
        token = s.token("e2e", Role.EDITOR)
        s.client.post("/api/v1/alerts", ...)

Everything started is stopped on the way out (the worker and beat processes side by side, then
the stand-ins and the server), and the engines are disposed; the database belongs to the caller.
Logs of every process are in tmp/logs, the stack's var dir is tmp/var.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine

from config.settings import Settings
from core.accounts import Role
from core.adapters import migrate
from core.adapters.accounts_sql import SqlAccounts
from core.adapters.sql import make_engine
from service.app import create_app
from standin.server import PushStandin
from tests.support import live
from tests.support.ops import stop_all
from tests.support.services import free_port, make_env, settings_from
from tests.support.stack import (
    Process,
    launch_beat,
    launch_worker,
    start_web,
    wait_ready,
)

# (name, queues or None for all, concurrency)
WorkerSpec = tuple[str, str | None, int]
ALL_QUEUES: Sequence[WorkerSpec] = (("worker", None, 2),)
# Seconds a worker or beat may take to come up (imports cost seconds on a loaded machine).
READY_TIMEOUT_S = 60.0


@dataclass
class LiveStack:
    settings: Settings
    env: dict[str, str]
    app: Flask
    client: FlaskClient
    engine: Engine  # a connection of the test's own, for looking into the tables
    logs: Path
    push: PushStandin | None
    hostile: PushStandin | None  # a second push host (127.0.0.2) for host-wide faults
    base_url: str | None  # set when served on a real port
    processes: list[Process] = field(default_factory=list)
    beat: Process | None = None
    web: Process | None = None  # the `newsflash web` process, when served by one

    @property
    def standin(self) -> PushStandin:
        assert self.push is not None, "this stack was started with standin=False"
        return self.push

    @property
    def worker(self) -> Process:
        return next(p for p in self.processes if p is not self.beat)

    def token(self, name: str, role: Role) -> str:
        return SqlAccounts(self.app.extensions["newsflash"].container.engine).create_token(
            name, role
        )

    def create_user(self, email: str, password: str, role: Role) -> int:
        return SqlAccounts(self.app.extensions["newsflash"].container.engine).create_user(
            email, password, role
        )

    def start_worker(
        self, name: str = "worker", queues: str | None = None, concurrency: int = 2
    ) -> Process:
        """Another worker, stopped with the stack."""
        return self.start_processes([(name, queues, concurrency)])[name]

    def start_processes(
        self,
        workers: Sequence[WorkerSpec],
        beat: bool = False,
        ready_timeout_s: float = READY_TIMEOUT_S,
    ) -> dict[str, Process]:
        """Workers (and beat) started side by side, each stopped with the stack: a cold start
        costs seconds of imports, so waiting for them one after another would add those up."""
        started = {name: launch_worker(self.env, self.logs, name, q, c) for name, q, c in workers}
        if beat:
            self.beat = started["beat"] = launch_beat(self.env, self.logs)
        self.processes.extend(started.values())
        for proc in started.values():
            wait_ready(proc, ready_timeout_s)
        return started

    def stop_processes(self, grace_s: float = 10.0) -> None:
        """Stop every worker and beat (side by side); the stack can start others."""
        stop_all(self.processes, grace_s)
        self.processes.clear()
        self.beat = None


@contextlib.contextmanager
def live_stack(
    tmp: Path,
    database_url: str,
    redis_url: str,
    vapid_pem: str,
    *,
    workers: Sequence[WorkerSpec] = ALL_QUEUES,
    beat: bool = True,
    standin: bool = True,
    hostile: bool = False,
    serve: bool = False,
    port: int | None = None,
    web_workers: int = 0,
    ready_timeout_s: float = READY_TIMEOUT_S,
    grace_s: float = 10.0,
    migrate_url: str | None = None,
    **extra: str,
) -> Iterator[LiveStack]:
    """The stack over an existing database (migrated here, through migrate_url if given: the
    URL without a fault-injecting proxy in between); extra are NEWSFLASH_* settings.

    serve puts the app on a real port (port, or a free one): from a thread of this process, or,
    with web_workers=N, as `newsflash web --workers N` (gunicorn, N processes, like production).
    Processes get ready_timeout_s to come up and grace_s to stop on the way out."""
    if serve and port is None:
        port = free_port()
    if web_workers:
        extra["PORT"] = str(port)
    env = make_env(tmp / "var", database_url, redis_url, vapid_pem, **extra)
    settings = settings_from(env)
    engine = make_engine(migrate_url or database_url)
    migrate.upgrade(engine)
    app = create_app(settings)
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(app.extensions["newsflash"].container.engine.dispose)
        cleanup.callback(engine.dispose)
        push = cleanup.enter_context(_standin("127.0.0.1")) if standin else None
        second = cleanup.enter_context(_standin("127.0.0.2")) if hostile else None
        logs = tmp / "logs"
        stack = LiveStack(settings, env, app, app.test_client(), engine, logs, push, second, None)
        cleanup.callback(stop_all, stack.processes, grace_s)
        if serve:
            stack.base_url = _serve(cleanup, stack, port or 0, web_workers)
        stack.start_processes(workers, beat, ready_timeout_s)
        yield stack


@contextlib.contextmanager
def _standin(host: str) -> Iterator[PushStandin]:
    standin = PushStandin(host=host).start()
    try:
        yield standin
    finally:
        standin.stop()


def _serve(cleanup: contextlib.ExitStack, stack: LiveStack, port: int, web_workers: int) -> str:
    if not web_workers:
        return cleanup.enter_context(live.serve(stack.app, port))
    stack.web = _web_process(stack, port, web_workers)
    cleanup.callback(stack.web.stop)
    return f"http://127.0.0.1:{port}"


def _web_process(stack: LiveStack, port: int, web_workers: int) -> Process:
    """`newsflash web` on the port, answering /healthz."""
    return start_web(stack.env, stack.logs, port, web_workers)


@contextlib.contextmanager
def served_app(
    tmp: Path, database_url: str, redis_url: str, vapid_pem: str, port: int, **extra: str
) -> Iterator[LiveStack]:
    """The web app alone on a real port (for a browser): no worker, beat or stand-in, so alerts
    published here wait in the queue."""
    settings: dict[str, Any] = extra
    with live_stack(
        tmp,
        database_url,
        redis_url,
        vapid_pem,
        workers=(),
        beat=False,
        standin=False,
        serve=True,
        port=port,
        **settings,
    ) as live:
        yield live


@contextlib.contextmanager
def served_on_sqlite(
    tmp: Path, redis_url: str, vapid_pem: str, **extra: str
) -> Iterator[tuple[str, LiveStack]]:
    """served_app over a fresh SQLite database in `tmp`, on a free port that is also its public
    origin: (its URL, the stack). The usual start of a newsroom browser test."""
    from tests.support.services import free_port

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    database = f"sqlite:///{tmp}/newsflash.db"
    with served_app(tmp, database, redis_url, vapid_pem, port, PUBLIC_ORIGINS=url, **extra) as live:
        yield url, live
