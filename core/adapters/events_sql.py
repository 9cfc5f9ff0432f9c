"""Display and click reports on SQLite or PostgreSQL: at most one of each per delivered push."""

from __future__ import annotations

from sqlalchemy import Engine, select, update

from core.adapters import tables as t
from core.adapters.sql import MAX_ID, WAITING
from core.model import LedgerStatus
from core.receipts import EventResult

_EVENT_BITS = {"displayed": 1, "clicked": 2}  # deliveries.events: which reports were counted


class SqlEvents:
    """EventStore: the ledger row keeps which reports were counted."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def count_event(self, alert_id: int, subscription_id: int, kind: str) -> EventResult:
        """One display / click per delivered push: the ledger row keeps which were counted,
        so the alert's displayed and clicked never exceed its delivered."""
        bit = _EVENT_BITS[kind]
        column = {"displayed": t.alerts.c.displayed, "clicked": t.alerts.c.clicked}[kind]
        if not (0 < alert_id <= MAX_ID and 0 < subscription_id <= MAX_ID):
            return EventResult.REFUSED
        d = t.deliveries
        with self.engine.begin() as conn:
            marked = conn.execute(
                update(d)
                .where(
                    d.c.alert_id == alert_id,
                    d.c.subscription_id == subscription_id,
                    d.c.status == int(LedgerStatus.DELIVERED),
                    d.c.events.op("&")(bit) == 0,
                )
                .values(events=d.c.events.op("|")(bit))
            ).rowcount
            if marked == 1:
                conn.execute(
                    update(t.alerts).where(t.alerts.c.id == alert_id).values({column: column + 1})
                )
                return EventResult.COUNTED
            status = conn.execute(
                select(d.c.status).where(
                    d.c.alert_id == alert_id, d.c.subscription_id == subscription_id
                )
            ).scalar_one_or_none()
        if status == int(LedgerStatus.DELIVERED):
            return EventResult.ALREADY
        if status is None or status in WAITING:
            # The browser can show a push before the worker's ledger write lands.
            return EventResult.TOO_EARLY
        return EventResult.REFUSED
