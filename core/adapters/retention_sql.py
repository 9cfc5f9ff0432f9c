"""Retention's SQL (core/retention.py) on SQLite and PostgreSQL.

Every delete is one short statement over at most `limit` rows picked by an indexed key (the
ledger's primary key within one alert, a batch's alert, an audit entry's time, an hour, a
tombstone's time), in its own transaction. The ledger rows deleted belong to alerts finished
days ago: no send, retry or claim touches them, so nothing a send does waits on these deletes.
A pruned alert's event seconds are moved into event_steps one chart step per transaction (at
most the step's seconds, an hour's at most); a display counted meanwhile is never lost (see
compact_events).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine, and_, delete, exists, func, insert, select, text, update
from sqlalchemy.exc import IntegrityError

from core.adapters import tables as t
from core.adapters.audience_split_sql import platform_groups
from core.adapters.report_sql import (
    event_insert,
    kept_json,
    last_event_span,
    ledger_delivered_by_step,
    ledger_outcomes_by_host,
    step_of,
)
from core.model import Alert, AlertStatus
from core.retention import KeptReport

FINISHED = (AlertStatus.SENT.value, AlertStatus.FAILED.value, AlertStatus.CANCELLED.value)
OPEN = (AlertStatus.SCHEDULED.value, AlertStatus.QUEUED.value, AlertStatus.SENDING.value)
_HOURLY = (t.subscription_churn, t.subscription_losses, t.delivery_hours)


class SqlRetention:
    """RetentionStore (core/retention.py)."""

    def __init__(self, engine: Engine, alerts: Any, reports: Any) -> None:
        self.engine = engine
        # get_alert and delivery_milestones from the adapters that already answer them.
        self.alerts, self.reports = alerts, reports

    def get_alert(self, alert_id: int) -> Alert | None:
        found: Alert | None = self.alerts.get_alert(alert_id)
        return found

    def delivery_milestones(self, alert_id: int, ranks: Sequence[int]) -> dict[int, float]:
        found: dict[int, float] = self.reports.delivery_milestones(alert_id, ranks)
        return found

    @staticmethod
    def _open_correction() -> Any:
        a, c = t.alerts, t.alerts.alias("correction")
        return exists().where(c.c.corrects_id == a.c.id, c.c.status.in_(OPEN))

    def prunable_alerts(self, finished_before: float, limit: int) -> list[int]:
        a, r = t.alerts, t.ledger_retention
        ended = func.coalesce(a.c.finished_at, a.c.cancelled_at, a.c.created_at)
        with self.engine.connect() as conn:
            return [
                int(x)
                for x in conn.execute(
                    select(a.c.id)
                    .where(
                        a.c.status.in_(FINISHED),
                        ended < finished_before,
                        ~exists().where(r.c.alert_id == a.c.id),
                        ~self._open_correction(),
                    )
                    .order_by(a.c.id)
                    .limit(limit)
                ).scalars()
            ]

    def delivered_by_step(self, alert_id: int, origin: float, step_s: float) -> dict[int, int]:
        with self.engine.connect() as conn:
            return ledger_delivered_by_step(conn, alert_id, origin, step_s)

    def outcomes_by_host(self, alert_id: int) -> list[tuple[str | None, int, int]]:
        with self.engine.connect() as conn:
            return ledger_outcomes_by_host(conn, alert_id)

    def platform_groups(self, alert_id: int) -> list[tuple[str, str | None, int]]:
        with self.engine.connect() as conn:
            return platform_groups(conn, alert_id)

    def event_span(self, alert_id: int, origin: float) -> float | None:
        with self.engine.connect() as conn:
            return last_event_span(conn, alert_id, origin)

    def mark_pruned(self, alert_id: int, kept: KeptReport, now: float) -> bool:
        a, r = t.alerts, t.ledger_retention
        body = json.dumps({str(k): v for k, v in sorted(kept.milestones.items())})
        try:
            with self.engine.begin() as conn:
                # Re-checked in the transaction that marks: a correction under way keeps it.
                still = conn.execute(
                    select(a.c.id).where(a.c.id == alert_id, ~self._open_correction())
                ).first()
                if still is None:
                    return False
                conn.execute(
                    insert(r).values(
                        alert_id=alert_id, milestones=body, kept=kept_json(kept), pruned_at=now
                    )
                )
        except IntegrityError:
            return False  # another run marked it first
        return True

    def is_pruned(self, alert_id: int) -> bool:
        r = t.ledger_retention
        with self.engine.connect() as conn:
            return (
                conn.execute(select(r.c.alert_id).where(r.c.alert_id == alert_id)).first()
                is not None
            )

    def pruning(self, limit: int) -> list[int]:
        r = t.ledger_retention
        with self.engine.connect() as conn:
            return [
                int(x)
                for x in conn.execute(
                    select(r.c.alert_id)
                    .where(r.c.cleared_at.is_(None))
                    .order_by(r.c.alert_id)
                    .limit(limit)
                ).scalars()
            ]

    def delete_ledger_chunk(self, alert_id: int, limit: int) -> int:
        d = t.deliveries
        picked = (
            select(d.c.subscription_id)
            .where(d.c.alert_id == alert_id)
            .order_by(d.c.subscription_id)
            .limit(limit)
        )
        with self.engine.begin() as conn:
            return int(
                conn.execute(
                    delete(d).where(d.c.alert_id == alert_id, d.c.subscription_id.in_(picked))
                ).rowcount
            )

    def delete_batches_chunk(self, alert_id: int, limit: int) -> int:
        b = t.batches
        picked = select(b.c.id).where(b.c.alert_id == alert_id).order_by(b.c.id).limit(limit)
        with self.engine.begin() as conn:
            return int(conn.execute(delete(b).where(b.c.id.in_(picked))).rowcount)

    def compact_events(self, alert_id: int, origin: float, step_s: float) -> int:
        """Move the alert's per-second counts into event_steps, a row per chart step at its
        last second (the steps found with the report's own grouping, step_of).

        All of them leave event_seconds, so its index pages empty out and are used again
        (sparse rows left behind would keep every page). Per step, one transaction deletes
        the step's seconds with RETURNING and adds their sums to the step's row: it counts
        exactly the rows it deleted, so a display counted meanwhile either was one of them or
        stays a row of its own (folded by the next run)."""
        e, steps_table = t.event_seconds, t.event_steps
        with self.engine.connect() as conn:
            index = step_of(conn, e.c.second - origin, step_s).label("i")
            steps = conn.execute(
                select(func.min(e.c.second), func.max(e.c.second))
                .where(e.c.alert_id == alert_id)
                .group_by(index)
            ).all()
        removed = 0
        for first, last in steps:
            with self.engine.begin() as conn:
                rows = conn.execute(
                    delete(e)
                    .where(e.c.alert_id == alert_id, e.c.second.between(first, last))
                    .returning(e.c.second, e.c.displayed, e.c.clicked)
                ).all()
                if not rows:
                    continue
                stmt = event_insert(conn, steps_table).values(
                    alert_id=alert_id,
                    second=max(r[0] for r in rows),
                    displayed=sum(r[1] for r in rows),
                    clicked=sum(r[2] for r in rows),
                )
                conn.execute(
                    stmt.on_conflict_do_update(
                        index_elements=[steps_table.c.alert_id, steps_table.c.second],
                        set_={
                            "displayed": steps_table.c.displayed + stmt.excluded.displayed,
                            "clicked": steps_table.c.clicked + stmt.excluded.clicked,
                        },
                    )
                )
                removed += len(rows) - 1
        return removed

    def finish_pruning(self, alert_id: int, now: float) -> None:
        r = t.ledger_retention
        with self.engine.begin() as conn:
            conn.execute(update(r).where(r.c.alert_id == alert_id).values(cleared_at=now))

    def delete_older(self, what: str, cutoff: float, limit: int) -> int:
        with self.engine.begin() as conn:
            if what == "audit":
                g = t.audit_log
                old = and_(g.c.at < cutoff, func.coalesce(g.c.last_at, g.c.at) < cutoff)
                picked = select(g.c.id).where(old).order_by(g.c.at).limit(limit)
                return int(conn.execute(delete(g).where(g.c.id.in_(picked))).rowcount)
            if what == "webhooks":
                w = t.webhook_receipts
                picked = select(w.c.webhook_id).where(w.c.received_at < cutoff).limit(limit)
                return int(conn.execute(delete(w).where(w.c.webhook_id.in_(picked))).rowcount)
            if what == "tombstones":
                ts = t.subscription_tombstones
                picked = select(ts.c.endpoint_hash).where(ts.c.gone_at < cutoff).limit(limit)
                return int(conn.execute(delete(ts).where(ts.c.endpoint_hash.in_(picked))).rowcount)
            if what == "churn":
                hour = int(cutoff // 3600)
                # A few rows an hour each: one statement per table is a small one.
                return sum(
                    int(conn.execute(delete(h).where(h.c.hour < hour)).rowcount) for h in _HOURLY
                )
        raise ValueError(what)

    def reclaim_space(self, tables: Sequence[str]) -> None:
        if self.engine.dialect.name != "postgresql":
            return  # SQLite reuses the freed pages of its file
        allowed = {"deliveries", "batches", "audit_log", "event_seconds"}
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            for table in tables:
                if table in allowed:
                    conn.execute(text(f"VACUUM (ANALYZE) {table}"))
