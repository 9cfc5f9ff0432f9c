"""Scheduled backups (NEWSFLASH_BACKUP_DIR): beat's task on a real SQLite database (and on
PostgreSQL) with real Redis for the lock and the record, run at chosen times: a due backup is
written as `newsflash backup` writes one, only the schedule's own directories are rotated, one
run at a time, nothing while off, a failure counted and logged in one line without the
database password; a run writes into `<name>.partial` and a killed run's is removed by the
next; the task's own time limit; and what `newsflash status` and /metrics show of it. Once
through a live maintenance-lane worker and the real broker."""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis as redis_lib

from cli.ops import backups_line
from cli.restore import verified_manifest
from config.settings import Settings
from core.adapters import backups, dumps, migrate
from core.adapters.backups import RedisBackupState, run_schedule, scheduled_backups
from core.adapters.celery_queue import TASK_BACKUP, TASK_RECLAIM, celery_config, make_producer
from core.adapters.metrics import _gauge_families
from core.adapters.sql import make_engine
from core.adapters.stores_sql import SqlStores
from core.model import Lane
from tests.support.cli import run_cli
from tests.support.samples import sub
from tests.support.services import make_env, new_vapid_pem, settings_from
from tests.support.stack import processes_named, start_worker, wait_until

T0 = datetime(2026, 12, 3, 4, 0, tzinfo=UTC).timestamp()
HOUR = 3600.0


def _settings(
    tmp_path: Path, redis_url: str, database_url: str | None = None, **extra: str
) -> Settings:
    var = tmp_path / "var"
    url = database_url or f"sqlite:///{var}/newsflash.db"
    return settings_from(make_env(var, url, redis_url, new_vapid_pem(), **extra))


@pytest.fixture
def state(clean_redis: str) -> RedisBackupState:
    return RedisBackupState(redis_lib.Redis.from_url(clean_redis))


def _with_readers(settings: Settings, n: int) -> None:
    engine = make_engine(settings.database_url)
    try:
        migrate.upgrade(engine)
        stores = SqlStores.build(engine, settings.topics)
        for i in range(n):
            stores.subscriptions.upsert(sub(i), 1.0)
    finally:
        engine.dispose()


@pytest.fixture
def publisher(tmp_path: Path, clean_redis: str) -> Iterator[Settings]:
    settings = _settings(
        tmp_path,
        clean_redis,
        BACKUP_DIR=str(tmp_path / "backups"),
        BACKUP_EVERY_H="1",
        BACKUP_KEEP="2",
    )
    _with_readers(settings, 3)
    yield settings


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_a_due_backup_is_written_and_only_the_schedules_own_are_rotated(
    publisher: Settings, state: RedisBackupState
) -> None:
    folder = publisher.backup_dir
    assert folder is not None
    # What else lives in the folder: an operator's own backup (no `made_by`), a directory
    # named like ours without a manifest, notes and a file. None of it is ever deleted.
    folder.mkdir()
    manual = folder / "20200101T000000Z"
    manual.mkdir()
    (manual / "manifest.json").write_text(
        json.dumps({"format": backups.FORMAT, "created_at": "2020-01-01T00:00:00+00:00"})
    )
    (folder / "20200102T000000Z").mkdir()
    (folder / "notes").mkdir()
    (folder / "README.txt").write_text("offsite sync at 05:00\n")
    foreign = {"20200101T000000Z", "20200102T000000Z", "notes", "README.txt"}

    assert run_schedule(publisher, state, T0) == "written"
    first = folder / "20261203T040000Z"
    manifest = verified_manifest(first)  # the digests `newsflash restore` checks
    assert manifest["database"]["subscriptions"] == 3
    assert manifest["made_by"] == "schedule"
    assert "keys/vapid_private_key_file" in manifest["files"]

    assert run_schedule(publisher, state, T0 + 600) == "fresh"  # not due within the hour
    assert run_schedule(publisher, state, T0 + HOUR) == "written"
    assert run_schedule(publisher, state, T0 + 2 * HOUR) == "written"
    # KEEP=2: the oldest of the schedule's three went, nothing else did.
    assert _names(folder) == sorted(foreign | {"20261203T050000Z", "20261203T060000Z"})
    assert run_schedule(publisher, state, T0 + 3 * HOUR) == "written"
    assert _names(folder) == sorted(foreign | {"20261203T060000Z", "20261203T070000Z"})
    assert [k.path.name for k in scheduled_backups(folder)] == [
        "20261203T060000Z",
        "20261203T070000Z",
    ]
    assert state.read()["last_success_at"] == T0 + 3 * HOUR

    snapshot = {"backups": backups.status(publisher, state)}
    assert backups_line(snapshot["backups"]) == (
        f"backups: last 2026-12-03 07:00 UTC (2 kept in {folder})"
    )
    gauges = {f.name: f.samples[0].value for f in _gauge_families(snapshot) if "backup" in f.name}
    assert gauges == {
        "newsflash_backup_last_success_timestamp_seconds": T0 + 3 * HOUR,
        "newsflash_backup_last_failure_timestamp_seconds": 0.0,
        "newsflash_backup_interval_seconds": HOUR,
        "newsflash_backup_failures": 0.0,
    }


def test_one_run_at_a_time(publisher: Settings, state: RedisBackupState) -> None:
    folder = publisher.backup_dir
    assert folder is not None
    token = state.try_lock(60)  # another worker's run under way
    assert token is not None
    assert run_schedule(publisher, state, T0) == "busy"
    assert not folder.exists() or not any(folder.iterdir())
    state.unlock(token)

    # Two workers at the same moment: one writes, the other does nothing.
    start = threading.Barrier(2)
    results: list[str] = []

    def run() -> None:
        start.wait()
        results.append(run_schedule(publisher, state, T0 + HOUR))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(results) in (["busy", "written"], ["fresh", "written"])
    assert _names(folder) == ["20261203T050000Z"]


def test_off_does_nothing_and_beat_does_not_ask(
    tmp_path: Path, clean_redis: str, state: RedisBackupState
) -> None:
    settings = _settings(tmp_path, clean_redis)
    assert settings.backup_dir is None
    assert run_schedule(settings, state, T0) == "off"
    assert state.read() == {}
    assert backups.status(settings, state) is None
    assert backups_line(None) == "backups: off"
    # Off is a value, not an absence: an interval of 0, which NewsflashBackupStale asks to be above.
    off = {
        f.name: f.samples[0].value for f in _gauge_families({"backups": None}) if "backup" in f.name
    }
    assert off["newsflash_backup_interval_seconds"] == 0.0
    assert off["newsflash_backup_last_success_timestamp_seconds"] == 0.0
    assert TASK_BACKUP not in {e["task"] for e in celery_config(settings)["beat_schedule"].values()}  # type: ignore[union-attr]

    on = _settings(tmp_path / "on", clean_redis, BACKUP_DIR=str(tmp_path / "b"))
    conf = celery_config(on)
    assert conf["task_routes"][TASK_BACKUP] == {"queue": Lane.MAINTENANCE.value}  # type: ignore[index]
    assert conf["beat_schedule"]["scheduled-backup"]["task"] == TASK_BACKUP  # type: ignore[index]


def test_a_failure_is_counted_and_logged_in_one_line_without_the_password(
    tmp_path: Path, state: RedisBackupState, caplog: pytest.LogCaptureFixture
) -> None:
    url = "postgresql+psycopg://newsflash:s3cret-pw@127.0.0.1:9/newsflash"  # nothing listens
    settings = _settings(tmp_path, _url(state), url, BACKUP_DIR=str(tmp_path / "backups"))
    with caplog.at_level(logging.INFO, logger="newsflash.backups"):
        assert run_schedule(settings, state, T0) == "failed"
        assert run_schedule(settings, state, T0 + 600) == "failed"  # still due: tried again
    records = [r for r in caplog.records if r.name == "newsflash.backups"]
    assert [r.getMessage() for r in records] == ["scheduled backup failed"] * 2
    error = records[0].__dict__["error"]
    assert "\n" not in error and "OperationalError" in error
    assert all("s3cret-pw" not in str(r.__dict__) for r in records)
    assert _names(tmp_path / "backups") == []  # no half-written directory left
    recorded = state.read()
    assert recorded["failures"] == 2 and recorded["last_failure_at"] == T0 + 600
    line = backups_line(backups.status(settings, state))
    assert line.startswith("backups: none yet (0 kept in ")
    assert "last attempt FAILED at 2026-12-03 04:10 UTC" in line


def _url(state: RedisBackupState) -> str:
    kwargs = state.client.connection_pool.connection_kwargs
    return f"redis://{kwargs['host']}:{kwargs['port']}/{kwargs['db']}"


def test_the_beat_task_on_postgresql(
    tmp_path: Path, clean_redis: str, postgres_url: str, state: RedisBackupState
) -> None:
    """The registered task itself, as a worker runs it, on PostgreSQL (pg_dump)."""
    from workers.factory import make_celery

    settings = _settings(tmp_path, clean_redis, postgres_url, BACKUP_DIR=str(tmp_path / "b"))
    _with_readers(settings, 2)
    app = make_celery(settings)
    assert app.tasks[TASK_BACKUP]() == "written"
    (made,) = scheduled_backups(tmp_path / "b")
    manifest = verified_manifest(made.path)
    assert manifest["database"]["engine"] == "postgresql"
    assert manifest["database"]["subscriptions"] == 2
    assert app.tasks[TASK_BACKUP]() == "fresh"


def test_status_shows_the_backups_line(publisher: Settings, state: RedisBackupState) -> None:
    assert run_schedule(publisher, state, T0) == "written"
    env = {
        k: v
        for k, v in make_env(
            publisher.var_dir, publisher.database_url, publisher.redis_url, new_vapid_pem()
        ).items()
    }
    env.update(
        {"NEWSFLASH_BACKUP_DIR": str(publisher.backup_dir), "NEWSFLASH_INSPECT_TIMEOUT_S": "0.2"}
    )
    result = run_cli(["status"], env)
    assert (
        f"backups: last 2026-12-03 04:00 UTC (1 kept in {publisher.backup_dir})"
        in result.stdout.splitlines()
    ), result.stdout + result.stderr
    env.pop("NEWSFLASH_BACKUP_DIR")
    assert "backups: off" in run_cli(["status"], env).stdout.splitlines()


def test_two_apps_in_one_process_each_run_their_own_task(tmp_path: Path, clean_redis: str) -> None:
    """Celery shares tasks between apps by default: a second app finalized in the same process
    warned of a duplicate name (an error here) and would have run the first app's task, with
    the first app's settings. Every task is registered shared=False."""
    from workers.factory import make_celery

    first = make_celery(_settings(tmp_path / "a", clean_redis, BACKUP_DIR=str(tmp_path / "a-b")))
    theirs = _settings(tmp_path / "b", clean_redis, BACKUP_DIR=str(tmp_path / "b-b"))
    _with_readers(theirs, 1)
    second = make_celery(theirs)
    assert first.tasks[TASK_BACKUP] is not second.tasks[TASK_BACKUP]
    assert second.tasks[TASK_BACKUP]() == "written"
    assert [k.path.parent for k in scheduled_backups(tmp_path / "b-b")] == [tmp_path / "b-b"]
    assert scheduled_backups(tmp_path / "a-b") == []


def _manifest_of_a_scheduled_backup(created_at: str) -> str:
    return json.dumps({"format": backups.FORMAT, "made_by": "schedule", "created_at": created_at})


def test_a_killed_runs_partial_directory_never_counts_and_the_next_run_removes_it(
    publisher: Settings, state: RedisBackupState, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = publisher.backup_dir
    assert folder is not None
    folder.mkdir()
    # What a run killed part way leaves: its copy in `<name>.partial`, here even with a manifest
    # (killed between writing it and the rename). It is not a backup.
    killed = folder / "20261203T030000Z.partial"
    killed.mkdir()
    (killed / "database.sqlite3").write_bytes(b"half a copy")
    (killed / "manifest.json").write_text(_manifest_of_a_scheduled_backup("2026-12-03T03:00:00"))
    # Named almost like it, or a link to a directory elsewhere: never touched.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("mine\n")
    (folder / "20261203T020000Z.partial").symlink_to(elsewhere, target_is_directory=True)
    (folder / "20261203T010000Z.partial").write_text("a file, not a directory\n")
    for name in ("20261203T000000Z.partial.old", "x20261203T000000Z.partial", "notes.partial"):
        (folder / name).mkdir()
    foreign = set(_names(folder)) - {killed.name}

    status = backups.status(publisher, state)
    assert status is not None and status["kept"] == 0 and status["last_success_at"] is None
    assert scheduled_backups(folder) == []

    with caplog.at_level(logging.INFO, logger="newsflash.backups"):
        # Due although the partial's manifest says 03:00: it never counts as the last backup.
        assert run_schedule(publisher, state, T0) == "written"
    assert _names(folder) == sorted(foreign | {"20261203T040000Z"})
    assert (elsewhere / "keep.txt").read_text() == "mine\n"
    removed = [r for r in caplog.records if r.getMessage().endswith("directories removed")]
    assert [r.__dict__["removed"] for r in removed] == [1]

    with caplog.at_level(logging.INFO, logger="newsflash.backups"):
        assert run_schedule(publisher, state, T0 + HOUR) == "written"
    assert len([r for r in caplog.records if r.getMessage().endswith("directories removed")]) == 1
    assert [k.path.name for k in scheduled_backups(folder)] == [
        "20261203T040000Z",
        "20261203T050000Z",
    ]


def _niceness(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[16])  # field 19 of proc(5), after the name


def test_a_run_under_way_writes_a_partial_holds_its_lock_and_dumps_at_low_priority(
    tmp_path: Path, clean_redis: str, postgres_url: str, state: RedisBackupState
) -> None:
    """A run held up inside pg_dump (a table it must read is locked): meanwhile the folder holds
    only `<name>.partial`, which no status counts; the lock lasts the backup's own time limit
    plus a minute, so a second copy of the task (Redis delivers an unacked task again after
    its visibility timeout) answers "busy"; pg_dump runs niced, its password never on its
    command line. Once the table is free the run finishes under the backup's real name."""
    from sqlalchemy import create_engine, text

    url = postgres_url.replace("postgres@", "postgres:s3cret-pw@")  # trust auth ignores it
    settings = _settings(
        tmp_path, clean_redis, url, BACKUP_DIR=str(tmp_path / "b"), BACKUP_TIME_LIMIT_S="900"
    )
    assert settings.backup_time_limit_s == 900
    _with_readers(settings, 2)
    folder = tmp_path / "b"
    blocker = create_engine(postgres_url)
    results: list[str] = []
    with blocker.connect() as conn:
        conn.execute(text("LOCK TABLE audit_log IN ACCESS EXCLUSIVE MODE"))  # pg_dump waits
        run = threading.Thread(target=lambda: results.append(run_schedule(settings, state, T0)))
        run.start()
        try:
            (dump_pid,) = wait_until(
                lambda: processes_named("pg_dump", str(folder)), 20, "pg_dump to start"
            )
            assert _names(folder) == ["20261203T040000Z.partial"]
            status = backups.status(settings, state)
            assert status is not None and status["kept"] == 0
            lock_ms = state.client.pttl(backups.LOCK_KEY)
            assert (900 - 30) * 1000 < lock_ms <= (900 + 60) * 1000
            assert run_schedule(settings, state, T0 + 1) == "busy"

            assert _niceness(dump_pid) == min(19, os.nice(0) + dumps.DUMP_NICENESS)
            argv = Path(f"/proc/{dump_pid}/cmdline").read_bytes()
            assert b"s3cret-pw" not in argv and b"--snapshot=" in argv
        finally:
            conn.rollback()
            run.join(60)
    blocker.dispose()
    assert results == ["written"]
    assert _names(folder) == ["20261203T040000Z"]
    assert verified_manifest(folder / "20261203T040000Z")["database"]["subscriptions"] == 2
    assert state.client.pttl(backups.LOCK_KEY) == -2  # released


def test_the_backup_task_has_its_own_time_limit(tmp_path: Path, clean_redis: str) -> None:
    from workers.factory import make_celery

    settings = _settings(
        tmp_path, clean_redis, BACKUP_DIR=str(tmp_path / "b"), BACKUP_TIME_LIMIT_S="7200"
    )
    app = make_celery(settings)
    task = app.tasks[TASK_BACKUP]
    assert (task.time_limit, task.soft_time_limit) == (7200, 7170)
    # Every other task keeps the global limit (NEWSFLASH_TASK_TIME_LIMIT_S).
    assert (app.conf.task_time_limit, app.conf.task_soft_time_limit) == (300, 270)
    reclaim = app.tasks[TASK_RECLAIM]
    assert (reclaim.time_limit, reclaim.soft_time_limit) == (300, 270)
    assert backups.lock_ttl_s(settings) == 7260
    default = _settings(tmp_path / "d", clean_redis, BACKUP_DIR=str(tmp_path / "b"))
    assert default.backup_time_limit_s == 3600
    # What the soft limit raises in the task (which stops pg_dump and ends its session: the
    # live test below), and the line the failure logs.
    from celery.exceptions import SoftTimeLimitExceeded

    assert backups.failure_line(SoftTimeLimitExceeded(), settings) == (
        "TimeoutError: not finished within NEWSFLASH_BACKUP_TIME_LIMIT_S (7200 s)"
    )


def test_a_live_maintenance_worker_takes_the_task_from_the_broker(
    tmp_path: Path, clean_redis: str, state: RedisBackupState
) -> None:
    """A real worker on the maintenance lane, the task sent by name through Redis: a copy that
    finds a run holding the lock does nothing (not even the sweep); the next one removes a
    killed run's leftover and writes a finished backup, with no `.partial` left."""
    folder = tmp_path / "b"
    env = make_env(
        tmp_path / "var",
        f"sqlite:///{tmp_path}/var/newsflash.db",
        clean_redis,
        new_vapid_pem(),
        BACKUP_DIR=str(folder),
        BACKUP_TIME_LIMIT_S="600",
    )
    settings = settings_from(env)
    _with_readers(settings, 2)
    folder.mkdir()
    leftover = folder / "20261203T030000Z.partial"
    leftover.mkdir()
    (leftover / "database.sqlite3").write_bytes(b"half a copy")
    producer = make_producer(settings)
    lane = Lane.MAINTENANCE.value

    worker = start_worker(env, tmp_path / "logs", queues=lane, concurrency=1)
    try:
        registered = producer.control.inspect(timeout=5).registered("time_limit")
        assert registered, "the worker did not answer"
        (tasks,) = registered.values()
        assert f"{TASK_BACKUP} [time_limit=600]" in tasks

        token = state.try_lock(60)  # a run under way (or this copy delivered twice)
        assert token is not None
        producer.send_task(TASK_BACKUP, queue=lane, routing_key=lane)
        wait_until(
            lambda: "another run holds the lock" in worker.output(), 15, "the busy copy's line"
        )
        assert _names(folder) == [leftover.name]
        state.unlock(token)

        producer.send_task(TASK_BACKUP, queue=lane, routing_key=lane)

        def finished() -> list[backups.Kept]:
            names = _names(folder)
            done = not any(n.endswith(".partial") for n in names)
            return scheduled_backups(folder) if done else []

        (made,) = wait_until(finished, 15, "a finished backup and no .partial")
    finally:
        worker.stop()
    assert _names(folder) == [made.path.name]
    assert verified_manifest(made.path)["database"]["subscriptions"] == 2
    assert "killed runs' directories removed" in worker.log_path.read_text()


def _failing_flush(*failing: Path) -> Callable[[Path], None]:
    """dumps.fsync_dir, except that flushing these directories fails as a dying disk's does."""
    real = dumps.fsync_dir

    def fsync_dir(path: Path) -> None:
        if path in failing:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        real(path)

    return fsync_dir


def test_a_backup_renamed_in_place_whose_folder_cannot_be_flushed_counts_with_a_warning(
    publisher: Settings,
    state: RedisBackupState,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The rename is done, only the folder's flush failed: the backup is complete, verified and
    found by every later run, so the run counts as written (and rotates as usual). One warning
    says that a power cut now could still lose the rename."""
    folder = publisher.backup_dir
    assert folder is not None
    monkeypatch.setattr(dumps, "fsync_dir", _failing_flush(folder))
    with caplog.at_level(logging.INFO, logger="newsflash.backups"):
        results = [run_schedule(publisher, state, T0 + h * HOUR) for h in range(3)]
    assert results == ["written"] * 3
    # KEEP=2: rotated as on any other run.
    assert _names(folder) == ["20261203T050000Z", "20261203T060000Z"]
    assert verified_manifest(folder / "20261203T060000Z")["database"]["subscriptions"] == 3
    assert state.read() == {"last_success_at": T0 + 2 * HOUR}  # no failure counted

    records = [r for r in caplog.records if r.name == "newsflash.backups"]
    warnings = [r for r in records if r.levelno == logging.WARNING]
    assert [r.getMessage() for r in warnings] == [
        "scheduled backup written but its folder not flushed: a power cut now could lose it"
    ] * 3
    assert [r.__dict__["backup"] for r in warnings] == [
        "20261203T040000Z",
        "20261203T050000Z",
        "20261203T060000Z",
    ]
    assert warnings[0].__dict__["error"] == "OSError: [Errno 5] Input/output error"
    assert [r.getMessage() for r in records].count("scheduled backup") == 3

    status = backups.status(publisher, state)
    assert status is not None
    assert (status["kept"], status["last_success_at"]) == (2, T0 + 2 * HOUR)
    assert (status["failures"], status["last_failure_at"]) == (0, None)
    assert backups_line(status) == f"backups: last 2026-12-03 06:00 UTC (2 kept in {folder})"


def test_a_copy_whose_entries_cannot_be_flushed_before_the_rename_fails_and_leaves_nothing(
    publisher: Settings,
    state: RedisBackupState,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Before the rename nothing is a backup yet: a failed flush of the `.partial` is a failed
    run, the partial copy is deleted, and the next run, due still, writes one."""
    folder = publisher.backup_dir
    assert folder is not None
    monkeypatch.setattr(dumps, "fsync_dir", _failing_flush(folder / "20261203T040000Z.partial"))
    with caplog.at_level(logging.INFO, logger="newsflash.backups"):
        assert run_schedule(publisher, state, T0) == "failed"
    records = [r for r in caplog.records if r.name == "newsflash.backups"]
    assert [r.getMessage() for r in records] == ["scheduled backup failed"]
    assert records[0].__dict__["error"] == "OSError: [Errno 5] Input/output error"
    assert _names(folder) == []
    assert state.read() == {"last_failure_at": T0, "failures": 1.0}
    line = backups_line(backups.status(publisher, state))
    assert line.startswith("backups: none yet (0 kept in ") and "FAILED" in line

    monkeypatch.undo()
    assert run_schedule(publisher, state, T0 + 600) == "written"
    assert [k.path.name for k in scheduled_backups(folder)] == ["20261203T041000Z"]


def test_a_backup_dir_that_cannot_be_listed_is_a_failed_run_in_one_line(
    tmp_path: Path, state: RedisBackupState, caplog: pytest.LogCaptureFixture
) -> None:
    """NEWSFLASH_BACKUP_DIR a file by the time the run lists it (settings refuse one at start):
    counted and logged as any failure, not an exception out of the task that /metrics never
    counts."""
    not_a_folder = tmp_path / "backups"
    settings = _settings(tmp_path, _url(state), BACKUP_DIR=str(not_a_folder))
    _with_readers(settings, 1)
    not_a_folder.write_text("a file\n")
    with caplog.at_level(logging.INFO, logger="newsflash.backups"):
        assert run_schedule(settings, state, T0) == "failed"
    records = [r for r in caplog.records if r.name == "newsflash.backups"]
    assert [r.getMessage() for r in records] == ["scheduled backup failed"]
    assert records[0].__dict__["error"].startswith("NotADirectoryError: ")
    assert state.read() == {"last_failure_at": T0, "failures": 1.0}
    assert not_a_folder.read_text() == "a file\n"
    assert backups_line(backups.status(settings, state)).endswith(
        "last attempt FAILED at 2026-12-03 04:00 UTC (see the worker log)"
    )


def test_an_old_backup_that_cannot_be_deleted_leaves_the_new_one_written_and_is_retried(
    publisher: Settings,
    state: RedisBackupState,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Rotation comes after the new backup is in place: an old one that will not go is one
    warning line, not a failed run. Its manifest goes last, so a backup deleted only in part
    still counts and the next run deletes the rest."""
    folder = publisher.backup_dir
    assert folder is not None
    assert run_schedule(publisher, state, T0) == "written"
    assert run_schedule(publisher, state, T0 + HOUR) == "written"
    oldest = folder / "20261203T040000Z"
    real_rmtree = shutil.rmtree

    def rmtree(path: Path, *args: Any, **kwargs: Any) -> None:
        # Something mounted on its keys/ (the whole backup would go in one rmtree before).
        if Path(path) in (oldest, oldest / "keys"):
            raise OSError(errno.EBUSY, os.strerror(errno.EBUSY), str(path))
        real_rmtree(path, *args, **kwargs)

    monkeypatch.setattr(shutil, "rmtree", rmtree)
    with caplog.at_level(logging.INFO, logger="newsflash.backups"):
        assert run_schedule(publisher, state, T0 + 2 * HOUR) == "written"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage() for r in warnings] == ["scheduled backup: an old backup not deleted"]
    assert warnings[0].__dict__["backup"] == oldest.name
    assert warnings[0].__dict__["error"].startswith("OSError: [Errno 16] Device or resource busy")
    assert (oldest / "keys").is_dir() and (oldest / "manifest.json").is_file()
    assert [k.path.name for k in scheduled_backups(folder)] == [
        "20261203T040000Z",
        "20261203T050000Z",
        "20261203T060000Z",
    ]
    assert state.read() == {"last_success_at": T0 + 2 * HOUR}

    monkeypatch.undo()
    assert run_schedule(publisher, state, T0 + 3 * HOUR) == "written"
    assert _names(folder) == ["20261203T060000Z", "20261203T070000Z"]


class _SuccessNotRecorded(RedisBackupState):
    """Redis gone between taking the lock and recording the success."""

    def succeeded(self, at: float) -> None:
        raise redis_lib.ConnectionError(
            "Error 111 connecting to 127.0.0.1:6379. Connection refused."
        )


def test_a_success_redis_cannot_record_is_still_a_written_backup(
    publisher: Settings, state: RedisBackupState, caplog: pytest.LogCaptureFixture
) -> None:
    """The disk holds the backup and status reads the disk: a lost record is a warning line, as
    a lost failure record is, not an exception out of the task."""
    folder = publisher.backup_dir
    assert folder is not None
    flaky = _SuccessNotRecorded(state.client)
    with caplog.at_level(logging.INFO, logger="newsflash.backups"):
        assert run_schedule(publisher, flaky, T0) == "written"
        assert run_schedule(publisher, flaky, T0 + 600) == "fresh"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["scheduled backup success not recorded (Redis unreachable)"] * 2
    assert [k.path.name for k in scheduled_backups(folder)] == ["20261203T040000Z"]
    assert state.read() == {}
    assert backups_line(backups.status(publisher, state)) == (
        f"backups: last 2026-12-03 04:00 UTC (1 kept in {folder})"
    )


def test_the_soft_limit_stops_a_stuck_pg_dump_on_a_live_worker(
    tmp_path: Path, clean_redis: str, postgres_url: str, state: RedisBackupState
) -> None:
    """NEWSFLASH_BACKUP_TIME_LIMIT_S on a live maintenance-lane worker, the task sent through
    the broker: pg_dump held up by a lock past the soft limit (30 s before the hard one) is
    stopped with its session, not left running after its task gave up (writing into a deleted
    directory and holding its locks); the partial copy is removed, the failure recorded and
    logged in one line naming the setting, the lock released, and the worker's process lives
    on to write the next backup once the table is free."""
    from sqlalchemy import create_engine, text

    folder = tmp_path / "b"
    env = make_env(
        tmp_path / "var",
        postgres_url,
        clean_redis,
        new_vapid_pem(),
        BACKUP_DIR=str(folder),
        BACKUP_TIME_LIMIT_S="60",  # the least it takes: soft at 30 s, hard at 60 s
    )
    settings = settings_from(env)
    _with_readers(settings, 2)
    producer = make_producer(settings)
    lane = Lane.MAINTENANCE.value
    database = postgres_url.rsplit("/", 1)[1]
    blocker = create_engine(postgres_url)
    worker = start_worker(env, tmp_path / "logs", queues=lane, concurrency=1)
    try:
        with blocker.connect() as conn:
            conn.execute(text("LOCK TABLE audit_log IN ACCESS EXCLUSIVE MODE"))  # pg_dump waits
            producer.send_task(TASK_BACKUP, queue=lane, routing_key=lane)
            wait_until(lambda: processes_named("pg_dump", str(folder)), 20, "pg_dump to start")

            def dump_sessions() -> int:  # asked anew: a transaction sees one snapshot of it
                with blocker.connect() as asking:
                    sessions = asking.execute(
                        text(
                            "SELECT count(*) FROM pg_stat_activity WHERE datname = :db"
                            " AND application_name LIKE 'newsflash backup %'"
                        ),
                        {"db": database},
                    )
                    return int(sessions.scalar_one())

            wait_until(lambda: dump_sessions() == 1, 10, "pg_dump's session")
            # The soft limit fires 30 s into the task; pg_dump must be gone within seconds of it.
            wait_until(
                lambda: not processes_named("pg_dump", str(folder)), 45, "pg_dump to be stopped"
            )
            wait_until(lambda: dump_sessions() == 0, 10, "pg_dump's session to end")
            wait_until(lambda: state.read().get("failures") == 1, 10, "the failure recorded")
            assert _names(folder) == []  # the partial copy removed
            # Released (the next run may go): just after the failure is recorded, so waited for.
            wait_until(lambda: state.client.pttl(backups.LOCK_KEY) == -2, 10, "the lock released")
            conn.rollback()

        failed = [
            line for line in worker.output().splitlines() if "scheduled backup failed" in line
        ]
        assert len(failed) == 1
        assert "not finished within NEWSFLASH_BACKUP_TIME_LIMIT_S (60 s)" in failed[0]

        producer.send_task(TASK_BACKUP, queue=lane, routing_key=lane)
        (made,) = wait_until(lambda: scheduled_backups(folder), 30, "the next backup")
    finally:
        worker.stop()
        blocker.dispose()
    assert verified_manifest(made.path)["database"]["subscriptions"] == 2
    log = worker.log_path.read_text()
    assert "TimeLimitExceeded" not in log.replace("SoftTimeLimitExceeded", "")  # never hard-killed
    assert "setup plugin" not in log  # alembic's chatter each time the revision is read
