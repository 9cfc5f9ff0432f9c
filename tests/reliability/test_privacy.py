"""Privacy: unsubscribing deletes at once, beat's purge forgets idle readers, logs hold no secrets;
and beat's other hourly duty to subscriptions, moving quiet hours with summer time."""

from __future__ import annotations

import io
import json
import logging
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select, update

from core.accounts import Role
from core.adapters import tables as t
from core.adapters.accounts_sql import SqlAccounts
from core.adapters.logs import make_handler
from core.quiet import zone_offset_min
from standin.server import PushStandin
from tests.reliability.harness import RedisServer, Rig, received_tokens, rig, token_of
from tests.support.stack import Process, wait_until
from workers.factory import TASK_PURGE, TASK_QUIET_ZONES, celery_config, make_celery

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

PASSWORD = "correct horse battery staple"
EDITOR = "editor@news.example"


@dataclass
class Live:
    rig: Rig
    standin: PushStandin
    worker: Process
    beat: Process
    web_log: io.StringIO


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, vapid_pem: str) -> Iterator[Live]:
    tmp = tmp_path_factory.mktemp("privacy")
    redis = RedisServer(tmp / "redis").start()
    # The web process's own log handler (service/wsgi.py), at DEBUG, into a buffer.
    web_log = io.StringIO()
    handler = make_handler(json_lines=True, stream=web_log)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        with rig(
            tmp,
            f"sqlite:///{tmp}/nf.db",
            redis.url,
            vapid_pem,
            standin=True,
            LOG_LEVEL="DEBUG",
            SUBSCRIPTION_MAX_AGE_DAYS="1",
            RETRY_BASE_S="0.5",
        ) as r:
            started = r.start({"worker": 2})
            yield Live(r, r.standin, started["worker"], started["beat"], web_log)
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        redis.stop()


def test_unsubscribing_deletes_the_row_at_once(live: Live) -> None:
    r = live.rig
    sub = live.standin.create_subscription()
    assert r.client.post("/api/v1/subscriptions", json=sub).status_code == 201
    before = r.subscription_count()
    answer = r.client.post(
        "/api/v1/subscriptions/delete",
        json={"endpoint": sub["endpoint"], "auth": sub["keys"]["auth"]},
    )
    assert answer.status_code == 204
    # No grace period, no soft delete: the very next read no longer finds the reader.
    assert r.subscription_count() == before - 1
    assert r.store.subscriptions.get_by_endpoint(sub["endpoint"]) is None
    alert_id = r.publish()
    r.wait_status(alert_id, "sent", timeout_s=60)
    assert token_of(sub["endpoint"]) not in received_tokens(live.standin, alert_id)


def test_beat_purges_subscriptions_not_seen_for_the_max_age(live: Live) -> None:
    r = live.rig
    stale = [live.standin.create_subscription() for _ in range(3)]
    fresh = live.standin.create_subscription()
    for sub in [*stale, fresh]:
        assert r.client.post("/api/v1/subscriptions", json=sub).status_code == 201
    two_days_ago = time.time() - 2 * 86400
    with r.engine.begin() as conn:
        conn.execute(
            update(t.subscriptions)
            .where(t.subscriptions.c.endpoint.in_([s["endpoint"] for s in stale]))
            .values(last_seen_at=two_days_ago)
        )
    audience = r.store.subscriptions.audience_size(["breaking"])
    # Beat sends this task every hour (the schedule below); here it is sent at once to the
    # live worker, exactly as beat sends it.
    schedule = celery_config(r.settings)["beat_schedule"]
    purge = [entry for entry in schedule.values() if entry["task"] == TASK_PURGE]
    assert len(purge) == 1 and purge[0]["schedule"] == 3600.0
    make_celery(r.settings).send_task(TASK_PURGE)
    wait_until(
        lambda: all(r.store.subscriptions.get_by_endpoint(s["endpoint"]) is None for s in stale),
        60,
        "the live worker to purge the idle readers",
        interval_s=0.2,
    )
    assert r.store.subscriptions.get_by_endpoint(fresh["endpoint"]) is not None
    assert r.store.subscriptions.audience_size(["breaking"]) == audience - len(stale)


def _secrets(live: Live, subs: list[dict[str, Any]]) -> dict[str, str]:
    r = live.rig
    found = {"api token": r.token, "password": PASSWORD, "secret key": r.settings.secret_key}
    found["webhook secret"] = r.settings.cms_webhook_secret
    pem_body = "".join(
        line
        for line in r.settings.vapid_private_key_pem.splitlines()
        if line and not line.startswith("-----")
    )
    found["vapid key"] = pem_body[:40]
    for i, sub in enumerate(subs):
        found[f"endpoint {i}"] = sub["endpoint"]
        found[f"endpoint token {i}"] = token_of(sub["endpoint"])
        found[f"p256dh {i}"] = sub["keys"]["p256dh"]
        found[f"auth {i}"] = sub["keys"]["auth"]
    return found


def test_beat_moves_quiet_hours_with_their_zones_summer_time(live: Live) -> None:
    r = live.rig
    sub = live.standin.create_subscription()
    assert r.client.post("/api/v1/subscriptions", json=sub).status_code == 201
    found = r.store.subscriptions.get_by_endpoint(sub["endpoint"])
    assert found is not None
    now = zone_offset_min("Europe/London", time.time())
    then = 60 - now  # saved in the other season: 0 in summer, 60 in winter
    with r.engine.begin() as conn:  # London 23:00-07:00, as saved then
        conn.execute(
            update(t.subscriptions)
            .where(t.subscriptions.c.id == found.id)
            .values(
                quiet_start=23 * 60,
                quiet_end=7 * 60,
                quiet_zone="Europe/London",
                tz_offset_min=then,
                quiet_start_utc=23 * 60 - then,
                quiet_end_utc=7 * 60 - then,
            )
        )
    schedule = celery_config(r.settings)["beat_schedule"]
    hourly = [entry for entry in schedule.values() if entry["task"] == TASK_QUIET_ZONES]
    assert len(hourly) == 1 and hourly[0]["schedule"] == 3600.0
    make_celery(r.settings).send_task(TASK_QUIET_ZONES)
    s = t.subscriptions.c

    def window() -> tuple[int, int, int]:
        with r.engine.connect() as conn:
            row = conn.execute(
                select(s.quiet_start_utc, s.quiet_end_utc, s.tz_offset_min).where(s.id == found.id)
            ).one()
        return (row[0], row[1], row[2])

    wait_until(lambda: window()[2] == now, 60, "the live worker to move the quiet hours", 0.2)
    assert window() == (23 * 60 - now, 7 * 60 - now, now)


def test_logs_of_a_fanout_hold_no_endpoint_key_token_or_password(live: Live) -> None:
    r, standin = live.rig, live.standin
    SqlAccounts(r.engine).create_user(EDITOR, PASSWORD, Role.EDITOR)
    subs = standin.create_subscriptions(8)
    subs += [standin.create_subscription("gone404"), standin.create_subscription("gone410")]
    subs += [standin.create_subscription("error", status=503, times=1)]
    subs += [standin.create_subscription("error", status=413)]
    subs += [standin.create_subscription("throttle", retry_after=1, times=1)]
    for sub in subs:
        assert r.client.post("/api/v1/subscriptions", json=sub).status_code in (200, 201)
    # The same reader again, a topic change, and refusals that could echo what was sent.
    answers = [
        r.client.post("/api/v1/subscriptions", json=subs[0]),
        r.client.put("/api/v1/subscriptions", json={**subs[1], "topics": ["breaking", "sport"]}),
        r.client.post(
            "/api/v1/subscriptions", json={**subs[2], "endpoint": subs[2]["endpoint"] + "?x=1#f"}
        ),
        r.client.post(
            "/api/v1/subscriptions",
            json={**subs[2], "keys": {"p256dh": subs[2]["keys"]["auth"], "auth": "x"}},
        ),
        r.client.post("/api/v1/subscriptions/delete", json={"endpoint": subs[3]["endpoint"]}),
        r.client.post(
            "/api/v1/subscriptions/delete",
            json={"endpoint": subs[3]["endpoint"], "auth": "wrong"},
        ),
        r.client.get("/api/v1/alerts", headers={"Authorization": f"Bearer {r.token}x"}),
    ]
    # A newsroom login, right and wrong (the form posts the password).
    page = r.client.get("/editor/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    form = {"email": EDITOR, "password": PASSWORD}
    if token:
        form["csrf_token"] = token.group(1)
    answers.append(r.client.post("/editor/login", data={**form, "password": PASSWORD + "!"}))
    answers.append(r.client.post("/editor/login", data=form))

    alert_id = r.publish()
    r.wait_status(alert_id, "sent", timeout_s=90)
    time.sleep(1.5)  # let the worker's last lines reach its log file

    logs = {
        "web": live.web_log.getvalue(),
        "worker": live.worker.output(),
        "beat": live.beat.output(),
        "audit": json.dumps(SqlAccounts(r.engine).audit_entries(1000), default=str),
        "responses": "\n".join(a.get_data(as_text=True) for a in answers),
    }
    assert all(logs.values()), {k: len(v) for k, v in logs.items()}
    # The logs did record the fan-out (a test that reads empty logs proves nothing).
    assert "delivered batch" in logs["worker"] and "batch done" in logs["worker"]
    assert "127.0.0.1" in logs["worker"]  # the push host is kept, only the rest is hidden
    leaks = [
        f"{what} in the {where} log"
        for what, secret in _secrets(live, subs).items()
        for where, text in logs.items()
        if secret and secret in text
    ]
    assert leaks == []
    print(f"\nlogs checked: {', '.join(f'{k} {len(v)} bytes' for k, v in logs.items())}")
