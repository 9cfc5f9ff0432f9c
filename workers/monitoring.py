"""Ops on the Celery side: publish-time stamps, consumption marks, delivery metrics, worker
inspection, JSON logging for worker and beat, and the alarm rounds (a task, with beat itself
taking over when that task stops running — workers or broker down are what alarms are for)."""

from __future__ import annotations

import bisect
import contextlib
import json
import logging
import math
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from typing import Any

from celery import Celery
from celery.signals import (
    beat_init,
    before_task_publish,
    setup_logging,
    task_prerun,
    task_revoked,
    worker_init,
)

from config.settings import Settings
from core import ops, ops_alarms
from core.adapters import db_holders, logs, metrics
from core.adapters.celery_queue import STAMP_UID, stamp_publish_time
from core.adapters.ops_probes import OpsKit
from core.bootstrap import Container
from core.endpoints import redact_endpoint
from core.outcomes import Decision, Outcome
from core.ports import PushResult

log = logging.getLogger("newsflash.monitoring")

ContainerFor = Callable[[Celery], Container]
ERRORS_PER_BATCH = 20
_LATENCY_BOUNDS = (*metrics.LATENCY_BUCKETS_S, math.inf)
_FINAL = frozenset({Outcome.DELIVERED, Outcome.GONE, Outcome.FAILED})
_SETTLED = frozenset({Outcome.DELIVERED, Outcome.GONE})
FLUSH_EVERY_S = 0.5
WEBHOOK_TIMEOUT_S = 5.0


# -- composition: the ops kit is built by the composition root (core.bootstrap) -------------
def kit_for(container: Container, app: Celery) -> OpsKit:
    """The container's ops kit; the container was built with this Celery app as its producer."""
    if container.celery is not app:
        raise RuntimeError("the container was built for another Celery app")
    return container.ops


# -- delivery observation ---------------------------------------------------------------------
class DeliveryObserver:
    """deliver_batch's observe hook: Prometheus counters, per-second rate buckets in Redis and
    the batch's first errors (endpoints shortened to host + hash before they leave the task).

    Everything is counted in plain dicts and written out about twice a second (and when the
    batch finishes): per push, Prometheus label look-ups and multiprocess file writes cost
    8-10 % of a delivery's CPU."""

    def __init__(self, kit: OpsKit, alert_id: int | None, batch_id: int, task_id: str | None):
        self.kit = kit
        self.alert_id = alert_id
        self.batch_id = batch_id
        self.task_id = task_id
        self.patterns = kit.settings.push_hosts
        self.alert_key = f"alert:{alert_id}"
        self.counts: dict[int, Counter[str]] = {}
        # (host, outcome, answer) → pushes; host → latency bucket counts and their sum
        self.answers: dict[tuple[str, str, str], int] = {}
        self.latency: dict[str, tuple[list[int], list[float]]] = {}
        self.errors: list[tuple[PushResult, Decision, float]] = []
        self.more_errors = 0
        self.last_flush = time.monotonic()
        self.lock = threading.Lock()
        try:
            self.metrics: metrics.Metrics | None = metrics.metrics()
        except Exception:
            log.exception("metrics unavailable in this process")
            self.metrics = None

    def __call__(self, result: PushResult, decision: Decision) -> None:
        now = time.time()
        sent = result.error != "blocked"
        outcome = decision.outcome.value
        with self.lock:
            second = int(now)
            bucket = self.counts.get(second)
            if bucket is None:
                bucket = self.counts[second] = Counter()
            if sent:
                bucket[outcome] += 1
                key = (result.host, outcome, decision.answer)
                self.answers[key] = self.answers.get(key, 0) + 1
                hist = self.latency.get(result.host)
                if hist is None:
                    hist = self.latency[result.host] = ([0] * len(_LATENCY_BOUNDS), [0.0])
                hist[0][bisect.bisect_left(_LATENCY_BOUNDS, result.elapsed_s)] += 1
                hist[1][0] += result.elapsed_s
            if decision.outcome in _FINAL:
                bucket[self.alert_key] += 1
            if sent and decision.outcome not in _SETTLED:
                if len(self.errors) < ERRORS_PER_BATCH:
                    self.errors.append((result, decision, now))
                else:
                    self.more_errors += 1
            due = time.monotonic() - self.last_flush >= FLUSH_EVERY_S
        if due:
            self.flush()

    def flush(self) -> None:
        with self.lock:
            counts, self.counts = self.counts, {}
            answers, self.answers = self.answers, {}
            latency, self.latency = self.latency, {}
            self.last_flush = time.monotonic()
        if self.metrics is not None and (answers or latency):
            try:
                self._write_metrics(self.metrics, answers, latency)
            except Exception:
                log.exception("could not record delivery metrics")
                self.metrics = None
        self.kit.writer.add_counts(counts)  # written by its own thread: never waits on Redis

    def _write_metrics(
        self,
        m: metrics.Metrics,
        answers: dict[tuple[str, str, str], int],
        latency: dict[str, tuple[list[int], list[float]]],
    ) -> None:
        labels: dict[str, str] = {}

        def label(host: str) -> str:
            found = labels.get(host)
            if found is None:
                found = labels[host] = metrics.host_label(host, self.patterns)
            return found

        for (host, outcome, answer), n in answers.items():
            m.deliveries.labels(outcome, label(host)).inc(n)
            m.answers.labels(answer, label(host)).inc(n)
        for host, (bucket_counts, total) in latency.items():
            metrics.add_observations(m.push_latency.labels(label(host)), bucket_counts, total[0])

    def finish(self) -> None:
        """On the batch's finishing thread: its counts and first errors go to /ops (what the
        batch counted is in Redis when its log line says delivered, unless Redis is failing)."""
        self.flush()
        self._report_errors()
        self.kit.writer.drain()

    def _report_errors(self) -> None:
        if not self.errors:
            return
        try:
            endpoints = self.kit.queries.endpoints_of(
                [r.subscription_id for r, _d, _t in self.errors]
            )
        except Exception:
            endpoints = {}
        entries = []
        for result, decision, at in self.errors:
            endpoint = endpoints.get(result.subscription_id)
            shown = (
                redact_endpoint(endpoint)
                if endpoint
                else f"{result.host}#sub{result.subscription_id}"
            )
            entry = {
                "at": ops.iso(at),
                "alert_id": self.alert_id,
                "batch_id": self.batch_id,
                "push_host": result.host,
                "endpoint": shown,
                "status": result.status,
                "error": result.error,
                "answer": decision.answer,
                "outcome": decision.outcome.value,
            }
            entries.append(entry)
            log.warning(
                "push not delivered",
                extra={
                    "alert_id": self.alert_id,
                    "batch_id": self.batch_id,
                    "task_id": self.task_id,
                    "push_host": result.host,
                    "outcome": decision.outcome.value,
                    "status": result.status,
                    "error": result.error,
                    "subscriber": shown,
                },
            )
        if self.more_errors:
            log.warning(
                "more pushes not delivered in this batch",
                extra={
                    "alert_id": self.alert_id,
                    "batch_id": self.batch_id,
                    "count": self.more_errors,
                },
            )
        self.kit.writer.add_errors(entries)


# -- alarm rounds -------------------------------------------------------------------------------
def webhook_notifier(url: str | None) -> Callable[[dict[str, Any]], bool] | None:
    """POST each alarm change as JSON (one notifier per round); the URL may hold a secret, so it
    is never logged."""
    if not url:
        return None
    failed = [False]

    def post(event: dict[str, Any]) -> bool:
        if failed[0]:
            return False  # one timeout per round is enough; the rest wait for the next round
        request = urllib.request.Request(  # noqa: S310 - the operator's configured webhook
            url,
            data=json.dumps(event).encode("utf-8"),
            method="POST",
            headers={"Content-Type": "application/json", "User-Agent": "newsflash-alarms"},
        )
        try:
            with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT_S) as response:  # noqa: S310
                ok = bool(200 <= response.status < 300)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            log.warning("alarm webhook failed; will retry", extra={"error": type(exc).__name__})
            ok = False
        failed[0] = not ok
        _count_notification(ok)
        return ok

    return post


def _count_notification(ok: bool) -> None:
    with contextlib.suppress(Exception):  # metrics never stop an alarm
        metrics.metrics().alarm_notifications.labels("sent" if ok else "failed").inc()


def run_alarm_round(kit: OpsKit, evaluator: str) -> dict[str, Any]:
    now = time.time()
    snapshot = ops_alarms.evaluate_alarms(
        kit.sources,
        kit.alarm_store,
        kit.thresholds,
        webhook_notifier(kit.settings.alert_webhook_url),
        now,
    )
    with contextlib.suppress(Exception):  # Redis down is itself reported by the round
        kit.telemetry.mark_evaluated(now)
    _observe_finished(kit, now)
    log.debug("alarm round", extra={"evaluator": evaluator, "alarms": len(snapshot["alarms"])})
    return snapshot


WATERMARK = "finished-watermark"


def _observe_finished(kit: OpsKit, now: float) -> None:
    """Publish-to-last-delivery for each alert that finished, observed once across processes."""
    try:
        raw = kit.telemetry.client.get("newsflash:observed:" + WATERMARK)
        since = float(raw) - 60 if raw is not None else now - 3600
        m = metrics.metrics()
        newest = since + 60
        for alert in kit.queries.finished_since(since):
            newest = max(newest, alert.finished_at)
            if not kit.telemetry.first_time(f"finished:{alert.alert_id}"):
                continue
            m.alerts_finished.labels(alert.status).inc()
            if alert.last_delivery_at is not None:
                m.publish_to_last_delivery.observe(
                    max(0.0, alert.last_delivery_at - alert.published_at)
                )
            for share, at in kit.queries.delivered_at_shares(alert.alert_id).items():
                m.time_to_delivered.labels(share).observe(max(0.0, at - alert.published_at))
        kit.telemetry.client.set("newsflash:observed:" + WATERMARK, repr(newest))
    except Exception as exc:
        log.debug("could not observe finished alerts", extra={"error": type(exc).__name__})


class BeatWatchdog(threading.Thread):
    """In the beat process: when no alarm round has run for three intervals (no worker on the
    maintenance lane, broker or Redis down), beat runs the rounds itself, every interval, until
    a round it did not run shows up (its own rounds mark the time of the last round too)."""

    def __init__(self, kit: OpsKit) -> None:
        super().__init__(name="newsflash-alarm-watchdog", daemon=True)
        self.kit = kit
        self.interval_s = kit.settings.alarm_interval_s
        self.stopping = threading.Event()
        self.covering = False
        self.own_round_at: float | None = None

    def due(self, now: float) -> bool:
        try:
            last = self.kit.telemetry.evaluated_at()
        except Exception:
            return True
        if self.covering:
            # Nothing newer than beat's own last round: the task still is not running.
            return last is None or self.own_round_at is None or last <= self.own_round_at
        return last is None or now - last > 3 * self.interval_s + 1

    def step(self, now: float) -> bool:
        """One check; True when beat ran the round itself."""
        if self.due(now):
            if not self.covering:
                log.warning("alarm task is not running; beat evaluates alarms itself")
            self.covering = True
            self.own_round_at = float(run_alarm_round(self.kit, "beat")["now"])
            return True
        if self.covering:
            self.covering = False
            log.info("alarm task is running again")
        return False

    def run(self) -> None:
        self.stopping.wait(3 * self.interval_s + 1)
        while not self.stopping.is_set():
            try:
                self.step(time.time())
            except Exception:
                log.exception("alarm round in beat failed")
            self.stopping.wait(self.interval_s)


# -- signal wiring --------------------------------------------------------------------------------
_state: dict[str, Any] = {}


def install(app: Celery, container_for: ContainerFor) -> None:
    """Wire this app into the process (every process that builds the Celery app calls it)."""
    settings: Settings = app.conf.newsflash_settings
    metrics.install(settings.metrics_dir)
    _state["settings"] = settings
    _state.setdefault("apps", {})[id(app)] = (app, container_for)
    before_task_publish.connect(stamp_publish_time, dispatch_uid=STAMP_UID, weak=False)
    task_prerun.connect(_consumed, dispatch_uid="newsflash-consumed", weak=False)
    task_revoked.connect(_revoked, dispatch_uid="newsflash-revoked", weak=False)
    setup_logging.connect(_setup_logging, dispatch_uid="newsflash-logging", weak=False)
    beat_init.connect(_beat_started, dispatch_uid="newsflash-beat", weak=False)
    worker_init.connect(_worker_started, dispatch_uid="newsflash-worker-init", weak=False)
    logs.add_context_provider(_task_context)


def _mark(app: Celery | None, delivery_info: dict[str, Any] | None) -> None:
    queue = (delivery_info or {}).get("routing_key")
    entry = _state.get("apps", {}).get(id(app))
    if not queue or entry is None:
        return
    try:  # through the process's telemetry writer: a task never waits on Redis to start
        kit_for(entry[1](entry[0]), entry[0]).writer.mark_consumed(queue, time.time())
    except Exception as exc:
        log.debug("could not mark consumption", extra={"error": type(exc).__name__})


def _consumed(sender: Any = None, task: Any = None, **_kwargs: Any) -> None:
    task = task or sender
    _mark(getattr(task, "app", None), getattr(task.request, "delivery_info", None))


def _revoked(sender: Any = None, request: Any = None, **_kwargs: Any) -> None:
    # Expired tasks are taken from the queue too: that is consumption, not a stall.
    _mark(getattr(sender, "app", None), getattr(request, "delivery_info", None))


def _setup_logging(loglevel: Any = None, **_kwargs: Any) -> None:
    settings: Settings | None = _state.get("settings")
    level = settings.log_level if settings else "INFO"
    logs.configure_logging(level, settings.log_json if settings else True)


def _task_context() -> dict[str, Any]:
    from celery import current_task

    request = getattr(current_task, "request", None) if current_task else None
    return {"task_id": getattr(request, "id", None)} if request is not None else {}


def _hold_database(role: str) -> None:
    """Say, for this process's life, that it uses the database: restore waits for it
    (core/adapters/db_holders.py). In the worker's main process, before its children fork."""
    settings: Settings | None = _state.get("settings")
    if settings is not None:
        db_holders.hold(settings.database_url, role)


def _worker_started(sender: Any = None, **_kwargs: Any) -> None:
    _hold_database("worker")


def _beat_started(sender: Any = None, **_kwargs: Any) -> None:
    _hold_database("beat")
    app = getattr(sender, "app", None)
    entry = _state.get("apps", {}).get(id(app))
    if entry is None and _state.get("apps"):
        entry = next(iter(_state["apps"].values()))
    if entry is None:
        return
    kit = kit_for(entry[1](entry[0]), entry[0])
    watchdog = BeatWatchdog(kit)
    _state["watchdog"] = watchdog
    watchdog.start()
