"""Hostile or broken push services: hang, trickle, redirect, 429 Retry-After 900, 503 storms, 403."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select

from core.adapters import tables as t
from core.model import LedgerStatus
from core.rejections import PENDING_TRIES
from standin.server import PushStandin
from tests.reliability.harness import (
    RedisServer,
    Rig,
    broker_messages,
    received_tokens,
    rig,
    token_of,
)
from tests.support.services import create_pg_database, drop_pg_database, port_open, require_service
from tests.support.stack import wait_until
from workers.factory import ALL_QUEUES

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.timeout(240)]

HEALTHY = 200
DEADLINE_S = 2.0
RETRY_AFTER_S = 900


def _foreign_key() -> str:
    point = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    )
    return base64.urlsafe_b64encode(point).rstrip(b"=").decode()


def _subscribe(r: Rig, subs: list[dict[str, Any]]) -> dict[str, int]:
    ids = {}
    for sub in subs:
        answer = r.client.post("/api/v1/subscriptions", json={**sub, "topics": ["breaking"]})
        assert answer.status_code == 201, answer.json
        ids[token_of(sub["endpoint"])] = int(answer.json["id"])
    return ids


@pytest.fixture(scope="module")
def hostile_run(
    tmp_path_factory: pytest.TempPathFactory, vapid_pem: str
) -> Iterator[dict[str, Any]]:
    require_service("PostgreSQL", port_open("127.0.0.1", 5432), "127.0.0.1:5432")
    tmp = tmp_path_factory.mktemp("hostile")
    redis = RedisServer(tmp / "redis").start()
    url = create_pg_database()
    good = PushStandin().start()  # 127.0.0.1: healthy readers and per-endpoint misbehaviour
    forbidding = PushStandin(host="127.0.0.2").start()  # a whole host answering 403
    throttling = PushStandin(host="127.0.0.3").start()  # 429 Retry-After: 900 (host-wide)
    sink = PushStandin(host="127.0.0.4").start()  # where the redirects point
    try:
        with rig(
            tmp,
            url,
            redis.url,
            vapid_pem,
            CONNECT_TIMEOUT_S="1",
            READ_TIMEOUT_S="1.5",
            REQUEST_DEADLINE_S=str(DEADLINE_S),
            RETRY_BASE_S="1",
            RETRY_MAX_ATTEMPTS="2",
            STALE_AFTER_S="20",
            BATCH_SIZE="100",
        ) as r:
            sink_url = f"{sink.origin}/_standin/redirect-sink"
            groups = {
                "healthy": good.create_subscriptions(HEALTHY),
                "hang": good.create_subscriptions(5, "hang"),
                "trickle": good.create_subscriptions(
                    3, "trickle", total_bytes=50 * 1024 * 1024, chunk_size=1024, interval_s=0.05
                ),
                "redirect": good.create_subscriptions(3, "redirect", location=sink_url),
                "storm": good.create_subscriptions(5, "error", status=503),
                "gone": [good.create_subscription("gone404"), good.create_subscription("gone410")],
                "forbidden": forbidding.create_subscriptions(5),
                # Made with another site's VAPID key: the healthy host answers them 403
                # (RFC 8292 4.2), as anyone who posts such a subscription can arrange.
                "foreign": good.create_subscriptions(3, application_server_key=_foreign_key()),
                "throttled": throttling.create_subscriptions(3, "throttle", retry_after=900),
            }
            forbidding.set_host_mode("forbidden")
            ids = {name: _subscribe(r, subs) for name, subs in groups.items()}
            worker = r.start({"hostile": 2})["hostile"]
            published = time.time()
            alert_id = r.publish()
            yield {
                "rig": r,
                "redis": redis,
                "good": good,
                "forbidding": forbidding,
                "throttling": throttling,
                "sink": sink,
                "groups": groups,
                "ids": ids,
                "alert_id": alert_id,
                "published": published,
                "worker_log": worker.log_path,
            }
            r.cancel(alert_id)
    finally:
        for standin in (good, forbidding, throttling, sink):
            standin.stop()
        drop_pg_database(url)
        redis.stop()


def _ledger_rows(r: Rig, alert_id: str) -> dict[int, tuple[int, float | None, int]]:
    d = t.deliveries
    with r.engine.connect() as conn:
        rows = conn.execute(
            select(d.c.subscription_id, d.c.status, d.c.next_attempt_at, d.c.attempts).where(
                d.c.alert_id == int(alert_id)
            )
        ).all()
    return {int(s): (int(st), nxt, int(n)) for s, st, nxt, n in rows}


def _settled(run: dict[str, Any]) -> dict[int, tuple[int, float | None, int]] | None:
    """The ledger once every misbehaving endpoint has had its last word."""
    rows = _ledger_rows(run["rig"], run["alert_id"])
    ids = run["ids"]
    final_groups = ("healthy", "hang", "trickle", "redirect", "storm", "gone")
    for group in final_groups:
        for sid in ids[group].values():
            if sid not in rows or not LedgerStatus(rows[sid][0]).final:
                return None
    for group in ("forbidden", "throttled"):
        if any(sid not in rows for sid in ids[group].values()):
            return None
    return rows


def test_healthy_readers_are_reached_on_time(hostile_run: dict[str, Any]) -> None:
    good, alert_id = hostile_run["good"], hostile_run["alert_id"]
    healthy = set(hostile_run["ids"]["healthy"])
    wait_until(
        lambda: healthy <= set(received_tokens(good, alert_id)),
        45,
        "every healthy reader despite the hostile push services",
        interval_s=0.2,
    )
    took = time.time() - hostile_run["published"]
    print(f"\nhealthy readers reached {took:.1f}s after publishing")


def test_every_request_is_bounded_and_no_worker_hangs(hostile_run: dict[str, Any]) -> None:
    rows = wait_until(lambda: _settled(hostile_run), 90, "every endpoint to have answered")
    ids = hostile_run["ids"]
    for group in ("hang", "storm"):
        for sid in ids[group].values():
            status, _next, attempts = rows[sid]
            assert status == LedgerStatus.FAILED and attempts == 2, (group, rows[sid])
    # The trickler's 50 MB body is never read: the answer's status is enough.
    for sid in ids["trickle"].values():
        assert rows[sid][0] == LedgerStatus.DELIVERED
    elapsed = [
        json.loads(line)["elapsed_s"]
        for line in Path(hostile_run["worker_log"]).read_text().splitlines()
        if line.startswith("{") and '"delivered batch"' in line
    ]
    assert elapsed, "no batch finished"
    # Up to the 100-reader batch's own deadline per round of requests, never an open-ended wait.
    assert max(elapsed) < 4 * DEADLINE_S + 10, elapsed
    assert "TimeLimitExceeded" not in Path(hostile_run["worker_log"]).read_text()


def test_only_404_and_410_delete_subscriptions(hostile_run: dict[str, Any]) -> None:
    r: Rig = hostile_run["rig"]
    wait_until(lambda: _settled(hostile_run), 90, "every endpoint to have answered")
    with r.engine.connect() as conn:
        remaining = set(conn.execute(select(t.subscriptions.c.id)).scalars())
    ids = hostile_run["ids"]
    gone = set(ids["gone"].values())
    everyone = {sid for group in ids.values() for sid in group.values()}
    assert remaining == everyone - gone


def test_redirects_are_never_followed(hostile_run: dict[str, Any]) -> None:
    wait_until(lambda: _settled(hostile_run), 90, "every endpoint to have answered")
    sink: PushStandin = hostile_run["sink"]
    assert sink.redirects_followed == 0
    assert sink.attempts == [] and sink.rejected == []
    rows = _ledger_rows(hostile_run["rig"], hostile_run["alert_id"])
    for sid in hostile_run["ids"]["redirect"].values():
        assert rows[sid][0] == LedgerStatus.FAILED  # a push service does not redirect


def test_a_forbidding_host_keeps_its_readers_and_is_held(hostile_run: dict[str, Any]) -> None:
    # The breaker holds the host once it has refused for a couple of seconds with nothing
    # delivered (one refusal may be one outsider's subscription, core/rejections.py).
    client = hostile_run["redis"].client()
    breaker = wait_until(
        lambda: client.get("newsflash:host:127.0.0.2:breaker"), 30, "the breaker to hold the host"
    )
    assert json.loads(breaker)["reason"] == "HTTP 403"
    rows = _ledger_rows(hostile_run["rig"], hostile_run["alert_id"])
    for sid in hostile_run["ids"]["forbidden"].values():
        assert rows[sid][0] in (LedgerStatus.RETRY, LedgerStatus.REQUEUED)
    # Each reader is asked a few times at most before that (RETRY_MAX_ATTEMPTS=2 here, and the
    # tries while the verdict is pending): no storm of 403s.
    forbidden = len(hostile_run["ids"]["forbidden"])
    assert len(hostile_run["forbidding"].attempts) <= (2 + PENDING_TRIES) * forbidden


def test_an_outsiders_refused_subscriptions_fail_alone_and_never_hold_the_host(
    hostile_run: dict[str, Any],
) -> None:
    # If one refusal held the host, three posted subscriptions would stop every alert to it.
    r, foreign = hostile_run["rig"], set(hostile_run["ids"]["foreign"].values())

    def failed() -> bool:
        rows = _ledger_rows(r, hostile_run["alert_id"])
        return all(sid in rows and rows[sid][0] == LedgerStatus.FAILED for sid in foreign)

    wait_until(failed, 60, "the foreign-key readers to be failed")
    assert hostile_run["redis"].client().get("newsflash:host:127.0.0.1:breaker") is None
    healthy = set(hostile_run["ids"]["healthy"])
    assert healthy <= set(received_tokens(hostile_run["good"], hostile_run["alert_id"]))


def test_a_900s_retry_after_waits_in_the_database_not_in_the_broker(
    hostile_run: dict[str, Any],
) -> None:
    r: Rig = hostile_run["rig"]
    rows = wait_until(lambda: _settled(hostile_run), 90, "every endpoint to have answered")
    for sid in hostile_run["ids"]["throttled"].values():
        status, next_at, _attempts = rows[sid]
        assert status == LedgerStatus.RETRY
        assert next_at is not None
        assert next_at >= hostile_run["published"] + RETRY_AFTER_S - 5
    assert len(hostile_run["throttling"].attempts) == 3, "the held host was tried again"
    messages = broker_messages(hostile_run["redis"].client(), ALL_QUEUES)
    delayed = [
        m["headers"].get("task")
        for m in messages
        if m["headers"].get("eta") is not None or m["headers"].get("countdown") is not None
    ]
    assert delayed == [], f"waits parked in the broker: {delayed}"
    alert = r.alert(hostile_run["alert_id"])
    assert alert["status"] == "sending" and alert["counts"]["pending"] >= 8


def test_a_batch_waiting_on_hung_requests_is_not_taken_for_dead(
    tmp_path: Path, redis_url: str, vapid_pem: str
) -> None:
    """Nothing comes back from a batch whose every request hangs, for up to a request deadline:
    its heartbeat must go on, or the reconciler hands it to a second sender."""
    from core import alerts, delivery
    from core.adapters.hosts import MemoryHostHealth
    from core.adapters.webpush import Http11PushSender, SenderConfig, VapidSigner
    from core.model import AlertDraft, Urgency
    from tests.reliability.harness import bulk_subscribe
    from tests.support.fakes import RecordingQueue

    standin = PushStandin().start()
    try:
        with rig(tmp_path, f"sqlite:///{tmp_path}/nf.db", redis_url, vapid_pem) as r:
            bulk_subscribe(r.store, standin.create_subscriptions(3, "hang"), ["breaking"])
            policy = delivery.DeliveryPolicy(batch_size=10, stale_after_s=1.0, lease_s=1.0)
            queue = RecordingQueue()
            draft = AlertDraft(
                "Hang", "on", f"{r.settings.public_origins[0]}/x", ("breaking",), Urgency.HIGH, 600
            )
            alert, _ = alerts.publish(
                draft, r.store.alerts, r.store.subscriptions, queue, time.time()
            )
            delivery.plan_fanout(alert.id, r.store.planning, queue, policy)
            sender = Http11PushSender(
                VapidSigner(vapid_pem, "mailto:ops@news.example"),
                SenderConfig(
                    connect_timeout_s=1, read_timeout_s=4, deadline_s=4, allow_loopback=True
                ),
            )
            batch_id = queue.batches[0]
            run = threading.Thread(
                target=delivery.deliver_batch,
                args=(batch_id, r.store.ledger, sender, MemoryHostHealth(), policy),
            )
            run.start()
            wait_until(lambda: len(standin.attempts) == 3, 10, "the three requests to hang")
            time.sleep(2.5)  # well past the lease with nothing recorded: only the renewals keep it
            assert r.store.ledger.claim_batch(batch_id, time.time(), policy.lease_s) is None
            run.join(20)
            sender.close()
            assert not run.is_alive()
            assert len(standin.attempts) == 3, "a hung batch was sent twice"
    finally:
        standin.stop()
