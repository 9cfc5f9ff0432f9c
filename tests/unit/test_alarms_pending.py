"""Late deliveries page when readers are not getting the story: deliveries wait while sends have
stopped or crawl, or past the ceiling; a send that keeps its pace pages nobody, however big."""

from __future__ import annotations

from typing import Any

import pytest

from core.alarms import AlarmKind, Facts, Thresholds, evaluate
from core.ops import RATE_WINDOW_S
from core.ops_alarms import facts_from

NOW = 1_000_000.0
# The defaults: 120 s, at most 200 settled a second, a 1800 s ceiling.
T = Thresholds()


def _judged(age_s: float | None, settled_per_s: float | None) -> tuple[str | None, bool]:
    """The pending alarm's summary (None: quiet) and whether the facts left it unknown."""
    facts = Facts(
        now=NOW,
        broker_ok=True,
        database_ok=True,
        oldest_pending_s=age_s,
        pending_known=True,
        settled_per_s=settled_per_s,
    )
    active, unknown = evaluate(facts, T)
    alarm = active.get(AlarmKind.PENDING_TOO_OLD.value)
    return (alarm.summary if alarm else None), AlarmKind.PENDING_TOO_OLD in unknown


@pytest.mark.parametrize(
    ("age_s", "settled_per_s", "fires"),
    [
        (119.0, 0.0, False),  # not old enough yet, even with nothing moving
        (120.0, 0.0, True),  # stopped
        (300.0, 150.0, True),  # crawling
        (300.0, 200.0, True),  # at the floor
        (300.0, 200.5, False),
        # The false page: a million readers at this machine's pace take over 4 minutes.
        (255.0, 3900.0, False),
        (1799.0, 3900.0, False),
        (1800.0, 3900.0, True),  # past the ceiling whatever the pace
        (None, 0.0, False),  # nothing pending
    ],
)
def test_old_pending_deliveries_page_only_while_sends_do_not_move(
    age_s: float | None, settled_per_s: float, fires: bool
) -> None:
    summary, unknown = _judged(age_s, settled_per_s)
    assert (summary is not None) == fires, summary
    assert not unknown


def test_each_reason_says_what_is_wrong() -> None:
    assert _judged(150.0, 0.0)[0] == (
        "Deliveries have stopped: the oldest pending one has waited 150 s and none was "
        "delivered in the last minute."
    )
    assert _judged(150.0, 12.5)[0] == (
        "Deliveries crawl: the oldest pending one has waited 150 s and only 12.5 a second were "
        "delivered or found gone in the last minute (alarm at 200 or fewer)."
    )
    assert _judged(1900.0, 3900.0)[0] == (
        "The oldest pending delivery has waited 1900 s, past the 1800 s ceiling."
    )


def test_an_unknown_pace_keeps_the_alarm_as_it_was_until_the_ceiling() -> None:
    """Redis unread (no delivery rate): an open alarm stays open, none opens; past the ceiling
    the pace does not matter."""
    assert _judged(300.0, None) == (None, True)
    assert _judged(60.0, None) == (None, False)
    assert _judged(1800.0, None)[0] is not None


def test_a_min_rate_of_zero_pages_only_when_nothing_moves() -> None:
    facts = Facts(NOW, True, True, oldest_pending_s=300.0, pending_known=True, settled_per_s=0.02)
    assert evaluate(facts, Thresholds(min_rate_per_s=0))[0] == {}
    stopped = Facts(NOW, True, True, oldest_pending_s=300.0, pending_known=True, settled_per_s=0)
    assert set(evaluate(stopped, Thresholds(min_rate_per_s=0))[0]) == {"pending_too_old"}


def _snapshot(rate: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "now": NOW,
        "broker": {"ok": True},
        "database": {"ok": True},
        "redis": {"ok": rate is not None},
        "queues": [],
        "oldest_pending_s": 300.0,
        "pending_known": True,
        "delivery_rate": rate,
    }


def test_the_pace_is_pushes_delivered_or_gone_over_the_rate_window() -> None:
    """Retries leave the delivery pending and failures reach nobody: neither moves a send."""
    by_outcome = {"delivered": 9000, "gone": 3000, "retry": 50_000, "failed": 40_000}
    rate = {"window_s": RATE_WINDOW_S, "by_outcome": by_outcome}
    facts = facts_from(_snapshot(rate))
    assert facts.settled_per_s == 12_000 / RATE_WINDOW_S == 200.0
    assert set(evaluate(facts, T)[0]) == {"pending_too_old"}  # at the floor
    facts = facts_from(_snapshot({**rate, "by_outcome": {**by_outcome, "gone": 3001}}))
    assert evaluate(facts, T)[0] == {}
    assert facts_from(_snapshot(None)).settled_per_s is None
