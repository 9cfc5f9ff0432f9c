"""Settings for keeping the system fit unattended: batch leases (core/leases.py) and retention
(core/retention.py). Settings inherits them, so they load (and are listed) first."""

from __future__ import annotations

from dataclasses import dataclass

from config.declaration import setting
from config.kinds import Number, Whole


@dataclass(frozen=True)
class UpkeepSettings:
    batch_lease_s: float = setting(
        "NEWSFLASH_BATCH_LEASE_S",
        Number(2, 600),
        "6",
        "a sending batch not renewed for this long is taken over (its worker died); renewed and"
        " swept every quarter of it",
    )
    ledger_retention_days: int = setting(
        "NEWSFLASH_LEDGER_RETENTION_DAYS",
        Whole(1, 3650),
        "14",
        "a finished alert's per-reader delivery rows and batch lists are deleted this many days"
        " after it finished (its counts and report stay)",
    )
    audit_retention_days: int = setting(
        "NEWSFLASH_AUDIT_RETENTION_DAYS", Whole(30, 36500), "400", "days audit entries are kept"
    )
    churn_retention_days: int = setting(
        "NEWSFLASH_CHURN_RETENTION_DAYS",
        Whole(30, 36500),
        "400",
        "days the hourly churn, loss and per-host outcome counts are kept",
    )
    webhook_receipt_retention_days: int = setting(
        "NEWSFLASH_WEBHOOK_RECEIPT_RETENTION_DAYS",
        Whole(1, 365),
        "7",
        "days CMS webhook ids (the replay guard) are kept",
    )
    tombstone_days: int = setting(
        "NEWSFLASH_TOMBSTONE_DAYS",
        Whole(1, 365),
        "30",
        "days a subscription deleted as gone (404/410) can still be moved to the browser's new"
        " one with the reader's choices (pushsubscriptionchange); then its tombstone is deleted",
    )
    retention_chunk: int = setting(
        "NEWSFLASH_RETENTION_CHUNK",
        Whole(100, 100_000),
        "5000",
        "rows per retention delete statement (each its own short transaction)",
    )
