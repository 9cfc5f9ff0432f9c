"""The report's numbers on SQLite and PostgreSQL: delivery over time by step, displays and clicks
by second, outcomes per push service, retries waiting, batches still sending, and the live
picture of a called-off, a stopped and a finished alert."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest
from sqlalchemy import insert

from config.settings import Topic
from core import newsroom, reports
from core.adapters import migrate
from core.adapters import tables as t
from core.adapters.report_sql import SqlReports
from core.adapters.sql import make_engine
from core.adapters.stores_sql import SqlStores
from core.model import AlertDraft, AlertStatus, BatchStatus, LedgerStatus, Urgency
from service.report_chart import draw

TOPICS = (Topic("breaking", "Breaking", True),)
T0 = 1_000_000.0
HOSTS = {
    1: "fcm.googleapis.com",
    2: "updates.push.services.mozilla.com",
    3: "web.push.apple.com",
    4: "wns2-par02p.notify.windows.com",
    5: "127.0.0.1",
}


@pytest.fixture
def rig(database_url: str) -> Iterator[tuple[SqlStores, SqlReports]]:
    engine = make_engine(database_url)
    migrate.upgrade(engine)
    yield SqlStores.build(engine, TOPICS), SqlReports(engine, stale_after_s=30)
    engine.dispose()


def _alert(store: SqlStores, audience: int) -> int:
    draft = AlertDraft("Title", "Body", "https://news.example/a", ("breaking",), Urgency.HIGH, 3600)
    alert, _ = store.alerts.create_alert(draft, "nfkey", AlertStatus.QUEUED, audience, T0)
    return alert.id


def _ledger(store: SqlStores, alert_id: int) -> None:
    """20 subscriptions, four on each push service; outcomes spread over 10 s."""
    subs, rows = [], []
    for sid in range(1, 21):
        host = HOSTS[sid % 5 + 1]
        subs.append(
            {
                "id": sid,
                "endpoint": f"https://{host}/send/{sid}",
                "p256dh": "k",
                "auth": "a",
                "topic_mask": 1,
                "push_host": host,
                "created_at": T0,
                "last_seen_at": T0,
            }
        )
        status = LedgerStatus.DELIVERED
        if sid in (5, 10):
            status = LedgerStatus.FAILED
        elif sid in (15, 20):
            status = LedgerStatus.RETRY
        rows.append(
            {
                "alert_id": alert_id,
                "subscription_id": sid,
                "status": int(status),
                "attempts": 1,
                "updated_at": T0 + sid * 0.5,  # 0.5 s apart: two per second
                "next_attempt_at": T0 + 30 + sid if status is LedgerStatus.RETRY else None,
            }
        )
    # A reader gone since: the ledger row stays, its subscription (and host) do not.
    rows.append(
        {
            "alert_id": alert_id,
            "subscription_id": 99,
            "status": int(LedgerStatus.GONE),
            "attempts": 1,
            "updated_at": T0 + 1,
            "next_attempt_at": None,
        }
    )
    with store.engine.begin() as conn:
        conn.execute(insert(t.subscriptions), subs)
        conn.execute(insert(t.deliveries), rows)


def test_delivery_over_time_steps_and_services(rig: tuple[SqlStores, SqlReports]) -> None:
    store, q = rig
    alert_id = _alert(store, 21)
    _ledger(store, alert_id)
    per_second = q.delivered_by_step(alert_id, T0, 1.0)
    # 16 delivered at T0+0.5 .. T0+9.5 (not 5, 10 failed; not 15, 20 waiting)
    assert sum(per_second.values()) == 16
    assert per_second[0] == 1 and per_second[1] == 2 and per_second[2] == 1  # 5 failed
    assert max(per_second) == 9  # the step floor, not rounding (PostgreSQL's CAST rounds)
    assert sum(q.delivered_by_step(alert_id, T0, 5.0).values()) == 16

    rows = reports.by_service(q.outcomes_by_host(alert_id))
    table = {r.key: (r.delivered, r.failed, r.waiting) for r in rows}
    # sid % 5: 0 → fcm (5, 10, 15, 20), 1 → mozilla, 2 → apple, 3 → windows, 4 → other
    assert table["fcm"] == (0, 2, 2)
    assert table["mozilla"] == (4, 0, 0)
    assert table["apple"] == (4, 0, 0) and table["windows"] == (4, 0, 0)
    assert table["other"] == (4, 0, 0)
    assert [r.key for r in rows] == ["fcm", "mozilla", "apple", "windows", "other"]
    assert q.retry_waiting(alert_id) == (2, T0 + 45)


def test_event_times_and_batches_running(rig: tuple[SqlStores, SqlReports]) -> None:
    store, q = rig
    alert_id = _alert(store, 3)
    for at, kind in ((T0 + 2.2, "displayed"), (T0 + 2.7, "displayed"), (T0 + 65, "clicked")):
        q.note_event(alert_id, kind, at)
    assert q.events_by_step(alert_id, T0, 60.0) == {0: (2, 0), 1: (0, 1)}
    assert q.event_span(alert_id, T0) == 66.0
    with store.engine.begin() as conn:
        conn.execute(
            insert(t.batches),
            [
                {
                    "alert_id": alert_id,
                    "seq": seq,
                    "subscription_ids": "[]",
                    "size": 0,
                    "status": status.value,
                    "created_at": T0,
                    "heartbeat_at": beat,
                }
                for seq, status, beat in (
                    (1, BatchStatus.SENDING, T0 + 100),  # alive
                    (2, BatchStatus.SENDING, T0),  # a dead worker's: stale, not waited for
                    (3, BatchStatus.DONE, T0 + 100),
                )
            ],
        )
    assert q.batches_running(alert_id, T0 + 101) == 1
    assert q.batches_running(alert_id, T0 + 200) == 0


def test_live_report_called_off_stopped_and_finished(rig: tuple[SqlStores, SqlReports]) -> None:
    store, q = rig
    alert_id = _alert(store, 21)
    _ledger(store, alert_id)
    alert = store.alerts.get_alert(alert_id)
    assert alert is not None
    clock = str
    called_off = replace(alert, status=AlertStatus.CANCELLED, started_at=None, cancelled_at=T0)
    live = reports.live_report(called_off, q, None, None, T0 + 5, clock)
    assert (live.pending, live.not_sent, live.settling) == (0, 21, False)

    stopped = replace(
        alert,
        status=AlertStatus.CANCELLED,
        started_at=T0,
        cancelled_at=T0 + 4,
        counts=replace(alert.counts, delivered=8, gone=1, failed=2),
    )
    live = reports.live_report(stopped, q, None, None, T0 + 5, clock)
    assert (live.pending, live.not_sent) == (0, 10)
    assert live.pace.text == "took 4.0 s"

    sending = replace(alert, status=AlertStatus.SENDING, started_at=T0)
    live = reports.live_report(sending, q, None, None, T0 + 5, clock)
    assert live.held == [
        "2 deliveries are waiting to be retried: a push service did not accept them the "
        f"first time; the next try is at {T0 + 45}."
    ]
    states = {"web.push.apple.com": {"breaker": {"until": T0 + 45, "reason": "HTTP 503"}}}
    said = reports.held_reasons(sending, live.services, states, (0, None), T0 + 5, clock)
    assert said == [
        "Delivery to Apple is held: its push service keeps refusing (HTTP 503), so we pause "
        f"it until {T0 + 45} (in about 40 s). Nothing is lost; those readers get it then."
    ]

    sent = replace(sending, status=AlertStatus.SENT, finished_at=T0 + 10)
    # The 10th delivery (sid 12) came 6 s after release; nothing reached 90 %.
    marks = [
        newsroom.Milestone(50, 10, 6.0),
        newsroom.Milestone(90, 18, None),
        newsroom.Milestone(100, 19, None),
    ]
    charts = reports.delivery_charts(sent, q, 19, marks, T0 + 20)
    assert charts is not None
    delivered, opened = charts
    assert opened is None  # nobody reported a display yet
    assert delivered.lines["delivered"][-1][1] == 16 and delivered.total == 19
    assert [(m.percent, m.after_s) for m in delivered.marks] == [(50, 6.0)]
    assert (6.0, 10) in delivered.lines["delivered"]


# Seven readers, delivered at uneven times that fall inside the chart's 0.1 s steps.
DELIVERED_AFTER_S = (0.37, 1.13, 1.9, 2.05, 2.33, 2.34, 2.41)


def test_the_delivered_line_passes_through_every_mark(rig: tuple[SqlStores, SqlReports]) -> None:
    """Each mark the chart draws (50, 90, 100 %) is a dot on the line at the mark's own time:
    the line is not at that count earlier or later. Step counts alone are drawn at each step's
    end, so the line reached 100 % up to a step after the 100 % mark, and 50 % of 7 readers
    (the 4th delivery) is above the axis' half."""
    store, q = rig
    alert_id = _alert(store, len(DELIVERED_AFTER_S))
    with store.engine.begin() as conn:
        conn.execute(
            insert(t.deliveries),
            [
                {
                    "alert_id": alert_id,
                    "subscription_id": n,
                    "status": int(LedgerStatus.DELIVERED),
                    "attempts": 1,
                    "updated_at": T0 + after,
                }
                for n, after in enumerate(DELIVERED_AFTER_S, 1)
            ],
        )
    alert = store.alerts.get_alert(alert_id)
    assert alert is not None and alert.queued_at == T0
    counts = replace(alert.counts, delivered=len(DELIVERED_AFTER_S))
    alert = replace(alert, status=AlertStatus.SENT, started_at=T0, finished_at=T0 + 2.5)
    alert = replace(alert, counts=counts)
    built = newsroom.build_report(alert, store.newsroom)
    marks = built.milestones
    assert [(m.percent, m.deliveries, m.after_s) for m in marks] == [
        (50, 4, pytest.approx(2.05)),
        (90, 7, pytest.approx(2.41)),
        (100, 7, pytest.approx(2.41)),
    ]
    charts = reports.delivery_charts(alert, q, built.reachable, marks, T0 + 10)
    assert charts is not None
    drawn = draw(charts[0])
    line = [tuple(map(float, p.split(","))) for p in drawn.lines["delivered"].split()]
    assert [x for x, _y in line] == sorted(x for x, _y in line)
    assert [y for _x, y in line] == sorted((y for _x, y in line), reverse=True)  # rises
    assert [m["percent"] for m in drawn.marks] == [50, 90, 100]
    for m in drawn.marks:
        assert (m["x"], m["y"]) in line, f"{m['label']}: dot off the line"
        first_there = next(x for x, y in line if y <= m["y"])
        assert first_there == m["x"], f"{m['label']}: the line gets there at x={first_there}"
