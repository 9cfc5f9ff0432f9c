"""Corrections: which alert a correction replaces, the chain it belongs to, what changed.

Correcting twice corrects the latest correction: a correction's audience is whoever the alert it
corrects reached, and its words replace that alert's words on screen (same Topic and tag), so the
newest words are always what a reader's notification is corrected from.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from core.errors import Conflict, ValidationError
from core.model import Alert, AlertKind, AlertStatus

# Corrections that went (or are going) out; a called-off or failed one replaced nothing.
_LIVE = (AlertStatus.SCHEDULED, AlertStatus.QUEUED, AlertStatus.SENDING, AlertStatus.SENT)


@dataclass(frozen=True)
class Change:
    """One run of words in a before/after comparison: kept, removed or added."""

    kind: str  # "same", "del" or "ins"
    text: str


def word_diff(before: str, after: str) -> list[Change]:
    """Word-level differences, as an editor reads a correction ("Five" → "Four")."""
    a, b = before.split(), after.split()
    changes: list[Change] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op == "equal":
            changes.append(Change("same", " ".join(a[i1:i2])))
            continue
        if i2 > i1:
            changes.append(Change("del", " ".join(a[i1:i2])))
        if j2 > j1:
            changes.append(Change("ins", " ".join(b[j1:j2])))
    return changes


def latest_in_chain(
    alert: Alert, corrections_of: Callable[[int], Sequence[Alert]], limit: int = 100
) -> Alert:
    """The newest live correction below `alert` (following corrections of corrections)."""
    current = alert
    for _ in range(limit):
        live = [c for c in corrections_of(current.id) if c.status in _LIVE]
        if not live:
            return current
        current = max(live, key=lambda c: c.id)
    return current


def check_correctable(target: Alert) -> None:
    """Only words readers were sent can be corrected; a correction still in its undo window is
    undone, not corrected."""
    if target.kind is AlertKind.TEST:
        raise ValidationError("test sends cannot be corrected", "id")
    if target.status in (AlertStatus.SCHEDULED, AlertStatus.QUEUED) and target.corrects_id:
        raise Conflict(
            f"correction #{target.id} has not gone out yet: undo it, or correct it once it "
            "is sending",
            "status",
        )
    if target.status not in (AlertStatus.SENDING, AlertStatus.SENT):
        raise Conflict("only a sending or sent alert can be corrected", "status")


def chain_of(
    alert: Alert,
    get_alert: Callable[[int], Alert | None],
    corrections_of: Callable[[int], Sequence[Alert]],
    limit: int = 100,
) -> list[Alert]:
    """The original and every correction descended from it, oldest first (one alert: [it])."""
    root = alert
    for _ in range(limit):
        if root.corrects_id is None:
            break
        parent = get_alert(root.corrects_id)
        if parent is None:
            break
        root = parent
    found: dict[int, Alert] = {root.id: root}
    frontier = [root.id]
    while frontier and len(found) < limit:
        below = [c for parent_id in frontier for c in corrections_of(parent_id)]
        frontier = [c.id for c in below if c.id not in found]
        found.update({c.id: c for c in below})
    return sorted(found.values(), key=lambda a: a.id)
