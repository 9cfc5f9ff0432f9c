"""SqlStore: subscriptions, alerts, batches and the delivery ledger on SQLite or PostgreSQL."""

from __future__ import annotations

import hmac
import json
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    RowMapping,
    and_,
    create_engine,
    delete,
    event,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.pool import NullPool

from config.settings import Topic
from core.adapters import tables as t
from core.endpoints import push_host
from core.errors import Conflict, NotFound
from core.model import (
    Alert,
    AlertCounts,
    AlertDraft,
    AlertKind,
    AlertStatus,
    Batch,
    BatchStatus,
    LedgerStatus,
    LossReason,
    Subscription,
    SubscriptionInput,
    Target,
    Urgency,
)
from core.ports import LedgerEntry, PlanningConflict, RecordedCounts
from core.receipts import EventResult

FINAL = (int(LedgerStatus.DELIVERED), int(LedgerStatus.GONE), int(LedgerStatus.FAILED))
WAITING = (int(LedgerStatus.RETRY), int(LedgerStatus.REQUEUED))
_EVENT_BITS = {"displayed": 1, "clicked": 2}  # deliveries.events: which reports were counted
MAX_ID = 2**63 - 1  # bigint (and SQLite INTEGER): larger ids from outside match no row


# The ledger write on PostgreSQL (see SqlStore._record_pg): a row moves into a final state
# once, the alert's counters grow by exactly the rows that changed, the batch's heartbeat moves.
# Status numbers are LedgerStatus: 1 delivered, 2 gone, 3 failed (FINAL).
_RECORD_PG = text(
    """
WITH changed AS (
    INSERT INTO deliveries AS d
        (alert_id, subscription_id, status, attempts, status_code, next_attempt_at, updated_at)
    SELECT :alert_id, u.sid, u.status, u.attempts, u.code, u.next_at, :now
    FROM unnest(
        CAST(:sids AS bigint[]), CAST(:statuses AS smallint[]), CAST(:attempts AS smallint[]),
        CAST(:codes AS smallint[]), CAST(:next_at AS double precision[])
    ) AS u(sid, status, attempts, code, next_at)
    ON CONFLICT (alert_id, subscription_id) DO UPDATE SET
        status = excluded.status, attempts = excluded.attempts,
        status_code = excluded.status_code, next_attempt_at = excluded.next_attempt_at,
        updated_at = excluded.updated_at
    WHERE d.status NOT IN (1, 2, 3)
    RETURNING d.subscription_id, d.status
), counted AS (
    UPDATE alerts SET
        delivered = delivered + (SELECT count(*) FROM changed WHERE status = 1),
        gone = gone + (SELECT count(*) FROM changed WHERE status = 2),
        failed = failed + (SELECT count(*) FROM changed WHERE status = 3),
        progress_at = :now
    WHERE id = :alert_id
), host_counts AS (
    -- Final outcomes per push host this hour (the audience-health view), in the same statement.
    INSERT INTO delivery_hours AS h (hour, push_host, delivered, gone, failed)
    SELECT :hour, u.host, count(*) FILTER (WHERE c.status = 1),
        count(*) FILTER (WHERE c.status = 2), count(*) FILTER (WHERE c.status = 3)
    FROM changed c
    JOIN unnest(CAST(:sids AS bigint[]), CAST(:hosts AS text[])) AS u(sid, host)
        ON u.sid = c.subscription_id
    WHERE u.host <> '' AND c.status IN (1, 2, 3)
    GROUP BY u.host
    ON CONFLICT (hour, push_host) DO UPDATE SET
        delivered = h.delivered + excluded.delivered, gone = h.gone + excluded.gone,
        failed = h.failed + excluded.failed
), beat AS (
    -- At most once a second: every update leaves a copy of the batch row (its id list) behind
    -- until autovacuum; deliver_batch's heartbeat thread keeps a waiting batch alive anyway.
    UPDATE batches SET heartbeat_at = :now
    WHERE id = CAST(:batch_id AS bigint) AND (heartbeat_at IS NULL OR heartbeat_at < :now - 1)
)
SELECT subscription_id, status FROM changed
"""
)


# One primary-key probe per id into each table, whatever the statistics say (LATERAL with
# LIMIT cannot be turned into a hash join): during a send the ledger grows faster than
# autovacuum re-analyses it, and plain joins were planned as a hash over every ledger row of the
# alert, or over the whole subscriptions table below ~80,000 rows (28 ms per batch at 40,000,
# growing with the audience, against 2-3 ms for the probes).
_LOAD_TARGETS_PG = text(
    """
SELECT u.id, s.endpoint, s.p256dh, s.auth, s.topic_mask, d.status, d.attempts
FROM unnest(CAST(:ids AS bigint[])) AS u(id)
LEFT JOIN LATERAL (
    SELECT endpoint, p256dh, auth, topic_mask FROM subscriptions WHERE id = u.id LIMIT 1
) AS s ON true
LEFT JOIN LATERAL (
    SELECT status, attempts FROM deliveries
    WHERE alert_id = CAST(:alert_id AS bigint) AND subscription_id = u.id
    LIMIT 1
) AS d ON true
ORDER BY u.id
"""
)


def make_engine(url: str, *, pool_size: int = 5) -> Engine:
    """An engine with the pragmas SQLite needs for several processes (WAL, busy timeout)."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, poolclass=NullPool, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    return create_engine(
        url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True, pool_recycle=1800
    )


def sync_topics(engine: Engine, topics: Sequence[Topic]) -> dict[str, int]:
    """Make the topics table match the settings; a topic's bit never changes once given."""
    for attempt in range(3):
        try:
            return _sync_topics_once(engine, topics)
        except IntegrityError:
            # Processes starting together (web, worker, beat) race to add the same new topics;
            # the loser reads the winner's rows on the next attempt.
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _sync_topics_once(engine: Engine, topics: Sequence[Topic]) -> dict[str, int]:
    with engine.begin() as conn:
        rows = {r.slug: r for r in conn.execute(select(t.topics)).mappings()}
        used = {r["bit"] for r in rows.values()}
        wanted = {topic.slug for topic in topics}
        for topic in topics:
            if topic.slug in rows:
                conn.execute(
                    update(t.topics)
                    .where(t.topics.c.slug == topic.slug)
                    .values(name=topic.name, default_on=topic.default, active=True)
                )
                continue
            bit = next(b for b in range(63) if b not in used)
            used.add(bit)
            conn.execute(
                insert(t.topics).values(
                    slug=topic.slug, bit=bit, name=topic.name, default_on=topic.default, active=True
                )
            )
        for slug in set(rows) - wanted:
            conn.execute(update(t.topics).where(t.topics.c.slug == slug).values(active=False))
        return {r.slug: r.bit for r in conn.execute(select(t.topics.c.slug, t.topics.c.bit))}


def _dialect_insert(conn: Connection, table: Any) -> Any:
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def _row_to_alert(r: RowMapping) -> Alert:
    return Alert(
        id=r["id"],
        title=r["title"],
        body=r["body"],
        url=r["url"],
        topics=tuple(json.loads(r["topics"])),
        urgency=Urgency(r["urgency"]),
        ttl_s=r["ttl_s"],
        story_key=r["story_key"],
        status=AlertStatus(r["status"]),
        kind=AlertKind(r["kind"]),
        created_at=r["created_at"],
        image=r["image"],
        icon=r["icon"],
        article_id=r["article_id"],
        send_at=r["send_at"],
        corrects_id=r["corrects_id"],
        created_by=r["created_by"],
        test_user_id=r["test_user_id"],
        queued_at=r["queued_at"],
        started_at=r["started_at"],
        finished_at=r["finished_at"],
        cancelled_at=r["cancelled_at"],
        planned=bool(r["planned"]),
        counts=AlertCounts(
            audience=r["audience"],
            delivered=r["delivered"],
            gone=r["gone"],
            failed=r["failed"],
            displayed=r["displayed"],
            clicked=r["clicked"],
        ),
    )


def _hosts_of(entries: Sequence[LedgerEntry]) -> dict[int, str]:
    return {e.subscription_id: e.push_host for e in entries if e.push_host}


def _same_keys(row: RowMapping, sub: SubscriptionInput) -> bool:
    """The stored keys are the ones posted (the auth secret compared in constant time)."""
    same_key = hmac.compare_digest(str(row["p256dh"]).encode(), sub.p256dh.encode())
    same_auth = hmac.compare_digest(str(row["auth"]).encode(), sub.auth.encode())
    return same_key and same_auth


class SqlStore:
    """One store for the core's ports; every method is its own short transaction."""

    def __init__(self, engine: Engine, topic_bits: dict[str, int]) -> None:
        self.engine = engine
        self.topic_bits = topic_bits

    # -- topics ---------------------------------------------------------------------------
    def mask_of(self, topics: Iterable[str]) -> int:
        mask = 0
        for slug in topics:
            mask |= 1 << self.topic_bits[slug]
        return mask

    def topics_of(self, mask: int) -> tuple[str, ...]:
        return tuple(
            s for s, b in sorted(self.topic_bits.items(), key=lambda x: x[1]) if mask >> b & 1
        )

    # -- subscriptions --------------------------------------------------------------------
    def _sub(self, r: RowMapping) -> Subscription:
        return Subscription(
            id=r["id"],
            endpoint=r["endpoint"],
            p256dh=r["p256dh"],
            auth=r["auth"],
            topics=self.topics_of(r["topic_mask"]),
            created_at=r["created_at"],
            last_seen_at=r["last_seen_at"],
            test_device_user_id=r["test_device_user_id"],
            lang=r["lang"],
        )

    @staticmethod
    def _bump_mask(conn: Connection, mask: int, delta: int) -> None:
        if delta == 0:
            return
        stmt = _dialect_insert(conn, t.mask_counts).values(mask=mask, count=delta)
        stmt = stmt.on_conflict_do_update(
            index_elements=[t.mask_counts.c.mask],
            set_={"count": t.mask_counts.c.count + stmt.excluded["count"]},
        )
        conn.execute(stmt)

    @staticmethod
    def _count_churn(
        conn: Connection, at: float, created: int = 0, lost: int = 0, reason: str = ""
    ) -> None:
        """New and lost subscriptions per hour (losses also by reason), in the same transaction
        as the change."""
        if not created and not lost:
            return
        c = t.subscription_churn.c
        stmt = _dialect_insert(conn, t.subscription_churn).values(
            hour=int(at // 3600), created=created, lost=lost
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[c.hour],
            set_={
                "created": c.created + stmt.excluded.created,
                "lost": c.lost + stmt.excluded.lost,
            },
        )
        conn.execute(stmt)
        if lost:
            r = t.subscription_losses.c
            loss = _dialect_insert(conn, t.subscription_losses).values(
                hour=int(at // 3600), reason=reason or LossReason.UNKNOWN.value, lost=lost
            )
            loss = loss.on_conflict_do_update(
                index_elements=[r.hour, r.reason], set_={"lost": r.lost + loss.excluded.lost}
            )
            conn.execute(loss)

    @staticmethod
    def _count_host_outcomes(
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
        stmt = _dialect_insert(conn, h).values(
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
            set_={
                name: h.c[name] + stmt.excluded[name] for name in ("delivered", "gone", "failed")
            },
        )
        conn.execute(stmt)

    def _locked_by_endpoint(self, conn: Connection, endpoint: str) -> RowMapping | None:
        q = select(t.subscriptions).where(t.subscriptions.c.endpoint == endpoint)
        if conn.dialect.name == "postgresql":
            q = q.with_for_update()
        return conn.execute(q).mappings().first()

    def upsert(self, sub: SubscriptionInput, now: float) -> tuple[Subscription, bool]:
        """Insert, or update the row of the same endpoint *and keys*; other keys: Conflict."""
        return self._in_transaction(lambda conn: self._upsert(conn, sub, now))

    def _in_transaction(
        self, work: Callable[[Connection], tuple[Subscription, bool]]
    ) -> tuple[Subscription, bool]:
        for _attempt in range(3):
            try:
                with self.engine.begin() as conn:
                    return work(conn)
            except IntegrityError:
                # Two requests for the same new endpoint raced; the loser now finds the winner's row
                # (the same keys update it, other keys are refused).
                continue
        raise RuntimeError("could not upsert subscription")

    def _upsert(
        self, conn: Connection, sub: SubscriptionInput, now: float
    ) -> tuple[Subscription, bool]:
        mask = self.mask_of(sub.topics)
        row = self._locked_by_endpoint(conn, sub.endpoint)
        values = {
            "p256dh": sub.p256dh,
            "auth": sub.auth,
            "topic_mask": mask,
            "last_seen_at": now,
            "expires_at": sub.expiration_time,
        }
        if sub.lang is not None:
            values["lang"] = sub.lang
        if row is not None:
            if not _same_keys(row, sub):
                # Only the browser holding this subscription's keys may change it: another
                # answer here is how a stranger would take over a reader's row (then delete it).
                raise Conflict(
                    "this endpoint is already subscribed with other keys; changing them needs"
                    " the stored auth secret (PUT or /subscriptions/change)",
                    "keys",
                )
            updated = conn.execute(
                update(t.subscriptions)
                .where(
                    t.subscriptions.c.id == row["id"],
                    # Re-checked in the write: on SQLite the row was read without a lock.
                    t.subscriptions.c.p256dh == row["p256dh"],
                    t.subscriptions.c.auth == row["auth"],
                )
                .values(**values)
            ).rowcount
            if updated != 1:
                raise Conflict("this subscription changed meanwhile; try again", "keys")
            if row["topic_mask"] != mask:
                self._bump_mask(conn, row["topic_mask"], -1)
                self._bump_mask(conn, mask, +1)
            created = False
            sub_id = row["id"]
        else:
            sub_id = conn.execute(
                insert(t.subscriptions)
                .values(
                    endpoint=sub.endpoint,
                    push_host=push_host(sub.endpoint),
                    created_at=now,
                    **values,
                )
                .returning(t.subscriptions.c.id)
            ).scalar_one()
            self._bump_mask(conn, mask, +1)
            self._count_churn(conn, now, created=1)
            created = True
        fresh = (
            conn.execute(select(t.subscriptions).where(t.subscriptions.c.id == sub_id))
            .mappings()
            .one()
        )
        return self._sub(fresh), created

    def get_by_endpoint(self, endpoint: str) -> Subscription | None:
        with self.engine.connect() as conn:
            row = (
                conn.execute(select(t.subscriptions).where(t.subscriptions.c.endpoint == endpoint))
                .mappings()
                .first()
            )
            return None if row is None else self._sub(row)

    def get_subscription(self, sub_id: int) -> Subscription | None:
        with self.engine.connect() as conn:
            row = (
                conn.execute(select(t.subscriptions).where(t.subscriptions.c.id == sub_id))
                .mappings()
                .first()
            )
            return None if row is None else self._sub(row)

    def set_topics(self, sub_id: int, topics: Sequence[str], now: float) -> Subscription:
        mask = self.mask_of(topics)
        with self.engine.begin() as conn:
            q = select(t.subscriptions).where(t.subscriptions.c.id == sub_id)
            if conn.dialect.name == "postgresql":
                q = q.with_for_update()
            row = conn.execute(q).mappings().first()
            if row is None:
                raise NotFound("no such subscription", "endpoint")
            conn.execute(
                update(t.subscriptions)
                .where(t.subscriptions.c.id == sub_id)
                .values(topic_mask=mask, last_seen_at=now)
            )
            if row["topic_mask"] != mask:
                self._bump_mask(conn, row["topic_mask"], -1)
                self._bump_mask(conn, mask, +1)
            fresh = (
                conn.execute(select(t.subscriptions).where(t.subscriptions.c.id == sub_id))
                .mappings()
                .one()
            )
            return self._sub(fresh)

    def set_test_device(self, sub_id: int, user_id: int | None) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(t.subscriptions)
                .where(t.subscriptions.c.id == sub_id)
                .values(test_device_user_id=user_id)
            )

    def _delete_ids(
        self, conn: Connection, ids: Sequence[int], reason: LossReason, at: float
    ) -> int:
        deleted = 0
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            masks = conn.execute(
                delete(t.subscriptions)
                .where(t.subscriptions.c.id.in_(chunk))
                .returning(t.subscriptions.c.topic_mask)
            ).scalars()
            for mask, n in Counter(masks).items():
                self._bump_mask(conn, mask, -n)
                deleted += n
        self._count_churn(conn, at, lost=deleted, reason=reason.value)
        return deleted

    def delete_ids(
        self,
        ids: Iterable[int],
        reason: LossReason = LossReason.UNSUBSCRIBED,
        now: float | None = None,
    ) -> int:
        ids = list(ids)
        with self.engine.begin() as conn:
            return self._delete_ids(conn, ids, reason, time.time() if now is None else now)

    def replace(self, old_id: int, new: SubscriptionInput, now: float) -> tuple[Subscription, bool]:
        """pushsubscriptionchange: old row out, new row in, in one transaction (never neither)."""

        def work(conn: Connection) -> tuple[Subscription, bool]:
            self._delete_ids(conn, [old_id], LossReason.MOVED, now)
            return self._upsert(conn, new, now)

        return self._in_transaction(work)

    def audience_size(self, topics: Sequence[str]) -> int:
        mask = self.mask_of(topics)
        with self.engine.connect() as conn:
            total = conn.execute(
                select(func.coalesce(func.sum(t.mask_counts.c.count), 0)).where(
                    t.mask_counts.c.mask.op("&")(mask) != 0
                )
            ).scalar_one()
            return int(total)

    def subscribers_per_topic(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.mask_counts.c.mask, t.mask_counts.c.count)).all()
        result = dict.fromkeys(self.topic_bits, 0)
        for mask, count in rows:
            for slug in self.topics_of(mask):
                result[slug] += int(count)
        return result

    def recount_masks(self) -> None:
        """Rebuild mask_counts from the rows (after bulk loads, or to repair drift)."""
        with self.engine.begin() as conn:
            conn.execute(delete(t.mask_counts))
            counted = conn.execute(
                select(t.subscriptions.c.topic_mask, func.count()).group_by(
                    t.subscriptions.c.topic_mask
                )
            ).all()
            if counted:
                conn.execute(insert(t.mask_counts), [{"mask": m, "count": n} for m, n in counted])

    def purge_stale_subscriptions(self, older_than: float, now: float | None = None) -> int:
        with self.engine.begin() as conn:
            ids = (
                conn.execute(
                    select(t.subscriptions.c.id)
                    .where(t.subscriptions.c.last_seen_at < older_than)
                    .limit(10_000)
                )
                .scalars()
                .all()
            )
            return self._delete_ids(
                conn, list(ids), LossReason.PURGED, time.time() if now is None else now
            )

    # -- alerts ---------------------------------------------------------------------------
    def create_alert(
        self, draft: AlertDraft, story_key: str, status: AlertStatus, audience: int, now: float
    ) -> tuple[Alert, bool]:
        values = {
            "kind": draft.kind.value,
            "title": draft.title,
            "body": draft.body,
            "url": draft.url,
            "image": draft.image,
            "icon": draft.icon,
            "topics": json.dumps(list(draft.topics)),
            "topic_mask": self.mask_of(draft.topics),
            "urgency": draft.urgency.value,
            "ttl_s": draft.ttl_s,
            "story_key": story_key,
            "article_id": draft.article_id,
            "idempotency_key": draft.idempotency_key,
            "corrects_id": draft.corrects_id,
            "test_user_id": draft.test_user_id,
            "created_by": draft.created_by,
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
        }
        try:
            with self.engine.begin() as conn:
                alert_id = conn.execute(
                    insert(t.alerts).values(**values).returning(t.alerts.c.id)
                ).scalar_one()
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

    def get_alert(self, alert_id: int) -> Alert | None:
        if not 0 < alert_id <= MAX_ID:
            return None  # an id from a URL: no row, and no driver overflow error
        with self.engine.connect() as conn:
            row = conn.execute(select(t.alerts).where(t.alerts.c.id == alert_id)).mappings().first()
            return None if row is None else _row_to_alert(row)

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
            return None if row is None else _row_to_alert(row)

    def list_alerts(
        self, limit: int = 50, before_id: int | None = None, statuses: Sequence[str] = ()
    ) -> list[Alert]:
        q = select(t.alerts).order_by(t.alerts.c.id.desc()).limit(limit)
        if before_id is not None:
            q = q.where(t.alerts.c.id < min(max(before_id, 0), MAX_ID))
        if statuses:
            q = q.where(t.alerts.c.status.in_(list(statuses)))
        with self.engine.connect() as conn:
            return [_row_to_alert(r) for r in conn.execute(q).mappings()]

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

    def update_scheduled(self, alert_id: int, values: dict[str, Any]) -> bool:
        """Edit a scheduled alert before it fires (the newsroom's schedule list)."""
        with self.engine.begin() as conn:
            return (
                conn.execute(
                    update(t.alerts)
                    .where(
                        t.alerts.c.id == alert_id, t.alerts.c.status == AlertStatus.SCHEDULED.value
                    )
                    .values(**values)
                ).rowcount
                == 1
            )

    def is_stopped(self, alert_id: int) -> bool:
        with self.engine.connect() as conn:
            status = conn.execute(
                select(t.alerts.c.status).where(t.alerts.c.id == alert_id)
            ).scalar_one_or_none()
            return status is None or status == AlertStatus.CANCELLED.value

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

    # -- planning -------------------------------------------------------------------------
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
        return _row_to_alert(row)

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
            mask = self.mask_of(alert.topics)
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

    # -- delivery -------------------------------------------------------------------------
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
        if self.engine.dialect.name == "postgresql":
            return self._load_targets_pg(batch, kind)
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
                    select(s.c.id, s.c.endpoint, s.c.p256dh, s.c.auth, s.c.topic_mask).where(
                        s.c.id.in_(wanted)
                    )
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
                        )
                    )
                missing.extend(i for i in wanted if i not in found)
        targets.sort(key=lambda x: x.subscription_id)
        return targets, missing

    def _load_targets_pg(self, batch: Batch, kind: str) -> tuple[list[Target], list[int]]:
        """load_targets() on PostgreSQL: the whole batch in one query over an array (IN lists
        of a thousand bound parameters cost more CPU to render and parse than to run)."""
        requeued = int(LedgerStatus.REQUEUED)
        targets: list[Target] = []
        missing: list[int] = []
        with self.engine.connect() as conn:
            rows = conn.execute(
                _LOAD_TARGETS_PG,
                {"alert_id": batch.alert_id, "ids": list(batch.subscription_ids)},
            ).all()
        for sid, endpoint, p256dh, auth, mask, status, attempts in rows:
            owed = status == requeued if kind == "retry" else status is None
            if not owed:
                continue
            if endpoint is None:
                missing.append(sid)
            else:
                targets.append(Target(sid, endpoint, p256dh, auth, mask, attempts or 0))
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
        """
        if not entries:
            return RecordedCounts()
        if self.engine.dialect.name == "postgresql":
            return self._record_pg(alert_id, entries, gone_ids, now, batch_id)
        d = t.deliveries
        with self.engine.begin() as conn:
            stmt = _dialect_insert(conn, d).values(
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
            changed = conn.execute(stmt).all()
            tally = Counter(status for _sid, status in changed)
            counts = RecordedCounts(
                delivered=tally[int(LedgerStatus.DELIVERED)],
                gone=tally[int(LedgerStatus.GONE)],
                failed=tally[int(LedgerStatus.FAILED)],
                retry=tally[int(LedgerStatus.RETRY)],
            )
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
            self._count_host_outcomes(conn, now, changed, _hosts_of(entries))
            gone_changed = {sid for sid, status in changed if status == int(LedgerStatus.GONE)}
            really_gone = [i for i in gone_ids if i in gone_changed]
            if really_gone:
                self._delete_ids(conn, really_gone, LossReason.GONE, now)
            if batch_id is not None:
                conn.execute(
                    update(t.batches).where(t.batches.c.id == batch_id).values(heartbeat_at=now)
                )
        return counts

    def _record_pg(
        self,
        alert_id: int,
        entries: Sequence[LedgerEntry],
        gone_ids: Sequence[int],
        now: float,
        batch_id: int | None,
    ) -> RecordedCounts:
        """record() on PostgreSQL: the same conditional upsert, counters and heartbeat as one
        statement of constant text over arrays. The multi-row VALUES form cost more CPU to
        compile and parse than the pushes it recorded, and four round trips instead of one."""
        with self.engine.begin() as conn:
            changed = conn.execute(
                _RECORD_PG,
                {
                    "alert_id": alert_id,
                    "batch_id": batch_id,
                    "now": now,
                    "sids": [e.subscription_id for e in entries],
                    "statuses": [int(e.status) for e in entries],
                    "attempts": [e.attempts for e in entries],
                    "codes": [e.status_code for e in entries],
                    "next_at": [e.next_attempt_at for e in entries],
                    "hosts": [e.push_host for e in entries],
                    "hour": int(now // 3600),
                },
            ).all()
            tally = Counter(status for _sid, status in changed)
            gone_changed = {sid for sid, status in changed if status == int(LedgerStatus.GONE)}
            really_gone = [i for i in gone_ids if i in gone_changed]
            if really_gone:
                self._delete_ids(conn, really_gone, LossReason.GONE, now)
        return RecordedCounts(
            delivered=tally[int(LedgerStatus.DELIVERED)],
            gone=tally[int(LedgerStatus.GONE)],
            failed=tally[int(LedgerStatus.FAILED)],
            retry=tally[int(LedgerStatus.RETRY)],
        )

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

    def maybe_finish_alert(self, alert_id: int, now: float) -> AlertStatus | None:
        with self.engine.begin() as conn:
            row = conn.execute(select(t.alerts).where(t.alerts.c.id == alert_id)).mappings().first()
            if row is None or row["status"] != AlertStatus.SENDING.value or not row["planned"]:
                return None
            if row["batches_done"] < row["batches_total"]:
                return None
            waiting = conn.execute(
                select(literal(1))
                .where(t.deliveries.c.alert_id == alert_id, t.deliveries.c.status.in_(WAITING))
                .limit(1)
            ).first()
            if waiting is not None:
                return None
            final = (
                AlertStatus.FAILED
                if row["delivered"] == 0 and row["failed"] > 0
                else AlertStatus.SENT
            )
            changed = conn.execute(
                update(t.alerts)
                .where(t.alerts.c.id == alert_id, t.alerts.c.status == AlertStatus.SENDING.value)
                .values(status=final.value, finished_at=now, progress_at=now)
            ).rowcount
            return final if changed else None

    def take_due_retries(self, now: float, limit: int, batch_size: int) -> list[tuple[int, int]]:
        d, a = t.deliveries, t.alerts
        with self.engine.connect() as conn:
            due = conn.execute(
                select(d.c.alert_id, d.c.subscription_id)
                .join(a, a.c.id == d.c.alert_id)
                .where(
                    d.c.status == int(LedgerStatus.RETRY),
                    d.c.next_attempt_at <= now,
                    a.c.status == AlertStatus.SENDING.value,
                )
                .order_by(d.c.alert_id, d.c.subscription_id)
                .limit(limit)
            ).all()
        by_alert: dict[int, list[int]] = {}
        for alert_id, sid in due:
            by_alert.setdefault(alert_id, []).append(sid)
        created: list[tuple[int, int]] = []
        for alert_id, sids in by_alert.items():
            for start in range(0, len(sids), batch_size):
                chunk = sids[start : start + batch_size]
                with self.engine.begin() as conn:
                    taken = (
                        conn.execute(
                            update(d)
                            .where(
                                d.c.alert_id == alert_id,
                                d.c.subscription_id.in_(chunk),
                                d.c.status == int(LedgerStatus.RETRY),
                            )
                            .values(status=int(LedgerStatus.REQUEUED), updated_at=now)
                            .returning(d.c.subscription_id)
                        )
                        .scalars()
                        .all()
                    )
                    if not taken:
                        continue
                    seq = conn.execute(
                        update(a)
                        .where(a.c.id == alert_id)
                        .values(batches_total=a.c.batches_total + 1)
                        .returning(a.c.batches_total)
                    ).scalar_one()
                    batch_id = conn.execute(
                        insert(t.batches)
                        .values(
                            alert_id=alert_id,
                            seq=seq,
                            kind="retry",
                            subscription_ids=json.dumps(sorted(taken)),
                            size=len(taken),
                            status=BatchStatus.QUEUED.value,
                            created_at=now,
                            runs=0,
                        )
                        .returning(t.batches.c.id)
                    ).scalar_one()
                created.append((int(batch_id), alert_id))
        return created

    def stale_batches(self, now: float, stale_after_s: float, limit: int) -> list[tuple[int, int]]:
        """Batches whose task was lost: queued with no progress on the alert, or a dead sender."""
        b, a = t.batches, t.alerts
        cutoff = now - stale_after_s
        with self.engine.begin() as conn:
            rows = conn.execute(
                select(b.c.id, b.c.alert_id, b.c.status)
                .join(a, a.c.id == b.c.alert_id)
                .where(
                    a.c.status == AlertStatus.SENDING.value,
                    or_(
                        and_(
                            b.c.status == BatchStatus.QUEUED.value,
                            func.coalesce(b.c.heartbeat_at, b.c.created_at) < cutoff,
                            a.c.progress_at < cutoff,
                        ),
                        and_(b.c.status == BatchStatus.SENDING.value, b.c.heartbeat_at < cutoff),
                    ),
                )
                .order_by(b.c.id)
                .limit(limit)
            ).all()
            ids = [r.id for r in rows]
            if ids:
                # Back to queued with a fresh mark, so the next tick doesn't enqueue them again.
                conn.execute(
                    update(b)
                    .where(b.c.id.in_(ids))
                    .values(status=BatchStatus.QUEUED.value, heartbeat_at=now)
                )
        return [(r.id, r.alert_id) for r in rows]

    def stale_alerts(self, now: float, stale_after_s: float) -> list[int]:
        """Alerts whose planning never ran or stopped half way; also finishes forgotten ones."""
        a = t.alerts
        cutoff = now - stale_after_s
        with self.engine.begin() as conn:
            rows = conn.execute(
                select(a.c.id, a.c.status, a.c.planned)
                .where(
                    or_(
                        and_(
                            a.c.status == AlertStatus.QUEUED.value,
                            func.coalesce(a.c.progress_at, a.c.queued_at) < cutoff,
                        ),
                        and_(a.c.status == AlertStatus.SENDING.value, a.c.progress_at < cutoff),
                    )
                )
                .limit(100)
            ).all()
            replan = [r.id for r in rows if not r.planned]
            if replan:
                conn.execute(update(a).where(a.c.id.in_(replan)).values(progress_at=now))
        for r in rows:
            if r.planned:
                self.maybe_finish_alert(r.id, now)
        return replan

    def due_scheduled(self, now: float) -> list[int]:
        a = t.alerts
        with self.engine.begin() as conn:
            return [
                int(x)
                for x in conn.execute(
                    update(a)
                    .where(a.c.status == AlertStatus.SCHEDULED.value, a.c.send_at <= now)
                    .values(status=AlertStatus.QUEUED.value, queued_at=now, progress_at=now)
                    .returning(a.c.id)
                ).scalars()
            ]

    def waiting_count(self, alert_id: int) -> int:
        d = t.deliveries
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    select(func.count()).where(d.c.alert_id == alert_id, d.c.status.in_(WAITING))
                ).scalar_one()
            )

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(select(literal(1)))
