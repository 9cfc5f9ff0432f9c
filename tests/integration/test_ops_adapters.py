"""Ops adapters against the real thing: broker probes on Redis and RabbitMQ, alarm state in
Redis with a webhook receiver, redacting JSON logs, subscription churn in SQL."""

from __future__ import annotations

import io
import json
import logging
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis as redis_lib

from core.adapters import migrate
from core.adapters.broker import ENQUEUED_AT_HEADER, AmqpQueueProbe, RedisQueueProbe
from core.adapters.celery_queue import ALL_QUEUES
from core.adapters.logs import make_handler
from core.adapters.ops_probes import running_task
from core.adapters.ops_sql import SqlOpsQueries
from core.adapters.sql import TopicBits, make_engine
from core.adapters.stores_sql import SqlStores
from core.adapters.telemetry import RedisTelemetry, fast_failing_client
from core.alarms import Facts, FallbackAlarmStore, QueueFacts, Thresholds, apply_alarms, evaluate
from core.model import Lane, LossReason, SubscriptionInput
from core.tombstones import endpoint_digest
from tests.support.ops import WebhookReceiver
from tests.support.services import RABBIT_URL, make_env, port_open, require_service, settings_from
from workers import monitoring
from workers.factory import TASK_DELIVER, make_celery


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    hook = WebhookReceiver().start()
    yield hook
    hook.stop()


def test_redis_probe_reads_depth_and_oldest_age_without_taking_anything(
    clean_redis: str, tmp_path: Path, vapid_pem: str
) -> None:
    env = make_env(tmp_path / "var", f"sqlite:///{tmp_path}/nf.db", clean_redis, vapid_pem)
    app = make_celery(settings_from(env))
    client = redis_lib.Redis.from_url(clean_redis)
    sent_between = []
    for batch_id in range(3):
        before = time.time()
        app.send_task(TASK_DELIVER, args=[batch_id, 1], queue=Lane.BREAKING.value)
        sent_between.append((before, time.time()))
        time.sleep(0.2)
    app.send_task(TASK_DELIVER, args=[9, 2], queue=Lane.ROUTINE.value)

    stats = {s.name: s for s in RedisQueueProbe(clean_redis).queue_stats(list(ALL_QUEUES))}

    assert stats[Lane.BREAKING.value].depth == client.llen(Lane.BREAKING.value) == 3
    assert stats[Lane.ROUTINE.value].depth == client.llen(Lane.ROUTINE.value) == 1
    assert stats[Lane.MAINTENANCE.value].depth == 0
    oldest = stats[Lane.BREAKING.value].oldest_enqueued_at
    first_before, first_after = sent_between[0]
    assert oldest is not None and first_before - 0.001 <= oldest <= first_after + 0.001, (
        oldest,
        sent_between,
    )
    age = stats[Lane.BREAKING.value].oldest_age_s(time.time())
    assert age is not None and age >= 0.4
    assert stats[Lane.MAINTENANCE.value].oldest_age_s(time.time()) is None
    assert client.llen(Lane.BREAKING.value) == 3, "probing took a message"


def test_rabbitmq_probe_counts_and_peeks_the_oldest_message_then_puts_it_back() -> None:
    require_service("RabbitMQ", port_open("127.0.0.1", 5672), "127.0.0.1:5672")
    from kombu import Connection, Exchange, Producer, Queue

    name = f"nf-ops-test-{uuid.uuid4().hex[:8]}"
    with Connection(RABBIT_URL, connect_timeout=3) as conn:
        channel = conn.channel()
        queue = Queue(name, Exchange(""), routing_key=name, auto_delete=False, durable=False)
        queue(channel).declare()
        producer = Producer(channel)
        stamps = [time.time() - 30, time.time() - 10]
        for i, stamp in enumerate(stamps):
            producer.publish({"n": i}, routing_key=name, headers={ENQUEUED_AT_HEADER: stamp})
        try:
            probe = AmqpQueueProbe(RABBIT_URL)
            for _ in range(2):  # twice: the peek must leave the message where it was
                (stat,) = probe.queue_stats([name])
                assert stat.depth == 2
                assert stat.consumers == 0
                assert stat.oldest_enqueued_at == pytest.approx(stamps[0], abs=0.01)
            message = channel.basic_get(queue=name, no_ack=True)
            assert json.loads(message.body) == {"n": 0}, "the peeked message lost its place"
            (missing,) = probe.queue_stats([f"{name}-absent"])
            assert missing.depth == 0
        finally:
            queue(conn.channel()).delete()


def _facts(**changes: Any) -> Facts:
    base: dict[str, Any] = {
        "now": time.time(),
        "broker_ok": True,
        "database_ok": True,
        "queues": [QueueFacts(Lane.BREAKING.value, 0, None, None)],
        "oldest_pending_s": None,
        "pending_known": True,
        "settled_per_s": 0.0,  # nothing delivered: old pending deliveries page
        "breakers": {},
        "breaking_consumers": 1,
    }
    base.update(changes)
    return Facts(**base)


def test_alarm_state_in_redis_announces_each_change_once_and_retries_the_webhook(
    clean_redis: str, receiver: WebhookReceiver
) -> None:
    client = redis_lib.Redis.from_url(clean_redis)
    first = FallbackAlarmStore(RedisTelemetry(client))
    second = FallbackAlarmStore(RedisTelemetry(client))  # another process evaluating too
    thresholds = Thresholds(stall_s=5, pending_s=10)

    down = _facts(breaking_consumers=0, oldest_pending_s=12.0)
    for store in (first, second, first):
        apply_alarms(
            *evaluate(down, thresholds), store, monitoring.webhook_notifier(receiver.url), down.now
        )
    firing = receiver.events(status="firing")
    assert sorted(e["alarm"] for e in firing) == ["breaking_lane_unattended", "pending_too_old"]
    assert set(first.alarms()) == {"breaking_lane_unattended", "pending_too_old"}

    # Unknown facts (broker down: no worker list) never clear an alarm.
    unknown = _facts(breaking_consumers=None, oldest_pending_s=12.0, broker_ok=False)
    apply_alarms(
        *evaluate(unknown, thresholds),
        second,
        monitoring.webhook_notifier(receiver.url),
        unknown.now,
    )
    assert "breaking_lane_unattended" in first.alarms()
    assert [e["alarm"] for e in receiver.events(status="firing")][-1] == "broker_unreachable"

    receiver.failing = True
    fine = _facts()
    apply_alarms(
        *evaluate(fine, thresholds), first, monitoring.webhook_notifier(receiver.url), fine.now
    )
    apply_alarms(
        *evaluate(fine, thresholds), second, monitoring.webhook_notifier(receiver.url), fine.now
    )
    assert first.alarms() == {}
    assert receiver.events(status="resolved") == []

    receiver.failing = False
    apply_alarms(
        *evaluate(fine, thresholds), second, monitoring.webhook_notifier(receiver.url), time.time()
    )
    resolved = receiver.events(status="resolved")
    assert sorted(e["alarm"] for e in resolved) == [
        "breaking_lane_unattended",
        "broker_unreachable",
        "pending_too_old",
    ]
    assert all(
        e["duration_s"] >= 0 and e["text"].startswith("[newsflash] RESOLVED") for e in resolved
    )


def test_alarm_fires_locally_while_redis_is_down_and_moves_there_when_it_is_back(
    clean_redis: str, receiver: WebhookReceiver
) -> None:
    dead = RedisTelemetry(fast_failing_client("redis://127.0.0.1:1/0", 0.5))
    store = FallbackAlarmStore(dead)
    facts = _facts(broker_ok=False, broker_error="unreachable: ConnectionError")
    apply_alarms(
        *evaluate(facts, Thresholds()), store, monitoring.webhook_notifier(receiver.url), facts.now
    )
    assert [e["alarm"] for e in receiver.events(status="firing")] == ["broker_unreachable"]

    store.shared = RedisTelemetry(redis_lib.Redis.from_url(clean_redis))
    assert set(store.alarms()) == {"broker_unreachable"}
    assert store.local.records == {}
    fine = _facts()
    apply_alarms(
        *evaluate(fine, Thresholds()), store, monitoring.webhook_notifier(receiver.url), fine.now
    )
    assert [e["alarm"] for e in receiver.events(status="resolved")] == ["broker_unreachable"]
    assert len(receiver.received) == 2


def test_json_logs_carry_the_event_fields_and_never_a_secret() -> None:
    stream = io.StringIO()
    logger = logging.getLogger("newsflash.test-redaction")
    logger.propagate = False
    logger.addHandler(make_handler(True, stream))
    logger.setLevel(logging.INFO)
    endpoint = "https://fcm.googleapis.com/fcm/send/dQw4w9WgXcQ:APA91bHun4MxP5egoKMwt2KZFBaFUH"
    p256dh = (
        "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM"
    )
    auth = "tBHItJI5svbpez7KI4CCXg"
    token = "nf_" + "Zx9" * 14
    try:
        logger.info(
            "delivered",
            extra={
                "alert_id": 7,
                "task_id": "t-1",
                "batch_id": 3,
                "push_host": "fcm.googleapis.com",
                "outcome": "delivered",
                "endpoint": endpoint,
                "keys": {"p256dh": p256dh, "auth": auth},
            },
        )
        logger.warning("push to %s failed with auth=%s", endpoint, auth)
        logger.info("Authorization: Bearer %s; password=hunter2hunter2", token)
        logger.info("db postgresql+psycopg://newsflash:s3cretpass@db:5432/newsflash")
        try:
            raise ValueError(f"bad key {p256dh} for {endpoint}")
        except ValueError:
            logger.exception("sending failed", extra={"alert_id": 7})
    finally:
        logger.handlers.clear()
    text = stream.getvalue()
    for secret in (endpoint, "dQw4w9WgXcQ", p256dh, auth, token, "hunter2hunter2", "s3cretpass"):
        assert secret not in text, secret
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    assert len(lines) == 5
    first = lines[0]
    assert {k: first[k] for k in ("alert_id", "task_id", "batch_id", "push_host", "outcome")} == {
        "alert_id": 7,
        "task_id": "t-1",
        "batch_id": 3,
        "push_host": "fcm.googleapis.com",
        "outcome": "delivered",
    }
    assert first["endpoint"].startswith("fcm.googleapis.com#")
    assert "sending failed" in lines[4]["msg"] and "Traceback" in lines[4]["exc"]


def _fresh() -> SubscriptionInput:
    return SubscriptionInput(
        f"https://fcm.googleapis.com/fcm/send/{uuid.uuid4().hex}", "k", "a", ("breaking",)
    )


def test_new_lost_and_renewed_subscriptions_are_counted_per_hour(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        migrate.upgrade(engine)
        from config.settings import Topic

        store = SqlStores.build(engine, (Topic("breaking", "Breaking", True),))
        now = time.time()
        made = [
            store.subscriptions.upsert(
                SubscriptionInput(
                    f"https://fcm.googleapis.com/fcm/send/{uuid.uuid4().hex}",
                    "k",
                    "a",
                    ("breaking",),
                ),
                now,
            )[0]
            for _ in range(3)
        ]
        store.subscriptions.upsert(
            SubscriptionInput(made[0].endpoint, "k", "a", ("breaking",)), now
        )  # not new
        store.subscriptions.delete_ids([made[1].id])
        # Renewals: reader 0's browser moves to a new endpoint (live); reader 2's push service
        # answers 410 and the browser's new subscription restores it from the tombstone.
        store.subscriptions.replace(made[0].id, _fresh(), now)
        store.subscriptions.delete_ids([made[2].id], LossReason.GONE, now)
        stone = store.subscriptions.find_tombstone(endpoint_digest(made[2].endpoint))
        assert stone is not None
        store.subscriptions.restore(stone, _fresh(), now)
        queries = store.ops
        hours = queries.churn_since(now - 3600)
        # (new, lost, moved, restored): the restore took back the 410's loss.
        assert [sum(col) for col in list(zip(*hours, strict=True))[1:]] == [3, 1, 1, 1]
        assert queries.subscription_total() == 2
        assert queries.churn_totals() == {
            "gained": 3,
            "lost": 1,
            "renewed": {"moved": 1, "restored": 1},
        }
    finally:
        engine.dispose()


def test_finished_alerts_carry_when_half_nine_tenths_and_all_deliveries_were_done(
    database_url: str,
) -> None:
    from core.adapters import tables as t
    from core.model import LedgerStatus

    engine = make_engine(database_url)
    try:
        migrate.upgrade(engine)
        queued = 1_000_000.0
        with engine.begin() as conn:
            alert_id = conn.execute(
                t.alerts.insert().values(
                    title="t",
                    body="b",
                    url="https://news.example/a",
                    topics="[]",
                    topic_mask=1,
                    urgency="high",
                    ttl_s=60,
                    story_key="s",
                    status="sent",
                    created_at=queued - 5,
                    queued_at=queued,
                    finished_at=queued + 30,
                )
            ).inserted_primary_key[0]
            # Ten deliveries at +1 … +10 s (shuffled), plus two that never succeeded and later.
            rows = [
                (i, LedgerStatus.DELIVERED, queued + i) for i in (7, 2, 10, 1, 5, 3, 9, 4, 8, 6)
            ]
            rows += [(11, LedgerStatus.GONE, queued + 20), (12, LedgerStatus.FAILED, queued + 25)]
            conn.execute(
                t.deliveries.insert(),
                [
                    {
                        "alert_id": alert_id,
                        "subscription_id": sub,
                        "status": int(status),
                        "updated_at": at,
                    }
                    for sub, status, at in rows
                ],
            )
        queries = SqlOpsQueries(engine, TopicBits({}))
        (found,) = queries.finished_since(queued)
        assert found.last_delivery_at == queued + 10
        shares = queries.delivered_at_shares(found.alert_id)
        assert queries.delivered_at_shares(found.alert_id + 1) == {}  # nothing delivered
        assert {k: v - queued for k, v in shares.items()} == {
            "50": 5.0,
            "90": 9.0,
            "100": 10.0,
        }
    finally:
        engine.dispose()


def test_running_tasks_show_their_arguments_and_sweeps_show_none() -> None:
    # Entries as Celery's `inspect active` answers them (kombu's JSON of the task request).
    started = time.time() - 2
    deliver = running_task(
        {
            "id": "t1",
            "name": TASK_DELIVER,
            "args": [12, 3],
            "delivery_info": {"routing_key": Lane.BREAKING.value},
            "time_start": started,
        }
    )
    assert (deliver.name, deliver.args, deliver.queue) == (
        TASK_DELIVER,
        "[12, 3]",
        "newsflash.breaking",
    )
    assert deliver.started_at == started
    for empty in ([], (), None):
        sweep = running_task({"id": "t2", "name": "newsflash.reclaim", "args": empty})
        assert sweep.args == "", "no `reclaim []` on /ops or in `newsflash status`"


def test_a_queue_taken_from_after_the_snapshot_read_its_clock_was_taken_0_s_ago(
    clean_redis: str, tmp_path: Path, vapid_pem: str
) -> None:
    from core import ops
    from core.bootstrap import Container

    env = make_env(
        tmp_path / "var",
        f"sqlite:///{tmp_path}/nf.db",
        clean_redis,
        vapid_pem,
        INSPECT_TIMEOUT_S="0.2",
    )
    container = Container(settings_from(env))
    try:
        migrate.upgrade(container.engine)
        now = time.time()
        # A worker took a task a moment after `now` was read (its clock a hair ahead, or later).
        RedisTelemetry(redis_lib.Redis.from_url(clean_redis)).mark_consumed(
            Lane.MAINTENANCE.value, now + 0.12
        )
        snapshot = ops.collect(container.ops.sources, now)
        taken = {q["name"]: q["last_consumed_s_ago"] for q in snapshot["queues"]}
        assert taken[Lane.MAINTENANCE.value] == 0.0, "never `-0.1 s ago`"
        assert taken[Lane.ROUTINE.value] is None
    finally:
        container.engine.dispose()
