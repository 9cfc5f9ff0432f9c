"""RFC 8030 push-service stand-in: checks VAPID, decrypts aes128gcm, answers per endpoint mode."""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import os
import re
import secrets
import shutil
import signal
import ssl
import struct
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any

import http_ece
from aiohttp import web

from core.base64url import b64url_decode, b64url_encode
from standin import vapid
from standin.keys import SubscriberKeys, write_tls_files

MODES = frozenset(
    {
        "ok",
        "gone404",
        "gone410",
        "throttle",
        "error",
        "slow",
        "hang",
        "trickle",
        "redirect",
        "forbidden",
        "notacceptable",
    }
)
# RFC 8030 section 7.2: push services must accept at least 4096 octets of (encrypted) payload,
# and the big ones refuse anything larger, so senders must not rely on more.
MAX_BODY_BYTES = 4096
# Status recorded for a request the stand-in deliberately never answers (mode "hang").
NO_ANSWER = 0

_URGENCIES = frozenset({"very-low", "low", "normal", "high"})
_TOPIC_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
_DIGITS_RE = re.compile(r"^[0-9]+$")
_JWT_CACHE_MAX = 10_000
_PAGE_ITEMS = 50
# aes128gcm header (RFC 8188 section 2.1): salt(16) rs(4) idlen(1) keyid(idlen).
_ECE_FIXED_HEADER = 21

_PARAM_CHECKS: dict[str, Callable[[Any], bool]] = {
    "times": lambda v: _is_int(v) and v >= 0,
    "retry_after": lambda v: (_is_int(v) and v >= 0) or (isinstance(v, str) and v != ""),
    "status": lambda v: _is_int(v) and 100 <= v <= 599,
    "delay_s": lambda v: _is_number(v) and v >= 0,
    "location": lambda v: isinstance(v, str) and v != "",
    "chunk_size": lambda v: _is_int(v) and v >= 1,
    "interval_s": lambda v: _is_number(v) and v >= 0,
    "total_bytes": lambda v: _is_int(v) and v >= 0,
}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True)
class Received:
    """One push request that passed the protocol checks and decrypted."""

    token: str
    endpoint: str
    headers: dict[str, str]
    payload: dict[str, Any] | None
    raw_len: int
    at: float
    status: int
    ttl: int
    mode: str
    vapid_sub: str
    vapid_key: str
    plaintext: bytes = field(repr=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "token": self.token,
            "endpoint": self.endpoint,
            "headers": self.headers,
            "payload": self.payload,
            "raw_len": self.raw_len,
            "at": self.at,
            "status": self.status,
            "ttl": self.ttl,
            "mode": self.mode,
            "vapid_sub": self.vapid_sub,
        }


@dataclass(frozen=True)
class Rejected:
    """A push request refused for a protocol error (auth, headers, size, encryption)."""

    token: str
    status: int
    reason: str
    at: float = 0.0
    headers: dict[str, str] = field(default_factory=dict, repr=False)

    def to_json(self) -> dict[str, Any]:
        return {"token": self.token, "status": self.status, "reason": self.reason, "at": self.at}


class _Refusal(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(slots=True)
class _ModeState:
    mode: str
    params: dict[str, Any]
    hits: int = 0

    def next_mode(self) -> str:
        self.hits += 1
        times = self.params.get("times")
        if times is not None and self.hits > times:
            return "ok"
        return self.mode


@dataclass(slots=True)
class _Subscription:
    token: str
    keys: SubscriberKeys
    state: _ModeState
    # RFC 8292 section 4: a subscription made with an applicationServerKey only accepts
    # pushes signed by that key.
    server_key: bytes | None = None


def _validated(mode: str, params: dict[str, Any]) -> _ModeState:
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; known: {', '.join(sorted(MODES))}")
    for name, value in params.items():
        check = _PARAM_CHECKS.get(name)
        if check is None:
            raise ValueError(f"unknown mode parameter {name!r}; known: {', '.join(_PARAM_CHECKS)}")
        if not check(value):
            raise ValueError(f"bad value for mode parameter {name!r}: {value!r}")
    return _ModeState(mode, dict(params))


def _token_of(endpoint_or_token: str) -> str:
    return endpoint_or_token.rstrip("/").rsplit("/", 1)[-1]


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _error_response(
    status: int, reason: str, headers: dict[str, str] | None = None
) -> web.Response:
    body = {"code": status, "error": _phrase(status), "reason": reason}
    return web.json_response(body, status=status, headers=headers)


def _parse_payload(plaintext: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(plaintext)
    except (ValueError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None


class PushStandin:
    """A local push service. Thread mode: start()/stop(); foreground: run_forever().

    max_age_s is the longest VAPID JWT lifetime accepted (RFC 8292 caps it at 24 h).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        tls: bool = False,
        max_age_s: int = vapid.MAX_LIFETIME_S,
        state_file: str | os.PathLike[str] | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.tls = tls
        self.max_age_s = max_age_s
        self.state_file = Path(state_file) if state_file is not None else None
        self.ca_file: str | None = None
        self._origin: str | None = None

        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._subs: dict[str, _Subscription] = {}
        self._host_state: _ModeState | None = None
        self._received: list[Received] = []
        self._attempts: list[Received] = []
        self._rejected: list[Rejected] = []
        self._redirects_followed = 0
        self._jwt_cache: dict[tuple[str, bytes], dict[str, Any]] = {}

        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._tmpdir: Path | None = None
        self._ssl: ssl.SSLContext | None = None
        self._startup_error: BaseException | None = None
        self._parked: set[asyncio.Task[Any]] = set()
        self._save_handle: asyncio.TimerHandle | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def origin(self) -> str:
        if self._origin is None:
            raise RuntimeError("the stand-in is not listening yet; call start() first")
        return self._origin

    def start(self) -> PushStandin:
        if self._thread is not None:
            raise RuntimeError("already started")
        self._prepare()
        ready = threading.Event()
        self._startup_error = None
        self._thread = threading.Thread(
            target=self._thread_main, args=(ready,), name="push-standin", daemon=True
        )
        self._thread.start()
        if not ready.wait(30):
            raise RuntimeError("push stand-in did not start within 30 s")
        if self._startup_error is not None:
            self._thread.join()
            self._thread = None
            self._teardown()
            raise self._startup_error
        return self

    def stop(self) -> None:
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        with contextlib.suppress(RuntimeError):  # loop already gone
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout=15)
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=15)
        self._thread = None
        self._teardown()

    def run_forever(self) -> None:
        """Serve in the calling thread until SIGINT/SIGTERM."""
        self._prepare()
        try:
            asyncio.run(self._serve_until_signalled())
        finally:
            self._teardown()

    def __enter__(self) -> PushStandin:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _prepare(self) -> None:
        self._load_state()
        if self.tls:
            self._tmpdir = Path(tempfile.mkdtemp(prefix="newsflash-standin-"))
            files = write_tls_files(self._tmpdir, self.host)
            self._ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self._ssl.load_cert_chain(files.cert_file, files.key_file)
            self.ca_file = str(files.ca_file)

    def _teardown(self) -> None:
        self._save_state()
        self._loop = None
        self._runner = None
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    def _thread_main(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            try:
                loop.run_until_complete(self._startup())
            except BaseException as exc:
                self._startup_error = exc
                return
            finally:
                ready.set()
            loop.run_forever()
        finally:
            with contextlib.suppress(Exception):
                loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _startup(self) -> None:
        app = web.Application(middlewares=[self._control_errors])
        app.router.add_post("/push/{token}", self._handle_push)
        app.router.add_post("/_standin/redirect-sink", self._handle_redirect_sink)
        app.router.add_post("/_standin/subscriptions", self._handle_create)
        app.router.add_post("/_standin/mode", self._handle_mode)
        app.router.add_post("/_standin/host-mode", self._handle_host_mode)
        app.router.add_get("/_standin/received", self._handle_list)
        app.router.add_get("/_standin/attempts", self._handle_list)
        app.router.add_get("/_standin/rejected", self._handle_list)
        app.router.add_get("/_standin/stats", self._handle_stats)
        app.router.add_post("/_standin/reset", self._handle_reset)
        app.router.add_get("/", self._handle_page)
        app.on_shutdown.append(self._release_parked)
        # A short shutdown timeout: nothing in flight here is worth waiting a minute for.
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, ssl_context=self._ssl)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._loop = asyncio.get_running_loop()
        self.port = int(runner.addresses[0][1])
        host = f"[{self.host}]" if ":" in self.host else self.host
        self._origin = f"{'https' if self.tls else 'http'}://{host}:{self.port}"

    async def _shutdown(self) -> None:
        if self._save_handle is not None:
            self._save_handle.cancel()
            self._save_handle = None
        if self._runner is None:
            return
        server = self._runner.server
        transports = [c.transport for c in server.connections if c.transport] if server else []
        await self._runner.cleanup()
        # A TLS connection the client still holds open is closed politely: close_notify, then
        # up to 30 s waiting for the peer's. The loop is about to go, so cut it short, or the
        # socket is leaked (a ResourceWarning in the test process).
        for transport in transports:
            transport.abort()
        await asyncio.sleep(0)

    async def _release_parked(self, _app: web.Application) -> None:
        # hang/slow/trickle handlers would otherwise hold shutdown for shutdown_timeout.
        for task in list(self._parked):
            task.cancel()

    async def _serve_until_signalled(self) -> None:
        await self._startup()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(signum, stop.set)
        print(f"push stand-in listening on {self.origin}", flush=True)
        print(f"  endpoints: {self.origin}/push/<token>   inbox: {self.origin}/", flush=True)
        if self.ca_file:
            print(f"  TLS CA certificate: {self.ca_file}", flush=True)
        try:
            await stop.wait()
        finally:
            await self._shutdown()

    # ------------------------------------------------------------------ subscriptions & modes

    def create_subscription(
        self, mode: str = "ok", *, application_server_key: str | None = None, **params: Any
    ) -> dict[str, Any]:
        return self.create_subscriptions(
            1, mode, application_server_key=application_server_key, **params
        )[0]

    def create_subscriptions(
        self,
        n: int,
        mode: str = "ok",
        *,
        application_server_key: str | None = None,
        **params: Any,
    ) -> list[dict[str, Any]]:
        """Mint n browser-style PushSubscription JSON objects held by this stand-in."""
        _validated(mode, params)
        server_key = None
        if application_server_key is not None:
            server_key = b64url_decode(application_server_key)
            if len(server_key) != 65 or server_key[0] != 4:
                raise ValueError("application_server_key must be an uncompressed P-256 point")
        origin = self.origin
        made: list[_Subscription] = []
        for _ in range(n):
            made.append(
                _Subscription(
                    token=secrets.token_urlsafe(24),
                    keys=SubscriberKeys.generate(),
                    state=_ModeState(mode, dict(params)),
                    server_key=server_key,
                )
            )
        with self._lock:
            self._subs.update((sub.token, sub) for sub in made)
        self._state_changed()
        return [
            {
                "endpoint": f"{origin}/push/{sub.token}",
                "expirationTime": None,
                "keys": {"p256dh": sub.keys.p256dh, "auth": sub.keys.auth},
            }
            for sub in made
        ]

    def set_mode(self, endpoint_or_token: str, mode: str, **params: Any) -> None:
        state = _validated(mode, params)
        token = _token_of(endpoint_or_token)
        with self._lock:
            sub = self._subs.get(token)
            if sub is None:
                raise KeyError(f"no subscription with token {token!r}")
            sub.state = state
        self._state_changed()

    def set_host_mode(self, mode: str | None, **params: Any) -> None:
        """Answer every endpoint with `mode` (None: back to per-endpoint modes)."""
        state = None if mode is None else _validated(mode, params)
        with self._lock:
            self._host_state = state

    def reset(self, *, subscriptions: bool = False) -> None:
        """Forget recorded traffic, host mode and endpoint modes; keys survive unless asked."""
        with self._lock:
            self._received.clear()
            self._attempts.clear()
            self._rejected.clear()
            self._redirects_followed = 0
            self._host_state = None
            if subscriptions:
                self._subs.clear()
            for sub in self._subs.values():
                sub.state = _ModeState("ok", {})
        self._state_changed()

    # ------------------------------------------------------------------ observations

    @property
    def received(self) -> list[Received]:
        """Deliveries: decrypted requests answered 2xx, oldest first (a snapshot)."""
        with self._lock:
            return list(self._received)

    @property
    def attempts(self) -> list[Received]:
        """Every request that passed the protocol checks, whatever the mode answered."""
        with self._lock:
            return list(self._attempts)

    @property
    def rejected(self) -> list[Rejected]:
        with self._lock:
            return list(self._rejected)

    @property
    def redirects_followed(self) -> int:
        """Requests that arrived at the default target of mode "redirect"."""
        with self._lock:
            return self._redirects_followed

    def deliveries_for(self, endpoint_or_token: str) -> list[Received]:
        token = _token_of(endpoint_or_token)
        with self._lock:
            return [r for r in self._received if r.token == token]

    def wait_for(self, count: int, timeout_s: float) -> list[Received]:
        """Block until at least `count` deliveries were recorded; returns all of them."""
        with self._changed:
            if self._changed.wait_for(lambda: len(self._received) >= count, timeout_s):
                return list(self._received)
        stats = self.stats()
        last = [f"{r.status} {r.reason}" for r in self.rejected[-3:]]
        raise TimeoutError(
            f"push stand-in: expected {count} deliveries within {timeout_s:g} s, got "
            f"{stats['delivered']}; attempts by status {stats['by_status']}, "
            f"{stats['rejected']} rejected{' (latest: ' + '; '.join(last) + ')' if last else ''}"
        )

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "subscriptions": len(self._subs),
                "delivered": len(self._received),
                "attempts": len(self._attempts),
                "rejected": len(self._rejected),
                "by_status": _count_statuses(r.status for r in self._attempts),
                "rejected_by_status": _count_statuses(r.status for r in self._rejected),
                "redirects_followed": self._redirects_followed,
                "host_mode": self._host_state.mode if self._host_state else None,
            }

    # ------------------------------------------------------------------ push endpoint

    async def _handle_push(self, request: web.Request) -> web.StreamResponse:
        arrived = time.time()
        token = request.match_info["token"]
        headers = {name.lower(): value for name, value in request.headers.items()}
        try:
            with self._lock:
                sub = self._subs.get(token)
            if sub is None:
                raise _Refusal(404, "no such subscription")
            claims, vapid_key = self._check_vapid(headers.get("authorization"), sub)
            ttl = _check_push_headers(headers)
            body = await _read_body(request)
            plaintext = _decrypt(sub.keys, body)
        except _Refusal as refusal:
            with self._lock:
                self._rejected.append(
                    Rejected(token, refusal.status, refusal.reason, arrived, headers)
                )
            return _error_response(refusal.status, refusal.reason)

        with self._lock:
            state = self._host_state or sub.state
            mode = state.next_mode()
            params = state.params

        def record(status: int) -> None:
            entry = Received(
                token=token,
                endpoint=f"{self.origin}/push/{token}",
                headers=headers,
                payload=_parse_payload(plaintext),
                raw_len=len(body),
                at=arrived,
                status=status,
                ttl=ttl,
                mode=mode,
                vapid_sub=str(claims.get("sub", "")),
                vapid_key=vapid_key,
                plaintext=plaintext,
            )
            with self._changed:
                self._attempts.append(entry)
                if 200 <= status < 300:
                    self._received.append(entry)
                self._changed.notify_all()

        return await self._answer(request, mode, params, ttl, record)

    async def _answer(
        self,
        request: web.Request,
        mode: str,
        params: dict[str, Any],
        ttl: int,
        record: Callable[[int], None],
    ) -> web.StreamResponse:
        retry_after = {"Retry-After": str(params.get("retry_after", 30))}
        if mode == "slow":
            await self._parked_sleep(float(params.get("delay_s", 5.0)))
            mode = "ok"
        if mode == "ok":
            record(201)
            # RFC 8030 section 5.2: the service reports the TTL it will honour.
            location = f"{self.origin}/m/{secrets.token_urlsafe(12)}"
            return web.Response(status=201, headers={"Location": location, "TTL": str(ttl)})
        if mode == "hang":
            record(NO_ANSWER)
            await self._parked_sleep(None)
        if mode == "trickle":
            record(200)
            return await self._trickle(request, params)
        if mode == "redirect":
            record(307)
            location = params.get("location", f"{self.origin}/_standin/redirect-sink")
            return web.Response(status=307, headers={"Location": location})
        refusals: dict[str, tuple[int, str, dict[str, str] | None]] = {
            "gone404": (404, "subscription not found", None),
            "gone410": (410, "subscription has expired or was unsubscribed", None),
            "throttle": (429, "too many requests", retry_after),
            "error": (
                int(params.get("status", 503)),
                "push service error",
                retry_after if "retry_after" in params else None,
            ),
            "forbidden": (403, "sender not allowed to push to this subscription", None),
            "notacceptable": (406, "push message not acceptable right now", retry_after),
        }
        status, reason, extra = refusals[mode]
        record(status)
        return _error_response(status, reason, extra)

    async def _parked_sleep(self, seconds: float | None) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._parked.add(task)
        try:
            if seconds is None:
                await asyncio.get_running_loop().create_future()
            else:
                await asyncio.sleep(seconds)
        finally:
            self._parked.discard(task)

    async def _trickle(self, request: web.Request, params: dict[str, Any]) -> web.StreamResponse:
        total = int(params.get("total_bytes", 50 * 1024 * 1024))
        chunk = b"x" * int(params.get("chunk_size", 1024))
        interval = float(params.get("interval_s", 0.05))
        response = web.StreamResponse(status=200, headers={"Content-Type": "text/plain"})
        response.content_length = total
        await response.prepare(request)
        sent = 0
        try:
            while sent < total:
                piece = chunk[: total - sent]
                await response.write(piece)
                sent += len(piece)
                await self._parked_sleep(interval)
            await response.write_eof()
        except ConnectionError:
            pass  # the sender gave up reading, which is what a careful sender does
        return response

    async def _handle_redirect_sink(self, _request: web.Request) -> web.StreamResponse:
        with self._lock:
            self._redirects_followed += 1
        return web.Response(status=201)

    def _check_vapid(self, header: str | None, sub: _Subscription) -> tuple[dict[str, Any], str]:
        """RFC 8292 checks; returns (claims, k). Raises _Refusal 401, or 403 for a wrong key."""
        try:
            token, key = vapid.read_authorization(header)
            if sub.server_key is not None and key != sub.server_key:
                raise vapid.VapidRefused(
                    "VAPID key differs from the subscription's applicationServerKey", 403
                )
            # A sender reuses one token for many pushes: verify its signature once.
            claims = self._jwt_cache.get((token, key))
            if claims is None:
                claims = vapid.verify_signature(token, key)
                if len(self._jwt_cache) >= _JWT_CACHE_MAX:
                    self._jwt_cache.clear()
                self._jwt_cache[(token, key)] = claims
            vapid.check_claims(claims, self.origin, max_lifetime_s=self.max_age_s)
        except vapid.VapidRefused as refused:
            raise _Refusal(refused.status, refused.reason) from refused
        return claims, b64url_encode(key)

    # ------------------------------------------------------------------ control API

    @web.middleware
    async def _control_errors(
        self,
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        if not request.path.startswith("/_standin/"):
            return await handler(request)
        try:
            return await handler(request)
        except KeyError as exc:
            return _error_response(404, str(exc.args[0]) if exc.args else "not found")
        except (ValueError, TypeError) as exc:
            return _error_response(400, str(exc))

    async def _handle_create(self, request: web.Request) -> web.StreamResponse:
        data = await _json_object(request)
        count = data.get("count", 1)
        if not _is_int(count) or not 0 <= count <= 1_000_000:
            raise ValueError("count must be an integer between 0 and 1000000")
        subs = await asyncio.to_thread(
            self.create_subscriptions,
            count,
            str(data.get("mode", "ok")),
            application_server_key=data.get("application_server_key"),
            **_params(data),
        )
        return web.json_response({"subscriptions": subs})

    async def _handle_mode(self, request: web.Request) -> web.StreamResponse:
        data = await _json_object(request)
        target = data.get("endpoint") or data.get("token")
        if not isinstance(target, str):
            raise ValueError("give the endpoint (or token) to change")
        self.set_mode(target, str(data.get("mode", "ok")), **_params(data))
        return web.json_response({"ok": True})

    async def _handle_host_mode(self, request: web.Request) -> web.StreamResponse:
        data = await _json_object(request)
        mode = data.get("mode")
        self.set_host_mode(None if mode is None else str(mode), **_params(data))
        return web.json_response({"ok": True})

    async def _handle_list(self, request: web.Request) -> web.StreamResponse:
        kind = request.path.rsplit("/", 1)[-1]
        since_text = request.query.get("since", "0")
        if not _DIGITS_RE.match(since_text):
            raise ValueError("since must be a non-negative integer index")
        since = int(since_text)
        with self._lock:
            items: list[Received] | list[Rejected]
            if kind == "rejected":
                items = self._rejected
            else:
                items = self._received if kind == "received" else self._attempts
            total = len(items)
            page = [item.to_json() for item in items[since:]]
        return web.json_response({"count": total, "next": total, kind: page})

    async def _handle_stats(self, _request: web.Request) -> web.StreamResponse:
        return web.json_response(self.stats())

    async def _handle_reset(self, request: web.Request) -> web.StreamResponse:
        data = await _json_object(request) if request.can_read_body else {}
        self.reset(subscriptions=bool(data.get("subscriptions", False)))
        return web.json_response({"ok": True})

    async def _handle_page(self, _request: web.Request) -> web.StreamResponse:
        with self._lock:
            latest = list(reversed(self._received[-_PAGE_ITEMS:]))
            delivered, rejected = len(self._received), len(self._rejected)
        rows = "\n".join(_page_row(item) for item in latest) or (
            '<tr><td colspan="4">Nothing delivered yet.</td></tr>'
        )
        page = _PAGE.format(delivered=delivered, rejected=rejected, rows=rows)
        return web.Response(text=page, content_type="text/html")

    # ------------------------------------------------------------------ persistence

    def _state_changed(self) -> None:
        if self.state_file is None:
            return
        loop = self._loop
        if loop is None or not loop.is_running():
            self._save_state()
            return
        # Coalesced: a demo creating subscriptions one by one should not rewrite the file
        # (megabytes for 20k keys) on every call.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(self._schedule_save)

    def _schedule_save(self) -> None:
        if self._save_handle is None and self._loop is not None:
            self._save_handle = self._loop.call_later(0.5, self._scheduled_save)

    def _scheduled_save(self) -> None:
        self._save_handle = None
        self._save_state()

    def _save_state(self) -> None:
        if self.state_file is None:
            return
        with self._lock:
            subs = [
                {
                    "token": sub.token,
                    "keys": sub.keys.to_json(),
                    "mode": sub.state.mode,
                    "params": sub.state.params,
                    "application_server_key": (
                        b64url_encode(sub.server_key) if sub.server_key else None
                    ),
                }
                for sub in self._subs.values()
            ]
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_name(self.state_file.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # private keys inside
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump({"version": 1, "subscriptions": subs}, fh, separators=(",", ":"))
        os.replace(tmp, self.state_file)

    def _load_state(self) -> None:
        if self.state_file is None or not self.state_file.exists():
            return
        data = json.loads(self.state_file.read_text(encoding="utf-8"))
        loaded: dict[str, _Subscription] = {}
        for item in data.get("subscriptions", []):
            server_key = item.get("application_server_key")
            loaded[item["token"]] = _Subscription(
                token=item["token"],
                keys=SubscriberKeys.from_json(item["keys"]),
                state=_validated(item.get("mode", "ok"), item.get("params", {})),
                server_key=b64url_decode(server_key) if server_key else None,
            )
        with self._lock:
            for token, sub in loaded.items():
                self._subs.setdefault(token, sub)


# ---------------------------------------------------------------------- request checks


def _check_push_headers(headers: dict[str, str]) -> int:
    """RFC 8030 header checks; returns the TTL."""
    ttl_text = headers.get("ttl")
    if ttl_text is None:
        raise _Refusal(400, "missing TTL header")
    if not _DIGITS_RE.match(ttl_text.strip()):
        raise _Refusal(400, f"TTL {ttl_text!r} is not a non-negative integer")
    urgency = headers.get("urgency")
    if urgency is not None and urgency.strip().lower() not in _URGENCIES:
        raise _Refusal(400, f"Urgency {urgency!r} is not one of {sorted(_URGENCIES)}")
    topic = headers.get("topic")
    if topic is not None and not _TOPIC_RE.match(topic):
        raise _Refusal(400, "Topic must be at most 32 base64url characters")
    length = headers.get("content-length")
    if length is not None and _DIGITS_RE.match(length) and int(length) > MAX_BODY_BYTES:
        raise _Refusal(413, f"body of {length} bytes exceeds {MAX_BODY_BYTES}")
    if length != "0" or "content-encoding" in headers:
        encoding = headers.get("content-encoding")
        if encoding is None:
            raise _Refusal(400, "missing Content-Encoding: aes128gcm")
        if encoding.strip().lower() != "aes128gcm":
            raise _Refusal(415, f"Content-Encoding {encoding!r} is not aes128gcm")
    return int(ttl_text.strip())


async def _read_body(request: web.Request) -> bytes:
    # Read ourselves rather than trusting Content-Length: chunked bodies have none.
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _Refusal(413, f"body exceeds {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _decrypt(keys: SubscriberKeys, body: bytes) -> bytes:
    if not body:
        return b""  # RFC 8030 allows pushes without payload
    if len(body) < _ECE_FIXED_HEADER:
        raise _Refusal(400, "body too short for an aes128gcm header")
    record_size = struct.unpack("!I", body[16:20])[0]
    header_len = _ECE_FIXED_HEADER + body[20]
    # RFC 8291 section 4: a push message is a single record; browsers drop the rest.
    if len(body) - header_len > record_size:
        raise _Refusal(400, "aes128gcm payload spans more than one record")
    try:
        plaintext: bytes = http_ece.decrypt(
            body, private_key=keys.private_key, auth_secret=keys.auth_secret, version="aes128gcm"
        )
    except Exception as exc:  # http_ece raises several unrelated exception types
        raise _Refusal(400, f"payload does not decrypt with the subscription keys ({exc})") from exc
    return plaintext


async def _json_object(request: web.Request) -> dict[str, Any]:
    try:
        data = await request.json()
    except ValueError as exc:
        raise ValueError(f"body is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError("body must be a JSON object")
    return data


def _params(data: dict[str, Any]) -> dict[str, Any]:
    params = data.get("params") or {}
    if not isinstance(params, dict):
        raise ValueError("params must be a JSON object")
    return params


def _count_statuses(statuses: Iterable[int]) -> dict[str, int]:
    return {str(status): n for status, n in sorted(Counter(statuses).items())}


# ---------------------------------------------------------------------- inbox page


def _page_row(item: Received) -> str:
    payload = item.payload or {}
    # Accept the common payload shapes: flat, or nested under "notification"/"data".
    nested = [payload] + [v for k, v in payload.items() if k in ("notification", "data")]
    fields = {
        name: next((str(p[name]) for p in nested if isinstance(p, dict) and name in p), "")
        for name in ("title", "body", "url")
    }
    if item.payload is None:
        fields["body"] = item.plaintext.decode("utf-8", "replace")[:200]
    url = fields["url"]
    link = (
        f'<a href="{html.escape(url)}" rel="noreferrer">{html.escape(url)}</a>'
        if url.startswith(("https://", "http://"))
        else html.escape(url)
    )
    when = time.strftime("%H:%M:%S", time.localtime(item.at))
    return (
        f"<tr><td>{when}</td><td>{html.escape(fields['title'])}</td>"
        f"<td>{html.escape(fields['body'])}</td><td>{link}</td></tr>"
    )


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="5">
<title>Push stand-in inbox</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:.3em .6em;text-align:left}}</style></head>
<body><h1>Push stand-in inbox</h1>
<p>{delivered} delivered, {rejected} rejected. Latest 50, newest first.</p>
<table><tr><th>Time</th><th>Title</th><th>Body</th><th>URL</th></tr>
{rows}
</table></body></html>
"""


def main_foreground(host: str, port: int, tls: bool = False, state_file: str | None = None) -> None:
    """Entry point for `newsflash push-standin`: serve until interrupted."""
    PushStandin(host, port, tls=tls, state_file=state_file).run_forever()


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8089)
    parser.add_argument("--tls", action="store_true")
    parser.add_argument("--state-file")
    args = parser.parse_args()
    main_foreground(args.host, args.port, args.tls, args.state_file)
