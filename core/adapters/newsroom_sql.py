"""The newsroom's SQL queries: report milestones, correction links, schedule edits, webhook receipts."""

from __future__ import annotations

import json
from collections.abc import Sequence

from sqlalchemy import Connection, Engine, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from core.adapters import tables as t
from core.adapters.sql import TopicBits, row_to_alert
from core.adapters.subscriptions_sql import SqlSubscriptions
from core.model import Alert, AlertDraft, AlertStatus, LedgerStatus
from core.payload import story_key
from core.translations import translations_json


class SqlNewsroom:
    def __init__(self, engine: Engine, topics: TopicBits, subscriptions: SqlSubscriptions) -> None:
        self.engine = engine
        self.topics = topics
        self.subscriptions = subscriptions

    def delivery_milestones(self, alert_id: int, ranks: Sequence[int]) -> dict[int, float]:
        """When the k-th delivery happened, for each rank k (1-based).

        One OFFSET query per rank on the (alert_id, status) index: the database picks the k-th
        time, so a report on a million-reader alert never pulls a million rows.
        """
        d = t.deliveries
        found: dict[int, float] = {}
        with self.engine.connect() as conn:
            for k in sorted(set(ranks)):
                if k < 1:
                    continue
                at = conn.execute(
                    select(d.c.updated_at)
                    .where(d.c.alert_id == alert_id, d.c.status == int(LedgerStatus.DELIVERED))
                    .order_by(d.c.updated_at)
                    .offset(k - 1)
                    .limit(1)
                ).scalar_one_or_none()
                if at is not None:
                    found[k] = float(at)
            if len(found) < len(set(ranks)):
                found = _kept_milestones(conn, alert_id) | found
        return found

    def corrections_of(self, alert_id: int) -> list[Alert]:
        with self.engine.connect() as conn:
            return [
                row_to_alert(r)
                for r in conn.execute(
                    select(t.alerts)
                    .where(t.alerts.c.corrects_id == alert_id)
                    .order_by(t.alerts.c.id)
                ).mappings()
            ]

    def edit_scheduled(self, alert_id: int, draft: AlertDraft, article_id: str | None) -> bool:
        """New words, targeting or time for a scheduled alert; False once it has fired."""
        values = {
            "title": draft.title,
            "body": draft.body,
            "url": draft.url,
            "image": draft.image,
            "topics": json.dumps(list(draft.topics)),
            "topic_mask": self.topics.mask_of(draft.topics),
            "urgency": draft.urgency.value,
            "ttl_s": draft.ttl_s,
            "story_key": story_key(draft.url, article_id),
            "send_at": draft.send_at,
            "lang": draft.lang,
            "translations": (
                json.dumps(translations_json(draft.translations)) if draft.translations else None
            ),
            "audience": self.subscriptions.audience_size(draft.topics),
            "utm": draft.utm,
        }
        a = t.alerts
        with self.engine.begin() as conn:
            return (
                conn.execute(
                    update(a)
                    .where(a.c.id == alert_id, a.c.status == AlertStatus.SCHEDULED.value)
                    .values(**values)
                ).rowcount
                == 1
            )

    def set_test_device(self, sub_id: int, user_id: int | None) -> None:
        self.subscriptions.set_test_device(sub_id, user_id)

    def test_device_count(self, user_id: int) -> int:
        s = t.subscriptions
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    select(func.count()).where(s.c.test_device_user_id == user_id)
                ).scalar_one()
            )

    def record_webhook(self, webhook_id: str, now: float, keep_s: float) -> bool:
        """Remember a webhook id; False if it was seen before (a replay)."""
        r = t.webhook_receipts
        try:
            with self.engine.begin() as conn:
                conn.execute(delete(r).where(r.c.received_at < now - keep_s))
                conn.execute(insert(r).values(webhook_id=webhook_id, received_at=now))
        except IntegrityError:
            return False
        return True

    def forget_webhook(self, webhook_id: str) -> None:
        """The message could not be handled: let the sender's retry through."""
        r = t.webhook_receipts
        with self.engine.begin() as conn:
            conn.execute(delete(r).where(r.c.webhook_id == webhook_id))


def _kept_milestones(conn: Connection, alert_id: int) -> dict[int, float]:
    """The milestones retention kept when it removed the alert's ledger (core/retention.py)."""
    r = t.ledger_retention
    kept = conn.execute(select(r.c.milestones).where(r.c.alert_id == alert_id)).scalar_one_or_none()
    return {} if kept is None else {int(k): float(v) for k, v in json.loads(kept).items()}
