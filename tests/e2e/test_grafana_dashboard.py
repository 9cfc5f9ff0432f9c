"""The Grafana dashboard and the Prometheus rules name only metrics a live /metrics exports:
a real stack (web server, worker, beat, push stand-in, PostgreSQL, Redis) is driven through an
alarm, subscriptions and a send, /metrics is scraped along the way, and every PromQL expression
is checked against the metric names and label names seen."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis as redis_lib
from prometheus_client.parser import text_string_to_metric_families

from core.accounts import Role
from tests.support import promql
from tests.support.live_stack import LiveStack, live_stack
from tests.support.ops import WebhookReceiver
from tests.support.services import (
    TEST_REDIS_DB,
    create_pg_database,
    drop_pg_database,
    new_vapid_pem,
    port_open,
    require_service,
)
from tests.support.stack import Process, wait_until

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy/grafana/dashboards/newsflash-grafana.json"
ORIGIN = "http://127.0.0.1:8000"
# Series Prometheus makes itself (scrape health), not Newsflash's to export.
PROMETHEUS_OWN = set(promql.PROMETHEUS_OWN)
metric_names = promql.metric_names
dashboard_exprs = promql.dashboard_exprs
rule_exprs = promql.rule_exprs


# -- the dashboard's shape (no services needed; the queries: tests/unit/test_metric_queries.py)
def test_the_dashboard_is_provisionable_and_uses_the_datasource_variable() -> None:
    dash = json.loads(DASHBOARD.read_text())
    assert (
        dash["uid"] and dash["title"] == "Newsflash" and dash["id"] is None
        if "id" in dash
        else True
    )
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    panels = dash["panels"]
    assert [p["title"] for p in panels if p["type"] == "row"][:2] == ["Queues", "Delivery"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    for panel in panels:
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["fieldConfig"]["defaults"].get("unit"), f"{panel['title']} has no unit"
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}"
    titles = " | ".join(p["title"] for p in panels)
    for wanted in (
        "Tasks waiting",
        "Oldest waiting",
        "by outcome",
        "by push host",
        "50 / 90 / 100 %",
        "breaker",
        "Workers online",
        "POST /api/v1/alerts latency",
        "gained, lost and renewed",
    ):
        assert wanted.lower() in titles.lower(), f"no panel for {wanted!r}"


# -- the live check -------------------------------------------------------------------------------
class Web:
    def __init__(self, base_url: str, ops_token: str, editor_token: str) -> None:
        self.base_url = base_url
        self.ops_token = ops_token
        self.editor_token = editor_token
        self.labels: dict[str, set[str]] = {}  # sample name -> every label name seen on it

    def call(
        self, method: str, path: str, body: Any = None, token: str | None = None
    ) -> tuple[int, bytes]:
        request = urllib.request.Request(
            self.base_url + path,
            data=None if body is None else json.dumps(body).encode(),
            method=method,
            headers={"Content-Type": "application/json"}
            | ({"Authorization": f"Bearer {token}"} if token else {}),
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return int(answer.status), answer.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def scrape(self) -> dict[str, float]:
        """Sample name -> the sum of its values (labels summed away)."""
        status, body = self.call("GET", "/metrics", token=self.ops_token)
        assert status == 200, body[:300]
        samples: dict[str, float] = {}
        for family in text_string_to_metric_families(body.decode()):
            for s in family.samples:
                samples[s.name] = samples.get(s.name, 0.0) + s.value
                self.labels.setdefault(s.name, set()).update(s.labels)
        return samples


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Web, LiveStack]]:
    require_service("Redis", port_open("127.0.0.1", 6379), "127.0.0.1:6379")
    require_service("PostgreSQL", port_open("127.0.0.1", 5432), "127.0.0.1:5432")
    tmp = tmp_path_factory.mktemp("grafana")
    redis_url = f"redis://127.0.0.1:6379/{TEST_REDIS_DB}"
    redis_lib.Redis.from_url(redis_url).flushdb()
    database_url = create_pg_database()
    pem = new_vapid_pem()
    receiver = WebhookReceiver().start()
    try:
        # Served by `newsflash web` (two gunicorn processes, like production): /metrics sums
        # what every process wrote. No worker yet: the test starts one after the first alarm.
        with live_stack(
            tmp,
            database_url,
            redis_url,
            pem,
            workers=(),
            serve=True,
            web_workers=2,
            BATCH_SIZE="10",
            RATE_LIMIT_SUBSCRIBE="10000 per minute",
            ALARM_INTERVAL_S="1",
            ALARM_FOR_S="1",
            OPS_CACHE_S="0.5",
            ALERT_WEBHOOK=receiver.url,
        ) as live:
            assert live.base_url is not None
            web = Web(
                live.base_url,
                live.token("prometheus", Role.OPS),
                live.token("editor", Role.EDITOR),
            )
            yield web, live
    finally:
        receiver.stop()
        drop_pg_database(database_url)


def test_every_dashboard_and_rule_query_names_an_exported_metric(
    stack: tuple[Web, LiveStack],
) -> None:
    web, live = stack
    seen: set[str] = set()

    def scrape() -> dict[str, float]:
        samples = web.scrape()
        seen.update(samples)
        return samples

    # No worker yet: beat evaluates the alarms itself and the breaking lane is unattended.
    wait_until(
        lambda: (
            scrape().get("newsflash_alarm_active", 0) >= 1
            and scrape().get("newsflash_alarm_notifications_total", 0) >= 1
        ),
        60,
        "the breaking-lane alarm to fire and be POSTed",
        interval_s=0.5,
    )
    standin = live.standin
    worker: Process | None = None
    try:
        subs = standin.create_subscriptions(6) + standin.create_subscriptions(2, "gone410")
        for sub in subs:
            status, body = web.call(
                "POST", "/api/v1/subscriptions", {**sub, "topics": ["breaking"]}
            )
            assert status == 201, body
        worker = live.start_worker(concurrency=2)
        status, body = web.call(
            "POST",
            "/api/v1/alerts",
            {
                "title": "Dashboard check " + uuid.uuid4().hex[:6],
                "body": "Every panel has data.",
                "url": f"{ORIGIN}/news/dashboard",
                "topics": ["breaking"],
            },
            token=web.editor_token,
        )
        assert status == 202, body
        alert_id = json.loads(body)["id"]
        wait_until(
            lambda: (
                json.loads(
                    web.call("GET", f"/api/v1/alerts/{alert_id}", token=web.editor_token)[1]
                )["status"]
                == "sent"
            ),
            60,
            "the alert to be sent",
            interval_s=0.2,
        )
        last = wait_until(
            lambda: (
                (s := scrape()).get("newsflash_alert_time_to_delivered_seconds_count", 0) >= 3 and s
            ),
            30,
            "the finished alert's times to 50/90/100 % to be observed",
            interval_s=0.5,
        )
    finally:
        if worker is not None:
            worker.stop()

    # What the send did is in the numbers (not just the names).
    assert last["newsflash_deliveries_total"] == 8
    assert last["newsflash_subscriptions_gained_total"] == 8
    assert last["newsflash_subscriptions_lost_total"] == 2  # the two 410s
    assert last["newsflash_http_request_seconds_count"] >= 10
    assert last["newsflash_alert_time_to_delivered_seconds_count"] == 3  # 50, 90 and 100 %
    # Two browsers renew their subscriptions: a live one (moved) and one a 410 removed
    # (restored from its tombstone, which takes its loss back).
    for old in (subs[0], subs[-1]):
        status, body = web.call(
            "POST",
            "/api/v1/subscriptions/change",
            {
                "oldEndpoint": old["endpoint"],
                "oldAuth": old["keys"]["auth"],
                "subscription": standin.create_subscription(),
            },
        )
        assert status == 201, body
    renewed = wait_until(
        lambda: (s := scrape()).get("newsflash_subscriptions_renewed_total") == 2 and s,
        30,
        "the two renewals to be counted",
        interval_s=0.5,
    )
    assert "how" in web.labels["newsflash_subscriptions_renewed_total"]
    assert renewed["newsflash_subscriptions_gained_total"] == 8  # renewals are not sign-ups
    assert renewed["newsflash_subscriptions_lost_total"] == 1

    missing = {
        f"{where}: {name}"
        for where, expr in dashboard_exprs()
        for name in metric_names(expr)
        if name not in seen
    }
    assert not missing, f"not exported by /metrics: {sorted(missing)}"
    used = {name for _w, expr in dashboard_exprs() for name in metric_names(expr)}
    assert len(used) >= 20, sorted(used)
    missing_in_rules = {
        f"{alert}: {name}"
        for alert, expr in rule_exprs()
        for name in metric_names(expr) - PROMETHEUS_OWN
        if name not in seen
    }
    assert not missing_in_rules, f"not exported by /metrics: {sorted(missing_in_rules)}"
    # ...and with the labels each query matches on (Prometheus adds job and instance).
    wrong_labels = {
        f"{where}: {name} has no {sorted(labels - web.labels[name] - promql.TARGET_LABELS)}"
        for where, expr in dashboard_exprs() + rule_exprs()
        for name, labels in promql.selectors(expr)
        if name not in PROMETHEUS_OWN and labels - web.labels[name] - promql.TARGET_LABELS
    }
    assert not wrong_labels, sorted(wrong_labels)
