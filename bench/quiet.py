"""`bench fanout --quiet-share P`: a share of the readers in their quiet hours during the run.

Each repeat then publishes two alerts in turn: a breaking one (urgency high: everyone, the
planner's plain audience page, as before quiet hours existed) and a routine one (urgency normal:
the audience page that holds the readers in quiet hours). Both are timed and their worker CPU is
divided by the pushes the sink received, so the two costs per delivered push compare in one
session on one machine.
"""

from __future__ import annotations

import statistics
from typing import Any

WINDOW_MIN = 180  # quiet from 3 h before the run to 3 h after it: nobody is released meanwhile


def mark_quiet(engine: Any, share: float, now: float) -> int:
    """Give quiet hours around `now` (UTC) to every reader whose id falls in the first `share`
    of each hundred; returns how many readers are now in their quiet hours."""
    from sqlalchemy import func, select, update

    from core.adapters import tables as t

    s = t.subscriptions
    minute = int(now // 60) % 1440
    start, end = (minute - WINDOW_MIN) % 1440, (minute + WINDOW_MIN) % 1440
    chosen = s.c.id % 100 < round(share * 100)
    with engine.begin() as conn:
        conn.execute(
            update(s)
            .where(chosen)
            .values(
                quiet_start=start,
                quiet_end=end,
                quiet_zone="UTC",
                tz_offset_min=0,
                quiet_start_utc=start,
                quiet_end_utc=end,
            )
        )
        return int(conn.execute(select(func.count()).where(chosen)).scalar_one())


def alerts(quiet: int) -> list[tuple[str, dict[str, Any], int]]:
    """(kind, publish fields, readers held) for one repeat."""
    if not quiet:
        return [("breaking", {}, 0)]
    return [("breaking", {"urgency": "high"}, 0), ("routine", {"urgency": "normal"}, quiet)]


def summarise(runs: list[dict[str, Any]], quiet: int) -> dict[str, Any] | None:
    """Median worker CPU per delivered push, breaking (everyone) against routine (with holds)."""
    if not quiet:
        return None

    def med(kind: str) -> float | None:
        values = [r["worker_cpu_us_per_pushed"] for r in runs if r.get("kind") == kind]
        return round(statistics.median(values), 1) if values else None

    breaking, routine = med("breaking"), med("routine")
    return {
        "readers_in_quiet_hours": quiet,
        "worker_cpu_us_per_pushed_breaking": breaking,
        "worker_cpu_us_per_pushed_routine_with_holds": routine,
        "ratio_routine_to_breaking": round(routine / breaking, 3) if breaking and routine else None,
    }
