"""Ops state shared in Redis by every process: delivery rate buckets, recent errors, queue
consumption marks, alarm state and the short /ops cache. Nothing here is personal data:
errors carry endpoints already shortened to host + hash."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any, Final, TypeVar

import redis

RATE_PREFIX: Final = "newsflash:rate:"
RATE_KEEP_S: Final = 300
ERRORS_KEY: Final = "newsflash:errors"
ERRORS_KEEP: Final = 100
CONSUMED_KEY: Final = "newsflash:queues:consumed"
WAITING_KEY: Final = "newsflash:queues:waiting_since"
ALARM_PREFIX: Final = "newsflash:alarm:"
ALARM_INDEX: Final = "newsflash:alarms"
ALARM_OUTBOX: Final = "newsflash:alarms:outbox"
ALARM_PENDING: Final = "newsflash:alarms:pending"
EVALUATED_KEY: Final = "newsflash:alarms:evaluated_at"
CACHE_PREFIX: Final = "newsflash:ops:cache:"
OBSERVED_PREFIX: Final = "newsflash:observed:"
REFUSED_KEY: Final = "newsflash:database:refused"  # reason -> when a process last saw it
REFUSED_KEEP_S: Final = 86400

T = TypeVar("T")


def fast_failing_client(url: str, timeout_s: float = 2.0) -> redis.Redis[bytes]:
    """Ops asks Redis while things are broken: fail in one timeout, never retry with backoff
    (redis-py's default turns one call to a dead server into seconds)."""
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return redis.Redis.from_url(
        url,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry=Retry(NoBackoff(), 0),
    )


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisTelemetry:
    def __init__(self, client: redis.Redis[bytes]) -> None:
        self.client = client

    # -- delivery rate: one hash per second, fields are outcomes and "alert:<id>" ------------
    def add_counts(self, per_second: Mapping[int, Counter[str]]) -> None:
        if not per_second:
            return
        pipe = self.client.pipeline(transaction=False)
        for second, counts in per_second.items():
            key = f"{RATE_PREFIX}{second}"
            for field, n in counts.items():
                pipe.hincrby(key, field, n)
            pipe.expire(key, RATE_KEEP_S)
        pipe.execute()

    def counts_since(self, now: float, window_s: int) -> list[tuple[int, dict[str, int]]]:
        """(second, counts) for each of the last window_s whole seconds, oldest first."""
        last = int(now)
        seconds = list(range(last - window_s + 1, last + 1))
        pipe = self.client.pipeline(transaction=False)
        for second in seconds:
            pipe.hgetall(f"{RATE_PREFIX}{second}")
        answers = pipe.execute()
        return [
            (second, {_text(k): int(v) for k, v in raw.items()})
            for second, raw in zip(seconds, answers, strict=True)
        ]

    # -- recent errors ---------------------------------------------------------------------
    def add_errors(self, entries: list[dict[str, Any]]) -> None:
        if not entries:
            return
        pipe = self.client.pipeline(transaction=False)
        for entry in entries:
            pipe.lpush(ERRORS_KEY, json.dumps(entry))
        pipe.ltrim(ERRORS_KEY, 0, ERRORS_KEEP - 1)
        pipe.execute()

    def recent_errors(self, limit: int = 20) -> list[dict[str, Any]]:
        return [json.loads(raw) for raw in self.client.lrange(ERRORS_KEY, 0, limit - 1)]

    # -- queues ----------------------------------------------------------------------------
    def mark_consumed(self, queue: str, now: float) -> None:
        self.client.hset(CONSUMED_KEY, queue, repr(now))

    def consumed_at(self) -> dict[str, float]:
        return {_text(k): float(v) for k, v in self.client.hgetall(CONSUMED_KEY).items()}

    def track_waiting(self, depths: Mapping[str, int], now: float) -> dict[str, float]:
        """Remember since when each queue has had tasks waiting (cleared when it empties)."""
        pipe = self.client.pipeline(transaction=False)
        for name, depth in depths.items():
            if depth > 0:
                pipe.hsetnx(WAITING_KEY, name, repr(now))
            else:
                pipe.hdel(WAITING_KEY, name)
        pipe.hgetall(WAITING_KEY)
        raw = pipe.execute()[-1]
        return {_text(k): float(v) for k, v in raw.items()}

    def waiting_since(self) -> dict[str, float]:
        return {_text(k): float(v) for k, v in self.client.hgetall(WAITING_KEY).items()}

    # -- the database refusing writes, as any process saw it (core/adapters/db_errors.py) ----
    def note_refused(self, refused: Mapping[str, float]) -> None:
        """When each kind of refusal was last seen; a later time wins (ZADD GT), whichever
        process writes last."""
        if not refused:
            return
        pipe = self.client.pipeline(transaction=False)
        scores: dict[str | bytes, float] = {reason: at for reason, at in refused.items()}
        pipe.zadd(REFUSED_KEY, scores, gt=True)
        pipe.expire(REFUSED_KEY, REFUSED_KEEP_S)
        pipe.execute()

    def database_refusals(self) -> dict[str, float]:
        return {
            _text(k): float(v) for k, v in self.client.zrange(REFUSED_KEY, 0, -1, withscores=True)
        }

    # -- alarms: SET NX opens, DEL closes, so exactly one evaluator announces each change ----
    def open_alarm(self, key: str, record: dict[str, Any]) -> bool:
        opened = bool(self.client.set(ALARM_PREFIX + key, json.dumps(record), nx=True))
        if opened:
            self.client.sadd(ALARM_INDEX, key)
        return opened

    def update_alarm(self, key: str, record: dict[str, Any]) -> None:
        self.client.set(ALARM_PREFIX + key, json.dumps(record), xx=True)

    def close_alarm(self, key: str) -> dict[str, Any] | None:
        pipe = self.client.pipeline(transaction=True)
        pipe.get(ALARM_PREFIX + key)
        pipe.delete(ALARM_PREFIX + key)
        pipe.srem(ALARM_INDEX, key)
        raw, deleted, _ = pipe.execute()
        return json.loads(raw) if deleted and raw else None

    def alarms(self) -> dict[str, dict[str, Any]]:
        keys = sorted(_text(k) for k in self.client.smembers(ALARM_INDEX))
        if not keys:
            return {}
        values = self.client.mget([ALARM_PREFIX + k for k in keys])
        found = {}
        for key, raw in zip(keys, values, strict=True):
            if raw is None:
                self.client.srem(ALARM_INDEX, key)
            else:
                found[key] = json.loads(raw)
        return found

    def defer_notice(self, event: dict[str, Any]) -> None:
        self.client.rpush(ALARM_OUTBOX, json.dumps(event))
        self.client.ltrim(ALARM_OUTBOX, -100, -1)

    def take_notices(self, limit: int = 20) -> list[dict[str, Any]]:
        taken = []
        for _ in range(limit):
            raw = self.client.lpop(ALARM_OUTBOX)
            if raw is None:
                break
            taken.append(json.loads(raw))
        return taken

    def note_pending(self, keys: set[str], now: float) -> dict[str, float]:
        """Since when each alarm in `keys` has been observed; every other key is forgotten."""
        pipe = self.client.pipeline(transaction=False)
        for key in keys:
            pipe.hsetnx(ALARM_PENDING, key, repr(now))
        pipe.hgetall(ALARM_PENDING)
        raw = pipe.execute()[-1]
        seen = {_text(k): float(v) for k, v in raw.items()}
        stale = [k for k in seen if k not in keys]
        if stale:
            self.client.hdel(ALARM_PENDING, *stale)
        return {k: v for k, v in seen.items() if k in keys}

    def mark_evaluated(self, now: float) -> None:
        self.client.set(EVALUATED_KEY, repr(now), ex=3600)

    def evaluated_at(self) -> float | None:
        raw = self.client.get(EVALUATED_KEY)
        return None if raw is None else float(raw)

    def first_time(self, what: str, ttl_s: int = 7 * 86400) -> bool:
        """True once per `what` across all processes (e.g. observing one alert's finish)."""
        return bool(self.client.set(OBSERVED_PREFIX + what, "1", nx=True, ex=ttl_s))

    # -- a short shared cache, so many /ops viewers cost one broker round per period -------
    def cached(
        self, name: str, ttl_s: float, compute: Callable[[], T], dump: Callable[[T], str]
    ) -> str:
        if ttl_s <= 0:
            return dump(compute())
        key = CACHE_PREFIX + name
        hit = self.client.get(key)
        if hit is not None:
            return _text(hit)
        if not self.client.set(key + ":lock", "1", nx=True, px=max(1000, int(ttl_s * 3000))):
            deadline = time.monotonic() + min(3.0, ttl_s * 2)
            while time.monotonic() < deadline:
                time.sleep(0.05)
                hit = self.client.get(key)
                if hit is not None:
                    return _text(hit)
        try:
            text = dump(compute())
            self.client.set(key, text, px=max(1, int(ttl_s * 1000)))
            return text
        finally:
            self.client.delete(key + ":lock")
