"""Readers' choices in the fan-out (SQLite and PostgreSQL): quiet hours, daily caps, followers.

The planner's audience page for a non-breaking alert (and for any story update) comes from one
query that also says, per reader, whether they are capped today or in their quiet hours now and
until which UTC minute; the whole selection happens in the database, page by page. Held readers
get a HELD ledger row due when their quiet hours end, and the beat's retry round releases them
into ordinary retry batches (or drops them if the alert's TTL has run out by then).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    Integer,
    and_,
    case,
    exists,
    func,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from core.adapters import tables as t
from core.adapters.planning_sql import at_cursor, cursor_after, keyset_page, reached_by
from core.adapters.recovery_sql import add_retry_batch
from core.adapters.sql import insert_batch
from core.choices import AudiencePage
from core.corrections import adds_reached
from core.freshness import Cursor
from core.model import Alert, AlertKind, AlertStatus, LedgerStatus
from core.ports import PlanningConflict
from core.quiet import release_at, still_wanted, utc_minute, waits_for_readers

CAPPED = -1  # the page query's hold column: skipped for the reader's cap (else an end minute)


def _in_quiet(minute: int) -> Any:
    s = t.subscriptions
    qs, qe = s.c.quiet_start_utc, s.c.quiet_end_utc
    return and_(
        qs.is_not(None),
        or_(
            and_(qs < qe, qs <= minute, qe > minute),
            and_(qs > qe, or_(qs <= minute, qe > minute)),
        ),
    )


def _today(now: float) -> Any:
    """The reader's local day number, per row (their zone's offset, else UTC)."""
    s = t.subscriptions
    # Integer literals: the offset column is a smallint, and PostgreSQL would bind 86400 as one.
    offset_s = func.coalesce(s.c.tz_offset_min, 0) * literal(60, Integer)
    return (literal(int(now), Integer) + offset_s) // literal(86400, Integer)


def _capped(now: float) -> Any:
    s = t.subscriptions
    return and_(
        s.c.daily_cap.is_not(None), s.c.cap_day == _today(now), s.c.cap_count >= s.c.daily_cap
    )


class SqlReaderChoices:
    def __init__(self, engine: Engine, mask_of: Callable[[Iterable[str]], int]) -> None:
        self.engine = engine
        self.mask_of = mask_of

    # -- planning ---------------------------------------------------------------------------
    def next_choice_page(
        self, alert: Alert, after: Cursor, limit: int, now: float
    ) -> AudiencePage | None:
        """The next page of the audience with each reader's choice applied (None: no more)."""
        s, f = t.subscriptions, t.story_follows
        columns = self._columns(alert, now)
        if alert.kind is AlertKind.UPDATE:
            st = t.stories
            story_open = exists().where(
                st.c.key == alert.story_key, st.c.closed_at.is_(None), st.c.closes_at > now
            )
            q = (
                select(*columns)
                .select_from(f.join(s, s.c.id == f.c.subscription_id))
                .where(f.c.story_key == alert.story_key, f.c.subscription_id > after.id, story_open)
                .order_by(f.c.subscription_id)
            )
        else:
            q = keyset_page(select(*columns).where(self._in_audience(alert)), after)
        with self.engine.connect() as conn:
            rows = conn.execute(q.limit(limit)).all()
        if not rows:
            return None
        return _sort_page(alert, rows, now, cursor_after(rows[-1], after))

    def choice_page_of(
        self, alert: Alert, ids: list[int], last: Cursor, now: float
    ) -> AudiencePage:
        """These readers, those of them still in the audience, with their choices applied."""
        s = t.subscriptions
        q = (
            select(*self._columns(alert, now))
            .where(s.c.id.in_(ids), self._in_audience(alert))
            .order_by(s.c.id)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(q).all()
        return _sort_page(alert, rows, now, last)

    def _in_audience(self, alert: Alert) -> Any:
        topics = t.subscriptions.c.topic_mask.op("&")(self.mask_of(alert.topics)) != 0
        reached = reached_by(adds_reached(alert))
        return topics if reached is None else or_(topics, reached)

    def _columns(self, alert: Alert, now: float) -> tuple[Any, ...]:
        """(id, last_seen_at, hold, has_cap): hold is CAPPED, the UTC minute quiet hours end, or
        None to push now. A correction's readers who got the alert it corrects get it at once
        and it does not count towards their cap (that alert did)."""
        s = t.subscriptions
        waits = waits_for_readers(alert)
        reached = reached_by(adds_reached(alert))
        first = [] if reached is None else [(reached, None)]
        hold = (
            case(
                *first,
                (_capped(now), CAPPED),
                (_in_quiet(utc_minute(now)), s.c.quiet_end_utc),
                else_=None,
            )
            if waits
            else literal(None, Integer)
        )
        has_cap: Any = s.c.daily_cap.is_not(None) if waits else literal(False)
        if waits and reached is not None:
            has_cap = and_(has_cap, ~reached)
        return s.c.id, s.c.last_seen_at, hold, has_cap

    def add_choice_page(
        self, alert: Alert, after: Cursor, page: AudiencePage, now: float
    ) -> int | None:
        """Commit a page: the batch of readers to push now (its id, or None if nobody), the held,
        expired and capped readers' ledger rows, their counts, the cap counters and the cursor,
        in one transaction; a concurrent planner loses the race cleanly (PlanningConflict)."""
        a = t.alerts
        with self.engine.begin() as conn:
            seq = conn.execute(
                update(a)
                .where(a.c.id == alert.id, at_cursor(after), a.c.planned.is_(False))
                .values(
                    planned_through=page.last.id,
                    planned_seen=page.last.seen,
                    batches_total=a.c.batches_total + (1 if page.send else 0),
                    progress_at=now,
                    held=a.c.held + len(page.held) + len(page.expired),
                    expired=a.c.expired + len(page.expired),
                    capped=a.c.capped + len(page.capped),
                )
                .returning(a.c.batches_total)
            ).scalar_one_or_none()
            if seq is None:
                raise PlanningConflict(alert.id)
            _ledger(conn, alert.id, now, [(i, LedgerStatus.HELD, at) for i, at in page.held])
            _ledger(conn, alert.id, now, [(i, LedgerStatus.EXPIRED, None) for i in page.expired])
            _ledger(conn, alert.id, now, [(i, LedgerStatus.CAPPED, None) for i in page.capped])
            if page.counted:
                _count_towards_caps(conn, page.counted, now)
            if not page.send:
                return None
            return insert_batch(conn, alert.id, seq, "plan", page.send, now)

    def settle_audience(self, alert_id: int) -> None:
        """The audience is who was pushed at once plus who was held (recomputed: idempotent)."""
        a, b = t.alerts, t.batches
        planned = (
            select(func.coalesce(func.sum(b.c.size), 0))
            .where(b.c.alert_id == alert_id, b.c.kind == "plan")
            .scalar_subquery()
        )
        with self.engine.begin() as conn:
            conn.execute(update(a).where(a.c.id == alert_id).values(audience=planned + a.c.held))

    # -- the beat: quiet hours over ---------------------------------------------------------
    def release_held(self, now: float, limit: int, batch_size: int) -> list[tuple[int, int]]:
        """Held readers whose quiet hours are over become retry batches (returned as
        (batch, alert) to enqueue); those whose alert's TTL ran out meanwhile are expired."""
        d, a = t.deliveries, t.alerts
        with self.engine.connect() as conn:
            due = conn.execute(
                select(d.c.alert_id, d.c.subscription_id, a.c.created_at, a.c.started_at, a.c.ttl_s)
                .join(a, a.c.id == d.c.alert_id)
                .where(
                    d.c.status == int(LedgerStatus.HELD),
                    d.c.next_attempt_at <= now,
                    a.c.status == AlertStatus.SENDING.value,
                )
                .order_by(d.c.alert_id, d.c.subscription_id)
                .limit(limit)
            ).all()
        by_alert: dict[int, tuple[bool, list[int]]] = {}
        for alert_id, sid, created_at, started_at, ttl_s in due:
            alive = now < (started_at or created_at) + ttl_s
            by_alert.setdefault(alert_id, (alive, []))[1].append(sid)
        created: list[tuple[int, int]] = []
        for alert_id, (alive, sids) in by_alert.items():
            for start in range(0, len(sids), batch_size):
                batch = self._release(alert_id, sids[start : start + batch_size], alive, now)
                if batch is not None:
                    created.append((batch, alert_id))
        return created

    def _release(self, alert_id: int, sids: list[int], alive: bool, now: float) -> int | None:
        d, a = t.deliveries, t.alerts
        to = LedgerStatus.REQUEUED if alive else LedgerStatus.EXPIRED
        with self.engine.begin() as conn:
            taken = (
                conn.execute(
                    update(d)
                    .where(
                        d.c.alert_id == alert_id,
                        d.c.subscription_id.in_(sids),
                        d.c.status == int(LedgerStatus.HELD),
                    )
                    .values(status=int(to), updated_at=now)
                    .returning(d.c.subscription_id)
                )
                .scalars()
                .all()
            )
            if not taken:
                return None
            if not alive:
                conn.execute(
                    update(a).where(a.c.id == alert_id).values(expired=a.c.expired + len(taken))
                )
                return None
            return add_retry_batch(
                conn, alert_id, taken, now, released=a.c.released + len(taken), progress_at=now
            )


def _sort_page(alert: Alert, rows: Sequence[Any], now: float, last: Cursor) -> AudiencePage:
    """Split one page by the hold column the database computed (no per-reader rules here)."""
    page = AudiencePage(last)
    release: dict[int, float] = {}
    for sid, _seen, hold, has_cap in rows:
        if hold is None:
            page.send.append(int(sid))
        elif hold == CAPPED:
            page.capped.append(int(sid))
            continue
        else:
            end = int(hold)
            if end not in release:
                release[end] = release_at(end, now)
            at = release[end]
            if still_wanted(alert, at):
                page.held.append((int(sid), at))
            else:
                page.expired.append(int(sid))
                continue
        if has_cap:
            page.counted.append(int(sid))
    return page


def _ledger(
    conn: Connection,
    alert_id: int,
    now: float,
    rows: Sequence[tuple[int, LedgerStatus, float | None]],
) -> None:
    if not rows:
        return
    d = t.deliveries
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    values = [
        {
            "alert_id": alert_id,
            "subscription_id": sid,
            "status": int(status),
            "attempts": 0,
            "status_code": None,
            "next_attempt_at": at,
            "updated_at": now,
        }
        for sid, status, at in rows
    ]
    # One statement run for many rows (executemany): a VALUES list of thousands of bound
    # parameters costs more CPU to render than the insert takes to run.
    conn.execute(dialect.insert(d).on_conflict_do_nothing(), values)


def _count_towards_caps(conn: Connection, ids: list[int], now: float) -> None:
    """This alert counts towards each reader's cap for their local today."""
    s = t.subscriptions
    today = _today(now)
    conn.execute(
        update(s)
        .where(s.c.id.in_(ids))
        .values(
            cap_count=case((s.c.cap_day == today, func.coalesce(s.c.cap_count, 0) + 1), else_=1),
            cap_day=today,
        )
    )
