"""Readers' choices in the planner on SQLite and PostgreSQL: quiet hours hold, caps skip,
breaking news goes through, held readers are released when their quiet hours end (or dropped
after the TTL), and story updates reach followers only."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, select, update

from core import choices as choices_core
from core import delivery
from core.adapters import tables as t
from core.adapters.choices_sql import SqlReaderChoices
from core.adapters.hosts import MemoryHostHealth
from core.adapters.preferences_sql import SqlPreferences
from core.adapters.stores_sql import SqlStores
from core.adapters.stories_sql import SqlStories
from core.model import AlertKind, AlertStatus, Lane, LedgerStatus, Urgency
from core.ports import PushResult
from core.quiet import QuietHours, ReaderPreferences, reader_day
from tests.support.fakes import RecordingQueue, ScriptedSender
from tests.support.samples import TOPICS, draft, sub

# 20:00 UTC is 23:00 in Nairobi: inside 22:00-06:00 there, which ends at 03:00 UTC.
EVENING = datetime(2026, 6, 1, 20, 0, tzinfo=UTC).timestamp()
NIGHT_ENDS = datetime(2026, 6, 2, 3, 0, tzinfo=UTC).timestamp()
NAIROBI_NIGHT = QuietHours(22 * 60, 6 * 60, "Africa/Nairobi", 180)
LONDON_NIGHT = QuietHours(23 * 60, 7 * 60, "Europe/London", 60)  # 22:00-06:00 UTC: not yet
POLICY = delivery.DeliveryPolicy(batch_size=3, retry_base_s=5, stale_after_s=30)


@pytest.fixture
def store(engine: Engine) -> SqlStores:
    return SqlStores.build(engine, TOPICS)


@pytest.fixture
def choices(store: SqlStores) -> SqlReaderChoices:
    return SqlReaderChoices(store.engine, store.topics.mask_of)


def readers(store: SqlStores) -> dict[str, int]:
    """Six politics readers with different choices."""
    prefs = SqlPreferences(store.engine)
    ids = {
        name: store.subscriptions.upsert(sub(n, ["politics"]), 1)[0].id
        for n, name in enumerate(["plain", "asleep", "capped", "room", "awake", "also"], start=1)
    }
    prefs.set_preferences(ids["asleep"], ReaderPreferences(NAIROBI_NIGHT))
    prefs.set_preferences(ids["capped"], ReaderPreferences(None, 1))
    prefs.set_preferences(ids["room"], ReaderPreferences(None, 2))
    prefs.set_preferences(ids["awake"], ReaderPreferences(LONDON_NIGHT, None))
    with store.engine.begin() as conn:  # the capped reader already had one alert today (UTC)
        conn.execute(
            update(t.subscriptions)
            .where(t.subscriptions.c.id == ids["capped"])
            .values(cap_day=reader_day(EVENING, 0), cap_count=1)
        )
    return ids


def ledger(engine: Engine, alert_id: int) -> dict[int, int]:
    d = t.deliveries
    with engine.connect() as conn:
        return dict(
            conn.execute(
                select(d.c.subscription_id, d.c.status).where(d.c.alert_id == alert_id)
            ).all()
        )


def planned_ids(engine: Engine, alert_id: int) -> list[int]:
    import json

    with engine.connect() as conn:
        pages = conn.execute(
            select(t.batches.c.subscription_ids).where(t.batches.c.alert_id == alert_id)
        ).scalars()
        return sorted(i for page in pages for i in json.loads(page))


def release(choices: SqlReaderChoices, queue: RecordingQueue, at: float) -> int:
    return choices_core.release_held(
        choices, queue, POLICY.batch_size, lambda _id: Lane.ROUTINE, lambda: at
    )


def deliver_all(store: SqlStores, queue: RecordingQueue, sent: list[int], at: float) -> None:
    sender = ScriptedSender(lambda m: PushResult(m.subscription_id, "h", 201))
    for batch in queue.batches:
        delivery.deliver_batch(
            batch, store.ledger, sender, MemoryHostHealth(), POLICY, clock=lambda: at
        )
    sent.extend(sender.sent)
    queue.batches.clear()


@pytest.mark.parametrize("freshest_first", [True, False])
def test_routine_alerts_wait_for_quiet_hours_and_respect_caps(
    store: SqlStores, choices: SqlReaderChoices, freshest_first: bool
) -> None:
    ids = readers(store)
    with store.engine.begin() as conn:  # the first reader seen last: both orders read alike
        for n, sid in enumerate(ids.values()):
            s = t.subscriptions
            conn.execute(update(s).where(s.c.id == sid).values(last_seen_at=100.0 - n))
    alert, _ = store.alerts.create_alert(
        draft(["politics"], urgency=Urgency.NORMAL, ttl_s=12 * 3600),
        "k",
        AlertStatus.QUEUED,
        0,
        EVENING,
    )
    queue = RecordingQueue()
    policy = dataclasses.replace(POLICY, freshest_first=freshest_first)
    delivery.plan_fanout(
        alert.id, store.planning, queue, policy, clock=lambda: EVENING, choices=choices
    )
    assert planned_ids(store.engine, alert.id) == sorted(
        [ids["plain"], ids["room"], ids["awake"], ids["also"]]
    )
    # The first page (plain, asleep, capped) had one reader to push: topped up from the next.
    assert len(queue.batches) == 1
    rows = ledger(store.engine, alert.id)
    assert rows == {ids["asleep"]: LedgerStatus.HELD, ids["capped"]: LedgerStatus.CAPPED}
    sent: list[int] = []
    deliver_all(store, queue, sent, EVENING)
    assert sorted(sent) == planned_ids(store.engine, alert.id)
    after = store.alerts.get_alert(alert.id)
    assert after is not None and after.status is AlertStatus.SENDING, "one reader still held"
    with store.engine.connect() as conn:
        counters = conn.execute(
            select(
                t.alerts.c.held, t.alerts.c.released, t.alerts.c.capped, t.alerts.c.audience
            ).where(t.alerts.c.id == alert.id)
        ).one()
        room = conn.execute(
            select(t.subscriptions.c.cap_count).where(t.subscriptions.c.id == ids["room"])
        ).scalar_one()
    assert tuple(counters) == (1, 0, 1, 5)
    assert room == 1

    # Nothing is released before the quiet hours end; then one retry batch, and the alert ends.
    assert release(choices, queue, NIGHT_ENDS - 1) == 0
    assert release(choices, queue, NIGHT_ENDS) == 1
    deliver_all(store, queue, sent, NIGHT_ENDS)
    assert sent.count(ids["asleep"]) == 1
    done = store.alerts.get_alert(alert.id)
    assert done is not None and done.status is AlertStatus.SENT
    with store.engine.connect() as conn:
        assert (
            conn.execute(select(t.alerts.c.released).where(t.alerts.c.id == alert.id)).scalar_one()
            == 1
        )


def test_breaking_news_reaches_everyone_at_once(
    store: SqlStores, choices: SqlReaderChoices
) -> None:
    ids = readers(store)
    alert, _ = store.alerts.create_alert(
        draft(["politics"], urgency=Urgency.HIGH), "k", AlertStatus.QUEUED, 0, EVENING
    )
    queue = RecordingQueue()
    delivery.plan_fanout(
        alert.id, store.planning, queue, POLICY, clock=lambda: EVENING, choices=choices
    )
    assert planned_ids(store.engine, alert.id) == sorted(ids.values())
    assert ledger(store.engine, alert.id) == {}


def test_a_hold_past_the_ttl_is_dropped(store: SqlStores, choices: SqlReaderChoices) -> None:
    ids = readers(store)
    alert, _ = store.alerts.create_alert(
        draft(["politics"], urgency=Urgency.LOW, ttl_s=3600), "k", AlertStatus.QUEUED, 0, EVENING
    )
    queue = RecordingQueue()
    delivery.plan_fanout(
        alert.id, store.planning, queue, POLICY, clock=lambda: EVENING, choices=choices
    )
    assert ledger(store.engine, alert.id)[ids["asleep"]] == LedgerStatus.EXPIRED
    deliver_all(store, queue, [], EVENING)
    done = store.alerts.get_alert(alert.id)
    assert done is not None and done.status is AlertStatus.SENT


def test_story_updates_go_to_followers_until_the_story_closes(
    store: SqlStores, choices: SqlReaderChoices
) -> None:
    ids = readers(store)
    stories = SqlStories(store.engine)
    key = "nf" + "a" * 30
    stories.open_story(key, "Live", "https://news.example.com/live", 1, EVENING, EVENING + 86400)
    stories.follow(key, ids["plain"], EVENING, 50)
    stories.follow(key, ids["asleep"], EVENING, 50)

    def plan(urgency: Urgency) -> list[int]:
        update_draft = draft(["politics"], urgency=urgency, kind=AlertKind.UPDATE)
        alert, _ = store.alerts.create_alert(update_draft, key, AlertStatus.QUEUED, 0, EVENING)
        delivery.plan_fanout(
            alert.id,
            store.planning,
            RecordingQueue(),
            POLICY,
            clock=lambda: EVENING,
            choices=choices,
        )
        return planned_ids(store.engine, alert.id)

    assert plan(Urgency.NORMAL) == [ids["plain"]]  # the other follower is asleep: held
    assert plan(Urgency.HIGH) == sorted([ids["plain"], ids["asleep"]])
    stories.close_story(key, EVENING)
    assert plan(Urgency.HIGH) == []


def test_quiet_hours_follow_their_zone_into_and_out_of_summer_time(store: SqlStores) -> None:
    prefs = SqlPreferences(store.engine)
    winter = datetime(2026, 1, 15, 12, 0, tzinfo=UTC).timestamp()
    summer = datetime(2026, 7, 15, 12, 0, tzinfo=UTC).timestamp()
    # Saved in January: London 23:00-07:00 is 23:00-07:00 UTC; Nairobi has no summer time.
    london = store.subscriptions.upsert(sub(1), 1)[0].id
    nairobi = store.subscriptions.upsert(sub(2), 1)[0].id
    plain = store.subscriptions.upsert(sub(3), 1)[0].id
    prefs.set_preferences(
        london, ReaderPreferences(QuietHours(23 * 60, 7 * 60, "Europe/London", 0))
    )
    prefs.set_preferences(nairobi, ReaderPreferences(NAIROBI_NIGHT))

    def window(sid: int) -> tuple[int, int, int]:
        s = t.subscriptions.c
        with store.engine.connect() as conn:
            row = conn.execute(
                select(s.quiet_start_utc, s.quiet_end_utc, s.tz_offset_min).where(s.id == sid)
            ).one()
        return (row[0], row[1], row[2])

    assert store.subscriptions.refresh_quiet_zones(winter) == 0, "nothing has moved yet"
    assert store.subscriptions.refresh_quiet_zones(summer) == 1
    assert window(london) == (22 * 60, 6 * 60, 60), "23:00-07:00 BST is 22:00-06:00 UTC"
    assert window(nairobi) == (19 * 60, 3 * 60, 180)
    assert store.subscriptions.refresh_quiet_zones(summer) == 0, "rows already right: no write"
    assert store.subscriptions.refresh_quiet_zones(winter) == 1
    assert window(london) == (23 * 60, 7 * 60, 0)
    with store.engine.connect() as conn:
        untouched = conn.execute(
            select(t.subscriptions.c.quiet_zone).where(t.subscriptions.c.id == plain)
        ).scalar_one()
    assert untouched is None
