"""Tombstones of subscriptions deleted as gone (core/tombstones.py) on SQLite and PostgreSQL:
written in the transaction that deletes the rows, taken back by a move in the transaction that
restores the reader. The PostgreSQL ledger statement writes them itself (ledger_pg, `buried`),
with the same digests computed in SQL."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Engine, delete, select, update

from core.adapters import tables as t
from core.adapters.preferences_sql import CARRIED
from core.adapters.sql import TopicBits, dialect_insert
from core.model import LossReason
from core.tombstones import Tombstone, endpoint_digest, secret_digest

# What a tombstone keeps besides the digests and the time: the subscription's own columns.
KEPT = ("topic_mask", "lang", "platform", *CARRIED)


def bury(conn: Connection, ids: Sequence[int], at: float) -> None:
    """Tombstones for these subscriptions, read before they are deleted in `conn`'s
    transaction (a tombstone already there for the endpoint is replaced)."""
    s, f = t.subscriptions, t.story_follows
    columns = (s.c.id, s.c.endpoint, s.c.auth, *(s.c[name] for name in KEPT))
    rows = conn.execute(select(*columns).where(s.c.id.in_(ids))).mappings().all()
    follows: dict[int, list[list[Any]]] = {}
    for sid, key, followed_at in conn.execute(
        select(f.c.subscription_id, f.c.story_key, f.c.created_at)
        .where(f.c.subscription_id.in_(ids))
        .order_by(f.c.story_key)
    ):
        follows.setdefault(sid, []).append([key, followed_at])
    stones = [
        {
            "endpoint_hash": endpoint_digest(row["endpoint"]),
            "secret_hash": secret_digest(row["auth"]),
            "gone_at": at,
            **{name: row[name] for name in KEPT},
            "follows": json.dumps(follows[row["id"]]) if row["id"] in follows else None,
        }
        for row in rows
    ]
    if not stones:
        return
    ts = t.subscription_tombstones
    stmt = dialect_insert(conn, ts).values(stones)
    stmt = stmt.on_conflict_do_update(
        index_elements=[ts.c.endpoint_hash],
        set_={c.name: stmt.excluded[c.name] for c in ts.c if c.name != "endpoint_hash"},
    )
    conn.execute(stmt)


def find(engine: Engine, digest: str, topics: TopicBits) -> Tombstone | None:
    ts = t.subscription_tombstones
    with engine.connect() as conn:
        row = (
            conn.execute(
                select(
                    ts.c.secret_hash, ts.c.gone_at, ts.c.topic_mask, ts.c.lang, ts.c.platform
                ).where(ts.c.endpoint_hash == digest)
            )
            .mappings()
            .first()
        )
    if row is None:
        return None
    return Tombstone(
        endpoint_digest=digest,
        secret_digest=row["secret_hash"],
        gone_at=float(row["gone_at"]),
        topics=topics.topics_of(row["topic_mask"]),
        lang=row["lang"],
        platform=row["platform"],
    )


def _the(stone: Tombstone) -> Any:
    """The tombstone as it was proven: the same digests and time (a newer one for the same
    endpoint, or none, is not it)."""
    ts = t.subscription_tombstones.c
    return (
        (ts.endpoint_hash == stone.endpoint_digest)
        & (ts.secret_hash == stone.secret_digest)
        & (ts.gone_at == stone.gone_at)
    )


def take(conn: Connection, stone: Tombstone) -> dict[str, Any] | None:
    """Delete the tombstone in `conn`'s transaction; its quiet hours, cap and follows in
    preferences_sql.carry_choices' shape, or None if another request took it first."""
    ts = t.subscription_tombstones
    row = (
        conn.execute(
            delete(ts).where(_the(stone)).returning(*(ts.c[name] for name in CARRIED), ts.c.follows)
        )
        .mappings()
        .first()
    )
    if row is None:
        return None
    follows = json.loads(row["follows"]) if row["follows"] else []
    return {
        "row": {name: row[name] for name in CARRIED},
        "follows": [(str(key), float(at)) for key, at in follows],
    }


def take_back_loss(conn: Connection, gone_at: float) -> None:
    """The reader counted lost (gone) in that hour is back: the hour loses that loss, so the
    churn's net change stays the audience's, and a restore is not a new sign-up. An hour
    already removed by churn retention has nothing to take back."""
    hour = int(gone_at // 3600)
    c, r = t.subscription_churn.c, t.subscription_losses.c
    conn.execute(
        update(t.subscription_churn).where(c.hour == hour, c.lost > 0).values(lost=c.lost - 1)
    )
    conn.execute(
        update(t.subscription_losses)
        .where(r.hour == hour, r.reason == LossReason.GONE.value, r.lost > 0)
        .values(lost=r.lost - 1)
    )


def forget(engine: Engine, stone: Tombstone) -> bool:
    with engine.begin() as conn:
        return bool(conn.execute(delete(t.subscription_tombstones).where(_the(stone))).rowcount)
