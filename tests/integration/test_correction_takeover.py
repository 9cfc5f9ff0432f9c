"""A correction of an alert still sending, on SQLite and PostgreSQL: the alert stops when the
correction is released (stored through the newsroom's use case, or its undo window over), and
every reader it was meant for ends with the correction, once, whether it had reached them or
not; readers it reached get the correction at once, the others as the alert would have reached
them (quiet hours, caps)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from sqlalchemy import Engine, select, update

from core import choices as choices_core
from core import delivery
from core.adapters import tables as t
from core.adapters.accounts_sql import SqlAccounts
from core.adapters.choices_sql import SqlReaderChoices
from core.adapters.hosts import MemoryHostHealth
from core.adapters.preferences_sql import SqlPreferences
from core.adapters.stores_sql import SqlStores
from core.alerts import AlertRules
from core.corrections import stopped_by
from core.freshness import Cursor
from core.model import Alert, AlertKind, AlertStatus, Lane, LedgerStatus, Urgency
from core.ports import LedgerEntry, PushMessage, PushResult
from core.quiet import QuietHours, ReaderPreferences
from core.usecases.newsroom import Editor, Newsroom
from tests.support.fakes import RecordingQueue, ScriptedSender
from tests.support.samples import TOPICS, draft, sub

EVENING = 1_780_344_000.0  # 2026-06-01 20:00 UTC
LATE = EVENING + 2.5 * 3600  # 22:30 UTC: London (BST) is in its quiet hours, Nairobi too
NIGHT_ENDS = EVENING + 7 * 3600  # 03:00 UTC: 06:00 in Nairobi
POLICY = delivery.DeliveryPolicy(batch_size=3, retry_base_s=5, stale_after_s=30)


@pytest.fixture
def store(engine: Engine) -> SqlStores:
    return SqlStores.build(engine, TOPICS)


class Push:
    """The push service: every push in order as (alert, reader); some readers answer 503."""

    def __init__(self, busy: set[int] | None = None) -> None:
        self.busy = busy or set()
        self.log: list[tuple[int, int]] = []

    def answer(self, m: PushMessage) -> PushResult:
        self.log.append((int(json.loads(m.payload)["id"]), m.subscription_id))
        return PushResult(
            m.subscription_id, "fcm.googleapis.com", 503 if m.subscription_id in self.busy else 201
        )

    def words(self) -> dict[int, list[int]]:
        got: dict[int, list[int]] = {}
        for alert_id, sid in self.log:
            got.setdefault(sid, []).append(alert_id)
        return got


def deliver(store: SqlStores, queue: RecordingQueue, push: Push, at: float) -> None:
    sender = ScriptedSender(push.answer)
    while queue.batches:
        batch = queue.batches.pop(0)
        delivery.deliver_batch(
            batch, store.ledger, sender, MemoryHostHealth(), POLICY, clock=lambda: at
        )


def correction_of(store: SqlStores, original: Alert, at: float) -> Alert:
    fixed, _ = store.alerts.create_alert(
        replace(
            draft(original.topics, urgency=original.urgency, ttl_s=original.ttl_s),
            title="Correction",
            kind=AlertKind.CORRECTION,
            corrects_id=original.id,
        ),
        original.story_key,
        AlertStatus.QUEUED,
        0,
        at,
    )
    return fixed


def status(store: SqlStores, alert_id: int) -> AlertStatus:
    found = store.alerts.get_alert(alert_id)
    assert found is not None
    return found.status


def test_breaking_news_corrected_while_sending_reaches_everyone_once(store: SqlStores) -> None:
    ids = [store.subscriptions.upsert(sub(n), 1.0)[0].id for n in range(1, 8)]
    original, _ = store.alerts.create_alert(draft(ttl_s=3600), "k", AlertStatus.QUEUED, 0, EVENING)
    queue = RecordingQueue()
    delivery.plan_fanout(original.id, store.planning, queue, POLICY, clock=lambda: EVENING)
    first = queue.batches.pop(0)
    with store.engine.connect() as conn:
        reached = json.loads(
            conn.execute(
                select(t.batches.c.subscription_ids).where(t.batches.c.id == first)
            ).scalar_one()
        )
    retrying, left = reached[0], reached[1]
    push = Push({retrying})
    only_first = RecordingQueue()
    only_first.batches.append(first)
    deliver(store, only_first, push, EVENING)
    with store.engine.begin() as conn:  # reached, then turned every topic off
        s = t.subscriptions
        conn.execute(update(s).where(s.c.id == left).values(topic_mask=0))

    fixed = correction_of(store, original, EVENING + 5)
    delivery.plan_fanout(fixed.id, store.planning, queue, POLICY, clock=lambda: EVENING + 5)
    assert status(store, original.id) is AlertStatus.CANCELLED
    push.busy.clear()
    deliver(store, queue, push, EVENING + 6)  # the original's later batches, the correction's
    retries = store.recovery.take_due_retries(EVENING + 600, 100, 3)
    assert retries == [], "the stopped alert's retry is never sent"

    got = push.words()
    assert sorted(got) == sorted(ids)
    for sid in ids:
        assert got[sid][-1] == fixed.id and got[sid].count(fixed.id) == 1, (sid, got[sid])
    unreached = [i for i in ids if i not in reached]
    assert all(got[i] == [fixed.id] for i in unreached), "never the old words"
    assert status(store, fixed.id) is AlertStatus.SENT


def test_a_routine_alert_corrected_while_sending_keeps_to_quiet_hours_and_caps(
    store: SqlStores,
) -> None:
    prefs = SqlPreferences(store.engine)
    ids = {
        name: store.subscriptions.upsert(sub(n, ["politics"]), 1)[0].id
        for n, name in enumerate(["night_owl", "asleep", "capped", "plain"], start=1)
    }
    # 23:00-07:00 in London: from 22:00 UTC, so awake at 20:00 and asleep at 22:30.
    prefs.set_preferences(
        ids["night_owl"],
        ReaderPreferences(QuietHours(23 * 60, 7 * 60, "Europe/London", 60), 1),
    )
    prefs.set_preferences(
        ids["asleep"], ReaderPreferences(QuietHours(22 * 60, 6 * 60, "Africa/Nairobi", 180))
    )
    prefs.set_preferences(ids["capped"], ReaderPreferences(None, 1))
    choices = SqlReaderChoices(store.engine, store.topics.mask_of)
    original, _ = store.alerts.create_alert(
        draft(["politics"], urgency=Urgency.NORMAL, ttl_s=12 * 3600),
        "k",
        AlertStatus.QUEUED,
        0,
        EVENING,
    )
    queue = RecordingQueue()
    delivery.plan_fanout(
        original.id, store.planning, queue, POLICY, clock=lambda: EVENING, choices=choices
    )
    push = Push()
    deliver(store, queue, push, EVENING)
    assert sorted(s for _, s in push.log) == sorted([ids["night_owl"], ids["capped"], ids["plain"]])
    assert status(store, original.id) is AlertStatus.SENDING, "asleep is held"

    fixed = correction_of(store, original, LATE)
    delivery.plan_fanout(
        fixed.id, store.planning, queue, POLICY, clock=lambda: LATE, choices=choices
    )
    assert status(store, original.id) is AlertStatus.CANCELLED
    deliver(store, queue, push, LATE)
    # Reached: corrected at once, though now in their quiet hours or at their cap (the
    # original counted), and the correction does not count again.
    assert sorted(s for a, s in push.log if a == fixed.id) == sorted(
        [ids["night_owl"], ids["capped"], ids["plain"]]
    )
    with store.engine.connect() as conn:
        caps = dict(
            conn.execute(
                select(t.subscriptions.c.id, t.subscriptions.c.cap_count).where(
                    t.subscriptions.c.id.in_([ids["night_owl"], ids["capped"]])
                )
            ).all()
        )
        held = conn.execute(
            select(t.deliveries.c.status).where(
                t.deliveries.c.alert_id == fixed.id,
                t.deliveries.c.subscription_id == ids["asleep"],
            )
        ).scalar_one()
    assert caps == {ids["night_owl"]: 1, ids["capped"]: 1}
    # Never reached: the correction waits for their quiet hours, as the original did; the
    # original's hold is never released.
    assert held == LedgerStatus.HELD
    released = choices_core.release_held(
        choices, queue, POLICY.batch_size, lambda _id: Lane.ROUTINE, lambda: NIGHT_ENDS
    )
    assert released == 1
    deliver(store, queue, push, NIGHT_ENDS)
    assert push.words()[ids["asleep"]] == [fixed.id]
    assert status(store, fixed.id) is AlertStatus.SENT


def test_a_sent_alerts_correction_skips_readers_it_was_never_pushed_to(store: SqlStores) -> None:
    # Held past its TTL or over their cap, a reader never saw the alert: no correction for them
    # (at night, of something they never had). A failed push may have arrived: corrected.
    readers = [store.subscriptions.upsert(sub(i), 1)[0].id for i in range(1, 6)]
    original, _ = store.alerts.create_alert(draft(), "k", AlertStatus.QUEUED, 0, EVENING)
    outcomes = [
        LedgerStatus.DELIVERED,
        LedgerStatus.FAILED,
        LedgerStatus.EXPIRED,
        LedgerStatus.CAPPED,
        LedgerStatus.GONE,
    ]
    entries = [LedgerEntry(r, s, None, 1) for r, s in zip(readers, outcomes, strict=True)]
    store.ledger.record(original.id, entries, [], EVENING)
    fixed = correction_of(store, original, LATE)

    page, _ = store.planning.next_audience_page(fixed, Cursor(), 10)

    assert page == readers[:2]


# -- released: the alert stops before any worker runs the correction ---------------------------
ANNA = Editor("anna@news.example")


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def newsroom(store: SqlStores, queue: RecordingQueue, clock: Clock) -> Newsroom:
    """The Newsroom use cases on the real stores, as the composition root builds them."""
    rules = AlertRules(
        public_origins=("https://news.example.com",),
        topics=frozenset(x.slug for x in TOPICS),
        default_topics=("breaking",),
        default_ttl_s=3600,
    )
    accounts = SqlAccounts(store.engine)
    return Newsroom(
        store.alerts, store.subscriptions, queue, store.newsroom, accounts, rules, 10, clock
    )


def sending(store: SqlStores, readers: int) -> tuple[Alert, list[int], list[int]]:
    """An alert planned into batches of 3 (their tasks queued) whose first batch went out."""
    ids = [store.subscriptions.upsert(sub(n), 1.0)[0].id for n in range(1, readers + 1)]
    original, _ = store.alerts.create_alert(draft(ttl_s=3600), "k", AlertStatus.QUEUED, 0, EVENING)
    queue = RecordingQueue()
    delivery.plan_fanout(original.id, store.planning, queue, POLICY, clock=lambda: EVENING)
    return original, ids, queue.batches


def queued(batches: list[int]) -> RecordingQueue:
    """These batch tasks waiting in the broker, for `deliver` to run in order."""
    queue = RecordingQueue()
    queue.batches.extend(batches)
    return queue


def test_a_correction_from_the_api_stops_the_alert_in_the_transaction_that_stores_it(
    store: SqlStores,
) -> None:
    original, ids, batches = sending(store, 7)
    push = Push()
    deliver(store, queued(batches[:1]), push, EVENING)
    reached = [s for _, s in push.log]
    plans = RecordingQueue()
    room = newsroom(store, plans, Clock(EVENING + 5))

    fixed = room.correct(ANNA, original.id, {"title": "Correction"}, idempotency_key="fix-1")

    assert fixed.status is AlertStatus.QUEUED and plans.plans == [fixed.id]
    stopped = store.alerts.get_alert(original.id)
    assert stopped is not None and stopped.status is AlertStatus.CANCELLED
    assert stopped.cancelled_at == EVENING + 5 == fixed.queued_at
    assert stopped_by(stopped, room.chain(stopped)) == store.alerts.get_alert(fixed.id)
    # The original's batch tasks queued ahead of the correction's plan task push nothing.
    deliver(store, queued(batches[1:]), push, EVENING + 6)
    assert sorted(s for a, s in push.log if a == original.id) == sorted(reached)
    # The same request again: the first correction, nothing stored, queued or stopped anew.
    again = room.correct(ANNA, original.id, {"title": "Correction"}, idempotency_key="fix-1")
    assert again.id == fixed.id and plans.plans == [fixed.id]

    delivery.plan_fanout(fixed.id, store.planning, plans, POLICY, clock=lambda: EVENING + 7)
    deliver(store, queued(plans.batches), push, EVENING + 7)
    got = push.words()
    assert sorted(got) == sorted(ids)
    for sid in ids:
        assert got[sid][-1] == fixed.id and got[sid].count(fixed.id) == 1, (sid, got[sid])
    assert all(got[i] == [fixed.id] for i in ids if i not in reached), "never the old words"
    assert status(store, fixed.id) is AlertStatus.SENT


def test_a_newsroom_correction_stops_the_alert_when_its_undo_window_ends(
    store: SqlStores,
) -> None:
    original, ids, batches = sending(store, 7)
    push = Push()
    plans = RecordingQueue()
    clock = Clock(EVENING + 5)
    room = newsroom(store, plans, clock)
    undone = room.correct(ANNA, original.id, {"title": "Oops"}, undo_window=True)
    room.cancel(ANNA, undone.id)
    fixed = room.correct(ANNA, original.id, {"title": "Correction"}, undo_window=True)
    assert fixed.status is AlertStatus.SCHEDULED
    # Stored, not released: the editor may still undo it, and the alert goes on meanwhile.
    assert status(store, original.id) is AlertStatus.SENDING
    deliver(store, queued(batches[:1]), push, EVENING + 6)
    reached = [s for _, s in push.log]

    clock.now = EVENING + 15
    assert delivery.fire_scheduled(store.recovery, plans, clock) == 1
    assert plans.plans == [fixed.id]
    stopped = store.alerts.get_alert(original.id)
    assert stopped is not None and stopped.status is AlertStatus.CANCELLED
    released = store.alerts.get_alert(fixed.id)
    assert released is not None and stopped.cancelled_at == EVENING + 15 == released.queued_at
    assert stopped_by(stopped, room.chain(stopped)) == released
    deliver(store, queued(batches[1:]), push, EVENING + 16)
    assert sorted(s for a, s in push.log if a == original.id) == sorted(reached)

    delivery.plan_fanout(fixed.id, store.planning, plans, POLICY, clock=lambda: EVENING + 17)
    deliver(store, queued(plans.batches), push, EVENING + 17)
    got = push.words()
    assert sorted(got) == sorted(ids)
    assert all(got[i][-1] == fixed.id and got[i].count(fixed.id) == 1 for i in ids), got
    assert all(got[i] == [fixed.id] for i in ids if i not in reached)


def test_a_released_correction_of_a_finished_alert_stops_nothing(store: SqlStores) -> None:
    original, _, batches = sending(store, 2)
    deliver(store, queued(batches), Push(), EVENING)
    assert status(store, original.id) is AlertStatus.SENT
    room = newsroom(store, RecordingQueue(), Clock(EVENING + 5))
    room.correct(ANNA, original.id, {"title": "Correction"})
    finished = store.alerts.get_alert(original.id)
    assert finished is not None and finished.status is AlertStatus.SENT
    assert finished.cancelled_at is None
