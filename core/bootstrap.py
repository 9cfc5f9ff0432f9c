"""The composition root: builds the adapters from Settings once per process (after any fork)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import redis
from celery import Celery
from sqlalchemy import Engine

from config.settings import Settings
from core.adapters.accounts_sql import SqlAccounts
from core.adapters.alerts_sql import SqlAlerts
from core.adapters.articles import HttpArticleFetcher
from core.adapters.broker import broker_memory
from core.adapters.celery_queue import CeleryTaskQueue, make_producer
from core.adapters.choices_sql import SqlReaderChoices
from core.adapters.clock import make_clock
from core.adapters.duplicates_sql import SqlRecentAlerts
from core.adapters.feeds_sql import SqlFeeds
from core.adapters.fetch import BoundedFetcher
from core.adapters.gates_sql import SqlGates
from core.adapters.hosts import HOSTS_TIMEOUT_S, READ_EVERY_S, RedisHostHealth
from core.adapters.leases_sql import SqlBatchLeases
from core.adapters.newsroom_sql import SqlNewsroom
from core.adapters.ops_probes import OpsKit
from core.adapters.preferences_sql import SqlPreferences
from core.adapters.report_sql import SqlReports
from core.adapters.retention_sql import SqlRetention
from core.adapters.sql import make_engine
from core.adapters.stores_sql import SqlStores
from core.adapters.stories_sql import SqlStories
from core.adapters.subscriptions_sql import SqlSubscriptions
from core.adapters.telemetry import fast_failing_client
from core.adapters.templates_sql import SqlTemplates
from core.adapters.webpush import Http11PushSender, SenderConfig, VapidSigner
from core.alerts import AlertRules
from core.delivery import DeliveryPolicy
from core.endpoints import EndpointPolicy
from core.receipts import Receipts, receipt_key
from core.reports import TimedEvents
from core.retention import RetentionPolicy
from core.usecases.access import Access
from core.usecases.delivery import Delivery
from core.usecases.feeds import FeedPolicy, Feeds
from core.usecases.newsroom import Newsroom
from core.usecases.readers import ReaderRules, Readers
from core.usecases.readiness import Readiness, ReadinessPolicy
from core.usecases.stories import Stories
from core.usecases.templates import Templates
from core.utm import UtmTags


class StartupError(Exception):
    """A setting or a key that stops start-up; the message is one clear line."""


T = TypeVar("T")

# Parts that hold no connection: they survive a fork; everything else is rebuilt in the child.
_FORK_SAFE = frozenset(
    {
        "signer",
        "endpoint_policy",
        "alert_rules",
        "delivery_policy",
        "receipts",
        "fetcher",
        "feed_fetcher",
        "article_probe",
        "clock",
    }
)


@dataclass(eq=False)
class Container:
    """Every port and use case, built on first use from the settings, once per process.

    `producer` is the Celery app tasks are sent through; a worker passes its own, the web
    process gets a send-only one (it never imports the tasks).
    """

    settings: Settings
    producer: Celery | None = None
    _pid: int = field(default_factory=os.getpid)
    _lock: threading.RLock = field(default_factory=threading.RLock)
    _parts: dict[str, Any] = field(default_factory=dict)

    def _part(self, name: str, build: Callable[[], T]) -> T:
        with self._lock:
            if name not in self._parts:
                self._parts[name] = build()
            return cast(T, self._parts[name])

    # -- adapters ------------------------------------------------------------------------------
    @property
    def engine(self) -> Engine:
        return self._part(
            "engine", lambda: make_engine(self.settings.database_url, on_refused=self._refused)
        )

    def _refused(self, reason: str) -> None:
        self.ops.note_refused(reason)  # for /ops and beat's alarms

    @property
    def sql(self) -> SqlStores:
        """One SQL adapter per port over the engine (see core/adapters/stores_sql.py)."""
        return self._part("sql", lambda: SqlStores.build(self.engine, self.settings.topics))

    @property
    def subscriptions(self) -> SqlSubscriptions:
        return self.sql.subscriptions

    @property
    def alerts(self) -> SqlAlerts:
        return self.sql.alerts

    @property
    def clock(self) -> Callable[[], float]:
        """time.time, or the test clock when NEWSFLASH_TEST_CLOCK_FILE is set."""
        return self._part("clock", lambda: make_clock(self.settings.test_clock_file))

    @property
    def preferences(self) -> SqlPreferences:
        return self._part("preferences", lambda: SqlPreferences(self.engine))

    @property
    def choices(self) -> SqlReaderChoices:
        return self._part("choices", lambda: SqlReaderChoices(self.engine, self.sql.topics.mask_of))

    @property
    def story_store(self) -> SqlStories:
        return self._part("story_store", lambda: SqlStories(self.engine))

    @property
    def accounts(self) -> SqlAccounts:
        return self._part("accounts", lambda: SqlAccounts(self.engine))

    @property
    def newsroom_store(self) -> SqlNewsroom:
        return self.sql.newsroom

    @property
    def reports(self) -> SqlReports:
        return self._part(
            "reports", lambda: SqlReports(self.engine, max(30.0, self.settings.stale_after_s))
        )

    @property
    def redis(self) -> redis.Redis[bytes]:
        return self._part(
            "redis",
            lambda: redis.Redis.from_url(
                self.settings.redis_url,
                socket_timeout=5,
                socket_connect_timeout=3,
                health_check_interval=30,
            ),
        )

    @property
    def hosts(self) -> RedisHostHealth:
        # Its own client with a short timeout: the sender asks it from its event loop.
        return self._part(
            "hosts",
            lambda: RedisHostHealth(
                fast_failing_client(self.settings.redis_url, HOSTS_TIMEOUT_S),
                read_every_s=READ_EVERY_S,
            ),
        )

    @property
    def signer(self) -> VapidSigner:
        return self._part("signer", lambda: load_signer(self.settings))

    @property
    def sender(self) -> Http11PushSender:
        return self._part("sender", self._build_sender)

    def _build_sender(self) -> Http11PushSender:
        s = self.settings
        return Http11PushSender(
            self.signer,
            SenderConfig(
                concurrency=s.concurrency_per_process,
                concurrency_per_host=s.concurrency_per_host,
                adaptive=s.concurrency_mode == "adaptive",
                connect_timeout_s=s.connect_timeout_s,
                read_timeout_s=s.read_timeout_s,
                deadline_s=s.request_deadline_s,
                allow_loopback=s.allow_loopback_push,
                ca_file=s.push_ca_file,
                event_loop=s.event_loop,
            ),
            hosts=self.hosts,
        )

    @property
    def celery(self) -> Celery:
        """The Celery app tasks are sent through (the injected one, else a send-only producer)."""
        if self.producer is None:
            self.producer = make_producer(self.settings)
        return self.producer

    @property
    def queue(self) -> CeleryTaskQueue:
        return self._part("queue", lambda: CeleryTaskQueue(self.celery))

    @property
    def fetcher(self) -> HttpArticleFetcher:
        return self._part(
            "fetcher",
            lambda: HttpArticleFetcher(
                self.settings.public_origins, allow_loopback=self.settings.allow_loopback_push
            ),
        )

    @property
    def feed_fetcher(self) -> BoundedFetcher:
        s = self.settings
        return self._part(
            "feed_fetcher",
            lambda: BoundedFetcher(
                s.public_origins,
                allow_loopback=s.allow_loopback_push,
                max_bytes=s.feed_max_bytes,
                agent="Newsflash-Feeds/1",
            ),
        )

    @property
    def article_probe(self) -> BoundedFetcher:
        """The readiness gate's fetch: short timeouts, so a check never holds a worker long."""
        s = self.settings
        return self._part(
            "article_probe",
            lambda: BoundedFetcher(
                s.public_origins,
                allow_loopback=s.allow_loopback_push,
                timeout_s=2.0,
                deadline_s=3.0,
                agent="Newsflash-Readiness/1",
            ),
        )

    @property
    def feeds_store(self) -> SqlFeeds:
        return self._part("feeds_store", lambda: SqlFeeds(self.engine))

    @property
    def gates_store(self) -> SqlGates:
        return self._part("gates_store", lambda: SqlGates(self.engine))

    @property
    def ops(self) -> OpsKit:
        """The ops probes (queues, workers, telemetry, SQL queries) the dashboard and alarms read."""
        return self._part("ops", lambda: OpsKit(self.settings, self, self.celery))

    # -- rules from the settings ------------------------------------------------------------
    @property
    def endpoint_policy(self) -> EndpointPolicy:
        s = self.settings
        return self._part(
            "endpoint_policy", lambda: EndpointPolicy(s.push_hosts, s.allow_loopback_push)
        )

    @property
    def alert_rules(self) -> AlertRules:
        s = self.settings
        return self._part(
            "alert_rules",
            lambda: AlertRules(
                public_origins=s.public_origins,
                topics=s.topic_slugs,
                default_topics=tuple(t.slug for t in s.topics if t.default),
                default_ttl_s=s.default_ttl_s,
                timezone=s.newsroom_timezone,
                utm=self.utm_tags,
                default_lang=s.default_lang,
            ),
        )

    @property
    def utm_tags(self) -> UtmTags | None:
        s = self.settings
        return UtmTags(s.utm_source, s.utm_medium) if s.utm else None

    @property
    def delivery_policy(self) -> DeliveryPolicy:
        s = self.settings
        return self._part(
            "delivery_policy",
            lambda: DeliveryPolicy(
                batch_size=s.batch_size,
                retry_max_attempts=s.retry_max_attempts,
                retry_base_s=s.retry_base_s,
                retry_cap_s=s.retry_cap_s,
                stale_after_s=s.stale_after_s,
                lease_s=s.batch_lease_s,
                breaker_open_s=s.breaker_open_s,
                endpoints=self.endpoint_policy,
                receipts=self.receipts,
                default_lang=s.default_lang,
                utm=self.utm_tags,
                freshest_first=s.freshest_first,
            ),
        )

    @property
    def receipts(self) -> Receipts | None:
        def build() -> Receipts | None:
            key = receipt_key(self.settings.secret_key)
            return None if key is None else Receipts(key)

        return self._part("receipts", build)

    # -- use cases ---------------------------------------------------------------------------
    @property
    def newsroom(self) -> Newsroom:
        return self._part(
            "newsroom",
            lambda: Newsroom(
                alerts=self.sql.alerts,
                subscriptions=self.sql.subscriptions,
                queue=self.queue,
                newsroom=self.newsroom_store,
                audit=self.accounts,
                alert_rules=self.alert_rules,
                undo_window_s=self.settings.undo_window_s,
                recent=SqlRecentAlerts(self.engine),
                duplicate_window_s=self.settings.duplicate_window_s,
                templates=self.template_store,
                gate=self.readiness,
                clock=self.clock,
                stories=self.story_store,
                story_open_days=self.settings.story_open_days,
            ),
        )

    @property
    def readiness(self) -> Readiness:
        s = self.settings
        return self._part(
            "readiness",
            lambda: Readiness(
                gates=self.gates_store,
                alerts=self.sql.alerts,
                queue=self.queue,
                probe=self.article_probe,
                audit=self.accounts,
                policy=ReadinessPolicy(enabled=s.wait_for_article, wait_s=s.article_wait_s),
            ),
        )

    @property
    def feeds(self) -> Feeds:
        s = self.settings
        return self._part(
            "feeds",
            lambda: Feeds(
                store=self.feeds_store,
                fetcher=self.feed_fetcher,
                newsroom=self.newsroom,
                audit=self.accounts,
                alert_rules=self.alert_rules,
                policy=FeedPolicy(
                    poll_interval_s=s.feed_poll_interval_s, min_gap_s=s.feed_min_gap_s
                ),
            ),
        )

    @property
    def stories(self) -> Stories:
        return self._part(
            "stories",
            lambda: Stories(
                stories=self.story_store,
                alerts=self.sql.alerts,
                subscriptions=self.sql.subscriptions,
                queue=self.queue,
                audit=self.accounts,
                alert_rules=self.alert_rules,
                clock=self.clock,
            ),
        )

    @property
    def template_store(self) -> SqlTemplates:
        return self._part("template_store", lambda: SqlTemplates(self.engine))

    @property
    def templates(self) -> Templates:
        return self._part(
            "templates",
            lambda: Templates(self.template_store, self.accounts, self.settings.topic_slugs),
        )

    @property
    def readers(self) -> Readers:
        s = self.settings
        return self._part(
            "readers",
            lambda: Readers(
                subscriptions=self.sql.subscriptions,
                events=TimedEvents(self.sql.events, self.reports, time.time),
                receipts=self.receipts,
                rules=ReaderRules(
                    endpoints=self.endpoint_policy,
                    topics=s.topic_slugs,
                    default_topics=tuple(t.slug for t in s.topics if t.default),
                    default_lang=s.default_lang,
                    tombstone_days=s.tombstone_days,
                ),
                clock=self.clock,
                preferences=self.preferences,
                tombstones=self.sql.subscriptions,
            ),
        )

    @property
    def access(self) -> Access:
        return self._part("access", lambda: Access(self.accounts))

    @property
    def delivery(self) -> Delivery:
        return self._part(
            "delivery",
            lambda: Delivery(
                planning=self.sql.planning,
                ledger=self.sql.ledger,
                recovery=self.sql.recovery,
                queue=self.queue,
                sender=self.sender,
                hosts=self.hosts,
                housekeeping=self.sql.subscriptions,
                policy=self.delivery_policy,
                subscription_max_age_days=self.settings.subscription_max_age_days,
                gate=self.readiness,
                clock=self.clock,
                choices=self.choices,
                leases=SqlBatchLeases(self.engine),
                broker=broker_memory(self.settings.broker_url),
                retention=(
                    SqlRetention(self.engine, self.sql.alerts, self.newsroom_store),
                    retention_policy(self.settings),
                ),
            ),
        )

    def drain_sending(self, timeout_s: float) -> None:
        """Let batches the sender still has in flight be recorded (a stopping worker)."""
        if self._pid != os.getpid() or "delivery" not in self._parts:
            return
        self.delivery.drain(timeout_s)

    def reset_after_fork(self) -> None:
        """Connections must not cross a fork: drop them so the child opens its own."""
        with self._lock:
            for name in set(self._parts) - _FORK_SAFE:
                del self._parts[name]
        self._pid = os.getpid()


def load_signer(settings: Settings) -> VapidSigner:
    where = (
        f"NEWSFLASH_VAPID_PRIVATE_KEY_FILE ({settings.vapid_private_key_file})"
        if settings.vapid_private_key_file
        else "NEWSFLASH_VAPID_PRIVATE_KEY"
    )
    if not settings.vapid_private_key_pem:
        raise StartupError(f"{where}: no VAPID private key; run `newsflash init` or set it")
    try:
        VapidSigner(settings.vapid_private_key_pem, "mailto:check@newsflash.invalid")
    except Exception:
        # Never echo the key material: only say where it came from.
        raise StartupError(f"{where}: not a valid PEM P-256 private key") from None
    if not settings.vapid_subject:
        raise StartupError(
            "NEWSFLASH_VAPID_SUBJECT: expected a mailto: or https:// URL; run `newsflash init`"
        )
    return VapidSigner(settings.vapid_private_key_pem, settings.vapid_subject)


def retention_policy(settings: Settings) -> RetentionPolicy:
    return RetentionPolicy(
        ledger_days=settings.ledger_retention_days,
        audit_days=settings.audit_retention_days,
        churn_days=settings.churn_retention_days,
        webhook_days=settings.webhook_receipt_retention_days,
        tombstone_days=settings.tombstone_days,
        chunk=settings.retention_chunk,
    )
