"""Request ids on the web side: X-Request-Id in, a correlation scope per request, one log line out."""

from __future__ import annotations

import contextlib
import logging
import time

from flask import Flask, Response, current_app, g, request

from core import correlation
from core.adapters import task_tracing

HEADER = "X-Request-Id"
log = logging.getLogger("newsflash.http")

# Probes and scrapes arrive every few seconds; a line each would bury the requests that matter.
_QUIET_ROUTES = frozenset({"/healthz", "/readyz", "/metrics"})


def install(app: Flask) -> None:
    """First before_request hook (so a request refused by the rate limiter is logged too)."""
    app.before_request_funcs.setdefault(None, []).insert(0, _begin)
    app.after_request(_answer)
    app.teardown_request(_end)


def _begin() -> None:
    g.nf_started = time.perf_counter()
    g.nf_scope = correlation.begin(correlation.sane_request_id(request.headers.get(HEADER)))


def _answer(response: Response) -> Response:
    if "nf_scope" not in g:  # a request that failed before our first hook ran
        g.nf_started = time.perf_counter()
        g.nf_scope = correlation.begin()
    scope = correlation.current()
    request_id = scope.get("request_id")
    if request_id:
        response.headers[HEADER] = request_id
    if request_id and scope.get("alert_id") is not None and response.status_code < 400:
        # Scheduled sends and re-queues leave later, from beat: they find this id by the alert.
        settings = current_app.extensions["newsflash"].settings
        task_tracing.remember_origin(
            task_tracing.origin_store(settings.redis_url), scope["alert_id"], request_id
        )
    rule = request.url_rule.rule if request.url_rule is not None else "<unmatched>"
    # The route pattern, never the path or query string: a path may carry an endpoint and a
    # query string a token.
    log.log(
        logging.DEBUG if rule in _QUIET_ROUTES else logging.INFO,
        "request",
        extra={
            "method": request.method,
            "route": rule,
            "status": response.status_code,
            "ms": round((time.perf_counter() - g.nf_started) * 1000, 1),
        },
    )
    return response


def _end(_exc: BaseException | None = None) -> None:
    token = g.pop("nf_scope", None)
    if token is not None:
        # A streamed response may finish in another context; the scope then dies with it.
        with contextlib.suppress(ValueError):
            correlation.end(token)
