"""A SQLite copy (`newsflash backup` and the scheduled one) runs at lower CPU priority, as pg_dump
does, so the senders in the same worker keep the CPU: in a short-lived thread of its own, niced
(Linux keeps niceness per thread), while the calling thread, and so the worker, keeps its own.
Seen from /proc while a real copy waits for a writer's lock; the copy's errors read as before."""

from __future__ import annotations

import os
import signal
import sqlite3
import stat
import threading
from pathlib import Path
from types import FrameType

import pytest

from core.adapters import dumps
from tests.support.stack import wait_until

pytestmark = pytest.mark.skipif(
    not os.path.isdir("/proc/self/task"), reason="per-thread niceness is Linux's"
)


def _own_niceness() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def _lowered(niceness: int) -> int:
    return min(19, niceness + dumps.DUMP_NICENESS)


def _thread_niceness() -> dict[int, int]:
    """Each thread of this process: its niceness, from /proc (field 19 of proc(5))."""
    found = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            stat_line = (task / "stat").read_text()
        except OSError:
            continue  # ended meanwhile
        found[int(task.name)] = int(stat_line.rsplit(")", 1)[1].split()[16])
    return found


def test_work_runs_in_a_thread_of_its_own_at_lower_priority_and_the_caller_keeps_its_own() -> None:
    before = _own_niceness()
    tid, niceness = dumps.run_niced(lambda: (threading.get_native_id(), _own_niceness()))
    assert tid != threading.get_native_id()
    assert niceness == _lowered(before)
    assert _own_niceness() == before
    assert os.nice(0) == before  # the process's (this thread's) niceness, as os.nice sees it


def test_the_works_exception_is_raised_unchanged() -> None:
    error = dumps.DumpError("NEWSFLASH_DATABASE_URL: could not copy the SQLite database (x)")

    def fail() -> None:
        raise error

    with pytest.raises(dumps.DumpError) as raised:
        dumps.run_niced(fail)
    assert raised.value is error


class _Interrupted(Exception):
    pass


def test_an_interrupted_caller_returns_only_once_the_work_has() -> None:
    """Celery's soft time limit is a signal that raises in the main thread, here while it waits
    for the copy. The caller then deletes the copy's directory: the copy must be over by then."""
    assert threading.current_thread() is threading.main_thread()
    started, handled, release, finished, abandon = (threading.Event() for _ in range(5))

    def work() -> None:
        started.set()
        release.wait(30)
        finished.set()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        handled.set()
        raise _Interrupted

    def interrupt_then_release() -> None:
        started.wait(30)
        if abandon.is_set():
            return
        signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGUSR1)
        handled.wait(30)
        release.set()

    previous = signal.signal(signal.SIGUSR1, on_signal)
    helper = threading.Thread(target=interrupt_then_release)
    helper.start()
    try:
        with pytest.raises(_Interrupted):
            dumps.run_niced(work)
        assert finished.is_set(), "run_niced returned while the work was still running"
    finally:
        abandon.set()
        started.set()
        release.set()
        helper.join(30)
        signal.signal(signal.SIGUSR1, previous)


def _database(path: Path, readers: int) -> None:
    """A SQLite database in the default rollback-journal mode, where a writer's exclusive lock
    keeps a reader (the copy) waiting."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE subscriptions (id INTEGER PRIMARY KEY)")
    conn.execute("CREATE TABLE alerts (id INTEGER PRIMARY KEY)")
    conn.executemany("INSERT INTO subscriptions (id) VALUES (?)", [(i,) for i in range(readers)])
    conn.close()


def test_a_sqlite_copy_runs_niced_while_the_calling_thread_keeps_its_priority(
    tmp_path: Path,
) -> None:
    source = tmp_path / "newsflash.db"
    _database(source, 3)
    dest = tmp_path / "copy.sqlite3"
    caller: list[int] = []
    results: list[dumps.Snapshot] = []

    def back_up() -> None:
        caller.append(threading.get_native_id())
        results.append(dumps.backup_sqlite(f"sqlite:///{source}", dest))

    base = _own_niceness()
    writer = sqlite3.connect(source, isolation_level=None)
    writer.execute("BEGIN EXCLUSIVE")  # the copy waits for it (BUSY_TIMEOUT_MS)
    run = threading.Thread(target=back_up)
    run.start()
    try:
        niced = wait_until(
            lambda: [t for t, n in _thread_niceness().items() if n == _lowered(base) != base],
            10,
            "a thread copying at lower priority",
        )
        assert len(niced) == 1 and niced[0] != caller[0]
        assert _thread_niceness()[caller[0]] == base
    finally:
        writer.execute("ROLLBACK")
        writer.close()
        run.join(60)
    assert results == [dumps.Snapshot("sqlite", None, 3, 0)]
    assert stat.S_IMODE(dest.stat().st_mode) == 0o600
    copy = sqlite3.connect(dest)
    assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert copy.execute("SELECT count(*) FROM subscriptions").fetchone()[0] == 3
    copy.close()
    assert _own_niceness() == base


def test_a_copy_that_fails_raises_the_same_one_line_error(tmp_path: Path) -> None:
    source = tmp_path / "newsflash.db"
    source.write_bytes(b"not a database, " * 512)
    with pytest.raises(dumps.DumpError) as raised:
        dumps.backup_sqlite(f"sqlite:///{source}", tmp_path / "copy.sqlite3")
    assert str(raised.value) == (
        "NEWSFLASH_DATABASE_URL: could not copy the SQLite database (file is not a database)"
    )
    assert raised.value.__cause__ is None and raised.value.__suppress_context__
