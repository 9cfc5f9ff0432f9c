"""Freshest first: the order the planner walks an alert's audience in, and its cursor.

A topic alert's audience is walked from the most recently seen reader down (subscriptions'
last_seen_at, then id, both descending), so the readers most likely to be alive get the alert
first. last_seen_at only ever moves up, to the time of a subscribe, resubscribe or topic change;
the walk covers the readers seen before the alert started planning (T0), so a reader below the
cursor either stays below it or jumps to "now", out of the walk's region. A final sweep then
plans, in id order, the readers seen since T0 (less a margin) whom no batch or ledger row of the
alert holds yet. Corrections, test sends and story updates keep the plain id order.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.model import Alert, AlertKind

SWEEP = -1.0  # the cursor's `seen` during the final sweep (last_seen_at is never negative)
# The sweep also looks at readers seen shortly before T0: a resubscribe reads the clock before
# its transaction commits, and hosts' clocks differ a little, so a reader the walk passed while
# its bump was in flight may carry a time just before T0. Re-examining them costs a lookup; the
# ones already planned are left out.
SWEEP_MARGIN_S = 300.0


@dataclass(frozen=True)
class Cursor:
    """Where an alert's planning stands: the last reader planned (or examined).

    `seen` None: id order (or nothing planned yet); SWEEP: the final sweep, in id order; any
    other value: the freshest-first walk, at (seen, id)."""

    id: int = 0
    seen: float | None = None

    @property
    def sweeping(self) -> bool:
        return self.seen == SWEEP

    @property
    def walking(self) -> bool:
        return self.seen is not None and not self.sweeping


def walks_freshest_first(alert: Alert) -> bool:
    """Alerts addressed by topics; corrections, tests and story updates keep id order."""
    return alert.kind in (AlertKind.NORMAL, AlertKind.STORY)


def planning_start(alert: Alert) -> float:
    """T0: the alert's planning start (kept across resumes)."""
    return alert.started_at if alert.started_at is not None else alert.created_at


def sweep_since(alert: Alert) -> float:
    return planning_start(alert) - SWEEP_MARGIN_S


def resume_at(alert: Alert, stored: Cursor, freshest_first: bool) -> Cursor:
    """The cursor this run continues from. Once planning has begun its order stays (the
    setting may change between a crash and the resume); a fresh start walks from T0 down."""
    if stored != Cursor() or not freshest_first:
        return stored
    return Cursor(0, planning_start(alert))
