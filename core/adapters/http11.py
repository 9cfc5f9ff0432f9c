"""The sender's HTTP/1.1 side: one keep-alive connection read as bounded responses, and the
address rules every connection passes (a literal or resolved address we never connect to is
refused before the connect)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit

from core.endpoints import address_allowed
from core.inputs import whole_number

RESPONSE_BODY_CAP = 1024


class RefusedAddress(OSError):
    """The endpoint resolves to an address we never connect to."""


def system_lookup(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def literal_address(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return None


KEEPALIVE_S = 55.0
MAX_RESPONSE_HEAD = 16 * 1024


class ProtocolFault(OSError):
    """The push service answered something that is not HTTP/1.x."""


class Connection(asyncio.Protocol):
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
        version, status, headers = await self._head()
        keep = version == "HTTP/1.1" and "close" not in headers.get("connection", "").lower()
        retry_after = headers.get("retry-after")
        if status in (204, 304):
            return status, retry_after, keep
        if "chunked" in headers.get("transfer-encoding", "").lower():
            return status, retry_after, keep and await self._skip_chunked(body_cap)
        length_text = headers.get("content-length")
        if length_text is not None:
            length = whole_number(length_text.strip(), 18)
            if length is None:
                raise ProtocolFault("bad Content-Length")
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

    async def _head(self) -> tuple[str, int, dict[str, str]]:
        """(HTTP version, status, lower-cased headers) of the final answer."""
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
            code = whole_number(parts[1], 3) if len(parts) >= 2 else None
            if code is None or not parts[0].startswith("HTTP/1."):
                raise ProtocolFault("not an HTTP/1.x response")
            status = code
            if not 100 <= status < 200:  # interim answers (100 Continue): the real one follows
                break
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return parts[0], status, headers

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


MAX_ROUTES = 10_000


def _header_safe(text: str) -> bool:
    return text.isascii() and text.isprintable() and " " not in text


@dataclass(frozen=True, eq=False)
class Route:
    """Where an endpoint's requests go: parsed once per scheme and host:port, not per push."""

    key: tuple[str, str, int]  # (scheme, host, port): one pool of kept-alive connections
    host: str
    netloc: str
    origin: str  # the VAPID audience
    tls: bool
    usable: bool
    refused: bool  # a literal address we never connect to


class Routes:
    """Endpoint → (route, request target), with a bounded cache of parsed push hosts."""

    def __init__(self, allow_loopback: bool) -> None:
        self.allow_loopback = allow_loopback
        self._routes: dict[str, Route] = {}

    def __call__(self, endpoint: str) -> tuple[Route | None, str]:
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
            route = self._routes[key] = self._parse(scheme.lower(), netloc)
            if len(self._routes) > MAX_ROUTES:  # hostile endpoints must not grow it unbounded
                self._routes = {key: route}
        return route, target

    def _parse(self, scheme: str, netloc: str) -> Route:
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
        refused = literal is not None and not address_allowed(literal, self.allow_loopback)
        return Route(
            key=(scheme, host, port),
            host=host,
            netloc=netloc,
            origin=_origin(scheme, host, port),
            tls=scheme == "https",
            usable=usable,
            refused=refused,
        )


def _origin(scheme: str, host: str, port: int) -> str:
    """The VAPID audience as RFC 6454 serialises an origin: no user info, no default port (a
    push service compares it as text; "https://fcm.googleapis.com:443" is refused)."""
    named = f"[{host}]" if ":" in host else host
    default = 443 if scheme == "https" else 80
    return f"{scheme}://{named}" if port == default else f"{scheme}://{named}:{port}"


async def connect(
    host: str,
    port: int,
    ssl_context: ssl.SSLContext | None,
    resolve: Callable[[str, int], Awaitable[Sequence[str]]],
    allow_loopback: bool,
    connect_timeout_s: float,
) -> Connection:
    """A new connection to the first address that answers; every resolved address is checked
    before any connection is attempted. `resolve`: the process's Resolver (core/adapters/
    resolver.py), names looked up once a minute per host."""
    loop = asyncio.get_running_loop()
    literal = literal_address(host)
    if literal is not None:
        addresses: Sequence[str] = [literal]
    else:
        addresses = await resolve(host, port)
    if not addresses:
        raise RefusedAddress(f"{host} did not resolve")
    for address in addresses:
        if not address_allowed(address, allow_loopback):
            raise RefusedAddress(f"{host} resolves to a non-global address")
    last: BaseException | None = None
    for address in addresses:
        try:
            async with asyncio.timeout(connect_timeout_s):
                _transport, conn = await loop.create_connection(
                    lambda: Connection(loop),
                    address,
                    port,
                    ssl=ssl_context,
                    server_hostname=host if ssl_context is not None else None,
                )
            return conn
        except (OSError, TimeoutError) as exc:
            last = exc
    assert last is not None
    raise last
