"""PostgreSQL frozen mid-send: the send waits, then finishes within seconds of its return,
every reader once.

A private cluster (initdb) is frozen with SIGSTOP for 10 s a quarter into a 4,000-reader send
(a storage stall, a paused VM): connections stay open and nothing answers. Before, batches
whose claims were in flight came back with leases already lapsed, another owner took them,
and both sent them (200 or 400 readers twice; core/leases.py)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.reliability.harness import (
    PostgresServer,
    RedisServer,
    bulk_subscribe,
    received_tokens,
    rig,
)
from tests.support.services import require_service
from tests.support.stack import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.timeout(300)]

AUDIENCE = 4000
FROZEN_S = 10.0


def test_a_send_through_a_frozen_database_finishes_after_it_with_no_reader_twice(
    tmp_path: Path, vapid_pem: str
) -> None:
    require_service("PostgreSQL's initdb", PostgresServer.bin_dir() is not None, "apt postgresql")
    database = PostgresServer().start()
    redis = RedisServer(tmp_path / "redis", appendonly=False).start()
    try:
        with rig(tmp_path, database.url, redis.url, vapid_pem, standin=True, BATCH_SIZE="200") as r:
            bulk_subscribe(r.store, r.standin.create_subscriptions(AUDIENCE), ["breaking"])
            r.start({"w1": 2}, beat=True)
            alert_id = r.publish()
            wait_until(
                lambda: len(received_tokens(r.standin, alert_id)) >= AUDIENCE // 4,
                60,
                "a quarter",
                interval_s=0.02,
            )
            database.freeze()
            time.sleep(FROZEN_S)
            database.thaw()
            back = time.monotonic()
            final = r.wait_status(alert_id, "sent", 120)
            took_s = time.monotonic() - back
            got = received_tokens(r.standin, alert_id)
    finally:
        redis.stop()
        database.stop()
    twice = sum(n - 1 for n in got.values())
    print(f"\nPostgreSQL frozen {FROZEN_S:.0f} s: sent {took_s:.1f} s after it, {twice} twice")
    assert len(got) == AUDIENCE and twice == 0, twice
    assert final["counts"]["delivered"] == AUDIENCE
    assert took_s < 30, took_s
