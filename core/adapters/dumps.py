"""The database's copy for `newsflash backup` and its way back for `restore`: SQLite through its
online backup API, PostgreSQL through pg_dump / pg_restore, each with the counts and migration
revision of exactly the copy taken."""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from core.adapters.children import bound_to_caller
from core.adapters.pg_tools import LOCK_WAIT_S, LockWaitWatch, libpq, pg_tool, run_pg
from core.adapters.pg_tools import DumpError as DumpError  # raised for SQLite copies as well

# How long a copy waits for a writer's lock before it gives up: as long as the app's own
# connections wait (core/adapters/sql.py make_engine), so a backup fails no sooner than they do.
BUSY_TIMEOUT_MS = 30_000


@dataclass(frozen=True)
class Snapshot:
    """What a database copy holds, counted inside the copy itself."""

    engine: str  # "sqlite" | "postgresql"
    revision: str | None
    subscriptions: int
    alerts: int


def engine_of(url: str) -> str:
    return "sqlite" if url.startswith("sqlite") else "postgresql"


def sqlite_path(url: str) -> Path:
    from sqlalchemy.engine import make_url  # here: `newsflash --help` loads no SQLAlchemy

    path = make_url(url).database
    if not path or path == ":memory:":
        raise DumpError("NEWSFLASH_DATABASE_URL: an in-memory SQLite database has nothing to copy")
    return Path(path)


def _sqlite_connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    return conn


def _counted(query: Any) -> Snapshot:
    """Counts and revision through `query(sql) -> scalar`; tables absent count as empty."""

    def scalar(sql: str) -> Any:
        try:
            return query(sql)
        except Exception as exc:
            cause = getattr(exc, "orig", None) or exc
            if "no such table" in str(cause) or type(cause).__name__ == "UndefinedTable":
                return None
            raise

    return Snapshot(
        engine="",
        revision=scalar("SELECT version_num FROM alembic_version"),
        subscriptions=int(scalar("SELECT count(*) FROM subscriptions") or 0),
        alerts=int(scalar("SELECT count(*) FROM alerts") or 0),
    )


def backup_sqlite(url: str, dest: Path) -> Snapshot:
    """A consistent copy of a live SQLite database into the new file `dest` (mode 0600).

    The app runs SQLite in WAL mode, where a reader holds a snapshot without blocking writers.
    The copy is made in one step (pages=-1), inside one read transaction: the web app and
    workers go on writing, and the copy is the database as of the moment the step began.
    Copied page by page in several steps instead, every write by another connection would
    restart the copy, and a busy newsroom could keep it from ever finishing. The copy, its
    check and its counts run niced, as pg_dump does (run_niced)."""
    source_path = sqlite_path(url)
    if not source_path.is_file():
        raise DumpError(f"NEWSFLASH_DATABASE_URL: no SQLite database at {source_path}")
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    return run_niced(lambda: _copy_sqlite(source_path, dest))


def _copy_sqlite(source_path: Path, dest: Path) -> Snapshot:
    source = _sqlite_connect(source_path)
    copy = sqlite3.connect(dest, isolation_level=None)
    try:
        source.backup(copy, pages=-1)
        # One self-contained file: no -wal or -shm beside it to forget.
        copy.execute("PRAGMA journal_mode=DELETE")
        checked = copy.execute("PRAGMA integrity_check").fetchone()[0]
        if checked != "ok":
            raise DumpError(f"the copy failed SQLite's integrity check ({checked})")
        snap = _counted(lambda sql: copy.execute(sql).fetchone()[0])
    except sqlite3.Error as exc:
        raise DumpError(
            f"NEWSFLASH_DATABASE_URL: could not copy the SQLite database ({exc})"
        ) from None
    finally:
        copy.close()
        source.close()
    return Snapshot("sqlite", snap.revision, snap.subscriptions, snap.alerts)


def sqlite_file_snapshot(path: Path) -> Snapshot:
    """Counts and revision of a SQLite file (a backup's copy), read only."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        snap = _counted(lambda sql: conn.execute(sql).fetchone()[0])
    finally:
        conn.close()
    return Snapshot("sqlite", snap.revision, snap.subscriptions, snap.alerts)


def live_snapshot(url: str) -> Snapshot:
    """Counts and revision of the configured database; a missing SQLite file or an empty
    PostgreSQL database counts as empty."""
    if engine_of(url) == "sqlite":
        path = sqlite_path(url)
        if not path.exists():
            return Snapshot("sqlite", None, 0, 0)
        lite = _sqlite_connect(path)
        try:
            snap = _counted(lambda sql: lite.execute(sql).fetchone()[0])
        finally:
            lite.close()
        return Snapshot("sqlite", snap.revision, snap.subscriptions, snap.alerts)
    from sqlalchemy import text

    from core.adapters.sql import make_engine

    engine = make_engine(url, pool_size=1)
    try:
        with engine.connect() as conn:

            def query(sql: str) -> Any:
                with conn.begin_nested():
                    return conn.execute(text(sql)).scalar()

            with conn.begin():
                snap = _counted(query)
    finally:
        engine.dispose()
    return Snapshot("postgresql", snap.revision, snap.subscriptions, snap.alerts)


def restore_sqlite(copy: Path, url: str) -> None:
    """Put the backup's file in place of the configured SQLite database atomically: written
    beside it, flushed to disk, renamed over it. Refused while another process has the
    database open (the web app, a worker, beat): the switch out of WAL mode below needs it
    alone, and a database renamed under a running process would be overwritten by its WAL."""
    target = sqlite_path(url)
    if target.exists():
        _leave_wal_mode(target)
    put_in_place(copy, target)


def put_in_place(source: Path, target: Path, aside: Path | None = None) -> None:
    """`source`'s bytes as `target` (0600), atomically: written beside it, flushed to disk,
    renamed over it, the directory flushed too. `aside`: the file it replaces is kept there
    (a hard link made just before the rename). Nothing is left behind when it fails."""
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(prefix=f".{target.name}.restore-", dir=target.parent)
    temp = Path(temp_name)
    try:
        with os.fdopen(fd, "wb") as out, source.open("rb") as data:
            shutil.copyfileobj(data, out, 1 << 20)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temp, 0o600)
        if aside is not None:
            os.link(target, aside)
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    fsync_dir(target.parent)


def _open_elsewhere(target: Path) -> bool:
    """Whether another process has the database (or its -wal/-shm) open, from /proc (Linux, and
    only the processes this one may see). The journal-mode switch below refuses too while a
    connection in any process, user or container holds the WAL index. Neither sees a process
    between two connections (SQLite's pool is NullPool): restore first asks the workers on
    the broker and takes the lock every running process shares (core/adapters/db_holders.py)."""
    names = {str(target.resolve()) + suffix for suffix in ("", "-wal", "-shm")}
    proc = Path("/proc")
    for fd_dir in proc.glob("[0-9]*/fd"):
        if fd_dir.parent.name == str(os.getpid()):
            continue
        try:
            if any(os.readlink(fd) in names for fd in fd_dir.iterdir()):
                return True
        except OSError:
            continue  # gone meanwhile, or another user's: not ours to read
    return False


def _leave_wal_mode(target: Path) -> None:
    if _open_elsewhere(target):
        raise DumpError(
            f"{target} is in use: stop the web app, workers and beat before restoring over it"
        )
    conn = sqlite3.connect(target, timeout=1, isolation_level=None)
    try:
        conn.execute("PRAGMA busy_timeout=1000")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        mode = conn.execute("PRAGMA journal_mode=DELETE").fetchone()[0]
    except sqlite3.Error:
        mode = "locked"
    finally:
        conn.close()
    wal = target.with_name(target.name + "-wal")
    if mode != "delete" or wal.exists():
        raise DumpError(
            f"{target} is in use: stop the web app, workers and beat before restoring over it"
        )


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# pg_dump's CPU niceness: a backup shares the machine with the senders, which keep the priority.
DUMP_NICENESS = 10


def lower_priority() -> list[str]:
    """`nice -n 10` to put before a command, when `nice` is on PATH (else nothing). Not os.nice
    in a preexec_fn: the worker runs sender threads, and preexec_fn is unsafe beside threads."""
    found = shutil.which("nice")
    return [found, "-n", str(DUMP_NICENESS)] if found else []


T = TypeVar("T")


def run_niced(work: Callable[[], T]) -> T:
    """`work()` in a short-lived thread of its own, DUMP_NICENESS lower in priority than the
    caller (as `nice -n 10`), for CPU-heavy work inside a worker: Linux keeps a niceness per
    thread, where os.nice would lower the whole worker, senders included, for good (an
    unprivileged process cannot raise it back). Its exception is raised here unchanged.
    Returns only once `work` has, even when interrupted (Celery's soft time limit raises in the
    waiting thread): the caller then deletes what `work` was writing."""
    began, ended, abandoned = threading.Event(), threading.Event(), threading.Event()
    done: list[T] = []
    failed: list[BaseException] = []

    def niced() -> None:
        began.set()
        try:
            if not abandoned.is_set():
                done.append(_niced(work))
        except BaseException as exc:
            failed.append(exc)
        finally:
            ended.set()

    try:
        threading.Thread(target=niced, name="newsflash-niced").start()
        ended.wait()
    finally:
        # Interrupted: work already begun ends before this returns, work not begun never runs.
        # Events, not Thread.join: a join interrupted by a signal can leave the thread marked
        # as ended while it still runs (CPython 3.11).
        abandoned.set()
        if began.is_set():
            ended.wait()
    if failed:
        raise failed[0]
    return done[0]


def _niced(work: Callable[[], T]) -> T:
    # Elsewhere PRIO_PROCESS takes a process id, not this thread's: the work runs unniced there.
    if sys.platform == "linux":
        tid = threading.get_native_id()
        with contextlib.suppress(OSError):  # refused (a seccomp profile): unniced, as before
            lowered = min(19, os.getpriority(os.PRIO_PROCESS, tid) + DUMP_NICENESS)
            os.setpriority(os.PRIO_PROCESS, tid, lowered)
    return work()


def backup_postgres(url: str, dest: Path) -> Snapshot:
    """pg_dump --format=custom into `dest`, counted in the very snapshot pg_dump copies: the
    snapshot is exported from an open repeatable-read transaction, counted there, and handed
    to pg_dump (--snapshot), so rows written meanwhile are in neither."""
    dump = pg_tool("pg_dump")
    conninfo, env = libpq(url)
    env["PGAPPNAME"] = f"newsflash backup {os.getpid()}-{os.urandom(3).hex()}"
    from sqlalchemy import text

    from core.adapters.sql import make_engine

    engine = make_engine(url, pool_size=1)
    try:
        repeatable = engine.connect().execution_options(isolation_level="REPEATABLE READ")
        with repeatable as conn, conn.begin():
            snapshot_id = conn.execute(text("SELECT pg_export_snapshot()")).scalar_one()

            def query(sql: str) -> Any:
                with conn.begin_nested():
                    return conn.execute(text(sql)).scalar()

            snap = _counted(query)
            fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.close(fd)
            argv = [*bound_to_caller(), *lower_priority(), dump, "--format=custom"]
            argv += [f"--snapshot={snapshot_id}"]
            argv += ["--file", str(dest), "--dbname", conninfo]
            run_pg(argv, env, "pg_dump", url=url)
    finally:
        engine.dispose()
    return Snapshot("postgresql", snap.revision, snap.subscriptions, snap.alerts)


def restore_postgres(copy: Path, url: str, lock_wait_s: float = LOCK_WAIT_S) -> None:
    """pg_restore the custom-format dump into the configured database in one transaction:
    objects the dump holds are dropped first (--clean --if-exists), owners are the
    connecting role's (--no-owner), and a failure part way leaves the database as it was.

    The dump turns lock_timeout off, so a session holding a lock on a table (a forgotten open
    transaction in psql) would keep pg_restore waiting for hours: once it has waited
    `lock_wait_s` its statement is cancelled, which rolls the restore back, and the error names
    the session holding the lock."""
    restore = pg_tool("pg_restore")
    conninfo, env = libpq(url)
    env["PGAPPNAME"] = f"newsflash restore {os.getpid()}"
    argv = [*bound_to_caller(), restore, "--clean", "--if-exists", "--no-owner"]
    argv += ["--single-transaction"]
    argv += ["--dbname", conninfo, str(copy)]
    watch = LockWaitWatch(url, env["PGAPPNAME"], lock_wait_s)
    try:
        run_pg(argv, env, "pg_restore", watch, url=url)
    finally:
        watch.close()
