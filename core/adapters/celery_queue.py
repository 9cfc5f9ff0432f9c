"""The TaskQueue port on Celery: broker settings, task names, and a producer that sends ids."""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.signals import before_task_publish
from kombu.entity import Exchange, Queue
from kombu.exceptions import KombuError

from config.settings import Settings
from core.adapters.backups import SCHEDULE_CHECK_S
from core.adapters.broker import stamp_headers
from core.model import Lane
from core.ports import QueueUnavailable

TASK_PLAN = "newsflash.plan_fanout"
TASK_DELIVER = "newsflash.deliver_batch"
TASK_RETRY_DUE = "newsflash.retry_due"
TASK_RECONCILE = "newsflash.reconcile"
TASK_RECLAIM = "newsflash.reclaim"
TASK_RETENTION = "newsflash.retention"
TASK_BACKUP = "newsflash.scheduled_backup"
TASK_FIRE_SCHEDULED = "newsflash.fire_scheduled"
TASK_PURGE = "newsflash.purge_subscriptions"
TASK_ALARMS = "newsflash.evaluate_alarms"
TASK_RECOUNT = "newsflash.recount_subscriptions"
TASK_QUIET_ZONES = "newsflash.refresh_quiet_zones"
TASK_POLL_FEEDS = "newsflash.poll_feeds"
TASK_CHECK_ARTICLES = "newsflash.check_articles"

ALL_QUEUES = tuple(lane.value for lane in Lane)

# Feeds and the publish-readiness gate (core/usecases/feeds.py, readiness.py).
FEED_ROUTES = {
    TASK_POLL_FEEDS: {"queue": Lane.MAINTENANCE.value},
    # Releasing a gate starts a breaking send: it must not wait behind housekeeping.
    TASK_CHECK_ARTICLES: {"queue": Lane.BREAKING.value},
}
FEED_SCHEDULE = {
    "poll-feeds": {"task": TASK_POLL_FEEDS, "schedule": 15.0, "options": {"expires": 30}},
    "check-articles": {"task": TASK_CHECK_ARTICLES, "schedule": 1.0, "options": {"expires": 5}},
}


# Batch leases and retention (core/reclaim.py, core/retention.py), on the maintenance lane.
RECOVERY_ROUTES = {
    TASK_RECLAIM: {"queue": Lane.MAINTENANCE.value},
    TASK_RETENTION: {"queue": Lane.MAINTENANCE.value},
    TASK_BACKUP: {"queue": Lane.MAINTENANCE.value},
}


def recovery_schedule(settings: Settings) -> dict[str, dict[str, object]]:
    """Dead workers' batches and a broker that came back empty, every quarter of a lease; old
    ledgers, audit entries and hourly counts every 10 minutes (a run stops after 2); with
    NEWSFLASH_BACKUP_DIR set, whether a backup is due every 10 minutes too."""
    lease = settings.batch_lease_s
    schedule: dict[str, dict[str, object]] = {
        "reclaim": {"task": TASK_RECLAIM, "schedule": lease / 4, "options": {"expires": lease}},
        "retention": {"task": TASK_RETENTION, "schedule": 600.0, "options": {"expires": 300}},
    }
    if settings.backup_dir is not None:
        schedule["scheduled-backup"] = {
            "task": TASK_BACKUP,
            "schedule": SCHEDULE_CHECK_S,
            "options": {"expires": 300},
        }
    return schedule


def soft_limit_s(limit_s: int) -> int:
    """The soft time limit that goes with a hard one: time to clean up before the kill."""
    return max(5, limit_s - 30)


def backup_time_limits(settings: Settings) -> tuple[int, int]:
    """(hard, soft) time limits of the scheduled-backup task, its own instead of every task's."""
    return settings.backup_time_limit_s, soft_limit_s(settings.backup_time_limit_s)


# A Redis broker that accepts connections and answers nothing (hung, a half-open proxy): with
# redis-py's default of no timeout, publishing an alert waited for ever on kombu's first PING.
# Longer than kombu's 1 s BRPOP, so an idle worker's wait for tasks never trips it.
BROKER_SOCKET_TIMEOUT_S = 5


def broker_socket_options(broker_url: str) -> dict[str, object]:
    if not broker_url.startswith(("redis://", "rediss://", "unix://")):
        return {}  # AMQP: kombu's broker_connection_timeout (4 s) and heartbeats already
    return {
        "socket_timeout": BROKER_SOCKET_TIMEOUT_S,
        "socket_connect_timeout": BROKER_SOCKET_TIMEOUT_S,
    }


def celery_config(settings: Settings) -> dict[str, object]:
    visibility = {"visibility_timeout": settings.visibility_timeout_s}
    exchange = Exchange("newsflash", type="direct")
    return {
        "broker_url": settings.broker_url,
        "result_backend": None,
        "task_ignore_result": True,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_acks_on_failure_or_timeout": True,
        "worker_prefetch_multiplier": 1,
        # A broker blip must not kill running batches: the one killed would resend whatever it
        # had not yet recorded. Left running, it finishes and records; its redelivered message
        # finds the batch done (or freshly claimed) and sends nothing.
        "worker_cancel_long_running_tasks_on_connection_loss": False,
        "task_time_limit": settings.task_time_limit_s,
        "task_soft_time_limit": soft_limit_s(settings.task_time_limit_s),
        # Redis redelivers unacked tasks after the visibility timeout: it must exceed every
        # task's time limit, for the broker, the result backend and the app alike. The one
        # exception, the scheduled backup (NEWSFLASH_BACKUP_TIME_LIMIT_S may be longer): its
        # copy delivered again mid-run finds the run's lock and does nothing.
        "broker_transport_options": dict(
            visibility, max_retries=None, **broker_socket_options(settings.broker_url)
        ),
        "result_backend_transport_options": dict(visibility),
        "visibility_timeout": settings.visibility_timeout_s,
        "broker_connection_retry": True,
        "broker_connection_retry_on_startup": True,
        "broker_connection_max_retries": None,
        "broker_heartbeat": 30,
        "broker_pool_limit": 10,
        "task_publish_retry": True,
        "task_publish_retry_policy": {
            "max_retries": 3,
            "interval_start": 0,
            "interval_step": 0.2,
            "interval_max": 1,
        },
        "task_default_queue": Lane.ROUTINE.value,
        "task_default_exchange": exchange.name,
        "task_default_routing_key": Lane.ROUTINE.value,
        "task_queues": tuple(Queue(q, exchange, routing_key=q, durable=True) for q in ALL_QUEUES),
        "task_create_missing_queues": False,
        "task_routes": {
            TASK_RETRY_DUE: {"queue": Lane.MAINTENANCE.value},
            TASK_RECONCILE: {"queue": Lane.MAINTENANCE.value},
            TASK_FIRE_SCHEDULED: {"queue": Lane.BREAKING.value},
            TASK_PURGE: {"queue": Lane.MAINTENANCE.value},
            TASK_ALARMS: {"queue": Lane.MAINTENANCE.value},
            TASK_RECOUNT: {"queue": Lane.MAINTENANCE.value},
            TASK_QUIET_ZONES: {"queue": Lane.MAINTENANCE.value},
            **FEED_ROUTES,
            **RECOVERY_ROUTES,
        },
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        "worker_hijack_root_logger": False,
        "worker_redirect_stdouts": False,
        "worker_max_memory_per_child": 300_000,  # KiB: recycle a child before it nears 300 MB
        "beat_schedule": {
            "fire-scheduled": {
                "task": TASK_FIRE_SCHEDULED,
                "schedule": 1.0,
                "options": {"expires": 5},
            },
            **FEED_SCHEDULE,
            "retry-due": {"task": TASK_RETRY_DUE, "schedule": 1.0, "options": {"expires": 5}},
            "reconcile": {"task": TASK_RECONCILE, "schedule": 10.0, "options": {"expires": 30}},
            **recovery_schedule(settings),
            "purge-subscriptions": {
                "task": TASK_PURGE,
                "schedule": 3600.0,
                "options": {"expires": 600},
            },
            # Quiet hours follow summer time within the hour (core/quiet.py).
            "refresh-quiet-zones": {
                "task": TASK_QUIET_ZONES,
                "schedule": 3600.0,
                "options": {"expires": 600},
            },
            "recount-subscriptions": {
                "task": TASK_RECOUNT,
                "schedule": 6 * 3600.0,
                "options": {"expires": 600},
            },
            "evaluate-alarms": {
                "task": TASK_ALARMS,
                "schedule": settings.alarm_interval_s,
                "options": {"expires": max(2.0, 2 * settings.alarm_interval_s)},
            },
        },
        "beat_max_loop_interval": 1,
    }


def make_producer(settings: Settings) -> Celery:
    """A Celery app that only sends tasks by name (the web process never imports the tasks).

    Every message it publishes carries its publish time, which the ops page reads as the age
    of the oldest waiting task.
    """
    app = Celery("newsflash", set_as_current=False)
    app.conf.update(celery_config(settings))
    app.conf.newsflash_settings = settings
    before_task_publish.connect(stamp_publish_time, dispatch_uid=STAMP_UID, weak=False)
    # The request id of the web request (or CLI) that sends a task travels in its headers.
    from core.adapters import task_tracing

    task_tracing.install()
    return app


STAMP_UID = "newsflash-stamp"


def stamp_publish_time(headers: dict[str, Any] | None = None, **_kwargs: Any) -> None:
    if headers is not None:
        stamp_headers(headers)


class CeleryTaskQueue:
    """TaskQueue port on Celery: ids only, explicit queue per lane, stable task names."""

    def __init__(self, app: Celery) -> None:
        self.app = app

    def enqueue_plan(self, alert_id: int, lane: Lane) -> None:
        self._send(TASK_PLAN, [alert_id], lane)

    def enqueue_batch(self, batch_id: int, alert_id: int, lane: Lane) -> None:
        self._send(TASK_DELIVER, [batch_id, alert_id], lane)

    def _send(self, task: str, args: list[int], lane: Lane) -> None:
        try:
            self.app.send_task(task, args=args, queue=lane.value, routing_key=lane.value)
        except (KombuError, OSError) as exc:
            # kombu's OperationalError after its publish retries (refused, or a socket timeout)
            raise QueueUnavailable(f"the broker did not take {task}") from exc
