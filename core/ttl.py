"""An alert's lifetime at send time: its TTL counts from its release, so nothing is pushed after
it runs out and no push asks a push service to keep it longer than what is left."""

from __future__ import annotations

import dataclasses
import logging

from core.model import Alert, LedgerStatus, Target
from core.ports import LedgerEntry, LedgerStore

log = logging.getLogger("newsflash.delivery")
# Pushes sent within this of the alert's release carry its whole TTL (ttl_s is at least 60).
ON_TIME_S = 60


def released_at(alert: Alert) -> float:
    """When the alert went out: its TTL counts from here, and every push of it carries this
    time (`ts`, the notification's timestamp), so a push held by quiet hours or retried later
    shows when the news broke, not when the phone got it."""
    return alert.started_at or alert.created_at


def ends_at(alert: Alert) -> float:
    """When the alert's TTL runs out, counted from its release: nothing is pushed after it
    (quiet hours' held pushes included, core/quiet.py), and no push asks a service to keep it
    longer."""
    return released_at(alert) + alert.ttl_s


def within_ttl(
    alert: Alert, targets: list[Target], store: LedgerStore, batch_id: int, now: float
) -> Alert:
    """The alert with the TTL its pushes carry now; with none left the targets are recorded
    failed and emptied, so nothing is sent.

    A send on time (within ON_TIME_S of the release: a whole fan-out of 100k takes about 20 s)
    carries the alert's own TTL; a later one (a retry, a quiet-hours release, a backlog)
    carries what is left of it, so no push service keeps it past the editor's limit."""
    left_s = int(ends_at(alert) - now)
    if left_s >= 1:
        if left_s >= alert.ttl_s - ON_TIME_S:
            return alert
        return dataclasses.replace(alert, ttl_s=left_s)
    if targets:
        log.warning(
            "alert expired; batch not sent", extra={"alert_id": alert.id, "batch_id": batch_id}
        )
        entries = [
            LedgerEntry(t.subscription_id, LedgerStatus.FAILED, None, t.attempts) for t in targets
        ]
        store.record(alert.id, entries, [], now, batch_id)
        targets.clear()
    return alert
