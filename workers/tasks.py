"""Celery tasks: each loads ids, calls the core, and maps the outcome to ack or retry.

Every task is registered with shared=False: its body reaches the container through the app it
was made for (`container_for(app)`), so a second app in one process (the tests make several)
must never take the first one's task under the same name (Celery shares tasks by default)."""

from __future__ import annotations

import logging
import time
from typing import Any

from celery import Celery, Task
from celery.signals import worker_process_init, worker_process_shutdown, worker_shutdown
from sqlalchemy.exc import OperationalError

from config.settings import Settings
from core.adapters.celery_queue import (
    TASK_ALARMS,
    TASK_BACKUP,
    TASK_CHECK_ARTICLES,
    TASK_DELIVER,
    TASK_FIRE_SCHEDULED,
    TASK_PLAN,
    TASK_POLL_FEEDS,
    TASK_PURGE,
    TASK_QUIET_ZONES,
    TASK_RECLAIM,
    TASK_RECONCILE,
    TASK_RECOUNT,
    TASK_RETENTION,
    TASK_RETRY_DUE,
    backup_time_limits,
)
from core.bootstrap import Container
from core.delivery import BatchReport

log = logging.getLogger("newsflash.tasks")

_containers: dict[int, Container] = {}


def container_for(app: Celery) -> Container:
    """One container per app per process; rebuilt in each forked child."""
    key = id(app)
    found = _containers.get(key)
    if found is None:
        settings: Settings = app.conf.newsflash_settings
        found = _containers[key] = Container(settings, producer=app)
    return found


@worker_process_init.connect
def _after_fork(**_kwargs: Any) -> None:
    for found in _containers.values():
        found.reset_after_fork()


DRAIN_S = 30.0


@worker_process_shutdown.connect
@worker_shutdown.connect
def _drain(**_kwargs: Any) -> None:
    """A process that stops (warm shutdown) first records the batches its sender still has in
    flight; one killed outright leaves them claimed, to be taken up again once stale."""
    for found in _containers.values():
        found.drain_sending(DRAIN_S)


RETRY_ON = (OperationalError, ConnectionError)


def register(app: Celery) -> None:
    """Declare the tasks on `app` (tests build their own app with make_celery)."""
    from core.adapters import task_tracing as tracing
    from workers import monitoring

    monitoring.install(app, container_for)
    tracing.install(app)
    _register_fanout(app)
    _register_periodic(app)


def _register_fanout(app: Celery) -> None:
    """The send itself: plan an alert's audience into batches, deliver a batch."""
    from workers import monitoring

    @app.task(
        shared=False,
        name=TASK_PLAN,
        bind=True,
        autoretry_for=RETRY_ON,
        retry_backoff=True,
        retry_backoff_max=30,
        max_retries=None,
    )
    def plan_fanout(self: Task, alert_id: int) -> None:
        container_for(app).delivery.plan(alert_id)

    @app.task(
        shared=False,
        name=TASK_DELIVER,
        bind=True,
        autoretry_for=RETRY_ON,
        retry_backoff=True,
        retry_backoff_max=30,
        max_retries=None,
    )
    def deliver_batch(self: Task, batch_id: int, alert_id: int | None = None) -> None:
        c = container_for(app)
        _deliver(c, self, batch_id, alert_id)
        # A dead worker's batch found between two batches is sent here and now (its queued
        # copy would wait behind the whole queue); the copy finds it done.
        for lapsed_batch, lapsed_alert in c.delivery.lapsed():
            _deliver(c, self, lapsed_batch, lapsed_alert)

    def _deliver(c: Container, self: Task, batch_id: int, alert_id: int | None) -> None:
        started = time.monotonic()
        observer = monitoring.DeliveryObserver(
            monitoring.kit_for(c, app), alert_id, batch_id, self.request.id
        )
        task_id = self.request.id

        def finished(report: BatchReport) -> None:
            # Runs once the batch's last answer is recorded: after this task has returned when
            # the sender took the batch while earlier ones were still in flight.
            observer.finish()
            log.info(
                "delivered batch" if report.claimed else "batch not ours",
                extra={
                    "task_id": task_id,
                    "alert_id": report.alert_id or alert_id,
                    "batch_id": batch_id,
                    "sent": report.sent,
                    "outcomes": report.outcomes,
                    "elapsed_s": round(time.monotonic() - started, 3),
                },
            )

        c.delivery.deliver(batch_id, observe=observer, on_complete=finished)


def _register_periodic(app: Celery) -> None:
    """What beat runs: retries, the reconciler, schedules, feeds, gates, housekeeping, alarms."""
    from workers import monitoring

    @app.task(shared=False, name=TASK_RETRY_DUE, autoretry_for=RETRY_ON, max_retries=0)
    def retry_due() -> int:
        return container_for(app).delivery.retry_due()

    @app.task(shared=False, name=TASK_RECONCILE, autoretry_for=RETRY_ON, max_retries=0)
    def reconcile() -> dict[str, int]:
        return container_for(app).delivery.reconcile()

    @app.task(shared=False, name=TASK_FIRE_SCHEDULED, autoretry_for=RETRY_ON, max_retries=0)
    def fire_scheduled() -> int:
        return container_for(app).delivery.fire_scheduled()

    register_feed_tasks(app)
    register_recovery_tasks(app)

    @app.task(shared=False, name=TASK_PURGE, autoretry_for=RETRY_ON, max_retries=0)
    def purge_subscriptions() -> int:
        return container_for(app).delivery.purge()

    @app.task(shared=False, name=TASK_RECOUNT, autoretry_for=RETRY_ON, max_retries=0)
    def recount_subscriptions() -> None:
        container_for(app).delivery.recount()

    @app.task(shared=False, name=TASK_QUIET_ZONES, autoretry_for=RETRY_ON, max_retries=0)
    def refresh_quiet_zones() -> int:
        return container_for(app).delivery.refresh_quiet_zones()

    @app.task(shared=False, name=TASK_ALARMS, max_retries=0)
    def evaluate_alarms() -> int:
        kit = monitoring.kit_for(container_for(app), app)
        return len(monitoring.run_alarm_round(kit, "task")["alarms"])


def register_recovery_tasks(app: Celery) -> None:
    """Beat's lease sweep (core/reclaim.py), retention (core/retention.py) and scheduled
    backups (core/adapters/backups.py)."""

    @app.task(shared=False, name=TASK_RECLAIM, autoretry_for=RETRY_ON, max_retries=0)
    def reclaim() -> dict[str, int]:
        return container_for(app).delivery.reclaim()

    @app.task(shared=False, name=TASK_RETENTION, autoretry_for=RETRY_ON, max_retries=0)
    def retention() -> dict[str, int]:
        return container_for(app).delivery.retention()

    # Its own time limit (NEWSFLASH_BACKUP_TIME_LIMIT_S), not every task's 300 s: a big
    # PostgreSQL dump takes longer. The soft limit stops pg_dump and removes the partial copy.
    limit_s = backup_time_limits(app.conf.newsflash_settings)

    @app.task(
        shared=False,
        name=TASK_BACKUP,
        max_retries=0,
        time_limit=limit_s[0],
        soft_time_limit=limit_s[1],
    )
    def scheduled_backup() -> str:
        from core.adapters import backups

        c = container_for(app)
        return backups.run_schedule(c.settings, backups.RedisBackupState(c.redis), c.clock())


def register_feed_tasks(app: Celery) -> None:
    """Feeds (poll, then at most one auto send) and the readiness gate's checks, both on beat."""

    @app.task(shared=False, name=TASK_POLL_FEEDS, autoretry_for=RETRY_ON, max_retries=0)
    def poll_feeds() -> int:
        return sum(r.new for r in container_for(app).feeds.poll_due())

    @app.task(shared=False, name=TASK_CHECK_ARTICLES, autoretry_for=RETRY_ON, max_retries=0)
    def check_articles() -> int:
        return container_for(app).readiness.check_due()
