"""Loops that send many tasks (a plan's pages, the reconciler's stale batches) with the broker
hung: one timeout per loop, one warning, nothing lost (the reconciler sends the rest later).

Before, every item asked the hung broker again (5 s each on Redis, 4 s on AMQP) and logged a
traceback: these 30-batch runs took 150 s, and a loop past its task's soft time limit swallowed
that too (Celery's SoftTimeLimitExceeded is an Exception, as kombu's errors are)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from sqlalchemy import Engine

from core import delivery
from core.adapters.celery_queue import BROKER_SOCKET_TIMEOUT_S, CeleryTaskQueue
from core.adapters.stores_sql import SqlStores
from core.model import AlertStatus
from tests.support.fakes import RecordingQueue
from tests.support.samples import TOPICS, draft, sub
from tests.support.services import make_env, service_down, settings_from
from workers.factory import make_producer

POLICY = delivery.DeliveryPolicy(batch_size=2, retry_base_s=5, stale_after_s=30)
READERS = 60  # 30 batches
ONE_TRY_S = BROKER_SOCKET_TIMEOUT_S + 2  # one publish given up on, and the loop's own work
T = TypeVar("T")


@pytest.fixture(params=["redis hung", "amqp hung"])
def hung_queue(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[CeleryTaskQueue]:
    with service_down(request.param) as url:
        env = make_env(
            tmp_path / "var", "sqlite://", "redis://127.0.0.1:6379/0", "", BROKER_URL=url
        )
        yield CeleryTaskQueue(make_producer(settings_from(env)))


def _audience(store: SqlStores) -> int:
    for n in range(1, READERS + 1):
        store.subscriptions.upsert(sub(n), 1)
    alert, _ = store.alerts.create_alert(draft(), "k", AlertStatus.QUEUED, 0, 1000.0)
    return alert.id


def _within_one_timeout(caplog: pytest.LogCaptureFixture, run: Callable[[], T]) -> T:
    """`run` against the hung broker: done within one broker timeout, with one warning (how
    many batches are left for the reconciler) and no traceback."""
    caplog.set_level(logging.INFO)
    started = time.monotonic()
    found = run()
    took_s = time.monotonic() - started
    assert took_s < ONE_TRY_S, f"{took_s:.1f} s (before: one timeout per batch)"
    lines = [r for r in caplog.records if r.name.startswith("newsflash")]
    assert not [r for r in lines if r.levelno >= logging.ERROR or r.exc_info], "no traceback"
    warnings = [r.getMessage() for r in lines if r.levelno == logging.WARNING]
    said = [w for w in warnings if "broker unavailable" in w]
    assert len(said) == 1 and said[0].endswith("batches left for the reconciler: 30"), warnings
    return found


def _sent_once_by_the_reconciler(store: SqlStores, now: float) -> None:
    """Nothing lost: once the broker is back, the reconciler sends each batch, once."""
    queue = RecordingQueue()
    found = delivery.reconcile(store.recovery, queue, POLICY, clock=lambda: now)
    assert found == {"plans": 0, "batches": 30}
    assert len(set(queue.batches)) == 30


@pytest.mark.timeout(120)
def test_a_plan_with_the_broker_hung_commits_every_page_in_one_timeout(
    engine: Engine, hung_queue: CeleryTaskQueue, caplog: pytest.LogCaptureFixture
) -> None:
    store = SqlStores.build(engine, TOPICS)
    alert_id = _audience(store)
    planned = _within_one_timeout(
        caplog,
        lambda: delivery.plan_fanout(alert_id, store.planning, hung_queue, POLICY, lambda: 1000.0),
    )
    assert planned == READERS // 2
    _sent_once_by_the_reconciler(store, 1100.0)


@pytest.mark.timeout(120)
def test_the_reconciler_with_the_broker_hung_gives_up_in_one_timeout(
    engine: Engine, hung_queue: CeleryTaskQueue, caplog: pytest.LogCaptureFixture
) -> None:
    store = SqlStores.build(engine, TOPICS)
    alert_id = _audience(store)
    delivery.plan_fanout(alert_id, store.planning, RecordingQueue(), POLICY, lambda: 1000.0)
    found = _within_one_timeout(
        caplog, lambda: delivery.reconcile(store.recovery, hung_queue, POLICY, lambda: 1100.0)
    )
    assert found == {"plans": 0, "batches": 30}
    _sent_once_by_the_reconciler(store, 1200.0)  # the next run, the broker back
