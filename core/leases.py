"""Batch leases: one live worker sends a batch, and a dead one's batch is taken over in seconds.

A worker claims a batch with a conditional update that names it the owner (`owner`) and starts
a short lease (`heartbeat_at`). While it sends, a thread renews the lease every quarter of its
length, again only where it is still the owner. The lease is lost when a renewal finds another
owner (the batch was taken over) or when no renewal has succeeded for three quarters of the
lease (the database did not answer: from the lease's end on anyone may take it); the sender then
stops before its next request. Both count from when the claim or renewal was *asked*: the lease
it writes runs from the time it carries, so one the database held for long (frozen, behind a
lock) may return already lapsed. A batch whose lease ran out (a SIGKILLed worker renews nothing)
is put back in the queue by beat's sweep, run every quarter of the lease, or claimed directly by
a redelivered task. So a killed batch is resumed within about a lease and a quarter, and two live
workers never send the same batch: only what the dead one had on the wire can arrive twice.

Clocks: the lease compares times written by different workers, so their clocks must agree to
well under a quarter of the lease (NTP does).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import Protocol

from core.model import Batch

log = logging.getLogger("newsflash.delivery")


class BatchLeases(Protocol):
    """Claim, renew and finish a batch, each only as its owner; find leases that ran out."""

    def claim(self, batch_id: int, owner: str, now: float, lease_s: float) -> Batch | None:
        """Owner of a queued batch, or of a sending one whose lease ran out; else None."""
        ...

    def renew(self, batch_id: int, owner: str, now: float) -> bool:
        """Extend the lease; False once the batch is no longer ours (taken over, reset)."""
        ...

    def finish(self, batch_id: int, owner: str, alert_id: int, cancelled: bool, now: float) -> bool:
        """Close the batch and count it done on its alert, only while we own it."""
        ...

    def expired(self, now: float, lease_s: float, limit: int) -> list[tuple[int, int]]:
        """Put sending batches whose lease ran out back to queued: (batch id, alert id)."""
        ...

    def unqueued(self, limit: int) -> tuple[list[tuple[int, int]], list[int]]:
        """What the broker should be holding: queued batches of sending alerts (batch id,
        alert id), and alerts waiting to be planned."""
        ...

    def stalled_plans(self, now: float, after_s: float, limit: int) -> list[int]:
        """Queued alerts whose planning has not started for `after_s` (marked as just seen)."""
        ...


def new_owner() -> str:
    """Who holds a claim: host, process and a nonce (a later claim by the same process is a
    different owner, so a stale renewal can never extend it)."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


class Lease:
    """Renews a claimed batch's lease on its own thread while the sender works."""

    def __init__(
        self,
        leases: BatchLeases,
        batch_id: int,
        owner: str,
        lease_s: float,
        clock: Callable[[], float],
        claimed_at: float | None = None,
    ) -> None:
        self.leases, self._batch_id, self._owner = leases, batch_id, owner
        self._clock = clock
        self.every_s = lease_s / 4
        # Stop sending a quarter of a lease before anyone else may take the batch over.
        self._hold_s = lease_s - self.every_s
        # How long since the last renewal is judged on this process's monotonic clock (a wall
        # clock step must not stretch the hold); the time written is the injected clock's.
        # The claim counts from when it was asked (`claimed_at`, monotonic), not from when it
        # returned: the lease it wrote runs from the time it carried, and a claim the database
        # held for longer than the lease (frozen, a lock) returned a lease already lapsed,
        # which another worker may already be taking over.
        self._renewed_at = time.monotonic() if claimed_at is None else claimed_at
        self._lost = False
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="batch-lease", daemon=True)
        self._thread.start()

    def held(self) -> bool:
        """Cheap enough to ask before every request."""
        if not self._lost and time.monotonic() - self._renewed_at >= self._hold_s:
            self._lose("not renewed in time")
        return not self._lost

    @property
    def lost(self) -> bool:
        return self._lost

    def _lose(self, why: str) -> None:
        if not self._lost:
            self._lost = True
            log.warning("batch lease lost", extra={"batch_id": self._batch_id, "why": why})

    def _run(self) -> None:
        while not self._done.wait(self.every_s):
            asked_at, now = time.monotonic(), self._clock()
            try:
                mine = self.leases.renew(self._batch_id, self._owner, now)
            except Exception:
                log.warning("batch lease renewal failed", extra={"batch_id": self._batch_id})
                continue
            if not mine:
                self._lose("taken over")
                return
            if not self._lost:
                self._renewed_at = asked_at

    def stop(self) -> None:
        self._done.set()
        self._thread.join()


class _LegacyBatchStore(Protocol):
    def claim_batch(self, batch_id: int, now: float, stale_after_s: float) -> Batch | None: ...
    def heartbeat(self, batch_id: int, now: float) -> None: ...
    def finish_batch(
        self, batch_id: int, alert_id: int, missing: int, cancelled: bool, now: float
    ) -> None: ...


class StoreLeases:
    """The lease rules over a store that knows no owner (unit fakes): a claim is a heartbeat
    claim and a renewal always holds. Production passes SqlBatchLeases."""

    def __init__(self, store: _LegacyBatchStore) -> None:
        self.store = store

    def claim(self, batch_id: int, owner: str, now: float, lease_s: float) -> Batch | None:
        return self.store.claim_batch(batch_id, now, lease_s)

    def renew(self, batch_id: int, owner: str, now: float) -> bool:
        self.store.heartbeat(batch_id, now)
        return True

    def finish(self, batch_id: int, owner: str, alert_id: int, cancelled: bool, now: float) -> bool:
        self.store.finish_batch(batch_id, alert_id, 0, cancelled, now)
        return True

    def expired(self, now: float, lease_s: float, limit: int) -> list[tuple[int, int]]:
        return []

    def unqueued(self, limit: int) -> tuple[list[tuple[int, int]], list[int]]:
        return [], []

    def stalled_plans(self, now: float, after_s: float, limit: int) -> list[int]:
        return []
