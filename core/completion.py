"""When a sending alert is finished, and whether it was sent or failed: decided here from the
counts the store reads; the store only writes the decision if nothing changed meanwhile."""

from __future__ import annotations

from core.model import AlertStatus
from core.ports import AlertProgress, AlertReads


def finished_status(p: AlertProgress) -> AlertStatus | None:
    """Sent or failed once planned, every batch done and no retry waiting; None: not yet.

    Failed only when nothing was delivered and something failed (an alert whose whole audience
    is gone, or that had no audience, is sent: nobody was owed a push).
    """
    if p.status is not AlertStatus.SENDING or not p.planned:
        return None
    if p.batches_done < p.batches_total or p.waiting:
        return None
    return AlertStatus.FAILED if p.delivered == 0 and p.failed > 0 else AlertStatus.SENT


def finish_if_done(store: AlertReads, alert_id: int, now: float) -> AlertStatus | None:
    """Move the alert to its final status if it is finished; the status when this call did it."""
    progress = store.alert_progress(alert_id)
    if progress is None:
        return None
    final = finished_status(progress)
    if final is None or not store.finish_alert(alert_id, final, progress, now):
        return None
    return final
