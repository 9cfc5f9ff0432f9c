"""Batch leases on SQLite or PostgreSQL: every change is one conditional UPDATE on owner + lease.

Each statement names the batch by primary key and re-checks its condition when it takes the
row, so a claim and a renewal, or a renewal and the sweep, can never both win.
"""

from __future__ import annotations

import json

from sqlalchemy import Engine, and_, func, or_, select, update

from core.adapters import tables as t
from core.model import AlertStatus, Batch, BatchStatus


class SqlBatchLeases:
    """BatchLeases (core/leases.py)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def claim(self, batch_id: int, owner: str, now: float, lease_s: float) -> Batch | None:
        b = t.batches
        with self.engine.begin() as conn:
            claimed = conn.execute(
                update(b)
                .where(
                    b.c.id == batch_id,
                    or_(
                        b.c.status == BatchStatus.QUEUED.value,
                        and_(
                            b.c.status == BatchStatus.SENDING.value,
                            b.c.heartbeat_at < now - lease_s,
                        ),
                    ),
                )
                .values(
                    status=BatchStatus.SENDING.value,
                    owner=owner,
                    heartbeat_at=now,
                    runs=b.c.runs + 1,
                )
            ).rowcount
            if claimed != 1:
                return None
            row = (
                conn.execute(
                    select(b.c.id, b.c.alert_id, b.c.seq, b.c.subscription_ids).where(
                        b.c.id == batch_id
                    )
                )
                .mappings()
                .one()
            )
        return Batch(
            id=row["id"],
            alert_id=row["alert_id"],
            seq=row["seq"],
            subscription_ids=tuple(json.loads(row["subscription_ids"])),
            status=BatchStatus.SENDING,
        )

    def renew(self, batch_id: int, owner: str, now: float) -> bool:
        b = t.batches
        with self.engine.begin() as conn:
            return (
                conn.execute(
                    update(b)
                    .where(
                        b.c.id == batch_id,
                        b.c.owner == owner,
                        b.c.status == BatchStatus.SENDING.value,
                    )
                    .values(heartbeat_at=now)
                ).rowcount
                == 1
            )

    def finish(self, batch_id: int, owner: str, alert_id: int, cancelled: bool, now: float) -> bool:
        b, a = t.batches, t.alerts
        status = BatchStatus.CANCELLED if cancelled else BatchStatus.DONE
        with self.engine.begin() as conn:
            done = conn.execute(
                update(b)
                .where(
                    b.c.id == batch_id,
                    b.c.owner == owner,
                    b.c.status == BatchStatus.SENDING.value,
                )
                .values(status=status.value, finished_at=now, heartbeat_at=now)
            ).rowcount
            if done:
                conn.execute(
                    update(a)
                    .where(a.c.id == alert_id)
                    .values(batches_done=a.c.batches_done + 1, progress_at=now)
                )
        return bool(done)

    def expired(self, now: float, lease_s: float, limit: int) -> list[tuple[int, int]]:
        b, a = t.batches, t.alerts
        cutoff = now - lease_s
        lapsed = and_(b.c.status == BatchStatus.SENDING.value, b.c.heartbeat_at < cutoff)
        with self.engine.begin() as conn:
            ids = list(
                conn.execute(
                    select(b.c.id)
                    .join(a, a.c.id == b.c.alert_id)
                    .where(lapsed, a.c.status == AlertStatus.SENDING.value)
                    .order_by(b.c.id)
                    .limit(limit)
                ).scalars()
            )
            if not ids:
                return []
            # The condition again: a renewal that got in first keeps its batch.
            rows = conn.execute(
                update(b)
                .where(b.c.id.in_(ids), lapsed)
                .values(status=BatchStatus.QUEUED.value, owner=None, heartbeat_at=now)
                .returning(b.c.id, b.c.alert_id)
            ).all()
        return sorted((int(i), int(alert)) for i, alert in rows)

    def unqueued(self, limit: int) -> tuple[list[tuple[int, int]], list[int]]:
        b, a = t.batches, t.alerts
        with self.engine.connect() as conn:
            batches = conn.execute(
                select(b.c.id, b.c.alert_id)
                .join(a, a.c.id == b.c.alert_id)
                .where(
                    b.c.status == BatchStatus.QUEUED.value,
                    a.c.status == AlertStatus.SENDING.value,
                )
                .order_by(b.c.id)
                .limit(limit)
            ).all()
            plans = conn.execute(
                select(a.c.id)
                .where(
                    or_(
                        a.c.status == AlertStatus.QUEUED.value,
                        and_(a.c.status == AlertStatus.SENDING.value, a.c.planned.is_(False)),
                    )
                )
                .order_by(a.c.id)
                .limit(limit)
            ).scalars()
            return [(int(i), int(alert)) for i, alert in batches], [int(x) for x in plans]

    def stalled_plans(self, now: float, after_s: float, limit: int) -> list[int]:
        """Queued alerts nobody started planning for `after_s` (their task was never sent: the
        broker was down when they were published); marked so the next sweep waits again."""
        a = t.alerts
        stalled = and_(
            a.c.status == AlertStatus.QUEUED.value,
            func.coalesce(a.c.progress_at, a.c.queued_at, a.c.created_at) < now - after_s,
        )
        with self.engine.begin() as conn:
            ids = list(conn.execute(select(a.c.id).where(stalled).limit(limit)).scalars())
            if not ids:
                return []
            return sorted(
                int(x)
                for x in conn.execute(
                    update(a)
                    .where(a.c.id.in_(ids), stalled)
                    .values(progress_at=now)
                    .returning(a.c.id)
                ).scalars()
            )
