"""Per push-host state in Redis, shared by every worker: Retry-After holds, breaker, answer counts."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from typing import Any

import redis

PREFIX = "newsflash:host:"
ANSWERS_KEY = "newsflash:answers"
# When any worker last had a 2xx from a host, kept this long (core/rejections.py's proof).
DELIVERED_PREFIX = "newsflash:host-delivered:"
DELIVERED_TTL_S = 120
COUNT_FLUSH_S = 1.0
# A hold or breaker this process has just shared is not shared again unless it ends later by
# more than this (Retry-After itself counts in whole seconds).
SHARE_SLACK_S = 0.25
# How often a delivery process asks Redis whether a host is held (it asks before every push):
# another process's hold reaches it within this; a hold this process sets, at once.
READ_EVERY_S = 1.0
# The sender asks from its event loop: a Redis that hangs (accepts, never answers) must cost it
# a short timeout now and then, not its every push. After a failure nothing is asked for AWAY_S;
# the process keeps to the holds it knows and keeps its counts. The client's own timeout (the
# container's hosts client) is HOSTS_TIMEOUT_S.
AWAY_S = 5.0
HOSTS_TIMEOUT_S = 0.5

log = logging.getLogger("newsflash.hosts")


class RedisHostHealth:
    """Holds and breakers expire by themselves (Redis TTL); answer counts are buffered in-process
    and flushed about once a second, so the hot path costs no round trip per push.

    Redis going away must not stop a fan-out half way (a batch that dies before it records
    what it sent resends it): while it is unreachable each process keeps to the holds it
    last saw or set itself, and keeps its counts until Redis is back.

    With `read_every_s` a host's state is read from Redis at most that often (the sender asks
    before every push); a hold or breaker set through this object applies here at once, so the
    requests a process sends after its own first 429 are not answered 429 too.
    """

    def __init__(
        self, client: redis.Redis[bytes], clock: Any = time.time, read_every_s: float = 0.0
    ) -> None:
        self.client = client
        self.clock = clock
        self.read_every_s = read_every_s
        self._read: dict[str, tuple[float | None, float]] = {}  # host -> (until, read at)
        self._counts: Counter[tuple[str, str]] = Counter()
        self._last_flush = clock()
        self._lock = threading.Lock()
        self._known: dict[str, float] = {}  # host -> latest hold seen or set by this process
        self._shared: dict[tuple[str, str], float] = {}  # (host, kind) -> until set in Redis
        self._delivered: dict[str, tuple[float | None, float]] = {}  # host -> (at, read at)
        self._away_until = float("-inf")  # Redis failed: not asked again before this

    def _away(self, now: float | None = None) -> bool:
        return (self.clock() if now is None else now) < self._away_until

    def _failed(self, what: str, exc: Exception) -> None:
        self._away_until = self.clock() + AWAY_S
        log.warning("%s; Redis not asked again for %.0f s: %s", what, AWAY_S, type(exc).__name__)

    def blocked_until(self, host: str, now: float) -> float | None:
        cached = self._read.get(host)
        if cached is not None and now - cached[1] < self.read_every_s:
            until = cached[0]
        else:
            # A failed read is remembered too: asked again after read_every_s, not before
            # every push (each would wait for a connection attempt on the sender's loop).
            until = self._known.get(host) if self._away(now) else self._fetch(host)
            self._read[host] = (until, now)
        return until if until is not None and until > now else None

    def _fetch(self, host: str) -> float | None:
        """The later of the host's hold and breaker in Redis, or the last known when it is away."""
        try:
            values = self.client.mget(PREFIX + host + ":hold", PREFIX + host + ":breaker")
        except redis.RedisError as exc:
            self._failed("host state unreachable; using the last known holds", exc)
            return self._known.get(host)
        until = None
        for raw in values:
            if raw is None:
                continue
            value = float(json.loads(raw)["until"])
            until = value if until is None else max(until, value)
        if until is None:
            self._known.pop(host, None)
        else:
            self._known[host] = until
        return until

    def _set(self, host: str, kind: str, until: float, reason: str) -> None:
        self._known[host] = max(until, self._known.get(host, 0.0))
        cached = self._read.get(host)
        if cached is not None and (cached[0] is None or cached[0] < until):
            self._read[host] = (until, cached[1])
        # Every answer of a throttling host asks for the hold (hundreds in flight answer 429
        # within a few milliseconds): one round trip per SHARE_SLACK_S is enough.
        shared = self._shared.get((host, kind), 0.0)
        if until <= shared + SHARE_SLACK_S or self._away():
            return  # already shared; or kept here until Redis answers (the next one shares it)
        key = PREFIX + host + ":" + kind
        ttl_ms = max(1, int((until - self.clock()) * 1000))
        try:
            current = self.client.get(key)
            held = None if current is None else float(json.loads(current)["until"])
            if held is not None and held >= until:
                self._shared[(host, kind)] = held
                return
            self.client.set(key, json.dumps({"until": until, "reason": reason}), px=ttl_ms)
            self._shared[(host, kind)] = until
        except redis.RedisError as exc:
            self._failed(f"could not share a {kind} for a push host", exc)

    def hold(self, host: str, until: float, reason: str) -> None:
        self._set(host, "hold", until, reason)

    def open_breaker(self, host: str, until: float, reason: str) -> None:
        self._set(host, "breaker", until, reason)

    def close_breaker(self, host: str) -> None:
        self._read.pop(host, None)
        self._shared.pop((host, "breaker"), None)
        self._shared.pop((host, "hold"), None)
        if self._away():
            return  # both keys expire by themselves
        try:
            self.client.delete(PREFIX + host + ":breaker", PREFIX + host + ":hold")
        except redis.RedisError as exc:
            self._failed("could not close a push host's breaker", exc)

    def count(self, host: str, answer: str) -> None:
        with self._lock:
            self._counts[(host, answer)] += 1
            due = self.clock() - self._last_flush >= COUNT_FLUSH_S
        if due:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            counts, self._counts = self._counts, Counter()
            self._last_flush = self.clock()
        if not counts:
            return
        if self._away():
            with self._lock:
                self._counts.update(counts)
            return
        now = self.clock()
        pipe = self.client.pipeline(transaction=False)
        for (host, answer), n in counts.items():
            pipe.hincrby(ANSWERS_KEY, f"{host}|{answer}", n)
            if answer == "2xx":
                pipe.set(DELIVERED_PREFIX + host, repr(now), ex=DELIVERED_TTL_S)
        try:
            pipe.execute()
        except redis.RedisError as exc:
            self._failed("answer counts kept for later", exc)
            with self._lock:
                self._counts.update(counts)

    def last_delivered(self, host: str) -> float | None:
        """Read at most every read_every_s per host; asked only on a refusal."""
        now = self.clock()
        cached = self._delivered.get(host)
        if (cached is not None and now - cached[1] < self.read_every_s) or self._away(now):
            return None if cached is None else cached[0]
        try:
            raw = self.client.get(DELIVERED_PREFIX + host)
        except redis.RedisError as exc:
            self._failed("last delivery unreadable", exc)
            return None if cached is None else cached[0]
        at = None if raw is None else float(raw)
        self._delivered[host] = (at, now)
        return at

    def states(self) -> dict[str, dict[str, Any]]:
        """Every host with a hold or an open breaker, for /ops and the alarms."""
        result: dict[str, dict[str, Any]] = {}
        for key in self.client.scan_iter(match=PREFIX + "*", count=500):
            name = key.decode() if isinstance(key, bytes) else str(key)
            host, _, kind = name.removeprefix(PREFIX).rpartition(":")
            raw = self.client.get(name)
            if raw is None:
                continue
            result.setdefault(host, {})[kind] = json.loads(raw)
        return result

    def answers(self) -> dict[str, dict[str, int]]:
        result: dict[str, dict[str, int]] = {}
        for field, value in self.client.hgetall(ANSWERS_KEY).items():
            text = field.decode() if isinstance(field, bytes) else str(field)
            host, _, answer = text.rpartition("|")
            result.setdefault(host, {})[answer] = int(value)
        return result


class MemoryHostHealth:
    """In-process HostHealth for unit tests and single-process tools (the port boundary)."""

    def __init__(self) -> None:
        self.holds: dict[str, tuple[float, str]] = {}
        self.breakers: dict[str, tuple[float, str]] = {}
        self.answers: Counter[tuple[str, str]] = Counter()

    def blocked_until(self, host: str, now: float) -> float | None:
        candidates = [
            v[0] for v in (self.holds.get(host), self.breakers.get(host)) if v and v[0] > now
        ]
        return max(candidates) if candidates else None

    def hold(self, host: str, until: float, reason: str) -> None:
        self.holds[host] = (until, reason)

    def open_breaker(self, host: str, until: float, reason: str) -> None:
        self.breakers[host] = (until, reason)

    def count(self, host: str, answer: str) -> None:
        self.answers[(host, answer)] += 1

    def last_delivered(self, host: str) -> float | None:
        return None  # one process: the judge's own view is the whole view
