"""PostgreSQL frozen mid-send: the send waits, then finishes within seconds of its return,
every reader once.

A private cluster (initdb) is frozen with SIGSTOP for 10 s a quarter into a 4,000-reader send
(a storage stall, a paused VM): connections stay open and nothing answers. Before, batches
whose claims were in flight came back with leases already lapsed, another owner took them,
and both sent them (200 or 400 readers twice; core/leases.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.reliability.harness import (
    PostgresServer,
    RedisServer,
    bulk_subscribe,
    rig,
    send_through_a_stall,
)
from tests.support.services import require_service

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
            final, took_s, got = send_through_a_stall(r, database, FROZEN_S, AUDIENCE)
    finally:
        redis.stop()
        database.stop()
    twice = sum(n - 1 for n in got.values())
    print(f"\nPostgreSQL frozen {FROZEN_S:.0f} s: sent {took_s:.1f} s after it, {twice} twice")
    assert len(got) == AUDIENCE and twice == 0, twice
    assert final["counts"]["delivered"] == AUDIENCE
    assert took_s < 30, took_s
