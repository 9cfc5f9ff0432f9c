"""The newsroom's SQL on SQLite and PostgreSQL: milestones by rank, schedule edits, receipts."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest
from sqlalchemy import insert

from config.settings import Topic
from core.adapters import migrate
from core.adapters import tables as t
from core.adapters.newsroom_sql import SqlNewsroom
from core.adapters.sql import make_engine
from core.adapters.stores_sql import SqlStores
from core.model import AlertDraft, AlertKind, AlertStatus, LedgerStatus, Urgency
from core.newsroom import build_report

TOPICS = (Topic("breaking", "Breaking", True), Topic("sport", "Sport"))


@pytest.fixture
def store(database_url: str) -> Iterator[SqlStores]:
    engine = make_engine(database_url)
    migrate.upgrade(engine)
    yield SqlStores.build(engine, TOPICS)
    engine.dispose()


@pytest.fixture
def rooms(store: SqlStores) -> SqlNewsroom:
    return store.newsroom


def _draft(**fields: object) -> AlertDraft:
    values: dict[str, object] = {
        "title": "Title",
        "body": "Body",
        "url": "https://news.example/a",
        "topics": ("breaking",),
        "urgency": Urgency.HIGH,
        "ttl_s": 3600,
        **fields,
    }
    return AlertDraft(**values)  # type: ignore[arg-type]


def test_milestones_are_the_kth_delivery_by_time_without_loading_rows(
    rooms: SqlNewsroom, store: SqlStores
) -> None:
    alert, _ = store.alerts.create_alert(_draft(), "nfkey", AlertStatus.QUEUED, 5000, 1000.0)
    rng = random.Random(7)
    rows = []
    for sid in range(1, 5001):
        status = LedgerStatus.DELIVERED if sid % 10 else rng.choice(list(LedgerStatus))
        rows.append(
            {
                "alert_id": alert.id,
                "subscription_id": sid,
                "status": int(status),
                "attempts": 1,
                "updated_at": 1000.0 + rng.random() * 60,
            }
        )
    with store.engine.begin() as conn:
        conn.execute(insert(t.deliveries), rows)
    delivered = sorted(r["updated_at"] for r in rows if r["status"] == LedgerStatus.DELIVERED)
    ranks = [1, 2500, len(delivered), len(delivered) + 1]
    found = rooms.delivery_milestones(alert.id, ranks)
    assert found == {
        1: delivered[0],
        2500: delivered[2499],
        len(delivered): delivered[-1],
    }
    assert rooms.delivery_milestones(alert.id + 1, [1]) == {}


def test_report_times_are_from_release_and_count_the_reachable_audience(
    rooms: SqlNewsroom, store: SqlStores
) -> None:
    alert, _ = store.alerts.create_alert(_draft(), "nfkey", AlertStatus.QUEUED, 12, 1000.0)
    rows = [
        {
            "alert_id": alert.id,
            "subscription_id": sid,
            "status": int(LedgerStatus.DELIVERED),
            "attempts": 1,
            "updated_at": 1000.0 + sid,
        }
        for sid in range(1, 11)
    ] + [
        {
            "alert_id": alert.id,
            "subscription_id": 11 + i,
            "status": int(LedgerStatus.GONE),
            "attempts": 1,
            "updated_at": 1001.0,
        }
        for i in range(2)
    ]
    with store.engine.begin() as conn:
        conn.execute(insert(t.deliveries), rows)
        conn.execute(
            t.alerts.update()
            .where(t.alerts.c.id == alert.id)
            .values(delivered=10, gone=2, clicked=3, status="sent")
        )
    fresh = store.alerts.get_alert(alert.id)
    assert fresh is not None
    report = build_report(fresh, rooms)
    assert report.reachable == 10
    assert [(m.percent, m.deliveries, m.after_s) for m in report.milestones] == [
        (50, 5, 5.0),
        (90, 9, 9.0),
        (100, 10, 10.0),
    ]
    assert report.click_through == pytest.approx(0.3)


def test_only_a_scheduled_alert_can_be_edited_and_corrections_are_linked(
    rooms: SqlNewsroom, store: SqlStores
) -> None:
    alert, _ = store.alerts.create_alert(
        _draft(send_at=5000.0), "nfkey", AlertStatus.SCHEDULED, 0, 1000.0
    )
    edited = _draft(title="New words", topics=("sport",), send_at=6000.0)
    assert rooms.edit_scheduled(alert.id, edited, None)
    fresh = store.alerts.get_alert(alert.id)
    assert fresh is not None
    assert (fresh.title, fresh.topics, fresh.send_at) == ("New words", ("sport",), 6000.0)
    store.alerts.set_status(alert.id, AlertStatus.QUEUED, 6000.0)
    assert not rooms.edit_scheduled(alert.id, _draft(title="Too late"), None)
    assert store.alerts.get_alert(alert.id).title == "New words"  # type: ignore[union-attr]

    fix, _ = store.alerts.create_alert(
        _draft(kind=AlertKind.CORRECTION, corrects_id=alert.id),
        "nfkey",
        AlertStatus.QUEUED,
        0,
        1001.0,
    )
    assert [a.id for a in rooms.corrections_of(alert.id)] == [fix.id]
    assert rooms.corrections_of(fix.id) == []


def test_a_webhook_id_is_accepted_once_until_it_ages_out(rooms: SqlNewsroom) -> None:
    assert rooms.record_webhook("msg_1", 1000.0, 900)
    assert not rooms.record_webhook("msg_1", 1001.0, 900)
    rooms.forget_webhook("msg_1")
    assert rooms.record_webhook("msg_1", 1002.0, 900)
    # Old receipts are swept by the next call once no accepted timestamp can replay them.
    assert rooms.record_webhook("msg_2", 2000.0, 900)
    assert rooms.record_webhook("msg_1", 2001.0, 900)
