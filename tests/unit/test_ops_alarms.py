"""Alarm rules and their announcements, on the in-memory store (the port boundary)."""

from __future__ import annotations

from typing import Any

from core.alarms import (
    AlarmKind,
    Facts,
    MemoryAlarmStore,
    QueueFacts,
    Thresholds,
    apply_alarms,
    evaluate,
)

NOW = 1_000_000.0
T = Thresholds(stall_s=60, pending_s=120, for_s=10)


def facts(**changes: Any) -> Facts:
    base: dict[str, Any] = {
        "now": NOW,
        "broker_ok": True,
        "database_ok": True,
        "queues": [QueueFacts("newsflash.breaking", 0, None, None)],
        "oldest_pending_s": None,
        "pending_known": True,
        "settled_per_s": 0.0,  # nothing delivered: old pending deliveries page
        "breakers": {},
        "breaking_consumers": 1,
        "database_refuses": "",
    }
    base.update(changes)
    return Facts(**base)


def keys(f: Facts) -> set[str]:
    return set(evaluate(f, T)[0])


def test_all_is_quiet_when_everything_flows() -> None:
    assert evaluate(facts(), T) == ({}, set())


def test_a_queue_stalls_only_when_tasks_wait_and_none_was_taken_for_the_threshold() -> None:
    q = "newsflash.routine"
    waiting_long_taken_recently = QueueFacts(q, 5, NOW - 10, NOW - 300)
    waiting_long_nothing_taken = QueueFacts(q, 5, NOW - 3600, NOW - 61)
    just_arrived_after_idle = QueueFacts(q, 1, NOW - 3600, NOW - 2)
    empty = QueueFacts(q, 0, NOW - 3600, None)
    assert keys(facts(queues=[waiting_long_taken_recently])) == set()
    assert keys(facts(queues=[waiting_long_nothing_taken])) == {f"queue_stalled:{q}"}
    assert keys(facts(queues=[just_arrived_after_idle])) == set()
    assert keys(facts(queues=[empty])) == set()


def test_each_condition_has_its_alarm() -> None:
    assert keys(facts(oldest_pending_s=119.0)) == set()
    assert keys(facts(oldest_pending_s=120.0)) == {"pending_too_old"}
    assert keys(facts(breakers={"fcm.googleapis.com": "HTTP 401"})) == {
        "breaker_open:fcm.googleapis.com"
    }
    assert keys(facts(breaking_consumers=0)) == {"breaking_lane_unattended"}
    assert keys(facts(broker_ok=False)) == {"broker_unreachable"}
    assert keys(facts(database_ok=False)) == {"database_unreachable"}
    for reason, words in (("disk", "its disk is full"), ("read_only", "it is read-only")):
        alarm = evaluate(facts(database_refuses=reason), T)[0]["database_refuses_writes"]
        assert words in alarm.summary and alarm.detail == {"reason": reason}


def test_facts_that_could_not_be_read_are_unknown_not_clear() -> None:
    active, unknown = evaluate(
        facts(
            queues=None,
            breakers=None,
            breaking_consumers=None,
            pending_known=False,
            database_refuses=None,
        ),
        T,
    )
    assert active == {}
    assert unknown == {
        AlarmKind.DATABASE_REFUSES_WRITES,
        AlarmKind.QUEUE_STALLED,
        AlarmKind.BREAKER_OPEN,
        AlarmKind.BREAKING_UNATTENDED,
        AlarmKind.PENDING_TOO_OLD,
    }


def test_instant_checks_fire_only_after_holding_and_clear_with_one_notice() -> None:
    store = MemoryAlarmStore()
    sent: list[dict[str, Any]] = []

    def notify(event: dict[str, Any]) -> bool:
        sent.append(event)
        return True

    down = facts(breaking_consumers=0)
    for t in (NOW, NOW + 5):
        apply_alarms(*evaluate(down, T), store, notify, t, T.for_s)
    assert sent == [], "a five-second gap must not page anyone"
    apply_alarms(*evaluate(down, T), store, notify, NOW + 10, T.for_s)
    apply_alarms(*evaluate(down, T), store, notify, NOW + 11, T.for_s)
    assert [(e["alarm"], e["status"]) for e in sent] == [("breaking_lane_unattended", "firing")]

    apply_alarms(*evaluate(facts(), T), store, notify, NOW + 40, T.for_s)
    assert [(e["alarm"], e["status"]) for e in sent][-1] == ("breaking_lane_unattended", "resolved")
    assert sent[-1]["duration_s"] == 30.0
    assert store.alarms() == {}


def test_a_blip_shorter_than_the_hold_is_forgotten() -> None:
    store = MemoryAlarmStore()
    sent: list[dict[str, Any]] = []

    def notify(event: dict[str, Any]) -> bool:
        sent.append(event)
        return True

    for t, broker_ok in ((0, False), (2, True), (4, False), (12, False)):
        apply_alarms(*evaluate(facts(broker_ok=broker_ok), T), store, notify, NOW + t, T.for_s)
    assert sent == [], "down 0-2 s and again from 4 s: never down for 10 s in a row"
    apply_alarms(*evaluate(facts(broker_ok=False), T), store, notify, NOW + 14, T.for_s)
    assert [e["alarm"] for e in sent] == ["broker_unreachable"]


def test_notices_that_could_not_be_posted_go_out_later_in_order() -> None:
    store = MemoryAlarmStore()
    sent: list[tuple[str, str]] = []
    up = [False]

    def notify(event: dict[str, Any]) -> bool:
        if up[0]:
            sent.append((event["alarm"], event["status"]))
        return up[0]

    apply_alarms(*evaluate(facts(oldest_pending_s=500.0), T), store, notify, NOW)
    apply_alarms(*evaluate(facts(), T), store, notify, NOW + 1)
    assert sent == []
    up[0] = True
    apply_alarms(*evaluate(facts(), T), store, notify, NOW + 2)
    assert sent == [("pending_too_old", "firing"), ("pending_too_old", "resolved")]
