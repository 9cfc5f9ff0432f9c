"""A PostgreSQL session never outlives the statement its process gave up on
(core/adapters/pg_sessions.py): interrupted by Celery's soft time limit, or killed outright,
while the statement waits for a lock that another session holds."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import psycopg
import pytest
from billiard.pool import soft_timeout_sighandler
from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy import text

from core.adapters.pg_sessions import watch_client
from core.adapters.sql import make_engine
from tests.support.cli import cli_running, run_cli, stop_cli
from tests.support.services import (
    REDIS_BASE,
    TEST_REDIS_DB,
    libpq_url,
    make_env,
    new_vapid_pem,
    pg_sessions,
)
from tests.support.stack import wait_until

ROOT = Path(__file__).resolve().parents[2]
WORKER = "newsflash worker"
REDIS_URL = f"{REDIS_BASE}/{TEST_REDIS_DB}"


def _sessions(url: str, wait_event_type: str | None = None) -> list[int]:
    """This database's worker sessions (those waiting for `wait_event_type` only)."""
    if wait_event_type is None:
        return pg_sessions(url, "application_name = %s", WORKER)
    return pg_sessions(
        url, "application_name = %s AND wait_event_type = %s", WORKER, wait_event_type
    )


@contextmanager
def _locked(url: str, table: str) -> Iterator[None]:
    """`table` locked by another session until the block ends."""
    with psycopg.connect(libpq_url(url)) as holder:
        holder.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
        yield
        holder.rollback()


@pytest.fixture
def probe_url(postgres_url: str) -> str:
    with psycopg.connect(libpq_url(postgres_url), autocommit=True) as conn:
        conn.execute("CREATE TABLE probe (x int)")
        conn.execute("CREATE TABLE written (x int)")
    return postgres_url


def test_a_soft_time_limit_mid_statement_cancels_it_and_reaches_the_task_as_itself(
    probe_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Celery's soft limit (billiard's own SIGUSR1 handler, as in a prefork child) arrives
    while a statement waits for a lock. Before: the pool's rollback failed ("another command is
    already in progress"), that OperationalError replaced the soft limit (the task retried it
    as a database outage; the pool logged a traceback), and the session went on waiting, in the
    lock queue, until the lock came free."""
    engine = make_engine(probe_url, role="worker")

    def soft_limit_once_waiting() -> None:
        wait_until(lambda: _sessions(probe_url, "Lock"), 10, "the statement to wait for the lock")
        os.kill(os.getpid(), signal.SIGUSR1)

    with _locked(probe_url, "probe"):
        previous = signal.signal(signal.SIGUSR1, soft_timeout_sighandler)
        limit = threading.Thread(target=soft_limit_once_waiting)
        try:
            limit.start()
            with (
                caplog.at_level(logging.DEBUG),
                pytest.raises(SoftTimeLimitExceeded),
                engine.begin() as conn,
            ):
                conn.execute(text("INSERT INTO written VALUES (1)"))
                conn.execute(text("SELECT * FROM probe"))
        finally:
            limit.join()
            signal.signal(signal.SIGUSR1, previous)
        # Gone while the lock is still held: cancelled, not left to wait for it.
        wait_until(lambda: not _sessions(probe_url), 3, "the interrupted session to end")

    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
    with engine.connect() as conn:  # the pool gives a working connection, nothing was kept
        assert conn.execute(text("SELECT count(*) FROM written")).scalar() == 0
    engine.dispose()


def test_a_killed_process_s_session_stops_waiting_within_seconds(probe_url: str) -> None:
    """kill -9 (the OOM killer, Celery's hard time limit) lets nothing in the process run.
    Before: its session stayed in the lock queue until the lock came free."""
    program = (
        "import sys\n"
        "from sqlalchemy import text\n"
        "from core.adapters.sql import make_engine\n"
        "with make_engine(sys.argv[1], role='worker').connect() as conn:\n"
        "    conn.execute(text('SELECT * FROM probe'))\n"
    )
    with _locked(probe_url, "probe"):
        child = subprocess.Popen([sys.executable, "-c", program, probe_url], cwd=ROOT)
        try:
            wait_until(lambda: _sessions(probe_url, "Lock"), 20, "the child's statement to wait")
        finally:
            child.kill()
            child.wait()
        wait_until(lambda: not _sessions(probe_url), 3, "the dead process's session to end")


def test_every_pooled_connection_asks_the_server_to_watch_its_client(probe_url: str) -> None:
    engine = make_engine(probe_url, role="worker")
    with engine.connect() as conn:
        dbapi_conn = conn.connection.dbapi_connection
        assert dbapi_conn is not None and dbapi_conn.autocommit is False  # as SQLAlchemy left it
        shown = conn.execute(text("SHOW client_connection_check_interval")).scalar()
        assert shown == "1s"
    engine.dispose()


def test_a_server_older_than_14_is_left_as_it_is() -> None:
    """client_connection_check_interval came in PostgreSQL 14; setting it on 13 fails."""
    sent: list[str] = []
    older = SimpleNamespace(
        info=SimpleNamespace(server_version=130012), autocommit=False, execute=sent.append
    )
    watch_client(older)
    assert sent == []


@pytest.mark.parametrize(
    "stop", [signal.SIGHUP, signal.SIGTERM, signal.SIGKILL], ids=lambda s: s.name
)
def test_an_upgrade_stopped_while_it_waits_for_its_lock_no_longer_blocks_the_app(
    stop: signal.Signals, postgres_url: str, tmp_path: Path
) -> None:
    """`newsflash db upgrade` whose ALTER TABLE waits behind a long read (a report, a backup)
    queues for ACCESS EXCLUSIVE, and every new read of that table queues behind it: the app
    stalls until the upgrade gets its lock. The operator gives up (closes the SSH session,
    `timeout`, kill -9). Before: the command died, its session stayed in the queue, and the
    app stayed stalled until the long read ended. Now the session ends with the command (at
    once on SIGHUP/SIGTERM, exit 128+n; within about a second after kill -9), readers go on,
    nothing of the upgrade is applied, and the next upgrade completes."""
    from core.adapters import migrate

    engine = make_engine(postgres_url, role="cli")
    migrate.upgrade(engine, "0017")  # 0018 alters `sessions`
    env = make_env(tmp_path / "var", postgres_url, REDIS_URL, new_vapid_pem())

    def queued_for_lock() -> int:
        return len(
            pg_sessions(
                postgres_url, "wait_event_type = 'Lock' AND query ILIKE 'ALTER TABLE sessions%%'"
            )
        )

    def a_reader_gets_through() -> bool:
        with psycopg.connect(libpq_url(postgres_url), autocommit=True) as reader:
            reader.execute("SET lock_timeout = '300ms'")
            try:
                reader.execute("SELECT count(*) FROM sessions")
            except psycopg.errors.LockNotAvailable:
                return False
            return True

    with psycopg.connect(libpq_url(postgres_url)) as long_read:
        long_read.execute("SELECT count(*) FROM sessions")  # holds ACCESS SHARE until rollback
        # --lock-timeout 0: wait for the lock as long as it takes (by default a try gives up
        # after 2 s: tests/integration/test_database_busy.py).
        with cli_running(["db", "upgrade", "--lock-timeout", "0"], env) as upgrade:
            wait_until(queued_for_lock, 30, "the upgrade's ALTER TABLE to queue for its lock")
            assert not a_reader_gets_through()  # the stall the operator is looking at
            stop_cli(upgrade, stop)
        wait_until(lambda: not queued_for_lock(), 3, "the upgrade's session to leave the queue")
        assert a_reader_gets_through()
        long_read.rollback()
    assert migrate.current_revision(engine) == "0017"  # rolled back whole
    done = run_cli(["db", "upgrade"], env, 60)
    assert done.returncode == 0, done.stderr
    assert migrate.current_revision(engine) == migrate.head_revision()
    engine.dispose()
