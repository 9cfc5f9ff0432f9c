"""Push-service answers become one small set of outcomes, decided here and nowhere else."""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

from core.inputs import whole_number
from core.ports import PushResult


class Outcome(enum.StrEnum):
    DELIVERED = "delivered"
    GONE = "gone"  # 404/410: the subscription no longer exists; delete it, never retry
    RETRY = "retry"  # throttled, 5xx, network trouble: try again later
    REJECTED = "rejected"  # 400/401/403: our request is wrong; keep the subscription, alarm
    FAILED = "failed"  # gave up, or 413 (our bug): recorded, never deleted


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    retry_after_s: float | None = None  # from the push service (429, 406)
    hold_host: bool = False  # the backoff applies to the whole host, not just this subscription
    open_breaker: bool = False
    answer: str = "other"  # a metrics label: 2xx, 404/410, 429, 5xx, 4xx, timeout, error


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Retry-After as delta-seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    seconds = whole_number(value, 12)
    if seconds is not None:
        return float(min(seconds, 7 * 24 * 3600))
    try:
        when = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return max(0.0, when - now)


def _wait_asked(result: PushResult, now: float) -> float | None:
    """Retry-After as a wait; None when it asks for none: "0", or a date already past (clocks
    differ) would have every attempt of a 5xx storm spent within seconds, so backoff applies."""
    wait = parse_retry_after(result.retry_after, now)
    return wait if wait else None


def classify(result: PushResult, now: float) -> Decision:
    status = result.status
    if status is None:
        if result.error == "blocked":
            return Decision(Outcome.RETRY, answer="held")
        if result.error in {"refused_address", "too_large", "invalid"}:
            # The endpoint resolves somewhere we never connect to, or the payload is our bug.
            return Decision(Outcome.FAILED, answer="error")
        kind = "timeout" if result.error == "timeout" else "error"
        return Decision(Outcome.RETRY, answer=kind)
    if 200 <= status < 300:
        return Decision(Outcome.DELIVERED, answer="2xx")
    if status in (404, 410):
        return Decision(Outcome.GONE, answer="404/410")
    if status == 429 or (status == 406 and result.retry_after):
        # Windows' push service says 406 with Retry-After when throttling.
        return Decision(
            Outcome.RETRY, retry_after_s=_wait_asked(result, now), hold_host=True, answer="429"
        )
    if status == 413:
        return Decision(Outcome.FAILED, answer="4xx")
    if status in (400, 401, 403):
        # Never delete on these: a wrong VAPID key or subject must not wipe the audience.
        return Decision(Outcome.REJECTED, open_breaker=True, answer="4xx")
    if status >= 500:
        return Decision(Outcome.RETRY, retry_after_s=_wait_asked(result, now), answer="5xx")
    if 300 <= status < 400:
        # Redirects are never followed; a push service does not send them.
        return Decision(Outcome.FAILED, answer="3xx")
    return Decision(Outcome.FAILED, answer="4xx")


def backoff_s(attempt: int, base_s: float, cap_s: float, rng: random.Random | None = None) -> float:
    """Exponential backoff with full jitter, never below half the step (attempt counts from 1)."""
    step = min(cap_s, base_s * 2.0 ** max(0, attempt - 1))
    r = float((rng or random).random())
    return step / 2 + r * step / 2
