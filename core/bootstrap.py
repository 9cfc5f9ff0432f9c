"""The composition root: builds the adapters from Settings once per process (after any fork)."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from functools import cached_property

import redis
from sqlalchemy import Engine

from config.settings import Settings
from core.adapters.hosts import RedisHostHealth
from core.adapters.sql import SqlStore, make_engine, sync_topics
from core.adapters.webpush import Http11PushSender, SenderConfig, VapidSigner
from core.alerts import AlertRules
from core.delivery import DeliveryPolicy
from core.endpoints import EndpointPolicy
from core.receipts import Receipts, receipt_key


class StartupError(Exception):
    """A setting or a key that stops start-up; the message is one clear line."""


@dataclass
class Container:
    settings: Settings
    _pid: int = field(default_factory=os.getpid)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @cached_property
    def engine(self) -> Engine:
        return make_engine(self.settings.database_url)

    @cached_property
    def store(self) -> SqlStore:
        return SqlStore(self.engine, sync_topics(self.engine, self.settings.topics))

    @cached_property
    def redis(self) -> redis.Redis[bytes]:
        return redis.Redis.from_url(
            self.settings.redis_url,
            socket_timeout=5,
            socket_connect_timeout=3,
            health_check_interval=30,
        )

    @cached_property
    def hosts(self) -> RedisHostHealth:
        return RedisHostHealth(self.redis)

    @cached_property
    def signer(self) -> VapidSigner:
        return load_signer(self.settings)

    @cached_property
    def sender(self) -> Http11PushSender:
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

    @cached_property
    def endpoint_policy(self) -> EndpointPolicy:
        return EndpointPolicy(self.settings.push_hosts, self.settings.allow_loopback_push)

    @cached_property
    def alert_rules(self) -> AlertRules:
        s = self.settings
        return AlertRules(
            public_origins=s.public_origins,
            topics=s.topic_slugs,
            default_topics=tuple(t.slug for t in s.topics if t.default),
            default_ttl_s=s.default_ttl_s,
            timezone=s.newsroom_timezone,
        )

    @cached_property
    def delivery_policy(self) -> DeliveryPolicy:
        s = self.settings
        return DeliveryPolicy(
            batch_size=s.batch_size,
            retry_max_attempts=s.retry_max_attempts,
            retry_base_s=s.retry_base_s,
            retry_cap_s=s.retry_cap_s,
            stale_after_s=s.stale_after_s,
            breaker_open_s=s.breaker_open_s,
            endpoints=self.endpoint_policy,
            receipts=self.receipts,
        )

    @cached_property
    def receipts(self) -> Receipts | None:
        key = receipt_key(self.settings.secret_key)
        return None if key is None else Receipts(key)

    def reset_after_fork(self) -> None:
        """Connections must not cross a fork: drop them so the child opens its own."""
        for name in ("engine", "store", "redis", "hosts", "sender"):
            self.__dict__.pop(name, None)
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
