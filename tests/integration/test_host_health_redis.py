"""RedisHostHealth on a real Redis: holds shared between processes, one round trip per throttle."""

from __future__ import annotations

import redis as redis_lib
from redis.backoff import NoBackoff
from redis.retry import Retry

from core.adapters.hosts import READ_EVERY_S, SHARE_SLACK_S, RedisHostHealth
from core.ports import PushResult
from core.rejections import RejectionJudge

HOST = "updates.push.services.mozilla.com"


class CountingRedis(redis_lib.Redis):  # type: ignore[type-arg]
    """The real client, counting the commands it sends."""

    sent = 0

    def execute_command(self, *args, **options):  # type: ignore[no-untyped-def]
        self.sent += 1
        return super().execute_command(*args, **options)


def test_a_throttle_answered_by_hundreds_of_requests_is_shared_once(clean_redis: str) -> None:
    client = CountingRedis(connection_pool=redis_lib.ConnectionPool.from_url(clean_redis))
    now = 1_000.0
    one = RedisHostHealth(client, clock=lambda: now)
    other = RedisHostHealth(redis_lib.Redis.from_url(clean_redis), clock=lambda: now)

    one.hold(HOST, now + 10, "HTTP 429")
    assert other.blocked_until(HOST, now) == now + 10

    before = client.sent
    for k in range(400):  # a full window of 429s, answered over 0.2 s
        one.hold(HOST, now + 10 + k * 0.0005, "HTTP 429")
    assert client.sent == before  # within SHARE_SLACK_S of what is shared: no round trip

    one.hold(HOST, now + 10 + 2 * SHARE_SLACK_S, "HTTP 429")  # a later Retry-After: shared
    assert other.blocked_until(HOST, now) == now + 10 + 2 * SHARE_SLACK_S

    # Another process's longer hold wins; this one's shorter one does not shorten it.
    other.hold(HOST, now + 30, "HTTP 429")
    one.hold(HOST, now + 20, "HTTP 429")
    assert one.blocked_until(HOST, now) == now + 30


def test_a_closed_breaker_is_shared_again_when_it_reopens(clean_redis: str) -> None:
    client = redis_lib.Redis.from_url(clean_redis)
    now = 1_000.0
    health = RedisHostHealth(client, clock=lambda: now)
    health.open_breaker(HOST, now + 60, "HTTP 503")
    health.close_breaker(HOST)
    assert health.blocked_until(HOST, now) is None
    health.open_breaker(HOST, now + 60, "HTTP 503")
    assert RedisHostHealth(client, clock=lambda: now).blocked_until(HOST, now) == now + 60


def test_a_process_keeps_to_its_own_hold_at_once_and_reads_others_once_a_second(
    clean_redis: str,
) -> None:
    """The sender asks before every push: Redis is read at most once per READ_EVERY_S, but a
    hold this process sets stops its very next push (not up to a second of 429s later)."""
    client = CountingRedis(connection_pool=redis_lib.ConnectionPool.from_url(clean_redis))
    now = 1_000.0
    here = RedisHostHealth(client, clock=lambda: now, read_every_s=READ_EVERY_S)
    elsewhere = RedisHostHealth(redis_lib.Redis.from_url(clean_redis), clock=lambda: now)

    assert here.blocked_until(HOST, now) is None
    before = client.sent
    for k in range(1000):
        assert here.blocked_until(HOST, now + k * 0.0005) is None
    assert client.sent == before  # one read per second, not one per push

    here.hold(HOST, now + 10, "HTTP 429")
    assert here.blocked_until(HOST, now + 0.001) == now + 10  # its own hold: at once

    elsewhere.hold(HOST, now + 30, "HTTP 429")  # another process's longer hold
    assert here.blocked_until(HOST, now + 0.5) == now + 10  # within the second: not yet
    assert here.blocked_until(HOST, now + READ_EVERY_S) == now + 30  # read again: seen

    here.close_breaker(HOST)
    assert here.blocked_until(HOST, now + READ_EVERY_S + 0.001) is None


def test_an_unreachable_redis_is_asked_once_a_second_not_before_every_push() -> None:
    """While Redis is away the process keeps to the holds it knows, and asks again after
    READ_EVERY_S: not once per push, each a connection attempt on the sender's loop."""
    client = CountingRedis(  # nothing listens there; no client-side retries to wait for
        host="127.0.0.1", port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0)
    )
    now = 1_000.0
    health = RedisHostHealth(client, clock=lambda: now, read_every_s=READ_EVERY_S)
    health.hold(HOST, now + 10, "HTTP 429")  # not shared (unreachable), kept here
    before = client.sent
    for k in range(500):
        assert health.blocked_until(HOST, now + k * 0.001) == now + 10
    assert client.sent - before <= 1
    assert health.blocked_until(HOST, now + READ_EVERY_S + 0.5) == now + 10
    assert client.sent - before <= 2


def test_a_delivery_in_one_process_is_proof_in_another(clean_redis: str) -> None:
    """A worker whose batch holds only refused readers judges them with every worker's
    deliveries to the host (core/rejections.py): a lone refusal never holds the host."""
    now = 1_000.0
    sender = RedisHostHealth(redis_lib.Redis.from_url(clean_redis), clock=lambda: now)
    judge_side = RedisHostHealth(redis_lib.Redis.from_url(clean_redis), clock=lambda: now)
    assert judge_side.last_delivered(HOST) is None
    sender.count(HOST, "2xx")
    sender.flush()
    fresh = RedisHostHealth(redis_lib.Redis.from_url(clean_redis), clock=lambda: now + 1)
    assert fresh.last_delivered(HOST) == now

    judge = RejectionJudge()
    assert judge.refused(fresh, PushResult(1, HOST, 403), 1, now + 1, 300.0).name == "PENDING"
    assert judge.refused(fresh, PushResult(1, HOST, 403), 2, now + 4, 300.0).name == "READER"
    assert judge_side.client.get("newsflash:host:" + HOST + ":breaker") is None
