"""Who has the database: every web, worker and beat process says so for as long as it runs (a
shared lock on a file beside a SQLite database; its connections' application_name on
PostgreSQL), and `newsflash restore` refuses while any does.

An idle process holds no SQLite connection (the pool is NullPool) and a web process's
PostgreSQL connections sit in its pool between requests, so neither shows in an open-file or
lock check at the moment restore looks. Left running, a web app would take sign-ups into a
database about to be replaced, or keep statements prepared against tables pg_restore drops."""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from core.adapters.dumps import DumpError, engine_of, sqlite_path

log = logging.getLogger("newsflash.db")

# PostgreSQL application_name of every Newsflash connection: "newsflash <role>".
APPLICATION_PREFIX = "newsflash"
HOLD_SUFFIX = ".inuse"

STOP_FIRST = "stop the web app, workers and beat before restoring"

# The processes restore waits for; a CLI command's connections come and go with the command.
RUNNING_ROLES = ("web", "worker", "beat")

# This process's role and the lock files it holds, by path: a shared lock each, kept for the
# process's life and inherited by the processes it forks (a web server's and a worker's children).
_process: dict[str, str] = {}
_held: dict[str, int] = {}


def process_role() -> str:
    """What this process runs as ("web", "worker", "beat"), "cli" until it says otherwise."""
    return _process.get("role", "cli")


def application_name(role: str | None = None) -> str:
    return f"{APPLICATION_PREFIX} {role or process_role()}"


def hold_path(database_url: str) -> Path | None:
    """The lock file beside a SQLite database; None for PostgreSQL or an in-memory database."""
    if engine_of(database_url) != "sqlite":
        return None
    try:
        path = sqlite_path(database_url).resolve()
    except DumpError:
        return None  # in memory: nobody else can have it
    return path.with_name(path.name + HOLD_SUFFIX)


def hold(database_url: str, role: str) -> None:
    """Mark this process as using the database until it exits. A restore under way holds the
    lock alone: then this waits for it to finish instead of opening the database it replaces."""
    _process["role"] = role
    path = hold_path(database_url)
    if path is None or str(path) in _held:
        return
    try:
        fd = _open_lock_file(path)
    except OSError as exc:  # another user's file, a read-only folder: run, unheld, and say so
        log.warning(
            "%s not held (%s): `newsflash restore` cannot see this process",
            path.name,
            type(exc).__name__,
        )
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        log.warning("the %s waits for a restore of the database to finish", role)
        fcntl.flock(fd, fcntl.LOCK_SH)
    _held[str(path)] = fd


def _open_lock_file(path: Path) -> int:
    """Read-only is enough to lock; readable by all (it holds nothing), so processes run as
    different users (a web app's, an operator's restore) share it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)


@contextmanager
def alone(database_url: str) -> Iterator[None]:
    """Held across a restore: DumpError (nothing touched) while a Newsflash process other than
    this one uses the database; on SQLite, processes starting meanwhile wait until it ends."""
    path = hold_path(database_url)
    if path is None:
        if engine_of(database_url) != "sqlite":
            _no_other_sessions(database_url)
        yield
        return
    try:
        fd = _open_lock_file(path)
    except OSError as exc:
        raise DumpError(
            f"cannot open {path} to see who uses the database ({exc.strerror})"
        ) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DumpError(
                f"{sqlite_path(database_url)} is in use by a running web app, worker or beat "
                f"(they hold {path.name}): {STOP_FIRST}"
            ) from None
        yield
    finally:
        os.close(fd)  # and the lock with it


SESSIONS_SQL = """
SELECT substr(application_name, length(:prefix) + 2) AS role,
       coalesce(host(client_addr), 'local socket') AS address,
       count(*) AS n
FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid()
  AND application_name = ANY(:names)
GROUP BY 1, 2
ORDER BY 3 DESC, 1, 2
"""


def _no_other_sessions(database_url: str) -> None:
    from sqlalchemy import text

    from core.adapters.sql import make_engine

    engine = make_engine(database_url, pool_size=1, role="restore")
    try:
        with engine.connect() as conn:
            names = [application_name(role) for role in RUNNING_ROLES]
            rows = conn.execute(
                text(SESSIONS_SQL), {"prefix": APPLICATION_PREFIX, "names": names}
            ).all()
    finally:
        engine.dispose()
    if rows:
        total = sum(int(r.n) for r in rows)
        who = ", ".join(f"{r.role} on {r.address}: {r.n}" for r in rows[:4])
        more = ", ..." if len(rows) > 4 else ""
        raise DumpError(
            f"the database has {total} connection(s) from running Newsflash processes "
            f"({who}{more}): {STOP_FIRST}"
        )
