"""Batches and the delivery ledger on SQLite or PostgreSQL: one sender claims a batch, a
ledger row moves into a final state once, so counters stay exact however often a batch re-runs.
The PostgreSQL fast paths of load_targets and record are in ledger_pg, next to these."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from operator import attrgetter

from sqlalchemy import Connection, Engine, and_, func, or_, select, update

from core.adapters import ledger_pg
from core.adapters import tables as t
from core.adapters.alerts_sql import AlertReader
from core.adapters.sql import FINAL, WAITING, dialect_insert
from core.adapters.subscriptions_sql import delete_subscriptions
from core.model import Batch, BatchStatus, LedgerStatus, LossReason, Target
from core.ports import LedgerEntry, RecordedCounts


def _hosts_of(entries: Sequence[LedgerEntry]) -> dict[int, str]:
    return {e.subscription_id: e.push_host for e in entries if e.push_host}


def _recorded(tally: Counter[int]) -> RecordedCounts:
    return RecordedCounts(
        delivered=tally[int(LedgerStatus.DELIVERED)],
        gone=tally[int(LedgerStatus.GONE)],
        failed=tally[int(LedgerStatus.FAILED)],
        retry=tally[int(LedgerStatus.RETRY)],
    )


def count_host_outcomes(
    conn: Connection, at: float, changed: Iterable[tuple[int, int]], hosts: dict[int, str]
) -> None:
    """Final outcomes per push host this hour, for the audience-health view (rows without a
    host were never sent: a reader gone before the batch ran, an endpoint refused)."""
    tally: dict[str, Counter[int]] = {}
    for sid, status in changed:
        if status in FINAL and sid in hosts:
            tally.setdefault(hosts[sid], Counter())[status] += 1
    if not tally:
        return
    h = t.delivery_hours
    stmt = dialect_insert(conn, h).values(
        [
            {
                "hour": int(at // 3600),
                "push_host": host,
                "delivered": n[int(LedgerStatus.DELIVERED)],
                "gone": n[int(LedgerStatus.GONE)],
                "failed": n[int(LedgerStatus.FAILED)],
            }
            for host, n in sorted(tally.items())
        ]
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=[h.c.hour, h.c.push_host],
        set_={name: h.c[name] + stmt.excluded[name] for name in ("delivered", "gone", "failed")},
    )
    conn.execute(stmt)


def _upsert_ledger(
    conn: Connection, alert_id: int, entries: Sequence[LedgerEntry], now: float
) -> list[tuple[int, int]]:
    """The conditional upsert: (subscription id, new status) of the rows that changed."""
    d = t.deliveries
    stmt = dialect_insert(conn, d).values(
        [
            {
                "alert_id": alert_id,
                "subscription_id": e.subscription_id,
                "status": int(e.status),
                "attempts": e.attempts,
                "status_code": e.status_code,
                "next_attempt_at": e.next_attempt_at,
                "updated_at": now,
            }
            for e in entries
        ]
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=[d.c.alert_id, d.c.subscription_id],
        set_={
            "status": stmt.excluded.status,
            "attempts": stmt.excluded.attempts,
            "status_code": stmt.excluded.status_code,
            "next_attempt_at": stmt.excluded.next_attempt_at,
            "updated_at": stmt.excluded.updated_at,
        },
        where=d.c.status.notin_(FINAL),
    ).returning(d.c.subscription_id, d.c.status)
    return [(int(sid), int(status)) for sid, status in conn.execute(stmt).all()]


class SqlLedger(AlertReader):
    """LedgerStore: claiming batches, what each batch still owes, the ledger writes."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self.postgres = engine.dialect.name == "postgresql"

    def claim_batch(self, batch_id: int, now: float, stale_after_s: float) -> Batch | None:
        b = t.batches
        with self.engine.begin() as conn:
            claimed = conn.execute(
                update(b)
                .where(
                    b.c.id == batch_id,
                    or_(
                        b.c.status == BatchStatus.QUEUED.value,
                        and_(
                            b.c.status == BatchStatus.SENDING.value,
                            b.c.heartbeat_at < now - stale_after_s,
                        ),
                    ),
                )
                .values(status=BatchStatus.SENDING.value, heartbeat_at=now, runs=b.c.runs + 1)
            ).rowcount
            if claimed != 1:
                return None
            row = conn.execute(select(b).where(b.c.id == batch_id)).mappings().one()
        return Batch(
            id=row["id"],
            alert_id=row["alert_id"],
            seq=row["seq"],
            subscription_ids=tuple(json.loads(row["subscription_ids"])),
            status=BatchStatus(row["status"]),
        )

    def batch_kind(self, batch_id: int) -> str:
        with self.engine.connect() as conn:
            return str(
                conn.execute(
                    select(t.batches.c.kind).where(t.batches.c.id == batch_id)
                ).scalar_one()
            )

    def load_targets(self, batch: Batch) -> tuple[list[Target], list[int]]:
        """The batch's subscriptions still owed this alert, and the ids that no longer exist."""
        s, d = t.subscriptions, t.deliveries
        kind = self.batch_kind(batch.id)
        if self.postgres:
            return ledger_pg.load_targets_pg(self.engine, batch, kind)
        targets: list[Target] = []
        missing: list[int] = []
        with self.engine.connect() as conn:
            ids = list(batch.subscription_ids)
            for start in range(0, len(ids), 1000):
                chunk = ids[start : start + 1000]
                ledger = dict(
                    conn.execute(
                        select(d.c.subscription_id, d.c.status).where(
                            d.c.alert_id == batch.alert_id, d.c.subscription_id.in_(chunk)
                        )
                    ).all()
                )
                attempts = (
                    dict(
                        conn.execute(
                            select(d.c.subscription_id, d.c.attempts).where(
                                d.c.alert_id == batch.alert_id, d.c.subscription_id.in_(chunk)
                            )
                        ).all()
                    )
                    if ledger
                    else {}
                )
                if kind == "retry":
                    wanted = [i for i in chunk if ledger.get(i) == int(LedgerStatus.REQUEUED)]
                else:
                    wanted = [i for i in chunk if i not in ledger]
                if not wanted:
                    continue
                rows = conn.execute(
                    select(
                        s.c.id, s.c.endpoint, s.c.p256dh, s.c.auth, s.c.topic_mask, s.c.lang
                    ).where(s.c.id.in_(wanted))
                ).all()
                found = set()
                for row in rows:
                    found.add(row.id)
                    targets.append(
                        Target(
                            row.id,
                            row.endpoint,
                            row.p256dh,
                            row.auth,
                            row.topic_mask,
                            attempts.get(row.id, 0),
                            row.lang,
                        )
                    )
                missing.extend(i for i in wanted if i not in found)
        targets.sort(key=lambda x: x.subscription_id)
        return targets, missing

    def record(
        self,
        alert_id: int,
        entries: Sequence[LedgerEntry],
        gone_ids: Sequence[int],
        now: float,
        batch_id: int | None = None,
    ) -> RecordedCounts:
        """Ledger rows, alert counters and gone subscriptions in one transaction.

        A row only moves into a final state once (the conditional upsert), so counters stay
        exact however often a batch is re-run.

        The rows go in subscription order. Answers come back in no particular order, and a
        freshest-first batch is spread over the whole table, so in arrival order each row lands
        on a random page of the ledger's key; in key order the statement walks it forwards
        (docs/capacity.md, "Freshest first").
        """
        if not entries:
            return RecordedCounts()
        entries = sorted(entries, key=attrgetter("subscription_id"))
        if self.postgres:
            return _recorded(
                ledger_pg.record_pg(self.engine, alert_id, entries, gone_ids, now, batch_id)
            )
        with self.engine.begin() as conn:
            changed = _upsert_ledger(conn, alert_id, entries, now)
            counts = _recorded(Counter(status for _sid, status in changed))
            conn.execute(
                update(t.alerts)
                .where(t.alerts.c.id == alert_id)
                .values(
                    delivered=t.alerts.c.delivered + counts.delivered,
                    gone=t.alerts.c.gone + counts.gone,
                    failed=t.alerts.c.failed + counts.failed,
                    progress_at=now,
                )
            )
            count_host_outcomes(conn, now, changed, _hosts_of(entries))
            gone_changed = {sid for sid, status in changed if status == int(LedgerStatus.GONE)}
            really_gone = [i for i in gone_ids if i in gone_changed]
            if really_gone:
                delete_subscriptions(conn, really_gone, LossReason.GONE, now)
            if batch_id is not None:
                conn.execute(
                    update(t.batches).where(t.batches.c.id == batch_id).values(heartbeat_at=now)
                )
        return counts

    def heartbeat(self, batch_id: int, now: float) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(t.batches).where(t.batches.c.id == batch_id).values(heartbeat_at=now)
            )

    def finish_batch(
        self, batch_id: int, alert_id: int, missing: int, cancelled: bool, now: float
    ) -> None:
        status = BatchStatus.CANCELLED if cancelled else BatchStatus.DONE
        with self.engine.begin() as conn:
            done = conn.execute(
                update(t.batches)
                .where(t.batches.c.id == batch_id, t.batches.c.status == BatchStatus.SENDING.value)
                .values(status=status.value, finished_at=now, heartbeat_at=now)
            ).rowcount
            if done:
                conn.execute(
                    update(t.alerts)
                    .where(t.alerts.c.id == alert_id)
                    .values(batches_done=t.alerts.c.batches_done + 1, progress_at=now)
                )

    def waiting_count(self, alert_id: int) -> int:
        d = t.deliveries
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    select(func.count()).where(d.c.alert_id == alert_id, d.c.status.in_(WAITING))
                ).scalar_one()
            )
