"""Planning on SQLite or PostgreSQL: an alert's audience walked in keyset pages of ids, each
page committed as a batch together with the planning cursor."""

from __future__ import annotations

import json
from collections.abc import Sequence

from sqlalchemy import Engine, func, insert, select, update

from core.adapters import tables as t
from core.adapters.alerts_sql import AlertReader
from core.adapters.sql import TopicBits, row_to_alert
from core.model import Alert, AlertKind, AlertStatus, BatchStatus, LedgerStatus
from core.ports import PlanningConflict


class SqlPlanning(AlertReader):
    """PlanningStore."""

    def __init__(self, engine: Engine, topics: TopicBits) -> None:
        super().__init__(engine)
        self.topics = topics

    def start_sending(self, alert_id: int, now: float) -> Alert | None:
        with self.engine.begin() as conn:
            conn.execute(
                update(t.alerts)
                .where(
                    t.alerts.c.id == alert_id,
                    t.alerts.c.status.in_([AlertStatus.QUEUED.value, AlertStatus.SENDING.value]),
                )
                .values(
                    status=AlertStatus.SENDING.value,
                    started_at=func.coalesce(t.alerts.c.started_at, now),
                    progress_at=now,
                )
            )
            row = conn.execute(select(t.alerts).where(t.alerts.c.id == alert_id)).mappings().first()
        if row is None or row["status"] != AlertStatus.SENDING.value or row["planned"]:
            return None
        return row_to_alert(row)

    def planned_through(self, alert_id: int) -> int:
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    select(t.alerts.c.planned_through).where(t.alerts.c.id == alert_id)
                ).scalar_one()
            )

    def next_audience_page(self, alert: Alert, after_id: int, limit: int) -> list[int]:
        if alert.kind is AlertKind.TEST:
            s = t.subscriptions
            q = (
                select(s.c.id)
                .where(s.c.id > after_id, s.c.test_device_user_id == alert.test_user_id)
                .order_by(s.c.id)
                .limit(limit)
            )
        elif alert.kind is AlertKind.CORRECTION and alert.corrects_id is not None:
            d = t.deliveries
            q = (
                select(d.c.subscription_id)
                .where(
                    d.c.alert_id == alert.corrects_id,
                    d.c.subscription_id > after_id,
                    d.c.status != int(LedgerStatus.GONE),
                )
                .order_by(d.c.subscription_id)
                .limit(limit)
            )
        else:
            s = t.subscriptions
            mask = self.topics.mask_of(alert.topics)
            q = (
                select(s.c.id)
                .where(s.c.id > after_id, s.c.topic_mask.op("&")(mask) != 0)
                .order_by(s.c.id)
                .limit(limit)
            )
        with self.engine.connect() as conn:
            return [int(x) for x in conn.execute(q).scalars()]

    def add_batch(self, alert_id: int, ids: Sequence[int], last_id: int, now: float) -> int:
        """Commit a page with the planning cursor; a concurrent planner loses the race cleanly."""
        with self.engine.begin() as conn:
            after = conn.execute(
                select(t.alerts.c.planned_through).where(t.alerts.c.id == alert_id)
            ).scalar_one()
            if ids[0] <= after:
                # Pages are keyset pages in id order: one that starts at or before the cursor
                # was read by a planner another one has overtaken; adding it would plan those
                # readers twice (and count them twice in the audience).
                raise PlanningConflict(alert_id)
            moved = conn.execute(
                update(t.alerts)
                .where(
                    t.alerts.c.id == alert_id,
                    t.alerts.c.planned_through == after,
                    t.alerts.c.planned.is_(False),
                )
                .values(
                    planned_through=last_id,
                    batches_total=t.alerts.c.batches_total + 1,
                    progress_at=now,
                )
                .returning(t.alerts.c.batches_total)
            ).scalar_one_or_none()
            if moved is None:
                raise PlanningConflict(alert_id)
            return int(
                conn.execute(
                    insert(t.batches)
                    .values(
                        alert_id=alert_id,
                        seq=moved,
                        kind="plan",
                        subscription_ids=json.dumps(list(ids)),
                        size=len(ids),
                        status=BatchStatus.QUEUED.value,
                        created_at=now,
                        runs=0,
                    )
                    .returning(t.batches.c.id)
                ).scalar_one()
            )

    def finish_planning(self, alert_id: int, now: float) -> None:
        with self.engine.begin() as conn:
            audience = conn.execute(
                select(func.coalesce(func.sum(t.batches.c.size), 0)).where(
                    t.batches.c.alert_id == alert_id, t.batches.c.kind == "plan"
                )
            ).scalar_one()
            conn.execute(
                update(t.alerts)
                .where(t.alerts.c.id == alert_id)
                .values(planned=True, audience=int(audience), progress_at=now)
            )
