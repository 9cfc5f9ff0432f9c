"""A real fan-out (live worker and beat, push stand-in, PostgreSQL, Redis broker) watched through
/ops, /api/v1/ops/queues and /metrics: the numbers must be the database's and the broker's, the
page must show the send while it runs, and the worker's logs must hold no secret."""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis as redis_lib
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from core.accounts import Role
from core.adapters import tables as t
from core.endpoints import redact_endpoint
from core.model import Lane
from standin.server import PushStandin
from tests.support.live_stack import live_stack
from tests.support.ops import stop_all
from tests.support.services import (
    ARTIFACTS,
    TEST_REDIS_DB,
    create_pg_database,
    drop_pg_database,
    new_vapid_pem,
    port_open,
    require_service,
)
from tests.support.stack import Process, wait_until
from workers.factory import ALL_QUEUES

ORIGIN = "http://127.0.0.1:8000"
DB_PASSWORD = "never-in-logs-" + uuid.uuid4().hex[:8]
OPS_PASSWORD = "ops-password-" + uuid.uuid4().hex[:8]
METRICS_TOKEN = "metrics-" + uuid.uuid4().hex
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@dataclass
class OpsStack:
    app: Flask
    client: FlaskClient
    base_url: str
    env: dict[str, str]
    editor_token: str
    ops_token: str
    ops_email: str
    standin: PushStandin
    worker: Process
    beat: Process
    engine: Any
    redis: redis_lib.Redis

    def get(self, path: str, token: str | None = None) -> Any:
        headers = {"Authorization": f"Bearer {token or self.ops_token}"}
        return self.client.get(path, headers=headers)

    def snapshot(self) -> dict[str, Any]:
        answer = self.get("/api/v1/ops/queues")
        assert answer.status_code == 200, answer.data[:300]
        return dict(answer.json)

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        answer = self.client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        assert answer.status_code == 200
        assert answer.content_type.startswith("text/plain")
        samples = {}
        for family in text_string_to_metric_families(answer.get_data(as_text=True)):
            for s in family.samples:
                samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
        return samples


def metric_sum(samples: dict[Any, float], name: str, **labels: str) -> float:
    return sum(
        v
        for (n, lbl), v in samples.items()
        if n == name and all(dict(lbl).get(k) == want for k, want in labels.items())
    )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpsStack]:
    require_service("Redis", port_open("127.0.0.1", 6379), "127.0.0.1:6379")
    require_service("PostgreSQL", port_open("127.0.0.1", 5432), "127.0.0.1:5432")
    tmp = tmp_path_factory.mktemp("ops-fanout")
    redis_url = f"redis://127.0.0.1:6379/{TEST_REDIS_DB}"
    client = redis_lib.Redis.from_url(redis_url)
    client.flushdb()
    plain_url = create_pg_database()
    # Trust auth ignores the password, so it can be in the URL to prove it never reaches a log.
    database_url = plain_url.replace("postgres@", f"postgres:{DB_PASSWORD}@")
    pem = new_vapid_pem()
    try:
        with live_stack(
            tmp,
            database_url,
            redis_url,
            pem,
            serve=True,
            BATCH_SIZE="10",
            RETRY_BASE_S="0.5",
            RETRY_MAX_ATTEMPTS="8",
            RATE_LIMIT_SUBSCRIBE="10000 per minute",
            RATE_LIMIT_LOGIN="1000 per minute",
            METRICS_TOKEN=METRICS_TOKEN,
            ALARM_INTERVAL_S="1",
            OPS_CACHE_S="0.5",
            TOPICS="breaking:Breaking news:default,politics,sport",
        ) as live:
            ops_email = f"ops-{uuid.uuid4().hex[:6]}@news.example"
            live.create_user(ops_email, OPS_PASSWORD, Role.OPS)
            assert live.base_url is not None and live.beat is not None
            yield OpsStack(
                live.app,
                live.client,
                live.base_url,
                live.env,
                live.token("e2e editor", Role.EDITOR),
                live.token("e2e prometheus", Role.OPS),
                ops_email,
                live.standin,
                live.worker,
                live.beat,
                live.engine,
                client,
            )
    finally:
        drop_pg_database(plain_url)


def _watch_a_send_on_ops(
    stack: OpsStack, publish: Callable[[], str], path: Path
) -> tuple[str, str]:
    """Log in to /ops in Chromium, publish, and take the screenshot while the send runs."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1300})
            page.goto(stack.base_url + "/ops")
            assert "/editor/login" in page.url, "an anonymous visitor must be sent to log in"
            page.fill("#email", stack.ops_email)
            page.fill("#password", OPS_PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url("**/ops", timeout=15_000)
            page.locator("#health.pill-ok").wait_for(timeout=15_000)
            alert_id = publish()
            # Live: the page redraws by itself (no reload); wait for a poll showing progress.
            page.wait_for_function(
                """id => {
                    const bar = document.querySelector(`[data-alert="${id}"] [role=progressbar]`);
                    const now = bar && Number(bar.getAttribute("aria-valuenow"));
                    return now > 0 && now < 100;
                }""",
                arg=alert_id,
                timeout=20_000,
                polling=100,
            )
            page.screenshot(path=str(path), full_page=True)
            text = page.inner_text("main")
        finally:
            browser.close()
    return alert_id, text


def test_ops_shows_a_live_send_and_its_numbers_match_the_database_and_the_broker(
    stack: OpsStack,
) -> None:
    rng = random.Random(6)
    # Answers spread over 2-6.5 s: the send stays visibly in progress for seconds whatever
    # the sender's window (from 64 in flight at once, one 2 s wave was over between two polls).
    slow = [
        sub
        for delay_s in (2.0, 3.5, 5.0, 6.5)
        for sub in stack.standin.create_subscriptions(10, "slow", delay_s=delay_s)
    ]
    gone = stack.standin.create_subscriptions(5, "gone410")
    flaky = stack.standin.create_subscriptions(5, "error", status=503, times=1)
    everyone = slow + gone + flaky
    rng.shuffle(everyone)
    for sub in everyone:
        answer = stack.client.post("/api/v1/subscriptions", json={**sub, "topics": ["breaking"]})
        assert answer.status_code == 201, answer.json
    sport = stack.standin.create_subscriptions(3)
    for sub in sport:
        stack.client.post("/api/v1/subscriptions", json={**sub, "topics": ["sport"]})

    def publish() -> str:
        answer = stack.client.post(
            "/api/v1/alerts",
            json={
                "title": "Breaking: ops watch " + uuid.uuid4().hex[:6],
                "body": "Something important happened.",
                "url": f"{ORIGIN}/news/ops",
                "topics": ["breaking"],
            },
            headers={"Authorization": f"Bearer {stack.editor_token}"},
        )
        assert answer.status_code == 202, answer.json
        return str(answer.json["id"])

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "ops-during-send.png"
    alert_id, page_text = _watch_a_send_on_ops(stack, publish, shot)
    assert shot.stat().st_size > 20_000
    assert "newsflash.breaking" in page_text and "Alerts in flight" in page_text
    assert f"#{alert_id}" in page_text

    flight = next(a for a in stack.snapshot()["alerts_in_flight"] if a["id"] == alert_id)
    assert flight["audience"] == 50 and flight["status"] == "sending"
    assert 0 < flight["done"] < 50
    # The pace says "estimating…" for its first seconds of samples, then a smoothed rate.
    pace = flight["pace"]
    assert pace["state"] in ("estimating", "live"), pace
    if pace["state"] == "live":
        assert flight["eta_s"] is not None and flight["rate_per_s"] > 0
    else:
        assert pace["text"] == "estimating…" and flight["rate_per_s"] is None

    def finished() -> dict[str, Any] | None:
        answer = stack.client.get(
            f"/api/v1/alerts/{alert_id}", headers={"Authorization": f"Bearer {stack.editor_token}"}
        )
        return answer.json if answer.json["status"] == "sent" else None

    final = wait_until(finished, 60, f"alert {alert_id} to be sent", 0.2)
    counts = final["counts"]
    assert (counts["delivered"], counts["gone"], counts["failed"]) == (45, 5, 0), counts

    # The database, read directly.
    with stack.engine.connect() as conn:
        db_subs = conn.execute(select(func.count()).select_from(t.subscriptions)).scalar_one()
        db_sent = conn.execute(
            select(func.count()).select_from(t.alerts).where(t.alerts.c.status == "sent")
        ).scalar_one()
        db_delivered, db_gone = conn.execute(
            select(func.sum(t.alerts.c.delivered), func.sum(t.alerts.c.gone))
        ).one()
    assert db_subs == 48  # 53 subscribed, the 5 gone ones deleted

    attempts = [
        r
        for r in stack.standin.attempts
        if r.token in {s["endpoint"].rsplit("/", 1)[-1] for s in everyone}
    ]
    statuses = [r.status for r in attempts]
    assert statuses.count(410) == 5 and statuses.count(503) == 5
    # More 201s than 45 only if a loaded machine let a request time out after it was answered.
    assert statuses.count(201) >= 45

    # /api/v1/ops/queues against the database and the broker.
    snap = wait_until(
        lambda: (s := stack.snapshot())["alerts_in_flight"] == [] and s, 10, "a fresh snapshot"
    )
    assert {q["name"] for q in snap["queues"]} == set(ALL_QUEUES)
    assert snap["subscribers"]["total"] == db_subs
    assert snap["subscribers"]["per_topic"] == {"breaking": 45, "politics": 0, "sport": 3}
    today = snap["subscribers"]["days"][-1]
    assert (today["new"], today["lost"]) == (53, 5)
    assert snap["alerts_by_status"]["sent"] == db_sent == 1
    (host,) = snap["push_hosts"]
    assert host["host"] == "127.0.0.1" and host["breaker"] is None
    assert (host["answers"]["2xx"], host["answers"]["404/410"], host["answers"]["5xx"]) == (
        45,
        5,
        5,
    )
    assert snap["delivery_rate"]["delivered"] == db_delivered == 45
    by_outcome = snap["delivery_rate"]["by_outcome"]
    assert (by_outcome["delivered"], by_outcome["gone"], by_outcome["retry"] >= 5) == (45, 5, True)
    assert set(by_outcome) == {"delivered", "gone", "retry"}
    flaky_shown = {redact_endpoint(s["endpoint"]) for s in flaky}
    errors = snap["recent_errors"]
    assert {e["endpoint"] for e in errors if e["status"] == 503} == flaky_shown
    assert all(e["outcome"] == "retry" and e["endpoint"].startswith("127.0.0.1#") for e in errors)
    workers = snap["workers"]
    assert len(workers) == 1 and set(workers[0]["queues"]) == set(ALL_QUEUES)
    assert workers[0]["processes"] == 2
    assert snap["alarms"] == []
    assert 0 <= snap["alarms_evaluated_s_ago"] < 5, "beat's alarm rounds are not running"
    assert all(snap[k]["ok"] for k in ("broker", "database", "redis"))

    # /metrics: counters summed over the worker's two processes, gauges read at scrape time.
    def settled() -> dict[Any, float] | None:
        m = stack.metrics()
        return (
            m
            if metric_sum(m, "newsflash_alert_publish_to_last_delivery_seconds_count") == 1
            else None
        )

    m = wait_until(settled, 20, "the finished alert to be observed by an alarm round", 0.3)
    assert metric_sum(m, "newsflash_deliveries_total", outcome="delivered") == db_delivered
    assert metric_sum(m, "newsflash_deliveries_total", outcome="gone") == db_gone == 5
    retried = metric_sum(m, "newsflash_deliveries_total", outcome="retry")
    assert (
        retried
        == by_outcome["retry"]
        == sum(
            metric_sum(m, "newsflash_push_answers_total", answer=a)
            for a in ("5xx", "429", "timeout", "error")
        )
    )
    assert metric_sum(m, "newsflash_deliveries_total", push_host="127.0.0.1") == len(attempts)
    assert metric_sum(m, "newsflash_push_request_seconds_count") == len(attempts)
    assert metric_sum(m, "newsflash_push_answers_total", answer="5xx") == 5
    assert metric_sum(m, "newsflash_subscriptions") == db_subs
    assert metric_sum(m, "newsflash_topic_subscribers", topic="breaking") == 45
    assert metric_sum(m, "newsflash_alerts", status="sent") == db_sent
    assert metric_sum(m, "newsflash_alerts_finished_total", status="sent") == 1
    with stack.engine.connect() as conn:
        queued_at, last = conn.execute(
            select(t.alerts.c.queued_at, func.max(t.deliveries.c.updated_at))
            .join(t.deliveries, t.deliveries.c.alert_id == t.alerts.c.id)
            .where(t.alerts.c.id == int(alert_id), t.deliveries.c.status == 1)
            .group_by(t.alerts.c.queued_at)
        ).one()
    observed = metric_sum(m, "newsflash_alert_publish_to_last_delivery_seconds_sum")
    assert observed == pytest.approx(last - queued_at, abs=0.01)
    assert metric_sum(m, "newsflash_up", dependency="broker") == 1
    assert metric_sum(m, "newsflash_alarms_evaluated_age_seconds") < 5

    # The worker's logs: JSON events with the delivery fields, never a secret.
    log_text = stack.worker.output()
    events = [json.loads(line) for line in log_text.splitlines() if line.startswith("{")]
    batches = [
        e for e in events if e["msg"] == "delivered batch" and e.get("alert_id") == int(alert_id)
    ]
    assert batches and all({"task_id", "batch_id"} <= set(e) for e in batches)
    refused = [e for e in events if e["msg"] == "push not delivered"]
    assert {e["subscriber"] for e in refused if e["status"] == 503} == flaky_shown
    assert all(e["push_host"] == "127.0.0.1" and e["outcome"] == "retry" for e in refused)
    _assert_no_secrets(stack, log_text + stack.beat.output(), everyone)

    # A backlog that holds still (beat and the worker stopped): depth and oldest age are the
    # broker's own, on the page's API and in /metrics.
    stop_all([stack.beat, stack.worker])
    first = time.time()
    for _ in range(3):
        publish()
        time.sleep(0.3)

    def broker_now() -> dict[str, tuple[int, float | None]]:
        found = {}
        for name in ALL_QUEUES:
            tail = stack.redis.lindex(name, -1)
            stamp = json.loads(tail)["headers"].get("nf_enqueued_at") if tail else None
            found[name] = (stack.redis.llen(name), stamp)
        return found

    broker = broker_now()
    assert broker[Lane.BREAKING.value][0] >= 3
    # Tasks the stopped worker had reserved went back to the queue, older than ours.
    assert broker[Lane.BREAKING.value][1] <= first + 0.2

    def matches() -> dict[str, Any] | None:
        snap = stack.snapshot()
        now = snap["now"]
        for q in snap["queues"]:
            depth, stamp = broker[q["name"]]
            age = None if not depth or stamp is None else round(now - stamp, 1)
            if (q["depth"], q["oldest_age_s"]) != (depth, age):
                return None
        return snap

    backlog = wait_until(matches, 5, "/api/v1/ops/queues to show the broker's backlog")
    assert backlog["workers"] == []
    before = time.time()
    m = stack.metrics()
    for name, (depth, _stamp) in broker_now().items():
        assert metric_sum(m, "newsflash_queue_depth", queue=name) == depth
    age = metric_sum(m, "newsflash_queue_oldest_age_seconds", queue=Lane.BREAKING.value)
    stamp = broker[Lane.BREAKING.value][1]
    # The snapshot may be up to OPS_CACHE_S old, and asking the (absent) workers takes 1 s.
    assert before - stamp - 2.0 <= age <= time.time() - stamp
    assert metric_sum(m, "newsflash_oldest_pending_delivery_seconds") >= age - 1.0


def _assert_no_secrets(stack: OpsStack, text: str, subs: list[dict[str, Any]]) -> None:
    pem = Path(stack.env["NEWSFLASH_VAPID_PRIVATE_KEY_FILE"]).read_text()
    key_body = "".join(pem.strip().splitlines()[1:-1])
    secrets = [DB_PASSWORD, stack.editor_token, stack.ops_token, METRICS_TOKEN, OPS_PASSWORD]
    secrets += [stack.env["NEWSFLASH_SECRET_KEY"], key_body[:40], key_body[-40:]]
    for sub in subs:
        secrets += [sub["endpoint"], sub["endpoint"].rsplit("/", 1)[-1]]
        secrets += [sub["keys"]["p256dh"], sub["keys"]["auth"]]
    leaked = [s for s in secrets if s in text]
    assert not leaked, f"{len(leaked)} secrets in the logs, e.g. {leaked[0][:12]}…"


def test_ops_pages_and_metrics_need_the_ops_role(stack: OpsStack) -> None:
    c = stack.client
    assert c.get("/api/v1/ops/queues").status_code == 401
    assert stack.get("/api/v1/ops/queues", stack.editor_token).status_code == 403
    assert c.get("/metrics").status_code == 401
    assert stack.get("/metrics", stack.editor_token).status_code == 403
    assert c.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert stack.get("/metrics").status_code == 200
    page = c.get("/ops")
    assert page.status_code == 302 and "/editor/login" in page.headers["Location"]
    assert set(c.get("/readyz").json) == {"status", "checks"}  # alarms are for ops only
    assert stack.get("/readyz", stack.editor_token).json.keys() == {"status", "checks"}
    assert stack.get("/readyz").json["alarms"] == []
    scraped = c.get("/readyz", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert scraped.json["alarms"] == []


def test_status_and_watch_print_the_same_picture_in_a_terminal(
    stack: OpsStack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from cli.main import main

    for name, value in stack.env.items():
        monkeypatch.setenv(name, value)

    def cli(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    # By now (first test) the worker and beat are stopped with a backlog on the breaking lane.
    code, out, err = cli("status")
    assert code == 0, err
    depth = stack.redis.llen("newsflash.breaking")
    assert "Newsflash status at" in out
    assert f"newsflash.breaking       waiting {depth:>7}" in out
    assert "none answered: nothing is being delivered" in out
    assert "Subscribers: 48 (breaking 45, politics 0, sport 3)" in out

    code, out, _ = cli("status", "--json")
    as_json = json.loads(out)
    assert as_json["subscribers"]["total"] == 48
    assert {q["name"]: q["depth"] for q in as_json["queues"]}["newsflash.breaking"] == depth

    with stack.engine.connect() as conn:
        sent_id, queued_id = (
            conn.execute(
                select(t.alerts.c.id).where(t.alerts.c.status == s).order_by(t.alerts.c.id).limit(1)
            ).scalar_one()
            for s in ("sent", "queued")
        )
    code, out, err = cli("alerts", "watch", str(sent_id))
    assert code == 0, err
    assert f"alert {sent_id} sent" in out.splitlines()[-1]
    assert "100.0%" in out and "delivered 45 gone 5 failed 0 pending 0" in out

    code, out, _ = cli("alerts", "watch", str(queued_id), "--timeout", "1.5", "--every", "0.5")
    assert code == 3
    assert f"alert {queued_id} queued" in out and "0/45" in out

    code, _, err = cli("alerts", "watch", "999999")
    assert code == 2 and "no alert 999999" in err
