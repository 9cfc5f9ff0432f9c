"""Scrape-time gauges: the queue's idle time is the same quiet time the stall alarm judges."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from core.adapters import metrics
from core.alarms import QueueFacts, Thresholds, evaluate
from core.ops_alarms import facts_from

NOW = 1_000_000.0


def _snapshot(queues: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "now": NOW,
        "broker": {"ok": True},
        "database": {"ok": True},
        "redis": {"ok": True},
        "queues": queues,
        "churn_totals": {"gained": 7, "lost": 2, "renewed": {"moved": 3, "restored": 1}},
    }


def _samples(snapshot: dict[str, Any], tmp_path: Any) -> dict[tuple[str, str], float]:
    body, _ = metrics.render(tmp_path, snapshot)
    return {
        (s.name, s.labels.get("queue", "")): s.value
        for f in text_string_to_metric_families(body.decode())
        for s in f.samples
    }


@pytest.mark.parametrize(
    ("depth", "waiting_for_s", "oldest_age_s", "last_consumed_s_ago", "idle_s"),
    [
        (5, 90.0, None, None, 90.0),  # never taken: quiet since the tasks started waiting
        (5, 90.0, None, 30.0, 30.0),  # taken from 30 s ago: quiet for 30 s only
        (5, 20.0, None, 300.0, 20.0),  # waiting for 20 s after a long empty spell
        (0, None, None, 500.0, 0.0),  # empty queues are never stalled
        # Nobody recorded since when tasks wait (beat, which tracks it, is down): the oldest
        # task's own age says it, so Prometheus still sees the stall beat cannot report.
        (5, None, 90.0, None, 90.0),
        (5, None, 90.0, 30.0, 30.0),
        # Tracking began after the tasks were queued (Redis was down): the older one counts.
        (5, 20.0, 90.0, None, 90.0),
    ],
)
def test_queue_idle_gauge_is_the_stall_alarms_quiet_time(
    tmp_path: Any,
    depth: int,
    waiting_for_s: float | None,
    oldest_age_s: float | None,
    last_consumed_s_ago: float | None,
    idle_s: float,
) -> None:
    queue = {
        "name": "newsflash.breaking",
        "depth": depth,
        "oldest_age_s": oldest_age_s,
        "consumers": None,
        "last_consumed_s_ago": last_consumed_s_ago,
        "waiting_for_s": waiting_for_s,
    }
    snapshot = _snapshot([queue])
    assert _samples(snapshot, tmp_path)[("newsflash_queue_idle_seconds", queue["name"])] == idle_s
    # The alarm fires exactly when the gauge reaches the threshold (what the Prometheus rule uses).
    facts = facts_from(snapshot)
    assert facts.queues is not None and isinstance(facts.queues[0], QueueFacts)
    for stall_s in (idle_s - 1, idle_s, idle_s + 1):
        if stall_s <= 0:
            continue
        active, _ = evaluate(facts, Thresholds(stall_s=stall_s))
        fired = any(k.startswith("queue_stalled") for k in active)
        assert fired == (idle_s >= stall_s), (stall_s, idle_s)


def test_subscriptions_gained_and_lost_are_counters(tmp_path: Any) -> None:
    samples = _samples(_snapshot([]), tmp_path)
    assert samples[("newsflash_subscriptions_gained_total", "")] == 7
    assert samples[("newsflash_subscriptions_lost_total", "")] == 2


def test_subscriptions_renewed_are_a_counter_by_how(tmp_path: Any) -> None:
    body, _ = metrics.render(tmp_path, _snapshot([]))
    (family,) = [
        f
        for f in text_string_to_metric_families(body.decode())
        if f.name == "newsflash_subscriptions_renewed"
    ]
    assert family.type == "counter"
    assert {s.labels["how"]: s.value for s in family.samples if s.name.endswith("_total")} == {
        "moved": 3,
        "restored": 1,
    }
