"""Tasks a loop sends one after another (a plan's pages, the reconciler's and the retry
sweep's batches, scheduled alerts, released quiet-hours readers), sent so that a broker that
is down costs the loop one timeout, not one per task.

Each task stands for rows already committed, so a task not sent is never lost: the reconciler
sends it later. Before, every loop asked the broker again for every item and logged a
traceback each time: with a hung Redis broker (5 s a publish) the reconciler's 1,000 stale
batches would have taken 83 minutes, and a plan of 100 pages 8 minutes, past the task's time
limit, whose soft signal (an Exception, like the broker's errors) was swallowed too. Now, after
a failure, the broker is left alone for AWAY_S while the loop goes on; tasks arriving
meanwhile wait in order and go first once it takes one again; one warning says how many were
left for the reconciler. Only the port's QueueUnavailable is caught: anything else, a time
limit included, ends the loop as it should.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from functools import partial
from typing import Any

from core.model import Alert, Lane
from core.ports import QueueUnavailable

log = logging.getLogger("newsflash.delivery")

AWAY_S = 5.0  # after a failure, the broker is not asked again for this long


def lanes_of(get_alert: Callable[[int], Alert | None]) -> Callable[[int], Lane]:
    """The queue each alert's tasks go to, looked up once per alert for a loop's run (a loop
    sends many batches of one alert); an alert gone since goes routine."""
    found: dict[int, Lane] = {}

    def lane_of(alert_id: int) -> Lane:
        if alert_id not in found:
            alert = get_alert(alert_id)
            found[alert_id] = alert.lane if alert else Lane.ROUTINE
        return found[alert_id]

    return lane_of


class Outbox:
    def __init__(
        self,
        what: str,
        clock: Callable[[], float] = time.monotonic,
        away_s: float = AWAY_S,
    ) -> None:
        self.what = what  # "batches", "plans": named in the one warning
        self.clock = clock
        self.away_s = away_s
        self.sent = 0
        self._waiting: deque[Callable[[], None]] = deque()
        self._failed_at: float | None = None
        self._error = ""

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_rest: object) -> None:
        if exc_type is None:
            self.close()
        else:  # a time limit, the process ending: nothing more is asked of the broker
            self._waiting.clear()

    def put(self, send: Callable[..., None], *args: Any) -> None:
        """`send(*args)` now, or after the tasks already waiting; kept if the broker is away."""
        self._waiting.append(partial(send, *args))
        self._flush()

    def _flush(self) -> None:
        if self._failed_at is not None and self.clock() - self._failed_at < self.away_s:
            return
        while self._waiting:
            try:
                self._waiting[0]()
            except QueueUnavailable as exc:
                self._failed_at = self.clock()
                self._error = type(exc.__cause__ or exc).__name__
                return
            self._waiting.popleft()
            self.sent += 1
        self._failed_at = None

    def close(self) -> int:
        """Tries once more what waits (if the broker's pause is over); says what is left."""
        self._flush()
        left = len(self._waiting)
        if left:
            log.warning(
                "broker unavailable (%s); %s left for the reconciler: %d",
                self._error,
                self.what,
                left,
            )
        elif self._error:
            log.info("broker back; every one of the %s sent", self.what)
        self._waiting.clear()
        return left
