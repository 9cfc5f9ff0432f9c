"""Bounded GETs of the publisher's own pages (feeds, the readiness gate): prefill's rules, plus an
address check on every connection.

The rules are the article prefill's (core/adapters/articles.py): only the publisher's origins
(NEWSFLASH_PUBLIC_ORIGINS), redirects only onto them and only a few times, no proxies from the
environment, no cookies, a per-read timeout, a whole-request deadline and a size cap. On top, the
name is resolved through a port and every address it answers must be public (loopback only when
NEWSFLASH_ALLOW_LOOPBACK_PUSH is on, for tests and the demo), all checked before the first
connection; the connection then goes to the checked addresses in turn (an AAAA answer on a host
without IPv6 falls back to the A answer), so a DNS answer that changes between check and connect
(rebinding) cannot steer it elsewhere. The whole-request deadline bounds the lookup (run in a
thread: getaddrinfo has no timeout of its own), each connection attempt, and the sockets
themselves, so a server dripping its status line and headers (which http.client reads before any
body loop runs) is cut off at the deadline too.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http.client import HTTPMessage
from typing import IO, Any

from core.alerts import check_public_url
from core.endpoints import address_allowed
from core.errors import ValidationError
from core.inputs import whole_number

Lookup = Callable[[str, int], Sequence[str]]
_CHUNK = 16 * 1024


class FetchError(ValidationError):
    """The page could not be fetched within the rules; the message says why, in plain words."""


class RefusedAddress(OSError):
    """The name resolves to an address we never connect to."""


class SameOriginsRedirect(urllib.request.HTTPRedirectHandler):
    """Follow a redirect only onto one of the publisher's origins, and only a few times."""

    max_redirections = 3

    def __init__(self, origins: Sequence[str]) -> None:
        self.origins = origins

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: HTTPMessage,
        newurl: str,
    ) -> urllib.request.Request | None:
        try:
            check_public_url(newurl, self.origins, "url")
        except ValidationError:
            raise ValidationError(
                "the article redirects off the publisher's origins; not followed", "url"
            ) from None
        return super().redirect_request(req, fp, code, msg, headers, newurl)


class Deadline:
    """A whole request's time limit: when it passes, every connection the request opened is shut
    down, whatever http.client is waiting for (status line, headers, body)."""

    def __init__(self, seconds: float) -> None:
        self.expired = False
        self._ends = time.monotonic() + seconds
        self._lock = threading.Lock()
        self._watched: list[socket.socket] = []
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> Deadline:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()
        with self._lock:
            for twin in self._watched:
                twin.close()
            self._watched.clear()

    def remaining(self) -> float:
        return 0.0 if self.expired else max(0.0, self._ends - time.monotonic())

    def watch(self, sock: socket.socket) -> None:
        # A twin descriptor: TLS takes the original socket object over, and a shutdown through
        # any descriptor of a connection ends it for all of them.
        twin = sock.dup()
        with self._lock:
            self._watched.append(twin)
            if self.expired:
                _shut(twin)

    def _expire(self) -> None:
        # Under the lock, so a twin is never shut after __exit__ closed it (its number reused).
        with self._lock:
            self.expired = True
            for twin in self._watched:
                _shut(twin)


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed by the other side
        sock.shutdown(socket.SHUT_RDWR)


def system_lookup(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True)
class Fetched:
    status: int  # 200..299, or 304 (not modified: body is empty)
    body: bytes
    etag: str | None
    last_modified: str | None
    content_type: str | None = None  # the header as sent: its charset decides a feed's encoding


class BoundedFetcher:
    """GET on urllib with the rules above; `lookup` is the resolver port (tests fake it)."""

    def __init__(
        self,
        origins: Sequence[str],
        *,
        allow_loopback: bool,
        timeout_s: float = 3.0,
        deadline_s: float = 8.0,
        max_bytes: int = 1_048_576,
        lookup: Lookup | None = None,
        agent: str = "Newsflash/1",
    ) -> None:
        self.origins = tuple(origins)
        self.allow_loopback = allow_loopback
        self.timeout_s = timeout_s
        self.deadline_s = deadline_s
        self.max_bytes = max_bytes
        self.lookup = lookup or system_lookup
        self.agent = agent

    # -- the two uses ------------------------------------------------------------------------
    def get(
        self,
        url: str,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        accept: str = "*/*",
        field: str = "url",
    ) -> Fetched:
        """The whole body (≤ max_bytes), or 304 when the conditional headers say nothing changed."""
        headers = {"Accept": accept}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        return self._open(url, headers, field, read_body=True)

    def status(self, url: str, field: str = "url") -> int:
        """The HTTP status the page answers with (redirects on our origins followed); body unread."""
        try:
            return self._open(url, {"Accept": "text/html,*/*"}, field, read_body=False).status
        except _HttpStatus as answer:
            return answer.code

    # -- the machinery -------------------------------------------------------------------------
    def _open(self, url: str, headers: dict[str, str], field: str, read_body: bool) -> Fetched:
        # Checked here too, so no caller can make this fetch anything but our own pages.
        try:
            check_public_url(url, self.origins, field)
        except ValidationError as exc:
            raise FetchError(exc.message, field) from None
        with Deadline(self.deadline_s) as deadline:
            try:
                fetched = self._exchange(url, headers, field, read_body, deadline)
            except FetchError:
                if deadline.expired:
                    raise FetchError("it did not answer in time", field) from None
                raise
            if deadline.expired:  # cut mid-headers, http.client may take what came as the end
                raise FetchError("it did not answer in time", field)
            return fetched

    def _exchange(
        self, url: str, headers: dict[str, str], field: str, read_body: bool, deadline: Deadline
    ) -> Fetched:
        opener = guarded_opener(
            self.origins, GuardedConnect(self.lookup, self.allow_loopback, deadline)
        )
        request = urllib.request.Request(  # noqa: S310 - http(s) on our own origins, checked above
            url, headers={"User-Agent": self.agent, **headers}
        )
        started = time.monotonic()
        try:
            with opener.open(request, timeout=self.timeout_s) as response:
                body = self._read(response, started, field) if read_body else b""
                return Fetched(
                    response.status,
                    body,
                    response.headers.get("ETag"),
                    response.headers.get("Last-Modified"),
                    response.headers.get("Content-Type"),
                )
        except FetchError:
            raise
        except ValidationError:  # the redirect rule
            raise FetchError(
                "it redirects off the publisher's origins; not followed", field
            ) from None
        except urllib.error.HTTPError as exc:
            if exc.code == 304:
                return Fetched(304, b"", exc.headers.get("ETag"), exc.headers.get("Last-Modified"))
            if not read_body:
                raise _HttpStatus(exc.code) from None
            raise FetchError(f"it answered HTTP {exc.code}", field) from None
        except TimeoutError:
            raise FetchError("it did not answer in time", field) from None
        except urllib.error.URLError as exc:
            raise _reason_error(exc.reason, field) from None
        except http.client.HTTPException:
            raise FetchError("it did not answer in HTTP", field) from None
        except OSError:
            raise FetchError("could not read it", field) from None

    def _read(self, response: Any, started: float, field: str) -> bytes:
        declared = response.headers.get("Content-Length")
        declared_size = None if declared is None else whole_number(declared.strip(), 18)
        if declared_size is not None and declared_size > self.max_bytes:
            raise FetchError(f"it is larger than {_size(self.max_bytes)}; refused", field)
        chunks: list[bytes] = []
        size = 0
        while True:
            if time.monotonic() - started > self.deadline_s:
                raise FetchError("it did not answer in time", field)
            # read1: one receive at a time, so a trickling server meets the deadline too.
            chunk = response.read1(_CHUNK)
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if size > self.max_bytes:
                raise FetchError(f"it is larger than {_size(self.max_bytes)}; refused", field)
            chunks.append(chunk)


class GuardedConnect:
    """http.client's connect, behind the address check: the name is resolved through `lookup`,
    every answer must be public, the checked addresses are tried in turn, all within `deadline`,
    and the connection joins it."""

    def __init__(self, lookup: Lookup, allow_loopback: bool, deadline: Deadline) -> None:
        self.lookup = lookup
        self.allow_loopback = allow_loopback
        self.deadline = deadline

    def __call__(
        self, address: tuple[str, int], timeout: float | None, source: Any = None
    ) -> socket.socket:
        host, port = address
        found = self._resolve(host.strip("[]"), port)
        if not found or not all(address_allowed(a, self.allow_loopback) for a in found):
            # Refuse when any answer is private: a check on the first alone could be dodged.
            raise RefusedAddress(f"{host} resolves to an address that is not public")
        read_timeout = timeout if isinstance(timeout, int | float) else socket.getdefaulttimeout()
        failure: OSError = TimeoutError(f"{host} did not answer in time")
        for candidate in found:
            left = self.deadline.remaining()
            if left <= 0:
                raise TimeoutError(f"{host} did not answer in time")
            attempt = left if read_timeout is None else min(read_timeout, left)
            try:
                sock = socket.create_connection((candidate, port), attempt, source)
            except OSError as exc:
                failure = exc  # unreachable (no IPv6 route, refused, silent): try the next one
                continue
            try:
                sock.settimeout(read_timeout)
                self.deadline.watch(sock)
            except OSError:
                sock.close()
                raise
            return sock
        raise failure

    def _resolve(self, host: str, port: int) -> list[str]:
        answers: list[str] = []
        failed: list[BaseException] = []
        done = threading.Event()

        def resolve() -> None:
            try:
                answers.extend(self.lookup(host, port))
            except (OSError, UnicodeError) as exc:
                failed.append(exc)
            finally:
                done.set()

        # A thread, so a resolver that never answers holds the request no longer than its
        # deadline; the thread itself ends when the system resolver gives up.
        threading.Thread(target=resolve, name="newsflash-dns", daemon=True).start()
        if not done.wait(self.deadline.remaining()):
            raise TimeoutError(f"{host} did not resolve in time")
        if failed:
            raise RefusedAddress(f"{host} does not resolve")
        return list(answers)


def guarded_opener(
    origins: Sequence[str], connect: Callable[..., socket.socket]
) -> urllib.request.OpenerDirector:
    """urllib without proxies from the environment or cookies, redirects only onto `origins`,
    and every connection (the first and each redirect's) made by `connect`."""
    return urllib.request.build_opener(
        urllib.request.ProxyHandler({}),
        SameOriginsRedirect(origins),
        _GuardedHttp(connect),
        _GuardedHttps(connect),
    )


class _HttpStatus(Exception):
    def __init__(self, code: int) -> None:
        self.code = code


def _reason_error(reason: object, field: str) -> FetchError:
    if isinstance(reason, TimeoutError):
        return FetchError("it did not answer in time", field)
    if isinstance(reason, RefusedAddress):
        return FetchError(f"refused: {reason}", field)
    if isinstance(reason, ValidationError):
        return FetchError(reason.message, field)
    return FetchError("could not reach it", field)


def _size(n: int) -> str:
    return f"{n / 1_048_576:.1f} MB" if n >= 1_048_576 else f"{n // 1024} KB"


def _guarded(cls: type[http.client.HTTPConnection], connect: Callable[..., socket.socket]) -> Any:
    def build(host: str, **kwargs: Any) -> http.client.HTTPConnection:
        conn = cls(host, **kwargs)
        conn._create_connection = connect  # type: ignore[attr-defined]
        return conn

    return build


class _GuardedHttp(urllib.request.HTTPHandler):
    def __init__(self, connect: Callable[..., socket.socket]) -> None:
        super().__init__()
        self._connect = connect

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_guarded(http.client.HTTPConnection, self._connect), req)


class _GuardedHttps(urllib.request.HTTPSHandler):
    def __init__(self, connect: Callable[..., socket.socket]) -> None:
        super().__init__()
        self._connect = connect

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(
            _guarded(http.client.HTTPSConnection, self._connect),
            req,
            context=self._context,  # type: ignore[attr-defined]
        )
