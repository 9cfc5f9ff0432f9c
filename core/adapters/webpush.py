"""All web-push wire detail: pywebpush encryption, cached VAPID headers, a pooled guarded client."""

from __future__ import annotations

import asyncio
import base64
import logging
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from cryptography.hazmat.primitives import serialization
from py_vapid import Vapid02
from pywebpush import WebPusher

from core.endpoints import address_allowed, push_host, push_origin
from core.payload import MAX_PUSH_BODY
from core.ports import HostHealth, PushMessage, PushResult

log = logging.getLogger("newsflash.webpush")

VAPID_LIFETIME_S = 12 * 3600
VAPID_REFRESH_MARGIN_S = 3600
RESPONSE_BODY_CAP = 1024


class VapidSigner:
    """The VAPID key is parsed once per process; one signed header per push-service origin,
    reused until about an hour before it expires (aud must be that origin, exp ≤ 12 h)."""

    def __init__(
        self, private_pem: str, subject: str, clock: Callable[[], float] = time.time
    ) -> None:
        if not subject.startswith(("mailto:", "https://")):
            raise ValueError("VAPID subject must be a mailto: or https:// URL")
        self._vapid = Vapid02.from_pem(private_pem.encode("ascii"))
        self._subject = subject
        self._clock = clock
        self._cache: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    @property
    def public_key_b64(self) -> str:
        raw = self._vapid.public_key.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")

    def header(self, origin: str) -> str:
        now = self._clock()
        with self._lock:
            cached = self._cache.get(origin)
            if cached is not None and cached[1] - VAPID_REFRESH_MARGIN_S > now:
                return cached[0]
            exp = int(now) + VAPID_LIFETIME_S
            # A fresh claims dict per origin: a shared, mutated dict is how aud leaks across hosts.
            claims = {"aud": origin, "exp": exp, "sub": self._subject}
            value = str(self._vapid.sign(claims)["Authorization"])
            self._cache[origin] = (value, float(exp))
            return value


def encrypt(message: PushMessage) -> bytes:
    """RFC 8291 aes128gcm with a fresh ephemeral key and salt (pywebpush does the crypto)."""
    pusher = WebPusher(
        {"endpoint": message.endpoint, "keys": {"p256dh": message.p256dh, "auth": message.auth}}
    )
    body = pusher.encode(message.payload, content_encoding="aes128gcm")["body"]
    return bytes(body)


class RefusedAddress(OSError):
    """The endpoint resolves to an address we never connect to."""


class GuardedResolver(AbstractResolver):
    """Resolves, then refuses any non-global address before a connection is attempted.

    `lookup` is the port boundary: tests replace it with a fake that returns private addresses.
    """

    def __init__(
        self,
        allow_loopback: bool,
        lookup: Callable[[str, int], Sequence[str]] | None = None,
    ) -> None:
        self.allow_loopback = allow_loopback
        self.lookup = lookup or _system_lookup

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        addresses = await asyncio.get_running_loop().run_in_executor(None, self.lookup, host, port)
        if not addresses:
            raise RefusedAddress(f"{host} did not resolve")
        for address in addresses:
            if not address_allowed(address, self.allow_loopback):
                raise RefusedAddress(f"{host} resolves to a non-global address")
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in addresses
        ]

    async def close(self) -> None:
        return None


def _system_lookup(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def literal_address(host: str) -> str | None:
    import ipaddress

    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return None


@dataclass(frozen=True)
class SenderConfig:
    concurrency: int = 100
    concurrency_per_host: int = 100
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 10.0
    deadline_s: float = 15.0
    allow_loopback: bool = False
    ca_file: str | None = None


class AiohttpPushSender:
    """A pooled, concurrent HTTP/1.1 client per worker process, on its own event loop.

    Keep-alive connections survive between batches; concurrency is capped per process and per
    push host; every request has connect and read timeouts plus an overall deadline; redirects
    are never followed and response bodies are read only up to a small cap.
    """

    def __init__(
        self,
        signer: VapidSigner,
        config: SenderConfig,
        hosts: HostHealth | None = None,
        lookup: Callable[[str, int], Sequence[str]] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.signer = signer
        self.config = config
        self.hosts = hosts
        self.lookup = lookup
        self.clock = clock
        self._loop: asyncio.AbstractEventLoop | None = None
        self._session: aiohttp.ClientSession | None = None
        self._host_sems: dict[str, asyncio.Semaphore] = {}
        self._held: dict[str, tuple[float | None, float]] = {}

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None or self._loop.is_closed():
            self._loop = asyncio.new_event_loop()
            self._session = None
            self._host_sems = {}
        return self._loop

    async def _ensure_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            ssl_ctx: ssl.SSLContext | bool = True
            if self.config.ca_file:
                ssl_ctx = ssl.create_default_context(cafile=self.config.ca_file)
            connector = aiohttp.TCPConnector(
                limit=self.config.concurrency,
                limit_per_host=self.config.concurrency_per_host,
                resolver=GuardedResolver(self.config.allow_loopback, self.lookup),
                ssl=ssl_ctx,
                keepalive_timeout=60,
                enable_cleanup_closed=True,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(
                    total=None,
                    sock_connect=self.config.connect_timeout_s,
                    sock_read=self.config.read_timeout_s,
                ),
                auto_decompress=False,
                trust_env=False,
                skip_auto_headers=("User-Agent",),
            )
        return self._session

    def _blocked_until(self, host: str, now: float) -> float | None:
        """Per-host hold (Retry-After, breaker), cached for a second to spare the shared store."""
        if self.hosts is None:
            return None
        cached = self._held.get(host)
        if cached is not None and now - cached[1] < 1.0:
            until = cached[0]
        else:
            until = self.hosts.blocked_until(host, now)
            self._held[host] = (until, now)
        return until if until is not None and until > now else None

    def forget_holds(self) -> None:
        self._held.clear()

    def send_all(
        self,
        messages: Sequence[PushMessage],
        on_result: Callable[[PushResult], None],
        should_stop: Callable[[], bool],
    ) -> None:
        loop = self._ensure_loop()
        loop.run_until_complete(self._send_all(messages, on_result, should_stop))

    async def _send_all(
        self,
        messages: Sequence[PushMessage],
        on_result: Callable[[PushResult], None],
        should_stop: Callable[[], bool],
    ) -> None:
        session = await self._ensure_session()
        queue: deque[PushMessage] = deque(messages)

        async def worker() -> None:
            while queue:
                if should_stop():
                    return
                message = queue.popleft()
                on_result(await self._send_one(session, message))

        workers = min(self.config.concurrency, len(messages))
        await asyncio.gather(*(worker() for _ in range(workers)))

    async def _send_one(self, session: aiohttp.ClientSession, message: PushMessage) -> PushResult:
        host = push_host(message.endpoint)
        now = self.clock()
        until = self._blocked_until(host, now)
        if until is not None:
            return PushResult(
                message.subscription_id, host, None, error="blocked", blocked_until=until
            )
        literal = literal_address(urlsplit(message.endpoint).hostname or "")
        if literal is not None and not address_allowed(literal, self.config.allow_loopback):
            return PushResult(message.subscription_id, host, None, error="refused_address")
        try:
            body = encrypt(message)
        except Exception:
            log.warning(
                "could not encrypt for subscription",
                extra={"subscription_id": message.subscription_id, "push_host": host},
            )
            return PushResult(message.subscription_id, host, None, error="invalid")
        if len(body) > MAX_PUSH_BODY:
            return PushResult(message.subscription_id, host, None, error="too_large")
        headers = {
            "Authorization": self.signer.header(push_origin(message.endpoint)),
            "Content-Encoding": "aes128gcm",
            "Content-Type": "application/octet-stream",
            "TTL": str(max(1, message.ttl_s)),
            "Urgency": message.urgency,
            "Topic": message.topic,
        }
        semaphore = self._host_sems.get(host)
        if semaphore is None:
            semaphore = self._host_sems[host] = asyncio.Semaphore(self.config.concurrency_per_host)
        started = time.monotonic()
        try:
            async with (
                semaphore,
                asyncio.timeout(self.config.deadline_s),
                session.post(
                    message.endpoint, data=body, headers=headers, allow_redirects=False
                ) as resp,
            ):
                # Read a little (some services explain errors) but never a hostile flood.
                await resp.content.read(RESPONSE_BODY_CAP)
                return PushResult(
                    message.subscription_id,
                    host,
                    resp.status,
                    retry_after=resp.headers.get("Retry-After"),
                    elapsed_s=time.monotonic() - started,
                )
        except RefusedAddress:
            return PushResult(message.subscription_id, host, None, error="refused_address")
        except aiohttp.ClientConnectorError as exc:
            if isinstance(getattr(exc, "os_error", None), RefusedAddress):
                return PushResult(message.subscription_id, host, None, error="refused_address")
            return PushResult(
                message.subscription_id,
                host,
                None,
                error="connect",
                elapsed_s=time.monotonic() - started,
            )
        except TimeoutError:
            return PushResult(
                message.subscription_id,
                host,
                None,
                error="timeout",
                elapsed_s=time.monotonic() - started,
            )
        except (aiohttp.ClientError, OSError) as exc:
            kind = "timeout" if isinstance(exc, aiohttp.ServerTimeoutError) else "connect"
            return PushResult(
                message.subscription_id,
                host,
                None,
                error=kind,
                elapsed_s=time.monotonic() - started,
            )

    def close(self) -> None:
        if self._loop is not None and not self._loop.is_closed():
            if self._session is not None:
                self._loop.run_until_complete(self._session.close())
            self._loop.close()
        self._loop = None
        self._session = None
