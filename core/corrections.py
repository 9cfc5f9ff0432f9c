"""Corrections: which alert a correction replaces, the chain it belongs to, what changed, and
who it is addressed to.

Correcting twice corrects the latest correction: a correction's audience is whoever the alert it
corrects reached, and its words replace that alert's words on screen (same Topic and tag), so the
newest words are always what a reader's notification is corrected from.

A correction of an alert still sending takes it over: the moment the correction is released
(stored ready to send, or its undo window ends), the alert it corrects stops, in the same
transaction (`stops_on_release`); the correction's planner then waits for that alert's pushes
already on their way (core/delivery.py) and goes to everyone it was meant for, reached yet or not
(`addressed`). Otherwise a reader the alert reached later, or whose push was still waiting for a
retry or their quiet hours, would end with the old words; and stopping it only once the
correction's plan task ran would let it push the old words for as long as that task waited in
the queue (behind the alert's own batches).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from core.errors import Conflict, ValidationError
from core.model import Alert, AlertDraft, AlertKind, AlertStatus, LedgerStatus

# Corrections that went (or are going) out; a called-off or failed one replaced nothing.
_LIVE = (AlertStatus.SCHEDULED, AlertStatus.QUEUED, AlertStatus.SENDING, AlertStatus.SENT)
# What a correction stops when it is released: the alert it corrects, if still going out.
STOPPABLE = (AlertStatus.QUEUED, AlertStatus.SENDING)
# A finished alert's readers its correction does not go to: gone, or never pushed the alert at
# all (held past its TTL, or over their daily cap): a correction at night for an alert they
# never saw would only puzzle them.
NOT_CORRECTED = (LedgerStatus.GONE, LedgerStatus.EXPIRED, LedgerStatus.CAPPED)


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


def stops_on_release(draft: AlertDraft | Alert) -> int | None:
    """The alert a correction stops when it is released: the one it corrects (the store stops
    it only if still `STOPPABLE`); None for any other alert. A correction stored ready to send
    stops it in the transaction that stores it (core/alerts.py `publish`); one waiting out its
    undo window, in the one that releases it (RecoveryStore.due_scheduled)."""
    if draft.kind is not AlertKind.CORRECTION:
        return None
    return draft.corrects_id


def takes_over(target: Alert | None) -> bool:
    """Whether a correction stops `target` (the alert it corrects): it is still going out, so
    its readers not reached yet get the correction instead. Its release normally stopped it
    already; its planner stops it too if not (one released before that rule)."""
    return target is not None and target.kind is not AlertKind.TEST and target.status in STOPPABLE


def addressed(
    correction: Alert,
    get_alert: Callable[[int], Alert | None],
    pruned: Callable[[int], bool],
    limit: int = 100,
) -> Alert:
    """The correction as the planner walks its audience (only `kind` and `corrects_id` change).

    - The alert it corrects went out in full (sent, failed): whoever that alert's ledger holds
      (kind CORRECTION, as stored).
    - Its ledger was pruned (core/retention.py): the current audience of its topics.
    - It was stopped (this correction took it over, or it was called off meanwhile): everyone
      it was meant for, its topics' readers or its story's followers, as it would have reached
      them (quiet hours, caps), plus whoever it reached, who get the correction at once. Such
      a correction is planned with the kind of the audience (NORMAL or UPDATE) and
      `corrects_id` naming the alert whose reached readers are added (`adds_reached`); a stopped
      correction passes on its own audience.
    """
    current = correction
    for _ in range(limit):
        if current.kind is not AlertKind.CORRECTION or current.corrects_id is None:
            break
        target = get_alert(current.corrects_id)
        if target is None or pruned(target.id):
            return replace(current, kind=AlertKind.NORMAL)
        if target.status is not AlertStatus.CANCELLED:
            return current
        if target.kind is AlertKind.CORRECTION and target.corrects_id is not None:
            # A stopped correction was itself addressed from its own target: so is this one.
            current = replace(current, corrects_id=target.corrects_id)
            continue
        kind = AlertKind.UPDATE if target.kind is AlertKind.UPDATE else AlertKind.NORMAL
        return replace(current, kind=kind)
    return current


def adds_reached(alert: Alert) -> int | None:
    """For a correction planned by its audience (`addressed`), the alert whose reached readers
    it also goes to, at once whatever their quiet hours or caps; else None."""
    if alert.kind is AlertKind.CORRECTION or alert.corrects_id is None:
        return None
    return alert.corrects_id


def stopped_by(alert: Alert, chain: Sequence[Alert]) -> Alert | None:
    """The correction that took `alert` over (stopped it when it was released), from the
    alert's chain (`chain_of`); None if it finished, or an editor stopped it before."""
    if alert.status is not AlertStatus.CANCELLED or alert.cancelled_at is None:
        return None
    for c in chain:
        # Released when queued (at once, or when its undo window ended): the stop comes then.
        released = c.queued_at if c.queued_at is not None else c.started_at
        if c.corrects_id == alert.id and released is not None and alert.cancelled_at >= released:
            return c
    return None
