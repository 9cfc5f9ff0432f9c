"""Planning on SQLite or PostgreSQL: an alert's audience walked in keyset pages (freshest first
or by id, core/freshness.py), each page committed as a batch together with the planning cursor."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Select,
    and_,
    func,
    or_,
    select,
    tuple_,
    update,
)

from core.adapters import tables as t
from core.adapters.alerts_sql import AlertReader, stop_taken_over
from core.adapters.sql import TopicBits, insert_batch, row_to_alert
from core.corrections import NOT_CORRECTED, adds_reached
from core.freshness import Cursor
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

    def planning_cursor(self, alert_id: int) -> Cursor:
        a = t.alerts
        with self.engine.connect() as conn:
            through, seen = conn.execute(
                select(a.c.planned_through, a.c.planned_seen).where(a.c.id == alert_id)
            ).one()
        return Cursor(int(through), None if seen is None else float(seen))

    def next_audience_page(
        self, alert: Alert, after: Cursor, limit: int
    ) -> tuple[list[int], Cursor]:
        if alert.kind is AlertKind.TEST:
            s = t.subscriptions
            q = (
                select(s.c.id)
                .where(s.c.id > after.id, s.c.test_device_user_id == alert.test_user_id)
                .order_by(s.c.id)
                .limit(limit)
            )
        elif alert.kind is AlertKind.CORRECTION and alert.corrects_id is not None:
            d = t.deliveries
            q = (
                select(d.c.subscription_id)
                .where(
                    d.c.alert_id == alert.corrects_id,
                    d.c.subscription_id > after.id,
                    d.c.status.notin_([int(x) for x in NOT_CORRECTED]),
                )
                .order_by(d.c.subscription_id)
                .limit(limit)
            )
        else:
            s = t.subscriptions
            q = keyset_page(
                select(s.c.id, s.c.last_seen_at).where(self.in_audience(alert)), after
            ).limit(limit)
        with self.engine.connect() as conn:
            rows = conn.execute(q).all()
        if not rows:
            return [], after
        return [int(r[0]) for r in rows], cursor_after(rows[-1], after)

    def in_audience(self, alert: Alert) -> ColumnElement[bool]:
        """A subscription is in a topic alert's audience: one of its topics; for a correction
        that took over (core/corrections.py), also whoever the alert it corrects reached."""
        s = t.subscriptions
        topics = s.c.topic_mask.op("&")(self.topics.mask_of(alert.topics)) != 0
        reached = reached_by(adds_reached(alert))
        return topics if reached is None else or_(topics, reached)

    def stop_sending(self, alert_id: int, now: float) -> None:
        with self.engine.begin() as conn:
            stop_taken_over(conn, t.alerts.c.id == alert_id, now)

    def in_flight(self, alert_id: int, now: float, lease_s: float) -> bool:
        b = t.batches
        with self.engine.connect() as conn:
            return (
                conn.execute(
                    select(b.c.id)
                    .where(
                        b.c.alert_id == alert_id,
                        b.c.status == BatchStatus.SENDING.value,
                        b.c.heartbeat_at >= now - lease_s,
                    )
                    .limit(1)
                ).first()
                is not None
            )

    def add_batch(
        self, alert_id: int, ids: Sequence[int], after: Cursor, last: Cursor, now: float
    ) -> int:
        """Commit a page with the planning cursor; a concurrent planner loses the race cleanly."""
        a = t.alerts
        with self.engine.begin() as conn:
            # Only from the cursor this page was read at: a planner another one has overtaken
            # would plan those readers twice (and count them twice in the audience).
            moved = conn.execute(
                update(a)
                .where(a.c.id == alert_id, at_cursor(after), a.c.planned.is_(False))
                .values(
                    planned_through=last.id,
                    planned_seen=last.seen,
                    batches_total=a.c.batches_total + 1,
                    progress_at=now,
                )
                .returning(a.c.batches_total)
            ).scalar_one_or_none()
            if moved is None:
                raise PlanningConflict(alert_id)
            return insert_batch(conn, alert_id, moved, "plan", ids, now)

    def unplanned_since(
        self, alert: Alert, after_id: int, since: float, limit: int
    ) -> tuple[list[int], int]:
        s = t.subscriptions
        mask = self.topics.mask_of(alert.topics)
        while True:
            with self.engine.connect() as conn:
                ids = [
                    int(i)
                    for i in conn.execute(
                        select(s.c.id)
                        .where(
                            s.c.last_seen_at >= since,
                            s.c.id > after_id,
                            s.c.topic_mask.op("&")(mask) != 0,
                        )
                        .order_by(s.c.id)
                        .limit(limit)
                    ).scalars()
                ]
                if not ids:
                    return [], after_id
                taken = planned_among(conn, alert.id, ids)
            after_id = ids[-1]
            unplanned = [i for i in ids if i not in taken]
            if unplanned:
                return unplanned, after_id

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


def reached_by(alert_id: int | None) -> ColumnElement[bool] | None:
    """The subscription was delivered alert `alert_id` (None: no alert, no condition)."""
    if alert_id is None:
        return None
    d = t.deliveries
    return (
        select(d.c.subscription_id)
        .where(
            d.c.alert_id == alert_id,
            d.c.subscription_id == t.subscriptions.c.id,
            d.c.status == int(LedgerStatus.DELIVERED),
        )
        .exists()
    )


def keyset_page(q: Select[Any], after: Cursor) -> Select[Any]:
    """The subscriptions after the cursor in its order: (last_seen_at, id) descending while the
    walk is on (along ix_subscriptions_seen_id, no sort), else id ascending."""
    s = t.subscriptions
    if after.walking:
        return q.where(tuple_(s.c.last_seen_at, s.c.id) < tuple_(after.seen, after.id)).order_by(
            s.c.last_seen_at.desc(), s.c.id.desc()
        )
    return q.where(s.c.id > after.id).order_by(s.c.id)


def cursor_after(row: Any, after: Cursor) -> Cursor:
    """The cursor after a page whose last row is (id, last_seen_at, ...)."""
    return Cursor(int(row[0]), float(row[1])) if after.walking else Cursor(int(row[0]))


def at_cursor(after: Cursor) -> ColumnElement[bool]:
    """The alert's stored cursor is still `after`."""
    a = t.alerts
    seen = a.c.planned_seen.is_(None) if after.seen is None else a.c.planned_seen == after.seen
    here = and_(a.c.planned_through == after.id, seen)
    if after.id == 0:
        # Nothing planned yet: the stored cursor is still the empty one, whatever the order.
        return or_(here, and_(a.c.planned_through == 0, a.c.planned_seen.is_(None)))
    return here


def planned_among(conn: Connection, alert_id: int, ids: Sequence[int]) -> set[int]:
    """Which of these readers a plan batch or a ledger row of the alert already holds."""
    wanted = set(ids)
    taken: set[int] = set()
    b, d = t.batches, t.deliveries
    pages = conn.execution_options(yield_per=64).execute(
        select(b.c.subscription_ids).where(b.c.alert_id == alert_id, b.c.kind == "plan")
    )
    for (listed,) in pages:
        taken.update(wanted.intersection(json.loads(listed)))
    for start in range(0, len(ids), 500):
        part = ids[start : start + 500]
        taken.update(
            int(i)
            for i in conn.execute(
                select(d.c.subscription_id).where(
                    d.c.alert_id == alert_id, d.c.subscription_id.in_(part)
                )
            ).scalars()
        )
    return taken
