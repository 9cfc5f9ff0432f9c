"""SqlStores on SQLite and PostgreSQL: migrations, upserts, audience pages, the exactly-once ledger."""

from __future__ import annotations

import dataclasses

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect, select, text, update

from core import delivery
from core.adapters import migrate
from core.adapters import tables as t
from core.adapters.hosts import MemoryHostHealth
from core.adapters.stores_sql import SqlStores
from core.errors import Conflict
from core.freshness import resume_at
from core.model import AlertStatus, LedgerStatus, SubscriptionInput
from core.ports import LedgerEntry, PlanningConflict, PushResult
from core.rejections import RejectionJudge
from tests.support.fakes import RecordingQueue, ScriptedSender
from tests.support.samples import TOPICS, draft, sub


@pytest.fixture
def store(engine: Engine) -> SqlStores:
    return SqlStores.build(engine, TOPICS)


def test_migrations_create_exactly_the_declared_schema(engine: Engine) -> None:
    assert migrate.current_revision(engine) == migrate.head_revision()
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), t.metadata)
    assert diff == []
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
    assert {
        "subscriptions",
        "alerts",
        "batches",
        "deliveries",
        "topics",
        "users",
        "api_tokens",
    } <= set(inspect(engine).get_table_names())


def test_upsert_by_endpoint_never_makes_a_second_row(store: SqlStores, engine: Engine) -> None:
    first, created = store.subscriptions.upsert(sub(1), 100.0)
    assert created
    again, created = store.subscriptions.upsert(
        SubscriptionInput(first.endpoint, first.p256dh, first.auth, ("politics",)), 200.0
    )
    assert not created and again.id == first.id
    assert again.topics == ("politics",) and again.p256dh == "BAAA"
    assert again.last_seen_at == 200.0 and again.created_at == 100.0
    with engine.connect() as conn:
        assert conn.execute(select(t.subscriptions.c.id)).scalars().all() == [first.id]


def test_upsert_with_other_keys_changes_nothing(store: SqlStores) -> None:
    first, _ = store.subscriptions.upsert(sub(1, ["breaking"]), 100.0)
    for p256dh, auth in (("BBBB", first.auth), (first.p256dh, sub(9).auth), ("BBBB", "x")):
        with pytest.raises(Conflict):
            store.subscriptions.upsert(
                SubscriptionInput(first.endpoint, p256dh, auth, ("sport",)), 200.0
            )
    kept = store.subscriptions.get_by_endpoint(first.endpoint)
    assert kept == first
    assert (
        store.subscriptions.audience_size(["sport"]) == 0
        and store.subscriptions.audience_size(["breaking"]) == 1
    )

    mine, _ = store.subscriptions.upsert(sub(2, ["politics"]), 100.0)
    with pytest.raises(Conflict):
        # pushsubscriptionchange onto someone else's endpoint: refused, and the old row stays.
        store.subscriptions.replace(
            mine.id, SubscriptionInput(first.endpoint, "BBBB", mine.auth, ("sport",)), 300.0
        )
    assert store.subscriptions.get_subscription(mine.id) == mine
    assert store.subscriptions.get_by_endpoint(first.endpoint) == first


def test_audience_sizes_follow_every_change(store: SqlStores) -> None:
    a, _ = store.subscriptions.upsert(sub(1, ["breaking"]), 1)
    b, _ = store.subscriptions.upsert(sub(2, ["breaking", "politics"]), 1)
    store.subscriptions.upsert(sub(3, ["sport"]), 1)
    assert store.subscriptions.audience_size(["breaking"]) == 2
    assert store.subscriptions.audience_size(["breaking", "politics"]) == 2
    assert store.subscriptions.audience_size(["sport", "politics"]) == 2
    store.subscriptions.set_topics(a.id, ["sport"], 2)
    assert store.subscriptions.audience_size(["breaking"]) == 1
    store.subscriptions.delete_ids([b.id])
    assert store.subscriptions.audience_size(["breaking"]) == 0
    assert store.ops.subscribers_per_topic() == {"breaking": 0, "politics": 0, "sport": 2}
    store.subscriptions.recount_masks()
    assert store.subscriptions.audience_size(["sport"]) == 2


def test_duplicate_article_or_key_returns_the_first_alert(store: SqlStores) -> None:
    first, created = store.alerts.create_alert(
        draft(article_id="A1"), "k", AlertStatus.QUEUED, 0, 1.0
    )
    assert created
    again, created = store.alerts.create_alert(
        draft(article_id="A1", title="other"), "k", AlertStatus.QUEUED, 0, 2.0
    )
    assert not created and again.id == first.id
    keyed, _ = store.alerts.create_alert(
        draft(idempotency_key="K"), "k", AlertStatus.QUEUED, 0, 1.0
    )
    assert store.alerts.find_alert(article_id=None, idempotency_key="K").id == keyed.id  # type: ignore[union-attr]


POLICY = delivery.DeliveryPolicy(batch_size=3, retry_base_s=5, stale_after_s=30)


def test_plan_then_deliver_is_exactly_once_and_counts_add_up(store: SqlStores) -> None:
    ids = [
        store.subscriptions.upsert(sub(n, ["breaking"] if n % 4 else ["sport"]), 1)[0].id
        for n in range(1, 11)
    ]
    alert, _ = store.alerts.create_alert(draft(), "k", AlertStatus.QUEUED, 0, 1.0)
    queue = RecordingQueue()
    assert (
        delivery.plan_fanout(alert.id, store.planning, queue, POLICY) == 3
    )  # 8 breaking readers, 3 per batch
    assert (
        delivery.plan_fanout(alert.id, store.planning, queue, POLICY) == 0
    )  # a re-run plans nothing new
    planned = store.alerts.get_alert(alert.id)
    assert (
        planned is not None
        and planned.status is AlertStatus.SENDING
        and planned.counts.audience == 8
    )
    gone = ids[1]
    sender = ScriptedSender(
        lambda m: PushResult(
            m.subscription_id, "fcm.googleapis.com", 410 if m.subscription_id == gone else 201
        )
    )
    hosts = MemoryHostHealth()
    for batch_id in queue.batches:
        delivery.deliver_batch(batch_id, store.ledger, sender, hosts, POLICY)
        delivery.deliver_batch(
            batch_id, store.ledger, sender, hosts, POLICY
        )  # redelivered task: nothing twice
    assert sorted(sender.sent) == sorted(i for n, i in enumerate(ids, 1) if n % 4)
    done = store.alerts.get_alert(alert.id)
    assert done is not None
    assert done.status is AlertStatus.SENT
    assert (done.counts.delivered, done.counts.gone, done.counts.failed, done.counts.pending) == (
        7,
        1,
        0,
        0,
    )
    assert store.subscriptions.get_subscription(gone) is None
    assert hosts.answers[("fcm.googleapis.com", "2xx")] == 7
    # The audience-health counters: once per final outcome (the re-run counted nothing), by host.
    with store.engine.connect() as conn:
        by_host = conn.execute(
            select(
                t.delivery_hours.c.push_host, t.delivery_hours.c.delivered, t.delivery_hours.c.gone
            )
        ).all()
        losses = conn.execute(
            select(t.subscription_losses.c.reason, t.subscription_losses.c.lost)
        ).all()
    hosts_seen: dict[str, list[int]] = {}
    for host, delivered_n, gone_n in by_host:
        hosts_seen.setdefault(host, [0, 0])
        hosts_seen[host][0] += delivered_n
        hosts_seen[host][1] += gone_n
    assert hosts_seen == {"fcm.googleapis.com": [7, 1]}
    assert losses == [("gone", 1)]


def test_a_gone_reader_leaves_with_their_counts_follows_and_churn_once(
    store: SqlStores, engine: Engine
) -> None:
    """The ledger write deletes the readers the push service said are gone, in the same
    transaction (PostgreSQL: the same statement): audience counts, story follows, the hour's
    churn by reason; a GONE row for a reader the caller does not name (unsubscribed since
    planning) deletes nothing, and writing the same answers again changes nothing."""
    gone, kept, other = (
        store.subscriptions.upsert(sub(n, topics), 1)[0].id
        for n, topics in ((1, ["breaking"]), (2, ["breaking"]), (3, ["sport"]))
    )
    with engine.begin() as conn:
        conn.execute(
            t.story_follows.insert(),
            [
                {"story_key": "s1", "subscription_id": gone, "created_at": 1.0},
                {"story_key": "s1", "subscription_id": kept, "created_at": 1.0},
            ],
        )
    alert, _ = store.alerts.create_alert(draft(), "k", AlertStatus.QUEUED, 0, 1.0)
    entries = [
        LedgerEntry(gone, LedgerStatus.GONE, 410, 1, push_host="fcm.googleapis.com"),
        LedgerEntry(kept, LedgerStatus.GONE, None, 0),
        LedgerEntry(other, LedgerStatus.DELIVERED, 201, 1, push_host="fcm.googleapis.com"),
    ]
    for _ in range(2):
        counts = store.ledger.record(alert.id, entries, [gone], 7200.0, None)
    assert (counts.delivered, counts.gone) == (0, 0)  # the second write moved nothing
    assert store.subscriptions.get_subscription(gone) is None
    assert store.subscriptions.get_subscription(kept) is not None
    assert store.subscriptions.audience_size(["breaking"]) == 1
    assert store.subscriptions.audience_size(["sport"]) == 1
    done = store.alerts.get_alert(alert.id)
    assert done is not None and (done.counts.delivered, done.counts.gone) == (1, 2)
    with engine.connect() as conn:
        follows = conn.execute(select(t.story_follows.c.subscription_id)).scalars().all()
        churn = conn.execute(select(t.subscription_churn.c.hour, t.subscription_churn.c.lost)).all()
        losses = conn.execute(
            select(t.subscription_losses.c.reason, t.subscription_losses.c.lost)
        ).all()
    assert follows == [kept]
    assert [tuple(r) for r in churn if r.hour == 2] == [(2, 1)]
    assert [tuple(r) for r in losses] == [("gone", 1)]


@pytest.mark.parametrize("freshest_first", [True, False])
def test_a_page_read_before_another_planner_moved_the_cursor_is_refused(
    store: SqlStores, freshest_first: bool
) -> None:
    ids = [store.subscriptions.upsert(sub(n), 1)[0].id for n in range(1, 8)]
    alert, _ = store.alerts.create_alert(draft(), "k", AlertStatus.QUEUED, 0, 1.0)
    sending = store.planning.start_sending(alert.id, 2.0)
    assert sending is not None
    # Two planners (a slow one and the reconciler's) both read the first page at the start.
    start = resume_at(sending, store.planning.planning_cursor(alert.id), freshest_first)
    page, last = store.planning.next_audience_page(sending, start, 3)
    assert store.planning.next_audience_page(sending, start, 3) == (page, last)
    store.planning.add_batch(alert.id, page, start, last, 3.0)
    with pytest.raises(PlanningConflict):
        store.planning.add_batch(alert.id, page, start, last, 3.0)
    assert store.planning.planning_cursor(alert.id) == last
    rest, end = store.planning.next_audience_page(sending, last, 10)
    store.planning.add_batch(alert.id, rest, last, end, 4.0)
    assert sorted(page + rest) == ids
    store.planning.finish_planning(alert.id, 5.0)
    planned = store.alerts.get_alert(alert.id)
    assert planned is not None and planned.counts.audience == 7


def test_a_batch_forced_to_run_again_skips_ledgered_readers(
    store: SqlStores, engine: Engine
) -> None:
    for n in range(3):
        store.subscriptions.upsert(sub(n), 1)
    alert, _ = store.alerts.create_alert(draft(), "k", AlertStatus.QUEUED, 0, 1.0)
    queue = RecordingQueue()
    delivery.plan_fanout(alert.id, store.planning, queue, POLICY)
    sender = ScriptedSender(lambda m: PushResult(m.subscription_id, "h", 201))
    delivery.deliver_batch(queue.batches[0], store.ledger, sender, MemoryHostHealth(), POLICY)
    with engine.begin() as conn:  # as if the worker died after sending, before marking the batch
        conn.execute(update(t.batches).values(status="queued"))
    delivery.deliver_batch(queue.batches[0], store.ledger, sender, MemoryHostHealth(), POLICY)
    assert len(sender.sent) == 3
    assert store.alerts.get_alert(alert.id).counts.delivered == 3  # type: ignore[union-attr]


def test_retries_wait_in_the_database_and_come_back_as_retry_batches(store: SqlStores) -> None:
    a, _ = store.subscriptions.upsert(sub(1), 1)
    b, _ = store.subscriptions.upsert(sub(2), 1)
    alert, _ = store.alerts.create_alert(draft(), "k", AlertStatus.QUEUED, 0, 1.0)
    queue = RecordingQueue()
    delivery.plan_fanout(alert.id, store.planning, queue, POLICY, clock=lambda: 1000.0)
    answers = {
        a.id: [PushResult(a.id, "h", 429, retry_after="120"), PushResult(a.id, "h", 201)],
        b.id: [PushResult(b.id, "h", 503), PushResult(b.id, "h", 201)],
    }
    sender = ScriptedSender(lambda m: answers[m.subscription_id].pop(0))
    hosts = MemoryHostHealth()
    delivery.deliver_batch(
        queue.batches[0], store.ledger, sender, hosts, POLICY, clock=lambda: 1000.0
    )
    assert store.alerts.get_alert(alert.id).status is AlertStatus.SENDING  # type: ignore[union-attr]
    assert store.ledger.waiting_count(alert.id) == 2
    assert hosts.holds["h"][0] == 1120.0
    assert (
        delivery.schedule_due_retries(store.recovery, queue, POLICY, clock=lambda: 1010.0) == 1
    )  # only the 503 is due
    assert delivery.schedule_due_retries(store.recovery, queue, POLICY, clock=lambda: 1010.0) == 0
    delivery.deliver_batch(
        queue.batches[-1], store.ledger, sender, MemoryHostHealth(), POLICY, clock=lambda: 1010.0
    )
    assert delivery.schedule_due_retries(store.recovery, queue, POLICY, clock=lambda: 1121.0) == 1
    delivery.deliver_batch(
        queue.batches[-1], store.ledger, sender, MemoryHostHealth(), POLICY, clock=lambda: 1121.0
    )
    done = store.alerts.get_alert(alert.id)
    assert done is not None and done.status is AlertStatus.SENT and done.counts.delivered == 2


def test_refusals_never_delete_and_a_host_refusing_everything_is_held(store: SqlStores) -> None:
    a, _ = store.subscriptions.upsert(sub(1), 1)
    alert, _ = store.alerts.create_alert(draft(), "k", AlertStatus.QUEUED, 0, 1.0)
    queue = RecordingQueue()
    policy = dataclasses.replace(POLICY, rejections=RejectionJudge())
    delivery.plan_fanout(alert.id, store.planning, queue, policy)
    hosts = MemoryHostHealth()
    refuse = ScriptedSender(lambda m: PushResult(m.subscription_id, "h", 403))
    delivery.deliver_batch(
        queue.batches[0], store.ledger, refuse, hosts, policy, clock=lambda: 50.0
    )
    assert hosts.breakers == {}  # one refusal: our key, or a subscription made with another's?
    assert delivery.schedule_due_retries(store.recovery, queue, policy, clock=lambda: 60.0) == 1
    delivery.deliver_batch(
        queue.batches[-1], store.ledger, refuse, hosts, policy, clock=lambda: 60.0
    )

    assert store.subscriptions.get_subscription(a.id) is not None
    assert hosts.breakers["h"][0] == 60.0 + POLICY.breaker_open_s  # nothing delivered: ours


def test_reconciler_requeues_lost_work(store: SqlStores, engine: Engine) -> None:
    store.subscriptions.upsert(sub(1), 1)
    alert, _ = store.alerts.create_alert(draft(), "k", AlertStatus.QUEUED, 0, 1000.0)
    queue = RecordingQueue()
    assert delivery.reconcile(store.recovery, queue, POLICY, clock=lambda: 1010.0) == {
        "plans": 0,
        "batches": 0,
    }
    assert (
        delivery.reconcile(store.recovery, queue, POLICY, clock=lambda: 1100.0)["plans"] == 1
    )  # plan task lost
    delivery.plan_fanout(alert.id, store.planning, queue, POLICY, clock=lambda: 1100.0)
    queue.batches.clear()
    assert delivery.reconcile(store.recovery, queue, POLICY, clock=lambda: 1110.0)["batches"] == 0
    assert (
        delivery.reconcile(store.recovery, queue, POLICY, clock=lambda: 1200.0)["batches"] == 1
    )  # batch task lost
    assert (
        delivery.reconcile(store.recovery, queue, POLICY, clock=lambda: 1201.0)["batches"] == 0
    )  # not twice at once


def test_cancel_stops_delivery_and_scheduled_alerts_fire_when_due(store: SqlStores) -> None:
    for n in range(5):
        store.subscriptions.upsert(sub(n), 1)
    alert, _ = store.alerts.create_alert(draft(), "k", AlertStatus.QUEUED, 0, 1.0)
    queue = RecordingQueue()
    delivery.plan_fanout(alert.id, store.planning, queue, POLICY)
    store.alerts.set_status(alert.id, AlertStatus.CANCELLED, 2.0, only_from=(AlertStatus.SENDING,))
    sender = ScriptedSender(lambda m: PushResult(m.subscription_id, "h", 201))
    for batch_id in queue.batches:
        delivery.deliver_batch(batch_id, store.ledger, sender, MemoryHostHealth(), POLICY)
    assert sender.sent == []
    later, _ = store.alerts.create_alert(draft(send_at=500.0), "k", AlertStatus.SCHEDULED, 0, 1.0)
    assert delivery.fire_scheduled(store.recovery, queue, clock=lambda: 499.0) == 0
    assert delivery.fire_scheduled(store.recovery, queue, clock=lambda: 501.0) == 1
    assert store.alerts.get_alert(later.id).status is AlertStatus.QUEUED  # type: ignore[union-attr]
    assert queue.plans == [later.id]


def test_ledger_statuses_are_stable_numbers() -> None:
    assert [int(s) for s in LedgerStatus] == [1, 2, 3, 4, 5, 6, 7, 8]
