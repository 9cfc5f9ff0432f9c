"""Request ids on the Celery side: carried in a message header, bound around each task run,
remembered per alert for the sweeps that re-send its work, and the alert id spelled out in
the arguments Flower shows."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from contextvars import Token
from typing import Any

import redis
from celery import Celery
from celery.signals import before_task_publish, task_postrun, task_prerun

from core import correlation
from core.adapters.celery_queue import TASK_DELIVER, TASK_PLAN
from core.adapters.telemetry import fast_failing_client

ORIGIN_KEY = "newsflash:alert-request:"
ORIGIN_KEEP_S = 8 * 86400  # longer than the longest TTL: no push of the alert outlives it
ORIGIN_TIMEOUT_S = 0.5  # a log id never holds up a publish or a sweep for long

_scopes: dict[str, Token[dict[str, Any] | None]] = {}
_redis: dict[str, redis.Redis[bytes]] = {}
_sweeps: list[redis.Redis[bytes]] = []  # where this process's sweeps recall origins


def origin_store(redis_url: str) -> redis.Redis[bytes]:
    found = _redis.get(redis_url)
    if found is None:
        found = _redis[redis_url] = fast_failing_client(redis_url, ORIGIN_TIMEOUT_S)
    return found


def remember_origin(client: redis.Redis[bytes], alert_id: int, request_id: str) -> None:
    """The request that made an alert, for the beat sweeps (scheduled sends, retries, the
    reconciler) that later send its tasks from a request of their own."""
    with contextlib.suppress(Exception):
        client.set(f"{ORIGIN_KEY}{alert_id}", request_id, ex=ORIGIN_KEEP_S, nx=True)


def recall_origin(client: redis.Redis[bytes], alert_id: int) -> str | None:
    try:
        raw = client.get(f"{ORIGIN_KEY}{alert_id}")
    except Exception:
        return None
    return correlation.sane_request_id(raw.decode("ascii", "replace")) if raw else None


def install(app: Celery | None = None) -> None:
    if app is not None and not _sweeps:
        _sweeps.append(origin_store(app.conf.newsflash_settings.redis_url))
    before_task_publish.connect(_stamp, dispatch_uid="newsflash-request-id", weak=False)
    task_prerun.connect(_bind, dispatch_uid="newsflash-bind-request-id", weak=False)
    task_postrun.connect(_unbind, dispatch_uid="newsflash-unbind-request-id", weak=False)


def ids_of(task_name: str, args: Sequence[Any]) -> dict[str, Any]:
    """The alert and batch a plan or delivery task is about (task args stay ids, positional)."""
    if task_name == TASK_PLAN and args:
        return {"alert_id": args[0]}
    if task_name == TASK_DELIVER and args:
        return {"batch_id": args[0], "alert_id": args[1] if len(args) > 1 else None}
    return {}


def describe(task_name: str, args: Sequence[Any], request_id: str | None) -> str | None:
    """What Flower (and /ops) show as the task's arguments: `alert=12` to grep and click."""
    ids = ids_of(task_name, args)
    if not ids:
        return None
    parts = [f"{key.removesuffix('_id')}={value}" for key, value in ids.items()]
    if request_id:
        parts.append(f"request_id={request_id}")
    return "(" + ", ".join(parts) + ")"


def _stamp(
    sender: Any = None,
    body: Any = None,
    headers: dict[str, Any] | None = None,
    **_kwargs: Any,
) -> None:
    if headers is None:
        return
    name = str(headers.get("task") or sender or "")
    args = body[0] if isinstance(body, tuple | list) and body else ()
    args = args if isinstance(args, list | tuple) else ()
    scope = correlation.current()
    # Inside a request or task the current id wins; a retry copies the header it ran with.
    request_id = scope.get("request_id") or headers.get(correlation.REQUEST_ID_HEADER)
    alert_id = ids_of(name, args).get("alert_id")
    if alert_id is not None and scope.get("alert_id") != alert_id and _sweeps:
        # A sweep re-sending this alert's work: the alert's own request id follows it.
        request_id = recall_origin(_sweeps[0], alert_id) or request_id
    if request_id:
        headers[correlation.REQUEST_ID_HEADER] = request_id
    shown = describe(name, args, request_id)
    if shown is not None:
        headers["argsrepr"] = shown


def _bind(task_id: str | None = None, task: Any = None, args: Any = None, **_kwargs: Any) -> None:
    if task_id is None or task is None:
        return
    request = task.request
    # Tasks beat sends have no request behind them: their own task id is their request id.
    request_id = getattr(request, correlation.REQUEST_ID_HEADER, None) or task_id
    ids = ids_of(task.name, args or ())
    _scopes[task_id] = correlation.begin(request_id, **ids)


def _unbind(task_id: str | None = None, **_kwargs: Any) -> None:
    token = _scopes.pop(task_id, None) if task_id else None
    if token is not None:
        # Run in another context than it started in (a thread pool): nothing to restore.
        with contextlib.suppress(ValueError):
            correlation.end(token)
