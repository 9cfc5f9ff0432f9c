"""The audience-health questions asked of the database: hourly counters summed by hour (weeks
are cut in the newsroom's time zone by the core), each read along a primary key or index."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import BigInteger, Engine, case, cast, func, select
from sqlalchemy.sql.elements import ColumnElement

from core.adapters import tables as t
from core.audience_health import DeliveryHour, EngagementHour
from core.model import AlertStatus

_SENT = (AlertStatus.SENDING.value, AlertStatus.SENT.value, AlertStatus.FAILED.value)


class SqlHealthQueries:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _hour_of(self, column: ColumnElement[float]) -> ColumnElement[int]:
        # PostgreSQL rounds a double cast to bigint; SQLite truncates (times are positive).
        if self.engine.dialect.name == "postgresql":
            return cast(func.floor(column / 3600), BigInteger)
        return cast(column / 3600, BigInteger)

    def gains_since(self, since: float) -> list[tuple[int, int]]:
        c = t.subscription_churn.c
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(c.hour, c.created).where(c.hour >= int(since // 3600), c.created > 0)
            ).all()
        return [(int(h), int(n)) for h, n in rows]

    def renewals_since(self, since: float) -> list[tuple[int, int, int]]:
        c = t.subscription_churn.c
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(c.hour, c.moved, c.restored).where(
                    c.hour >= int(since // 3600), (c.moved > 0) | (c.restored > 0)
                )
            ).all()
        return [(int(h), int(m), int(r)) for h, m, r in rows]

    def losses_since(self, since: float) -> list[tuple[int, str, int]]:
        c = t.subscription_losses.c
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(c.hour, c.reason, c.lost).where(c.hour >= int(since // 3600))
            ).all()
        return [(int(h), str(r), int(n)) for h, r, n in rows]

    def deliveries_since(self, since: float) -> list[DeliveryHour]:
        c = t.delivery_hours.c
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(c.hour, c.push_host, c.delivered, c.gone, c.failed).where(
                    c.hour >= int(since // 3600)
                )
            ).all()
        return [DeliveryHour(int(h), str(p), int(d), int(g), int(f)) for h, p, d, g, f in rows]

    def engagement_since(self, since: float) -> list[EngagementHour]:
        """Alerts sent per hour of publication with their delivered / displayed / clicked
        counters (a display or click counts for the week its alert went out). Test sends to an
        editor's own devices are not the audience."""
        a = t.alerts.c
        hour = self._hour_of(a.created_at)
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(
                    hour,
                    func.count(),
                    func.sum(a.delivered),
                    func.sum(a.displayed),
                    func.sum(a.clicked),
                )
                .where(a.created_at >= since, a.status.in_(_SENT), a.test_user_id.is_(None))
                .group_by(hour)
            ).all()
        return [
            EngagementHour(int(h), int(n), int(d or 0), int(s or 0), int(c or 0))
            for h, n, d, s, c in rows
        ]

    def subscription_total(self) -> int:
        with self.engine.connect() as conn:
            return int(
                conn.execute(select(func.coalesce(func.sum(t.mask_counts.c.count), 0))).scalar_one()
            )

    def unseen_counts(self, now: float, days: Sequence[int]) -> dict[int, int]:
        """Subscriptions whose browser has not checked in for each number of days: one walk
        along the last_seen_at index, from the oldest up to the shortest cut-off."""
        if not days:
            return {}
        s = t.subscriptions.c
        cuts = {d: now - d * 86400 for d in days}
        with self.engine.connect() as conn:
            row = conn.execute(
                select(
                    *(
                        func.coalesce(func.sum(case((s.last_seen_at < cut, 1), else_=0)), 0)
                        for cut in cuts.values()
                    )
                ).where(s.last_seen_at < max(cuts.values()))
            ).one()
        return {d: int(n) for d, n in zip(cuts, row, strict=True)}
