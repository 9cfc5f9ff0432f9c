"""Shared fixtures: real services (skipped locally when down, failing under CI=true), settings, keys."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import argon2
import pytest
import redis as redis_lib

from core.adapters import accounts_sql
from tests.support.services import (
    ARTIFACTS,
    REDIS_BASE,
    TEST_REDIS_DB,
    create_pg_database,
    drop_pg_database,
    engine_database,
    new_vapid_pem,
    port_open,
    require_service,
)

# Argon2id at its production cost (64 MiB, three passes: about 150 ms a hash on this machine) is
# what each guess must cost an attacker. The suite hashes and verifies thousands of passwords
# in its own process, so there it uses the same algorithm and code at the lowest cost; servers
# the tests start as processes keep the production cost, and a hash made at either cost verifies
# at the other (the login rehashes it). tests/unit/test_password_cost.py holds the production
# parameters.
accounts_sql._hasher = argon2.PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


# Where PYTHONDONTWRITEBYTECODE is set (this machine sets it), pytest rewrote every test module's
# asserts again in each of its processes: about 5 s of CPU a process. It may cache them (in
# the ignored __pycache__ folders); the processes the tests start keep the setting.
sys.dont_write_bytecode = False

# Werkzeug gives its logger a stream handler on first use when none is set, bound to whatever
# sys.stderr is then: in a test that is pytest's capture, closed when the test ends, and a server
# thread of a module's stack logging a request after that printed "--- Logging error ---". Its
# lines still reach the root logger (and pytest's log capture).
logging.getLogger("werkzeug").addHandler(logging.NullHandler())


@pytest.fixture
def production_password_cost(monkeypatch: pytest.MonkeyPatch) -> None:
    """For a test about the stored hash itself: the production cost, as in a served process."""
    hasher = argon2.PasswordHasher()
    monkeypatch.setattr(accounts_sql, "_hasher", hasher)


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def redis_url() -> str:
    url = f"{REDIS_BASE}/{TEST_REDIS_DB}"
    try:
        ok = bool(redis_lib.Redis.from_url(url, socket_connect_timeout=1).ping())
    except redis_lib.RedisError:
        ok = False
    require_service("Redis", ok, "127.0.0.1:6379")
    return url


@pytest.fixture
def clean_redis(redis_url: str) -> Iterator[str]:
    client = redis_lib.Redis.from_url(redis_url)
    client.flushdb()
    yield redis_url
    client.flushdb()


@pytest.fixture(scope="session")
def postgres_available() -> bool:
    ok = port_open("127.0.0.1", 5432)
    require_service("PostgreSQL", ok, "127.0.0.1:5432")
    return ok


@pytest.fixture(scope="session")
def vapid_pem() -> str:
    return new_vapid_pem()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/newsflash.db"


@pytest.fixture
def postgres_url(postgres_available: bool) -> Iterator[str]:
    url = create_pg_database()
    yield url
    drop_pg_database(url)


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Storage tests run against both engines."""
    with engine_database(request, tmp_path) as url:
        yield url
