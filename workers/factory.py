"""Celery adapter: make_celery(settings) with the broker settings a careful operator expects."""

from __future__ import annotations

import sys
from typing import Any

from celery import Celery
from celery.signals import celeryd_init

from config.settings import Settings
from core.adapters.celery_queue import (
    ALL_QUEUES,
    TASK_ALARMS,
    TASK_DELIVER,
    TASK_FIRE_SCHEDULED,
    TASK_PLAN,
    TASK_PURGE,
    TASK_QUIET_ZONES,
    TASK_RECLAIM,
    TASK_RECONCILE,
    TASK_RECOUNT,
    TASK_RETENTION,
    TASK_RETRY_DUE,
    celery_config,
    make_producer,
)
from core.bootstrap import StartupError

# Re-exported: the broker settings and task names live with the TaskQueue adapter in core.
__all__ = [
    "ALL_QUEUES",
    "TASK_ALARMS",
    "TASK_DELIVER",
    "TASK_FIRE_SCHEDULED",
    "TASK_PLAN",
    "TASK_PURGE",
    "TASK_QUIET_ZONES",
    "TASK_RECLAIM",
    "TASK_RECONCILE",
    "TASK_RECOUNT",
    "TASK_RETENTION",
    "TASK_RETRY_DUE",
    "UnsafeWorkerConfig",
    "celery_config",
    "check_worker_config",
    "make_celery",
]


class UnsafeWorkerConfig(StartupError):
    """A broker setting that could lose or duplicate alerts; the worker refuses to start."""


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
    app = make_producer(settings)
    # Back on the broker within a second or two of its return (kombu's default waits grow
    # 2, 4, 6 ... up to 30 s between tries, so a worker could sleep through half a minute).
    app.conf.worker_consumer = "workers.consumer:QuickReconnectConsumer"
    from workers import tasks

    tasks.register(app)
    return app
