"""core/outbox.py with a fake clock and a broker at the port boundary."""

from __future__ import annotations

import logging

import pytest

from core.outbox import AWAY_S, Outbox
from core.ports import QueueUnavailable
from tests.support.fakes import FakeClock


class Broker:
    def __init__(self) -> None:
        self.down = False
        self.asked = 0
        self.taken: list[int] = []

    def send(self, n: int) -> None:
        self.asked += 1
        if self.down:
            raise QueueUnavailable("down") from TimeoutError("no answer")
        self.taken.append(n)


class SoftTimeLimitExceeded(Exception):  # Celery's name; an Exception, like kombu's errors
    pass


def test_a_broker_that_fails_is_asked_once_per_pause_and_what_waits_goes_first_in_order(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock, broker = FakeClock(0.0), Broker()
    outbox = Outbox("batches", clock=clock)
    outbox.put(broker.send, 1)
    broker.down = True
    for n in range(2, 6):
        outbox.put(broker.send, n)
        clock.advance(1.0)
    assert broker.asked == 2, "after a failure, the broker is left alone for the pause"
    broker.down = False
    clock.advance(AWAY_S)
    outbox.put(broker.send, 6)
    assert broker.taken == [1, 2, 3, 4, 5, 6] and outbox.sent == 6
    with caplog.at_level(logging.INFO):
        assert outbox.close() == 0
    assert [r.levelname for r in caplog.records] == ["INFO"]  # back: nothing left, no warning


def test_what_the_broker_never_took_is_named_once_and_left(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock, broker = FakeClock(0.0), Broker()
    broker.down = True
    with caplog.at_level(logging.INFO), Outbox("plans", clock=clock) as outbox:
        for n in range(1000):
            outbox.put(broker.send, n)
    assert broker.asked == 1 and outbox.sent == 0
    assert [r.getMessage() for r in caplog.records] == [
        "broker unavailable (TimeoutError); plans left for the reconciler: 1000"
    ]
    assert not any(r.exc_info for r in caplog.records)


def test_anything_but_the_broker_failing_ends_the_loop_and_asks_nothing_more() -> None:
    """A soft time limit (Celery raises it inside whatever runs) is not swallowed as a broker
    failure: the loop stops, and leaving the block asks the broker for nothing."""
    clock, broker = FakeClock(0.0), Broker()
    broker.down = True
    with pytest.raises(SoftTimeLimitExceeded), Outbox("batches", clock=clock) as outbox:
        outbox.put(broker.send, 1)
        clock.advance(AWAY_S + 1)
        raise SoftTimeLimitExceeded
    assert broker.asked == 1

    def interrupted(_n: int) -> None:  # the limit arriving while kombu waits for the broker
        raise SoftTimeLimitExceeded

    with pytest.raises(SoftTimeLimitExceeded), Outbox("batches", clock=clock) as outbox:
        for n in range(3):
            outbox.put(interrupted, n)
    assert outbox.sent == 0
