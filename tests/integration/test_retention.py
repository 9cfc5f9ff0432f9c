"""Retention on SQLite and PostgreSQL: old ledgers and batch lists go in small chunks, the
counters and the report stay, recent alerts and alerts with a correction on its way keep theirs,
and audit entries, hourly counts and webhook receipts go after their own periods."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from sqlalchemy import Engine, func, insert, select, text

from core import delivery, retention
from core import reports as charts
from core.adapters import migrate
from core.adapters import tables as t
from core.adapters.audience_split_sql import SqlAudienceSplits
from core.adapters.hosts import MemoryHostHealth
from core.adapters.report_sql import SqlReports
from core.adapters.retention_sql import SqlRetention
from core.adapters.sql import make_engine
from core.adapters.stores_sql import SqlStores
from core.model import AlertKind, AlertStatus
from core.newsroom import build_report
from core.ports import PushResult
from tests.support.fakes import RecordingQueue, ScriptedSender
from tests.support.samples import TOPICS, draft, sub

DAY = 86400.0
POLICY = retention.RetentionPolicy(ledger_days=14, audit_days=400, churn_days=400, chunk=2)
PLAN = delivery.DeliveryPolicy(batch_size=3)


@pytest.fixture
def store(engine: Engine) -> SqlStores:
    return SqlStores.build(engine, TOPICS)


def _sent(store: SqlStores, at: float, **over: object) -> int:
    """An alert sent through the real planning and delivery code, finished at `at`."""
    alert, _ = store.alerts.create_alert(draft(**over), "k", AlertStatus.QUEUED, 0, at)
    queue = RecordingQueue()
    clock = iter(at + i * 0.5 for i in range(10_000))
    delivery.plan_fanout(alert.id, store.planning, queue, PLAN, clock=lambda: next(clock))
    sender = ScriptedSender(lambda m: PushResult(m.subscription_id, "fcm.googleapis.com", 201))
    for batch_id in queue.batches:
        delivery.deliver_batch(
            batch_id, store.ledger, sender, MemoryHostHealth(), PLAN, clock=lambda: next(clock)
        )
    found = store.alerts.get_alert(alert.id)
    assert found is not None and found.status is AlertStatus.SENT
    return alert.id


def _rows(engine: Engine, table: object, alert_id: int) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count()).where(table.c.alert_id == alert_id)  # type: ignore[attr-defined]
            ).scalar_one()
        )


def test_old_ledgers_go_counters_and_report_stay_recent_and_corrected_ones_are_kept(
    store: SqlStores, engine: Engine
) -> None:
    for n in range(1, 9):
        store.subscriptions.upsert(sub(n), 1.0)
    old = _sent(store, 1000.0)
    recent = _sent(store, 1000.0 + 10 * DAY)
    corrected = _sent(store, 1000.0)
    correction, _ = store.alerts.create_alert(
        replace(draft(), kind=AlertKind.CORRECTION, corrects_id=corrected),
        "k",
        AlertStatus.QUEUED,
        0,
        1000.0 + 15 * DAY,
    )
    reports = store.newsroom
    before = build_report(store.alerts.get_alert(old), reports)  # type: ignore[arg-type]
    assert [m.after_s for m in before.milestones if m.after_s is not None]

    kept = SqlRetention(engine, store.alerts, reports)
    done = retention.run_retention(kept, POLICY, 1000.0 + 15 * DAY)
    assert done.complete and done.alerts == 1
    assert done.deleted["deliveries"] == 8 and done.deleted["batches"] == 3
    assert _rows(engine, t.deliveries, old) == 0 and _rows(engine, t.batches, old) == 0
    assert _rows(engine, t.deliveries, recent) == 8, "finished 5 days ago: kept"
    assert _rows(engine, t.deliveries, corrected) == 8, "its correction is on its way"
    after = store.alerts.get_alert(old)
    assert after is not None and after.counts == before.counts
    assert build_report(after, reports).milestones == before.milestones, "the report stays"
    # Once the correction is sent, the corrected alert's ledger goes too.
    store.alerts.set_status(correction.id, AlertStatus.SENT, 1000.0 + 16 * DAY)
    assert retention.run_retention(kept, POLICY, 1000.0 + 16 * DAY).alerts == 1
    assert _rows(engine, t.deliveries, corrected) == 0
    assert retention.run_retention(kept, POLICY, 1000.0 + 17 * DAY).alerts == 0, "each alert once"


def _displayed(engine: Engine, alert_id: int) -> int:
    with engine.connect() as conn:
        return sum(
            int(
                conn.execute(
                    select(func.coalesce(func.sum(e.c.displayed), 0)).where(
                        e.c.alert_id == alert_id
                    )
                ).scalar_one()
            )
            for e in (t.event_seconds, t.event_steps)
        )


def _report_parts(store: SqlStores, engine: Engine, alert_id: int, now: float) -> object:
    """Everything an alert's report page draws from the database beside its counters."""
    alert = store.alerts.get_alert(alert_id)
    assert alert is not None
    built = build_report(alert, store.newsroom)
    marks = built.milestones
    timeline = SqlReports(engine)
    return (
        built,
        charts.delivery_charts(alert, timeline, built.reachable, marks, now),
        charts.live_report(alert, timeline, None, None, now, str).services,
        SqlAudienceSplits(engine).platform_groups(alert_id),
    )


def test_a_pruned_alerts_report_reads_the_same_from_far_fewer_rows(
    store: SqlStores, engine: Engine
) -> None:
    for n in range(1, 9):
        store.subscriptions.upsert(sub(n), 1.0)
    old = _sent(store, 1000.0)
    alert = store.alerts.get_alert(old)
    assert alert is not None and alert.queued_at is not None
    timeline = SqlReports(engine)
    # Readers open it over three hours (a display every 7 s, a click every 35 s) and one
    # counted just before the release (another host's clock): 1,544 rows of seconds.
    at = [alert.queued_at - 3] + [alert.queued_at + 5 + 7 * k for k in range(1543)]
    for k, when in enumerate(at):
        timeline.note_event(old, "displayed", when)
        if k % 5 == 0:
            timeline.note_event(old, "clicked", when)
    with engine.begin() as conn:  # the counters the events endpoint keeps beside them
        conn.execute(
            t.alerts.update()
            .where(t.alerts.c.id == old)
            .values(displayed=len(at), clicked=len(at[::5]))
        )
    now = 1000.0 + 15 * DAY
    before = _report_parts(store, engine, old, now)
    assert all(before), "milestones, charts, push services and platforms to compare"
    assert _rows(engine, t.event_seconds, old) == 1544

    done = retention.run_retention(SqlRetention(engine, store.alerts, store.newsroom), POLICY, now)
    assert done.alerts == 1 and _rows(engine, t.deliveries, old) == 0
    assert _report_parts(store, engine, old, now + DAY) == before, "the same report, no ledger"
    # Every second left event_seconds (its pages empty out); a row per step is kept.
    left = _rows(engine, t.event_steps, old)
    assert _rows(engine, t.event_seconds, old) == 0 and left <= charts.CHART_STEPS + 2
    assert done.deleted["event_seconds"] == 1544 - left
    # A display counted afterwards still counts (a row of its own, folded by a later run).
    timeline.note_event(old, "displayed", at[-1])
    assert _displayed(engine, old) == len(at) + 1
    again = retention.run_retention(SqlRetention(engine, store.alerts, store.newsroom), POLICY, now)
    assert again.alerts == 0 and "event_seconds" not in again.deleted, "each alert once"


def test_alerts_pruned_before_the_upgrade_get_their_event_seconds_folded(
    database_url: str,
) -> None:
    engine = make_engine(database_url)
    try:
        migrate.upgrade(engine, "0014")
        at = 1000.0
        with engine.begin() as conn:  # what an earlier version left: no ledger, cleared
            conn.execute(
                insert(t.alerts).values(
                    id=5,
                    kind="normal",
                    title="Old",
                    body="b",
                    url="https://news.example/o",
                    topics='["breaking"]',
                    topic_mask=1,
                    urgency="high",
                    ttl_s=3600,
                    story_key="s",
                    status="sent",
                    created_at=at,
                    queued_at=at,
                    started_at=at,
                    finished_at=at + 30,
                    progress_at=at + 30,
                    planned=True,
                    planned_through=9,
                    batches_total=1,
                    batches_done=1,
                    audience=9,
                    delivered=9,
                    gone=0,
                    failed=0,
                    displayed=600,
                    clicked=0,
                    utm=True,
                )
            )
            conn.execute(
                insert(t.event_seconds),
                [{"alert_id": 5, "second": int(at) + 10 * k, "displayed": 1} for k in range(600)],
            )
            conn.execute(
                text(
                    "INSERT INTO ledger_retention (alert_id, milestones, pruned_at, cleared_at)"
                    " VALUES (5, '{}', :at, :at)"
                ),
                {"at": at + 15 * DAY},
            )
        migrate.upgrade(engine)
        store = SqlStores.build(engine, TOPICS)
        done = retention.run_retention(
            SqlRetention(engine, store.alerts, store.newsroom), POLICY, at + 20 * DAY
        )
        assert done.alerts == 0 and done.deleted["event_seconds"] > 500
        assert _rows(engine, t.event_seconds, 5) == 0
        assert _rows(engine, t.event_steps, 5) <= charts.CHART_STEPS + 2
        assert _displayed(engine, 5) == 600
        with engine.connect() as conn:
            assert conn.execute(select(t.ledger_retention.c.cleared_at)).scalar_one() is not None
    finally:
        engine.dispose()


def test_audit_hourly_counts_and_webhook_receipts_go_after_their_own_periods(
    store: SqlStores, engine: Engine
) -> None:
    now = 1000.0 * DAY
    with engine.begin() as conn:
        conn.execute(
            insert(t.audit_log),
            [
                {"at": now - 401 * DAY, "action": "alert.send", "actor": "a", "last_at": None},
                {"at": now - 399 * DAY, "action": "alert.send", "actor": "a", "last_at": None},
                # A summary row still counting refused logins stays while it is counted.
                {
                    "at": now - 500 * DAY,
                    "action": "login.refused",
                    "actor": None,
                    "last_at": now - DAY,
                },
            ],
        )
        conn.execute(
            insert(t.subscription_churn),
            [
                {"hour": int((now - 401 * DAY) // 3600), "created": 1, "lost": 0},
                {"hour": int((now - 2 * DAY) // 3600), "created": 1, "lost": 0},
            ],
        )
        conn.execute(
            insert(t.webhook_receipts),
            [
                {"webhook_id": "old", "received_at": now - 8 * DAY},
                {"webhook_id": "new", "received_at": now - 60},
            ],
        )
    done = retention.run_retention(SqlRetention(engine, store.alerts, store.newsroom), POLICY, now)
    assert done.deleted["audit"] == 1 and done.deleted["churn"] == 1
    assert done.deleted["webhooks"] == 1
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(t.audit_log)).scalar_one() == 2
        assert conn.execute(select(t.webhook_receipts.c.webhook_id)).scalars().all() == ["new"]


def test_a_run_out_of_time_stops_between_chunks_and_the_next_goes_on(
    store: SqlStores, engine: Engine
) -> None:
    for n in range(1, 9):
        store.subscriptions.upsert(sub(n), 1.0)
    old = _sent(store, 1000.0)
    kept = SqlRetention(engine, store.alerts, store.newsroom)
    ticks = iter(range(100))
    first = retention.run_retention(
        kept, POLICY, 1000.0 + 15 * DAY, clock=lambda: next(ticks), budget_s=1
    )
    assert not first.complete and 0 < _rows(engine, t.deliveries, old) < 8
    assert retention.run_retention(kept, POLICY, 1000.0 + 15 * DAY).complete
    assert _rows(engine, t.deliveries, old) == 0 and _rows(engine, t.batches, old) == 0


def test_a_correction_of_a_pruned_alert_goes_to_the_current_audience_of_its_topics(
    store: SqlStores, engine: Engine
) -> None:
    for n in range(1, 5):
        store.subscriptions.upsert(sub(n), 1.0)
    old = _sent(store, 1000.0)
    kept = SqlRetention(engine, store.alerts, store.newsroom)
    # Before pruning a correction goes to whoever the original reached, read from its ledger.
    assert not kept.is_pruned(old)
    assert retention.run_retention(kept, POLICY, 1000.0 + 15 * DAY).alerts == 1 and kept.is_pruned(
        old
    )
    newcomer = store.subscriptions.upsert(sub(99), 2000.0)[0].id
    store.subscriptions.upsert(sub(98, ["sport"]), 2000.0)
    correction, _ = store.alerts.create_alert(
        replace(draft(), kind=AlertKind.CORRECTION, corrects_id=old),
        "k",
        AlertStatus.QUEUED,
        0,
        1000.0 + 16 * DAY,
    )
    queue = RecordingQueue()
    delivery.plan_fanout(correction.id, store.planning, queue, PLAN, pruned=kept.is_pruned)
    planned = store.alerts.get_alert(correction.id)
    assert planned is not None and planned.counts.audience == 5, "4 readers + the newcomer"
    with engine.connect() as conn:
        ids = conn.execute(
            select(t.batches.c.subscription_ids).where(t.batches.c.alert_id == correction.id)
        ).scalars()
        assert newcomer in {i for row in ids for i in json.loads(row)}
