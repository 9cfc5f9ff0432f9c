"""A worker process keeps its windows full across batches: the sender's loop outlives a batch,
so the next batch goes out while the slow last answers of the previous one are awaited, and
each batch is still recorded and finished exactly once (real sender, real HTTP to the push
stand-in; the store is the in-memory fake of the port)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from core.adapters.webpush import Http11PushSender, SenderConfig, VapidSigner
from core.delivery import BatchReport, DeliveryPolicy, Finishing, deliver_batch, plan_fanout
from core.model import AlertStatus, LedgerStatus
from core.ports import PushMessage, PushResult
from standin.server import PushStandin
from tests.support.fakes import FakeDeliveryStore, FakeHostHealth, FakeTaskQueue

SLOW_S = 1.5


@pytest.fixture(scope="module")
def signer() -> VapidSigner:
    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return VapidSigner(pem.decode(), "mailto:ops@news.example")


@pytest.fixture(scope="module")
def standin() -> Iterator[PushStandin]:
    s = PushStandin("127.0.0.1").start()
    yield s
    s.stop()


@pytest.fixture
def sender(signer: VapidSigner) -> Iterator[Http11PushSender]:
    s = Http11PushSender(signer, SenderConfig(concurrency=16, allow_loopback=True))
    yield s
    s.close()


def message(sub: dict[str, Any], n: int) -> PushMessage:
    data = json.dumps({"id": str(n), "title": f"t{n}"}).encode()
    return PushMessage(
        n, sub["endpoint"], sub["keys"]["p256dh"], sub["keys"]["auth"], data, 120, "high", "s1"
    )


def stamped(into: dict[int, tuple[PushResult, float]]) -> Callable[[PushResult], None]:
    return lambda r: into.__setitem__(r.subscription_id, (r, time.monotonic()))


def test_the_next_batch_goes_out_while_the_last_answers_of_one_are_awaited(
    standin: PushStandin, sender: Http11PushSender
) -> None:
    standin.reset()
    slow = standin.create_subscriptions(2, mode="slow", delay_s=SLOW_S)
    first_subs = standin.create_subscriptions(20) + slow
    second_subs = standin.create_subscriptions(20)
    answers: dict[int, tuple[PushResult, float]] = {}
    first = sender.submit(
        [message(s, i) for i, s in enumerate(first_subs)], stamped(answers), lambda: False
    )
    first.wait_handed_off()
    assert not first.done.is_set(), "handed off before its slow answers: the task may go on"
    second = sender.submit(
        [message(s, 100 + i) for i, s in enumerate(second_subs)], stamped(answers), lambda: False
    )
    second.wait()
    assert not first.done.is_set(), "the second batch finished while the first still waited"
    first.wait()
    assert len(answers) == 42 and {r.status for r, _ in answers.values()} == {201}
    slow_at = min(at for sid, (_, at) in answers.items() if sid in (20, 21))
    assert max(at for sid, (_, at) in answers.items() if sid >= 100) < slow_at
    assert sender.drain(1)


def test_batches_waiting_only_for_their_tail_leave_room_for_the_next(
    standin: PushStandin, signer: VapidSigner
) -> None:
    """Every batch of a real push service has a slow answer or two (a 2 s tail): a batch whose
    pushes have all started must not count as one being sent, or a few lingering batches keep
    the process from its next one while its request slots idle."""
    standin.reset()
    pipe = Http11PushSender(
        signer,
        SenderConfig(concurrency=16, allow_loopback=True, max_open_jobs=2, max_lingering_jobs=5),
    )
    try:
        jobs = []
        for n in range(5):
            subs = standin.create_subscriptions(5) + standin.create_subscriptions(
                1, mode="slow", delay_s=SLOW_S
            )
            assert pipe.wait_for_room(timeout_s=SLOW_S / 2), f"batch {n} waited for a tail"
            job = pipe.submit(
                [message(s, 10 * n + i) for i, s in enumerate(subs)], lambda r: None, lambda: False
            )
            job.wait_handed_off()
            jobs.append(job)
        assert not any(job.done.is_set() for job in jobs), "the tails came back: not a test"
        # Five open: the bound on lingering batches holds the sixth until a tail comes back.
        assert not pipe.wait_for_room(timeout_s=0.2)
        assert pipe.wait_for_room(timeout_s=SLOW_S * 2)
        assert pipe.drain(SLOW_S * 2)
    finally:
        pipe.close()


def test_a_stopped_batch_drops_what_it_has_not_sent(
    standin: PushStandin, signer: VapidSigner
) -> None:
    standin.reset()
    one_at_a_time = Http11PushSender(
        signer, SenderConfig(concurrency=1, concurrency_per_host=1, allow_loopback=True)
    )
    try:
        subs = standin.create_subscriptions(30, mode="slow", delay_s=0.05)
        answers: dict[int, tuple[PushResult, float]] = {}
        stop_after = time.monotonic() + 0.3
        job = one_at_a_time.submit(
            [message(s, i) for i, s in enumerate(subs)],
            stamped(answers),
            lambda: time.monotonic() > stop_after,
        )
        job.wait()
        assert 0 < len(answers) < 30
        assert len(standin.received) == len(answers)
    finally:
        one_at_a_time.close()


def test_handed_off_batches_are_recorded_and_finished_exactly_once(
    standin: PushStandin, sender: Http11PushSender
) -> None:
    standin.reset()
    subs = standin.create_subscriptions(18) + standin.create_subscriptions(
        2, mode="slow", delay_s=SLOW_S
    )
    store, queue, hosts = FakeDeliveryStore(), FakeTaskQueue(), FakeHostHealth()
    for sub in subs:
        sid = store.add_subscription(endpoint=sub["endpoint"])
        store.subs[sid] = replace(
            store.subs[sid], p256dh=sub["keys"]["p256dh"], auth=sub["keys"]["auth"]
        )
    alert_id = store.add_alert(now=time.time())
    policy = DeliveryPolicy(batch_size=10)
    assert plan_fanout(alert_id, store, queue, policy, time.time) == 2
    finishing, finished = Finishing(), list[BatchReport]()
    reports = [
        deliver_batch(
            batch_id,
            store,
            sender,
            hosts,
            policy,
            finishing=finishing,
            on_complete=finished.append,
        )
        for batch_id, *_ in queue.batches
    ]
    # Both tasks returned before the slow answers of the second batch came in.
    assert all(r.handed_off for r in reports)
    assert finishing.drain(10)
    assert sorted(r.delivered for r in finished) == [10, 10]
    assert len(standin.received) == 20
    assert {store.status_of(alert_id, sid) for sid in store.subs} == {LedgerStatus.DELIVERED}
    alert = store.get_alert(alert_id)
    assert alert is not None and alert.status is AlertStatus.SENT
