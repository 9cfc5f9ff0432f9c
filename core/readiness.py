"""The publish-readiness gate: an alert waits for its article to answer 2xx before the fan-out.

CMSs often fire the alert a moment before the article is live or cached, and a reader who taps
then lands on a 404. The gate holds the alert in `queued` (the plan task sends nothing while it
holds) and beat checks the article every few seconds, each check a bounded fetch; the alert goes
when the article answers 2xx, when the limit passes, or when an editor chooses "Send anyway".
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from core.errors import ValidationError

FIELD = "wait_for_article"
CHECK_EVERY_S = 2.0


class GateState(enum.StrEnum):
    WAITING = "waiting"
    LIVE = "live"  # the article answered 2xx
    TIMED_OUT = "timed-out"  # the limit passed: sent anyway
    SENT_ANYWAY = "sent-anyway"  # an editor chose not to wait


@dataclass(frozen=True)
class Gate:
    alert_id: int
    state: GateState
    created_at: float
    started_at: float | None = None
    checks: int = 0
    last_answer: str | None = None
    released_at: float | None = None
    released_by: str | None = None

    def deadline(self, wait_s: float) -> float | None:
        return None if self.started_at is None else self.started_at + wait_s


def wants_wait(body: object) -> bool:
    """The per-alert switch: `"wait_for_article": false` sends without waiting."""
    if not isinstance(body, Mapping):
        return True
    value = body.get(FIELD)
    if value is None:
        return True
    if not isinstance(value, bool):
        raise ValidationError(f"{FIELD} must be true or false", FIELD)
    return value


def answer_words(status: int | None, error: str | None = None) -> str:
    if error is not None:
        return error
    return f"HTTP {status}"
