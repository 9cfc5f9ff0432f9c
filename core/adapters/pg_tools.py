"""Running PostgreSQL's client tools (pg_dump, pg_restore) for backups and restores: found on
PATH, given the password only through the environment, watched while they run, and never
left running after the call that started them, whoever interrupts it."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable

log = logging.getLogger("newsflash.backups")

PG_TOOL_TIMEOUT_S = 6 * 3600


class DumpError(Exception):
    """A copy or restore that could not be made; one line, no password, no endpoint."""


def pg_tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise DumpError(
            f"{name} is not on PATH: install the PostgreSQL client tools "
            f"(Debian: apt-get install postgresql-client) matching the server's major version"
        )
    return found


def libpq(url: str) -> tuple[str, dict[str, str]]:
    """The connection string for pg_dump/pg_restore's --dbname, without the password and
    without SQLAlchemy's `+psycopg`, and the environment carrying the password (PGPASSWORD:
    never on a command line, where `ps` shows it to every user)."""
    from sqlalchemy.engine import make_url

    from core.adapters.pg_sessions import CONNECT_DEFAULTS

    parsed = make_url(url)
    env = {k: v for k, v in os.environ.items() if k != "PGPASSWORD"}
    if parsed.password is not None:
        env["PGPASSWORD"] = str(parsed.password)
    # A server that never answers is given up on, as the app's own connections give it up.
    env.setdefault("PGCONNECT_TIMEOUT", str(CONNECT_DEFAULTS["connect_timeout"]))
    # URL.set(password=None) keeps the password (None means "unchanged" there).
    bare = parsed.set(drivername="postgresql")._replace(password=None)
    return bare.render_as_string(hide_password=False), env


# How often a running pg_restore is checked for a lock wait, and how long it may wait.
WATCH_EVERY_S = 0.5
# How long a tool whose statement `watch` cancelled may take to exit before it is killed: a
# cancelled pg_restore (--single-transaction: exit on error) is gone within a second.
STOP_GRACE_S = 15.0
LOCK_WAIT_S = 30.0


def run_pg(
    argv: list[str],
    env: dict[str, str],
    what: str,
    watch: Callable[[], str | None] | None = None,
    url: str | None = None,
) -> None:
    """Run a PostgreSQL tool to the end; `watch`, asked every WATCH_EVERY_S while it runs, may
    stop it with a reason (having cancelled its statement), which is the DumpError raised.

    Interrupted (Celery's soft time limit, Ctrl-C, a stop signal the CLI turns into an
    exception), the tool does not outlive the call: it is stopped, and with `url` its server
    session (named by env's PGAPPNAME) is ended too, since a session waiting for a lock does
    not notice its client has gone and keeps the locks it already holds until it gets the one
    it waits for. Then the interruption goes on up to the caller, which deletes the copy."""
    # stderr into a file, not a pipe: nothing blocks the tool while this process polls.
    with tempfile.TemporaryFile() as errors:
        tool = subprocess.Popen(
            argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errors
        )
        try:
            _watched(tool, what, watch)
        except DumpError:
            raise
        except BaseException:
            _stop_tool(tool)
            if url is not None and "PGAPPNAME" in env:
                end_sessions(url, env["PGAPPNAME"])
            raise
        if tool.returncode != 0:
            errors.seek(0)
            raise DumpError(
                f"{what} failed: {_first_error(errors.read().decode(errors='replace'))}"
            )


def _watched(
    tool: subprocess.Popen[bytes], what: str, watch: Callable[[], str | None] | None
) -> None:
    deadline = time.monotonic() + PG_TOOL_TIMEOUT_S
    stopped: str | None = None
    while True:
        try:
            tool.wait(timeout=WATCH_EVERY_S)
            break
        except subprocess.TimeoutExpired:
            if time.monotonic() > deadline:
                tool.kill()
                tool.wait()
                if stopped is not None:
                    raise DumpError(
                        f"{stopped}; {what} did not exit once cancelled and was killed"
                    ) from None
                raise DumpError(f"{what} did not finish in {PG_TOOL_TIMEOUT_S // 3600} h") from None
            if watch is not None and stopped is None:
                stopped = watch()
                if stopped is not None:
                    deadline = min(deadline, time.monotonic() + STOP_GRACE_S)
    if stopped is not None:
        raise DumpError(stopped)


# An interrupted tool gets SIGTERM, then SIGKILL if it has not exited after this long: well
# inside the 30 s between Celery's soft and hard time limits (core/adapters/celery_queue.py).
TERM_GRACE_S = 5.0


def _stop_tool(tool: subprocess.Popen[bytes]) -> None:
    if tool.poll() is not None:
        return
    tool.terminate()
    try:
        tool.wait(timeout=TERM_GRACE_S)
    except subprocess.TimeoutExpired:
        tool.kill()
        tool.wait()


def end_sessions(url: str, app_name: str) -> int:
    """Terminate this database's server sessions named `app_name` (an interrupted tool's):
    how many. A failure is logged, never raised: the caller is already handling another."""
    from sqlalchemy import text

    from core.adapters.sql import make_engine

    try:
        engine = make_engine(url, pool_size=1)
        try:
            with engine.connect() as conn:
                ended = conn.execute(
                    text(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                        " WHERE application_name = :name AND datname = current_database()"
                    ),
                    {"name": app_name},
                ).scalar_one()
        finally:
            engine.dispose()
    except Exception as exc:
        log.warning(
            "an interrupted tool's database session not ended; it ends when its lock wait does",
            extra={"session": app_name, "error": type(exc).__name__},
        )
        return 0
    return int(ended)


def _first_error(stderr: str) -> str:
    """The line that says what went wrong ("pg_restore: error: ..."), not the context line
    pg_restore prints before it ("while PROCESSING TOC:"); redacted, at most 300 characters."""
    from core.adapters.logs import redact_text

    lines = [line for line in stderr.splitlines() if line.strip()]
    said = next((line for line in lines if "error:" in line.lower()), lines[0] if lines else "")
    return redact_text(said or "no message")[:300]


WAITING_SQL = """
SELECT w.pid AS waiting, b.pid AS holder, b.application_name AS app, b.state,
       coalesce(host(b.client_addr), 'local socket') AS address
FROM pg_stat_activity w
CROSS JOIN LATERAL unnest(pg_blocking_pids(w.pid)) AS blocking(pid)
JOIN pg_stat_activity b ON b.pid = blocking.pid
WHERE w.application_name = :name AND w.datname = current_database()
  AND w.wait_event_type = 'Lock'
LIMIT 1
"""


class LockWaitWatch:
    """run_pg's watch for pg_restore: how long its session has waited for a lock that another
    session holds; past the limit, cancels it and says who holds the lock."""

    def __init__(self, url: str, app_name: str, limit_s: float) -> None:
        from core.adapters.sql import make_engine

        self.engine = make_engine(url, pool_size=1, role="restore")
        self.app_name = app_name
        self.limit_s = limit_s
        self.since: float | None = None

    def __call__(self) -> str | None:
        from sqlalchemy import text

        with self.engine.connect() as conn:
            row = conn.execute(text(WAITING_SQL), {"name": self.app_name}).first()
            if row is None:
                self.since = None
                return None
            now = time.monotonic()
            self.since = self.since or now
            if now - self.since < self.limit_s:
                return None
            conn.execute(text("SELECT pg_cancel_backend(:pid)"), {"pid": row.waiting})
        app = row.app or "a session without application_name"
        return (
            f"pg_restore waited {self.limit_s:g} s for a lock held by {app} (pid {row.holder}, "
            f"{row.address}, {row.state}): end that session (SELECT pg_terminate_backend"
            f"({row.holder})) or let it finish, then restore again"
        )

    def close(self) -> None:
        self.engine.dispose()
