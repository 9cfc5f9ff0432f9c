"""Every SQL adapter over one engine and one topic table, built together (the composition root,
the CLI's bulk tools, the bench and the tests use this)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Engine

from config.settings import Topic
from core.adapters.alerts_sql import SqlAlerts
from core.adapters.events_sql import SqlEvents
from core.adapters.ledger_sql import SqlLedger
from core.adapters.newsroom_sql import SqlNewsroom
from core.adapters.ops_sql import SqlOpsQueries
from core.adapters.planning_sql import SqlPlanning
from core.adapters.recovery_sql import SqlRecovery
from core.adapters.sql import TopicBits, sync_topics
from core.adapters.subscriptions_sql import SqlSubscriptions


@dataclass(frozen=True)
class SqlStores:
    engine: Engine
    topics: TopicBits
    subscriptions: SqlSubscriptions
    alerts: SqlAlerts
    events: SqlEvents
    planning: SqlPlanning
    ledger: SqlLedger
    recovery: SqlRecovery
    newsroom: SqlNewsroom
    ops: SqlOpsQueries

    @classmethod
    def build(cls, engine: Engine, topics: Sequence[Topic]) -> SqlStores:
        """Sync the topics table with the settings, then one adapter per port."""
        bits = TopicBits(sync_topics(engine, topics))
        subscriptions = SqlSubscriptions(engine, bits)
        return cls(
            engine=engine,
            topics=bits,
            subscriptions=subscriptions,
            alerts=SqlAlerts(engine, bits),
            events=SqlEvents(engine),
            planning=SqlPlanning(engine, bits),
            ledger=SqlLedger(engine),
            recovery=SqlRecovery(engine),
            newsroom=SqlNewsroom(engine, bits, subscriptions),
            ops=SqlOpsQueries(engine, bits),
        )
