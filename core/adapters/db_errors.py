"""What a database error says about the database, not about the request: the web's 503s name
it in their log line and metric, so that ops see which of four things is wrong.

- busy: a web session's lock or statement timeout ran out (core/adapters/pg_sessions.py),
  or SQLite's busy timeout: something holds what the request needs.
- disk: the database's disk refused a write: no space left (PostgreSQL: "could not extend
  file ... No space left on device"; SQLite: SQLITE_FULL, or SQLITE_IOERR when its shared
  memory file cannot grow), an I/O error, or, for SQLite, a file it cannot open (its
  filesystem remounted read-only after a disk error, as Linux does, or the file gone).
- read_only: the database refuses every write: a PostgreSQL standby or a database set
  `default_transaction_read_only` (a failover pointed at the wrong server), or SQLite's
  SQLITE_READONLY.
- unreachable: anything else: refused, hung, dropped, every pooled connection taken.

Before, the last three were all "database unavailable" in the log and "not answering" to the
caller: a disk that filled up after months read as a network outage.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Final

from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import InternalError, OperationalError

BUSY: Final = "busy"
DISK: Final = "disk"
READ_ONLY: Final = "read_only"
UNREACHABLE: Final = "unreachable"
REASONS: Final = (BUSY, DISK, READ_ONLY, UNREACHABLE)
REFUSES_WRITES: Final = (DISK, READ_ONLY)  # someone must act; reads may go on

# lock_not_available, query_canceled (our timeouts); disk_full, io_error;
# read_only_sql_transaction
SQLSTATES: Final = {
    "55P03": BUSY,
    "57014": BUSY,
    "53100": DISK,
    "58030": DISK,
    "25006": READ_ONLY,
}
# SQLite's primary result codes, the low byte of the extended code sqlite3 reports
# (SQLITE_BUSY_SNAPSHOT 517 is a SQLITE_BUSY): BUSY, LOCKED; FULL, IOERR, CANTOPEN; READONLY.
SQLITE_CODES: Final = {5: BUSY, 6: BUSY, 13: DISK, 10: DISK, 14: DISK, 8: READ_ONLY}


def trouble(exc: BaseException) -> str:
    """One of REASONS for an error SQLAlchemy raised (its driver's error in `orig`)."""
    cause = getattr(exc, "orig", None) or exc
    found = SQLSTATES.get(getattr(cause, "sqlstate", None) or "")
    if found is not None:
        return found
    code = getattr(cause, "sqlite_errorcode", None)
    if isinstance(code, int):
        return SQLITE_CODES.get(code & 0xFF, UNREACHABLE)
    return UNREACHABLE


def driver_words(exc: BaseException) -> str:
    """The database's own first line about a disk or read-only refusal, for the log: it names
    the trouble precisely ("could not extend file ...: No space left on device", "disk I/O
    error") and, unlike a connection error's, no host; redacted all the same."""
    from core.adapters.logs import redact_text

    text = str(getattr(exc, "orig", None) or exc).strip()
    return redact_text(text.splitlines()[0])[:200] if text else type(exc).__name__


def refusal_is_an_outage(ctx: ExceptionContext) -> BaseException | None:
    """handle_error, on every engine: a read-only PostgreSQL's refusal (SQLSTATE 25006, which
    psycopg files under the DBAPI's InternalError) reaches callers as an OperationalError, as a
    full disk's does. Before, nothing took InternalError for the database's trouble: the web
    answered 500 with a traceback and the worker tasks, which retry OperationalError, failed."""
    found = ctx.sqlalchemy_exception
    if isinstance(found, InternalError) and found.orig is not None and trouble(found) == READ_ONLY:
        return OperationalError(found.statement, found.params, found.orig)
    return None


def witness(on_refused: Callable[[str], None]) -> Callable[[ExceptionContext], None]:
    """handle_error: tell `on_refused` of every disk or read-only refusal, in whatever process
    and whatever its caller makes of the error (a web 503, a task's retry, a beat loop's warning),
    so that /ops and beat's alarms see what the web's metric alone used to see. It never raises:
    it must not change the error the caller gets."""

    def seen(ctx: ExceptionContext) -> None:
        reason = trouble(ctx.sqlalchemy_exception or ctx.original_exception)
        if reason in REFUSES_WRITES:
            with contextlib.suppress(Exception):  # telling ops never changes the error
                on_refused(reason)

    return seen
