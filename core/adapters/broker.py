"""What the broker holds: each queue's depth and the age of its oldest waiting task.

Age comes from a header every Newsflash publisher stamps on its task messages
(ENQUEUED_AT_HEADER, seconds since the epoch, added by a Celery before_task_publish handler).
Redis: the queue is a list; LLEN is the depth and the oldest message is the tail (LINDEX -1),
read without taking it. RabbitMQ: a passive queue_declare gives the ready message count and the
consumer count; the head message is peeked with basic_get and put straight back with
basic_reject(requeue=True), which RabbitMQ returns to its original position (the same thing the
management UI's "Get messages" does).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from typing import Any, Final

import redis

from core.adapters.telemetry import fast_failing_client
from core.ops import QueueProbe, QueueStat

ENQUEUED_AT_HEADER: Final = "nf_enqueued_at"
# kombu's Redis transport keeps priorities 3, 6, 9 in sibling lists named queue + sep + n.
REDIS_PRIORITY_SUFFIXES: Final = ("", "\x06\x163", "\x06\x166", "\x06\x169")
TIMEOUT_S: Final = 2.0

log = logging.getLogger("newsflash.broker")


class BrokerUnreachable(Exception):
    """The broker did not answer; the message names the error type, never the URL."""


def enqueued_at(headers: object) -> float | None:
    if not isinstance(headers, dict):
        return None
    value = headers.get(ENQUEUED_AT_HEADER)
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


class RedisQueueProbe:
    """Reads kombu's Redis lists directly (read only: nothing is taken from a queue)."""

    def __init__(self, url: str, timeout_s: float = TIMEOUT_S) -> None:
        self.client = fast_failing_client(url, timeout_s)

    def ping(self) -> None:
        try:
            self.client.ping()
        except redis.RedisError as exc:
            raise BrokerUnreachable(type(exc).__name__) from None

    def queue_stats(self, names: Sequence[str]) -> list[QueueStat]:
        try:
            pipe = self.client.pipeline(transaction=False)
            for name in names:
                for suffix in REDIS_PRIORITY_SUFFIXES:
                    pipe.llen(name + suffix)
                    pipe.lindex(name + suffix, -1)
            answers = pipe.execute()
        except redis.RedisError as exc:
            raise BrokerUnreachable(type(exc).__name__) from None
        stats = []
        per_queue = 2 * len(REDIS_PRIORITY_SUFFIXES)
        for i, name in enumerate(names):
            chunk = answers[i * per_queue : (i + 1) * per_queue]
            depth = sum(int(n) for n in chunk[0::2])
            oldest = [t for t in (_redis_enqueued_at(raw) for raw in chunk[1::2]) if t is not None]
            stats.append(QueueStat(name, depth, min(oldest) if oldest else None))
        return stats


def _redis_enqueued_at(raw: bytes | None) -> float | None:
    if raw is None:
        return None
    try:
        message = json.loads(raw)
    except ValueError:
        return None
    return enqueued_at(message.get("headers")) if isinstance(message, dict) else None


class AmqpQueueProbe:
    """RabbitMQ over AMQP 0-9-1: passive declares (no queue is ever created) and a peek."""

    def __init__(self, url: str, timeout_s: float = TIMEOUT_S) -> None:
        self.url = url
        self.timeout_s = timeout_s

    def _connect(self) -> Any:
        from kombu.connection import Connection

        conn: Any = Connection(self.url, connect_timeout=self.timeout_s)  # type: ignore[no-untyped-call]
        try:
            conn.ensure_connection(max_retries=1, interval_start=0, timeout=self.timeout_s)
        except Exception as exc:
            conn.release()
            raise BrokerUnreachable(type(exc).__name__) from None
        return conn

    def ping(self) -> None:
        self._connect().release()

    def queue_stats(self, names: Sequence[str]) -> list[QueueStat]:
        from amqp.exceptions import NotFound

        conn = self._connect()
        stats = []
        try:
            channel = conn.channel()
            for name in names:
                try:
                    _q, depth, consumers = channel.queue_declare(queue=name, passive=True)
                except NotFound:
                    # A passive declare of a missing queue closes the channel: open another.
                    channel = conn.channel()
                    stats.append(QueueStat(name, 0, None, 0))
                    continue
                oldest = self._peek(channel, name) if depth else None
                stats.append(QueueStat(name, int(depth), oldest, int(consumers)))
            channel.close()
        except BrokerUnreachable:
            raise
        except Exception as exc:
            raise BrokerUnreachable(type(exc).__name__) from None
        finally:
            conn.release()
        return stats

    @staticmethod
    def _peek(channel: Any, name: str) -> float | None:
        message = channel.basic_get(queue=name, no_ack=False)
        if message is None:
            return None
        try:
            headers = getattr(message, "headers", None) or message.properties.get(
                "application_headers"
            )
            return enqueued_at(headers)
        finally:
            channel.basic_reject(message.delivery_tag, requeue=True)


def queue_probe(broker_url: str) -> QueueProbe:
    if broker_url.startswith(("amqp://", "amqps://", "pyamqp://")):
        return AmqpQueueProbe(broker_url)
    return RedisQueueProbe(broker_url)


def stamp_headers(headers: dict[str, Any], now: float | None = None) -> None:
    """Called for every task message a Newsflash process publishes (a retry is a new message,
    so it gets a new stamp even when Celery copies the old headers)."""
    headers[ENQUEUED_AT_HEADER] = round(time.time() if now is None else now, 3)


BROKER_MARKER_KEY: Final = "newsflash:broker-memory"


class RedisBrokerMemory:
    """A marker key beside the queues in the broker's Redis: written with the queued tasks (the
    same append-only file, the same FLUSHALL), so when it is gone, they are gone too."""

    def __init__(self, url: str, timeout_s: float = TIMEOUT_S) -> None:
        self.client = fast_failing_client(url, timeout_s)

    def forgot(self) -> bool:
        try:
            return bool(self.client.set(BROKER_MARKER_KEY, str(round(time.time())), nx=True))
        except redis.RedisError:
            return False

    def may_have_lost(self, since: float) -> bool:
        """A consumer's connection broke at `since`: a task the broker was handing it then
        (popped from its queue, not yet recorded as unacknowledged) is gone, though the broker
        kept everything else. Removing the marker makes the next sweep send every queued batch
        again, unless a sweep already found it missing after `since`. True when removed."""
        try:
            stamp = self.client.get(BROKER_MARKER_KEY)
            if stamp is not None and float(stamp) < since:
                return bool(self.client.delete(BROKER_MARKER_KEY))
        except (redis.RedisError, ValueError):
            pass
        return False


class NoBrokerMemory:
    """RabbitMQ keeps durable queues and persistent messages across restarts, and redelivers
    what an unacknowledged consumer held; a RabbitMQ that comes back empty is found by the
    reconciler after NEWSFLASH_STALE_AFTER_S."""

    def forgot(self) -> bool:
        return False

    def may_have_lost(self, since: float) -> bool:
        return False


def broker_memory(broker_url: str) -> RedisBrokerMemory | NoBrokerMemory:
    if broker_url.startswith(("amqp://", "amqps://", "pyamqp://")):
        return NoBrokerMemory()
    return RedisBrokerMemory(broker_url)
