"""The broker's memory marker (core/adapters/broker.py) on a real Redis: beat's sweep finds it
gone after an empty restart, and a worker whose connection broke can remove it, so the next
sweep sends queued work again (tasks in flight on that connection may be lost)."""

from __future__ import annotations

import time

import redis as redis_lib

from core.adapters.broker import BROKER_MARKER_KEY, NoBrokerMemory, RedisBrokerMemory
from tests.support.services import free_port


def test_the_sweep_finds_the_marker_gone_once_and_sets_it_again(clean_redis: str) -> None:
    memory = RedisBrokerMemory(clean_redis)
    assert memory.forgot()  # no marker yet: an empty (or new) broker
    assert not memory.forgot()  # set by that call
    redis_lib.Redis.from_url(clean_redis).flushdb()  # restarted without its AOF
    assert memory.forgot() and not memory.forgot()


def test_a_broken_connection_asks_for_one_sweep_after_it_broke(clean_redis: str) -> None:
    memory = RedisBrokerMemory(clean_redis)
    memory.forgot()  # the sweep's marker, stamped now
    stamp = float(redis_lib.Redis.from_url(clean_redis).get(BROKER_MARKER_KEY) or 0)
    # Lost before the last sweep set the marker: that sweep already sent the queued work.
    assert not memory.may_have_lost(stamp - 5)
    assert not memory.forgot()
    # Lost after it: the marker goes, and the next sweep (only the next one) sends it again.
    assert memory.may_have_lost(stamp + 1)
    assert not memory.may_have_lost(stamp + 1)  # a second worker: already asked
    assert memory.forgot() and not memory.forgot()
    # No marker at all yet: the first sweep will send everything anyway.
    redis_lib.Redis.from_url(clean_redis).delete(BROKER_MARKER_KEY)
    assert not memory.may_have_lost(time.time())


def test_an_unreachable_broker_or_rabbitmq_answers_false_without_raising() -> None:
    down = RedisBrokerMemory(f"redis://127.0.0.1:{free_port()}/0", timeout_s=0.5)
    assert not down.forgot() and not down.may_have_lost(time.time())
    rabbit = NoBrokerMemory()
    assert not rabbit.forgot() and not rabbit.may_have_lost(time.time())
