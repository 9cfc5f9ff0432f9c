"""A push service's 400/401/403: is it about our request, or about one subscription?

Our request is wrong (a VAPID key the service no longer accepts, a subject it refuses): then every
push to that service is refused, and the breaker must hold the host for every worker instead of
spending the audience on refusals. But a service also answers 403 to one subscription made with
another site's VAPID key (RFC 8292 §4.2; FCM and Mozilla do), and anyone can post such a
subscription to us: if one refusal held the host, one outsider's subscription would stop alerts to
every reader on FCM, again at each of its retries.

So the host decides. A refused reader is asked again once, SETTLE_S or more later; refused again
while the host delivered for any worker within PROOF_S, the refusal is that reader's: failed.
A refusal is about our request when the host has delivered nothing since refusals began, for
SETTLE_S or more (a key or subject refused from the start, or a clock gone wrong mid-send:
there the readers refused in the last minute of deliveries are failed, the rest are held).
The first refusals of a wrong key wait as retries, the rest are held by the breaker; nothing is
ever deleted on a refusal.

Each worker process keeps its own view, with every worker's latest delivery to the host from the
shared host state (about a second late; the breaker it opens is shared too, core/adapters/hosts.py).
The cost on the send path is one dict store per delivered answer.
"""

from __future__ import annotations

import enum

from core.ports import HostHealth, PushResult

# Refusals with no delivery in between, this long: our request is what is refused.
SETTLE_S = 2.0
# A run of refusals older than this is forgotten (the next one starts a new run), and a host
# that delivered within it has accepted our signature recently.
PROOF_S = 60.0
# Tries a refused reader may spend while its push service's verdict is pending.
PENDING_TRIES = 4


class Verdict(enum.Enum):
    HOST = "host"  # our request is refused: open the breaker, keep the reader for later
    READER = "reader"  # this subscription is refused while others are delivered: fail it
    PENDING = "pending"  # not known yet: try this reader again after the usual back-off

    def counted(self, attempt: int, max_attempts: int) -> tuple[int, int]:
        """The reader's attempt as the ledger counts it, and the count at which it fails.

        A try refused for our request is not the reader's (like a push held by a breaker, it
        does not count), and the tries made while the verdict was pending get PENDING_TRIES
        more (each worker process judges on its own, so a reader's retries may land in several
        before one sees SETTLE_S of refusals). So a wrong key costs no reader: they wait for
        the breaker, and fail when the alert's TTL runs out or after RETRY_MAX_ATTEMPTS +
        PENDING_TRIES tries of their own (about one per breaker period)."""
        return (attempt - 1 if self is Verdict.HOST else attempt), max_attempts + PENDING_TRIES


class RejectionJudge:
    """Per worker process: when each push host last delivered, and since when it refuses."""

    def __init__(self) -> None:
        self._delivered: dict[str, float] = {}  # host -> last 2xx answer
        self._refusing: dict[str, float] = {}  # host -> first refusal since the last 2xx

    def delivered(self, host: str, now: float) -> None:
        self._delivered[host] = now

    def verdict(self, host: str, now: float, attempt: int) -> Verdict:
        """Judge a 400/401/403 answered to a reader's `attempt`-th try (counting from 1)."""
        delivered = self._delivered.get(host)
        since = self._refusing.get(host)
        if since is None or (delivered is not None and delivered >= since) or now - since > PROOF_S:
            since = self._refusing[host] = now
        if attempt > 1 and delivered is not None and now - delivered <= PROOF_S:
            # Asked again, and the host delivered for someone (any worker) this minute: this
            # reader's subscription is refused, whatever else is going on.
            return Verdict.READER
        if now - since >= SETTLE_S:
            return Verdict.HOST
        return Verdict.PENDING

    def refused(
        self,
        hosts: HostHealth,
        result: PushResult,
        attempt: int,
        now: float,
        breaker_open_s: float,
    ) -> Verdict:
        """Judge a refusal; when it is our request's, the breaker holds the host for everyone.

        Another worker's deliveries count as proof too: a process that has not pushed to the
        host lately (a retry batch of refused readers only) must not take a lone refusal for
        ours."""
        shared = hosts.last_delivered(result.host)
        if shared is not None and shared > self._delivered.get(result.host, 0.0):
            self._delivered[result.host] = shared
        verdict = self.verdict(result.host, now, attempt)
        if verdict is Verdict.HOST:
            hosts.open_breaker(result.host, now + breaker_open_s, f"HTTP {result.status}")
        return verdict
