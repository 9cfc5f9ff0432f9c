"""Celery adapter: make_celery(settings) with the broker settings a careful operator expects."""

from __future__ import annotations

import sys
from typing import Any

from celery import Celery
from celery.signals import celeryd_init
from kombu.entity import Exchange, Queue

from config.settings import Settings
from core.bootstrap import StartupError
from core.model import Lane

TASK_PLAN = "newsflash.plan_fanout"
TASK_DELIVER = "newsflash.deliver_batch"
TASK_RETRY_DUE = "newsflash.retry_due"
TASK_RECONCILE = "newsflash.reconcile"
TASK_FIRE_SCHEDULED = "newsflash.fire_scheduled"
TASK_PURGE = "newsflash.purge_subscriptions"
TASK_ALARMS = "newsflash.evaluate_alarms"
TASK_RECOUNT = "newsflash.recount_subscriptions"

ALL_QUEUES = tuple(lane.value for lane in Lane)


class UnsafeWorkerConfig(StartupError):
    """A broker setting that could lose or duplicate alerts; the worker refuses to start."""


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
        "task_soft_time_limit": max(5, settings.task_time_limit_s - 30),
        # Redis redelivers unacked tasks after the visibility timeout: it must exceed every
        # task's time limit, for the broker, the result backend and the app alike.
        "broker_transport_options": dict(visibility, max_retries=None),
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
            "retry-due": {"task": TASK_RETRY_DUE, "schedule": 2.0, "options": {"expires": 10}},
            "reconcile": {"task": TASK_RECONCILE, "schedule": 10.0, "options": {"expires": 30}},
            "purge-subscriptions": {
                "task": TASK_PURGE,
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


def check_worker_config(conf: dict[str, object] | object) -> None:
    """Refuse settings that could lose alerts or run untrusted payloads."""

    def get(name: str) -> object:
        if isinstance(conf, dict):
            return conf.get(name)
        return getattr(conf, name, None)

    limit = get("task_time_limit")
    options = get("broker_transport_options") or {}
    visibility = options.get("visibility_timeout") if isinstance(options, dict) else None
    if not isinstance(limit, int | float) or not isinstance(visibility, int | float):
        raise UnsafeWorkerConfig("task_time_limit and broker visibility_timeout must both be set")
    if visibility < 2 * limit:
        raise UnsafeWorkerConfig(
            f"NEWSFLASH_VISIBILITY_TIMEOUT_S ({visibility}) must be at least twice "
            f"NEWSFLASH_TASK_TIME_LIMIT_S ({limit}), or running tasks get delivered twice"
        )
    accept = get("accept_content")
    if not isinstance(accept, list | tuple) or set(accept) != {"json"}:
        raise UnsafeWorkerConfig(f"accept_content must be ['json'] only (got {accept!r})")
    if get("task_serializer") != "json":
        raise UnsafeWorkerConfig("task_serializer must be json")
    if get("broker_connection_max_retries") is not None:
        raise UnsafeWorkerConfig("broker_connection_max_retries must be unlimited (None)")
    if not get("task_acks_late") or not get("task_reject_on_worker_lost"):
        raise UnsafeWorkerConfig("task_acks_late and task_reject_on_worker_lost must be on")


@celeryd_init.connect
def _refuse_unsafe_worker(conf: Any = None, **_kwargs: Any) -> None:
    """However a worker of ours is started (`newsflash worker`, `celery -A workers.celery_app`,
    app.worker_main), it checks the configuration it really runs with before consuming."""
    if conf is None or getattr(conf, "newsflash_settings", None) is None:
        return
    try:
        check_worker_config(conf)
    except UnsafeWorkerConfig as exc:
        # SystemExit passes Celery's signal dispatch, which would log and swallow an Exception.
        print(f"newsflash: refusing to start the worker: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def make_celery(settings: Settings) -> Celery:
    app = Celery("newsflash", set_as_current=False)
    app.conf.update(celery_config(settings))
    app.conf.newsflash_settings = settings
    from workers import tasks

    tasks.register(app)
    return app
