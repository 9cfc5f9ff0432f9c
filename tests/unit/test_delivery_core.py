"""The delivery core's rules (plan, deliver a batch, outcomes, retries, reconcile, cancel,
scheduled alerts) against in-memory fakes of its ports: no database, broker or network."""

from __future__ import annotations

import dataclasses
import json
import random
from collections import Counter

import pytest

from core.delivery import (
    BatchReport,
    DeliveryPolicy,
    deliver_batch,
    fire_scheduled,
    plan_fanout,
    reconcile,
    schedule_due_retries,
)
from core.freshness import Cursor
from core.model import Alert, AlertStatus, BatchStatus, Lane, LedgerStatus
from core.rejections import SETTLE_S, RejectionJudge
from core.ttl import ON_TIME_S
from tests.support.fakes import (
    Answer,
    FakeClock,
    FakeDeliveryStore,
    FakeHostHealth,
    FakePushSender,
    FakeTaskQueue,
    WorkerKilled,
)

POLICY = DeliveryPolicy(batch_size=10, retry_base_s=10.0, stale_after_s=60.0)


class World:
    """One newsroom's delivery side: the store, the broker, the push service, host health."""

    def __init__(self, policy: DeliveryPolicy = POLICY) -> None:
        self.clock = FakeClock()
        self.store = FakeDeliveryStore()
        self.queue = FakeTaskQueue()
        self.hosts = FakeHostHealth()
        self.sender = FakePushSender(self.clock, self.hosts)
        self.policy = dataclasses.replace(policy, rejections=RejectionJudge())  # a fresh process

    def subscribers(self, n: int, topics: tuple[str, ...] = ("breaking",)) -> list[int]:
        return [self.store.add_subscription(topics) for _ in range(n)]

    def alert(self, status: AlertStatus = AlertStatus.QUEUED, send_at: float | None = None) -> int:
        return self.store.add_alert(("breaking",), status, send_at, now=self.clock())

    def plan(self, alert_id: int) -> int:
        return plan_fanout(alert_id, self.store, self.queue, self.policy, self.clock)

    def deliver(self, batch_id: int) -> BatchReport:
        return deliver_batch(
            batch_id,
            self.store,
            self.sender,
            self.hosts,
            self.policy,
            self.clock,
            random.Random(7),
        )

    def deliver_enqueued(self) -> None:
        """A worker taking every enqueued batch once, in order (new ones included)."""
        done = 0
        while done < len(self.queue.batches):
            self.deliver(self.queue.batches[done][0])
            done += 1

    def status(self, alert_id: int) -> AlertStatus:
        alert = self.store.get_alert(alert_id)
        assert alert is not None
        return alert.status


# -- plan ---------------------------------------------------------------------------------
def test_plan_cuts_the_audience_into_policy_sized_batches_each_enqueued_once() -> None:
    w = World()
    readers = w.subscribers(25)
    w.subscribers(5, topics=("sport",))
    alert_id = w.alert()

    assert w.plan(alert_id) == 3

    sizes = [len(w.store.batches[b].ids) for b in w.queue.batch_ids]
    assert sizes == [10, 10, 5]
    assert sorted(i for b in w.queue.batch_ids for i in w.store.batches[b].ids) == readers
    assert {lane for _b, _a, lane in w.queue.batches} == {Lane.BREAKING}
    assert w.store.alerts[alert_id].planned
    # Planning twice (a redelivered plan task) adds nothing.
    assert w.plan(alert_id) == 0
    assert len(w.store.batches) == 3 and len(w.queue.batches) == 3


def test_a_plan_killed_mid_way_resumes_without_duplicates_and_the_lost_batch_is_reconciled() -> (
    None
):
    w = World()
    readers = w.subscribers(35)
    alert_id = w.alert()
    w.queue.kill_after = 1  # the worker dies after committing batch 2, before enqueueing it

    with pytest.raises(WorkerKilled):
        w.plan(alert_id)
    assert len(w.store.batches) == 2 and w.queue.batch_ids == [1]

    assert w.plan(alert_id) == 2  # the re-run continues after batch 2's last subscriber
    planned = [i for b in w.store.batches.values() for i in b.ids]
    assert sorted(planned) == readers and len(planned) == len(set(planned))
    assert w.queue.batch_ids == [1, 3, 4]

    w.deliver_enqueued()
    assert w.status(alert_id) is AlertStatus.SENDING  # batch 2 is still owed

    w.clock.advance(POLICY.stale_after_s + 1)
    assert reconcile(w.store, w.queue, POLICY, w.clock) == {"plans": 0, "batches": 1}
    assert w.queue.batch_ids == [1, 3, 4, 2]
    w.deliver_enqueued()
    assert Counter(w.sender.pushed_ids()) == Counter(readers)
    assert w.status(alert_id) is AlertStatus.SENT


def test_plan_of_a_cancelled_alert_plans_nothing() -> None:
    w = World()
    w.subscribers(5)
    alert_id = w.alert()
    w.store.cancel(alert_id, w.clock())
    assert w.plan(alert_id) == 0
    assert w.queue.batches == [] and w.store.batches == {}


class OvertakenStore(FakeDeliveryStore):
    """A store where a second planner adds each page just after this planner has read it."""

    def next_audience_page(
        self, alert: Alert, after: Cursor, limit: int
    ) -> tuple[list[int], Cursor]:
        page, last = super().next_audience_page(alert, after, limit)
        if page:
            self.add_batch(alert.id, page, after, last, 0.0)  # the rival commits it first
        return page, last


@pytest.mark.parametrize("freshest_first", [True, False])
def test_a_planner_overtaken_by_another_stops_without_planning_anyone_twice(
    freshest_first: bool,
) -> None:
    w = World(dataclasses.replace(POLICY, freshest_first=freshest_first))
    w.store = OvertakenStore()
    readers = w.subscribers(25)
    alert_id = w.alert()

    assert w.plan(alert_id) == 0

    assert w.queue.batches == []
    # All seen at the same time: freshest first walks the newest ids first.
    first = readers[::-1][:10] if freshest_first else readers[:10]
    assert [b.ids for b in w.store.batches.values()] == [tuple(first)]


# -- deliver a batch: outcomes ----------------------------------------------------------------
def test_each_push_answer_becomes_its_outcome() -> None:
    w = World()
    ok, gone410, gone404, throttled, broken, rejected, too_large = (
        w.store.add_subscription(endpoint=f"https://{name}.push.test/send/1")
        for name in ("ok", "g410", "g404", "throttled", "broken", "rejected", "large")
    )
    w.sender.answer("https://g410.push.test/send/1", Answer(410))
    w.sender.answer("https://g404.push.test/send/1", Answer(404))
    w.sender.answer("https://throttled.push.test/send/1", Answer(429, retry_after="120"))
    w.sender.answer("https://broken.push.test/send/1", Answer(503))
    w.sender.answer("https://rejected.push.test/send/1", Answer(403))
    w.sender.answer("https://large.push.test/send/1", Answer(413))
    alert_id = w.alert()
    w.plan(alert_id)
    start = w.clock()

    report = w.deliver(w.queue.batch_ids[0])

    assert (report.sent, report.delivered, report.gone, report.failed, report.retry) == (
        7,
        1,
        2,
        1,
        3,
    )
    s = w.store
    assert s.status_of(alert_id, ok) is LedgerStatus.DELIVERED
    # 404/410: the subscription is gone and deleted, never retried.
    assert s.status_of(alert_id, gone410) is LedgerStatus.GONE
    assert s.status_of(alert_id, gone404) is LedgerStatus.GONE
    assert sorted(s.deleted) == [gone410, gone404]
    # 429 with Retry-After: waits exactly that long, and the whole host is held.
    row = s.ledger[(alert_id, throttled)]
    assert row.status is LedgerStatus.RETRY
    assert row.next_attempt_at is not None and 120 <= row.next_attempt_at - start <= 121
    assert w.hosts.blocked_until("throttled.push.test", start + 60) is not None
    # 5xx without Retry-After: exponential backoff (first step: between half and all of base).
    row = s.ledger[(alert_id, broken)]
    assert row.status is LedgerStatus.RETRY and row.next_attempt_at is not None
    assert 5.0 <= row.next_attempt_at - start <= 11.0
    # 403: our request, or this one subscription? Not known from one answer: the reader is
    # asked again after the back-off, the host is not held, the subscription stays.
    assert s.status_of(alert_id, rejected) is LedgerStatus.RETRY
    assert "rejected.push.test" not in w.hosts.breakers and rejected in s.subs
    # 413: our bug, recorded as failed, never deleted.
    assert s.status_of(alert_id, too_large) is LedgerStatus.FAILED and too_large in s.subs
    assert w.status(alert_id) is AlertStatus.SENDING  # three retries still pending


def _retry_round(w: World, seconds: float) -> None:
    w.clock.advance(seconds)
    schedule_due_retries(w.store, w.queue, w.policy, w.clock)
    w.deliver_enqueued()


def test_one_refused_subscription_does_not_hold_a_push_service_that_delivers_to_others() -> None:
    # RFC 8292 4.2: a subscription made with another site's VAPID key is answered 403. Anyone can
    # post one; if it held the host, one outsider would stop every alert to that service.
    w = World()
    foreign = w.store.add_subscription(endpoint="https://fcm.push.test/send/foreign")
    readers = [
        w.store.add_subscription(endpoint=f"https://fcm.push.test/send/{i}") for i in range(8)
    ]
    w.sender.answer("https://fcm.push.test/send/foreign", *[Answer(403)] * 6)
    alert_id = w.alert()
    w.plan(alert_id)

    w.deliver_enqueued()
    assert all(w.store.status_of(alert_id, r) is LedgerStatus.DELIVERED for r in readers)
    assert w.store.status_of(alert_id, foreign) is LedgerStatus.RETRY
    _retry_round(w, 11)  # asked once more; the host delivered for others in between

    row = w.store.ledger[(alert_id, foreign)]
    assert (row.status, row.status_code, row.attempts) == (LedgerStatus.FAILED, 403, 2)
    assert w.hosts.breakers == {} and foreign in w.store.subs
    assert w.status(alert_id) is AlertStatus.SENT


def test_a_push_service_refusing_every_push_is_held_and_its_readers_kept() -> None:
    # Our key or subject refused: nothing is delivered, so after a couple of seconds of refusals
    # the breaker holds the host for every worker, and the readers wait for it, never deleted.
    w = World()
    readers = [
        w.store.add_subscription(endpoint=f"https://wns.push.test/send/{i}") for i in range(3)
    ]
    for r in range(3):
        w.sender.answer(f"https://wns.push.test/send/{r}", *[Answer(401)] * 6)
    alert_id = w.alert()
    w.plan(alert_id)

    w.deliver_enqueued()
    assert w.hosts.breakers == {}  # three refusals at once: not known yet
    _retry_round(w, 11)

    until, reason = w.hosts.breakers["wns.push.test"]
    assert reason == "HTTP 401" and until - w.clock() == pytest.approx(POLICY.breaker_open_s)
    for r in readers:
        row = w.store.ledger[(alert_id, r)]
        assert row.status is LedgerStatus.RETRY and r in w.store.subs


def test_the_judge_tells_our_refused_request_from_a_refused_reader() -> None:
    judge = RejectionJudge()
    # Outsiders' subscriptions walked first (freshest first) answer before any delivery; the
    # deliveries that follow within the settle time prove the host accepts our signature.
    assert judge.verdict("fcm", 100.0, 1).name == "PENDING"
    judge.delivered("fcm", 100.1)
    assert judge.verdict("fcm", 100.0 + SETTLE_S + 1, 1).name == "PENDING"
    judge.delivered("fcm", 103.2)
    assert judge.verdict("fcm", 110.0, 2).name == "READER"  # refused again, others delivered
    # A key rotated mid-send: deliveries stop, refusals go on: the host is held.
    judge.delivered("fcm", 115.0)
    assert judge.verdict("fcm", 120.0, 1).name == "PENDING"
    assert judge.verdict("fcm", 120.0 + SETTLE_S, 1).name == "HOST"
    # A run of refusals long ago is forgotten: it does not hold the host at the next alert.
    assert judge.verdict("apple", 1000.0, 1).name == "PENDING"
    assert judge.verdict("apple", 2000.0, 1).name == "PENDING"


@pytest.mark.parametrize(
    "retry_after", ["0", "Thu, 01 Jan 1970 00:00:00 GMT"], ids=["zero", "date-past"]
)
def test_a_retry_after_asking_for_no_wait_backs_off_instead_of_spending_every_attempt(
    retry_after: str,
) -> None:
    w = World()
    sid = w.store.add_subscription(endpoint="https://storm.push.test/send/1")
    w.sender.answer("https://storm.push.test/send/1", *[Answer(503, retry_after)] * 6)
    alert_id = w.alert()
    w.plan(alert_id)
    start = w.clock()

    w.deliver_enqueued()
    for _ in range(4):  # the beat's retry round, once a second, within the first backoff
        w.clock.advance(1)
        schedule_due_retries(w.store, w.queue, w.policy, w.clock)
        w.deliver_enqueued()

    row = w.store.ledger[(alert_id, sid)]
    assert (row.status, row.attempts) == (LedgerStatus.RETRY, 1)
    assert row.next_attempt_at is not None and row.next_attempt_at - start >= 5.0
    assert w.hosts.blocked_until("storm.push.test", start) is None


def test_a_subscription_that_keeps_failing_is_failed_after_max_attempts() -> None:
    w = World(DeliveryPolicy(batch_size=10, retry_max_attempts=3, stale_after_s=60.0))
    sid = w.store.add_subscription(endpoint="https://down.push.test/send/1")
    w.sender.answer("https://down.push.test/send/1", *[Answer(503)] * 5)
    alert_id = w.alert()
    w.plan(alert_id)

    w.deliver_enqueued()
    for _ in range(5):
        w.clock.advance(600)  # past any backoff step, within the TTL
        schedule_due_retries(w.store, w.queue, w.policy, w.clock)
        w.deliver_enqueued()

    assert w.sender.pushed_ids() == [sid] * 3
    row = w.store.ledger[(alert_id, sid)]
    assert (row.status, row.attempts) == (LedgerStatus.FAILED, 3)
    assert sid in w.store.subs
    assert w.status(alert_id) is AlertStatus.FAILED  # nothing delivered, nothing pending


def test_a_held_host_is_not_pushed_to_and_the_wait_costs_no_attempt() -> None:
    w = World()
    sid = w.store.add_subscription(endpoint="https://busy.push.test/send/1")
    alert_id = w.alert()
    w.plan(alert_id)
    w.hosts.hold("busy.push.test", w.clock() + 30, "HTTP 429")

    w.deliver(w.queue.batch_ids[0])

    assert w.sender.pushed == []
    row = w.store.ledger[(alert_id, sid)]
    assert (row.status, row.attempts) == (LedgerStatus.RETRY, 0)
    assert row.next_attempt_at is not None and row.next_attempt_at >= w.clock() + 29


def test_subscribers_gone_since_planning_are_counted_gone_and_not_pushed() -> None:
    w = World()
    readers = w.subscribers(4)
    alert_id = w.alert()
    w.plan(alert_id)
    del w.store.subs[readers[1]]  # unsubscribed between planning and sending

    report = w.deliver(w.queue.batch_ids[0])

    assert report.skipped == 1 and report.delivered == 3
    assert sorted(w.sender.pushed_ids()) == [readers[0], readers[2], readers[3]]
    assert w.store.status_of(alert_id, readers[1]) is LedgerStatus.GONE
    assert w.status(alert_id) is AlertStatus.SENT


# -- deliver a batch: exactly once ------------------------------------------------------------
def test_a_batch_killed_mid_way_is_resent_only_to_whom_it_has_not_recorded() -> None:
    w = World(DeliveryPolicy(batch_size=10, flush_every=2, stale_after_s=60.0))
    readers = w.subscribers(10)
    alert_id = w.alert()
    w.plan(alert_id)
    batch_id = w.queue.batch_ids[0]

    def die_at_sixth(message: object) -> None:
        if len(w.sender.pushed) == 5:
            raise WorkerKilled

    w.sender.before_push = die_at_sixth
    with pytest.raises(WorkerKilled):
        w.deliver(batch_id)
    w.sender.before_push = None
    # Results are recorded in chunks of two: the fifth push's result died with the worker.
    assert w.store.delivered_to(alert_id) == readers[:4]

    # Another worker while the first one's heartbeat is fresh: the batch is left alone.
    assert not w.deliver(batch_id).claimed
    w.clock.advance(POLICY.stale_after_s + 1)
    report = w.deliver(batch_id)

    assert report.claimed and report.delivered == 6
    pushes = Counter(w.sender.pushed_ids())
    assert [pushes[i] for i in readers] == [1, 1, 1, 1, 2, 1, 1, 1, 1, 1]
    assert w.store.delivered_to(alert_id) == readers
    finals = Counter(sid for _a, sid, status in w.store.writes if status.final)
    assert set(finals.values()) == {1}  # each target recorded once
    alert = w.store.get_alert(alert_id)
    assert alert is not None and alert.counts.delivered == 10
    assert alert.status is AlertStatus.SENT


def test_a_finished_batch_run_again_is_not_claimed_and_pushes_nothing() -> None:
    w = World()
    w.subscribers(3)
    alert_id = w.alert()
    w.plan(alert_id)
    batch_id = w.queue.batch_ids[0]
    assert w.deliver(batch_id).claimed

    w.clock.advance(POLICY.stale_after_s + 1)
    again = w.deliver(batch_id)

    assert not again.claimed and again.sent == 0
    assert len(w.sender.pushed) == 3
    assert w.store.get_alert(alert_id).counts.delivered == 3  # type: ignore[union-attr]


# -- cancel -------------------------------------------------------------------------------
def test_cancel_stops_a_batch_mid_way_and_the_rest_is_not_sent() -> None:
    w = World(DeliveryPolicy(batch_size=400, stop_check_interval_s=0.05, stale_after_s=60.0))
    readers = w.subscribers(400)
    alert_id = w.alert()
    w.plan(alert_id)

    def cancel_at_tenth(message: object) -> None:
        if len(w.sender.pushed) == 10:
            w.store.cancel(alert_id, w.clock())

    w.sender.before_push = cancel_at_tenth
    report = w.deliver(w.queue.batch_ids[0])

    assert report.stopped
    sent = len(w.sender.pushed)
    assert 10 <= sent < 200
    assert w.store.delivered_to(alert_id) == readers[:sent]
    assert all(w.store.status_of(alert_id, i) is None for i in readers[sent:])
    assert w.store.batches[w.queue.batch_ids[0]].status is BatchStatus.CANCELLED
    assert w.status(alert_id) is AlertStatus.CANCELLED


def test_a_batch_of_an_alert_cancelled_before_it_started_pushes_nothing() -> None:
    w = World()
    w.subscribers(3)
    alert_id = w.alert()
    w.plan(alert_id)
    w.store.cancel(alert_id, w.clock())

    report = w.deliver(w.queue.batch_ids[0])

    assert report.claimed and report.stopped and w.sender.pushed == []
    assert w.store.batches[w.queue.batch_ids[0]].status is BatchStatus.CANCELLED


# -- retries --------------------------------------------------------------------------------
def test_retries_come_due_are_re_enqueued_once_and_then_delivered() -> None:
    w = World()
    slow = "https://slow.push.test/send/1"  # its own host: a 429 holds the whole host
    readers = [w.store.add_subscription(), w.store.add_subscription(endpoint=slow)]
    readers.append(w.store.add_subscription())
    w.sender.answer(slow, Answer(429, retry_after="120"))
    alert_id = w.alert()
    w.plan(alert_id)
    w.deliver_enqueued()
    assert w.status(alert_id) is AlertStatus.SENDING

    assert schedule_due_retries(w.store, w.queue, w.policy, w.clock) == 0  # not due yet
    w.clock.advance(121)
    assert schedule_due_retries(w.store, w.queue, w.policy, w.clock) == 1
    assert schedule_due_retries(w.store, w.queue, w.policy, w.clock) == 0  # taken once
    retry_batch = w.queue.batch_ids[-1]
    assert w.store.batches[retry_batch].ids == (readers[1],)

    w.deliver(retry_batch)

    assert Counter(w.sender.pushed_ids()) == Counter({readers[0]: 1, readers[1]: 2, readers[2]: 1})
    assert w.store.delivered_to(alert_id) == readers
    assert w.status(alert_id) is AlertStatus.SENT


def test_every_push_carries_the_alerts_release_time_not_when_it_was_sent() -> None:
    """A push retried minutes later (or held by quiet hours) shows when the news broke: the
    notification's timestamp is the alert's release, in both places the payload carries it."""
    w = World()
    slow = "https://slow.push.test/send/1"
    w.store.add_subscription()
    w.store.add_subscription(endpoint=slow)
    w.sender.answer(slow, Answer(429, retry_after="1200"))
    alert_id = w.alert()
    w.clock.advance(5)  # planned a little after it was stored
    w.plan(alert_id)
    w.deliver_enqueued()
    w.clock.advance(1201)
    schedule_due_retries(w.store, w.queue, w.policy, w.clock)
    w.deliver(w.queue.batch_ids[-1])

    alert = w.store.get_alert(alert_id)
    assert alert is not None and alert.started_at is not None
    shown = [json.loads(m.payload) for m in w.sender.pushed]
    assert len(shown) == 3  # the first answer, the 429 and its retry 20 minutes on
    assert {p["ts"] for p in shown} == {int(alert.started_at)}
    assert {p["notification"]["timestamp"] for p in shown} == {int(alert.started_at) * 1000}


def test_the_alert_is_sent_exactly_when_nothing_is_pending() -> None:
    w = World(DeliveryPolicy(batch_size=2, stale_after_s=60.0))
    readers = w.subscribers(4)
    w.sender.answer(w.store.subs[readers[3]].endpoint, Answer(500))
    alert_id = w.alert()
    w.plan(alert_id)
    first, second = w.queue.batch_ids

    w.deliver(first)
    assert w.status(alert_id) is AlertStatus.SENDING  # a batch is still to go
    w.deliver(second)
    assert w.status(alert_id) is AlertStatus.SENDING  # a retry is waiting
    w.clock.advance(600)  # past any backoff step, within the TTL
    schedule_due_retries(w.store, w.queue, w.policy, w.clock)
    w.deliver(w.queue.batch_ids[-1])
    assert w.status(alert_id) is AlertStatus.SENT


# -- the alert's TTL --------------------------------------------------------------------------
# Fake alerts live 3600 s from their release.
def test_a_retry_that_would_come_due_after_the_ttl_is_failed_at_once_not_sent_late() -> None:
    w = World()
    ok = w.store.add_subscription()
    late = w.store.add_subscription(endpoint="https://late.push.test/send/1")
    w.sender.answer("https://late.push.test/send/1", Answer(429, retry_after="7200"))
    alert_id = w.alert()
    w.plan(alert_id)

    w.deliver_enqueued()

    assert w.store.status_of(alert_id, late) is LedgerStatus.FAILED
    assert w.store.status_of(alert_id, ok) is LedgerStatus.DELIVERED
    assert w.status(alert_id) is AlertStatus.SENT  # finished now, not "sending" for two hours
    w.clock.advance(7201)
    assert schedule_due_retries(w.store, w.queue, w.policy, w.clock) == 0
    assert w.sender.pushed_ids() == [ok, late]


def test_a_batch_taken_up_after_the_ttl_ran_out_pushes_nothing() -> None:
    w = World()
    readers = w.subscribers(3)
    alert_id = w.alert()
    w.plan(alert_id)
    w.clock.advance(3600)  # a backlog, a dead worker: the batch runs only now

    report = w.deliver(w.queue.batch_ids[0])

    assert w.sender.pushed == [] and report.sent == 0
    assert [w.store.status_of(alert_id, r) for r in readers] == [LedgerStatus.FAILED] * 3
    assert w.status(alert_id) is AlertStatus.FAILED


def test_pushes_carry_only_what_is_left_of_the_ttl() -> None:
    w = World()
    sid = w.store.add_subscription(endpoint="https://slow.push.test/send/1")
    w.sender.answer("https://slow.push.test/send/1", Answer(503, retry_after="1000"))
    alert_id = w.alert()
    w.plan(alert_id)
    w.deliver_enqueued()
    w.clock.advance(1000)
    schedule_due_retries(w.store, w.queue, w.policy, w.clock)

    w.deliver_enqueued()

    first, retried = w.sender.pushed
    assert first.ttl_s == 3600 and 2590 <= retried.ttl_s <= 2600
    assert w.store.status_of(alert_id, sid) is LedgerStatus.DELIVERED


def test_a_send_on_time_carries_the_alerts_own_ttl() -> None:
    # A fan-out's later batches leave seconds after the release: the contract's TTL header is
    # the alert's ttl for them; only a push later than ON_TIME_S carries what is left.
    w = World()
    w.subscribers(1)
    alert_id = w.alert()
    w.plan(alert_id)
    w.clock.advance(ON_TIME_S - 1)
    w.deliver_enqueued()
    assert [m.ttl_s for m in w.sender.pushed] == [3600]


# -- reconcile ------------------------------------------------------------------------------
def test_reconcile_re_enqueues_lost_plans_and_dead_batches_once() -> None:
    w = World()
    w.subscribers(3)
    lost_plan = w.alert()  # queued, but its plan task never arrived
    planned = w.alert()
    w.plan(planned)
    dead_batch = w.queue.batch_ids[0]
    # A worker claimed the batch and died without a word.
    assert w.store.claim_batch(dead_batch, w.clock(), POLICY.stale_after_s) is not None
    w.queue.batches.clear()

    assert reconcile(w.store, w.queue, POLICY, w.clock) == {"plans": 0, "batches": 0}
    w.clock.advance(POLICY.stale_after_s + 1)
    assert reconcile(w.store, w.queue, POLICY, w.clock) == {"plans": 1, "batches": 1}
    assert w.queue.plans == [(lost_plan, Lane.BREAKING)]
    assert w.queue.batch_ids == [dead_batch]
    # The next tick finds them freshly marked and does not enqueue them again.
    assert reconcile(w.store, w.queue, POLICY, w.clock) == {"plans": 0, "batches": 0}

    w.deliver(dead_batch)
    assert w.status(planned) is AlertStatus.SENT


# -- scheduled alerts -------------------------------------------------------------------------
def test_fire_scheduled_fires_due_alerts_once() -> None:
    w = World()
    now = w.clock()
    soon = w.alert(status=AlertStatus.SCHEDULED, send_at=now + 10)
    later = w.alert(status=AlertStatus.SCHEDULED, send_at=now + 100)

    assert fire_scheduled(w.store, w.queue, w.clock) == 0
    w.clock.advance(50)
    assert fire_scheduled(w.store, w.queue, w.clock) == 1
    assert fire_scheduled(w.store, w.queue, w.clock) == 0

    assert w.queue.plans == [(soon, Lane.BREAKING)]
    assert w.status(soon) is AlertStatus.QUEUED
    assert w.status(later) is AlertStatus.SCHEDULED


def test_a_scheduled_alert_fired_while_the_broker_is_down_is_planned_by_the_reconciler() -> None:
    w = World()
    w.subscribers(2)
    alert_id = w.alert(status=AlertStatus.SCHEDULED, send_at=w.clock() + 10)
    w.queue.down = True
    w.clock.advance(10)

    assert fire_scheduled(w.store, w.queue, w.clock) == 1
    assert w.queue.plans == [] and w.status(alert_id) is AlertStatus.QUEUED

    w.queue.down = False
    w.clock.advance(POLICY.stale_after_s + 1)
    reconcile(w.store, w.queue, POLICY, w.clock)
    assert w.queue.plans == [(alert_id, Lane.BREAKING)]


# -- a correction of an alert still sending ---------------------------------------------------
def _last_words(w: World) -> dict[int, list[int]]:
    """Per reader, the alerts pushed to them in order."""
    got: dict[int, list[int]] = {}
    for m in w.sender.pushed:
        got.setdefault(m.subscription_id, []).append(int(json.loads(m.payload)["id"]))
    return got


def test_a_correction_of_an_alert_still_sending_takes_it_over() -> None:
    """Every reader the original was meant for ends with the correction, once; nobody gets the
    original after it: not those its later batches held, not the one its retry waited for."""
    w = World()
    readers = w.subscribers(25)
    original = w.alert()
    w.plan(original)  # three batches: 10, 10, 5
    first, later = (w.store.batches[b].ids for b in w.queue.batch_ids[:2])
    retrying, left, unsubscribed = first[0], first[1], later[0]
    w.sender.answer(f"https://push.example.test/send/{retrying}", Answer(503))
    w.deliver(w.queue.batch_ids[0])  # reached the first ten (one of them waits for a retry)
    assert w.store.status_of(original, retrying) is LedgerStatus.RETRY
    w.store.leave_topics(left)  # reached, then turned its topics off: still corrected
    del w.store.subs[unsubscribed]  # never reached, gone since: nothing owed

    correction = w.store.add_correction(original, w.clock())
    w.plan(correction)
    assert w.status(original) is AlertStatus.CANCELLED
    w.deliver_enqueued()  # the original's later batches, and the correction's
    w.clock.advance(3600)
    schedule_due_retries(w.store, w.queue, POLICY, w.clock)  # no retry of the stopped one
    w.deliver_enqueued()

    got = _last_words(w)
    owed = [r for r in readers if r != unsubscribed]
    assert sorted(got) == owed
    for reader in owed:
        assert got[reader][-1] == correction and got[reader].count(correction) == 1, reader
    assert [got[r] for r in later[1:]] == [[correction]] * 9  # never got the old words
    assert w.status(correction) is AlertStatus.SENT


def test_a_correction_released_from_its_undo_window_stops_the_alert_before_it_is_planned() -> None:
    """The release stops the alert (RecoveryStore.due_scheduled): its batches queued ahead of
    the correction's plan task push nothing, and the planner, finding it stopped already,
    still sends the correction to everyone once."""
    w = World()
    readers = w.subscribers(25)
    original = w.alert()
    w.plan(original)  # three batches: 10, 10, 5
    last = w.store.batches[w.queue.batch_ids[2]].ids
    w.deliver(w.queue.batch_ids[0])
    correction = w.store.add_correction(original, w.clock(), send_at=w.clock() + 10)
    w.deliver(w.queue.batch_ids[1])  # its undo window: the original goes on
    assert w.status(original) is AlertStatus.SENDING

    w.clock.advance(10)
    assert fire_scheduled(w.store, w.queue, w.clock) == 1
    assert w.status(original) is AlertStatus.CANCELLED
    assert w.queue.plans == [(correction, Lane.BREAKING)]  # no worker has run it yet
    w.deliver(w.queue.batch_ids[2])  # the original's last batch, ahead of the plan task
    assert [r for r in last if r in _last_words(w)] == []
    w.plan(correction)
    w.deliver_enqueued()

    got = _last_words(w)
    assert sorted(got) == readers
    for reader in readers:
        assert got[reader][-1] == correction and got[reader].count(correction) == 1, reader
    assert [got[r] for r in last] == [[correction]] * 5
    assert w.status(correction) is AlertStatus.SENT


def test_a_correction_of_a_sent_alert_goes_to_whoever_it_reached() -> None:
    w = World()
    w.subscribers(4)
    original = w.alert()
    w.plan(original)
    w.deliver_enqueued()
    assert w.status(original) is AlertStatus.SENT
    newcomer = w.store.add_subscription()
    correction = w.store.add_correction(original, w.clock())
    w.plan(correction)
    w.deliver_enqueued()
    assert w.status(original) is AlertStatus.SENT
    assert newcomer not in _last_words(w) and len(w.store.delivered_to(correction)) == 4


def test_a_correction_waits_for_the_stopped_alerts_pushes_on_their_way() -> None:
    """A push of the old words answered after the correction's would replace it on screen."""
    w = World()
    w.subscribers(3)
    original = w.alert()
    w.plan(original)
    batch = w.queue.batch_ids[0]
    assert w.store.claim_batch(batch, w.clock(), POLICY.lease_s)  # a sender is pushing it
    correction = w.store.add_correction(original, w.clock())

    def busy(seconds: float) -> None:  # the sender stays alive: its lease is renewed
        w.clock.advance(seconds)
        w.store.heartbeat(batch, w.clock())

    planned = plan_fanout(correction, w.store, w.queue, w.policy, w.clock, sleep=busy)
    assert planned == 0 and w.status(original) is AlertStatus.CANCELLED
    assert [b for b in w.store.batches.values() if b.alert_id == correction] == []

    w.store.finish_batch(batch, original, 0, True, w.clock())  # its last answers are in
    w.clock.advance(POLICY.stale_after_s + 1)
    reconcile(w.store, w.queue, POLICY, w.clock)  # the correction is planned again
    assert (correction, Lane.BREAKING) in w.queue.plans
    assert plan_fanout(correction, w.store, w.queue, w.policy, w.clock, sleep=busy) == 1


def test_correcting_a_correction_still_sending_takes_the_chain_over() -> None:
    w = World()
    readers = w.subscribers(25)
    original = w.alert()
    w.plan(original)
    w.deliver(w.queue.batch_ids[0])
    first = w.store.add_correction(original, w.clock())
    w.plan(first)  # takes the original over
    w.deliver(w.queue.batch_ids[-1])  # one batch of the first correction goes out
    second = w.store.add_correction(first, w.clock())
    w.plan(second)
    assert w.status(first) is AlertStatus.CANCELLED
    w.deliver_enqueued()

    got = _last_words(w)
    assert sorted(got) == readers
    for reader in readers:
        assert got[reader][-1] == second and got[reader].count(second) == 1, reader
