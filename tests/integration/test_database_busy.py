"""A table someone holds (a migration, VACUUM FULL, an index built without CONCURRENTLY, a
long transaction): the web answers what it can and says "busy" for the rest within seconds, and
`newsflash db upgrade` never stalls the app for longer than its lock timeout.

Before: every request touching a locked table waited with it, each holding one of the web
process's threads; with ten readers subscribing, all eight threads were held and nothing was
answered, not /healthz, not /readyz, not the newsroom's publish (each still waiting after 20 s).
An upgrade whose ALTER TABLE waited behind a long read made every reader of that table wait
with it, for as long as the read lasted."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import text

from core.accounts import Role
from core.adapters import metrics, migrate
from core.adapters.sql import make_engine
from tests.support.cli import run_cli
from tests.support.live_stack import LiveStack, live_stack
from tests.support.services import (
    REDIS_BASE,
    TEST_REDIS_DB,
    libpq_url,
    make_env,
    new_vapid_pem,
    settings_from,
)

REDIS_URL = f"{REDIS_BASE}/{TEST_REDIS_DB}"
KEY = "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM"


def _reader(n: int) -> dict[str, Any]:
    return {
        "endpoint": f"https://fcm.googleapis.com/fcm/send/busy-{n}",
        "keys": {"p256dh": KEY, "auth": "tBHItJI5svbpez7KI4CCXg"},
        "topics": ["breaking"],
    }


def _call(
    base: str, method: str, path: str, body: Any = None, token: str | None = None
) -> tuple[int | str, float, dict[str, Any]]:
    """(status or the client's error, seconds, JSON answer) with a 20 s client timeout."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data, headers, method=method)
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=20) as answer:
            status, raw = answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    except OSError as exc:
        return type(exc).__name__, time.monotonic() - started, {}
    took = time.monotonic() - started
    return status, took, json.loads(raw) if raw.startswith(b"{") else {}


def _newsroom_asks(base: str, token: str, title: str, body: str) -> tuple[Any, Any]:
    """An editor's publish, then a load balancer's /healthz: each (status, seconds, JSON)."""
    alert = {
        "title": title,
        "body": body,
        "url": "http://127.0.0.1:8000/news/x",
        "topics": ["breaking"],
    }
    return _call(base, "POST", "/api/v1/alerts", alert, token), _call(base, "GET", "/healthz")


@pytest.fixture
def served(postgres_url: str, tmp_path: Path) -> Iterator[LiveStack]:
    """`newsflash web` (one process, its default eight threads), as in production."""
    with live_stack(
        tmp_path,
        postgres_url,
        REDIS_URL,
        new_vapid_pem(),
        workers=(),
        beat=False,
        standin=False,
        serve=True,
        web_workers=1,
        RATE_LIMIT_SUBSCRIBE="100000 per minute",
    ) as stack:
        yield stack


@pytest.mark.postgres
def test_a_locked_table_costs_its_requests_a_busy_answer_not_the_whole_web_app(
    served: LiveStack, postgres_url: str
) -> None:
    base, token = served.base_url, served.token("cms", Role.EDITOR)
    assert base is not None
    assert _call(base, "POST", "/api/v1/subscriptions", _reader(0))[0] == 201
    answers: dict[int, tuple[int | str, float, dict[str, Any]]] = {}
    with psycopg.connect(libpq_url(postgres_url)) as holder:
        holder.execute("LOCK TABLE subscriptions IN ACCESS EXCLUSIVE MODE")
        readers = [
            threading.Thread(
                target=lambda n=n: answers.__setitem__(
                    n, _call(base, "POST", "/api/v1/subscriptions", _reader(n))
                )
            )
            for n in range(1, 11)
        ]
        for thread in readers:
            thread.start()
        time.sleep(0.5)  # every thread of the web process is taken by a waiting subscribe
        publish, health = _newsroom_asks(
            base, token, "Flood warning for Tana River", "Move to higher ground now."
        )
        for thread in readers:
            thread.join()
        holder.rollback()
    # The newsroom gets through once the first readers' 3 s lock wait ends (before: 20 s, none).
    assert publish[0] == 202 and publish[1] < 8, publish
    assert health[0] == 200 and health[1] < 8, health
    for status, took, body in answers.values():
        assert status == 503 and took < 8, (status, took)
        assert body["error"]["message"] == "the database is busy; try again in 5 s"
    assert _call(base, "POST", "/api/v1/subscriptions", _reader(11))[0] == 201  # lock gone
    log = (served.logs / "web.log").read_text() if (served.logs / "web.log").exists() else ""
    assert "Traceback" not in log


@pytest.mark.postgres
def test_the_newsroom_goes_ahead_of_a_surge_of_readers_waiting_on_a_locked_table(
    served: LiveStack, postgres_url: str
) -> None:
    """Forty readers subscribing over and over (a surge after a big story) while their table is
    locked: every thread of the web process is taken by one of them for its 3 s lock wait, and
    waitress queued the newsroom's publish behind all the others (13 s, until the surge ended).
    Requests for the newsroom, its API, ops and the health checks now have a lane of their own."""
    base, token = served.base_url, served.token("cms", Role.EDITOR)
    assert base is not None
    stop = time.monotonic() + 10
    answers: list[int | str] = []

    def keep_subscribing(n: int) -> None:
        k = 0
        while time.monotonic() < stop:
            answers.append(_call(base, "POST", "/api/v1/subscriptions", _reader(1000 * n + k))[0])
            k += 1

    with psycopg.connect(libpq_url(postgres_url)) as holder:
        holder.execute("LOCK TABLE subscriptions IN ACCESS EXCLUSIVE MODE")
        readers = [threading.Thread(target=keep_subscribing, args=(n,)) for n in range(40)]
        for thread in readers:
            thread.start()
        time.sleep(2)  # the queue is full of readers by now
        publish, health = _newsroom_asks(
            base, token, "Polling stations stay open late", "Queues are still long."
        )
        for thread in readers:
            thread.join()
        holder.rollback()
    print(f"\npublish {publish[1]:.1f} s, /healthz {health[1]:.1f} s, {len(answers)} readers' 503s")
    # A thread comes free within one lock wait (3 s); the publish takes the first one.
    assert publish[0] == 202 and publish[1] < 5, publish
    assert health[0] == 200 and health[1] < 5, health
    assert set(answers) == {503}, set(answers)


@pytest.mark.postgres
def test_web_sessions_get_lock_and_statement_timeouts_unless_the_database_url_sets_them(
    postgres_url: str,
) -> None:
    def settings_of(url: str, role: str) -> tuple[str, str]:
        engine = make_engine(url, role=role)
        with engine.connect() as conn:
            lock = conn.execute(text("SHOW lock_timeout")).scalar_one()
            statement = conn.execute(text("SHOW statement_timeout")).scalar_one()
        engine.dispose()
        return lock, statement

    assert settings_of(postgres_url, "web") == ("3s", "30s")
    assert settings_of(postgres_url, "worker") == ("0", "0")  # tasks have their time limits
    assert settings_of(postgres_url, "cli") == ("0", "0")
    given = postgres_url + "?options=-c%20lock_timeout%3D10s"
    assert settings_of(given, "web") == ("10s", "30s")


def _long_read(url: str) -> psycopg.Connection[Any]:
    """A session reading `sessions` in an open transaction (a report, a pg_dump)."""
    conn = psycopg.connect(libpq_url(url))
    conn.execute("SELECT count(*) FROM sessions")  # ACCESS SHARE until it ends
    return conn


@pytest.mark.postgres
def test_an_upgrade_behind_a_long_read_holds_readers_up_for_seconds_at_most(
    postgres_url: str, tmp_path: Path
) -> None:
    """0018 alters `sessions` (every signed-in page reads it). The upgrade tries for its lock
    for 2 s at a time: readers queued behind it go on when it steps back, and it completes once
    the long read has ended."""
    engine = make_engine(postgres_url, role="cli")
    migrate.upgrade(engine, "0017")
    env = make_env(tmp_path / "var", postgres_url, REDIS_URL, new_vapid_pem())
    waits: list[float] = []
    stop = threading.Event()

    def read_sessions() -> None:
        with psycopg.connect(libpq_url(postgres_url), autocommit=True) as reader:
            while not stop.is_set():
                started = time.monotonic()
                reader.execute("SELECT count(*) FROM sessions")
                waits.append(time.monotonic() - started)
                time.sleep(0.05)

    long_read = _long_read(postgres_url)
    readers = threading.Thread(target=read_sessions)
    readers.start()
    threading.Timer(6.0, long_read.rollback).start()  # the report ends after 6 s
    try:
        done = run_cli(["db", "upgrade"], env, 60)
    finally:
        stop.set()
        readers.join()
        long_read.close()
    # Before: the readers waited as long as the long read lasted (6 s here).
    assert max(waits) < 3.0, max(waits)
    assert done.returncode == 0, done.stderr
    assert "trying again" in done.stderr  # it said why it waited
    assert migrate.current_revision(engine) == migrate.head_revision()
    engine.dispose()


@pytest.mark.postgres
def test_an_upgrade_that_never_gets_its_lock_gives_up_with_one_line_naming_the_holders(
    postgres_url: str, tmp_path: Path
) -> None:
    engine = make_engine(postgres_url, role="cli")
    migrate.upgrade(engine, "0017")
    env = make_env(tmp_path / "var", postgres_url, REDIS_URL, new_vapid_pem())
    long_read = _long_read(postgres_url)
    try:
        done = run_cli(["db", "upgrade", "--lock-timeout", "0.5", "--retry-for", "3"], env, 60)
    finally:
        long_read.close()
    assert done.returncode == 2
    last = done.stderr.strip().splitlines()[-1]
    assert "lock was not granted within 0.5 s" in last and "nothing applied" in last, last
    assert "idle in transaction" in last, last  # the long read, named by pid and state
    assert migrate.current_revision(engine) == "0017"
    bad = run_cli(["db", "upgrade", "--lock-timeout", "soon"], env, 60)
    assert bad.returncode == 2 and "--lock-timeout" in bad.stderr
    engine.dispose()


def test_on_sqlite_a_web_request_waits_3_s_for_another_s_write_then_answers_busy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The embedded database: a web request waited SQLite's 30 s busy timeout for a write
    lock (a long write, a checkpoint) before answering 503."""
    import sqlite3

    from core.adapters import db_holders
    from service.app import create_app

    database = tmp_path / "newsflash.db"
    migrate.upgrade(make_engine(f"sqlite:///{database}"))
    monkeypatch.setitem(db_holders._process, "role", "web")  # as service/wsgi.py says
    env = make_env(tmp_path / "var", f"sqlite:///{database}", REDIS_URL, new_vapid_pem())
    client = create_app(settings_from(env)).test_client()
    counter = metrics.metrics().web_unavailable.labels("busy")

    def busy_count() -> float:  # this process's own count, multiprocess mode or not
        return float(counter._value.get())

    busy_before = busy_count()
    holder = sqlite3.connect(database, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process's write in progress
    try:
        started = time.monotonic()
        answer = client.post("/api/v1/subscriptions", json=_reader(1))
        took_s = time.monotonic() - started
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert answer.status_code == 503 and took_s < 6, (answer.status_code, took_s)
    assert (answer.json or {})["error"]["message"] == "the database is busy; try again in 5 s"
    assert client.post("/api/v1/subscriptions", json=_reader(1)).status_code == 201
    # Counted for Prometheus (NewsflashDatabaseBusy, deploy/prometheus/newsflash-rules.yml).
    assert busy_count() == busy_before + 1
