"""The composition root: every part built once, kept in one explicit map, dropped after a fork."""

from __future__ import annotations

from pathlib import Path

from config.settings import load_settings
from core.adapters import migrate
from core.adapters.celery_queue import CeleryTaskQueue
from core.bootstrap import Container
from tests.support.services import new_vapid_pem


def _container(tmp_path: Path) -> Container:
    env = {
        "NEWSFLASH_DATABASE_URL": f"sqlite:///{tmp_path}/c.db",
        "NEWSFLASH_VAPID_PRIVATE_KEY": new_vapid_pem(),
        "NEWSFLASH_VAPID_SUBJECT": "mailto:ops@news.example",
    }
    c = Container(load_settings(environ=env, env_file=None))
    migrate.upgrade(c.engine)
    return c


def test_parts_are_built_once_and_never_cached_on_the_objects_dict(tmp_path: Path) -> None:
    c = _container(tmp_path)
    assert c.newsroom is c.newsroom and c.readers is c.readers and c.delivery is c.delivery
    assert c.newsroom.alerts is c.sql.alerts and c.newsroom.audit_log is c.accounts
    assert c.delivery.ledger is c.sql.ledger and c.readers.subscriptions is c.sql.subscriptions
    assert isinstance(c.queue, CeleryTaskQueue) and c.queue.app is c.celery
    assert not {"engine", "sql", "newsroom", "_ops_kits"} & set(vars(c))


def test_a_fork_drops_what_holds_a_connection_and_keeps_the_rules(tmp_path: Path) -> None:
    c = _container(tmp_path)
    engine, sql, rules, room = c.engine, c.sql, c.alert_rules, c.newsroom
    c.reset_after_fork()
    assert c.engine is not engine and c.sql is not sql and c.newsroom is not room
    assert c.newsroom.alerts is c.sql.alerts
    assert c.alert_rules is rules


def test_a_worker_container_sends_through_the_workers_own_app(tmp_path: Path) -> None:
    c = _container(tmp_path)
    producer = c.celery
    worker = Container(c.settings, producer=producer)
    assert worker.celery is producer and worker.queue.app is producer


def test_the_feeds_and_the_readiness_gate_share_the_newsroom_and_the_plan_task(
    tmp_path: Path,
) -> None:
    c = _container(tmp_path)
    assert c.feeds.newsroom is c.newsroom and c.feeds.audit_log is c.accounts
    # One gate: the newsroom opens it, the plan task asks it, beat checks it.
    assert c.newsroom.gate is c.readiness and c.delivery.gate is c.readiness
    # Opt-in (NEWSFLASH_WAIT_FOR_ARTICLE=on): off by default, publishing sends at once.
    assert not c.readiness.policy.enabled and c.readiness.policy.wait_s == 60
    assert c.feed_fetcher.max_bytes == 1_048_576 and not c.feed_fetcher.allow_loopback
