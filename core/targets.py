"""What a batch still owes: its readers not yet final in the ledger, minus those gone since
planning (counted gone) and those whose endpoint the rules no longer accept (counted failed)."""

from __future__ import annotations

import logging

from core.endpoints import EndpointPolicy, endpoint_allowed
from core.model import Alert, Batch, LedgerStatus, Target
from core.ports import LedgerEntry, LedgerStore

log = logging.getLogger("newsflash.delivery")


def owed_targets(
    batch: Batch, alert: Alert, store: LedgerStore, endpoints: EndpointPolicy | None, now: float
) -> tuple[list[Target], list[int]]:
    """The targets still owed this alert, and the ids unsubscribed since planning."""
    targets, missing = store.load_targets(batch)
    if missing:
        # Unsubscribed since planning: counted as gone so the alert's numbers add up.
        store.record(
            alert.id,
            [LedgerEntry(i, LedgerStatus.GONE, None, 0) for i in missing],
            [],
            now,
            batch.id,
        )
    if endpoints is not None:
        targets = _refuse_disallowed(targets, endpoints, store, alert.id, batch.id, now)
    return targets, missing


def _refuse_disallowed(
    targets: list[Target],
    endpoints: EndpointPolicy,
    store: LedgerStore,
    alert_id: int,
    batch_id: int,
    now: float,
) -> list[Target]:
    """Targets whose endpoint the rules no longer accept are failed, never sent, never deleted
    (only the push service's 404/410 says a subscription is gone)."""
    refused = {t.subscription_id for t in targets if not endpoint_allowed(t.endpoint, endpoints)}
    if not refused:
        return targets
    log.warning(
        "endpoints refused at send time",
        extra={"alert_id": alert_id, "batch_id": batch_id, "count": len(refused)},
    )
    store.record(
        alert_id,
        [LedgerEntry(i, LedgerStatus.FAILED, None, 0) for i in sorted(refused)],
        [],
        now,
        batch_id,
    )
    return [t for t in targets if t.subscription_id not in refused]
