"""RedisHostHealth on a real Redis: holds shared between processes, one round trip per throttle."""

from __future__ import annotations

import redis as redis_lib

from core.adapters.hosts import SHARE_SLACK_S, RedisHostHealth

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
