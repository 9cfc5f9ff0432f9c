"""One push over a kept-alive connection: the request built and encrypted, the host's hold
respected, timeouts met through the slot's deadline, the connection reused or closed."""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable, Sequence

from core.adapters.http11 import RESPONSE_BODY_CAP, Connection, RefusedAddress, Route, connect
from core.adapters.push_crypto import VapidSigner, encrypt
from core.adapters.resolver import Resolver
from core.payload import MAX_PUSH_BODY
from core.ports import HostHealth, PushMessage, PushResult

log = logging.getLogger("newsflash.webpush")

Heads = dict[tuple[Route, int, str, str], bytes | None]

PRUNE_EVERY_S = 1.0


class Slot:
    """One of the sender's concurrent request loops and the deadline it is working to."""

    __slots__ = ("deadline", "expired", "overall", "task")

    def __init__(self) -> None:
        self.task: asyncio.Task[None] | None = None
        self.deadline: float | None = None  # monotonic; None between requests
        self.overall = 0.0
        self.expired = False

    def timed_out(self) -> bool:
        """Whether a CancelledError came from the watchdog (then it is taken back)."""
        if not self.expired or self.task is None:
            return False
        self.expired = False
        return self.task.uncancel() == 0


class PushClient:
    """What one request needs: the signer, the timeouts, the kept-alive connections per host."""

    def __init__(
        self,
        signer: VapidSigner,
        hosts: HostHealth | None,
        lookup: Callable[[str, int], Sequence[str]],
        clock: Callable[[], float],
        *,
        connect_timeout_s: float,
        read_timeout_s: float,
        deadline_s: float,
        allow_loopback: bool,
        ca_file: str | None,
    ) -> None:
        self.signer = signer
        self.hosts = hosts
        self.resolver = Resolver(lookup)
        self.clock = clock
        self.connect_timeout_s = connect_timeout_s
        self.read_timeout_s = read_timeout_s
        self.deadline_s = deadline_s
        self.allow_loopback = allow_loopback
        self.ca_file = ca_file
        self.idle: dict[tuple[str, str, int], list[Connection]] = {}
        self._next_prune = 0.0
        self._ssl: ssl.SSLContext | None = None

    def close_idle(self) -> None:
        for conns in self.idle.values():
            for conn in conns:
                conn.close()
        self.idle = {}

    def prune_idle(self, now: float, keep: int) -> None:
        """Close kept-alive connections past their keep-alive or closed by the service, then the
        least recently used beyond `keep` in all. With at most `keep` requests in flight that
        bounds a process's connections (and open files) at twice its request slots, however
        many push hosts it has sent to. At most once per PRUNE_EVERY_S (monotonic `now`).

        Each host's list is changed in place: a request in flight holds it and puts its
        connection back there when answered."""
        if now < self._next_prune:
            return
        self._next_prune = now + PRUNE_EVERY_S
        kept: list[Connection] = []
        for conns in self.idle.values():
            usable = []
            for conn in conns:
                if conn.usable:
                    usable.append(conn)
                else:
                    conn.close()
            conns[:] = usable
            kept += usable
        if len(kept) <= keep:
            return
        kept.sort(key=lambda conn: conn.used_at)
        extra = set(kept[: len(kept) - keep])
        for conn in extra:
            conn.close()
        for conns in self.idle.values():
            conns[:] = [conn for conn in conns if conn not in extra]

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = ssl.create_default_context(cafile=self.ca_file or None)
        return self._ssl

    def _blocked_until(self, host: str, now: float) -> float | None:
        """Per-host hold (Retry-After, breaker); the store decides how often it asks Redis."""
        return None if self.hosts is None else self.hosts.blocked_until(host, now)

    def _head(self, route: Route, message: PushMessage) -> bytes | None:
        """Everything after the request line up to the Content-Length value."""
        try:
            return (
                f"Host: {route.netloc}\r\n"
                f"Authorization: {self.signer.header(route.origin)}\r\n"
                "Content-Encoding: aes128gcm\r\nContent-Type: application/octet-stream\r\n"
                f"TTL: {max(1, message.ttl_s)}\r\nUrgency: {message.urgency}\r\n"
                f"Topic: {message.topic}\r\nContent-Length: "
            ).encode("ascii")
        except UnicodeError:
            return None

    def _request(
        self,
        message: PushMessage,
        route: Route | None,
        target: str,
        heads: Heads,
    ) -> bytes | PushResult:
        """The whole request, or the result that says why it is not sent."""
        sid = message.subscription_id
        if route is None:
            return PushResult(sid, "unknown", None, error="invalid")
        host = route.host
        until = self._blocked_until(host, self.clock())
        if until is not None:
            return PushResult(sid, host, None, error="blocked", blocked_until=until)
        if route.refused:
            return PushResult(sid, host, None, error="refused_address")
        if not route.usable:
            return PushResult(sid, host, None, error="invalid")
        kind = (route, message.ttl_s, message.urgency, message.topic)
        head = heads.get(kind)
        if head is None:
            head = heads[kind] = self._head(route, message)
            if head is None:
                return PushResult(sid, host, None, error="invalid")
        try:
            body = encrypt(message)
        except Exception:
            log.warning(
                "could not encrypt for subscription",
                extra={"subscription_id": sid, "push_host": host},
            )
            return PushResult(sid, host, None, error="invalid")
        if len(body) > MAX_PUSH_BODY:
            return PushResult(sid, host, None, error="too_large")
        return b"POST %s HTTP/1.1\r\n%s%d\r\n\r\n%s" % (
            target.encode("ascii"),
            head,
            len(body),
            body,
        )

    async def send(
        self,
        message: PushMessage,
        route: Route | None,
        target: str,
        slot: Slot,
        heads: Heads,
    ) -> PushResult:
        request = self._request(message, route, target, heads)
        if isinstance(request, PushResult):
            return request
        assert route is not None
        sid, host = message.subscription_id, route.host
        started = time.monotonic()
        slot.deadline = slot.overall = started + self.deadline_s
        try:
            status, retry_after = await self._exchange(route, request, slot)
            return PushResult(
                sid, host, status, retry_after=retry_after, elapsed_s=time.monotonic() - started
            )
        except asyncio.CancelledError:
            if not slot.timed_out():
                raise
            error = "timeout"
        except RefusedAddress:
            return PushResult(sid, host, None, error="refused_address")
        except TimeoutError:
            error = "timeout"
        except (OSError, ssl.SSLError, UnicodeError):
            error = "connect"
        finally:
            slot.deadline = None
        return PushResult(sid, host, None, error=error, elapsed_s=time.monotonic() - started)

    async def _exchange(self, route: Route, request: bytes, slot: Slot) -> tuple[int, str | None]:
        idle = self.idle.setdefault(route.key, [])
        read_timeout_s = self.read_timeout_s
        while idle:
            conn = idle.pop()
            if not conn.usable:
                conn.close()
                continue
            slot.deadline = min(slot.overall, time.monotonic() + read_timeout_s)
            try:
                status, retry_after, keep = await conn.exchange(request, RESPONSE_BODY_CAP)
            except ConnectionResetError:
                conn.close()
                if conn.received:
                    raise
                # The service closed this idle connection before reading our request (a
                # keep-alive race, nothing was answered): once more on a fresh connection.
                break
            except BaseException:
                conn.close()
                raise
            return self._done(idle, conn, status, retry_after, keep)
        slot.deadline = slot.overall
        conn = await connect(
            route.host,
            route.key[2],
            self._ssl_context() if route.tls else None,
            self.resolver.addresses,
            self.allow_loopback,
            self.connect_timeout_s,
        )
        slot.deadline = min(slot.overall, time.monotonic() + read_timeout_s)
        try:
            status, retry_after, keep = await conn.exchange(request, RESPONSE_BODY_CAP)
        except BaseException:
            conn.close()
            raise
        return self._done(idle, conn, status, retry_after, keep)

    @staticmethod
    def _done(
        idle: list[Connection], conn: Connection, status: int, retry_after: str | None, keep: bool
    ) -> tuple[int, str | None]:
        if keep and conn.transport is not None and not conn.buffer and not conn.eof:
            conn.used_at = time.monotonic()
            idle.append(conn)
        else:
            conn.close()
        return status, retry_after
