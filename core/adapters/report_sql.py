"""The report's SQL: delivery over time, outcomes per push host, retries waiting, batches still
sending, and when displays and clicks happened. Each question is one aggregate on an index.
Once retention removed an alert's ledger, the ledger's answers come from what it kept
(ledger_retention.kept, core/retention.py)."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Integer, Table, cast, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql.elements import ColumnElement

from core.adapters import tables as t
from core.model import BatchStatus, LedgerStatus
from core.reports import restep
from core.retention import KeptReport

WAITING = (int(LedgerStatus.RETRY), int(LedgerStatus.REQUEUED))
_EVENT_COLUMNS = {"displayed": "displayed", "clicked": "clicked"}


EVENT_TABLES = (t.event_seconds, t.event_steps)  # per second; folded into steps (retention)


def event_insert(
    conn: Connection, table: Table = t.event_seconds
) -> sqlite.Insert | postgresql.Insert:
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def step_of(conn: Connection, seconds: ColumnElement[float], step_s: float) -> ColumnElement[int]:
    """Which step a time falls in. PostgreSQL's CAST rounds to nearest, SQLite's truncates:
    floor first where it rounds (and where it truncates, times are never before release)."""
    ratio = seconds / step_s
    if conn.dialect.name == "postgresql":
        return cast(func.floor(ratio), Integer)
    return cast(ratio, Integer)


def ledger_delivered_by_step(
    conn: Connection, alert_id: int, origin: float, step_s: float
) -> dict[int, int]:
    """Deliveries per step since release: one grouped scan of the alert's delivered rows."""
    d = t.deliveries
    index = step_of(conn, d.c.updated_at - origin, step_s)
    q = (
        select(index.label("i"), func.count())
        .where(d.c.alert_id == alert_id, d.c.status == int(LedgerStatus.DELIVERED))
        .group_by("i")
    )
    return {max(0, int(i)): int(n) for i, n in conn.execute(q)}


def last_event_span(conn: Connection, alert_id: int, origin: float) -> float | None:
    """Seconds from release to the end of the last second with a counted display or click."""
    found = [
        conn.execute(
            select(func.max(e.c.second)).where(e.c.alert_id == alert_id)
        ).scalar_one_or_none()
        for e in EVENT_TABLES
    ]
    seconds = [int(x) for x in found if x is not None]
    return None if not seconds else max(0.0, float(max(seconds)) + 1 - origin)


def kept_json(kept: KeptReport) -> str:
    """ledger_retention.kept: what retention keeps of the report beside its milestones."""
    return json.dumps(
        {
            "step_s": kept.step_s,
            "delivered": {str(k): v for k, v in sorted(kept.delivered.items())},
            "outcomes": kept.outcomes,
            "platforms": kept.platforms,
        }
    )


def kept_parts(conn: Connection, alert_id: int) -> KeptReport | None:
    """What the report read from the alert's ledger, kept when retention removed it (written
    by kept_json), or None while the ledger is there (or it was pruned before this was kept)."""
    r = t.ledger_retention
    row = conn.execute(
        select(r.c.milestones, r.c.kept).where(r.c.alert_id == alert_id)
    ).one_or_none()
    if row is None or row.kept is None:
        return None
    kept = json.loads(row.kept)
    return KeptReport(
        {int(k): float(v) for k, v in json.loads(row.milestones).items()},
        float(kept["step_s"]),
        {int(i): int(n) for i, n in kept["delivered"].items()},
        [(host, int(status), int(n)) for host, status, n in kept["outcomes"]],
        [(str(host), platform, int(n)) for host, platform, n in kept["platforms"]],
    )


def ledger_outcomes_by_host(conn: Connection, alert_id: int) -> list[tuple[str | None, int, int]]:
    """(push host, ledger status, rows); host None where the subscription is gone."""
    d, s = t.deliveries, t.subscriptions
    q = (
        select(s.c.push_host, d.c.status, func.count())
        .select_from(d.outerjoin(s, s.c.id == d.c.subscription_id))
        .where(d.c.alert_id == alert_id)
        .group_by(s.c.push_host, d.c.status)
    )
    return [(host, int(status), int(n)) for host, status, n in conn.execute(q)]


class SqlReports:
    def __init__(self, engine: Engine, stale_after_s: float = 30.0) -> None:
        self.engine = engine
        self.stale_after_s = stale_after_s

    def delivered_by_step(self, alert_id: int, origin: float, step_s: float) -> dict[int, int]:
        """Deliveries per step since release, from the ledger, or once retention removed it,
        from the steps it kept (re-stepped if the chart's step is another)."""
        with self.engine.connect() as conn:
            kept = kept_parts(conn, alert_id)
            if kept is not None:
                return restep(kept.delivered, kept.step_s, step_s)
            return ledger_delivered_by_step(conn, alert_id, origin, step_s)

    def events_by_step(
        self, alert_id: int, origin: float, step_s: float
    ) -> dict[int, tuple[int, int]]:
        found: dict[int, tuple[int, int]] = {}
        with self.engine.connect() as conn:
            rows: list[Any] = []
            for e in EVENT_TABLES:
                index = step_of(conn, e.c.second - origin, step_s)
                rows += conn.execute(
                    select(index.label("i"), func.sum(e.c.displayed), func.sum(e.c.clicked))
                    .where(e.c.alert_id == alert_id)
                    .group_by("i")
                ).all()
            for i, shown, clicked in rows:
                key = max(0, int(i))
                before = found.get(key, (0, 0))
                found[key] = (before[0] + int(shown or 0), before[1] + int(clicked or 0))
        return found

    def event_span(self, alert_id: int, origin: float) -> float | None:
        """Seconds from release to the last counted display or click."""
        with self.engine.connect() as conn:
            return last_event_span(conn, alert_id, origin)

    def note_event(self, alert_id: int, kind: str, at: float) -> None:
        column = _EVENT_COLUMNS[kind]
        e = t.event_seconds
        with self.engine.begin() as conn:
            stmt = event_insert(conn).values(alert_id=alert_id, second=int(at), **{column: 1})
            stmt = stmt.on_conflict_do_update(
                index_elements=[e.c.alert_id, e.c.second], set_={column: e.c[column] + 1}
            )
            conn.execute(stmt)

    def outcomes_by_host(self, alert_id: int) -> list[tuple[str | None, int, int]]:
        """(push host, ledger status, rows), from the ledger or what retention kept of it."""
        with self.engine.connect() as conn:
            kept = kept_parts(conn, alert_id)
            if kept is not None:
                return kept.outcomes
            return ledger_outcomes_by_host(conn, alert_id)

    def retry_waiting(self, alert_id: int) -> tuple[int, float | None]:
        """Deliveries of this alert waiting for a retry, and when the next one is due."""
        d = t.deliveries
        q = select(func.count(), func.min(d.c.next_attempt_at)).where(
            d.c.alert_id == alert_id, d.c.status.in_(WAITING)
        )
        with self.engine.connect() as conn:
            n, next_at = conn.execute(q).one()
        return int(n or 0), None if next_at is None else float(next_at)

    def batches_running(self, alert_id: int, now: float) -> int:
        """Batches still sending (with a live heartbeat): a stopped alert's count can still grow
        by the pushes they had in flight."""
        b = t.batches
        q = select(func.count()).where(
            b.c.alert_id == alert_id,
            b.c.status == BatchStatus.SENDING.value,
            b.c.heartbeat_at > now - self.stale_after_s,
        )
        with self.engine.connect() as conn:
            return int(conn.execute(q).scalar_one())
