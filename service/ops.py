"""Ops pages and APIs: /ops (live dashboard), /api/v1/ops/queues (the same facts as JSON),
/metrics (Prometheus), and the ops detail of /readyz (open alarms, broker warnings) for ops only."""

from __future__ import annotations

import contextlib
import hmac
import json
import time
from typing import Any

from flask import Blueprint, Response, current_app, g, render_template, request
from flask.blueprints import BlueprintSetupState
from redis.exceptions import RedisError

from core import ops, ops_alarms
from core.accounts import OPS_ROLES
from core.adapters import backups, metrics
from core.adapters.ops_probes import OpsKit
from service import health_view
from service.app import Newsflash
from service.auth import current_principal, require_role
from service.health import broker_warnings

bp = Blueprint("ops", __name__)


def ext() -> Newsflash:
    return current_app.extensions["newsflash"]  # type: ignore[no-any-return]


def _kit() -> OpsKit:
    return ext().container.ops


def _fresh_snapshot(
    kit: OpsKit, unreachable: dict[str, BaseException] | None = None
) -> dict[str, Any]:
    snapshot = ops.collect(kit.sources, time.time(), unreachable=unreachable)
    # What collect found unreachable is not asked again: a hung database or Redis costs the
    # round one timeout, and /metrics still answers within a scrape's 10 s.
    database_ok, redis_ok = snapshot["database"]["ok"], snapshot["redis"]["ok"]
    try:
        alarms = kit.alarm_store if redis_ok else kit.alarm_store.local
        snapshot["alarms"] = ops_alarms.alarms_json(alarms)
    except Exception:
        snapshot["alarms"] = None
    try:
        snapshot["churn_totals"] = kit.queries.churn_totals() if database_ok else None
    except Exception:
        snapshot["churn_totals"] = None  # the snapshot's "database" section says why
    state = backups.RedisBackupState(kit.telemetry.client) if redis_ok else None
    snapshot["backups"] = backups.status(kit.settings, state)
    snapshot["thresholds"] = {
        "stall_s": kit.settings.alarm_stall_s,
        "pending_s": kit.settings.alarm_pending_s,
        "min_rate_per_s": kit.settings.alarm_min_rate_per_s,
        "pending_max_s": kit.settings.alarm_pending_max_s,
        "interval_s": kit.settings.alarm_interval_s,
    }
    try:
        evaluated = kit.telemetry.evaluated_at() if redis_ok else None
    except Exception:
        evaluated = None
    # Nobody evaluating (beat down) would otherwise look like "all clear".
    snapshot["alarms_evaluated_s_ago"] = (
        None if evaluated is None else round(snapshot["now"] - evaluated, 1)
    )
    return snapshot


def snapshot_text() -> str:
    """The ops picture as JSON, shared through Redis for ops_cache_s so that many viewers (and
    web processes) cost one round of broker questions per period."""
    kit = _kit()
    try:
        return kit.telemetry.cached(
            "snapshot", kit.settings.ops_cache_s, lambda: _fresh_snapshot(kit), json.dumps
        )
    except Exception as exc:
        # Redis down: answer anyway, uncached; the snapshot says what is unreachable (and
        # does not ask Redis again: once hung, every question would wait its timeout).
        down: dict[str, BaseException] | None = (
            {"redis": exc} if isinstance(exc, RedisError) else None
        )
        return json.dumps(_fresh_snapshot(kit, down))


@bp.get("/ops")
@require_role(OPS_ROLES, page=True)
def dashboard() -> str:
    snapshot = snapshot_text()
    return render_template(
        "ops/index.html",
        audience=health_view.health_or_none(_kit(), json.loads(snapshot)),
        # "<" escaped so a headline can never close the <script> it is embedded in.
        initial=snapshot.replace("<", "\\u003c"),
        refresh_ms=max(500, min(2000, int(ext().settings.ops_cache_s * 1000) or 2000)),
    )


@bp.get("/api/v1/ops/queues")
@require_role(OPS_ROLES)
def queues() -> Response:
    response = Response(snapshot_text(), mimetype="application/json")
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/api/v1/ops/health")
@require_role(OPS_ROLES)
def health() -> Response:
    return health_view.health_response()


def _metrics_token_ok() -> bool:
    token = ext().settings.metrics_token
    header = request.headers.get("Authorization", "")
    if not token or not header.startswith("Bearer "):
        return False
    return hmac.compare_digest(header.removeprefix("Bearer ").strip().encode(), token.encode())


def _render_metrics() -> Response:
    snapshot = json.loads(snapshot_text())
    snapshot["audience_health"] = health_view.health_or_none(_kit(), snapshot)
    body, content_type = metrics.render(ext().settings.metrics_dir, snapshot)
    response = Response(body, content_type=content_type)
    response.headers["Cache-Control"] = "no-store"
    return response


_ops_metrics = require_role(OPS_ROLES)(_render_metrics)


@bp.get("/metrics")
def prometheus() -> Response:
    """A bearer token of role ops/admin, or NEWSFLASH_METRICS_TOKEN (for Prometheus)."""
    if _metrics_token_ok():
        return _render_metrics()
    return _ops_metrics()


def caller_is_ops() -> bool:
    """Whether this request carries what /metrics accepts: NEWSFLASH_METRICS_TOKEN, or an
    ops/admin bearer token or session. Never raises: a database that cannot check a token
    means no, so an ops probe of /readyz still gets its answer."""
    if _metrics_token_ok():
        return True
    try:
        principal = current_principal()
    except Exception:
        return False
    return principal is not None and principal.role in OPS_ROLES


def _ready_extra(checks: dict[str, Any]) -> dict[str, Any]:
    """The ops detail of /readyz: the broker's warnings and the open alarms. Neither changes
    readiness (a stalled queue or a Redis without AOF is no reason to take the web process out
    of the load balancer).

    /readyz is public, so an anonymous caller gets none of it, not even a count of open alarms:
    queue names, depths and push hosts are a map of the system, and a count alone would still
    tell someone flooding a queue when they have stalled it. Whoever needs the alarms holds
    the /metrics credentials already (Prometheus: `newsflash_alarm_active`)."""
    if not caller_is_ops():
        return {}
    detail: dict[str, Any] = {}
    if checks.get("broker", checks.get("redis")) == "ok":
        detail["warnings"] = broker_warnings(ext().settings.broker_url)
    try:
        detail["alarms"] = ops_alarms.alarms_json(_kit().alarm_store)
    except Exception as exc:
        detail["alarms"] = None
        detail["alarms_error"] = f"unreachable: {type(exc).__name__}"
    return detail


@bp.before_app_request
def _start_clock() -> None:
    g.newsflash_started = time.perf_counter()


@bp.after_app_request
def _observe_latency(response: Response) -> Response:
    """Every request's time by route template (never the raw path: ids would explode the
    label), so the dashboard can show what an editor's POST /api/v1/alerts costs."""
    started = g.pop("newsflash_started", None)
    if started is not None:
        rule = request.url_rule
        with contextlib.suppress(Exception):  # metrics never fail a request
            metrics.metrics().http_latency.labels(
                request.method, rule.rule if rule is not None else "unmatched"
            ).observe(time.perf_counter() - started)
    return response


@bp.record_once
def _wire(state: BlueprintSetupState) -> None:
    state.app.config.setdefault("NEWSFLASH_READY_EXTRA", _ready_extra)
