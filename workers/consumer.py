"""The worker's broker consumer, reconnecting within about a second of the broker's return."""

from __future__ import annotations

from typing import Any

from celery.worker.consumer import Consumer

# Seconds between connection attempts: start, added each try, at most.
RETRY_START_S = 0.5
RETRY_STEP_S = 0.5
RETRY_MAX_S = 1.0


class QuickReconnectConsumer(Consumer):  # type: ignore[misc]
    """Celery's consumer with short waits between connection attempts (the default waits grow
    by 2 s a try up to 30 s: a broker back after 20 s was found up to 10 s later)."""

    def ensure_connected(self, conn: Any) -> Any:
        ensure = conn.ensure_connection

        def quick(*args: Any, **kwargs: Any) -> Any:
            kwargs.setdefault("interval_start", RETRY_START_S)
            kwargs.setdefault("interval_step", RETRY_STEP_S)
            kwargs.setdefault("interval_max", RETRY_MAX_S)
            return ensure(*args, **kwargs)

        conn.ensure_connection = quick
        return super().ensure_connected(conn)
