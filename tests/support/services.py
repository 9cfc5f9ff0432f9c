"""Test helpers for the real services: which ones are up, free ports, fresh databases, the
NEWSFLASH_* environment of a test stack. Fixtures built on these are in tests/conftest.py."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from config.settings import Settings, load_settings

CI = os.environ.get("CI", "").lower() == "true"
ROOT = Path(__file__).resolve().parents[2]
PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
REDIS_BASE = "redis://127.0.0.1:6379"
# Tests use their own Redis database number, never the shared db 0 (override to run two
# suites side by side on one machine). Under pytest-xdist each worker process (gw0, gw1, ...)
# takes the next number up, so two workers never flush each other's queues.
_XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
TEST_REDIS_DB = int(os.environ.get("NEWSFLASH_TEST_REDIS_DB", "9")) + int(_XDIST_WORKER[2:] or 0)
RABBIT_URL = "amqp://guest:guest@127.0.0.1:5672//"
ARTIFACTS = ROOT / "var" / "test-artifacts"


def require_service(name: str, available: bool, how: str) -> None:
    """Skip locally when a service is down; under CI=true that is a failure, never a skip."""
    if available:
        return
    message = f"{name} is not reachable ({how})"
    if CI:
        pytest.fail(message + " and CI=true: tests may not pass by skipping", pytrace=False)
    pytest.skip(message)


def port_open(host: str, port: int, timeout_s: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def create_pg_database() -> str:
    from sqlalchemy import create_engine, text

    name = "nf_test_" + uuid.uuid4().hex[:12]
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


def drop_pg_database(url: str) -> None:
    from sqlalchemy import create_engine, text

    name = url.rsplit("/", 1)[-1]
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def libpq_url(url: str) -> str:
    """A SQLAlchemy PostgreSQL URL as psycopg.connect takes it."""
    return url.replace("postgresql+psycopg://", "postgresql://")


def pg_sessions(url: str, where: str = "true", *args: object) -> list[int]:
    """Backend pids of `url`'s database's sessions matching `where` (SQL over pg_stat_activity,
    %s placeholders for `args`), asked on a fresh connection each time: seen from inside a
    transaction, pg_stat_activity is a snapshot."""
    import psycopg

    sql = (
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
        f" AND pid <> pg_backend_pid() AND ({where})"
    )
    with psycopg.connect(libpq_url(url), autocommit=True) as asking:
        return [row[0] for row in asking.execute(sql, args)]


@contextlib.contextmanager
def silent_listener() -> Iterator[int]:
    """A loopback port that accepts connections and never says a word: a hung database or
    Redis (a stuck server, a half-open proxy). Yields the port."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(128)
    server.settimeout(0.2)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        server.close()


@contextlib.contextmanager
def service_down(kind: str) -> Iterator[str]:
    """A URL of a Redis or AMQP service that is down: "redis refusing" (nothing listens on port
    9), "redis hung" or "amqp hung" (a silent_listener)."""
    if kind == "redis refusing":
        yield "redis://127.0.0.1:9/0"
        return
    scheme, state = kind.split()
    assert state == "hung" and scheme in ("redis", "amqp"), kind
    with silent_listener() as port:
        yield (
            f"redis://127.0.0.1:{port}/0"
            if scheme == "redis"
            else f"amqp://guest:guest@127.0.0.1:{port}//"
        )


def new_vapid_pem() -> str:
    """A fresh VAPID private key (P-256, PKCS#8 PEM) for a test stack."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")


def make_env(
    var_dir: Path,
    database_url: str,
    redis_url: str,
    vapid_pem: str,
    **extra: str,
) -> dict[str, str]:
    """NEWSFLASH_* variables for a test stack (also handed to worker subprocesses)."""
    var_dir.mkdir(parents=True, exist_ok=True)
    key_file = var_dir / "vapid_private.pem"
    if not key_file.exists():
        key_file.write_text(vapid_pem)
        key_file.chmod(0o600)
    env = {
        "NEWSFLASH_VAR_DIR": str(var_dir),
        "NEWSFLASH_DATABASE_URL": database_url,
        "NEWSFLASH_REDIS_URL": redis_url,
        "NEWSFLASH_VAPID_PRIVATE_KEY_FILE": str(key_file),
        "NEWSFLASH_VAPID_SUBJECT": "mailto:ops@news.example",
        "NEWSFLASH_SECRET_KEY": "test-secret-" + uuid.uuid4().hex,
        "NEWSFLASH_CMS_WEBHOOK_SECRET": "whsec_dGVzdC1zZWNyZXQtZm9yLXdlYmhvb2tzLTMyYnl0ZXM=",
        "NEWSFLASH_ALLOW_LOOPBACK_PUSH": "on",
        "NEWSFLASH_LOG_JSON": "on",
        # Suites publish the same test article again and again; the duplicate guard is off
        # here and switched on by its own tests (tests/integration/test_duplicates.py).
        "NEWSFLASH_DUPLICATE_WINDOW_S": "0",
        # Test alerts open pages nobody serves: the readiness gate has its own tests.
        "NEWSFLASH_WAIT_FOR_ARTICLE": "off",
    }
    env.update(
        {k if k.startswith("NEWSFLASH_") else "NEWSFLASH_" + k.upper(): v for k, v in extra.items()}
    )
    return env


def settings_from(env: dict[str, str]) -> Settings:
    return load_settings(environ=env, env_file=None)


@contextlib.contextmanager
def engine_database(
    request: pytest.FixtureRequest, tmp: Path, name: str = "newsflash.db"
) -> Iterator[str]:
    """A fresh database for the engine a fixture is parametrised with ("sqlite" or "postgres"):
    a SQLite file under tmp, or a PostgreSQL database dropped afterwards."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp}/{name}"
        return
    request.getfixturevalue("postgres_available")
    url = create_pg_database()
    try:
        yield url
    finally:
        drop_pg_database(url)


def set_pg_read_only(url: str, on: bool) -> None:
    """As a standby answers: every new session of the database `url` (one of
    create_pg_database's) is read-only, and its open ones are ended so the app's pool reconnects.
    Said from the admin connection: a session of that database could not undo it."""
    from sqlalchemy import create_engine, text

    name = url.rsplit("/", 1)[-1]
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        value = "on" if on else "off"
        conn.execute(text(f'ALTER DATABASE "{name}" SET default_transaction_read_only = {value}'))
        conn.execute(
            text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name"),
            {"name": name},
        )
    admin.dispose()
