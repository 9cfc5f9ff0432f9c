"""Audience health for ops: the JSON of GET /api/v1/ops/health, the section of /ops, and the
gauges /metrics adds; computed from the database's hourly counters, cached in Redis."""

from __future__ import annotations

import json
import time
from typing import Any

from flask import Response, current_app, request

from core import audience_health
from core.adapters.health_sql import SqlHealthQueries
from core.adapters.ops_probes import OpsKit
from core.inputs import whole_number
from service import audience_split
from service.errors import error_response

MAX_WEEKS = 26
# Weekly figures move slowly: one computation a minute at most, however many viewers.
MIN_CACHE_S = 60.0


def compute(kit: OpsKit, weeks: int, now: float) -> dict[str, Any]:
    queries = SqlHealthQueries(kit.container.engine)
    health = audience_health.report(queries, now, kit.sources.timezone, weeks)
    # Readers now per platform (Android, iOS, desktop), from push service and widget report.
    health["platforms"] = audience_split.platform_rows(kit.container)
    health["generated_at"] = now
    return health


def health_text(
    kit: OpsKit, weeks: int = audience_health.WEEKS_SHOWN, redis_ok: bool = True
) -> str:
    if redis_ok:
        ttl_s = max(MIN_CACHE_S, kit.settings.ops_cache_s)
        try:
            return kit.telemetry.cached(
                f"audience_health:{weeks}",
                ttl_s,
                lambda: compute(kit, weeks, time.time()),
                json.dumps,
            )
        except Exception:  # noqa: S110 - Redis down: answered uncached below
            pass
    # Redis down or known down: answer uncached (the database is what this view needs).
    return json.dumps(compute(kit, weeks, time.time()))


def health_or_none(kit: OpsKit, snapshot: dict[str, Any]) -> dict[str, Any] | None:
    """For /ops and /metrics: a database outage shows in the snapshot, not as a 500, and what
    the snapshot found unreachable is not asked again."""
    if not snapshot["database"]["ok"]:
        return None
    try:
        found: dict[str, Any] = json.loads(health_text(kit, redis_ok=snapshot["redis"]["ok"]))
        return found
    except Exception:
        return None


def _kit() -> OpsKit:
    ops: OpsKit = current_app.extensions["newsflash"].container.ops
    return ops


def health_response() -> Response:
    """GET /api/v1/ops/health (routed in service/ops.py, with the other ops routes)."""
    raw = request.args.get("weeks", str(audience_health.WEEKS_SHOWN))
    weeks = whole_number(raw, 3)
    if weeks is None or not 2 <= weeks <= MAX_WEEKS:
        return error_response(
            400, "invalid", f"weeks must be a whole number from 2 to {MAX_WEEKS}", "weeks"
        )
    response = Response(health_text(_kit(), weeks), mimetype="application/json")
    response.headers["Cache-Control"] = "no-store"
    return response
