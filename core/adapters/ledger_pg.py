"""The ledger's PostgreSQL fast paths: the same answers as the portable statements in
ledger_sql, as one statement of constant text over arrays each (see the docstrings why)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from sqlalchemy import Engine, text

from core.model import Batch, LedgerStatus, LossReason, Target
from core.ports import LedgerEntry

# The ledger write on PostgreSQL (see record_pg): a row moves into a final state
# once, the alert's counters grow by exactly the rows that changed, gone readers' subscriptions
# are deleted and leave their tombstones, the batch's heartbeat moves.
# Status numbers are LedgerStatus: 1 delivered, 2 gone, 3 failed (FINAL).
RECORD_PG = text(
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
), leaving AS (
    -- The push service's 404/410 (the ids the caller says are gone) that moved into GONE
    -- here: the subscription goes, with its audience count, its follows and the hour's churn
    -- (what delete_subscriptions does on the portable path), in this statement, not five more.
    SELECT subscription_id AS id FROM changed
    WHERE status = 2 AND subscription_id = ANY(CAST(:gone AS bigint[]))
), gone AS (
    DELETE FROM subscriptions WHERE id IN (SELECT id FROM leaving)
    RETURNING id, topic_mask, endpoint, auth, lang, platform, quiet_start, quiet_end, quiet_zone,
        tz_offset_min, quiet_start_utc, quiet_end_utc, daily_cap, cap_day, cap_count
), buried AS (
    -- Each gone reader leaves a tombstone a waiting pushsubscriptionchange restores them from
    -- (core/tombstones.py: SHA-256 of the endpoint and of the unpadded auth secret, hex).
    -- Empty when nobody is gone; the follows are read in this statement's snapshot, before
    -- `follows` deletes them.
    INSERT INTO subscription_tombstones AS ts (
        endpoint_hash, secret_hash, gone_at, topic_mask, lang, platform, quiet_start,
        quiet_end, quiet_zone, tz_offset_min, quiet_start_utc, quiet_end_utc, daily_cap,
        cap_day, cap_count, follows
    )
    SELECT encode(sha256(convert_to(g.endpoint, 'UTF8')), 'hex'),
        encode(sha256(convert_to(rtrim(g.auth, '='), 'UTF8')), 'hex'), :now, g.topic_mask,
        g.lang, g.platform, g.quiet_start, g.quiet_end, g.quiet_zone, g.tz_offset_min,
        g.quiet_start_utc, g.quiet_end_utc, g.daily_cap, g.cap_day, g.cap_count,
        (SELECT CAST(json_agg(json_build_array(f.story_key, f.created_at) ORDER BY f.story_key)
                AS text)
         FROM story_follows f WHERE f.subscription_id = g.id)
    FROM gone g
    ON CONFLICT (endpoint_hash) DO UPDATE SET
        secret_hash = excluded.secret_hash, gone_at = excluded.gone_at,
        topic_mask = excluded.topic_mask, lang = excluded.lang, platform = excluded.platform,
        quiet_start = excluded.quiet_start, quiet_end = excluded.quiet_end,
        quiet_zone = excluded.quiet_zone, tz_offset_min = excluded.tz_offset_min,
        quiet_start_utc = excluded.quiet_start_utc, quiet_end_utc = excluded.quiet_end_utc,
        daily_cap = excluded.daily_cap, cap_day = excluded.cap_day,
        cap_count = excluded.cap_count, follows = excluded.follows
), masks AS (
    -- The mask rows are taken in mask order, so two writers cannot deadlock on them.
    INSERT INTO mask_counts AS m (mask, count)
    SELECT topic_mask, -count(*) FROM gone GROUP BY topic_mask ORDER BY topic_mask
    ON CONFLICT (mask) DO UPDATE SET count = m.count + excluded.count
), follows AS (
    DELETE FROM story_follows WHERE subscription_id IN (SELECT id FROM leaving)
), churn AS (
    INSERT INTO subscription_churn AS sc (hour, created, lost)
    SELECT :hour, 0, count(*) FROM gone HAVING count(*) > 0
    ON CONFLICT (hour) DO UPDATE SET lost = sc.lost + excluded.lost
), losses AS (
    INSERT INTO subscription_losses AS sl (hour, reason, lost)
    SELECT :hour, :reason, count(*) FROM gone HAVING count(*) > 0
    ON CONFLICT (hour, reason) DO UPDATE SET lost = sl.lost + excluded.lost
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
LOAD_TARGETS_PG = text(
    """
SELECT u.id, s.endpoint, s.p256dh, s.auth, s.topic_mask, d.status, d.attempts, s.lang
FROM unnest(CAST(:ids AS bigint[])) AS u(id)
LEFT JOIN LATERAL (
    SELECT endpoint, p256dh, auth, topic_mask, lang FROM subscriptions WHERE id = u.id LIMIT 1
) AS s ON true
LEFT JOIN LATERAL (
    SELECT status, attempts FROM deliveries
    WHERE alert_id = CAST(:alert_id AS bigint) AND subscription_id = u.id
    LIMIT 1
) AS d ON true
ORDER BY u.id
"""
)


def load_targets_pg(engine: Engine, batch: Batch, kind: str) -> tuple[list[Target], list[int]]:
    """load_targets() on PostgreSQL: the whole batch in one query over an array (IN lists
    of a thousand bound parameters cost more CPU to render and parse than to run)."""
    requeued = int(LedgerStatus.REQUEUED)
    targets: list[Target] = []
    missing: list[int] = []
    with engine.connect() as conn:
        rows = conn.execute(
            LOAD_TARGETS_PG,
            {"alert_id": batch.alert_id, "ids": list(batch.subscription_ids)},
        ).all()
    for sid, endpoint, p256dh, auth, mask, status, attempts, lang in rows:
        owed = status == requeued if kind == "retry" else status is None
        if not owed:
            continue
        if endpoint is None:
            missing.append(sid)
        else:
            targets.append(Target(sid, endpoint, p256dh, auth, mask, attempts or 0, lang))
    return targets, missing


def record_pg(
    engine: Engine,
    alert_id: int,
    entries: Sequence[LedgerEntry],
    gone_ids: Sequence[int],
    now: float,
    batch_id: int | None,
) -> Counter[int]:
    """record() on PostgreSQL: the same conditional upsert, counters, deletion of the gone
    readers (leaving their tombstones) and heartbeat as one statement of constant text over
    arrays. The multi-row VALUES form cost more CPU to compile and parse than the pushes it
    recorded, and four round trips instead of one; the gone readers' five statements per chunk
    (3 % of a realistic audience answers 410, spread over most chunks) cost 5 % of the
    workers' CPU.
    Returns how many rows moved into each status."""
    with engine.begin() as conn:
        changed = conn.execute(
            RECORD_PG,
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
                "gone": list(gone_ids),
                "reason": LossReason.GONE.value,
            },
        ).all()
    return Counter(status for _sid, status in changed)
