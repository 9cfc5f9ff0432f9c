"""The sender's name lookups: one per push host at a time, kept for a minute, shared by every
connection the process opens to that host.

Connections to a push service open while its window grows (hundreds to FCM in a big send), and
each used to resolve the name again, in the event loop's default executor (a few threads):
with a resolver answering in 1 s, a 2,000-push batch to one host asked 102 times, took 16 s,
and 104 pushes ran past their deadline waiting for an address (tests/integration/
test_resolver.py). Names resolve once per FRESH_S now, concurrent connects wait on the same
lookup, a lookup is given up after LOOKUP_TIMEOUT_S, and a lookup that fails while the last
answer is younger than STALE_S keeps the last answer (a resolver restarting, an outage of the
DNS server) instead of failing every new connection. A failure is remembered for FAILED_S so
a dead resolver is not asked for every push. Every address, fresh or kept, still passes the
address rules before any connection (http11.connect).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Final

log = logging.getLogger(__name__)

FRESH_S: Final = 60.0
LOOKUP_TIMEOUT_S: Final = 5.0
STALE_S: Final = 3600.0
FAILED_S: Final = 5.0

Key = tuple[str, int]


class Unresolved(OSError):
    """The lookup failed or did not answer in time (a name with no address is an empty answer,
    which the address rules refuse)."""


class Resolver:
    """Lookups for one event loop's connections (not thread-safe: the loop's own)."""

    def __init__(
        self,
        lookup: Callable[[str, int], Sequence[str]],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.lookup = lookup
        self.clock = clock
        self._found: dict[Key, tuple[list[str], float]] = {}
        self._failed: dict[Key, tuple[str, float]] = {}
        self._pending: dict[Key, asyncio.Future[list[str]]] = {}
        self._asking: set[asyncio.Task[None]] = set()

    async def addresses(self, host: str, port: int) -> list[str]:
        key, now = (host, port), self.clock()
        found = self._found.get(key)
        if found is not None and now - found[1] < FRESH_S:
            return found[0]
        failed = self._failed.get(key)
        if failed is not None and now - failed[1] < FAILED_S:
            return self._kept(key, failed[0])
        pending = self._pending.get(key)
        loop = asyncio.get_running_loop()
        if pending is None or pending.get_loop() is not loop:  # a new loop after a fork
            pending = self._pending[key] = loop.create_future()
            # Read even when every connect waiting on it has given up (no "never retrieved").
            pending.add_done_callback(lambda f: f.cancelled() or f.exception())
            task = loop.create_task(self._ask(key, pending))
            self._asking.add(task)  # held until done: the loop keeps only a weak reference
            task.add_done_callback(self._asking.discard)
        return await asyncio.shield(pending)

    async def _ask(self, key: Key, answer: asyncio.Future[list[str]]) -> None:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(LOOKUP_TIMEOUT_S):
                found = list(await loop.run_in_executor(None, self.lookup, *key))
        except asyncio.CancelledError:
            answer.cancel()
            raise
        except Exception as exc:  # gaierror, a lookup given up: the port's failures alike
            why = "did not answer in time" if isinstance(exc, TimeoutError) else "did not resolve"
            self._failed[key] = (why, self.clock())
            try:
                kept = self._kept(key, why)
            except Unresolved as unresolved:
                answer.set_exception(unresolved)
            else:
                log.warning("name lookup failed; using its last answer", extra={"host": key[0]})
                answer.set_result(kept)
        else:
            self._found[key] = (found, self.clock())
            self._failed.pop(key, None)
            answer.set_result(found)
        finally:
            if self._pending.get(key) is answer:
                del self._pending[key]

    def _kept(self, key: Key, why: str) -> list[str]:
        """The last answer while it is younger than STALE_S; else Unresolved."""
        found = self._found.get(key)
        if found is None or self.clock() - found[1] >= STALE_S:
            raise Unresolved(f"{key[0]} {why}")
        return found[0]
