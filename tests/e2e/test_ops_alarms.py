"""Every alarm made to fire for real and to clear when its cause goes away, seen as POSTs on a
webhook receiver on 127.0.0.1: live workers and beat, the broker and the database reached
through TCP proxies the test can cut."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis as redis_lib
from flask.testing import FlaskClient

from core.accounts import Role
from core.adapters.hosts import RedisHostHealth
from standin.server import PushStandin
from tests.support.live_stack import LiveStack, live_stack
from tests.support.ops import TcpProxy, WebhookReceiver
from tests.support.services import (
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
class AlarmStack:
    live: LiveStack
    client: FlaskClient
    editor_token: str
    ops_token: str
    hook: WebhookReceiver
    broker: TcpProxy
    database: TcpProxy
    standin: PushStandin
    hostile: PushStandin
    redis: redis_lib.Redis
    processes: list[Process]

    def publish(self, **fields: Any) -> str:
        body = {
            "title": "Alarm test " + uuid.uuid4().hex[:6],
            "body": "Something happened.",
            "url": f"{ORIGIN}/news/{uuid.uuid4().hex[:6]}",
            **fields,
        }
        answer = self.client.post(
            "/api/v1/alerts", json=body, headers={"Authorization": f"Bearer {self.editor_token}"}
        )
        assert answer.status_code == 202, answer.json
        return str(answer.json["id"])

    def status(self, alert_id: str) -> str:
        answer = self.client.get(
            f"/api/v1/alerts/{alert_id}", headers={"Authorization": f"Bearer {self.editor_token}"}
        )
        return str(answer.json["status"])

    def ops_alarms(self) -> set[str]:
        answer = self.client.get(
            "/api/v1/ops/queues", headers={"Authorization": f"Bearer {self.ops_token}"}
        )
        assert answer.status_code == 200
        return {a["key"] for a in answer.json["alarms"] or []}

    def fired(self, alarm: str, timeout_s: float = 30) -> dict[str, Any]:
        return wait_until(
            lambda: next(iter(self.hook.events(alarm, "firing")), None),
            timeout_s,
            f"a firing POST for {alarm}",
            interval_s=0.1,
        )

    def resolved(self, alarm: str, timeout_s: float = 30) -> dict[str, Any]:
        return wait_until(
            lambda: next(iter(self.hook.events(alarm, "resolved")), None),
            timeout_s,
            f"a resolved POST for {alarm}",
            interval_s=0.1,
        )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AlarmStack]:
    require_service("Redis", port_open("127.0.0.1", 6379), "127.0.0.1:6379")
    require_service("PostgreSQL", port_open("127.0.0.1", 5432), "127.0.0.1:5432")
    tmp = tmp_path_factory.mktemp("ops-alarms")
    redis_url = f"redis://127.0.0.1:6379/{TEST_REDIS_DB}"
    client = redis_lib.Redis.from_url(redis_url)
    client.flushdb()
    plain_url = create_pg_database()
    hook = WebhookReceiver().start()
    broker = TcpProxy(6379).restore()
    database = TcpProxy(5432).restore()
    pem = new_vapid_pem()
    try:
        with live_stack(
            tmp,
            plain_url.replace("127.0.0.1:5432", f"127.0.0.1:{database.port}"),
            redis_url,
            pem,
            migrate_url=plain_url,
            hostile=True,
            # No worker on the breaking lane to begin with: that is the first alarm.
            workers=[("worker-routine", "newsflash.routine,newsflash.maintenance", 2)],
            BROKER_URL=f"redis://127.0.0.1:{broker.port}/{TEST_REDIS_DB}",
            ALERT_WEBHOOK=hook.url,
            ALARM_INTERVAL_S="1",
            ALARM_STALL_S="2",
            ALARM_PENDING_S="3",
            ALARM_FOR_S="1",
            INSPECT_TIMEOUT_S="0.5",
            OPS_CACHE_S="0",
            RATE_LIMIT_SUBSCRIBE="10000 per minute",
            TOPICS="breaking:Breaking news:default,sport",
        ) as live:
            assert live.hostile is not None
            yield AlarmStack(
                live,
                live.client,
                live.token("alarms editor", Role.EDITOR),
                live.token("alarms ops", Role.OPS),
                hook,
                broker,
                database,
                live.standin,
                live.hostile,
                client,
                live.processes,
            )
    finally:
        broker.cut()
        database.cut()
        hook.stop()
        drop_pg_database(plain_url)


def test_a_stalled_breaking_lane_fires_three_alarms_that_clear_when_a_worker_comes(
    stack: AlarmStack,
) -> None:
    unattended = stack.fired("breaking_lane_unattended")
    assert unattended["source"] == "newsflash" and "newsflash.breaking" in unattended["summary"]

    for sub in stack.standin.create_subscriptions(4):
        answer = stack.client.post("/api/v1/subscriptions", json={**sub, "topics": ["breaking"]})
        assert answer.status_code == 201
    alert_id = stack.publish(topics=["breaking"])

    stalled = stack.fired("queue_stalled:newsflash.breaking")
    assert stalled["detail"]["queue"] == "newsflash.breaking" and stalled["detail"]["depth"] >= 1
    pending = stack.fired("pending_too_old")
    assert pending["detail"]["oldest_pending_s"] >= 3
    assert {
        "breaking_lane_unattended",
        "queue_stalled:newsflash.breaking",
        "pending_too_old",
    } <= stack.ops_alarms()
    ops = {"Authorization": f"Bearer {stack.ops_token}"}
    ready = stack.client.get("/readyz", headers=ops).json
    assert "queue_stalled:newsflash.breaking" in {a["key"] for a in ready["alarms"]}
    assert "alarms" not in stack.client.get("/readyz").json  # public: status and checks only

    stack.live.start_worker("worker-breaking", "newsflash.breaking")
    wait_until(lambda: stack.status(alert_id) == "sent", 30, "the alert to be sent", 0.2)
    for alarm in (
        "breaking_lane_unattended",
        "queue_stalled:newsflash.breaking",
        "pending_too_old",
    ):
        resolved = stack.resolved(alarm)
        assert resolved["duration_s"] > 0 and resolved["text"].startswith("[newsflash] RESOLVED")
        assert len(stack.hook.events(alarm, "firing")) == 1, f"{alarm} announced twice"
    wait_until(lambda: not stack.ops_alarms(), 10, "/ops to show no alarm")


def test_a_push_host_refusing_our_key_opens_its_breaker_and_alarms(stack: AlarmStack) -> None:
    refused = stack.hostile.create_subscriptions(3, "forbidden")
    for sub in refused:
        answer = stack.client.post("/api/v1/subscriptions", json={**sub, "topics": ["sport"]})
        assert answer.status_code == 201
    stack.publish(topics=["sport"], urgency="normal")  # the routine lane

    fired = stack.fired("breaker_open:127.0.0.2")
    assert fired["detail"] == {"push_host": "127.0.0.2", "reason": "HTTP 403"}
    assert "VAPID" in fired["summary"]

    # The cause going away: the refused readers leave and the breaker closes (it expires by
    # itself after a while). With the readers still there, their held pushes would be tried
    # again as soon as it closed, refused again and reopen it before an alarm round saw it shut.
    for sub in refused:
        gone = stack.client.post(
            "/api/v1/subscriptions/delete",
            json={"endpoint": sub["endpoint"], "auth": sub["keys"]["auth"]},
        )
        assert gone.status_code == 204
    RedisHostHealth(stack.redis).close_breaker("127.0.0.2")
    stack.resolved("breaker_open:127.0.0.2")


def test_an_unreachable_broker_is_reported_by_beat_itself(stack: AlarmStack) -> None:
    stack.broker.cut()
    try:
        fired = stack.fired("broker_unreachable", timeout_s=30)
        assert fired["detail"]["error"].startswith("unreachable")
    finally:
        stack.broker.restore()
    stack.resolved("broker_unreachable", timeout_s=30)
    beat = next(p for p in stack.processes if p.name == "beat")
    assert "beat evaluates alarms itself" in beat.output()

    def logged(text: str) -> list[tuple[str, str]]:
        return [
            ((e := json.loads(line))["level"], e["msg"].split(":")[0])
            for line in text.splitlines()
            if line.startswith("{") and '"alarm": "broker_unreachable"' in line
        ]

    # Only beat could see the outage; whoever evaluated first afterwards logged the recovery.
    assert logged(beat.output())[:1] == [("ERROR", "alarm firing")]
    everywhere = [entry for p in stack.processes for entry in logged(p.output())]
    assert sorted(everywhere) == [("ERROR", "alarm firing"), ("WARNING", "alarm resolved")]


def test_an_unreachable_database_alarms_and_clears(stack: AlarmStack) -> None:
    stack.database.cut()
    try:
        fired = stack.fired("database_unreachable", timeout_s=30)
        assert fired["detail"]["error"].startswith("unreachable")
    finally:
        stack.database.restore()
    stack.resolved("database_unreachable", timeout_s=30)
    assert len(stack.hook.events("database_unreachable", "firing")) == 1
