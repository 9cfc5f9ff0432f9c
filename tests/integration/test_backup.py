"""`newsflash backup` and `newsflash restore` as an operator runs them (the real command in a
subprocess), on SQLite while the store keeps writing and on PostgreSQL with pg_dump/pg_restore;
after a restore the push stand-in accepts an alert signed with the restored VAPID key."""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from config.settings import Settings
from core.adapters import db_holders, dumps
from core.adapters import pg_tools as client_tools
from core.adapters.sql import make_engine
from core.adapters.stores_sql import SqlStores
from core.adapters.webpush import Http11PushSender, SenderConfig
from core.bootstrap import load_signer
from core.model import AlertStatus, SubscriptionInput
from core.ports import PushMessage, PushResult
from standin.server import PushStandin
from tests.support.cli import cli_running, run_cli, stop_cli
from tests.support.samples import draft, sub
from tests.support.services import (
    CI,
    REDIS_BASE,
    TEST_REDIS_DB,
    create_pg_database,
    drop_pg_database,
    free_port,
    make_env,
    new_vapid_pem,
    pg_sessions,
    settings_from,
)
from tests.support.stack import processes_named, start_beat, start_web, start_worker, wait_until

REDIS_URL = f"{REDIS_BASE}/{TEST_REDIS_DB}"


def newsflash(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # PG*: a libpq setting of the test runner's must not reach pg_dump or pg_restore.
    return run_cli(list(args), env, 120, drop=("NEWSFLASH_", "PG"))


def refused(result: subprocess.CompletedProcess[str], *words: str) -> None:
    """A refusal as the operator sees it: exit 2, one line on stderr, nothing on stdout."""
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("newsflash: "), result.stderr
    for word in words:
        assert word in lines[0], lines[0]


def target_env(var_dir: Path, database_url: str) -> dict[str, str]:
    """A machine to restore onto: no key file yet; the app secret given inline as before."""
    return {
        "NEWSFLASH_VAR_DIR": str(var_dir),
        "NEWSFLASH_DATABASE_URL": database_url,
        "NEWSFLASH_REDIS_URL": REDIS_URL,
        "NEWSFLASH_VAPID_PRIVATE_KEY_FILE": str(var_dir / "vapid_private.pem"),
        "NEWSFLASH_VAPID_SUBJECT": "mailto:ops@news.example",
        "NEWSFLASH_SECRET_KEY": "restored-" + "x" * 32,
        "NEWSFLASH_CMS_WEBHOOK_SECRET": "whsec_dGVzdC1zZWNyZXQtZm9yLXdlYmhvb2tzLTMyYnl0ZXM=",
        "NEWSFLASH_ALLOW_LOOPBACK_PUSH": "on",
    }


def tree(path: Path) -> dict[str, str]:
    """Every file under path with its digest: 'nothing changed' made checkable. A SQLite
    database counts by its rows: SQLite itself folds its -wal into it when a connection
    closes, which changes bytes, not content."""
    if not path.exists():
        return {}
    files = {
        str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.is_file() and not p.name.startswith("newsflash.db")
    }
    if (path / "newsflash.db").exists():
        db = sqlite3.connect(f"file:{path / 'newsflash.db'}?mode=ro", uri=True)
        files["newsflash.db"] = str(
            [
                db.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                for t in ("subscriptions", "alerts")
            ]
        )
        db.close()
    return files


@pytest.fixture(scope="module")
def standin() -> Iterator[PushStandin]:
    s = PushStandin("127.0.0.1").start()
    yield s
    s.stop()


class Publisher:
    """A running publisher: settings, its stores, readers bound to its VAPID key."""

    def __init__(self, env: dict[str, str], standin: PushStandin) -> None:
        self.env = env
        upgraded = newsflash("db", "upgrade", env=env)
        assert upgraded.returncode == 0, upgraded.stderr
        self.settings: Settings = settings_from(env)
        self.engine = make_engine(self.settings.database_url)
        self.stores = SqlStores.build(self.engine, self.settings.topics)
        public = load_signer(self.settings).public_key_b64
        self.readers = standin.create_subscriptions(3, application_server_key=public)
        for r in self.readers:
            self.stores.subscriptions.upsert(
                SubscriptionInput(
                    r["endpoint"], r["keys"]["p256dh"], r["keys"]["auth"], ("breaking",)
                ),
                1.0,
            )
        for n in range(2):
            self.stores.alerts.create_alert(draft(), f"k{n}", AlertStatus.SENT, 3, 1.0)

    def close(self) -> None:
        self.engine.dispose()


@pytest.fixture
def sqlite_publisher(tmp_path: Path, standin: PushStandin) -> Iterator[Publisher]:
    var = tmp_path / "var"
    env = make_env(var, f"sqlite:///{var}/newsflash.db", REDIS_URL, new_vapid_pem())
    publisher = Publisher(env, standin)
    yield publisher
    publisher.close()


def manifest_of(backup: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((backup / "manifest.json").read_text())
    return data


def send_through_standin(
    settings: Settings, standin: PushStandin, reader: dict[str, Any]
) -> int | None:
    """One alert to a restored subscription, signed with the key the restored settings load."""
    engine = make_engine(settings.database_url)
    try:
        row = SqlStores.build(engine, settings.topics).subscriptions.get_by_endpoint(
            reader["endpoint"]
        )
    finally:
        engine.dispose()
    assert row is not None, "the reader is not in the restored database"
    sender = Http11PushSender(
        load_signer(settings), SenderConfig(concurrency=4, allow_loopback=True)
    )
    answers: list[PushResult] = []
    try:
        payload = json.dumps({"id": "1", "title": "Restored", "body": "b"}).encode()
        message = PushMessage(
            row.id, row.endpoint, row.p256dh, row.auth, payload, 120, "high", "s1"
        )
        sender.submit([message], answers.append, lambda: False).wait()
    finally:
        sender.close()
    got = standin.deliveries_for(reader["endpoint"])
    assert got and got[-1].payload is not None and got[-1].payload["title"] == "Restored"
    return answers[0].status


def test_sqlite_backup_while_writing_then_restore_onto_a_fresh_machine(
    sqlite_publisher: Publisher, tmp_path: Path, standin: PushStandin
) -> None:
    p = sqlite_publisher
    stop = threading.Event()
    written = [0]

    def keep_signing_up() -> None:
        while not stop.is_set():
            p.stores.subscriptions.upsert(sub(10_000 + written[0]), 2.0)
            written[0] += 1

    writer = threading.Thread(target=keep_signing_up)
    writer.start()
    try:
        while written[0] < 20:
            stop.wait(0.01)
        before = written[0]
        backup = tmp_path / "backup"
        made = newsflash("backup", "--out", str(backup), env=p.env)
        during = written[0] - before
    finally:
        stop.set()
        writer.join()
    assert made.returncode == 0, made.stderr
    assert during > 0, "nothing was written while the backup ran: the test proves nothing"
    assert p.env["NEWSFLASH_SECRET_KEY"] not in made.stdout + made.stderr

    assert stat.S_IMODE(backup.stat().st_mode) == 0o700
    files = [f for f in backup.rglob("*") if f.is_file()]
    assert {stat.S_IMODE(f.stat().st_mode) for f in files} == {0o600}
    manifest = manifest_of(backup)
    db = manifest["database"]
    assert (
        db["engine"] == "sqlite"
        and db["migration_revision"] == db["migration_head_of_this_version"]
    )
    assert 3 + before <= db["subscriptions"] <= 3 + written[0] and db["alerts"] == 2
    assert manifest["not_copied"] == {
        "NEWSFLASH_SECRET_KEY": "from environment, not copied",
        "NEWSFLASH_CMS_WEBHOOK_SECRET": "from environment, not copied",
    }
    text = (backup / "manifest.json").read_text()
    assert p.env["NEWSFLASH_SECRET_KEY"] not in text and "PRIVATE KEY" not in text
    assert standin.origin not in text + made.stdout  # no endpoint anywhere
    copy = sqlite3.connect(backup / "database.sqlite3")
    assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert copy.execute("SELECT count(*) FROM subscriptions").fetchone()[0] == db["subscriptions"]
    copy.close()

    var2 = tmp_path / "var2"
    env2 = target_env(var2, f"sqlite:///{var2}/newsflash.db")
    restored = newsflash("restore", str(backup), env=env2)
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert "db upgrade" not in restored.stdout  # same revision: nothing to migrate
    settings2 = settings_from(env2)
    assert load_signer(settings2).public_key_b64 == manifest["vapid_public_key"]
    assert manifest["vapid_public_key"] == load_signer(p.settings).public_key_b64
    assert stat.S_IMODE((var2 / "vapid_private.pem").stat().st_mode) == 0o600
    engine2 = make_engine(settings2.database_url)
    with engine2.connect() as conn:
        from sqlalchemy import text as sql

        counts = [
            conn.execute(sql(f"SELECT count(*) FROM {t}")).scalar()
            for t in ("subscriptions", "alerts")
        ]
    engine2.dispose()
    assert counts == [db["subscriptions"], db["alerts"]]
    assert send_through_standin(settings2, standin, p.readers[0]) == 201


def test_sqlite_refusals_are_one_line_and_change_nothing(
    sqlite_publisher: Publisher, tmp_path: Path
) -> None:
    p = sqlite_publisher
    backup = tmp_path / "backup"
    assert newsflash("backup", "--out", str(backup), env=p.env).returncode == 0

    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "notes.txt").write_text("mine")
    refused(newsflash("backup", "--out", str(taken), env=p.env), "not empty")
    assert tree(taken) == {"notes.txt": hashlib.sha256(b"mine").hexdigest()}

    var2 = tmp_path / "var2"
    env2 = target_env(var2, f"sqlite:///{var2}/newsflash.db")
    for damage in ("database.sqlite3", "keys/vapid_private_key_file"):
        bad = tmp_path / f"bad-{damage.replace('/', '-')}"
        shutil.copytree(backup, bad)
        with (bad / damage).open("r+b") as f:  # truncated by one byte
            f.truncate((bad / damage).stat().st_size - 1)
        refused(newsflash("restore", str(bad), env=env2), "damaged", damage, "nothing restored")
        assert tree(var2) == {}

    source_before = tree(p.settings.var_dir)
    refused(newsflash("restore", str(backup), env=p.env), "already has", "--force")
    assert tree(p.settings.var_dir) == source_before

    # A machine where `newsflash init` already made another key (an empty database, though).
    assert newsflash("init", env={**env2, "NEWSFLASH_SECRET_KEY": ""}).returncode == 0
    assert newsflash("db", "upgrade", env=env2).returncode == 0
    other = tree(var2)
    refused(newsflash("restore", str(backup), env=env2), "VAPID", "different key", "--force")
    assert tree(var2) == other

    forced = newsflash("restore", "--force", str(backup), env=env2)
    assert forced.returncode == 0, forced.stderr
    assert load_signer(settings_from(env2)).public_key_b64 == load_signer(p.settings).public_key_b64
    kept = list(var2.glob("vapid_private.pem.before-restore-*"))
    assert (
        len(kept) == 1
        and hashlib.sha256(kept[0].read_bytes()).hexdigest() == other["vapid_private.pem"]
    )


def test_restore_of_an_older_revision_says_to_upgrade(
    sqlite_publisher: Publisher, tmp_path: Path
) -> None:
    """Restore leaves the schema as the backup had it and names the command to run."""
    backup = tmp_path / "backup"
    assert newsflash("backup", "--out", str(backup), env=sqlite_publisher.env).returncode == 0
    manifest = manifest_of(backup)
    copy = sqlite3.connect(backup / "database.sqlite3")
    copy.execute("UPDATE alembic_version SET version_num = '0016'")
    copy.commit()
    copy.close()
    about = manifest["files"]["database.sqlite3"]
    data = (backup / "database.sqlite3").read_bytes()
    about["bytes"], about["sha256"] = len(data), hashlib.sha256(data).hexdigest()
    (backup / "manifest.json").write_text(json.dumps(manifest))
    var2 = tmp_path / "var2"
    env2 = target_env(var2, f"sqlite:///{var2}/newsflash.db")
    restored = newsflash("restore", str(backup), env=env2)
    assert restored.returncode == 0, restored.stderr
    assert "migration 0016" in restored.stdout and "db upgrade` before starting" in restored.stdout


@pytest.fixture
def pg_tools() -> None:
    if shutil.which("pg_dump") is None or shutil.which("pg_restore") is None:
        message = "pg_dump/pg_restore are not on PATH (apt-get install postgresql-client)"
        if CI:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)


@pytest.fixture
def pg_urls(postgres_available: bool, pg_tools: None) -> Iterator[tuple[str, str]]:
    urls = (create_pg_database(), create_pg_database())
    yield urls
    for url in urls:
        drop_pg_database(url)


def test_postgres_backup_and_restore_into_another_database(
    pg_urls: tuple[str, str], tmp_path: Path, standin: PushStandin
) -> None:
    source_url, target_url = pg_urls
    var = tmp_path / "var"
    env = make_env(var, source_url, REDIS_URL, new_vapid_pem())
    p = Publisher(env, standin)
    try:
        for n in range(50):
            p.stores.subscriptions.upsert(sub(n), 2.0)
    finally:
        p.close()
    backup = tmp_path / "backup"
    made = newsflash("backup", "--out", str(backup), env=env)
    assert made.returncode == 0, made.stderr
    db = manifest_of(backup)["database"]
    assert (db["engine"], db["subscriptions"], db["alerts"]) == ("postgresql", 53, 2)
    assert stat.S_IMODE((backup / "database.pgdump").stat().st_mode) == 0o600

    var2 = tmp_path / "var2"
    env2 = target_env(var2, target_url)
    restored = newsflash("restore", str(backup), env=env2)
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert "53 subscriptions, 2 alerts" in restored.stdout
    assert send_through_standin(settings_from(env2), standin, p.readers[1]) == 201
    refused(newsflash("restore", str(backup), env=env2), "already has 53 subscriptions")


def test_pg_tools_get_the_password_only_through_the_environment() -> None:
    from core.adapters.dumps import libpq

    conninfo, env = libpq(
        "postgresql+psycopg://news:s3cret-pw@127.0.0.1:5432/newsflash?sslmode=require"
    )
    assert conninfo == "postgresql://news@127.0.0.1:5432/newsflash?sslmode=require"
    assert env["PGPASSWORD"] == "s3cret-pw"


def test_a_database_nobody_answers_fails_backup_in_one_line_with_no_password(
    tmp_path: Path, pg_tools: None
) -> None:
    url = "postgresql+psycopg://news:s3cret-pw@127.0.0.1:9/newsflash"
    env = make_env(tmp_path / "var", url, REDIS_URL, new_vapid_pem())
    result = newsflash("backup", "--out", str(tmp_path / "backup"), env=env)
    refused(result, "NEWSFLASH_DATABASE_URL")
    assert "s3cret-pw" not in result.stderr
    assert not (tmp_path / "backup").exists()  # the half-made directory is gone


def test_sqlite_restore_refuses_while_the_database_is_open_elsewhere(
    sqlite_publisher: Publisher, tmp_path: Path
) -> None:
    """A file renamed under a running web app or worker would be overwritten by its WAL."""
    p = sqlite_publisher
    backup = tmp_path / "backup"
    assert newsflash("backup", "--out", str(backup), env=p.env).returncode == 0
    with p.engine.connect() as running:  # a process with the database open, as the web app has
        running.exec_driver_sql("SELECT count(*) FROM subscriptions").scalar()
        before = tree(p.settings.var_dir)
        result = newsflash("restore", "--force", str(backup), env=p.env)
        refused(result, "in use", "stop the web app, workers and beat", "nothing restored")
        assert tree(p.settings.var_dir) == before


# A restore run in a PID namespace of its own sees no other process in /proc, as in a container
# of its own (`docker compose run`) next to the web app's.
OWN_PID_NAMESPACE = (
    ("unshare", "--pid", "--fork", "--mount-proc"),
    ("unshare", "--user", "--map-root-user", "--pid", "--fork", "--mount-proc"),
)


def _own_pid_namespace() -> tuple[str, ...]:
    for wrap in OWN_PID_NAMESPACE:
        try:
            seen = subprocess.run([*wrap, "ls", "/proc"], capture_output=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if seen.returncode == 0 and seen.stdout.split().count(b"1") == 1:
            return wrap
    pytest.skip("unshare cannot make a PID namespace here (util-linux; needs root or user ns)")


def test_sqlite_restore_sees_the_database_held_by_a_process_it_cannot_see(
    sqlite_publisher: Publisher, tmp_path: Path
) -> None:
    """The web app in another container, or run by another user: /proc does not show it, but
    its connection's hold on the WAL index keeps the database in WAL mode, and restore stops
    there; once it lets go the restore goes on."""
    p = sqlite_publisher
    backup = tmp_path / "backup"
    assert newsflash("backup", "--out", str(backup), env=p.env).returncode == 0
    wrap = _own_pid_namespace()
    database = dumps.sqlite_path(p.settings.database_url)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_OPEN, str(database)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        before = tree(p.settings.var_dir)
        result = run_cli(
            ["restore", "--force", str(backup)], p.env, 120, drop=("NEWSFLASH_", "PG"), wrap=wrap
        )
        refused(result, "in use", "stop the web app, workers and beat", "nothing restored")
        assert tree(p.settings.var_dir) == before
    finally:
        holder.communicate("", timeout=10)
    assert newsflash("restore", "--force", str(backup), env=p.env).returncode == 0


def test_restore_refuses_while_a_worker_answers_on_the_broker(
    sqlite_publisher: Publisher, tmp_path: Path
) -> None:
    """An idle worker holds no database connection (SQLite's pool is NullPool), so no file check
    sees it; left running, it would resend batches whose ledger rows the restore takes back.
    It answers the broker's ping, and restore stops there, for either engine."""
    p = sqlite_publisher
    backup = tmp_path / "backup"
    assert newsflash("backup", "--out", str(backup), env=p.env).returncode == 0
    worker = start_worker(p.env, tmp_path / "logs", name="restore-guard", concurrency=1)
    try:
        before = tree(p.settings.var_dir)
        result = newsflash("restore", "--force", str(backup), env=p.env)
        refused(result, "1 worker(s) answer on the broker", "restore-guard", "nothing restored")
        assert tree(p.settings.var_dir) == before
    finally:
        worker.stop()
    restored = newsflash("restore", "--force", str(backup), env=p.env)
    assert restored.returncode == 0, restored.stderr


# A process with the database open as the web app has it: read once, then idle until told.
HOLD_OPEN = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute("SELECT count(*) FROM subscriptions").fetchall()  # and done: no open read
print("open", flush=True)
sys.stdin.read()
"""


@pytest.mark.parametrize("process", ["web", "beat"])
def test_sqlite_restore_refuses_while_an_idle_web_app_or_beat_runs(
    process: str, sqlite_publisher: Publisher, tmp_path: Path
) -> None:
    """Between requests a web process holds no SQLite connection (NullPool), and neither it nor
    beat answers the workers' ping, so neither check above sees them. Each holds the
    database's lock file for as long as it runs, and restore stops there."""
    p = sqlite_publisher
    backup = tmp_path / "backup"
    assert newsflash("backup", "--out", str(backup), env=p.env).returncode == 0
    logs = tmp_path / "logs"
    running = start_web(p.env, logs, free_port()) if process == "web" else start_beat(p.env, logs)

    # Beat keeps writing its own schedule file into var/ meanwhile.
    def var_files() -> dict[str, str]:
        files = tree(p.settings.var_dir)
        return {k: v for k, v in files.items() if not k.startswith("celerybeat-schedule")}

    try:
        before = var_files()
        result = newsflash("restore", "--force", str(backup), env=p.env)
        refused(
            result,
            "in use by a running web app, worker or beat",
            "stop the web app, workers and beat",
            "nothing restored",
        )
        assert var_files() == before
    finally:
        running.stop()
    restored = newsflash("restore", "--force", str(backup), env=p.env)
    assert restored.returncode == 0, restored.stderr


def test_postgres_restore_refuses_while_the_web_app_is_connected(
    pg_urls: tuple[str, str], tmp_path: Path, standin: PushStandin
) -> None:
    """The web app keeps its PostgreSQL connections in its pool between requests; restore finds
    them by name in pg_stat_activity, wherever they come from, and replaces nothing (the test's
    own connections, named `newsflash cli`, do not count)."""
    env = make_env(tmp_path / "var", pg_urls[0], REDIS_URL, new_vapid_pem())
    p = Publisher(env, standin)
    backup = tmp_path / "backup"
    assert newsflash("backup", "--out", str(backup), env=env).returncode == 0
    for n in range(5):
        p.stores.subscriptions.upsert(sub(n), 3.0)  # after the backup: 8 readers now
    web = start_web(env, tmp_path / "logs", free_port(), processes=2)
    try:
        result = newsflash("restore", "--force", str(backup), env=env)
        refused(result, "from running Newsflash processes (web on 127.0.0.1: ", "nothing restored")
        assert dumps.live_snapshot(pg_urls[0]).subscriptions == 8
    finally:
        web.stop()
        p.close()
    restored = newsflash("restore", "--force", str(backup), env=env)
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert "3 subscriptions, 2 alerts" in restored.stdout


WAIT_FOR_RESTORE = """
import logging, sys
from core.adapters import db_holders
logging.basicConfig(stream=sys.stdout, format="%(message)s")
db_holders.hold(sys.argv[1], "web")
print("holding", flush=True)
sys.stdin.read()
"""


def test_a_process_started_during_a_sqlite_restore_waits_for_it_to_end(tmp_path: Path) -> None:
    """A web app or worker started while a restore runs must not open the database it is
    replacing: it says it waits, and goes on once the restore lets go."""
    url = f"sqlite:///{tmp_path}/newsflash.db"
    with db_holders.alone(url):
        starter = subprocess.Popen(
            [sys.executable, "-c", WAIT_FOR_RESTORE, url],
            cwd=Path(__file__).resolve().parents[2],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert starter.stdout is not None
        first = starter.stdout.readline().strip()
        assert first == "the web waits for a restore of the database to finish", first
    try:
        assert starter.stdout.readline().strip() == "holding"
        refusal = pytest.raises(dumps.DumpError, match="in use by a running web app")
        with refusal, db_holders.alone(url):
            pass
    finally:
        starter.communicate("", timeout=10)
    with db_holders.alone(url):  # the holder has exited: its lock went with it
        pass


def test_postgres_restore_stops_waiting_for_a_forgotten_transaction_and_names_it(
    pg_urls: tuple[str, str], tmp_path: Path, standin: PushStandin
) -> None:
    """The dump turns lock_timeout off, so a psql session left in an open transaction would keep
    pg_restore waiting for hours. It is cancelled after its wait and rolled back, and the
    error names the session; once that session ends, the same restore goes through."""
    import psycopg

    url = pg_urls[0]
    env = make_env(tmp_path / "var", url, REDIS_URL, new_vapid_pem())
    p = Publisher(env, standin)
    backup = tmp_path / "backup"
    assert newsflash("backup", "--out", str(backup), env=env).returncode == 0
    for n in range(5):
        p.stores.subscriptions.upsert(sub(n), 3.0)
    p.close()
    conninfo, _ = client_tools.libpq(url)
    with psycopg.connect(conninfo, application_name="psql") as forgotten:
        forgotten.execute("SELECT count(*) FROM subscriptions").fetchone()  # and left open
        with pytest.raises(dumps.DumpError) as stopped:
            dumps.restore_postgres(backup / "database.pgdump", url, lock_wait_s=1.0)
        said = str(stopped.value)
        assert said.startswith("pg_restore waited 1 s for a lock held by psql (pid "), said
        assert "idle in transaction" in said and "pg_terminate_backend" in said, said
        assert forgotten.execute("SELECT count(*) FROM subscriptions").fetchone() == (8,)
    assert dumps.live_snapshot(url).subscriptions == 8  # rolled back: nothing restored
    dumps.restore_postgres(backup / "database.pgdump", url, lock_wait_s=1.0)
    assert dumps.live_snapshot(url).subscriptions == 3


@pytest.mark.parametrize(
    "stop", [signal.SIGTERM, signal.SIGHUP, signal.SIGKILL], ids=["SIGTERM", "SIGHUP", "SIGKILL"]
)
@pytest.mark.parametrize("command", ["backup", "restore"])
def test_a_pg_backup_or_restore_stopped_from_outside_stops_its_tool_and_leaves_nothing(
    command: str,
    stop: signal.Signals,
    pg_urls: tuple[str, str],
    tmp_path: Path,
    standin: PushStandin,
) -> None:
    """SIGTERM (systemd, `timeout`) or SIGHUP (a closed SSH session) to `newsflash backup` or
    `restore` while pg_dump / pg_restore waits for a lock: the command exits at once with
    the shell's status for the signal, the tool and its server session are gone (not left
    waiting, holding the locks they have), a backup leaves no directory and a restore changes
    nothing. Before, the command died on the spot and its tool ran on. SIGKILL (kill -9, the
    OOM killer), which the command cannot see: its tool still stops with it (the kernel's
    parent-death signal) and the restore is rolled back; what it had written stays."""
    import psycopg

    url = pg_urls[0]
    env = make_env(tmp_path / "var", url, REDIS_URL, new_vapid_pem())
    p = Publisher(env, standin)
    backup = tmp_path / "backup"
    if command == "restore":
        assert newsflash("backup", "--out", str(backup), env=env).returncode == 0
        for n in range(5):
            p.stores.subscriptions.upsert(sub(n), 3.0)
        args, tool, marker = ["restore", str(backup), "--force"], "pg_restore", str(backup)
    else:
        args, tool, marker = ["backup", "--out", str(backup)], "pg_dump", str(backup)
    p.close()
    conninfo, _ = client_tools.libpq(url)

    def waiting() -> int:
        return len(pg_sessions(url, "wait_event_type = 'Lock'"))

    with psycopg.connect(conninfo, application_name="psql") as holder:
        holder.execute("LOCK TABLE audit_log IN ACCESS EXCLUSIVE MODE")
        with cli_running(args, env, drop=("NEWSFLASH_", "PG")) as cli:
            wait_until(lambda: waiting() == 1, 30, f"{tool} to wait for the lock")
            (tool_pid,) = processes_named(tool, marker)
            stop_cli(cli, stop)
        killed = stop == signal.SIGKILL
        wait_until(lambda: tool_pid not in processes_named(tool, marker), 10, f"{tool} to stop")
        wait_until(lambda: waiting() == 0, 10, f"{tool}'s session to end")
        holder.rollback()
    if command == "backup":
        assert killed or not backup.exists()
    else:
        assert dumps.live_snapshot(url).subscriptions == 8  # rolled back: nothing restored


def test_a_cancelled_tool_that_does_not_exit_is_killed_after_a_grace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once the watch has cancelled the tool's statement, the tool gets STOP_GRACE_S to exit,
    not the 6 h a running restore gets: a pg_restore that hangs anyway is killed and the
    restore fails with the watch's reason."""
    import time

    monkeypatch.setattr(client_tools, "STOP_GRACE_S", 1.0)
    pid_file = tmp_path / "pid"
    stubborn = (
        "import os, signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        f"open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(120)"
    )
    asked: list[float] = []

    def watch() -> str | None:
        asked.append(time.monotonic())
        return "pg_restore waited 30 s for a lock held by psql" if len(asked) > 1 else None

    started = time.monotonic()
    with pytest.raises(dumps.DumpError) as stopped:
        client_tools.run_pg([sys.executable, "-c", stubborn], {}, "pg_restore", watch)
    took = time.monotonic() - started
    said = str(stopped.value)
    assert said.startswith("pg_restore waited 30 s for a lock held by psql; "), said
    assert said.endswith("pg_restore did not exit once cancelled and was killed"), said
    assert len(asked) == 2 and 1.0 <= took < 10, (asked, took)  # asked no more once it said stop
    pid = int(pid_file.read_text())
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text()


class _Interrupted(BaseException):
    """What Celery's soft time limit or Ctrl-C raises in the waiting thread."""


@pytest.mark.parametrize("obeys_sigterm", [True, False])
def test_an_interrupted_tool_never_outlives_the_call_and_its_session_is_ended(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, obeys_sigterm: bool
) -> None:
    """An interruption while a PostgreSQL tool runs (here from the watch, as a signal's
    exception arrives in the same wait) stops the tool: SIGTERM, then SIGKILL after
    TERM_GRACE_S for one that ignores it; its server session is ended by name; the
    interruption itself goes on up unchanged, for the caller to delete the copy."""
    import time

    monkeypatch.setattr(client_tools, "TERM_GRACE_S", 1.0)
    ended: list[tuple[str, str]] = []
    monkeypatch.setattr(
        client_tools, "end_sessions", lambda url, name: ended.append((url, name)) or 1
    )
    pid_file = tmp_path / "pid"
    ignore = "signal.signal(signal.SIGTERM, signal.SIG_IGN); " if not obeys_sigterm else ""
    tool = (
        f"import os, signal, time; {ignore}"
        f"open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(120)"
    )

    def watch() -> str | None:
        if pid_file.exists() and pid_file.read_text():
            raise _Interrupted
        return None

    started = time.monotonic()
    env = {"PGAPPNAME": "newsflash backup 1-abc"}
    with pytest.raises(_Interrupted):
        client_tools.run_pg(
            [sys.executable, "-c", tool], env, "pg_dump", watch, url="postgresql://x"
        )
    took = time.monotonic() - started
    pid = int(pid_file.read_text())
    assert not Path(f"/proc/{pid}").exists(), "the tool outlived the call"  # stopped and reaped
    assert ended == [("postgresql://x", "newsflash backup 1-abc")]
    assert took < (1.0 if obeys_sigterm else 10.0) + 5, took


def test_end_sessions_ends_only_the_named_sessions_of_this_database(postgres_url: str) -> None:
    import psycopg

    conninfo, _env = client_tools.libpq(postgres_url)
    with (
        psycopg.connect(conninfo, application_name="newsflash backup 7-abc") as named,
        psycopg.connect(conninfo, application_name="newsflash worker") as other,
    ):
        assert client_tools.end_sessions(postgres_url, "newsflash backup 7-abc") == 1
        with pytest.raises(psycopg.OperationalError):
            named.execute("SELECT 1")
        assert other.execute("SELECT 1").fetchone() == (1,)
    assert client_tools.end_sessions(postgres_url, "newsflash backup 7-abc") == 0
    # Nobody answers: logged, not raised (the caller is handling another failure already).
    assert client_tools.end_sessions("postgresql+psycopg://u@127.0.0.1:9/none", "x") == 0


def test_a_lock_file_that_cannot_be_opened_never_stops_a_process_and_refuses_a_restore(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Say another user's folder, or something else by that name: the web app still starts
    (unseen by restore, which it says), and restore refuses in one line rather than guess."""
    url = f"sqlite:///{tmp_path}/newsflash.db"
    (tmp_path / "newsflash.db.inuse").mkdir()
    with caplog.at_level("WARNING", logger="newsflash.db"):
        db_holders.hold(url, "cli")  # this process's role stays the default
    assert "newsflash.db.inuse not held (IsADirectoryError)" in caplog.text
    refusal = pytest.raises(dumps.DumpError, match=r"cannot open .*newsflash\.db\.inuse")
    with refusal, db_holders.alone(url):
        pass
