"""`newsflash bench retention`: months of sending on a simulated clock; does the database level off?

Each simulated day publishes `alerts_per_day` alerts to every subscriber: the alert row, its
ledger (one row per reader, inserted in bulk with INSERT ... SELECT, nothing is pushed), its
batches' id lists, an audit entry, hourly churn counts. At the end of each day the retention
rule (core/retention.py) runs with the simulated time as its clock, through the same SQL adapter
beat's task uses. The report gives the database size per day; after the first retention window
it should stay within 2x of that day's size.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, insert, select, text

from bench.reports import write_report
from config.settings import Topic
from core.adapters import migrate
from core.adapters import tables as t
from core.adapters.retention_sql import SqlRetention
from core.adapters.sql import make_engine
from core.adapters.stores_sql import SqlStores
from core.retention import DAY_S, RetentionPolicy, run_retention

T0 = 1_767_225_600.0  # 2026-01-01 00:00 UTC, the simulation's first day


@dataclass
class Options:
    subscribers: int = 100_000
    days: int = 60
    alerts_per_day: int = 20
    retention_days: int = 14
    database: str = "postgres"  # or "sqlite"
    batch_size: int = 1000
    chunk: int = 5000
    work_dir: Path | None = None
    quiet: bool = False


def _open(opts: Options, work: Path) -> tuple[Engine, str, Any]:
    if opts.database == "sqlite":
        path = work / "retention.db"
        path.unlink(missing_ok=True)
        return make_engine(f"sqlite:///{path}"), str(path), None
    from bench.fanout import create_database, drop_database

    url = create_database()
    return make_engine(url), url, drop_database


def _subscribers(engine: Engine, n: int) -> None:
    rows = (
        {
            "endpoint": f"https://fcm.googleapis.com/fcm/send/bench-{i:09d}",
            "p256dh": "B" + "x" * 86,
            "auth": "a" * 22,
            "topic_mask": 1,
            "push_host": "fcm.googleapis.com",
            "created_at": T0,
            "last_seen_at": T0,
        }
        for i in range(n)
    )
    with engine.begin() as conn:
        chunk: list[dict[str, Any]] = []
        for row in rows:
            chunk.append(row)
            if len(chunk) == 20_000:
                conn.execute(insert(t.subscriptions), chunk)
                chunk = []
        if chunk:
            conn.execute(insert(t.subscriptions), chunk)


def _ids(engine: Engine) -> list[int]:
    with engine.connect() as conn:
        return [
            int(x)
            for x in conn.execute(select(t.subscriptions.c.id).order_by(t.subscriptions.c.id))
            .scalars()
            .all()
        ]


_LEDGER = (
    "INSERT INTO deliveries (alert_id, subscription_id, status, attempts, status_code,"
    " next_attempt_at, updated_at, events)"
    " SELECT :alert, id, CASE WHEN id % 33 = 0 THEN 2 ELSE 1 END, 1,"
    " CASE WHEN id % 33 = 0 THEN 410 ELSE 201 END, NULL, :at + (id % 600) * 0.05,"
    " CASE WHEN id % 10 = 0 THEN 1 ELSE 0 END FROM subscriptions"
)


# A tenth of the readers open the alert (ids 10, 20, ...) spread over its first six hours, a
# tenth of those click: the report's per-second event counts (event_seconds), a row per
# second with an event (one every 2 s at 100,000 subscribers).
_EVENTS = (
    "INSERT INTO event_seconds (alert_id, second, displayed, clicked)"
    " SELECT :alert, :second + :gap * (id / 10), 1, CASE WHEN id % 100 = 0 THEN 1 ELSE 0 END"
    " FROM subscriptions WHERE id % 10 = 0"
)
EVENTS_OVER_S = 6 * 3600


def _send_one(engine: Engine, ids: list[int], at: float, seq: int, opts: Options) -> None:
    """One alert as the workers would leave it: sent, counted, its ledger and batches written."""
    n, gone = len(ids), sum(1 for i in ids if i % 33 == 0)
    with engine.begin() as conn:
        alert_id = conn.execute(
            insert(t.alerts)
            .values(
                kind="normal",
                title=f"Simulated alert {seq}",
                body="Something happened.",
                url=f"https://news.example/{seq}",
                topics='["breaking"]',
                topic_mask=1,
                urgency="high",
                ttl_s=3600,
                story_key=f"s{seq}",
                status="sent",
                created_at=at,
                queued_at=at,
                started_at=at,
                finished_at=at + 30,
                progress_at=at + 30,
                planned=True,
                planned_through=ids[-1] if ids else 0,
                batches_total=-(-n // opts.batch_size),
                batches_done=-(-n // opts.batch_size),
                audience=n,
                delivered=n - gone,
                gone=gone,
                displayed=sum(1 for i in ids if i % 10 == 0),
                clicked=sum(1 for i in ids if i % 100 == 0),
            )
            .returning(t.alerts.c.id)
        ).scalar_one()
        conn.execute(text(_LEDGER), {"alert": alert_id, "at": at})
        gap = max(1, EVENTS_OVER_S * 10 // max(1, ids[-1] if ids else 1))
        conn.execute(text(_EVENTS), {"alert": alert_id, "second": int(at) + 5, "gap": gap})
        conn.execute(
            insert(t.batches),
            [
                {
                    "alert_id": alert_id,
                    "seq": k + 1,
                    "kind": "plan",
                    "subscription_ids": json.dumps(ids[s : s + opts.batch_size]),
                    "size": len(ids[s : s + opts.batch_size]),
                    "status": "done",
                    "created_at": at,
                    "heartbeat_at": at + 30,
                    "finished_at": at + 30,
                    "runs": 1,
                }
                for k, s in enumerate(range(0, n, opts.batch_size))
            ],
        )
        conn.execute(
            insert(t.audit_log).values(
                at=at, actor="bench@news.example", action="alert.send", target=str(alert_id)
            )
        )


def _hourly(engine: Engine, day_start: float) -> None:
    with engine.begin() as conn:
        conn.execute(
            insert(t.subscription_churn),
            [{"hour": int(day_start // 3600) + h, "created": 40, "lost": 30} for h in range(24)],
        )


def size_bytes(engine: Engine, where: str) -> int:
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            return int(
                conn.execute(text("SELECT pg_database_size(current_database())")).scalar_one()
            )
    with engine.connect() as conn:
        conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
    return os.path.getsize(where)


def _table_bytes(engine: Engine) -> dict[str, int]:
    if engine.dialect.name != "postgresql":
        return {}
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT pg_total_relation_size('deliveries'), pg_total_relation_size('batches'),"
                " pg_total_relation_size('alerts'), pg_total_relation_size('event_seconds'),"
                " pg_total_relation_size('event_steps')"
            )
        ).one()
    names = ("deliveries", "batches", "alerts", "event_seconds", "event_steps")
    return {name: int(size) for name, size in zip(names, row, strict=True)}


def _rows(engine: Engine, table: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def _say(opts: Options, line: str) -> None:
    if not opts.quiet:
        print(line, flush=True)


def simulate(opts: Options) -> dict[str, Any]:
    work = opts.work_dir or Path("var/bench-retention")
    work.mkdir(parents=True, exist_ok=True)
    engine, where, drop = _open(opts, work)
    policy = RetentionPolicy(ledger_days=opts.retention_days, chunk=opts.chunk)
    try:
        migrate.upgrade(engine)
        stores = SqlStores.build(engine, [Topic("breaking", "Breaking", True)])
        retention = SqlRetention(engine, stores.alerts, stores.newsroom)
        _subscribers(engine, opts.subscribers)
        ids = _ids(engine)
        empty = size_bytes(engine, where)
        days = []
        for day in range(opts.days):
            start = T0 + day * DAY_S
            began = time.monotonic()
            for k in range(opts.alerts_per_day):
                at = start + (k + 0.5) * DAY_S / opts.alerts_per_day
                _send_one(engine, ids, at, day * opts.alerts_per_day + k, opts)
            _hourly(engine, start)
            sent_s = time.monotonic() - began
            began = time.monotonic()
            kept = run_retention(retention, policy, start + DAY_S, budget_s=3600)
            # A simulated day lasts seconds: autovacuum (which in a real day visits the ledger
            # many times) gets its turn here, as one plain VACUUM (nothing on SQLite).
            retention.reclaim_space(["deliveries", "batches", "audit_log", "event_seconds"])
            entry: dict[str, Any] = {
                "day": day + 1,
                "bytes": size_bytes(engine, where),
                "ledger_rows": _rows(engine, t.deliveries),
                "event_rows": _rows(engine, t.event_seconds) + _rows(engine, t.event_steps),
                "pruned_alerts": kept.alerts,
                "deleted": kept.deleted,
                "insert_s": round(sent_s, 1),
                "retention_s": round(time.monotonic() - began, 1),
                **({"tables": _table_bytes(engine)} if engine.dialect.name == "postgresql" else {}),
            }
            days.append(entry)
            _say(
                opts,
                f"day {day + 1:3d}: {entry['bytes'] / 1e6:9.1f} MB, {entry['ledger_rows']:>11,} "
                f"ledger rows, {entry['event_rows']:>9,} event rows, {kept.alerts} alerts pruned"
                f" (insert {entry['insert_s']} s, "
                f"retention {entry['retention_s']} s)",
            )
        return _report(opts, engine, empty, days)
    finally:
        engine.dispose()
        if drop is not None:
            drop(where)


def _report(
    opts: Options, engine: Engine, empty: int, days: list[dict[str, Any]]
) -> dict[str, Any]:
    window = min(opts.retention_days, len(days)) - 1
    at_window = days[window]
    later = days[window:]
    peak = max(d["bytes"] for d in later)
    per_row = (at_window["bytes"] - empty) / max(1, at_window["ledger_rows"])
    return {
        "config": {**asdict(opts), "work_dir": None, "engine": engine.dialect.name},
        "empty_bytes": empty,
        "bytes_at_first_window": at_window["bytes"],
        "peak_bytes_after_window": peak,
        "final_bytes": days[-1]["bytes"],
        "ratio_peak_to_first_window": round(peak / at_window["bytes"], 3),
        "levels_off": peak <= 2 * at_window["bytes"],
        # Everything the sends added (ledger, batches, alerts, indexes) per ledger row.
        "bytes_per_delivery": round(per_row, 1),
        "days": days,
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def save(report: dict[str, Any], out: Path | None) -> Path:
    """The report to `out` (a file or a folder), or to bench/results/retention-*.json."""
    cfg = report["config"]
    return write_report(
        report, out, f"retention-{cfg['engine']}-{cfg['subscribers']}-{cfg['days']}d"
    )


def summary(report: dict[str, Any]) -> str:
    cfg = report["config"]
    mb = 1e6
    return "\n".join(
        [
            f"retention over {cfg['days']} simulated days, {cfg['alerts_per_day']} alerts a day to"
            f" {cfg['subscribers']:,} subscribers, ledger kept {cfg['retention_days']} days"
            f" ({cfg['engine']})",
            f"  size after the first window (day {cfg['retention_days']})"
            f"  {report['bytes_at_first_window'] / mb:.1f} MB",
            f"  largest after it                 {report['peak_bytes_after_window'] / mb:.1f} MB"
            f" ({report['ratio_peak_to_first_window']}x; levels off: {report['levels_off']})",
            f"  at the end                       {report['final_bytes'] / mb:.1f} MB",
            f"  bytes per delivery (all tables)  {report['bytes_per_delivery']}",
        ]
    )
