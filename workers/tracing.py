"""Request ids on the Celery side: carried in a message header, bound around each task run,
and the alert id spelled out in the arguments Flower shows."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from contextvars import Token
from typing import Any

from celery.signals import before_task_publish, task_postrun, task_prerun

from core import correlation
from workers.factory import TASK_DELIVER, TASK_PLAN

_scopes: dict[str, Token[dict[str, Any] | None]] = {}


def install() -> None:
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
    # Inside a request or task the current id wins; a retry copies the header it ran with.
    request_id = correlation.request_id() or headers.get(correlation.REQUEST_ID_HEADER)
    if request_id:
        headers[correlation.REQUEST_ID_HEADER] = request_id
    name = str(headers.get("task") or sender or "")
    args = body[0] if isinstance(body, tuple | list) and body else ()
    shown = describe(name, args if isinstance(args, list | tuple) else (), request_id)
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
