"""Correlation: the request id and alert id that follow one alert through every log line."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from typing import Any, Final

# The Celery message header that carries the request id from the web (or CLI) to the tasks.
REQUEST_ID_HEADER: Final = "nf_request_id"
MAX_REQUEST_ID = 64
# Ids from outside (X-Request-Id, webhook-id) are kept only when they cannot smuggle anything
# into a log line or a header: no separators, no URL, no spaces, bounded.
_SANE = re.compile(rf"[A-Za-z0-9._-]{{1,{MAX_REQUEST_ID}}}")

# One dict per request or task; a new dict (never a shared one) is set at each begin().
_fields: ContextVar[dict[str, Any] | None] = ContextVar("newsflash_correlation", default=None)


def sane_request_id(value: object) -> str | None:
    """The caller's id if it is safe to log and echo, else None."""
    if isinstance(value, str) and _SANE.fullmatch(value):
        return value
    return None


def new_request_id() -> str:
    return str(uuid.uuid4())


def begin(request_id: str | None = None, **fields: Any) -> Token[dict[str, Any] | None]:
    """Start a scope (a request, a task, a CLI command); end it with end(token)."""
    scope = {"request_id": sane_request_id(request_id) or new_request_id()}
    scope.update({k: v for k, v in fields.items() if v is not None})
    return _fields.set(scope)


def end(token: Token[dict[str, Any] | None]) -> None:
    _fields.reset(token)


@contextmanager
def scope(request_id: str | None = None, **fields: Any) -> Iterator[dict[str, Any]]:
    token = begin(request_id, **fields)
    try:
        yield current()
    finally:
        end(token)


def annotate(**fields: Any) -> None:
    """Add what became known mid-scope (the alert id once it is stored); no-op outside a scope."""
    scope_fields = _fields.get()
    if scope_fields is not None:
        scope_fields.update({k: v for k, v in fields.items() if v is not None})


def current() -> dict[str, Any]:
    return dict(_fields.get() or {})


def request_id() -> str | None:
    scope_fields = _fields.get()
    return None if scope_fields is None else scope_fields.get("request_id")
