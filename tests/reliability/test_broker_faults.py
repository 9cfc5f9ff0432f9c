"""Broker faults: the Redis broker killed mid fan-out, restarted with its AOF or restarted empty.

Run with the default settings: the time from Redis's return to `sent` is what an operator gets;
`.venv/bin/pytest tests/reliability/test_broker_faults.py -s` prints it (docs/reliability.md).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from core.adapters.broker import BROKER_MARKER_KEY, REDIS_PRIORITY_SUFFIXES
from core.model import Lane
from standin.server import PushStandin
from tests.reliability.harness import (
    RedisServer,
    Rig,
    bulk_subscribe,
    received_tokens,
    rig,
    token_of,
)
from tests.support.services import create_pg_database, drop_pg_database, port_open, require_service
from tests.support.stack import Process, wait_until

pytestmark = [pytest.mark.solo, pytest.mark.slow, pytest.mark.postgres, pytest.mark.timeout(300)]

AUDIENCE = 3000
# Seconds from Redis's return until the first alert is `sent` (a machine shared with other work
# gets some room: runs alone take well under half of it).
SENT_BOUND_S = 30.0
# The alert published during the outage starts within a lease of Redis's return, then goes out
# at whatever rate two single-process workers manage on a shared machine.
DURING_BOUND_S = 90.0


@dataclass
class Broken:
    rig: Rig
    redis: RedisServer
    standin: PushStandin
    tokens: set[str]
    workers: list[Process]


@pytest.fixture(scope="module")
def broken(tmp_path_factory: pytest.TempPathFactory, vapid_pem: str) -> Iterator[Broken]:
    require_service("PostgreSQL", port_open("127.0.0.1", 5432), "127.0.0.1:5432")
    tmp = tmp_path_factory.mktemp("broker")
    redis = RedisServer(tmp / "redis").start()
    url = create_pg_database()
    try:
        # The private Redis is both the broker and the host-health store, as in production.
        with rig(tmp, url, redis.url, vapid_pem, standin=True, BATCH_SIZE="100") as r:
            subs = r.standin.create_subscriptions(AUDIENCE)
            bulk_subscribe(r.store, subs, ["breaking"])
            started = r.start({"w1": 1, "w2": 1})
            workers = [started["w1"], started["w2"]]
            yield Broken(r, redis, r.standin, {token_of(s["endpoint"]) for s in subs}, workers)
    finally:
        drop_pg_database(url)
        redis.stop()


def _publish_a_quarter_in(b: Broken, before: str) -> str:
    """Publish to everyone; returns once a quarter of the audience has the alert."""
    b.standin.reset()
    alert_id = b.rig.publish()
    wait_until(
        lambda: len(received_tokens(b.standin, alert_id)) >= AUDIENCE // 4,
        120,
        f"a quarter of the audience before {before}",
        interval_s=0.1,
    )
    return alert_id


def _publish_and_break(b: Broken, wipe: bool) -> tuple[str, str, float]:
    """Publish, kill the broker a quarter of the way in, publish again while it is down,
    restart it. Returns both alert ids and when the broker came back."""
    alert_id = _publish_a_quarter_in(b, "the broker dies")
    b.redis.kill()
    if wipe:
        b.redis.wipe()
    # An editor publishing during the outage is told it is queued, not shown an error.
    started = time.monotonic()
    during = b.rig.publish(topics=["sport", "breaking"])
    assert time.monotonic() - started < 15, "publishing hung on the dead broker"
    assert b.rig.alert(during)["status"] == "queued"
    b.redis.start()
    return alert_id, during, time.monotonic()


def _assert_everyone_reached_once_alive(b: Broken, alert_id: str) -> None:
    got = received_tokens(b.standin, alert_id)
    missing = b.tokens - set(got)
    assert not missing, f"{len(missing)} subscribers never got the alert"
    # Running batches are left to finish through a broker outage, so nothing is sent twice.
    assert sum(n - 1 for n in got.values()) == 0, "a broker restart sent duplicates"
    assert b.rig.alert(alert_id)["counts"]["pending"] == 0
    assert set(b.rig.batch_states(alert_id)) == {"done"}
    assert all(w.alive() for w in b.workers), "a worker died instead of reconnecting"
    assert b.rig.subscription_count() == AUDIENCE


def test_broker_killed_and_restarted_mid_fanout_workers_resume(broken: Broken) -> None:
    alert_id, during, back_at = _publish_and_break(broken, wipe=False)
    done = broken.rig.wait_status(alert_id, "sent", timeout_s=150)
    took = time.monotonic() - back_at
    got = received_tokens(broken.standin, alert_id)
    broken.rig.wait_status(during, "sent", timeout_s=90)
    took_during = time.monotonic() - back_at
    print(
        f"\nbroker restart (AOF): sent {took:.1f}s after Redis came back (the alert published "
        f"during the outage {took_during:.1f}s), duplicates {sum(n - 1 for n in got.values())}"
    )
    assert took <= SENT_BOUND_S and took_during <= DURING_BOUND_S
    assert done["counts"]["delivered"] == AUDIENCE
    _assert_everyone_reached_once_alive(broken, alert_id)
    _assert_everyone_reached_once_alive(broken, during)
    # The workers themselves consume again (not only the reconciler's re-sends): a new alert
    # published after the restart goes out at once.
    broken.standin.reset()
    fresh = broken.rig.publish()
    broken.rig.wait_status(fresh, "sent", timeout_s=90)
    assert set(received_tokens(broken.standin, fresh)) == broken.tokens


def test_broker_restarted_empty_the_reconciler_finishes_from_the_database(
    broken: Broken,
) -> None:
    alert_id, during, back_at = _publish_and_break(broken, wipe=True)
    assert broken.redis.client().dbsize() < 50, "the restarted Redis was not empty"
    done = broken.rig.wait_status(alert_id, "sent", timeout_s=120)
    took = time.monotonic() - back_at
    got = received_tokens(broken.standin, alert_id)
    broken.rig.wait_status(during, "sent", timeout_s=120 - (time.monotonic() - back_at))
    took_during = time.monotonic() - back_at
    print(
        f"\nbroker restart (empty): sent {took:.1f}s after Redis came back (the alert published "
        f"during the outage {took_during:.1f}s), duplicates {sum(n - 1 for n in got.values())}"
    )
    assert took <= SENT_BOUND_S and took_during <= DURING_BOUND_S
    assert done["counts"]["delivered"] == AUDIENCE
    _assert_everyone_reached_once_alive(broken, alert_id)
    _assert_everyone_reached_once_alive(broken, during)


def test_tasks_lost_with_a_broken_connection_are_sent_again_within_seconds(
    broken: Broken,
) -> None:
    """kombu's Redis transport pops a task, then records it as unacknowledged in a second
    command: a task between the two when the connection breaks is in neither place, though the
    broker keeps everything else (its marker too, so the sweep for an empty broker does not
    fire). Here every queued delivery task is lost that way, then the broker is killed and
    comes back with its append-only file. The workers, reconnecting, ask the next sweep to send
    the queued batches again; before, they waited for the reconciler (60 s)."""
    alert_id = _publish_a_quarter_in(broken, "the tasks are lost")
    client = broken.redis.client()
    lanes = [lane.value for lane in Lane]
    lost = client.delete(
        *(f"{lane}{suffix}" for lane in lanes for suffix in REDIS_PRIORITY_SUFFIXES)
    )
    assert client.exists(BROKER_MARKER_KEY), "the broker's marker should survive"
    broken.redis.kill()
    broken.redis.start()
    back_at = time.monotonic()
    done = broken.rig.wait_status(alert_id, "sent", timeout_s=150)
    took = time.monotonic() - back_at
    got = received_tokens(broken.standin, alert_id)
    print(
        f"\ntasks lost with the connection ({lost} queue lists): sent {took:.1f}s after Redis"
        f" came back, duplicates {sum(n - 1 for n in got.values())}"
    )
    assert lost, "no delivery task was queued to lose"
    assert took <= SENT_BOUND_S
    assert done["counts"]["delivered"] == AUDIENCE
    _assert_everyone_reached_once_alive(broken, alert_id)
