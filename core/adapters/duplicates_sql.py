"""The duplicate guard's query: the alerts of the last few hours, newest first."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.engine import Engine

from core.adapters import tables as t
from core.adapters.sql import row_to_alert
from core.model import Alert, AlertKind


class SqlRecentAlerts:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def alerts_since(self, since: float, limit: int) -> list[Alert]:
        """One range read on the created_at index, capped at `limit` rows."""
        a = t.alerts
        q = (
            select(a)
            .where(a.c.created_at >= since, a.c.kind != AlertKind.TEST.value)
            .order_by(a.c.created_at.desc(), a.c.id.desc())
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [row_to_alert(r) for r in conn.execute(q).mappings()]
