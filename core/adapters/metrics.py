"""Prometheus metrics in multiprocess mode: each gunicorn and Celery process writes its own files
under one directory, and GET /metrics sums them together with gauges read at scrape time.

prometheus_client decides at import time whether it runs in multiprocess mode, from the
PROMETHEUS_MULTIPROC_DIR environment variable. `install(metrics_dir)` exports it before the first
import (metrics_dir is NEWSFLASH_METRICS_DIR, default var/metrics, or PROMETHEUS_MULTIPROC_DIR when
that is given, as `newsflash run` does); nothing else in Newsflash imports prometheus_client.

Each host (container) writes into its own subdirectory, metrics_dir/<hostname>: files are named by
process id, and containers sharing one volume reuse the same small pids. /metrics merges them all.
"""

from __future__ import annotations

import logging
import math
import os
import re
import socket
import sys
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from core.adapters import db_errors
from core.ops_alarms import waited_s

ENV: Final = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS_S: Final = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0)
PUBLISH_BUCKETS_S: Final = (1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200)

log = logging.getLogger("newsflash.metrics")
_lock = threading.Lock()
_installed: Path | None = None
_metrics: Metrics | None = None


def install(metrics_dir: Path) -> Path:
    """Export the multiprocess directory for this process and its children (before import)."""
    global _installed
    with _lock:
        if _installed is not None:
            return _installed
        path = metrics_dir.resolve()
        if path.name != _host_dir():  # a child that inherited our variable keeps the same dir
            path = path / _host_dir()
        path.mkdir(parents=True, exist_ok=True)
        os.environ[ENV] = str(path)
        if "prometheus_client.values" in sys.modules:
            from prometheus_client import values

            if getattr(values.ValueClass, "__name__", "") == "MutexValue":
                log.warning(
                    "prometheus_client was imported before the metrics directory was set; "
                    "this process's counters will not reach /metrics"
                )
        _installed = path
        return path


class Metrics:
    """The counters and histograms worker processes write (labels stay low-cardinality)."""

    def __init__(self) -> None:
        from prometheus_client import Counter, Histogram

        self.deliveries = Counter(
            "newsflash_deliveries",
            "Push attempts by outcome (delivered, gone, retry, rejected, failed) and push host",
            ["outcome", "push_host"],
        )
        self.answers = Counter(
            "newsflash_push_answers",
            "Push service answers by class (2xx, 3xx, 404/410, 429, 4xx, 5xx, timeout, error)",
            ["answer", "push_host"],
        )
        self.push_latency = Histogram(
            "newsflash_push_request_seconds",
            "Time from sending a push request to its answer",
            ["push_host"],
            buckets=LATENCY_BUCKETS_S,
        )
        self.publish_to_last_delivery = Histogram(
            "newsflash_alert_publish_to_last_delivery_seconds",
            "Time from an alert being queued to its last successful delivery",
            buckets=PUBLISH_BUCKETS_S,
        )
        self.time_to_delivered = Histogram(
            "newsflash_alert_time_to_delivered_seconds",
            "Time from an alert being queued until 50, 90 and 100 % of its successful deliveries "
            "were done (one observation per share and finished alert)",
            ["share"],
            buckets=PUBLISH_BUCKETS_S,
        )
        self.http_latency = Histogram(
            "newsflash_http_request_seconds",
            "Web requests from arrival to response, by method and route",
            ["method", "route"],
            buckets=LATENCY_BUCKETS_S,
        )
        self.web_unavailable = Counter(
            "newsflash_web_database_unavailable",
            "Web requests answered 503 for the database: busy (a lock or statement timeout ran "
            "out), disk (its disk full or failing), read_only (it refuses writes) or unreachable",
            ["reason"],
        )
        for reason in db_errors.REASONS:  # exported at 0 from the start: increase() works
            self.web_unavailable.labels(reason)
        self.alerts_finished = Counter(
            "newsflash_alerts_finished", "Alerts that finished sending, by final status", ["status"]
        )
        self.alarm_notifications = Counter(
            "newsflash_alarm_notifications",
            "Alarm webhook POSTs by result (sent, failed)",
            ["result"],
        )


def add_observations(child: Any, bucket_counts: Sequence[int], total: float) -> None:
    """Add observations already sorted into `child`'s buckets (a labelled Histogram): what
    `observe` does once per value, done once per bucket. Workers count pushes locally and flush
    about twice a second; one `observe` per push cost more than the request's own parsing."""
    buckets = child._buckets  # prometheus_client has no public "observe many"
    if len(buckets) != len(bucket_counts):
        raise ValueError("bucket counts do not match the histogram's buckets")
    for bucket, n in zip(buckets, bucket_counts, strict=True):
        if n:
            bucket.inc(n)
    child._sum.inc(total)


def _host_dir() -> str:
    name = re.sub(r"[^A-Za-z0-9._-]", "_", socket.gethostname()) or "host"
    return name[:64]


def metrics() -> Metrics:
    """The process's metric objects (created once, after install)."""
    global _metrics
    with _lock:
        if _metrics is None:
            if _installed is None:
                raise RuntimeError("call core.adapters.metrics.install(settings.metrics_dir) first")
            _metrics = Metrics()
        return _metrics


def host_label(host: str, patterns: Iterable[str]) -> str:
    """The allowlist pattern a host matched (*.notify.windows.com has thousands of hosts)."""
    host = host.lower()
    for pattern in patterns:
        if pattern.startswith("*.") and host.endswith(pattern[1:]) and len(host) > len(pattern) - 1:
            return pattern
        if host == pattern:
            return pattern
    return host


def _gauge_families(snapshot: Mapping[str, Any]) -> Iterator[Any]:
    """Gauges read at scrape time from the ops snapshot (the database, Redis and the broker)."""
    from prometheus_client.core import GaugeMetricFamily

    def family(name: str, doc: str, labels: list[str] | None = None) -> GaugeMetricFamily:
        return GaugeMetricFamily(name, doc, labels=labels)

    yield from _audience_and_alert_families(snapshot, family)
    yield from _queue_families(snapshot, family)
    yield from _host_and_alarm_families(snapshot, family)
    yield from _audience_families(snapshot.get("audience_health"), family)
    yield from _backup_families(snapshot.get("backups"), family)
    g = family("newsflash_up", "1 per reachable dependency, 0 when unreachable", ["dependency"])
    for dep in ("database", "broker", "redis"):
        if dep in snapshot:
            g.add_metric([dep], 1.0 if snapshot[dep].get("ok") else 0.0)
    yield g
    refusing = (snapshot.get("database") or {}).get("refuses_writes")
    if refusing is not None:  # unknown while Redis cannot be read
        g = family(
            "newsflash_database_refuses_writes",
            "1 while the database refused a write (any process, the last 5 minutes), by reason",
            ["reason"],
        )
        for reason in db_errors.REFUSES_WRITES:
            g.add_metric([reason], 1.0 if refusing["reason"] == reason else 0.0)
        yield g


def _audience_and_alert_families(snapshot: Mapping[str, Any], family: Any) -> Iterator[Any]:
    """Subscriptions (stored, per topic, gained, lost and renewed) and alerts (by status, pending)."""
    from prometheus_client.core import CounterMetricFamily

    subs = snapshot.get("subscribers") or {}
    if "total" in subs:
        g = family("newsflash_subscriptions", "Subscriptions stored")
        g.add_metric([], float(subs["total"]))
        yield g
        g = family("newsflash_topic_subscribers", "Subscriptions per topic", ["topic"])
        for topic, n in sorted((subs.get("per_topic") or {}).items()):
            g.add_metric([topic], float(n))
        yield g
    churn = snapshot.get("churn_totals")
    if churn is not None:
        # Counted in the database (subscription_churn, same transaction as the change), so every
        # web replica reports the same totals and a restart resets nothing.
        for change in ("gained", "lost"):
            c = CounterMetricFamily(
                f"newsflash_subscriptions_{change}", f"Subscriptions {change}, all time"
            )
            c.add_metric([], float(churn[change]))
            yield c
        c = CounterMetricFamily(
            "newsflash_subscriptions_renewed",
            "Subscriptions renewed, all time (the same readers on a new endpoint, neither gained"
            " nor lost): how=moved from the live subscription, how=restored after a 404/410",
            labels=["how"],
        )
        for how, n in sorted((churn.get("renewed") or {}).items()):
            c.add_metric([how], float(n))
        yield c
    by_status = snapshot.get("alerts_by_status")
    if by_status is not None:
        g = family("newsflash_alerts", "Alerts by status", ["status"])
        for status, n in sorted(by_status.items()):
            g.add_metric([status], float(n))
        yield g
    in_flight = snapshot.get("alerts_in_flight")
    if in_flight is not None:
        g = family("newsflash_alert_pending_deliveries", "Deliveries not yet final, all alerts")
        g.add_metric([], float(sum(a["pending"] for a in in_flight)))
        yield g


def _queue_families(snapshot: Mapping[str, Any], family: Any) -> Iterator[Any]:
    """Queues, the oldest pending delivery, workers per queue, the delivery rate."""
    queues = snapshot.get("queues")
    if queues is not None:
        depth = family("newsflash_queue_depth", "Tasks waiting in each Celery queue", ["queue"])
        age = family(
            "newsflash_queue_oldest_age_seconds",
            "Age of the oldest task waiting in each queue",
            ["queue"],
        )
        idle = family(
            "newsflash_queue_idle_seconds",
            "How long a queue with tasks waiting has had none taken (0 while empty or taken "
            "from); the queue-stalled alarm compares it with NEWSFLASH_ALARM_STALL_S",
            ["queue"],
        )
        for q in queues:
            depth.add_metric([q["name"]], float(q["depth"]))
            age.add_metric([q["name"]], float(q["oldest_age_s"] or 0.0))
            idle.add_metric([q["name"]], _idle_s(q))
        yield depth
        yield age
        yield idle
    pending = snapshot.get("oldest_pending_s")
    if pending is not None or snapshot.get("database", {}).get("ok"):
        g = family(
            "newsflash_oldest_pending_delivery_seconds",
            "Age of the oldest delivery waiting to be sent (broker or database)",
        )
        g.add_metric([], float(pending or 0.0))
        yield g
    workers = snapshot.get("workers")
    if workers is not None:
        g = family("newsflash_workers_online", "Celery workers answering, by queue", ["queue"])
        per_queue: dict[str, int] = {q["name"]: 0 for q in queues or []}
        for w in workers:
            for name in w["queues"]:
                per_queue[name] = per_queue.get(name, 0) + 1
        for name, n in sorted(per_queue.items()):
            g.add_metric([name], float(n))
        yield g
    rate = snapshot.get("delivery_rate")
    if rate is not None:
        g = family(
            "newsflash_delivery_rate_per_second", "Successful deliveries per second, last minute"
        )
        g.add_metric([], float(rate["per_second"]))
        yield g


def _host_and_alarm_families(snapshot: Mapping[str, Any], family: Any) -> Iterator[Any]:
    """Open breakers per push host, firing alarms and the last alarm round."""
    hosts = snapshot.get("push_hosts")
    if hosts is not None:
        g = family(
            "newsflash_push_host_breaker_open",
            "1 while a push host's circuit breaker is open",
            ["push_host"],
        )
        for h in hosts:
            g.add_metric([h["host"]], 1.0 if h["breaker"] else 0.0)
        yield g
    alarms = snapshot.get("alarms")
    if alarms is not None:
        g = family("newsflash_alarm_active", "1 while an alarm is firing", ["alarm", "kind"])
        for a in alarms:
            g.add_metric([a["key"], a["kind"]], 1.0)
        yield g
    evaluated = snapshot.get("alarms_evaluated_s_ago")
    if evaluated is not None:
        g = family(
            "newsflash_alarms_evaluated_age_seconds",
            "Time since the last alarm round (beat down when it keeps growing)",
        )
        g.add_metric([], float(evaluated))
        yield g


def _audience_families(health: Mapping[str, Any] | None, family: Any) -> Iterator[Any]:
    """The week under way from the audience-health view (NaN where a rate has no data yet, so
    every series exists from the first scrape)."""
    weeks = (health or {}).get("weeks") or []
    if not weeks:
        return
    week = weeks[-1]

    def value(x: Any) -> float:
        return math.nan if x is None else float(x)

    for name, key, doc in (
        ("alerts_per_reader_day", "alerts_per_reader_day", "Alerts delivered per reader per day"),
        ("displayed_ratio", "displayed_rate", "Displayed ÷ delivered, this week's alerts"),
        ("clicked_ratio", "click_rate", "Clicked ÷ displayed, this week's alerts"),
        ("gone_ratio", "gone_share", "Pushes answered 404/410 ÷ pushes attempted"),
        ("week_gained", "gained", "Subscriptions gained this week"),
    ):
        g = family(f"newsflash_audience_{name}", f"{doc} (newsroom week under way)")
        g.add_metric([], value(week.get(key)))
        yield g
    g = family(
        "newsflash_audience_delivered_ratio",
        "Delivered ÷ attempted this week by push host (push_host=all: every host)",
        ["push_host"],
    )
    g.add_metric(["all"], value(week.get("delivered_rate")))
    for h in week.get("push_hosts") or []:
        g.add_metric([h["host"]], value(h["delivered_rate"]))
    yield g
    g = family("newsflash_audience_week_lost", "Subscriptions lost this week by reason", ["reason"])
    for reason, n in sorted((week.get("lost") or {}).items()):
        g.add_metric([reason], float(n))
    yield g
    g = family(
        "newsflash_audience_week_renewed",
        "Subscriptions renewed this week (the same readers on a new endpoint, neither gained nor"
        " lost): how=moved from the live subscription, how=restored after a 404/410",
        ["how"],
    )
    for how, n in sorted((week.get("renewed") or {}).items()):
        g.add_metric([how], float(n))
    yield g
    g = family(
        "newsflash_audience_unseen_ratio",
        "Share of subscriptions whose browser has not checked in for this many days",
        ["days"],
    )
    for u in (health or {}).get("unseen") or []:
        g.add_metric([str(u["days"])], value(u["share"]))
    yield g
    rules = {w["rule"] for w in (health or {}).get("warnings") or []}
    g = family(
        "newsflash_audience_warning",
        "1 while an audience-health warning holds (see /ops)",
        ["rule"],
    )
    for rule in ("volume_up_clicks_down", "gone_rising", "host_delivery_low"):
        g.add_metric([rule], 1.0 if rule in rules else 0.0)
    yield g


def _backup_families(backups: Mapping[str, Any] | None, family: Any) -> Iterator[Any]:
    """Scheduled backups (core/adapters/backups.py). Exported while they are off too, as an
    interval of 0 (NewsflashBackupStale asks for one above 0): a dashboard or rule naming these
    series finds them on every Newsflash, and "off" is a value rather than an absence."""
    from prometheus_client.core import CounterMetricFamily

    backups = backups or {"every_h": 0}

    for name, key, doc in (
        ("last_success", "last_success_at", "Unix time of the last scheduled backup (0: none yet)"),
        ("last_failure", "last_failure_at", "Unix time of the last failed one (0: none)"),
    ):
        g = family(f"newsflash_backup_{name}_timestamp_seconds", doc)
        g.add_metric([], float(backups.get(key) or 0.0))
        yield g
    g = family(
        "newsflash_backup_interval_seconds", "NEWSFLASH_BACKUP_EVERY_H, in seconds (0: backups off)"
    )
    g.add_metric([], float(backups["every_h"]) * 3600)
    yield g
    c = CounterMetricFamily("newsflash_backup_failures", "Scheduled backups that failed")
    c.add_metric([], float(backups.get("failures") or 0))
    yield c


def _idle_s(queue: Mapping[str, Any]) -> float:
    """The alarm's quiet time (core.alarms.evaluate): since tasks started waiting or since the
    last one was taken, whichever is later."""
    waiting = waited_s(queue)
    if waiting is None:
        return 0.0
    consumed = queue.get("last_consumed_s_ago")
    return float(waiting if consumed is None else min(waiting, consumed))


class _FilesCollector:
    """Every process's files under metrics_dir, one subdirectory per host, merged."""

    def __init__(self, metrics_dir: Path) -> None:
        self.metrics_dir = metrics_dir

    def collect(self) -> Iterator[Any]:
        from prometheus_client.multiprocess import MultiProcessCollector

        files = sorted(
            str(f) for pattern in ("*.db", "*/*.db") for f in self.metrics_dir.glob(pattern)
        )
        yield from MultiProcessCollector.merge(files, accumulate=True)  # type: ignore[no-untyped-call]


class _SnapshotCollector:
    def __init__(self, snapshot: Mapping[str, Any]) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[Any]:
        yield from _gauge_families(self.snapshot)


def render(metrics_dir: Path, snapshot: Mapping[str, Any]) -> tuple[bytes, str]:
    """The Prometheus text exposition: every process's counters plus the scrape-time gauges."""
    install(metrics_dir)
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

    registry = CollectorRegistry()
    registry.register(_FilesCollector(metrics_dir.resolve()))
    registry.register(_SnapshotCollector(snapshot))
    return generate_latest(registry), CONTENT_TYPE_LATEST
