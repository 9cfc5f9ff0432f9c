"""The publish-readiness gate on SQL: one row per alert that waits for its article."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from core.adapters import tables as t
from core.adapters.sql import MAX_ID
from core.model import AlertStatus
from core.readiness import Gate, GateState


def _gate(row: Any) -> Gate:
    return Gate(
        alert_id=int(row["alert_id"]),
        state=GateState(row["state"]),
        created_at=float(row["created_at"]),
        started_at=row["started_at"],
        checks=int(row["checks"]),
        last_answer=row["last_answer"],
        released_at=row["released_at"],
        released_by=row["released_by"],
    )


class SqlGates:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def open(self, alert_id: int, now: float) -> None:
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(t.article_gates).values(
                        alert_id=alert_id,
                        state=GateState.WAITING.value,
                        created_at=now,
                        next_check_at=0.0,
                        checks=0,
                    )
                )
        except IntegrityError:
            pass  # already open (a retried publish)

    def get(self, alert_id: int) -> Gate | None:
        if not 0 < alert_id <= MAX_ID:
            return None  # an id from a URL: no row, and no driver overflow error
        g = t.article_gates
        with self.engine.connect() as conn:
            row = conn.execute(select(g).where(g.c.alert_id == alert_id)).mappings().first()
            return None if row is None else _gate(row)

    def holds(self, alert_id: int) -> bool:
        g = t.article_gates
        with self.engine.connect() as conn:
            return (
                conn.execute(
                    select(g.c.state).where(
                        g.c.alert_id == alert_id, g.c.state == GateState.WAITING.value
                    )
                ).first()
                is not None
            )

    def due(self, now: float, limit: int, alert_id: int | None = None) -> list[tuple[Gate, str]]:
        """Waiting gates of queued alerts (a scheduled one has not fired yet) due for a check."""
        g, a = t.article_gates, t.alerts
        where = [
            g.c.state == GateState.WAITING.value,
            g.c.next_check_at <= now,
            a.c.status == AlertStatus.QUEUED.value,
        ]
        if alert_id is not None:
            where.append(g.c.alert_id == alert_id)
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(g, a.c.url)
                .join(a, a.c.id == g.c.alert_id)
                .where(*where)
                .order_by(g.c.next_check_at)
                .limit(limit)
            ).mappings()
            return [(_gate(r), str(r["url"])) for r in rows]

    def claim_check(self, gate: Gate, now: float, next_check_at: float) -> bool:
        """Start the clock on the first check and book the next; False if another got there."""
        g = t.article_gates
        values: dict[str, Any] = {"next_check_at": next_check_at, "checks": gate.checks + 1}
        if gate.started_at is None:
            values["started_at"] = now
        with self.engine.begin() as conn:
            done = conn.execute(
                update(g)
                .where(
                    g.c.alert_id == gate.alert_id,
                    g.c.state == GateState.WAITING.value,
                    g.c.checks == gate.checks,
                )
                .values(**values)
            )
            return done.rowcount == 1

    def record_answer(self, alert_id: int, answer: str) -> None:
        g = t.article_gates
        with self.engine.begin() as conn:
            conn.execute(update(g).where(g.c.alert_id == alert_id).values(last_answer=answer[:200]))

    def release(self, alert_id: int, state: GateState, now: float, by: str | None) -> bool:
        """Waiting → released; True for the one caller that released it."""
        g = t.article_gates
        with self.engine.begin() as conn:
            done = conn.execute(
                update(g)
                .where(g.c.alert_id == alert_id, g.c.state == GateState.WAITING.value)
                .values(state=state.value, released_at=now, released_by=by)
            )
            return done.rowcount == 1
