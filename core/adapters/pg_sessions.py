"""A PostgreSQL session never outlives the statement its process gave up on, and a database
that stops answering is given up on in seconds.

PostgreSQL finds out that a client has gone only when it next writes to it: a session waiting
for a lock (behind a migration, a long restore) or running a long statement goes on after its
client stopped waiting, keeps its place in the lock queue and the locks it already holds, and
commits nothing. Two ways a process stops waiting, one guard each:

- **Interrupted**: Celery's soft time limit raises SoftTimeLimitExceeded from a signal handler
  inside the driver's wait. psycopg cancels the statement on Ctrl-C and SystemExit only; on any
  other exception the connection stayed mid-statement, the pool's rollback on return failed
  with "another command is already in progress", and that error replaced the soft limit's
  (logged as a database failure with a pool traceback; the task retried as for an outage).
  `stop_interrupted_statement` cancels the statement on the server and drops that one
  connection, and the interruption goes on unchanged.
- **Killed** (kill -9, the OOM killer, Celery's hard time limit): nothing in the process runs.
  `watch_client` asks the server to check the session's socket every CLIENT_CHECK_MS while a
  statement runs (client_connection_check_interval, PostgreSQL 14+; older servers keep their
  behaviour), so it stops within about a second.

The other way round, a server that accepts the connection and never answers (hung, or a
half-open proxy) held a web request, `/readyz` or a CLI command for ever: libpq waits without
limit by default. `connect_args` gives every connection a connect timeout, and TCP keepalives
and a TCP user timeout so that a host gone without a word (no reset, packets dropped) breaks
the connection instead of leaving it waiting; a value the URL or PGCONNECT_TIMEOUT sets wins.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.engine import ExceptionContext, make_url

log = logging.getLogger("newsflash.db")

CLIENT_CHECK_MS = 1000
CLIENT_CHECK_SINCE = 140000  # server_version_num of PostgreSQL 14
CANCEL_TIMEOUT_S = 3.0
# What a web request's statement may wait: a lock (behind a migration, a VACUUM FULL, an index
# built without CONCURRENTLY, another session's long transaction) and the statement as a whole.
# Without them every request touching a locked table waited with it, each holding one of the
# web process's threads, and once all were held nothing was answered, not /healthz, not the
# newsroom's publish. Past them the request answers 503 "busy" with Retry-After (service/errors.py).
WEB_LOCK_WAIT_S = 3  # SQLite's busy timeout for the web too (core/adapters/sql.py)
SESSION_LIMITS: dict[str, dict[str, str]] = {
    "web": {"lock_timeout": f"{WEB_LOCK_WAIT_S}s", "statement_timeout": "30s"},
}
# libpq parameters every connection gets unless the URL sets them.
CONNECT_DEFAULTS: dict[str, int] = {
    "connect_timeout": 10,  # seconds to open a connection, per address
    "keepalives": 1,
    "keepalives_idle": 30,  # an idle connection is probed after 30 s,
    "keepalives_interval": 10,  # every 10 s,
    "keepalives_count": 3,  # and dropped after three probes go unanswered
    "tcp_user_timeout": 30_000,  # ms that sent data may go unacknowledged
}


def connect_args(url: str, application_name: str) -> dict[str, object]:
    """The engine's connect_args: CONNECT_DEFAULTS under what the URL (and, for the connect
    timeout, PGCONNECT_TIMEOUT) says, and the connection's name."""
    given = set(make_url(url).query)
    if os.environ.get("PGCONNECT_TIMEOUT"):
        given.add("connect_timeout")
    args: dict[str, object] = {k: v for k, v in CONNECT_DEFAULTS.items() if k not in given}
    args["application_name"] = application_name
    return args


def session_limits(role: str) -> dict[str, str]:
    """What a session of this role may wait (SESSION_LIMITS; nothing for workers and commands)."""
    return SESSION_LIMITS.get(role, {})


def guard_sessions(engine: Engine, limits: dict[str, str] | None = None) -> None:
    """Both guards on a PostgreSQL engine's connections, and the role's limits."""

    def prepare(dbapi_conn: Any, _record: Any = None) -> None:
        watch_client(dbapi_conn, limits=limits)

    event.listen(engine, "connect", prepare)
    event.listen(engine, "handle_error", stop_interrupted_statement)


def watch_client(
    dbapi_conn: Any, _record: Any = None, limits: dict[str, str] | None = None
) -> None:
    """On a new connection, in one round trip: the server checks every CLIENT_CHECK_MS, while
    a statement runs, that this client is still there, and ends the session when it is not;
    and `limits` (setting: value) apply where nothing set them already (the URL's `options`,
    ALTER ROLE or ALTER DATABASE win)."""
    sets = [
        f"set_config('{name}', CASE current_setting('{name}') WHEN '0' THEN '{value}'"
        f" ELSE current_setting('{name}') END, false)"
        for name, value in (limits or {}).items()
    ]
    if dbapi_conn.info.server_version >= CLIENT_CHECK_SINCE:
        sets.append(f"set_config('client_connection_check_interval', '{CLIENT_CHECK_MS}', false)")
    if not sets:
        return
    autocommit = dbapi_conn.autocommit
    dbapi_conn.autocommit = True  # session settings, not a transaction to leave open
    try:
        dbapi_conn.execute("SELECT " + ", ".join(sets))
    finally:
        dbapi_conn.autocommit = autocommit


def stop_interrupted_statement(ctx: ExceptionContext) -> None:
    """An exception that is not the database's, raised while a statement was still running on
    the server (a signal handler's: Celery's soft time limit): cancel the statement, and have
    SQLAlchemy drop this connection (only this one) instead of rolling it back, so the
    interruption reaches the caller as it was raised."""
    import psycopg  # here, not at the top: a SQLite deployment's commands never load it

    if isinstance(ctx.original_exception, psycopg.Error):
        return
    if not isinstance(ctx.original_exception, Exception):
        return  # Ctrl-C and SystemExit: psycopg cancels those itself
    # The statement's own connection, through its cursor: asking the Connection would
    # reconnect it when the interruption came while connecting.
    cursor = getattr(ctx.execution_context, "cursor", None)
    dbapi_conn = getattr(cursor, "connection", None)
    if not isinstance(dbapi_conn, psycopg.Connection) or dbapi_conn.closed:
        return
    if dbapi_conn.pgconn.transaction_status != psycopg.pq.TransactionStatus.ACTIVE:
        return  # not mid-statement: the usual rollback works
    try:
        dbapi_conn.cancel_safe(timeout=CANCEL_TIMEOUT_S)
    except Exception as exc:  # the connection is dropped anyway; the server ends it later
        log.warning("could not cancel an interrupted statement (%s)", type(exc).__name__)
    ctx.is_disconnect = True
    ctx.invalidate_pool_on_disconnect = False
