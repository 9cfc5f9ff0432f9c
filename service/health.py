"""Liveness and readiness: /healthz while the process lives, /readyz when it can do its job."""

from __future__ import annotations

from typing import Any

import redis
from flask import Blueprint, Response, current_app, jsonify

from core.bootstrap import StartupError

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    return jsonify({"status": "ok"})


def readiness_checks() -> tuple[bool, dict[str, Any]]:
    ext = current_app.extensions["newsflash"]
    checks: dict[str, Any] = {}
    ok = True
    # The ops kit's probes: a fresh database connection that gives up after 3 s and a Redis
    # client that gives up after 2 s, so a hung dependency answers a load balancer's probe in
    # seconds instead of holding a server thread for the app's own, longer timeouts.
    probes = ext.container.ops
    try:
        probes.sources.queries.ping()
        checks["database"] = "ok"
    except Exception as exc:
        ok = False
        checks["database"] = f"unreachable: {type(exc).__name__}"
    try:
        probes.telemetry.client.ping()
        checks["redis"] = "ok"
    except Exception as exc:
        ok = False
        checks["redis"] = f"unreachable: {type(exc).__name__}"
    if ext.settings.broker_url != ext.settings.redis_url:
        try:
            with ext.celery.connection_for_write() as conn:
                conn.ensure_connection(max_retries=1, timeout=2)
            checks["broker"] = "ok"
        except Exception as exc:
            ok = False
            checks["broker"] = f"unreachable: {type(exc).__name__}"
    try:
        ext.container.signer  # noqa: B018 - loading the key is the check
        checks["vapid"] = "ok"
    except Exception as exc:
        ok = False
        checks["vapid"] = _vapid_reason(exc)
    return ok, checks


def _vapid_reason(exc: Exception) -> str:
    # /readyz is public: fixed words only. The start-up error names the key file's path; the
    # web process's start-up line (service/wsgi.py) says which setting is wrong.
    if isinstance(exc, StartupError):
        return "unusable: key or subject missing or invalid"
    return f"unusable: {type(exc).__name__}"


def broker_warnings(broker_url: str) -> list[str]:
    """What a Redis broker is configured to lose. A warning, not a failure: the alerts are safe
    in the database and the reconciler re-sends lost tasks, only late, and taking the web process
    out of the load balancer would not make Redis any safer."""
    if not broker_url.startswith(("redis://", "rediss://")):
        return []
    client = redis.Redis.from_url(
        broker_url, socket_timeout=1, socket_connect_timeout=1, decode_responses=True
    )
    try:
        config = {
            **client.config_get("appendonly"),
            **client.config_get("maxmemory-policy"),
        }
    except redis.RedisError as exc:
        # Managed Redis often disables CONFIG; unreachable is reported by the checks already.
        return [f"could not read the Redis broker's settings ({type(exc).__name__})"]
    finally:
        client.close()
    warnings = []
    if config.get("appendonly") != "yes":
        warnings.append(
            "the Redis broker has no persistence (appendonly no): a restart loses queued "
            "tasks and the reconciler re-sends them late; set appendonly yes"
        )
    policy = config.get("maxmemory-policy", "noeviction")
    if policy != "noeviction":
        warnings.append(
            f"the Redis broker may evict queued tasks (maxmemory-policy {policy}); "
            "set maxmemory-policy noeviction"
        )
    return warnings


@bp.get("/readyz")
def readyz() -> tuple[Response, int]:
    """Public, for load balancers: the status and one short reason per check, as the contract
    promises, and nothing else. What only ops should read (the broker's warnings, the open
    alarms) comes from NEWSFLASH_READY_EXTRA, which the ops blueprint wires and which adds it
    only for a caller holding the credentials /metrics accepts."""
    ok, checks = readiness_checks()
    body: dict[str, Any] = {"status": "ok" if ok else "unavailable", "checks": checks}
    extra = current_app.config.get("NEWSFLASH_READY_EXTRA")
    if callable(extra):
        body.update(extra(checks))
    response = jsonify(body)
    # The body differs by caller: no shared cache may hand the ops version to an outsider.
    response.headers["Cache-Control"] = "no-store"
    return response, 200 if ok else 503
