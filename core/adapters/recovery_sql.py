"""The periodic duties on SQLite or PostgreSQL: due retries become retry batches, lost work is
found again, scheduled alerts whose time has come are queued."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, and_, func, or_, select, update

from core.adapters import tables as t
from core.adapters.alerts_sql import AlertReader, stop_taken_over
from core.adapters.sql import insert_batch
from core.model import AlertKind, AlertStatus, BatchStatus, LedgerStatus
from core.ports import StaleAlerts


class SqlRecovery(AlertReader):
    """RecoveryStore."""

    def take_due_retries(self, now: float, limit: int, batch_size: int) -> list[tuple[int, int]]:
        d, a = t.deliveries, t.alerts
        with self.engine.connect() as conn:
            due = conn.execute(
                select(d.c.alert_id, d.c.subscription_id)
                .join(a, a.c.id == d.c.alert_id)
                .where(
                    d.c.status == int(LedgerStatus.RETRY),
                    d.c.next_attempt_at <= now,
                    a.c.status == AlertStatus.SENDING.value,
                )
                .order_by(d.c.alert_id, d.c.subscription_id)
                .limit(limit)
            ).all()
        by_alert: dict[int, list[int]] = {}
        for alert_id, sid in due:
            by_alert.setdefault(alert_id, []).append(sid)
        created: list[tuple[int, int]] = []
        for alert_id, sids in by_alert.items():
            for start in range(0, len(sids), batch_size):
                chunk = sids[start : start + batch_size]
                with self.engine.begin() as conn:
                    taken = (
                        conn.execute(
                            update(d)
                            .where(
                                d.c.alert_id == alert_id,
                                d.c.subscription_id.in_(chunk),
                                d.c.status == int(LedgerStatus.RETRY),
                            )
                            .values(status=int(LedgerStatus.REQUEUED), updated_at=now)
                            .returning(d.c.subscription_id)
                        )
                        .scalars()
                        .all()
                    )
                    if not taken:
                        continue
                    batch_id = add_retry_batch(conn, alert_id, taken, now)
                created.append((batch_id, alert_id))
        return created

    def stale_batches(self, now: float, stale_after_s: float, limit: int) -> list[tuple[int, int]]:
        """Batches whose task was lost: queued with no progress on the alert, or a dead sender."""
        b, a = t.batches, t.alerts
        cutoff = now - stale_after_s
        with self.engine.begin() as conn:
            rows = conn.execute(
                select(b.c.id, b.c.alert_id, b.c.status)
                .join(a, a.c.id == b.c.alert_id)
                .where(
                    a.c.status == AlertStatus.SENDING.value,
                    or_(
                        and_(
                            b.c.status == BatchStatus.QUEUED.value,
                            func.coalesce(b.c.heartbeat_at, b.c.created_at) < cutoff,
                            a.c.progress_at < cutoff,
                        ),
                        and_(b.c.status == BatchStatus.SENDING.value, b.c.heartbeat_at < cutoff),
                    ),
                )
                .order_by(b.c.id)
                .limit(limit)
            ).all()
            ids = [r.id for r in rows]
            if ids:
                # Back to queued with a fresh mark, so the next tick doesn't enqueue them again.
                conn.execute(
                    update(b)
                    .where(b.c.id.in_(ids))
                    .values(status=BatchStatus.QUEUED.value, heartbeat_at=now)
                )
        return [(r.id, r.alert_id) for r in rows]

    def stale_alerts(self, now: float, stale_after_s: float) -> StaleAlerts:
        """Alerts whose planning never ran or stopped half way, and planned ones gone quiet."""
        a = t.alerts
        cutoff = now - stale_after_s
        with self.engine.begin() as conn:
            rows = conn.execute(
                select(a.c.id, a.c.status, a.c.planned)
                .where(
                    or_(
                        and_(
                            a.c.status == AlertStatus.QUEUED.value,
                            func.coalesce(a.c.progress_at, a.c.queued_at) < cutoff,
                        ),
                        and_(a.c.status == AlertStatus.SENDING.value, a.c.progress_at < cutoff),
                    )
                )
                .limit(100)
            ).all()
            replan = [r.id for r in rows if not r.planned]
            if replan:
                conn.execute(update(a).where(a.c.id.in_(replan)).values(progress_at=now))
        return StaleAlerts(replan=replan, planned=[r.id for r in rows if r.planned])

    def due_scheduled(self, now: float) -> list[int]:
        """Queued now; a released correction stops the alert it corrects in this transaction."""
        a = t.alerts
        with self.engine.begin() as conn:
            fired = conn.execute(
                update(a)
                .where(a.c.status == AlertStatus.SCHEDULED.value, a.c.send_at <= now)
                .values(status=AlertStatus.QUEUED.value, queued_at=now, progress_at=now)
                .returning(a.c.id, a.c.kind, a.c.corrects_id)
            ).all()
            taken_over = [
                r.corrects_id
                for r in fired
                if r.kind == AlertKind.CORRECTION.value and r.corrects_id is not None
            ]
            if taken_over:
                stop_taken_over(conn, a.c.id.in_(taken_over), now)
        return [int(r.id) for r in fired]


def add_retry_batch(
    conn: Connection, alert_id: int, taken: Sequence[int], now: float, **alert_values: Any
) -> int:
    """A queued retry batch of `taken` as the alert's next batch (and any other counters moved in
    the same statement); its id. Retries of failed pushes and quiet-hours releases both use it."""
    a = t.alerts
    seq = conn.execute(
        update(a)
        .where(a.c.id == alert_id)
        .values(batches_total=a.c.batches_total + 1, **alert_values)
        .returning(a.c.batches_total)
    ).scalar_one()
    return insert_batch(conn, alert_id, seq, "retry", sorted(taken), now)
