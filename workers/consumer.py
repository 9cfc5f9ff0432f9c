"""The worker's broker consumer, reconnecting within about a second of the broker's return,
and asking for queued work to be sent again when its connection broke."""

from __future__ import annotations

import logging
import time
from typing import Any

from celery.worker.consumer import Consumer

from core.adapters.broker import broker_memory

log = logging.getLogger("newsflash.broker")

# Seconds between connection attempts: start, added each try, at most.
RETRY_START_S = 0.5
RETRY_STEP_S = 0.5
RETRY_MAX_S = 1.0


class QuickReconnectConsumer(Consumer):  # type: ignore[misc]
    """Celery's consumer with short waits between connection attempts (the default waits grow
    by 2 s a try up to 30 s: a broker back after 20 s was found up to 10 s later).

    A connection that breaks can take a task with it: kombu's Redis transport pops a message,
    then records it as unacknowledged in a second command, so a message in between is in
    neither place. Its batch stays queued in the database with no task, and only the reconciler
    (NEWSFLASH_STALE_AFTER_S, 60 s) would send it again. Once reconnected, the consumer asks
    beat's next sweep to send every queued batch again (core/reclaim.py); extra copies are
    harmless, claims being conditional."""

    lost_at: float | None = None

    def on_connection_error_after_connected(self, exc: Exception) -> None:
        if self.lost_at is None:
            self.lost_at = time.time()
        super().on_connection_error_after_connected(exc)

    def ensure_connected(self, conn: Any) -> Any:
        ensure = conn.ensure_connection

        def quick(*args: Any, **kwargs: Any) -> Any:
            kwargs.setdefault("interval_start", RETRY_START_S)
            kwargs.setdefault("interval_step", RETRY_STEP_S)
            kwargs.setdefault("interval_max", RETRY_MAX_S)
            return ensure(*args, **kwargs)

        conn.ensure_connection = quick
        connected = super().ensure_connected(conn)
        if self.lost_at is not None:
            lost_at, self.lost_at = self.lost_at, None
            if broker_memory(self.app.conf.broker_url).may_have_lost(lost_at):
                log.warning("broker connection was lost; queued work will be sent again")
        return connected
