"""A database that refuses writes: its disk full (SQLite and PostgreSQL on a tmpfs filled up),
or read-only (the SQLite file's filesystem remounted read-only, as the kernel does after a disk
error; a PostgreSQL database set read-only, as a standby is). Each costs a write a 503 saying
nothing was stored, the log line and metric name the trouble, reads go on (PostgreSQL), and
everything works again once it is mended. /ops, /metrics and beat's alarm round see it too,
without Prometheus: every engine tells Redis of each refusal (db_errors.witness).

Before, each was "database unavailable" in the log and "the database is not answering; try
again in 5 s" to the caller: a disk filled up after months read as a network outage."""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from core import ops_alarms
from core.accounts import Role
from core.adapters import db_errors, metrics, migrate
from core.adapters.accounts_sql import SqlAccounts
from core.adapters.sql import make_engine
from core.ops import REFUSED_WINDOW_S
from service.app import create_app
from tests.reliability.harness import PostgresServer, SmallDisk
from tests.support.cli import run_cli
from tests.support.newsroom import PASSWORD, csrf_of
from tests.support.newsroom_site import logged_in
from tests.support.services import (
    create_pg_database,
    drop_pg_database,
    make_env,
    new_vapid_pem,
    set_pg_read_only,
    settings_from,
)

ALARM = "database_refuses_writes"
EDITOR = "amina@news.example"
KEYS = {
    "p256dh": "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM",
    "auth": "tBHItJI5svbpez7KI4CCXg",
}
REFUSED = "the service cannot store anything just now; nothing was stored; try again later"
SAID = {
    "disk": "database refuses writes: its disk is full or failing",
    "read_only": "database refuses writes: it is read-only",
}


class Site:
    """The web app in this process on `url`, with an API token and a signed-out browser."""

    def __init__(self, url: str, redis_url: str) -> None:
        self.engine = make_engine(url)
        migrate.upgrade(self.engine)
        accounts = SqlAccounts(self.engine)
        self.token = accounts.create_token("cms", Role.EDITOR)
        accounts.create_user(EDITOR, PASSWORD, Role.EDITOR)
        env = make_env(
            Path(tempfile.mkdtemp()),
            url,
            redis_url,
            new_vapid_pem(),
            BROKER_URL=redis_url,
            RATE_LIMIT_SUBSCRIBE="100000 per minute",
        )
        self.env = env
        self.app = create_app(settings_from(env))
        self.client: FlaskClient = self.app.test_client()
        # A caller of its own: the rate limits count in the shared Redis, across tests.
        self.client.environ_base["REMOTE_ADDR"] = (
            f"2001:db8:{os.getpid():x}:{id(self) % 65536:x}::1"
        )
        self.readers = 0

    def subscribe(self) -> Any:
        self.readers += 1
        endpoint = f"https://fcm.googleapis.com/fcm/send/reader-{self.readers}"
        body = {"endpoint": endpoint, "keys": KEYS, "topics": ["breaking"]}
        return self.client.post("/api/v1/subscriptions", json=body)

    def publish(self) -> Any:
        body = {
            "title": "Flooding closes the Mombasa road",
            "body": "Police ask drivers to use the Voi bypass.",
            "url": f"http://127.0.0.1:8000/news/mombasa-road-{self.readers}",
            "topics": ["breaking"],
        }
        return self.client.post(
            "/api/v1/alerts", json=body, headers={"Authorization": f"Bearer {self.token}"}
        )

    def lookup(self) -> Any:  # a read: the manage page asks which topics reader 1 has
        body = {"endpoint": "https://fcm.googleapis.com/fcm/send/reader-1", "auth": KEYS["auth"]}
        return self.client.post("/api/v1/subscriptions/lookup", json=body)

    def signed_in_editor(self) -> FlaskClient:
        """Signed in a while ago: the next page refreshes the session's last use (a write)."""
        editor = logged_in(self.app, EDITOR)
        with self.engine.begin() as conn:
            conn.execute(text("UPDATE sessions SET last_seen_at = last_seen_at - 600"))
        return editor

    @property
    def kit(self) -> Any:  # the ops kit of the app as it is now
        return self.app.extensions["newsflash"].container.ops

    def alarm_round(self, at: float) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Beat's alarm round at `at`: the snapshot, and what it announced of ALARM."""
        kit = self.kit
        snap = ops_alarms.evaluate_alarms(kit.sources, kit.alarm_store, kit.thresholds, None, at)
        return snap, [e for e in snap["alarm_events"] if e["alarm"] == ALARM]

    def sign_in_page(self) -> Any:
        """A refused sign-in is written down (the audit log): the newsroom's page."""
        browser = self.app.test_client()
        token = csrf_of(browser.get("/editor/login").text)
        return browser.post(
            "/editor/login",
            data={"email": "nobody@news.example", "password": "wrong", "csrf_token": token},
        )


def _refusals(reason: str) -> Callable[[], float]:
    counter = metrics.metrics().web_unavailable.labels(reason)
    return lambda: float(counter._value.get())  # this process's own count


def _first_refusal(call: Callable[[], Any]) -> Any:
    """PostgreSQL fills the free room in a table's last pages before it needs the disk."""
    for _ in range(300):
        answer = call()
        if answer.status_code not in (201, 202):
            return answer
    raise AssertionError("300 writes stored on a disk with no room")


def _refuses_writes(
    site: Site, reason: str, caplog: pytest.LogCaptureFixture, postgres: bool = False
) -> None:
    """On PostgreSQL reads go on; SQLite opens its write-ahead log for every connection, so
    its reads are refused too. The newsroom's page for a refused sign-in (written down) where
    every write is refused: a full PostgreSQL still takes rows into a table's last page."""
    every_write = not (postgres and reason == "disk")
    counted = _refusals(reason)
    before = counted()
    caplog.clear()
    for call in (site.subscribe, site.publish):
        refused = _first_refusal(call)
        assert refused.status_code == 503, (refused.status_code, refused.text)
        assert refused.json["error"] == {"code": "unavailable", "field": None, "message": REFUSED}
        assert refused.headers["Retry-After"] == "60", "not 5 s: someone has to act first"
    if every_write:
        page = site.sign_in_page()
        assert page.status_code == 503 and "Cannot save right now" in page.text
        assert "nothing was saved" in page.text and "disk" not in page.text.lower()
    lines = [r for r in caplog.records if r.name == "newsflash.web"]
    assert lines and {(r.levelname, r.getMessage()) for r in lines} == {("ERROR", SAID[reason])}
    assert not [r for r in caplog.records if r.exc_info], "no traceback"
    said = {getattr(r, "database_said", "") for r in lines}  # the database's own words
    assert all(said) and not any("127.0.0.1" in w for w in said), said
    assert counted() >= before + 2 + every_write
    assert site.lookup().status_code == (200 if postgres else 503), "reads"


def _ops_sees_it(site: Site, reason: str) -> None:
    """What any process saw reaches /ops's snapshot, the gauge and beat's alarm, which fires at
    once with the reason."""
    assert site.kit.writer.drain(2.0), "the refusal was noted in Redis"
    snap, fired = site.alarm_round(time.time())
    refusing = snap["database"]["refuses_writes"]
    assert refusing["reason"] == reason and 0 <= refusing["last_s_ago"] < 60, refusing
    assert [(e["status"], e["detail"]) for e in fired] == [("firing", {"reason": reason})]
    assert "Nothing new is stored" in fired[0]["summary"]
    gauge = {m.name: m for m in metrics._gauge_families(snap)}["newsflash_database_refuses_writes"]
    assert {s.labels["reason"]: s.value for s in gauge.samples} == {
        r: float(r == reason) for r in db_errors.REFUSES_WRITES
    }


def _works_again(site: Site, refused: bool = True) -> None:
    """Mended: writes go through, and five minutes after the last refusal the alarm resolves."""
    assert site.subscribe().status_code == 201
    assert site.publish().status_code == 202
    snap, changed = site.alarm_round(time.time() + REFUSED_WINDOW_S + 1)
    assert snap["database"]["refuses_writes"] == {"reason": None, "last_s_ago": None}
    assert [e["status"] for e in changed] == (["resolved"] if refused else [])


@pytest.fixture
def sqlite_disk() -> Iterator[SmallDisk]:
    with SmallDisk(16) as disk:
        yield disk


@contextlib.contextmanager
def _broken(disk: SmallDisk, how: str) -> Iterator[None]:
    """The disk full, or its filesystem remounted read-only (SQLite then cannot open its
    write-ahead log); mended when the block ends."""
    if how == "full":
        disk.fill()
    else:
        disk.read_only(True)
    try:
        yield
    finally:
        if how == "full":
            disk.free()
        else:
            disk.read_only(False)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("how", ["full", "remounted read-only"])
def test_sqlite_on_a_disk_in_trouble(
    how: str, sqlite_disk: SmallDisk, clean_redis: str, caplog: pytest.LogCaptureFixture
) -> None:
    site = Site(f"sqlite:///{sqlite_disk.path}/newsflash.db", clean_redis)
    _works_again(site, refused=False)
    with _broken(sqlite_disk, how):
        _refuses_writes(site, "disk", caplog)
        _ops_sees_it(site, "disk")
    _works_again(site)


@pytest.mark.timeout(180)
def test_postgresql_on_a_full_disk(clean_redis: str, caplog: pytest.LogCaptureFixture) -> None:
    pg = PostgresServer()
    with SmallDisk(120, pg.root) as disk:
        try:
            pg.start()
            site = Site(pg.url, clean_redis)
            _works_again(site, refused=False)
            disk.fill()
            _refuses_writes(site, "disk", caplog, postgres=True)
            _ops_sees_it(site, "disk")
            disk.free()
            _works_again(site)
        finally:
            pg.stop()


@pytest.mark.timeout(120)
def test_postgresql_set_read_only(clean_redis: str, caplog: pytest.LogCaptureFixture) -> None:
    url = create_pg_database()
    try:
        site = Site(url, clean_redis)
        _works_again(site, refused=False)
        editor = site.signed_in_editor()
        set_pg_read_only(url, True)
        _refuses_writes(site, "read_only", caplog, postgres=True)
        _ops_sees_it(site, "read_only")
        # A signed-in editor still reads the newsroom (before: the session's refresh, a write,
        # turned every page into a 503).
        assert editor.get("/editor/scheduled").status_code == 200
        set_pg_read_only(url, False)
        _works_again(site)
    finally:
        drop_pg_database(url)


@pytest.mark.timeout(120)
def test_a_read_only_postgresql_is_named_before_anyone_writes(clean_redis: str) -> None:
    """A failover to a standby at night: the alarm round's own ping asks the database whether
    it takes writes, so ops hear of it before the morning's first publish is refused."""
    url = create_pg_database()
    try:
        site = Site(url, clean_redis)
        _works_again(site, refused=False)
        set_pg_read_only(url, True)
        # Web processes come and go (a deploy, gunicorn's recycling): one started after the
        # failover reads on and writes nothing (before, it rewrote the topics table at start,
        # was refused, and answered every request 503).
        site.app = create_app(settings_from(site.env))
        site.client = site.app.test_client()
        assert site.lookup().status_code == 200
        snap, fired = site.alarm_round(time.time())
        assert snap["database"]["ok"], "reads go on"
        assert snap["database"]["refuses_writes"] == {"reason": "read_only", "last_s_ago": 0.0}
        assert [(e["status"], e["detail"]) for e in fired] == [("firing", {"reason": "read_only"})]
        assert site.kit.telemetry.database_refusals() == {}, "nobody's write was refused"
        # A command that writes and ends at once: one line, and its refusal still reaches Redis.
        made = run_cli(["token", "create", "--name", "cms-2", "--role", "editor"], site.env)
        assert made.returncode != 0 and "Traceback" not in made.stderr, made.stderr
        assert len(made.stderr.strip().splitlines()) == 1, made.stderr
        assert "read_only" in site.kit.telemetry.database_refusals()
        set_pg_read_only(url, False)
        _works_again(site)  # resolved five minutes past the command's refusal too
    finally:
        set_pg_read_only(url, False)
        drop_pg_database(url)


def test_a_read_only_postgresql_refusal_reaches_every_caller_as_an_outage() -> None:
    """What the worker tasks retry (OperationalError, as for a database outage) and the CLI
    names in one line: psycopg files SQLSTATE 25006 under InternalError, which before
    failed a plan or deliver task outright, with a traceback, on every try."""
    url = create_pg_database()
    try:
        seen: list[str] = []
        engine = make_engine(url, on_refused=seen.append)
        migrate.upgrade(engine)
        set_pg_read_only(url, True)
        with pytest.raises(OperationalError) as refused, engine.begin() as conn:
            conn.execute(text("INSERT INTO topics (slug, bit) VALUES ('weather', 62)"))
        assert db_errors.trouble(refused.value) == "read_only"
        assert seen == ["read_only"], "told, as a worker's engine tells Redis"
        assert refused.value.orig is not None and refused.value.orig.sqlstate == "25006"  # type: ignore[attr-defined]
        engine.dispose()
    finally:
        set_pg_read_only(url, False)
        drop_pg_database(url)
