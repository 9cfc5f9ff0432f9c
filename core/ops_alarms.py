"""Beat's alarm round over the ops picture (core/ops.py): the facts a snapshot gives the alarm
checks (core/alarms.py), and the open alarms as /ops, the API and the CLI show them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core.alarms import SETTLED_OUTCOMES, AlarmStore, Facts, Notify, QueueFacts, Thresholds
from core.alarms import apply_alarms as _apply
from core.alarms import evaluate as _evaluate
from core.model import Lane
from core.ops import OpsSources, collect, iso


def waited_s(queue: Mapping[str, Any]) -> float | None:
    """How long a queue has had tasks waiting: since the alarm evaluator saw it fill, or the
    oldest task's own age when that is longer or nobody was evaluating (beat down, Redis
    back after an outage), so /metrics sees a stall beat cannot report."""
    known = [x for x in (queue.get("waiting_for_s"), queue.get("oldest_age_s")) if x is not None]
    return float(max(known)) if queue.get("depth") and known else None


def facts_from(snapshot: Mapping[str, Any]) -> Facts:
    """The alarm facts in a snapshot; sections that could not be read stay unknown."""
    now = float(snapshot["now"])
    queues = snapshot.get("queues")
    hosts = snapshot.get("push_hosts")
    workers = snapshot.get("workers")
    consumed_known = snapshot["redis"]["ok"]
    queue_facts = None
    if queues is not None and consumed_known:
        queue_facts = [
            QueueFacts(
                q["name"],
                int(q["depth"]),
                None if q["last_consumed_s_ago"] is None else now - q["last_consumed_s_ago"],
                None if (waited := waited_s(q)) is None else now - waited,
            )
            for q in queues
        ]
    breaking = None
    if queues is not None:
        rabbit = [q["consumers"] for q in queues if q["name"] == Lane.BREAKING.value]
        if rabbit and rabbit[0] is not None:
            breaking = int(rabbit[0])
        elif workers is not None:
            breaking = sum(1 for w in workers if Lane.BREAKING.value in w["queues"])
    return Facts(
        now=now,
        broker_ok=bool(snapshot["broker"]["ok"]),
        database_ok=bool(snapshot["database"]["ok"]),
        database_refuses=_refuses_fact(snapshot),
        queues=queue_facts,
        oldest_pending_s=snapshot.get("oldest_pending_s"),
        pending_known=bool(snapshot.get("pending_known")),
        settled_per_s=_settled_per_s(snapshot.get("delivery_rate")),
        breakers=None
        if hosts is None
        else {h["host"]: h["breaker"]["reason"] for h in hosts if h["breaker"]},
        breaking_consumers=breaking,
        broker_error=snapshot["broker"].get("error") or "",
        database_error=snapshot["database"].get("error") or "",
    )


def _refuses_fact(snapshot: Mapping[str, Any]) -> str | None:
    """The kind of refusal seen lately, "" for none, None when Redis could not be read."""
    refusing = snapshot["database"].get("refuses_writes")
    return None if refusing is None else refusing["reason"] or ""


def _settled_per_s(rate: Mapping[str, Any] | None) -> float | None:
    """Pushes delivered or answered gone a second over the rate window (None: Redis unread)."""
    if rate is None:
        return None
    settled = sum(int(rate["by_outcome"].get(name, 0)) for name in SETTLED_OUTCOMES)
    return round(settled / float(rate["window_s"]), 2)


def alarms_json(store: AlarmStore) -> list[dict[str, Any]]:
    return [
        {
            "key": key,
            "kind": r["kind"],
            "summary": r["summary"],
            "since": iso(float(r["since"])),
            "detail": r.get("detail") or {},
        }
        for key, r in sorted(store.alarms().items())
    ]


def evaluate_alarms(
    sources: OpsSources,
    store: AlarmStore,
    thresholds: Thresholds,
    notify: Notify | None,
    now: float,
) -> dict[str, Any]:
    """One alarm round: gather, judge, announce changes. Returns the snapshot with its alarms."""
    snapshot = collect(sources, now, track_waiting=True)
    active, unknown = _evaluate(facts_from(snapshot), thresholds)
    events = _apply(active, unknown, store, notify, now, thresholds.for_s)
    snapshot["alarms"] = [
        {
            "key": a.key,
            "kind": a.kind.value,
            "summary": a.summary,
            "detail": dict(a.detail),
        }
        for a in active.values()
    ]
    snapshot["alarm_events"] = events
    return snapshot
