"""A renewal (the browser's new subscription takes over the reader's record) is the same reader,
on SQLite and PostgreSQL: a live move and a restore from a tombstone both leave the audience
health's gains and losses as they were, and when the new subscription had signed up afresh
first (a gain then), both leave exactly one loss, so gains minus losses stay the audience's."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from core import audience_health
from core.adapters.health_sql import SqlHealthQueries
from core.adapters.stores_sql import SqlStores
from core.model import AlertStatus, LedgerStatus
from core.ports import LedgerEntry
from tests.support.reader_api import Api, api_per_engine, browser_sub
from tests.support.samples import draft

TZ = ZoneInfo("Africa/Nairobi")


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def api(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, vapid_pem: str
) -> Iterator[Api]:
    yield from api_per_engine(
        request, tmp_path_factory, vapid_pem, "renewal", PUBLIC_ORIGINS="https://news.example"
    )


def _week(api: Api) -> dict[str, Any]:
    """The week under way as /ops, the health API and /metrics show it, and today's total."""
    health = audience_health.report(SqlHealthQueries(api.engine), time.time(), TZ, weeks=2)
    week = audience_health.latest(health)
    assert week is not None
    return {
        "subscribers": health["subscribers"],
        "gained": week["gained"],
        "lost": week["lost_total"],
        "moved": week["lost"]["moved"],
        "gone": week["lost"]["gone"],
        "renewed": week["renewed"],
    }


def _renewed() -> dict[str, Any]:
    """The browser's new subscription as the service worker posts it: no topics."""
    new = browser_sub()
    del new["topics"]
    return new


def _gone(api: Api, reader: dict[str, Any]) -> None:
    """An alert's push comes back 410: the ledger write deletes the reader, with a tombstone."""
    stores: SqlStores = api.app.extensions["newsflash"].container.sql
    now = time.time()
    alert, _ = stores.alerts.create_alert(draft(), f"k{now}", AlertStatus.SENDING, 0, now)
    sub_id = api.row(reader["endpoint"])["id"]  # type: ignore[index]
    entry = LedgerEntry(sub_id, LedgerStatus.GONE, 410, 1, push_host="fcm.googleapis.com")
    stores.ledger.record(alert.id, [entry], [sub_id], now, None)
    assert api.row(reader["endpoint"]) is None


def _move(api: Api, old: dict[str, Any], new: dict[str, Any]) -> Any:
    return api.post(
        "/api/v1/subscriptions/change",
        {"oldEndpoint": old["endpoint"], "oldAuth": old["keys"]["auth"], "subscription": new},
    )


@pytest.mark.parametrize("path", ["live", "tombstone"])
def test_a_renewal_is_neither_a_loss_nor_a_sign_up(api: Api, path: str) -> None:
    old = browser_sub(topics=["politics"], lang="sw")
    assert api.post("/api/v1/subscriptions", old).status_code == 201
    before = _week(api)
    if path == "tombstone":
        _gone(api, old)  # the move waited while an alert found the old endpoint gone
    new = _renewed()
    moved = _move(api, old, new)
    assert moved.status_code == 201, moved.json
    assert (moved.json["topics"], moved.json["lang"]) == (["politics"], "sw")
    assert api.row(old["endpoint"]) is None
    after = _week(api)
    how = "moved" if path == "live" else "restored"
    assert after["renewed"][how] == before["renewed"][how] + 1  # counted as a renewal, ...
    after["renewed"][how] -= 1
    assert after == before  # ... and as nothing else


@pytest.mark.parametrize("path", ["live", "tombstone"])
def test_a_renewal_onto_a_fresh_sign_up_leaves_one_loss(api: Api, path: str) -> None:
    """The browser's new subscription signed up afresh before the move (counted as gained):
    the reader was counted twice, and the move leaves one of them lost."""
    old = browser_sub(topics=["sport"])
    assert api.post("/api/v1/subscriptions", old).status_code == 201
    before = _week(api)
    if path == "tombstone":
        _gone(api, old)
    new = _renewed()
    assert api.post("/api/v1/subscriptions", new).status_code == 201  # default topics
    moved = _move(api, old, new)
    assert moved.status_code == 200, moved.json
    assert moved.json["topics"] == ["sport"]
    after = _week(api)
    assert after["subscribers"] == before["subscribers"]
    assert (after["gained"], after["lost"]) == (before["gained"] + 1, before["lost"] + 1)
    lost_as = "moved" if path == "live" else "gone"
    assert after[lost_as] == before[lost_as] + 1
    assert after["renewed"] == before["renewed"]  # a loss, not a renewal


def test_migration_0017_adds_the_renewal_counters_and_takes_them_away(database_url: str) -> None:
    """Upgrade keeps an hour's gains and losses and counts no renewals for it; downgrade drops
    the two columns and keeps the rest; upgrading again works (SQLite and PostgreSQL)."""
    from alembic import command
    from sqlalchemy import inspect, text

    from core.adapters import migrate
    from core.adapters.sql import make_engine

    engine = make_engine(database_url)
    try:
        migrate.upgrade(engine, "0016")
        with engine.begin() as conn:
            conn.execute(
                text("INSERT INTO subscription_churn (hour, created, lost) VALUES (7, 3, 1)")
            )
        migrate.upgrade(engine)
        with engine.connect() as conn:
            row = conn.execute(
                text("SELECT created, lost, moved, restored FROM subscription_churn")
            )
            assert row.one() == (3, 1, 0, 0)
        cfg = migrate.alembic_config()
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0016")
        columns = {c["name"] for c in inspect(engine).get_columns("subscription_churn")}
        assert columns == {"hour", "created", "lost"}
        with engine.connect() as conn:
            row = conn.execute(text("SELECT hour, created, lost FROM subscription_churn"))
            assert row.one() == (7, 3, 1)
        migrate.upgrade(engine)
        assert migrate.current_revision(engine) == migrate.head_revision()
    finally:
        engine.dispose()
