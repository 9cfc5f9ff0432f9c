"""Schema migrations (Alembic) applied programmatically: `newsflash db upgrade` and tests."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def upgrade(engine: Engine, revision: str = "head", lock_timeout_s: float = 0) -> None:
    """Every pending migration in one transaction. On PostgreSQL with lock_timeout_s, a lock
    not granted within it raises (sqlstate 55P03, LockNotAvailable) and nothing is applied."""
    cfg = alembic_config()
    with engine.begin() as conn:
        if lock_timeout_s and conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{int(lock_timeout_s * 1000)}ms'")
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def lock_refused(exc: BaseException) -> bool:
    """The upgrade gave up waiting for a lock (its lock_timeout ran out)."""
    return getattr(getattr(exc, "orig", None), "sqlstate", None) == "55P03"


OPEN_TRANSACTIONS_SQL = """
SELECT pid, coalesce(nullif(application_name, ''), 'unnamed') AS name, state,
       extract(epoch FROM now() - xact_start)::int AS open_s
FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid() AND xact_start IS NOT NULL
ORDER BY xact_start
LIMIT 3
"""


def oldest_transactions(engine: Engine) -> list[str]:
    """The database's longest-open transactions (what an upgrade's lock waits behind), as
    `pid 123 (newsflash web, idle in transaction, open 75 s)`; no query text (it may hold
    readers' data)."""
    from sqlalchemy import text

    with engine.connect() as conn:
        rows = conn.execute(text(OPEN_TRANSACTIONS_SQL)).all()
    return [f"pid {r.pid} ({r.name}, {r.state}, open {r.open_s} s)" for r in rows]


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def revision(engine: Engine, message: str) -> None:
    """Developers: write a new migration from the difference between tables.py and the database."""
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.revision(cfg, message=message, autogenerate=True)
