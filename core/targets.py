"""What a batch still owes: its readers not yet final in the ledger, minus those gone since
planning (counted gone) and those whose endpoint the rules no longer accept (counted failed)."""

from __future__ import annotations

import logging

from core.endpoints import EndpointPolicy, endpoint_allowed, push_host
from core.model import Alert, Batch, LedgerStatus, Target
from core.ports import HostHealth, LedgerEntry, LedgerStore, PushResult

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


def set_aside_held(
    targets: list[Target], hosts: HostHealth, now: float
) -> tuple[list[Target], list[PushResult]]:
    """The targets to push, and a `blocked` result for each one whose push host is held
    (Retry-After, open breaker): the answer the sender gives such a push, given here without
    building its message or passing it through the sender's queues (docs/capacity.md)."""
    until_of: dict[str, tuple[str, float | None]] = {}
    keep: list[Target] = []
    held: list[PushResult] = []
    for t in targets:
        endpoint = t.endpoint
        # Endpoints sharing the text before the path share a host: parsed once per batch.
        start = endpoint.find("://") + 3
        cut = endpoint.find("/", start) if start >= 3 else -1
        key = endpoint[:cut] if cut >= 0 else endpoint
        known = until_of.get(key)
        if known is None:
            try:
                host = push_host(endpoint) if start >= 3 else "unknown"
            except ValueError:  # left to the sender, which says why it cannot push there
                host = "unknown"
            known = until_of[key] = (
                host,
                None if host == "unknown" else hosts.blocked_until(host, now),
            )
        host, until = known
        if until is None:
            keep.append(t)
        else:
            held.append(
                PushResult(t.subscription_id, host, None, error="blocked", blocked_until=until)
            )
    return keep, held
