"""A Redis that hangs (not the broker) during a fan-out: the send goes on at its own pace.

At scale the queues run on RabbitMQ (or a Redis of their own) and NEWSFLASH_REDIS_URL holds what
ops and the senders share: rate buckets, recent errors, queue marks, push-host holds. That Redis
hanging must cost a fan-out a few short timeouts, not one per flush or per batch. Before, the
rate buckets were written from the sender's event loop about twice a second, each write waiting
its 2 s timeout: a 2,000-reader fan-out had not finished after 240 s.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.adapters.telemetry import RATE_PREFIX
from tests.reliability.harness import (
    RedisServer,
    Rig,
    bulk_subscribe,
    received_tokens,
    rig,
    send_through_a_stall,
)
from tests.support.stack import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

AUDIENCE = 4000


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[tuple[RedisServer, RedisServer]]:
    broker = RedisServer(tmp_path / "broker", appendonly=False).start()
    shared = RedisServer(tmp_path / "shared", appendonly=False).start()
    try:
        yield broker, shared
    finally:
        shared.stop()  # thaws it first
        broker.stop()


def _send(r: Rig, shared: RedisServer | None) -> tuple[str, float]:
    """Publish to everyone (freezing `shared` once a quarter has it); seconds to the last."""
    r.standin.reset()
    started = time.monotonic()
    alert_id = r.publish()
    reached = lambda: len(received_tokens(r.standin, alert_id))  # noqa: E731
    if shared is not None:
        wait_until(lambda: reached() >= AUDIENCE // 4, 60, "a quarter", interval_s=0.02)
        shared.freeze()
    wait_until(lambda: reached() >= AUDIENCE, 60, "every reader", interval_s=0.05)
    return alert_id, time.monotonic() - started


def _counted(shared: RedisServer, alert_id: str) -> int:
    """What /ops's rate buckets hold for the alert."""
    client = shared.client()
    return sum(
        int(client.hget(key, f"alert:{alert_id}") or 0) for key in client.keys(RATE_PREFIX + "*")
    )


def test_a_hung_redis_does_not_stall_a_fan_out_on_another_broker(
    servers: tuple[RedisServer, RedisServer], tmp_path: Path, vapid_pem: str
) -> None:
    broker, shared = servers
    database = f"sqlite:///{tmp_path}/newsflash.db"
    with rig(
        tmp_path,
        database,
        shared.url,
        vapid_pem,
        standin=True,
        BROKER_URL=broker.url,
        BATCH_SIZE="200",
    ) as r:
        bulk_subscribe(r.store, r.standin.create_subscriptions(AUDIENCE), ["breaking"])
        r.start({"w1": 2}, beat=False)
        healthy, healthy_s = _send(r, None)
        wait_until(lambda: _counted(shared, healthy) == AUDIENCE, 10, "the healthy run counted")

        _hung, hung_s = _send(r, shared)
        print(f"\n{AUDIENCE} readers: {healthy_s:.1f} s, Redis frozen a quarter in {hung_s:.1f} s")
        # A process's first write waits its 2 s timeout; then nothing is asked for 5 s.
        assert hung_s < 2 * healthy_s + 6, (healthy_s, hung_s)

        shared.thaw()  # the rate buckets come back within a writer's wait
        after, _s = _send(r, None)
        wait_until(lambda: _counted(shared, after) == AUDIENCE, 15, "counts after the thaw")


def test_a_redis_broker_that_stalls_mid_send_loses_and_repeats_nothing(
    tmp_path: Path, vapid_pem: str
) -> None:
    """The embedded default: one Redis is the broker and the shared store. It stops answering
    for 8 s a quarter into a send (a fork for a snapshot of a big instance, a paused VM): the
    send finishes within seconds of its return, every reader once."""
    redis = RedisServer(tmp_path / "redis", appendonly=True).start()
    try:
        with rig(
            tmp_path,
            f"sqlite:///{tmp_path}/newsflash.db",
            redis.url,
            vapid_pem,
            standin=True,
            BATCH_SIZE="200",
        ) as r:
            subs = r.standin.create_subscriptions(AUDIENCE)
            bulk_subscribe(r.store, subs, ["breaking"])
            r.start({"w1": 2}, beat=True)
            final, took_s, got = send_through_a_stall(r, redis, 8, AUDIENCE)
    finally:
        redis.stop()
    print(f"\nRedis broker stalled 8 s: sent {took_s:.1f} s after it answered again")
    assert len(got) == AUDIENCE and sum(n - 1 for n in got.values()) == 0
    assert final["counts"]["delivered"] == AUDIENCE
    assert took_s < 30, took_s
