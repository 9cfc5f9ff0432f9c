"""HTTP publish → broker → live Celery worker → push stand-in that checks VAPID and decrypts."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis as redis_lib
from flask.testing import FlaskClient
from sqlalchemy import select, update

from config.settings import Settings
from core.accounts import Role
from core.adapters import tables as t
from core.model import LedgerStatus
from core.rejections import PENDING_TRIES
from core.utm import UtmTags, with_utm
from standin.declarative import declarative_problems
from standin.server import PushStandin
from tests.support.live_stack import live_stack
from tests.support.services import (
    RABBIT_URL,
    TEST_REDIS_DB,
    create_pg_database,
    drop_pg_database,
    new_vapid_pem,
    port_open,
    require_service,
)
from tests.support.stack import Process, wait_until

ORIGIN = "http://127.0.0.1:8000"


@dataclass
class Stack:
    settings: Settings
    env: dict[str, str]
    client: FlaskClient
    token: str
    standin: PushStandin
    hostile: PushStandin  # a second push host (127.0.0.2) for host-wide faults
    worker: Process
    beat: Process
    engine: Any

    def subscribe(self, sub: dict[str, Any], topics: list[str]) -> str:
        answer = self.client.post("/api/v1/subscriptions", json={**sub, "topics": topics})
        assert answer.status_code == 201, answer.json
        return str(answer.json["id"])

    def publish(self, headers: dict[str, str] | None = None, **fields: Any) -> Any:
        body = {
            "title": "Breaking: " + uuid.uuid4().hex[:8],
            "body": "Something important happened.",
            "url": f"{ORIGIN}/news/{uuid.uuid4().hex[:6]}",
            "topics": ["breaking"],
            **fields,
        }
        answer = self.client.post(
            "/api/v1/alerts",
            json=body,
            headers={"Authorization": f"Bearer {self.token}", **(headers or {})},
        )
        return answer

    def alert(self, alert_id: str) -> dict[str, Any]:
        answer = self.client.get(
            f"/api/v1/alerts/{alert_id}", headers={"Authorization": f"Bearer {self.token}"}
        )
        assert answer.status_code == 200
        return dict(answer.json)

    def wait_status(self, alert_id: str, status: str, timeout_s: float = 60) -> dict[str, Any]:
        return wait_until(
            lambda: (a := self.alert(alert_id))["status"] == status and a,
            timeout_s,
            f"alert {alert_id} to be {status}",
            interval_s=0.2,
        )


def _start_stack(database_url: str, tmp: Path, broker_url: str | None = None) -> Iterator[Stack]:
    redis_url = f"redis://127.0.0.1:6379/{TEST_REDIS_DB}"
    redis_lib.Redis.from_url(redis_url).flushdb()
    extra = {
        "RETRY_BASE_S": "0.3",
        "RETRY_MAX_ATTEMPTS": "4",
        "STALE_AFTER_S": "20",
        "BATCH_SIZE": "20",
        "RATE_LIMIT_SUBSCRIBE": "10000 per minute",
        # One topic per test so tests sharing a stack never count each other's readers.
        "TOPICS": "breaking:Breaking news:default,politics,business,sport,outcomes,hostile,rerun,idem"
        ",languages",
    }
    if broker_url:
        extra["BROKER_URL"] = broker_url
    with live_stack(tmp, database_url, redis_url, new_vapid_pem(), hostile=True, **extra) as live:
        assert live.hostile is not None and live.beat is not None
        yield Stack(
            live.settings,
            live.env,
            live.client,
            live.token("e2e", Role.EDITOR),
            live.standin,
            live.hostile,
            live.worker,
            live.beat,
            live.engine,
        )


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    require_service("Redis", port_open("127.0.0.1", 6379), "127.0.0.1:6379")
    tmp = tmp_path_factory.mktemp(f"stack-{request.param}")
    if request.param == "sqlite":
        yield from _start_stack(f"sqlite:///{tmp}/newsflash.db", tmp)
        return
    require_service("PostgreSQL", port_open("127.0.0.1", 5432), "127.0.0.1:5432")
    url = create_pg_database()
    try:
        yield from _start_stack(url, tmp)
    finally:
        drop_pg_database(url)


def _payloads_for(standin: PushStandin, endpoints: list[str]) -> list[dict[str, Any]]:
    wanted = {e.rsplit("/", 1)[-1] for e in endpoints}
    return [r.payload for r in standin.received if r.token in wanted and r.payload is not None]


def test_every_subscriber_gets_the_decrypted_alert_once_with_the_wire_headers(stack: Stack) -> None:
    breaking = stack.standin.create_subscriptions(45)
    sport = stack.standin.create_subscriptions(5)
    for sub in breaking:
        stack.subscribe(sub, ["breaking"])
    for sub in sport:
        stack.subscribe(sub, ["sport"])
    before = len(stack.standin.received)

    answer = stack.publish(ttl=900, image=f"{ORIGIN}/img/fire.jpg")
    assert answer.status_code == 202, answer.json
    alert_id = answer.json["id"]
    assert answer.json["status"] == "queued"
    assert answer.json["audience"] >= 45

    final = stack.wait_status(alert_id, "sent")
    received = [
        r for r in stack.standin.received[before:] if r.payload and r.payload["id"] == alert_id
    ]
    tokens = [r.token for r in received]
    assert len(tokens) == len(set(tokens)), "a subscriber got the alert twice"
    breaking_tokens = {s["endpoint"].rsplit("/", 1)[-1] for s in breaking}
    sport_tokens = {s["endpoint"].rsplit("/", 1)[-1] for s in sport}
    assert breaking_tokens <= set(tokens)
    assert not sport_tokens & set(tokens), "topic targeting leaked to sport-only readers"

    sent = stack.alert(alert_id)
    # The click-through URL carries the UTM tags (on by default; core/utm.py).
    clicked = with_utm(sent["url"], UtmTags(), f"alert-{alert_id}")
    assert clicked.startswith(sent["url"] + "?utm_source=newsflash&utm_medium=push")
    for r in received:
        # What Safari 18.4+ shows by itself: a valid Declarative Web Push message.
        assert declarative_problems(r.plaintext) == []
        assert r.payload["web_push"] == 8030 and r.payload["mutable"] is True
        assert r.payload.pop("notification") == {
            "title": sent["title"],
            "body": sent["body"],
            "navigate": clicked,
            "lang": "en",
            "dir": "ltr",
            "tag": sent["tag"],
            "image": f"{ORIGIN}/img/fire.jpg",
            "timestamp": r.payload["ts"] * 1000,
            "data": {"id": alert_id, "d": r.payload["d"]},
        }
        # Beside it, the flat fields every earlier version sent (what service workers read).
        assert r.payload == {
            "web_push": 8030,
            "mutable": True,
            "id": alert_id,
            "title": sent["title"],
            "body": sent["body"],
            "url": clicked,
            "image": f"{ORIGIN}/img/fire.jpg",
            "tag": sent["tag"],
            "ts": r.payload["ts"],
            "d": r.payload["d"],
        }
        assert abs(r.payload["ts"] - time.time()) < 120
        h = r.headers
        assert h["content-encoding"] == "aes128gcm"
        assert h["content-type"] == "application/octet-stream"
        assert h["ttl"] == "900"
        assert h["urgency"] == "high"
        assert h["topic"] == sent["tag"] and len(h["topic"]) <= 32 and h["topic"].isalnum()
        assert r.vapid_sub == "mailto:ops@news.example"
        assert r.raw_len <= 4096
    assert final["counts"]["delivered"] == len(received)
    # Each browser's payload carries its own delivery receipt.
    assert len({r.payload["d"] for r in received}) == len(received)
    assert final["counts"]["pending"] == 0
    assert final["started_at"] and final["finished_at"]


def test_republishing_the_same_article_or_key_sends_nothing_new(stack: Stack) -> None:
    subs = stack.standin.create_subscriptions(3)
    for sub in subs:
        stack.subscribe(sub, ["idem"])
    article = "article-" + uuid.uuid4().hex[:6]
    first = stack.publish(topics=["idem"], article_id=article)
    assert first.status_code == 202
    stack.wait_status(first.json["id"], "sent")
    again = stack.publish(topics=["idem"], article_id=article, title="Different words")
    assert again.status_code == 200 and again.json["id"] == first.json["id"]

    key = uuid.uuid4().hex
    keyed = stack.publish(topics=["idem"], headers={"Idempotency-Key": key})
    assert keyed.status_code == 202
    repeat = stack.publish(topics=["idem"], headers={"Idempotency-Key": key})
    assert repeat.status_code == 200 and repeat.json["id"] == keyed.json["id"]
    stack.wait_status(keyed.json["id"], "sent")
    time.sleep(1.0)  # give a wrongly re-queued send the time to show up
    for alert_id in (first.json["id"], keyed.json["id"]):
        got = [
            p
            for p in _payloads_for(stack.standin, [s["endpoint"] for s in subs])
            if p["id"] == alert_id
        ]
        assert len(got) == 3, f"alert {alert_id}: {len(got)} deliveries for 3 subscribers"


def test_a_delivery_task_run_again_sends_nothing_twice(stack: Stack) -> None:
    subs = stack.standin.create_subscriptions(4)
    for sub in subs:
        stack.subscribe(sub, ["rerun"])
    answer = stack.publish(topics=["rerun"])
    alert_id = answer.json["id"]
    stack.wait_status(alert_id, "sent")
    with stack.engine.begin() as conn:
        batch_ids = (
            conn.execute(select(t.batches.c.id).where(t.batches.c.alert_id == int(alert_id)))
            .scalars()
            .all()
        )
        # As if the broker redelivered a task whose first run was lost after sending.
        conn.execute(
            update(t.batches).where(t.batches.c.alert_id == int(alert_id)).values(status="queued")
        )
    from core.adapters.celery_queue import CeleryTaskQueue
    from workers.factory import make_celery

    queue = CeleryTaskQueue(make_celery(stack.settings))
    from core.model import Lane

    for batch_id in batch_ids:
        queue.enqueue_batch(batch_id, int(alert_id), Lane.ROUTINE)
        queue.enqueue_batch(batch_id, int(alert_id), Lane.ROUTINE)
    wait_until(
        lambda: all(
            s == "done"
            for s in stack.engine.connect()
            .execute(select(t.batches.c.status).where(t.batches.c.alert_id == int(alert_id)))
            .scalars()
        ),
        30,
        "re-run batches to finish",
    )
    time.sleep(0.5)
    got = [
        p
        for p in _payloads_for(stack.standin, [s["endpoint"] for s in subs])
        if p["id"] == alert_id
    ]
    assert len(got) == 4
    assert stack.alert(alert_id)["counts"]["delivered"] == 4


def test_push_service_answers_map_to_outcomes(stack: Stack) -> None:
    ok = stack.standin.create_subscription()
    gone404 = stack.standin.create_subscription("gone404")
    gone410 = stack.standin.create_subscription("gone410")
    throttled = stack.standin.create_subscription("throttle", retry_after=2, times=1)
    flaky = stack.standin.create_subscription("error", status=503, times=2)
    too_big = stack.standin.create_subscription("error", status=413)
    subs = [ok, gone404, gone410, throttled, flaky, too_big]
    ids = {}
    for sub in subs:
        ids[sub["endpoint"]] = stack.subscribe(sub, ["outcomes"])
    answer = stack.publish(topics=["outcomes"])
    alert_id = answer.json["id"]
    final = stack.wait_status(alert_id, "sent", timeout_s=90)

    counts = final["counts"]
    assert counts["delivered"] == 3  # ok, throttled (after Retry-After), flaky (after two 503s)
    assert counts["gone"] == 2
    assert counts["failed"] == 1  # 413: our bug, recorded, never retried
    assert counts["pending"] == 0
    with stack.engine.connect() as conn:
        remaining = set(conn.execute(select(t.subscriptions.c.endpoint)).scalars())
        ledger = dict(
            conn.execute(
                select(t.deliveries.c.subscription_id, t.deliveries.c.status).where(
                    t.deliveries.c.alert_id == int(alert_id)
                )
            ).all()
        )
    assert gone404["endpoint"] not in remaining and gone410["endpoint"] not in remaining
    assert {
        ok["endpoint"],
        throttled["endpoint"],
        flaky["endpoint"],
        too_big["endpoint"],
    } <= remaining
    assert ledger[int(ids[too_big["endpoint"]])] == LedgerStatus.FAILED

    tries = [
        r for r in stack.standin.attempts if r.token == throttled["endpoint"].rsplit("/", 1)[-1]
    ]
    assert [r.status for r in tries] == [429, 201]
    assert tries[1].at - tries[0].at >= 2.0, "Retry-After was not honoured"
    flaky_tries = [
        r.status for r in stack.standin.attempts if r.token == flaky["endpoint"].rsplit("/", 1)[-1]
    ]
    assert flaky_tries == [503, 503, 201]
    assert [
        r.status
        for r in stack.standin.attempts
        if r.token == too_big["endpoint"].rsplit("/", 1)[-1]
    ] == [413]


def test_403_from_a_push_host_deletes_nothing_and_holds_that_host(stack: Stack) -> None:
    subs = stack.hostile.create_subscriptions(3)
    for sub in subs:
        stack.subscribe(sub, ["hostile"])
    stack.hostile.set_host_mode("forbidden")
    answer = stack.publish(topics=["hostile"])
    alert_id = answer.json["id"]
    # One refusal may be one outsider's subscription (core/rejections.py): the breaker holds
    # the host once it has refused for a couple of seconds with nothing delivered.
    client = redis_lib.Redis.from_url(stack.settings.redis_url)
    breaker = wait_until(
        lambda: client.get("newsflash:host:127.0.0.2:breaker"), 30, "the breaker to hold the host"
    )
    assert json.loads(breaker)["reason"] == "HTTP 403"
    with stack.engine.connect() as conn:
        remaining = set(conn.execute(select(t.subscriptions.c.endpoint)).scalars())
        ledger = (
            conn.execute(
                select(t.deliveries.c.status).where(t.deliveries.c.alert_id == int(alert_id))
            )
            .scalars()
            .all()
        )
    assert {s["endpoint"] for s in subs} <= remaining, "a 403 deleted subscriptions"
    assert all(s in (LedgerStatus.RETRY, LedgerStatus.REQUEUED) for s in ledger)
    # No request storm: each reader is asked a few times at most before the breaker holds it.
    assert len(stack.hostile.attempts) <= PENDING_TRIES * len(subs)
    stack.client.post(
        f"/api/v1/alerts/{alert_id}/cancel",
        headers={"Authorization": f"Bearer {stack.token}"},
        json={},
    )
    redis_lib.Redis.from_url(stack.settings.redis_url).delete("newsflash:host:127.0.0.2:breaker")
    stack.hostile.set_host_mode(None)


@pytest.mark.rabbitmq
def test_fanout_with_rabbitmq_as_the_broker(tmp_path: Path) -> None:
    require_service("RabbitMQ", port_open("127.0.0.1", 5672), "127.0.0.1:5672")
    require_service("Redis", port_open("127.0.0.1", 6379), "127.0.0.1:6379")
    gen = _start_stack(f"sqlite:///{tmp_path}/newsflash.db", tmp_path, broker_url=RABBIT_URL)
    stack = next(gen)
    try:
        subs = stack.standin.create_subscriptions(30)
        for sub in subs:
            stack.subscribe(sub, ["breaking"])
        answer = stack.publish()
        assert answer.status_code == 202
        final = stack.wait_status(answer.json["id"], "sent")
        assert final["counts"]["delivered"] == 30
        got = [
            p
            for p in _payloads_for(stack.standin, [s["endpoint"] for s in subs])
            if p["id"] == answer.json["id"]
        ]
        assert len(got) == 30
    finally:
        gen.close()


def test_each_reader_gets_the_alert_in_their_language(stack: Stack) -> None:
    """One alert in English and Kiswahili: the worker sends each reader their language's words
    (a reader who never named one gets NEWSFLASH_DEFAULT_LANG's), one alert, one report."""
    subs = stack.standin.create_subscriptions(3)
    for sub, lang in zip(subs, ["sw", "en", None], strict=True):
        body = {**sub, "topics": ["languages"], **({"lang": lang} if lang else {})}
        assert stack.client.post("/api/v1/subscriptions", json=body).status_code == 201
    answer = stack.publish(
        topics=["languages"],
        title="Harbour footbridge reopens early",
        body="Repairs finished ahead of schedule.",
        lang="en",
        translations={
            "sw": {"title": "Daraja lafunguliwa mapema", "body": "Ukarabati umekamilika."}
        },
    )
    assert answer.status_code == 202, answer.json
    final = stack.wait_status(answer.json["id"], "sent")
    assert final["counts"]["delivered"] == 3
    got = {}
    for sub in subs:
        [payload] = _payloads_for(stack.standin, [sub["endpoint"]])
        assert declarative_problems(payload) == []
        got[sub["endpoint"]] = (payload["title"], payload["notification"]["lang"])
    assert list(got.values()) == [
        ("Daraja lafunguliwa mapema", "sw"),
        ("Harbour footbridge reopens early", "en"),
        ("Harbour footbridge reopens early", "en"),  # no language said: the default (en)
    ]
