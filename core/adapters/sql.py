"""What every SQL adapter shares: the engine, the topic bits, row mapping and ledger states.

The adapters themselves live one per port: subscriptions_sql (readers' rows and the audience
counts), alerts_sql (alerts), events_sql (display and click reports), planning_sql (the audience
walked into batches), ledger_sql with its PostgreSQL twin ledger_pg (claiming batches and the
exactly-once ledger), recovery_sql (retries, lost work, scheduled alerts); stores_sql builds
them all over one engine.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, RowMapping, create_engine, event, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.pool import NullPool

from config.settings import Topic
from core.adapters import db_errors
from core.adapters import tables as t
from core.adapters.db_holders import application_name, process_role
from core.adapters.pg_sessions import (
    WEB_LOCK_WAIT_S,
    connect_args,
    guard_sessions,
    session_limits,
)
from core.model import (
    Alert,
    AlertCounts,
    AlertKind,
    AlertStatus,
    BatchStatus,
    LedgerStatus,
    Urgency,
)
from core.translations import translations_from_json

FINAL = (int(LedgerStatus.DELIVERED), int(LedgerStatus.GONE), int(LedgerStatus.FAILED))
# HELD: waiting for the reader's quiet hours to end (core/choices.py releases it).
WAITING = (int(LedgerStatus.RETRY), int(LedgerStatus.REQUEUED), int(LedgerStatus.HELD))
MAX_ID = 2**63 - 1  # bigint (and SQLite INTEGER): larger ids from outside match no row


@dataclass(frozen=True)
class TopicBits:
    """Which bit of a subscription's topic mask each topic slug owns (from the topics table)."""

    bits: dict[str, int]

    def mask_of(self, topics: Iterable[str]) -> int:
        mask = 0
        for slug in topics:
            mask |= 1 << self.bits[slug]
        return mask

    def topics_of(self, mask: int) -> tuple[str, ...]:
        return tuple(s for s, b in sorted(self.bits.items(), key=lambda x: x[1]) if mask >> b & 1)


# How long a SQLite connection waits for another's write to finish: a web request as long as a
# PostgreSQL one waits for a lock (core/adapters/pg_sessions.SESSION_LIMITS), then 503 "busy";
# workers and commands 30 s.
SQLITE_BUSY_MS: dict[str, int] = {"web": WEB_LOCK_WAIT_S * 1000, "*": 30000}


def make_engine(
    url: str,
    *,
    pool_size: int = 5,
    role: str | None = None,
    pooled: bool = True,
    on_refused: Callable[[str], None] | None = None,
) -> Engine:
    """An engine with the pragmas SQLite needs for several processes (WAL, busy timeout). On
    PostgreSQL its connections are named "newsflash <role>" (the process's role unless given:
    web, worker, beat, cli), which pg_stat_activity shows ops and `newsflash restore` checks,
    their sessions end with the statement their process gave up on, and a database that stops
    answering is given up on in seconds (pg_sessions). `on_refused` hears of every write the
    database refuses (db_errors.witness)."""
    role = role or process_role()
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        busy_ms = SQLITE_BUSY_MS.get(role, SQLITE_BUSY_MS["*"])
        engine = create_engine(url, poolclass=NullPool, connect_args={"timeout": busy_ms / 1000})
        if on_refused is not None:
            event.listen(engine, "handle_error", db_errors.witness(on_refused))

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA busy_timeout={busy_ms}")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    args = connect_args(url, application_name(role))
    if not pooled:  # a probe: a new connection each time, so its connect timeout always applies
        engine = create_engine(url, poolclass=NullPool, connect_args=args)
    else:
        engine = create_engine(
            url,
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_pre_ping=True,
            pool_recycle=1800,
            connect_args=args,
        )
    guard_sessions(engine, session_limits(role))
    event.listen(engine, "handle_error", db_errors.refusal_is_an_outage)
    if on_refused is not None:
        event.listen(engine, "handle_error", db_errors.witness(on_refused))
    return engine


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
            row = rows.get(topic.slug)
            if row is not None:
                # Written only when it changed: a process starting against a database that
                # refuses writes (a standby after a failover) still reads (the web's manage
                # and newsroom pages, /ops), and restarts add nothing to the WAL.
                wanted_row = (topic.name, topic.default, True)
                if (row["name"], bool(row["default_on"]), bool(row["active"])) != wanted_row:
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
            if rows[slug]["active"]:
                conn.execute(update(t.topics).where(t.topics.c.slug == slug).values(active=False))
        return {r.slug: r.bit for r in conn.execute(select(t.topics.c.slug, t.topics.c.bit))}


def dialect_insert(conn: Connection, table: Any) -> Any:
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def row_to_alert(r: RowMapping) -> Alert:
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
        utm=bool(r.get("utm", True)),
        lang=r["lang"],
        translations=translations_from_json(
            json.loads(r["translations"]) if r["translations"] else None
        ),
        counts=AlertCounts(
            audience=r["audience"],
            delivered=r["delivered"],
            gone=r["gone"],
            failed=r["failed"],
            displayed=r["displayed"],
            clicked=r["clicked"],
            held=r["held"],
            released=r["released"],
            capped=r["capped"],
            expired=r["expired"],
        ),
    )


def insert_batch(
    conn: Connection, alert_id: int, seq: int, kind: str, ids: Sequence[int], now: float
) -> int:
    """A queued batch of these readers as the alert's `seq`-th (kind "plan" or "retry"); its id.
    The planner's pages, the readers'-choices pages and retry batches all go in here."""
    return int(
        conn.execute(
            insert(t.batches)
            .values(
                alert_id=alert_id,
                seq=seq,
                kind=kind,
                subscription_ids=json.dumps(list(ids)),
                size=len(ids),
                status=BatchStatus.QUEUED.value,
                created_at=now,
                runs=0,
            )
            .returning(t.batches.c.id)
        ).scalar_one()
    )
