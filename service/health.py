"""Liveness and readiness: /healthz while the process lives, /readyz when it can do its job."""

from __future__ import annotations

from typing import Any

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
    try:
        ext.container.store.ping()
        checks["database"] = "ok"
    except Exception as exc:
        ok = False
        checks["database"] = f"unreachable: {type(exc).__name__}"
    try:
        ext.container.redis.ping()
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
    except StartupError as exc:
        ok = False
        checks["vapid"] = str(exc)
    return ok, checks


@bp.get("/readyz")
def readyz() -> tuple[Response, int]:
    ok, checks = readiness_checks()
    extra = current_app.config.get("NEWSFLASH_READY_EXTRA")
    body: dict[str, Any] = {"status": "ok" if ok else "unavailable", "checks": checks}
    if callable(extra):
        body.update(extra())
    return jsonify(body), 200 if ok else 503
