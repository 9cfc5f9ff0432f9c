"""The audience split: subscriptions by platform (push host and the widget's report, a handful
of groups) for /ops and an alert's report, and by language for the review before sending."""

from __future__ import annotations

from sqlalchemy import Connection, Engine, func, select

from core.adapters import tables as t
from core.adapters.report_sql import kept_parts
from core.model import LedgerStatus


def platform_groups(conn: Connection, alert_id: int | None) -> list[tuple[str, str | None, int]]:
    s = t.subscriptions.c
    query = select(s.push_host, s.platform, func.count()).where(s.test_device_user_id.is_(None))
    if alert_id is not None:
        d = t.deliveries.c
        # Readers the alert reached and who are still subscribed (the gone ones are deleted).
        query = query.join(t.deliveries, d.subscription_id == s.id).where(
            d.alert_id == alert_id, d.status == int(LedgerStatus.DELIVERED)
        )
    query = query.group_by(s.push_host, s.platform)
    return [(str(h), p, int(n)) for h, p, n in conn.execute(query).all()]


class SqlAudienceSplits:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def platform_groups(self, alert_id: int | None = None) -> list[tuple[str, str | None, int]]:
        """(push host, platform, readers) of every reader, or of those one alert reached (from
        its ledger, or what retention kept of it)."""
        with self.engine.connect() as conn:
            if alert_id is not None:
                kept = kept_parts(conn, alert_id)
                if kept is not None:
                    return kept.platforms
            return platform_groups(conn, alert_id)

    def language_counts(self, topic_mask: int, default_lang: str) -> dict[str, int]:
        """Readers of any of these topics per language (the review page's split; one scan of
        the subscriptions, read only when an editor reviews an alert)."""
        s = t.subscriptions.c
        query = (
            select(s.lang, func.count())
            .where(s.topic_mask.op("&")(topic_mask) != 0, s.test_device_user_id.is_(None))
            .group_by(s.lang)
        )
        counts: dict[str, int] = {}
        with self.engine.connect() as conn:
            for lang, n in conn.execute(query).all():
                key = lang or default_lang
                counts[key] = counts.get(key, 0) + int(n)
        return counts
