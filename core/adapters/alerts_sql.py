"""Alerts on SQLite or PostgreSQL: created once per article or idempotency key, read, listed,
moved between statuses; AlertReader is the part every delivery adapter reads too."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, insert, literal, or_, select, update
from sqlalchemy.exc import IntegrityError

from core.adapters import tables as t
from core.adapters.sql import MAX_ID, WAITING, TopicBits, row_to_alert
from core.corrections import STOPPABLE
from core.model import Alert, AlertDraft, AlertKind, AlertStatus
from core.ports import AlertProgress
from core.translations import translations_json


class AlertReader:
    """get_alert, is_stopped and the finish check: what every delivery port reads of an alert."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def get_alert(self, alert_id: int) -> Alert | None:
        if not 0 < alert_id <= MAX_ID:
            return None  # an id from a URL: no row, and no driver overflow error
        with self.engine.connect() as conn:
            row = conn.execute(select(t.alerts).where(t.alerts.c.id == alert_id)).mappings().first()
            return None if row is None else row_to_alert(row)

    def is_stopped(self, alert_id: int) -> bool:
        with self.engine.connect() as conn:
            status = conn.execute(
                select(t.alerts.c.status).where(t.alerts.c.id == alert_id)
            ).scalar_one_or_none()
            return status is None or status == AlertStatus.CANCELLED.value

    def alert_progress(self, alert_id: int) -> AlertProgress | None:
        a, d = t.alerts, t.deliveries
        waiting = (
            select(literal(1))
            .where(d.c.alert_id == alert_id, d.c.status.in_(WAITING))
            .limit(1)
            .exists()
        )
        with self.engine.connect() as conn:
            row = conn.execute(
                select(
                    a.c.status,
                    a.c.planned,
                    a.c.batches_total,
                    a.c.batches_done,
                    a.c.delivered,
                    a.c.failed,
                    waiting.label("waiting"),
                ).where(a.c.id == alert_id)
            ).first()
        if row is None:
            return None
        return AlertProgress(
            status=AlertStatus(row.status),
            planned=bool(row.planned),
            batches_total=int(row.batches_total),
            batches_done=int(row.batches_done),
            waiting=bool(row.waiting),
            delivered=int(row.delivered),
            failed=int(row.failed),
        )

    def finish_alert(
        self, alert_id: int, status: AlertStatus, seen: AlertProgress, now: float
    ) -> bool:
        a = t.alerts
        with self.engine.begin() as conn:
            return (
                conn.execute(
                    update(a)
                    .where(
                        a.c.id == alert_id,
                        a.c.status == AlertStatus.SENDING.value,
                        a.c.batches_total == seen.batches_total,
                    )
                    .values(status=status.value, finished_at=now, progress_at=now)
                ).rowcount
                == 1
            )


class SqlAlerts(AlertReader):
    """AlertStore: each method its own short transaction."""

    def __init__(self, engine: Engine, topics: TopicBits) -> None:
        super().__init__(engine)
        self.topics = topics

    def create_alert(
        self,
        draft: AlertDraft,
        story_key: str,
        status: AlertStatus,
        audience: int,
        now: float,
        *,
        stops: int | None = None,
    ) -> tuple[Alert, bool]:
        values = {
            "kind": draft.kind.value,
            "title": draft.title,
            "body": draft.body,
            "url": draft.url,
            "image": draft.image,
            "icon": draft.icon,
            "topics": json.dumps(list(draft.topics)),
            "topic_mask": self.topics.mask_of(draft.topics),
            "urgency": draft.urgency.value,
            "ttl_s": draft.ttl_s,
            "story_key": story_key,
            "article_id": draft.article_id,
            "idempotency_key": draft.idempotency_key,
            "corrects_id": draft.corrects_id,
            "test_user_id": draft.test_user_id,
            "created_by": draft.created_by,
            "lang": draft.lang,
            "translations": (
                json.dumps(translations_json(draft.translations)) if draft.translations else None
            ),
            "status": status.value,
            "send_at": draft.send_at,
            "created_at": now,
            "queued_at": now if status is AlertStatus.QUEUED else None,
            "progress_at": now,
            "planned": False,
            "planned_through": 0,
            "batches_total": 0,
            "batches_done": 0,
            "audience": audience,
            "delivered": 0,
            "gone": 0,
            "failed": 0,
            "displayed": 0,
            "clicked": 0,
            "utm": draft.utm,
        }
        try:
            with self.engine.begin() as conn:
                alert_id = conn.execute(
                    insert(t.alerts).values(**values).returning(t.alerts.c.id)
                ).scalar_one()
                if stops is not None:
                    stop_taken_over(conn, t.alerts.c.id == stops, now)
        except IntegrityError:
            existing = self.find_alert(
                article_id=draft.article_id, idempotency_key=draft.idempotency_key
            )
            if existing is None:
                raise
            return existing, False
        alert = self.get_alert(alert_id)
        assert alert is not None
        return alert, True

    def find_alert(self, *, article_id: str | None, idempotency_key: str | None) -> Alert | None:
        conditions = []
        if article_id is not None:
            conditions.append(t.alerts.c.article_id == article_id)
        if idempotency_key is not None:
            conditions.append(t.alerts.c.idempotency_key == idempotency_key)
        if not conditions:
            return None
        with self.engine.connect() as conn:
            row = (
                conn.execute(
                    select(t.alerts).where(or_(*conditions)).order_by(t.alerts.c.id).limit(1)
                )
                .mappings()
                .first()
            )
            return None if row is None else row_to_alert(row)

    def list_alerts(
        self, limit: int = 50, before_id: int | None = None, statuses: Sequence[str] = ()
    ) -> list[Alert]:
        q = select(t.alerts).order_by(t.alerts.c.id.desc()).limit(limit)
        if before_id is not None:
            q = q.where(t.alerts.c.id < min(max(before_id, 0), MAX_ID))
        if statuses:
            q = q.where(t.alerts.c.status.in_(list(statuses)))
        with self.engine.connect() as conn:
            return [row_to_alert(r) for r in conn.execute(q).mappings()]

    def set_status(
        self,
        alert_id: int,
        status: AlertStatus,
        now: float,
        *,
        only_from: Sequence[AlertStatus] = (),
    ) -> bool:
        values: dict[str, Any] = {"status": status.value, "progress_at": now}
        if status is AlertStatus.CANCELLED:
            values.update(cancelled_at=now, finished_at=now)
        elif status is AlertStatus.QUEUED:
            values.update(queued_at=now)
        elif status.finished:
            values.update(finished_at=now)
        q = update(t.alerts).where(t.alerts.c.id == alert_id).values(**values)
        if only_from:
            q = q.where(t.alerts.c.status.in_([s.value for s in only_from]))
        with self.engine.begin() as conn:
            return conn.execute(q).rowcount == 1


def stop_taken_over(conn: Connection, which: ColumnElement[bool], now: float) -> int:
    """Cancel the alerts `which` selects that are still going out, in the caller's transaction
    (a correction takes them over: core/corrections.py); how many stopped. Senders see it at
    their next stop check, and a batch not begun yet is never sent."""
    a = t.alerts
    return conn.execute(
        update(a)
        .where(
            which,
            a.c.status.in_([x.value for x in STOPPABLE]),
            a.c.kind != AlertKind.TEST.value,
        )
        .values(
            status=AlertStatus.CANCELLED.value,
            cancelled_at=now,
            finished_at=now,
            progress_at=now,
        )
    ).rowcount
