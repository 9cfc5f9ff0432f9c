"""The readers' subscriptions on SQLite or PostgreSQL: one row per endpoint, the per-mask
audience counts kept in the same transactions, and the hourly churn counters."""

from __future__ import annotations

import hmac
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    RowMapping,
    case,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from core.adapters import tables as t
from core.adapters import tombstones_sql
from core.adapters.preferences_sql import carry_choices, choices_of
from core.adapters.sql import TopicBits, dialect_insert
from core.endpoints import push_host
from core.errors import Conflict, NotFound
from core.model import LossReason, Subscription, SubscriptionInput
from core.quiet import MINUTES_PER_DAY, zone_offset_min
from core.tombstones import Tombstone, no_such_subscription


def _same_keys(row: RowMapping, sub: SubscriptionInput) -> bool:
    """The stored keys are the ones posted (the auth secret compared in constant time)."""
    same_key = hmac.compare_digest(str(row["p256dh"]).encode(), sub.p256dh.encode())
    same_auth = hmac.compare_digest(str(row["auth"]).encode(), sub.auth.encode())
    return same_key and same_auth


# subscription_churn's counters besides the hour.
CHURN_COUNTS = ("created", "lost", "moved", "restored")


def bump_mask(conn: Connection, mask: int, delta: int) -> None:
    if delta == 0:
        return
    stmt = dialect_insert(conn, t.mask_counts).values(mask=mask, count=delta)
    stmt = stmt.on_conflict_do_update(
        index_elements=[t.mask_counts.c.mask],
        set_={"count": t.mask_counts.c.count + stmt.excluded["count"]},
    )
    conn.execute(stmt)


def count_churn(
    conn: Connection,
    at: float,
    created: int = 0,
    lost: int = 0,
    reason: str = "",
    *,
    moved: int = 0,
    restored: int = 0,
) -> None:
    """New and lost subscriptions per hour (losses also by reason), and renewals (moved from a
    live row, restored from a tombstone: the same readers, neither new nor lost), in the same
    transaction as the change."""
    if not (created or lost or moved or restored):
        return
    c = t.subscription_churn.c
    stmt = dialect_insert(conn, t.subscription_churn).values(
        hour=int(at // 3600), created=created, lost=lost, moved=moved, restored=restored
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=[c.hour],
        set_={name: c[name] + stmt.excluded[name] for name in CHURN_COUNTS},
    )
    conn.execute(stmt)
    if lost:
        r = t.subscription_losses.c
        loss = dialect_insert(conn, t.subscription_losses).values(
            hour=int(at // 3600), reason=reason or LossReason.UNKNOWN.value, lost=lost
        )
        loss = loss.on_conflict_do_update(
            index_elements=[r.hour, r.reason], set_={"lost": r.lost + loss.excluded.lost}
        )
        conn.execute(loss)


def delete_subscriptions(
    conn: Connection, ids: Sequence[int], reason: LossReason, at: float, *, lost: bool = True
) -> int:
    """Delete these subscriptions with their audience counts, follows and churn (not counted as
    lost with `lost=False`: the caller counts them). Only a subscription its push service said
    is gone leaves a tombstone (core/tombstones.py): one the reader turned off, the purge or a
    move removed must not come back."""
    deleted = 0
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        if reason is LossReason.GONE:
            tombstones_sql.bury(conn, chunk, at)
        masks = conn.execute(
            delete(t.subscriptions)
            .where(t.subscriptions.c.id.in_(chunk))
            .returning(t.subscriptions.c.topic_mask)
        ).scalars()
        for mask, n in Counter(masks).items():
            bump_mask(conn, mask, -n)
            deleted += n
        # A reader who leaves follows nothing (SQLite may give their id to the next reader).
        conn.execute(delete(t.story_follows).where(t.story_follows.c.subscription_id.in_(chunk)))
    if lost:
        count_churn(conn, at, lost=deleted, reason=reason.value)
    return deleted


class SqlSubscriptions:
    """SubscriptionStore and the delivery use case's Housekeeping; each method one transaction."""

    def __init__(self, engine: Engine, topics: TopicBits) -> None:
        self.engine = engine
        self.topics = topics

    def _sub(self, r: RowMapping) -> Subscription:
        return Subscription(
            id=r["id"],
            endpoint=r["endpoint"],
            p256dh=r["p256dh"],
            auth=r["auth"],
            topics=self.topics.topics_of(r["topic_mask"]),
            created_at=r["created_at"],
            last_seen_at=r["last_seen_at"],
            test_device_user_id=r["test_device_user_id"],
            lang=r["lang"],
            platform=r["platform"],
        )

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
        self, conn: Connection, sub: SubscriptionInput, now: float, *, sign_up: bool = True
    ) -> tuple[Subscription, bool]:
        mask = self.topics.mask_of(sub.topics)
        row = self._locked_by_endpoint(conn, sub.endpoint)
        values = {
            "p256dh": sub.p256dh,
            "auth": sub.auth,
            "topic_mask": mask,
            "last_seen_at": now,
            "expires_at": sub.expiration_time,
        }
        # Left out (None): the stored lang and platform stay; a new row gets new_lang.
        values.update({k: v for k, v in (("lang", sub.lang), ("platform", sub.platform)) if v})
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
                bump_mask(conn, row["topic_mask"], -1)
                bump_mask(conn, mask, +1)
            created = False
            sub_id = row["id"]
        else:
            sub_id = conn.execute(
                insert(t.subscriptions)
                .values(
                    endpoint=sub.endpoint,
                    push_host=push_host(sub.endpoint),
                    created_at=now,
                    **{"lang": sub.new_lang, **values},
                )
                .returning(t.subscriptions.c.id)
            ).scalar_one()
            bump_mask(conn, mask, +1)
            count_churn(conn, now, created=int(sign_up))  # a renewal (moved, restored): not new
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

    def set_topics(
        self, sub_id: int, topics: Sequence[str], now: float, *, lang: str | None = None
    ) -> Subscription:
        mask = self.topics.mask_of(topics)
        values: dict[str, Any] = {"topic_mask": mask, "last_seen_at": now}
        if lang is not None:  # left out: the stored language stays
            values["lang"] = lang
        with self.engine.begin() as conn:
            q = select(t.subscriptions).where(t.subscriptions.c.id == sub_id)
            if conn.dialect.name == "postgresql":
                q = q.with_for_update()
            row = conn.execute(q).mappings().first()
            if row is None:
                raise NotFound("no such subscription", "endpoint")
            conn.execute(
                update(t.subscriptions).where(t.subscriptions.c.id == sub_id).values(**values)
            )
            if row["topic_mask"] != mask:
                bump_mask(conn, row["topic_mask"], -1)
                bump_mask(conn, mask, +1)
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

    def delete_ids(
        self,
        ids: Iterable[int],
        reason: LossReason = LossReason.UNSUBSCRIBED,
        now: float | None = None,
    ) -> int:
        ids = list(ids)
        with self.engine.begin() as conn:
            return delete_subscriptions(conn, ids, reason, time.time() if now is None else now)

    def replace(self, old_id: int, new: SubscriptionInput, now: float) -> tuple[Subscription, bool]:
        """pushsubscriptionchange: old row out, new row in with the old one's quiet hours, cap
        and followed stories, in one transaction (never neither, never the move without them).

        A renewal is the same reader: neither a loss nor a sign-up, as a restore from a
        tombstone (`restore`); it counts as moved. Only when the new subscription was already
        signed up afresh (counted as gained then) does the old row count as lost, reason moved,
        so that gains minus losses stay the audience's change."""

        def work(conn: Connection) -> tuple[Subscription, bool]:
            choices = choices_of(conn, old_id)  # before the delete takes the follows with it
            deleted = delete_subscriptions(conn, [old_id], LossReason.MOVED, now, lost=False)
            moved, created = self._upsert(conn, new, now, sign_up=False)
            carry_choices(conn, moved.id, choices)
            count_churn(
                conn,
                now,
                created=int(created and not deleted),
                lost=int(deleted and not created),
                reason=LossReason.MOVED.value,
                moved=int(bool(deleted and created)),
            )
            return moved, created

        return self._in_transaction(work)

    def find_tombstone(self, endpoint_digest: str) -> Tombstone | None:
        return tombstones_sql.find(self.engine, endpoint_digest, self.topics)

    def restore(
        self, stone: Tombstone, new: SubscriptionInput, now: float
    ) -> tuple[Subscription, bool]:
        """A move whose old subscription was deleted as gone: the new one with the tombstone's
        choices and the tombstone deleted, in one transaction (as replace). A new row takes
        back the gone loss instead of counting a sign-up and counts as restored; a row already
        there (the browser signed up afresh first) was counted when it signed up, so the loss
        stays."""

        def work(conn: Connection) -> tuple[Subscription, bool]:
            choices = tombstones_sql.take(conn, stone)
            if choices is None:  # another request restored or removed it meanwhile
                raise no_such_subscription()
            restored, created = self._upsert(conn, new, now, sign_up=False)
            carry_choices(conn, restored.id, choices)
            if created:
                tombstones_sql.take_back_loss(conn, stone.gone_at)
                count_churn(conn, now, restored=1)
            return restored, created

        return self._in_transaction(work)

    def forget_tombstone(self, stone: Tombstone) -> bool:
        return tombstones_sql.forget(self.engine, stone)

    def audience_size(self, topics: Sequence[str]) -> int:
        mask = self.topics.mask_of(topics)
        with self.engine.connect() as conn:
            total = conn.execute(
                select(func.coalesce(func.sum(t.mask_counts.c.count), 0)).where(
                    t.mask_counts.c.mask.op("&")(mask) != 0
                )
            ).scalar_one()
            return int(total)

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

    def refresh_quiet_zones(self, now: float) -> int:
        """Move quiet hours whose zone changed its UTC offset since they were saved (summer
        time begins or ends): their UTC window and their local day (the cap's) follow the
        zone again. Two scans of the subscriptions whatever the number of zones; rows already
        right are not written."""
        s = t.subscriptions
        with self.engine.connect() as conn:
            zones = conn.execute(
                select(s.c.quiet_zone).where(s.c.quiet_zone.is_not(None)).distinct()
            ).scalars()
            offsets = {}
            for zone in zones:
                try:
                    offsets[zone] = zone_offset_min(zone, now)
                except (KeyError, ValueError):  # a zone name tzdata no longer has: left as is
                    continue
        if not offsets:
            return 0
        offset = case(offsets, value=s.c.quiet_zone)

        def utc(local: Any) -> Any:  # (local - offset) mod a day, never negative in SQL
            return ((local - offset) % MINUTES_PER_DAY + MINUTES_PER_DAY) % MINUTES_PER_DAY

        with self.engine.begin() as conn:
            return int(
                conn.execute(
                    update(s)
                    .where(
                        s.c.quiet_zone.in_(list(offsets)),
                        s.c.quiet_start.is_not(None),
                        s.c.quiet_end.is_not(None),
                        or_(s.c.tz_offset_min.is_(None), s.c.tz_offset_min != offset),
                    )
                    .values(
                        tz_offset_min=offset,
                        quiet_start_utc=utc(s.c.quiet_start),
                        quiet_end_utc=utc(s.c.quiet_end),
                    )
                ).rowcount
            )

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
            return delete_subscriptions(
                conn, list(ids), LossReason.PURGED, time.time() if now is None else now
            )
