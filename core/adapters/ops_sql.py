"""The questions /ops, /metrics and the alarms ask the database (each one indexed and short)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, func, literal, select

from core.adapters import tables as t
from core.adapters.sql import TopicBits
from core.model import AlertStatus, BatchStatus, LedgerStatus


@dataclass(frozen=True)
class FinishedAlert:
    alert_id: int
    status: str
    published_at: float
    finished_at: float
    last_delivery_at: float | None


SHARES_PCT = (50, 90, 100)


class SqlOpsQueries:
    def __init__(self, engine: Engine, topics: TopicBits) -> None:
        self.engine = engine
        self.topics = topics

    def ping(self) -> bool:
        """Raises while the database cannot be reached; never says read-only (ops_probes does)."""
        with self.engine.connect() as conn:
            conn.execute(select(literal(1)))
        return False

    def subscribers_per_topic(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.mask_counts.c.mask, t.mask_counts.c.count)).all()
        result = dict.fromkeys(self.topics.bits, 0)
        for mask, count in rows:
            for slug in self.topics.topics_of(mask):
                result[slug] += int(count)
        return result

    def alerts_by_status(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.alerts.c.status, func.count()).group_by(t.alerts.c.status)
            ).all()
        counts = {s.value: 0 for s in AlertStatus}
        counts.update({str(status): int(n) for status, n in rows})
        return counts

    def subscription_total(self) -> int:
        with self.engine.connect() as conn:
            return int(
                conn.execute(select(func.coalesce(func.sum(t.mask_counts.c.count), 0))).scalar_one()
            )

    def churn_totals(self) -> dict[str, Any]:
        """Subscriptions gained and lost since the first hour counted, and renewals (the same
        readers on a new endpoint: moved from a live row, restored from a tombstone)."""
        c = t.subscription_churn.c
        with self.engine.connect() as conn:
            gained, lost, moved, restored = conn.execute(
                select(
                    *(
                        func.coalesce(func.sum(col), 0)
                        for col in (c.created, c.lost, c.moved, c.restored)
                    )
                )
            ).one()
        return {
            "gained": int(gained),
            "lost": int(lost),
            "renewed": {"moved": int(moved), "restored": int(restored)},
        }

    def churn_since(self, since: float) -> list[tuple[int, int, int, int, int]]:
        """(hour since the epoch, new, lost, moved, restored) from `since` on."""
        c = t.subscription_churn.c
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(c.hour, c.created, c.lost, c.moved, c.restored)
                .where(c.hour >= int(since // 3600))
                .order_by(c.hour)
            ).all()
        return [(int(h), int(n), int(lost), int(m), int(r)) for h, n, lost, m, r in rows]

    def oldest_pending_at(self, now: float) -> float | None:
        """When the oldest delivery still waiting became due: a planned batch not yet picked up,
        or a retry past its time (nobody is running the retry scheduler)."""
        b, d = t.batches, t.deliveries
        with self.engine.connect() as conn:
            batch = conn.execute(
                select(func.min(b.c.created_at)).where(b.c.status == BatchStatus.QUEUED.value)
            ).scalar_one()
            retry = conn.execute(
                select(func.min(d.c.next_attempt_at)).where(
                    d.c.status == int(LedgerStatus.RETRY), d.c.next_attempt_at <= now
                )
            ).scalar_one()
        found = [float(x) for x in (batch, retry) if x is not None]
        return min(found) if found else None

    def endpoints_of(self, ids: Sequence[int]) -> dict[int, str]:
        if not ids:
            return {}
        s = t.subscriptions.c
        with self.engine.connect() as conn:
            rows = conn.execute(select(s.id, s.endpoint).where(s.id.in_(list(ids)))).all()
        return {int(i): str(e) for i, e in rows}

    def finished_since(self, since: float, limit: int = 200) -> list[FinishedAlert]:
        """Alerts that finished after `since`, with the time of their last delivery."""
        a, d = t.alerts, t.deliveries
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(a.c.id, a.c.status, a.c.created_at, a.c.queued_at, a.c.finished_at)
                .where(
                    a.c.finished_at > since,
                    a.c.status.in_([AlertStatus.SENT.value, AlertStatus.FAILED.value]),
                )
                .order_by(a.c.finished_at)
                .limit(limit)
            ).all()
            found = []
            for alert_id, status, created_at, queued_at, finished_at in rows:
                last = conn.execute(
                    select(func.max(d.c.updated_at)).where(
                        d.c.alert_id == alert_id, d.c.status == int(LedgerStatus.DELIVERED)
                    )
                ).scalar_one()
                found.append(
                    FinishedAlert(
                        int(alert_id),
                        str(status),
                        float(queued_at or created_at),
                        float(finished_at),
                        None if last is None else float(last),
                    )
                )
        return found

    def delivered_at_shares(self, alert_id: int) -> dict[str, float]:
        """When 50, 90 and 100 % of an alert's successful deliveries were done ("50" -> time):
        the k-th delivery in time order, k = ceil(share * delivered). Asked once per finished
        alert (the k-th row costs a walk along the alert's index)."""
        d = t.deliveries.c
        delivered = (d.alert_id == alert_id) & (d.status == int(LedgerStatus.DELIVERED))
        with self.engine.connect() as conn:
            n = int(conn.execute(select(func.count()).where(delivered)).scalar_one())
            return {
                str(pct): float(
                    conn.execute(
                        select(d.updated_at)
                        .where(delivered)
                        .order_by(d.updated_at)
                        .offset(math.ceil(n * pct / 100) - 1)
                        .limit(1)
                    ).scalar_one()
                )
                for pct in (SHARES_PCT if n else ())
            }
