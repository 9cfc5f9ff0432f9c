"""Correlated logs: one alert's request id from the POST through the plan and every batch."""

from __future__ import annotations

import io
import json
import logging
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis as redis_lib
from kombu import Queue

from core import correlation
from core.adapters.logs import make_handler
from standin.server import PushStandin
from tests.reliability.harness import ORIGIN, Rig, rig, token_of
from tests.support.services import TEST_REDIS_DB, port_open, require_service
from tests.support.stack import Process, wait_until
from workers.factory import TASK_DELIVER, TASK_PLAN, make_celery

pytestmark = [pytest.mark.timeout(240)]


@dataclass
class Live:
    rig: Rig
    standin: PushStandin
    worker: Process
    web_log: io.StringIO


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, vapid_pem: str) -> Iterator[Live]:
    require_service("Redis", port_open("127.0.0.1", 6379), "127.0.0.1:6379")
    tmp = tmp_path_factory.mktemp("correlation")
    redis_url = f"redis://127.0.0.1:6379/{TEST_REDIS_DB}"
    redis_lib.Redis.from_url(redis_url).flushdb()
    # The web process's handler (as service/wsgi.py installs it), into a buffer.
    web_log = io.StringIO()
    handler = make_handler(json_lines=True, stream=web_log)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        url = f"sqlite:///{tmp}/nf.db"
        with rig(tmp, url, redis_url, vapid_pem, standin=True, BATCH_SIZE="4") as r:
            started = r.start({"worker": 2})
            yield Live(r, r.standin, started["worker"], web_log)
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def _lines(text: str) -> list[dict[str, Any]]:
    found = []
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                found.append(json.loads(line))
            except ValueError:
                continue
    return found


def _about(lines: list[dict[str, Any]], alert_id: str) -> list[dict[str, Any]]:
    return [entry for entry in lines if str(entry.get("alert_id")) == alert_id]


def test_one_alerts_request_id_is_on_the_post_the_plan_and_every_batch(live: Live) -> None:
    r = live.rig
    subs = live.standin.create_subscriptions(10)
    for sub in subs:
        assert r.client.post("/api/v1/subscriptions", json=sub).status_code == 201
    request_id = uuid.uuid4().hex  # a proxy's 32-hex id: it must survive redaction
    answer = r.client.post(
        "/api/v1/alerts",
        json={
            "title": "Breaking: correlated",
            "body": "One id from the POST to the last push.",
            "url": f"{ORIGIN}/news/{uuid.uuid4().hex[:6]}",
            "topics": ["breaking"],
        },
        headers={**r.auth(), "X-Request-Id": request_id},
    )
    assert answer.status_code == 202, answer.json
    assert answer.headers["X-Request-Id"] == request_id
    alert_id = str(answer.json["id"])
    r.wait_status(alert_id, "sent", timeout_s=90)
    batches = sum(r.batch_states(alert_id).values())
    assert batches >= 3  # 10 readers in batches of 4: the plan sent several tasks
    wait_until(
        lambda: (
            len(
                [
                    e
                    for e in _about(_lines(live.worker.output()), alert_id)
                    if e["msg"] == "delivered batch"
                ]
            )
            >= batches
        ),
        30,
        "the worker to log every batch",
        interval_s=0.2,
    )

    web = _about(_lines(live.web_log.getvalue()), alert_id)
    posts = [e for e in web if e["msg"] == "request" and e.get("route") == "/api/v1/alerts"]
    assert [(e["method"], e["status"], e["request_id"]) for e in posts] == [
        ("POST", 202, request_id)
    ]
    assert isinstance(posts[0]["ms"], float | int)
    # Later requests about the alert (here a too-late cancel) are on its path too.
    late = r.client.post(f"/api/v1/alerts/{alert_id}/cancel", json={}, headers=r.auth())
    assert late.status_code == 409
    cancels = [
        e
        for e in _about(_lines(live.web_log.getvalue()), alert_id)
        if e.get("route") == "/api/v1/alerts/<int:alert_id>/cancel"
    ]
    assert [(e["status"], e["request_id"]) for e in cancels] == [
        (409, late.headers["X-Request-Id"])
    ]

    worker = _about(_lines(live.worker.output()), alert_id)
    assert worker, "the worker logged nothing naming the alert"
    assert {e.get("request_id") for e in worker} == {request_id}, worker
    assert [e["msg"] for e in worker].count("planned") == 1
    delivered = [e for e in worker if e["msg"] == "delivered batch"]
    assert len(delivered) == batches
    assert len({e["batch_id"] for e in delivered}) == batches
    assert all(e["task_id"] for e in delivered)

    # Nothing any of those lines say leaks where or how a reader is reached.
    everything = live.web_log.getvalue() + live.worker.output()
    secrets = [s["endpoint"] for s in subs] + [token_of(s["endpoint"]) for s in subs]
    secrets += [s["keys"]["p256dh"] for s in subs] + [s["keys"]["auth"] for s in subs]
    assert [s for s in secrets if s in everything] == []


def test_a_scheduled_alert_sent_later_by_beat_keeps_the_request_id_of_its_post(
    live: Live,
) -> None:
    r = live.rig
    subs = live.standin.create_subscriptions(6)
    for sub in subs:
        assert r.client.post("/api/v1/subscriptions", json=sub).status_code == 201
    request_id = "cms-" + uuid.uuid4().hex[:12]
    answer = r.client.post(
        "/api/v1/alerts",
        json={
            "title": "Scheduled: correlated",
            "body": "Sent by beat a moment later.",
            "url": f"{ORIGIN}/news/{uuid.uuid4().hex[:6]}",
            "topics": ["breaking"],
            "send_at": time.time() + 3,
        },
        headers={**r.auth(), "X-Request-Id": request_id},
    )
    assert answer.status_code == 202 and answer.json["status"] == "scheduled", answer.json
    alert_id = str(answer.json["id"])
    r.wait_status(alert_id, "sent", timeout_s=90)
    batches = sum(r.batch_states(alert_id).values())
    wait_until(
        lambda: (
            [e["msg"] for e in _about(_lines(live.worker.output()), alert_id)].count(
                "delivered batch"
            )
            >= batches
        ),
        30,
        "the worker to log every batch",
        interval_s=0.2,
    )
    worker = _about(_lines(live.worker.output()), alert_id)
    # Beat's sweep sent the plan from a task of its own; the plan still names the POST.
    assert [e["msg"] for e in worker].count("planned") == 1
    assert {e.get("request_id") for e in worker} == {request_id}, worker


def test_an_unsafe_request_id_is_replaced_and_every_request_is_logged(live: Live) -> None:
    r = live.rig
    for hostile in ("x" * 65, "a b", "id;forged=1", "https://push.example/abc"):
        answer = r.client.get(
            "/api/v1/alerts?token=nf_secret123456",
            headers={
                **r.auth(),
                "X-Request-Id": hostile,
            },
        )
        assert answer.status_code == 200
        issued = answer.headers["X-Request-Id"]
        assert issued != hostile and correlation.sane_request_id(issued) == issued
        lines = [e for e in _lines(live.web_log.getvalue()) if e.get("request_id") == issued]
        assert [(e["msg"], e["method"], e["route"], e["status"]) for e in lines] == [
            ("request", "GET", "/api/v1/alerts", 200)
        ]
    assert "nf_secret123456" not in live.web_log.getvalue()


def test_flower_sees_the_alert_and_request_in_the_task_arguments(live: Live) -> None:
    # Sent to queues no worker reads, so the raw messages stay in Redis to be read back.
    app = make_celery(live.rig.settings)
    client = redis_lib.Redis.from_url(live.rig.settings.broker_url)
    with correlation.scope("req-flower-1"):
        app.send_task(TASK_PLAN, args=[41], queue=Queue("nf-test-idle-plan"))
        app.send_task(TASK_DELIVER, args=[7, 41], queue=Queue("nf-test-idle-deliver"))
    try:
        # Only these two queues: the broker's unacked set holds the live worker's own tasks.
        messages = [
            json.loads(raw)
            for queue in ("nf-test-idle-plan", "nf-test-idle-deliver")
            for raw in client.lrange(queue, 0, -1)
        ]
        shown = sorted(
            (m["headers"]["task"], m["headers"]["argsrepr"], m["headers"]["nf_request_id"])
            for m in messages
        )
        assert shown == [
            (TASK_DELIVER, "(batch=7, alert=41, request_id=req-flower-1)", "req-flower-1"),
            (TASK_PLAN, "(alert=41, request_id=req-flower-1)", "req-flower-1"),
        ]
    finally:
        client.delete("nf-test-idle-plan", "nf-test-idle-deliver")
