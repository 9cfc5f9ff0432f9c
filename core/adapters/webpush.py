"""All web-push wire detail: aes128gcm encryption, cached VAPID headers, a pooled guarded client."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import ssl
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives import hmac as crypto_hmac
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from py_vapid import Vapid02

from core.adapters.window import AdaptiveWindow, FixedWindow, Window
from core.base64url import b64url_decode, b64url_encode
from core.endpoints import address_allowed
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
        return b64url_encode(raw)

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
    """RFC 8291 aes128gcm with a fresh ephemeral key and salt."""
    return encrypt_aes128gcm(
        message.payload, b64url_decode(message.p256dh), b64url_decode(message.auth)
    )


_P256 = ec.SECP256R1()
_ECDH = ec.ECDH()
_KEY_INFO = b"WebPush: info\x00"
_CEK_INFO = b"Content-Encoding: aes128gcm\x00\x01"
_NONCE_INFO = b"Content-Encoding: nonce\x00\x01"
RECORD_SIZE = 4096
_RECORD_HEADER = struct.pack("!IB", RECORD_SIZE, 65)  # record size, key id length
_SHA256 = hashes.SHA256()


def _hmac_sha256(key: bytes, data: bytes) -> bytes:
    mac = crypto_hmac.HMAC(key, _SHA256)
    mac.update(data)
    return mac.finalize()


def encrypt_aes128gcm(
    payload: bytes,
    ua_public: bytes,
    auth_secret: bytes,
    *,
    as_private: ec.EllipticCurvePrivateKey | None = None,
    salt: bytes | None = None,
) -> bytes:
    """RFC 8291 message encryption in one record, straight on `cryptography` and hmac.

    The profile showed pywebpush + http_ece spending more time around the crypto (deep copies,
    backend look-ups, HKDF and cipher objects) than in it; this is the same computation with
    none of that. `as_private` and `salt` are for the RFC 8291 Appendix A test only.
    """
    if len(ua_public) != 65 or ua_public[0] != 4:
        raise ValueError("p256dh must be an uncompressed P-256 point")
    if len(auth_secret) < 16:
        raise ValueError("auth must be at least 16 bytes")
    if len(payload) > RECORD_SIZE - 86 - 17:
        raise ValueError("payload does not fit one record")
    ua_key = ec.EllipticCurvePublicKey.from_encoded_point(_P256, ua_public)
    private = as_private or ec.generate_private_key(_P256)
    as_public = private.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    shared = private.exchange(_ECDH, ua_key)
    # HKDF with one output block is two HMACs (RFC 5869): extract, then expand with T(1).
    # cryptography's HMAC costs about 2.8 µs a call here, hmac.digest about 4.7 (the system
    # OpenSSL sets up its MAC context per call): five per push.
    prk_key = _hmac_sha256(auth_secret, shared)
    ikm = _hmac_sha256(prk_key, _KEY_INFO + ua_public + as_public + b"\x01")
    salt = salt or os.urandom(16)
    prk = _hmac_sha256(salt, ikm)
    cek = _hmac_sha256(prk, _CEK_INFO)[:16]
    nonce = _hmac_sha256(prk, _NONCE_INFO)[:12]
    sealed = AESGCM(cek).encrypt(nonce, payload + b"\x02", None)
    return b"".join((salt, _RECORD_HEADER, as_public, sealed))


class RefusedAddress(OSError):
    """The endpoint resolves to an address we never connect to."""


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
    concurrency: int = 400
    concurrency_per_host: int = 400
    # True: each host's window sizes itself up to concurrency_per_host (core/adapters/window.py);
    # False: a fixed window of concurrency_per_host.
    adaptive: bool = True
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 10.0
    deadline_s: float = 15.0
    allow_loopback: bool = False
    ca_file: str | None = None
    # uvloop's event loop and transports take ~10 % less CPU per push than asyncio's (measured
    # in the fan-out benchmark: 372-384 vs 395-426 µs per delivery, sink included).
    event_loop: str = "asyncio"


KEEPALIVE_S = 55.0
MAX_RESPONSE_HEAD = 16 * 1024


class ProtocolFault(OSError):
    """The push service answered something that is not HTTP/1.x."""


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection; reads one bounded response at a time."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[None] | None = None
        self.eof = False
        self.received = 0  # bytes since the last request was written
        self.used_at = time.monotonic()

    # -- asyncio.Protocol ---------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self.received += len(data)
        self._wake()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self.transport = None
        self._wake()

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    # -- use ----------------------------------------------------------------------------
    @property
    def usable(self) -> bool:
        return (
            self.transport is not None
            and not self.transport.is_closing()
            and not self.eof
            and not self.buffer
            and time.monotonic() - self.used_at < KEEPALIVE_S
        )

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
            self.transport = None

    async def _more(self) -> None:
        if self.eof:
            raise ConnectionResetError("the push service closed the connection")
        self.waiter = self.loop.create_future()
        try:
            await self.waiter
        finally:
            self.waiter = None

    async def exchange(self, request: bytes, body_cap: int) -> tuple[int, str | None, bool]:
        """Send one request; (status, Retry-After, connection reusable). Reads at most
        `body_cap` bytes of body: a longer one costs the connection, never the memory."""
        if self.transport is None:
            raise ConnectionResetError("connection closed")
        self.received = 0
        self.transport.write(request)
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            while end < 0:
                if len(self.buffer) > MAX_RESPONSE_HEAD:
                    raise ProtocolFault("response head too large")
                await self._more()
                end = self.buffer.find(b"\r\n\r\n")
            head = bytes(self.buffer[:end]).decode("latin-1")
            del self.buffer[: end + 4]
            lines = head.split("\r\n")
            parts = lines[0].split(" ", 2)
            if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
                raise ProtocolFault("not an HTTP/1.x response")
            status = int(parts[1])
            if 100 <= status < 200:
                continue  # interim answer (100 Continue): the real one follows
            break
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        keep = parts[0] == "HTTP/1.1" and "close" not in headers.get("connection", "").lower()
        retry_after = headers.get("retry-after")
        if status in (204, 304):
            return status, retry_after, keep
        if "chunked" in headers.get("transfer-encoding", "").lower():
            return status, retry_after, keep and await self._skip_chunked(body_cap)
        length_text = headers.get("content-length")
        if length_text is not None:
            if not length_text.isdigit():
                raise ProtocolFault("bad Content-Length")
            length = int(length_text)
            if length > body_cap:
                return status, retry_after, False
            while len(self.buffer) < length:
                await self._more()
            del self.buffer[:length]
            return status, retry_after, keep
        # A body that ends with the connection: read a little, then let the connection go.
        while len(self.buffer) < body_cap and not self.eof:
            await self._more()
        return status, retry_after, False

    async def _skip_chunked(self, body_cap: int) -> bool:
        total = 0
        while True:
            end = self.buffer.find(b"\r\n")
            while end < 0:
                if len(self.buffer) > 1024:
                    return False
                await self._more()
                end = self.buffer.find(b"\r\n")
            try:
                size = int(bytes(self.buffer[:end]).split(b";")[0].strip(), 16)
            except ValueError:
                raise ProtocolFault("bad chunk size") from None
            total += size
            if total > body_cap:
                return False
            if size == 0:
                # No trailers from push services; anything else costs the connection.
                while len(self.buffer) < end + 4:
                    await self._more()
                if self.buffer[end + 2 : end + 4] != b"\r\n":
                    return False
                del self.buffer[: end + 4]
                return True
            while len(self.buffer) < end + 2 + size + 2:
                await self._more()
            del self.buffer[: end + 2 + size + 2]


def _header_safe(text: str) -> bool:
    return text.isascii() and text.isprintable() and " " not in text


WATCHDOG_TICK_S = 0.1
MAX_ROUTES = 10_000


@dataclass(frozen=True, eq=False)
class _Route:
    """Where an endpoint's requests go: parsed once per scheme and host:port, not per push."""

    key: tuple[str, str, int]  # (scheme, host, port): one pool of kept-alive connections
    host: str
    netloc: str
    origin: str  # the VAPID audience
    tls: bool
    usable: bool
    refused: bool  # a literal address we never connect to


class _Lane:
    """One push host's share of a batch: its queue, what is in flight, its window."""

    __slots__ = ("in_flight", "queue", "ready", "window")

    def __init__(self, window: Window) -> None:
        self.window = window
        self.queue: deque[tuple[PushMessage, _Route | None, str]] = deque()
        self.in_flight = 0
        self.ready = False


class _Slot:
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


def _new_event_loop(kind: str) -> asyncio.AbstractEventLoop:
    if kind == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


class Http11PushSender:
    """The production sender: keep-alive HTTP/1.1 on asyncio protocols, one event loop per
    worker process.

    A general client (aiohttp) cost more CPU per push (about 340 µs on the reference machine)
    than the encryption; push requests are all alike (a small POST, a small answer), so this
    client writes them as one buffer and parses only the status line, Retry-After and the body
    framing. It keeps concurrency caps per process and per push host, connect and read
    timeouts plus an overall deadline, never follows redirects, reads response bodies only up
    to a small cap, and checks every resolved address before a connection is attempted.
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
        self.lookup = lookup or _system_lookup
        self.clock = clock
        self._loop: asyncio.AbstractEventLoop | None = None
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._windows: dict[str, Window] = {}
        self._held: dict[str, tuple[float | None, float]] = {}
        self._routes: dict[str, _Route] = {}
        self._ssl: ssl.SSLContext | None = None

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None or self._loop.is_closed():
            self._loop = _new_event_loop(self.config.event_loop)
            self._idle = {}
        return self._loop

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = ssl.create_default_context(cafile=self.config.ca_file or None)
        return self._ssl

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
        loop = asyncio.get_running_loop()
        # Header blocks (VAPID included) are built once per batch, push host and message kind.
        heads: dict[tuple[_Route, int, str, str], bytes | None] = {}
        # One queue per push host, each drained within that host's window: a slot never waits
        # on a host whose window is full while another host has work (a slow host cannot hold
        # the others' slots).
        lanes: dict[str, _Lane] = {}
        for message in messages:
            route, target = self._route(message.endpoint)
            host = route.host if route is not None else "unknown"
            lane = lanes.get(host)
            if lane is None:
                lane = lanes[host] = _Lane(self._window(host))
            lane.queue.append((message, route, target))
        ready: deque[_Lane] = deque(lanes.values())
        for lane in ready:
            lane.ready = True
        waiting: deque[asyncio.Future[None]] = deque()
        left = [len(messages)]

        def next_lane() -> _Lane | None:
            while ready:
                lane = ready[0]
                if lane.queue and lane.in_flight < lane.window.size:
                    ready.rotate(-1)  # round robin between hosts with room
                    return lane
                ready.popleft()
                lane.ready = False
            return None

        def wake(count: int) -> None:
            while count > 0 and waiting:
                future = waiting.popleft()
                if not future.done():
                    future.set_result(None)
                    count -= 1

        async def worker(slot: _Slot) -> None:
            while True:
                if should_stop():
                    left[0] = 0
                    wake(len(waiting))
                    return
                lane = next_lane()
                if lane is None:
                    if left[0] <= 0:
                        wake(len(waiting))
                        return
                    future = loop.create_future()
                    waiting.append(future)
                    await future
                    continue
                message, route, target = lane.queue.popleft()
                left[0] -= 1
                lane.in_flight += 1
                before = lane.window.size
                try:
                    result = await self._send_one(message, route, target, slot, heads)
                finally:
                    lane.in_flight -= 1
                self._tell(lane, result)
                if not lane.ready and lane.queue and lane.in_flight < lane.window.size:
                    lane.ready = True
                    ready.append(lane)
                # This slot takes the next request itself; a grown window needs more slots.
                wake(lane.window.size - before)
                on_result(result)

        slots = [_Slot() for _ in range(min(self.config.concurrency, len(messages)))]
        for slot in slots:
            slot.task = loop.create_task(worker(slot))
        watchdog = loop.create_task(self._watch(slots))
        try:
            await asyncio.gather(*(slot.task for slot in slots if slot.task is not None))
        finally:
            watchdog.cancel()

    def window_size(self, host: str) -> int | None:
        """Requests this process lets be in flight to `host` now (None: not sent to yet)."""
        window = self._windows.get(host)
        return None if window is None else window.size

    def _window(self, host: str) -> Window:
        window = self._windows.get(host)
        if window is None:
            if len(self._windows) >= MAX_ROUTES:  # hostile endpoints must not grow it unbounded
                self._windows = {}
            limit = self.config.concurrency_per_host
            window = self._windows[host] = (
                AdaptiveWindow(limit) if self.config.adaptive else FixedWindow(limit)
            )
        return window

    @staticmethod
    def _tell(lane: _Lane, result: PushResult) -> None:
        """Feed the host's window what the answer says about its load."""
        status = result.status
        now = time.monotonic()
        if status is not None:
            if status == 429:
                lane.window.throttled(now)
            elif status >= 500:
                lane.window.failed(now)
            else:
                lane.window.answered(result.elapsed_s, lane.in_flight + 1, now)
        elif result.error == "timeout":
            lane.window.throttled(now)
        elif result.error == "connect":
            lane.window.failed(now)

    async def _watch(self, slots: list[_Slot]) -> None:
        """Enforces every request's read timeout and overall deadline from one timer.

        Two `asyncio.timeout` blocks per push (a timer handle each, scheduled and cancelled)
        cost more CPU than the HTTP parsing; a slot past its deadline has its task cancelled
        here instead, and `_send_one` turns that cancellation into a timeout result. Deadlines
        are met within WATCHDOG_TICK_S."""
        tick = min(WATCHDOG_TICK_S, self.config.read_timeout_s / 10, self.config.deadline_s / 10)
        while True:
            await asyncio.sleep(tick)
            now = time.monotonic()
            for slot in slots:
                if (
                    slot.deadline is not None
                    and now >= slot.deadline
                    and not slot.expired
                    and slot.task is not None
                    and not slot.task.done()
                ):
                    slot.expired = True
                    slot.task.cancel()

    def _route(self, endpoint: str) -> tuple[_Route | None, str]:
        """(push host route, request target); route None when the endpoint is unusable."""
        # The whole endpoint goes on the request line: ASCII, printable, no spaces, so nothing
        # in it can end a header or smuggle one in.
        if not _header_safe(endpoint):
            return None, ""
        scheme, sep, rest = endpoint.partition("://")
        if not sep:
            return None, ""
        cut = len(rest)
        for mark in "/?#":
            at = rest.find(mark)
            if 0 <= at < cut:
                cut = at
        netloc, target = rest[:cut], rest[cut:].partition("#")[0]
        if not target.startswith("/"):
            target = "/" + target
        key = scheme + "://" + netloc
        route = self._routes.get(key)
        if route is None:
            route = self._routes[key] = self._parse_route(scheme.lower(), netloc)
            if len(self._routes) > MAX_ROUTES:  # hostile endpoints must not grow it unbounded
                self._routes = {key: route}
        return route, target

    def _parse_route(self, scheme: str, netloc: str) -> _Route:
        host, port, usable = "unknown", -1, False
        try:
            parts = urlsplit(f"{scheme}://{netloc}/")
            host = (parts.hostname or "unknown").lower()
            port = parts.port or (443 if scheme == "https" else 80)
            usable = (
                scheme in ("http", "https")
                and port > 0
                and "@" not in netloc  # user info has no business in a push endpoint
                and parts.hostname is not None
            )
        except ValueError:
            usable = False
        literal = literal_address(host)
        refused = literal is not None and not address_allowed(literal, self.config.allow_loopback)
        return _Route(
            key=(scheme, host, port),
            host=host,
            netloc=netloc,
            origin=f"{scheme}://{netloc.lower()}",
            tls=scheme == "https",
            usable=usable,
            refused=refused,
        )

    def _head(self, route: _Route, message: PushMessage) -> bytes | None:
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

    async def _send_one(
        self,
        message: PushMessage,
        route: _Route | None,
        target: str,
        slot: _Slot,
        heads: dict[tuple[_Route, int, str, str], bytes | None],
    ) -> PushResult:
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
        request = b"POST %s HTTP/1.1\r\n%s%d\r\n\r\n%s" % (
            target.encode("ascii"),
            head,
            len(body),
            body,
        )
        started = time.monotonic()
        slot.deadline = slot.overall = started + self.config.deadline_s
        try:
            status, retry_after = await self._exchange(route, request, slot)
            return PushResult(
                sid, host, status, retry_after=retry_after, elapsed_s=time.monotonic() - started
            )
        except asyncio.CancelledError:
            if not slot.timed_out():
                raise
            return PushResult(
                sid, host, None, error="timeout", elapsed_s=time.monotonic() - started
            )
        except RefusedAddress:
            return PushResult(sid, host, None, error="refused_address")
        except TimeoutError:
            return PushResult(
                sid, host, None, error="timeout", elapsed_s=time.monotonic() - started
            )
        except (OSError, ssl.SSLError, UnicodeError):
            return PushResult(
                sid, host, None, error="connect", elapsed_s=time.monotonic() - started
            )
        finally:
            slot.deadline = None

    async def _exchange(self, route: _Route, request: bytes, slot: _Slot) -> tuple[int, str | None]:
        idle = self._idle.setdefault(route.key, [])
        read_timeout_s = self.config.read_timeout_s
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
        conn = await self._connect(route.host, route.key[2], route.tls)
        slot.deadline = min(slot.overall, time.monotonic() + read_timeout_s)
        try:
            status, retry_after, keep = await conn.exchange(request, RESPONSE_BODY_CAP)
        except BaseException:
            conn.close()
            raise
        return self._done(idle, conn, status, retry_after, keep)

    @staticmethod
    def _done(
        idle: list[_Connection], conn: _Connection, status: int, retry_after: str | None, keep: bool
    ) -> tuple[int, str | None]:
        if keep and conn.transport is not None and not conn.buffer and not conn.eof:
            conn.used_at = time.monotonic()
            idle.append(conn)
        else:
            conn.close()
        return status, retry_after

    async def _connect(self, host: str, port: int, tls: bool) -> _Connection:
        loop = asyncio.get_running_loop()
        literal = literal_address(host)
        if literal is not None:
            addresses: Sequence[str] = [literal]
        else:
            addresses = await loop.run_in_executor(None, self.lookup, host, port)
        if not addresses:
            raise RefusedAddress(f"{host} did not resolve")
        for address in addresses:
            if not address_allowed(address, self.config.allow_loopback):
                raise RefusedAddress(f"{host} resolves to a non-global address")
        last: BaseException | None = None
        for address in addresses:
            try:
                async with asyncio.timeout(self.config.connect_timeout_s):
                    _transport, conn = await loop.create_connection(
                        lambda: _Connection(loop),
                        address,
                        port,
                        ssl=self._ssl_context() if tls else None,
                        server_hostname=host if tls else None,
                    )
                return conn
            except (OSError, TimeoutError) as exc:
                last = exc
        assert last is not None
        raise last

    def close(self) -> None:
        if self._loop is not None and not self._loop.is_closed():
            for conns in self._idle.values():
                for conn in conns:
                    conn.close()
            self._idle = {}
            # Let the transports (a failed TLS handshake's too) finish closing before the
            # loop goes: that takes a few turns of the loop.
            self._loop.run_until_complete(asyncio.sleep(0.05))
            self._loop.close()
        self._loop = None
